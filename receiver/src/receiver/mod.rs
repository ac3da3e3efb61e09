//! The receiving engine: a raw IPPROTO_GRE socket (GRE, ERSPAN II and III)
//! and a UDP socket on the VXLAN port, each read with `recvmmsg` into
//! pre-allocated buffers on its own thread, per-stream counters, and a
//! [`Report`] available at any time.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bpc_wire::{Decapsulated, Direction, Ipv4Packet, SequenceTracker, WireError};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

pub use bpc_contract::stream::{DirectionCounts, ReceivedProfile, StreamReport};

use crate::Error;
use crate::map::{SharedMap, WorkloadMap};
use crate::paths::{Capturing, FlowTable, PathsReport, TcpFlags};

const BATCH: usize = 64;
const BUF: usize = 65536;
const MAX_LATENCY_SAMPLES: usize = 1 << 20;
/// Flows silent this long are folded into their edges (see [`FlowTable::compact`]).
const PATHS_IDLE: Duration = Duration::from_secs(120);
/// Control buffer per message: room for one SCM_TIMESTAMPNS (a timespec).
const CTRL: usize = 64;

/// What the receiver listens on and how it labels streams.
#[derive(Clone)]
pub struct ReceiverConfig {
    /// Address to bind (IPv4 or IPv6; unspecified = all).
    pub listen: IpAddr,
    /// Key -> workload names, address -> workload; others may update it while the receiver runs.
    pub map: SharedMap,
    /// Account flows for path discovery ([`Receiver::paths`]).
    pub paths: bool,
    /// Receives each decapsulated inner frame with its receive time (for `--write`).
    pub frame_sink: Option<Arc<Mutex<dyn FrameSink>>>,
}

/// Something that wants the inner frames (the pcap writer).
pub trait FrameSink: Send {
    /// One inner Ethernet frame, received at `ts`, from stream `key`. After
    /// an error the sink gets no more frames ([`Receiver::take_sink_error`]).
    fn frame(&mut self, ts: SystemTime, key: u32, frame: &[u8]) -> Result<(), Error>;
}

/// One inner flow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowReport {
    /// "tcp", "udp", "icmp" or the IP protocol number.
    pub protocol: String,
    /// Source address:port.
    pub source: String,
    /// Destination address:port.
    pub destination: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Latency percentiles of synthetic frames (send timestamp in the payload).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyReport {
    /// Samples.
    pub samples: u64,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Maximum, microseconds.
    pub max_us: f64,
}

/// One workload key over all its streams: the view that survives pod
/// restarts, rollouts and rescheduling (each new pod is a new stream of the
/// same key).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyReport {
    /// The GRE key, `0x%08x` (netis: the keybit).
    pub key: String,
    /// "namespace/kind/name" from the map, when known.
    pub workload: Option<String>,
    /// Streams (source address and profile) seen with this key.
    pub streams: u64,
    /// Packets over all streams.
    pub packets: u64,
    /// Inner frame bytes over all streams.
    pub bytes: u64,
    /// Sequence numbers missing, over all streams.
    pub lost: u64,
    /// Late packets, over all streams.
    pub reordered: u64,
    /// Duplicated packets, over all streams.
    pub duplicated: u64,
    /// Times a source started numbering again at 0 (an agent restarted in the same pod).
    pub sequence_restarts: u64,
    /// Streams that took over from one that had gone silent: the first packet
    /// of the new stream came after the last packet of the old one (a pod
    /// replaced by one with a new IP). Each silent stream is taken over at most once.
    pub restarted_streams: u64,
    /// `sequence_restarts + restarted_streams`.
    pub restarts: u64,
}

/// Per-key summary of `streams` (any order), sorted by key. Used for the
/// report and by `--expect`, so a saved JSON report gives the same answers.
pub fn summarize_keys(streams: &[StreamReport]) -> Vec<KeyReport> {
    let mut by_key: BTreeMap<&str, Vec<&StreamReport>> = BTreeMap::new();
    for s in streams {
        by_key.entry(&s.key).or_default().push(s);
    }
    by_key
        .into_iter()
        .map(|(key, mut group)| {
            let mut k = KeyReport {
                key: key.to_string(),
                workload: group.iter().find_map(|s| s.workload.clone()),
                streams: group.len() as u64,
                ..Default::default()
            };
            for s in &group {
                k.packets += s.packets;
                k.bytes += s.bytes;
                k.lost += s.lost;
                k.reordered += s.reordered;
                k.duplicated += s.duplicated;
                k.sequence_restarts += s.restarts;
            }
            // Oldest first; a stream takes over from one whose last packet it
            // follows: that is a replacement, not a scale-up (the old one would
            // still be sending) and not loss (the new one numbers from its own 0).
            group.sort_by(|a, b| a.first_seen.total_cmp(&b.first_seen));
            let mut taken = vec![false; group.len()];
            for (i, s) in group.iter().enumerate() {
                if let Some(j) = (0..i).find(|&j| !taken[j] && group[j].last_seen < s.first_seen) {
                    taken[j] = true;
                    k.restarted_streams += 1;
                }
            }
            k.restarts = k.sequence_restarts + k.restarted_streams;
            k
        })
        .collect()
}

/// Totals over all streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Valid GRE packets.
    pub packets: u64,
    /// Inner bytes.
    pub bytes: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Sum of lost.
    pub lost: u64,
}

/// The receiver's report (the `-o json` schema).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Seconds since the receiver started.
    pub elapsed_seconds: f64,
    /// Totals.
    pub totals: Totals,
    /// Streams ordered by key then source.
    pub streams: Vec<StreamReport>,
    /// Per-key summary ([`summarize_keys`] of `streams`).
    #[serde(default)]
    pub keys: Vec<KeyReport>,
    /// Malformed datagrams by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Top 10 inner flows by packets.
    pub top_flows: Vec<FlowReport>,
    /// Latency of timestamped synthetic frames.
    pub latency: Option<LatencyReport>,
    /// Caveats (e.g. netis streams have no sequence numbers).
    pub notes: Vec<String>,
}

/// What the VXLAN socket of a receiver listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VxlanListen {
    /// The port, when it is free; otherwise a note in the report and GRE only
    /// (a node's own VXLAN overlay may hold 4789).
    Try(u16),
    /// The port, or the receiver does not start.
    Require(u16),
    /// No VXLAN socket.
    Off,
}

/// The note of a report with VXLAN streams: what a receiver can and cannot tell without sequence numbers.
pub const VXLAN_NOTE: &str = "VXLAN streams carry no sequence numbers: loss, reordering and duplicates cannot be \
                              measured; compare the stream's packets with the agent's sent_packets in /stats";

#[derive(Debug)]
struct Stream {
    profile: ReceivedProfile,
    tracker: SequenceTracker,
    packets: u64,
    bytes: u64,
    first: SystemTime,
    last: SystemTime,
    dirs: Option<DirectionCounts>,
}

type FlowKey = (u8, IpAddr, u16, IpAddr, u16);

#[derive(Default)]
struct State {
    streams: HashMap<(u32, IpAddr, ReceivedProfile), Stream>,
    malformed: BTreeMap<&'static str, u64>,
    flows: HashMap<FlowKey, (u64, u64)>,
    latencies_ns: Vec<u64>,
    valid: u64,
    paths: Option<FlowTable>,
    /// The frame sink's first error; it is called no more after one.
    sink_error: Option<Error>,
    sink_failed: bool,
    /// Why the VXLAN socket is not listening, for the report.
    vxlan_note: Option<String>,
}

/// A running receiver.
pub struct Receiver {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    map: SharedMap,
    /// The bound address.
    pub local: IpAddr,
}

fn sock_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Socket { what: what.to_string(), source }
}

/// Opens the UDP socket VXLAN arrives on.
fn vxlan_socket(listen: IpAddr, port: u16) -> Result<Socket, Error> {
    let domain = if listen.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket =
        Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(sock_err("opening a UDP socket"))?;
    if listen.is_ipv6() {
        // One family per receiver, as for GRE.
        let _ = socket.set_only_v6(true);
    }
    socket.bind(&SocketAddr::new(listen, port).into()).map_err(|source| Error::Socket {
        what: format!("binding the VXLAN port {listen}:{port}"),
        source,
    })?;
    force_recv_buffer(&socket, 64 << 20);
    socket.set_read_timeout(Some(Duration::from_millis(50))).map_err(sock_err("setting timeout"))?;
    Ok(socket)
}

impl Receiver {
    /// Opens the raw GRE socket and, when the port is free, the VXLAN one
    /// on 4789, and starts the receiving threads.
    pub fn start(config: ReceiverConfig) -> Result<Receiver, Error> {
        Receiver::start_with(config, VxlanListen::Try(bpc_wire::vxlan::PORT))
    }

    /// [`Receiver::start`] with the VXLAN socket as `vxlan` says.
    pub fn start_with(config: ReceiverConfig, vxlan: VxlanListen) -> Result<Receiver, Error> {
        let (vxlan, vxlan_note) = match vxlan {
            VxlanListen::Off => (None, None),
            VxlanListen::Require(port) => (Some(vxlan_socket(config.listen, port)?), None),
            VxlanListen::Try(port) => match vxlan_socket(config.listen, port) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("not receiving VXLAN: {e}"))),
            },
        };
        let domain = if config.listen.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(bpc_wire::IPPROTO_GRE as i32)))
            .map_err(sock_err("opening a raw GRE socket"))?;
        socket.bind(&SocketAddr::new(config.listen, 0).into()).map_err(sock_err("binding"))?;
        force_recv_buffer(&socket, 64 << 20);
        socket.set_read_timeout(Some(Duration::from_millis(50))).map_err(sock_err("setting timeout"))?;
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut st = state.lock().unwrap();
            st.latencies_ns.reserve(MAX_LATENCY_SAMPLES);
            st.paths = config.paths.then(FlowTable::default);
            st.vxlan_note = vxlan_note;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let v4 = config.listen.is_ipv4();
        let mut threads = Vec::with_capacity(2);
        let sockets =
            std::iter::once((socket, Arrival::RawGre { v4 })).chain(vxlan.map(|s| (s, Arrival::Vxlan)));
        for (socket, arrival) in sockets {
            let (st, sp, sink) = (state.clone(), stop.clone(), config.frame_sink.clone());
            let name = if arrival == Arrival::Vxlan { "bpc-receiver-vxlan" } else { "bpc-receiver" };
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || receive_loop(socket, arrival, st, sp, sink))
                .map_err(sock_err("spawning the receiver thread"));
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    threads.into_iter().for_each(|t| drop(t.join()));
                    return Err(e);
                }
            }
        }
        Ok(Receiver { state, stop, threads, started: Instant::now(), map: config.map, local: config.listen })
    }

    /// The counters so far.
    pub fn snapshot(&self) -> Report {
        // State before map, as the receiving thread takes them (its pcapng
        // writer reads the map under the state lock): one order, no deadlock
        // when a map writer waits in between.
        let st = self.state.lock().unwrap();
        let map = self.map.read().unwrap();
        build_report(&st, &map, self.started.elapsed())
    }

    /// The path graph so far (empty unless started with `paths`), labelled
    /// with the map as it is now.
    pub fn paths(&self) -> PathsReport {
        // State, then map: the order of [`Receiver::snapshot`] and the receiving thread.
        let mut guard = self.state.lock().unwrap();
        let map = self.map.read().unwrap();
        let st = &mut *guard;
        // Stream sources are the capturing pods: their flows are counted from the client side.
        let mut capturing = Capturing::new();
        for (k, s) in &st.streams {
            let (first, last) = (unix_ns(s.first), unix_ns(s.last));
            let w = capturing.entry(k.1).or_insert((first, last));
            *w = (w.0.min(first), w.1.max(last));
        }
        let now = SystemTime::now();
        let Some(paths) = st.paths.as_mut() else {
            return FlowTable::default().report(&map, &capturing, unix(now));
        };
        let idle_before = now.checked_sub(PATHS_IDLE).unwrap_or(UNIX_EPOCH);
        paths.compact(
            &map,
            &capturing,
            idle_before.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64,
        );
        paths.report(&map, &capturing, unix(now))
    }

    /// The shared map the receiver labels with.
    pub fn map(&self) -> &SharedMap {
        &self.map
    }

    /// Valid packets so far: cheap, unlike [`Receiver::snapshot`] (which sorts latency samples).
    pub fn packets(&self) -> u64 {
        self.state.lock().unwrap().valid
    }

    /// Whether the frame sink failed (and no longer receives frames).
    pub fn sink_failed(&self) -> bool {
        self.state.lock().unwrap().sink_failed
    }

    /// The frame sink's error, once.
    pub fn take_sink_error(&self) -> Option<Error> {
        self.state.lock().unwrap().sink_error.take()
    }

    /// Stops the thread and returns the final report.
    pub fn stop(mut self) -> Report {
        self.join();
        self.snapshot()
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.join();
    }
}

/// What a receiving socket delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// A raw GRE socket: GRE and ERSPAN, with the IPv4 header before them (IPv6: none).
    RawGre { v4: bool },
    /// A UDP socket on the VXLAN port: the VXLAN header and the frame.
    Vxlan,
}

fn receive_loop(
    socket: Socket,
    arrival: Arrival,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    sink: Option<Arc<Mutex<dyn FrameSink>>>,
) {
    let mut bufs = vec![0u8; BATCH * BUF];
    // SAFETY: sockaddr_storage is plain integers and bytes: all zeroes is a valid value.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = (0..BATCH)
        .map(|i| libc::iovec { iov_base: bufs[i * BUF..].as_mut_ptr().cast(), iov_len: BUF })
        .collect();
    // Per-packet kernel receive times (SO_TIMESTAMPNS): packets of one
    // batch differ, which a handshake's RTT needs. Without them, the batch's time.
    let stamped = set_socket_int(&socket, libc::SO_TIMESTAMPNS, 1);
    let mut ctrl = vec![[0u64; CTRL / 8]; BATCH];
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|i| {
            // SAFETY: mmsghdr is integers and raw pointers: all zeroes (null
            // pointers, zero lengths) is a valid, empty message.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            m
        })
        .collect();
    let fd = socket.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = &mut iovs[i];
            if stamped {
                m.msg_hdr.msg_control = ctrl[i].as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = CTRL as _;
            }
        }
        // SAFETY: msgs point at iovs/addrs/bufs, all alive and sized as declared.
        let n = unsafe {
            libc::recvmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if n <= 0 {
            continue;
        }
        let now = SystemTime::now();
        let mut st = state.lock().unwrap();
        for i in 0..n as usize {
            let len = msgs[i].msg_len as usize;
            let data = &bufs[i * BUF..i * BUF + len];
            let src = sockaddr_ip(&addrs[i]);
            let now = if stamped { kernel_time(&msgs[i].msg_hdr).unwrap_or(now) } else { now };
            // An IPv4 raw socket delivers the IP header too; IPv6 does not.
            let decoded = match arrival {
                Arrival::RawGre { v4: true } => match Ipv4Packet::parse(data) {
                    Ok(ip) => Decapsulated::from_gre(ip.payload),
                    Err(_) => {
                        bump(&mut st, "truncated_ip");
                        continue;
                    }
                },
                Arrival::RawGre { v4: false } => Decapsulated::from_gre(data),
                Arrival::Vxlan => Decapsulated::from_vxlan(data),
            };
            handle(&mut st, src, decoded, now, sink.as_deref());
        }
    }
}

/// A large receive buffer absorbs bursts; root may exceed rmem_max with
/// SO_RCVBUFFORCE, otherwise the kernel caps the ordinary request.
fn force_recv_buffer(socket: &Socket, bytes: libc::c_int) {
    if !set_socket_int(socket, libc::SO_RCVBUFFORCE, bytes) {
        let _ = socket.set_recv_buffer_size(bytes as usize);
    }
}

/// Sets a SOL_SOCKET option socket2 does not wrap; true when the kernel took it.
fn set_socket_int(socket: &Socket, option: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: setsockopt reads exactly size_of::<c_int>() bytes from a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    rc == 0
}

/// The SCM_TIMESTAMPNS control message of a received packet.
fn kernel_time(hdr: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the control buffer was filled by recvmmsg for this header; the
    // CMSG macros stay within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

fn sockaddr_ip(sa: &libc::sockaddr_storage) -> IpAddr {
    if sa.ss_family as i32 == libc::AF_INET6 {
        // SAFETY: family says sockaddr_in6.
        let s: &libc::sockaddr_in6 = unsafe { &*(sa as *const _ as *const libc::sockaddr_in6) };
        IpAddr::from(s.sin6_addr.s6_addr)
    } else {
        // SAFETY: family AF_INET (sockaddr_in fits in storage).
        let s: &libc::sockaddr_in = unsafe { &*(sa as *const _ as *const libc::sockaddr_in) };
        IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes())
    }
}

fn bump(st: &mut State, reason: &'static str) {
    *st.malformed.entry(reason).or_insert(0) += 1;
}

fn handle(
    st: &mut State,
    src: IpAddr,
    decoded: Result<Decapsulated<'_>, WireError>,
    now: SystemTime,
    sink: Option<&Mutex<dyn FrameSink>>,
) {
    let packet = match decoded {
        Ok(p) => p,
        Err(e) => {
            bump(
                st,
                match e {
                    WireError::Truncated { .. } => "truncated",
                    WireError::TruncatedHeader { .. } => "truncated",
                    WireError::UnsupportedVersion(_) => "unsupported_version",
                    WireError::ErspanVersion { .. } => "unsupported_version",
                    WireError::ReservedBitsSet(_) => "reserved_bits",
                    WireError::ChecksumMismatch { .. } => "checksum",
                    WireError::NotEthernet(_) => "not_ethernet",
                    WireError::VxlanNoVni(_) => "vxlan_flags",
                    _ => "other",
                },
            );
            return;
        }
    };
    if packet.frame.len() < 14 {
        bump(st, "short_frame");
        return;
    }
    let frame = packet.frame;
    let profile = ReceivedProfile::from(packet.kind);
    let key = packet.id;
    let directed = matches!(profile, ReceivedProfile::Netis | ReceivedProfile::ErspanIii);
    let s = st.streams.entry((key, src, profile)).or_insert_with(|| Stream {
        profile,
        tracker: SequenceTracker::new(),
        packets: 0,
        bytes: 0,
        first: now,
        last: now,
        dirs: directed.then(DirectionCounts::default),
    });
    s.packets += 1;
    s.bytes += frame.len() as u64;
    st.valid += 1;
    s.last = now;
    if let Some(seq) = packet.sequence {
        s.tracker.observe(seq);
    }
    if let Some(c) = s.dirs.as_mut() {
        match packet.direction {
            Direction::Inbound => c.inbound += 1,
            Direction::Outbound => c.outbound += 1,
            Direction::Unknown => c.unknown += 1,
        }
    }
    inspect_inner(st, src, frame, now);
    if let Some(sink) = sink
        && !st.sink_failed
        && let Err(e) = sink.lock().unwrap().frame(now, key, frame)
    {
        st.sink_failed = true;
        st.sink_error = Some(e);
    }
}

fn inspect_inner(st: &mut State, observer: IpAddr, frame: &[u8], now: SystemTime) {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let Ok(p) = SlicedPacket::from_ethernet(frame) else { return };
    let (proto, s, d) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().protocol().0,
            IpAddr::from(ip.header().source()),
            IpAddr::from(ip.header().destination()),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.payload().ip_number.0,
            IpAddr::from(ip.header().source()),
            IpAddr::from(ip.header().destination()),
        ),
        _ => return,
    };
    let mut flags = None;
    let (sp, dp) = match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            flags = Some(TcpFlags { syn: t.syn(), ack: t.ack(), rst: t.rst() });
            (t.source_port(), t.destination_port())
        }
        Some(TransportSlice::Udp(u)) => {
            let payload = u.payload();
            if payload.len() >= 12 && &payload[..4] == crate::LATENCY_MARKER {
                let sent = u64::from_be_bytes(payload[4..12].try_into().unwrap());
                let recv = now.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
                if st.latencies_ns.len() < MAX_LATENCY_SAMPLES {
                    st.latencies_ns.push(recv.saturating_sub(sent));
                }
            }
            (u.source_port(), u.destination_port())
        }
        _ => (0, 0),
    };
    let e = st.flows.entry((proto, s, sp, d, dp)).or_insert((0, 0));
    e.0 += 1;
    e.1 += frame.len() as u64;
    if let Some(paths) = st.paths.as_mut() {
        let ns = now.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        paths.observe(observer, proto, (s, sp), (d, dp), flags, frame.len(), ns);
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn build_report(st: &State, map: &WorkloadMap, elapsed: Duration) -> Report {
    let mut r = Report { elapsed_seconds: elapsed.as_secs_f64(), ..Default::default() };
    let mut keys: Vec<_> = st.streams.keys().collect();
    keys.sort();
    for k in keys {
        let s = &st.streams[k];
        let c = s.tracker.counters();
        let span = s.last.duration_since(s.first).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        r.streams.push(StreamReport {
            key: bpc_wire::WorkloadKey(k.0).to_string(),
            workload: map.name(k.0, s.profile).map(str::to_string),
            source: k.1,
            profile: s.profile,
            packets: s.packets,
            bytes: s.bytes,
            lost: c.lost,
            reordered: c.reordered,
            duplicated: c.duplicated,
            restarts: c.restarts,
            first_seen: unix(s.first),
            last_seen: unix(s.last),
            rate_pps: if span > 0.0 { (s.packets.saturating_sub(1)) as f64 / span } else { 0.0 },
            directions: s.dirs,
        });
        r.totals.packets += s.packets;
        r.totals.bytes += s.bytes;
        r.totals.lost += c.lost;
        let note = match s.profile {
            ReceivedProfile::Netis => {
                Some("netis streams carry no sequence numbers: loss and reordering cannot be measured")
            }
            ReceivedProfile::Vxlan => Some(VXLAN_NOTE),
            _ => None,
        };
        if let Some(note) = note.filter(|n| !r.notes.iter().any(|have| have == n)) {
            r.notes.push(note.into());
        }
    }
    if let Some(note) = &st.vxlan_note {
        r.notes.push(note.clone());
    }
    r.keys = summarize_keys(&r.streams);
    for k in r.keys.iter().filter(|k| k.restarts > 0) {
        r.notes.push(format!(
            "{}: {} restarted stream(s) (a new source after another went silent: pod replaced) and {} \
             sequence restart(s) (agent restarted in place); counted as restarts, not loss",
            k.workload.as_deref().unwrap_or(&k.key),
            k.restarted_streams,
            k.sequence_restarts
        ));
    }
    r.malformed = st.malformed.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    r.totals.malformed = st.malformed.values().sum();
    let mut flows: Vec<_> = st.flows.iter().collect();
    flows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(b.1.1.cmp(&a.1.1)).then(a.0.cmp(b.0)));
    for ((p, s, sp, d, dp), (pk, by)) in flows.into_iter().take(10) {
        let protocol = match p {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            1 | 58 => "icmp".to_string(),
            n => n.to_string(),
        };
        r.top_flows.push(FlowReport {
            protocol,
            source: SocketAddr::new(*s, *sp).to_string(),
            destination: SocketAddr::new(*d, *dp).to_string(),
            packets: *pk,
            bytes: *by,
        });
    }
    if !st.latencies_ns.is_empty() {
        let mut l = st.latencies_ns.clone();
        l.sort_unstable();
        let pct = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        r.latency = Some(LatencyReport {
            samples: l.len() as u64,
            p50_us: pct(0.5),
            p99_us: pct(0.99),
            max_us: *l.last().unwrap() as f64 / 1000.0,
        });
    }
    r
}
