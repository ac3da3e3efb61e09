//! The vocabulary of a status report: verdicts, what was seen of each agent
//! container, and the documented `status -o json` document. [`super::judge`]
//! writes it, [`super::render`] prints it.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::ContainerStatus;
use serde::{Deserialize, Serialize};

use crate::pod_proxy::AgentStats;
pub use crate::rollout::Rollout;
use crate::workload::{WorkloadKind, kind_serde};

/// Verdict of one pod (and, as the worst of its pods, of a workload).
/// Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Verdict {
    /// Capturing and sending.
    Ok,
    /// The pod is being deleted (an old pod of a rollout in its grace
    /// period): shown with its sidecar's state, and not failing its workload
    /// once the rollout is complete.
    Terminating,
    /// Nothing captured for longer than the threshold.
    NoTraffic,
    /// Kernel, interface or rate-limit drops rising.
    Dropping,
    /// Sends to a collector fail.
    CollectorUnreachable,
    /// The agent runs but its capture could not start or failed (it serves the reason).
    NotCapturing,
    /// The agent's `/stats` could not be read through the pod proxy.
    StatsUnavailable,
    /// The agent container exists but is not running (image pull, creating...).
    AgentNotRunning,
    /// The agent keeps restarting.
    Crashloop,
    /// The agent exited 2 because it lacks CAP_NET_RAW.
    MissingNetRaw,
    /// No `bpc-agent` sidecar in the pod (or workload).
    NotAttached,
    /// The scheduler finds no node for the pod (its PodScheduled condition):
    /// worst, since it stops a rollout and leaves old pods NOT-ATTACHED.
    Unschedulable,
}

impl Verdict {
    /// Every verdict, from best to worst.
    pub const ALL: [Verdict; 12] = [
        Verdict::Ok,
        Verdict::Terminating,
        Verdict::NoTraffic,
        Verdict::Dropping,
        Verdict::CollectorUnreachable,
        Verdict::NotCapturing,
        Verdict::StatsUnavailable,
        Verdict::AgentNotRunning,
        Verdict::Crashloop,
        Verdict::MissingNetRaw,
        Verdict::NotAttached,
        Verdict::Unschedulable,
    ];

    /// The label printed and written in JSON.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Terminating => "TERMINATING",
            Verdict::NoTraffic => "NO-TRAFFIC",
            Verdict::Dropping => "DROPPING",
            Verdict::CollectorUnreachable => "COLLECTOR-UNREACHABLE",
            Verdict::StatsUnavailable => "STATS-UNAVAILABLE",
            Verdict::NotCapturing => "NOT-CAPTURING",
            Verdict::AgentNotRunning => "AGENT-NOT-RUNNING",
            Verdict::Unschedulable => "UNSCHEDULABLE",
            Verdict::Crashloop => "CRASHLOOP",
            Verdict::MissingNetRaw => "MISSING-NET-RAW",
            Verdict::NotAttached => "NOT-ATTACHED",
        }
    }
}

/// The state of a container, as the pod status names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Running.
    Running,
    /// Waiting (image pull, back-off, not created yet).
    Waiting,
    /// Ended.
    Terminated,
    /// No state reported.
    #[default]
    Unknown,
}

impl ContainerState {
    /// The name printed and written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Running => "running",
            ContainerState::Waiting => "waiting",
            ContainerState::Terminated => "terminated",
            ContainerState::Unknown => "unknown",
        }
    }
}

/// State of the `bpc-agent` container, from the pod status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentContainer {
    /// Its current state.
    pub state: ContainerState,
    /// Waiting/terminated reason of the current state (e.g. `CrashLoopBackOff`).
    pub reason: Option<String>,
    /// Container restarts.
    pub restarts: i32,
    /// Whether the container is ready.
    pub ready: bool,
    /// The last termination, if the container restarted.
    pub last_termination: Option<Termination>,
}

/// A container termination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// Exit code (2 = configuration/permission error).
    pub exit_code: i32,
    /// Kubernetes reason (`Error`, `OOMKilled`, ...).
    pub reason: Option<String>,
    /// Termination message (the agent writes its fatal error there).
    pub message: Option<String>,
}

impl AgentContainer {
    /// Reads the agent container's state from a container status.
    pub fn from_status(cs: &ContainerStatus) -> Self {
        let (state, reason, current_term) = match cs.state.as_ref() {
            Some(s) if s.running.is_some() => (ContainerState::Running, None, None),
            Some(s) if s.waiting.is_some() => {
                (ContainerState::Waiting, s.waiting.as_ref().and_then(|w| w.reason.clone()), None)
            }
            Some(s) if s.terminated.is_some() => {
                let t = s.terminated.as_ref();
                (ContainerState::Terminated, t.and_then(|t| t.reason.clone()), t)
            }
            _ => (ContainerState::Unknown, None, None),
        };
        let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()).or(current_term);
        AgentContainer {
            state,
            reason,
            restarts: cs.restart_count,
            ready: cs.ready,
            last_termination: last.map(|t| Termination {
                exit_code: t.exit_code,
                reason: t.reason.clone(),
                message: t.message.clone(),
            }),
        }
    }

    /// Declared in the pod but without a status yet (pod pending): not
    /// running, not missing.
    pub fn pending() -> Self {
        AgentContainer { state: ContainerState::Waiting, ..Default::default() }
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.state == ContainerState::Running
    }
}

/// A verdict with its reason and, unless OK, a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
    /// What to run or change (null when OK).
    pub hint: Option<String>,
}

/// Status of one pod in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodReport {
    /// Pod name.
    pub name: String,
    /// Node name.
    pub node: Option<String>,
    /// Pod IP.
    pub ip: Option<String>,
    /// Agent container state, null when the pod has no agent.
    pub agent: Option<AgentContainer>,
    /// Latest `/stats` sample, null when unavailable.
    pub stats: Option<AgentStats>,
    /// The verdict.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// Last agent log lines (CRASHLOOP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// Status of one workload in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// Namespace.
    pub namespace: String,
    /// Kind (`Deployment`, `StatefulSet`, `DaemonSet`).
    #[serde(with = "kind_serde")]
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
    /// Whether the pod template carries the agent.
    pub attached: bool,
    /// Rollout counts.
    pub rollout: Rollout,
    /// Worst verdict of its pods (or NOT-ATTACHED).
    #[serde(flatten)]
    pub judgement: Judgement,
    /// Its pods.
    pub pods: Vec<PodReport>,
}

/// The whole `status -o json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Whether everything is OK (exit code 0).
    pub ok: bool,
    /// Counts.
    pub summary: Summary,
    /// Per workload.
    pub workloads: Vec<WorkloadReport>,
}

/// Counts of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Workloads checked.
    pub workloads: usize,
    /// Pods checked.
    pub pods: usize,
    /// Pods OK.
    pub pods_ok: usize,
    /// Workloads not OK.
    pub workloads_not_ok: usize,
    /// Pods being deleted (TERMINATING), among `pods`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pods_terminating: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl StatusReport {
    /// Builds the report and its summary.
    pub fn new(workloads: Vec<WorkloadReport>) -> Self {
        let pods = workloads.iter().map(|w| w.pods.len()).sum();
        let pods_ok =
            workloads.iter().flat_map(|w| &w.pods).filter(|p| p.judgement.verdict == Verdict::Ok).count();
        let workloads_not_ok = workloads.iter().filter(|w| w.judgement.verdict != Verdict::Ok).count();
        let pods_terminating = workloads
            .iter()
            .flat_map(|w| &w.pods)
            .filter(|p| p.judgement.verdict == Verdict::Terminating)
            .count();
        StatusReport {
            ok: workloads_not_ok == 0,
            summary: Summary {
                workloads: workloads.len(),
                pods,
                pods_ok,
                workloads_not_ok,
                pods_terminating,
            },
            workloads,
        }
    }

    /// Exit code: 0 all OK, 1 anything not OK.
    pub fn exit_code(&self) -> ExitCode {
        if self.ok { ExitCode::SUCCESS } else { ExitCode::from(crate::EXIT_WORKLOAD_FAILED) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_labels_serialize_as_printed_and_run_from_best_to_worst() {
        for v in Verdict::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.label());
        }
        assert!(Verdict::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn container_states_serialize_as_the_pod_status_names_them() {
        for s in [
            ContainerState::Running,
            ContainerState::Waiting,
            ContainerState::Terminated,
            ContainerState::Unknown,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn a_crash_looping_container_reads_as_waiting_with_its_last_termination() {
        let cs: ContainerStatus = serde_json::from_value(serde_json::json!({
            "name": "bpc-agent", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "message": "no NET_RAW"}}
        }))
        .unwrap();
        let a = AgentContainer::from_status(&cs);
        assert_eq!(
            (a.state, a.reason.as_deref(), a.restarts),
            (ContainerState::Waiting, Some("CrashLoopBackOff"), 3)
        );
        assert_eq!(a.last_termination.unwrap().message.as_deref(), Some("no NET_RAW"));
    }
}
