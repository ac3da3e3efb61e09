//! One look at the pods and the receiver's streams, and the wait for a pass.

use std::future::Future;
use std::time::Duration;

use bpc_wire::WorkloadKey;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;

use crate::pod_spec::{pod_agent, sends_to};
use crate::sink::StreamReport;

use super::*;

/// Looks every 500 ms until `look` passes or `timeout` is over. A look that
/// could not be made (`Err(why)`) fails with its reason and keeps the pods
/// of the look before.
pub(super) async fn wait_for_pass<F: Future<Output = Result<Evaluation, String>>>(
    timeout: Duration,
    mut look: impl FnMut() -> F,
) -> Evaluation {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = Evaluation { outcome: Outcome::Fail("no observation yet".into()), pods: Vec::new() };
    loop {
        match look().await {
            Ok(now) => last = now,
            Err(why) => last.outcome = Outcome::Fail(why),
        }
        if last.outcome.passed() || tokio::time::Instant::now() >= deadline {
            return Evaluation { outcome: last.outcome.after_timeout(timeout), pods: last.pods };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(super) fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The key the pod's stream arrives under: what its agent sends.
pub(super) fn expected_key(target: &Target, agent: Option<&Container>) -> WorkloadKey {
    let workload = WorkloadKey::from_workload(&target.namespace, target.kind.as_str(), &target.name);
    agent.map_or(workload, |c| crate::pod_spec::stream_id(c, workload))
}

/// One look at the pods and the receiver: (all passed, why not, results).
pub fn evaluate(
    target: &Target,
    pods: &[Pod],
    streams: &[StreamReport],
    sink: &str,
    min_packets: u64,
) -> Evaluation {
    let mut results = Vec::new();
    for pod in pods.iter().filter(|p| pod_ready(p)) {
        let agent = pod_agent(pod);
        let has_sink = agent.is_some_and(|c| sends_to(c, sink));
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let key = expected_key(target, agent).to_string();
        let (packets, lost) = delivered(streams, &ip, &key);
        let pass = has_sink && packets >= min_packets;
        results.push(PodResult { pod: pod.name_any(), ip, key, has_sink, packets, lost, pass });
    }
    results.sort_by(|a, b| a.pod.cmp(&b.pod));
    let ready = results.len();
    let failure = if ready == 0 {
        Some("no ready pod".to_owned())
    } else if (ready as i32) < target.desired {
        Some(format!("{ready} of {} replicas ready", target.desired))
    } else {
        results
            .iter()
            .find(|p| !p.has_sink)
            .map(|p| format!("rollout in progress: {} does not send to the sink yet", p.pod))
    };
    Evaluation::of(results, failure, min_packets)
}

/// Packets and losses received from `ip` with `key`: one pod's stream(s).
pub(super) fn delivered(streams: &[StreamReport], ip: &str, key: &str) -> (u64, u64) {
    streams
        .iter()
        .filter(|s| s.source.to_string() == ip && s.workload_key() == Some(key))
        .fold((0, 0), |(n, l), s| (n + s.packets, l + s.lost))
}

/// Why a set of results does not pass yet: the first pod short of packets.
pub(super) fn first_short(results: &[PodResult], min_packets: u64) -> Option<String> {
    results
        .iter()
        .find(|p| !p.pass)
        .map(|p| format!("{} delivered {} of {min_packets} packets", p.pod, p.packets))
}

/// A pod of an ephemeral verification: name, IP, the key its capture sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPod {
    /// Pod name.
    pub pod: String,
    /// Pod IP.
    pub ip: String,
    /// Workload key of the capture's stream.
    pub key: String,
}

/// One look at the receiver for `--ephemeral`: every captured pod must have
/// delivered `min_packets` from its IP with its key.
pub fn evaluate_captures(pods: &[CapturedPod], streams: &[StreamReport], min_packets: u64) -> Evaluation {
    let results: Vec<PodResult> = pods
        .iter()
        .map(|p| {
            let (packets, lost) = delivered(streams, &p.ip, &p.key);
            PodResult {
                pod: p.pod.clone(),
                ip: p.ip.clone(),
                key: p.key.clone(),
                has_sink: true,
                packets,
                lost,
                pass: packets >= min_packets,
            }
        })
        .collect();
    let failure = results.is_empty().then(|| "no running pod".to_owned());
    Evaluation::of(results, failure, min_packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(source: &str, key: &str, packets: u64) -> StreamReport {
        let profile = bpc_contract::stream::ReceivedProfile::Standard;
        StreamReport {
            packets,
            bytes: packets * 100,
            ..StreamReport::new(key, source.parse().unwrap(), profile)
        }
    }

    #[test]
    fn an_ephemeral_verification_passes_when_every_pod_delivered_with_its_own_ip_and_key() {
        let pods = vec![
            CapturedPod { pod: "web-a".into(), ip: "198.18.1.2".into(), key: "0x773f9626".into() },
            CapturedPod { pod: "web-b".into(), ip: "198.18.1.3".into(), key: "0x773f9626".into() },
        ];
        // web-b's packets arrive with another key (someone else's stream from its IP).
        let streams = [stream("198.18.1.2", "0x773f9626", 12), stream("198.18.1.3", "0x00000001", 50)];
        let look = evaluate_captures(&pods, &streams, 10);
        assert_eq!(look.outcome, Outcome::Fail("web-b delivered 0 of 10 packets".into()));
        assert!(look.pods[0].pass && !look.pods[1].pass);
        let streams = [stream("198.18.1.2", "0x773f9626", 12), stream("198.18.1.3", "0x773f9626", 10)];
        assert_eq!(evaluate_captures(&pods, &streams, 10).outcome, Outcome::Pass);
        assert_eq!(evaluate_captures(&[], &streams, 10).outcome, Outcome::Fail("no running pod".into()));
    }

    #[test]
    fn a_timed_out_failure_says_after_how_long_and_a_pass_stays_a_pass() {
        let t = Duration::from_secs(2);
        assert_eq!(Outcome::Pass.after_timeout(t), Outcome::Pass);
        assert_eq!(
            Outcome::Fail("no ready pod".into()).after_timeout(t).reason(),
            Some("timed out after 2s: no ready pod")
        );
    }
}
