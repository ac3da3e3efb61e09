//! `--write -`, `--count`, `--duration` and `--stdin-control`: the pcapng the
//! agent writes to stdout holds exactly the frames tcpdump saw beside it, and
//! every way of ending leaves exit 0 and a complete file.

mod support;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bpc_agent::capture::{CaptureGeometry, LARGEST_STANDARD_FRAME};
use pcap_file::pcapng::{Block, PcapNgReader};
use support::*;

const PORT: u16 = 7777;
const FILTER: &str = "udp port 7777";

/// What a pcapng file holds: the packets, and the last statistics block's
/// (received, delivered) counters.
#[derive(Debug, Default)]
struct Pcapng {
    interfaces: usize,
    frames: Vec<Vec<u8>>,
    /// Per frame, its length on the wire.
    wire_lens: Vec<u32>,
    last_stats: Option<(u64, u64)>,
}

fn read_pcapng(path: &Path) -> Pcapng {
    use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption as O;
    let mut reader = PcapNgReader::new(File::open(path).unwrap()).expect("a pcapng section header");
    let mut out = Pcapng::default();
    while let Some(block) = reader.next_block() {
        match block.expect("every block parses") {
            Block::InterfaceDescription(_) => out.interfaces += 1,
            Block::EnhancedPacket(p) => {
                out.wire_lens.push(p.original_len);
                out.frames.push(p.data.into_owned());
            }
            Block::InterfaceStatistics(s) => {
                let (mut recv, mut deliv) = (0, 0);
                for o in s.options {
                    match o {
                        O::IsbIfRecv(n) => recv = n,
                        O::IsbUsrDeliv(n) => deliv = n,
                        _ => {}
                    }
                }
                out.last_stats = Some((recv, deliv));
            }
            _ => {}
        }
    }
    out
}

struct Run {
    agent: Agent,
    stdout: tempfile::NamedTempFile,
}

fn start(t: &Topology, extra: &[&str], stdin: Stdio) -> Run {
    start_filtered(t, FILTER, extra, stdin)
}

fn start_filtered(t: &Topology, filter: &str, extra: &[&str], stdin: Stdio) -> Run {
    let stdout = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = t.pod.command(AGENT);
    cmd.args(["--write", "-", "--interface", &t.pod_if, "--filter", filter])
        .args(["--metrics-addr", "127.0.0.1:9469"])
        .args(extra)
        .env("RUST_LOG", "info");
    let proc = Proc::spawn_with(cmd, stdin, stdout.reopen().unwrap());
    Run { agent: Agent::wait_ready(proc, &t.pod, 9469), stdout }
}

fn target() -> SocketAddr {
    format!("{POD_IP}:{PORT}").parse().unwrap()
}

fn exit_within(agent: &mut Agent, timeout: Duration) -> i32 {
    let status = agent.proc.wait_timeout(timeout);
    let stderr = agent.proc.stderr();
    status.and_then(|s| s.code()).unwrap_or_else(|| panic!("agent still running after {timeout:?}: {stderr}"))
}

#[test]
fn write_stdout_holds_exactly_what_tcpdump_saw_and_sigterm_flushes_it() {
    let t = Topology::new("wst");
    let dump = Tcpdump::start(&t.pod, &t.pod_if, FILTER);
    let run = start(&t, &[], Stdio::null());
    udp_send(&t.client, target(), 200, 700, Duration::from_micros(500));
    wait_for("tcpdump to see 200 frames", Duration::from_secs(5), || dump.frames().len() == 200);
    wait_for("the agent to count 200 frames", Duration::from_secs(5), || {
        t.pod.stats(9469)["capture"]["packets"] == 200
    });
    // /stats is served in --write mode, and healthy with no collector.
    assert_eq!(t.pod.http_get(9469, "/healthz").0, 200);
    run.agent.stop();
    let reference = dump.finish();
    let got = read_pcapng(run.stdout.path());
    assert_eq!(got.interfaces, 1);
    assert_eq!(got.frames.len(), reference.len(), "packet count");
    let bytes = |f: &[Vec<u8>]| f.iter().map(Vec::len).sum::<usize>();
    assert_eq!(bytes(&got.frames), bytes(&reference), "bytes");
    assert!(got.frames == reference, "the frames differ from tcpdump's");
    assert_eq!(got.last_stats, Some((200, 200)), "final statistics block");
}

#[test]
fn super_frames_arrive_whole_from_their_own_ring_and_each_direction_keeps_tcpdumps_order() {
    let t = Topology::new("wsf");
    let server: SocketAddr = format!("{POD_IP}:7070").parse().unwrap();
    let filter = "tcp port 7070";
    tcp_server(&t.pod, server, 300_000);
    let dump = Tcpdump::start(&t.pod, &t.pod_if, filter);
    let run = start_filtered(&t, filter, &[], Stdio::null());
    assert_eq!(tcp_requests(&t.client, server, 20), 20 * 300_000);
    let seen = || dump.frames().len() as u64;
    wait_for("the agent to count what tcpdump saw", Duration::from_secs(5), || {
        t.pod.stats(9469)["capture"]["packets"].as_u64() == Some(seen())
    });
    run.agent.stop();
    let mut reference = dump.finish();
    let mut got = read_pcapng(run.stdout.path());
    // The test proves something only if the veth handed over super-frames,
    // too long for the frame ring's blocks.
    let split = CaptureGeometry::new(24 << 20, 1518, LARGEST_STANDARD_FRAME).unwrap().split();
    let supers = got.frames.iter().filter(|f| f.len() > split).count();
    assert!(supers >= 20, "{supers} frames above {split} bytes: no super-frames to prove anything with");
    for (i, (f, wire)) in got.frames.iter().zip(&got.wire_lens).enumerate() {
        assert_eq!(f.len(), *wire as usize, "frame {i} arrived cut");
    }
    // Within one direction of the connection, the order tcpdump saw: that is
    // what a merge of the two rings could get wrong (a tail segment ahead of
    // the super-frame before it). Across directions, two frames captured on
    // two CPUs within microseconds may take either order in any capture.
    let direction = |f: &Vec<u8>| f.get(26..30).zip(f.get(34..36)).map(|(ip, port)| [ip, port].concat());
    let in_order = |frames: &[Vec<u8>], d: &Option<Vec<u8>>| -> Vec<Vec<u8>> {
        frames.iter().filter(|f| &direction(f) == d).cloned().collect()
    };
    let directions: std::collections::BTreeSet<_> = reference.iter().map(direction).collect();
    assert!(
        directions.len() > 20,
        "20 connections, each two directions (the server's shared): {}",
        directions.len()
    );
    for d in &directions {
        assert!(
            in_order(&got.frames, d) == in_order(&reference, d),
            "frames of one direction out of tcpdump's order"
        );
    }
    got.frames.sort();
    reference.sort();
    assert_eq!(got.frames.len(), reference.len(), "packet count");
    assert!(got.frames == reference, "the frames differ from tcpdump's");
}

#[test]
fn count_ends_the_capture_with_exit_0_after_exactly_n_packets() {
    let t = Topology::new("wcn");
    let dump = Tcpdump::start(&t.pod, &t.pod_if, FILTER);
    let mut run = start(&t, &["--count", "25"], Stdio::null());
    udp_send(&t.client, target(), 60, 200, Duration::from_millis(1));
    assert_eq!(exit_within(&mut run.agent, Duration::from_secs(5)), 0, "{}", run.agent.proc.stderr());
    let reference = dump.finish();
    let got = read_pcapng(run.stdout.path());
    assert_eq!(got.frames.len(), 25);
    assert!(got.frames[..] == reference[..25], "the first 25 frames differ from tcpdump's");
}

#[test]
fn duration_ends_the_capture_with_exit_0_on_time() {
    let t = Topology::new("wdu");
    let started = Instant::now();
    let mut run = start(&t, &["--duration", "1500ms"], Stdio::null());
    udp_send(&t.client, target(), 10, 100, Duration::from_millis(10));
    assert_eq!(exit_within(&mut run.agent, Duration::from_secs(5)), 0, "{}", run.agent.proc.stderr());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(4), "took {took:?}");
    let got = read_pcapng(run.stdout.path());
    assert_eq!(got.frames.len(), 10);
    assert_eq!(got.last_stats, Some((10, 10)));
}

#[test]
fn stdin_control_starts_on_a_byte_and_stops_when_stdin_closes() {
    let t = Topology::new("wsc");
    let stdout = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = t.pod.command(AGENT);
    cmd.args(["--write", "-", "--interface", &t.pod_if, "--filter", FILTER, "--stdin-control"])
        .args(["--metrics-addr", "127.0.0.1:9469"])
        .env("RUST_LOG", "info");
    let mut proc = Proc::spawn_with(cmd, Stdio::piped(), stdout.reopen().unwrap());
    // Before the start byte: nothing written, nothing listening, still running.
    std::thread::sleep(Duration::from_millis(300));
    proc.assert_running();
    assert_eq!(std::fs::metadata(stdout.path()).unwrap().len(), 0, "output before the start byte");
    let mut stdin = proc.child.stdin.take().unwrap();
    stdin.write_all(b"\n").unwrap();
    let mut agent = Agent::wait_ready(proc, &t.pod, 9469);
    udp_send(&t.client, target(), 30, 100, Duration::from_millis(1));
    wait_for("30 frames", Duration::from_secs(5), || t.pod.stats(9469)["capture"]["packets"] == 30);
    drop(stdin);
    assert_eq!(exit_within(&mut agent, Duration::from_secs(3)), 0, "{}", agent.proc.stderr());
    assert_eq!(read_pcapng(stdout.path()).frames.len(), 30);
}

#[test]
fn write_and_collector_together_is_a_configuration_error() {
    let out = std::process::Command::new(AGENT)
        .args(["--write", "-", "--collector", "198.18.0.2", "--interface", "lo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exclude each other"));
}
