//! The `kubectl-bpc` binary: `sink` is the receiver (bpc-receiver) in-process
//! (needs root / CAP_NET_RAW, as CI runs); API-less failures exit 2.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bpc_wire::{Direction, GreProfile, WorkloadKey};
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-bpc");

/// Kills the child if the test fails before it exits.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `seqs` of `key` over raw GRE to 127.0.0.1, each carrying a 50-byte frame.
fn send_gre(key: u32, seqs: impl Iterator<Item = u32>) {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).unwrap();
    let dst = "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into();
    let mut pkt = [0u8; 12 + 50];
    for seq in seqs {
        let n = GreProfile::Standard.write_header(&mut pkt, key, seq, Direction::Inbound).unwrap();
        socket.send_to(&pkt[..n + 50], &dst).unwrap();
    }
}

fn sink(args: &[&str]) -> KillOnDrop {
    let child = Command::new(BIN)
        .arg("sink")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    KillOnDrop(Some(child))
}

#[test]
fn sink_binary_reports_stream_packets_and_sequence_loss_in_the_sim_report_schema() {
    let key = WorkloadKey::from_workload("ci", "deployment", &format!("sink-{}", std::process::id()));
    let mut guard = sink(&["--listen", "127.0.0.1", "--duration", "2", "--quiet", "-o", "json"]);
    std::thread::sleep(Duration::from_millis(500));
    // 0..=199 without 100 and 101: 198 packets, 2 lost.
    send_gre(key.0, (0..200).filter(|s| *s != 100 && *s != 101));
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "sink failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key.to_string())
        .unwrap_or_else(|| panic!("no stream {key} in {report}"));
    assert_eq!(stream["source"], "127.0.0.1");
    assert_eq!(stream["profile"], "standard");
    assert_eq!(stream["packets"], 198);
    assert_eq!(stream["bytes"], 198 * 50);
    assert_eq!(stream["lost"], 2);
    let per_key = report["keys"].as_array().unwrap().iter().find(|k| k["key"] == key.to_string()).unwrap();
    assert_eq!((per_key["streams"].as_u64(), per_key["lost"].as_u64()), (Some(1), Some(2)));
}

#[test]
fn sink_takes_the_receivers_expect_and_exits_1_naming_the_failed_check() {
    let key = WorkloadKey::from_workload("ci", "deployment", &format!("sink-exp-{}", std::process::id()));
    let pass = format!("key={key} packets=20 loss=0");
    let fail = format!("key={key} packets=21");
    let mut guard =
        sink(&["--listen", "127.0.0.1", "--duration", "2", "--quiet", "--expect", &pass, "--expect", &fail]);
    std::thread::sleep(Duration::from_millis(500));
    send_gre(key.0, 0..20);
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("expectation failed: {fail}: packets=20")), "{err}");
    assert!(!err.contains(&pass), "the holding expectation is not reported as failed: {err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&key.to_string()) && text.contains("total:"), "text report expected: {text}");
}

#[test]
fn sink_with_a_bad_output_format_exits_2_without_receiving() {
    let out = Command::new(BIN).args(["sink", "--listen", "127.0.0.1", "-o", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}

#[test]
fn status_without_a_usable_kubeconfig_exits_2_with_the_reason() {
    let out =
        Command::new(BIN).args(["status"]).env("KUBECONFIG", "/nonexistent/bpc-kubeconfig").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/bpc-kubeconfig"), "{err}");
}

#[test]
fn bad_output_format_is_a_usage_error_exit_2() {
    let out = Command::new(BIN).args(["map", "-o", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sink_map_watch_without_a_usable_kubeconfig_exits_2_before_receiving() {
    let out = Command::new(BIN)
        .args(["sink", "--map-watch", "--listen", "127.0.0.1", "--duration", "1"])
        .env("KUBECONFIG", "/nonexistent/bpc-kubeconfig")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/bpc-kubeconfig"), "{err}");
}

#[test]
fn sink_paths_writes_the_path_files_and_rejects_a_zero_interval() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("paths");
    let prefix = prefix.to_str().unwrap();
    let out = Command::new(BIN)
        .args(["sink", "--listen", "127.0.0.1", "--duration", "0.5", "--quiet", "--paths", prefix])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{prefix}.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], bpc_receiver::paths::PATHS_SCHEMA);
    assert!(std::fs::read_to_string(format!("{prefix}.dot")).unwrap().starts_with("digraph"));
    let out = Command::new(BIN)
        .args(["sink", "--listen", "127.0.0.1", "--paths", prefix, "--paths-interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--paths-interval"));
}
