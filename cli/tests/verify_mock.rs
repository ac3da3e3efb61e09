//! `verify` orchestration against the shared mock API server (tests/mock), with the real
//! embedded receiver on 127.0.0.1 fed by GRE packets sent from a raw socket
//! in the test (needs root / CAP_NET_RAW, as CI runs).
//!
//! Each workload name carries the test name and pid, so its workload key is
//! unique and packets of parallel tests on loopback never count here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bpc_wire::{Direction, GreProfile, WorkloadKey};
use kubectl_bpc::sink::GreTally;
use kubectl_bpc::verify::{self, VerifyArgs, VerifyFormat};
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};

mod mock;
use mock::*;

const USER_COLLECTOR: &str = "198.18.0.2";
const ANNOTATION: &str = r#"{"containers":["bpc-agent"],"options":{"collectors":["198.18.0.2"]}}"#;

fn deployment(name: &str, collectors: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": {"bpc.kubectl.io/status": ANNOTATION}},
                "spec": {"containers": [{"name": "app"}, {"name": "bpc-agent",
                    "env": [{"name": "BPC_COLLECTOR", "value": collectors}]}]}}}})
}

fn pod(deploy: &str, collectors: &str) -> Value {
    json!({"metadata": {"name": format!("{deploy}-abc12"), "namespace": "shop", "labels": {"app": deploy}},
        "spec": {"containers": [{"name": "app"}, {"name": "bpc-agent",
            "env": [{"name": "BPC_COLLECTOR", "value": collectors}]}]},
        "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn pod_list(deploy: &str, collectors: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod(deploy, collectors)]})
}

/// The API server's part: GET of the deployment, the sink patch, pod lists
/// (old pod first, then the rolled pod carrying the sink, polled until the
/// wait ends), the restore patch.
fn script(name: &str) -> Vec<Exchange> {
    let deploy = format!("/apis/apps/v1/namespaces/shop/deployments/{name}");
    const PODS: &str = "/api/v1/namespaces/shop/pods";
    vec![
        ex("GET", deploy.clone(), &[], deployment(name, USER_COLLECTOR)),
        ex("PATCH", deploy.clone(), &[], deployment(name, USER_COLLECTOR)),
        // The first look sees the pod from before the patch: not passing yet.
        ex("GET", PODS, &[], pod_list(name, USER_COLLECTOR)),
        ex("GET", PODS, &[], pod_list(name, &format!("{USER_COLLECTOR},127.0.0.1"))).repeatable(),
        ex("PATCH", deploy, &[], deployment(name, USER_COLLECTOR)),
    ]
}

/// The patch bodies the server saw and their content types.
fn patches(seen: &[Seen]) -> Vec<(String, Value)> {
    seen.iter().filter(|s| s.method == "PATCH").map(|s| (s.content_type.clone(), s.body.clone())).collect()
}

fn args(name: &str, timeout: Duration) -> VerifyArgs {
    VerifyArgs {
        workload: format!("deploy/{name}"),
        sink: "127.0.0.1".parse().unwrap(),
        advertise: None,
        timeout,
        min_packets: 20,
        output: VerifyFormat::Table,
        ephemeral: false,
        image: None,
    }
}

/// Sends `count` Standard-profile GRE packets with `key` to 127.0.0.1.
fn send_gre(key: u32, count: u32) {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).unwrap();
    let dst = "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into();
    let mut pkt = [0u8; 12 + 64];
    for seq in 0..count {
        let n = GreProfile::Standard.write_header(&mut pkt, key, seq, Direction::Outbound).unwrap();
        socket.send_to(&pkt[..n + 64], &dst).unwrap();
    }
}

fn assert_add_then_restore(patches: &[(String, Value)]) {
    assert_eq!(patches.len(), 2, "sink patch then restore patch");
    for (ctype, _) in patches {
        assert_eq!(ctype, "application/strategic-merge-patch+json");
    }
    let container = |p: &Value| p["spec"]["template"]["spec"]["containers"][0].clone();
    let annotations = |p: &Value| p["spec"]["template"]["metadata"]["annotations"].clone();
    let add = &patches[0].1;
    assert_eq!(
        container(add),
        json!({"name": "bpc-agent", "env": [{"name": "BPC_COLLECTOR", "value": "198.18.0.2,127.0.0.1"}]})
    );
    let status: Value =
        serde_json::from_str(annotations(add)["bpc.kubectl.io/status"].as_str().unwrap()).unwrap();
    assert_eq!(status["options"]["collectors"], json!(["198.18.0.2", "127.0.0.1"]));
    assert_eq!(annotations(add)["bpc.kubectl.io/verify-sink"], "127.0.0.1");
    let restore = &patches[1].1;
    assert_eq!(
        container(restore),
        json!({"name": "bpc-agent", "env": [{"name": "BPC_COLLECTOR", "value": "198.18.0.2"}]})
    );
    assert_eq!(annotations(restore)["bpc.kubectl.io/status"], ANNOTATION, "annotation restored verbatim");
    assert_eq!(annotations(restore)["bpc.kubectl.io/verify-sink"], Value::Null, "verify annotation removed");
}

#[tokio::test]
async fn verify_passes_when_the_pod_stream_arrives_and_restores_the_collectors() {
    let name = format!("web-pass-{}", std::process::id());
    let key = WorkloadKey::from_workload("shop", "deployment", &name);
    let tally = GreTally::start("127.0.0.1".parse().unwrap()).expect("raw GRE socket (run as root)");
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        send_gre(key.0, 30);
    });
    let a = args(&name, Duration::from_secs(10));
    let (report, seen) = with_server(script(&name), |k| async move {
        verify::verify(&k.client, "shop", &a, &tally, std::future::pending()).await
    })
    .await;
    let report = report.unwrap();
    sender.join().unwrap();
    assert_add_then_restore(&patches(&seen));
    assert!(report.outcome.passed(), "{report:?}");
    assert_eq!(report.exit_code(), std::process::ExitCode::SUCCESS);
    assert_eq!(report.pods.len(), 1);
    assert_eq!(report.pods[0].key, key.to_string());
    assert!(report.pods[0].packets >= 20 && report.pods[0].lost == 0, "{report:?}");
    let mut out = Vec::new();
    verify::render(&report, VerifyFormat::Table, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!("PASS   {name}-abc12  ip 127.0.0.1")), "{text}");
}

#[tokio::test]
async fn verify_restores_the_collectors_when_the_wait_times_out() {
    let name = format!("web-timeout-{}", std::process::id());
    let tally = GreTally::start("127.0.0.1".parse().unwrap()).expect("raw GRE socket (run as root)");
    // Packets with another workload's key must not count for this one.
    send_gre(WorkloadKey::from_workload("shop", "deployment", "someone-else").0, 30);
    let a = args(&name, Duration::from_secs(2));
    let (report, seen) = with_server(script(&name), |k| async move {
        verify::verify(&k.client, "shop", &a, &tally, std::future::pending()).await
    })
    .await;
    let report = report.unwrap();
    assert_add_then_restore(&patches(&seen));
    assert!(!report.outcome.passed());
    assert_eq!(report.exit_code(), std::process::ExitCode::from(1));
    assert_eq!(report.pods[0].packets, 0);
    let reason = report.outcome.reason().unwrap();
    assert!(
        reason.starts_with("timed out after 2s: ") && reason.contains("delivered 0 of 20 packets"),
        "{reason}"
    );
}

#[tokio::test]
async fn verify_restores_the_collectors_when_interrupted() {
    let name = format!("web-intr-{}", std::process::id());
    let tally = GreTally::start("127.0.0.1".parse().unwrap()).expect("raw GRE socket (run as root)");
    let fired = Arc::new(Mutex::new(false));
    let f = fired.clone();
    let interrupt = async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        *f.lock().unwrap() = true;
    };
    let a = args(&name, Duration::from_secs(60));
    let (result, seen) = with_server(script(&name), |k| async move {
        verify::verify(&k.client, "shop", &a, &tally, interrupt).await
    })
    .await;
    assert!(*fired.lock().unwrap());
    assert!(
        matches!(result, Err(kubectl_bpc::Error::Interrupted(ref m)) if m == "interrupted"),
        "{result:?}"
    );
    assert_add_then_restore(&patches(&seen));
}
