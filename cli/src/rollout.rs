//! `--wait`: follows the rollouts of attach or detach, every workload
//! together under one deadline, with a progress line each, and stops a
//! workload early when it cannot finish: the controller cannot create pods
//! (Pod Security rejects Pods, not the Deployment, so this is where a refused
//! sidecar shows up), a new pod is unschedulable (the sidecar's requests may
//! be what does not fit), or a new pod's agent crash-loops.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::sidecar::AGENT_CONTAINER;
use crate::workload::{KindApi, WorkloadId, WorkloadKind};

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    /// Every pod runs the new template and is available.
    Complete,
    /// Still rolling: pods on the new template, available ones, wanted ones.
    Progressing {
        /// Pods running the current template.
        updated: i64,
        /// Pods available (Deployment, DaemonSet) or ready (StatefulSet).
        available: i64,
        /// Pods wanted.
        desired: i64,
    },
    /// The controller cannot make progress; the message says why.
    Failed(String),
}

/// Desired/updated/ready replica counts of a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Replicas wanted (a DaemonSet: pods scheduled).
    pub desired: i32,
    /// Replicas running the current template.
    pub updated: i32,
    /// Replicas ready.
    pub ready: i32,
}

/// The replica counts of a workload object (as the API returns it); a
/// Deployment or StatefulSet without `replicas` wants one.
pub fn counts(kind: WorkloadKind, object: &Value) -> Rollout {
    let clamp = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    let int32 = |pointer: &str| clamp(int(object, pointer));
    match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => Rollout {
            desired: object.pointer("/spec/replicas").and_then(Value::as_i64).map_or(1, clamp),
            updated: int32("/status/updatedReplicas"),
            ready: int32("/status/readyReplicas"),
        },
        WorkloadKind::DaemonSet => Rollout {
            desired: int32("/status/desiredNumberScheduled"),
            updated: int32("/status/updatedNumberScheduled"),
            ready: int32("/status/numberReady"),
        },
        // Nothing rolls: a CronJob's next Job, a Job's or a Pod's own pods
        // are what they are. Their running pods count as they are.
        WorkloadKind::CronJob => {
            let active = object.pointer("/status/active").and_then(Value::as_array).map_or(0, Vec::len);
            let n = clamp(active as i64);
            Rollout { desired: n, updated: n, ready: n }
        }
        WorkloadKind::Job => {
            let active = int32("/status/active");
            Rollout { desired: active, updated: active, ready: int32("/status/ready") }
        }
        WorkloadKind::Pod => Rollout { desired: 1, updated: 1, ready: 1 },
    }
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn condition<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind)
}

/// Reads the rollout state from a workload object (as the API returns it).
pub fn state(kind: WorkloadKind, object: &Value) -> RolloutState {
    let generation = int(object, "/metadata/generation");
    let observed = int(object, "/status/observedGeneration");
    let (updated, available, desired, total) = match kind {
        WorkloadKind::Deployment => {
            if let Some(c) = condition(object, "ReplicaFailure").filter(|c| c["status"] == "True") {
                let message = c["message"].as_str().unwrap_or("the ReplicaSet cannot create pods");
                return RolloutState::Failed(format!(
                    "{}: {message}",
                    c["reason"].as_str().unwrap_or("FailedCreate")
                ));
            }
            if let Some(c) = condition(object, "Progressing")
                .filter(|c| c["reason"] == "ProgressDeadlineExceeded" && c["status"] == "False")
            {
                return RolloutState::Failed(
                    c["message"].as_str().unwrap_or("progress deadline exceeded").to_owned(),
                );
            }
            let desired = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            (
                int(object, "/status/updatedReplicas"),
                int(object, "/status/availableReplicas"),
                desired,
                int(object, "/status/replicas"),
            )
        }
        WorkloadKind::StatefulSet => {
            let desired = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let same_revision =
                object.pointer("/status/currentRevision") == object.pointer("/status/updateRevision");
            let updated = int(object, "/status/updatedReplicas");
            let updated =
                if same_revision { updated.max(int(object, "/status/currentReplicas")) } else { updated };
            (updated, int(object, "/status/readyReplicas"), desired, int(object, "/status/replicas"))
        }
        WorkloadKind::DaemonSet => {
            let desired = int(object, "/status/desiredNumberScheduled");
            (
                int(object, "/status/updatedNumberScheduled"),
                int(object, "/status/numberAvailable"),
                desired,
                int(object, "/status/currentNumberScheduled"),
            )
        }
        // A changed CronJob takes effect with its next Job: nothing to wait for.
        WorkloadKind::CronJob | WorkloadKind::Job | WorkloadKind::Pod => return RolloutState::Complete,
    };
    if observed >= generation && updated >= desired && available >= desired && total <= desired {
        RolloutState::Complete
    } else {
        RolloutState::Progressing { updated, available, desired }
    }
}

/// `FailedCreate` events of a StatefulSet or DaemonSet (their controllers
/// report a refused pod only as an event, not as a condition), as
/// (uid, count, message). A Deployment's ReplicaSet failure is already in the
/// Deployment's `ReplicaFailure` condition.
async fn failed_create_events(
    client: &kube::Client,
    id: &WorkloadId,
) -> Result<Vec<(String, i32, String)>, Error> {
    if id.kind == WorkloadKind::Deployment {
        return Ok(Vec::new());
    }
    let api = kube::Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &id.namespace);
    let fields =
        format!("involvedObject.kind={},involvedObject.name={},reason=FailedCreate", id.kind, id.name);
    let list = api.list(&kube::api::ListParams::default().fields(&fields)).await?;
    Ok(list
        .items
        .into_iter()
        .map(|e| (e.metadata.uid.unwrap_or_default(), e.count.unwrap_or(1), e.message.unwrap_or_default()))
        .collect())
}

/// The first FailedCreate event that is new since `before` (or counted again).
pub fn new_failure(before: &[(String, i32, String)], now: &[(String, i32, String)]) -> Option<String> {
    now.iter()
        .find(|(uid, count, _)| !before.iter().any(|(u, c, _)| u == uid && c >= count))
        .map(|(_, _, message)| format!("FailedCreate: {message}"))
}

/// A workload to follow: the change made to it decides which of its pods
/// are new (attach: those with the sidecar; detach: those without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTarget {
    /// The workload.
    pub id: WorkloadId,
    /// Whether its new template carries the sidecar.
    pub attached: bool,
}

/// Whether `pod` is one of the rollout's new pods: not being deleted, with
/// the sidecar when `attached` (without it otherwise) and, when the new
/// template carries the status annotation `record`, that same record. Why
/// the record: re-attaching with other options leaves the previous
/// attached template's pods beside the new ones for a moment, and one left
/// unschedulable by the previous options (`--cpu 3`) is not the new
/// template's failure (the real cluster's e2e saw it stop a re-attach).
pub fn is_new_pod(pod: &Pod, attached: bool, record: Option<&str>) -> bool {
    let annotation =
        || pod.metadata.annotations.as_ref()?.get(crate::sidecar::STATUS_ANNOTATION).map(String::as_str);
    pod.metadata.deletion_timestamp.is_none()
        && crate::pod_spec::pod_is_attached(pod) == attached
        && (!attached || record.is_none() || annotation() == record)
}

/// Why a new pod ([`is_new_pod`]) stops the wait early, if it does: the
/// scheduler finds no node for it, or (attach) its agent crash-loops.
pub fn pod_failure(pod: &Pod, attached: bool, record: Option<&str>) -> Option<String> {
    if !is_new_pod(pod, attached, record) {
        return None;
    }
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    if let Some(message) = crate::pod_spec::unschedulable(pod) {
        let sidecar: Vec<String> = ["cpu", "memory"]
            .into_iter()
            .filter(|r| message.contains(&format!("Insufficient {r}")))
            .filter_map(|r| crate::pod_spec::agent_request(pod, r).map(|q| format!("--{r} {q}")))
            .collect();
        let hint = if sidecar.is_empty() {
            String::new()
        } else {
            format!(" (the bpc-agent sidecar requests {}: re-attach with less)", sidecar.join(", "))
        };
        return Some(format!("pod {name} is unschedulable: {}{hint}", message.trim()));
    }
    let statuses = pod.status.as_ref()?;
    let agent = statuses
        .init_container_statuses
        .iter()
        .flatten()
        .chain(statuses.container_statuses.iter().flatten())
        .find(|c| c.name == AGENT_CONTAINER)?;
    let waiting = agent.state.as_ref()?.waiting.as_ref()?;
    if waiting.reason.as_deref() != Some("CrashLoopBackOff") {
        return None;
    }
    let last = agent.last_state.as_ref().and_then(|l| l.terminated.as_ref()).map_or(String::new(), |t| {
        format!(
            "; last exit {}{}",
            t.exit_code,
            t.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default()
        )
    });
    Some(format!(
        "pod {name}: the bpc-agent container crash-loops ({} restarts{last}); see kubectl bpc status",
        agent.restart_count
    ))
}

/// `k=v,...` of the workload's `spec.selector.matchLabels`, for listing its pods.
fn selector(object: &Value) -> Option<String> {
    let labels = object.pointer("/spec/selector/matchLabels")?.as_object()?;
    let pairs: Vec<String> =
        labels.iter().filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}"))).collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

/// `kind/name -n NS`, as kubectl takes it.
fn arg(id: &WorkloadId) -> String {
    format!("{}/{} -n {}", id.kind.as_str().to_ascii_lowercase(), id.name, id.namespace)
}

/// Follows one workload until its rollout completes, fails, or `deadline`.
async fn follow(
    client: &kube::Client,
    target: &WaitTarget,
    deadline: Instant,
    timeout: Duration,
    bar: &indicatif::ProgressBar,
) -> Result<(), Error> {
    let id = &target.id;
    let api = id.kind.api(client, &id.namespace);
    let pods = kube::Api::<Pod>::namespaced(client.clone(), &id.namespace);
    let events_before = failed_create_events(client, id).await?;
    let failed = |message: String| {
        Error::Workload(format!(
            "{id} in namespace {}: rollout failed: {message}\n  roll back with: kubectl bpc detach {}",
            id.namespace,
            arg(id)
        ))
    };
    loop {
        let object = serde_json::to_value(api.get(&id.name).await?)?;
        let mut state = state(id.kind, &object);
        if state != RolloutState::Complete
            && let Some(failure) = new_failure(&events_before, &failed_create_events(client, id).await?)
        {
            state = RolloutState::Failed(failure);
        }
        let mut waiting_for = String::new();
        if let RolloutState::Progressing { .. } = state
            && let Some(labels) = selector(&object)
        {
            let list = pods.list(&kube::api::ListParams::default().labels(&labels)).await?;
            let record = object
                .pointer("/spec/template/metadata/annotations")
                .and_then(|a| a.get(crate::sidecar::STATUS_ANNOTATION))
                .and_then(Value::as_str);
            if let Some(failure) = list.items.iter().find_map(|p| pod_failure(p, target.attached, record)) {
                state = RolloutState::Failed(failure);
            }
            let new_pending: Vec<&str> = list
                .items
                .iter()
                .filter(|p| is_new_pod(p, target.attached, record))
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running"))
                .filter_map(|p| p.metadata.name.as_deref())
                .collect();
            let leaving = list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_some()).count();
            if !new_pending.is_empty() {
                waiting_for = format!("; starting: {}", new_pending.join(", "));
            }
            if leaving > 0 {
                waiting_for.push_str(&format!("; {leaving} old terminating"));
            }
        }
        match state {
            RolloutState::Complete => {
                bar.finish_with_message(format!("{id}: rolled out"));
                return Ok(());
            }
            RolloutState::Failed(message) => {
                bar.finish_with_message(format!("{id}: failed"));
                return Err(failed(message));
            }
            RolloutState::Progressing { updated, available, desired } => {
                bar.set_message(format!(
                    "{id}: {updated}/{desired} updated, {available}/{desired} available{waiting_for}"
                ));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            bar.finish_with_message(format!("{id}: timed out"));
            return Err(Error::Workload(format!(
                "{id} in namespace {}: rollout not finished after {}s (see kubectl rollout status {} \
                 and kubectl bpc status {})",
                id.namespace,
                timeout.as_secs(),
                arg(id),
                arg(id)
            )));
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// How often a rollout is polled.
const POLL: Duration = Duration::from_secs(2);

/// Follows every workload's rollout together, one progress line each, until
/// each completes or fails, or `deadline` (one for the whole command)
/// passes. Returns each workload's outcome, in the order given.
pub async fn wait(
    client: &kube::Client,
    targets: &[WaitTarget],
    deadline: Instant,
    timeout: Duration,
) -> Vec<Result<(), Error>> {
    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    let follows = targets.iter().map(|t| {
        let bar = bars.add(indicatif::ProgressBar::new_spinner().with_style(style.clone()));
        bar.set_message(format!("{}: waiting", t.id));
        bar.enable_steady_tick(Duration::from_millis(120));
        async move {
            let result = follow(client, t, deadline, timeout, &bar).await;
            bar.finish_and_clear();
            result
        }
    });
    futures::future::join_all(follows).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(status: Value) -> Value {
        json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn counts_read_replicas_for_deployments_and_scheduled_pods_for_daemon_sets() {
        let d = json!({"spec": {}, "status": {"updatedReplicas": 1, "readyReplicas": 1}});
        assert_eq!(counts(WorkloadKind::Deployment, &d), Rollout { desired: 1, updated: 1, ready: 1 });
        let s = json!({"spec": {"replicas": 3}, "status": {"updatedReplicas": 2}});
        assert_eq!(counts(WorkloadKind::StatefulSet, &s), Rollout { desired: 3, updated: 2, ready: 0 });
        let ds = json!({"spec": {"replicas": 9},
            "status": {"desiredNumberScheduled": 4, "updatedNumberScheduled": 3, "numberReady": 2}});
        assert_eq!(counts(WorkloadKind::DaemonSet, &ds), Rollout { desired: 4, updated: 3, ready: 2 });
    }

    #[test]
    fn deployment_is_complete_when_every_replica_is_updated_and_available() {
        let d = deployment(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(state(WorkloadKind::Deployment, &d), RolloutState::Complete);
    }

    #[test]
    fn deployment_with_old_pods_or_unobserved_generation_is_progressing() {
        let d = deployment(
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert!(matches!(state(WorkloadKind::Deployment, &d), RolloutState::Progressing { .. }));
        let d = deployment(
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            state(WorkloadKind::Deployment, &d),
            RolloutState::Progressing { updated: 3, available: 3, desired: 3 }
        );
    }

    #[test]
    fn replica_failure_reports_the_admission_message() {
        let d = deployment(
            json!({"observedGeneration": 2, "conditions": [{"type": "ReplicaFailure", "status": "True",
            "reason": "FailedCreate",
            "message": "pods \"web-1\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities"}]}),
        );
        let RolloutState::Failed(m) = state(WorkloadKind::Deployment, &d) else { panic!() };
        assert!(m.starts_with("FailedCreate: ") && m.contains("PodSecurity"), "{m}");
    }

    #[test]
    fn only_failed_create_events_new_since_the_attach_count() {
        let old = vec![("u1".to_owned(), 3, "old refusal".to_owned())];
        assert_eq!(new_failure(&old, &old), None);
        let again = vec![("u1".to_owned(), 4, "refused again".to_owned())];
        assert_eq!(new_failure(&old, &again).unwrap(), "FailedCreate: refused again");
        let fresh = vec![old[0].clone(), ("u2".to_owned(), 1, "pods \"db-0\" is forbidden".to_owned())];
        assert!(new_failure(&old, &fresh).unwrap().contains("forbidden"));
    }

    #[test]
    fn statefulset_and_daemonset_states() {
        let s = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1,
            "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "a"}});
        assert_eq!(state(WorkloadKind::StatefulSet, &s), RolloutState::Complete);
        let d = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3, "updatedNumberScheduled": 1, "numberAvailable": 3}});
        assert_eq!(
            state(WorkloadKind::DaemonSet, &d),
            RolloutState::Progressing { updated: 1, available: 3, desired: 3 }
        );
    }

    #[test]
    fn an_unschedulable_pod_of_the_previous_attached_template_does_not_fail_a_re_attach() {
        let pod = |record: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "v1-old", "annotations": {crate::sidecar::STATUS_ANNOTATION: record}},
                "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": AGENT_CONTAINER}]},
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                    "message": "0/1 nodes are available: 1 Insufficient cpu."}]}
            }))
            .unwrap()
        };
        let old = pod(r#"{"options":{"cpu":"3"}}"#);
        let new_record = r#"{"options":{}}"#;
        assert!(!is_new_pod(&old, true, Some(new_record)));
        assert_eq!(pod_failure(&old, true, Some(new_record)), None);
        // A pod of the new template, or with no record to compare, still fails the wait.
        let new = pod(new_record);
        assert!(pod_failure(&new, true, Some(new_record)).unwrap().contains("Insufficient cpu"));
        assert!(pod_failure(&old, true, None).is_some());
        // Detach: the pods without the sidecar are the new ones.
        assert_eq!(pod_failure(&old, false, None), None);
    }
}
