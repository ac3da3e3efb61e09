//! The HTTP endpoint keeps answering under scanners and slow clients, as any
//! pod of the cluster could be (issue 18), and its private mode. Needs root,
//! iproute2 and curl.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bpc_wire::SequenceTracker;
use support::*;

/// The agent's deadline from accept to the end of the answer.
const DEADLINE: Duration = bpc_agent::http::DEADLINE;

/// Starts the agent with its endpoint on every address of the pod, as attach does.
fn start_public_agent(t: &Topology, filter: &str) -> Agent {
    let mut cmd = t.pod.command(AGENT);
    cmd.args(["--collector", COLLECTOR_IP, "--interface", &t.pod_if, "--filter", filter])
        .args(["--metrics-addr", "0.0.0.0:9469"])
        .env("RUST_LOG", "info");
    Agent::wait_ready(Proc::spawn(cmd), &t.pod, 9469)
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = read_to_string(std::path::Path::new(&format!("/proc/{pid}/status")));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Client threads in a namespace until dropped.
struct Crowd {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Crowd {
    fn new() -> Crowd {
        Crowd { stop: Arc::new(AtomicBool::new(false)), threads: Vec::new() }
    }

    /// A port scanner's connection: opened, left idle, opened again when
    /// the agent closes it.
    fn idle(&mut self, ns: &Netns, addr: SocketAddr, cuts: Arc<Mutex<Vec<Duration>>>) {
        let (netns, stop) = (ns.name.clone(), self.stop.clone());
        self.threads.push(std::thread::spawn(move || {
            enter(&netns);
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { continue };
                let opened = Instant::now();
                s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                let mut buf = [0u8; 256];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) if stop.load(Ordering::Relaxed) => return,
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                }
                cuts.lock().unwrap().push(opened.elapsed());
            }
        }));
    }

    /// A slow client: a request, one byte per second; again when cut.
    fn slow(&mut self, ns: &Netns, addr: SocketAddr, cuts: Arc<Mutex<Vec<Duration>>>) {
        let (netns, stop) = (ns.name.clone(), self.stop.clone());
        self.threads.push(std::thread::spawn(move || {
            enter(&netns);
            let request = b"GET /healthz HTTP/1.1\r\nHost: pod\r\nUser-Agent: slowloris\r\n\r\n";
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { continue };
                let opened = Instant::now();
                s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                let mut next_byte = Instant::now();
                let mut sent = 0;
                let mut buf = [0u8; 256];
                let cut = loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if Instant::now() >= next_byte && sent < request.len() {
                        if s.write_all(&request[sent..sent + 1]).is_err() {
                            break opened.elapsed();
                        }
                        sent += 1;
                        next_byte += Duration::from_secs(1);
                    }
                    match s.read(&mut buf) {
                        Ok(0) => break opened.elapsed(),
                        // The agent's 408 before it closes.
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break opened.elapsed(),
                    }
                };
                cuts.lock().unwrap().push(cut);
            }
        }));
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One GET from a thread in `ns`: (status code, time to the complete answer).
fn timed_get(ns: &Netns, addr: SocketAddr, path: &str) -> (u16, Duration) {
    let (netns, path) = (ns.name.clone(), path.to_owned());
    std::thread::spawn(move || {
        enter(&netns);
        let t = Instant::now();
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
            return (0, t.elapsed());
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: pod\r\n\r\n").as_bytes());
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, t.elapsed())
    })
    .join()
    .expect("probe thread")
}

#[test]
fn healthz_answers_within_a_second_under_50_idle_and_3_slow_clients_while_forwarding_without_loss() {
    let (t, collector) = Topology::with_collector("ep");
    let agent = start_public_agent(&t, "udp port 9");
    let pid = agent.proc.child.id();
    let endpoint = pod_addr(9469);
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = vm_rss_kib(pid);

    // Traffic to forward all along: 5,000 datagrams over about 6 s.
    let target = pod_addr(9);
    let traffic = {
        let client = t.client.name.clone();
        std::thread::spawn(move || {
            enter(&client);
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let payload = [0x5au8; 200];
            let start = Instant::now();
            for i in 0..5000u32 {
                let due = start + Duration::from_micros(1200) * i;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                s.send_to(&payload, target).unwrap();
            }
        })
    };

    let idle_cuts = Arc::new(Mutex::new(Vec::new()));
    let slow_cuts = Arc::new(Mutex::new(Vec::new()));
    let mut crowd = Crowd::new();
    for _ in 0..50 {
        crowd.idle(&t.client, endpoint, idle_cuts.clone());
    }
    for _ in 0..3 {
        crowd.slow(&t.client, endpoint, slow_cuts.clone());
    }
    // Let the crowd connect, so the probes meet a full house.
    std::thread::sleep(Duration::from_millis(500));

    let mut max_rss = idle_rss;
    let mut probes = Vec::new();
    for _ in 0..20 {
        probes.push(timed_get(&t.client, endpoint, "/healthz"));
        max_rss = max_rss.max(vm_rss_kib(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    traffic.join().unwrap();
    drop(crowd);

    for (i, (code, took)) in probes.iter().enumerate() {
        assert_eq!(*code, 200, "probe {i}");
        assert!(*took < Duration::from_secs(1), "probe {i} took {took:?}");
    }
    let slow = slow_cuts.lock().unwrap().clone();
    assert!(slow.len() >= 3, "every slow client was cut at least once: {slow:?}");
    for cut in &slow {
        assert!(
            *cut >= DEADLINE - Duration::from_millis(50) && *cut < DEADLINE + Duration::from_millis(500),
            "a slow client was cut after {cut:?}, the deadline is {DEADLINE:?}"
        );
    }
    let idle = idle_cuts.lock().unwrap().clone();
    assert!(idle.len() >= 50, "idle connections are cut at the deadline too: {}", idle.len());
    assert!(idle.iter().all(|c| *c >= DEADLINE - Duration::from_millis(50)), "{idle:?}");
    assert!(max_rss <= idle_rss + 2048, "RSS grew from {idle_rss} KiB idle to {max_rss} KiB under the crowd");

    wait_for("the collector to receive every datagram", Duration::from_secs(5), || collector.count() >= 5000);
    std::thread::sleep(Duration::from_millis(1200)); // kernel counters are read every second
    let stats = t.pod.stats(agent.port);
    agent.stop();
    let received = collector.finish();
    assert_eq!(received.len(), 5000, "forwarded while the endpoint was under load");
    let mut tracker = SequenceTracker::new();
    for r in &received {
        tracker.observe(r.sequence.unwrap());
    }
    assert_eq!(tracker.counters().lost, 0);
    assert_eq!(stats["capture"]["packets"], 5000);
    assert_eq!(stats["capture"]["kernel_drops"], 0);
    let http = &stats["http"];
    assert!(http["served"].as_u64().unwrap() >= 20, "{http}");
    assert!(http["timeout"].as_u64().unwrap() >= 53, "{http}");
    assert_eq!(http["evicted"], 0, "53 clients stay under the bound of 64: {http}");
}

#[test]
fn more_connections_than_the_bound_evict_the_oldest_and_are_counted_in_metrics() {
    let t = Topology::new("ev");
    let _collector = Collector::start(&t.collector);
    let agent = start_public_agent(&t, "udp port 9");
    let endpoint = pod_addr(9469);
    let client = t.client.name.clone();
    let held = std::thread::spawn(move || {
        enter(&client);
        (0..bpc_agent::http::MAX_CONNECTIONS + 20)
            .map(|_| TcpStream::connect(endpoint).expect("connect"))
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    let (code, took) = timed_get(&t.client, endpoint, "/healthz");
    assert_eq!(code, 200);
    assert!(took < Duration::from_millis(500), "{took:?}");
    // Malformed and oversize requests: a fast 4xx.
    let client = t.client.name.clone();
    let answers = std::thread::spawn(move || {
        enter(&client);
        let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(20_000, b'a');
        [&b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"[..], b"GET /../etc HTTP/9\r\n\r\n", &big]
            .iter()
            .map(|req| {
                let mut s = TcpStream::connect(endpoint).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let _ = s.write_all(req);
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_owned()
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(answers[0], "HTTP/1.1 400 Bad Request");
    assert_eq!(answers[1], "HTTP/1.1 400 Bad Request");
    assert_eq!(answers[2], "HTTP/1.1 431 Request Header Fields Too Large");
    drop(held);
    let (code, metrics) = t.pod.http_get(agent.port, "/metrics");
    assert_eq!(code, 200);
    let value = |outcome: &str| -> u64 {
        let line = format!("bpc_agent_http_connections_total{{outcome=\"{outcome}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse().ok()).unwrap()
    };
    assert!(value("evicted") >= 20, "{metrics}");
    assert_eq!(value("bad_request"), 3, "{metrics}");
    assert!(value("served") >= 2, "{metrics}");
    agent.stop();
}

#[test]
fn private_mode_listens_on_loopback_only_and_check_health_probes_it() {
    let t = Topology::new("pv");
    let _collector = Collector::start(&t.collector);
    // What attach --metrics-private sets in the sidecar.
    let env = [("BPC_METRICS_ADDR", "0.0.0.0:9469"), ("BPC_METRICS_PRIVATE", "true")];
    let mut cmd = t.pod.command(AGENT);
    cmd.args(["--collector", COLLECTOR_IP, "--interface", &t.pod_if, "--filter", "udp port 9"])
        .env("RUST_LOG", "info")
        .envs(env);
    let agent = Agent::wait_ready(Proc::spawn(cmd), &t.pod, 9469);
    let check = || {
        let out = t.pod.command(AGENT).arg("--check-health").envs(env).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    wait_for("--check-health to pass", Duration::from_secs(5), || check().0 == Some(0));
    assert!(check().1.starts_with("healthy: {\"ok\":true"), "{}", check().1);

    let endpoint = pod_addr(9469);
    let (code, _) = timed_get(&t.client, endpoint, "/healthz");
    assert_eq!(code, 0, "the pod IP must not answer in private mode");
    let pod_ip = (t.pod.command("curl"))
        .args(["-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{POD_IP}:9469/")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pod_ip.stdout), "000", "not even from inside the pod on its IP");
    let stderr = agent.stop();
    assert!(stderr.contains("127.0.0.1:9469"), "{stderr}");
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("unhealthy: cannot connect to 127.0.0.1:9469"), "{out}");
}

#[test]
fn a_capture_that_cannot_start_is_served_as_its_reason_and_never_holds_the_pod_back() {
    let t = Topology::new("oe");
    let _collector = Collector::start(&t.collector);
    // What attach sets in both sidecar forms, with an interface the pod does not have.
    let mut cmd = t.pod.command(AGENT);
    cmd.args(["--collector", COLLECTOR_IP, "--interface", "nosuch0", "--metrics-addr", "127.0.0.1:9469"])
        .env("BPC_ON_ERROR", "serve")
        .env("BPC_TERMINATION_LOG", "/dev/null")
        .env("RUST_LOG", "info");
    let started = Instant::now();
    let agent = Agent::wait_ready(Proc::spawn(cmd), &t.pod, 9469);
    assert!(started.elapsed() < Duration::from_secs(5), "startup passes at once when capture failed");
    let (code, body) = t.pod.http_get(9469, "/startupz");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("nosuch0"), "{body}");
    let (code, body) = t.pod.http_get(9469, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not capturing") && body.contains("nosuch0"), "{body}");
    assert_eq!(t.pod.http_get(9469, "/livez").0, 200, "a restart would not cure it");
    let (_, stats) = t.pod.http_get(9469, "/stats");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["capture_error"].as_str().unwrap().contains("nosuch0"), "{stats}");
    let stderr = agent.stop();
    assert!(stderr.contains("not capturing"), "{stderr}");
}

#[test]
fn without_on_error_serve_a_capture_that_cannot_start_exits_2() {
    let t = Topology::new("ox");
    let out = t
        .pod
        .command(AGENT)
        .args(["--collector", COLLECTOR_IP, "--interface", "nosuch0", "--metrics-addr", "127.0.0.1:9469"])
        .env("BPC_TERMINATION_LOG", "/dev/null")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
