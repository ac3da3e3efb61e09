//! `map` against the shared mock API server (tests/mock): one list of
//! ReplicaSets and one of pods (never a GET per pod), and `--watch` events
//! from a mocked watch stream.

use bpc_wire::WorkloadKey;
use kubectl_bpc::map;
use serde_json::{Value, json};

mod mock;
use mock::*;

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

fn rs(ns: &str, name: &str, deploy: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": "5",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy, "uid": "d",
            "controller": true}]}})
}

fn pod(ns: &str, name: &str, owner: (&str, &str), ip: &str, attached: bool) -> Value {
    let mut containers = vec![json!({"name": "app"})];
    if attached {
        containers.push(json!({"name": "bpc-agent"}));
    }
    json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": "7", "labels": {"app": owner.1},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1, "uid": "o",
                "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": containers},
        "status": {"podIP": ip}})
}

#[tokio::test]
async fn all_namespaces_map_lists_once_and_resolves_deployments_and_statefulsets() {
    let script = vec![
        ex(
            "GET",
            "/apis/apps/v1/replicasets",
            &[],
            list("ReplicaSetList", vec![rs("shop", "checkout-5f6c7d8b9", "checkout")]),
        ),
        ex("GET", "/apis/batch/v1/jobs", &[], list("JobList", vec![])),
        ex(
            "GET",
            "/api/v1/pods",
            &[],
            list(
                "PodList",
                vec![
                    pod(
                        "shop",
                        "checkout-5f6c7d8b9-abcde",
                        ("ReplicaSet", "checkout-5f6c7d8b9"),
                        "198.18.1.2",
                        true,
                    ),
                    pod("db", "pg-0", ("StatefulSet", "pg"), "198.18.2.7", false),
                ],
            ),
        ),
        ex(
            "GET",
            "/api/v1/services",
            &[],
            list(
                "ServiceList",
                vec![json!({"metadata": {"name": "pg", "namespace": "db"},
                    "spec": {"clusterIP": "198.18.9.7", "clusterIPs": ["198.18.9.7"], "selector": {"app": "pg"}}})],
            ),
        ),
        ex(
            "GET",
            "/api/v1/nodes",
            &[],
            list(
                "NodeList",
                vec![json!({"metadata": {"name": "node-1"},
                    "status": {"addresses": [{"type": "InternalIP", "address": "198.19.64.1"}]}})],
            ),
        ),
    ];
    let (rows, _) = with_server(script, |k| async move { map::fetch_map(&k.client, None).await }).await;
    let rows = rows.unwrap();

    let mut json_out = Vec::new();
    map::render(&rows, map::MapFormat::Json, &mut json_out).unwrap();
    let v: Value = serde_json::from_slice(&json_out).unwrap();
    assert_eq!(
        v,
        json!([
            {"type": "pod", "ip": "198.18.2.7", "namespace": "db", "kind": "StatefulSet", "workload": "pg",
             "key": WorkloadKey::from_workload("db", "statefulset", "pg").to_string(),
             "pod": "pg-0", "node": "node-1", "attached": false},
            {"type": "pod", "ip": "198.18.1.2", "namespace": "shop", "kind": "Deployment", "workload": "checkout",
             "key": WorkloadKey::from_workload("shop", "deployment", "checkout").to_string(),
             "pod": "checkout-5f6c7d8b9-abcde", "node": "node-1", "attached": true, "profile": "standard"},
            // One backend workload: the Service shares its key.
            {"type": "service", "ip": "198.18.9.7", "namespace": "db", "kind": "Service", "workload": "pg",
             "key": WorkloadKey::from_workload("db", "statefulset", "pg").to_string(),
             "pod": "", "node": "", "attached": false,
             "backends": [{"kind": "StatefulSet", "workload": "pg",
                 "key": WorkloadKey::from_workload("db", "statefulset", "pg").to_string()}]},
            {"type": "node", "ip": "198.19.64.1", "namespace": "", "kind": "Node", "workload": "node-1",
             "key": WorkloadKey::from_workload("", "Node", "node-1").to_string(),
             "pod": "", "node": "node-1", "attached": false},
        ])
    );
    let mut csv = Vec::new();
    map::render(&rows, map::MapFormat::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.lines().nth(2).unwrap().starts_with("198.18.1.2,shop,Deployment,checkout,0x"), "{csv}");
    let mut table = Vec::new();
    map::render(&rows, map::MapFormat::Table, &mut table).unwrap();
    // Golden files shown in docs/guide.md (Checking capture); BLESS=1 regenerates them.
    for (name, actual) in [("map-table.txt", String::from_utf8(table).unwrap()), ("map.csv", csv)] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/status/").to_owned() + name;
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&path, &actual).unwrap();
        }
        assert_eq!(actual, std::fs::read_to_string(&path).unwrap(), "{name}");
    }
}

/// The watcher's part: its own ReplicaSet list and the node list (refused:
/// a namespace-scoped user gets no node rows and no node watch), then the
/// watchers' lists and watches in whatever order they come; the first pod
/// watch gets `events`, any later watch is left pending (as a quiet API
/// server would).
fn watch_script(events: Vec<Value>) -> Vec<Exchange> {
    const SETS: &str = "/apis/apps/v1/namespaces/shop/replicasets";
    const PODS: &str = "/api/v1/namespaces/shop/pods";
    const SERVICES: &str = "/api/v1/namespaces/shop/services";
    const JOBS: &str = "/apis/batch/v1/namespaces/shop/jobs";
    let sets = || list("ReplicaSetList", vec![rs("shop", "web-6b7c8", "web")]);
    [
        vec![
            ex("GET", SETS, &[], sets()),
            ex("GET", JOBS, &[], list("JobList", vec![])),
            err("GET", "/api/v1/nodes", 403, "Forbidden", "forbidden"),
        ],
        any_order(vec![
            ex(
                "GET",
                PODS,
                &[],
                list(
                    "PodList",
                    vec![pod("shop", "web-6b7c8-aaaaa", ("ReplicaSet", "web-6b7c8"), "198.18.1.2", false)],
                ),
            ),
            watch(PODS, events),
            ex(
                "GET",
                SERVICES,
                &[],
                list(
                    "ServiceList",
                    vec![json!({"metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
                        "spec": {"clusterIP": "198.18.9.1", "selector": {"app": "web-6b7c8"}}})],
                ),
            ),
            ex("GET", SETS, &[], sets()).repeatable(),
            quiet_watch(PODS).repeatable(),
            quiet_watch(SETS).repeatable(),
            ex("GET", JOBS, &[], list("JobList", vec![])).repeatable(),
            quiet_watch(JOBS).repeatable(),
            quiet_watch(SERVICES).repeatable(),
        ]),
    ]
    .concat()
}

#[tokio::test]
async fn watch_turns_pod_events_into_add_update_delete_lines() {
    let attached = pod("shop", "web-6b7c8-aaaaa", ("ReplicaSet", "web-6b7c8"), "198.18.1.2", true);
    let new_pod = pod("shop", "web-6b7c8-bbbbb", ("ReplicaSet", "web-6b7c8"), "198.18.1.9", true);
    let events = vec![
        json!({"type": "MODIFIED", "object": attached}),
        json!({"type": "ADDED", "object": new_pod}),
        json!({"type": "DELETED", "object": attached}),
    ];
    let ((result, seen, services), _) = with_server(watch_script(events), |k| async move {
        let (mut seen, mut services) = (Vec::new(), Vec::new());
        let result = map::watch(&k.client, Some("shop"), |ev| {
            let v = serde_json::to_value(&ev).unwrap();
            if v["type"] == "service" {
                services.push(v);
                return Ok(());
            }
            seen.push(v);
            if seen.len() == 4 { Err(kubectl_bpc::Error::Usage("enough".into())) } else { Ok(()) }
        })
        .await;
        (result, seen, services)
    })
    .await;
    assert!(matches!(result, Err(kubectl_bpc::Error::Usage(m)) if m == "enough"));
    let summary: Vec<(String, String, bool)> = seen
        .iter()
        .map(|e| {
            (e["event"].as_str().unwrap().into(), e["ip"].as_str().unwrap().into(), e["attached"] == true)
        })
        .collect();
    let s = |e: &str, ip: &str, a| (e.to_owned(), ip.to_owned(), a);
    assert_eq!(
        summary,
        [
            s("add", "198.18.1.2", false),
            s("update", "198.18.1.2", true),
            s("add", "198.18.1.9", true),
            s("delete", "198.18.1.2", true)
        ]
    );
    assert_eq!(seen[2]["workload"], "web");
    assert_eq!(seen[2]["kind"], "Deployment");
    // The Service (listed in whichever order against the pods) ends up
    // naming the web Deployment, attached since the attached pod came.
    let last = services.last().expect("service events");
    assert_eq!(
        (&last["ip"], &last["workload"], &last["attached"]),
        (&json!("198.18.9.1"), &json!("web"), &json!(true))
    );
    assert_eq!(last["backends"][0]["workload"], "web");
    assert!(seen.iter().all(|e| e["type"] == "pod"));
}
