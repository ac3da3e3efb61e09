//! The prompt path (issue 26): while the pod's rate is low the agent takes
//! each frame as it is captured from a TPACKET_V2 ring, above it from the
//! blocks; the frames move between the rings as the rate changes. What the
//! collector receives must not change: every frame once, byte-identical to
//! tcpdump's, in order within each flow and direction. How small the delay
//! is, is a benchmark (`scripts/bench.sh`, section "timeline"), not a test.
//! Needs root, iproute2 and tcpdump.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use support::*;

/// A frame's flow: its sender's MAC, protocol and ports.
type Flow = ([u8; 6], u8, u16, u16);

fn flow_of(frame: &[u8]) -> Flow {
    let mac: [u8; 6] = frame[6..12].try_into().unwrap();
    let p = SlicedPacket::from_ethernet(frame).expect("Ethernet frame");
    let proto = match &p.net {
        Some(NetSlice::Ipv4(ip)) => ip.header().protocol().0,
        _ => 0,
    };
    let (sp, dp) = match &p.transport {
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        _ => (0, 0),
    };
    (mac, proto, sp, dp)
}

/// Each flow's frames in the order given.
fn per_flow(frames: &[Vec<u8>]) -> HashMap<Flow, Vec<&[u8]>> {
    let mut flows: HashMap<Flow, Vec<&[u8]>> = HashMap::new();
    for f in frames {
        flows.entry(flow_of(f)).or_default().push(f);
    }
    flows
}

/// Sends `pps` UDP datagrams of 64 bytes a second for `seconds`, with a
/// counter in each, from a thread in `ns`.
fn paced_udp(ns: &Netns, to: std::net::SocketAddr, pps: u32, seconds: f64) -> std::thread::JoinHandle<u64> {
    let netns = ns.name.clone();
    std::thread::spawn(move || {
        enter(&netns);
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            let due = (start.elapsed().as_secs_f64() * f64::from(pps)) as u64;
            while sent < due {
                let mut payload = [0u8; 64];
                payload[..8].copy_from_slice(&sent.to_be_bytes());
                if s.send_to(&payload, to).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    })
}

#[test]
fn frames_arrive_once_in_flow_order_while_the_rate_moves_them_between_the_rings() {
    let (t, collector, server) = Topology::with_tcp_server("path", 1000);
    let filter = "tcp port 8080 or udp port 7777";
    // A ring tcpdump does not lose frames from at 10 kpps.
    let tcpdump = Tcpdump::start_with(&t.pod, &t.pod_if, filter, &["-B", "16384"]);
    let agent = t.start_agent(filter, &[], &[]);
    let path = || t.pod.stats(agent.port)["capture"]["forwarding_delay"]["path"].as_str().map(str::to_owned);

    // Low rate: transactions 20 ms apart, on the prompt path.
    for _ in 0..10 {
        tcp_requests(&t.client, server, 1);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(path().as_deref(), Some("prompt"), "a low rate takes the prompt path");
    // 10 kpps of UDP with transactions beside it: the blocks.
    let udp = paced_udp(&t.client, pod_addr(7777), 10_000, 1.0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tcp_requests(&t.client, server, 10), 10 * 1000);
    assert_eq!(path().as_deref(), Some("blocks"), "10 kpps takes the blocks");
    let udp_sent = udp.join().unwrap();
    // Quiet again: back on the prompt path within a few windows.
    wait_for("the prompt path again", Duration::from_secs(5), || path().as_deref() == Some("prompt"));
    for _ in 0..10 {
        tcp_requests(&t.client, server, 1);
        std::thread::sleep(Duration::from_millis(20));
    }

    // tcpdump writes its file behind the traffic: let it catch up first.
    std::thread::sleep(Duration::from_millis(500));
    wait_for("the collector to receive what tcpdump saw", Duration::from_secs(10), || {
        collector.count() >= tcpdump.frames().len()
    });
    std::thread::sleep(Duration::from_millis(300)); // anything extra would arrive now
    let stats = t.pod.stats(agent.port);
    agent.stop();
    let reference = tcpdump.finish();
    let frames: Vec<Vec<u8>> = collector.finish().into_iter().map(|r| r.frame).collect();

    assert_eq!(stats["capture"]["kernel_drops"], 0, "{stats}");
    assert!(reference.len() as u64 > udp_sent, "tcpdump saw {} frames of {udp_sent} sent", reference.len());
    assert_eq!(frames.len(), reference.len(), "frames received vs tcpdump's");
    let (got, want) = (per_flow(&frames), per_flow(&reference));
    assert_eq!(got.len(), want.len(), "flows");
    for (flow, frames) in &want {
        assert!(got.get(flow) == Some(frames), "flow {flow:?}: frames differ or are out of order");
    }
    let delay = &stats["capture"]["forwarding_delay"];
    assert_eq!(delay["frames"], frames.len() as u64, "every frame sent is timed: {delay}");
    assert!(delay["p50_us"].as_f64().is_some_and(|us| us > 0.0), "{delay}");
}

#[test]
fn a_burst_from_idle_larger_than_the_prompt_ring_rolls_over_and_loses_nothing() {
    let (t, collector) = Topology::with_collector("burst");
    let agent = t.start_agent("udp port 7777", &[], &[]);
    // Idle: the prompt path, 512 slots.
    std::thread::sleep(Duration::from_millis(300));
    udp_send(&t.client, pod_addr(7777), 5_000, 64, Duration::ZERO);
    wait_for("5,000 frames at the collector", Duration::from_secs(10), || collector.count() >= 5_000);
    std::thread::sleep(Duration::from_millis(200));
    let stats = t.pod.stats(agent.port);
    agent.stop();
    assert_eq!(collector.finish().len(), 5_000);
    assert_eq!(stats["capture"]["kernel_drops"], 0, "{stats}");
    assert_eq!(stats["capture"]["packets"], 5_000, "{stats}");
}

#[test]
fn super_frames_beside_the_prompt_path_arrive_whole_and_in_their_directions_order() {
    // 30,000 bytes a response: the pod's TCP hands the veth super-frames of
    // up to its congestion window, which the fanout program sends to the
    // super-frame ring while the small frames of the same connections
    // (handshake, requests, FIN) take the prompt ring.
    let (t, collector, server) = Topology::with_tcp_server("supr", 30_000);
    let filter = "tcp port 8080";
    let tcpdump = Tcpdump::start_with(&t.pod, &t.pod_if, filter, &["-B", "16384"]);
    // Whole: each super-frame leaves as one GRE packet in IP fragments.
    let agent = t.start_agent(filter, &["--oversize", "fragment"], &[]);
    let path = || t.pod.stats(agent.port)["capture"]["forwarding_delay"]["path"].as_str().map(str::to_owned);
    for _ in 0..10 {
        assert_eq!(tcp_requests(&t.client, server, 1), 30_000);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    wait_for("the collector to receive what tcpdump saw", Duration::from_secs(10), || {
        collector.count() >= tcpdump.frames().len()
    });
    std::thread::sleep(Duration::from_millis(300));
    let stats = t.pod.stats(agent.port);
    assert_eq!(path().as_deref(), Some("prompt"), "ten transactions 20 ms apart stay on the prompt path");
    agent.stop();
    let reference = tcpdump.finish();
    let frames: Vec<Vec<u8>> = collector.finish().into_iter().map(|r| r.frame).collect();

    let supers = reference.iter().filter(|f| f.len() > 1514).count();
    assert!(supers >= 10, "the pod's TCP sent {supers} super-frames; the test needs some");
    assert_eq!(stats["capture"]["kernel_drops"], 0, "{stats}");
    assert_eq!(frames.len(), reference.len(), "frames received vs tcpdump's");
    let (got, want) = (per_flow(&frames), per_flow(&reference));
    assert_eq!(got.len(), want.len(), "flows (each TCP direction is one)");
    for (flow, frames) in &want {
        assert!(got.get(flow) == Some(frames), "flow {flow:?}: frames differ, are cut or are out of order");
    }
}
