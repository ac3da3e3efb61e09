//! Peer check: the strategic merge patches the live path sends, applied by
//! kubectl itself (`kubectl patch --local --type=strategic`), give exactly
//! the objects the offline path (inject/uninject) produces. kubectl's SMP
//! code is the API server's, so this proves attach == inject and
//! detach == uninject without a cluster.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubectl_bpc::capabilities::CapabilitiesArg;
use kubectl_bpc::manifest::{Edit, edit_manifests};
use kubectl_bpc::sidecar::{self, SidecarForm, SidecarOptions};
use kubectl_bpc::workload::WorkloadKind;
use serde_json::Value;

mod plugin;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every workload object in testdata/manifests (List items included), as JSON.
fn workloads() -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<_> =
        std::fs::read_dir(testdata().join("manifests")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in yaml_serde::Deserializer::from_str(&text) {
            let v =
                serde_json::to_value(<yaml_serde::Value as serde::Deserialize>::deserialize(doc).unwrap())
                    .unwrap();
            let items = if v["kind"] == "List" { v["items"].as_array().unwrap().clone() } else { vec![v] };
            out.extend(items.into_iter().filter(|i| i["apiVersion"] == "apps/v1"));
        }
    }
    assert!(out.len() >= 9, "expected every manifest's workloads, got {}", out.len());
    out
}

fn edit(object: &Value, edit: &Edit) -> Value {
    let yaml = yaml_serde::to_string(object).unwrap();
    yaml_serde::from_str(&edit_manifests(&yaml, edit, None).unwrap().yaml).unwrap()
}

fn inject(options: SidecarOptions, caps: CapabilitiesArg) -> Edit {
    inject_as(options, caps, SidecarForm::Native)
}

fn inject_as(options: SidecarOptions, caps: CapabilitiesArg, form: SidecarForm) -> Edit {
    Edit::Inject { options, capabilities: caps, allow_host_network: false, form }
}

/// `object` with the default sidecar in `form`, as inject writes it.
fn with_sidecar(object: &Value, form: SidecarForm) -> Value {
    edit(object, &inject_as(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilitiesArg::Auto, form))
}

/// Every apps/v1 kind keeps its pod template at the same place.
const DEPLOY: WorkloadKind = WorkloadKind::Deployment;

const FORMS: [SidecarForm; 2] = [SidecarForm::Native, SidecarForm::Container];

fn kubectl_patch(object: &Value, patch: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let out = Command::new("kubectl")
        .args(["patch", "--local", "-f"])
        .arg(&file)
        .args(["--type=strategic", "-o", "json", "-p", &patch.to_string()])
        .output()
        .expect(
            "kubectl on PATH (scripts/test.sh puts the cluster's pinned one first: scripts/cluster.sh bin)",
        );
    assert!(out.status.success(), "kubectl patch failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The API server drops empty maps and lists on typed fields; kubectl --local keeps them.
fn without_empty_annotations(mut v: Value) -> Value {
    if let Some(m) = v.pointer_mut("/spec/template/metadata").and_then(Value::as_object_mut)
        && m.get("annotations").is_some_and(|a| a.as_object().is_some_and(|a| a.is_empty()))
    {
        m.shift_remove("annotations");
    }
    if let Some(s) = v.pointer_mut("/spec/template/spec").and_then(Value::as_object_mut)
        && s.get("initContainers").is_some_and(|l| l.as_array().is_some_and(|l| l.is_empty()))
    {
        s.shift_remove("initContainers");
    }
    v
}

fn names(object: &Value, list: &str) -> Vec<Value> {
    object["spec"]["template"]["spec"][list].as_array().unwrap().iter().map(|c| c["name"].clone()).collect()
}

#[test]
fn attach_patch_applied_by_kubectl_equals_inject() {
    for form in FORMS {
        for object in workloads() {
            let injected = with_sidecar(&object, form);
            let patch = sidecar::attach_patch(
                DEPLOY,
                &object["spec"]["template"],
                &injected["spec"]["template"],
                None,
            );
            let patched = kubectl_patch(&object, &patch);
            assert_eq!(
                patched, injected,
                "{}: kubectl's result differs from inject",
                object["metadata"]["name"]
            );
            match form {
                SidecarForm::Native => assert_eq!(
                    names(&patched, "initContainers")[0],
                    "bpc-agent",
                    "a native sidecar goes first, before the other init containers"
                ),
                SidecarForm::Container => assert_eq!(
                    names(&patched, "containers").last().unwrap(),
                    "bpc-agent",
                    "the sidecar goes last, after the app's containers"
                ),
            }
        }
    }
}

#[test]
fn a_form_change_applied_by_kubectl_moves_the_agent_as_reinject_does() {
    for (from, to) in
        [(SidecarForm::Native, SidecarForm::Container), (SidecarForm::Container, SidecarForm::Native)]
    {
        for object in workloads() {
            let before = with_sidecar(&object, from);
            let after = with_sidecar(&before, to);
            let patch =
                sidecar::attach_patch(DEPLOY, &before["spec"]["template"], &after["spec"]["template"], None);
            let patched = without_empty_annotations(kubectl_patch(&before, &patch));
            assert_eq!(patched, after, "{}: {from:?} -> {to:?}", object["metadata"]["name"]);
        }
    }
}

#[test]
fn update_patch_applied_by_kubectl_equals_reinject_with_new_options() {
    let mut new = SidecarOptions::with_collectors(&["198.18.0.3", "probe.obs.svc"]);
    new.filter = Some("tcp port 443".into());
    new.max_pps = Some(5000);
    for object in workloads() {
        let mut first = SidecarOptions::with_collectors(&["198.18.0.2"]);
        first.snaplen = Some(256);
        first.interface = Some("eth0".into());
        let before = edit(&object, &inject(first, CapabilitiesArg::Default));
        let after = edit(&before, &inject(new.clone(), CapabilitiesArg::Add));
        let patch =
            sidecar::attach_patch(DEPLOY, &before["spec"]["template"], &after["spec"]["template"], None);
        let patched = kubectl_patch(&before, &patch);
        assert_eq!(
            patched, after,
            "{}: options dropped since the first attach must not linger",
            object["metadata"]["name"]
        );
    }
}

#[test]
fn detach_patch_applied_by_kubectl_equals_uninject() {
    for form in FORMS {
        for object in workloads() {
            let injected = with_sidecar(&object, form);
            let record = sidecar::attached_record(&injected["spec"]["template"]).unwrap().unwrap();
            let patched = kubectl_patch(&injected, &sidecar::detach_patch(DEPLOY, &record, None));
            assert_eq!(without_empty_annotations(patched), object, "{form:?} {}", object["metadata"]["name"]);
        }
    }
}

// ---- inject --kustomize, rendered by `kubectl kustomize` ------------------

/// The objects of a YAML stream, Lists flattened, sorted by kind, namespace
/// and name (Kustomize orders its output its own way).
fn objects(yaml: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(yaml) {
        let v = serde_json::to_value(<yaml_serde::Value as serde::Deserialize>::deserialize(doc).unwrap())
            .unwrap();
        if v.is_null() {
            continue;
        }
        if v["kind"] == "List" {
            out.extend(v["items"].as_array().unwrap().iter().cloned());
        } else {
            out.push(v);
        }
    }
    let key = |v: &Value| {
        format!(
            "{}/{}/{}",
            v["kind"],
            v["metadata"]["namespace"].as_str().unwrap_or(""),
            v["metadata"]["name"]
        )
    };
    out.sort_by_key(key);
    out
}

fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl on PATH (scripts/cluster.sh bin)");
    assert!(out.status.success(), "kubectl kustomize failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kustomize_output_rendered_by_kubectl_equals_inject() {
    let mut files: Vec<_> =
        std::fs::read_dir(testdata().join("manifests")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut options = SidecarOptions::with_collectors(&["198.18.0.2", "probe.obs.svc"]);
    options.filter = Some("tcp port 443".into());
    for path in files {
        let input = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap();
        let injected =
            edit_manifests(&input, &inject(options.clone(), CapabilitiesArg::Add), None).unwrap().yaml;
        for (case, inside) in [("inside", true), ("outside", false)] {
            // The manifest inside DIR is referenced; one outside is copied in.
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("overlay");
            std::fs::create_dir(&dir).unwrap();
            let file = if inside { dir.join(name) } else { tmp.path().join(name) };
            std::fs::write(&file, &input).unwrap();
            let out = plugin::run(
                &[
                    "inject".as_ref(),
                    "-f".as_ref(),
                    file.as_os_str(),
                    "--collector".as_ref(),
                    "198.18.0.2,probe.obs.svc".as_ref(),
                    "--filter".as_ref(),
                    "tcp port 443".as_ref(),
                    "--capabilities".as_ref(),
                    "add".as_ref(),
                    "--kustomize".as_ref(),
                    dir.as_os_str(),
                ],
                "",
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{name:?} {case}: {stderr}");
            assert!(out.stdout.is_empty(), "--kustomize prints no manifests");
            assert_eq!(std::fs::read_to_string(&file).unwrap(), input, "{name:?}: the resource was edited");
            let k = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
            let resource = name.to_string_lossy();
            assert!(k.contains(&format!("resources:\n- {resource}\n")), "{k}");
            assert_eq!(stderr.contains("copied there unchanged"), !inside, "{stderr}");
            if !inside {
                assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), input);
            }
            assert_eq!(objects(&kustomize(&dir)), objects(&injected), "{name:?} {case}");
        }
    }
}

#[test]
fn kustomize_refuses_a_kustomization_it_did_not_write_and_rewrites_its_own() {
    let input = std::fs::read_to_string(testdata().join("manifests/multi-doc.yaml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let args = |dir: &Path| -> Vec<std::ffi::OsString> {
        ["inject", "-f", "-", "--collector", "198.18.0.2", "--kustomize"]
            .iter()
            .map(Into::into)
            .chain([dir.as_os_str().to_owned()])
            .collect()
    };
    let dir = tmp.path().join("k");
    let run = |dir: &Path| {
        let a = args(dir);
        plugin::run(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>(), &input)
    };
    // Standard input is written into DIR, then a second run replaces what the first wrote.
    for _ in 0..2 {
        let out = run(&dir);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read_to_string(dir.join("manifests.yaml")).unwrap(), input);
    }
    let injected = edit_manifests(
        &input,
        &inject(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilitiesArg::Auto),
        None,
    )
    .unwrap()
    .yaml;
    assert_eq!(objects(&kustomize(&dir)), objects(&injected));

    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("kustomization.yaml"), "resources: []\n").unwrap();
    let out = run(&theirs);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not written by kubectl bpc"));
    assert_eq!(std::fs::read_to_string(theirs.join("kustomization.yaml")).unwrap(), "resources: []\n");
}
