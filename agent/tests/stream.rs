//! End-to-end: the agent in a "pod" network namespace streams what it
//! captures to a raw GRE socket in a "collector" namespace; tcpdump in the
//! pod records the reference. Needs root, iproute2, tcpdump and curl.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use bpc_wire::{Direction, NetisKey, SequenceTracker, WorkloadKey};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use support::*;

/// Counts frames per content, to compare captures regardless of order.
fn multiset(frames: &[Vec<u8>]) -> HashMap<&[u8], usize> {
    let mut m = HashMap::new();
    for f in frames {
        *m.entry(f.as_slice()).or_insert(0) += 1;
    }
    m
}

/// The frames sent by `mac` and the others, each in their original order.
fn by_direction(frames: &[Vec<u8>], mac: [u8; 6]) -> (Vec<&[u8]>, Vec<&[u8]>) {
    let (out, inb): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = frames.iter().partition(|f| f[6..12] == mac);
    (out.into_iter().map(Vec::as_slice).collect(), inb.into_iter().map(Vec::as_slice).collect())
}

fn ip_proto_and_ports(frame: &[u8]) -> (u8, Option<(u16, u16)>) {
    let p = SlicedPacket::from_ethernet(frame).expect("Ethernet frame");
    let proto = match &p.net {
        Some(NetSlice::Ipv4(ip)) => ip.header().protocol().0,
        Some(NetSlice::Ipv6(ip)) => ip.header().next_header().0,
        _ => 0,
    };
    let ports = match &p.transport {
        Some(TransportSlice::Tcp(t)) => Some((t.source_port(), t.destination_port())),
        Some(TransportSlice::Udp(u)) => Some((u.source_port(), u.destination_port())),
        _ => None,
    };
    (proto, ports)
}

#[test]
fn every_filtered_frame_arrives_byte_identical_in_order_with_key_and_consecutive_sequence_numbers() {
    let t = Topology::new("e2e");
    t.default_route_via_client();
    let server = pod_addr(8080);
    // Responses below one MSS: no GSO super-frames, so tcpdump and the agent see the same frames.
    tcp_server(&t.pod, server, 1000);
    let collector = Collector::start(&t.collector);
    let filter = "tcp port 8080";
    let tcpdump = Tcpdump::start(&t.pod, &t.pod_if, filter);
    // No --interface: the agent must pick the default-route interface, as eth0 in a pod.
    let agent = Agent::start(
        &t.pod,
        &["--collector", COLLECTOR_IP, "--filter", filter],
        &[("BPC_WORKLOAD", "shop/deployment/web")],
    );

    // Traffic outside the filter, before, between and after the requests.
    let noise = pod_addr(9999);
    udp_send(&t.client, noise, 10, 100, Duration::ZERO);
    assert_eq!(tcp_requests(&t.client, server, 10), 10 * 1000);
    udp_send(&t.client, noise, 10, 100, Duration::ZERO);
    assert_eq!(tcp_requests(&t.client, server, 10), 10 * 1000);
    let _ = t.client.command("ping").args(["-c", "2", "-i", "0.1", POD_IP]).output();

    wait_for("the collector to receive what tcpdump saw", Duration::from_secs(10), || {
        let seen = tcpdump.frames().len();
        seen >= 20 * 6 && collector.count() >= seen
    });
    std::thread::sleep(Duration::from_millis(300)); // anything extra would arrive now
    let stats = t.pod.stats(agent.port);
    let stderr = agent.stop();
    let reference = tcpdump.finish();
    let received = collector.finish();

    assert_eq!(received.len(), reference.len(), "frames received vs tcpdump's reference");
    let frames: Vec<Vec<u8>> = received.iter().map(|r| r.frame.clone()).collect();
    assert!(
        multiset(&frames) == multiset(&reference),
        "received frames differ from tcpdump's (byte for byte)"
    );
    // Each direction is in capture order. (Across directions the two capture
    // sockets may legitimately interleave frames that were in flight at the same time.)
    let pod_mac = t.pod.mac(&t.pod_if);
    assert_eq!(by_direction(&frames, pod_mac), by_direction(&reference, pod_mac), "order within a direction");
    for f in &frames {
        assert_eq!(ip_proto_and_ports(f).0, 6, "only TCP matches the filter");
        let (sp, dp) = ip_proto_and_ports(f).1.unwrap();
        assert!(sp == 8080 || dp == 8080, "frame outside the filter arrived: ports {sp} -> {dp}");
    }

    let key = WorkloadKey::from_workload("shop", "deployment", "web").get();
    let mut tracker = SequenceTracker::new();
    for (i, r) in received.iter().enumerate() {
        assert_eq!((r.header_len, r.protocol, r.key), (12, bpc_wire::PROTO_TEB, Some(key)));
        assert_eq!(r.sequence, Some(i as u32), "sequence numbers count up from 0 without gaps");
        tracker.observe(r.sequence.unwrap());
    }
    let counters = tracker.counters();
    assert_eq!((counters.lost, counters.reordered, counters.duplicated, counters.restarts), (0, 0, 0, 0));

    let n = received.len() as u64;
    assert_eq!(stats["interface"], t.pod_if.as_str(), "default-route interface");
    assert_eq!(stats["workload"], "shop/deployment/web");
    assert_eq!(stats["key"], format!("{key:#010x}"));
    assert_eq!(stats["capture"]["packets"], n);
    assert_eq!(stats["collectors"][0]["sent_packets"], n);
    assert_eq!(stats["collectors"][0]["address"], COLLECTOR_IP);
    assert_eq!(stats["health"]["ok"], true);
    let effective = stats["filter"].as_str().unwrap();
    assert!(
        effective.starts_with("(tcp port 8080) and not (ip proto 47 and dst host 198.18.2.2)"),
        "{effective}"
    );
    assert!(
        stderr.contains("stopped after") && stderr.contains(&format!("captured {n} packets")),
        "{stderr}"
    );
}

/// In a real pod the GRE stream leaves through the captured interface itself
/// (eth0), as does the metrics scrape: neither may be captured.
#[test]
fn own_gre_and_metrics_traffic_are_never_captured_even_without_a_filter() {
    let pod = Netns::new("pod", "self");
    let peer = Netns::new("peer", "self");
    let (pod_if, peer_if) = (format!("s{}a", std::process::id()), format!("s{}b", std::process::id()));
    veth(&pod_if, &pod, POD_IP, &peer_if, &peer, CLIENT_IP);
    pod.exec(&["ip", "route", "add", "default", "via", CLIENT_IP]);
    // The peer is the client and the collector at once.
    let collector = Collector::start(&peer);
    let mut cmd = pod.command(AGENT);
    cmd.args(["--collector", CLIENT_IP, "--metrics-addr", "0.0.0.0:9469"]);
    let agent = Agent::wait_ready(Proc::spawn(cmd), &pod, 9469);

    let out = peer.command("ping").args(["-c", "20", "-i", "0.02", POD_IP]).output().unwrap();
    assert!(out.status.success());
    for _ in 0..3 {
        let scrape =
            peer.command("curl").args(["-s", "-m", "2", &format!("http://{POD_IP}:9469/metrics")]).output();
        assert!(scrape.unwrap().stdout.starts_with(b"# HELP"));
    }
    wait_for("40 ICMP echo frames", Duration::from_secs(5), || collector.count() >= 40);
    std::thread::sleep(Duration::from_millis(300));
    let before = pod.stats(9469)["capture"]["packets"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let after = pod.stats(9469)["capture"]["packets"].as_u64().unwrap();
    agent.stop();
    let received = collector.finish();

    let mut echoes = 0;
    for r in &received {
        let (proto, ports) = ip_proto_and_ports(&r.frame);
        assert_ne!(proto, 47, "the agent captured its own GRE");
        assert!(!ports.is_some_and(|(s, d)| s == 9469 || d == 9469), "metrics traffic was captured");
        echoes += usize::from(proto == 1);
    }
    assert_eq!(echoes, 40, "20 echo requests and 20 replies");
    // Sending does not feed capture: with no traffic the count nearly stands
    // still (neighbour discovery aside); a self-capture loop would make it race.
    assert!(after - before < 10, "capture count grew from {before} to {after} without traffic");
}

#[test]
fn collector_outage_is_counted_the_agent_survives_and_the_stream_resumes_with_continuing_sequence() {
    let (t, collector) = Topology::with_collector("out");
    let agent = t.start_agent("udp port 7777", &[], &[]);
    let target = pod_addr(7777);
    let gap = Duration::from_millis(5);

    udp_send(&t.client, target, 20, 64, gap);
    wait_for("20 frames before the outage", Duration::from_secs(5), || collector.count() >= 20);

    // The collector's side goes away: the pod has no route to it any more.
    t.pod.exec(&["ip", "link", "set", &t.pod_col_if, "down"]);
    udp_send(&t.client, target, 20, 64, gap);
    wait_for("20 send errors counted", Duration::from_secs(5), || {
        t.pod.stats(agent.port)["collectors"][0]["errors"]["unreachable"].as_u64() >= Some(20)
    });
    let (code, health) = t.pod.http_get(agent.port, "/healthz");
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("unreachable") && health.contains(COLLECTOR_IP), "{health}");
    let during = t.pod.stats(agent.port);

    t.pod.exec(&["ip", "link", "set", &t.pod_col_if, "up"]);
    wait_for("the route back", Duration::from_secs(5), || {
        let out = t.pod.command("ip").args(["route", "get", COLLECTOR_IP]).output().unwrap();
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&t.pod_col_if)
    });
    // Health is judged over the recent window: the collector is cured once
    // sends have succeeded for 5 s after the last failure, so traffic goes
    // on for longer than that.
    udp_send(&t.client, target, 24, 64, Duration::from_millis(250));
    wait_for("24 frames after the outage", Duration::from_secs(5), || collector.count() >= 44);
    wait_for("health to recover", Duration::from_secs(5), || t.pod.http_get(agent.port, "/healthz").0 == 200);
    let after = t.pod.stats(agent.port);
    agent.stop();
    let received = collector.finish();

    assert_eq!(received.len(), 44);
    let seqs: Vec<u32> = received.iter().map(|r| r.sequence.unwrap()).collect();
    let expected: Vec<u32> = (0..20).chain(40..64).collect();
    assert_eq!(seqs, expected, "one sequence space: the 20 frames lost in the outage leave a gap of 20");
    let mut tracker = SequenceTracker::new();
    seqs.iter().for_each(|&s| {
        tracker.observe(s);
    });
    assert_eq!((tracker.counters().lost, tracker.counters().restarts), (20, 0));
    assert_eq!(during["collectors"][0]["errors"]["unreachable"], 20);
    assert_eq!(after["collectors"][0]["sent_packets"], 44);
    assert_eq!(after["capture"]["packets"], 64);
}

#[test]
fn netis_profile_sends_8_byte_headers_whose_key_carries_each_frames_direction() {
    let (t, collector, server) = Topology::with_tcp_server("nts", 500);
    let agent =
        t.start_agent("tcp port 8080", &[], &[("BPC_GRE_PROFILE", "netis"), ("BPC_KEY", "0x0abcdef")]);
    assert_eq!(tcp_requests(&t.client, server, 3), 1500);
    wait_for("three exchanges", Duration::from_secs(5), || collector.count() >= 3 * 6);
    std::thread::sleep(Duration::from_millis(200));
    let stats = t.pod.stats(agent.port);
    agent.stop();
    let received = collector.finish();

    let pod_mac = t.pod.mac(&t.pod_if);
    let (mut inbound, mut outbound) = (0, 0);
    for r in &received {
        assert_eq!((r.header_len, r.sequence, r.protocol), (8, None, bpc_wire::PROTO_TEB), "netis: K only");
        let key = NetisKey::from_key(r.key.expect("key present"));
        assert_eq!(key.keybit, 0x0abcdef);
        let expected = if r.frame[6..12] == pod_mac { Direction::Outbound } else { Direction::Inbound };
        assert_eq!(key.direction, expected, "direction bits of a frame from {:02x?}", &r.frame[6..12]);
        assert_eq!(Direction::of_frame(&r.frame, &pod_mac), expected);
        match expected {
            Direction::Inbound => inbound += 1,
            _ => outbound += 1,
        }
    }
    // Requests come in, responses go out: both directions occur in every exchange.
    assert!(inbound >= 3 * 3 && outbound >= 3 * 3, "inbound {inbound}, outbound {outbound}");
    assert_eq!(stats["profile"], "netis");
    assert_eq!(stats["key"], "0x00abcdef");
}

#[test]
fn max_pps_drops_and_counts_the_excess_instead_of_queueing_it() {
    let (t, collector) = Topology::with_collector("rate");
    let agent = t.start_agent("udp port 7777", &["--max-pps", "100"], &[]);
    let target = pod_addr(7777);
    let started = std::time::Instant::now();
    udp_send(&t.client, target, 2000, 64, Duration::ZERO);
    let elapsed = started.elapsed().as_secs_f64();
    wait_for("all 2000 frames accounted for", Duration::from_secs(5), || {
        let s = t.pod.stats(agent.port);
        s["capture"]["packets"].as_u64() == Some(2000)
    });
    std::thread::sleep(Duration::from_millis(200));
    let stats = t.pod.stats(agent.port);
    agent.stop();
    let received = collector.finish().len() as u64;

    let limited = stats["capture"]["rate_limited"].as_u64().unwrap();
    assert_eq!(received + limited, 2000, "every frame is either sent or counted as rate-limited");
    // Burst of 10 (100 ms at 100 pps) plus 100 per second of sending.
    let allowed = 10 + (100.0 * (elapsed + 0.1)).ceil() as u64;
    assert!(received <= allowed, "{received} frames passed a 100 pps cap in {elapsed:.2}s");
    assert!(received >= 10, "the burst passes: {received}");
}

#[test]
fn a_dns_collector_is_re_resolved_and_the_new_address_is_used_and_excluded_from_capture() {
    let t = Topology::new("dns");
    t.collector.exec(&["ip", "addr", "add", "198.18.2.3/24", "dev", &t.col_if]);
    // `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts for the agent.
    let hosts_dir = format!("/etc/netns/{}", t.pod.name);
    std::fs::create_dir_all(&hosts_dir).unwrap();
    let hosts = format!("{hosts_dir}/hosts");
    let write_hosts = |ip: &str| {
        // In place (same inode): the bind mount keeps showing this file.
        let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&hosts).unwrap();
        writeln!(f, "127.0.0.1 localhost\n{ip} collector.bpc.test").unwrap();
    };
    write_hosts(COLLECTOR_IP);
    let collector = Collector::start(&t.collector);
    let agent = Agent::start(
        &t.pod,
        &["--collector", "collector.bpc.test", "--interface", &t.pod_if, "--filter", "udp port 7777"],
        &[("BPC_RESOLVE_INTERVAL", "200ms")],
    );
    let target = pod_addr(7777);
    udp_send(&t.client, target, 5, 64, Duration::from_millis(2));
    wait_for("5 frames to the first address", Duration::from_secs(5), || collector.count() >= 5);

    write_hosts("198.18.2.3");
    // The resolver publishes the address; the capture loop applies it (and
    // the new self-exclusion filter) when it next wakes: wait for both.
    wait_for("the new address and filter in /stats", Duration::from_secs(5), || {
        let s = t.pod.stats(agent.port);
        s["collectors"][0]["address"] == "198.18.2.3"
            && s["filter"].as_str().is_some_and(|f| f.contains("dst host 198.18.2.3"))
    });
    let stats = t.pod.stats(agent.port);
    udp_send(&t.client, target, 5, 64, Duration::from_millis(2));
    wait_for("5 frames to the new address", Duration::from_secs(5), || collector.count() >= 10);
    let stderr = agent.stop();
    let received = collector.finish();

    let dsts: Vec<[u8; 4]> = received.iter().map(|r| r.dst).collect();
    assert_eq!(dsts[..5], [[198, 18, 2, 2]; 5]);
    assert_eq!(dsts[5..], [[198, 18, 2, 3]; 5]);
    let seqs: Vec<u32> = received.iter().map(|r| r.sequence.unwrap()).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<u32>>(), "the sequence continues across the change");
    let filter = stats["filter"].as_str().unwrap();
    assert!(filter.contains("dst host 198.18.2.3") && !filter.contains("198.18.2.2"), "{filter}");
    // The endpoint is on loopback (Agent::start): its port is no more
    // excluded after the change than it was at the start.
    assert!(!filter.contains("tcp port"), "the application's port 9469 traffic is captured: {filter}");
    assert!(stderr.contains("collector address changed"), "{stderr}");
}

/// The collector host is up but nothing receives GRE there: its kernel
/// answers "protocol unreachable". Sends succeed locally, yet the agent must
/// say the stream goes nowhere.
#[test]
fn icmp_errors_from_a_collector_host_without_a_gre_receiver_are_counted_and_make_health_fail() {
    let t = Topology::new("icmp");
    let agent = t.start_agent("udp port 7777", &[], &[]);
    let target = pod_addr(7777);
    udp_send(&t.client, target, 20, 64, Duration::from_millis(5));
    wait_for("ICMP errors counted as unreachable", Duration::from_secs(5), || {
        t.pod.stats(agent.port)["collectors"][0]["errors"]["unreachable"].as_u64() > Some(0)
    });
    let (code, health) = t.pod.http_get(agent.port, "/healthz");
    let stats = t.pod.stats(agent.port);
    let stderr = agent.stop();
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("protocol unreachable: no GRE receiver"), "{health}");
    assert!(stats["collectors"][0]["sent_packets"].as_u64() > Some(0), "the agent keeps sending");
    assert!(stderr.contains("collector answers with ICMP errors"), "{stderr}");
}

/// The captured interface going down and up again (a CNI hiccup) must not
/// kill the agent: capture resumes by itself.
#[test]
fn the_capture_interface_going_down_and_up_is_survived_and_capture_resumes() {
    let (t, collector) = Topology::with_collector("flap");
    let agent = t.start_agent("udp port 7777", &[], &[]);
    let target = pod_addr(7777);
    udp_send(&t.client, target, 5, 64, Duration::from_millis(2));
    wait_for("5 frames", Duration::from_secs(5), || collector.count() >= 5);

    t.pod.exec(&["ip", "link", "set", &t.pod_if, "down"]);
    std::thread::sleep(Duration::from_millis(300));
    t.pod.exec(&["ip", "link", "set", &t.pod_if, "up"]);
    let mut agent = agent;
    agent.proc.assert_running();
    wait_for("5 more frames after the flap", Duration::from_secs(10), || {
        agent.proc.assert_running();
        udp_send(&t.client, target, 1, 64, Duration::ZERO);
        collector.count() >= 10
    });
    let stats = t.pod.stats(agent.port);
    agent.stop();
    assert_eq!(stats["health"]["ok"], true, "{stats}");
}
