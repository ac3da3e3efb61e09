//! `verify` orchestration against the kube-rs mock API server, with the real
//! embedded receiver on 127.0.0.1 fed by GRE packets sent from a raw socket
//! in the test (needs root / CAP_NET_RAW, as CI runs).
//!
//! Each workload name carries the test name and pid, so its workload key is
//! unique and packets of parallel tests on loopback never count here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bpc_wire::{Direction, GreProfile, WorkloadKey};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use kubectl_bpc::sink::GreTally;
use kubectl_bpc::verify::{self, VerifyArgs, VerifyFormat};
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const USER_COLLECTOR: &str = "198.18.0.2";
const ANNOTATION: &str = r#"{"containers":["bpc-agent"],"options":{"collectors":["198.18.0.2"]}}"#;

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

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

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, body: String) {
    send.send_response(Response::builder().body(Body::from(body.into_bytes())).unwrap());
}

/// Plays the API server: GET of the deployment, the sink patch, pod lists
/// (old pod first, then the rolled pod carrying the sink), the restore patch.
/// Returns the patch bodies and their content types.
async fn serve(mut handle: Handle, name: String) -> Vec<(String, Value)> {
    let mut patches = Vec::new();
    let mut lists = 0;
    while let Some((req, send)) = handle.next_request().await {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let ctype =
            req.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = req.into_body().collect_bytes().await.unwrap();
        let deploy_path = format!("/apis/apps/v1/namespaces/shop/deployments/{name}");
        match (method.as_str(), path.as_str()) {
            ("GET", p) if p == deploy_path => respond(send, deployment(&name, USER_COLLECTOR).to_string()),
            ("PATCH", p) if p == deploy_path => {
                patches.push((ctype, serde_json::from_slice(&body).unwrap()));
                respond(send, deployment(&name, USER_COLLECTOR).to_string());
                if patches.len() == 2 {
                    return patches;
                }
            }
            ("GET", "/api/v1/namespaces/shop/pods") => {
                lists += 1;
                // The first look sees the pod from before the patch: not passing yet.
                let collectors = if lists == 1 {
                    USER_COLLECTOR.to_owned()
                } else {
                    format!("{USER_COLLECTOR},127.0.0.1")
                };
                let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod(&name, &collectors)]});
                respond(send, list.to_string());
            }
            other => panic!("unexpected request {other:?}"),
        }
    }
    patches
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
    let (client, handle) = mock();
    let server = tokio::spawn(serve(handle, name.clone()));
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        send_gre(key.0, 30);
    });
    let report = tokio::time::timeout(
        Duration::from_secs(15),
        verify::verify(
            &client,
            "shop",
            &args(&name, Duration::from_secs(10)),
            &tally,
            std::future::pending(),
        ),
    )
    .await
    .expect("verify hung")
    .unwrap();
    sender.join().unwrap();
    let patches = tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert_add_then_restore(&patches);
    assert!(report.pass, "{report:?}");
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
    let (client, handle) = mock();
    let server = tokio::spawn(serve(handle, name.clone()));
    // Packets with another workload's key must not count for this one.
    send_gre(WorkloadKey::from_workload("shop", "deployment", "someone-else").0, 30);
    let report = tokio::time::timeout(
        Duration::from_secs(15),
        verify::verify(&client, "shop", &args(&name, Duration::from_secs(2)), &tally, std::future::pending()),
    )
    .await
    .expect("verify hung")
    .unwrap();
    let patches = tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert_add_then_restore(&patches);
    assert!(!report.pass);
    assert_eq!(report.exit_code(), std::process::ExitCode::from(1));
    assert_eq!(report.pods[0].packets, 0);
    assert!(report.reason.as_ref().unwrap().contains("delivered 0 of 20 packets"), "{:?}", report.reason);
}

#[tokio::test]
async fn verify_restores_the_collectors_when_interrupted() {
    let name = format!("web-intr-{}", std::process::id());
    let tally = GreTally::start("127.0.0.1".parse().unwrap()).expect("raw GRE socket (run as root)");
    let (client, handle) = mock();
    let server = tokio::spawn(serve(handle, name.clone()));
    let fired = Arc::new(Mutex::new(false));
    let f = fired.clone();
    let interrupt = async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        *f.lock().unwrap() = true;
    };
    let result = tokio::time::timeout(
        Duration::from_secs(15),
        verify::verify(&client, "shop", &args(&name, Duration::from_secs(60)), &tally, interrupt),
    )
    .await
    .expect("verify hung");
    assert!(*fired.lock().unwrap());
    assert!(matches!(result, Err(kubectl_bpc::Error::Usage(ref m)) if m == "interrupted"), "{result:?}");
    let patches = tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert_add_then_restore(&patches);
}
