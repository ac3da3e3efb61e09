//! `--wait`: follows a workload's rollout after attach or detach, with a
//! progress line, and stops early with the admission message when the
//! controller cannot create pods (Pod Security rejects Pods, not the
//! Deployment, so this is where a refused sidecar shows up).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
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

/// Polls the workload until its rollout completes, fails or `timeout`
/// passes, showing progress. Returns the failure message as an error.
pub async fn wait(client: &kube::Client, id: &WorkloadId, timeout: Duration) -> Result<(), Error> {
    let api = id.kind.api(client, &id.namespace);
    let events_before = failed_create_events(client, id).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let start = Instant::now();
    let result = loop {
        let object = serde_json::to_value(api.get(&id.name).await?)?;
        let mut state = state(id.kind, &object);
        if state != RolloutState::Complete
            && let Some(failure) = new_failure(&events_before, &failed_create_events(client, id).await?)
        {
            state = RolloutState::Failed(failure);
        }
        match state {
            RolloutState::Complete => break Ok(()),
            RolloutState::Failed(message) => {
                break Err(Error::Workload(format!(
                    "{id} in namespace {}: rollout failed: {message}\n  roll back with: kubectl bpc detach {}/{} -n {}",
                    id.namespace,
                    id.kind.as_str().to_ascii_lowercase(),
                    id.name,
                    id.namespace
                )));
            }
            RolloutState::Progressing { updated, available, desired } => {
                bar.set_message(format!(
                    "{id}: {updated}/{desired} updated, {available}/{desired} available"
                ));
            }
        }
        if start.elapsed() >= timeout {
            break Err(Error::Workload(format!(
                "{id} in namespace {}: rollout not finished after {}s (see kubectl rollout status {}/{} -n {})",
                id.namespace,
                timeout.as_secs(),
                id.kind.as_str().to_ascii_lowercase(),
                id.name,
                id.namespace
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    bar.finish_and_clear();
    result
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
}
