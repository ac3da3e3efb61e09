//! `status` against the kube-rs mock API server (the ApiServerVerifier
//! pattern of controller-rs): every request is asserted in order, and each
//! scenario runs under a timeout so a missing call fails instead of hanging.

use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use kubectl_bpc::status::{self, Marks, StatusArgs, StatusFormat, Verdict};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Expects the next request to be a GET of `path_and_query` (query prefix
/// match) and answers with `code` and `body`.
async fn expect(handle: &mut Handle, path: &str, code: u16, body: String) {
    let (req, send) = handle.next_request().await.unwrap_or_else(|| panic!("no request, expected {path}"));
    assert_eq!(req.method(), http::Method::GET);
    // Path exact; when the expectation has a query, the same parameters
    // (kube-rs writes `?&a=b`, so compare the pairs, not the text).
    let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
    assert_eq!(req.uri().path(), want_path);
    if !want_query.is_empty() {
        let pairs = |q: &str| {
            let mut v: Vec<String> = q.split('&').filter(|p| !p.is_empty()).map(str::to_owned).collect();
            v.sort();
            v
        };
        assert_eq!(pairs(req.uri().query().unwrap_or("")), pairs(want_query), "query of {want_path}");
    }
    send.send_response(Response::builder().status(code).body(Body::from(body.into_bytes())).unwrap());
}

fn list(kind: &str, items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
        .to_string()
}

fn deployment(name: &str, attached: bool) -> Value {
    let mut containers = vec![json!({"name": name, "image": "nginx"})];
    let mut annotations = json!({});
    if attached {
        containers.push(json!({"name": "bpc-agent", "image": "bpc-agent:0.1.0"}));
        annotations = json!({"bpc.kubectl.io/status": "{\"containers\":[\"bpc-agent\"]}"});
    }
    json!({
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": containers}}},
        "status": {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}
    })
}

fn replica_set(deploy: &str) -> Value {
    json!({"metadata": {"name": format!("{deploy}-7d9f8"), "namespace": "shop",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy, "uid": "d",
            "controller": true}]}})
}

fn pod(deploy: &str, suffix: &str, ip: &str, agent_state: Value, last: Value, restarts: i32) -> Value {
    json!({
        "metadata": {"name": format!("{deploy}-7d9f8-{suffix}"), "namespace": "shop",
            "labels": {"app": deploy, "pod-template-hash": "7d9f8"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deploy}-7d9f8"),
                "uid": "r", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": deploy}, {"name": "bpc-agent"}]},
        "status": {"podIP": ip, "containerStatuses": [
            {"name": deploy, "image": "nginx", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {}}},
            {"name": "bpc-agent", "image": "bpc-agent", "imageID": "", "ready": agent_state.get("running").is_some(),
             "restartCount": restarts, "state": agent_state, "lastState": last}
        ]}
    })
}

fn args(sample_interval: u64) -> StatusArgs {
    StatusArgs {
        workloads: vec![],
        output: StatusFormat::Json,
        no_traffic_after: 60,
        sample_interval,
        log_lines: 10,
        captures: false,
    }
}

fn stats_fixture() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/status/agent-stats.json"))
        .unwrap()
}

async fn serve_workload_lists(handle: &mut Handle, deployments: Vec<Value>, pods: Vec<Value>) {
    expect(handle, "/apis/apps/v1/namespaces/shop/deployments", 200, list("DeploymentList", deployments))
        .await;
    expect(handle, "/apis/apps/v1/namespaces/shop/statefulsets", 200, list("StatefulSetList", vec![])).await;
    expect(handle, "/apis/apps/v1/namespaces/shop/daemonsets", 200, list("DaemonSetList", vec![])).await;
    let sets = vec![replica_set("web"), replica_set("api")];
    expect(handle, "/apis/apps/v1/namespaces/shop/replicasets", 200, list("ReplicaSetList", sets)).await;
    expect(handle, "/api/v1/namespaces/shop/pods", 200, list("PodList", pods)).await;
}

#[tokio::test]
async fn proxy_stats_path_is_exact_and_a_503_is_a_verdict_not_a_crash() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        let pods = vec![
            pod("web", "aaaaa", "198.18.1.2", running.clone(), json!({}), 0),
            pod("web", "bbbbb", "198.18.1.3", running, json!({}), 0),
        ];
        serve_workload_lists(&mut handle, vec![deployment("web", true), deployment("api", false)], pods)
            .await;
        // The two proxy calls may be in flight together: answer each by its path.
        let unavailable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "error trying to reach service: dial tcp 198.18.1.3:9469: connect: connection refused",
            "reason": "ServiceUnavailable", "code": 503});
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (req, send) = handle.next_request().await.expect("proxy call");
            let path = req.uri().path().to_owned();
            let (code, body) = match path.as_str() {
                "/api/v1/namespaces/shop/pods/web-7d9f8-aaaaa:9469/proxy/stats" => (200, stats_fixture()),
                "/api/v1/namespaces/shop/pods/web-7d9f8-bbbbb:9469/proxy/stats" => {
                    (503, unavailable.to_string())
                }
                other => panic!("unexpected proxy path {other}"),
            };
            send.send_response(Response::builder().status(code).body(Body::from(body.into_bytes())).unwrap());
            seen.push(path);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 2, "each pod's stats read once");
    });
    let report =
        tokio::time::timeout(Duration::from_secs(10), status::collect(&client, Some("shop"), &args(0)))
            .await
            .expect("status timed out: a request was not answered")
            .expect("status must not fail on a proxy error");
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();

    // Only the attached workload is reported when none is named.
    assert_eq!(report.workloads.len(), 1);
    let w = &report.workloads[0];
    assert_eq!((w.kind.as_str(), w.name.as_str()), ("Deployment", "web"));
    assert_eq!((w.rollout.desired, w.rollout.updated, w.rollout.ready), (2, 2, 2));
    let verdicts: Vec<_> = w.pods.iter().map(|p| (p.name.as_str(), p.judgement.verdict)).collect();
    assert_eq!(verdicts, [("web-7d9f8-aaaaa", Verdict::Ok), ("web-7d9f8-bbbbb", Verdict::StatsUnavailable)]);
    assert!(w.pods[1].judgement.reason.contains("503"), "{}", w.pods[1].judgement.reason);
    assert_eq!(w.pods[0].stats.as_ref().unwrap().capture.packets, 1520);
    assert_eq!(w.judgement.verdict, Verdict::StatsUnavailable);
    assert!(!report.ok);
    assert_eq!(report.exit_code(), std::process::ExitCode::from(1));

    // The JSON shape documented in docs/guide.md (Checking capture).
    let mut out = Vec::new();
    status::render(&report, StatusFormat::Json, Marks::PLAIN, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["summary"], json!({"workloads": 1, "pods": 2, "pods_ok": 1, "workloads_not_ok": 1}));
    assert_eq!(v["workloads"][0]["verdict"], "STATS-UNAVAILABLE");
    assert_eq!(v["workloads"][0]["pods"][0]["verdict"], "OK");
    assert_eq!(v["workloads"][0]["pods"][0]["hint"], Value::Null);
    assert_eq!(v["workloads"][0]["pods"][0]["agent"]["state"], "running");
    assert!(v["workloads"][0]["pods"][1]["hint"].as_str().unwrap().contains("kubectl get --raw"));
}

#[tokio::test]
async fn crashlooping_agent_gets_its_previous_log_and_net_raw_is_named() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let backoff = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let crash =
            json!({"terminated": {"exitCode": 1, "reason": "Error", "message": "collector lookup failed"}});
        let netraw = json!({"terminated": {"exitCode": 2, "reason": "Error",
            "message": "capture on eth0: operation not permitted: the container lacks CAP_NET_RAW; add NET_RAW"}});
        let pods = vec![
            pod("web", "ccccc", "198.18.1.4", backoff.clone(), crash, 5),
            pod("web", "ddddd", "198.18.1.5", backoff, netraw, 5),
        ];
        serve_workload_lists(&mut handle, vec![deployment("web", true)], pods).await;
        // No proxy call for agents that are not running; the crash loop's log is read.
        expect(
            &mut handle,
            "/api/v1/namespaces/shop/pods/web-7d9f8-ccccc/log?container=bpc-agent&previous=true&tailLines=10",
            200,
            "INFO starting\nERROR collector lookup failed: collector.monitoring.svc\n".into(),
        )
        .await;
    });
    let report =
        tokio::time::timeout(Duration::from_secs(10), status::collect(&client, Some("shop"), &args(0)))
            .await
            .expect("status timed out")
            .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    let pods = &report.workloads[0].pods;
    assert_eq!(pods[0].judgement.verdict, Verdict::Crashloop);
    assert_eq!(pods[0].logs, ["INFO starting", "ERROR collector lookup failed: collector.monitoring.svc"]);
    assert_eq!(pods[1].judgement.verdict, Verdict::MissingNetRaw);
    assert!(pods[1].logs.is_empty());
    assert_eq!(report.workloads[0].judgement.verdict, Verdict::MissingNetRaw);

    let mut out = Vec::new();
    status::render(&report, StatusFormat::Table, Marks::PLAIN, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("[FAIL] shop/deployment/web"), "{text}");
    assert!(text.contains("| ERROR collector lookup failed"), "{text}");
    assert!(
        text.contains("hint: the node's runtime did not grant NET_RAW")
            && text.contains("--capabilities add"),
        "{text}"
    );
}

#[tokio::test]
async fn drops_rising_between_two_samples_are_dropping() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let running = json!({"running": {}});
        serve_workload_lists(
            &mut handle,
            vec![deployment("web", true)],
            vec![pod("web", "eeeee", "198.18.1.6", running, json!({}), 0)],
        )
        .await;
        let path = "/api/v1/namespaces/shop/pods/web-7d9f8-eeeee:9469/proxy/stats";
        let mut later: Value = serde_json::from_str(&stats_fixture()).unwrap();
        later["capture"]["packets"] = json!(3000);
        later["capture"]["kernel_drops"] = json!(12);
        expect(&mut handle, path, 200, stats_fixture()).await;
        expect(&mut handle, path, 200, later.to_string()).await;
    });
    let report =
        tokio::time::timeout(Duration::from_secs(10), status::collect(&client, Some("shop"), &args(1)))
            .await
            .expect("status timed out")
            .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    let p = &report.workloads[0].pods[0];
    assert_eq!(p.judgement.verdict, Verdict::Dropping);
    assert!(p.judgement.reason.starts_with("12 drops in 1 s"), "{}", p.judgement.reason);
    assert_eq!(p.stats.as_ref().unwrap().capture.packets, 3000, "the latest sample is reported");
}

#[tokio::test]
async fn unknown_named_workload_is_a_usage_error_and_unattached_named_one_is_not_attached() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            expect(
                &mut handle,
                "/apis/apps/v1/namespaces/shop/deployments",
                200,
                list("DeploymentList", vec![deployment("api", false)]),
            )
            .await;
            expect(
                &mut handle,
                "/apis/apps/v1/namespaces/shop/statefulsets",
                200,
                list("StatefulSetList", vec![]),
            )
            .await;
            expect(
                &mut handle,
                "/apis/apps/v1/namespaces/shop/daemonsets",
                200,
                list("DaemonSetList", vec![]),
            )
            .await;
        }
        expect(&mut handle, "/apis/apps/v1/namespaces/shop/replicasets", 200, list("ReplicaSetList", vec![]))
            .await;
        expect(&mut handle, "/api/v1/namespaces/shop/pods", 200, list("PodList", vec![])).await;
    });
    let mut a = args(0);
    a.workloads = vec!["deploy/nope".into()];
    let err = tokio::time::timeout(Duration::from_secs(10), status::collect(&client, Some("shop"), &a))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, kubectl_bpc::Error::Usage(ref m) if m.contains("deploy/nope")), "{err}");
    a.workloads = vec!["api".into()];
    let report = tokio::time::timeout(Duration::from_secs(10), status::collect(&client, Some("shop"), &a))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    assert_eq!(report.workloads[0].judgement.verdict, Verdict::NotAttached);
    assert!(
        report.workloads[0].judgement.hint.as_ref().unwrap().contains("kubectl bpc attach deployment/api")
    );
}

#[tokio::test]
async fn all_namespaces_lists_cluster_wide_and_reads_daemon_set_rollout() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let ds = json!({"metadata": {"name": "edge", "namespace": "net"},
            "spec": {"selector": {"matchLabels": {"app": "edge"}},
                "template": {"metadata": {"annotations": {"bpc.kubectl.io/status": "{}"}},
                    "spec": {"containers": [{"name": "edge"}, {"name": "bpc-agent"}]}}},
            "status": {"desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberReady": 1,
                "currentNumberScheduled": 3, "numberMisscheduled": 0}});
        let mut p = pod("edge", "zzzzz", "198.18.5.1", json!({"running": {}}), json!({}), 0);
        p["metadata"]["namespace"] = json!("net");
        p["metadata"]["name"] = json!("edge-zzzzz");
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "edge", "uid": "x", "controller": true}]);
        expect(&mut handle, "/apis/apps/v1/deployments", 200, list("DeploymentList", vec![])).await;
        expect(&mut handle, "/apis/apps/v1/statefulsets", 200, list("StatefulSetList", vec![])).await;
        expect(&mut handle, "/apis/apps/v1/daemonsets", 200, list("DaemonSetList", vec![ds])).await;
        expect(&mut handle, "/apis/apps/v1/replicasets", 200, list("ReplicaSetList", vec![])).await;
        expect(&mut handle, "/api/v1/pods", 200, list("PodList", vec![p])).await;
        let mut idle: Value = serde_json::from_str(&stats_fixture()).unwrap();
        idle["capture"]["last_packet_age_seconds"] = json!(600.0);
        expect(&mut handle, "/api/v1/namespaces/net/pods/edge-zzzzz:9469/proxy/stats", 200, idle.to_string())
            .await;
    });
    let report = tokio::time::timeout(Duration::from_secs(10), status::collect(&client, None, &args(0)))
        .await
        .expect("status timed out")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    let w = &report.workloads[0];
    assert_eq!((w.namespace.as_str(), w.kind.as_str()), ("net", "DaemonSet"));
    assert_eq!((w.rollout.desired, w.rollout.updated, w.rollout.ready), (3, 2, 1));
    assert_eq!(w.pods[0].judgement.verdict, Verdict::NoTraffic);
    assert!(w.pods[0].judgement.hint.as_ref().unwrap().contains("kubectl bpc verify daemonset/edge -n net"));
}

#[tokio::test]
async fn a_sidecar_attached_with_metrics_private_is_not_proxied_and_reported_as_private() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        let mut private = pod("web", "eeeee", "198.18.1.6", running, json!({}), 0);
        // The pod carries its template's status annotation, options included.
        private["metadata"]["annotations"] = json!({"bpc.kubectl.io/status":
            "{\"version\":\"0.1.0\",\"workload\":\"shop/deployment/web\",\"key\":\"0x1\",\"containers\":[\"bpc-agent\"],\
             \"annotations\":[\"bpc.kubectl.io/status\"],\"capabilities\":\"default\",\"options\":{\"collectors\":[\"198.18.0.2\"],\
             \"cpu\":\"50m\",\"cpuLimit\":\"500m\",\"memory\":\"32Mi\",\"memoryLimit\":\"64Mi\",\"metricsPort\":9469,\"metricsPrivate\":true}}"});
        serve_workload_lists(&mut handle, vec![deployment("web", true)], vec![private]).await;
        // No proxy call may follow: the endpoint is on the pod's loopback.
        let next = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
        assert!(next.is_err() || next.unwrap().is_none(), "status must not read private counters");
    });
    let report =
        tokio::time::timeout(Duration::from_secs(10), status::collect(&client, Some("shop"), &args(2)))
            .await
            .expect("status timed out")
            .expect("status");
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    let p = &report.workloads[0].pods[0];
    assert_eq!(p.judgement.verdict, Verdict::Ok);
    assert!(p.judgement.reason.contains("counters are private"), "{}", p.judgement.reason);
    assert!(p.stats.is_none());
    assert!(report.ok);
}
