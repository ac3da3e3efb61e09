//! Offline inject/uninject over testdata/manifests: golden files, and the
//! properties that make it safe for GitOps: inject only adds lines, uninject
//! undoes inject byte for byte, inject is idempotent, nothing else in a
//! manifest changes.

use std::path::{Path, PathBuf};

use kubectl_bpc::capabilities::CapabilitiesArg;
use kubectl_bpc::manifest::{Edit, edit_manifests};
use kubectl_bpc::sidecar::{Change, GreProfile, Oversize, SidecarForm, SidecarOptions};
use proptest::prelude::*;
use serde_json::Value;

mod plugin;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn manifests() -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(testdata().join("manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "testdata/manifests lost files: {files:?}");
    files
        .into_iter()
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn inject_edit(options: SidecarOptions, capabilities: CapabilitiesArg) -> Edit {
    inject_as(options, capabilities, SidecarForm::Native)
}

fn inject_as(options: SidecarOptions, capabilities: CapabilitiesArg, form: SidecarForm) -> Edit {
    Edit::Inject { options, capabilities, allow_host_network: false, form }
}

/// The plain-container form: it edits the app's own `containers` list, where
/// the lossless editor's limits (flow style, anchors) show.
fn container_form() -> Edit {
    inject_as(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilitiesArg::Auto, SidecarForm::Container)
}

fn golden_options() -> Edit {
    inject_edit(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilitiesArg::Auto)
}

/// The documents of a YAML stream as JSON values (semantic comparison).
fn documents(yaml: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|d| {
            serde_json::to_value(<yaml_serde::Value as serde::Deserialize>::deserialize(d).unwrap()).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Every workload pod template in a document (a List has several).
fn templates(doc: &Value) -> Vec<&Value> {
    if doc["kind"] == "List" {
        return doc["items"].as_array().unwrap().iter().flat_map(templates).collect();
    }
    doc.pointer("/spec/template").into_iter().collect()
}

fn other_containers(yaml: &str) -> Vec<String> {
    documents(yaml)
        .iter()
        .flat_map(|d| templates(d).into_iter().cloned().collect::<Vec<_>>())
        .flat_map(|t| {
            ["containers", "initContainers"]
                .iter()
                .flat_map(|l| t["spec"][l].as_array().cloned().unwrap_or_default())
                .filter(|c| c["name"] != "bpc-agent")
                .map(|c| serde_json::to_string(&c).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The lines `edited` removed from `original` (empty: it only added lines).
/// A last line without a line break that gains one, because lines were
/// added after it, is not counted (`diff` shows it as "\ No newline at end
/// of file").
fn removed_lines(original: &str, edited: &str) -> Vec<String> {
    // Matched in order, greedily: when the edit only added lines, every
    // original line is found (a minimal diff says the same, but a text diff
    // of many identical documents may align them otherwise and report lines
    // as moved). The last line may gain the line break an addition after it
    // brings.
    let mut rest = edited.split_inclusive('\n');
    let mut removed = Vec::new();
    for line in original.split_inclusive('\n') {
        let unterminated = !line.ends_with('\n');
        let found =
            rest.by_ref().any(|l| l == line || (unterminated && l.trim_end_matches(['\r', '\n']) == line));
        if !found {
            removed.push(line.to_owned());
        }
    }
    removed
}

#[test]
fn the_removed_lines_oracle_sees_a_line_taken_out_and_not_lines_added() {
    let doc = "a: 1\nb: 2\n---\na: 1\nb: 2";
    assert!(removed_lines(doc, "a: 1\nx: 0\nb: 2\n---\na: 1\nb: 2\ny: 0\n").is_empty());
    assert_eq!(removed_lines(doc, "a: 1\nb: 2\n---\nb: 2"), ["a: 1\n", "b: 2"]);
    assert_eq!(removed_lines("a: 1\r\nb: 2", "a: 1\r\nb: 2\r\nc: 3\r\n"), Vec::<String>::new());
}

#[test]
fn inject_matches_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, input) in manifests() {
        let out = edit_manifests(&input, &golden_options(), None).unwrap();
        assert!(!out.outcomes.is_empty(), "{name}: no workload found");
        let path = testdata().join("golden/inject").join(&name);
        if update {
            std::fs::write(&path, &out.yaml).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create)", path.display()));
        assert_eq!(
            out.yaml, golden,
            "{name} differs from its golden file (UPDATE_GOLDEN=1 to refresh, then review)"
        );
    }
}

/// `--metrics-private --buffer 48`: the one manifest whose golden shows the
/// private mode (env, no container port, exec liveness probe) and the ring size.
#[test]
fn inject_with_metrics_private_and_buffer_matches_its_golden_file() {
    let mut options = SidecarOptions::with_collectors(&["198.18.0.2"]);
    options.metrics_private = true;
    options.buffer = Some(48);
    let input = std::fs::read_to_string(testdata().join("manifests/single-container.yaml")).unwrap();
    let out = edit_manifests(&input, &inject_edit(options, CapabilitiesArg::Auto), None).unwrap();
    let path = testdata().join("golden/inject-private/single-container.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &out.yaml).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create)", path.display()));
    assert_eq!(out.yaml, golden, "differs from its golden file (UPDATE_GOLDEN=1 to refresh, then review)");
    let back = edit_manifests(&out.yaml, &Edit::Uninject, None).unwrap().yaml;
    assert_eq!(documents(&back), documents(&input));
}

#[test]
fn goldens_only_add_lines_and_uninject_gives_the_input_back_byte_for_byte() {
    for (name, input) in manifests() {
        let golden = std::fs::read_to_string(testdata().join("golden/inject").join(&name)).unwrap();
        assert_eq!(removed_lines(&input, &golden), Vec::<String>::new(), "{name}: inject changed a line");
        assert!(golden.len() > input.len(), "{name}: nothing added");
        let back = edit_manifests(&golden, &Edit::Uninject, None).unwrap();
        assert!(back.outcomes.iter().all(|o| o.action == Change::Removed), "{name}");
        assert_eq!(back.yaml, input, "{name}: uninject(inject(x)) is not x byte for byte");
        assert!(back.notes.is_empty() && back.fallbacks.is_empty(), "{name}: {:?}", back.fallbacks);
    }
}

#[test]
fn uninject_of_manifests_without_a_sidecar_changes_nothing() {
    for (name, input) in manifests() {
        let out = edit_manifests(&input, &Edit::Uninject, None).unwrap();
        assert_eq!(out.yaml, input, "{name}");
        assert!(out.outcomes.iter().all(|o| o.action == Change::NotAttached), "{name}");
    }
}

#[test]
fn non_workload_documents_keep_their_comments_and_style() {
    let input = std::fs::read_to_string(testdata().join("manifests/multi-doc.yaml")).unwrap();
    let out = edit_manifests(&input, &golden_options(), None).unwrap();
    let service_and_config = input.split("---\napiVersion: apps/v1").next().unwrap();
    assert!(out.yaml.starts_with(service_and_config), "{}", out.yaml);
    assert!(out.yaml.contains("# a comment inside a block scalar"));
}

#[test]
fn a_foreign_bpc_agent_container_fails_the_whole_inject() {
    let input = std::fs::read_to_string(testdata().join("manifests/single-container.yaml"))
        .unwrap()
        .replace("      - name: app\n", "      - name: bpc-agent\n");
    let e = edit_manifests(&input, &golden_options(), None).unwrap_err().to_string();
    assert!(e.contains("did not add") && e.contains("deployment.apps/checkout"), "{e}");
}

fn options() -> impl Strategy<Value = (SidecarOptions, CapabilitiesArg)> {
    (
        proptest::sample::subsequence(
            vec!["198.18.0.2", "198.18.0.3", "probe.obs.svc", "2001:db8::9"],
            1..=4,
        ),
        proptest::option::of(proptest::sample::select(vec!["tcp port 443", "udp or icmp", "not port 22"])),
        proptest::option::of(64u32..9000),
        proptest::option::of(1u64..1_000_000),
        proptest::option::of(prop_oneof![Just(Oversize::Segment), Just(Oversize::Truncate)]),
        proptest::option::of(prop_oneof![Just(GreProfile::Standard), Just(GreProfile::Netis)]),
        1024u16..65535,
        prop_oneof![Just(CapabilitiesArg::Default), Just(CapabilitiesArg::Add), Just(CapabilitiesArg::Auto)],
        (any::<bool>(), proptest::option::of(1u32..=1024)),
    )
        .prop_map(
            |(collectors, filter, snaplen, max_pps, oversize, gre_profile, port, caps, (private, buffer))| {
                let mut o = SidecarOptions::with_collectors(&collectors);
                o.filter = filter.map(str::to_owned);
                o.snaplen = snaplen;
                o.max_pps = max_pps;
                o.oversize = oversize;
                o.gre_profile = gre_profile;
                o.metrics_port = port;
                o.metrics_private = private;
                o.buffer = buffer;
                (o, caps)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn uninject_undoes_inject_and_inject_is_idempotent((opts, caps) in options(), other in options()) {
        for (name, input) in manifests() {
            let edit = inject_edit(opts.clone(), caps);
            let once = edit_manifests(&input, &edit, None).unwrap().yaml;
            let twice = edit_manifests(&once, &edit, None).unwrap();
            prop_assert_eq!(&twice.yaml, &once, "{}: inject(inject(x)) != inject(x)", name);
            prop_assert!(twice.outcomes.iter().all(|o| o.action == Change::Unchanged), "{}", name);

            prop_assert!(removed_lines(&input, &once).is_empty(), "{}: inject changed a line", name);
            let back = edit_manifests(&once, &Edit::Uninject, None).unwrap().yaml;
            prop_assert_eq!(&back, &input, "{}: uninject(inject(x)) != x", name);

            // Re-injecting with other options (edited in place too), then
            // uninjecting, still gives x back byte for byte.
            let updated = edit_manifests(&once, &inject_edit(other.0.clone(), other.1), None).unwrap();
            prop_assert!(updated.fallbacks.is_empty(), "{}: {:?}", name, updated.fallbacks);
            prop_assert!(removed_lines(&input, &updated.yaml).is_empty(), "{}: update changed a line", name);
            let back = edit_manifests(&updated.yaml, &Edit::Uninject, None).unwrap().yaml;
            prop_assert_eq!(&back, &input, "{}: after an update", name);

            prop_assert_eq!(other_containers(&once), other_containers(&input), "{}: another container changed", name);
        }
    }
}

#[test]
fn binary_injects_from_stdin_and_reports_each_workload_on_stderr() {
    let input = std::fs::read_to_string(testdata().join("manifests/multi-doc.yaml")).unwrap();
    let out = plugin::run(&["inject", "-f", "-", "--collector", "198.18.0.2"], &input);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let golden = std::fs::read_to_string(testdata().join("golden/inject/multi-doc.yaml")).unwrap();
    assert_eq!(String::from_utf8(out.stdout.clone()).unwrap(), golden);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("deployment.apps/checkout in namespace shop: sidecar added"), "{stderr}");

    let back = plugin::run(&["uninject", "-f", "-"], &String::from_utf8(out.stdout).unwrap());
    assert!(back.status.success());
    assert_eq!(String::from_utf8(back.stdout).unwrap(), input);
}

#[test]
fn binary_refuses_bad_options_with_exit_2_and_prints_nothing() {
    let input = std::fs::read_to_string(testdata().join("manifests/single-container.yaml")).unwrap();
    for (args, needle) in [
        (
            vec!["inject", "-f", "-", "--collector", "198.18.0.2", "--filter", "tcp prot 80"],
            "does not compile",
        ),
        (vec!["inject", "-f", "-", "--collector", "198.18.0.2:4789"], "GRE has no ports"),
        (vec!["inject", "-f", "-"], "--collector"),
        (vec!["inject", "-f", "/nonexistent.yaml", "--collector", "x"], "cannot read /nonexistent.yaml"),
    ] {
        let out = plugin::run(&args, &input);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

// ---- Manifests in many styles -------------------------------------------

/// A little YAML tree to write manifests from in a chosen style.
#[derive(Debug, Clone)]
enum Node {
    /// Already-quoted scalar text.
    Scalar(String),
    Map(Vec<Entry>),
    Seq(Vec<Node>),
}

#[derive(Debug, Clone)]
enum Entry {
    /// `key: value`, with an optional comment at the end of the key's line.
    Key(&'static str, Node, Option<&'static str>),
    /// A comment line at the mapping's indentation.
    Comment(&'static str),
    /// An empty line.
    Blank,
}

#[derive(Debug, Clone)]
struct Style {
    step: usize,
    seq_indent: usize,
    crlf: bool,
    /// 0 plain, 1 single-quoted, 2 double-quoted.
    quotes: u8,
}

impl Style {
    fn nl(&self) -> &'static str {
        if self.crlf { "\r\n" } else { "\n" }
    }

    fn q(&self, text: &str) -> Node {
        Node::Scalar(match self.quotes {
            0 => text.to_owned(),
            1 => format!("'{text}'"),
            _ => format!("\"{text}\""),
        })
    }

    fn write(&self, node: &Node, col: usize, out: &mut String) {
        let nl = self.nl();
        match node {
            Node::Scalar(s) => out.push_str(&format!("{}{s}{nl}", " ".repeat(col))),
            Node::Map(entries) => {
                for e in entries {
                    match e {
                        Entry::Comment(c) => out.push_str(&format!("{}# {c}{nl}", " ".repeat(col))),
                        Entry::Blank => out.push_str(nl),
                        Entry::Key(k, v, c) => {
                            let c = c.map(|c| format!("  # {c}")).unwrap_or_default();
                            out.push_str(&format!("{}{k}:", " ".repeat(col)));
                            match v {
                                Node::Scalar(s) => out.push_str(&format!(" {s}{c}{nl}")),
                                Node::Map(_) => {
                                    out.push_str(&format!("{c}{nl}"));
                                    self.write(v, col + self.step, out);
                                }
                                Node::Seq(_) => {
                                    out.push_str(&format!("{c}{nl}"));
                                    self.write(v, col + self.seq_indent, out);
                                }
                            }
                        }
                    }
                }
            }
            Node::Seq(items) => {
                for item in items {
                    let mut body = String::new();
                    self.write(item, col + 2, &mut body);
                    out.push_str(&format!("{}- {}", " ".repeat(col), &body[col + 2..]));
                }
            }
        }
    }
}

fn key(k: &'static str, v: Node) -> Entry {
    Entry::Key(k, v, None)
}

#[derive(Debug, Clone)]
struct WorkloadGen {
    kind: &'static str,
    name: &'static str,
    namespace: bool,
    template_metadata: bool,
    annotations: bool,
    containers: usize,
    comments: bool,
}

fn workload_node(w: &WorkloadGen, st: &Style) -> Node {
    let comment = |text| w.comments.then_some(Entry::Comment(text));
    let mut metadata = vec![key("name", st.q(w.name))];
    if w.namespace {
        metadata.push(Entry::Key("namespace", st.q("shop"), w.comments.then_some("the namespace")));
    }
    let mut template = Vec::new();
    template.extend(comment("the pod template"));
    if w.template_metadata {
        let mut m = vec![key("labels", Node::Map(vec![key("app", st.q(w.name))]))];
        if w.annotations {
            m.push(key("annotations", Node::Map(vec![key("example.com/scrape", st.q("true"))])));
        }
        m.extend(comment("end of the template's metadata"));
        template.push(key("metadata", Node::Map(m)));
        template.extend(w.comments.then_some(Entry::Blank));
    }
    let containers = (0..w.containers)
        .map(|i| {
            Node::Map(vec![
                key("name", st.q(["app", "worker", "proxy"][i])),
                Entry::Key("image", st.q("registry.example/app:1.0"), w.comments.then_some("pinned")),
                key("args", Node::Seq(vec![st.q("--port"), st.q("8080")])),
            ])
        })
        .collect();
    let mut spec = vec![key("containers", Node::Seq(containers))];
    spec.extend(comment("after the containers"));
    template.push(key("spec", Node::Map(spec)));
    let mut top = vec![
        key("apiVersion", st.q("apps/v1")),
        key("kind", Node::Scalar(w.kind.to_owned())),
        key("metadata", Node::Map(metadata)),
        key(
            "spec",
            Node::Map(vec![
                key(
                    "selector",
                    Node::Map(vec![key("matchLabels", Node::Map(vec![key("app", st.q(w.name))]))]),
                ),
                key("template", Node::Map(template)),
            ]),
        ),
    ];
    top.extend(comment("end of the workload"));
    Node::Map(top)
}

#[derive(Debug, Clone)]
enum DocGen {
    Workload(WorkloadGen),
    Service,
    List(Vec<WorkloadGen>),
}

fn workload_gen() -> impl Strategy<Value = WorkloadGen> {
    (
        prop::sample::select(vec!["Deployment", "StatefulSet", "DaemonSet"]),
        prop::sample::select(vec!["web", "db", "edge"]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1usize..=3,
        any::<bool>(),
    )
        .prop_map(|(kind, name, namespace, template_metadata, annotations, containers, comments)| {
            WorkloadGen { kind, name, namespace, template_metadata, annotations, containers, comments }
        })
}

fn doc_gen() -> impl Strategy<Value = DocGen> {
    prop_oneof![
        3 => workload_gen().prop_map(DocGen::Workload),
        1 => Just(DocGen::Service),
        1 => prop::collection::vec(workload_gen(), 1..=2).prop_map(DocGen::List),
    ]
}

#[derive(Debug, Clone)]
struct ManifestGen {
    style: Style,
    docs: Vec<DocGen>,
    leading_comment: bool,
    final_newline: bool,
}

fn manifest_gen() -> impl Strategy<Value = ManifestGen> {
    (
        prop::sample::select(vec![2usize, 4]),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        prop::collection::vec(doc_gen(), 1..=3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(step, indented, crlf, quotes, docs, leading_comment, final_newline)| ManifestGen {
            style: Style { step, seq_indent: if indented { step } else { 0 }, crlf, quotes },
            docs,
            leading_comment,
            final_newline,
        })
}

fn render(m: &ManifestGen) -> String {
    let st = &m.style;
    let nl = st.nl();
    let mut out = String::new();
    for (i, doc) in m.docs.iter().enumerate() {
        if i > 0 {
            out.push_str(&format!("---{nl}"));
        }
        if m.leading_comment {
            out.push_str(&format!("# document {}{nl}", i + 1));
        }
        let node = match doc {
            DocGen::Workload(w) => workload_node(w, st),
            DocGen::Service => Node::Map(vec![
                key("apiVersion", st.q("v1")),
                key("kind", Node::Scalar("Service".into())),
                key("metadata", Node::Map(vec![key("name", st.q("web"))])),
                Entry::Key("spec", Node::Scalar("{ports: [{port: 80}]}".into()), Some("flow style, kept")),
            ]),
            DocGen::List(items) => Node::Map(vec![
                key("apiVersion", st.q("v1")),
                key("kind", Node::Scalar("List".into())),
                key("items", Node::Seq(items.iter().map(|w| workload_node(w, st)).collect())),
            ]),
        };
        st.write(&node, 0, &mut out);
    }
    if !m.final_newline {
        out.truncate(out.len() - nl.len());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn manifests_in_any_style_are_edited_in_place_and_restored_byte_for_byte(
        m in manifest_gen(),
        (opts, caps) in options(),
        other in options(),
    ) {
        let input = render(&m);
        let edit = inject_edit(opts, caps);
        let once = edit_manifests(&input, &edit, None).unwrap();
        prop_assert!(once.fallbacks.is_empty(), "{:?}\n{}", once.fallbacks, input);
        prop_assert!(!once.outcomes.is_empty() || !input.contains("apps/v1"));
        prop_assert!(once.outcomes.iter().all(|o| o.action == Change::Added));
        prop_assert_eq!(removed_lines(&input, &once.yaml), Vec::<String>::new(), "input:\n{}", input);
        if m.style.crlf {
            prop_assert!(!once.yaml.replace("\r\n", "").contains('\n'), "a bare LF in\n{}", once.yaml);
        }
        // Every workload got the sidecar as its first init container (the
        // native form), and nothing else in any document changed.
        for doc in documents(&once.yaml) {
            for t in templates(&doc) {
                let names: Vec<_> =
                    t["spec"]["initContainers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
                prop_assert_eq!(names.first().unwrap().as_str(), Some("bpc-agent"));
            }
        }
        prop_assert_eq!(other_containers(&once.yaml), other_containers(&input));

        let twice = edit_manifests(&once.yaml, &edit, None).unwrap().yaml;
        prop_assert_eq!(&twice, &once.yaml, "inject(inject(x)) != inject(x)");
        let back = edit_manifests(&once.yaml, &Edit::Uninject, None).unwrap();
        prop_assert!(back.fallbacks.is_empty(), "{:?}", back.fallbacks);
        prop_assert_eq!(&back.yaml, &input, "uninject(inject(x)) != x");

        // An update with other options is edited in place too.
        let updated = edit_manifests(&once.yaml, &inject_edit(other.0, other.1), None).unwrap();
        prop_assert!(updated.fallbacks.is_empty(), "{:?}", updated.fallbacks);
        prop_assert_eq!(removed_lines(&input, &updated.yaml), Vec::<String>::new());
        let back = edit_manifests(&updated.yaml, &Edit::Uninject, None).unwrap().yaml;
        prop_assert_eq!(&back, &input, "uninject(update(inject(x))) != x");
    }
}

// ---- Fallback, errors ----------------------------------------------------

const FLOW_CONTAINERS: &str = "# flow-style containers\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: nginx}]\n";

#[test]
fn documents_that_cannot_be_edited_in_place_are_re_emitted_with_a_note_naming_them() {
    let block = std::fs::read_to_string(testdata().join("manifests/single-container.yaml")).unwrap();
    let anchors = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\n  labels: &labels\n    app: api\nspec:\n  template:\n    metadata:\n      labels: *labels\n    spec:\n      containers:\n      - name: app\n        image: nginx\n";
    let json = r#"{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "kube-system"},
 "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}
"#;
    for (doc, needle) in [
        (FLOW_CONTAINERS, "spec.template.spec.containers is a flow-style list"),
        (anchors, "spec.template uses YAML anchors or aliases"),
        (json, "is a flow-style mapping"),
    ] {
        let input = format!("{block}---\n{doc}");
        let out = edit_manifests(&input, &container_form(), None).unwrap();
        let note = out
            .fallbacks
            .iter()
            .find(|n| n.contains("re-emitted"))
            .unwrap_or_else(|| panic!("{:?}", out.notes));
        assert_eq!(out.fallbacks.len(), 1, "{:?}", out.fallbacks);
        assert!(note.starts_with("document 2 ("), "{note}");
        assert!(note.contains(needle), "{note}");
        // The other document is still edited in place.
        assert_eq!(removed_lines(&block, out.yaml.split("---\n").next().unwrap()), Vec::<String>::new());
        // The re-emitted one is right, and uninject takes the sidecar out again.
        let docs = documents(&out.yaml);
        assert_eq!(docs[1]["spec"]["template"]["spec"]["containers"][1]["name"], "bpc-agent");
        let back = edit_manifests(&out.yaml, &Edit::Uninject, None).unwrap();
        assert_eq!(documents(&back.yaml), documents(&input), "{needle}");
        assert!(back.yaml.starts_with(&block), "the first document is restored byte for byte");
    }
}

#[test]
fn a_workload_kind_without_a_usable_pod_template_is_an_error_naming_the_document() {
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n";
    for (doc, needle) in [
        ("kind: Deployment\n", "document 2 (line 5): a Deployment has no usable pod template"),
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  replicas: 1\n",
            "statefulset.apps/db has no usable pod template",
        ),
        (
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: ds\nspec:\n  template:\n    spec:\n      containers: []\n",
            "daemonset.apps/ds has no usable pod template",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- kind: Deployment\n  metadata:\n    name: x\n",
            "document 2 (line 5), List item 1",
        ),
        (
            "kind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n",
            "no apiVersion",
        ),
    ] {
        let input = format!("{service}---\n{doc}");
        for edit in [golden_options(), Edit::Uninject] {
            let e = edit_manifests(&input, &edit, None).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
            // A refusal: nothing is printed, exit 2 (the input cannot be used as given).
            assert_eq!(e.exit_code(), std::process::ExitCode::from(2));
        }
    }
    // Another apiVersion is not ours: left as it is, with a note.
    let other = format!("{service}---\napiVersion: example.com/v1\nkind: Deployment\nmetadata:\n  name: x\n");
    let out = edit_manifests(&other, &golden_options(), None).unwrap();
    assert_eq!(out.yaml, other);
    assert!(
        out.notes.iter().any(|n| n.contains("document 2") && n.contains("example.com/v1")),
        "{:?}",
        out.notes
    );
}

#[test]
fn binary_notes_a_re_emitted_document_and_refuses_a_missing_template_with_exit_2() {
    let out = plugin::run(
        &["inject", "-f", "-", "--collector", "198.18.0.2", "--sidecar", "container"],
        FLOW_CONTAINERS,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("note: document 1 (deployment.apps/web) is not edited in place because spec.template.spec.containers is a flow-style list"),
        "{stderr}"
    );
    assert!(String::from_utf8(out.stdout).unwrap().contains("- name: bpc-agent"));

    let out = plugin::run(
        &["inject", "-f", "-", "--collector", "198.18.0.2"],
        "apiVersion: v1\nkind: ConfigMap\n---\nkind: Deployment\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing printed when a document fails");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("error: document 2 (line 3): a Deployment has no usable pod template"),
        "{stderr}"
    );
}
