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
//!
//! What is read is what kubectl reads ([`input`]: files, directories, byte
//! order marks, JSON streams; [`yaml11`]: YAML 1.1's booleans and
//! integers). Templates are refused before anything is decided
//! ([`template_syntax`]); so is every document kubectl would refuse. Objects
//! that could run pods but are not edited are named ([`pods`]).

use serde_json::Value;

use crate::Error;
use crate::capabilities::{CapabilitiesArg, PodSecurity, choose};
use crate::sidecar::{self, Change, Sidecar, SidecarForm, SidecarOptions};
use crate::workload::{WorkloadId, WorkloadKind};

pub mod diff;
pub mod input;
pub mod kustomize;
pub mod lossless;
pub mod pods;
pub mod template_syntax;
pub mod yaml11;

use diff::{Path, Seg};
use input::{Source, Syntax};

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

struct Editor<'a> {
    edit: &'a Edit,
    namespace: Option<&'a str>,
    /// The file being read, None for standard input.
    label: Option<String>,
    /// The document being edited (1-based) and the line it starts on.
    document: usize,
    line: usize,
    out: Edited,
}

impl Editor<'_> {
    /// Names the object at `at` of the current document in messages.
    fn place(&self, at: &Path) -> String {
        let file = self.label.as_ref().map(|l| format!("{l}: ")).unwrap_or_default();
        match at.0.as_slice() {
            [Seg::Key(items), Seg::Index(i)] if items == "items" => {
                format!("{file}document {} (line {}), List item {}", self.document, self.line, i + 1)
            }
            _ => format!("{file}document {} (line {})", self.document, self.line),
        }
    }

    /// A refusal of the current document: exit 2, naming it (its kind and
    /// name when it has them) and saying why.
    fn refuse(&self, value: Option<&Value>, why: &str) -> Error {
        let kind = value.and_then(|v| v.get("kind")).and_then(Value::as_str);
        let name = value.and_then(|v| v.pointer("/metadata/name")).and_then(Value::as_str);
        let what = match (kind, name) {
            (Some(k), Some(n)) => format!(", {k} {n})"),
            (Some(k), None) => format!(", {k})"),
            _ => ")".into(),
        };
        let place = self.place(&Path::default());
        Error::Usage(format!("{}{what}: {why}", place.strip_suffix(')').unwrap_or(&place)))
    }

    /// A refusal from the sidecar's own checks, named by its document.
    fn locate(&self, e: Error) -> Error {
        let here = self.place(&Path::default());
        match e {
            Error::Usage(m) if !m.starts_with(here.split(" (line").next().unwrap_or_default()) => {
                Error::Usage(format!("{here}: {m}"))
            }
            e => e,
        }
    }

    /// Notes an object that could run pods and is left as it is.
    fn note_left_unchanged(&mut self, object: &Value, at: &Path) {
        if let Some(why) = pods::left_unchanged(object) {
            self.out.notes.push(format!("{}: {why}", self.place(at)));
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
            self.note_left_unchanged(doc, at);
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
            return Err(Error::Usage(format!(
                "{}: {named} has no usable pod template ({} is missing or empty): \
                 fix the manifest, or leave it out of the input",
                self.place(at),
                field.trim_start_matches('.')
            )));
        }
        if api.is_none() {
            return Err(Error::Usage(format!(
                "{}: {named} has no apiVersion: add apiVersion: {}",
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

impl Editor<'_> {
    /// The output text of one document: its own text when nothing in it
    /// changes, edited in place when it can be, re-emitted whole otherwise.
    /// A document's value as kubectl reads it, None for an empty one;
    /// refused when kubectl would refuse it or when it is a template.
    fn read(&self, source: &input::Document) -> Result<Option<Value>, Error> {
        let doc = match source.syntax {
            Syntax::Yaml => {
                if let Some(t) = template_syntax::structural(source.text) {
                    let line = t.line.map_or(String::new(), |l| format!(" at line {}", self.line + l - 1));
                    return Err(self.refuse(
                        None,
                        &format!(
                            "`{}`{line} is template syntax, not YAML kubectl reads: {}",
                            t.what,
                            template_syntax::RENDER_FIRST
                        ),
                    ));
                }
                input::read_yaml(source.text).map_err(|why| self.refuse(None, &why))?
            }
            Syntax::Json => {
                let mut v = source.json.clone().unwrap_or_default();
                input::empty_template_maps(&mut v);
                v
            }
        };
        if doc.is_null() {
            return Ok(None);
        }
        if let Some(why) = input::not_an_object(&doc) {
            return Err(self.refuse(Some(&doc), &why));
        }
        if let Some(t) = template_syntax::in_decided_fields(&doc) {
            return Err(self.refuse(
                Some(&doc),
                &format!("`{}` is template syntax: {}", t.what, template_syntax::RENDER_FIRST),
            ));
        }
        Ok(Some(doc))
    }

    fn document(&mut self, source: &input::Document) -> Result<String, Error> {
        let Some(doc) = self.read(source)? else {
            return Ok(source.text.to_owned());
        };
        let first_template = self.out.templates.len();
        let mut edited = doc.clone();
        let changed = self.edit_value(&mut edited, &Path::default()).map_err(|e| self.locate(e))?;
        if !changed || edited == doc {
            // Not ours to touch, or nothing to change: the document's own text.
            return Ok(source.text.to_owned());
        }
        let touched = &self.out.templates[first_template..];
        let names: Vec<String> = touched.iter().map(|t| t.workload.to_string()).collect();
        let file = self.label.as_ref().map(|l| format!("{l}: ")).unwrap_or_default();
        if source.syntax == Syntax::Json {
            // JSON stays JSON, so that the stream still reads as one.
            self.out.fallbacks.push(format!(
                "{file}document {} ({}) is JSON: it is re-emitted whole as JSON indented by two spaces, so its own \
                 formatting is not kept",
                self.document,
                names.join(", ")
            ));
            let body = source.text.trim();
            let start = source.text.find(body).unwrap_or(0);
            let (lead, trail) = (&source.text[..start], &source.text[start + body.len()..]);
            return Ok(format!("{lead}{}{trail}", serde_json::to_string_pretty(&edited)?));
        }
        let templates: Vec<Path> = touched
            .iter()
            .filter(|t| t.before != t.after)
            .map(|t| t.object.child(Seg::Key("spec".into())).child(Seg::Key("template".into())))
            .collect();
        match lossless::edit(source.text, &doc, &edited, &templates) {
            Ok(text) => Ok(text),
            Err(why) => {
                self.out.fallbacks.push(format!(
                    "{file}document {} ({}) is not edited in place because {why}: it is re-emitted whole, so its \
                     own formatting and comments are not kept",
                    self.document,
                    names.join(", ")
                ));
                let text = lossless::emit(&edited).map_err(Error::Workload)?;
                Ok(format!("{}{text}", marker_line(source.text)))
            }
        }
    }
}

impl Editor<'_> {
    /// The documents of `source`, which messages name from now on.
    fn documents<'s>(&mut self, source: &'s Source) -> Result<Vec<input::Document<'s>>, Error> {
        self.label = source.label();
        input::split(&source.text).map_err(|e| {
            let file = self.label.as_ref().map(|l| format!("{l}: ")).unwrap_or_default();
            Error::Usage(format!("{file}line {}: {}", e.line, e.why))
        })
    }

    /// Messages name the document `index` (0-based) of the source, at its line.
    fn at(&mut self, index: usize, doc: &input::Document<'_>) {
        self.document = index + 1;
        self.line = doc.line;
    }
}

/// Every object of `sources` as kubectl reads it (List items one by one),
/// or the refusal inject and uninject would give.
pub fn read_sources(sources: &[Source]) -> Result<Vec<Value>, Error> {
    let mut editor = Editor {
        edit: &Edit::Uninject,
        namespace: None,
        label: None,
        document: 0,
        line: 1,
        out: Edited::default(),
    };
    let mut objects = Vec::new();
    for source in sources {
        let docs = editor.documents(source)?;
        for (index, doc) in docs.iter().enumerate() {
            editor.at(index, doc);
            match editor.read(doc)? {
                Some(Value::Object(mut m)) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                    if let Some(Value::Array(items)) = m.remove("items") {
                        objects.extend(items);
                    }
                }
                Some(v) => objects.push(v),
                None => {}
            }
        }
    }
    Ok(objects)
}

/// Applies `edit` to every workload in a YAML or JSON stream given as text
/// (a byte order mark first is kept). `namespace` keys workloads whose
/// manifest has none (default: "default").
pub fn edit_manifests(input: &str, edit: &Edit, namespace: Option<&str>) -> Result<Edited, Error> {
    let source = Source::from_text(input);
    let mut out = edit_sources(std::slice::from_ref(&source), edit, namespace)?;
    if source.bom {
        out.yaml.insert(0, '\u{feff}');
    }
    Ok(out)
}

/// Applies `edit` to every workload of every source, in order; the output
/// is their documents one after the other (without byte order marks: see
/// [`Source::encode`]). With several sources, a `---` line goes before each
/// source's first document and before each JSON document, so that the
/// output reads back as the same documents.
pub fn edit_sources(sources: &[Source], edit: &Edit, namespace: Option<&str>) -> Result<Edited, Error> {
    let mut editor = Editor { edit, namespace, label: None, document: 0, line: 1, out: Edited::default() };
    let mut yaml = String::with_capacity(sources.iter().map(|s| s.text.len() * 2).sum());
    for source in sources {
        let docs = editor.documents(source)?;
        for (index, doc) in docs.iter().enumerate() {
            editor.at(index, doc);
            let text = editor.document(doc)?;
            let separate =
                sources.len() > 1 && !yaml.is_empty() && (index == 0 || doc.syntax == Syntax::Json);
            if separate && !text.starts_with("---") {
                if !yaml.ends_with('\n') {
                    yaml.push('\n');
                }
                yaml.push_str("---\n");
            }
            yaml.push_str(&text);
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
