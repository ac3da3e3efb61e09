//! True time in every file we write: for the same frames, the capture time
//! each of our writers records, as tshark (the user's view) reads it back,
//! against tcpdump's beside the agent.
//!
//! One pod, two agents on the same link: one writes pcapng itself
//! (`--write FILE`), one streams GRE to the collector namespace, where two
//! receivers (the library `kubectl bpc sink` and `bpc-sim receive` run)
//! write classic pcap and pcapng. The agent's file is then merged as
//! `kubectl bpc capture -w` merges the pods' streams. A writer whose
//! timestamps are in another unit than its file declares is off by hours or
//! millennia, far outside the tolerance.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bpc_receiver::receive::{ReceiveArgs, Received, run_receive};
use clap::Parser;
use kubectl_bpc::merge::{Demux, Merger};
use support::*;

const PORT: u16 = 7788;
const FILTER: &str = "udp port 7788";
const FRAMES: usize = 100;
/// The receiver stamps a frame when its GRE packet arrives, a hop after the
/// capture; 20 ms covers that and scheduling on a busy machine, while a
/// wrong unit is off by far more (µs read as ns: the first 1970 hours).
const TOLERANCE_NS: i128 = 20_000_000;
const DAY_NS: i128 = 86_400 * 1_000_000_000;

/// `bpc-sim receive`'s flags, parsed as the binaries parse them.
#[derive(Parser)]
struct ReceiveCmd {
    #[command(flatten)]
    args: ReceiveArgs,
}

/// A receiver writing `path`, run in the collector namespace until it has
/// `FRAMES` packets.
fn receiver(t: &Topology, path: &Path) -> std::thread::JoinHandle<Result<Received, bpc_receiver::Error>> {
    let (count, path) = (FRAMES.to_string(), path.to_str().expect("a UTF-8 temporary path"));
    let flags = [
        "receive",
        "--listen",
        COLLECTOR_IP,
        "--quiet",
        "--count",
        &count,
        "--duration",
        "20",
        "--write",
        path,
    ];
    let args = ReceiveCmd::parse_from(flags).args;
    t.collector.spawn(move || run_receive(&args, &AtomicBool::new(false), &mut |_| {}))
}

/// The payload of datagram `i`: unique, so every file's frames can be
/// matched with tcpdump's whatever their order.
fn payload(i: usize) -> Vec<u8> {
    let mut p = format!("bpc-timestamps-{i:04}-").into_bytes();
    p.resize(200, b'.');
    p
}

/// Sends the datagrams from the client, 5 ms apart, so their times differ
/// by more than the resolution of a classic pcap.
fn send(t: &Topology) {
    let to: SocketAddr = format!("{POD_IP}:{PORT}").parse().unwrap();
    let netns = t.client.name.clone();
    std::thread::spawn(move || {
        enter(&netns);
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp bind");
        for i in 0..FRAMES {
            s.send_to(&payload(i), to).expect("send");
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .expect("sender thread");
}

/// Per UDP payload (hex), the capture time tshark reads from `file`, in
/// nanoseconds since the epoch.
fn tshark_times(file: &Path) -> HashMap<String, i128> {
    bpc_netns::tshark(file, &["-T", "fields", "-e", "frame.time_epoch", "-e", "udp.payload", "-Y", "udp"])
        .lines()
        .map(|line| {
            let (time, payload) = line.split_once('\t').unwrap_or_else(|| panic!("tshark line {line:?}"));
            (payload.replace(':', ""), epoch_ns(time))
        })
        .collect()
}

/// tshark's `frame.time_epoch` ("1764000000.123456789") in nanoseconds, exactly.
fn epoch_ns(s: &str) -> i128 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<9}");
    secs.parse::<i128>().unwrap_or_else(|e| panic!("{s}: {e}")) * 1_000_000_000
        + frac[..9].parse::<i128>().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts that `file` holds every datagram at tcpdump's time within the
/// tolerance and dated today; returns the largest difference.
fn check(writer: &str, file: &Path, reference: &HashMap<String, i128>, now: i128) -> i128 {
    let got = tshark_times(file);
    let mut worst = 0;
    for i in 0..FRAMES {
        let key = hex(&payload(i));
        let want = reference[&key];
        let have = *got
            .get(&key)
            .unwrap_or_else(|| panic!("{writer}: datagram {i} missing from {}", file.display()));
        assert!(
            (have - now).abs() < DAY_NS,
            "{writer}: datagram {i} dated {have} ns since the epoch, not today ({now})"
        );
        let delta = (have - want).abs();
        assert!(delta <= TOLERANCE_NS, "{writer}: datagram {i} {delta} ns from tcpdump's time");
        worst = worst.max(delta);
    }
    eprintln!("{writer}: {} frames, max |Δt| vs tcpdump {:.3} µs", got.len(), worst as f64 / 1e3);
    worst
}

#[test]
fn every_writer_dates_each_frame_as_tcpdump_does_within_20_ms_and_today() {
    let t = Topology::new("tst");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);

    // Two raw GRE sockets in the collector namespace, each gets every packet.
    let pcap = receiver(&t, &path("receiver.pcap"));
    let pcapng = receiver(&t, &path("receiver.pcapng"));
    wait_for("both receivers' GRE sockets", Duration::from_secs(5), || {
        let out = t.collector.command("ss").args(["-H", "-w", "-a"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count() >= 2
    });

    let dump = Tcpdump::start_with(&t.pod, &t.pod_if, FILTER, &["--time-stamp-precision", "nano"]);
    let agent_file = path("agent.pcapng");
    let mut cmd = t.pod.command(AGENT);
    cmd.arg("--write").arg(&agent_file).args([
        "--interface",
        &t.pod_if,
        "--filter",
        FILTER,
        "--metrics-addr",
        "127.0.0.1:9469",
    ]);
    let writer = Agent::wait_ready(Proc::spawn(cmd), &t.pod, 9469);
    let mut cmd = t.pod.command(AGENT);
    cmd.args(["--collector", COLLECTOR_IP, "--interface", &t.pod_if, "--filter", FILTER])
        .args(["--metrics-addr", "127.0.0.1:9470"]);
    let streamer = Agent::wait_ready(Proc::spawn(cmd), &t.pod, 9470);

    send(&t);
    wait_for("tcpdump and both agents to see every datagram", Duration::from_secs(5), || {
        dump.frames().len() == FRAMES
            && t.pod.stats(9469)["capture"]["packets"] == FRAMES
            && t.pod.stats(9470)["capture"]["packets"] == FRAMES
    });
    for (name, r) in [("receiver.pcap", pcap), ("receiver.pcapng", pcapng)] {
        let received = r.join().expect("receiver thread").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(received.write_error.is_none(), "{name}: {:?}", received.write_error);
        assert_eq!(received.report.totals.packets, FRAMES as u64, "{name}: packets received");
    }
    // tcpdump wrote each frame at once (-U): its file is whole now, and
    // finish() removes it.
    let reference = tshark_times(&dump.pcap);
    assert_eq!(reference.len(), FRAMES, "tcpdump saw every datagram once");
    writer.stop();
    streamer.stop();
    dump.finish();

    // `capture -w`: the agent's stream through the CLI's demultiplexer and merge.
    let merged = path("capture-merge.pcapng");
    let mut demux = Demux::default();
    let items = demux.push(&std::fs::read(&agent_file).unwrap()).unwrap();
    assert_eq!(demux.pending(), 0, "the agent's file ends with a whole block");
    let mut merger =
        Merger::new(std::fs::File::create(&merged).unwrap(), &["shop/web-1".to_owned()], 262_144).unwrap();
    merger.push(0, items);
    merger.finish(0);
    merger.drain().unwrap();
    drop(merger.into_inner());

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
    for (writer, file) in [
        ("receiver pcap", "receiver.pcap"),
        ("receiver pcapng", "receiver.pcapng"),
        ("agent --write pcapng", "agent.pcapng"),
        ("capture -w merge pcapng", "capture-merge.pcapng"),
    ] {
        check(writer, &path(file), &reference, now);
    }
}
