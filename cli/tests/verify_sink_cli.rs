//! The `kubectl-bpc` binary: `sink` receives a GRE stream on loopback and
//! reports it (needs root / CAP_NET_RAW, as CI runs); API-less failures exit 2.

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

#[test]
fn sink_binary_reports_stream_packets_and_sequence_loss() {
    let key = WorkloadKey::from_workload("ci", "deployment", &format!("sink-{}", std::process::id()));
    let child = Command::new(BIN)
        .args(["sink", "--listen", "127.0.0.1", "--duration", "2", "--interval", "60", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    std::thread::sleep(Duration::from_millis(500));
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).unwrap();
    let dst = "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into();
    let mut pkt = [0u8; 12 + 50];
    // 0..=199 without 100 and 101: 198 packets, 2 lost.
    for seq in (0..200).filter(|s| *s != 100 && *s != 101) {
        let n = GreProfile::Standard.write_header(&mut pkt, key.0, seq, Direction::Inbound).unwrap();
        socket.send_to(&pkt[..n + 50], &dst).unwrap();
    }
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "sink failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: Value = serde_json::from_str(stdout.lines().last().expect("a final report")).unwrap();
    let stream = last
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key.to_string())
        .unwrap_or_else(|| panic!("no stream {key} in {last}"));
    assert_eq!(stream["source"], "127.0.0.1");
    assert_eq!(stream["profile"], "standard");
    assert_eq!(stream["packets"], 198);
    assert_eq!(stream["bytes"], 198 * 50);
    assert_eq!(stream["lost"], 2);
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
