//! Offline `inject` / `uninject` over YAML manifests, for GitOps: the same
//! sidecar as `attach`, written into the files instead of the cluster.
//!
//! Input is one or more YAML documents, any of which may be a `kind: List`.
//! Each document is read with serde; the sidecar is put in or taken out of
//! every workload's pod template by [`sidecar::inject`] / [`sidecar::uninject`]
//! (the one definition of what the sidecar is), and the difference is then
//! written into the document's own text in place ([`lossless`]): every byte
//! outside what was added or removed stays as it was, comments included, so
//! `uninject(inject(f)) == f` byte for byte. A document that cannot be edited
//! in place (flow style, anchors and aliases, ...) is re-emitted whole, with
//! a note saying which and why. Documents without a workload, and workloads
//! the edit leaves as they are, are copied through byte for byte.

use serde_json::Value;

use crate::Error;
use crate::capabilities::{CapabilitiesArg, PodSecurity, choose};
use crate::sidecar::{self, Change, Sidecar, SidecarForm, SidecarOptions};
use crate::workload::{WorkloadId, WorkloadKind};

pub mod diff;
pub mod kustomize;
pub mod lossless;

use diff::{Path, Seg};

/// What to do to each workload found.
// One value per command run: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Edit {
    /// Put the sidecar in with these options.
    Inject {
        /// Sidecar options.
        options: SidecarOptions,
        /// Capability mode requested (`auto` means `default` offline).
        capabilities: CapabilitiesArg,
        /// Allow workloads with `hostNetwork: true`.
        allow_host_network: bool,
        /// Native sidecar or plain container.
        form: SidecarForm,
    },
    /// Take the sidecar out.
    Uninject,
}

/// What happened to one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The workload.
    pub workload: WorkloadId,
    /// What was done.
    pub action: Change,
}

/// One workload's pod template before and after the edit.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateEdit {
    /// The workload.
    pub workload: WorkloadId,
    /// Its document (1-based) in the input.
    pub document: usize,
    /// Path of the workload object in its document (empty, or `items[i]` of a List).
    pub object: Path,
    /// The pod template before.
    pub before: Value,
    /// The pod template after.
    pub after: Value,
}

/// The result of editing a stream of manifests.
#[derive(Debug, Clone, Default)]
pub struct Edited {
    /// The manifests, edited, as YAML.
    pub yaml: String,
    /// One entry per workload, in input order.
    pub outcomes: Vec<Outcome>,
    /// Each workload's template before and after, in input order.
    pub templates: Vec<TemplateEdit>,
    /// Notes for the user (namespace assumed, capability mode picked).
    pub notes: Vec<String>,
    /// Notes naming each document re-emitted instead of edited in place, and why.
    pub fallbacks: Vec<String>,
}

/// Splits a YAML stream into its documents' source text, at `---` lines.
fn split_documents(input: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in input.split_inclusive('\n') {
        let is_marker = line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if is_marker && offset > start {
            docs.push(&input[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if start < input.len() {
        docs.push(&input[start..]);
    }
    docs
}

struct Editor<'a> {
    edit: &'a Edit,
    namespace: Option<&'a str>,
    /// The document being edited (1-based).
    document: usize,
    out: Edited,
}

impl Editor<'_> {
    /// Names the object at `at` of the current document in messages.
    fn place(&self, at: &Path) -> String {
        match at.0.as_slice() {
            [Seg::Key(items), Seg::Index(i)] if items == "items" => {
                format!("document {}, List item {}", self.document, i + 1)
            }
            _ => format!("document {}", self.document),
        }
    }

    /// Edits a workload or a List in place; false when the value holds no workload.
    fn edit_value(&mut self, doc: &mut Value, at: &Path) -> Result<bool, Error> {
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            let mut any = false;
            if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
                for (i, item) in items.iter_mut().enumerate() {
                    any |= self.edit_value(item, &at.child(Seg::Key("items".into())).child(Seg::Index(i)))?;
                }
            }
            return Ok(any);
        }
        let Some(kind) = doc.get("kind").and_then(Value::as_str).and_then(WorkloadKind::from_kind) else {
            return Ok(false);
        };
        let api = doc.get("apiVersion").and_then(Value::as_str);
        if api.is_some_and(|a| a != kind.api_version()) {
            self.out.notes.push(format!(
                "{}: a {kind} of apiVersion {} is not a {} {kind}: left as it is",
                self.place(at),
                api.unwrap_or_default(),
                kind.api_version()
            ));
            return Ok(false);
        }
        let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let named = if name.is_empty() { format!("a {kind}") } else { format!("{}/{name}", kind.resource()) };
        // A workload kind without a pod template is a broken manifest, not
        // something to pass through as if it were not ours.
        let template_at = kind.template_pointer();
        let containers = doc.pointer(&format!("{template_at}/spec/containers")).and_then(Value::as_array);
        if containers.is_none_or(Vec::is_empty) {
            let field =
                format!("{}spec.containers", template_at.trim_start_matches('/').replace('/', ".") + ".");
            return Err(Error::Workload(format!(
                "{}: {named} has no usable pod template ({} is missing or empty)",
                self.place(at),
                field.trim_start_matches('.')
            )));
        }
        if api.is_none() {
            return Err(Error::Workload(format!(
                "{}: {named} has no apiVersion ({})",
                self.place(at),
                kind.api_version()
            )));
        }
        if name.is_empty() {
            return Err(Error::Usage(format!(
                "{}: a {kind} in the input has no metadata.name",
                self.place(at)
            )));
        }
        let namespace = match doc.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) => ns.to_owned(),
            None => {
                let ns = self.namespace.unwrap_or("default");
                self.out.notes.push(format!(
                    "{}/{name} has no metadata.namespace: keyed as namespace {ns} (set it, or pass -n)",
                    kind.resource()
                ));
                ns.to_owned()
            }
        };
        let workload = WorkloadId { namespace, kind, name };
        let template = doc.pointer_mut(template_at).expect("checked above");
        let before = template.clone();
        let action = match self.edit {
            Edit::Inject { options, capabilities, allow_host_network, form } => {
                let choice = choose(*capabilities, &workload.namespace, &PodSecurity::default(), None)?;
                if *capabilities == CapabilitiesArg::Auto {
                    self.out.notes.push(format!(
                        "{workload}: --capabilities auto resolves to '{}' offline (no cluster to ask): use \
                         --capabilities add for CRI-O nodes",
                        choice.mode.as_str()
                    ));
                }
                let s = Sidecar {
                    workload: workload.clone(),
                    options: options.clone(),
                    capabilities: choice.mode,
                    allow_host_network: *allow_host_network,
                    form: *form,
                };
                Change::from(sidecar::inject(template, &s)?)
            }
            Edit::Uninject => Change::from(sidecar::uninject(template, &workload)?),
        };
        self.out.templates.push(TemplateEdit {
            workload: workload.clone(),
            document: self.document,
            object: at.clone(),
            before,
            after: template.clone(),
        });
        self.out.outcomes.push(Outcome { workload, action });
        Ok(true)
    }
}

/// The `---` line a document's source starts with, if any.
fn marker_line(source: &str) -> &str {
    if source.starts_with("---") { source.split_inclusive('\n').next().unwrap_or(source) } else { "" }
}

/// Applies `edit` to every workload in a YAML stream. `namespace` keys
/// workloads whose manifest has none (default: "default").
pub fn edit_manifests(input: &str, edit: &Edit, namespace: Option<&str>) -> Result<Edited, Error> {
    let mut editor = Editor { edit, namespace, document: 0, out: Edited::default() };
    let mut yaml = String::with_capacity(input.len() * 2);
    for (index, source) in split_documents(input).into_iter().enumerate() {
        editor.document = index + 1;
        let parsed: yaml_serde::Value = yaml_serde::from_str(source).map_err(|e| {
            Error::Usage(format!("document {} of the input is not valid YAML: {e}", index + 1))
        })?;
        let doc: Value = serde_json::to_value(&parsed).map_err(|e| {
            Error::Usage(format!("document {} cannot be read as a Kubernetes object: {e}", index + 1))
        })?;
        let first_template = editor.out.templates.len();
        let mut edited = doc.clone();
        if doc.is_null() || !editor.edit_value(&mut edited, &Path::default())? || edited == doc {
            // Not ours to touch, or nothing to change: the document's own text.
            yaml.push_str(source);
            continue;
        }
        let touched = &editor.out.templates[first_template..];
        let templates: Vec<Path> = touched
            .iter()
            .filter(|t| t.before != t.after)
            .map(|t| t.object.child(Seg::Key("spec".into())).child(Seg::Key("template".into())))
            .collect();
        match lossless::edit(source, &doc, &edited, &templates) {
            Ok(text) => yaml.push_str(&text),
            Err(why) => {
                let names: Vec<String> = touched.iter().map(|t| t.workload.to_string()).collect();
                editor.out.fallbacks.push(format!(
                    "document {} ({}) is not edited in place because {why}: it is re-emitted whole, so its \
                     own formatting and comments are not kept",
                    index + 1,
                    names.join(", ")
                ));
                yaml.push_str(marker_line(source));
                yaml.push_str(&yaml_serde::to_string(&edited)?);
            }
        }
    }
    editor.out.yaml = yaml;
    Ok(editor.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inject() -> Edit {
        Edit::Inject {
            options: SidecarOptions::with_collectors(&["198.18.0.2"]),
            capabilities: CapabilitiesArg::Auto,
            allow_host_network: false,
            form: SidecarForm::Native,
        }
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: nginx\n";

    #[test]
    fn documents_split_at_marker_lines_only() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- # c\nc: '---'\n---x: 1\n");
        assert_eq!(docs, ["a: 1\n", "---\nb: 2\n", "--- # c\nc: '---'\n---x: 1\n"]);
        assert_eq!(split_documents("---\na: 1\n"), ["---\na: 1\n"]);
        assert!(split_documents("").is_empty());
    }

    #[test]
    fn non_workload_documents_pass_through_byte_for_byte() {
        let svc = "# the service\napiVersion: v1\nkind: Service\nmetadata: {name: web}   # flow style kept\n";
        let input = format!("{svc}---\n{DEPLOY}");
        let out = edit_manifests(&input, &inject(), None).unwrap();
        assert!(out.yaml.starts_with(svc), "{}", out.yaml);
        assert_eq!(out.outcomes.len(), 1);
        assert_eq!(out.outcomes[0].action, Change::Added);
    }

    #[test]
    fn a_list_has_each_workload_item_edited() {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            yaml_serde::from_str::<Value>(DEPLOY).unwrap(),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        ]});
        let out = edit_manifests(&yaml_serde::to_string(&list).unwrap(), &inject(), None).unwrap();
        let v: Value = yaml_serde::from_str(&out.yaml).unwrap();
        assert_eq!(v["items"][0]["spec"]["template"]["spec"]["initContainers"][0]["name"], "bpc-agent");
        assert_eq!(v["items"][1], list["items"][1]);
    }

    #[test]
    fn missing_namespace_is_keyed_by_the_flag_and_noted() {
        let doc = DEPLOY.replace("  namespace: shop\n", "");
        let out = edit_manifests(&doc, &inject(), Some("prod")).unwrap();
        assert_eq!(out.outcomes[0].workload.namespace, "prod");
        assert!(out.notes.iter().any(|n| n.contains("namespace prod")));
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let e = edit_manifests(&format!("{DEPLOY}---\na: [\n"), &inject(), None).unwrap_err().to_string();
        assert!(e.contains("document 2"), "{e}");
    }
}
