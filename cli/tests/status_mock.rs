//! `status` against the shared mock API server (tests/mock): every request
//! is asserted in order (the two stats reads in flight together in any
//! order), and a missing call fails on a timeout instead of hanging.

use kubectl_bpc::status::{self, Marks, StatusArgs, StatusFormat, Verdict};
use serde_json::{Value, json};

mod mock;
use mock::*;

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
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

/// `status -n shop` against `script`, `/stats` sampled `sample_interval` seconds apart.
async fn status_of_shop(script: Vec<Exchange>, sample_interval: u64) -> status::StatusReport {
    let (report, _) = with_server(script, |k| async move {
        status::collect(&k.client, Some("shop"), &args(sample_interval)).await
    })
    .await;
    report.expect("status")
}

fn stats_fixture() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/status/agent-stats.json"))
        .unwrap()
}

/// The lists every namespaced `status` starts with.
fn workload_lists(deployments: Vec<Value>, pods: Vec<Value>) -> Vec<Exchange> {
    let sets = vec![replica_set("web"), replica_set("api")];
    vec![
        ex("GET", "/apis/apps/v1/namespaces/shop/deployments", &[], list("DeploymentList", deployments)),
        ex("GET", "/apis/apps/v1/namespaces/shop/statefulsets", &[], list("StatefulSetList", vec![])),
        ex("GET", "/apis/apps/v1/namespaces/shop/daemonsets", &[], list("DaemonSetList", vec![])),
        ex("GET", "/apis/batch/v1/namespaces/shop/cronjobs", &[], list("CronJobList", vec![])),
        ex("GET", "/apis/apps/v1/namespaces/shop/replicasets", &[], list("ReplicaSetList", sets)),
        ex("GET", "/api/v1/namespaces/shop/pods", &[], list("PodList", pods)),
    ]
}

#[tokio::test]
async fn proxy_stats_path_is_exact_and_a_503_is_a_verdict_not_a_crash() {
    let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
    let pods = vec![
        pod("web", "aaaaa", "198.18.1.2", running.clone(), json!({}), 0),
        pod("web", "bbbbb", "198.18.1.3", running, json!({}), 0),
    ];
    // The two proxy calls may be in flight together: each pod's stats read
    // once, in any order.
    let script = [
        workload_lists(vec![deployment("web", true), deployment("api", false)], pods),
        any_order(vec![
            text(
                "GET",
                "/api/v1/namespaces/shop/pods/web-7d9f8-aaaaa:9469/proxy/stats",
                &[],
                stats_fixture(),
            ),
            err(
                "GET",
                "/api/v1/namespaces/shop/pods/web-7d9f8-bbbbb:9469/proxy/stats",
                503,
                "ServiceUnavailable",
                "error trying to reach service: dial tcp 198.18.1.3:9469: connect: connection refused",
            ),
        ]),
    ]
    .concat();
    let report = status_of_shop(script, 0).await;

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
    let backoff = json!({"waiting": {"reason": "CrashLoopBackOff"}});
    let crash =
        json!({"terminated": {"exitCode": 1, "reason": "Error", "message": "collector lookup failed"}});
    let netraw = json!({"terminated": {"exitCode": 2, "reason": "Error",
        "message": "capture on eth0: operation not permitted: the container lacks CAP_NET_RAW; add NET_RAW"}});
    let pods = vec![
        pod("web", "ccccc", "198.18.1.4", backoff.clone(), crash, 5),
        pod("web", "ddddd", "198.18.1.5", backoff, netraw, 5),
    ];
    // No proxy call for agents that are not running; the crash loop's log is read.
    let mut script = workload_lists(vec![deployment("web", true)], pods);
    script.push(
        text(
            "GET",
            "/api/v1/namespaces/shop/pods/web-7d9f8-ccccc/log",
            &["container=bpc-agent", "previous=true", "tailLines=10"],
            "INFO starting\nERROR collector lookup failed: collector.monitoring.svc\n",
        )
        .exact_query(),
    );
    let report = status_of_shop(script, 0).await;
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
    let running = json!({"running": {}});
    let path = "/api/v1/namespaces/shop/pods/web-7d9f8-eeeee:9469/proxy/stats";
    let mut later: Value = serde_json::from_str(&stats_fixture()).unwrap();
    later["capture"]["packets"] = json!(3000);
    later["capture"]["kernel_drops"] = json!(12);
    let mut script = workload_lists(
        vec![deployment("web", true)],
        vec![pod("web", "eeeee", "198.18.1.6", running, json!({}), 0)],
    );
    script.push(text("GET", path, &[], stats_fixture()));
    script.push(ex("GET", path, &[], later));
    let report = status_of_shop(script, 1).await;
    let p = &report.workloads[0].pods[0];
    assert_eq!(p.judgement.verdict, Verdict::Dropping);
    assert!(p.judgement.reason.starts_with("12 drops in 1 s"), "{}", p.judgement.reason);
    assert_eq!(p.stats.as_ref().unwrap().capture.packets, 3000, "the latest sample is reported");
}

#[tokio::test]
async fn unknown_named_workload_is_a_usage_error_and_unattached_named_one_is_not_attached() {
    let kinds = vec![
        ex(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments",
            &[],
            list("DeploymentList", vec![deployment("api", false)]),
        ),
        ex("GET", "/apis/apps/v1/namespaces/shop/statefulsets", &[], list("StatefulSetList", vec![])),
        ex("GET", "/apis/apps/v1/namespaces/shop/daemonsets", &[], list("DaemonSetList", vec![])),
        ex("GET", "/apis/batch/v1/namespaces/shop/cronjobs", &[], list("CronJobList", vec![])),
    ];
    // deploy/nope: the Deployments only; a bare name: every kind.
    let script = [
        kinds[..1].to_vec(),
        kinds,
        vec![
            ex("GET", "/apis/apps/v1/namespaces/shop/replicasets", &[], list("ReplicaSetList", vec![])),
            ex("GET", "/api/v1/namespaces/shop/pods", &[], list("PodList", vec![])),
        ],
    ]
    .concat();
    let ((err, report), _) = with_server(script, |k| async move {
        let mut a = args(0);
        a.workloads = vec!["deploy/nope".into()];
        let err = status::collect(&k.client, Some("shop"), &a).await.unwrap_err();
        a.workloads = vec!["api".into()];
        (err, status::collect(&k.client, Some("shop"), &a).await.unwrap())
    })
    .await;
    assert!(matches!(err, kubectl_bpc::Error::Usage(ref m) if m.contains("deploy/nope")), "{err}");
    assert_eq!(report.workloads[0].judgement.verdict, Verdict::NotAttached);
    assert!(
        report.workloads[0].judgement.hint.as_ref().unwrap().contains("kubectl bpc attach deployment/api")
    );
}

#[tokio::test]
async fn a_workload_named_with_its_kind_lists_that_kind_only() {
    // The documented RBAC for status names deployments, statefulsets and
    // daemonsets: `status ds/edge` must not need to list cronjobs (a 403 there
    // failed the whole status).
    let ds = json!({"metadata": {"name": "edge", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "edge"}},
            "template": {"metadata": {"annotations": {}}, "spec": {"containers": [{"name": "edge"}]}}},
        "status": {"desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberReady": 1}});
    let script = vec![
        ex("GET", "/apis/apps/v1/namespaces/shop/daemonsets", &[], list("DaemonSetList", vec![ds])),
        ex("GET", "/apis/apps/v1/namespaces/shop/replicasets", &[], list("ReplicaSetList", vec![])),
        ex("GET", "/api/v1/namespaces/shop/pods", &[], list("PodList", vec![])),
    ];
    let (report, _) = with_server(script, |k| async move {
        let mut a = args(0);
        a.workloads = vec!["ds/edge".into()];
        status::collect(&k.client, Some("shop"), &a).await.unwrap()
    })
    .await;
    assert_eq!(report.workloads.len(), 1);
    assert_eq!(report.workloads[0].name, "edge");
    assert_eq!(report.workloads[0].judgement.verdict, Verdict::NotAttached);
}

#[tokio::test]
async fn all_namespaces_lists_cluster_wide_and_reads_daemon_set_rollout() {
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
    let mut idle: Value = serde_json::from_str(&stats_fixture()).unwrap();
    idle["capture"]["last_packet_age_seconds"] = json!(600.0);
    let script = vec![
        ex("GET", "/apis/apps/v1/deployments", &[], list("DeploymentList", vec![])),
        ex("GET", "/apis/apps/v1/statefulsets", &[], list("StatefulSetList", vec![])),
        ex("GET", "/apis/apps/v1/daemonsets", &[], list("DaemonSetList", vec![ds])),
        ex("GET", "/apis/batch/v1/cronjobs", &[], list("CronJobList", vec![])),
        ex("GET", "/apis/apps/v1/replicasets", &[], list("ReplicaSetList", vec![])),
        ex("GET", "/api/v1/pods", &[], list("PodList", vec![p])),
        ex("GET", "/api/v1/namespaces/net/pods/edge-zzzzz:9469/proxy/stats", &[], idle),
    ];
    let (report, _) =
        with_server(script, |k| async move { status::collect(&k.client, None, &args(0)).await }).await;
    let report = report.unwrap();
    let w = &report.workloads[0];
    assert_eq!((w.namespace.as_str(), w.kind.as_str()), ("net", "DaemonSet"));
    assert_eq!((w.rollout.desired, w.rollout.updated, w.rollout.ready), (3, 2, 1));
    assert_eq!(w.pods[0].judgement.verdict, Verdict::NoTraffic);
    assert!(w.pods[0].judgement.hint.as_ref().unwrap().contains("kubectl bpc verify daemonset/edge -n net"));
}

#[tokio::test]
async fn a_sidecar_attached_with_metrics_private_is_not_proxied_and_reported_as_private() {
    let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
    let mut private = pod("web", "eeeee", "198.18.1.6", running, json!({}), 0);
    // The pod carries its template's status annotation, options included.
    private["metadata"]["annotations"] = json!({"bpc.kubectl.io/status":
        "{\"version\":\"0.1.0\",\"workload\":\"shop/deployment/web\",\"key\":\"0x1\",\"containers\":[\"bpc-agent\"],\
         \"annotations\":[\"bpc.kubectl.io/status\"],\"capabilities\":\"default\",\"options\":{\"collectors\":[\"198.18.0.2\"],\
         \"cpu\":\"50m\",\"cpuLimit\":\"500m\",\"memory\":\"32Mi\",\"memoryLimit\":\"64Mi\",\"metricsPort\":9469,\"metricsPrivate\":true}}"});
    // No proxy call may follow (the mock fails on any request after the
    // script): the endpoint is on the pod's loopback.
    let script = workload_lists(vec![deployment("web", true)], vec![private]);
    let report = status_of_shop(script, 2).await;
    let p = &report.workloads[0].pods[0];
    assert_eq!(p.judgement.verdict, Verdict::Ok);
    assert!(p.judgement.reason.contains("counters are private"), "{}", p.judgement.reason);
    assert!(p.stats.is_none());
    assert!(report.ok);
}

/// `deployment("web")` with its rollout counts.
fn rolled(desired: i32, updated: i32, ready: i32) -> Value {
    let mut d = deployment("web", true);
    d["spec"]["replicas"] = json!(desired);
    d["status"] = json!({"replicas": desired, "updatedReplicas": updated, "readyReplicas": ready});
    d
}

#[tokio::test]
async fn old_pods_in_their_grace_period_are_terminating_and_do_not_fail_a_complete_rollout() {
    // Straight after `attach --wait`: the new pod runs, the old one (no
    // sidecar) is still in its grace period. No proxy call for it.
    let new = pod("web", "fffff", "198.18.1.7", json!({"running": {}}), json!({}), 0);
    let mut old = pod("web", "ggggg", "198.18.1.8", json!({"running": {}}), json!({}), 0);
    old["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z");
    old["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    old["spec"]["containers"] = json!([{"name": "web"}]);
    old["status"]["containerStatuses"].as_array_mut().unwrap().truncate(1);
    let pods = vec![new, old];
    let mut script = workload_lists(vec![rolled(1, 1, 1)], pods.clone());
    script.push(text(
        "GET",
        "/api/v1/namespaces/shop/pods/web-7d9f8-fffff:9469/proxy/stats",
        &[],
        stats_fixture(),
    ));
    // The same pods while the rollout is not complete: the old pod counts.
    script.extend(workload_lists(vec![rolled(1, 1, 0)], pods));
    script.push(text(
        "GET",
        "/api/v1/namespaces/shop/pods/web-7d9f8-fffff:9469/proxy/stats",
        &[],
        stats_fixture(),
    ));
    let ((done, rolling), _) = with_server(script, |k| async move {
        let done = status::collect(&k.client, Some("shop"), &args(0)).await.unwrap();
        (done, status::collect(&k.client, Some("shop"), &args(0)).await.unwrap())
    })
    .await;
    let w = &done.workloads[0];
    let verdicts: Vec<_> = w.pods.iter().map(|p| (p.name.as_str(), p.judgement.verdict)).collect();
    assert_eq!(verdicts, [("web-7d9f8-fffff", Verdict::Ok), ("web-7d9f8-ggggg", Verdict::Terminating)]);
    assert!(w.pods[1].judgement.reason.contains("no sidecar"), "{}", w.pods[1].judgement.reason);
    assert_eq!(w.judgement.verdict, Verdict::Ok);
    assert!(done.ok, "status exits 0 straight after attach --wait");
    let mut out = Vec::new();
    status::render(&done, StatusFormat::Table, Marks::PLAIN, &mut out).unwrap();
    let table = String::from_utf8(out).unwrap();
    assert!(table.contains("[--]   web-7d9f8-ggggg") && table.contains("TERMINATING"), "{table}");
    assert!(table.contains("1 of 2 pods OK (1 terminating)"), "{table}");
    let mut out = Vec::new();
    status::render(&done, StatusFormat::Json, Marks::PLAIN, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["summary"]["pods_terminating"], 1);
    assert_eq!(v["workloads"][0]["pods"][1]["verdict"], "TERMINATING");

    assert_eq!(rolling.workloads[0].judgement.verdict, Verdict::Terminating);
    assert!(!rolling.ok);
}

#[tokio::test]
async fn an_unschedulable_pod_gets_the_schedulers_message_and_the_sidecars_requests_in_its_hint() {
    let mut pending = pod("web", "hhhhh", "", json!({}), json!({}), 0);
    pending["spec"]["nodeName"] = Value::Null;
    pending["spec"]["initContainers"] = json!([{"name": "bpc-agent", "restartPolicy": "Always",
        "resources": {"requests": {"cpu": "3", "memory": "32Mi"}}}]);
    pending["spec"]["containers"] = json!([{"name": "web"}]);
    pending["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."}]});
    // The old pod stays while the new one waits for a node.
    let mut old = pod("web", "aaaaa", "198.18.1.2", json!({"running": {}}), json!({}), 0);
    old["spec"]["containers"] = json!([{"name": "web"}]);
    old["status"]["containerStatuses"].as_array_mut().unwrap().truncate(1);
    // No proxy call: the old pod has no agent, the new one does not run.
    let script = workload_lists(vec![rolled(1, 1, 0)], vec![old, pending]);
    let report = status_of_shop(script, 0).await;
    assert_eq!(report.workloads[0].pods[0].judgement.verdict, Verdict::NotAttached);
    let p = &report.workloads[0].pods[1];
    assert_eq!(p.judgement.verdict, Verdict::Unschedulable);
    assert!(p.judgement.reason.contains("1 Insufficient cpu"), "{}", p.judgement.reason);
    let hint = p.judgement.hint.as_deref().unwrap();
    assert!(
        hint.contains("requests --cpu 3") && hint.contains("kubectl bpc attach deployment/web -n shop"),
        "{hint}"
    );
    // The workload names the cause (no node), not the symptom (an old pod without the sidecar).
    assert_eq!(report.workloads[0].judgement.verdict, Verdict::Unschedulable);
    assert!(report.workloads[0].judgement.hint.as_deref().unwrap().contains("--cpu 3"));
    assert!(!report.ok);
}

#[tokio::test]
async fn a_collector_bouncing_sends_in_the_agents_window_is_unreachable_though_lifetime_sends_look_fine() {
    // What the real cluster showed: 280 sent, 138 bounced (ICMP protocol
    // unreachable), an idle pod, so nothing rose between the samples.
    let mut bounced: Value = serde_json::from_str(&stats_fixture()).unwrap();
    let c = &mut bounced["collectors"][0];
    c["sent_packets"] = json!(280);
    c["errors"]["unreachable"] = json!(138);
    c["icmp_error"] = json!("protocol unreachable: no GRE receiver on the collector host");
    // The fixture's last send 1.2 s ago; its bounce read 1 s ago.
    c["last_error_age_seconds"] = json!(1.0);
    c["recent"] = json!({"window_seconds": 64.0, "sent_packets": 40,
        "errors": {"unreachable": 20, "no_buffer": 0, "resolve": 0, "other": 0}});
    bounced["health"] = json!({"ok": false, "reason": "collector ... unreachable"});
    let path = "/api/v1/namespaces/shop/pods/web-7d9f8-iiiii:9469/proxy/stats";
    let mut script = workload_lists(
        vec![deployment("web", true)],
        vec![pod("web", "iiiii", "198.18.1.9", json!({"running": {}}), json!({}), 0)],
    );
    script.push(ex("GET", path, &[], bounced.clone()));
    script.push(ex("GET", path, &[], bounced));
    let report = status_of_shop(script, 1).await;
    let p = &report.workloads[0].pods[0];
    assert_eq!(p.judgement.verdict, Verdict::CollectorUnreachable);
    let reason = &p.judgement.reason;
    assert!(reason.contains("collector collector.monitoring.svc (198.18.0.2) unreachable"), "{reason}");
    assert!(reason.contains("ICMP protocol unreachable: no GRE receiver"), "{reason}");
    assert!(!report.ok);
}
