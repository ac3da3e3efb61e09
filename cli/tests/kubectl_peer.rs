//! Peer check: the strategic merge patches the live path sends, applied by
//! kubectl itself (`kubectl patch --local --type=strategic`), give exactly
//! the objects the offline path (inject/uninject) produces. kubectl's SMP
//! code is the API server's, so this proves attach == inject and
//! detach == uninject without a cluster.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubectl_bpc::capabilities::CapabilitiesArg;
use kubectl_bpc::manifest::{Edit, edit_manifests};
use kubectl_bpc::sidecar::{self, SidecarOptions};
use serde_json::Value;

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
    Edit::Inject { options, capabilities: caps, allow_host_network: false }
}

fn kubectl_patch(object: &Value, patch: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let out = Command::new("kubectl")
        .args(["patch", "--local", "-f"])
        .arg(&file)
        .args(["--type=strategic", "-o", "json", "-p", &patch.to_string()])
        .output()
        .expect("kubectl is installed (scripts/install-deps.sh)");
    assert!(out.status.success(), "kubectl patch failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The API server drops empty maps on typed fields; kubectl --local keeps them.
fn without_empty_annotations(mut v: Value) -> Value {
    if let Some(m) = v.pointer_mut("/spec/template/metadata").and_then(Value::as_object_mut)
        && m.get("annotations").is_some_and(|a| a.as_object().is_some_and(|a| a.is_empty()))
    {
        m.shift_remove("annotations");
    }
    v
}

#[test]
fn attach_patch_applied_by_kubectl_equals_inject() {
    for object in workloads() {
        let injected =
            edit(&object, &inject(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilitiesArg::Auto));
        let patch = sidecar::attach_patch(&object["spec"]["template"], &injected["spec"]["template"], None);
        let patched = kubectl_patch(&object, &patch);
        assert_eq!(patched, injected, "{}: kubectl's result differs from inject", object["metadata"]["name"]);
        let names: Vec<_> = patched["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names.last().unwrap(), "bpc-agent", "the sidecar goes last, after the app's containers");
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
        let patch = sidecar::attach_patch(&before["spec"]["template"], &after["spec"]["template"], None);
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
    for object in workloads() {
        let injected =
            edit(&object, &inject(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilitiesArg::Auto));
        let record = sidecar::attached_record(&injected["spec"]["template"]).unwrap().unwrap();
        let patched = kubectl_patch(&injected, &sidecar::detach_patch(&record, None));
        assert_eq!(without_empty_annotations(patched), object, "{}", object["metadata"]["name"]);
    }
}
