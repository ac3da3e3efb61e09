//! Bulk TCP through a "pod" network namespace: the agent must deliver every
//! TCP payload byte tcpdump saw, although the veth hands libpcap GSO/GRO
//! super-frames of up to 64 KB.
//!
//! Topology (all namespaces private to one test run, removed on drop):
//!
//! ```text
//!   peer ns  198.19.200.2 ==veth== 198.19.200.1  pod ns (agent + tcpdump capture here)
//!                                  198.19.201.1 ==veth== 198.19.201.2  collector ns (raw GRE socket)
//! ```
//!
//! Needs root, iproute2, tcpdump, iperf3 and tshark. The figures per mode
//! (payload delivered / seen) are a benchmark: `bench/oversize.sh`.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bpc_netns::tshark;
use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use support::*;

const POD_PEER_IP: &str = "198.19.200.1";
const PEER_IP: &str = "198.19.200.2";
const POD_COLLECTOR_IP: &str = "198.19.201.1";
const COLLECTOR_IP: &str = "198.19.201.2";
/// The largest frame a 1500-byte MTU veth puts on the wire without offload.
const WIRE_FRAME: usize = 1514;

/// TCP payload bytes per direction and frame statistics of a set of frames.
#[derive(Debug, Default, PartialEq)]
struct TcpBytes {
    /// From the pod to the peer.
    outbound: u64,
    /// From the peer to the pod.
    inbound: u64,
    frames: usize,
    super_frames: usize,
}

fn tcp_bytes<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> TcpBytes {
    let pod: [u8; 4] = POD_PEER_IP.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let mut t = TcpBytes::default();
    for frame in frames {
        // Lax: a truncated frame (--oversize truncate) still counts what it carries.
        let Ok(p) = LaxSlicedPacket::from_ethernet(frame) else { continue };
        let (Some(LaxNetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (&p.net, &p.transport) else {
            continue;
        };
        t.frames += 1;
        if frame.len() > WIRE_FRAME {
            t.super_frames += 1;
        }
        let n = tcp.payload().len() as u64;
        if ip.header().source() == pod {
            t.outbound += n;
        } else {
            t.inbound += n;
        }
    }
    t
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut reader = PcapReader::new(File::open(path).expect("open pcap")).expect("pcap header");
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        frames.push(packet.expect("pcap packet").data.into_owned());
    }
    frames
}

fn write_pcap<'a>(path: &Path, frames: impl IntoIterator<Item = &'a Vec<u8>>) {
    let mut writer = PcapWriter::new(File::create(path).expect("create pcap")).expect("pcap header");
    for (i, f) in frames.into_iter().enumerate() {
        let ts = Duration::from_micros(i as u64);
        writer.write_packet(&PcapPacket::new(ts, f.len() as u32, f)).expect("write pcap");
    }
}

/// Lines tshark prints for the packets matching `filter` (empty: none match).
fn tshark_matches(pcap: &Path, filter: &str, check_checksums: bool) -> String {
    let checksums: &[&str] = if check_checksums {
        &["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    } else {
        &[]
    };
    tshark(pcap, &[&["-Y", filter], checksums].concat())
}

/// The segments tshark flags "previous segment not captured" in `pcap`: (source
/// address, source port, absolute sequence number), so two captures of the
/// same connection can be compared.
fn lost_segments(pcap: &Path) -> BTreeSet<(String, u16, u32)> {
    let fields = ["-T", "fields", "-e", "ip.src", "-e", "tcp.srcport", "-e", "tcp.seq_raw"];
    tshark(pcap, &[&["-Y", "tcp.analysis.lost_segment"][..], &fields].concat())
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.to_owned(), f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// What one bulk transfer through the pod produced.
struct Run {
    dir: tempfile::TempDir,
    /// Frames tcpdump -s 0 saw in the pod.
    seen: Vec<Vec<u8>>,
    /// Inner frames the collector decapsulated.
    delivered: Vec<Vec<u8>>,
    tcpdump_stderr: String,
}

impl Run {
    fn pod_pcap(&self) -> PathBuf {
        self.dir.path().join("pod.pcap")
    }
}

/// Runs a bidirectional iperf3 transfer (`mbps` each way for `seconds`) through
/// a pod netns whose agent runs with `--oversize <mode>`.
fn bulk_transfer(tag: &str, mode: &str, mbps: u32, seconds: u32) -> Run {
    let id = format!("{tag}{}", std::process::id());
    let pod = Netns::new("ov-pod", tag);
    let peer = Netns::new("ov-peer", tag);
    let col = Netns::new("ov-col", tag);
    let (pod_if, peer_if) = (format!("ov{id}p"), format!("ov{id}q"));
    let (pod_cif, col_if) = (format!("ov{id}c"), format!("ov{id}k"));
    veth(&pod_if, &pod, POD_PEER_IP, &peer_if, &peer, PEER_IP);
    veth(&pod_cif, &pod, POD_COLLECTOR_IP, &col_if, &col, COLLECTOR_IP);

    let dir = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(&col);

    let mut tcpdump = Proc::spawn({
        let mut c = pod.command("tcpdump");
        // Immediate mode: without it the last second of packets sits in an
        // unretired ring block when tcpdump is stopped, and is never written.
        c.args(["-i", &pod_if, "-s", "0", "-U", "--immediate-mode", "-n", "-B", "32768", "-w"])
            .arg(dir.path().join("pod.pcap"))
            .arg("tcp");
        c
    });
    wait_for("tcpdump to listen", Duration::from_secs(5), || tcpdump.stderr().contains("listening on"));

    let mut agent = Proc::spawn({
        let mut c = pod.command(AGENT);
        c.args(["--collector", COLLECTOR_IP, "--interface", &pod_if, "--filter", "tcp or icmp"])
            .args(["--oversize", mode, "--metrics-addr", "127.0.0.1:9469"])
            .env("RUST_LOG", "info");
        c
    });
    // The agent captures once a ping through the pod comes out at the collector.
    wait_for("the agent to deliver a ping", Duration::from_secs(10), || {
        agent.assert_running();
        let _ = pod.command("ping").args(["-c1", "-W1", PEER_IP]).output();
        collector.count() > 0
    });

    let _server = Proc::spawn({
        let mut c = peer.command("iperf3");
        c.args(["-s", "-1", "-B", PEER_IP, "-p", "5201"]);
        c
    });
    wait_for("iperf3 to listen", Duration::from_secs(5), || {
        let out = peer.command("ss").args(["-Hltn", "sport = :5201"]).output().unwrap();
        !out.stdout.is_empty()
    });
    let client = pod
        .command("iperf3")
        .args(["-c", PEER_IP, "-p", "5201", "--bidir", "-b", &format!("{mbps}M")])
        .args(["-t", &seconds.to_string()])
        .output()
        .expect("run iperf3 client");
    assert!(client.status.success(), "iperf3: {}", String::from_utf8_lossy(&client.stdout));

    // Let the last frames through, then stop capture and agent cleanly.
    std::thread::sleep(Duration::from_millis(500));
    tcpdump.signal(libc::SIGINT);
    tcpdump.wait_timeout(Duration::from_secs(5)).expect("tcpdump stops on SIGINT");
    agent.signal(libc::SIGTERM);
    let status = agent.wait_timeout(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let received = collector.finish();
    assert!(
        status.is_some_and(|s| s.success()),
        "bpc-agent did not stop cleanly ({status:?}): {}",
        agent.stderr()
    );
    assert!(
        received.iter().all(|r| r.protocol == bpc_wire::PROTO_TEB),
        "GRE carrying something other than Ethernet"
    );
    let delivered = received.into_iter().map(|r| r.frame).collect();

    let seen = read_pcap(&dir.path().join("pod.pcap"));
    let tcpdump_stderr = tcpdump.stderr();
    Run { dir, seen, delivered, tcpdump_stderr }
}

fn assert_tcpdump_dropped_nothing(run: &Run) {
    assert!(
        run.tcpdump_stderr.lines().any(|l| l.trim() == "0 packets dropped by kernel"),
        "tcpdump dropped packets, the comparison would be void: {}",
        run.tcpdump_stderr
    );
}

#[test]
fn segment_mode_delivers_every_tcp_payload_byte_of_super_frames_in_both_directions() {
    let run = bulk_transfer("s", "segment", 40, 2);
    assert_tcpdump_dropped_nothing(&run);
    let seen = tcp_bytes(run.seen.iter().map(Vec::as_slice));
    let delivered = tcp_bytes(run.delivered.iter().map(Vec::as_slice));
    // The test proves something only if the veth really handed over super-frames.
    assert!(seen.super_frames > 0, "no frame above {WIRE_FRAME} bytes captured: {seen:?}");
    assert!(seen.outbound > 1_000_000 && seen.inbound > 1_000_000, "{seen:?}");
    assert_eq!(
        (delivered.outbound, delivered.inbound),
        (seen.outbound, seen.inbound),
        "TCP payload bytes delivered vs seen by tcpdump; seen {seen:?}, delivered {delivered:?}"
    );
    assert_eq!(delivered.super_frames, 0, "segment mode sent a frame above {WIRE_FRAME} bytes");
    assert!(delivered.frames > seen.frames, "super-frames were not split: {delivered:?} {seen:?}");

    // Order, against the baseline: a gap tshark sees in what we delivered must be
    // one it sees in tcpdump's capture too (the pod's own stack can see a
    // segment ahead of its predecessor when the sender moves between CPUs).
    let out = run.dir.path().join("out.pcap");
    write_pcap(&out, &run.delivered);
    let ours = lost_segments(&out);
    let baseline = lost_segments(&run.pod_pcap());
    let only_ours: Vec<_> = ours.difference(&baseline).collect();
    assert!(
        only_ours.is_empty(),
        "tshark sees segments out of order in what the agent delivered but not in tcpdump's capture: \
         {only_ours:?}\n{}",
        tshark_matches(&out, "tcp.analysis.lost_segment or tcp.analysis.out_of_order", false)
    );

    // Frames the agent sent as captured keep the partial checksum the veth left
    // in them (offload); the segments the segmenter built must be fully valid.
    let captured: HashSet<&[u8]> = run.seen.iter().map(Vec::as_slice).collect();
    let built: Vec<&Vec<u8>> = run.delivered.iter().filter(|f| !captured.contains(f.as_slice())).collect();
    assert!(built.len() > seen.super_frames, "expected segments built from super-frames");
    let segments = run.dir.path().join("segments.pcap");
    write_pcap(&segments, built);
    let bad = tshark_matches(&segments, "tcp.checksum.status==\"Bad\" or ip.checksum.status==\"Bad\"", true);
    assert!(bad.is_empty(), "tshark finds bad checksums in built segments:\n{bad}");
    assert!(run.pod_pcap().exists());
}
