//! The cluster reads of `status`: the workloads, their pods, the agents'
//! container states and two `/stats` samples of each running agent.

use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use super::StatusArgs;
use super::judge::{Deleting, HintContext, PodObservation, SidecarRequests, judge, judge_workload};
use super::report::{AgentContainer, PodReport, Rollout, StatusReport, Verdict, WorkloadReport};
use crate::Error;
use crate::kube_context::scoped_api as api;
use crate::map::OwnerCache;
use crate::pod_proxy::{self, AgentStats, ProxyError};
use crate::sidecar::{AGENT_CONTAINER, AttachRecord, STATUS_ANNOTATION};
use crate::workload::{KindApi, WorkloadKind, WorkloadRef};

/// Agent `/stats` reads in flight at once.
const PROXY_CONCURRENCY: usize = 8;

/// A workload found in the cluster.
#[derive(Debug, Clone)]
struct Found {
    namespace: String,
    kind: WorkloadKind,
    name: String,
    attached: bool,
    rollout: Rollout,
}

impl Found {
    /// `kind/name`, as kubectl takes it.
    fn arg(&self) -> String {
        format!("{}/{}", self.kind.lower(), self.name)
    }
}

/// Every workload of `kinds` in scope, in that order.
async fn find_workloads(
    client: &Client,
    namespace: Option<&str>,
    kinds: &[WorkloadKind],
) -> Result<Vec<Found>, Error> {
    let mut found = Vec::new();
    for &kind in kinds {
        let list = match namespace {
            Some(ns) => kind.api(client, ns),
            None => kind.api_all(client),
        };
        for o in list.list(&ListParams::default()).await?.items {
            let template = o.data.pointer(kind.template_pointer()).cloned().unwrap_or(Value::Null);
            let template: Option<PodTemplateSpec> = serde_json::from_value(template).ok();
            found.push(Found {
                namespace: o.namespace().unwrap_or_default(),
                kind,
                name: o.name_any(),
                attached: template.as_ref().is_some_and(crate::pod_spec::template_attached),
                rollout: crate::rollout::counts(kind, &o.data),
            });
        }
    }
    Ok(found)
}

/// The kinds to list for the workloads named: only those named with a kind
/// (`ds/edge` needs RBAC on daemonsets only, not on every attachable kind),
/// every attachable kind when none is named or a bare `NAME` is.
fn kinds_to_list(wanted: &[String]) -> Result<Vec<WorkloadKind>, Error> {
    let mut named = Vec::new();
    for arg in wanted {
        match WorkloadRef::parse(arg)?.kind {
            Some(kind) => named.push(kind),
            None => return Ok(WorkloadKind::ATTACHABLE.to_vec()),
        }
    }
    if named.is_empty() {
        return Ok(WorkloadKind::ATTACHABLE.to_vec());
    }
    Ok(WorkloadKind::ATTACHABLE.into_iter().filter(|k| named.contains(k)).collect())
}

/// Selects the workloads to report: the named ones (an unknown name is a
/// usage error), else every attached one.
fn select(found: Vec<Found>, wanted: &[String]) -> Result<Vec<Found>, Error> {
    if wanted.is_empty() {
        return Ok(found.into_iter().filter(|f| f.attached).collect());
    }
    let mut out = Vec::new();
    for arg in wanted {
        let named = WorkloadRef::parse(arg)?;
        let hits: Vec<&Found> = found.iter().filter(|f| named.matches(f.kind, &f.name)).collect();
        if hits.is_empty() {
            return Err(Error::Usage(format!("workload '{arg}' not found (check -n/--namespace)")));
        }
        out.extend(hits.into_iter().cloned());
    }
    Ok(out)
}

/// Whether the pod's sidecar was attached with `--metrics-private`, as its
/// status annotation (copied from the template) records.
fn metrics_private(pod: &Pod) -> bool {
    pod.annotations()
        .get(STATUS_ANNOTATION)
        .and_then(|a| AttachRecord::parse(a).ok())
        .is_some_and(|r| r.options.metrics_private)
}

fn agent_status(pod: &Pod) -> Option<AgentContainer> {
    let st = pod.status.as_ref();
    let all = st
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(st.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten());
    if let Some(cs) = all.into_iter().find(|c| c.name == AGENT_CONTAINER) {
        return Some(AgentContainer::from_status(cs));
    }
    crate::pod_spec::pod_is_attached(pod).then(AgentContainer::pending)
}

/// Whether the pod is being deleted, with its grace period.
fn deleting(pod: &Pod) -> Option<Deleting> {
    pod.metadata
        .deletion_timestamp
        .as_ref()
        .map(|_| Deleting { grace_seconds: pod.metadata.deletion_grace_period_seconds })
}

/// The sidecar's requests, to name in an unschedulable pod's hint.
fn sidecar_requests(pod: &Pod) -> SidecarRequests {
    use crate::pod_spec::agent_request;
    SidecarRequests { cpu: agent_request(pod, "cpu"), memory: agent_request(pod, "memory") }
}

/// The agent's last log lines before its restart; a courtesy: a pod whose
/// previous log is gone still gets its verdict.
async fn previous_log(client: &Client, namespace: &str, pod: &str, lines: i64) -> Vec<String> {
    let lp = LogParams {
        container: Some(AGENT_CONTAINER.into()),
        previous: true,
        tail_lines: Some(lines),
        ..LogParams::default()
    };
    match Api::<Pod>::namespaced(client.clone(), namespace).logs(pod, &lp).await {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

/// Runs `kubectl bpc status` against a client; returns the report.
pub async fn collect(
    client: &Client,
    namespace: Option<&str>,
    args: &StatusArgs,
) -> Result<StatusReport, Error> {
    let kinds = kinds_to_list(&args.workloads)?;
    let found = select(find_workloads(client, namespace, &kinds).await?, &args.workloads)?;
    if found.is_empty() {
        return Ok(StatusReport::new(Vec::new()));
    }
    let lp = ListParams::default();
    let mut owners =
        OwnerCache::from_replica_sets(&api::<ReplicaSet>(client, namespace).list(&lp).await?.items);
    // A CronJob's pods belong to its Jobs: read those only when one is reported.
    if found.iter().any(|f| f.kind == WorkloadKind::CronJob) {
        for job in api::<k8s_openapi::api::batch::v1::Job>(client, namespace).list(&lp).await?.items {
            owners.insert_job(&job);
        }
    }
    let pods = api::<Pod>(client, namespace).list(&lp).await?.items;

    // (workload index, pod, agent)
    let mut members: Vec<(usize, Pod, Option<AgentContainer>)> = Vec::new();
    for pod in pods {
        let w = owners.workload_of(&pod);
        let ns = pod.namespace().unwrap_or_default();
        if let Some(i) =
            found.iter().position(|f| f.namespace == ns && f.kind.as_str() == w.kind && f.name == w.name)
        {
            let agent = agent_status(&pod);
            members.push((i, pod, agent));
        }
    }
    // A pod being deleted is not read: its agent is stopping or gone.
    let readable = |pod: &Pod, a: &Option<AgentContainer>| {
        a.as_ref().is_some_and(AgentContainer::running) && !metrics_private(pod) && deleting(pod).is_none()
    };
    // A few proxy calls in flight at once: a large cluster is read in
    // seconds, without flooding the API server. Results keep pod order.
    let fetch = |i: usize, wanted: bool| {
        let pod = &members[i].1;
        async move {
            if wanted {
                Some(
                    pod_proxy::fetch_stats(
                        client,
                        &pod.namespace().unwrap_or_default(),
                        &pod.name_any(),
                        pod_proxy::metrics_port(pod),
                    )
                    .await,
                )
            } else {
                None
            }
        }
    };
    let first: Vec<Option<Result<AgentStats, ProxyError>>> = stream::iter(0..members.len())
        .map(|i| fetch(i, readable(&members[i].1, &members[i].2)))
        .buffered(PROXY_CONCURRENCY)
        .collect()
        .await;
    let mut second: Vec<Option<AgentStats>> = vec![None; members.len()];
    if args.sample_interval > 0 && first.iter().any(|f| matches!(f, Some(Ok(_)))) {
        tokio::time::sleep(Duration::from_secs(args.sample_interval)).await;
        second = stream::iter(0..members.len())
            .map(|i| fetch(i, matches!(first[i], Some(Ok(_)))))
            .buffered(PROXY_CONCURRENCY)
            .map(|r| r.and_then(Result::ok))
            .collect()
            .await;
    }
    let mut per_workload: Vec<Vec<PodReport>> = vec![Vec::new(); found.len()];
    for (((wi, pod, agent), first), second) in members.into_iter().zip(first).zip(second) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let workload = found[wi].arg();
        let obs = PodObservation {
            agent: agent.clone(),
            first,
            second,
            interval_seconds: args.sample_interval as f64,
            no_traffic_after: args.no_traffic_after as f64,
            metrics_private: metrics_private(&pod),
            deleting: deleting(&pod),
            unschedulable: crate::pod_spec::unschedulable(&pod),
            sidecar_requests: sidecar_requests(&pod),
        };
        let ctx = HintContext {
            namespace: &ns,
            pod: &name,
            workload: &workload,
            metrics_port: pod_proxy::metrics_port(&pod),
        };
        let judgement = judge(&obs, &ctx);
        let logs = if judgement.verdict == Verdict::Crashloop && args.log_lines > 0 {
            previous_log(client, &ns, &name, args.log_lines).await
        } else {
            Vec::new()
        };
        let stats = obs.second.or(obs.first.and_then(Result::ok));
        per_workload[wi].push(PodReport {
            ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            name,
            agent,
            stats,
            judgement,
            logs,
        });
    }
    let workloads = found
        .into_iter()
        .zip(per_workload)
        .map(|(f, mut pods)| {
            pods.sort_by(|a, b| a.name.cmp(&b.name));
            let judgement = judge_workload(f.attached, f.rollout, &pods, &f.arg(), &f.namespace);
            WorkloadReport {
                namespace: f.namespace,
                kind: f.kind,
                name: f.name,
                attached: f.attached,
                rollout: f.rollout,
                judgement,
                pods,
            }
        })
        .collect();
    Ok(StatusReport::new(workloads))
}
