//! `kubectl bpc verify`: prove end to end that a workload's capture reaches a
//! collector.
//!
//! Starts an embedded receiver, adds it as an extra collector to the
//! workload's sidecar (keeping the user's collectors), waits until every
//! ready pod's stream (by workload key and pod IP) delivered enough packets,
//! then restores the original collectors, also on timeout, error or Ctrl-C.
//!
//! `--ephemeral` proves the same path with no rollout: an ephemeral capture
//! container (`kubectl bpc capture --collector SINK`) in each running pod
//! streams to the receiver; the workload's spec is not touched.

use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use bpc_contract::env;
use bpc_wire::WorkloadKey;
use k8s_openapi::api::core::v1::{Container, Pod, PodTemplateSpec};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;
use crate::capture::{self, CaptureArgs};
use crate::duration::parse_duration;
use crate::kube_context::Kube;
use crate::pod_spec::{agent_of, env_of, pod_agent, sends_to};
use crate::sidecar::{AGENT_CONTAINER, STATUS_ANNOTATION};
use crate::sink::{GreTally, StreamReport};
use crate::workload::{KindApi, WorkloadKind, WorkloadRef};

pub use crate::sidecar::{MAX_COLLECTORS, VERIFY_ANNOTATION};

/// Arguments of `kubectl bpc verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The workload: `deploy/NAME`, `sts/NAME`, `ds/NAME` (a bare name means a Deployment).
    pub workload: String,
    /// Local IPv4 address the embedded receiver listens on.
    #[arg(long)]
    pub sink: IpAddr,
    /// Address the pods send to, when it differs from --sink (NAT, kind host).
    #[arg(long)]
    pub advertise: Option<IpAddr>,
    /// How long to wait for every pod's stream (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Packets each pod must deliver to pass.
    #[arg(long, default_value_t = 10)]
    pub min_packets: u64,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = VerifyFormat::Table)]
    pub output: VerifyFormat,
    /// Prove each running pod's capture and path with an ephemeral capture container (no
    /// rollout, the workload need not be attached) instead of re-pointing the sidecar.
    #[arg(long)]
    pub ephemeral: bool,
    /// With --ephemeral: the agent image [default: ghcr.io/kubectl-bpc/bpc-agent:<plugin version>].
    #[arg(long, value_name = "IMAGE", requires = "ephemeral")]
    pub image: Option<String>,
}

/// Output format of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VerifyFormat {
    /// PASS/FAIL lines.
    #[default]
    Table,
    /// The report as JSON.
    Json,
}

/// Where something receives GRE packets: the embedded receiver, or a fake.
pub trait StreamSource {
    /// Current per-stream counters.
    fn snapshot(&self) -> Vec<StreamReport>;
}

impl StreamSource for GreTally {
    fn snapshot(&self) -> Vec<StreamReport> {
        GreTally::snapshot(self)
    }
}

/// What verify reads from the workload before changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Kind.
    pub kind: WorkloadKind,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The sidecar's `BPC_COLLECTOR` value as attached.
    pub collectors: String,
    /// The status annotation as attached (restored verbatim).
    pub status_annotation: Option<String>,
    /// Whether the agent is a native sidecar (init container).
    pub init_container: bool,
    /// `matchLabels` of the workload's selector, as a label selector.
    pub selector: String,
    /// Replicas wanted (for a DaemonSet: pods scheduled).
    pub desired: i32,
}

/// Reads a target from a workload's pod template.
pub fn target_of(
    kind: WorkloadKind,
    meta: &kube::api::ObjectMeta,
    template: &PodTemplateSpec,
    match_labels: Option<&std::collections::BTreeMap<String, String>>,
    desired: i32,
) -> Result<Target, Error> {
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let workload = format!("{}/{name}", kind.lower());
    let not_attached = || {
        Error::Usage(format!(
            "{workload} in namespace {namespace} is not attached: run kubectl bpc attach {workload} -n {namespace} \
             --collector ADDR first"
        ))
    };
    let (agent, init_container) = template.spec.as_ref().and_then(agent_of).ok_or_else(not_attached)?;
    let collectors = env_of(agent, env::COLLECTOR).unwrap_or_default();
    let status_annotation = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .cloned();
    let selector = match_labels
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    if selector.is_empty() {
        return Err(Error::Usage(format!(
            "{workload} has no matchLabels selector; verify cannot find its pods"
        )));
    }
    Ok(Target { kind, name, namespace, collectors, status_annotation, init_container, selector, desired })
}

/// Fetches the workload and reads its target.
pub async fn read_target(client: &Client, namespace: &str, workload: &str) -> Result<Target, Error> {
    let named = WorkloadRef::parse(workload)?;
    let kind = named.kind_or_deployment();
    if !matches!(kind, WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet) {
        return Err(Error::Usage(format!(
            "verify proves a workload whose pods a rollout replaces (deploy/NAME, sts/NAME, ds/NAME); \
             '{workload}' is a {}: for its running pods use kubectl bpc verify --ephemeral or kubectl bpc capture",
            kind.as_str()
        )));
    }
    let object = kind.api(client, namespace).get(&named.name).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 => {
            Error::Usage(format!("workload '{workload}' not found in namespace {namespace}"))
        }
        other => Error::Kube(other),
    })?;
    let spec = |pointer: &str| object.data.pointer(pointer).cloned().unwrap_or(Value::Null);
    let template: PodTemplateSpec = serde_json::from_value(spec("/spec/template")).unwrap_or_default();
    let match_labels: Option<std::collections::BTreeMap<String, String>> =
        serde_json::from_value(spec("/spec/selector/matchLabels")).ok();
    let desired = crate::rollout::counts(kind, &object.data).desired;
    target_of(kind, &object.metadata, &template, match_labels.as_ref(), desired)
}

/// The collector list with the sink added; refuses a fifth collector.
pub fn with_sink(collectors: &str, sink: &str) -> Result<String, Error> {
    let mut list: Vec<&str> = collectors.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    if list.contains(&sink) {
        return Err(Error::Usage(format!(
            "{sink} is already a collector of this workload; verify needs a sink of its own"
        )));
    }
    if list.len() >= MAX_COLLECTORS {
        return Err(Error::Usage(format!(
            "the workload already has {MAX_COLLECTORS} collectors ({collectors}), the agent's maximum; \
             verify needs one more slot"
        )));
    }
    list.push(sink);
    Ok(list.join(","))
}

/// The status annotation with its collector list replaced (top-level or
/// under `options`, as `collectors` array or `collector` string); other
/// shapes are returned unchanged.
pub fn annotation_with_collectors(annotation: &str, collectors: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(annotation) else { return annotation.to_owned() };
    let list: Vec<Value> = collectors.split(',').map(|c| Value::String(c.to_owned())).collect();
    let mut changed = false;
    for scope in ["", "options"] {
        let target = if scope.is_empty() { Some(&mut v) } else { v.get_mut(scope) };
        let Some(Value::Object(map)) = target else { continue };
        if let Some(slot) = map.get_mut("collectors") {
            *slot = Value::Array(list.clone());
            changed = true;
        }
        if let Some(slot @ Value::String(_)) = map.get_mut("collector") {
            *slot = Value::String(collectors.to_owned());
            changed = true;
        }
    }
    if changed { v.to_string() } else { annotation.to_owned() }
}

/// Strategic merge patch setting the agent's `BPC_COLLECTOR` (merged by
/// container name and env name, so nothing else changes), the status
/// annotation and the verify annotation (null removes it).
pub fn collector_patch(
    target: &Target,
    collectors: &str,
    status_annotation: Option<&str>,
    verify_sink: Option<&str>,
) -> Value {
    let containers = if target.init_container { "initContainers" } else { "containers" };
    let mut annotations = serde_json::Map::new();
    if let Some(a) = status_annotation {
        annotations.insert(STATUS_ANNOTATION.into(), json!(a));
    }
    annotations.insert(VERIFY_ANNOTATION.into(), json!(verify_sink));
    json!({"spec": {"template": {
        "metadata": {"annotations": annotations},
        "spec": {containers: [{"name": AGENT_CONTAINER, "env": [{"name": env::COLLECTOR, "value": collectors}]}]}
    }}})
}

async fn patch(client: &Client, target: &Target, body: &Value) -> Result<(), kube::Error> {
    let api = target.kind.api(client, &target.namespace);
    api.patch(&target.name, &PatchParams::default(), &Patch::Strategic(body)).await.map(drop)
}

/// Result of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodResult {
    /// Pod name.
    pub pod: String,
    /// Pod IP (the stream's source address).
    pub ip: String,
    /// Workload key expected on its stream.
    pub key: String,
    /// Whether the pod runs the template that includes the sink.
    pub has_sink: bool,
    /// Packets received from it.
    pub packets: u64,
    /// Sequence numbers missing.
    pub lost: u64,
    /// PASS or FAIL.
    pub pass: bool,
}

/// The verify report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// `kind/name`.
    pub workload: String,
    /// Namespace.
    pub namespace: String,
    /// Sink address the pods sent to.
    pub sink: String,
    /// PASS, or FAIL and why: `pass` and `reason` in JSON.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Per ready pod.
    pub pods: Vec<PodResult>,
    /// Whether the original collectors were restored.
    pub restored: bool,
    /// `--ephemeral`: proven with ephemeral captures; the workload was not changed.
    pub ephemeral: bool,
}

impl VerifyReport {
    /// 0 PASS, 1 FAIL.
    pub fn exit_code(&self) -> ExitCode {
        if self.outcome.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
    }
}

/// A verification's verdict. One value rather than a flag beside an
/// optional reason, so that the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every pod delivered enough packets.
    Pass,
    /// Not (yet), and why.
    Fail(String),
}

impl Outcome {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }

    /// Why not, when not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail(why) => Some(why),
        }
    }

    /// The final verdict of a wait that ended at `timeout` without a pass.
    fn after_timeout(self, timeout: Duration) -> Self {
        match self {
            Outcome::Pass => Outcome::Pass,
            Outcome::Fail(why) => Outcome::Fail(format!("timed out after {timeout:?}: {why}")),
        }
    }
}

/// `{"pass": bool, "reason": string|null}`, the report's schema since
/// before the enum.
impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Outcome", 2)?;
        s.serialize_field("pass", &self.passed())?;
        s.serialize_field("reason", &self.reason())?;
        s.end()
    }
}

/// One look at the pods and the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The verdict of this look.
    pub outcome: Outcome,
    /// Per pod, sorted by name.
    pub pods: Vec<PodResult>,
}

impl Evaluation {
    /// The verdict from the results, or `failure` if the pods as a whole fail.
    fn of(pods: Vec<PodResult>, failure: Option<String>, min_packets: u64) -> Self {
        let outcome = match failure.or_else(|| first_short(&pods, min_packets)) {
            None => Outcome::Pass,
            Some(why) => Outcome::Fail(why),
        };
        Evaluation { outcome, pods }
    }
}

/// Looks every 500 ms until `look` passes or `timeout` is over. A look that
/// could not be made (`Err(why)`) fails with its reason and keeps the pods
/// of the look before.
async fn wait_for_pass<F: Future<Output = Result<Evaluation, String>>>(
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

fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The key the pod's stream arrives under: what its agent sends.
fn expected_key(target: &Target, agent: Option<&Container>) -> WorkloadKey {
    let workload = WorkloadKey::from_workload(&target.namespace, target.kind.as_str(), &target.name);
    agent.map_or(workload, |c| crate::pod_spec::sent_key(c, workload).0)
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
fn delivered(streams: &[StreamReport], ip: &str, key: &str) -> (u64, u64) {
    streams
        .iter()
        .filter(|s| s.source.to_string() == ip && s.workload_key() == Some(key))
        .fold((0, 0), |(n, l), s| (n + s.packets, l + s.lost))
}

/// Why a set of results does not pass yet: the first pod short of packets.
fn first_short(results: &[PodResult], min_packets: u64) -> Option<String> {
    results
        .iter()
        .find(|p| !p.pass)
        .map(|p| format!("{} delivered {} of {min_packets} packets", p.pod, p.packets))
}

/// Runs the verification against a receiver; `interrupt` completing (e.g.
/// Ctrl-C) aborts it. The original collectors are restored in every case
/// once the sink patch was applied.
pub async fn verify(
    client: &Client,
    namespace: &str,
    args: &VerifyArgs,
    source: &impl StreamSource,
    interrupt: impl Future<Output = ()>,
) -> Result<VerifyReport, Error> {
    let target = read_target(client, namespace, &args.workload).await?;
    let sink = args.advertise.unwrap_or(args.sink).to_string();
    let collectors = with_sink(&target.collectors, &sink)?;
    let annotation = target.status_annotation.as_deref().map(|a| annotation_with_collectors(a, &collectors));
    patch(client, &target, &collector_patch(&target, &collectors, annotation.as_deref(), Some(&sink)))
        .await?;

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&target.selector);
    let wait = wait_for_pass(args.timeout, || async {
        match pods_api.list(&lp).await {
            Ok(pods) => Ok(evaluate(&target, &pods.items, &source.snapshot(), &sink, args.min_packets)),
            // A transient API error is a reason to look again, not to give up.
            Err(e) => Err(format!("cannot list pods: {e}")),
        }
    });
    let outcome = tokio::select! {
        r = wait => Ok(r),
        _ = interrupt => Err(Error::Interrupted("interrupted".into())),
    };

    let restore = collector_patch(&target, &target.collectors, target.status_annotation.as_deref(), None);
    let restored = patch(client, &target, &restore).await;
    if let Err(e) = restored {
        // The workload is left sending to a sink that is gone: a workload
        // failure with the command that mends it, whatever the outcome was.
        return Err(Error::Workload(format!(
            "could not restore the original collectors ({e}); restore them with: kubectl patch {}/{} -n {} \
             --type strategic -p '{}'",
            target.kind.lower(),
            target.name,
            target.namespace,
            restore
        )));
    }
    let Evaluation { outcome, pods } = outcome?;
    Ok(VerifyReport {
        workload: format!("{}/{}", target.kind.lower(), target.name),
        namespace: target.namespace,
        sink,
        outcome,
        pods,
        restored: true,
        ephemeral: false,
    })
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

/// `verify --ephemeral`: adds a capture container streaming to the sink to
/// every running pod of the workload and waits until each delivered enough.
/// The captures end by themselves at `--timeout` (Kubernetes cannot remove
/// an ephemeral container); nothing else changes.
pub async fn verify_ephemeral(
    kube: &Kube,
    args: &VerifyArgs,
    source: &impl StreamSource,
    interrupt: impl Future<Output = ()>,
) -> Result<VerifyReport, Error> {
    let sink = args.advertise.unwrap_or(args.sink).to_string();
    let capture = CaptureArgs {
        targets: vec![args.workload.clone()],
        duration: args.timeout,
        collectors: vec![sink.clone()],
        image: args.image.clone(),
        ..CaptureArgs::default()
    };
    capture.check()?;
    // Nobody attaches to these captures to start them: they start at once.
    let plans: Vec<_> = capture::plan(kube, &capture)
        .await?
        .into_iter()
        .map(capture::Planned::without_stdin_control)
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut pods = Vec::new();
    for plan in &plans {
        let pod = pods_api.get(&plan.pod).await?;
        // A sidecar already sending to the sink has the same key and IP: its
        // packets would pass for the capture's.
        if pod_agent(&pod).is_some_and(|agent| sends_to(agent, &sink)) {
            return Err(Error::Usage(format!(
                "{sink} is already a collector of pod/{}'s sidecar; verify needs a sink of its own",
                plan.pod
            )));
        }
        let key = match capture::workload_of(&pod) {
            Some(w) => WorkloadKey::from_workload(&w.namespace, w.kind.as_str(), &w.name),
            None => WorkloadKey::from_workload(&kube.namespace, "Pod", &plan.pod),
        };
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        pods.push(CapturedPod { pod: plan.pod.clone(), ip, key: key.to_string() });
    }
    for plan in &plans {
        capture::add_container(kube, plan).await?;
        eprintln!(
            "pod/{}: added ephemeral container {} (ends after {:?})",
            plan.pod,
            plan.container_name(),
            args.timeout
        );
    }
    let wait = wait_for_pass(args.timeout, || async {
        Ok(evaluate_captures(&pods, &source.snapshot(), args.min_packets))
    });
    let Evaluation { outcome, pods: results } = tokio::select! {
        r = wait => r,
        _ = interrupt => return Err(Error::Interrupted("interrupted (the captures end by themselves at --timeout)".into())),
    };
    let workload = capture::workload_of(&pods_api.get(&plans[0].pod).await?)
        .map_or_else(|| args.workload.clone(), |w| format!("{}/{}", w.kind.lower(), w.name));
    Ok(VerifyReport {
        workload,
        namespace: kube.namespace.clone(),
        sink,
        outcome,
        pods: results,
        restored: true,
        ephemeral: true,
    })
}

/// Writes the report.
pub fn render(report: &VerifyReport, format: VerifyFormat, out: &mut impl Write) -> Result<(), Error> {
    if format == VerifyFormat::Json {
        serde_json::to_writer_pretty(&mut *out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    for p in &report.pods {
        let loss =
            if p.packets + p.lost == 0 { 0.0 } else { 100.0 * p.lost as f64 / (p.packets + p.lost) as f64 };
        writeln!(
            out,
            "{:<6} {}  ip {}  key {}  packets {}  lost {} ({loss:.2}%){}",
            if p.pass { "PASS" } else { "FAIL" },
            p.pod,
            p.ip,
            p.key,
            p.packets,
            p.lost,
            if p.has_sink { "" } else { "  (old pod: no sink collector)" }
        )?;
    }
    match report.outcome.reason() {
        None => writeln!(
            out,
            "PASS {} -n {}: every ready pod reached {}",
            report.workload, report.namespace, report.sink
        )?,
        Some(r) => writeln!(out, "FAIL {} -n {}: {r}", report.workload, report.namespace)?,
    }
    if report.ephemeral {
        writeln!(out, "the workload was not changed; the captures end by themselves")?;
    } else {
        writeln!(out, "original collectors restored")?;
    }
    Ok(())
}

/// Entry point of `kubectl bpc verify`: exit 0 PASS, 1 FAIL; errors are
/// returned (the caller exits 2 for usage and API errors, 1 for a restore
/// that failed or a receiver error, 130 for Ctrl-C).
pub async fn run(args: &VerifyArgs, kube: &Kube) -> Result<ExitCode, Error> {
    let tally = GreTally::start(args.sink)?;
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = if args.ephemeral {
        verify_ephemeral(kube, args, &tally, interrupt).await?
    } else {
        verify(&kube.client, &kube.namespace, args, &tally, interrupt).await?
    };
    render(&report, args.output, &mut crate::output::stdout())?;
    Ok(report.exit_code())
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
    fn a_report_serializes_its_outcome_as_pass_and_reason_in_place() {
        let report = |outcome| VerifyReport {
            workload: "deployment/web".into(),
            namespace: "shop".into(),
            sink: "198.18.0.9".into(),
            outcome,
            pods: Vec::new(),
            restored: true,
            ephemeral: false,
        };
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let pass = serde_json::to_value(report(Outcome::Pass)).unwrap();
        assert_eq!(
            keys(&pass),
            ["workload", "namespace", "sink", "pass", "reason", "pods", "restored", "ephemeral"]
        );
        assert_eq!((&pass["pass"], &pass["reason"]), (&json!(true), &Value::Null));
        let fail = serde_json::to_value(report(Outcome::Fail("no ready pod".into()))).unwrap();
        assert_eq!((&fail["pass"], &fail["reason"]), (&json!(false), &json!("no ready pod")));
    }

    #[tokio::test]
    async fn a_look_that_could_not_be_made_fails_with_its_reason_and_keeps_the_pods_seen_before() {
        let pod = PodResult {
            pod: "web-a".into(),
            ip: "198.18.1.2".into(),
            key: "0x773f9626".into(),
            has_sink: true,
            packets: 3,
            lost: 0,
            pass: false,
        };
        let first =
            Evaluation { outcome: Outcome::Fail("web-a delivered 3 of 10 packets".into()), pods: vec![pod] };
        let mut looks = vec![Err("cannot list pods: 503".to_owned()), Ok(first.clone())];
        // Two looks: at once, then 500 ms later, past the 300 ms timeout.
        let last = wait_for_pass(Duration::from_millis(300), || {
            let next = looks.pop().expect("only two looks");
            async move { next }
        })
        .await;
        assert_eq!(last.outcome, Outcome::Fail("timed out after 300ms: cannot list pods: 503".into()));
        assert_eq!(last.pods, first.pods);
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

    #[test]
    fn sink_is_appended_and_a_fifth_collector_refused() {
        assert_eq!(with_sink("198.18.0.2", "198.18.0.9").unwrap(), "198.18.0.2,198.18.0.9");
        assert_eq!(with_sink("", "198.18.0.9").unwrap(), "198.18.0.9");
        assert!(with_sink("a,b,c,d", "e").is_err());
        assert!(with_sink("a,e", "e").is_err());
    }

    #[test]
    fn status_annotation_collectors_are_replaced_where_found() {
        let a = r#"{"containers":["bpc-agent"],"options":{"collectors":["198.18.0.2"],"filter":""}}"#;
        let v: Value = serde_json::from_str(&annotation_with_collectors(a, "198.18.0.2,198.18.0.9")).unwrap();
        assert_eq!(v["options"]["collectors"], json!(["198.18.0.2", "198.18.0.9"]));
        assert_eq!(v["containers"], json!(["bpc-agent"]));
        let b = r#"{"collector":"198.18.0.2"}"#;
        let v: Value = serde_json::from_str(&annotation_with_collectors(b, "198.18.0.2,x")).unwrap();
        assert_eq!(v["collector"], "198.18.0.2,x");
        assert_eq!(annotation_with_collectors("not json", "x"), "not json");
    }

    #[test]
    fn patch_targets_init_container_for_native_sidecars() {
        let t = Target {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
            namespace: "shop".into(),
            collectors: "a".into(),
            status_annotation: None,
            init_container: true,
            selector: "app=web".into(),
            desired: 1,
        };
        let p = collector_patch(&t, "a,b", None, None);
        assert_eq!(p["spec"]["template"]["spec"]["initContainers"][0]["env"][0]["value"], "a,b");
        assert_eq!(p["spec"]["template"]["metadata"]["annotations"][VERIFY_ANNOTATION], Value::Null);
    }
}
