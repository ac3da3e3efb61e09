//! The send path: once the collector's next hop is in the neighbour table,
//! IPv4 GRE packets leave through the AF_PACKET TX ring (complete frames the
//! agent builds itself); packets that do not fit the MTU, and everything with
//! `--send-path raw`, take the raw GRE socket. Needs root, iproute2, tcpdump.

mod support;

use std::time::Duration;

use support::*;

const RING_LOG: &str = "sending through the AF_PACKET TX ring";

/// Checks the stream against tcpdump's reference: same frames, same order,
/// sequence numbers 0.. without gaps.
fn assert_stream_matches(received: &[Received], reference: &[Vec<u8>]) {
    assert_eq!(received.len(), reference.len(), "frames received vs tcpdump's reference");
    for (i, (r, f)) in received.iter().zip(reference).enumerate() {
        assert_eq!(r.sequence, Some(i as u32), "frame {i}: sequence numbers count up without gaps");
        assert_eq!(r.protocol, bpc_wire::PROTO_TEB);
        assert_eq!(&r.frame, f, "frame {i} differs from tcpdump's");
    }
}

#[test]
fn the_tx_ring_carries_the_stream_once_the_next_hop_is_resolved_and_oversize_packets_take_the_raw_socket() {
    let t = Topology::new("txr");
    // 9000-byte pod link: a 4000-byte datagram is one frame the ring cannot
    // carry on the 1500-byte collector path.
    t.jumbo_pod_link();
    let collector = Collector::start(&t.collector);
    let filter = "udp port 7777";
    let tcpdump = Tcpdump::start(&t.pod, &t.pod_if, filter);
    let agent = t.start_agent(filter, &["--oversize", "fragment"], &[]);
    let target = pod_addr(7777);
    // The first packets go through the raw socket, which makes the kernel
    // resolve the collector's MAC; the agent switches within a second.
    udp_send(&t.client, target, 5, 64, Duration::from_millis(2));
    wait_for("the switch to the TX ring", Duration::from_secs(5), || agent.proc.stderr().contains(RING_LOG));
    udp_send(&t.client, target, 100, 1000, Duration::ZERO);
    udp_send(&t.client, target, 1, 4000, Duration::ZERO);
    udp_send(&t.client, target, 100, 200, Duration::ZERO);
    wait_for("206 frames at the collector", Duration::from_secs(5), || collector.count() >= 206);
    std::thread::sleep(Duration::from_millis(200)); // anything extra would arrive now
    let stats = t.pod.stats(agent.port);
    let stderr = agent.stop();
    let reference = tcpdump.finish();
    let received = collector.finish();

    assert_stream_matches(&received, &reference);
    assert_eq!(received.iter().filter(|r| r.frame.len() == 4042).count(), 1, "the big frame, reassembled");
    let c = &stats["collectors"][0];
    assert_eq!(c["sent_packets"], 206);
    assert_eq!(c["sent_bytes"], received.iter().map(|r| (r.header_len + r.frame.len()) as u64).sum::<u64>());
    for kind in ["unreachable", "no_buffer", "other"] {
        assert_eq!(c["errors"][kind], 0, "{kind} errors: {stats}");
    }
    assert!(stderr.contains(RING_LOG) && stderr.contains(&t.pod_col_if), "{stderr}");
}

#[test]
fn send_path_raw_never_uses_the_tx_ring() {
    let (t, collector) = Topology::with_collector("raw");
    let filter = "udp port 7777";
    let tcpdump = Tcpdump::start(&t.pod, &t.pod_if, filter);
    let agent = t.start_agent(filter, &["--send-path", "raw"], &[]);
    let target = pod_addr(7777);
    udp_send(&t.client, target, 5, 64, Duration::from_millis(2));
    // Two link refreshes: with the default path the ring would be in use by now.
    std::thread::sleep(Duration::from_millis(2200));
    udp_send(&t.client, target, 50, 300, Duration::ZERO);
    wait_for("55 frames at the collector", Duration::from_secs(5), || collector.count() >= 55);
    std::thread::sleep(Duration::from_millis(200));
    let stderr = agent.stop();
    let reference = tcpdump.finish();
    let received = collector.finish();

    assert_stream_matches(&received, &reference);
    assert!(!stderr.contains(RING_LOG), "{stderr}");
}
