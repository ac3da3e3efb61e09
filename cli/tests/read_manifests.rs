//! Manifests as kubectl reads them (testdata/manifests-read): the real
//! kubectl is the oracle of what is read (`kubectl label --local -f FILE
//! k=v -o json` decodes offline), inject's output is golden
//! (testdata/golden/inject-read, refresh with UPDATE_GOLDEN=1 then review),
//! every refusal exits 2 with nothing on standard output and names the
//! file, document and line, and a proptest puts byte order marks, CRLF and
//! YAML 1.1 boolean spellings into a manifest.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use kubectl_bpc::manifest::input::{self, MAX_DEPTH, Source};
use kubectl_bpc::manifest::{read_sources, yaml11};
use proptest::prelude::*;
use serde_json::Value;

mod plugin;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn fixture(name: &str) -> PathBuf {
    testdata().join("manifests-read").join(name)
}

/// Fixtures inject accepts, with `-R` or not (directories).
const ACCEPTED: &[(&str, bool)] = &[
    ("bom.yaml", false),
    ("bom-crlf.yaml", false),
    ("utf16.yaml", false),
    ("host-network-no.yaml", false),
    ("yaml11-scalars.yaml", false),
    ("json-stream.json", false),
    ("json-then-yaml.yaml", false),
    ("template-metadata-empty.yaml", false),
    ("pod-holders.yaml", false),
    ("dir", false),
    ("dir", true),
];

/// Fixtures inject refuses: what stderr must say (the place, then what to do).
const REFUSED: &[(&str, &str, &str)] = &[
    ("host-network-yes.yaml", "document 1 (line 1)", "uses hostNetwork: true"),
    ("host-network-on.yaml", "document 1 (line 1)", "pass --allow-host-network"),
    (
        "helm-unquoted.yaml",
        "document 1 (line 1)",
        "at line 4 is template syntax, not YAML kubectl reads: render it first (helm template",
    ),
    (
        "helm-quoted.yaml",
        "document 1 (line 1, Deployment {{ .Release.Name }}-web)",
        "helm install --post-renderer",
    ),
    ("prose.yaml", "document 1 (line 1)", "it is text, not a Kubernetes object"),
    ("scalar-document.yaml", "document 2 (line 18)", "it is a number, not a Kubernetes object"),
    ("no-kind.yaml", "document 1 (line 1)", "it has no kind"),
    ("missing-containers.yaml", "document 1 (line 1)", "has no usable pod template"),
    ("inline-separator.yaml", "line 18", "put the document on the next line"),
    ("json-stream-then-yaml.yaml", "line 2", "after 2 JSON objects the text is not JSON"),
    ("json-glued-in-yaml.yaml", "document 2 (line 18)", "more than one YAML document without a --- line"),
];

/// Refused on purpose although kubectl reads them, and why.
const KUBECTL_READS_BUT_WE_REFUSE: &[(&str, &str)] = &[
    ("helm-quoted.yaml", "a template: the workload's name would be the template's text"),
    ("json-glued-in-yaml.yaml", "kubectl reads the first object and drops the second without a word"),
];

fn args_for(name: &str, recursive: bool, verb: &str) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![verb.into(), "-f".into(), fixture(name).into()];
    if recursive {
        a.push("-R".into());
    }
    if verb == "inject" {
        a.extend(["--collector".into(), "198.18.0.2".into()]);
    }
    a
}

fn run(args: &[std::ffi::OsString]) -> std::process::Output {
    plugin::run(&args.iter().map(|a| a.as_os_str()).collect::<Vec<&OsStr>>(), "")
}

/// kubectl's reading of a file or directory: its objects, without the
/// label the command added, or its error.
fn kubectl_reads(path: &Path, recursive: bool) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new("kubectl");
    cmd.args(["label", "--local", "-f"]).arg(path).args(["k=v", "-o", "json"]).env("KUBECONFIG", "/dev/null");
    if recursive {
        cmd.arg("-R");
    }
    let out = cmd.output().expect(
        "kubectl on PATH (scripts/test.sh puts the cluster's pinned one first: scripts/cluster.sh bin)",
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut objects = Vec::new();
    for v in serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>() {
        let mut v = v.unwrap();
        let labels = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut).unwrap();
        labels.shift_remove("k");
        if labels.is_empty() {
            v["metadata"].as_object_mut().unwrap().shift_remove("labels");
        }
        // Typed decoding (the API server's) reads a bare `metadata:` as
        // empty; kubectl's unstructured output keeps the null.
        input::empty_template_maps(&mut v);
        objects.push(v);
    }
    Ok(objects)
}

fn ours(path: &Path, recursive: bool) -> Result<Vec<Value>, String> {
    let sources = input::read_path(path, recursive).map_err(|e| e.to_string())?;
    read_sources(&sources).map_err(|e| e.to_string())
}

fn every_fixture() -> Vec<(PathBuf, bool)> {
    let mut out = vec![(fixture("dir"), false), (fixture("dir"), true)];
    for dir in ["manifests-read", "manifests"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(testdata().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (f, false)));
    }
    assert!(out.len() >= 30, "fixtures lost: {out:?}");
    out
}

#[test]
fn every_fixture_is_read_as_kubectl_reads_it_or_refused_where_kubectl_refuses_it() {
    for (path, recursive) in every_fixture() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let on_purpose = KUBECTL_READS_BUT_WE_REFUSE.iter().find(|(n, _)| *n == name);
        match (ours(&path, recursive), kubectl_reads(&path, recursive)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{name} (-R {recursive}): we read otherwise than kubectl"),
            (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) => assert!(on_purpose.is_some(), "{name}: kubectl reads it, we refuse: {e}"),
            (Ok(_), Err(e)) => panic!("{name}: kubectl refuses it ({e}), we read it"),
        }
    }
}

#[test]
fn accepted_fixtures_match_their_golden_output_and_uninject_gives_the_bytes_back() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, recursive) in ACCEPTED {
        let out = run(&args_for(name, *recursive, "inject"));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let file = match (*name, *recursive) {
            ("dir", false) => "dir.yaml".to_owned(),
            ("dir", true) => "dir-R.yaml".to_owned(),
            _ => name.to_string(),
        };
        let golden = testdata().join("golden/inject-read").join(file);
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &out.stdout).unwrap();
        }
        let want = std::fs::read(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 to create)", golden.display()));
        assert!(
            out.stdout == want,
            "{name}: differs from {} (UPDATE_GOLDEN=1, then review)",
            golden.display()
        );
        // kubectl reads what inject wrote, with the sidecar in every workload.
        let tmp = tempfile::tempdir().unwrap();
        let written = tmp.path().join(if name.ends_with(".json") { "out.json" } else { "out.yaml" });
        std::fs::write(&written, &out.stdout).unwrap();
        let objects = kubectl_reads(&written, false).unwrap();
        for o in objects.iter().filter(|o| o["kind"] == "Deployment") {
            assert_eq!(
                o.pointer("/spec/template/spec/initContainers/0/name").unwrap(),
                "bpc-agent",
                "{name}"
            );
        }
        if *name != "dir" {
            let back = run(&["uninject".into(), "-f".into(), written.into()]);
            assert!(back.status.success(), "{name}: {}", String::from_utf8_lossy(&back.stderr));
            assert!(back.stdout == std::fs::read(fixture(name)).unwrap(), "{name}: uninject(inject(x)) != x");
        }
    }
}

#[test]
fn refusals_exit_2_print_nothing_and_name_the_file_document_line_and_what_to_do() {
    for (name, place, needle) in REFUSED {
        for verb in ["inject", "uninject"] {
            let out = run(&args_for(name, false, verb));
            let stderr = String::from_utf8_lossy(&out.stderr);
            if verb == "uninject" && name.starts_with("host-network") {
                assert!(out.status.success(), "{name}: uninject has nothing to refuse: {stderr}");
                continue;
            }
            assert_eq!(out.status.code(), Some(2), "{verb} {name}: {stderr}");
            assert!(out.stdout.is_empty(), "{verb} {name}: printed something");
            let at = format!("{}: {place}", fixture(name).display());
            assert!(stderr.contains(&at), "{verb} {name}: no {at:?} in {stderr}");
            assert!(stderr.contains(needle), "{verb} {name}: no {needle:?} in {stderr}");
        }
    }
}

#[test]
fn objects_that_could_run_pods_and_are_left_unchanged_are_named_on_stderr() {
    let out = run(&args_for("pod-holders.yaml", false, "inject"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let file = fixture("pod-holders.yaml").display().to_string();
    assert!(
        stderr.contains(&format!(
            "note: {file}: document 1 (line 1): ReplicaSet web-5d4 could run pods and is left unchanged: "
        )),
        "{stderr}"
    );
    // A Job is edited now (a native sidecar lets it complete), not left unchanged.
    assert!(stderr.contains("job.batch/migrate in namespace default: sidecar added"), "{stderr}");
    assert!(!stderr.contains("Job migrate could run pods"), "{stderr}");
    assert!(stderr.contains("deployment.apps/web in namespace shop: sidecar added"), "{stderr}");
}

#[test]
fn a_directory_is_read_with_kubectls_extensions_and_r_adds_its_subdirectories() {
    let names = |recursive| -> Vec<String> {
        ours(&fixture("dir"), recursive)
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(false), ["web", "api"]);
    assert_eq!(names(true), ["web", "api", "db"]);
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "# not a manifest\n").unwrap();
    let e = input::read_path(empty.path(), false).unwrap_err().to_string();
    assert!(e.contains("holds no file ending in .json, .yaml or .yml (pass -R"), "{e}");
}

#[test]
fn nesting_deeper_than_the_bound_is_refused_before_the_parser_at_every_size() {
    // The YAML parser's cost is the nesting depth times the length; the
    // bound is checked in one pass first, so none of these reaches it (its
    // own error would say "recursion limit exceeded").
    for n in [MAX_DEPTH + 1, 1_000, 10_000, 100_000] {
        for (open, close) in [("[", "]"), ("{a: ", "}"), ("{\"a\":", "}")] {
            let text = format!("a: {}1{}\n", open.repeat(n), close.repeat(n));
            let e = read_sources(&[Source::from_text(&text)]).unwrap_err().to_string();
            assert!(e.contains(&format!("nests [ and {{ {n} levels deep")), "{n} {open}: {e}");
        }
    }
    let fine = format!("a: {}1{}\n", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
    assert!(input::read_yaml(&fine).is_ok());
}

// ---- Byte order marks, CRLF, YAML 1.1 booleans ------------------------------

fn spelling() -> impl Strategy<Value = (String, bool)> {
    let words = [
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE", "n", "N", "no", "No", "NO",
        "off", "Off", "OFF", "false", "False", "FALSE",
    ];
    (proptest::sample::select(words.to_vec()), 0u8..3).prop_map(|(w, quote)| {
        let text = match quote {
            0 => w.to_owned(),
            1 => format!("'{w}'"),
            _ => format!("\"{w}\""),
        };
        (text, yaml11::boolean(w) == Some(true))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bom_crlf_and_yaml_1_1_booleans_are_read_as_kubectl_reads_them_and_kept_byte_for_byte(
        (host, is_true) in spelling(),
        (links, _) in spelling(),
        bom in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let base = std::fs::read_to_string(testdata().join("manifests/single-container.yaml")).unwrap();
        let mut text = base.replacen("    spec:\n", &format!("    spec:\n      enableServiceLinks: {links}\n      hostNetwork: {host}\n"), 1);
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        if bom {
            text.insert(0, '\u{feff}');
        }
        let edit = kubectl_bpc::manifest::Edit::Inject {
            options: kubectl_bpc::sidecar::SidecarOptions::with_collectors(&["198.18.0.2"]),
            capabilities: kubectl_bpc::capabilities::CapabilitiesArg::Auto,
            allow_host_network: false,
            form: kubectl_bpc::sidecar::SidecarForm::Native,
        };
        let out = kubectl_bpc::manifest::edit_manifests(&text, &edit, None);
        if is_true {
            // A true spelling, plain or quoted: never a sidecar on the node's network.
            let e = out.unwrap_err();
            prop_assert!(e.to_string().contains("hostNetwork"), "{}", e);
        } else {
            let out = out.unwrap();
            prop_assert!(out.fallbacks.is_empty(), "{:?}", out.fallbacks);
            prop_assert_eq!(out.yaml.starts_with('\u{feff}'), bom);
            if crlf {
                prop_assert!(!out.yaml.replace("\r\n", "").contains('\n'), "a bare LF");
            }
            let back = kubectl_bpc::manifest::edit_manifests(&out.yaml, &kubectl_bpc::manifest::Edit::Uninject, None).unwrap();
            prop_assert_eq!(&back.yaml, &text, "uninject(inject(x)) != x");
        }
    }
}
