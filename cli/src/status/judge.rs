//! Verdicts from what was observed: pure functions, so every verdict is
//! unit-tested without a cluster.
//!
//! A pod is judged by [`POD_CHECKS`], a table of checks in the manner of
//! linkerd's `Checker` records: each says what it checks, the verdict it gives
//! and the hint that goes with it. They run worst verdict first and the first
//! that applies decides: a missing sidecar or a crashing agent hides whatever
//! the counters say.

use std::collections::BTreeMap;

use super::report::{AgentContainer, ContainerState, Judgement, PodReport, Rollout, Termination, Verdict};
use crate::pod_proxy::{self, AgentStats, ProxyError};

/// Everything observed about one pod, the input of [`judge`].
#[derive(Debug, Clone, Default)]
pub struct PodObservation {
    /// Agent container state; None when the pod has no `bpc-agent` container.
    pub agent: Option<AgentContainer>,
    /// First `/stats` sample (None when not fetched because the agent is not running).
    pub first: Option<Result<AgentStats, ProxyError>>,
    /// Second sample, `sample_interval` later, when taken and readable.
    pub second: Option<AgentStats>,
    /// Seconds between the samples.
    pub interval_seconds: f64,
    /// NO-TRAFFIC threshold in seconds.
    pub no_traffic_after: f64,
    /// Attached with `--metrics-private`: the agent's counters are on
    /// loopback only, so they are not read (and not missed).
    pub metrics_private: bool,
    /// The pod is being deleted (`deletionTimestamp` set), with its grace
    /// period in seconds when the API server says.
    pub deleting: Option<Deleting>,
    /// The scheduler's message while the pod cannot be scheduled (its
    /// `PodScheduled` condition False, reason `Unschedulable`).
    pub unschedulable: Option<String>,
    /// What the pod's `bpc-agent` container requests, to name in hints.
    pub sidecar_requests: SidecarRequests,
}

/// A pod being deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleting {
    /// `metadata.deletionGracePeriodSeconds`.
    pub grace_seconds: Option<i64>,
}

/// The sidecar's resource requests, as the pod spec has them (`--cpu`,
/// `--memory` of attach).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarRequests {
    /// `resources.requests.cpu`, e.g. `50m`.
    pub cpu: Option<String>,
    /// `resources.requests.memory`, e.g. `32Mi`.
    pub memory: Option<String>,
}

/// The sidecar requests named in a scheduler message (`Insufficient cpu`,
/// `Insufficient memory`), as `attach` flags with their values.
fn sidecar_requests_short(message: &str, requests: &SidecarRequests) -> Vec<String> {
    [("cpu", "--cpu", &requests.cpu), ("memory", "--memory", &requests.memory)]
        .into_iter()
        .filter_map(|(resource, flag, value)| {
            let value = value.as_deref()?;
            message.contains(&format!("Insufficient {resource}")).then(|| format!("{flag} {value}"))
        })
        .collect()
}

/// Context used to make hints copy-pasteable.
#[derive(Debug, Clone)]
pub struct HintContext<'a> {
    /// Namespace of the pod.
    pub namespace: &'a str,
    /// Pod name.
    pub pod: &'a str,
    /// `kind/name` of the workload, e.g. `deployment/web`.
    pub workload: &'a str,
    /// The pod's agent endpoint port.
    pub metrics_port: u16,
}

/// The two `/stats` samples as the checks compare them.
struct Samples<'a> {
    first: &'a AgentStats,
    /// The second sample, else the first.
    latest: &'a AgentStats,
    /// Whether there are two comparable samples: counters restart with the
    /// agent, so a lower second sample means a restart and the second sample
    /// alone is the evidence.
    two: bool,
}

/// What the checks read.
pub struct Facts<'a> {
    obs: &'a PodObservation,
    ctx: &'a HintContext<'a>,
    samples: Option<Samples<'a>>,
}

impl<'a> Facts<'a> {
    fn new(obs: &'a PodObservation, ctx: &'a HintContext<'a>) -> Self {
        let samples = match obs.first.as_ref() {
            Some(Ok(first)) => {
                let latest = obs.second.as_ref().unwrap_or(first);
                let restarted = obs.second.is_some() && latest.capture.packets < first.capture.packets;
                Some(Samples { first, latest, two: obs.second.is_some() && !restarted })
            }
            _ => None,
        };
        Facts { obs, ctx, samples }
    }

    fn agent(&self) -> Option<&'a AgentContainer> {
        self.obs.agent.as_ref()
    }

    /// `-n NS POD`: the pod, as kubectl commands take it.
    fn pod_args(&self) -> String {
        format!("-n {} {}", self.ctx.namespace, self.ctx.pod)
    }

    /// The latest sample's filter and interface, for hints.
    fn capture_setup(&self) -> (&'a str, &'a str) {
        self.samples.as_ref().map_or(("", ""), |s| (s.latest.filter.as_str(), s.latest.interface.as_str()))
    }
}

/// One check of a pod: what it checks, the verdict it gives when it
/// applies, and the hint that goes with that verdict.
pub struct Check {
    /// What is checked, said as what holds when it does not apply.
    pub what: &'static str,
    /// The verdict when it applies.
    pub verdict: Verdict,
    /// The reason, when it applies.
    applies: fn(&Facts<'_>) -> Option<String>,
    /// What to do about it (none for an OK verdict).
    hint: Option<fn(&Facts<'_>) -> String>,
}

/// The pod checks, worst verdict first; TERMINATING first of all: a pod
/// being deleted is at the end of its life whatever its containers do (an
/// old pod of a rollout has no sidecar, a new one's agent is stopping), and
/// [`judge_workload`] decides whether it counts. UNSCHEDULABLE is the worst:
/// a rollout stuck on a pod no node takes leaves old pods NOT-ATTACHED, and
/// the workload must name the cause, not the symptom.
pub const POD_CHECKS: [Check; 14] = [
    Check {
        what: "the pod is not being deleted",
        verdict: Verdict::Terminating,
        applies: |f| {
            let deleting = f.obs.deleting?;
            let grace = deleting.grace_seconds.map(|g| format!(" (grace period {g} s)")).unwrap_or_default();
            let sidecar = match f.agent() {
                None => "no sidecar: a pod of the template before attach".to_owned(),
                Some(a) => format!(
                    "sidecar {}{}",
                    a.state.as_str(),
                    a.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ),
            };
            Some(format!("pod is being deleted{grace}; {sidecar}"))
        },
        hint: Some(|f| {
            format!(
                "nothing to do: the pod goes when its containers have stopped (a native sidecar captures until \
                 the app has exited); it fails its workload only while the rollout is not complete \
                 (kubectl get pod {} -w)",
                f.pod_args()
            )
        }),
    },
    Check {
        what: "the scheduler found a node for the pod",
        verdict: Verdict::Unschedulable,
        applies: |f| f.obs.unschedulable.as_ref().map(|m| format!("pod cannot be scheduled: {}", m.trim())),
        hint: Some(|f| {
            let HintContext { namespace: ns, workload, .. } = f.ctx;
            let message = f.obs.unschedulable.as_deref().unwrap_or_default();
            let named = sidecar_requests_short(message, &f.obs.sidecar_requests);
            if named.is_empty() {
                format!(
                    "no node fits the pod's requests, selectors or tolerations: kubectl describe pod {} \
                     (free or add node capacity, or relax the pod's constraints)",
                    f.pod_args()
                )
            } else {
                let flags: Vec<&str> = named.iter().filter_map(|n| n.split(' ').next()).collect();
                format!(
                    "the bpc-agent sidecar requests {} on top of the app: re-attach with less \
                     (kubectl bpc attach {workload} -n {ns} {}), or free or add node capacity; \
                     detach to roll back (kubectl bpc detach {workload} -n {ns})",
                    named.join(", "),
                    flags.iter().map(|f| format!("{f} ...")).collect::<Vec<_>>().join(" ")
                )
            }
        }),
    },
    Check {
        what: "the pod has a bpc-agent container",
        verdict: Verdict::NotAttached,
        applies: |f| f.agent().is_none().then(|| "pod has no bpc-agent container".into()),
        hint: Some(|f| {
            let HintContext { namespace: ns, workload, .. } = f.ctx;
            format!(
                "attach the workload (kubectl bpc attach {workload} -n {ns} --collector ADDR), or wait for \
                 the rollout to replace this pod (kubectl rollout status {workload} -n {ns})"
            )
        }),
    },
    Check {
        what: "the agent did not exit for want of NET_RAW",
        verdict: Verdict::MissingNetRaw,
        applies: |f| {
            let t = f.agent()?.last_termination.as_ref().filter(|t| mentions_net_raw(t))?;
            Some(format!("agent exited 2: {}", t.message.as_deref().unwrap_or_default().trim()))
        },
        hint: Some(|f| {
            let HintContext { namespace: ns, workload, .. } = f.ctx;
            format!(
                "the node's runtime did not grant NET_RAW (CRI-O does not by default): re-attach with \
                 kubectl bpc attach {workload} -n {ns} --capabilities add (needs a namespace that does not \
                 enforce Pod Security baseline), or add NET_RAW to CRI-O's default_capabilities; under \
                 'restricted' capture is impossible: kubectl label ns {ns} pod-security.kubernetes.io/enforce=baseline"
            )
        }),
    },
    Check {
        what: "the agent does not keep restarting",
        verdict: Verdict::Crashloop,
        applies: |f| {
            let agent = f.agent()?;
            let backoff = agent.reason.as_deref() == Some("CrashLoopBackOff");
            let restarted = !agent.running() && agent.restarts > 0;
            if !(backoff || restarted || agent.state == ContainerState::Terminated) {
                return None;
            }
            let last = agent.last_termination.as_ref().map_or(String::new(), |t| {
                format!(
                    "; last exit {} ({}){}",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or("?"),
                    t.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default()
                )
            });
            Some(format!(
                "agent {} after {} restarts{last}",
                agent.reason.as_deref().unwrap_or(agent.state.as_str()),
                agent.restarts
            ))
        },
        hint: Some(|f| {
            format!("read the agent's log: kubectl logs {} -c bpc-agent --previous", f.pod_args())
        }),
    },
    Check {
        what: "the agent container runs",
        verdict: Verdict::AgentNotRunning,
        applies: |f| {
            let agent = f.agent().filter(|a| !a.running())?;
            Some(format!(
                "agent container {} ({})",
                agent.state.as_str(),
                agent.reason.as_deref().unwrap_or("no reason")
            ))
        },
        hint: Some(|f| {
            format!("kubectl describe pod {} (events show image pull or scheduling problems)", f.pod_args())
        }),
    },
    Check {
        what: "the agent's counters are readable (it was not attached with --metrics-private)",
        verdict: Verdict::Ok,
        applies: |f| {
            let agent = f.agent().filter(|_| f.obs.metrics_private)?;
            Some(format!(
                "agent running ({} restarts); its counters are private (attached with --metrics-private: \
                 the endpoint listens on loopback only, the liveness probe checks it)",
                agent.restarts
            ))
        },
        hint: None,
    },
    Check {
        what: "you may read the agent's stats (RBAC get on pods/proxy)",
        verdict: Verdict::StatsUnavailable,
        applies: |f| match f.obs.first.as_ref() {
            Some(Err(e @ ProxyError::Status { code: 403, .. })) => Some(e.to_string()),
            _ => None,
        },
        hint: Some(|f| {
            let ns = f.ctx.namespace;
            format!(
                "you may not read agent stats: ask for RBAC get on pods/proxy in {ns} \
                 (check: kubectl auth can-i get pods/proxy -n {ns})"
            )
        }),
    },
    Check {
        what: "the API server reaches the agent's endpoint",
        verdict: Verdict::StatsUnavailable,
        applies: |f| f.obs.first.as_ref()?.as_ref().err().map(ToString::to_string),
        hint: Some(|f| {
            let HintContext { namespace: ns, pod, metrics_port, .. } = *f.ctx;
            format!(
                "the API server cannot reach the agent on port {}: check NetworkPolicy and the bpc-metrics port; \
                 try kubectl get --raw {}",
                metrics_port,
                pod_proxy::proxy_path(ns, pod, metrics_port, "healthz")
            )
        }),
    },
    Check {
        what: "the agent's stats were read",
        verdict: Verdict::StatsUnavailable,
        applies: |f| f.obs.first.is_none().then(|| "agent stats were not read".into()),
        hint: Some(|f| {
            let HintContext { namespace: ns, pod, metrics_port, .. } = *f.ctx;
            format!("kubectl get --raw {}", pod_proxy::proxy_path(ns, pod, metrics_port, "stats"))
        }),
    },
    Check {
        what: "the agent's capture runs (it did not fail to start)",
        verdict: Verdict::NotCapturing,
        applies: |f| f.samples.as_ref()?.latest.capture_error.clone(),
        hint: Some(|f| {
            let HintContext { namespace: ns, workload, .. } = f.ctx;
            format!(
                "the agent keeps running and says why instead of holding the pod back; fix what the reason names \
                 and re-attach: a missing interface (kubectl bpc attach {workload} -n {ns} --interface IFACE; \
                 list them with kubectl exec {} -c bpc-agent -- bpc-agent --list-interfaces), a filter the kernel \
                 refuses (--filter), or NET_RAW not granted (--capabilities add)",
                f.pod_args()
            )
        }),
    },
    Check {
        what: "sends to every collector succeed",
        verdict: Verdict::CollectorUnreachable,
        applies: |f| {
            let s = f.samples.as_ref()?;
            // An agent with the recent window judges itself by the contract's
            // rule: status says what its /healthz says.
            if s.latest.collectors.iter().any(|c| c.recent.is_some()) {
                let faults: Vec<String> = s.latest.collectors.iter().filter_map(|c| c.fault()).collect();
                return (!faults.is_empty()).then(|| faults.join("; "));
            }
            // An older agent: errors rising between the two samples.
            let errors_before: BTreeMap<&str, u64> =
                s.first.collectors.iter().map(|c| (c.host.as_str(), failing_sends(&c.errors))).collect();
            let unreachable: Vec<String> = s
                .latest
                .collectors
                .iter()
                .filter(|c| {
                    let now = failing_sends(&c.errors);
                    let before = errors_before.get(c.host.as_str()).copied().unwrap_or(0);
                    let rising = if s.two { now > before } else { now > 0 };
                    let stale = c.last_send_age_seconds.is_none_or(|a| a > f.obs.no_traffic_after)
                        || c.sent_packets == 0;
                    rising && (s.two || stale)
                })
                .map(|c| {
                    format!(
                        "{} ({} unreachable, {} no_buffer, {} resolve, {} other errors)",
                        c.host, c.errors.unreachable, c.errors.no_buffer, c.errors.resolve, c.errors.other
                    )
                })
                .collect();
            (!unreachable.is_empty()).then(|| format!("sends failing to {}", unreachable.join(", ")))
        },
        hint: Some(|f| {
            let HintContext { namespace: ns, workload, .. } = f.ctx;
            format!(
                "check the collector address (--collector) and that something there receives GRE (a probe, \
                 kubectl bpc sink) and that GRE (IP protocol 47) is allowed from the pod by NetworkPolicy and \
                 firewalls; test with kubectl bpc verify {workload} -n {ns} --sink ADDR"
            )
        }),
    },
    Check {
        what: "the agent drops nothing (kernel, interface, rate limit)",
        verdict: Verdict::Dropping,
        applies: |f| {
            let s = f.samples.as_ref()?;
            let how = if s.two {
                let d = drops(s.latest).saturating_sub(drops(s.first));
                (d > 0).then(|| format!("{d} drops in {:.0} s", f.obs.interval_seconds))
            } else {
                let d = drops(s.latest);
                (d > 0).then(|| format!("{d} drops since start"))
            }?;
            let c = &s.latest.capture;
            Some(format!(
                "{how} (kernel {}, interface {}, rate-limited {})",
                c.kernel_drops, c.interface_drops, c.rate_limited
            ))
        },
        hint: Some(|f| {
            let HintContext { namespace: ns, workload, .. } = f.ctx;
            format!(
                "narrow the BPF filter (current: '{}') or raise the limits: kubectl bpc attach {workload} -n {ns} \
                 --filter ... --max-pps/--max-mbps ...",
                f.capture_setup().0
            )
        }),
    },
    Check {
        what: "the agent captured a packet within --no-traffic-after",
        verdict: Verdict::NoTraffic,
        applies: |f| {
            let latest = f.samples.as_ref()?.latest;
            let threshold = f.obs.no_traffic_after;
            match latest.capture.last_packet_age_seconds {
                Some(age) => (age > threshold).then(|| format!("no packet captured for {age:.0} s")),
                None if latest.uptime_seconds >= threshold => {
                    Some(format!("no packet captured since start {:.0} s ago", latest.uptime_seconds))
                }
                None => None,
            }
        },
        hint: Some(|f| {
            let HintContext { namespace: ns, workload, .. } = f.ctx;
            let (filter, interface) = f.capture_setup();
            format!(
                "the pod may be idle or the filter '{filter}' on {interface} matches nothing; send it traffic, check \
                 the filter, then kubectl bpc verify {workload} -n {ns} --sink ADDR"
            )
        }),
    },
];

pub(super) fn drops(s: &AgentStats) -> u64 {
    s.capture.kernel_drops + s.capture.interface_drops + s.capture.rate_limited
}

/// Send errors that mean packets do not reach a collector (the contract's one definition).
fn failing_sends(e: &pod_proxy::SendErrors) -> u64 {
    e.failing()
}

fn mentions_net_raw(t: &Termination) -> bool {
    t.exit_code == 2 && t.message.as_deref().is_some_and(|m| m.to_ascii_uppercase().contains("NET_RAW"))
}

/// Computes a pod's verdict from what was observed: the first of
/// [`POD_CHECKS`] that applies, else OK.
pub fn judge(obs: &PodObservation, ctx: &HintContext<'_>) -> Judgement {
    let facts = Facts::new(obs, ctx);
    for check in &POD_CHECKS {
        if let Some(reason) = (check.applies)(&facts) {
            return Judgement { verdict: check.verdict, reason, hint: check.hint.map(|hint| hint(&facts)) };
        }
    }
    let reason = match facts.samples.as_ref().map(|s| s.latest) {
        Some(latest) => match latest.capture.last_packet_age_seconds {
            Some(age) => format!(
                "{} packets captured, last {age:.1} s ago, {} sent",
                latest.capture.packets,
                latest.collectors.iter().map(|c| c.sent_packets).sum::<u64>()
            ),
            None => format!("agent up {:.0} s, no packet yet", latest.uptime_seconds),
        },
        // Unreachable: without a sample one of the stats checks applies.
        None => "agent running".into(),
    };
    Judgement { verdict: Verdict::Ok, reason, hint: None }
}

/// Workload verdict: the worst pod verdict with that pod's reason and hint.
pub fn judge_workload(
    attached: bool,
    rollout: Rollout,
    pods: &[PodReport],
    workload: &str,
    ns: &str,
) -> Judgement {
    if !attached {
        return Judgement {
            verdict: Verdict::NotAttached,
            reason: "pod template has no bpc-agent sidecar".into(),
            hint: Some(format!("kubectl bpc attach {workload} -n {ns} --collector ADDR")),
        };
    }
    // Old pods in their grace period do not fail a complete rollout: the
    // workload is what its current pods are. While it rolls they count.
    let complete = rollout.updated >= rollout.desired && rollout.ready >= rollout.desired;
    let counts = |p: &&PodReport| match p.judgement.verdict {
        Verdict::Ok => false,
        Verdict::Terminating => !complete,
        _ => true,
    };
    if let Some(worst) = pods.iter().filter(counts).max_by_key(|p| p.judgement.verdict) {
        let bad = pods.iter().filter(counts).count();
        return Judgement {
            verdict: worst.judgement.verdict,
            reason: format!(
                "{bad} of {} pods not OK; {}: {}",
                pods.len(),
                worst.name,
                worst.judgement.reason
            ),
            hint: worst.judgement.hint.clone(),
        };
    }
    if pods.is_empty() && rollout.desired > 0 {
        return Judgement {
            verdict: Verdict::AgentNotRunning,
            reason: format!("{} replicas desired, no pod found", rollout.desired),
            hint: Some(format!("kubectl describe {workload} -n {ns}")),
        };
    }
    let leaving = pods.iter().filter(|p| p.judgement.verdict == Verdict::Terminating).count();
    let reason = match leaving {
        0 => format!("{} pods OK", pods.len()),
        n => format!("{} pods OK, {n} old terminating", pods.len() - n),
    };
    Judgement { verdict: Verdict::Ok, reason, hint: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_proxy::{CaptureStats, CollectorStats, Health, SendErrors};

    const CTX: HintContext<'static> =
        HintContext { namespace: "shop", pod: "web-1", workload: "deployment/web", metrics_port: 9469 };

    fn running() -> AgentContainer {
        AgentContainer { state: ContainerState::Running, ready: true, ..Default::default() }
    }

    fn stats(packets: u64, kernel_drops: u64, age: Option<f64>, unreachable: u64) -> AgentStats {
        AgentStats {
            version: "0.1.0".into(),
            key: "0x1234abcd".into(),
            workload: Some("shop/deployment/web".into()),
            interface: "eth0".into(),
            filter: "not (ip proto 47)".into(),
            profile: "standard".parse().unwrap(),
            oversize: "segment".parse().unwrap(),
            uptime_seconds: 300.0,
            capture: CaptureStats {
                packets,
                kernel_drops,
                last_packet_age_seconds: age,
                ..Default::default()
            },
            collectors: vec![CollectorStats {
                host: "collector.monitoring.svc".into(),
                address: Some("198.18.0.2".parse().unwrap()),
                sent_packets: packets.saturating_sub(unreachable),
                errors: SendErrors { unreachable, ..Default::default() },
                last_send_age_seconds: age.filter(|_| unreachable == 0),
                ..Default::default()
            }],
            health: Health { ok: true, reason: None },
            capture_error: None,
            http: None,
        }
    }

    fn obs(agent: Option<AgentContainer>, first: Option<Result<AgentStats, ProxyError>>) -> PodObservation {
        PodObservation {
            agent,
            first,
            second: None,
            interval_seconds: 2.0,
            no_traffic_after: 60.0,
            metrics_private: false,
            ..Default::default()
        }
    }

    #[test]
    fn healthy_agent_is_ok_without_hint() {
        let j = judge(&obs(Some(running()), Some(Ok(stats(100, 0, Some(0.5), 0)))), &CTX);
        assert_eq!(j.verdict, Verdict::Ok);
        assert!(j.hint.is_none());
        assert!(j.reason.contains("100 packets"), "{}", j.reason);
    }

    #[test]
    fn private_counters_are_reported_as_private_not_as_unavailable() {
        let mut o = obs(Some(running()), None);
        assert_eq!(judge(&o, &CTX).verdict, Verdict::StatsUnavailable, "not private: unread is a failure");
        o.metrics_private = true;
        let j = judge(&o, &CTX);
        assert_eq!(j.verdict, Verdict::Ok);
        assert!(j.reason.contains("counters are private") && j.reason.contains("--metrics-private"), "{j:?}");
        // A crash loop still shows: privacy hides the counters, not the container state.
        o.agent = Some(AgentContainer {
            state: ContainerState::Waiting,
            reason: Some("CrashLoopBackOff".into()),
            restarts: 3,
            ..running()
        });
        assert_eq!(judge(&o, &CTX).verdict, Verdict::Crashloop);
    }

    #[test]
    fn pod_without_agent_is_not_attached() {
        let j = judge(&obs(None, None), &CTX);
        assert_eq!(j.verdict, Verdict::NotAttached);
        assert!(j.hint.unwrap().contains("kubectl bpc attach deployment/web -n shop"));
    }

    /// An agent in back-off after `restarts` exits 2 with `message`.
    fn crashed(restarts: i32, message: &str) -> AgentContainer {
        AgentContainer {
            state: ContainerState::Waiting,
            reason: Some("CrashLoopBackOff".into()),
            restarts,
            last_termination: Some(Termination {
                exit_code: 2,
                reason: Some("Error".into()),
                message: Some(message.into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn exit_2_mentioning_net_raw_is_missing_net_raw() {
        let agent = crashed(4, "cannot open capture on eth0: missing CAP_NET_RAW; add NET_RAW");
        let j = judge(&obs(Some(agent), None), &CTX);
        assert_eq!(j.verdict, Verdict::MissingNetRaw);
        assert!(j.hint.unwrap().contains("NET_RAW"));
    }

    #[test]
    fn exit_2_for_another_reason_is_a_crashloop_not_net_raw() {
        let j = judge(&obs(Some(crashed(3, "BPC_COLLECTOR is empty")), None), &CTX);
        assert_eq!(j.verdict, Verdict::Crashloop);
        assert!(j.reason.contains("BPC_COLLECTOR is empty"), "{}", j.reason);
        assert!(j.hint.unwrap().contains("kubectl logs -n shop web-1 -c bpc-agent --previous"));
    }

    #[test]
    fn waiting_agent_without_restarts_is_not_running() {
        let agent = AgentContainer {
            state: ContainerState::Waiting,
            reason: Some("ImagePullBackOff".into()),
            ..Default::default()
        };
        let j = judge(&obs(Some(agent), None), &CTX);
        assert_eq!(j.verdict, Verdict::AgentNotRunning);
        assert!(j.reason.contains("ImagePullBackOff"));
    }

    #[test]
    fn proxy_failure_is_stats_unavailable_with_the_status_code() {
        let err = ProxyError::Status { code: 503, message: "no endpoints".into() };
        let j = judge(&obs(Some(running()), Some(Err(err))), &CTX);
        assert_eq!(j.verdict, Verdict::StatsUnavailable);
        assert!(j.reason.contains("503"));
        assert!(j.hint.unwrap().contains("/api/v1/namespaces/shop/pods/web-1:9469/proxy/healthz"));
    }

    #[test]
    fn forbidden_proxy_call_hints_at_rbac() {
        let err = ProxyError::Status { code: 403, message: "pods \"web-1\" is forbidden".into() };
        let j = judge(&obs(Some(running()), Some(Err(err))), &CTX);
        assert_eq!(j.verdict, Verdict::StatsUnavailable);
        assert!(j.hint.unwrap().contains("kubectl auth can-i get pods/proxy -n shop"));
    }

    #[test]
    fn send_errors_without_recent_send_are_collector_unreachable() {
        let j = judge(&obs(Some(running()), Some(Ok(stats(100, 0, Some(0.5), 100)))), &CTX);
        assert_eq!(j.verdict, Verdict::CollectorUnreachable);
        assert!(j.reason.contains("collector.monitoring.svc"));
    }

    #[test]
    fn old_send_errors_with_sends_recovered_are_ok_in_one_sample() {
        let mut s = stats(100, 0, Some(0.5), 0);
        s.collectors[0].errors.unreachable = 3;
        let j = judge(&obs(Some(running()), Some(Ok(s))), &CTX);
        assert_eq!(j.verdict, Verdict::Ok);
    }

    #[test]
    fn rising_send_errors_between_samples_are_collector_unreachable() {
        let mut o = obs(Some(running()), Some(Ok(stats(100, 0, Some(0.5), 0))));
        let mut later = stats(200, 0, Some(0.1), 0);
        later.collectors[0].errors.unreachable = 5;
        o.second = Some(later);
        assert_eq!(judge(&o, &CTX).verdict, Verdict::CollectorUnreachable);
    }

    #[test]
    fn drops_in_a_single_sample_are_dropping() {
        let j = judge(&obs(Some(running()), Some(Ok(stats(100, 7, Some(0.5), 0)))), &CTX);
        assert_eq!(j.verdict, Verdict::Dropping);
        assert!(j.reason.contains("kernel 7"), "{}", j.reason);
        assert!(j.hint.unwrap().contains("--max-pps"));
    }

    #[test]
    fn drops_not_rising_between_samples_are_ok_rising_are_dropping() {
        let mut o = obs(Some(running()), Some(Ok(stats(100, 7, Some(0.5), 0))));
        o.second = Some(stats(150, 7, Some(0.2), 0));
        assert_eq!(judge(&o, &CTX).verdict, Verdict::Ok);
        let mut rate_limited = stats(150, 7, Some(0.2), 0);
        rate_limited.capture.rate_limited = 40;
        o.second = Some(rate_limited);
        let j = judge(&o, &CTX);
        assert_eq!(j.verdict, Verdict::Dropping);
        assert!(j.reason.starts_with("40 drops in 2 s"), "{}", j.reason);
    }

    #[test]
    fn old_last_packet_is_no_traffic() {
        let j = judge(&obs(Some(running()), Some(Ok(stats(100, 0, Some(90.0), 0)))), &CTX);
        assert_eq!(j.verdict, Verdict::NoTraffic);
        assert!(j.hint.unwrap().contains("not (ip proto 47)"));
    }

    #[test]
    fn never_captured_is_no_traffic_only_after_the_threshold() {
        let mut young = stats(0, 0, None, 0);
        young.uptime_seconds = 10.0;
        assert_eq!(judge(&obs(Some(running()), Some(Ok(young))), &CTX).verdict, Verdict::Ok);
        let old = stats(0, 0, None, 0);
        assert_eq!(judge(&obs(Some(running()), Some(Ok(old))), &CTX).verdict, Verdict::NoTraffic);
    }

    /// A pod of the report with its verdict and nothing else.
    fn pod(name: &str, verdict: Verdict) -> PodReport {
        PodReport {
            name: name.into(),
            node: None,
            ip: None,
            agent: None,
            stats: None,
            judgement: Judgement { verdict, reason: "r".into(), hint: Some("h".into()) },
            logs: vec![],
        }
    }

    #[test]
    fn workload_takes_the_worst_pod_verdict() {
        let pods = [pod("a", Verdict::Ok), pod("b", Verdict::Crashloop), pod("c", Verdict::Dropping)];
        let j = judge_workload(true, Rollout::default(), &pods, "deployment/web", "shop");
        assert_eq!(j.verdict, Verdict::Crashloop);
        assert!(j.reason.starts_with("2 of 3 pods not OK; b:"), "{}", j.reason);
        let j = judge_workload(false, Rollout::default(), &[], "deployment/web", "shop");
        assert_eq!(j.verdict, Verdict::NotAttached);
    }

    #[test]
    fn a_pod_being_deleted_is_terminating_with_its_sidecar_state_even_without_a_sidecar() {
        let mut o = obs(None, None);
        o.deleting = Some(Deleting { grace_seconds: Some(30) });
        let j = judge(&o, &CTX);
        assert_eq!(j.verdict, Verdict::Terminating);
        assert!(j.reason.contains("grace period 30 s") && j.reason.contains("no sidecar"), "{}", j.reason);
        o.agent = Some(running());
        assert!(judge(&o, &CTX).reason.ends_with("sidecar running"));
    }

    #[test]
    fn an_unschedulable_pod_names_the_scheduler_message_and_the_sidecar_requests_that_do_not_fit() {
        let mut o = obs(Some(AgentContainer::pending()), None);
        o.unschedulable = Some(
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
             1 No preemption victims found for incoming pod."
                .into(),
        );
        o.sidecar_requests = SidecarRequests { cpu: Some("3".into()), memory: Some("32Mi".into()) };
        let j = judge(&o, &CTX);
        assert_eq!(j.verdict, Verdict::Unschedulable);
        assert!(j.reason.contains("1 Insufficient cpu"), "{}", j.reason);
        let hint = j.hint.unwrap();
        assert!(hint.contains("requests --cpu 3 ") && !hint.contains("--memory"), "{hint}");
        assert!(hint.contains("kubectl bpc attach deployment/web -n shop --cpu ..."), "{hint}");
        // Not the sidecar's resources: the hint says so and names none of them.
        o.unschedulable =
            Some("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.".into());
        let hint = judge(&o, &CTX).hint.unwrap();
        assert!(hint.contains("kubectl describe pod -n shop web-1") && !hint.contains("--cpu"), "{hint}");
    }

    #[test]
    fn bounces_in_the_agents_recent_window_are_collector_unreachable_naming_the_icmp_reason() {
        use bpc_contract::stats::RecentSends;
        // Lifetime: 280 sent, 138 bounced; the two samples 2 s apart saw no send (an idle pod).
        let mut s = stats(300, 0, Some(0.5), 0);
        s.collectors[0].sent_packets = 280;
        s.collectors[0].errors.unreachable = 138;
        s.collectors[0].icmp_error =
            Some("protocol unreachable: no GRE receiver on the collector host".into());
        // The last send 0.5 s ago, its bounce read 0.3 s ago.
        s.collectors[0].last_error_age_seconds = Some(0.3);
        s.collectors[0].recent = Some(RecentSends {
            window_seconds: 64.0,
            sent_packets: 40,
            errors: SendErrors { unreachable: 3, ..Default::default() },
        });
        let mut o = obs(Some(running()), Some(Ok(s.clone())));
        o.second = Some(s.clone());
        let j = judge(&o, &CTX);
        assert_eq!(j.verdict, Verdict::CollectorUnreachable, "{j:?}");
        assert!(j.reason.contains("collector.monitoring.svc (198.18.0.2)"), "{}", j.reason);
        assert!(
            j.reason.contains("no GRE receiver") && j.reason.contains("3 of 43 sends in 64 s"),
            "{}",
            j.reason
        );
        // The same lifetime totals with a clean window: fixed long ago, OK.
        s.collectors[0].recent =
            Some(RecentSends { window_seconds: 64.0, sent_packets: 40, ..Default::default() });
        o.second = Some(s);
        assert_eq!(judge(&o, &CTX).verdict, Verdict::Ok);
    }

    #[test]
    fn terminating_pods_do_not_fail_a_complete_rollout_but_count_while_it_rolls() {
        let pods = [pod("new", Verdict::Ok), pod("old", Verdict::Terminating)];
        let done = Rollout { desired: 1, updated: 1, ready: 1 };
        let j = judge_workload(true, done, &pods, "deployment/web", "shop");
        assert_eq!(j.verdict, Verdict::Ok);
        assert_eq!(j.reason, "1 pods OK, 1 old terminating");
        let rolling = Rollout { desired: 1, updated: 1, ready: 0 };
        assert_eq!(
            judge_workload(true, rolling, &pods, "deployment/web", "shop").verdict,
            Verdict::Terminating
        );
    }

    #[test]
    fn checks_run_from_the_worst_verdict_to_the_best_so_the_worst_problem_is_reported() {
        assert_eq!(
            POD_CHECKS[0].verdict,
            Verdict::Terminating,
            "a pod being deleted is judged as such first"
        );
        let problems: Vec<&Check> = POD_CHECKS[1..].iter().filter(|c| c.verdict != Verdict::Ok).collect();
        for pair in problems.windows(2) {
            assert!(pair[0].verdict >= pair[1].verdict, "'{}' runs before '{}'", pair[0].what, pair[1].what);
        }
        for v in Verdict::ALL.into_iter().filter(|v| *v != Verdict::Ok) {
            assert!(POD_CHECKS.iter().any(|c| c.verdict == v), "no check gives {}", v.label());
        }
    }

    #[test]
    fn only_the_ok_verdict_comes_without_a_hint() {
        for c in &POD_CHECKS {
            assert_eq!(c.hint.is_none(), c.verdict == Verdict::Ok, "{}", c.what);
        }
    }
}
