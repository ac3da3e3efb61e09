//! `bpc-sim replay`: sends pcap or synthetic frames encapsulated exactly as
//! an agent does (GRE, VXLAN, ERSPAN II or III), with optional sequence
//! mangling for loss tests.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bpc_wire::ethernet::{self, ETHERTYPE_IPV4};
use bpc_wire::{
    Direction, Encapsulation, EthernetHeader, FrameInfo, GreProfile, Ipv4Header, UdpHeader, ipv4, udp,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::Error;

/// Options of `bpc-sim replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// pcap or pcapng file (omit with --synthetic).
    pub file: Option<String>,
    /// Collector host or address.
    #[arg(long)]
    pub to: String,
    /// GRE key (decimal or 0x-hex).
    #[arg(long, default_value = "0")]
    pub key: String,
    /// standard or netis.
    #[arg(long, default_value = "standard")]
    pub profile: GreProfile,
    /// gre, vxlan, erspan-ii or erspan-iii (VNI and session from --key, as an agent's).
    #[arg(long, default_value = "gre")]
    pub encap: bpc_contract::Encap,
    /// VXLAN destination port.
    #[arg(long, default_value_t = bpc_wire::vxlan::PORT)]
    pub vxlan_port: u16,
    /// Packets per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub pps: u64,
    /// Times to send the file.
    #[arg(long = "loop", default_value_t = 1)]
    pub loops: u64,
    /// Sequence mangling: skip=N,swap=N,dup=N (comma separated, repeatable keys).
    #[arg(long)]
    pub mangle: Option<String>,
    /// Generate Ethernet/IPv4/UDP frames with a send timestamp instead of a file.
    #[arg(long)]
    pub synthetic: bool,
    /// Synthetic frame size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Synthetic frame count.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
}

/// The longest frame sent (longer pcap frames are cut): what one GRE packet can carry.
const MAX_FRAME: usize = 65536;

/// How sequence numbers are altered.
#[derive(Debug, Default, Clone)]
pub struct Mangle {
    /// Sequence numbers never sent (loss).
    pub skip: HashSet<u32>,
    /// Packet N sent after N+1 (reorder).
    pub swap: HashSet<u32>,
    /// Sequence numbers sent twice (duplicate).
    pub dup: HashSet<u32>,
}

impl Mangle {
    /// Parses `skip=5,swap=10,dup=3`.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let mut m = Mangle::default();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| Error::Invalid { what: "--mangle", message: part.to_string() })?;
            let n: u32 =
                v.parse().map_err(|_| Error::Invalid { what: "--mangle", message: part.to_string() })?;
            match k {
                "skip" => m.skip.insert(n),
                "swap" => m.swap.insert(n),
                "dup" => m.dup.insert(n),
                _ => return Err(Error::Invalid { what: "--mangle", message: format!("unknown {k}") }),
            };
        }
        Ok(m)
    }

    /// The sequence numbers to send, in order, for `n` packets.
    pub fn order(&self, n: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(n as usize);
        let mut i = 0;
        while i < n {
            if self.swap.contains(&i) && i + 1 < n {
                out.push(i + 1);
                out.push(i);
                i += 2;
                continue;
            }
            out.push(i);
            i += 1;
        }
        out.retain(|s| !self.skip.contains(s));
        let mut res = Vec::with_capacity(out.len());
        for s in out {
            res.push(s);
            if self.dup.contains(&s) {
                res.push(s);
            }
        }
        res
    }
}

/// Where the latency marker starts in a synthetic frame: after Ethernet, IPv4 and UDP.
const MARKER_AT: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// The marker and the send time after it.
const STAMP_LEN: usize = 12;

/// Builds a synthetic Ethernet/IPv4/UDP frame 198.18.0.1 -> 198.18.0.2 of `size` bytes.
pub fn synthetic_frame(size: usize, index: u64) -> Vec<u8> {
    let size = size.clamp(MARKER_AT + STAMP_LEN, MAX_FRAME);
    let mut f = vec![0u8; size];
    let eth = EthernetHeader {
        destination: [0x02, 0, 0, 0, 0, 2],
        source: [0x02, 0, 0, 0, 0, 1],
        ethertype: ETHERTYPE_IPV4,
    };
    let ip = Ipv4Header {
        source: Ipv4Addr::new(198, 18, 0, 1),
        destination: Ipv4Addr::new(198, 18, 0, 2),
        protocol: ipv4::IPPROTO_UDP,
        ttl: 64,
        identification: index as u16,
        dont_fragment: false,
        payload_len: size - ethernet::HEADER_LEN - ipv4::HEADER_LEN,
    };
    let udp = UdpHeader { source_port: 40000, destination_port: 9999, payload_len: size - MARKER_AT };
    let headers = |f: &mut [u8]| -> Result<usize, bpc_wire::WireError> {
        let mut at = eth.encode(f)?;
        at += ip.encode(&mut f[at..])?;
        at += udp.encode(&mut f[at..])?;
        Ok(at)
    };
    // The size is clamped to what the length fields hold.
    let at = headers(&mut f).expect("synthetic frame headers fit");
    f[at..at + 4].copy_from_slice(bpc_receiver::LATENCY_MARKER);
    f
}

fn stamp(frame: &mut [u8]) {
    let ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    frame[MARKER_AT + 4..MARKER_AT + STAMP_LEN].copy_from_slice(&ns.to_be_bytes());
}

/// Reads the frames of a pcap or pcapng file.
pub fn read_frames(path: &str) -> Result<Vec<Vec<u8>>, Error> {
    let data = std::fs::read(path).map_err(|source| Error::File { path: path.to_string(), source })?;
    let mut frames = Vec::new();
    if data.len() >= 4 && data[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = pcap_file::pcapng::PcapNgReader::new(&data[..])?;
        while let Some(b) = r.next_block() {
            match b? {
                pcap_file::pcapng::Block::EnhancedPacket(p) => frames.push(p.data.to_vec()),
                pcap_file::pcapng::Block::SimplePacket(p) => frames.push(p.data.to_vec()),
                _ => {}
            }
        }
    } else {
        let mut r = pcap_file::pcap::PcapReader::new(&data[..])?;
        while let Some(p) = r.next_packet() {
            frames.push(p?.data.to_vec());
        }
    }
    Ok(frames)
}

/// What replay did.
#[derive(Debug, Clone, Copy)]
pub struct ReplayStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Send errors.
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs a replay.
pub fn run_replay(args: &ReplayArgs) -> Result<ReplayStats, Error> {
    let key: u32 = args
        .key
        .parse::<bpc_wire::WorkloadKey>()
        .map_err(|_| Error::Invalid { what: "--key", message: args.key.clone() })?
        .0;
    let mangle = match &args.mangle {
        Some(s) => Mangle::parse(s)?,
        None => Mangle::default(),
    };
    let dest: IpAddr = match args.to.parse() {
        Ok(a) => a,
        Err(_) => (args.to.as_str(), 0)
            .to_socket_addrs()
            .map_err(|source| Error::Socket { what: format!("resolving {}", args.to), source })?
            .next()
            .ok_or_else(|| Error::Invalid { what: "--to", message: format!("{} has no address", args.to) })?
            .ip(),
    };
    if args.synthetic && args.size > MAX_FRAME {
        return Err(Error::Invalid {
            what: "--size",
            message: format!("{} (at most {MAX_FRAME})", args.size),
        });
    }
    let frames = if args.synthetic {
        (0..args.count).map(|i| synthetic_frame(args.size, i)).collect()
    } else {
        let f = args
            .file
            .as_deref()
            .ok_or(Error::Invalid { what: "replay", message: "FILE or --synthetic".into() })?;
        read_frames(f)?
    };
    let wkey = bpc_wire::WorkloadKey(key);
    let encapsulation = match bpc_wire::Encap::from(args.encap) {
        bpc_wire::Encap::Gre => Encapsulation::Gre { profile: args.profile, key },
        bpc_wire::Encap::Vxlan => {
            Encapsulation::Vxlan { vni: bpc_wire::vxlan::vni_of(wkey), port: args.vxlan_port }
        }
        bpc_wire::Encap::ErspanII => {
            Encapsulation::ErspanII { session: bpc_wire::erspan::session_of(wkey), index: 0 }
        }
        bpc_wire::Encap::ErspanIII => {
            Encapsulation::ErspanIII { session: bpc_wire::erspan::session_of(wkey), port_index: 0 }
        }
    };
    let domain = if dest.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    // VXLAN through an ordinary UDP socket: the kernel writes UDP (and its
    // checksum, which IPv6 needs); the VXLAN header and frame are ours. One
    // source port: replay is one sender, it needs no ECMP spread.
    let vxlan = matches!(encapsulation, Encapsulation::Vxlan { .. });
    let (socket, port, skip) = if vxlan {
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|source| Error::Socket { what: "opening a UDP socket".into(), source })?;
        (s, args.vxlan_port, udp::HEADER_LEN)
    } else {
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(bpc_wire::IPPROTO_GRE as i32)))
            .map_err(|source| Error::Socket { what: "opening a raw GRE socket".into(), source })?;
        (s, 0, 0)
    };
    socket
        .connect(&SocketAddr::new(dest, port).into())
        .map_err(|source| Error::Socket { what: format!("connecting to {dest}"), source })?;
    let _ = socket.set_send_buffer_size(16 << 20);
    let total = frames.len() as u64 * args.loops;
    let order = mangle.order(u32::try_from(total).unwrap_or(u32::MAX));
    let n = frames.len();
    let mut stats = ReplayStats { sent: 0, errors: 0, elapsed: Duration::ZERO };
    if n == 0 {
        return Ok(stats);
    }
    let start = Instant::now();
    const BATCH: usize = 64;
    let mut bufs: Vec<Vec<u8>> =
        (0..BATCH).map(|_| vec![0u8; bpc_wire::encap::MAX_HEADER_LEN + MAX_FRAME]).collect();
    let fd = socket.as_raw_fd();
    for chunk in order.chunks(BATCH) {
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH);
        for (i, &seq) in chunk.iter().enumerate() {
            let frame = &frames[seq as usize % n];
            let buf = &mut bufs[i];
            let direction = if seq % 2 == 0 { Direction::Outbound } else { Direction::Inbound };
            // A frame of MAX_FRAME is cut so that the longest header still fits UDP's length.
            let len = frame.len().min(MAX_FRAME - encapsulation.header_len());
            let captured = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let info = FrameInfo { head: frame, len, sequence: seq, direction, vlan: None, captured };
            let h = encapsulation.write_header(&mut buf[..], &info).expect("the header fits MAX_HEADER_LEN");
            buf[h..h + len].copy_from_slice(&frame[..len]);
            if args.synthetic {
                stamp(&mut buf[h..h + len]);
            }
            // The UDP socket writes UDP itself: VXLAN from its header on.
            iovs.push(libc::iovec { iov_base: buf[skip..].as_mut_ptr().cast(), iov_len: h + len - skip });
        }
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is integers and raw pointers: all zeroes (null
                // pointers, zero lengths) is a valid, empty message.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let mut off = 0;
        while off < msgs.len() {
            // SAFETY: msgs point at live iovecs over bufs.
            let r = unsafe { libc::sendmmsg(fd, msgs[off..].as_mut_ptr(), (msgs.len() - off) as u32, 0) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) || e.raw_os_error() == Some(libc::EAGAIN) {
                    std::thread::sleep(Duration::from_micros(50));
                    continue;
                }
                stats.errors += 1;
                off += 1;
            } else {
                off += r as usize;
                stats.sent += r as u64;
            }
        }
        if args.pps > 0 {
            let due = Duration::from_secs_f64(stats.sent as f64 / args.pps as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mangle_skips_swaps_and_duplicates_exactly_the_named_numbers() {
        let m = Mangle::parse("skip=1,swap=3,dup=6").unwrap();
        assert_eq!(m.order(8), vec![0, 2, 4, 3, 5, 6, 6, 7]);
    }

    #[test]
    fn mangle_rejects_unknown_operations() {
        assert!(Mangle::parse("drop=3").is_err());
        assert!(Mangle::parse("skip=x").is_err());
    }

    #[test]
    fn synthetic_frame_is_valid_udp_with_the_latency_marker() {
        let mut f = synthetic_frame(200, 3);
        stamp(&mut f);
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::TransportSlice::Udp(u)) = p.transport else { panic!("not udp") };
        assert_eq!(&u.payload()[..4], bpc_receiver::LATENCY_MARKER);
        assert_eq!(f.len(), 200);
        assert_eq!(bpc_wire::internet_checksum(&[&f[14..34]]), 0, "IPv4 header checksum verifies");
    }
}
