//! `kubectl bpc status`: is capture working, everywhere, now?
//!
//! For every attached workload: rollout state, then per pod the agent
//! container state and live counters read through the pod proxy, and a
//! verdict with a hint. The verdict logic ([`judge`]) is a pure function of
//! what was observed so every verdict is unit-tested without a cluster.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodTemplateSpec};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::map::{AGENT_CONTAINER, OwnerCache};
use crate::pod_proxy::{self, AgentStats, ProxyError};

/// Agent `/stats` reads in flight at once.
const PROXY_CONCURRENCY: usize = 8;

pub use crate::sidecar::STATUS_ANNOTATION;

/// Output format of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatusFormat {
    /// Marks, one line per pod, hints under failures.
    #[default]
    Table,
    /// Table with extra columns (workload key, collector addresses).
    Wide,
    /// The documented JSON report.
    Json,
}

/// Arguments of `kubectl bpc status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Workloads to check (`deploy/web`, `sts/db`, `ds/x` or a bare name); default: every attached one.
    pub workloads: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,
    /// Seconds without a captured packet before a pod is NO-TRAFFIC.
    #[arg(long, default_value_t = 60)]
    pub no_traffic_after: u64,
    /// Seconds between the two counter samples used to see drops rising (0: one sample).
    #[arg(long, default_value_t = 2)]
    pub sample_interval: u64,
    /// Agent log lines shown for a crash-looping agent.
    #[arg(long, default_value_t = 10)]
    pub log_lines: i64,
    /// List the `kubectl bpc capture` containers of the pods instead (running and finished).
    #[arg(long)]
    pub captures: bool,
}

/// Verdict of one pod (and, as the worst of its pods, of a workload).
/// Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Verdict {
    /// Capturing and sending.
    Ok,
    /// Nothing captured for longer than the threshold.
    NoTraffic,
    /// Kernel, interface or rate-limit drops rising.
    Dropping,
    /// Sends to a collector fail.
    CollectorUnreachable,
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
}

impl Verdict {
    /// The label printed and written in JSON.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::NoTraffic => "NO-TRAFFIC",
            Verdict::Dropping => "DROPPING",
            Verdict::CollectorUnreachable => "COLLECTOR-UNREACHABLE",
            Verdict::StatsUnavailable => "STATS-UNAVAILABLE",
            Verdict::AgentNotRunning => "AGENT-NOT-RUNNING",
            Verdict::Crashloop => "CRASHLOOP",
            Verdict::MissingNetRaw => "MISSING-NET-RAW",
            Verdict::NotAttached => "NOT-ATTACHED",
        }
    }
}

/// State of the `bpc-agent` container, from the pod status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentContainer {
    /// `running`, `waiting`, `terminated` or `unknown`.
    pub state: String,
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
            Some(s) if s.running.is_some() => ("running", None, None),
            Some(s) if s.waiting.is_some() => {
                ("waiting", s.waiting.as_ref().and_then(|w| w.reason.clone()), None)
            }
            Some(s) if s.terminated.is_some() => {
                let t = s.terminated.as_ref().unwrap();
                ("terminated", t.reason.clone(), Some(t))
            }
            _ => ("unknown", None, None),
        };
        let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()).or(current_term);
        AgentContainer {
            state: state.to_owned(),
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
}

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

fn drops(s: &AgentStats) -> u64 {
    s.capture.kernel_drops + s.capture.interface_drops + s.capture.rate_limited
}

fn failing_sends(s: &AgentStats) -> Vec<(String, u64)> {
    s.collectors.iter().map(|c| (c.host.clone(), c.errors.failing())).collect()
}

fn mentions_net_raw(t: &Termination) -> bool {
    t.exit_code == 2 && t.message.as_deref().is_some_and(|m| m.to_ascii_uppercase().contains("NET_RAW"))
}

/// Computes a pod's verdict from what was observed. Worst problems first:
/// a missing sidecar or a crashing agent hides whatever the counters say.
pub fn judge(obs: &PodObservation, ctx: &HintContext<'_>) -> Judgement {
    let HintContext { namespace: ns, pod, workload, metrics_port } = *ctx;
    let fail = |verdict, reason: String, hint: String| Judgement { verdict, reason, hint: Some(hint) };
    let Some(agent) = obs.agent.as_ref() else {
        return fail(
            Verdict::NotAttached,
            "pod has no bpc-agent container".into(),
            format!(
                "attach the workload (kubectl bpc attach {workload} -n {ns} --collector ADDR), or wait for \
                 the rollout to replace this pod (kubectl rollout status {workload} -n {ns})"
            ),
        );
    };
    if let Some(t) = agent.last_termination.as_ref().filter(|t| mentions_net_raw(t)) {
        let msg = t.message.as_deref().unwrap_or_default().trim();
        return fail(
            Verdict::MissingNetRaw,
            format!("agent exited 2: {msg}"),
            format!(
                "the node's runtime did not grant NET_RAW (CRI-O does not by default): re-attach with \
                 kubectl bpc attach {workload} -n {ns} --capabilities add (needs a namespace that does not \
                 enforce Pod Security baseline), or add NET_RAW to CRI-O's default_capabilities; under \
                 'restricted' capture is impossible: kubectl label ns {ns} pod-security.kubernetes.io/enforce=baseline"
            ),
        );
    }
    let backoff = agent.reason.as_deref() == Some("CrashLoopBackOff");
    if backoff || (agent.state != "running" && agent.restarts > 0) || agent.state == "terminated" {
        let last = agent.last_termination.as_ref().map_or(String::new(), |t| {
            format!(
                "; last exit {} ({}){}",
                t.exit_code,
                t.reason.as_deref().unwrap_or("?"),
                t.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default()
            )
        });
        return fail(
            Verdict::Crashloop,
            format!(
                "agent {} after {} restarts{last}",
                agent.reason.as_deref().unwrap_or(&agent.state),
                agent.restarts
            ),
            format!("read the agent's log: kubectl logs -n {ns} {pod} -c bpc-agent --previous"),
        );
    }
    if agent.state != "running" {
        return fail(
            Verdict::AgentNotRunning,
            format!("agent container {} ({})", agent.state, agent.reason.as_deref().unwrap_or("no reason")),
            format!("kubectl describe pod -n {ns} {pod} (events show image pull or scheduling problems)"),
        );
    }
    if obs.metrics_private {
        return Judgement {
            verdict: Verdict::Ok,
            reason: format!(
                "agent running ({} restarts); its counters are private (attached with --metrics-private: \
                 the endpoint listens on loopback only, the liveness probe checks it)",
                agent.restarts
            ),
            hint: None,
        };
    }
    let first = match obs.first.as_ref() {
        Some(Ok(s)) => s,
        Some(Err(e @ ProxyError::Status { code: 403, .. })) => {
            return fail(
                Verdict::StatsUnavailable,
                e.to_string(),
                format!(
                    "you may not read agent stats: ask for RBAC get on pods/proxy in {ns} \
                     (check: kubectl auth can-i get pods/proxy -n {ns})"
                ),
            );
        }
        Some(Err(e)) => {
            return fail(
                Verdict::StatsUnavailable,
                e.to_string(),
                format!(
                    "the API server cannot reach the agent on port {}: check NetworkPolicy and the bpc-metrics port; \
                     try kubectl get --raw {}",
                    metrics_port,
                    pod_proxy::proxy_path(ns, pod, metrics_port, "healthz")
                ),
            );
        }
        None => {
            return fail(
                Verdict::StatsUnavailable,
                "agent stats were not read".into(),
                format!("kubectl get --raw {}", pod_proxy::proxy_path(ns, pod, metrics_port, "stats")),
            );
        }
    };
    let latest = obs.second.as_ref().unwrap_or(first);
    // Counters restart with the agent: a lower second sample means a restart,
    // so the second sample alone is the evidence.
    let restarted = obs.second.is_some() && latest.capture.packets < first.capture.packets;
    let two = obs.second.is_some() && !restarted;

    let errors_before: BTreeMap<String, u64> = failing_sends(first).into_iter().collect();
    let mut unreachable = Vec::new();
    for c in &latest.collectors {
        let now = c.errors.failing();
        let rising = if two { now > errors_before.get(&c.host).copied().unwrap_or(0) } else { now > 0 };
        let stale = c.last_send_age_seconds.is_none_or(|a| a > obs.no_traffic_after) || c.sent_packets == 0;
        if rising && (two || stale) {
            unreachable.push(format!(
                "{} ({} unreachable, {} no_buffer, {} resolve, {} other errors)",
                c.host, c.errors.unreachable, c.errors.no_buffer, c.errors.resolve, c.errors.other
            ));
        }
    }
    if !unreachable.is_empty() {
        return fail(
            Verdict::CollectorUnreachable,
            format!("sends failing to {}", unreachable.join(", ")),
            format!(
                "check the collector address and that GRE (IP protocol 47) is allowed from the pod by \
                 NetworkPolicy and firewalls; test with kubectl bpc verify {workload} -n {ns} --sink ADDR"
            ),
        );
    }
    let (dropping, how) = if two {
        let d = drops(latest).saturating_sub(drops(first));
        (d > 0, format!("{d} drops in {:.0} s", obs.interval_seconds))
    } else {
        (drops(latest) > 0, format!("{} drops since start", drops(latest)))
    };
    if dropping {
        let c = &latest.capture;
        return fail(
            Verdict::Dropping,
            format!(
                "{how} (kernel {}, interface {}, rate-limited {})",
                c.kernel_drops, c.interface_drops, c.rate_limited
            ),
            format!(
                "narrow the BPF filter (current: '{}') or raise the limits: kubectl bpc attach {workload} -n {ns} \
                 --filter ... --max-pps/--max-mbps ...",
                latest.filter
            ),
        );
    }
    let idle = match latest.capture.last_packet_age_seconds {
        Some(age) => (age > obs.no_traffic_after).then(|| format!("no packet captured for {age:.0} s")),
        None if latest.uptime_seconds >= obs.no_traffic_after => {
            Some(format!("no packet captured since start {:.0} s ago", latest.uptime_seconds))
        }
        None => None,
    };
    if let Some(reason) = idle {
        return fail(
            Verdict::NoTraffic,
            reason,
            format!(
                "the pod may be idle or the filter '{}' on {} matches nothing; send it traffic, check the filter, \
                 then kubectl bpc verify {workload} -n {ns} --sink ADDR",
                latest.filter, latest.interface
            ),
        );
    }
    let reason = match latest.capture.last_packet_age_seconds {
        Some(age) => format!(
            "{} packets captured, last {age:.1} s ago, {} sent",
            latest.capture.packets,
            latest.collectors.iter().map(|c| c.sent_packets).sum::<u64>()
        ),
        None => format!("agent up {:.0} s, no packet yet", latest.uptime_seconds),
    };
    Judgement { verdict: Verdict::Ok, reason, hint: None }
}

/// Desired/updated/ready replica counts of a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Replicas wanted.
    pub desired: i32,
    /// Replicas running the current template.
    pub updated: i32,
    /// Replicas ready.
    pub ready: i32,
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
    pub kind: String,
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
}

impl StatusReport {
    /// Builds the report and its summary.
    pub fn new(workloads: Vec<WorkloadReport>) -> Self {
        let pods = workloads.iter().map(|w| w.pods.len()).sum();
        let pods_ok =
            workloads.iter().flat_map(|w| &w.pods).filter(|p| p.judgement.verdict == Verdict::Ok).count();
        let workloads_not_ok = workloads.iter().filter(|w| w.judgement.verdict != Verdict::Ok).count();
        StatusReport {
            ok: workloads_not_ok == 0,
            summary: Summary { workloads: workloads.len(), pods, pods_ok, workloads_not_ok },
            workloads,
        }
    }

    /// Exit code: 0 all OK, 1 anything not OK.
    pub fn exit_code(&self) -> ExitCode {
        if self.ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
    }
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
    if let Some(worst) = pods.iter().max_by_key(|p| p.judgement.verdict)
        && worst.judgement.verdict != Verdict::Ok
    {
        let bad = pods.iter().filter(|p| p.judgement.verdict != Verdict::Ok).count();
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
    Judgement { verdict: Verdict::Ok, reason: format!("{} pods OK", pods.len()), hint: None }
}

/// Marks for OK / not OK: `√`/`×` on a terminal, `[ok]`/`[FAIL]` otherwise
/// so logs and grep stay ASCII.
#[derive(Debug, Clone, Copy)]
pub struct Marks {
    ok: &'static str,
    fail: &'static str,
}

impl Marks {
    /// Unicode marks for a terminal.
    pub const TTY: Marks = Marks { ok: "√", fail: "×" };
    /// ASCII marks for pipes and files.
    pub const PLAIN: Marks = Marks { ok: "[ok]", fail: "[FAIL]" };

    fn of(&self, v: Verdict) -> &'static str {
        if v == Verdict::Ok { self.ok } else { self.fail }
    }
}

fn age(a: Option<f64>) -> String {
    a.map_or("-".into(), |a| format!("{a:.1}s"))
}

/// Renders the report for people (`table` or `wide`).
pub fn render_text(
    report: &StatusReport,
    wide: bool,
    marks: Marks,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for w in &report.workloads {
        let r = w.rollout;
        writeln!(
            out,
            "{} {}/{}/{}  rollout: {} desired, {} updated, {} ready  {}",
            marks.of(w.judgement.verdict),
            w.namespace,
            w.kind.to_lowercase(),
            w.name,
            r.desired,
            r.updated,
            r.ready,
            w.judgement.verdict.label()
        )?;
        if w.pods.is_empty() {
            if let Some(h) = &w.judgement.hint {
                writeln!(out, "    {}\n    hint: {h}", w.judgement.reason)?;
            }
            writeln!(out)?;
            continue;
        }
        let mut rows: Vec<[String; 14]> = Vec::new();
        for p in &w.pods {
            let s = p.stats.as_ref();
            let c = s.map(|s| &s.capture);
            let num = |f: &dyn Fn(&AgentStats) -> u64| s.map_or("-".into(), |s| f(s).to_string());
            rows.push([
                marks.of(p.judgement.verdict).to_owned(),
                p.name.clone(),
                p.node.clone().unwrap_or_else(|| "-".into()),
                p.ip.clone().unwrap_or_else(|| "-".into()),
                p.agent.as_ref().map_or("-".into(), |a| a.state.clone()),
                p.agent.as_ref().map_or("-".into(), |a| a.restarts.to_string()),
                num(&|s| s.capture.packets),
                num(&drops),
                num(&|s| s.collectors.iter().map(|c| c.sent_packets).sum()),
                num(&|s| s.collectors.iter().map(|c| c.errors.failing()).sum()),
                age(c.and_then(|c| c.last_packet_age_seconds)),
                p.judgement.verdict.label().to_owned(),
                s.map_or("-".into(), |s| s.key.clone()),
                s.map_or("-".into(), |s| {
                    s.collectors
                        .iter()
                        .map(|c| c.address.map_or_else(|| c.host.clone(), |a| a.to_string()))
                        .collect::<Vec<_>>()
                        .join(",")
                }),
            ]);
        }
        let header = [
            "",
            "POD",
            "NODE",
            "IP",
            "AGENT",
            "RESTARTS",
            "CAPTURED",
            "DROPS",
            "SENT",
            "SEND-ERRORS",
            "LAST-PKT",
            "VERDICT",
            "KEY",
            "COLLECTORS",
        ];
        let mut buf = Vec::new();
        if wide {
            crate::map::write_table(&mut buf, &header, &rows)?;
        } else {
            let short: Vec<[String; 12]> =
                rows.iter().map(|r| std::array::from_fn(|i| r[i].clone())).collect();
            let h: [&str; 12] = std::array::from_fn(|i| header[i]);
            crate::map::write_table(&mut buf, &h, &short)?;
        }
        for line in String::from_utf8_lossy(&buf).lines() {
            writeln!(out, "  {line}")?;
        }
        for p in w.pods.iter().filter(|p| p.judgement.verdict != Verdict::Ok) {
            writeln!(out, "    {} {}: {}", p.name, p.judgement.verdict.label(), p.judgement.reason)?;
            if let Some(h) = &p.judgement.hint {
                writeln!(out, "      hint: {h}")?;
            }
            for l in &p.logs {
                writeln!(out, "      | {l}")?;
            }
        }
        if w.judgement.verdict == Verdict::NotAttached
            && let Some(h) = &w.judgement.hint
        {
            writeln!(out, "    hint: {h}")?;
        }
        writeln!(out)?;
    }
    let s = report.summary;
    writeln!(
        out,
        "{} {} of {} workloads OK, {} of {} pods OK",
        marks.of(if report.ok { Verdict::Ok } else { Verdict::NotAttached }),
        s.workloads - s.workloads_not_ok,
        s.workloads,
        s.pods_ok,
        s.pods
    )
}

/// A workload found in the cluster.
#[derive(Debug, Clone)]
struct Found {
    namespace: String,
    kind: &'static str,
    name: String,
    attached: bool,
    rollout: Rollout,
}

fn template_attached(t: &PodTemplateSpec) -> bool {
    let annotated = t
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .is_some_and(|a| a.contains_key(STATUS_ANNOTATION));
    let has_agent = t.spec.as_ref().is_some_and(|s| {
        s.containers.iter().chain(s.init_containers.iter().flatten()).any(|c| c.name == AGENT_CONTAINER)
    });
    annotated && has_agent
}

/// Parses a workload argument: `kind/name` (short kinds accepted) or a bare
/// name matching any kind. Returns (canonical kind or None, name).
pub fn parse_workload_arg(arg: &str) -> Result<(Option<&'static str>, &str), Error> {
    let Some((kind, name)) = arg.split_once('/') else { return Ok((None, arg)) };
    let kind = crate::workload::WorkloadKind::from_resource(kind).map(|k| k.as_str()).ok_or_else(|| {
        Error::Usage(format!(
            "unsupported workload kind '{}' in '{arg}': use deployment/NAME, statefulset/NAME or daemonset/NAME",
            kind.to_ascii_lowercase()
        ))
    })?;
    if name.is_empty() {
        return Err(Error::Usage(format!("workload '{arg}' has no name")));
    }
    Ok((Some(kind), name))
}

use crate::kube_context::scoped_api as api;

async fn find_workloads(client: &Client, namespace: Option<&str>) -> Result<Vec<Found>, Error> {
    let lp = ListParams::default();
    let mut found = Vec::new();
    for d in api::<Deployment>(client, namespace).list(&lp).await?.items {
        let st = d.status.clone().unwrap_or_default();
        let spec = d.spec.as_ref();
        found.push(Found {
            namespace: d.namespace().unwrap_or_default(),
            kind: "Deployment",
            name: d.name_any(),
            attached: spec.is_some_and(|s| template_attached(&s.template)),
            rollout: Rollout {
                desired: spec.and_then(|s| s.replicas).unwrap_or(1),
                updated: st.updated_replicas.unwrap_or(0),
                ready: st.ready_replicas.unwrap_or(0),
            },
        });
    }
    for s in api::<StatefulSet>(client, namespace).list(&lp).await?.items {
        let st = s.status.clone().unwrap_or_default();
        let spec = s.spec.as_ref();
        found.push(Found {
            namespace: s.namespace().unwrap_or_default(),
            kind: "StatefulSet",
            name: s.name_any(),
            attached: spec.is_some_and(|s| template_attached(&s.template)),
            rollout: Rollout {
                desired: spec.and_then(|s| s.replicas).unwrap_or(1),
                updated: st.updated_replicas.unwrap_or(0),
                ready: st.ready_replicas.unwrap_or(0),
            },
        });
    }
    for d in api::<DaemonSet>(client, namespace).list(&lp).await?.items {
        let st = d.status.clone().unwrap_or_default();
        found.push(Found {
            namespace: d.namespace().unwrap_or_default(),
            kind: "DaemonSet",
            name: d.name_any(),
            attached: d.spec.as_ref().is_some_and(|s| template_attached(&s.template)),
            rollout: Rollout {
                desired: st.desired_number_scheduled,
                updated: st.updated_number_scheduled.unwrap_or(0),
                ready: st.number_ready,
            },
        });
    }
    Ok(found)
}

/// Selects the workloads to report: the named ones (an unknown name is a
/// usage error), else every attached one.
fn select(found: Vec<Found>, wanted: &[String]) -> Result<Vec<Found>, Error> {
    if wanted.is_empty() {
        return Ok(found.into_iter().filter(|f| f.attached).collect());
    }
    let mut out = Vec::new();
    for arg in wanted {
        let (kind, name) = parse_workload_arg(arg)?;
        let hits: Vec<&Found> =
            found.iter().filter(|f| f.name == name && kind.is_none_or(|k| k == f.kind)).collect();
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
        .and_then(|a| crate::sidecar::AttachRecord::parse(a).ok())
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
    // Declared but no status yet (pod pending): not running, not missing.
    crate::map::pod_is_attached(pod).then(|| AgentContainer { state: "waiting".into(), ..Default::default() })
}

/// Runs `kubectl bpc status` against a client; returns the report.
pub async fn collect(
    client: &Client,
    namespace: Option<&str>,
    args: &StatusArgs,
) -> Result<StatusReport, Error> {
    let found = select(find_workloads(client, namespace).await?, &args.workloads)?;
    if found.is_empty() {
        return Ok(StatusReport::new(Vec::new()));
    }
    let lp = ListParams::default();
    let owners = OwnerCache::from_replica_sets(&api::<ReplicaSet>(client, namespace).list(&lp).await?.items);
    let pods = api::<Pod>(client, namespace).list(&lp).await?.items;

    // (workload index, pod, agent)
    let mut members: Vec<(usize, Pod, Option<AgentContainer>)> = Vec::new();
    for pod in pods {
        let w = owners.workload_of(&pod);
        let ns = pod.namespace().unwrap_or_default();
        if let Some(i) = found.iter().position(|f| f.namespace == ns && f.kind == w.kind && f.name == w.name)
        {
            let agent = agent_status(&pod);
            members.push((i, pod, agent));
        }
    }
    let running = |a: &Option<AgentContainer>| a.as_ref().is_some_and(|a| a.state == "running");
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
        .map(|i| fetch(i, running(&members[i].2) && !metrics_private(&members[i].1)))
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
        let f = &found[wi];
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let workload = format!("{}/{}", f.kind.to_lowercase(), f.name);
        let obs = PodObservation {
            agent: agent.clone(),
            first,
            second,
            interval_seconds: args.sample_interval as f64,
            no_traffic_after: args.no_traffic_after as f64,
            metrics_private: metrics_private(&pod),
        };
        let ctx = HintContext {
            namespace: &ns,
            pod: &name,
            workload: &workload,
            metrics_port: pod_proxy::metrics_port(&pod),
        };
        let judgement = judge(&obs, &ctx);
        let mut logs = Vec::new();
        if judgement.verdict == Verdict::Crashloop && args.log_lines > 0 {
            let lp = LogParams {
                container: Some(AGENT_CONTAINER.into()),
                previous: true,
                tail_lines: Some(args.log_lines),
                ..LogParams::default()
            };
            // Logs are a courtesy: a pod whose previous log is gone still gets its verdict.
            if let Ok(text) = Api::<Pod>::namespaced(client.clone(), &ns).logs(&name, &lp).await {
                logs = text.lines().map(str::to_owned).collect();
            }
        }
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
            let workload = format!("{}/{}", f.kind.to_lowercase(), f.name);
            let judgement = judge_workload(f.attached, f.rollout, &pods, &workload, &f.namespace);
            WorkloadReport {
                namespace: f.namespace,
                kind: f.kind.to_owned(),
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

/// Writes the report in the chosen format.
pub fn render(
    report: &StatusReport,
    format: StatusFormat,
    marks: Marks,
    out: &mut impl Write,
) -> Result<(), Error> {
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report).map_err(|e| Error::Encode(e.to_string()))?;
            writeln!(out)?;
        }
        StatusFormat::Table | StatusFormat::Wide => {
            if report.workloads.is_empty() {
                writeln!(out, "no attached workload found (kubectl bpc attach KIND/NAME to start)")?;
            } else {
                render_text(report, format == StatusFormat::Wide, marks, out)?;
            }
        }
    }
    Ok(())
}

/// Entry point of `kubectl bpc status`: exit 0 all OK, 1 anything not OK;
/// API and usage errors are returned (the caller exits 2).
pub async fn run(args: &StatusArgs, client: &Client, namespace: Option<&str>) -> Result<ExitCode, Error> {
    if args.captures {
        return run_captures(client, namespace).await;
    }
    let report = collect(client, namespace, args).await?;
    let stdout = std::io::stdout();
    let marks = if stdout.is_terminal() { Marks::TTY } else { Marks::PLAIN };
    render(&report, args.output, marks, &mut stdout.lock())?;
    Ok(report.exit_code())
}

/// `status --captures`: one line per capture container, per pod.
async fn run_captures(client: &Client, namespace: Option<&str>) -> Result<ExitCode, Error> {
    let pods: kube::Api<Pod> = crate::kube_context::scoped_api(client, namespace);
    let list = pods.list(&kube::api::ListParams::default()).await?;
    let mut rows = vec![["NAMESPACE", "POD", "CONTAINER", "STARTED", "STATE"].map(String::from).to_vec()];
    for p in &list.items {
        for (name, start, state) in crate::capture::captures_of(p) {
            rows.push(vec![
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
                name,
                start.unwrap_or_else(|| "-".into()),
                state,
            ]);
        }
    }
    if rows.len() == 1 {
        println!("no captures");
        return Ok(ExitCode::SUCCESS);
    }
    let widths: Vec<usize> = (0..5).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    for r in rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_proxy::{CaptureStats, CollectorStats, Health, SendErrors};

    const CTX: HintContext<'static> =
        HintContext { namespace: "shop", pod: "web-1", workload: "deployment/web", metrics_port: 9469 };

    fn running() -> AgentContainer {
        AgentContainer { state: "running".into(), ready: true, ..Default::default() }
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
            state: "waiting".into(),
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

    #[test]
    fn exit_2_mentioning_net_raw_is_missing_net_raw() {
        let agent = AgentContainer {
            state: "waiting".into(),
            reason: Some("CrashLoopBackOff".into()),
            restarts: 4,
            last_termination: Some(Termination {
                exit_code: 2,
                reason: Some("Error".into()),
                message: Some("cannot open capture on eth0: missing CAP_NET_RAW; add NET_RAW".into()),
            }),
            ..Default::default()
        };
        let j = judge(&obs(Some(agent), None), &CTX);
        assert_eq!(j.verdict, Verdict::MissingNetRaw);
        assert!(j.hint.unwrap().contains("NET_RAW"));
    }

    #[test]
    fn exit_2_for_another_reason_is_a_crashloop_not_net_raw() {
        let agent = AgentContainer {
            state: "waiting".into(),
            reason: Some("CrashLoopBackOff".into()),
            restarts: 3,
            last_termination: Some(Termination {
                exit_code: 2,
                reason: Some("Error".into()),
                message: Some("BPC_COLLECTOR is empty".into()),
            }),
            ..Default::default()
        };
        let j = judge(&obs(Some(agent), None), &CTX);
        assert_eq!(j.verdict, Verdict::Crashloop);
        assert!(j.reason.contains("BPC_COLLECTOR is empty"), "{}", j.reason);
        assert!(j.hint.unwrap().contains("kubectl logs -n shop web-1 -c bpc-agent --previous"));
    }

    #[test]
    fn waiting_agent_without_restarts_is_not_running() {
        let agent = AgentContainer {
            state: "waiting".into(),
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

    #[test]
    fn workload_takes_the_worst_pod_verdict() {
        let pod = |name: &str, verdict| PodReport {
            name: name.into(),
            node: None,
            ip: None,
            agent: None,
            stats: None,
            judgement: Judgement { verdict, reason: "r".into(), hint: Some("h".into()) },
            logs: vec![],
        };
        let pods = [pod("a", Verdict::Ok), pod("b", Verdict::Crashloop), pod("c", Verdict::Dropping)];
        let j = judge_workload(true, Rollout::default(), &pods, "deployment/web", "shop");
        assert_eq!(j.verdict, Verdict::Crashloop);
        assert!(j.reason.starts_with("2 of 3 pods not OK; b:"), "{}", j.reason);
        let j = judge_workload(false, Rollout::default(), &[], "deployment/web", "shop");
        assert_eq!(j.verdict, Verdict::NotAttached);
    }

    #[test]
    fn verdict_labels_serialize_as_printed() {
        for v in [
            Verdict::Ok,
            Verdict::NoTraffic,
            Verdict::Dropping,
            Verdict::CollectorUnreachable,
            Verdict::StatsUnavailable,
            Verdict::AgentNotRunning,
            Verdict::Crashloop,
            Verdict::MissingNetRaw,
            Verdict::NotAttached,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.label());
        }
    }

    #[test]
    fn workload_args_accept_short_kinds_and_reject_others() {
        assert_eq!(parse_workload_arg("deploy/web").unwrap(), (Some("Deployment"), "web"));
        assert_eq!(parse_workload_arg("sts/db").unwrap(), (Some("StatefulSet"), "db"));
        assert_eq!(parse_workload_arg("web").unwrap(), (None, "web"));
        assert!(parse_workload_arg("cronjob/x").is_err());
    }
}
