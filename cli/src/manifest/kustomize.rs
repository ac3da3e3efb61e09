//! `inject --kustomize DIR`: the sidecar as Kustomize patches instead of
//! edited manifests. DIR gets one JSON 6902 patch file per workload (the
//! operations [`super::diff`] derives from what [`crate::sidecar::inject`]
//! did to its pod template, so the rendering equals `inject`'s output) and a
//! `kustomization.yaml` whose `resources` are the user's manifests, never
//! edited: referenced where they are when the file is inside DIR, copied
//! into DIR unchanged when it is not (Kustomize's default load restrictor
//! reads no file outside the kustomization's directory).

use std::path::{Component, Path as FsPath, PathBuf};

use serde_json::{Value, json};

use super::diff::{Change, diff};
use super::{Edit, Edited, edit_manifests};
use crate::Error;
use crate::sidecar::VERSION;

/// The first line of every file this writes; files with it may be overwritten.
pub const HEADER: &str = "# Written by kubectl bpc inject --kustomize";

/// Prefix of the patch files' names.
const PATCH_PREFIX: &str = "bpc-sidecar.";

/// What [`write`] did.
#[derive(Debug)]
pub struct Written {
    /// The edit's outcomes and notes (its YAML is not used).
    pub edited: Edited,
    /// Files written, in order (kustomization.yaml last).
    pub files: Vec<PathBuf>,
    /// Notes about the files (a manifest copied into DIR).
    pub notes: Vec<String>,
}

/// The JSON 6902 operations that turn `before` into `after`, both pod
/// templates at `base` of their object (`/spec/template`, a CronJob's
/// `/spec/jobTemplate/spec/template`, a Pod's root).
pub fn operations(base: &str, before: &Value, after: &Value) -> Result<Vec<Value>, Error> {
    let changes = diff(before, after).map_err(Error::Workload)?;
    let mut ops = Vec::new();
    let mut removals: Vec<Value> = Vec::new();
    for change in changes {
        if !matches!(change, Change::RemoveItem { .. }) {
            // Items of a list go last first, so the indexes stay right.
            ops.extend(removals.drain(..).rev());
        }
        match change {
            Change::AddKey { map, key, value } => ops.push(json!({
                "op": "add",
                "path": format!("{base}{}/{}", map.pointer(), key.replace('~', "~0").replace('/', "~1")),
                "value": value,
            })),
            Change::Append { seq, items } => {
                for value in items {
                    ops.push(
                        json!({"op": "add", "path": format!("{base}{}/-", seq.pointer()), "value": value}),
                    );
                }
            }
            Change::Prepend { seq, items } => {
                for (i, value) in items.into_iter().enumerate() {
                    ops.push(
                        json!({"op": "add", "path": format!("{base}{}/{i}", seq.pointer()), "value": value}),
                    );
                }
            }
            Change::Replace { at, value } => {
                ops.push(json!({"op": "replace", "path": format!("{base}{}", at.pointer()), "value": value}))
            }
            Change::RemoveKey { map, key } => ops.push(json!({
                "op": "remove",
                "path": format!("{base}{}/{}", map.pointer(), key.replace('~', "~0").replace('/', "~1")),
            })),
            Change::RemoveItem { seq, index } => {
                removals.push(json!({"op": "remove", "path": format!("{base}{}/{index}", seq.pointer())}))
            }
        }
    }
    ops.extend(removals.drain(..).rev());
    Ok(ops)
}

fn written_by_us(path: &FsPath) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(HEADER))
}

fn io(path: &FsPath, e: std::io::Error) -> Error {
    Error::Usage(format!("cannot write {}: {e}", path.display()))
}

/// `path` relative to `dir`, when it is inside it (both made absolute).
fn inside(dir: &FsPath, path: &FsPath) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let path = std::fs::canonicalize(path).ok()?;
    let rel = path.strip_prefix(&dir).ok()?.to_owned();
    rel.components().all(|c| matches!(c, Component::Normal(_))).then_some(rel)
}

/// Writes the patches and kustomization.yaml for `input` (read from
/// `source`, or standard input when it is `-`) into `dir`.
pub fn write(
    input: &str,
    source: &FsPath,
    dir: &FsPath,
    edit: &Edit,
    namespace: Option<&str>,
) -> Result<Written, Error> {
    let edited = edit_manifests(input, edit, namespace)?;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let kustomization = dir.join("kustomization.yaml");
    if kustomization.exists() && !written_by_us(&kustomization) {
        return Err(Error::Usage(format!(
            "{} exists and was not written by kubectl bpc: use an empty directory for --kustomize",
            kustomization.display()
        )));
    }
    let mut notes = Vec::new();
    let resource = if source.as_os_str() == "-" { None } else { inside(dir, source) };
    let resource = match resource {
        Some(rel) => rel.to_string_lossy().into_owned(),
        None => {
            let name = match source.file_name() {
                Some(n) if source.as_os_str() != "-" => n.to_string_lossy().into_owned(),
                _ => "manifests.yaml".to_owned(),
            };
            if name == "kustomization.yaml" || name.starts_with(PATCH_PREFIX) {
                return Err(Error::Usage(format!(
                    "the input's name {name} is one --kustomize writes itself"
                )));
            }
            let copy = dir.join(&name);
            if copy.exists() && std::fs::read_to_string(&copy).ok().as_deref() != Some(input) {
                return Err(Error::Usage(format!(
                    "{} exists and differs from the input: remove it, or put the input inside {}",
                    copy.display(),
                    dir.display()
                )));
            }
            std::fs::write(&copy, input).map_err(|e| io(&copy, e))?;
            notes.push(format!(
                "{} is outside {}: copied there unchanged as {name} (Kustomize reads no file outside its directory)",
                if source.as_os_str() == "-" { "standard input".into() } else { source.display().to_string() },
                dir.display()
            ));
            name
        }
    };
    // Patch files from an earlier run that this one does not write again.
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))?.flatten() {
        let path = entry.path();
        let ours = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(PATCH_PREFIX));
        if ours && written_by_us(&path) {
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
        }
    }
    let mut files = Vec::new();
    let mut patches = Vec::new();
    for t in edited.templates.iter().filter(|t| t.before != t.after) {
        let w = &t.workload;
        let ops = operations(w.kind.template_pointer(), &t.before, &t.after)?;
        let name =
            format!("{PATCH_PREFIX}{}.{}.{}.yaml", w.namespace, w.kind.as_str().to_ascii_lowercase(), w.name);
        let text = format!(
            "{HEADER} (kubectl-bpc {VERSION}):\n# the bpc-agent sidecar of {}, as JSON 6902 operations on its pod template.\n{}",
            w.path(),
            yaml_serde::to_string(&ops)?
        );
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        files.push(path);
        let (group, version) = w.kind.api_version().rsplit_once('/').unwrap_or(("", w.kind.api_version()));
        let mut target = json!({"group": group, "version": version, "kind": w.kind.as_str(), "name": w.name});
        if let Some(ns) = object_namespace(input, t) {
            target["namespace"] = json!(ns);
        }
        patches.push(json!({"path": name, "target": target}));
    }
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [resource],
    });
    if !patches.is_empty() {
        k["patches"] = Value::Array(patches);
    }
    let text = format!(
        "{HEADER} (kubectl-bpc {VERSION}).\n# `kubectl kustomize {}` renders the resources with the bpc-agent sidecar; they are not edited.\n{}",
        dir.display(),
        yaml_serde::to_string(&k)?
    );
    std::fs::write(&kustomization, text).map_err(|e| io(&kustomization, e))?;
    files.push(kustomization);
    Ok(Written { edited, files, notes })
}

/// The workload's own `metadata.namespace`, if its manifest has one (a
/// target without a namespace matches the object however it is placed).
fn object_namespace(input: &str, t: &super::TemplateEdit) -> Option<String> {
    let source = super::input::Source::from_text(input);
    let doc = super::input::split(&source.text).ok()?.into_iter().nth(t.document - 1)?;
    let value = match doc.json {
        Some(v) => v,
        None => super::input::read_yaml(doc.text).ok()?,
    };
    let object = value.pointer(&t.object.pointer())?;
    object.pointer("/metadata/namespace")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_add_at_the_end_and_remove_list_items_last_first() {
        let before = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "y"}]}});
        let after =
            json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"annotations": {"k/v": "1"}}});
        assert_eq!(
            operations("/spec/template", &before, &after).unwrap(),
            [
                json!({"op": "remove", "path": "/spec/template/spec/containers/2"}),
                json!({"op": "remove", "path": "/spec/template/spec/containers/1"}),
                json!({"op": "add", "path": "/spec/template/metadata", "value": {"annotations": {"k/v": "1"}}}),
            ]
        );
        let ops = operations("/spec/template", &after, &json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "metadata": {"annotations": {"k/v": "1", "s/t": "2"}}})).unwrap();
        assert_eq!(
            ops[0],
            json!({"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "b"}})
        );
        assert_eq!(
            ops[1],
            json!({"op": "add", "path": "/spec/template/metadata/annotations/s~1t", "value": "2"})
        );
    }
}
