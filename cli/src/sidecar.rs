//! The sidecar: the `bpc-agent` container, the record of what attach added
//! (the `bpc.kubectl.io/status` annotation), and the one pair of functions
//! that put them into and take them out of a pod template, for both the
//! live path (attach/detach) and the offline path (inject/uninject).
//!
//! Templates are handled as JSON values, not typed structs: a typed round
//! trip would drop fields this version of k8s-openapi does not know and
//! reorder the user's manifest; here everything that is not ours stays
//! exactly as it was.

pub use bpc_contract::defaults::{DEFAULT_METRICS_PORT, MAX_COLLECTORS};
use bpc_contract::defaults::{MAX_BUFFER_MIB, MIN_BUFFER_MIB};
use bpc_contract::env;
pub use bpc_contract::{GreProfile, Oversize, SendPath};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::workload::{WorkloadId, WorkloadKind};

/// Name of the sidecar container.
pub const AGENT_CONTAINER: &str = "bpc-agent";
/// Prefix of every annotation kubectl-bpc writes.
pub const ANNOTATION_PREFIX: &str = "bpc.kubectl.io/";
/// The annotation on the pod template recording what attach added.
pub const STATUS_ANNOTATION: &str = "bpc.kubectl.io/status";
/// The annotation `verify` sets while its temporary sink is attached.
pub const VERIFY_ANNOTATION: &str = "bpc.kubectl.io/verify-sink";
/// Name of the metrics container port.
pub const METRICS_PORT_NAME: &str = "bpc-metrics";
/// Image repository of the agent; the tag defaults to the plugin's version.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/kubectl-bpc/bpc-agent";

/// Where the agent image keeps the binary (agent/Dockerfile); the exec
/// liveness probe of `--metrics-private` runs it.
pub const AGENT_BINARY: &str = "/usr/local/bin/bpc-agent";

/// The capabilities containerd and Docker grant a container by default
/// (containerd's `oci.defaultCapabilities`, moby's `DefaultCapabilities`).
/// Mode `default` drops all of them but NET_RAW.
pub const RUNTIME_DEFAULT_CAPABILITIES: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The plugin's version, recorded in the status annotation and used as the
/// default image tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The default agent image: the repository tagged with the plugin's version.
pub fn default_image() -> String {
    format!("{IMAGE_REPOSITORY}:{VERSION}")
}

/// How the sidecar gets CAP_NET_RAW (see [`crate::capabilities`] for `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CapabilityMode {
    /// Root, every runtime-default capability dropped except NET_RAW, nothing
    /// added: passes Pod Security `baseline` on containerd and Docker.
    Default,
    /// Root, drop ALL, add NET_RAW: for CRI-O, where NET_RAW is not granted by
    /// default; needs a namespace whose policy allows adding it.
    Add,
}

impl CapabilityMode {
    /// The name used on the command line and in the status annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            CapabilityMode::Default => "default",
            CapabilityMode::Add => "add",
        }
    }
}

/// How the agent joins the pod (the status annotation records which).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SidecarForm {
    /// A native sidecar (Kubernetes 1.29+): the first init container, with
    /// `restartPolicy: Always`. The kubelet starts it before every other
    /// container and waits for its startup probe (capture live), and stops it
    /// after the app's containers have exited: the pod's first and last
    /// packets are mirrored, and a Job completes when its containers do.
    #[default]
    Native,
    /// A plain container, appended last: starts beside the app and gets
    /// SIGTERM with it (it lingers while the pod still has traffic). For API
    /// servers before 1.29.
    Container,
}

impl SidecarForm {
    /// The name on the command line and in the status annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            SidecarForm::Native => "native",
            SidecarForm::Container => "container",
        }
    }

    /// The pod spec list the agent goes into.
    pub fn list(self) -> &'static str {
        match self {
            SidecarForm::Native => "initContainers",
            SidecarForm::Container => "containers",
        }
    }

    /// A record written before the form was recorded had a container.
    fn before_recorded() -> SidecarForm {
        SidecarForm::Container
    }
}

/// `--sidecar`: the form, or `auto` (native where the API server is 1.29 or later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SidecarFormArg {
    /// Native where the API server supports it (1.29+), else a container; offline: native.
    Auto,
    /// Always a native sidecar (refused by servers before 1.29).
    Native,
    /// Always a plain container.
    Container,
}

/// The first Kubernetes minor version with native sidecars on by default
/// (`SidecarContainers`, beta in 1.29, GA in 1.33).
pub const NATIVE_SIDECAR_MINOR: u32 = 29;

impl SidecarFormArg {
    /// The form for an API server of minor version `server_minor` (None:
    /// offline, no server to ask). Refuses `native` on a server that predates it.
    pub fn resolve(self, server_minor: Option<u32>) -> Result<SidecarForm, Error> {
        let supported = server_minor.is_none_or(|m| m >= NATIVE_SIDECAR_MINOR);
        match self {
            SidecarFormArg::Container => Ok(SidecarForm::Container),
            SidecarFormArg::Auto if supported => Ok(SidecarForm::Native),
            SidecarFormArg::Auto => Ok(SidecarForm::Container),
            SidecarFormArg::Native if supported => Ok(SidecarForm::Native),
            SidecarFormArg::Native => Err(Error::Usage(format!(
                "--sidecar native needs Kubernetes 1.{NATIVE_SIDECAR_MINOR} or later (init containers with \
                 restartPolicy: Always); this API server is 1.{}: use --sidecar container (or auto)",
                server_minor.unwrap_or_default()
            ))),
        }
    }
}

/// Seconds the container form keeps capturing after SIGTERM while the pod
/// still has traffic (`BPC_LINGER`), at most: the app's shutdown calls.
pub const CONTAINER_LINGER_SECONDS: i64 = 5;

/// The sidecar's options: what attach and inject take on the command line,
/// and what the status annotation records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(rename_all = "camelCase")]
pub struct SidecarOptions {
    /// Collector to stream GRE to: IPv4/IPv6 address or DNS name; repeat or comma-separate, up to 4.
    #[arg(long = "collector", value_name = "HOST", value_delimiter = ',', required = true)]
    pub collectors: Vec<String>,
    /// Capture filter in tcpdump (BPF) syntax [default: all of the pod's traffic].
    #[arg(long, value_name = "EXPR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Interface to capture on inside the pod [default: the default route's, e.g. eth0].
    #[arg(long, value_name = "IFACE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Bytes kept of each frame [default: all of it].
    #[arg(long, value_name = "BYTES")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<u32>,
    /// Most packets per second to forward per pod (excess dropped and counted).
    #[arg(long, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pps: Option<u64>,
    /// Most megabits per second to forward per pod (excess dropped and counted).
    #[arg(long, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mbps: Option<u64>,
    /// What to do with frames larger than one GRE packet can carry [agent default: segment].
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversize: Option<Oversize>,
    /// GRE header profile [agent default: standard].
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gre_profile: Option<GreProfile>,
    /// How the agent sends [agent default: auto].
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_path: Option<SendPath>,
    /// GRE key (decimal or 0x-hex) instead of the workload key; with --gre-profile netis, the keybit.
    #[arg(long, value_name = "N", value_parser = parse_key)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u32>,
    /// Agent image [default: ghcr.io/kubectl-bpc/bpc-agent:<plugin version>].
    #[arg(long, value_name = "IMAGE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU request of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = "50m")]
    pub cpu: String,
    /// CPU limit of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = "500m")]
    pub cpu_limit: String,
    /// Memory request of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = "32Mi")]
    pub memory: String,
    /// Memory limit of the sidecar.
    #[arg(long, value_name = "QUANTITY", default_value = "64Mi")]
    pub memory_limit: String,
    /// Port of the agent's /metrics, /stats and /healthz (container port `bpc-metrics`).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_METRICS_PORT)]
    pub metrics_port: u16,
    /// Serve the agent's /metrics, /stats and /healthz on loopback only (BPC_METRICS_PRIVATE):
    /// no other pod can read them; the liveness probe runs `bpc-agent --check-health` instead
    /// of an httpGet, no container port is declared, and status reports the counters as private.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metrics_private: bool,
    /// Capture ring size in MiB (BPC_BUFFER) [agent default: 24]: rides out longer scheduling
    /// stalls for more memory (about 27 ms per MiB at rates up to ~30 MB/s).
    #[arg(long, value_name = "MIB",
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_BUFFER_MIB)..=i64::from(MAX_BUFFER_MIB)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u32>,
}

/// `--key`: a GRE key as the agent takes it.
pub(crate) fn parse_key(text: &str) -> Result<u32, String> {
    text.parse::<bpc_wire::WorkloadKey>()
        .map(|k| k.0)
        .map_err(|e| format!("{e}: give a decimal or 0x-hex 32-bit key"))
}

impl SidecarOptions {
    /// Options with the given collectors and every default.
    pub fn with_collectors(collectors: &[&str]) -> SidecarOptions {
        SidecarOptions {
            collectors: collectors.iter().map(|c| (*c).to_owned()).collect(),
            filter: None,
            interface: None,
            snaplen: None,
            max_pps: None,
            max_mbps: None,
            oversize: None,
            gre_profile: None,
            send_path: None,
            key: None,
            image: None,
            cpu: "50m".into(),
            cpu_limit: "500m".into(),
            memory: "32Mi".into(),
            memory_limit: "64Mi".into(),
            metrics_port: DEFAULT_METRICS_PORT,
            metrics_private: false,
            buffer: None,
        }
    }

    /// The image to run.
    pub fn image(&self) -> String {
        self.image.clone().unwrap_or_else(default_image)
    }
}

/// Everything that decides the sidecar of one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidecar {
    /// The workload (its path is `BPC_WORKLOAD`, its key goes into the record).
    pub workload: WorkloadId,
    /// The options.
    pub options: SidecarOptions,
    /// Capability mode, already resolved (never "auto" here).
    pub capabilities: CapabilityMode,
    /// Attach even when the pod uses the node's network namespace.
    pub allow_host_network: bool,
    /// Native sidecar or plain container.
    pub form: SidecarForm,
}

/// What attach added to a pod template: the JSON of the status annotation.
/// Detach and uninject remove exactly what it lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachRecord {
    /// Plugin version that attached.
    pub version: String,
    /// `namespace/kind/name`.
    pub workload: String,
    /// The workload key, `0x%08x`.
    pub key: String,
    /// Containers added (by name).
    pub containers: Vec<String>,
    /// Annotations added on the pod template (including this one).
    pub annotations: Vec<String>,
    /// Objects that did not exist and were created to hold the annotation, as
    /// JSON pointers relative to the template (removed again when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Capability mode used.
    pub capabilities: CapabilityMode,
    /// The form the agent was added in (records without it had a container).
    #[serde(default = "SidecarForm::before_recorded")]
    pub sidecar: SidecarForm,
    /// The options attach was given.
    pub options: SidecarOptions,
}

impl AttachRecord {
    /// Parses a status annotation's value.
    pub fn parse(text: &str) -> Result<AttachRecord, Error> {
        serde_json::from_str(text).map_err(|e| {
            Error::Usage(format!(
                "the {STATUS_ANNOTATION} annotation is not one kubectl-bpc wrote ({e}); \
                 remove the sidecar by hand or restore the annotation"
            ))
        })
    }
}

/// What [`inject`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Injected {
    /// The sidecar was not there and was added.
    Added,
    /// The sidecar was there with other options and was replaced in place.
    Updated,
    /// The sidecar was there with the same options: nothing changed.
    Unchanged,
}

/// What [`uninject`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Uninjected {
    /// The sidecar and everything recorded with it were removed.
    Removed,
    /// There was no sidecar: nothing changed.
    NotAttached,
}

/// What attach, detach, inject or uninject did to one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The sidecar was added.
    Added,
    /// The sidecar was replaced in place with other options.
    Updated,
    /// The sidecar was there with the same options.
    Unchanged,
    /// The sidecar and what was recorded with it were removed.
    Removed,
    /// There was no sidecar to remove.
    NotAttached,
}

impl Change {
    /// In kubectl's words, for a live workload: "attached", "detached"...
    pub fn in_cluster(self) -> &'static str {
        match self {
            Change::Added => "attached",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Removed => "detached",
            Change::NotAttached => "not attached",
        }
    }

    /// Whether the pod template changed, so that the workload rolls out.
    pub fn rolls(self) -> bool {
        matches!(self, Change::Added | Change::Updated | Change::Removed)
    }

    /// For a manifest: "sidecar added", "sidecar removed"...
    pub fn in_manifest(self) -> &'static str {
        match self {
            Change::Added => "sidecar added",
            Change::Updated => "sidecar updated",
            Change::Unchanged => "unchanged",
            Change::Removed => "sidecar removed",
            Change::NotAttached => "not attached",
        }
    }
}

impl From<Injected> for Change {
    fn from(i: Injected) -> Change {
        match i {
            Injected::Added => Change::Added,
            Injected::Updated => Change::Updated,
            Injected::Unchanged => Change::Unchanged,
        }
    }
}

impl From<Uninjected> for Change {
    fn from(u: Uninjected) -> Change {
        match u {
            Uninjected::Removed => Change::Removed,
            Uninjected::NotAttached => Change::NotAttached,
        }
    }
}

/// The sidecar container for a workload.
pub fn container(sidecar: &Sidecar) -> Value {
    let o = &sidecar.options;
    let mut env = vec![
        json!({"name": env::COLLECTOR, "value": o.collectors.join(",")}),
        json!({"name": env::WORKLOAD, "value": sidecar.workload.path()}),
    ];
    let mut optional = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            env.push(json!({"name": name, "value": v}));
        }
    };
    optional(env::FILTER, o.filter.clone());
    optional(env::INTERFACE, o.interface.clone());
    optional(env::SNAPLEN, o.snaplen.map(|v| v.to_string()));
    optional(env::MAX_PPS, o.max_pps.map(|v| v.to_string()));
    optional(env::MAX_MBPS, o.max_mbps.map(|v| v.to_string()));
    optional(env::OVERSIZE, o.oversize.map(|v| v.to_string()));
    optional(env::GRE_PROFILE, o.gre_profile.map(|v| v.to_string()));
    optional(env::KEY, o.key.map(|k| bpc_wire::WorkloadKey(k).to_string()));
    optional(env::SEND_PATH, o.send_path.map(|v| v.to_string()));
    optional(env::BUFFER, o.buffer.map(|v| v.to_string()));
    env.push(json!({"name": env::METRICS_ADDR, "value": format!("0.0.0.0:{}", o.metrics_port)}));
    if o.metrics_private {
        env.push(json!({"name": env::METRICS_PRIVATE, "value": "true"}));
    }
    for (name, path) in env::DOWNWARD_API {
        env.push(json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}));
    }
    let capabilities = match sidecar.capabilities {
        CapabilityMode::Default => json!({
            "drop": RUNTIME_DEFAULT_CAPABILITIES.iter().filter(|c| **c != "NET_RAW").collect::<Vec<_>>()
        }),
        CapabilityMode::Add => json!({"drop": ["ALL"], "add": ["NET_RAW"]}),
    };
    let mut agent = json!({
        "name": AGENT_CONTAINER,
        "image": o.image(),
        "env": env,
        // Liveness only: a readiness probe would take the business pod out of
        // its Service whenever capture has a problem. /livez, not /healthz: a
        // collector outage makes /healthz 503, and restarting the agent for
        // it cures nothing (seen on the real cluster: every agent restarted
        // while the sink was down).
        // The handler last, in both modes, so that switching --metrics-private
        // edits a manifest in place (keys removed and added at the end).
        "livenessProbe": {
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
            "httpGet": {"path": "/livez", "port": METRICS_PORT_NAME}
        },
        "resources": {
            "requests": {"cpu": o.cpu, "memory": o.memory},
            "limits": {"cpu": o.cpu_limit, "memory": o.memory_limit}
        },
        // Root because Kubernetes never gives a non-root process the
        // capabilities added to its container; the capability set is what
        // limits the agent, and privilege escalation stays off.
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": capabilities,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "terminationMessagePolicy": "FallbackToLogsOnError"
    });
    if o.metrics_private {
        // The kubelet's httpGet dials the pod IP, where nothing listens now:
        // the agent checks its own loopback endpoint instead (it inherits
        // the container's BPC_METRICS_ADDR and BPC_METRICS_PRIVATE). A port
        // nobody can reach is not declared, so no scraper tries it.
        agent["livenessProbe"] = json!({
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
            "timeoutSeconds": 2,
            "exec": {"command": [AGENT_BINARY, "--check-health"]}
        });
    } else {
        // Last, like the probe's handler: switching --metrics-private then
        // only removes or appends keys, which a manifest is edited in place for.
        agent["ports"] =
            json!([{"name": METRICS_PORT_NAME, "containerPort": o.metrics_port, "protocol": "TCP"}]);
    }
    agent
}

/// The agent container as it goes into `template`: [`container`] plus what
/// its form needs. Both forms keep serving the reason when capture cannot
/// start (`BPC_ON_ERROR=serve`): an agent that exits would keep a native
/// sidecar's pod from starting and a container's pod from being Ready.
fn placed_container(sidecar: &Sidecar, template: &Value) -> Value {
    let mut agent = container(sidecar);
    let push_env = |agent: &mut Value, name: &str, value: String| {
        if let Some(list) = agent["env"].as_array_mut() {
            list.push(json!({"name": name, "value": value}));
        }
    };
    push_env(&mut agent, env::ON_ERROR, bpc_contract::OnError::Serve.to_string());
    match sidecar.form {
        SidecarForm::Native => {
            let handler = if sidecar.options.metrics_private {
                ("exec", json!({"command": [AGENT_BINARY, "--check-startup"]}))
            } else {
                ("httpGet", json!({"path": "/startupz", "port": METRICS_PORT_NAME}))
            };
            // The agent's /startupz passes once the capture socket is bound
            // with its filter attached, or once the agent has given up (the
            // reason stays in /healthz and /stats), or after its own bound
            // (docs/agent.md): the app's containers start after capture is
            // live, and never later than that bound. The probe's own limit
            // (30 s) is only a backstop for an agent that cannot answer.
            let mut probe = json!({"periodSeconds": 1, "failureThreshold": 30, "timeoutSeconds": 2});
            probe[handler.0] = handler.1;
            if let Some(fields) = agent.as_object_mut() {
                fields.shift_insert(2, "restartPolicy".into(), json!("Always"));
                let at = fields.keys().position(|k| k == "livenessProbe").map_or(fields.len(), |i| i + 1);
                fields.shift_insert(at, "startupProbe".into(), probe);
            }
        }
        SidecarForm::Container => {
            // SIGTERM reaches the app and the agent together: the agent keeps
            // capturing the app's shutdown while the pod has traffic, within
            // the grace period the kubelet gives the pod.
            let grace = template.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64);
            let linger = CONTAINER_LINGER_SECONDS.min(grace.unwrap_or(30) - 1);
            if linger > 0 {
                push_env(&mut agent, env::LINGER, format!("{linger}s"));
            }
        }
    }
    agent
}

/// The status annotation's record for a sidecar (`created` filled by [`inject`]).
pub fn record(sidecar: &Sidecar) -> AttachRecord {
    AttachRecord {
        version: VERSION.to_owned(),
        workload: sidecar.workload.path(),
        key: sidecar.workload.key().to_string(),
        containers: vec![AGENT_CONTAINER.to_owned()],
        annotations: vec![STATUS_ANNOTATION.to_owned()],
        created: Vec::new(),
        capabilities: sidecar.capabilities,
        sidecar: sidecar.form,
        options: sidecar.options.clone(),
    }
}

fn not_a_template(workload: &WorkloadId, what: &str) -> Error {
    Error::Usage(format!("{workload} in namespace {}: {what}", workload.namespace))
}

/// The status annotation of a template, if any.
pub fn status_annotation(template: &Value) -> Option<&str> {
    template.pointer("/metadata/annotations")?.get(STATUS_ANNOTATION)?.as_str()
}

/// The record of a template's sidecar, if kubectl-bpc attached one.
pub fn attached_record(template: &Value) -> Result<Option<AttachRecord>, Error> {
    status_annotation(template).map(AttachRecord::parse).transpose()
}

fn has_container(template: &Value, name: &str) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        template
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c.get("name").and_then(Value::as_str) == Some(name)))
    })
}

/// Puts the sidecar into a pod template (`spec.template` of a workload, or
/// a Pod): as a native sidecar, the first init container; as a container,
/// the last container (a previous attach's agent is replaced in place, or
/// moved when the form changed) and sets the status annotation. Nothing else
/// in the template changes.
///
/// Refuses a template that runs in the host network namespace (unless
/// allowed) and one with a `bpc-agent` container that kubectl-bpc did not add.
pub fn inject(template: &mut Value, sidecar: &Sidecar) -> Result<Injected, Error> {
    let id = &sidecar.workload;
    if !template.is_object() {
        return Err(not_a_template(id, "spec.template is missing or not an object"));
    }
    let previous = attached_record(template)?;
    let ours = previous.as_ref().is_some_and(|r| r.containers.iter().any(|c| c == AGENT_CONTAINER));
    if !ours && has_container(template, AGENT_CONTAINER) {
        return Err(Error::Usage(format!(
            "{id} in namespace {} already has a container named {AGENT_CONTAINER} that kubectl-bpc did not add \
             (no {STATUS_ANNOTATION} annotation); refusing to touch it: rename or remove that container first",
            id.namespace
        )));
    }
    if crate::manifest::yaml11::as_bool(template.pointer("/spec/hostNetwork")) == Some(true)
        && !sidecar.allow_host_network
    {
        return Err(Error::Usage(format!(
            "{id} in namespace {} uses hostNetwork: true, so the sidecar would capture the whole node's traffic; \
             pass --allow-host-network if that is really what you want",
            id.namespace
        )));
    }
    if template.pointer("/spec/containers").and_then(Value::as_array).is_none() {
        return Err(not_a_template(id, "spec.template.spec.containers is missing"));
    }
    let mut record = record(sidecar);
    // A re-attach keeps the list of objects the first attach created.
    record.created = previous.as_ref().map(|r| r.created.clone()).unwrap_or_default();
    let before = template.clone();

    let root = template.as_object_mut().expect("checked above");
    if !root.contains_key("metadata") {
        record.created.push("/metadata".into());
        root.insert("metadata".into(), Value::Object(Map::new()));
    }
    let metadata = root
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| not_a_template(id, "spec.template.metadata is not an object"))?;
    if !metadata.contains_key("annotations") || metadata["annotations"].is_null() {
        record.created.push("/metadata/annotations".into());
        metadata.insert("annotations".into(), Value::Object(Map::new()));
    }
    if !metadata["annotations"].is_object() {
        return Err(not_a_template(id, "spec.template.metadata.annotations is not a map"));
    }
    let annotation = serde_json::to_string(&record)?;
    // The live agent carries the API server's defaults (fieldRef apiVersion,
    // probe scheme...): the same record means the same sidecar.
    if ours && status_annotation(&before) == Some(annotation.as_str()) {
        *template = before;
        return Ok(Injected::Unchanged);
    }
    place(template, sidecar, &mut record);
    let annotation = serde_json::to_string(&record)?;
    template["metadata"]["annotations"]
        .as_object_mut()
        .expect("checked above")
        .insert(STATUS_ANNOTATION.into(), Value::String(annotation));
    Ok(match (ours, *template == before) {
        (_, true) => Injected::Unchanged,
        (true, false) => Injected::Updated,
        (false, false) => Injected::Added,
    })
}

/// Puts the agent container where its form goes: first of `initContainers`
/// (created if missing, and recorded) for a native sidecar, last of
/// `containers` for a container; one already there is replaced in place, one
/// in the other list (the form changed) is taken out, with the list when a
/// previous attach created it.
fn place(template: &mut Value, sidecar: &Sidecar, record: &mut AttachRecord) {
    let agent = placed_container(sidecar, template);
    let spec = template["spec"].as_object_mut().expect("containers checked by inject");
    let other = match sidecar.form {
        SidecarForm::Native => SidecarForm::Container,
        SidecarForm::Container => SidecarForm::Native,
    };
    let is_agent = |c: &Value| c.get("name").and_then(Value::as_str) == Some(AGENT_CONTAINER);
    if let Some(list) = spec.get_mut(other.list()).and_then(Value::as_array_mut) {
        list.retain(|c| !is_agent(c));
        let pointer = format!("/spec/{}", other.list());
        if list.is_empty() && record.created.contains(&pointer) {
            spec.shift_remove(other.list());
            record.created.retain(|p| *p != pointer);
        }
    }
    let name = sidecar.form.list();
    if !spec.get(name).is_some_and(Value::is_array) {
        record.created.push(format!("/spec/{name}"));
        spec.insert(name.into(), json!([]));
    }
    let list = spec[name].as_array_mut().expect("made an array above");
    match (list.iter_mut().find(|c| is_agent(c)), sidecar.form) {
        (Some(existing), _) => *existing = agent,
        (None, SidecarForm::Native) => list.insert(0, agent),
        (None, SidecarForm::Container) => list.push(agent),
    }
}

/// Takes the sidecar out of a pod template: removes exactly the containers
/// and annotations its status annotation lists (plus `verify`'s temporary
/// annotation), and the empty objects attach created. A template without
/// the annotation but with a `bpc-agent` container is refused: kubectl-bpc
/// did not add that container.
pub fn uninject(template: &mut Value, workload: &WorkloadId) -> Result<Uninjected, Error> {
    let Some(record) = attached_record(template)? else {
        if has_container(template, AGENT_CONTAINER) {
            return Err(Error::Usage(format!(
                "{workload} in namespace {} has a {AGENT_CONTAINER} container without the {STATUS_ANNOTATION} \
                 annotation: kubectl-bpc did not add it, so it is left alone",
                workload.namespace
            )));
        }
        return Ok(Uninjected::NotAttached);
    };
    for list in ["containers", "initContainers"] {
        if let Some(cs) = template.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut) {
            cs.retain(|c| {
                !c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| record.containers.iter().any(|r| r == n))
            });
        }
    }
    if let Some(a) = template.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        for name in record.annotations.iter().map(String::as_str).chain([VERIFY_ANNOTATION]) {
            a.shift_remove(name);
        }
    }
    // Deepest first, so "/metadata" goes after "/metadata/annotations".
    let mut created = record.created.clone();
    created.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for pointer in created {
        remove_if_empty(template, &pointer);
    }
    Ok(Uninjected::Removed)
}

fn remove_if_empty(root: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else { return };
    let parent = if parent.is_empty() { Some(&mut *root) } else { root.pointer_mut(parent) };
    if let Some(Value::Object(map)) = parent
        && map.get(key).is_some_and(|v| match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        })
    {
        map.shift_remove(key);
    }
}

/// The strategic merge patch that turns the live workload of `kind` whose
/// template is `current` into one whose template is `desired` (from
/// [`inject`]): it names only the agent container, in the list(s) it leaves
/// or enters, and the status annotation. An added agent takes its place in
/// the list (`$setElementOrder`: first init container, or last container); a
/// replaced one gets `$patch: replace` on each of its maps and lists so that
/// options dropped since the last attach do not linger; one that moved to
/// the other list (the form changed) is deleted from the old one.
/// `resource_version` makes a concurrent change a 409.
pub fn attach_patch(
    kind: WorkloadKind,
    current: &Value,
    desired: &Value,
    resource_version: Option<&str>,
) -> Value {
    let annotation = status_annotation(desired).map(|s| Value::String(s.to_owned())).unwrap_or(Value::Null);
    let mut spec = Map::new();
    for list in [SidecarForm::Native.list(), SidecarForm::Container.list()] {
        let items = |t: &Value| t.pointer(&format!("/spec/{list}")).and_then(Value::as_array).cloned();
        let agent_in = |t: &Value| {
            items(t)
                .into_iter()
                .flatten()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(AGENT_CONTAINER))
        };
        match (agent_in(current), agent_in(desired)) {
            (Some(_), Some(agent)) => {
                spec.insert(list.into(), json!([replace_directives(agent)]));
            }
            (None, Some(agent)) => {
                let order: Vec<Value> = items(desired)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get("name").cloned())
                    .map(|n| json!({"name": n}))
                    .collect();
                spec.insert(format!("$setElementOrder/{list}"), Value::Array(order));
                spec.insert(list.into(), json!([agent]));
            }
            (Some(_), None) => {
                spec.insert(list.into(), json!([{"name": AGENT_CONTAINER, "$patch": "delete"}]));
            }
            (None, None) => {}
        }
    }
    let template = json!({
        "metadata": {"annotations": {STATUS_ANNOTATION: annotation}},
        "spec": spec
    });
    let mut patch = nest_template(kind, template);
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

/// A patch of the pod template, nested where `kind` keeps it
/// (`spec.template`, a CronJob's `spec.jobTemplate.spec.template`).
fn nest_template(kind: WorkloadKind, template: Value) -> Value {
    kind.template_pointer()
        .rsplit('/')
        .filter(|k| !k.is_empty())
        .fold(template, |inner, key| json!({key: inner}))
}

fn replace_directives(mut container: Value) -> Value {
    if let Some(fields) = container.as_object_mut() {
        for value in fields.values_mut() {
            match value {
                Value::Object(m) => {
                    m.insert("$patch".into(), json!("replace"));
                }
                Value::Array(items) if items.iter().all(Value::is_object) => {
                    items.insert(0, json!({"$patch": "replace"}));
                }
                _ => {}
            }
        }
    }
    container
}

/// The strategic merge patch that removes what `record` lists from a live
/// workload of `kind`: `$patch: delete` on each recorded container in the
/// list of the recorded form, null on each recorded annotation and on
/// verify's.
pub fn detach_patch(kind: WorkloadKind, record: &AttachRecord, resource_version: Option<&str>) -> Value {
    let mut annotations = Map::new();
    for name in record.annotations.iter().map(String::as_str).chain([VERIFY_ANNOTATION]) {
        annotations.insert(name.to_owned(), Value::Null);
    }
    let containers: Vec<Value> =
        record.containers.iter().map(|name| json!({"name": name, "$patch": "delete"})).collect();
    let mut spec = Map::new();
    spec.insert(record.sidecar.list().into(), Value::Array(containers));
    let mut patch = nest_template(
        kind,
        json!({
            "metadata": {"annotations": annotations},
            "spec": spec
        }),
    );
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadKind;

    fn sidecar() -> Sidecar {
        Sidecar {
            workload: WorkloadId {
                namespace: "shop".into(),
                kind: WorkloadKind::Deployment,
                name: "web".into(),
            },
            options: SidecarOptions::with_collectors(&["198.18.0.2"]),
            capabilities: CapabilityMode::Default,
            allow_host_network: false,
            form: SidecarForm::Container,
        }
    }

    fn native() -> Sidecar {
        Sidecar { form: SidecarForm::Native, ..sidecar() }
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    }

    fn env(c: &Value, name: &str) -> Option<Value> {
        c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).cloned()
    }

    #[test]
    fn container_carries_the_agent_env_downward_api_port_and_probe() {
        let c = container(&sidecar());
        assert_eq!(c["name"], AGENT_CONTAINER);
        assert_eq!(c["image"], format!("ghcr.io/kubectl-bpc/bpc-agent:{VERSION}"));
        assert_eq!(env(&c, "BPC_COLLECTOR").unwrap()["value"], "198.18.0.2");
        assert_eq!(env(&c, "BPC_WORKLOAD").unwrap()["value"], "shop/deployment/web");
        assert_eq!(env(&c, "POD_IP").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP");
        assert_eq!(env(&c, "NODE_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
        assert!(env(&c, "BPC_FILTER").is_none(), "unset options are not passed");
        assert_eq!(c["ports"][0], json!({"name": "bpc-metrics", "containerPort": 9469, "protocol": "TCP"}));
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
        assert!(c.get("readinessProbe").is_none(), "a readiness probe would take the pod out of its Service");
        assert_eq!(c["resources"]["requests"]["cpu"], "50m");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    }

    #[test]
    fn options_map_to_agent_env() {
        let mut s = sidecar();
        s.options.collectors.push("collector.obs.svc".into());
        s.options.filter = Some("tcp port 443".into());
        s.options.interface = Some("eth1".into());
        s.options.snaplen = Some(128);
        s.options.max_pps = Some(5000);
        s.options.max_mbps = Some(100);
        s.options.oversize = Some(Oversize::Truncate);
        s.options.gre_profile = Some(GreProfile::Netis);
        s.options.key = Some(0x10);
        s.options.send_path = Some(SendPath::Raw);
        s.options.metrics_port = 9500;
        let c = container(&s);
        for (name, value) in [
            ("BPC_COLLECTOR", "198.18.0.2,collector.obs.svc"),
            ("BPC_FILTER", "tcp port 443"),
            ("BPC_INTERFACE", "eth1"),
            ("BPC_SNAPLEN", "128"),
            ("BPC_MAX_PPS", "5000"),
            ("BPC_MAX_MBPS", "100"),
            ("BPC_OVERSIZE", "truncate"),
            ("BPC_GRE_PROFILE", "netis"),
            ("BPC_KEY", "0x00000010"),
            ("BPC_SEND_PATH", "raw"),
            ("BPC_METRICS_ADDR", "0.0.0.0:9500"),
        ] {
            assert_eq!(env(&c, name).unwrap()["value"], value, "{name}");
        }
        assert_eq!(c["ports"][0]["containerPort"], 9500);
    }

    #[test]
    fn metrics_private_sets_the_env_drops_the_port_and_probes_by_exec() {
        let mut s = sidecar();
        s.options.metrics_private = true;
        let c = container(&s);
        assert_eq!(env(&c, "BPC_METRICS_PRIVATE").unwrap()["value"], "true");
        assert_eq!(env(&c, "BPC_METRICS_ADDR").unwrap()["value"], "0.0.0.0:9469");
        assert!(c.get("ports").is_none(), "nothing outside the pod can reach the port");
        assert_eq!(
            c["livenessProbe"]["exec"]["command"],
            json!(["/usr/local/bin/bpc-agent", "--check-health"])
        );
        assert!(c["livenessProbe"].get("httpGet").is_none());
        assert_eq!(c["livenessProbe"]["timeoutSeconds"], 2);
        let r = record(&s);
        assert!(serde_json::to_string(&r).unwrap().contains("\"metricsPrivate\":true"));
        // Default options record neither field: existing annotations stay byte-identical.
        let default = serde_json::to_string(&record(&sidecar())).unwrap();
        assert!(!default.contains("metricsPrivate") && !default.contains("buffer"), "{default}");
        assert!(env(&container(&sidecar()), "BPC_METRICS_PRIVATE").is_none());
    }

    #[test]
    fn buffer_sets_bpc_buffer() {
        let mut s = sidecar();
        assert!(env(&container(&s), "BPC_BUFFER").is_none());
        s.options.buffer = Some(64);
        assert_eq!(env(&container(&s), "BPC_BUFFER").unwrap()["value"], "64");
    }

    #[test]
    fn default_mode_drops_every_runtime_default_capability_but_net_raw_and_adds_none() {
        let c = container(&sidecar());
        let drop: Vec<&str> = c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(drop.len(), 13);
        assert!(!drop.contains(&"NET_RAW"));
        assert!(c["securityContext"]["capabilities"].get("add").is_none());
        assert_eq!(c["securityContext"]["runAsUser"], 0);
    }

    #[test]
    fn add_mode_drops_all_and_adds_net_raw() {
        let mut s = sidecar();
        s.capabilities = CapabilityMode::Add;
        let c = container(&s);
        assert_eq!(c["securityContext"]["capabilities"], json!({"drop": ["ALL"], "add": ["NET_RAW"]}));
    }

    #[test]
    fn inject_appends_the_container_and_records_it() {
        let mut t = template();
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Added);
        let names: Vec<_> = t["spec"]["containers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
        assert_eq!(names, ["app", "bpc-agent"]);
        let r = attached_record(&t).unwrap().unwrap();
        assert_eq!(r.key, sidecar().workload.key().to_string());
        assert_eq!(r.containers, ["bpc-agent"]);
        assert_eq!(r.created, ["/metadata/annotations"]);
        assert_eq!(r.capabilities, CapabilityMode::Default);
    }

    #[test]
    fn reinject_with_same_options_is_unchanged_and_with_new_options_updates_in_place() {
        let mut t = template();
        inject(&mut t, &sidecar()).unwrap();
        let once = t.clone();
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Unchanged);
        assert_eq!(t, once);
        let mut s = sidecar();
        s.options.filter = Some("tcp".into());
        assert_eq!(inject(&mut t, &s).unwrap(), Injected::Updated);
        assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(env(&t["spec"]["containers"][1], "BPC_FILTER").unwrap()["value"], "tcp");
        assert_eq!(attached_record(&t).unwrap().unwrap().created, ["/metadata/annotations"]);
    }

    #[test]
    fn foreign_agent_container_is_refused_and_left_alone() {
        let mut t = template();
        t["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "bpc-agent", "image": "theirs"}));
        let before = t.clone();
        let e = inject(&mut t, &sidecar()).unwrap_err().to_string();
        assert!(e.contains("did not add"), "{e}");
        assert_eq!(t, before);
        assert!(uninject(&mut t, &sidecar().workload).is_err());
        assert_eq!(t, before);
    }

    #[test]
    fn host_network_is_refused_unless_allowed() {
        let mut t = template();
        t["spec"]["hostNetwork"] = json!(true);
        let e = inject(&mut t.clone(), &sidecar()).unwrap_err().to_string();
        assert!(e.contains("--allow-host-network"), "{e}");
        let mut s = sidecar();
        s.allow_host_network = true;
        assert_eq!(inject(&mut t, &s).unwrap(), Injected::Added);
    }

    #[test]
    fn uninject_restores_the_template_exactly() {
        for original in [
            template(),
            json!({"spec": {"containers": [{"name": "app"}]}}),
            json!({"metadata": {"annotations": {"a": "b"}}, "spec": {"containers": [{"name": "app"}]}}),
        ] {
            let mut t = original.clone();
            inject(&mut t, &sidecar()).unwrap();
            assert_ne!(t, original);
            assert_eq!(uninject(&mut t, &sidecar().workload).unwrap(), Uninjected::Removed);
            assert_eq!(t, original);
            assert_eq!(uninject(&mut t, &sidecar().workload).unwrap(), Uninjected::NotAttached);
        }
    }

    #[test]
    fn attach_patch_orders_a_new_container_last_and_replaces_an_existing_one() {
        let current = template();
        let mut desired = current.clone();
        inject(&mut desired, &sidecar()).unwrap();
        let p = attach_patch(WorkloadKind::Deployment, &current, &desired, Some("42"));
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        let spec = &p["spec"]["template"]["spec"];
        assert_eq!(spec["$setElementOrder/containers"], json!([{"name": "app"}, {"name": "bpc-agent"}]));
        assert!(spec["containers"][0].get("$patch").is_none());

        let mut updated = desired.clone();
        let mut s = sidecar();
        s.options.filter = Some("udp".into());
        inject(&mut updated, &s).unwrap();
        let p = attach_patch(WorkloadKind::Deployment, &desired, &updated, None);
        let c = &p["spec"]["template"]["spec"]["containers"][0];
        assert!(p.get("metadata").is_none());
        assert_eq!(c["env"][0], json!({"$patch": "replace"}));
        assert_eq!(c["securityContext"]["$patch"], "replace");
        assert_eq!(c["image"], updated["spec"]["containers"][1]["image"]);
    }

    #[test]
    fn detach_patch_deletes_recorded_containers_and_nulls_annotations() {
        let r = record(&sidecar());
        let p = detach_patch(WorkloadKind::Deployment, &r, Some("7"));
        assert_eq!(
            p["spec"]["template"]["spec"]["containers"],
            json!([{"name": "bpc-agent", "$patch": "delete"}])
        );
        assert_eq!(p["spec"]["template"]["metadata"]["annotations"][STATUS_ANNOTATION], Value::Null);
        assert_eq!(p["spec"]["template"]["metadata"]["annotations"][VERIFY_ANNOTATION], Value::Null);
        assert_eq!(p["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn native_inject_puts_the_agent_first_of_init_containers_with_restart_always_and_a_startup_probe() {
        let mut t = template();
        t["spec"]["initContainers"] = json!([{"name": "migrate", "image": "tool"}]);
        assert_eq!(inject(&mut t, &native()).unwrap(), Injected::Added);
        let init: Vec<_> =
            t["spec"]["initContainers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
        assert_eq!(init, ["bpc-agent", "migrate"], "first, so it captures the other init containers too");
        let agent = &t["spec"]["initContainers"][0];
        assert_eq!(agent["restartPolicy"], "Always");
        assert_eq!(agent["startupProbe"]["httpGet"]["path"], "/startupz");
        assert_eq!(agent["startupProbe"]["periodSeconds"], 1);
        assert_eq!(env(agent, "BPC_ON_ERROR").unwrap()["value"], "serve");
        assert!(env(agent, "BPC_LINGER").is_none(), "the kubelet stops a native sidecar after the app");
        assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 1, "the app's containers untouched");
        let r = attached_record(&t).unwrap().unwrap();
        assert_eq!(r.sidecar, SidecarForm::Native);
        assert!(serde_json::to_string(&r).unwrap().contains("\"sidecar\":\"native\""));
    }

    #[test]
    fn native_with_metrics_private_probes_startup_by_exec() {
        let mut s = native();
        s.options.metrics_private = true;
        let mut t = template();
        inject(&mut t, &s).unwrap();
        assert_eq!(
            t["spec"]["initContainers"][0]["startupProbe"]["exec"]["command"],
            json!(["/usr/local/bin/bpc-agent", "--check-startup"])
        );
    }

    #[test]
    fn the_container_form_lingers_within_the_grace_period() {
        let mut t = template();
        inject(&mut t, &sidecar()).unwrap();
        assert_eq!(env(&t["spec"]["containers"][1], "BPC_LINGER").unwrap()["value"], "5s");
        assert!(t["spec"]["containers"][1].get("startupProbe").is_none());
        let mut short = template();
        short["spec"]["terminationGracePeriodSeconds"] = json!(3);
        inject(&mut short, &sidecar()).unwrap();
        assert_eq!(env(&short["spec"]["containers"][1], "BPC_LINGER").unwrap()["value"], "2s");
        let mut none = template();
        none["spec"]["terminationGracePeriodSeconds"] = json!(1);
        inject(&mut none, &sidecar()).unwrap();
        assert!(env(&none["spec"]["containers"][1], "BPC_LINGER").is_none());
    }

    #[test]
    fn uninject_restores_a_native_injection_exactly_with_or_without_init_containers() {
        let mut with_init = template();
        with_init["spec"]["initContainers"] = json!([{"name": "migrate"}]);
        for original in [template(), with_init] {
            let mut t = original.clone();
            inject(&mut t, &native()).unwrap();
            assert_eq!(uninject(&mut t, &native().workload).unwrap(), Uninjected::Removed);
            assert_eq!(t, original);
        }
    }

    #[test]
    fn changing_the_form_moves_the_agent_and_removes_a_list_attach_created() {
        let original = template();
        let mut t = original.clone();
        inject(&mut t, &native()).unwrap();
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Updated);
        assert!(t["spec"].get("initContainers").is_none(), "the list attach created goes with the agent");
        assert_eq!(t["spec"]["containers"][1]["name"], AGENT_CONTAINER);
        assert_eq!(inject(&mut t, &native()).unwrap(), Injected::Updated);
        assert_eq!(t["spec"]["containers"].as_array().unwrap().len(), 1);
        assert_eq!(t["spec"]["initContainers"][0]["name"], AGENT_CONTAINER);
        uninject(&mut t, &native().workload).unwrap();
        assert_eq!(t, original);
    }

    #[test]
    fn attach_patch_of_a_native_sidecar_orders_it_first_and_a_form_change_deletes_the_old_one() {
        let current = template();
        let mut desired = current.clone();
        inject(&mut desired, &native()).unwrap();
        let p = attach_patch(WorkloadKind::Deployment, &current, &desired, None);
        let spec = &p["spec"]["template"]["spec"];
        assert_eq!(spec["$setElementOrder/initContainers"], json!([{"name": "bpc-agent"}]));
        assert_eq!(spec["initContainers"][0]["restartPolicy"], "Always");
        assert!(spec.get("containers").is_none(), "the app's containers are not named");
        let mut moved = desired.clone();
        inject(&mut moved, &sidecar()).unwrap();
        let p = attach_patch(WorkloadKind::Deployment, &desired, &moved, None);
        let spec = &p["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"], json!([{"name": "bpc-agent", "$patch": "delete"}]));
        assert_eq!(spec["$setElementOrder/containers"], json!([{"name": "app"}, {"name": "bpc-agent"}]));
    }

    #[test]
    fn patches_of_a_cronjob_go_into_its_job_template_and_detach_names_the_recorded_list() {
        let current = template();
        let mut desired = current.clone();
        inject(&mut desired, &native()).unwrap();
        let p = attach_patch(WorkloadKind::CronJob, &current, &desired, Some("9"));
        assert!(p["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"].is_array());
        assert_eq!(p["metadata"]["resourceVersion"], "9");
        let d = detach_patch(WorkloadKind::CronJob, &record(&native()), None);
        assert_eq!(
            d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"],
            json!([{"name": "bpc-agent", "$patch": "delete"}])
        );
        assert!(d["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("containers").is_none());
    }

    #[test]
    fn reattach_of_a_server_defaulted_agent_with_the_same_record_is_unchanged() {
        let mut t = template();
        inject(&mut t, &native()).unwrap();
        // What the API server adds on its way back: defaults in the agent.
        t["spec"]["initContainers"][0]["startupProbe"]["httpGet"]["scheme"] = json!("HTTP");
        t["spec"]["initContainers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        let live = t.clone();
        assert_eq!(inject(&mut t, &native()).unwrap(), Injected::Unchanged);
        assert_eq!(t, live, "nothing rewritten");
        assert_eq!(inject(&mut t, &sidecar()).unwrap(), Injected::Updated, "another form is a change");
    }

    #[test]
    fn a_record_written_before_the_form_was_recorded_means_a_container() {
        let mut old = serde_json::to_value(record(&sidecar())).unwrap();
        old.as_object_mut().unwrap().remove("sidecar");
        let r = AttachRecord::parse(&old.to_string()).unwrap();
        assert_eq!(r.sidecar, SidecarForm::Container);
    }

    #[test]
    fn auto_is_native_from_kubernetes_1_29_and_offline_and_native_is_refused_before() {
        use SidecarFormArg::*;
        assert_eq!(Auto.resolve(Some(29)).unwrap(), SidecarForm::Native);
        assert_eq!(Auto.resolve(Some(34)).unwrap(), SidecarForm::Native);
        assert_eq!(Auto.resolve(Some(28)).unwrap(), SidecarForm::Container);
        assert_eq!(Auto.resolve(None).unwrap(), SidecarForm::Native);
        assert_eq!(Container.resolve(Some(34)).unwrap(), SidecarForm::Container);
        let e = Native.resolve(Some(27)).unwrap_err().to_string();
        assert!(e.contains("1.29") && e.contains("--sidecar container"), "{e}");
    }

    #[test]
    fn a_change_reads_as_kubectl_says_it_live_and_names_the_sidecar_in_a_manifest() {
        assert_eq!(
            (Change::from(Injected::Added).in_cluster(), Change::Added.in_manifest()),
            ("attached", "sidecar added")
        );
        assert_eq!(
            (Change::from(Uninjected::Removed).in_cluster(), Change::Removed.in_manifest()),
            ("detached", "sidecar removed")
        );
        assert_eq!(Change::from(Uninjected::NotAttached).in_cluster(), "not attached");
    }
}
