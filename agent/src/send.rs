//! Sending GRE packets to the collectors: raw IPPROTO_GRE sockets (the kernel
//! adds the outer IP header) and `sendmmsg` batches whose messages are iovec
//! lists `[GRE header, frame]` pointing at the capture ring, so frames are not
//! copied and nothing is allocated per packet; or, for IPv4 collectors whose
//! next hop is resolved, the AF_PACKET TX ring of [`crate::txring`] (cheaper
//! per packet), with the raw socket as the fallback.

use std::io;
use std::mem::{size_of, size_of_val};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Instant;

use bpc_wire::{Direction, GreProfile};

use crate::config::SendPath;
use crate::error::{Error, Result};
use crate::route::Link;
use crate::stats::{SendErrorKind, Stats};
use crate::txring::TxRing;

/// Messages per `sendmmsg` call.
pub const BATCH: usize = 64;
/// Room for frames the agent builds itself (segments, re-tagged frames):
/// enough for a batch of full-size segments before a flush is forced.
const ARENA_SIZE: usize = 256 * 1024;
/// Largest IPv4 packet: a GRE packet (and frame) must fit it even when fragmented.
pub const MAX_IP_PACKET: usize = 65_535;
/// Every this many link refreshes (one a second), one batch per collector
/// goes through the raw socket even when the TX ring could take it: the
/// kernel then keeps verifying the next hop's neighbour entry, which the
/// ring bypasses, so a changed gateway MAC is learnt.
const RAW_BATCH_EVERY: u32 = 5;

/// A collector address the batch goes to.
#[derive(Clone, Copy)]
struct Destination {
    /// Index into [`Stats::collectors`].
    collector: usize,
    ip: IpAddr,
    addr: libc::sockaddr_storage,
    addr_len: libc::socklen_t,
    v6: bool,
}

/// Where a message's frame bytes are.
#[derive(Clone, Copy)]
struct Slot {
    header: [u8; bpc_wire::gre::MAX_HEADER_LEN],
    header_len: usize,
    /// First part of the frame (all of it unless a VLAN tag is put back).
    frame: *const u8,
    frame_len: usize,
    /// A VLAN tag inserted after the first 12 frame bytes.
    tag: Option<[u8; 4]>,
}

/// Builds GRE packets in batches and sends each batch to every collector.
pub struct Sender {
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
    profile: GreProfile,
    key: u32,
    own_mac: [u8; 6],
    sequence: u32,
    slots: Vec<Slot>,
    used: usize,
    iovecs: Vec<[libc::iovec; 4]>,
    msgs: Vec<libc::mmsghdr>,
    arena: Vec<u8>,
    arena_used: usize,
    destinations: Vec<Destination>,
    /// Per destination: how to reach it over the TX ring, if it can be.
    links: Vec<Option<Link>>,
    send_path: SendPath,
    ring: Option<TxRing>,
    /// The TX ring could not be opened: the raw socket for good.
    ring_failed: bool,
    refreshes: u32,
    /// The next flush uses the raw socket for every destination.
    raw_batch_due: bool,
    /// Something was sent since the last [`Sender::refresh_links`].
    busy: bool,
    /// Per destination: the path last logged.
    announced: Vec<Option<Link>>,
    /// GRE lengths of the frames pushed to the ring in this flush.
    ring_lens: Vec<usize>,
}

// SAFETY: the raw pointers in `slots` point into the arena or the capture ring
// and are only used by the thread that owns the Sender.
unsafe impl Send for Sender {}

fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a c_int value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as u32,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Opens a raw GRE socket for one address family: non-blocking (a full queue
/// drops, it never blocks capture), DF clear (oversize packets are
/// fragmented rather than refused), and a filter that drops everything it
/// would otherwise receive (all GRE arriving in the pod).
fn open_raw(family: libc::c_int) -> Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::c_int::from(bpc_wire::IPPROTO_GRE),
        )
    };
    if raw < 0 {
        return Err(Error::last_os("open the raw GRE socket"));
    }
    // SAFETY: fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let drop_all = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }];
    crate::packet_socket::attach_filter(&fd, &drop_all)?;
    let pmtu = if family == libc::AF_INET {
        set_int(&fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DONT)
    } else {
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DONT)
    };
    pmtu.map_err(|e| Error::os("clear DF on the GRE socket", e))?;
    // Without RECVERR an unconnected raw socket ignores ICMP errors: a
    // collector host with no GRE receiver would look healthy.
    let recverr = if family == libc::AF_INET {
        set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
    } else {
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
    };
    recverr.map_err(|e| Error::os("enable ICMP error reports on the GRE socket", e))?;
    // Absorbs bursts; the kernel caps it at net.core.wmem_max.
    let _ = set_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20);
    Ok(fd)
}

fn sockaddr(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match SocketAddr::new(ip, 0) {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_addr.s6_addr = a.ip().octets();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

impl Sender {
    /// Opens the raw sockets. IPv4 is required (it is also the capability
    /// check); IPv6 is optional, for clusters with IPv6 disabled.
    pub fn new(profile: GreProfile, key: u32, own_mac: [u8; 6]) -> Result<Sender> {
        let v4 = open_raw(libc::AF_INET)?;
        let v6 = open_raw(libc::AF_INET6).ok();
        let empty_slot = Slot {
            header: [0; bpc_wire::gre::MAX_HEADER_LEN],
            header_len: 0,
            frame: std::ptr::null(),
            frame_len: 0,
            tag: None,
        };
        let empty_iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Ok(Sender {
            v4: Some(v4),
            v6,
            profile,
            key,
            own_mac,
            sequence: 0,
            slots: vec![empty_slot; BATCH],
            used: 0,
            iovecs: vec![[empty_iov; 4]; BATCH],
            // SAFETY: mmsghdr is plain data; zero is valid (filled before each send).
            msgs: vec![unsafe { std::mem::zeroed() }; BATCH],
            arena: vec![0; ARENA_SIZE],
            arena_used: 0,
            destinations: Vec::new(),
            links: Vec::new(),
            send_path: SendPath::Raw,
            ring: None,
            ring_failed: false,
            refreshes: 0,
            raw_batch_due: false,
            busy: false,
            announced: Vec::new(),
            ring_lens: Vec::with_capacity(BATCH),
        })
    }

    /// Chooses the send path; with [`SendPath::Auto`], call
    /// [`Sender::refresh_links`] every second.
    pub fn set_send_path(&mut self, path: SendPath) {
        self.send_path = path;
        self.look_up_links();
    }

    /// Call every second. While packets flow, looks the links up again
    /// ([`Sender::look_up_links`]) and, every few seconds, routes one batch
    /// through the raw socket. When nothing was sent since the last call it
    /// reads nothing (an idle agent costs next to no CPU) and forgets the
    /// links: traffic resuming after a pause takes the raw socket, which
    /// refreshes the neighbour entry, until the next call finds it again.
    pub fn refresh_links(&mut self) {
        if !std::mem::take(&mut self.busy) {
            self.links.iter_mut().for_each(|l| *l = None);
            return;
        }
        self.refreshes = self.refreshes.wrapping_add(1);
        if self.refreshes.is_multiple_of(RAW_BATCH_EVERY) {
            self.raw_batch_due = true;
        }
        self.look_up_links();
    }

    /// Looks up, for every IPv4 destination, the egress interface and next
    /// hop MAC for the TX ring (opened on first use). A destination without a
    /// complete neighbour entry, on another interface than the ring's, or
    /// IPv6, keeps the raw socket. Reads two small /proc files and the
    /// interface's sysfs entries.
    pub fn look_up_links(&mut self) {
        let mut links = Vec::with_capacity(self.destinations.len());
        for d in &self.destinations {
            let link = match d.ip {
                IpAddr::V4(ip) if self.send_path == SendPath::Auto && !self.ring_failed => {
                    crate::route::link_to(ip)
                }
                _ => None,
            };
            let link = link.filter(|l| match &self.ring {
                Some(ring) => ring.ifindex() == l.ifindex,
                None => match TxRing::open(l.ifindex, l.mtu, BATCH) {
                    Ok(ring) => {
                        self.ring = Some(ring);
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open the AF_PACKET TX ring; sending through the raw socket");
                        self.ring_failed = true;
                        false
                    }
                },
            });
            links.push(link);
        }
        self.announced.resize(links.len(), None);
        for (i, link) in links.iter().enumerate() {
            // Compared with what was last logged, not with `links`, which an
            // idle pause clears silently.
            let before = std::mem::replace(&mut self.announced[i], link.clone());
            if before.as_ref() == link.as_ref() {
                continue;
            }
            let ip = self.destinations[i].ip;
            match link {
                Some(l) => tracing::info!(
                    collector = %ip,
                    interface = %l.ifname,
                    next_hop_mac = %crate::iface::format_mac(&l.dst_mac),
                    source = %l.src_ip,
                    "sending through the AF_PACKET TX ring"
                ),
                None if before.is_some() => {
                    tracing::info!(collector = %ip, "sending through the raw GRE socket")
                }
                None => {}
            }
        }
        self.links = links;
    }

    /// Sets where batches go: `(collector index, address)` for every resolved collector.
    pub fn set_destinations(&mut self, resolved: &[(usize, IpAddr)]) {
        self.destinations = resolved
            .iter()
            .map(|&(collector, ip)| {
                let (addr, addr_len) = sockaddr(ip);
                Destination { collector, ip, addr, addr_len, v6: ip.is_ipv6() }
            })
            .collect();
        self.links = vec![None; self.destinations.len()];
        self.announced = vec![None; self.destinations.len()];
        self.look_up_links();
    }

    /// The GRE header length of the profile.
    pub fn header_len(&self) -> usize {
        self.profile.header_len()
    }

    /// The next sequence number (= GRE packets built so far, modulo 2^32).
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    fn push_slot(&mut self, frame: *const u8, frame_len: usize, tag: Option<[u8; 4]>, first: &[u8]) {
        let slot = &mut self.slots[self.used];
        let direction = if self.profile == GreProfile::Netis {
            Direction::of_frame(first, &self.own_mac)
        } else {
            Direction::Unknown
        };
        slot.header_len = self
            .profile
            .write_header(&mut slot.header, self.key, self.sequence, direction)
            .expect("GRE header fits MAX_HEADER_LEN");
        slot.frame = frame;
        slot.frame_len = frame_len;
        slot.tag = tag;
        self.sequence = self.sequence.wrapping_add(1);
        self.used += 1;
    }

    /// Queues a frame without copying it; `tag` (if any) is put back after
    /// the MAC addresses. Flushes first if the batch is full.
    ///
    /// # Safety
    /// `frame` must stay valid and unchanged until the next [`Sender::flush`]
    /// (or a push that flushes): the capture loop gives its ring block back
    /// only after flushing.
    pub unsafe fn push_borrowed(&mut self, frame: &[u8], tag: Option<[u8; 4]>, stats: &Stats) {
        if self.used == BATCH {
            self.flush(stats);
        }
        self.push_slot(frame.as_ptr(), frame.len(), tag.filter(|_| frame.len() >= 12), frame);
    }

    /// Queues a copy of `frame` (for frames built in a temporary buffer).
    /// Flushes first if the batch or the copy arena is full.
    pub fn push_copied(&mut self, frame: &[u8], stats: &Stats) {
        let frame = &frame[..frame.len().min(ARENA_SIZE)];
        if self.used == BATCH || self.arena_used + frame.len() > ARENA_SIZE {
            self.flush(stats);
        }
        let start = self.arena_used;
        self.arena[start..start + frame.len()].copy_from_slice(frame);
        self.arena_used += frame.len();
        let ptr = self.arena[start..].as_ptr();
        self.push_slot(ptr, frame.len(), None, frame);
    }

    /// Frames queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.used
    }

    /// Sends every queued frame to every destination and records the outcome.
    /// Never blocks: a full queue or an unreachable collector is counted and
    /// the frames are dropped for that collector.
    pub fn flush(&mut self, stats: &Stats) {
        let n = self.used;
        if n == 0 {
            return;
        }
        for i in 0..n {
            let slot = &self.slots[i];
            let iov = &mut self.iovecs[i];
            iov[0] = libc::iovec { iov_base: slot.header.as_ptr() as *mut _, iov_len: slot.header_len };
            match &slot.tag {
                None => iov[1] = libc::iovec { iov_base: slot.frame as *mut _, iov_len: slot.frame_len },
                Some(tag) => {
                    iov[1] = libc::iovec { iov_base: slot.frame as *mut _, iov_len: 12 };
                    iov[2] = libc::iovec { iov_base: tag.as_ptr() as *mut _, iov_len: 4 };
                    // SAFETY: frame_len >= 12 (checked at push).
                    iov[3] = libc::iovec {
                        iov_base: unsafe { slot.frame.add(12) } as *mut _,
                        iov_len: slot.frame_len - 12,
                    };
                }
            }
        }
        let now = Instant::now();
        let raw_batch = std::mem::take(&mut self.raw_batch_due);
        self.busy = true;
        for d in 0..self.destinations.len() {
            let dest = self.destinations[d];
            if !raw_batch && self.flush_ring(d, n, stats, now) {
                continue;
            }
            let fd = if dest.v6 { self.v6.as_ref() } else { self.v4.as_ref() };
            let cs = &stats.collectors[dest.collector];
            let Some(fd) = fd else {
                cs.errors(SendErrorKind::Other).fetch_add(n as u64, Ordering::Relaxed);
                cs.last_error.set(stats.started, now);
                continue;
            };
            for i in 0..n {
                let m = &mut self.msgs[i];
                m.msg_hdr.msg_name = (&raw const dest.addr) as *mut _;
                m.msg_hdr.msg_namelen = dest.addr_len;
                m.msg_hdr.msg_iov = self.iovecs[i].as_mut_ptr();
                m.msg_hdr.msg_iovlen = if self.slots[i].tag.is_some() { 4 } else { 2 };
                m.msg_hdr.msg_control = std::ptr::null_mut();
                m.msg_hdr.msg_controllen = 0;
                m.msg_hdr.msg_flags = 0;
                m.msg_len = 0;
            }
            let (mut sent, mut bytes, mut off) = (0u64, 0u64, 0usize);
            let mut failed_in_a_row = 0;
            while off < n {
                // SAFETY: msgs[off..n] are filled above with pointers into self.slots,
                // self.iovecs, dest and frames the caller keeps valid until now.
                let rc = unsafe {
                    libc::sendmmsg(
                        fd.as_raw_fd(),
                        self.msgs[off..].as_mut_ptr(),
                        (n - off) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc > 0 {
                    failed_in_a_row = 0;
                    let rc = rc as usize;
                    sent += rc as u64;
                    bytes += self.msgs[off..off + rc].iter().map(|m| u64::from(m.msg_len)).sum::<u64>();
                    off += rc;
                    continue;
                }
                let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if errno == libc::EINTR {
                    continue;
                }
                let kind = SendErrorKind::of_errno(errno);
                failed_in_a_row += 1;
                if kind == SendErrorKind::Other || failed_in_a_row == 1 {
                    // One bad message (EMSGSIZE), or a one-off error: a pending
                    // ICMP error fails exactly one send. Skip it, send the rest.
                    cs.errors(kind).fetch_add(1, Ordering::Relaxed);
                    off += 1;
                } else {
                    // Failing again at once (no route, queue full): the rest
                    // would fail the same way; count them without trying.
                    cs.errors(kind).fetch_add((n - off) as u64, Ordering::Relaxed);
                    off = n;
                }
                cs.last_error.set(stats.started, now);
            }
            if sent > 0 {
                cs.sent_packets.fetch_add(sent, Ordering::Relaxed);
                cs.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
                cs.last_send.set(stats.started, now);
            }
        }
        self.used = 0;
        self.arena_used = 0;
    }

    /// Sends the batch's `n` frames to destination `d` through the TX ring.
    /// Returns false (nothing done) when the ring cannot take them: no link,
    /// or a packet that does not fit the MTU (the raw socket fragments it).
    fn flush_ring(&mut self, d: usize, n: usize, stats: &Stats, now: Instant) -> bool {
        let (Some(ring), Some(Some(link))) = (self.ring.as_mut(), self.links.get(d)) else {
            return false;
        };
        let slots = &self.slots[..n];
        let gre_len = |s: &Slot| s.header_len + s.frame_len + if s.tag.is_some() { 4 } else { 0 };
        if !slots.iter().all(|s| ring.fits(link, gre_len(s))) {
            return false;
        }
        let cs = &stats.collectors[self.destinations[d].collector];
        self.ring_lens.clear();
        let mut full = 0u64;
        for slot in slots {
            // SAFETY: slot.frame points to frame_len bytes the caller keeps
            // valid until this flush returns (see push_borrowed/push_copied).
            let frame = unsafe { std::slice::from_raw_parts(slot.frame, slot.frame_len) };
            let header = &slot.header[..slot.header_len];
            let pushed = match &slot.tag {
                None => ring.push(link, &[header, frame]),
                Some(tag) => ring.push(link, &[header, &frame[..12], tag, &frame[12..]]),
            };
            if pushed {
                self.ring_lens.push(gre_len(slot));
            } else {
                full += 1;
            }
        }
        let (mut bytes, lens) = (0u64, &self.ring_lens);
        let flushed = ring.flush(|k, sent| {
            if sent {
                bytes += lens[k] as u64;
            }
        });
        if full > 0 {
            cs.errors(SendErrorKind::NoBuffer).fetch_add(full, Ordering::Relaxed);
            cs.last_error.set(stats.started, now);
        }
        if flushed.failed > 0 {
            let kind = match flushed.errno {
                0 => SendErrorKind::Other,
                e => SendErrorKind::of_errno(e),
            };
            cs.errors(kind).fetch_add(flushed.failed as u64, Ordering::Relaxed);
            cs.last_error.set(stats.started, now);
            if matches!(flushed.errno, libc::ENXIO | libc::ENODEV | libc::ENETDOWN) {
                // The interface went away or down: the raw socket until the next refresh.
                self.links[d] = None;
            }
        }
        if flushed.sent > 0 {
            cs.sent_packets.fetch_add(flushed.sent as u64, Ordering::Relaxed);
            cs.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
            cs.last_send.set(stats.started, now);
        }
        true
    }
}

/// What an ICMP error means for a collector, for logs and /healthz.
pub fn describe_icmp(v6: bool, icmp_type: u8, code: u8) -> String {
    let what = match (v6, icmp_type, code) {
        (false, 3, 0) | (true, 1, 0) => "network unreachable",
        (false, 3, 1) | (true, 1, 3) => "host unreachable",
        (false, 3, 2) | (true, 4, 1) => "protocol unreachable: no GRE receiver on the collector host",
        (false, 3, 3) | (true, 1, 4) => "port unreachable",
        (false, 3, 4) => "fragmentation needed",
        (true, 2, _) => "packet too big",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "administratively prohibited (firewall or NetworkPolicy)",
        (false, 11, _) | (true, 3, _) => "time exceeded",
        _ => "",
    };
    if what.is_empty() {
        format!("ICMP{} type {icmp_type} code {code}", if v6 { "v6" } else { "" })
    } else {
        what.to_owned()
    }
}

impl Sender {
    /// Reads the ICMP errors the kernel queued for packets we sent and counts
    /// them as `unreachable` for the collector they were sent to. Never blocks;
    /// call periodically (the queue is bounded by the receive buffer).
    pub fn drain_icmp_errors(&mut self, stats: &Stats) {
        for (fd, v6) in [(self.v4.as_ref(), false), (self.v6.as_ref(), true)] {
            let Some(fd) = fd else { continue };
            loop {
                // SAFETY: plain data buffers for recvmsg.
                let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let mut data = [0u8; 64];
                let mut control = [0u64; 64];
                let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
                // SAFETY: msghdr is plain data; the pointers below are valid for the call.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_name = (&raw mut name).cast();
                msg.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = size_of_val(&control);
                // SAFETY: recvmsg on our socket with the buffers above.
                let rc = unsafe {
                    libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT)
                };
                if rc < 0 {
                    break;
                }
                let Some((icmp_type, icmp_code)) = extended_error(&msg) else { continue };
                let Some(dest) = self.destinations.iter().find(|d| same_address(&d.addr, &name)) else {
                    continue;
                };
                let cs = &stats.collectors[dest.collector];
                let now = Instant::now();
                cs.unreachable.fetch_add(1, Ordering::Relaxed);
                cs.last_error.set(stats.started, now);
                cs.last_icmp.set(stats.started, now);
                let what = describe_icmp(v6, icmp_type, icmp_code);
                let mut last = cs.icmp_error.lock().unwrap_or_else(|e| e.into_inner());
                if last.as_deref() != Some(what.as_str()) {
                    tracing::warn!(collector = %cs.host, "collector answers with ICMP errors: {what}");
                    *last = Some(what);
                }
            }
        }
    }
}

/// The ICMP type and code of an error-queue message, if it carries one.
fn extended_error(msg: &libc::msghdr) -> Option<(u8, u8)> {
    // SAFETY: walks the control buffer recvmsg filled, with the libc CMSG macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR)
            {
                let ee: libc::sock_extended_err = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP || ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6 {
                    return Some((ee.ee_type, ee.ee_code));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// Whether two socket addresses (port ignored) name the same IP address.
fn same_address(a: &libc::sockaddr_storage, b: &libc::sockaddr_storage) -> bool {
    if a.ss_family != b.ss_family {
        return false;
    }
    // SAFETY: the family says which sockaddr type each storage holds.
    unsafe {
        match i32::from(a.ss_family) {
            libc::AF_INET => {
                let (a, b) = (
                    &*(a as *const _ as *const libc::sockaddr_in),
                    &*(b as *const _ as *const libc::sockaddr_in),
                );
                a.sin_addr.s_addr == b.sin_addr.s_addr
            }
            libc::AF_INET6 => {
                let (a, b) = (
                    &*(a as *const _ as *const libc::sockaddr_in6),
                    &*(b as *const _ as *const libc::sockaddr_in6),
                );
                a.sin6_addr.s6_addr == b.sin6_addr.s6_addr
            }
            _ => false,
        }
    }
}

/// Largest inner frame that fits one GRE packet on a path of `mtu` bytes.
pub fn max_frame_for(mtu: u32, ipv6: bool, gre_header_len: usize) -> usize {
    let outer = if ipv6 { 40 } else { 20 } + gre_header_len;
    (mtu as usize).saturating_sub(outer).max(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_frame_leaves_room_for_outer_ip_and_gre() {
        assert_eq!(max_frame_for(1500, false, 12), 1468);
        assert_eq!(max_frame_for(1500, true, 12), 1448);
        assert_eq!(max_frame_for(1500, false, 8), 1472);
        assert_eq!(max_frame_for(1450, false, 12), 1418);
    }
}
