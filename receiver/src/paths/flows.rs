//! The flow records: the receiver's hot path, one update per inner frame.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Capturing;
use super::edges::{EdgeAcc, EdgeId, fold};
pub use super::record::TcpFlags;
use super::record::{FlowKey, FlowState, Phase};
use super::schema::{Clock, PATHS_SCHEMA, PathNode, PathsReport, Stamp};
use crate::map::WorkloadMap;

/// Flows kept at most; later new flows are counted in `flows_dropped`.
const MAX_FLOWS: usize = 1 << 20;

/// Every flow record of a receiver.
#[derive(Debug, Default)]
pub struct FlowTable {
    flows: std::collections::HashMap<FlowKey, FlowState>,
    dropped: u64,
    /// Edges of flows folded by [`FlowTable::compact`], and their nodes.
    archived: BTreeMap<EdgeId, EdgeAcc>,
    archived_nodes: BTreeMap<String, PathNode>,
}

impl FlowTable {
    /// Accounts one inner frame of `len` bytes from `src:sp` to `dst:dp`,
    /// captured by `observer`, at `at`: its capture time where the format
    /// carries it, else its arrival (a bare `u64` of Unix nanoseconds).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        observer: IpAddr,
        proto: u8,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        tcp: Option<TcpFlags>,
        len: usize,
        at: impl Into<Stamp>,
    ) {
        let Stamp { ns: now_ns, clock } = at.into();
        if !is_peer(&src.0) || !is_peer(&dst.0) {
            return;
        }
        let (a, b, from) = if src <= dst { (src, dst, 0usize) } else { (dst, src, 1usize) };
        let key = FlowKey { proto, a, b, observer };
        let len_now = self.flows.len();
        let st = match self.flows.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if len_now >= MAX_FLOWS {
                    self.dropped += 1;
                    return;
                }
                e.insert(FlowState {
                    client: None,
                    packets: [0; 2],
                    bytes: [0; 2],
                    resets: 0,
                    connections: 0,
                    phase: Phase::Idle,
                    syn_ns: 0,
                    synack_ns: 0,
                    rtt_us: Vec::new(),
                    arrival_timed: false,
                    first_ns: now_ns,
                    last_ns: now_ns,
                })
            }
        };
        st.packets[from] += 1;
        st.bytes[from] += len as u64;
        st.last_ns = now_ns;
        st.arrival_timed |= clock == Clock::Arrival;
        let Some(f) = tcp else { return };
        let sender = if from == 0 { a.0 } else { b.0 };
        if f.rst {
            st.resets += 1;
        }
        if f.syn && !f.ack {
            // A retransmitted SYN keeps the first one's time: the handshake
            // took as long as the client waited. A SYN after a handshake is a
            // new connection on the same tuple.
            if st.phase != Phase::Syn || st.client != Some(from as u8) {
                st.phase = Phase::Syn;
                st.syn_ns = now_ns;
            }
            st.client = Some(from as u8);
        } else if f.syn && f.ack {
            if st.phase == Phase::Syn && st.client == Some(1 - from as u8) {
                st.connections += 1;
                st.phase = Phase::SynAck;
                st.synack_ns = now_ns;
                // Kernel receive stamps of packets taken on different CPUs may
                // step back a little: a negative RTT is 0, never a panic that
                // poisons the receiver.
                // Seen from the client: SYN out, SYN-ACK back.
                if sender != observer {
                    st.rtt_us.push(us(now_ns.saturating_sub(st.syn_ns)));
                }
            }
        } else if f.ack && st.phase == Phase::SynAck && st.client == Some(from as u8) {
            st.phase = Phase::Idle;
            // Seen from the server: SYN-ACK out, the client's ACK back.
            if sender != observer {
                st.rtt_us.push(us(now_ns.saturating_sub(st.synack_ns)));
            }
        }
    }

    /// Flow records held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// No flow yet.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The path graph: flows labelled by `map`, flows captured by both ends
    /// counted once. `capturing` are the sources of the streams received:
    /// a server-side record of a flow whose client was capturing meanwhile
    /// is dropped (the client's record counts it, and sees the Service
    /// address); a client detached before the flow leaves it to the server.
    pub fn report(&self, map: &WorkloadMap, capturing: &Capturing, generated_at: f64) -> PathsReport {
        let mut edges = self.archived.clone();
        let mut nodes = self.archived_nodes.clone();
        for (k, st) in &self.flows {
            fold(k, st, map, capturing, &mut edges, &mut nodes);
        }
        let edges = edges.into_iter().map(|(id, acc)| acc.into_edge(id)).collect();
        PathsReport {
            schema: PATHS_SCHEMA.to_owned(),
            generated_at,
            nodes: nodes.into_values().collect(),
            edges,
            flows: self.flows.len() as u64,
            flows_dropped: self.dropped,
        }
    }
}

impl FlowTable {
    /// Folds flows silent since before `idle_before_ns` into their edges with
    /// the labels of now, so a long capture keeps one record per edge rather
    /// than one per connection (each client port is a flow). A folded flow
    /// that speaks again starts a new record on the same edge.
    pub fn compact(&mut self, map: &WorkloadMap, capturing: &Capturing, idle_before_ns: u64) {
        let (archived, nodes) = (&mut self.archived, &mut self.archived_nodes);
        self.flows.retain(|k, st| {
            if st.last_ns >= idle_before_ns {
                return true;
            }
            fold(k, st, map, capturing, archived, nodes);
            false
        });
    }
}

/// Whether an address can be one end of a path: neighbour discovery, MLD,
/// DHCP and other multicast, broadcast or unspecified traffic is a pod
/// talking to its link, not calling a workload.
fn is_peer(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

fn us(ns: u64) -> u32 {
    (ns / 1000).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::{NodeType, Observer, PathEdge, render_dot, top_edges};

    const SYN: Option<TcpFlags> = Some(TcpFlags { syn: true, ack: false, rst: false });
    const SYNACK: Option<TcpFlags> = Some(TcpFlags { syn: true, ack: true, rst: false });
    const ACK: Option<TcpFlags> = Some(TcpFlags { syn: false, ack: true, rst: false });
    const RST: Option<TcpFlags> = Some(TcpFlags { syn: false, ack: true, rst: true });

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Pods capturing for the whole test.
    fn cap<const N: usize>(ips: [IpAddr; N]) -> Capturing {
        ips.into_iter().map(|i| (i, (0, u64::MAX))).collect()
    }

    const FRONT: &str = "198.18.7.11";
    const API: &str = "198.18.7.21";
    const VIP: &str = "198.18.8.1";
    const DB: &str = "198.18.7.31";

    fn map() -> WorkloadMap {
        WorkloadMap::from_json(&format!(
            r#"[{{"type":"pod","ip":"{FRONT}","namespace":"shop","kind":"Deployment","workload":"frontend","key":"1","attached":true}},
                {{"type":"pod","ip":"{API}","namespace":"shop","kind":"Deployment","workload":"api","key":"2","attached":true}},
                {{"type":"pod","ip":"{DB}","namespace":"shop","kind":"StatefulSet","workload":"db","key":"3"}},
                {{"type":"service","ip":"{VIP}","namespace":"shop","kind":"Service","workload":"api-svc","key":"2",
                  "backends":[{{"kind":"Deployment","workload":"api","key":"2"}}]}}]"#
        ))
        .unwrap()
    }

    /// One TCP connection: handshake at t0 (RTT `rtt_ns`), one request and
    /// one response, as captured by `observer`.
    #[allow(clippy::too_many_arguments)]
    fn connection(
        t: &mut FlowTable,
        observer: &str,
        client: (&str, u16),
        server: (&str, u16),
        t0: u64,
        rtt_ns: u64,
    ) {
        let (c, s) = ((ip(client.0), client.1), (ip(server.0), server.1));
        let o = ip(observer);
        t.observe(o, 6, c, s, SYN, 74, t0);
        t.observe(o, 6, s, c, SYNACK, 74, t0 + rtt_ns);
        t.observe(o, 6, c, s, ACK, 66, t0 + 2 * rtt_ns);
        t.observe(o, 6, c, s, ACK, 200, t0 + 3 * rtt_ns);
        t.observe(o, 6, s, c, ACK, 1000, t0 + 4 * rtt_ns);
    }

    /// One TCP frame: from, to, flags, length, receive time.
    type Frame = ((IpAddr, u16), (IpAddr, u16), Option<TcpFlags>, usize, u64);

    /// The report of TCP `frames` captured by `observer` alone, and its first edge.
    fn tcp_edge(observer: IpAddr, frames: &[Frame]) -> (PathsReport, PathEdge) {
        let mut t = FlowTable::default();
        for &(from, to, flags, len, ns) in frames {
            t.observe(observer, 6, from, to, flags, len, ns);
        }
        let r = t.report(&map(), &cap([observer]), 0.0);
        let edge = r.edges[0].clone();
        (r, edge)
    }

    #[test]
    fn the_rtt_says_it_was_timed_at_capture_only_when_every_frame_carried_its_capture_time() {
        let (c, s, o) = ((ip(FRONT), 40001), (ip(API), 8080), ip(FRONT));
        let capture = |ns| Stamp { ns, clock: Clock::Capture };
        let mut t = FlowTable::default();
        t.observe(o, 6, c, s, SYN, 74, capture(1_000));
        t.observe(o, 6, s, c, SYNACK, 74, capture(51_000));
        let r = t.report(&map(), &cap([o]), 0.0);
        let rtt = r.edges[0].handshake_rtt_us.clone().unwrap();
        assert_eq!((rtt.p50_us, rtt.clock), (50, Clock::Capture));
        // One frame of the flow timed on arrival: the RTT is an arrival figure.
        t.observe(o, 6, c, s, ACK, 66, 90_000);
        let r = t.report(&map(), &cap([o]), 0.0);
        assert_eq!(r.edges[0].handshake_rtt_us.as_ref().unwrap().clock, Clock::Arrival);
        let json = serde_json::to_value(&r.edges[0]).unwrap();
        assert_eq!(json["handshake_rtt_us"]["clock"], "arrival");
    }

    #[test]
    fn client_side_handshake_rtt_is_syn_to_synack_and_each_handshake_is_a_connection() {
        let mut t = FlowTable::default();
        // Three connections from three client ports: (port, start, RTT).
        for (port, t0, rtt_ns) in [
            (40001, 1_000_000_000, 100_000),
            (40002, 2_000_000_000, 300_000),
            (40003, 3_000_000_000, 200_000),
        ] {
            connection(&mut t, FRONT, (FRONT, port), (API, 8080), t0, rtt_ns);
        }
        let r = t.report(&map(), &cap([ip(FRONT)]), 0.0);
        assert_eq!(r.edges.len(), 1);
        let e = &r.edges[0];
        assert_eq!((e.client.as_str(), e.server.as_str(), e.port), ("shop/frontend", "shop/api", 8080));
        assert_eq!((e.connections, e.flows, e.resets), (3, 3, 0));
        assert_eq!((e.packets_to_server, e.packets_to_client), (9, 6));
        assert_eq!((e.bytes_to_server, e.bytes_to_client), (3 * (74 + 66 + 200), 3 * (74 + 1000)));
        let rtt = e.handshake_rtt_us.as_ref().unwrap();
        assert_eq!((rtt.samples, rtt.p50_us, rtt.p99_us), (3, 200, 300));
        assert_eq!(e.observed_by, [Observer::Client]);
        assert_eq!((e.first_seen, e.last_seen), (1.0, 3.0008));
    }

    #[test]
    fn server_side_rtt_is_synack_to_ack_and_a_retransmitted_syn_keeps_its_first_time() {
        let (c, s) = ((ip(DB), 50000), (ip(API), 5432));
        // DB is not capturing: only the server side sees this flow.
        let frames = [
            (c, s, SYN, 74, 1_000_000),
            (c, s, SYN, 74, 2_000_000),
            (s, c, SYNACK, 74, 2_010_000),
            (c, s, ACK, 66, 2_060_000),
        ];
        let (r, e) = tcp_edge(ip(API), &frames);
        assert_eq!((e.client.as_str(), e.server.as_str()), ("shop/db", "shop/api"));
        assert_eq!(e.connections, 1);
        assert_eq!(e.handshake_rtt_us.as_ref().unwrap().p50_us, 50);
        assert_eq!(e.observed_by, [Observer::Server]);
        // The client end is in the map but sends no stream here, and the map says unattached.
        let db = r.nodes.iter().find(|n| n.id == "shop/db").unwrap();
        assert!(!db.attached);
    }

    #[test]
    fn resets_are_counted_and_a_refused_connection_is_no_handshake() {
        let (c, s) = ((ip(FRONT), 40010), (ip(DB), 9));
        let (_, e) = tcp_edge(ip(FRONT), &[(c, s, SYN, 74, 1000), (s, c, RST, 60, 2000)]);
        assert_eq!((e.connections, e.resets, e.port), (0, 1, 9));
        assert!(e.handshake_rtt_us.is_none());
    }

    #[test]
    fn a_flow_captured_by_both_ends_counts_once_with_the_service_name() {
        let mut t = FlowTable::default();
        // Client side: frontend calls the VIP; server side: api sees the DNATed flow.
        connection(&mut t, FRONT, (FRONT, 40001), (VIP, 80), 1_000_000, 100_000);
        connection(&mut t, API, (FRONT, 40001), (API, 8080), 1_050_000, 20_000);
        // api -> db, db not capturing: api's (client) record.
        connection(&mut t, API, (API, 41000), (DB, 5432), 2_000_000, 10_000);
        let capturing = cap([ip(FRONT), ip(API)]);
        let r = t.report(&map(), &capturing, 0.0);
        let summary: Vec<_> = r
            .edges
            .iter()
            .map(|e| (e.client.as_str(), e.server.as_str(), e.service.as_deref(), e.port, e.connections))
            .collect();
        assert_eq!(
            summary,
            [
                ("shop/api", "shop/db", None, 5432, 1),
                ("shop/frontend", "shop/api", Some("shop/api-svc"), 80, 1),
            ]
        );
        // Had frontend not been capturing, the server side would be the only record and count.
        let r = t.report(&map(), &cap([ip(API)]), 0.0);
        assert!(
            r.edges.iter().any(|e| e.client == "shop/frontend"
                && e.port == 8080
                && e.observed_by == [Observer::Server])
        );
    }

    #[test]
    fn a_client_detached_before_the_flow_leaves_it_to_the_server_and_late_client_frames_still_count() {
        let s = 1_000_000_000;
        let mut t = FlowTable::default();
        // The server captures a call at t = 100 s.
        connection(&mut t, API, (FRONT, 40001), (API, 8080), 100 * s, 20_000);
        // frontend's sidecar stopped at t = 10 s: the server's record counts.
        let detached = Capturing::from([(ip(API), (0, u64::MAX)), (ip(FRONT), (0, 10 * s))]);
        let r = t.report(&map(), &detached, 0.0);
        assert_eq!((r.edges.len(), r.edges[0].observed_by.as_slice()), (1, &[Observer::Server][..]));
        // frontend's stream is 2 s behind (its frames of this flow not in yet): still the client's to count.
        let lagging = Capturing::from([(ip(API), (0, u64::MAX)), (ip(FRONT), (0, 98 * s))]);
        assert!(t.report(&map(), &lagging, 0.0).edges.is_empty());
    }

    #[test]
    fn unknown_addresses_are_external_and_flows_without_syn_guess_the_server_by_port() {
        let mut t = FlowTable::default();
        let ext = ip("198.18.200.9");
        // Mid-stream UDP: no SYN; the lower port is the server.
        t.observe(ip(FRONT), 17, (ip(FRONT), 53000), (ext, 53), None, 80, 5);
        t.observe(ip(FRONT), 17, (ext, 53), (ip(FRONT), 53000), None, 120, 6);
        let r = t.report(&map(), &cap([ip(FRONT)]), 0.0);
        let e = &r.edges[0];
        assert_eq!(
            (e.client.as_str(), e.server.as_str(), e.protocol.as_str(), e.port),
            ("shop/frontend", "external/198.18.200.9", "udp", 53)
        );
        assert_eq!((e.bytes_to_server, e.bytes_to_client, e.connections), (80, 120, 0));
        let n = r.nodes.iter().find(|n| n.id == "external/198.18.200.9").unwrap();
        assert_eq!(n.node_type, NodeType::External);
    }

    #[test]
    fn link_chatter_is_not_a_path() {
        let mut t = FlowTable::default();
        let o = ip(FRONT);
        t.observe(o, 58, (ip("::"), 0), (ip("ff02::16"), 0), None, 90, 1);
        t.observe(o, 58, (ip("fe80::1"), 0), (ip("ff02::2"), 0), None, 70, 2);
        t.observe(o, 17, (ip("0.0.0.0"), 68), (ip("255.255.255.255"), 67), None, 300, 3);
        t.observe(o, 17, (ip(FRONT), 5353), (ip("224.0.0.251"), 5353), None, 100, 4);
        assert!(t.is_empty());
        // Link-local unicast is a peer like any other.
        t.observe(o, 6, (ip("fe80::1"), 40000), (ip("fe80::2"), 80), SYN, 74, 5);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_replaced_pod_keeps_its_workload_once_the_map_moves_on() {
        let mut t = FlowTable::default();
        connection(&mut t, FRONT, (FRONT, 40001), (API, 8080), 1_000, 100);
        let mut m = map();
        let new_api = "198.18.7.22";
        connection(&mut t, FRONT, (FRONT, 40002), (new_api, 8080), 2_000, 100);
        m.update(
            WorkloadMap::from_json(&format!(
                r#"[{{"type":"pod","ip":"{new_api}","namespace":"shop","kind":"Deployment","workload":"api","key":"2"}}]"#
            ))
            .unwrap(),
        );
        let r = t.report(&m, &cap([ip(FRONT)]), 0.0);
        assert_eq!(r.edges.len(), 1, "{:?}", r.edges);
        assert_eq!((r.edges[0].server.as_str(), r.edges[0].connections), ("shop/api", 2));
    }

    #[test]
    fn compacting_idle_flows_keeps_the_edges_and_their_counts() {
        let mut t = FlowTable::default();
        let capturing = cap([ip(FRONT), ip(API)]);
        connection(&mut t, FRONT, (FRONT, 40001), (VIP, 80), 1_000_000, 100_000);
        connection(&mut t, API, (FRONT, 40001), (API, 8080), 1_050_000, 20_000);
        connection(&mut t, FRONT, (FRONT, 40002), (VIP, 80), 9_000_000, 300_000);
        let before = t.report(&map(), &capturing, 0.0);
        // The first connection (both records) went silent before t = 5 ms.
        t.compact(&map(), &capturing, 5_000_000);
        assert_eq!(t.len(), 1);
        let after = t.report(&map(), &capturing, 0.0);
        assert_eq!(after.edges, before.edges);
        assert_eq!(after.edges[0].connections, 2);
        assert_eq!(after.edges[0].handshake_rtt_us.as_ref().unwrap().samples, 2);
        t.compact(&map(), &capturing, u64::MAX);
        assert!(t.is_empty());
        assert_eq!(t.report(&map(), &capturing, 0.0).edges, before.edges);
    }

    #[test]
    fn schema_and_dot_name_nodes_by_namespace_and_name() {
        let mut t = FlowTable::default();
        connection(&mut t, FRONT, (FRONT, 40001), (VIP, 80), 1_000_000_000, 100_000);
        let r = t.report(&map(), &cap([ip(FRONT)]), 12.5);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["schema"], PATHS_SCHEMA);
        let keys: Vec<&str> = v["edges"][0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "client",
                "server",
                "service",
                "protocol",
                "port",
                "flows",
                "connections",
                "packets_to_server",
                "packets_to_client",
                "bytes_to_server",
                "bytes_to_client",
                "resets",
                "handshake_rtt_us",
                "first_seen",
                "last_seen",
                "observed_by"
            ]
        );
        assert_eq!(v["nodes"][0]["type"], "workload");
        let back: PathsReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let dot = render_dot(&r);
        assert!(
            dot.contains("\"shop/frontend\" -> \"shop/api\" [label=\"tcp/80 via shop/api-svc\\n1 conn"),
            "{dot}"
        );
        assert!(dot.contains("\"shop/api\" [label=\"shop/api\\nDeployment\""), "{dot}");
        assert_eq!(top_edges(&r, 3), ["shop/frontend -> shop/api tcp/80 via shop/api-svc 1 conn"]);
    }
}
