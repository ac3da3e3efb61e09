//! End-to-end tests of `bpc-sim receive` and `replay` inside network
//! namespaces created per test (loopback of a private netns, so parallel
//! tests never see each other's GRE).

use std::process::{Command, Output};
use std::time::Duration;

use bpc_netns::{Netns, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_bpc-sim");

/// A private namespace for one test: its loopback carries only that test's GRE.
fn netns(tag: &str) -> Netns {
    Netns::new("sim", tag)
}

/// `bpc-sim receive` on 127.0.0.1 with `flags` (split at spaces) and one
/// `--expect` per entry of `expects`; killed on drop.
fn receive(ns: &Netns, flags: &str, expects: &[&str]) -> Proc {
    receive_on(ns, "127.0.0.1", flags, expects)
}

fn receive_on(ns: &Netns, listen: &str, flags: &str, expects: &[&str]) -> Proc {
    let mut c = ns.command(BIN);
    c.args(["receive", "--listen", listen, "--quiet"]).args(flags.split_whitespace());
    for e in expects {
        c.args(["--expect", e]);
    }
    let child = Proc::spawn_capturing(c);
    // Let the receiver open its socket before anything is sent.
    std::thread::sleep(Duration::from_millis(400));
    child
}

/// The receiver's output for what one `replay` with `replay_flags` sends
/// (the receiver ends by its own `--count`/`--duration`).
fn receive_replay(ns: &Netns, flags: &str, expects: &[&str], replay_flags: &str) -> Output {
    let r = receive(ns, flags, expects);
    replay(ns, replay_flags);
    finished(r)
}

/// Waits for a receiver run with `--count`/`--duration` to end by itself.
fn finished(mut receiver: Proc) -> Output {
    receiver.wait_output(Duration::from_secs(30))
}

/// `bpc-sim replay --to TO` with `flags` (split at spaces), which must succeed.
fn replay_to(ns: &Netns, to: &str, flags: &str) {
    let out = ns.command(BIN).args(["replay", "--to", to]).args(flags.split_whitespace()).output().unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn replay(ns: &Netns, flags: &str) {
    replay_to(ns, "127.0.0.1", flags);
}

/// Replays a file of `testdata/pcaps` (its path may hold spaces).
fn replay_pcap(ns: &Netns, name: &str, flags: &str) {
    let out = ns
        .command(BIN)
        .args(["replay", "--to", "127.0.0.1", &pcap(name)])
        .args(flags.split_whitespace())
        .output()
        .unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn pcap(name: &str) -> String {
    format!("{}/../testdata/pcaps/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn replayed_pcaps_are_written_byte_identical_and_tshark_reads_them() {
    let ns = netns("rt");
    let dir = tempfile::tempdir().unwrap();
    for name in ["http.pcap", "dns.pcap", "tcp-handshake.pcap", "ipv6.pcap", "vlan.pcap"] {
        let out_path = dir.path().join(name);
        let out_s = out_path.to_str().unwrap();
        let src = bpc_sim::replay::read_frames(&pcap(name)).unwrap();
        let n = src.len().to_string();
        let r = receive(&ns, &format!("--count {n} --duration 10 -o json --write {out_s}"), &[]);
        replay_pcap(&ns, name, "--key 0x1234abcd");
        let out = finished(r);
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
    let ns = netns("mg");
    // 1000 numbers: 2 skipped, one pair swapped, 2 sent twice -> 1000 datagrams.
    let out = receive_replay(
        &ns,
        "--count 1000 --duration 10 -o json",
        &["key=0x10 packets=1000 loss=2 reorder=1 dup=2"],
        "--synthetic --count 1000 --key 0x10 --mangle skip=5,skip=700,swap=10,dup=3,dup=900",
    );
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
    let typed: bpc_receiver::receiver::Report = serde_json::from_value(report).unwrap();
    assert_eq!(typed.totals.lost, 2);
    assert!(out.status.success(), "expect should pass: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn failing_expectation_exits_1_and_names_it() {
    let ns = netns("ex");
    let key = bpc_wire::WorkloadKey::from_workload("shop", "deployment", "checkout").to_string();
    let skip_one = format!("--synthetic --count 51 --key {key} --mangle skip=7");
    let holds = ["workload=shop/checkout packets>=50", "key=0x10 loss=0"];
    let out = receive_replay(&ns, "--count 50 --duration 10", &holds, &skip_one);
    assert_eq!(
        out.status.code(),
        Some(0),
        "workload expectation holds; key 0x10 has no packets but loss=0 holds"
    );
    let out = receive_replay(&ns, "--count 50 --duration 10", &["workload=shop/checkout loss=0"], &skip_one);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workload=shop/checkout loss=0: loss=1"), "{err}");
}

#[test]
fn netis_profile_streams_report_directions_and_no_loss_measurement() {
    let ns = netns("nt");
    let netis = "--synthetic --count 100 --key 77 --profile netis";
    let out = receive_replay(&ns, "--count 100 --duration 10 -o json", &[], netis);
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
    let ns = netns("ng");
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.json");
    std::fs::write(
        &map,
        r#"[{"ip":"198.18.1.2","namespace":"shop","kind":"Deployment","workload":"checkout","key":"0x00000005","pod":"checkout-1","node":"n1","attached":true}]"#,
    )
    .unwrap();
    let out = dir.path().join("out.pcapng");
    let out_s = out.to_str().unwrap();
    let r = receive(&ns, &format!("--count 8 --duration 10 --write {out_s} --map {}", map.display()), &[]);
    replay_pcap(&ns, "http.pcap", "--key 5");
    replay_pcap(&ns, "dns.pcap", "--key 6");
    let text = String::from_utf8(finished(r).stdout).unwrap();
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
    let ns = netns("ro");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rot.pcap");
    let out_s = out.to_str().unwrap();
    let flags = format!("--count 2500 --duration 10 --write {out_s} --rotate-mb 1");
    let out = receive_replay(&ns, &flags, &[], "--synthetic --count 2500 --size 1000 --pps 50000");
    assert!(out.status.success());
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
    let ns = netns("rs");
    // A second local address: packets to it leave from it, a second "pod".
    ns.exec(&["ip", "addr", "add", "198.18.102.1/32", "dev", "lo"]);
    let r = receive_on(&ns, "0.0.0.0", "--count 300 --duration 10 -o json", &[]);
    // Pod 1 sends, then goes away; pod 2 takes over; then pod 2's agent restarts (numbers from 0 again).
    replay(&ns, "--synthetic --count 100 --key 0x20");
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..2 {
        replay_to(&ns, "198.18.102.1", "--synthetic --count 100 --key 0x20");
    }
    let out = finished(r);
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

#[test]
fn replay_sends_every_format_over_ipv4_and_ipv6_and_receive_counts_each_with_loss_where_it_has_sequences() {
    let ns = netns("en");
    for (listen, to) in [("127.0.0.1", "127.0.0.1"), ("::1", "::1")] {
        for (encap, profile, key, lost) in [
            ("gre", "standard", "0x773f9626", Some(1)),
            ("vxlan", "vxlan", "0x003f9626", None),
            ("erspan-ii", "erspan-ii", "0x00000226", Some(1)),
            ("erspan-iii", "erspan-iii", "0x00000226", Some(1)),
        ] {
            let expect = "workload=shop/checkout packets=99";
            let r = receive_on(&ns, listen, "--count 99 --duration 10 -o json", &[expect]);
            let flags = format!("--synthetic --count 100 --key 0x773f9626 --encap {encap} --mangle skip=5");
            replay_to(&ns, to, &flags);
            let out = finished(r);
            let ctx = format!("{encap} to {to}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "expectation by workload name holds: {ctx}");
            let report = json(&out);
            let s = &report["streams"][0];
            assert_eq!((s["profile"].as_str(), s["key"].as_str()), (Some(profile), Some(key)), "{ctx}");
            assert_eq!(s["packets"], 99, "{ctx}");
            match lost {
                Some(n) => assert_eq!(s["lost"], n, "skip=5 is one lost packet: {ctx}"),
                None => assert!(
                    report["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("VXLAN")),
                    "the report says VXLAN loss cannot be measured: {ctx}"
                ),
            }
        }
    }
}
