//! Sending GRE packets to the collectors: raw IPPROTO_GRE sockets (the kernel
//! adds the outer IP header) and `sendmmsg` batches whose messages are iovec
//! lists `[GRE header, frame]` pointing at the capture ring, so frames are not
//! copied and nothing is allocated per packet; or, for IPv4 collectors whose
//! next hop is resolved, the AF_PACKET TX ring of [`crate::txring`] (cheaper
//! per packet), with the raw socket as the fallback.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bpc_wire::Encapsulation;

use crate::batch::{BATCH, Batch};
use crate::capture::wall_clock;
use crate::config::SendPath;
use crate::error::Result;
use crate::link_watch::LinkWatch;
use crate::stats::{SendErrorKind, Stats};
use crate::txring::{Link, TxRing};
use crate::{gre_socket, icmp};

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

/// Builds GRE packets in batches and sends each batch to every collector.
pub struct Sender {
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
    /// The outer IP header's protocol (the TX ring writes it).
    ip_protocol: u8,
    batch: Batch,
    destinations: Vec<Destination>,
    tx: TxPath,
}

/// The choice, per destination, between the TX ring and the raw socket.
struct TxPath {
    send_path: SendPath,
    ring: Option<TxRing>,
    /// The TX ring could not be opened: the raw socket for good.
    ring_failed: bool,
    /// Per destination: how to reach it over the TX ring, if it can be.
    links: Vec<Option<Link>>,
    /// Per destination: the path last logged.
    announced: Vec<Option<Link>>,
    refreshes: u32,
    /// The next flush uses the raw socket for every destination.
    raw_batch_due: bool,
    /// Something was sent since the last [`Sender::refresh_links`].
    busy: bool,
    /// GRE lengths of the frames pushed to the ring in this flush.
    ring_lens: Vec<usize>,
    /// Looks the links up off the capture thread; `None` if its thread
    /// could not start (then [`Sender::refresh_links`] looks them up itself).
    watch: Option<LinkWatch>,
}

// SAFETY: the raw pointers in the batch point into its arena or the capture
// ring and are only used by the thread that owns the Sender.
unsafe impl Send for Sender {}

impl Sender {
    /// Opens the raw sockets of the encapsulation's IP protocol (GRE, or UDP
    /// for VXLAN). IPv4 is required (it is also the capability check); IPv6
    /// is optional, for clusters with IPv6 disabled.
    pub fn new(encapsulation: Encapsulation, own_mac: [u8; 6]) -> Result<Sender> {
        let protocol = encapsulation.ip_protocol();
        let v4 = gre_socket::open(libc::AF_INET, protocol)?;
        let v6 = gre_socket::open(libc::AF_INET6, protocol).ok();
        Ok(Sender {
            v4: Some(v4),
            v6,
            ip_protocol: protocol,
            batch: Batch::new(encapsulation, own_mac),
            destinations: Vec::new(),
            tx: TxPath {
                send_path: SendPath::Raw,
                ring: None,
                ring_failed: false,
                links: Vec::new(),
                announced: Vec::new(),
                refreshes: 0,
                raw_batch_due: false,
                busy: false,
                ring_lens: Vec::with_capacity(BATCH),
                watch: LinkWatch::spawn()
                    .map_err(
                        |e| tracing::warn!(error = %e, "no link lookup thread; links are looked up inline"),
                    )
                    .ok(),
            },
        })
    }

    /// Chooses the send path; with [`SendPath::Auto`], call
    /// [`Sender::refresh_links`] every second.
    pub fn set_send_path(&mut self, path: SendPath) {
        self.tx.send_path = path;
        self.look_up_links();
    }

    /// Call every second, after [`Sender::apply_found_links`] (which the
    /// capture loop calls every round). While packets flow, asks the lookup
    /// thread to look the links up again ([`LinkWatch`]: the capture thread
    /// never waits for a lookup), and,
    /// every few seconds, routes one batch through the raw socket. When
    /// nothing was sent since the last call it asks for nothing (an idle agent
    /// costs next to no CPU) and forgets the links: traffic resuming after a
    /// pause takes the raw socket, which refreshes the neighbour entry, until
    /// a lookup finds it again.
    pub fn refresh_links(&mut self) {
        if !std::mem::take(&mut self.tx.busy) {
            self.tx.links.iter_mut().for_each(|l| *l = None);
            return;
        }
        self.tx.refreshes = self.tx.refreshes.wrapping_add(1);
        if self.tx.refreshes.is_multiple_of(RAW_BATCH_EVERY) {
            self.tx.raw_batch_due = true;
        }
        match &self.tx.watch {
            Some(watch) => watch.request(self.ring_candidates()),
            None => self.look_up_links(),
        }
    }

    /// Applies the links the lookup thread found, if it has answered since
    /// the last call; cheap enough for every round of the capture loop (one
    /// `try_lock`), so that the answer applies within a round, not a second.
    pub fn apply_found_links(&mut self) {
        let Some((asked, links)) = self.tx.watch.as_ref().and_then(LinkWatch::take) else { return };
        // An answer for other destinations (they changed meanwhile) is stale.
        if asked == self.ring_candidates() {
            self.apply_links(links);
        }
    }

    /// Per destination, its address if the TX ring may carry it (IPv4,
    /// `--send-path auto`, a ring that could open).
    fn ring_candidates(&self) -> Vec<Option<Ipv4Addr>> {
        self.destinations
            .iter()
            .map(|d| match d.ip {
                IpAddr::V4(ip) if self.tx.send_path == SendPath::Auto && !self.tx.ring_failed => Some(ip),
                _ => None,
            })
            .collect()
    }

    /// Looks up, for every IPv4 destination, the egress interface and next
    /// hop MAC for the TX ring (opened on first use). A destination without a
    /// complete neighbour entry, on another interface than the ring's, or
    /// IPv6, keeps the raw socket. Reads two small /proc files and the
    /// interface's sysfs entries.
    pub fn look_up_links(&mut self) {
        let links =
            self.ring_candidates().into_iter().map(|ip| ip.and_then(crate::txring::link_to)).collect();
        self.apply_links(links);
    }

    /// Takes `found`, one link per destination, opening the TX ring on the
    /// first; a link on another interface than the ring's keeps the raw socket.
    fn apply_links(&mut self, found: Vec<Option<Link>>) {
        let mut links = Vec::with_capacity(found.len());
        for link in found {
            let link = link.filter(|l| match &self.tx.ring {
                Some(ring) => ring.ifindex() == l.ifindex,
                None => match TxRing::open(l.ifindex, l.mtu, BATCH) {
                    Ok(ring) => {
                        self.tx.ring = Some(ring);
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open the AF_PACKET TX ring; sending through the raw socket");
                        self.tx.ring_failed = true;
                        false
                    }
                },
            });
            links.push(link);
        }
        self.tx.announced.resize(links.len(), None);
        for (i, link) in links.iter().enumerate() {
            // Compared with what was last logged, not with `links`, which an
            // idle pause clears silently.
            let before = std::mem::replace(&mut self.tx.announced[i], link.clone());
            if before.as_ref() == link.as_ref() {
                continue;
            }
            let ip = self.destinations[i].ip;
            match link {
                Some(l) => tracing::info!(
                    collector = %ip,
                    interface = %l.ifname,
                    next_hop_mac = %bpc_wire::MacText(l.dst_mac),
                    source = %l.src_ip,
                    "sending through the AF_PACKET TX ring"
                ),
                None if before.is_some() => {
                    tracing::info!(collector = %ip, "sending through the raw GRE socket")
                }
                None => {}
            }
        }
        self.tx.links = links;
    }

    /// Sets where batches go: `(collector index, address)` for every resolved collector.
    pub fn set_destinations(&mut self, resolved: &[(usize, IpAddr)]) {
        self.destinations = resolved
            .iter()
            .map(|&(collector, ip)| {
                let (addr, addr_len) = gre_socket::sockaddr(ip);
                Destination { collector, ip, addr, addr_len, v6: ip.is_ipv6() }
            })
            .collect();
        self.tx.links = vec![None; self.destinations.len()];
        self.tx.announced = vec![None; self.destinations.len()];
        self.look_up_links();
    }

    /// The length of the header before each frame.
    pub fn header_len(&self) -> usize {
        self.batch.header_len()
    }

    /// Queues a frame without copying it; `tag` (if any) is put back after
    /// the MAC addresses. Flushes first if the batch is full.
    ///
    /// # Safety
    /// `frame` must stay valid and unchanged until the next [`Sender::flush`]
    /// (or a push that flushes): the capture loop gives its ring block back
    /// only after flushing.
    pub unsafe fn push_borrowed(
        &mut self,
        frame: &[u8],
        tag: Option<[u8; 4]>,
        captured: Duration,
        stats: &Stats,
    ) {
        if self.batch.is_full() {
            self.flush(stats);
        }
        // SAFETY: the caller keeps frame valid until the flush that clears the batch.
        unsafe { self.batch.push_borrowed(frame, tag, captured) };
    }

    /// Queues a copy of `frame` (for frames built in a temporary buffer).
    /// Flushes first if the batch or the copy arena is full.
    pub fn push_copied(&mut self, frame: &[u8], captured: Duration, stats: &Stats) {
        if !self.batch.has_room_for_copy(frame.len()) {
            self.flush(stats);
        }
        self.batch.push_copied(frame, captured);
    }

    /// Sends every queued frame to every destination and records the outcome.
    /// Never blocks: a full queue or an unreachable collector is counted and
    /// the frames are dropped for that collector.
    pub fn flush(&mut self, stats: &Stats) {
        if self.batch.len() == 0 {
            return;
        }
        self.batch.fill_iovecs();
        let now = Instant::now();
        let raw_batch = std::mem::take(&mut self.tx.raw_batch_due);
        self.tx.busy = true;
        for d in 0..self.destinations.len() {
            if raw_batch || !self.flush_ring(d, stats, now) {
                self.flush_raw(d, stats, now);
            }
        }
        if !self.destinations.is_empty() {
            // One clock read a batch: the frames left together.
            let sent = wall_clock();
            for slot in self.batch.slots() {
                stats.capture.forwarding_delay.record(sent.saturating_sub(slot.captured()), 1);
            }
        }
        self.batch.clear();
    }

    /// Sends the batch to destination `d` through the raw socket.
    fn flush_raw(&mut self, d: usize, stats: &Stats, now: Instant) {
        let dest = &self.destinations[d];
        let cs = &stats.collectors[dest.collector];
        let fd = if dest.v6 { self.v6.as_ref() } else { self.v4.as_ref() };
        let Some(fd) = fd else {
            cs.errors(SendErrorKind::Other).fetch_add(self.batch.len() as u64, Ordering::Relaxed);
            cs.last_error.set(stats.started, now);
            return;
        };
        let sent =
            gre_socket::send_all(fd, self.batch.messages_to(&dest.addr, dest.addr_len), |kind, count| {
                cs.errors(kind).fetch_add(count, Ordering::Relaxed);
                cs.last_error.set(stats.started, now);
            });
        if sent.packets > 0 {
            cs.sent_packets.fetch_add(sent.packets, Ordering::Relaxed);
            cs.sent_bytes.fetch_add(sent.bytes, Ordering::Relaxed);
            cs.last_send.set(stats.started, now);
        }
    }

    /// Sends the batch to destination `d` through the TX ring.
    /// Returns false (nothing done) when the ring cannot take it: no link,
    /// or a packet that does not fit the MTU (the raw socket fragments it).
    fn flush_ring(&mut self, d: usize, stats: &Stats, now: Instant) -> bool {
        let (Some(ring), Some(Some(link))) = (self.tx.ring.as_mut(), self.tx.links.get(d)) else {
            return false;
        };
        let slots = self.batch.slots();
        if !slots.iter().all(|s| ring.fits(link, s.gre_len())) {
            return false;
        }
        let cs = &stats.collectors[self.destinations[d].collector];
        self.tx.ring_lens.clear();
        let mut full = 0u64;
        for slot in slots {
            // SAFETY: the batch is not cleared before this flush returns.
            let frame = unsafe { slot.frame() };
            let header = slot.header();
            let pushed = match slot.retagged(frame) {
                None => ring.push(link, self.ip_protocol, &[header, frame]),
                Some(tagged) => {
                    let [macs, tag, rest] = tagged.parts();
                    ring.push(link, self.ip_protocol, &[header, macs, tag, rest])
                }
            };
            if pushed {
                self.tx.ring_lens.push(slot.gre_len());
            } else {
                full += 1;
            }
        }
        let (mut bytes, lens) = (0u64, &self.tx.ring_lens);
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
                self.tx.links[d] = None;
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

impl Sender {
    /// Reads the ICMP errors the kernel queued for packets we sent and counts
    /// them as `unreachable` for the collector they were sent to. Never blocks;
    /// call periodically (the queue is bounded by the receive buffer).
    pub fn drain_icmp_errors(&mut self, stats: &Stats) {
        for (fd, v6) in [(self.v4.as_ref(), false), (self.v6.as_ref(), true)] {
            let Some(fd) = fd else { continue };
            icmp::read_errors(fd, |to, icmp_type, icmp_code| {
                let Some(dest) = self.destinations.iter().find(|d| gre_socket::same_address(&d.addr, to))
                else {
                    return;
                };
                let cs = &stats.collectors[dest.collector];
                let now = Instant::now();
                cs.unreachable.fetch_add(1, Ordering::Relaxed);
                cs.last_error.set(stats.started, now);
                cs.last_icmp.set(stats.started, now);
                let what = icmp::describe(v6, icmp_type, icmp_code);
                let mut last = cs.icmp_error.lock().unwrap_or_else(|e| e.into_inner());
                if last.as_deref() != Some(what.as_str()) {
                    tracing::warn!(collector = %cs.host, "collector answers with ICMP errors: {what}");
                    *last = Some(what);
                }
            });
        }
    }
}

/// Largest inner frame that fits one packet on a path of `mtu` bytes, with
/// `header_len` bytes of encapsulation (GRE 8/12, VXLAN 16 with UDP,
/// ERSPAN II 16, ERSPAN III 28) after the outer IP header.
pub fn max_frame_for(mtu: u32, ipv6: bool, header_len: usize) -> usize {
    let outer = if ipv6 { 40 } else { 20 } + header_len;
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
        // VXLAN (UDP + VXLAN) and ERSPAN III (GRE + header + platform subheader).
        assert_eq!(max_frame_for(1500, false, 16), 1464);
        assert_eq!(max_frame_for(1500, true, 28), 1432);
    }
}
