//! Offline `inject` / `uninject` over YAML manifests, for GitOps: the same
//! sidecar as `attach`, written into the files instead of the cluster.
//!
//! Input is one or more YAML documents, any of which may be a `kind: List`.
//! Documents that hold no workload are copied through byte for byte
//! (comments included); a workload document is re-emitted with its keys in
//! their original order and only the sidecar's parts changed.

use serde_json::Value;

use crate::Error;
use crate::capabilities::{CapabilitiesArg, PodSecurity, choose};
use crate::sidecar::{self, Injected, Sidecar, SidecarOptions, Uninjected};
use crate::workload::{WorkloadId, WorkloadKind};

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
    },
    /// Take the sidecar out.
    Uninject,
}

/// What happened to one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The workload.
    pub workload: WorkloadId,
    /// What was done, as shown to the user: "added", "updated", "unchanged",
    /// "removed", "not attached".
    pub action: &'static str,
}

/// The result of editing a stream of manifests.
#[derive(Debug, Clone, Default)]
pub struct Edited {
    /// The manifests, edited, as YAML.
    pub yaml: String,
    /// One entry per workload, in input order.
    pub outcomes: Vec<Outcome>,
    /// Notes for the user (namespace assumed, capability mode picked).
    pub notes: Vec<String>,
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

fn workload_kind(doc: &Value) -> Option<WorkloadKind> {
    let api = doc.get("apiVersion")?.as_str()?;
    (api == "apps/v1").then_some(())?;
    WorkloadKind::from_kind(doc.get("kind")?.as_str()?)
}

struct Editor<'a> {
    edit: &'a Edit,
    namespace: Option<&'a str>,
    out: Edited,
}

impl Editor<'_> {
    /// Edits a workload or a List in place; false when the value holds no workload.
    fn edit_value(&mut self, doc: &mut Value) -> Result<bool, Error> {
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            let mut any = false;
            if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
                for item in items {
                    any |= self.edit_value(item)?;
                }
            }
            return Ok(any);
        }
        let Some(kind) = workload_kind(doc) else { return Ok(false) };
        let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(Error::Usage(format!("a {kind} in the input has no metadata.name")));
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
        let template = doc
            .pointer_mut("/spec/template")
            .ok_or_else(|| Error::Usage(format!("{workload} has no spec.template")))?;
        let action = match self.edit {
            Edit::Inject { options, capabilities, allow_host_network } => {
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
                };
                match sidecar::inject(template, &s)? {
                    Injected::Added => "sidecar added",
                    Injected::Updated => "sidecar updated",
                    Injected::Unchanged => "unchanged",
                }
            }
            Edit::Uninject => match sidecar::uninject(template, &workload)? {
                Uninjected::Removed => "sidecar removed",
                Uninjected::NotAttached => "not attached",
            },
        };
        self.out.outcomes.push(Outcome { workload, action });
        Ok(true)
    }
}

/// Applies `edit` to every workload in a YAML stream. `namespace` keys
/// workloads whose manifest has none (default: "default").
pub fn edit_manifests(input: &str, edit: &Edit, namespace: Option<&str>) -> Result<Edited, Error> {
    let mut editor = Editor { edit, namespace, out: Edited::default() };
    let mut parts: Vec<String> = Vec::new();
    for (index, source) in split_documents(input).into_iter().enumerate() {
        let yaml: yaml_serde::Value = yaml_serde::from_str(source).map_err(|e| {
            Error::Usage(format!("document {} of the input is not valid YAML: {e}", index + 1))
        })?;
        let mut doc: Value = serde_json::to_value(&yaml).map_err(|e| {
            Error::Usage(format!("document {} cannot be read as a Kubernetes object: {e}", index + 1))
        })?;
        if !doc.is_null() && editor.edit_value(&mut doc)? {
            let text = yaml_serde::to_string(&doc).map_err(|e| Error::Encode(e.to_string()))?;
            parts.push(text);
        } else {
            // Not ours to touch: the document's own text, comments and all.
            let body =
                source.strip_prefix("---").map_or(source, |rest| rest.split_once('\n').map_or("", |x| x.1));
            parts.push(body.to_owned());
        }
    }
    let mut yaml = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(part);
        if !part.is_empty() && !part.ends_with('\n') {
            yaml.push('\n');
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
        assert_eq!(out.outcomes[0].action, "sidecar added");
    }

    #[test]
    fn a_list_has_each_workload_item_edited() {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            yaml_serde::from_str::<Value>(DEPLOY).unwrap(),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        ]});
        let out = edit_manifests(&yaml_serde::to_string(&list).unwrap(), &inject(), None).unwrap();
        let v: Value = yaml_serde::from_str(&out.yaml).unwrap();
        assert_eq!(v["items"][0]["spec"]["template"]["spec"]["containers"][1]["name"], "bpc-agent");
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
