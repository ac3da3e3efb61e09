//! `--oversize` with a frame too big for one GRE packet: a 5,042-byte UDP
//! frame on a 9000-MTU pod link, streamed to a collector on a 1500-MTU path
//! (at most 1468 bytes of frame per standard GRE packet).
//! Needs root, iproute2, tcpdump.

mod support;

use std::time::Duration;

use etherparse::Ipv4HeaderSlice;
use support::*;

const PAYLOAD: usize = 5000;
const MAX_FRAME: usize = 1500 - 20 - 12;

/// Sends one big UDP datagram through a pod whose agent runs `--oversize mode`;
/// returns (tcpdump's frame, frames received, /stats).
fn jumbo(tag: &str, mode: &str) -> (Vec<u8>, Vec<Received>, serde_json::Value) {
    let t = Topology::new(tag);
    t.jumbo_pod_link();
    let collector = Collector::start(&t.collector);
    let filter = "udp port 7777";
    let tcpdump = Tcpdump::start(&t.pod, &t.pod_if, filter);
    let agent = t.start_agent(filter, &["--oversize", mode], &[]);
    let target = pod_addr(7777);
    udp_send(&t.client, target, 1, PAYLOAD, Duration::ZERO);
    wait_for("the frame at the collector", Duration::from_secs(5), || collector.count() >= 1);
    std::thread::sleep(Duration::from_millis(200));
    let stats = t.pod.stats(agent.port);
    agent.stop();
    let reference = tcpdump.finish();
    assert_eq!(reference.len(), 1, "one frame on the pod link");
    assert_eq!(reference[0].len(), 14 + 20 + 8 + PAYLOAD);
    (reference.into_iter().next().unwrap(), collector.finish(), stats)
}

#[test]
fn truncate_mode_sends_the_first_1468_bytes_and_counts_the_frame() {
    let (frame, received, stats) = jumbo("ovt", "truncate");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].frame, frame[..MAX_FRAME]);
    assert_eq!(stats["capture"]["truncated"], 1);
    assert_eq!(stats["capture"]["segmented"], 0);
}

#[test]
fn fragment_mode_sends_the_frame_whole_and_the_collectors_kernel_reassembles_it() {
    let (frame, received, stats) = jumbo("ovf", "fragment");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].frame, frame, "byte-identical after reassembly");
    assert_eq!(stats["capture"]["truncated"], 0);
}

#[test]
fn segment_mode_cuts_a_udp_super_frame_into_ip_fragments_that_fit_one_gre_packet_each() {
    let (frame, received, stats) = jumbo("ovs", "segment");
    assert!(received.len() >= 4, "{} frames", received.len());
    assert_eq!(stats["capture"]["segmented"], 1);
    let original_ip = Ipv4HeaderSlice::from_slice(&frame[14..]).unwrap();
    let mut reassembled = vec![0u8; 8 + PAYLOAD];
    let mut covered = 0;
    for (i, r) in received.iter().enumerate() {
        assert!(r.frame.len() <= MAX_FRAME, "fragment {i} is {} bytes", r.frame.len());
        assert_eq!(r.frame[..14], frame[..14], "Ethernet header kept");
        let ip = Ipv4HeaderSlice::from_slice(&r.frame[14..]).unwrap();
        assert_eq!((ip.source(), ip.destination()), (original_ip.source(), original_ip.destination()));
        assert_eq!(ip.more_fragments(), i + 1 < received.len());
        let offset = usize::from(ip.fragments_offset().value()) * 8;
        let data = &r.frame[14 + usize::from(ip.ihl()) * 4..14 + usize::from(ip.total_len())];
        assert_eq!(offset, covered, "fragments are contiguous and in order");
        reassembled[offset..offset + data.len()].copy_from_slice(data);
        covered += data.len();
    }
    assert_eq!(covered, 8 + PAYLOAD);
    assert_eq!(reassembled[8..], frame[14 + 20 + 8..], "the UDP payload survives");
    assert_eq!(reassembled[..6], frame[34..40], "UDP ports and length");
}
