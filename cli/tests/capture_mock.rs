//! `kubectl bpc capture`'s pre-flight and ephemeral container patch against
//! the shared mock API server (tests/mock): the exact patch, a server that
//! refuses ephemeral containers, and a pod that is not Running.

use clap::Parser;
use kubectl_bpc::capture::{self, Capture, CaptureArgs};
use serde_json::{Value, json};

mod mock;
use mock::*;

const POD: &str = "/api/v1/namespaces/shop/pods/web-1";
const EPHEMERAL: &str = "/api/v1/namespaces/shop/pods/web-1/ephemeralcontainers";
const NAMESPACE: &str = "/api/v1/namespaces/shop";
const NODES: &str = "/api/v1/nodes";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: CaptureArgs,
}

fn args(extra: &[&str]) -> Capture {
    let mut a = vec!["capture", "pod/web-1", "--id", "t1", "--image", "bpc-agent:test"];
    a.extend_from_slice(extra);
    Cli::try_parse_from(a).unwrap().args.validate().unwrap()
}

fn pod(phase: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-1",
            "labels": {"app": "web", "pod-template-hash": "abc12"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc12",
                "uid": "rs", "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": phase}})
}

fn namespace(enforce: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"pod-security.kubernetes.io/enforce": enforce}}})
}

fn nodes() -> Value {
    json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {},
        "items": [{"metadata": {"name": "n1"}, "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://2.0.0",
            "architecture": "amd64", "bootID": "", "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "",
            "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}}]})
}

/// The patch, exactly: the sidecar's container renamed, stripped of ports,
/// probes and resources, stdin-controlled, with the workload's key.
fn expected_patch() -> Value {
    let drop: Vec<&str> = kubectl_bpc::sidecar::RUNTIME_DEFAULT_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != "NET_RAW")
        .collect();
    json!({"spec": {"ephemeralContainers": [{
        "name": "bpc-capture-t1",
        "image": "bpc-agent:test",
        "env": [
            {"name": "BPC_WORKLOAD", "value": "shop/deployment/web"},
            {"name": "BPC_FILTER", "value": "tcp port 80"},
            {"name": "BPC_MAX_PPS", "value": "5000"},
            {"name": "BPC_METRICS_ADDR", "value": "127.0.0.1:0"},
            {"name": "BPC_STDIN_CONTROL", "value": "true"},
            {"name": "BPC_WRITE", "value": "-"},
            {"name": "BPC_DURATION", "value": "30000ms"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        ],
        "securityContext": {
            "runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true, "capabilities": {"drop": drop},
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "stdin": true, "stdinOnce": true, "tty": false
    }]}})
}

fn preflight_reads(enforce: &str) -> Vec<Exchange> {
    vec![
        ex("GET", POD, &[], pod("Running")),
        ex("GET", NAMESPACE, &[], namespace(enforce)),
        ex("GET", NODES, &[], nodes()),
    ]
}

#[tokio::test]
async fn the_dry_run_and_the_real_patch_carry_exactly_the_capture_container() {
    let a = args(&["-w", "-", "--filter", "tcp port 80", "--max-pps", "5000", "--duration", "30s"]);
    let mut script = preflight_reads("baseline");
    script.push(ex("PATCH", EPHEMERAL, &["dryRun=All"], pod("Running")));
    script.push(ex("PATCH", EPHEMERAL, &[], pod("Running")));
    let (out, seen) = with_server(script, |kube| async move {
        let plans = capture::plan(&kube, &a).await?;
        assert_eq!(plans.len(), 1);
        capture::add_container(&kube, &plans[0]).await?;
        Ok::<_, kubectl_bpc::Error>(plans)
    })
    .await;
    let plans = out.unwrap();
    assert_eq!((plans[0].pod.as_str(), plans[0].uid.as_str()), ("web-1", "uid-1"));
    let (dry, real) = (&seen[3], &seen[4]);
    for s in [dry, real] {
        assert_eq!(s.content_type, "application/strategic-merge-patch+json");
        assert_eq!(s.body, expected_patch(), "{}", serde_json::to_string_pretty(&s.body).unwrap());
        assert!(s.query.contains("fieldManager=kubectl-bpc"), "{}", s.query);
    }
    assert!(!real.query.contains("dryRun"), "the real patch is no dry run: {}", real.query);
}

#[tokio::test]
async fn a_server_that_refuses_ephemeral_containers_stops_the_capture_at_the_dry_run() {
    for (code, reason, message, needle) in [
        (
            403,
            "Forbidden",
            "pods \"web-1\" is forbidden: User \"dev\" cannot patch resource \"pods/ephemeralcontainers\"",
            "RBAC verb 'patch' on pods/ephemeralcontainers",
        ),
        (
            422,
            "Invalid",
            "Pod \"web-1\" is invalid: spec.ephemeralContainers: Forbidden: disabled by policy",
            "refused the capture container (422 Invalid)",
        ),
    ] {
        let mut script = preflight_reads("baseline");
        script.push(err("PATCH", EPHEMERAL, code, reason, message));
        let a = args(&["-w", "out.pcapng"]);
        let (out, seen) = with_server(script, |kube| async move { capture::plan(&kube, &a).await }).await;
        let e = out.unwrap_err();
        assert_eq!(e.exit_code(), std::process::ExitCode::from(2), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
        assert!(seen[3].query.contains("dryRun=All"), "only the dry run was sent");
    }
}

#[tokio::test]
async fn a_pod_that_is_not_running_or_is_terminating_is_refused_before_anything_else_is_asked() {
    let mut terminating = pod("Running");
    terminating["metadata"]["deletionTimestamp"] = json!("2026-12-02T01:00:00Z");
    for (object, why) in [
        (pod("Pending"), "is Pending, not Running"),
        (terminating, "is terminating: a capture there would end"),
    ] {
        let a = args(&["--collector", "198.18.0.2"]);
        let (out, seen) =
            with_server(
                vec![ex("GET", POD, &[], object)],
                |kube| async move { capture::plan(&kube, &a).await },
            )
            .await;
        let e = out.unwrap_err();
        assert_eq!(e.exit_code(), std::process::ExitCode::from(2));
        assert!(e.to_string().contains(&format!("pod/web-1 in namespace shop {why}")), "{e}");
        assert_eq!(seen.len(), 1, "only the pod was read");
    }
}

#[tokio::test]
async fn a_restricted_namespace_is_refused_before_the_dry_run() {
    let a = args(&["-w", "-"]);
    // No patch at all, not even the dry run.
    let script = preflight_reads("restricted");
    let (out, _) = with_server(script, |kube| async move { capture::plan(&kube, &a).await }).await;
    let e = out.unwrap_err();
    assert_eq!(e.exit_code(), std::process::ExitCode::from(2));
    assert!(e.to_string().contains("restricted"), "{e}");
}
