//! The fast send path: an AF_PACKET TX ring (TPACKET_V2) with
//! `PACKET_QDISC_BYPASS` on the interface that leads to an IPv4 collector.
//!
//! The agent writes complete Ethernet + IPv4 + GRE packets into the ring's
//! frames and one `send()` hands the kernel the whole batch. Compared with
//! `sendmmsg` on a raw GRE socket this skips, per packet, the route lookup,
//! `ip_append_data`'s checksum-while-copying, the socket buffer accounting and
//! the qdisc; `scripts/bench.sh` measured it cheaper per packet (see
//! bench/README.md). It costs one copy of each frame into the ring (the raw
//! socket copies it too, into an skb).
//!
//! The kernel's routing is not consulted per packet, so the agent does it:
//! [`link_to`] picks the egress interface and next hop from `/proc/net/route`
//! (longest prefix, lowest metric), the source address from a connected UDP
//! socket and the next hop's MAC from `/proc/net/arp`. It is refreshed every
//! second; while there is no neighbour entry (or the collector is IPv6, or on
//! another interface, or a packet does not fit the MTU) the raw socket is
//! used, which also makes the kernel resolve the neighbour. The sender sends
//! one batch every few seconds through the raw socket so that the kernel
//! keeps verifying the neighbour entry (a gateway that changes its MAC is
//! noticed). Policy routing (`ip rule`) is not followed: use
//! `--send-path raw` (BPC_SEND_PATH) where it matters.

use std::fs;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{Ordering, fence};

use bpc_wire::ethernet::ETHERTYPE_IPV4;
use bpc_wire::{EthernetHeader, Ipv4Header};

use crate::error::{Error, Result};
use crate::iface::Interface;
use crate::route::{neighbour_mac, next_hop};

const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const TPACKET_V2: libc::c_int = 1;
/// Where a TPACKET_V2 TX frame's packet starts: TPACKET2_HDRLEN - sizeof(sockaddr_ll).
const DATA_AT: usize = 32;
const ETH_LEN: usize = bpc_wire::ethernet::HEADER_LEN;
const IPV4_LEN: usize = bpc_wire::ipv4::HEADER_LEN;
/// Ring size cap (frames are touched round-robin, so all of it becomes resident).
const RING_BYTES: usize = 512 * 1024;

/// How packets reach an IPv4 collector over the TX ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Egress interface.
    pub ifname: String,
    /// Its ifindex (the ring is bound to it).
    pub ifindex: u32,
    /// Its MTU: larger packets take the raw socket (which fragments).
    pub mtu: usize,
    /// Source MAC (the egress interface's).
    pub src_mac: [u8; 6],
    /// Next hop's MAC (the collector's, or the gateway's).
    pub dst_mac: [u8; 6],
    /// Source address the kernel would choose.
    pub src_ip: Ipv4Addr,
    /// The collector.
    pub dst_ip: Ipv4Addr,
}

/// The source address the kernel would use towards `dst` (no packet is sent).
fn source_address(dst: Ipv4Addr) -> Option<Ipv4Addr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(SocketAddr::new(IpAddr::V4(dst), 9)).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// How to reach `dst` over a TX ring right now, or `None` (no route, no
/// complete neighbour entry, not an Ethernet interface...): use the raw socket.
pub fn link_to(dst: Ipv4Addr) -> Option<Link> {
    let route = fs::read_to_string("/proc/net/route").ok()?;
    let (ifname, hop) = next_hop(&route, dst)?;
    let iface = Interface::by_name(&ifname).ok()?;
    if !iface.is_ethernet() || !iface.up {
        return None;
    }
    let dst_mac = neighbour_mac(&fs::read_to_string("/proc/net/arp").ok()?, hop, &ifname)?;
    Some(Link {
        ifindex: iface.index,
        mtu: iface.mtu as usize,
        src_mac: iface.mac,
        dst_mac,
        src_ip: source_address(dst)?,
        dst_ip: dst,
        ifname,
    })
}

fn set_opt<T>(fd: &OwnedFd, name: libc::c_int, value: &T, what: &'static str) -> Result<()> {
    crate::packet_socket::setsockopt(fd, libc::SOL_PACKET, name, value, what)
}

/// A TX ring bound to one interface.
pub struct TxRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    frame_size: usize,
    frames: usize,
    /// Next frame to fill.
    next: usize,
    /// Frames filled since the last [`TxRing::flush`]: `next - queued ..next`.
    queued: usize,
    ifindex: u32,
    /// Largest packet a frame holds (Ethernet header included).
    max_packet: usize,
    ip_id: u16,
}

// SAFETY: the mapping is owned by the TxRing and used by one thread at a time.
unsafe impl Send for TxRing {}

impl Drop for TxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping created in open().
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// What one [`TxRing::flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Packets the kernel transmitted.
    pub sent: usize,
    /// Packets dropped, and the errno of the failed `send()` (0: a frame the
    /// kernel refused as malformed).
    pub failed: usize,
    /// errno of the failure, when `failed > 0`.
    pub errno: i32,
}

impl TxRing {
    /// Opens a TX ring on `ifindex` of at least `min_frames` frames, each
    /// holding a packet of up to `mtu` bytes plus the Ethernet header.
    pub fn open(ifindex: u32, mtu: usize, min_frames: usize) -> Result<TxRing> {
        // Protocol 0: this socket never receives anything.
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::last_os("open the AF_PACKET send socket"));
        }
        // SAFETY: fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_opt(&fd, PACKET_VERSION, &TPACKET_V2, "set TPACKET_V2 on the send ring")?;
        set_opt(&fd, PACKET_QDISC_BYPASS, &1i32, "set PACKET_QDISC_BYPASS")?;
        // A malformed frame is skipped instead of stopping the ring.
        set_opt(&fd, PACKET_LOSS, &1i32, "set PACKET_LOSS")?;
        let frame_size = (DATA_AT + ETH_LEN + mtu).next_power_of_two().max(2048);
        let frames = (RING_BYTES / frame_size).max(min_frames);
        let block_size = frame_size.max(4096);
        let req = libc::tpacket_req {
            tp_block_size: block_size as u32,
            tp_block_nr: (frames * frame_size / block_size) as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frames as u32,
        };
        set_opt(&fd, PACKET_TX_RING, &req, "create the TX ring")?;
        let map_len = frames * frame_size;
        let map = crate::packet_socket::map_ring(&fd, map_len, 0, "map the TX ring")?;
        let ring = TxRing {
            fd,
            map: map.cast(),
            map_len,
            frame_size,
            frames,
            next: 0,
            queued: 0,
            ifindex,
            max_packet: ETH_LEN + mtu,
            ip_id: 0,
        };
        // SAFETY: sockaddr_ll is plain data; zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: binds our socket to the interface with a valid sockaddr_ll.
        let rc = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Error::last_os("bind the TX ring to its interface"));
        }
        Ok(ring)
    }

    /// The interface the ring sends on.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Whether a GRE packet of `gre_len` bytes (GRE header + frame) fits `link`'s MTU and a ring frame.
    pub fn fits(&self, link: &Link, gre_len: usize) -> bool {
        IPV4_LEN + gre_len <= link.mtu && ETH_LEN + IPV4_LEN + gre_len <= self.max_packet
    }

    fn status(&self, frame: usize) -> *mut u32 {
        // SAFETY: frame < frames; tp_status is the first field of each frame.
        unsafe { self.map.add(frame * self.frame_size).cast::<u32>() }
    }

    /// Writes one packet to `link` whose IP payload (of `protocol`: GRE, or
    /// UDP for VXLAN) is the concatenation of `parts` (which must
    /// [`fit`](TxRing::fits)). Returns false when the ring is full (frames
    /// still in flight): the packet is dropped.
    pub fn push(&mut self, link: &Link, protocol: u8, parts: &[&[u8]]) -> bool {
        let gre_len: usize = parts.iter().map(|p| p.len()).sum();
        let status = self.status(self.next);
        // SAFETY: volatile read of a word the kernel updates.
        if unsafe { status.read_volatile() } != libc::TP_STATUS_AVAILABLE {
            return false;
        }
        let len = ETH_LEN + IPV4_LEN + gre_len;
        // SAFETY: the frame is ours (AVAILABLE) and DATA_AT + len <= frame_size (fits()).
        let frame = unsafe {
            std::slice::from_raw_parts_mut(self.map.add(self.next * self.frame_size), DATA_AT + len)
        };
        let packet = &mut frame[DATA_AT..];
        let eth =
            EthernetHeader { destination: link.dst_mac, source: link.src_mac, ethertype: ETHERTYPE_IPV4 };
        // No DF (as the raw socket: IP_PMTUDISC_DONT), TTL 64.
        let ip = Ipv4Header {
            source: link.src_ip,
            destination: link.dst_ip,
            protocol,
            ttl: 64,
            identification: self.ip_id,
            dont_fragment: false,
            payload_len: gre_len,
        };
        // fits() sized the frame for both headers; a failure drops the packet like a full ring.
        if eth.encode(packet).and_then(|_| ip.encode(&mut packet[ETH_LEN..])).is_err() {
            return false;
        }
        let mut at = ETH_LEN + IPV4_LEN;
        for p in parts {
            packet[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        // SAFETY: the frame starts with a tpacket2_hdr; tp_len is its second word.
        unsafe { status.add(1).write_volatile(len as u32) };
        // The packet bytes must be visible before the kernel sees the status.
        fence(Ordering::Release);
        // SAFETY: hands the frame to the kernel.
        unsafe { status.write_volatile(libc::TP_STATUS_SEND_REQUEST) };
        self.ip_id = self.ip_id.wrapping_add(1);
        self.next = (self.next + 1) % self.frames;
        self.queued += 1;
        true
    }

    /// Transmits every queued frame (one `send()`, never blocks) and reports
    /// how many went out. Frames the kernel did not take are given back and
    /// counted as failed: like the raw socket, a failure drops, never retries.
    /// `each(k, sent)` is called for the k-th frame queued since the last flush.
    pub fn flush(&mut self, mut each: impl FnMut(usize, bool)) -> Flushed {
        let queued = std::mem::take(&mut self.queued);
        if queued == 0 {
            return Flushed::default();
        }
        // SAFETY: a send with no data transmits the ring's SEND_REQUEST frames.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        let errno = if rc < 0 { io::Error::last_os_error().raw_os_error().unwrap_or(0) } else { 0 };
        fence(Ordering::Acquire);
        let mut out = Flushed { errno, ..Flushed::default() };
        for k in 0..queued {
            let frame = (self.next + self.frames - queued + k) % self.frames;
            let status = self.status(frame);
            // SAFETY: volatile access to the frame's status word.
            match unsafe { status.read_volatile() } {
                libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_WRONG_FORMAT => {
                    // SAFETY: the kernel is not working on this frame: take it back.
                    unsafe { status.write_volatile(libc::TP_STATUS_AVAILABLE) };
                    out.failed += 1;
                    each(k, false);
                }
                _ => {
                    out.sent += 1;
                    each(k, true);
                }
            }
        }
        out
    }
}
