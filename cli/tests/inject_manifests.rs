//! Offline inject/uninject over testdata/manifests: golden files, and the
//! properties that make it safe for GitOps: inject only adds lines, uninject
//! undoes inject byte for byte, inject is idempotent, nothing else in a
//! manifest changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kubectl_bpc::capabilities::CapabilitiesArg;
use kubectl_bpc::manifest::{Edit, edit_manifests};
use kubectl_bpc::sidecar::{GreProfileArg, Oversize, SidecarOptions};
use proptest::prelude::*;
use serde_json::Value;

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
    Edit::Inject { options, capabilities, allow_host_network: false }
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
fn removed_lines(original: &str, edited: &str) -> Vec<String> {
    similar::TextDiff::from_lines(original, edited)
        .iter_all_changes()
        .filter(|c| c.tag() == similar::ChangeTag::Delete)
        .map(|c| c.value().to_owned())
        .collect()
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

#[test]
fn goldens_only_add_lines_and_uninject_gives_the_input_back_byte_for_byte() {
    for (name, input) in manifests() {
        let golden = std::fs::read_to_string(testdata().join("golden/inject").join(&name)).unwrap();
        assert_eq!(removed_lines(&input, &golden), Vec::<String>::new(), "{name}: inject changed a line");
        assert!(golden.len() > input.len(), "{name}: nothing added");
        let back = edit_manifests(&golden, &Edit::Uninject, None).unwrap();
        assert!(back.outcomes.iter().all(|o| o.action == "sidecar removed"), "{name}");
        assert_eq!(back.yaml, input, "{name}: uninject(inject(x)) is not x byte for byte");
        assert!(back.notes.is_empty(), "{name}: {:?}", back.notes);
    }
}

#[test]
fn uninject_of_manifests_without_a_sidecar_changes_nothing() {
    for (name, input) in manifests() {
        let out = edit_manifests(&input, &Edit::Uninject, None).unwrap();
        assert_eq!(out.yaml, input, "{name}");
        assert!(out.outcomes.iter().all(|o| o.action == "not attached"), "{name}");
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
        proptest::option::of(prop_oneof![Just(GreProfileArg::Standard), Just(GreProfileArg::Netis)]),
        1024u16..65535,
        prop_oneof![Just(CapabilitiesArg::Default), Just(CapabilitiesArg::Add), Just(CapabilitiesArg::Auto)],
    )
        .prop_map(|(collectors, filter, snaplen, max_pps, oversize, gre_profile, port, caps)| {
            let mut o = SidecarOptions::with_collectors(&collectors);
            o.filter = filter.map(str::to_owned);
            o.snaplen = snaplen;
            o.max_pps = max_pps;
            o.oversize = oversize;
            o.gre_profile = gre_profile;
            o.metrics_port = port;
            (o, caps)
        })
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
            prop_assert!(twice.outcomes.iter().all(|o| o.action == "unchanged"), "{}", name);

            prop_assert!(removed_lines(&input, &once).is_empty(), "{}: inject changed a line", name);
            let back = edit_manifests(&once, &Edit::Uninject, None).unwrap().yaml;
            prop_assert_eq!(&back, &input, "{}: uninject(inject(x)) != x", name);

            // Re-injecting with other options (edited in place too), then
            // uninjecting, still gives x back byte for byte.
            let updated = edit_manifests(&once, &inject_edit(other.0.clone(), other.1), None).unwrap();
            prop_assert!(updated.notes.iter().all(|n| !n.contains("re-emitted")), "{}: {:?}", name, updated.notes);
            prop_assert!(removed_lines(&input, &updated.yaml).is_empty(), "{}: update changed a line", name);
            let back = edit_manifests(&updated.yaml, &Edit::Uninject, None).unwrap().yaml;
            prop_assert_eq!(&back, &input, "{}: after an update", name);

            prop_assert_eq!(other_containers(&once), other_containers(&input), "{}: another container changed", name);
        }
    }
}

fn kubectl_bpc(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-bpc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn binary_injects_from_stdin_and_reports_each_workload_on_stderr() {
    let input = std::fs::read_to_string(testdata().join("manifests/multi-doc.yaml")).unwrap();
    let out = kubectl_bpc(&["inject", "-f", "-", "--collector", "198.18.0.2"], &input);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let golden = std::fs::read_to_string(testdata().join("golden/inject/multi-doc.yaml")).unwrap();
    assert_eq!(String::from_utf8(out.stdout.clone()).unwrap(), golden);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("deployment.apps/checkout in namespace shop: sidecar added"), "{stderr}");

    let back = kubectl_bpc(&["uninject", "-f", "-"], &String::from_utf8(out.stdout).unwrap());
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
        let out = kubectl_bpc(&args, &input);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
