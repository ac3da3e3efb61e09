//! `kubectl bpc capture`: capture running pods now, with no restart.
//!
//! Each pod gets an ephemeral container `bpc-capture-<id>` running the agent
//! (built by [`crate::sidecar::container`], then stripped of what ephemeral
//! containers may not have: ports, probes, resources), added through the
//! `pods/ephemeralcontainers` subresource with a strategic merge patch that
//! names only that container. Ephemeral containers share the pod's network
//! namespace, so the pod keeps running untouched.
//!
//! The agent runs with `--stdin-control`: the plugin attaches (`pods/attach`,
//! websocket) to its stdin and stdout, sends one byte to start it (output
//! written before an attach is not replayed, and pcapng needs its header),
//! and sends another, or detaches, to stop it. With `-w` the agent writes
//! pcapng to stdout, which the plugin merges ([`crate::merge`]) into FILE or
//! its own stdout; with `--collector` it streams GRE as the sidecar does.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bpc_contract::env;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams, LogParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::capabilities::{CapabilitiesArg, CapabilityPlanner};
use crate::kube_context::{FIELD_MANAGER, Kube};
use crate::map::OwnerCache;
use crate::merge::{Demux, Merger};
use crate::sidecar::{self, GreProfile, Oversize, Sidecar, SidecarOptions};
use crate::workload::{KindApi, WorkloadId, WorkloadKind, WorkloadRef};
use crate::{EXIT_WORKLOAD_FAILED, Error, preflight};

/// Prefix of the ephemeral containers' names.
pub const CONTAINER_PREFIX: &str = "bpc-capture-";
/// How long the container may take to start (image pull included).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// After its `--duration`, how long an agent has to end its stream before
/// the plugin stops it.
const END_GRACE: Duration = Duration::from_secs(15);
/// How long a stopped agent has to flush and end its stream.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The agent's endpoint inside the pod: loopback (an ephemeral container
/// cannot declare a port, and must not collide with a sidecar's 9469), any
/// free port.
const METRICS_ADDR: &str = "127.0.0.1:0";

/// `kubectl bpc capture`.
// `Default` is a capture built in code (`verify --ephemeral`): no target,
// no output, every optional flag unset and `--duration 0` (not the command
// line's 60s); the caller sets what it needs.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(
    group(clap::ArgGroup::new("output").required(true).args(["collectors", "write"])),
    after_help = "Examples:
  # Straight into Wireshark
  kubectl bpc capture pod/web-1 -w - | wireshark -k -i -

  # Every running pod of a Deployment, 30 s of HTTP, into one file (one interface per pod)
  kubectl bpc capture deploy/web -n shop --filter 'tcp port 8080' --duration 30s -w web.pcapng

  # Stream to a GRE collector, as the sidecar does, for 5 minutes
  kubectl bpc capture -l app=web --collector 10.0.0.5 --duration 5m

Ephemeral containers cannot be removed: the finished capture stays listed in the pod as a
terminated container (kubectl bpc status shows it). They cannot have resources, ports or
probes: --max-pps/--max-mbps cap the agent's work instead."
)]
pub struct CaptureArgs {
    /// What to capture: pod/NAME, or a workload (NAME, deploy/NAME, sts/NAME, ds/NAME: its running pods).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Every running pod matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Capture filter in tcpdump (BPF) syntax [default: all of the pod's traffic].
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// How long to capture (0: until Ctrl-C or --count).
    #[arg(long, value_parser = crate::duration::parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// Stop each pod's capture after this many packets.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Stream GRE to this collector (as the sidecar does); repeat or comma-separate, up to 4.
    #[arg(long = "collector", value_name = "HOST", value_delimiter = ',')]
    pub collectors: Vec<String>,
    /// Write pcapng to FILE, or - for stdout (e.g. into wireshark -k -i -).
    #[arg(short = 'w', long = "write", value_name = "FILE|-")]
    pub write: Option<PathBuf>,
    /// Interface to capture on inside the pod [default: the default route's, e.g. eth0].
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Bytes kept of each frame [default: all of it].
    #[arg(long, value_name = "BYTES")]
    pub snaplen: Option<u32>,
    /// Most packets per second per pod (excess dropped and counted): ephemeral containers
    /// have no resource limits, this is the cap.
    #[arg(long, value_name = "N")]
    pub max_pps: Option<u64>,
    /// Most megabits per second per pod (excess dropped and counted).
    #[arg(long, value_name = "N")]
    pub max_mbps: Option<u64>,
    /// With --collector: oversize frame handling [agent default: segment].
    #[arg(long, value_enum)]
    pub oversize: Option<Oversize>,
    /// With --collector: GRE header profile [agent default: standard].
    #[arg(long, value_enum)]
    pub gre_profile: Option<GreProfile>,
    /// With --collector: the format, gre, vxlan, erspan-ii or erspan-iii [agent default: gre].
    #[arg(long, value_enum)]
    pub encap: Option<sidecar::Encap>,
    /// With --encap vxlan: the VNI [agent default: the workload key's low 24 bits].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(bpc_wire::vxlan::MAX_VNI)))]
    pub vni: Option<u32>,
    /// With --encap erspan-ii/erspan-iii: the session ID [agent default: the workload key's low 10 bits].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=i64::from(bpc_wire::erspan::MAX_SESSION)))]
    pub session: Option<u16>,
    /// With --collector: GRE key instead of the workload key.
    #[arg(long, value_name = "N", value_parser = sidecar::parse_key)]
    pub key: Option<u32>,
    /// Agent image [default: ghcr.io/kubectl-bpc/bpc-agent:<plugin version>].
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Capture ring size in MiB [agent default: 24].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(i64::from(bpc_contract::defaults::MIN_BUFFER_MIB)..=i64::from(bpc_contract::defaults::MAX_BUFFER_MIB)))]
    pub buffer: Option<u32>,
    /// How the agent gets CAP_NET_RAW.
    #[arg(long, value_enum, default_value = "auto")]
    pub capabilities: CapabilitiesArg,
    /// Suffix of the container name (default: random); tests fix it.
    #[arg(long, hide = true)]
    pub id: Option<String>,
    /// Nothing on stderr but the one line of a failure (the Wireshark extcap:
    /// Wireshark shows an extcap's stderr as its error dialog).
    #[arg(skip)]
    pub quiet: bool,
}

impl CaptureArgs {
    /// The sidecar options these flags stand for (what the container is built from).
    pub fn sidecar_options(&self) -> SidecarOptions {
        let mut o = SidecarOptions::with_collectors(&[]);
        o.collectors = self.collectors.clone();
        o.filter = self.filter.clone();
        o.interface = self.interface.clone();
        o.snaplen = self.snaplen;
        o.max_pps = self.max_pps;
        o.max_mbps = self.max_mbps;
        o.oversize = self.oversize;
        o.gre_profile = self.gre_profile;
        o.encap = self.encap;
        o.vni = self.vni;
        o.session = self.session;
        o.key = self.key;
        o.image = self.image.clone();
        o.buffer = self.buffer;
        o
    }

    /// Checks what can be checked without a cluster.
    pub fn check(&self) -> Result<(), Error> {
        if self.targets.is_empty() && self.selector.is_none() {
            return Err(Error::Usage(
                "name what to capture: pod/NAME, NAME, deploy/NAME, sts/NAME, ds/NAME, or -l SELECTOR".into(),
            ));
        }
        if !self.targets.is_empty() && self.selector.is_some() {
            return Err(Error::Usage("give targets or -l SELECTOR, not both".into()));
        }
        for t in &self.targets {
            Target::parse(t)?;
        }
        if self.write.is_some() {
            for (set, flag) in [
                (self.oversize.is_some(), "--oversize"),
                (self.gre_profile.is_some(), "--gre-profile"),
                (self.encap.is_some(), "--encap"),
                (self.vni.is_some(), "--vni"),
                (self.session.is_some(), "--session"),
                (self.key.is_some(), "--key"),
            ] {
                if set {
                    return Err(Error::Usage(format!("{flag} applies to --collector, not to -w")));
                }
            }
        } else {
            let mut o = self.sidecar_options();
            o.metrics_port = sidecar::DEFAULT_METRICS_PORT;
            preflight::check_options(&o)?;
        }
        if let Some(f) = &self.filter {
            preflight::compile_filter(f)?;
        }
        if self.snaplen == Some(0) {
            return Err(Error::Usage("--snaplen 0 would keep nothing: give at least 64".into()));
        }
        Ok(())
    }
}

/// One TARGET argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `pod/NAME`.
    Pod(String),
    /// A workload: its running pods.
    Workload(WorkloadRef),
}

impl Target {
    /// Parses `pod/NAME`, `po/NAME`, `pods/NAME` or a workload reference.
    pub fn parse(arg: &str) -> Result<Target, Error> {
        match arg.split_once('/') {
            Some(("pod" | "po" | "pods", name)) if !name.is_empty() && !name.contains('/') => {
                Ok(Target::Pod(name.to_owned()))
            }
            _ => WorkloadRef::parse(arg)
                .map(Target::Workload)
                .map_err(|e| Error::Usage(format!("{e} (or pod/NAME for one pod)"))),
        }
    }
}

/// A pod to capture, checked and with its container planned.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID when it was read.
    pub uid: String,
    /// The ephemeral container.
    pub container: Value,
    /// The workload the pod belongs to, when kubectl-bpc knows its kind.
    pub workload: Option<WorkloadId>,
    /// The pod's addresses and its name, for the pcapng's Name Resolution Block.
    pub hosts: Vec<(std::net::IpAddr, String)>,
}

impl Planned {
    /// The container's name.
    pub fn container_name(&self) -> &str {
        self.container["name"].as_str().unwrap_or_default()
    }

    /// The strategic merge patch of the `ephemeralcontainers` subresource.
    pub fn patch(&self) -> Value {
        json!({"spec": {"ephemeralContainers": [self.container]}})
    }
}

fn random_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:05x}", (nanos ^ std::process::id().rotate_left(16)) & 0xf_ffff)
}

/// The workload a pod belongs to, by the one resolver ([`OwnerCache`], here
/// without a cache: a ReplicaSet's Deployment from the pod-template-hash
/// suffix, so no read of the ReplicaSet is needed); None for an owner of a
/// kind kubectl-bpc does not know.
pub fn workload_of(pod: &Pod) -> Option<WorkloadId> {
    let namespace = pod.metadata.namespace.clone()?;
    OwnerCache::default().workload_of(pod).id(&namespace)
}

/// The ephemeral container for one pod: the sidecar's container (same
/// environment, key, profile, capabilities and security context), renamed,
/// without the fields ephemeral containers may not have, and with the
/// agent switched to a bounded, stdin-controlled capture.
pub fn capture_container(
    args: &CaptureArgs,
    workload: Option<&WorkloadId>,
    namespace: &str,
    mode: sidecar::CapabilityMode,
    id: &str,
) -> Value {
    let placeholder =
        WorkloadId { namespace: namespace.to_owned(), kind: WorkloadKind::Deployment, name: String::new() };
    let sidecar = Sidecar {
        workload: workload.cloned().unwrap_or(placeholder),
        options: args.sidecar_options(),
        capabilities: mode,
        allow_host_network: false,
        // Not placed in a template: the ephemeral container is built from the common container.
        form: sidecar::SidecarForm::Container,
    };
    let mut c = sidecar::container(&sidecar);
    if let Some(fields) = c.as_object_mut() {
        // Forbidden in ephemeral containers (the API server refuses them).
        for f in ["ports", "livenessProbe", "readinessProbe", "startupProbe", "resources"] {
            fields.shift_remove(f);
        }
    }
    c["name"] = json!(format!("{CONTAINER_PREFIX}{id}"));
    let mut env: Vec<Value> = c["env"].as_array().cloned().unwrap_or_default();
    env.retain(|e| {
        let name = e["name"].as_str().unwrap_or_default();
        let drop_collector = name == env::COLLECTOR && args.write.is_some();
        let drop_workload = name == env::WORKLOAD && workload.is_none();
        !(drop_collector || drop_workload || name == env::METRICS_ADDR)
    });
    let mut add = vec![(env::METRICS_ADDR, METRICS_ADDR.to_owned()), (env::STDIN_CONTROL, "true".into())];
    if args.write.is_some() {
        add.push((env::WRITE, "-".into()));
    }
    if !args.duration.is_zero() {
        add.push((env::DURATION, format!("{}ms", args.duration.as_millis())));
    }
    if let Some(n) = args.count {
        add.push((env::COUNT, n.to_string()));
    }
    // Before the Downward API variables, with the agent's other settings.
    let at = env.iter().position(|e| e["name"] == env::POD_NAME).unwrap_or(env.len());
    for (i, (name, value)) in add.into_iter().enumerate() {
        env.insert(at + i, json!({"name": name, "value": value}));
    }
    c["env"] = Value::Array(env);
    // stdin for --stdin-control; stdinOnce: the runtime closes it when the
    // plugin's attach ends, which stops the agent even if the plugin dies.
    c["stdin"] = json!(true);
    c["stdinOnce"] = json!(true);
    c["tty"] = json!(false);
    c
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Unknown")
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

fn pod_api_error(e: kube::Error, verb: &str, what: &str, namespace: &str) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            Error::Usage(format!("{what} not found in namespace {namespace}: check the name and -n"))
        }
        kube::Error::Api(s) if s.code == 403 => Error::Usage(format!(
            "{what} in namespace {namespace}: forbidden: {}; capture needs the RBAC verb '{verb}' \
             (check with: kubectl auth can-i {verb} -n {namespace})",
            s.message
        )),
        kube::Error::Api(s) => {
            Error::Usage(format!("{what} in namespace {namespace}: {verb}: {}", s.message))
        }
        other => Error::Kube(other),
    }
}

/// The pods the targets name, each with the workload it belongs to.
/// `pod/NAME` must be Running; a workload or selector contributes its
/// Running pods and must have at least one.
pub async fn resolve_pods(kube: &Kube, args: &CaptureArgs) -> Result<Vec<(Pod, Option<WorkloadId>)>, Error> {
    let ns = &kube.namespace;
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), ns);
    let mut out: Vec<(Pod, Option<WorkloadId>)> = Vec::new();
    let running_of = |list: Vec<Pod>, what: &str| -> Result<Vec<Pod>, Error> {
        let total = list.len();
        // A terminating pod still reports Running until its containers end:
        // a capture there would be cut short by the pod's own deletion.
        let running: Vec<Pod> = list
            .into_iter()
            .filter(|p| phase(p) == "Running" && p.metadata.deletion_timestamp.is_none())
            .collect();
        if running.is_empty() {
            return Err(Error::Usage(format!(
                "{what} in namespace {ns} has no Running pod ({total} pod(s) in other phases): capture needs a \
                 Running pod"
            )));
        }
        Ok(running)
    };
    let list = |selector: String| {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| pod_api_error(e, "list pods", &format!("selector {selector}"), ns))
        }
    };
    if let Some(selector) = &args.selector {
        for p in running_of(list(selector.clone()).await?.items, &format!("selector {selector}"))? {
            let w = workload_of(&p);
            out.push((p, w));
        }
    }
    for t in &args.targets {
        match Target::parse(t)? {
            Target::Pod(name) => {
                let p = pods
                    .get(&name)
                    .await
                    .map_err(|e| pod_api_error(e, "get pods", &format!("pod/{name}"), ns))?;
                if phase(&p) != "Running" {
                    return Err(Error::Usage(format!(
                        "pod/{name} in namespace {ns} is {}, not Running: capture needs a Running pod",
                        phase(&p)
                    )));
                }
                if p.metadata.deletion_timestamp.is_some() {
                    return Err(Error::Usage(format!(
                        "pod/{name} in namespace {ns} is terminating: a capture there would end with the pod; \
                         capture its replacement, or the workload"
                    )));
                }
                let w = workload_of(&p);
                out.push((p, w));
            }
            Target::Workload(r) => {
                let kind = r.kind_or_deployment();
                let id = WorkloadId { namespace: ns.clone(), kind, name: r.name.clone() };
                let o = kind.api(&kube.client, ns).get(&r.name).await.map_err(|e| {
                    pod_api_error(e, &format!("get {}", kind.resource()), &id.to_string(), ns)
                })?;
                let labels = o.data.pointer("/spec/selector/matchLabels").and_then(Value::as_object);
                let Some(labels) = labels.filter(|l| !l.is_empty()) else {
                    return Err(Error::Usage(format!(
                        "{id} has no matchLabels selector to find its pods by"
                    )));
                };
                let selector: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
                for p in running_of(list(selector.join(",")).await?.items, &id.to_string())? {
                    out.push((p, Some(id.clone())));
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|(p, _)| seen.insert(p.metadata.name.clone()));
    Ok(out)
}

/// The refusal of an ephemeral container patch, in words that say what to do.
fn patch_refused(e: kube::Error, pod: &str, namespace: &str, dry_run: bool) -> Error {
    let when = if dry_run { "the server dry run of " } else { "" };
    match e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains("ephemeralcontainers") => {
            Error::Usage(format!(
                "pod/{pod} in namespace {namespace}: {when}adding the capture container is forbidden: {}; \
                 capture needs the RBAC verb 'patch' on pods/ephemeralcontainers (check with: kubectl auth \
                 can-i patch pods --subresource=ephemeralcontainers -n {namespace})",
                s.message
            ))
        }
        kube::Error::Api(s) if s.code == 404 => Error::Usage(format!(
            "pod/{pod} in namespace {namespace}: {when}the ephemeral container patch found nothing ({}): the \
             pod is gone, or the API server has no pods/ephemeralcontainers subresource (Kubernetes 1.25+ \
             is needed)",
            s.message
        )),
        kube::Error::Api(s) => Error::Usage(format!(
            "pod/{pod} in namespace {namespace}: the API server refused the capture container ({} {}): {}",
            s.code, s.reason, s.message
        )),
        other => Error::Kube(other),
    }
}

fn patch_params(dry_run: bool) -> PatchParams {
    PatchParams { dry_run, field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// Pre-flight, before anything is written: the pods are Running and not on
/// the host network, the namespace's Pod Security level and the nodes'
/// runtime allow a capability mode, and the API server accepts the
/// ephemeral container in a dry run (dryRun=All: admission, Pod Security
/// and validation included). Returns the planned pods.
pub async fn plan(kube: &Kube, args: &CaptureArgs) -> Result<Vec<Planned>, Error> {
    let pods = resolve_pods(kube, args).await?;
    for (p, _) in &pods {
        if host_network(p) {
            return Err(Error::Usage(format!(
                "pod/{} uses hostNetwork: a capture there would record the whole node's traffic; capture a \
                 pod with its own network namespace",
                p.metadata.name.as_deref().unwrap_or_default()
            )));
        }
    }
    let mut planner = CapabilityPlanner::new(args.capabilities).quiet(args.quiet);
    let choice = planner.choose(&kube.client, &kube.namespace).await.map_err(|e| match e {
        // Nothing was written: a refused mode is a configuration error here.
        Error::Workload(m) => Error::Usage(m),
        other => other,
    })?;
    let base = args.id.clone().unwrap_or_else(random_id);
    let mut planned = Vec::new();
    for (i, (p, workload)) in pods.iter().enumerate() {
        let id = if pods.len() > 1 && args.id.is_some() { format!("{base}-{i}") } else { base.clone() };
        // A sidecar in the pod streams GRE too: captured, it would be sent to
        // our collector, where the sidecar captures it again, and so on.
        let sidecar = sidecar_collectors(p);
        let container = if sidecar.is_empty() {
            capture_container(args, workload.as_ref(), &kube.namespace, choice.mode, &id)
        } else {
            let mut a = args.clone();
            a.filter = Some(without_gre_to(args.filter.as_deref(), &sidecar));
            capture_container(&a, workload.as_ref(), &kube.namespace, choice.mode, &id)
        };
        let plan = Planned {
            namespace: kube.namespace.clone(),
            pod: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            container,
            workload: workload.clone(),
            hosts: crate::map::entries_of_pod(p, &OwnerCache::default())
                .iter()
                .filter_map(bpc_receiver::names::host_of)
                .collect(),
        };
        let api: Api<Pod> = Api::namespaced(kube.client.clone(), &plan.namespace);
        api.patch_ephemeral_containers(&plan.pod, &patch_params(true), &Patch::Strategic(plan.patch()))
            .await
            .map_err(|e| patch_refused(e, &plan.pod, &plan.namespace, true))?;
        planned.push(plan);
    }
    Ok(planned)
}

/// The collectors of the pod's `bpc-agent` sidecar, where they are addresses
/// (a name would have to be resolved by the filter compiler in the pod).
pub fn sidecar_collectors(pod: &Pod) -> Vec<std::net::IpAddr> {
    let Some(agent) = crate::pod_spec::pod_agent(pod) else { return Vec::new() };
    crate::pod_spec::collectors_of(agent).iter().filter_map(|c| c.parse().ok()).collect()
}

/// `filter` (all traffic when None) without GRE sent to `collectors`.
pub fn without_gre_to(filter: Option<&str>, collectors: &[std::net::IpAddr]) -> String {
    let terms: Vec<String> = collectors
        .iter()
        .map(|c| match c {
            std::net::IpAddr::V4(_) => format!("(ip proto 47 and dst host {c})"),
            std::net::IpAddr::V6(_) => format!("(ip6 proto 47 and dst host {c})"),
        })
        .collect();
    let not_sidecar = format!("not ({})", terms.join(" or "));
    match filter {
        Some(f) if !f.trim().is_empty() => format!("({f}) and {not_sidecar}"),
        _ => not_sidecar,
    }
}

impl Planned {
    /// The capture starts by itself instead of waiting for the plugin's start
    /// byte on stdin: for a caller that streams to a collector and does not
    /// attach (`verify --ephemeral`). `--duration` still ends it.
    pub fn without_stdin_control(mut self) -> Planned {
        if let Some(env) = self.container["env"].as_array_mut() {
            env.retain(|e| e["name"] != env::STDIN_CONTROL);
        }
        if let Some(fields) = self.container.as_object_mut() {
            fields.shift_remove("stdin");
            fields.shift_remove("stdinOnce");
        }
        self
    }
}

/// Adds the planned container to its pod (the real patch).
pub async fn add_container(kube: &Kube, plan: &Planned) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &plan.namespace);
    api.patch_ephemeral_containers(&plan.pod, &patch_params(false), &Patch::Strategic(plan.patch()))
        .await
        .map_err(|e| patch_refused(e, &plan.pod, &plan.namespace, false))?;
    Ok(())
}

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
async fn wait_running(kube: &Kube, plan: &Planned) -> Result<(), Error> {
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

/// What a pod's attach task reports.
enum Event {
    /// Bytes of the agent's stdout.
    Data(usize, Vec<u8>),
    /// The stream ended (with why, if it failed).
    End(usize, Option<String>),
}

/// Attaches to the container, starts the agent, forwards its stdout, and
/// stops it when `stop` fires.
async fn stream_pod(
    kube: Kube,
    plan: Planned,
    index: usize,
    events: mpsc::Sender<Event>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &plan.namespace);
    let ap = AttachParams::default()
        .container(plan.container_name())
        .stdin(true)
        .stdout(true)
        .stderr(false)
        .tty(false);
    let mut attached = match api.attach(&plan.pod, &ap).await {
        Ok(a) => a,
        Err(e) => {
            let _ = events.send(Event::End(index, Some(format!("attach failed: {e}")))).await;
            return;
        }
    };
    let (Some(stdin), Some(stdout)) = (attached.stdin(), attached.stdout()) else {
        let _ = events.send(Event::End(index, Some("attach gave no stdin/stdout".into()))).await;
        return;
    };
    let outcome = forward_stream(stdin, stdout, index, &events, stop).await;
    attached.abort();
    let _ = events.send(Event::End(index, outcome)).await;
}

/// The capture protocol over an attached agent's stdin and stdout: one byte
/// starts the agent, its pcapng is forwarded as it comes, a second byte when
/// `stop` fires makes it flush and end the stream. Returns why the stream
/// failed, or `None` when it ended (the agent exited, or the receiver went).
async fn forward_stream(
    mut stdin: impl tokio::io::AsyncWrite + Unpin,
    mut stdout: impl tokio::io::AsyncRead + Unpin,
    index: usize,
    events: &mpsc::Sender<Event>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<String> {
    if let Err(e) = stdin.write_all(b"s").await {
        return Some(format!("cannot start the agent: {e}"));
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut stop_sent = false;
    loop {
        tokio::select! {
            read = stdout.read(&mut buf) => match read {
                Ok(0) => return None,
                Ok(n) => {
                    if events.send(Event::Data(index, buf[..n].to_vec())).await.is_err() {
                        return None;
                    }
                }
                Err(e) => return Some(format!("stream failed: {e}")),
            },
            changed = stop.changed(), if !stop_sent => {
                stop_sent = true;
                if changed.is_ok() {
                    // A second byte: the agent stops, flushes, and ends the stream.
                    let _ = stdin.write_all(b"q").await;
                }
            }
        }
    }
}

/// The live line of one pod.
fn live_line(name: &str, t: crate::merge::Totals, rate: f64) -> String {
    format!("{name}: {} packets, {} bytes, {rate:.0} pkt/s, {} dropped", t.packets, t.bytes, t.drops)
}

/// `kubectl bpc capture`.
pub async fn run(args: &CaptureArgs, kube: &Kube) -> Result<ExitCode, Error> {
    args.check()?;
    // SIGTERM (`kill`, and how Wireshark stops an extcap) stops the agents as
    // Ctrl-C does; registered now so that one sent while pods start is kept.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hosts_written = bpc_receiver::names::Written::default();
    let plans = plan(kube, args).await?;
    // The file is created only once the pre-flight passed.
    let output: Option<Box<dyn Write + Send>> = match &args.write {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(
            std::fs::File::create(p)
                .map_err(|e| Error::Usage(format!("cannot create {}: {e}", p.display())))?,
        )),
    };
    let names: Vec<String> = plans.iter().map(|p| format!("{}/{}", p.namespace, p.pod)).collect();
    let mut merger = match output {
        Some(out) => {
            let snaplen = args.snaplen.unwrap_or(bpc_contract::defaults::SNAPLEN);
            let mut m = Merger::with_interfaces(out, &interfaces(&plans), snaplen)?;
            m.names(&hosts_written.fresh(plans.iter().flat_map(|p| p.hosts.clone())))?;
            Some(m)
        }
        None => None,
    };
    // The namespace's other addresses (peers, Services, nodes) and their
    // changes while the capture runs, for the Name Resolution Blocks.
    let (hosts_tx, mut hosts_rx) = mpsc::unbounded_channel();
    let follow_hosts = merger.is_some().then(|| tokio::spawn(follow_hosts(kube.clone(), hosts_tx)));
    for p in &plans {
        add_container(kube, p).await?;
        if !args.quiet {
            eprintln!("pod/{}: added ephemeral container {}", p.pod, p.container_name());
        }
    }
    let mut failures = Vec::new();
    let mut started = Vec::new();
    for p in &plans {
        match wait_running(kube, p).await {
            Ok(()) => started.push(p.clone()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let index_of: BTreeMap<String, usize> =
        plans.iter().enumerate().map(|(i, p)| (p.pod.clone(), i)).collect();
    let mut live = vec![false; plans.len()];
    for p in &started {
        let i = index_of[&p.pod];
        live[i] = true;
        tokio::spawn(stream_pod(kube.clone(), p.clone(), i, tx.clone(), stop_rx.clone()));
    }
    drop(tx);
    for (i, live) in live.iter().enumerate() {
        if !live && let Some(m) = merger.as_mut() {
            m.finish(i);
        }
    }
    let tty = std::io::stderr().is_terminal();
    let bars = indicatif::MultiProgress::with_draw_target(if tty {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    });
    let bar: Vec<indicatif::ProgressBar> = names
        .iter()
        .map(|n| {
            let b = bars.add(indicatif::ProgressBar::new_spinner());
            b.set_message(format!("{n}: starting"));
            b
        })
        .collect();
    let mut demux: Vec<Demux> = plans.iter().map(|_| Demux::default()).collect();
    let mut last = vec![(Instant::now(), 0u64); plans.len()];
    let mut ticker = tokio::time::interval(Duration::from_secs(if tty { 1 } else { 5 }));
    let begun = Instant::now();
    let limit = (!args.duration.is_zero()).then(|| args.duration + END_GRACE);
    let mut stopping: Option<Instant> = None;
    let mut stream_errors = Vec::new();
    let mut open = live.iter().filter(|l| **l).count();
    while open > 0 {
        tokio::select! {
            ev = rx.recv() => match ev {
                None => break,
                Some(Event::Data(i, bytes)) => {
                    if let Some(m) = merger.as_mut() {
                        match demux[i].push(&bytes) {
                            Ok(items) => m.push(i, items),
                            Err(e) => stream_errors.push(format!("{}: {e}", names[i])),
                        }
                    }
                    if reader_gone(&mut merger)? && stopping.is_none() {
                        let _ = stop_tx.send(true);
                        stopping = Some(Instant::now());
                    }
                }
                Some(Event::End(i, why)) => {
                    open -= 1;
                    if let Some(why) = why {
                        stream_errors.push(format!("{}: {why}", names[i]));
                    }
                    if demux[i].pending() > 0 {
                        stream_errors.push(format!(
                            "{}: the stream ended inside a block ({} bytes dropped)", names[i], demux[i].pending()
                        ));
                    }
                    if let Some(m) = merger.as_mut() {
                        m.finish(i);
                    }
                    if reader_gone(&mut merger)? && stopping.is_none() {
                        let _ = stop_tx.send(true);
                        stopping = Some(Instant::now());
                    }
                    bar[i].finish_with_message(format!("{} (ended)", bar[i].message()));
                }
            },
            _ = tokio::signal::ctrl_c(), if stopping.is_none() => {
                if !args.quiet {
                    eprintln!("stopping: the agents flush what they have");
                }
                let _ = stop_tx.send(true);
                stopping = Some(Instant::now());
            }
            _ = terminate.recv(), if stopping.is_none() => {
                let _ = stop_tx.send(true);
                stopping = Some(Instant::now());
            }
            Some(entry) = hosts_rx.recv() => {
                if let Some(m) = merger.as_mut() {
                    let fresh = hosts_written.fresh(bpc_receiver::names::host_of(&entry));
                    if let Err(e) = m.names(&fresh) && !e.is_closed_pipe() {
                        return Err(e);
                    }
                }
            }
            _ = ticker.tick() => {
                if stopping.is_none() && limit.is_some_and(|l| begun.elapsed() > l) {
                    let _ = stop_tx.send(true);
                    stopping = Some(Instant::now());
                }
                if stopping.is_some_and(|s| s.elapsed() > STOP_GRACE) {
                    stream_errors.push("the agents did not end their streams in time".into());
                    break;
                }
                if let Some(m) = merger.as_ref() {
                    for (i, name) in names.iter().enumerate() {
                        let t = m.totals(i);
                        let (at, packets) = last[i];
                        let rate = (t.packets - packets) as f64 / at.elapsed().as_secs_f64().max(0.001);
                        last[i] = (Instant::now(), t.packets);
                        let line = live_line(name, t, rate);
                        if tty { bar[i].set_message(line); bar[i].tick(); } else if !args.quiet { eprintln!("{line}"); }
                    }
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    if let Some(task) = follow_hosts {
        task.abort();
    }
    if let Some(mut m) = merger.take() {
        for i in 0..plans.len() {
            m.finish(i);
        }
        let totals: Vec<_> = (0..plans.len()).map(|i| m.totals(i)).collect();
        match m.drain().and_then(|_| Ok(m.into_inner().flush()?)) {
            Err(e) if e.is_closed_pipe() => {}
            other => other?,
        }
        for (name, t) in names.iter().zip(totals) {
            if !args.quiet {
                eprintln!("{}", live_line(name, t, 0.0).replace(", 0 pkt/s", ""));
            }
        }
    }
    // What each agent said at the end, and how it ended.
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    for p in &started {
        let name = p.container_name();
        let lp = LogParams { container: Some(name.to_owned()), tail_lines: Some(1), ..Default::default() };
        if let Ok(log) = pods.logs(&p.pod, &lp).await
            && log.contains(bpc_contract::defaults::FINAL_TALLY_PREFIX)
            && !args.quiet
        {
            eprintln!("pod/{} {name}: {}", p.pod, log.trim());
        }
        match wait_ended(&pods, p).await {
            ContainerState::Terminated { exit_code: 0, .. } => {}
            ContainerState::Terminated { exit_code, message, .. } => failures.push(format!(
                "pod/{}: {name} exited {exit_code}: {}",
                p.pod,
                message.unwrap_or_default().trim()
            )),
            other if !args.quiet => eprintln!("note: pod/{}: {name} has not ended yet ({other:?})", p.pod),
            _ => {}
        }
    }
    if args.quiet && !(failures.is_empty() && stream_errors.is_empty()) {
        let all: Vec<&str> = stream_errors.iter().chain(&failures).map(String::as_str).collect();
        return Err(Error::Workload(all.join("; ")));
    }
    for e in stream_errors.iter().chain(&failures) {
        eprintln!("error: {e}");
    }
    if failures.is_empty() && stream_errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(EXIT_WORKLOAD_FAILED))
    }
}

/// Each pod's interface: `NAMESPACE/POD`, described by its workload.
pub fn interfaces(plans: &[Planned]) -> Vec<crate::merge::PodInterface> {
    plans
        .iter()
        .map(|p| crate::merge::PodInterface {
            name: format!("{}/{}", p.namespace, p.pod),
            description: Some(match &p.workload {
                Some(w) => format!("workload {}", w.path()),
                None => "pod without a known workload".to_owned(),
            }),
        })
        .collect()
}

/// Drains the merger; true when its reader went away (Wireshark stopped, a
/// closed pipe): the output is dropped and the capture should stop.
fn reader_gone<W: Write>(merger: &mut Option<Merger<W>>) -> Result<bool, Error> {
    match merger.as_mut().map(Merger::drain) {
        Some(Err(e)) if e.is_closed_pipe() => {
            *merger = None;
            Ok(true)
        }
        Some(Err(e)) => Err(e),
        _ => Ok(false),
    }
}

/// Sends the map rows of the namespace (pods, Services, nodes), and each
/// change, while the capture runs. Best effort: a user who may not watch
/// them still gets the captured pods' own names, written at the start.
async fn follow_hosts(kube: Kube, tx: mpsc::UnboundedSender<crate::map::MapEntry>) {
    let result = crate::map::watch(&kube.client, Some(&kube.namespace), |ev| {
        if ev.event != crate::map::MapEventKind::Delete {
            let _ = tx.send(ev.entry);
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::debug!("no names beyond the captured pods: {e}");
    }
}

/// The container's state once it ended (or after a few seconds, whatever it is).
async fn wait_ended(pods: &Api<Pod>, p: &Planned) -> ContainerState {
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

/// One `kubectl bpc capture` container of a pod, as `status --captures` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureListing {
    /// `bpc-capture-<id>`.
    pub container: String,
    /// When it started (RFC 3339), once it has.
    pub started: Option<String>,
    /// `waiting (reason)`, `running`, `finished`, `failed (exit N)`.
    pub state: String,
    /// What the agent said when it ended (its termination message): the final tally of a
    /// finished capture, the error of a failed one.
    pub report: Option<String>,
}

/// The capture containers of a pod, for `status --captures`.
pub fn captures_of(pod: &Pod) -> Vec<CaptureListing> {
    let Some(spec) = pod.spec.as_ref().and_then(|s| s.ephemeral_containers.as_ref()) else {
        return Vec::new();
    };
    spec.iter()
        .filter(|c| c.name.starts_with(CONTAINER_PREFIX))
        .map(|c| {
            let (started, state, report) = match container_state(pod, &c.name) {
                ContainerState::Waiting(r) => {
                    (None, format!("waiting{}", r.map(|r| format!(" ({r})")).unwrap_or_default()), None)
                }
                ContainerState::Running(s) => (s, "running".into(), None),
                ContainerState::Terminated { exit_code, message, started, .. } => {
                    let state = match exit_code {
                        0 => "finished".to_owned(),
                        n => format!("failed (exit {n})"),
                    };
                    let report = message
                        .as_deref()
                        .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()))
                        .map(|l| l.trim_start_matches("bpc-agent: ").to_owned());
                    (started, state, report)
                }
            };
            CaptureListing { container: c.name.clone(), started, state, report }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_capture_nobody_attaches_to_starts_by_itself() {
        let plan = Planned {
            namespace: "shop".into(),
            pod: "web-1".into(),
            uid: "u".into(),
            workload: None,
            hosts: Vec::new(),
            container: json!({"name": "bpc-capture-x", "stdin": true, "stdinOnce": true,
                "env": [{"name": "BPC_STDIN_CONTROL", "value": "true"}, {"name": "BPC_DURATION", "value": "60000ms"}]}),
        }
        .without_stdin_control();
        assert_eq!(plan.container["env"], json!([{"name": "BPC_DURATION", "value": "60000ms"}]));
        assert!(plan.container.get("stdin").is_none() && plan.container.get("stdinOnce").is_none());
    }

    #[test]
    fn a_sidecars_gre_is_left_out_of_the_capture_so_the_two_agents_cannot_echo_each_other() {
        let v4: std::net::IpAddr = "198.18.0.2".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(without_gre_to(None, &[v4]), "not ((ip proto 47 and dst host 198.18.0.2))");
        assert_eq!(
            without_gre_to(Some("tcp port 8080"), &[v4, v6]),
            "(tcp port 8080) and not ((ip proto 47 and dst host 198.18.0.2) or (ip6 proto 47 and dst host 2001:db8::2))"
        );
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "app"},
            {"name": "bpc-agent", "env": [{"name": "BPC_COLLECTOR", "value": "198.18.0.2, collector.obs.svc"}]}
        ]}}))
        .unwrap();
        assert_eq!(sidecar_collectors(&pod), vec![v4], "names are left to the agent");
    }

    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CaptureArgs,
    }

    fn args(a: &[&str]) -> CaptureArgs {
        let mut full = vec!["capture"];
        full.extend_from_slice(a);
        Cli::try_parse_from(full).unwrap().args
    }

    #[test]
    fn targets_parse_pods_and_workloads() {
        assert_eq!(Target::parse("pod/web-1").unwrap(), Target::Pod("web-1".into()));
        assert_eq!(Target::parse("po/web-1").unwrap(), Target::Pod("web-1".into()));
        assert!(
            matches!(Target::parse("sts/db").unwrap(), Target::Workload(r) if r.kind == Some(WorkloadKind::StatefulSet))
        );
        assert!(
            matches!(Target::parse("web").unwrap(), Target::Workload(r) if r.kind_or_deployment() == WorkloadKind::Deployment)
        );
        assert!(
            matches!(Target::parse("job/x").unwrap(), Target::Workload(r) if r.kind == Some(WorkloadKind::Job)),
            "a Job's running pods can be captured"
        );
        assert!(Target::parse("rs/x").unwrap_err().to_string().contains("pod/NAME"));
        assert!(Target::parse("pod/").is_err());
    }

    #[test]
    fn an_output_is_required_and_gre_flags_do_not_go_with_write() {
        let mut full = vec!["capture", "pod/a"];
        assert!(Cli::try_parse_from(&full).is_err(), "neither --collector nor -w");
        full.extend(["-w", "x.pcapng", "--collector", "198.18.0.2"]);
        assert!(Cli::try_parse_from(&full).is_err(), "both");
        let e = args(&["pod/a", "-w", "-", "--gre-profile", "netis"]).check().unwrap_err();
        assert!(e.to_string().contains("--gre-profile applies to --collector"), "{e}");
        assert!(args(&["-w", "-"]).check().is_err(), "no target");
        args(&["pod/a", "-w", "-"]).check().unwrap();
        assert!(args(&["pod/a", "--collector", "198.18.0.2:80"]).check().is_err());
    }

    #[test]
    fn the_container_is_the_sidecar_without_ports_probes_or_resources_and_stdin_controlled() {
        let a = args(&["pod/a", "-w", "-", "--filter", "tcp port 80", "--count", "5", "--max-pps", "1000"]);
        let c = capture_container(&a, None, "shop", sidecar::CapabilityMode::Default, "abcde");
        assert_eq!(c["name"], "bpc-capture-abcde");
        for f in ["ports", "livenessProbe", "resources"] {
            assert!(c.get(f).is_none(), "{f} present");
        }
        assert_eq!(
            (c["stdin"].clone(), c["stdinOnce"].clone(), c["tty"].clone()),
            (json!(true), json!(true), json!(false))
        );
        let env: BTreeMap<String, Value> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.get("value").cloned().unwrap_or(Value::Null)))
            .collect();
        assert_eq!(env["BPC_WRITE"], "-");
        assert_eq!(env["BPC_DURATION"], "60000ms");
        assert_eq!(env["BPC_COUNT"], "5");
        assert_eq!(env["BPC_FILTER"], "tcp port 80");
        assert_eq!(env["BPC_MAX_PPS"], "1000");
        assert_eq!(env["BPC_METRICS_ADDR"], "127.0.0.1:0");
        assert_eq!(env["BPC_STDIN_CONTROL"], "true");
        assert!(!env.contains_key("BPC_COLLECTOR") && !env.contains_key("BPC_WORKLOAD"));
        assert!(env.contains_key("POD_NAME"));
        // The same security context as the sidecar: NET_RAW kept, the rest dropped.
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert!(
            !c["securityContext"]["capabilities"]["drop"].as_array().unwrap().contains(&json!("NET_RAW"))
        );
    }

    #[test]
    fn with_a_collector_the_container_streams_gre_under_the_workload_key() {
        let a =
            args(&["deploy/web", "--collector", "198.18.0.2", "--duration", "0", "--gre-profile", "netis"]);
        let w = WorkloadId { namespace: "shop".into(), kind: WorkloadKind::Deployment, name: "web".into() };
        let c = capture_container(&a, Some(&w), "shop", sidecar::CapabilityMode::Add, "x");
        let env = c["env"].as_array().unwrap();
        let get = |n: &str| env.iter().find(|e| e["name"] == n).map(|e| e["value"].clone());
        assert_eq!(get("BPC_COLLECTOR"), Some(json!("198.18.0.2")));
        assert_eq!(get("BPC_WORKLOAD"), Some(json!("shop/deployment/web")));
        assert_eq!(get("BPC_GRE_PROFILE"), Some(json!("netis")));
        assert_eq!(get("BPC_DURATION"), None, "--duration 0: no limit");
        assert_eq!(get("BPC_WRITE"), None);
        assert_eq!(c["securityContext"]["capabilities"], json!({"drop": ["ALL"], "add": ["NET_RAW"]}));
    }

    #[test]
    fn a_replicaset_pod_belongs_to_its_deployment() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-7d4b9c8f5-x2k9p", "namespace": "shop",
                "labels": {"pod-template-hash": "7d4b9c8f5"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f5",
                    "uid": "u", "controller": true}]}
        }))
        .unwrap();
        assert_eq!(workload_of(&pod).unwrap().path(), "shop/deployment/web");
    }

    /// Runs [`forward_stream`] over in-memory pipes: the test plays the agent
    /// (reads its stdin, writes its stdout) through `agent`.
    async fn with_agent<F, Fut>(agent: F) -> (Option<String>, Vec<u8>)
    where
        F: FnOnce(tokio::io::DuplexStream, tokio::io::DuplexStream, tokio::sync::watch::Sender<bool>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (stdin, agent_stdin) = tokio::io::duplex(64);
        let (agent_stdout, stdout) = tokio::io::duplex(1 << 16);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (events_tx, mut events_rx) = mpsc::channel(64);
        let forward =
            tokio::spawn(async move { forward_stream(stdin, stdout, 3, &events_tx, stop_rx).await });
        agent(agent_stdin, agent_stdout, stop_tx).await;
        let outcome = forward.await.unwrap();
        let mut data = Vec::new();
        while let Ok(event) = events_rx.try_recv() {
            match event {
                Event::Data(3, bytes) => data.extend(bytes),
                Event::Data(i, _) => panic!("data tagged {i}, not 3"),
                Event::End(..) => panic!("forward_stream reports its end by returning"),
            }
        }
        (outcome, data)
    }

    #[tokio::test]
    async fn the_agent_is_started_and_stopped_by_one_byte_each_and_its_stream_arrives_whole() {
        let (outcome, data) = with_agent(|mut stdin, mut stdout, stop| async move {
            let mut byte = [0u8; 1];
            stdin.read_exact(&mut byte).await.unwrap();
            assert_eq!(&byte, b"s", "the start byte comes first");
            stdout.write_all(b"block one ").await.unwrap();
            stop.send(true).unwrap();
            stdin.read_exact(&mut byte).await.unwrap();
            assert_eq!(&byte, b"q", "the stop byte follows the stop");
            // The agent flushes what it still has, then ends the stream.
            stdout.write_all(b"block two").await.unwrap();
            drop(stdout);
        })
        .await;
        assert_eq!(outcome, None);
        assert_eq!(data, b"block one block two");
    }

    #[tokio::test]
    async fn a_pod_that_ends_mid_stream_ends_the_forwarding_and_keeps_the_complete_blocks() {
        let stream = {
            let mut w = pcap_file::pcapng::PcapNgWriter::new(Vec::new()).unwrap();
            w.write_pcapng_block(
                pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock {
                    linktype: pcap_file::DataLink::ETHERNET,
                    snaplen: 65535,
                    options: vec![],
                },
            )
            .unwrap();
            for ts in [10u64, 20] {
                w.write_pcapng_block(pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: Duration::from_nanos(ts),
                    original_len: 60,
                    data: std::borrow::Cow::Owned(vec![0xab; 60]),
                    options: vec![],
                })
                .unwrap();
            }
            w.into_inner()
        };
        let cut = stream.len() - 30;
        let sent = stream[..cut].to_vec();
        let (outcome, data) = with_agent(|mut stdin, mut stdout, _stop| async move {
            let mut byte = [0u8; 1];
            stdin.read_exact(&mut byte).await.unwrap();
            stdout.write_all(&sent).await.unwrap();
            // The pod is deleted: the stream ends with no stop asked for.
        })
        .await;
        assert_eq!(outcome, None, "an ended stream is not a failure of the plugin");
        assert_eq!(data, &stream[..cut]);
        let mut demux = Demux::default();
        let items = demux.push(&data).unwrap();
        assert_eq!(items.len(), 1, "the complete packet is kept, the cut one is not: {items:?}");
        assert!(demux.pending() > 0, "the cut block is reported as pending");
    }

    #[tokio::test]
    async fn an_agent_that_is_gone_before_the_start_byte_is_a_failure_naming_it() {
        let (outcome, data) = with_agent(|stdin, stdout, _stop| async move {
            drop((stdin, stdout));
        })
        .await;
        assert!(outcome.as_deref().is_some_and(|o| o.starts_with("cannot start the agent")), "{outcome:?}");
        assert!(data.is_empty());
    }

    #[test]
    fn captures_are_listed_with_what_the_agent_reported_and_other_ephemeral_containers_are_not() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "app"}], "ephemeralContainers": [
                {"name": "bpc-capture-a"}, {"name": "bpc-capture-b"}, {"name": "bpc-capture-c"}, {"name": "debugger"}]},
            "status": {"ephemeralContainerStatuses": [
                {"name": "bpc-capture-a", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "startedAt": "2026-12-02T01:00:00Z",
                     "message": "bpc-agent: stopped after 60.0s: captured 1200 packets\n"}}},
                {"name": "bpc-capture-b", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 2, "message": "bpc-agent: no CAP_NET_RAW\n"}}},
                {"name": "bpc-capture-c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": "2026-12-02T01:05:00Z"}}},
                {"name": "debugger", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}}]}
        }))
        .unwrap();
        let listed = captures_of(&pod);
        let row = |c: &str, started: Option<&str>, state: &str, report: Option<&str>| CaptureListing {
            container: c.into(),
            started: started.map(Into::into),
            state: state.into(),
            report: report.map(Into::into),
        };
        assert_eq!(
            listed,
            [
                row(
                    "bpc-capture-a",
                    Some("2026-12-02T01:00:00Z"),
                    "finished",
                    Some("stopped after 60.0s: captured 1200 packets")
                ),
                row("bpc-capture-b", None, "failed (exit 2)", Some("no CAP_NET_RAW")),
                row("bpc-capture-c", Some("2026-12-02T01:05:00Z"), "running", None),
            ]
        );
    }
}
