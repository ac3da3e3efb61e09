//! attach / detach against a kube-rs `tower-test` mock API server (the
//! `ApiServerVerifier` pattern of kube-rs's controller-rs): each test plays
//! the exact requests it expects, in order, answers them, and fails on a
//! missing call (timeout) or an unexpected one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use http::{Request, Response};
use kube::client::Body;
use kubectl_bpc::attach::{self, AttachArgs, DetachArgs, DryRun};
use kubectl_bpc::capabilities::CapabilitiesArg;
use kubectl_bpc::capabilities::CapabilityPlanner;
use kubectl_bpc::kube_context::{Kube, WarningLayer};
use kubectl_bpc::rollout::{self, WaitTarget};
use kubectl_bpc::sidecar::{
    self, CapabilityMode, Change, STATUS_ANNOTATION, Sidecar, SidecarForm, SidecarOptions,
};
use kubectl_bpc::workload::{KindApi, WorkloadId, WorkloadKind};
use serde_json::{Value, json};

mod mock;
use mock::*;

const DEPLOY: &str = "/apis/apps/v1/namespaces/shop/deployments/web";
const NAMESPACE: &str = "/api/v1/namespaces/shop";
const NODES: &str = "/api/v1/nodes";
const PODS: &str = "/api/v1/namespaces/shop/pods";

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx", "terminationMessagePath": "/dev/termination-log"}]}})
}

fn deployment(rv: &str, template: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": rv, "generation": 3},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}})
}

fn web() -> WorkloadId {
    WorkloadId { namespace: "shop".into(), kind: WorkloadKind::Deployment, name: "web".into() }
}

fn attached_template(options: SidecarOptions, mode: CapabilityMode) -> Value {
    let mut t = template();
    let s = Sidecar {
        workload: web(),
        options,
        capabilities: mode,
        allow_host_network: false,
        form: SidecarForm::Container,
    };
    sidecar::inject(&mut t, &s).unwrap();
    t
}

fn namespace(enforce: Option<&str>) -> Value {
    let labels = enforce.map_or(json!({}), |l| json!({"pod-security.kubernetes.io/enforce": l}));
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": labels}})
}

fn nodes(runtime: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": [
        {"metadata": {"name": "node-1"}, "status": {"nodeInfo": {"containerRuntimeVersion": runtime,
            "architecture": "amd64", "bootID": "", "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "",
            "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}}]})
}

/// The reads every attach starts with: the workload, its namespace (Pod
/// Security labels), the nodes (container runtimes).
fn reads(deploy: Value, enforce: Option<&str>, runtime: &str) -> Vec<Exchange> {
    vec![
        ex("GET", DEPLOY, &[], deploy),
        ex("GET", NAMESPACE, &[], namespace(enforce)),
        ex("GET", NODES, &[], nodes(runtime)),
    ]
}

/// The admission pre-flight, admitted.
fn pod_admitted() -> Exchange {
    ex("POST", PODS, &["dryRun=All"], json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}))
}

/// An attach of the unattached `web` on containerd up to the admitted
/// pre-flight, then `writes`.
fn admitted_then(writes: Vec<Exchange>) -> Vec<Exchange> {
    let mut script = reads(deployment("100", template()), None, "containerd://1.7.2");
    script.push(pod_admitted());
    script.extend(writes);
    script
}

fn attach_args(extra: &[&str]) -> AttachArgs {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: AttachArgs,
    }
    let argv = ["attach", "web", "--collector", "198.18.0.2"].into_iter().chain(extra.iter().copied());
    Wrapper::try_parse_from(argv).unwrap().args
}

fn detach_args(extra: &[&str]) -> DetachArgs {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DetachArgs,
    }
    Wrapper::try_parse_from(["detach"].into_iter().chain(extra.iter().copied())).unwrap().args
}

async fn attach_web(kube: Kube, args: AttachArgs) -> Result<attach::Done, kubectl_bpc::Error> {
    let object = web().kind.api(&kube.client, "shop").get("web").await.unwrap();
    let mut planner = CapabilityPlanner::new(args.capabilities);
    attach::attach_one(&kube, &web(), object, &args, SidecarForm::Container, &mut planner).await
}

/// `GET /version` of a Kubernetes 1.`minor` API server.
fn version(minor: &str) -> Exchange {
    ex(
        "GET",
        "/version",
        &[],
        json!({"major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"), "gitCommit": "x",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.26",
            "compiler": "gc", "platform": "linux/amd64"}),
    )
}

fn agent_of(patch: &Value) -> &Value {
    &patch["spec"]["template"]["spec"]["containers"][0]
}

#[tokio::test]
async fn attach_reads_then_dry_runs_a_pod_then_sends_one_strategic_patch() {
    let script = [
        reads(deployment("100", template()), Some("baseline"), "containerd://1.7.2"),
        vec![
            ex(
                "POST",
                PODS,
                &["dryRun=All", "fieldManager=kubectl-bpc"],
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-bpc-preflight-x"}}),
            ),
            ex("PATCH", DEPLOY, &["fieldManager=kubectl-bpc"], deployment("101", template())),
        ],
    ]
    .concat();
    let (done, seen) = with_server(script, |k| attach_web(k, attach_args(&[]))).await;
    let done = done.unwrap();
    assert_eq!(done.action, Change::Added);

    let pod = &seen[3].body;
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["generateName"], "web-bpc-preflight-");
    assert_eq!(pod["spec"]["containers"][1]["name"], "bpc-agent", "the dry-run pod carries the sidecar");

    let patch = &seen[4];
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert!(!patch.query.contains("dryRun"));
    let expected =
        attached_template(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilityMode::Default);
    assert_eq!(
        patch.body,
        sidecar::attach_patch(WorkloadKind::Deployment, &template(), &expected, Some("100"))
    );
    let caps = &agent_of(&patch.body)["securityContext"]["capabilities"];
    assert!(caps.get("add").is_none(), "containerd + baseline: keep the granted NET_RAW, add nothing");
}

#[tokio::test]
async fn reattach_with_the_same_options_sends_no_patch() {
    let attached =
        attached_template(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilityMode::Default);
    let script = reads(deployment("100", attached), None, "containerd://1.7.2");
    let (done, seen) = with_server(script, |k| attach_web(k, attach_args(&[]))).await;
    assert_eq!(done.unwrap().action, Change::Unchanged);
    assert!(seen.iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn reattach_with_new_options_replaces_the_sidecar_in_place() {
    let attached =
        attached_template(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilityMode::Default);
    let script = [
        reads(deployment("100", attached.clone()), None, "containerd://1.7.2"),
        vec![pod_admitted(), ex("PATCH", DEPLOY, &[], deployment("101", template()))],
    ]
    .concat();
    let (done, seen) =
        with_server(script, |k| attach_web(k, attach_args(&["--filter", "tcp port 443"]))).await;
    assert_eq!(done.unwrap().action, Change::Updated);
    let agent = agent_of(&seen[4].body);
    assert_eq!(agent["env"][0], json!({"$patch": "replace"}), "old env entries must not linger");
    assert!(
        agent["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "BPC_FILTER" && e["value"] == "tcp port 443")
    );
    assert!(seen[4].body["spec"]["template"]["spec"].get("$setElementOrder/containers").is_none());
}

#[tokio::test]
async fn conflict_409_rereads_and_patches_again_with_the_new_resource_version() {
    let script = admitted_then(vec![
        err(
            "PATCH",
            DEPLOY,
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version",
        ),
        ex("GET", DEPLOY, &[], deployment("105", template())),
        ex("PATCH", DEPLOY, &[], deployment("106", template())),
    ]);
    let (done, seen) = with_server(script, |k| attach_web(k, attach_args(&[]))).await;
    assert_eq!(done.unwrap().action, Change::Added);
    assert_eq!(seen[4].body["metadata"]["resourceVersion"], "100");
    assert_eq!(seen[6].body["metadata"]["resourceVersion"], "105");
}

#[tokio::test]
async fn forbidden_patch_names_the_rbac_verb_and_resource() {
    let script = admitted_then(vec![err(
        "PATCH",
        DEPLOY,
        403,
        "Forbidden",
        "deployments.apps \"web\" is forbidden: User \"sre\" cannot patch resource",
    )]);
    let (done, _) = with_server(script, |k| attach_web(k, attach_args(&[]))).await;
    let e = done.unwrap_err().to_string();
    assert!(
        e.contains("RBAC verb 'patch'") && e.contains("kubectl auth can-i patch deployments.apps -n shop"),
        "{e}"
    );
}

#[tokio::test]
async fn server_dry_run_sends_the_patch_with_dry_run_all() {
    let script = admitted_then(vec![ex(
        "PATCH",
        DEPLOY,
        &["dryRun=All", "fieldManager=kubectl-bpc"],
        deployment("100", template()),
    )]);
    let (done, _) = with_server(script, |k| attach_web(k, attach_args(&["--dry-run=server"]))).await;
    assert_eq!(done.unwrap().action, Change::Added);
}

#[tokio::test]
async fn client_dry_run_writes_nothing_even_when_nodes_cannot_be_read() {
    let script = vec![
        ex("GET", DEPLOY, &[], deployment("100", template())),
        ex("GET", NAMESPACE, &[], namespace(None)),
        err(
            "GET",
            NODES,
            403,
            "Forbidden",
            "nodes is forbidden: User \"sre\" cannot list resource \"nodes\"",
        ),
        pod_admitted(),
    ];
    let (done, _) = with_server(script, |k| attach_web(k, attach_args(&["--dry-run"]))).await;
    let done = done.unwrap();
    assert_eq!(done.object["spec"]["template"]["spec"]["containers"][1]["name"], "bpc-agent");
    assert_eq!(done.before["spec"]["template"], template());
}

#[tokio::test]
async fn crio_nodes_get_net_raw_added_where_the_namespace_allows_it() {
    let script = [
        reads(deployment("100", template()), Some("privileged"), "cri-o://1.29.1"),
        vec![pod_admitted(), ex("PATCH", DEPLOY, &[], deployment("101", template()))],
    ]
    .concat();
    let (done, seen) = with_server(script, |k| attach_web(k, attach_args(&[]))).await;
    done.unwrap();
    let caps = &agent_of(&seen[4].body)["securityContext"]["capabilities"];
    assert_eq!(caps, &json!({"drop": ["ALL"], "add": ["NET_RAW"]}));
}

#[tokio::test]
async fn crio_nodes_under_baseline_are_refused_before_any_write() {
    let script = reads(deployment("100", template()), Some("baseline"), "cri-o://1.29.1");
    let (done, _) = with_server(script, |k| attach_web(k, attach_args(&[]))).await;
    assert!(done.unwrap_err().to_string().contains("CRI-O"));
}

#[tokio::test]
async fn restricted_namespace_is_refused_with_how_to_proceed() {
    let script = reads(deployment("100", template()), Some("restricted"), "containerd://1.7.2");
    let (done, _) = with_server(script, |k| attach_web(k, attach_args(&[]))).await;
    let e = done.unwrap_err().to_string();
    assert!(e.contains("restricted") && e.contains("enforce=baseline"), "{e}");
}

#[tokio::test]
async fn pods_refused_only_with_the_sidecar_stop_the_attach_with_the_admission_message() {
    let message = "pods \"web-bpc-preflight-x\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"bpc-agent\" must not include \"NET_RAW\" in securityContext.capabilities.add)";
    let script = vec![
        ex("GET", DEPLOY, &[], deployment("100", template())),
        ex("GET", NAMESPACE, &[], namespace(None)),
        err("POST", PODS, 403, "Forbidden", message),
        pod_admitted(),
    ];
    let (done, _) = with_server(script, |k| attach_web(k, attach_args(&["--capabilities", "add"]))).await;
    let e = done.unwrap_err().to_string();
    assert!(
        e.contains("would refuse its pods") && e.contains("NET_RAW") && e.contains("nothing was changed"),
        "{e}"
    );
}

#[tokio::test]
async fn detach_deletes_the_recorded_container_and_annotation_only() {
    let attached =
        attached_template(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilityMode::Default);
    let script = vec![
        ex("GET", DEPLOY, &[], deployment("100", attached)),
        ex("PATCH", DEPLOY, &["fieldManager=kubectl-bpc"], deployment("101", template())),
    ];
    let (done, seen) = with_server(script, |k| async move {
        let object = web().kind.api(&k.client, "shop").get("web").await.unwrap();
        attach::detach_one(&k, &web(), object, DryRun::None).await
    })
    .await;
    assert_eq!(done.unwrap().action, Change::Removed);
    let t = &seen[1].body["spec"]["template"];
    assert_eq!(t["spec"]["containers"], json!([{"name": "bpc-agent", "$patch": "delete"}]));
    assert_eq!(t["metadata"]["annotations"][STATUS_ANNOTATION], Value::Null);
    assert_eq!(seen[1].body["metadata"]["resourceVersion"], "100");
}

#[tokio::test]
async fn detach_of_a_workload_without_the_sidecar_is_a_reported_no_op() {
    let script = vec![ex("GET", DEPLOY, &[], deployment("100", template()))];
    let (code, seen) =
        with_server(script, |k| async move { attach::run_detach(&detach_args(&["web"]), &k).await }).await;
    assert_eq!(format!("{:?}", code.unwrap()), format!("{:?}", std::process::ExitCode::SUCCESS));
    assert_eq!(seen.len(), 1);
}

#[tokio::test]
async fn a_missing_workload_fails_alone_and_the_others_are_still_attached() {
    let script = vec![
        version("34"),
        err(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/gone",
            404,
            "NotFound",
            "deployments.apps \"gone\" not found",
        ),
        ex("GET", DEPLOY, &[], deployment("100", template())),
        ex("GET", NAMESPACE, &[], namespace(None)),
        ex("GET", NODES, &[], nodes("containerd://1.7.2")),
        pod_admitted(),
        ex("PATCH", DEPLOY, &[], deployment("101", template())),
    ];
    let mut args = attach_args(&[]);
    args.targets.workloads = vec!["gone".into(), "web".into()];
    let (code, seen) = with_server(script, |k| async move { attach::run_attach(&args, &k).await }).await;
    assert_eq!(format!("{:?}", code.unwrap()), format!("{:?}", std::process::ExitCode::from(1)));
    assert_eq!(seen.last().unwrap().method, "PATCH");
}

#[tokio::test]
async fn detach_all_lists_every_kind_and_detaches_only_attached_workloads() {
    let attached =
        attached_template(SidecarOptions::with_collectors(&["198.18.0.2"]), CapabilityMode::Default);
    let list =
        |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
    let mut plain = deployment("7", template());
    plain["metadata"]["name"] = json!("plain");
    let script = vec![
        ex(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments",
            &[],
            list(vec![deployment("100", attached), plain]),
        ),
        ex("GET", "/apis/apps/v1/namespaces/shop/statefulsets", &[], list(vec![])),
        ex("GET", "/apis/apps/v1/namespaces/shop/daemonsets", &[], list(vec![])),
        ex("GET", "/apis/batch/v1/namespaces/shop/cronjobs", &[], list(vec![])),
        ex("PATCH", DEPLOY, &[], deployment("101", template())),
    ];
    let (code, seen) =
        with_server(script, |k| async move { attach::run_detach(&detach_args(&["--all"]), &k).await }).await;
    code.unwrap();
    assert_eq!(seen.len(), 5, "only the attached workload is patched");
}

/// `attach web` with default options against a Kubernetes 1.`minor` API
/// server: the pod template spec of the patch it sends.
async fn attach_on_server(minor: &str) -> Value {
    let script = vec![
        version(minor),
        ex("GET", DEPLOY, &[], deployment("100", template())),
        ex("GET", NAMESPACE, &[], namespace(None)),
        ex("GET", NODES, &[], nodes("containerd://1.7.2")),
        pod_admitted(),
        ex("PATCH", DEPLOY, &[], deployment("101", template())),
    ];
    let args = attach_args(&[]);
    let (code, seen) = with_server(script, |k| async move { attach::run_attach(&args, &k).await }).await;
    code.unwrap();
    seen.last().unwrap().body["spec"]["template"]["spec"].clone()
}

#[tokio::test]
async fn attach_reads_the_server_version_once_and_adds_a_native_sidecar_from_1_29() {
    let spec = attach_on_server("34").await;
    assert_eq!(spec["$setElementOrder/initContainers"], json!([{"name": "bpc-agent"}]));
    assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
    assert!(spec.get("containers").is_none(), "the app's containers are not named");
}

#[tokio::test]
async fn attach_before_1_29_adds_a_container_and_sidecar_native_is_refused_before_any_write() {
    let spec = attach_on_server("28").await;
    assert_eq!(spec["containers"][0]["name"], "bpc-agent");
    assert!(spec.get("initContainers").is_none());

    let args = attach_args(&["--sidecar", "native"]);
    let (code, seen) =
        with_server(vec![version("28")], |k| async move { attach::run_attach(&args, &k).await }).await;
    let e = code.unwrap_err().to_string();
    assert!(e.contains("--sidecar container"), "{e}");
    assert_eq!(seen.len(), 1, "nothing read or written after the version");
}

#[test]
fn attaching_a_job_or_a_pod_is_refused_naming_what_to_do_instead() {
    let e = attach::check_targets(&["job/nightly-123".into()], None, false, false).unwrap_err().to_string();
    assert!(e.contains("cannot be changed") && e.contains("kubectl bpc capture job/nightly-123"), "{e}");
    assert!(e.contains("cronjob"), "{e}");
    let e = attach::check_targets(&["pod/web-1".into()], None, false, false).unwrap_err().to_string();
    assert!(e.contains("kubectl bpc capture pod/web-1"), "{e}");
    assert!(attach::check_targets(&["cronjob/nightly".into()], None, false, false).is_ok());
}

#[tokio::test]
async fn api_server_warnings_reach_the_user_once_each() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let collected = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = collected.clone();
    let layer = WarningLayer::with_sink(move |w| sink.lock().unwrap().push(w.to_owned()));
    let client = kube::client::ClientBuilder::new(svc, "shop").with_layer(&layer).build();
    let script = vec![
        ex("GET", DEPLOY, &[], deployment("100", template())),
        ex("GET", DEPLOY, &[], deployment("100", template())),
    ];
    let server = tokio::spawn(verify(handle, script));
    let api = web().kind.api(&client, "shop");
    api.get("web").await.unwrap();
    api.get("web").await.unwrap();
    drop((api, client));
    server.await.unwrap();
    assert_eq!(*collected.lock().unwrap(), ["mock warning"]);
}

#[test]
fn capabilities_flag_parses_every_mode() {
    for (flag, mode) in [
        ("auto", CapabilitiesArg::Auto),
        ("default", CapabilitiesArg::Default),
        ("add", CapabilitiesArg::Add),
    ] {
        assert_eq!(attach_args(&["--capabilities", flag]).capabilities, mode);
    }
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn live_cluster_attach_and_detach_round_trip() {
    // Run by scripts/e2e-cluster.sh against the real cluster with testdata/cluster/app.yaml deployed.
    let kube =
        kubectl_bpc::kube_context::KubeArgs { namespace: Some("bpc-e2e".into()), ..Default::default() }
            .connect()
            .await
            .unwrap();
    let mut args = attach_args(&[]);
    args.targets.workloads = vec!["web".into()];
    let code = attach::run_attach(&args, &kube).await.unwrap();
    assert_eq!(format!("{code:?}"), format!("{:?}", std::process::ExitCode::SUCCESS));
    let again = attach::run_attach(&args, &kube).await.unwrap();
    assert_eq!(format!("{again:?}"), format!("{:?}", std::process::ExitCode::SUCCESS));
    let code = attach::run_detach(&detach_args(&["web"]), &kube).await.unwrap();
    assert_eq!(format!("{code:?}"), format!("{:?}", std::process::ExitCode::SUCCESS));
}

#[tokio::test]
async fn wait_on_a_statefulset_stops_at_a_new_failed_create_event_with_the_admission_message() {
    const STS: &str = "/apis/apps/v1/namespaces/shop/statefulsets/db";
    const EVENTS: &str = "/api/v1/namespaces/shop/events";
    let events =
        |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items});
    let refused = json!({"metadata": {"name": "db.17", "namespace": "shop", "uid": "e1"},
        "involvedObject": {"kind": "StatefulSet", "name": "db"}, "reason": "FailedCreate", "count": 1,
        "message": "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: violates PodSecurity \"baseline:latest\""});
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "shop", "generation": 2},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template()},
        "status": {"observedGeneration": 2, "replicas": 1, "readyReplicas": 0, "updatedReplicas": 0,
            "currentRevision": "db-1", "updateRevision": "db-2"}});
    let script = vec![
        ex(
            "GET",
            EVENTS,
            &[
                "fieldSelector=involvedObject.kind%3DStatefulSet%2CinvolvedObject.name%3Ddb%2Creason%3DFailedCreate",
            ],
            events(vec![]),
        ),
        ex("GET", STS, &[], sts),
        ex("GET", EVENTS, &[], events(vec![refused])),
    ];
    let id = WorkloadId { namespace: "shop".into(), kind: WorkloadKind::StatefulSet, name: "db".into() };
    let (mut results, _) = with_server(script, |k| async move {
        let timeout = Duration::from_secs(30);
        let targets = [WaitTarget { id, attached: true }];
        rollout::wait(&k.client, &targets, Instant::now() + timeout, timeout).await
    })
    .await;
    let e = results.remove(0).unwrap_err().to_string();
    assert!(e.contains("FailedCreate") && e.contains("forbidden"), "{e}");
    assert!(e.contains("kubectl bpc detach statefulset/db -n shop"), "{e}");
}

/// `name`, a Deployment of 1 replica whose new pod is not available yet.
fn rolling(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "generation": 4},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template()},
        "status": {"observedGeneration": 4, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}})
}

/// The new pod of `deploy` (with the sidecar, requesting `cpu`) and its `status`.
fn new_pod(deploy: &str, cpu: &str, status: Value) -> Value {
    json!({"metadata": {"name": format!("{deploy}-new"), "namespace": "shop", "labels": {"app": deploy}},
        "spec": {"initContainers": [{"name": "bpc-agent", "restartPolicy": "Always",
            "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}}}], "containers": [{"name": "app"}]},
        "status": status})
}

fn pod_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

fn deploy_targets(names: &[&str]) -> Vec<WaitTarget> {
    names
        .iter()
        .map(|n| WaitTarget {
            id: WorkloadId { namespace: "shop".into(), kind: WorkloadKind::Deployment, name: (*n).into() },
            attached: true,
        })
        .collect()
}

#[tokio::test]
async fn two_workloads_with_unschedulable_new_pods_fail_together_at_once_naming_the_scheduler_message() {
    let unschedulable = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
        "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."}]});
    // Both followed at once: each one's reads in any order.
    let script = any_order(vec![
        ex("GET", "/apis/apps/v1/namespaces/shop/deployments/web", &[], rolling("web")),
        ex("GET", "/apis/apps/v1/namespaces/shop/deployments/api", &[], rolling("api")),
        ex(
            "GET",
            PODS,
            &["labelSelector=app%3Dweb"],
            pod_list(vec![new_pod("web", "3", unschedulable.clone())]),
        ),
        ex("GET", PODS, &["labelSelector=app%3Dapi"], pod_list(vec![new_pod("api", "3", unschedulable)])),
    ]);
    let started = Instant::now();
    let (results, _) = with_server(script, |k| async move {
        let timeout = Duration::from_secs(60);
        rollout::wait(&k.client, &deploy_targets(&["web", "api"]), Instant::now() + timeout, timeout).await
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(2), "failed early, not at the timeout");
    for (r, name) in results.iter().zip(["web", "api"]) {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(
            e.contains(&format!("deployment.apps/{name} in namespace shop"))
                && e.contains("1 Insufficient cpu"),
            "{e}"
        );
        assert!(e.contains("the bpc-agent sidecar requests --cpu 3"), "{e}");
        assert!(e.contains(&format!("kubectl bpc detach deployment/{name} -n shop")), "{e}");
    }
}

#[tokio::test]
async fn one_timeout_bounds_every_workload_followed_together() {
    let starting = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]});
    let script = any_order(vec![
        ex("GET", "/apis/apps/v1/namespaces/shop/deployments/web", &[], rolling("web")).repeatable(),
        ex("GET", "/apis/apps/v1/namespaces/shop/deployments/api", &[], rolling("api")).repeatable(),
        ex(
            "GET",
            PODS,
            &["labelSelector=app%3Dweb"],
            pod_list(vec![new_pod("web", "50m", starting.clone())]),
        )
        .repeatable(),
        ex("GET", PODS, &["labelSelector=app%3Dapi"], pod_list(vec![new_pod("api", "50m", starting)]))
            .repeatable(),
    ]);
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let (results, seen) = with_server(script, |k| async move {
        rollout::wait(&k.client, &deploy_targets(&["web", "api"]), Instant::now() + timeout, timeout).await
    })
    .await;
    let took = started.elapsed();
    // One after the other would take two timeouts.
    assert!(took >= timeout && took < timeout + Duration::from_millis(1500), "took {took:?}");
    for r in &results {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(e.contains("rollout not finished after 3s"), "{e}");
    }
    let polled = |path: &str| seen.iter().filter(|s| s.path == path).count();
    assert!(polled("/apis/apps/v1/namespaces/shop/deployments/api") >= 2, "api was followed while web was");
}

#[tokio::test]
async fn wait_stops_early_when_a_new_pods_agent_crash_loops_and_ignores_old_pods_being_deleted() {
    let crashing = json!({"phase": "Running", "initContainerStatuses": [{"name": "bpc-agent", "image": "i",
        "imageID": "", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 2, "message": "BPC_COLLECTOR is empty"}}}]});
    let old = json!({"metadata": {"name": "web-old", "namespace": "shop", "labels": {"app": "web"},
        "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Running"}});
    let script = vec![
        ex("GET", "/apis/apps/v1/namespaces/shop/deployments/web", &[], rolling("web")),
        ex("GET", PODS, &["labelSelector=app%3Dweb"], pod_list(vec![old, new_pod("web", "50m", crashing)])),
    ];
    let (mut results, _) = with_server(script, |k| async move {
        let timeout = Duration::from_secs(60);
        rollout::wait(&k.client, &deploy_targets(&["web"]), Instant::now() + timeout, timeout).await
    })
    .await;
    let e = results.remove(0).unwrap_err().to_string();
    assert!(e.contains("pod web-new: the bpc-agent container crash-loops (4 restarts; last exit 2: BPC_COLLECTOR is empty)"), "{e}");
}
