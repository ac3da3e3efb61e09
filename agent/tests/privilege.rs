//! Least privilege: the agent works as an unprivileged user with CAP_NET_RAW
//! alone, and without it stops with exit code 2 and a message that says how
//! to grant it. Needs root (to drop to uid 65534 with setpriv), iproute2, curl.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use support::*;

/// `ip netns exec <pod> setpriv <drop to nobody, keep caps> bpc-agent <args>`.
fn as_nobody(pod: &Netns, caps: &str, args: &[&str]) -> Command {
    let mut cmd = pod.command("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps", caps, "--ambient-caps", caps, "--"])
        .arg(AGENT)
        .args(args)
        .env("RUST_LOG", "info");
    cmd
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

#[test]
fn runs_as_nobody_with_only_cap_net_raw_and_streams_the_pods_traffic() {
    let (t, collector, server) = Topology::with_tcp_server("lp", 200);
    let args = ["--collector", COLLECTOR_IP, "--interface", &t.pod_if, "--filter", "tcp port 8080"];
    let mut cmd = as_nobody(&t.pod, "-all,+net_raw", &args);
    cmd.args(["--metrics-addr", "127.0.0.1:9469"]);
    let agent = Agent::wait_ready(Proc::spawn(cmd), &t.pod, 9469);

    // ip netns exec and setpriv exec in place: the child's pid is the agent's.
    let pid = agent.proc.child.id();
    assert_eq!(status_field(pid, "Uid").split_whitespace().next(), Some("65534"));
    assert_eq!(status_field(pid, "Gid").split_whitespace().next(), Some("65534"));
    assert_eq!(status_field(pid, "CapEff"), "0000000000002000", "exactly CAP_NET_RAW (bit 13) is effective");

    assert_eq!(tcp_requests(&t.client, server, 2), 400);
    wait_for("two exchanges at the collector", Duration::from_secs(5), || collector.count() >= 2 * 6);
    let stats = t.pod.stats(agent.port);
    agent.stop();
    let received = collector.finish();
    assert!(received.len() >= 12);
    assert_eq!(stats["health"]["ok"], true);
    assert_eq!(stats["collectors"][0]["sent_packets"], stats["capture"]["packets"]);
}

#[test]
fn without_cap_net_raw_it_exits_2_naming_the_capability_and_the_pod_spec_fix() {
    let pod = Netns::new("pod", "nocap");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();

    let mut cmd = as_nobody(&pod, "-all", &["--collector", "198.18.2.2", "--interface", "lo"]);
    cmd.args(["--metrics-addr", "127.0.0.1:9469"]).env("BPC_TERMINATION_LOG", &log);
    let out = cmd.output().expect("run agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in ["CAP_NET_RAW", "capabilities: {add: [\"NET_RAW\"]}", "kubectl bpc attach --capabilities"] {
        assert!(stderr.contains(needle), "message lacks {needle:?}: {stderr}");
    }
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(message.starts_with("bpc-agent: cannot open the AF_PACKET capture socket"), "{message}");
    assert!(message.contains("CAP_NET_RAW"), "{message}");
}

/// The image's way: no ambient capabilities (Kubernetes gives none to a
/// non-root user), the binary carries `cap_net_raw=+p` and raises it itself.
#[test]
fn a_binary_with_file_capability_plus_p_runs_as_nobody_without_ambient_capabilities() {
    let t = Topology::new("fcap");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.path().join("bpc-agent");
    std::fs::copy(AGENT, &binary).unwrap();
    sh(&["setcap", "cap_net_raw=+p", binary.to_str().unwrap()]);

    let collector = Collector::start(&t.collector);
    let mut cmd = t.pod.command("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "-all"])
        .args(["--ambient-caps", "-all", "--"])
        .arg(&binary)
        .args(["--collector", COLLECTOR_IP, "--interface", &t.pod_if, "--filter", "icmp"])
        .args(["--metrics-addr", "127.0.0.1:9469"]);
    let agent = Agent::wait_ready(Proc::spawn(cmd), &t.pod, 9469);
    let pid = agent.proc.child.id();
    assert_eq!(status_field(pid, "Uid").split_whitespace().next(), Some("65534"));
    assert_eq!(status_field(pid, "CapEff"), "0000000000002000", "raised from permitted by the agent");

    let out = t.client.command("ping").args(["-c", "2", "-i", "0.1", POD_IP]).output().unwrap();
    assert!(out.status.success());
    wait_for("4 ICMP frames at the collector", Duration::from_secs(5), || collector.count() >= 4);
    agent.stop();
}
