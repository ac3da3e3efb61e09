//! Folding flow records into the graph's edges and nodes, labelled by the
//! workload map of the moment.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Capturing;
use super::record::{FlowKey, FlowState};
use super::schema::{Clock, NodeType, Observer, PathEdge, PathNode, Rtt};
use crate::map::{RowType, WorkloadMap};

/// How far apart the client's stream and a flow the server captured may be
/// and still be the client's to count: the two sidecars' frames reach the
/// receiver with their own send delays (ring blocks, batches), so the
/// client's frames of a flow may come after the server's.
const CAPTURE_SLACK_NS: u64 = 5_000_000_000;

/// Adds one flow record to its edge (or drops it: the server side of a flow
/// whose client captures too).
pub(super) fn fold(
    k: &FlowKey,
    st: &FlowState,
    map: &WorkloadMap,
    capturing: &Capturing,
    edges: &mut BTreeMap<EdgeId, EdgeAcc>,
    nodes: &mut BTreeMap<String, PathNode>,
) {
    let c = st.client.unwrap_or_else(|| guess_client(k, map));
    let (client, server) = if c == 0 { (k.a, k.b) } else { (k.b, k.a) };
    let observed_by = if k.observer == client.0 {
        Observer::Client
    } else if k.observer == server.0 {
        let overlaps = |&(first, last): &(u64, u64)| {
            first <= st.last_ns.saturating_add(CAPTURE_SLACK_NS)
                && last.saturating_add(CAPTURE_SLACK_NS) >= st.first_ns
        };
        if capturing.get(&client.0).is_some_and(overlaps) {
            return;
        }
        Observer::Server
    } else {
        Observer::Other
    };
    let client_node = endpoint(&client.0, map, capturing);
    let (server_node, service) = server_endpoint(&server.0, map, capturing);
    let id = EdgeId {
        client: client_node.id.clone(),
        server: server_node.id.clone(),
        service,
        protocol: k.proto,
        port: server.1,
    };
    for n in [client_node, server_node] {
        let e = nodes.entry(n.id.clone()).or_insert(n.clone());
        e.attached |= n.attached;
    }
    let e = edges.entry(id).or_default();
    let s = c as usize;
    e.flows += 1;
    e.connections += st.connections;
    e.packets_to_server += st.packets[s];
    e.packets_to_client += st.packets[1 - s];
    e.bytes_to_server += st.bytes[s];
    e.bytes_to_client += st.bytes[1 - s];
    e.resets += st.resets;
    for &r in &st.rtt_us {
        e.add_rtt(r);
    }
    e.arrival_timed |= st.arrival_timed && !st.rtt_us.is_empty();
    e.first_ns = if e.first_ns == 0 { st.first_ns } else { e.first_ns.min(st.first_ns) };
    e.last_ns = e.last_ns.max(st.last_ns);
    e.observed[observed_by as usize] = true;
}

/// RTT samples kept per edge; past it a uniform sample of all of them
/// (reservoir sampling), so percentiles stay fair in bounded memory.
const MAX_RTT_SAMPLES: usize = 1 << 16;

impl EdgeAcc {
    /// The edge's row of `PREFIX.json`.
    pub(super) fn into_edge(mut self, id: EdgeId) -> PathEdge {
        self.rtt.sort_unstable();
        let rtt = (!self.rtt.is_empty()).then(|| {
            let pct = |q: f64| self.rtt[((self.rtt.len() - 1) as f64 * q).round() as usize];
            let clock = if self.arrival_timed { Clock::Arrival } else { Clock::Capture };
            Rtt { samples: self.rtt_seen, p50_us: pct(0.5), p99_us: pct(0.99), clock }
        });
        let observed_by =
            Observer::ALL.into_iter().zip(self.observed).filter(|(_, on)| *on).map(|(o, _)| o).collect();
        PathEdge {
            client: id.client,
            server: id.server,
            service: id.service,
            protocol: bpc_wire::protocol_name(id.protocol).into_owned(),
            port: id.port,
            flows: self.flows,
            connections: self.connections,
            packets_to_server: self.packets_to_server,
            packets_to_client: self.packets_to_client,
            bytes_to_server: self.bytes_to_server,
            bytes_to_client: self.bytes_to_client,
            resets: self.resets,
            handshake_rtt_us: rtt,
            first_seen: self.first_ns as f64 / 1e9,
            last_seen: self.last_ns as f64 / 1e9,
            observed_by,
        }
    }

    fn add_rtt(&mut self, r: u32) {
        self.rtt_seen += 1;
        if self.rtt.len() < MAX_RTT_SAMPLES {
            self.rtt.push(r);
            return;
        }
        // xorshift: deterministic, no dependency, good enough to pick slots.
        let mut x = self.rtt_seen ^ 0x9e37_79b9_7f4a_7c15;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let slot = (x % self.rtt_seen) as usize;
        if slot < MAX_RTT_SAMPLES {
            self.rtt[slot] = r;
        }
    }
}

/// No SYN seen (the flow began before the capture, or is not TCP): the end
/// that is a Service address is the server, otherwise the lower port.
fn guess_client(k: &FlowKey, map: &WorkloadMap) -> u8 {
    let is_service = |ip: &IpAddr| map.peer(ip).is_some_and(|p| p.row_type == RowType::Service);
    match (is_service(&k.a.0), is_service(&k.b.0)) {
        (true, false) => 1,
        (false, true) => 0,
        _ if k.a.1 < k.b.1 => 1,
        _ => 0,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct EdgeId {
    client: String,
    server: String,
    service: Option<String>,
    protocol: u8,
    port: u16,
}

#[derive(Debug, Clone, Default)]
pub(super) struct EdgeAcc {
    rtt_seen: u64,
    flows: u64,
    connections: u64,
    packets_to_server: u64,
    packets_to_client: u64,
    bytes_to_server: u64,
    bytes_to_client: u64,
    resets: u64,
    rtt: Vec<u32>,
    /// Some RTT sample was timed on arrival.
    arrival_timed: bool,
    first_ns: u64,
    last_ns: u64,
    observed: [bool; 3],
}

/// The graph node of an address: its workload, Service, node or itself.
fn endpoint(ip: &IpAddr, map: &WorkloadMap, capturing: &Capturing) -> PathNode {
    let attached = capturing.contains_key(ip);
    match map.peer(ip) {
        Some(p) => match p.row_type {
            RowType::Pod => PathNode {
                id: format!("{}/{}", p.namespace, p.name),
                node_type: NodeType::Workload,
                namespace: p.namespace.clone(),
                kind: p.kind.clone(),
                name: p.name.clone(),
                attached: attached || p.attached,
            },
            RowType::Service => PathNode {
                id: format!("{}/{}", p.namespace, p.name),
                node_type: NodeType::Service,
                namespace: p.namespace.clone(),
                kind: "Service".into(),
                name: p.name.clone(),
                attached: false,
            },
            RowType::Node => PathNode {
                id: format!("node/{}", p.name),
                node_type: NodeType::Node,
                namespace: String::new(),
                kind: "Node".into(),
                name: p.name.clone(),
                attached,
            },
        },
        None => PathNode {
            id: format!("external/{ip}"),
            node_type: NodeType::External,
            namespace: String::new(),
            kind: String::new(),
            name: ip.to_string(),
            attached,
        },
    }
}

/// The server end: a Service whose selector picks exactly one workload is
/// drawn as that workload (the call reaches it whichever pod answers), with
/// the Service's name on the edge; any other Service stays a Service node.
fn server_endpoint(ip: &IpAddr, map: &WorkloadMap, capturing: &Capturing) -> (PathNode, Option<String>) {
    let node = endpoint(ip, map, capturing);
    let Some(p) = map.peer(ip).filter(|p| p.row_type == RowType::Service) else { return (node, None) };
    let service = Some(node.id.clone());
    match p.backends.as_slice() {
        [b] => (
            PathNode {
                id: format!("{}/{}", p.namespace, b.workload),
                node_type: NodeType::Workload,
                namespace: p.namespace.clone(),
                kind: b.kind.clone(),
                name: b.workload.clone(),
                attached: p.attached,
            },
            service,
        ),
        _ => (node, service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_samples_are_bounded_and_still_counted() {
        let mut acc = EdgeAcc::default();
        for i in 0..(MAX_RTT_SAMPLES as u32 + 1000) {
            acc.add_rtt(i % 100);
        }
        assert_eq!(acc.rtt.len(), MAX_RTT_SAMPLES);
        assert_eq!(acc.rtt_seen, MAX_RTT_SAMPLES as u64 + 1000);
        assert!(acc.rtt.iter().all(|&r| r < 100));
    }
}
