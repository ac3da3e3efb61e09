//! End-to-end tests of `bpc-sim receive` and `replay` inside network
//! namespaces created per test (loopback of a private netns, so parallel
//! tests never see each other's GRE).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bpc-sim");

/// A private network namespace, removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("bpcsim-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
        let ns = Netns(name);
        assert!(ns.cmd("ip", &["link", "set", "lo", "up"]).status().unwrap().success());
        ns
    }
    fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, prog]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Kills the child on drop.
struct Guard(Option<Child>);

impl Guard {
    fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn receive(ns: &Netns, args: &[&str]) -> Guard {
    let mut a = vec!["receive", "--listen", "127.0.0.1", "--quiet"];
    a.extend_from_slice(args);
    let child = ns.cmd(BIN, &a).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Let the receiver open its socket before anything is sent.
    std::thread::sleep(Duration::from_millis(400));
    Guard(Some(child))
}

fn replay(ns: &Netns, args: &[&str]) {
    let mut a = vec!["replay", "--to", "127.0.0.1"];
    a.extend_from_slice(args);
    let out = ns.cmd(BIN, &a).output().unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn pcap(name: &str) -> String {
    format!("{}/../testdata/pcaps/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn replayed_pcaps_are_written_byte_identical_and_tshark_reads_them() {
    let ns = Netns::new("rt");
    let dir = tempfile::tempdir().unwrap();
    for name in ["http.pcap", "dns.pcap", "tcp-handshake.pcap", "ipv6.pcap", "vlan.pcap"] {
        let out_path = dir.path().join(name);
        let out_s = out_path.to_str().unwrap();
        let src = bpc_sim::replay::read_frames(&pcap(name)).unwrap();
        let n = src.len().to_string();
        let r = receive(&ns, &["--count", &n, "--duration", "10", "-o", "json", "--write", out_s]);
        replay(&ns, &[&pcap(name), "--key", "0x1234abcd"]);
        let out = r.wait();
        assert!(out.status.success());
        let report = json(&out);
        assert_eq!(report["totals"]["packets"], src.len() as u64);
        assert_eq!(report["streams"][0]["lost"], 0);
        assert_eq!(bpc_sim::replay::read_frames(out_s).unwrap(), src, "{name}: frames differ");
        let t = Command::new("tshark").args(["-r", out_s]).output().unwrap();
        assert!(t.status.success(), "tshark failed on {name}");
        assert_eq!(
            String::from_utf8_lossy(&t.stdout).lines().count(),
            src.len(),
            "{name}: tshark frame count"
        );
    }
}

#[test]
fn mangled_sequences_are_counted_exactly_and_expect_passes() {
    let ns = Netns::new("mg");
    let r = receive(
        &ns,
        &[
            "--count",
            "1000",
            "--duration",
            "10",
            "-o",
            "json",
            "--expect",
            "key=0x10 packets=1000 loss=2 reorder=1 dup=2",
        ],
    );
    // 1000 numbers: 2 skipped, one pair swapped, 2 sent twice -> 1000 datagrams.
    replay(
        &ns,
        &[
            "--synthetic",
            "--count",
            "1000",
            "--key",
            "0x10",
            "--mangle",
            "skip=5,skip=700,swap=10,dup=3,dup=900",
        ],
    );
    let out = r.wait();
    let report = json(&out);
    let s = &report["streams"][0];
    assert_eq!(s["key"], "0x00000010");
    assert_eq!(s["profile"], "standard");
    assert_eq!(s["source"], "127.0.0.1");
    assert_eq!((s["packets"].as_u64(), s["lost"].as_u64()), (Some(1000), Some(2)));
    assert_eq!(
        (s["reordered"].as_u64(), s["duplicated"].as_u64(), s["restarts"].as_u64()),
        (Some(1), Some(2), Some(0))
    );
    assert!(s["first_seen"].as_f64().unwrap() > 1.7e9);
    assert_eq!(report["latency"]["samples"], 1000);
    assert_eq!(report["top_flows"][0]["destination"], "198.18.0.2:9999");
    // The JSON schema round-trips through the library type.
    let typed: bpc_sim::receiver::Report = serde_json::from_value(report).unwrap();
    assert_eq!(typed.totals.lost, 2);
    assert!(out.status.success(), "expect should pass: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn failing_expectation_exits_1_and_names_it() {
    let ns = Netns::new("ex");
    let r = receive(
        &ns,
        &[
            "--count",
            "50",
            "--duration",
            "10",
            "--expect",
            "workload=shop/checkout packets>=50",
            "--expect",
            "key=0x10 loss=0",
        ],
    );
    let key = bpc_wire::WorkloadKey::from_workload("shop", "deployment", "checkout").to_string();
    replay(&ns, &["--synthetic", "--count", "51", "--key", &key, "--mangle", "skip=7"]);
    let out = r.wait();
    assert_eq!(
        out.status.code(),
        Some(0),
        "workload expectation holds; key 0x10 has no packets but loss=0 holds"
    );
    let r = receive(&ns, &["--count", "50", "--duration", "10", "--expect", "workload=shop/checkout loss=0"]);
    replay(&ns, &["--synthetic", "--count", "51", "--key", &key, "--mangle", "skip=7"]);
    let out = r.wait();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workload=shop/checkout loss=0: loss=1"), "{err}");
}

#[test]
fn netis_profile_streams_report_directions_and_no_loss_measurement() {
    let ns = Netns::new("nt");
    let r = receive(&ns, &["--count", "100", "--duration", "10", "-o", "json"]);
    replay(&ns, &["--synthetic", "--count", "100", "--key", "77", "--profile", "netis"]);
    let out = r.wait();
    let report = json(&out);
    let s = &report["streams"][0];
    assert_eq!(s["profile"], "netis");
    assert_eq!(s["key"], "0x0000004d");
    assert_eq!(s["directions"]["outbound"], 50);
    assert_eq!(s["directions"]["inbound"], 50);
    assert!(report["notes"][0].as_str().unwrap().contains("cannot be measured"));
}

#[test]
fn pcapng_output_has_one_interface_per_key_named_from_the_map() {
    let ns = Netns::new("ng");
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.json");
    std::fs::write(
        &map,
        r#"[{"ip":"198.18.1.2","namespace":"shop","kind":"Deployment","workload":"checkout","key":"0x00000005","pod":"checkout-1","node":"n1","attached":true}]"#,
    )
    .unwrap();
    let out = dir.path().join("out.pcapng");
    let out_s = out.to_str().unwrap();
    let r =
        receive(&ns, &["--count", "8", "--duration", "10", "--write", out_s, "--map", map.to_str().unwrap()]);
    replay(&ns, &[&pcap("http.pcap"), "--key", "5"]);
    replay(&ns, &[&pcap("dns.pcap"), "--key", "6"]);
    let text = String::from_utf8(r.wait().stdout).unwrap();
    assert!(text.contains("shop/deployment/checkout"), "{text}");
    let t = Command::new("tshark")
        .args(["-r", out_s, "-T", "fields", "-e", "frame.interface_name"])
        .output()
        .unwrap();
    assert!(t.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&t.stdout).lines().map(str::to_string).collect();
    assert_eq!(names.iter().filter(|n| *n == "shop/deployment/checkout").count(), 6);
    assert_eq!(names.iter().filter(|n| *n == "0x00000006").count(), 2);
}

#[test]
fn rotate_mb_splits_output_into_readable_files_holding_every_frame() {
    let ns = Netns::new("ro");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rot.pcap");
    let out_s = out.to_str().unwrap();
    let r = receive(&ns, &["--count", "2500", "--duration", "10", "--write", out_s, "--rotate-mb", "1"]);
    replay(&ns, &["--synthetic", "--count", "2500", "--size", "1000", "--pps", "50000"]);
    assert!(r.wait().status.success());
    let mut total = 0;
    for p in [out_s.to_string(), format!("{out_s}.1"), format!("{out_s}.2")] {
        let frames = bpc_sim::replay::read_frames(&p).unwrap();
        assert!(frames.iter().all(|f| f.len() == 1000));
        total += frames.len();
    }
    assert!(!std::path::Path::new(&format!("{out_s}.3")).exists());
    assert_eq!(total, 2500);
}

#[test]
fn a_new_source_after_the_old_went_silent_is_a_restarted_stream_and_check_reads_the_saved_report() {
    let ns = Netns::new("rs");
    // A second local address: packets to it leave from it, a second "pod".
    assert!(ns.cmd("ip", &["addr", "add", "198.18.102.1/32", "dev", "lo"]).status().unwrap().success());
    let r = Guard(Some(
        ns.cmd(
            BIN,
            &[
                "receive",
                "--listen",
                "0.0.0.0",
                "--quiet",
                "--count",
                "300",
                "--duration",
                "10",
                "-o",
                "json",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    std::thread::sleep(Duration::from_millis(400));
    // Pod 1 sends, then goes away; pod 2 takes over; then pod 2's agent restarts (numbers from 0 again).
    replay(&ns, &["--synthetic", "--count", "100", "--key", "0x20"]);
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..2 {
        let out = ns
            .cmd(BIN, &["replay", "--to", "198.18.102.1", "--synthetic", "--count", "100", "--key", "0x20"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = r.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    let k = &report["keys"][0];
    assert_eq!(k["key"], "0x00000020");
    let counts = ["streams", "packets", "lost", "sequence_restarts", "restarted_streams", "restarts"]
        .map(|f| k[f].as_u64().unwrap());
    assert_eq!(counts, [2, 300, 0, 1, 1, 2], "{k}");

    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("report.json");
    std::fs::write(&saved, &out.stdout).unwrap();
    let check = |exps: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["check", saved.to_str().unwrap()]);
        for e in exps {
            c.args(["--expect", e]);
        }
        c.output().unwrap()
    };
    let ok = check(&[
        "key=0x20 packets=300 loss=0 streams=2 restarted_streams=1 seq_restarts=1 restarts=2",
        "key=0x20 source=198.18.102.1 packets=200 seq_restarts=1",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    let bad = check(&["key=0x20 source=127.0.0.1 packets=101", "key=0x20 restarts=0"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("FAIL - key=0x20 source=127.0.0.1 packets=101: packets=100"), "{text}");
    assert!(text.contains("FAIL - key=0x20 restarts=0: restarts=2"), "{text}");
    let missing = Command::new(BIN)
        .args(["check", "/nonexistent/report.json", "--expect", "key=1 packets=0"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "an unreadable report is an error, not a failed check");
}
