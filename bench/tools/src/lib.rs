//! Shared pieces of the benchmark tools: argument parsing, the synthetic
//! frame, batched sending with `sendmmsg`, and CPU accounting.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use bpc_wire::ethernet::{self, ETHERTYPE_IPV4};
use bpc_wire::{EthernetHeader, Ipv4Header, UdpHeader, ipv4, udp};

/// The marker that starts a load-generator payload, followed by the send
/// time (CLOCK_REALTIME, nanoseconds, big-endian u64) and a u64 counter:
/// bpc-sim's latency marker (`bpc_receiver::LATENCY_MARKER`), so `bpc-sim receive`
/// reports capture-to-receive latency for the agent's stream.
pub const MARKER: &[u8; 4] = b"BPCT";
/// Offset of the send time in the payload.
pub const STAMP_AT: usize = 4;
/// Offset of the counter in the payload.
pub const COUNTER_AT: usize = 12;
/// Bytes of payload the stamps need.
pub const STAMP_LEN: usize = 20;

/// Command-line arguments as `--name value` pairs.
pub struct Args(Vec<String>);

impl Args {
    /// Reads the process arguments.
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1).collect())
    }

    /// The value after `--name`, parsed, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        let flag = format!("--{name}");
        match self.0.iter().position(|a| *a == flag) {
            Some(i) => self.0.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("invalid or missing value for {flag}");
                std::process::exit(2)
            }),
            None => default,
        }
    }
}

/// CPU seconds (user + system) this process has used.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME), shared by every
/// namespace on the machine, so sender and receiver clocks agree.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Batches of datagrams sent with one `sendmmsg` each, from buffers that
/// are allocated once.
pub struct Batch {
    fd: i32,
    bufs: Vec<Vec<u8>>,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// One destination per message (heap, so pointers into it stay valid).
    addrs: Vec<libc::sockaddr_in>,
}

impl Batch {
    /// A batch of `n` datagrams of `len` bytes each for socket `fd`, sent to `to`.
    pub fn new(fd: i32, n: usize, len: usize, to: SocketAddrV4) -> Self {
        // SAFETY: plain C struct, zero is a valid value.
        let mut addr: libc::sockaddr_in = unsafe { zeroed() };
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_port = to.port().to_be();
        addr.sin_addr.s_addr = u32::from(*to.ip()).to_be();
        let mut b = Self {
            fd,
            bufs: vec![vec![0u8; len]; n],
            iovecs: Vec::new(),
            msgs: Vec::new(),
            addrs: vec![addr; n],
        };
        b.iovecs = b
            .bufs
            .iter_mut()
            .map(|buf| libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len })
            .collect();
        b.msgs = b
            .iovecs
            .iter_mut()
            .zip(b.addrs.iter_mut())
            .map(|(iov, addr)| {
                // SAFETY: zeroed mmsghdr is valid; the pointers are into Vec
                // buffers that never move or grow while `b` lives.
                let mut m: libc::mmsghdr = unsafe { zeroed() };
                m.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        b
    }

    /// The datagram buffers, to fill before `send`.
    pub fn bufs(&mut self) -> &mut [Vec<u8>] {
        &mut self.bufs
    }

    /// Sets the destination port of message `i`.
    pub fn set_port(&mut self, i: usize, port: u16) {
        self.addrs[i].sin_port = port.to_be();
    }

    /// Sends the first `n` datagrams; returns how many the kernel took.
    pub fn send(&mut self, n: usize) -> io::Result<usize> {
        // SAFETY: msgs point to live iovecs, addresses and buffers owned by self.
        let r = unsafe { libc::sendmmsg(self.fd, self.msgs.as_mut_ptr(), n as u32, 0) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
    }
}

/// Opens a socket or exits with the OS error.
pub fn socket(domain: i32, ty: i32, proto: i32) -> i32 {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(domain, ty, proto) };
    if fd < 0 {
        eprintln!("socket: {}", io::Error::last_os_error());
        std::process::exit(1);
    }
    fd
}

/// Paces a sender to `pps` packets per second (0: as fast as possible) for
/// `seconds`, calling `send_batch(max)` which returns how many it sent.
/// Sends whatever is due every 50 us (smooth traffic, for the generator).
pub fn paced(pps: u64, seconds: f64, batch: usize, send_batch: impl FnMut(usize) -> usize) -> (u64, f64) {
    paced_in_batches(pps, seconds, batch, 1, send_batch)
}

/// Like [`paced`], but waits until `min_batch` packets are due before
/// sending: a forwarder batches what it captured in a ring block, so the
/// send floor must batch as well to be the floor at a paced rate too.
pub fn paced_in_batches(
    pps: u64,
    seconds: f64,
    batch: usize,
    min_batch: usize,
    mut send_batch: impl FnMut(usize) -> usize,
) -> (u64, f64) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due =
            if pps == 0 { sent + batch as u64 } else { ((now - start).as_secs_f64() * pps as f64) as u64 };
        let want = sent + min_batch.max(1) as u64;
        if due < want {
            // Sleep until the batch is due (at least 50 us): every wake-up
            // costs CPU that would be charged to the sender.
            let at = Duration::from_secs_f64(want as f64 / pps as f64);
            std::thread::sleep(at.saturating_sub(now - start).max(Duration::from_micros(50)));
            continue;
        }
        let n = (due - sent).min(batch as u64) as usize;
        sent += send_batch(n) as u64;
    }
    (sent, start.elapsed().as_secs_f64())
}

/// Writes an Ethernet/IPv4/UDP frame of exactly `out.len()` bytes (42 to
/// 65535) from `src` to `dst` into `out`, DF set, with zero UDP checksum.
pub fn udp_frame(out: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let at = ipv4_frame(out, src, dst, ipv4::IPPROTO_UDP);
    let payload_len = out.len() - at - udp::HEADER_LEN;
    let udp = UdpHeader { source_port: 40000, destination_port: 9, payload_len };
    udp.encode(&mut out[at..]).expect("frame holds UDP");
}

/// Writes the Ethernet and IPv4 headers (DF set, no options) of a frame of
/// exactly `out.len()` bytes from `src` to `dst` carrying `protocol`;
/// returns where the IP payload starts.
pub fn ipv4_frame(out: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> usize {
    let eth = EthernetHeader { destination: [2, 0, 0, 0, 0, 2], source: [2, 0, 0, 0, 0, 1], ethertype: ETHERTYPE_IPV4 };
    let ip = Ipv4Header {
        source: src,
        destination: dst,
        protocol,
        ttl: 64,
        identification: 0,
        dont_fragment: true,
        payload_len: out.len() - ethernet::HEADER_LEN - ipv4::HEADER_LEN,
    };
    let at = eth.encode(out).expect("frame holds Ethernet");
    at + ip.encode(&mut out[at..]).expect("frame holds IPv4")
}
