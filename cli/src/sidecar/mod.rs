//! The sidecar: the `bpc-agent` container, the record of what attach added
//! (the `bpc.kubectl.io/status` annotation), and the one pair of functions
//! that put them into and take them out of a pod template, for both the
//! live path (attach/detach) and the offline path (inject/uninject).
//!
//! Templates are handled as JSON values, not typed structs: a typed round
//! trip would drop fields this version of k8s-openapi does not know and
//! reorder the user's manifest; here everything that is not ours stays
//! exactly as it was.

mod container;
mod flags;
mod patch;
mod record;
mod template;

pub use bpc_contract::defaults::{DEFAULT_METRICS_PORT, MAX_COLLECTORS};
pub use bpc_contract::{Encap, GreProfile, Oversize, SendPath};
pub use container::container;
pub use flags::{AgentFlags, SidecarFlags};
pub use patch::{attach_patch, detach_patch};
pub use record::{AttachRecord, Change, Injected, Uninjected, attached_record, record, status_annotation};
use serde::{Deserialize, Serialize};
pub use template::{inject, uninject};

use crate::Error;
use crate::workload::WorkloadId;

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

/// The sidecar's resource requests and limits when none are given.
pub const DEFAULT_CPU: &str = "50m";
/// See [`DEFAULT_CPU`].
pub const DEFAULT_CPU_LIMIT: &str = "500m";
/// See [`DEFAULT_CPU`].
pub const DEFAULT_MEMORY: &str = "32Mi";
/// See [`DEFAULT_CPU`].
pub const DEFAULT_MEMORY_LIMIT: &str = "64Mi";

/// The agent's settings: what a sidecar or a capture container is built
/// from, and the `options` of the status annotation (its JSON is a golden
/// format: names, order and omitted defaults). Commands get it from their
/// flags ([`SidecarFlags`], [`AgentFlags`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarOptions {
    /// Collectors to stream GRE to: IPv4/IPv6 addresses or DNS names, up to 4.
    pub collectors: Vec<String>,
    /// Capture filter in tcpdump (BPF) syntax; None: all of the pod's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Interface to capture on; None: the default route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Bytes kept of each frame; None: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<u32>,
    /// Most packets per second to forward per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pps: Option<u64>,
    /// Most megabits per second to forward per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mbps: Option<u64>,
    /// Frames larger than one packet can carry; None: the agent's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversize: Option<Oversize>,
    /// GRE header profile; None: the agent's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gre_profile: Option<GreProfile>,
    /// How the agent sends; None: the agent's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_path: Option<SendPath>,
    /// The format frames travel in; None: the agent's default (GRE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encap: Option<Encap>,
    /// The VXLAN VNI; None: from the workload key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// The ERSPAN session ID; None: from the workload key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u16>,
    /// GRE key instead of the workload key (netis: the keybit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u32>,
    /// Agent image; None: [`default_image`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU request of the sidecar.
    pub cpu: String,
    /// CPU limit of the sidecar.
    pub cpu_limit: String,
    /// Memory request of the sidecar.
    pub memory: String,
    /// Memory limit of the sidecar.
    pub memory_limit: String,
    /// Port of the agent's endpoint (container port `bpc-metrics`).
    pub metrics_port: u16,
    /// The endpoint on loopback only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metrics_private: bool,
    /// Capture ring size in MiB; None: the agent's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u32>,
    /// `--batch` as `BPC_BATCH` carries it (`250ms`); None: no batching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
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
            encap: None,
            vni: None,
            session: None,
            key: None,
            image: None,
            cpu: DEFAULT_CPU.into(),
            cpu_limit: DEFAULT_CPU_LIMIT.into(),
            memory: DEFAULT_MEMORY.into(),
            memory_limit: DEFAULT_MEMORY_LIMIT.into(),
            metrics_port: DEFAULT_METRICS_PORT,
            metrics_private: false,
            buffer: None,
            batch: None,
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

/// Fixtures shared by the sidecar's tests.
#[cfg(test)]
pub(crate) mod fixture {
    use serde_json::{Value, json};

    use super::*;
    use crate::workload::WorkloadKind;

    pub(crate) fn sidecar() -> Sidecar {
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

    pub(crate) fn native() -> Sidecar {
        Sidecar { form: SidecarForm::Native, ..sidecar() }
    }

    pub(crate) fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    }

    /// Options with every field set, none to its default.
    pub(crate) fn every_option() -> SidecarOptions {
        SidecarOptions {
            collectors: vec!["198.18.0.2".into(), "probe.obs.svc".into()],
            filter: Some("udp".into()),
            interface: Some("eth0".into()),
            snaplen: Some(256),
            max_pps: Some(5000),
            max_mbps: Some(100),
            oversize: Some(Oversize::Truncate),
            gre_profile: Some(GreProfile::Standard),
            send_path: Some(SendPath::Raw),
            encap: Some(Encap::ErspanIii),
            vni: Some(7),
            session: Some(9),
            key: Some(16),
            image: Some("bpc-agent:test".into()),
            cpu: "100m".into(),
            cpu_limit: "1".into(),
            memory: "64Mi".into(),
            memory_limit: "128Mi".into(),
            metrics_port: 9470,
            metrics_private: true,
            buffer: Some(48),
            batch: Some("250ms".into()),
        }
    }

    pub(crate) fn env(c: &Value, name: &str) -> Option<Value> {
        c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
