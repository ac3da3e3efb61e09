//! The agent's integration-test world, on the shared namespace harness
//! (`bpc-netns`: namespaces, veths, processes, each removed on drop): the
//! client/pod/collector topology, the agent process, a GRE collector and
//! tcpdump as the reference capture.
//!
//! A "pod" is a network namespace; the agent runs inside it with
//! `ip netns exec`. Addresses are in 198.18.0.0/15 and only exist inside
//! these namespaces.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, unused_imports)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use bpc_netns::{Netns, Proc, enter, read_to_string, sh, veth, wait_for};
use bpc_wire::{GrePacket, Ipv4Packet};

/// The agent binary under test.
pub const AGENT: &str = env!("CARGO_BIN_EXE_bpc-agent");

/// The agent's `/stats` endpoint, read through a pod namespace.
pub trait StatsEndpoint {
    /// The agent's `/stats` as JSON.
    fn stats(&self, port: u16) -> serde_json::Value;
}

impl StatsEndpoint for Netns {
    fn stats(&self, port: u16) -> serde_json::Value {
        let (code, body) = self.http_get(port, "/stats");
        assert_eq!(code, 200, "GET /stats: {body}");
        serde_json::from_str(&body).expect("/stats is JSON")
    }
}

/// A pod with a client on one side and a collector on the other:
///
/// ```text
///  client 198.18.1.2 ==veth== 198.18.1.1 pod 198.18.2.1 ==veth== 198.18.2.2 collector
/// ```
pub struct Topology {
    /// The pod (agent, server, tcpdump).
    pub pod: Netns,
    /// Makes requests to the pod.
    pub client: Netns,
    /// Receives the GRE stream.
    pub collector: Netns,
    /// Pod interface towards the client (the one captured).
    pub pod_if: String,
    /// Client's interface.
    pub client_if: String,
    /// Pod interface towards the collector.
    pub pod_col_if: String,
    /// Collector's interface.
    pub col_if: String,
}

/// Pod address on the client side.
pub const POD_IP: &str = "198.18.1.1";
/// Client address.
pub const CLIENT_IP: &str = "198.18.1.2";
/// Pod address on the collector side.
pub const POD_COL_IP: &str = "198.18.2.1";
/// Collector address.
pub const COLLECTOR_IP: &str = "198.18.2.2";

/// `port` on the pod's client-side address (where its test servers listen).
pub fn pod_addr(port: u16) -> SocketAddr {
    SocketAddr::new(POD_IP.parse().expect("POD_IP is an address"), port)
}

impl Topology {
    /// Builds the three namespaces; `tag` keeps names unique per test (≤ 4 chars).
    pub fn new(tag: &str) -> Topology {
        let pod = Netns::new("pod", tag);
        let client = Netns::new("cli", tag);
        let collector = Netns::new("col", tag);
        let id = format!("{tag}{}", std::process::id());
        let t = Topology {
            pod_if: format!("p{id}a"),
            client_if: format!("p{id}b"),
            pod_col_if: format!("p{id}c"),
            col_if: format!("p{id}d"),
            pod,
            client,
            collector,
        };
        veth(&t.pod_if, &t.pod, POD_IP, &t.client_if, &t.client, CLIENT_IP);
        veth(&t.pod_col_if, &t.pod, POD_COL_IP, &t.col_if, &t.collector, COLLECTOR_IP);
        t
    }

    /// The topology with a [`Collector`] already receiving in it.
    pub fn with_collector(tag: &str) -> (Topology, Collector) {
        let t = Topology::new(tag);
        let collector = Collector::start(&t.collector);
        (t, collector)
    }

    /// The topology with a [`tcp_server`] on the pod's port 8080 answering
    /// `response_len` bytes, and a [`Collector`]; returns the server's address too.
    pub fn with_tcp_server(tag: &str, response_len: usize) -> (Topology, Collector, SocketAddr) {
        let t = Topology::new(tag);
        let server = pod_addr(8080);
        tcp_server(&t.pod, server, response_len);
        let collector = Collector::start(&t.collector);
        (t, collector, server)
    }

    /// Starts the agent in the pod: streaming to the collector namespace,
    /// capturing `filter` on the pod's client-side link, then `extra` flags.
    pub fn start_agent(&self, filter: &str, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut args = vec!["--collector", COLLECTOR_IP, "--interface", &self.pod_if, "--filter", filter];
        args.extend_from_slice(extra);
        Agent::start(&self.pod, &args, env)
    }

    /// Raises the MTU of the pod's client-side link to 9000, so one frame can
    /// be larger than the 1500-byte collector path carries.
    pub fn jumbo_pod_link(&self) {
        for (ns, iface) in [(&self.pod, &self.pod_if), (&self.client, &self.client_if)] {
            ns.exec(&["ip", "link", "set", "dev", iface, "mtu", "9000"]);
        }
    }

    /// Gives the pod a default route through the client side, as a pod's eth0.
    pub fn default_route_via_client(&self) {
        self.pod.exec(&["ip", "route", "add", "default", "via", CLIENT_IP, "dev", &self.pod_if]);
    }
}

/// The agent running in a pod namespace.
pub struct Agent {
    /// The process.
    pub proc: Proc,
    /// Its metrics port (on 127.0.0.1 in the pod namespace).
    pub port: u16,
}

impl Agent {
    /// Starts `bpc-agent <args>` in `pod` with metrics on 127.0.0.1:9469 and
    /// waits until its capture is live (/startupz 200).
    pub fn start(pod: &Netns, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut cmd = pod.command(AGENT);
        cmd.args(args).args(["--metrics-addr", "127.0.0.1:9469"]).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Agent::wait_ready(Proc::spawn(cmd), pod, 9469)
    }

    /// Waits for `proc` (an agent with metrics on `port`) to have its
    /// capture live: the endpoint answers from the start, `/startupz` says
    /// 200 once the ring is bound with its filter (or the agent gave up,
    /// which a test then sees in `/healthz`).
    pub fn wait_ready(mut proc: Proc, pod: &Netns, port: u16) -> Agent {
        wait_for("the agent's /startupz", Duration::from_secs(10), || {
            proc.assert_running();
            pod.http_get(port, "/startupz").0 == 200
        });
        Agent { proc, port }
    }

    /// SIGTERM, then asserts a clean exit (0) within one second.
    pub fn stop(mut self) -> String {
        let sent = Instant::now();
        self.proc.signal(libc::SIGTERM);
        let status = self.proc.wait_timeout(Duration::from_secs(3));
        let took = sent.elapsed();
        let stderr = self.proc.stderr();
        assert!(
            status.is_some_and(|s| s.code() == Some(0)),
            "agent did not exit 0 on SIGTERM ({status:?}): {stderr}"
        );
        assert!(took < Duration::from_secs(1), "agent took {took:?} to stop");
        stderr
    }
}

/// One GRE packet as the collector received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// GRE header length.
    pub header_len: usize,
    /// Key field.
    pub key: Option<u32>,
    /// Sequence field.
    pub sequence: Option<u32>,
    /// GRE protocol type.
    pub protocol: u16,
    /// Outer IPv4 destination (which collector address it was sent to).
    pub dst: [u8; 4],
    /// The inner Ethernet frame.
    pub frame: Vec<u8>,
}

/// A raw IPPROTO_GRE socket in the collector namespace, read by a thread.
pub struct Collector {
    stop: Arc<AtomicBool>,
    /// Packets received so far.
    pub received: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<Received>>>,
}

impl Collector {
    /// Starts receiving in `ns`.
    pub fn start(ns: &Netns) -> Collector {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let netns = ns.name.clone();
        let thread = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                enter(&netns);
                let sock = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::RAW,
                    Some(socket2::Protocol::from(i32::from(bpc_wire::IPPROTO_GRE))),
                )
                .expect("raw GRE socket");
                // Room for the bulk transfers of the oversize tests between two reads.
                sock.set_recv_buffer_size(32 << 20).expect("SO_RCVBUF");
                sock.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
                ready_tx.send(()).expect("ready");
                let mut packets = Vec::new();
                let mut buf = vec![0u8; 70_000];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = std::io::Read::read(&mut &sock, &mut buf) else { continue };
                    let ip = Ipv4Packet::parse(&buf[..n]).expect("IPv4 from a raw socket");
                    let gre = GrePacket::parse(ip.payload).expect("valid GRE from the agent");
                    packets.push(Received {
                        header_len: gre.header_len,
                        key: gre.key,
                        sequence: gre.sequence,
                        protocol: gre.protocol,
                        dst: ip.destination.octets(),
                        frame: gre.payload.to_vec(),
                    });
                    received.fetch_add(1, Ordering::Relaxed);
                }
                packets
            })
        };
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("collector socket ready");
        Collector { stop, received, thread: Some(thread) }
    }

    /// Packets received so far.
    pub fn count(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops the thread and returns everything received, in arrival order.
    pub fn finish(mut self) -> Vec<Received> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().expect("thread").join().expect("collector thread")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// tcpdump recording the reference capture in a namespace.
pub struct Tcpdump {
    proc: Proc,
    /// The pcap file.
    pub pcap: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tcpdump {
    /// Starts `tcpdump -i iface -s 0 -U -w file filter` and waits for "listening on".
    pub fn start(ns: &Netns, iface: &str, filter: &str) -> Tcpdump {
        Tcpdump::start_with(ns, iface, filter, &[])
    }

    /// [`Tcpdump::start`] with `extra` options before the filter
    /// (e.g. `--time-stamp-precision nano`).
    pub fn start_with(ns: &Netns, iface: &str, filter: &str, extra: &[&str]) -> Tcpdump {
        let dir = tempfile::tempdir().expect("tempdir");
        let pcap = dir.path().join("ref.pcap");
        let mut cmd = ns.command("tcpdump");
        // -B: with -s 0 every ring slot is 256 KiB; the default 2 MiB ring would drop.
        cmd.args(["-i", iface, "-s", "0", "-B", "32768", "-U", "--immediate-mode", "-n"])
            .args(extra)
            .arg("-w")
            .arg(&pcap)
            .arg(filter);
        let mut proc = Proc::spawn(cmd);
        wait_for("tcpdump to listen", Duration::from_secs(5), || {
            proc.assert_running();
            proc.stderr().contains("listening on")
        });
        Tcpdump { proc, pcap, _dir: dir }
    }

    /// Frames recorded so far (tcpdump writes each one at once with -U).
    pub fn frames(&self) -> Vec<Vec<u8>> {
        let Ok(file) = File::open(&self.pcap) else { return Vec::new() };
        let Ok(mut reader) = pcap_file::pcap::PcapReader::new(file) else { return Vec::new() };
        let mut frames = Vec::new();
        while let Some(Ok(p)) = reader.next_packet() {
            frames.push(p.data.into_owned());
        }
        frames
    }

    /// Stops tcpdump (SIGINT) and returns the frames it recorded.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop()
    }

    /// [`Tcpdump::finish`], keeping the pcap file: it lives as long as the
    /// returned directory (`ref.pcap` in it), for tshark or for its times.
    pub fn finish_keeping_file(mut self) -> (Vec<Vec<u8>>, tempfile::TempDir) {
        let frames = self.stop();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&self.pcap, dir.path().join("ref.pcap")).expect("copy the pcap");
        (frames, dir)
    }

    fn stop(&mut self) -> Vec<Vec<u8>> {
        self.proc.signal(libc::SIGINT);
        self.proc.wait_timeout(Duration::from_secs(5)).expect("tcpdump stops on SIGINT");
        let stderr = self.proc.stderr();
        assert!(
            stderr.lines().any(|l| l.trim() == "0 packets dropped by kernel"),
            "tcpdump dropped packets, the comparison would be void: {stderr}"
        );
        self.frames()
    }
}

/// A TCP server thread in a namespace: answers each connection's request
/// with `response_len` bytes, then closes.
pub fn tcp_server(ns: &Netns, addr: SocketAddr, response_len: usize) {
    let netns = ns.name.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter(&netns);
        let listener = TcpListener::bind(addr).expect("bind server");
        tx.send(()).unwrap();
        let body = vec![b'x'; response_len];
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&body);
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("server listening");
}

/// Makes `count` request/response exchanges from a thread in `ns`, one
/// connection each, sequentially; returns the response bytes received.
pub fn tcp_requests(ns: &Netns, addr: SocketAddr, count: usize) -> usize {
    let netns = ns.name.clone();
    std::thread::spawn(move || {
        enter(&netns);
        let mut total = 0;
        for i in 0..count {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.write_all(format!("GET /{i} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).expect("read response");
            total += buf.len();
        }
        total
    })
    .join()
    .expect("client thread")
}

/// Sends `count` UDP datagrams of `len` bytes from a thread in `ns` to `addr`, `gap` apart.
pub fn udp_send(ns: &Netns, addr: SocketAddr, count: usize, len: usize, gap: Duration) {
    let netns = ns.name.clone();
    std::thread::spawn(move || {
        enter(&netns);
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp bind");
        let payload = vec![0x5a; len];
        for _ in 0..count {
            let _ = s.send_to(&payload, addr);
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
        }
    })
    .join()
    .expect("udp thread");
}
