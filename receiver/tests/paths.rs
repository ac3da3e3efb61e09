//! Path discovery through the real receiver: GRE from two "pods" (a client
//! calling a Service VIP, and the server seeing the DNATed flow) on a
//! loopback of its own network namespace; one edge, counted once, labelled
//! from the map's Service row.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bpc_netns::{Netns, poll};
use bpc_receiver::map::WorkloadMap;
use bpc_receiver::receiver::{Receiver, ReceiverConfig};
use bpc_wire::{Direction, GreProfile};
use etherparse::PacketBuilder;
use socket2::{Domain, Protocol, Socket, Type};

const CLIENT: [u8; 4] = [127, 0, 0, 5];
const SERVER: [u8; 4] = [127, 0, 0, 6];
const VIP: [u8; 4] = [127, 0, 0, 100];

#[derive(Clone, Copy)]
enum Flag {
    Syn,
    SynAck,
    Ack,
}

/// One inner Ethernet/IPv4/TCP frame.
fn frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), flag: Flag, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 64240);
    let b = match flag {
        Flag::Syn => b.syn(),
        Flag::SynAck => b.syn().ack(1),
        Flag::Ack => b.ack(1),
    };
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// A pod's sidecar: a raw GRE socket whose source is the pod's address.
struct Pod {
    socket: Socket,
    seq: u32,
    key: u32,
}

impl Pod {
    fn new(ip: [u8; 4], key: u32) -> Self {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).unwrap();
        socket.bind(&SocketAddr::new(IpAddr::from(ip), 0).into()).unwrap();
        socket.connect(&SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).into()).unwrap();
        Pod { socket, seq: 0, key }
    }

    fn send(&mut self, frame: &[u8]) {
        let mut b = vec![0u8; 16];
        let h = GreProfile::Standard.write_header(&mut b, self.key, self.seq, Direction::Unknown).unwrap();
        b.truncate(h);
        b.extend_from_slice(frame);
        self.socket.send(&b).unwrap();
        self.seq += 1;
        // Distinct kernel receive times for the RTT.
        std::thread::sleep(Duration::from_micros(300));
    }

    /// One connection as this end captures it: handshake, request, response.
    fn connection(&mut self, client: ([u8; 4], u16), server: ([u8; 4], u16)) {
        self.send(&frame(client, server, Flag::Syn, b""));
        self.send(&frame(server, client, Flag::SynAck, b""));
        self.send(&frame(client, server, Flag::Ack, b""));
        self.send(&frame(client, server, Flag::Ack, b"GET / HTTP/1.1\r\n\r\n"));
        self.send(&frame(server, client, Flag::Ack, b"HTTP/1.1 200 OK\r\n\r\nhello"));
    }
}

fn map() -> WorkloadMap {
    WorkloadMap::from_json(
        r#"[{"type":"pod","ip":"127.0.0.5","namespace":"shop","kind":"Deployment","workload":"frontend","key":"1","attached":true},
            {"type":"pod","ip":"127.0.0.6","namespace":"shop","kind":"Deployment","workload":"api","key":"2","attached":true},
            {"type":"service","ip":"127.0.0.100","namespace":"shop","kind":"Service","workload":"api-svc","key":"2",
             "backends":[{"kind":"Deployment","workload":"api","key":"2"}]}]"#,
    )
    .unwrap()
}

#[test]
fn a_service_call_captured_by_both_ends_is_one_edge_via_the_service() {
    let ns = Netns::new("sim", "paths");
    // The sockets are created on a thread moved into the namespace; they stay there.
    let handle = ns.spawn(move || {
        let rx = Receiver::start(ReceiverConfig {
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            map: Arc::new(RwLock::new(map())),
            paths: true,
            frame_sink: None,
        })
        .unwrap();
        let (mut client, mut server) = (Pod::new(CLIENT, 1), Pod::new(SERVER, 2));
        for port in [40001, 40002, 40003] {
            // The client captures the VIP; the server the flow after the DNAT.
            client.connection((CLIENT, port), (VIP, 80));
            server.connection((CLIENT, port), (SERVER, 8080));
        }
        let r = poll(
            Duration::from_secs(10),
            || rx.paths(),
            |r| r.edges.first().is_some_and(|e| e.packets_to_server == 9),
        );
        drop(rx);
        r
    });
    let r = handle.join().unwrap();
    assert_eq!(r.edges.len(), 1, "{:#?}", r.edges);
    let e = &r.edges[0];
    assert_eq!(
        (e.client.as_str(), e.server.as_str(), e.service.as_deref(), e.protocol.as_str(), e.port),
        ("shop/frontend", "shop/api", Some("shop/api-svc"), "tcp", 80)
    );
    assert_eq!((e.connections, e.flows, e.resets), (3, 3, 0));
    assert_eq!((e.packets_to_server, e.packets_to_client), (9, 6));
    assert_eq!(e.observed_by, [bpc_receiver::paths::Observer::Client]);
    let rtt = e.handshake_rtt_us.as_ref().expect("handshakes timed");
    assert_eq!(rtt.samples, 3);
    // The client's SYN and SYN-ACK were sent 300 us apart: per-packet receive times.
    assert!(rtt.p50_us >= 250 && rtt.p50_us < 100_000, "{rtt:?}");
    let ids: HashSet<&str> = r.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["shop/frontend", "shop/api"]));
}
