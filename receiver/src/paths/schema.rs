//! The document `PREFIX.json`: what a collector reads, written by
//! [`super::FlowTable::report`]. Its types lead with the whole document.

use serde::{Deserialize, Serialize};

/// Schema name and version of `PREFIX.json` (README, *Service paths*).
pub const PATHS_SCHEMA: &str = "bpc-paths/1";

/// `PREFIX.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathsReport {
    /// [`PATHS_SCHEMA`].
    pub schema: String,
    /// Unix seconds when written.
    pub generated_at: f64,
    /// Graph nodes, sorted by id.
    pub nodes: Vec<PathNode>,
    /// Edges, sorted by client, server, service, protocol, port.
    pub edges: Vec<PathEdge>,
    /// Flow records held.
    pub flows: u64,
    /// New flows not recorded (table full).
    pub flows_dropped: u64,
}

/// A graph node (`nodes[]` of `PREFIX.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathNode {
    /// `namespace/name` (workloads, Services), `node/NAME`, `external/IP`.
    pub id: String,
    /// `workload`, `service`, `node` or `external`.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Namespace (empty for nodes and external peers).
    pub namespace: String,
    /// Workload kind, `Service`, `Node`, or empty.
    pub kind: String,
    /// Workload, Service, node name, or the address.
    pub name: String,
    /// Some pod of it sends a stream here (or the map says it carries the sidecar).
    pub attached: bool,
}

/// What a graph node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// A workload (`namespace/name`).
    Workload,
    /// A Service whose selector does not pick exactly one workload.
    Service,
    /// A node (`node/NAME`).
    Node,
    /// An address the map does not know (`external/IP`).
    External,
}

/// One path (`edges[]` of `PREFIX.json`): client workload -> server workload
/// over one protocol and server port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathEdge {
    /// Client node id.
    pub client: String,
    /// Server node id.
    pub server: String,
    /// `namespace/name` of the Service the client called, when it called a ClusterIP.
    pub service: Option<String>,
    /// `tcp`, `udp`, `icmp` or the protocol number.
    pub protocol: String,
    /// Server port as the counted capture saw it (the Service port for a ClusterIP call).
    pub port: u16,
    /// Flow records (5-tuples) on this edge.
    pub flows: u64,
    /// TCP handshakes seen (SYN then SYN-ACK).
    pub connections: u64,
    /// Packets client -> server.
    pub packets_to_server: u64,
    /// Packets server -> client.
    pub packets_to_client: u64,
    /// Inner frame bytes client -> server.
    pub bytes_to_server: u64,
    /// Inner frame bytes server -> client.
    pub bytes_to_client: u64,
    /// TCP resets, either way.
    pub resets: u64,
    /// Handshake RTT at the capturing pod: SYN -> SYN-ACK on the client,
    /// SYN-ACK -> ACK on the server; null when no handshake was seen.
    pub handshake_rtt_us: Option<Rtt>,
    /// Unix seconds of the first packet.
    pub first_seen: f64,
    /// Unix seconds of the last packet.
    pub last_seen: f64,
    /// Whose captures were counted: `client`, `server`, `other` (a stream
    /// whose source is neither end, e.g. a NATed agent).
    pub observed_by: Vec<Observer>,
}

/// Handshake round-trip times of an edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rtt {
    /// Handshakes measured.
    pub samples: u64,
    /// Median, microseconds.
    pub p50_us: u32,
    /// 99th percentile, microseconds.
    pub p99_us: u32,
    /// Whose clock timed them: `capture` (every sample from frames whose
    /// format carries the capture time, ERSPAN III) or `arrival` (the
    /// receiver's, which adds the mirror's forwarding delay and its jitter).
    /// Absent from reports before it: arrival.
    #[serde(default)]
    pub clock: Clock,
}

/// The clock a time was read on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// When the agent's kernel captured the frame (carried by the format).
    Capture,
    /// When the frame reached the receiver.
    #[default]
    Arrival,
}

/// A frame's time, Unix nanoseconds, and the clock it was read on. A bare
/// number is an arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Unix nanoseconds.
    pub ns: u64,
    /// Whose clock.
    pub clock: Clock,
}

impl From<u64> for Stamp {
    fn from(ns: u64) -> Stamp {
        Stamp { ns, clock: Clock::Arrival }
    }
}

/// Whose capture of a flow was counted on an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Observer {
    /// The client's sidecar.
    Client = 0,
    /// The server's (the client streamed nothing around the flow's time).
    Server = 1,
    /// A stream whose source is neither end, e.g. a NATed agent.
    Other = 2,
}

impl Observer {
    pub(super) const ALL: [Observer; 3] = [Observer::Client, Observer::Server, Observer::Other];
}
