//! The capture ring (issue 12): a size the kernel refuses is a clear
//! configuration error, and the default ring rides out scheduling stalls
//! (the agent frozen with SIGSTOP) without a kernel drop. Needs root,
//! iproute2 and curl.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bpc_agent::capture::{
    BLOCK_TIMEOUT_MS, Capture, CaptureGeometry, LARGEST_STANDARD_FRAME, Ring, RingGeometry, RingKind,
};
use support::*;

#[test]
fn a_ring_the_kernel_refuses_exits_2_naming_buffer_and_the_fix() {
    let lo = bpc_agent::iface::choose(Some("lo")).unwrap();
    let program = bpc_agent::filter::compile(&bpc_agent::filter::compose(
        None,
        &[],
        bpc_agent::filter::OwnTraffic::Gre,
        9469,
    ))
    .unwrap();
    // The kernel wants page-aligned blocks: this shape is refused with EINVAL.
    let odd = RingGeometry { block_size: 100_000, block_count: 8 };
    let e = Ring::open(&lo, &program, odd, RingKind::Blocks, 1, BLOCK_TIMEOUT_MS).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("--buffer (BPC_BUFFER)") && msg.contains("smaller --buffer"), "{msg}");
    assert!(msg.contains("Invalid argument"), "the kernel's reason is kept: {msg}");
    // The same call with a geometry of ours works, and so do both rings of the smallest --buffer.
    let good = CaptureGeometry::new(2 << 20, 1518, LARGEST_STANDARD_FRAME).unwrap();
    assert_eq!(
        Ring::open(&lo, &program, good.frames, RingKind::Blocks, 2, BLOCK_TIMEOUT_MS).unwrap().geometry(),
        good.frames
    );
    assert_eq!(Capture::open(&lo, "udp port 9", good, 2).unwrap().geometry(), good);
}

/// Sends UDP datagrams of `len` bytes at `pps` for `seconds` from a thread in `ns`.
fn paced_udp(ns: &Netns, to: SocketAddr, pps: u32, seconds: f64, len: usize) -> std::thread::JoinHandle<u64> {
    let netns = ns.name.clone();
    std::thread::spawn(move || {
        enter(&netns);
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let payload = vec![0x5a; len];
        let start = Instant::now();
        let per_ms = pps / 1000;
        let mut sent = 0u64;
        let total_ms = (seconds * 1000.0) as u32;
        for ms in 0..total_ms {
            let due = start + Duration::from_millis(u64::from(ms));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            for _ in 0..per_ms {
                if s.send_to(&payload, to).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
}

/// One freeze test at a time: two agents draining their backlog at once on
/// two CPUs would measure the machine, not the ring.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Freezes the agent three times for `freeze` under 40 kpps; returns
/// (datagrams sent, /stats after).
fn freeze_under_load(tag: &str, buffer: Option<&str>, freeze: Duration) -> (u64, serde_json::Value) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Topology::new(tag);
    let _collector = Collector::start(&t.collector);
    let mut extra = vec![];
    if let Some(b) = buffer {
        extra.extend(["--buffer", b]);
    }
    let agent = t.start_agent("udp port 9", &extra, &[]);
    let target = pod_addr(9);
    let traffic = paced_udp(&t.client, target, 40_000, 2.5, 64);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        agent.proc.signal(libc::SIGSTOP);
        std::thread::sleep(freeze);
        agent.proc.signal(libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(350));
    }
    let sent = traffic.join().unwrap();
    // Kernel counters are read once a second.
    std::thread::sleep(Duration::from_millis(1300));
    let stats = t.pod.stats(agent.port);
    agent.stop();
    (sent, stats)
}

#[test]
fn the_default_ring_rides_out_three_150_ms_freezes_at_40_kpps_without_a_kernel_drop() {
    let (sent, stats) = freeze_under_load("fz", None, Duration::from_millis(150));
    let c = &stats["capture"];
    eprintln!(
        "default ring, 3 x 150 ms freezes: {sent} sent, {} captured, {} kernel drops",
        c["packets"], c["kernel_drops"]
    );
    assert_eq!(c["kernel_drops"], 0, "{stats}");
    assert_eq!(c["packets"], sent, "every datagram captured: {stats}");
    assert_eq!(stats["collectors"][0]["sent_packets"], sent, "and forwarded: {stats}");
    let errors = &stats["collectors"][0]["errors"];
    assert_eq!((errors["no_buffer"].as_u64(), errors["other"].as_u64()), (Some(0), Some(0)), "{stats}");
}

#[test]
fn a_ring_too_small_for_the_freeze_drops_what_the_geometry_predicts() {
    // 2 MiB: 32 frame blocks, 31 ms at 40 kpps, against 150 ms freezes.
    let (sent, stats) = freeze_under_load("fs", Some("2"), Duration::from_millis(150));
    let drops = stats["capture"]["kernel_drops"].as_u64().unwrap();
    let ridden =
        CaptureGeometry::new(2 << 20, 1518, LARGEST_STANDARD_FRAME).unwrap().stall_ridden_out(40_000.0, 64);
    let expected = 3.0 * (0.150 - ridden.as_secs_f64()) * 40_000.0;
    eprintln!("2 MiB ring, 3 x 150 ms freezes: {drops} kernel drops of {sent}, predicted {expected:.0}");
    assert!(
        (drops as f64) > 0.7 * expected && (drops as f64) < 1.3 * expected + 1000.0,
        "{drops} drops of {sent}, the geometry predicts about {expected:.0}"
    );
}
