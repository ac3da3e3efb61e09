//! The state of a capture container, read from its pod's status, and the
//! waits for it to run and to end.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use super::Planned;
use crate::Error;
use crate::kube_context::Kube;

/// How long the container may take to start (image pull included).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The state of an ephemeral container in a pod's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not in the status yet, or waiting (with the reason).
    Waiting(Option<String>),
    /// Running since (RFC 3339).
    Running(Option<String>),
    /// Ended: exit code, reason/message, start and finish times.
    Terminated { exit_code: i32, message: Option<String>, started: Option<String>, finished: Option<String> },
}

/// The state of container `name` in `pod`.
pub fn container_state(pod: &Pod, name: &str) -> ContainerState {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.ephemeral_container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == name));
    let Some(state) = status.and_then(|s| s.state.as_ref()) else { return ContainerState::Waiting(None) };
    if let Some(t) = &state.terminated {
        let message = t.message.clone().or_else(|| t.reason.clone());
        return ContainerState::Terminated {
            exit_code: t.exit_code,
            message,
            started: t.started_at.as_ref().map(|t| t.0.to_string()),
            finished: t.finished_at.as_ref().map(|t| t.0.to_string()),
        };
    }
    if let Some(r) = &state.running {
        return ContainerState::Running(r.started_at.as_ref().map(|t| t.0.to_string()));
    }
    ContainerState::Waiting(state.waiting.as_ref().and_then(|w| w.reason.clone()))
}

/// Waits for the container to run; fails on an image that cannot be pulled
/// or a container that ended already.
pub(super) async fn wait_running(kube: &Kube, plan: &Planned) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &plan.namespace);
    let deadline = Instant::now() + START_TIMEOUT;
    let name = plan.container_name();
    loop {
        let pod = api.get(&plan.pod).await.map_err(Error::Kube)?;
        match container_state(&pod, name) {
            ContainerState::Running(_) => return Ok(()),
            ContainerState::Terminated { exit_code, message, .. } => {
                return Err(Error::Workload(format!(
                    "pod/{}: {name} ended before the capture started (exit {exit_code}): {}",
                    plan.pod,
                    message.unwrap_or_default().trim()
                )));
            }
            ContainerState::Waiting(Some(reason))
                if ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerError"]
                    .contains(&reason.as_str()) =>
            {
                return Err(Error::Workload(format!(
                    "pod/{}: {name} cannot start: {reason} (check --image)",
                    plan.pod
                )));
            }
            ContainerState::Waiting(_) if Instant::now() > deadline => {
                return Err(Error::Workload(format!(
                    "pod/{}: {name} did not start within {}s",
                    plan.pod,
                    START_TIMEOUT.as_secs()
                )));
            }
            ContainerState::Waiting(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// The container's state once it ended (or after a few seconds, whatever it is).
pub(super) async fn wait_ended(pods: &Api<Pod>, p: &Planned) -> ContainerState {
    let mut state = ContainerState::Waiting(None);
    for _ in 0..20 {
        if let Ok(pod) = pods.get(&p.pod).await {
            state = container_state(&pod, p.container_name());
            if matches!(state, ContainerState::Terminated { .. }) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    state
}
