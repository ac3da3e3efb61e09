//! The pod's last moments: what the agent forwards around SIGTERM. Needs
//! root, iproute2 and tcpdump.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;

/// A pod whose agent (with `agent_args`) and tcpdump capture UDP to the
/// pod's port 7777, and the collector receiving the agent's stream.
struct Scene {
    t: Topology,
    collector: Collector,
    tcpdump: Tcpdump,
    agent: Agent,
    /// Where the client sends to.
    target: SocketAddr,
}

fn scene(tag: &str, agent_args: &[&str]) -> Scene {
    let t = Topology::new(tag);
    let collector = Collector::start(&t.collector);
    let filter = "udp port 7777";
    let tcpdump = Tcpdump::start(&t.pod, &t.pod_if, filter);
    let agent = t.start_agent(filter, agent_args, &[]);
    Scene { t, collector, tcpdump, agent, target: pod_addr(7777) }
}

#[test]
fn packets_sent_just_before_sigterm_are_forwarded_before_the_agent_exits() {
    let Scene { t, collector, tcpdump, agent, target } = scene("lp", &[]);
    udp_send(&t.client, target, 50, 200, Duration::ZERO);
    // At once: the last frames are still in the ring block being filled.
    let stderr = agent.stop();
    std::thread::sleep(Duration::from_millis(200));
    let reference = tcpdump.finish();
    let received = collector.finish();
    assert_eq!(reference.len(), 50, "tcpdump saw the burst");
    assert_eq!(received.len(), reference.len(), "every frame before SIGTERM reached the collector: {stderr}");
}

#[test]
fn with_linger_the_agent_keeps_capturing_after_sigterm_while_the_pod_has_traffic_then_stops_when_quiet() {
    let Scene { t, collector, tcpdump, mut agent, target } = scene("lg", &["--linger", "5s"]);
    udp_send(&t.client, target, 10, 200, Duration::ZERO);
    let sent = Instant::now();
    agent.proc.signal(libc::SIGTERM);
    // The app's shutdown traffic, after the signal.
    std::thread::sleep(Duration::from_millis(300));
    udp_send(&t.client, target, 10, 200, Duration::from_millis(20));
    let status = agent.proc.wait_timeout(Duration::from_secs(8));
    let took = sent.elapsed();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", agent.proc.stderr());
    // Quiet for 1 s after the last packet (at ~0.5 s): well before the 5 s linger.
    assert!(took < Duration::from_secs(3), "stopped after {took:?}, not when the pod went quiet");
    assert!(took > Duration::from_millis(1400), "stopped after {took:?}, before the pod went quiet");
    let reference = tcpdump.finish();
    let received = collector.finish();
    assert_eq!(reference.len(), 20);
    assert_eq!(received.len(), 20, "the frames after SIGTERM were forwarded too");
}
