//! The environment variables of the sidecar: `kubectl bpc` writes them into
//! the `bpc-agent` container, the agent reads each as the default of the flag
//! of the same name (`BPC_MAX_PPS` is `--max-pps`).

/// `--collector`: comma-separated collector hosts.
pub const COLLECTOR: &str = "BPC_COLLECTOR";
/// `--interface`.
pub const INTERFACE: &str = "BPC_INTERFACE";
/// `--filter`: the user's capture filter.
pub const FILTER: &str = "BPC_FILTER";
/// `--snaplen`.
pub const SNAPLEN: &str = "BPC_SNAPLEN";
/// `--key`: a GRE key or `auto`.
pub const KEY: &str = "BPC_KEY";
/// `--workload`: `namespace/kind/name`, the source of the automatic key.
pub const WORKLOAD: &str = "BPC_WORKLOAD";
/// `--max-pps`.
pub const MAX_PPS: &str = "BPC_MAX_PPS";
/// `--max-mbps`.
pub const MAX_MBPS: &str = "BPC_MAX_MBPS";
/// `--metrics-addr`: `ADDRESS:PORT` of the endpoint.
pub const METRICS_ADDR: &str = "BPC_METRICS_ADDR";
/// `--metrics-private`: the endpoint on loopback only.
pub const METRICS_PRIVATE: &str = "BPC_METRICS_PRIVATE";
/// `--buffer`: capture ring size in MiB.
pub const BUFFER: &str = "BPC_BUFFER";
/// `--oversize`: an [`Oversize`](crate::Oversize) name.
pub const OVERSIZE: &str = "BPC_OVERSIZE";
/// `--send-path`: a [`SendPath`](crate::SendPath) name.
pub const SEND_PATH: &str = "BPC_SEND_PATH";
/// `--gre-profile`: a [`GreProfile`](crate::GreProfile) name.
pub const GRE_PROFILE: &str = "BPC_GRE_PROFILE";
/// `--encap`: an [`Encap`](crate::Encap) name.
pub const ENCAP: &str = "BPC_ENCAP";
/// `--vni`: the VXLAN network identifier (default: from the workload key).
pub const VNI: &str = "BPC_VNI";
/// `--session`: the ERSPAN session ID (default: from the workload key).
pub const SESSION: &str = "BPC_SESSION";
/// `--vxlan-port`: the collectors' VXLAN UDP port.
pub const VXLAN_PORT: &str = "BPC_VXLAN_PORT";
/// `--resolve-interval`.
pub const RESOLVE_INTERVAL: &str = "BPC_RESOLVE_INTERVAL";
/// `--write`: pcapng to a file or `-` instead of GRE.
pub const WRITE: &str = "BPC_WRITE";
/// `--duration`.
pub const DURATION: &str = "BPC_DURATION";
/// `--count`.
pub const COUNT: &str = "BPC_COUNT";
/// `--on-error`: an [`OnError`](crate::OnError) name (sidecars: `serve`).
pub const ON_ERROR: &str = "BPC_ON_ERROR";
/// `--linger`: how long the agent keeps capturing after SIGTERM while the pod has traffic.
pub const LINGER: &str = "BPC_LINGER";
/// `--batch`: how long frames may gather before they leave (`0`: as soon as captured).
pub const BATCH: &str = "BPC_BATCH";
/// The pod's name, from the Downward API (`metadata.name`).
pub const POD_NAME: &str = "POD_NAME";
/// The pod's namespace, from the Downward API (`metadata.namespace`).
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// The pod's IP, from the Downward API (`status.podIP`).
pub const POD_IP: &str = "POD_IP";
/// The node's name, from the Downward API (`spec.nodeName`).
pub const NODE_NAME: &str = "NODE_NAME";
/// Each Downward API variable the sidecar gets, with the pod field it reads.
pub const DOWNWARD_API: [(&str, &str); 4] = [
    (POD_NAME, "metadata.name"),
    (POD_NAMESPACE, "metadata.namespace"),
    (POD_IP, "status.podIP"),
    (NODE_NAME, "spec.nodeName"),
];
/// `--stdin-control`: start and stop driven by stdin (`kubectl bpc capture`).
pub const STDIN_CONTROL: &str = "BPC_STDIN_CONTROL";
