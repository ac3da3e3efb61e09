//! One receive ring: its socket, its mapped memory, and the walk over what
//! the kernel handed over. Two kinds ([`RingKind`]): TPACKET_V3 blocks, the
//! batching path, and TPACKET_V2 slots, the prompt path. The drain sees both
//! as "units" handed over in order: a V3 block of many frames, or a V2 slot
//! of one.

use std::cell::Cell;
use std::io;
use std::mem::{size_of, size_of_val};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;
use crate::error::{Error, Result};
use crate::iface::Interface;
use crate::packet_socket::{attach_filter, getsockopt, map_ring, setsockopt};

pub(super) const ETH_P_ALL: u16 = 0x0003;

/// The kernel's per-socket counters since the previous read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames the kernel delivered or dropped.
    pub packets: u32,
    /// Frames the kernel dropped because the ring was full.
    pub drops: u32,
}

/// How a ring hands frames over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingKind {
    /// TPACKET_V3: frames packed into blocks; a block is handed over (and
    /// the reader woken) when it is full or [`BLOCK_TIMEOUT_MS`] after its
    /// first frame. Few wake-ups at any rate, but a frame waits for its block.
    Blocks,
    /// TPACKET_V2: one frame per [`PROMPT_SLOT_SIZE`] slot, handed over (and
    /// the reader woken) as soon as the kernel has copied it: the forwarding
    /// delay is one wake-up and one send.
    Slots,
}

/// An AF_PACKET socket bound to one interface, with its mapped ring.
#[derive(Debug)]
pub struct Ring {
    pub(super) fd: OwnedFd,
    pub(super) map: *mut u8,
    pub(super) geometry: RingGeometry,
    pub(super) kind: RingKind,
    /// Units the kernel hands over: blocks ([`RingKind::Blocks`]) or slots.
    pub(super) units: usize,
    /// The unit to read next: the oldest the kernel may have handed over.
    pub(super) next_block: Cell<usize>,
}

// SAFETY: the mapping is owned by this value; blocks are shared with the
// kernel only through their status word, read and written atomically.
unsafe impl Send for Ring {}

/// Offsets in `tpacket_block_desc` (version, offset_to_priv, then `hdr.bh1`).
pub(super) const BLOCK_STATUS: usize = 8;
pub(super) const BLOCK_NUM_PKTS: usize = 12;
pub(super) const BLOCK_FIRST_FRAME: usize = 16;

impl Ring {
    /// Opens the capture socket on `iface` with `filter` already attached,
    /// so that no frame outside the filter is ever queued, and a ring of
    /// `geometry` (`buffer_mib` is the `--buffer` it came from, for errors).
    pub fn open(
        iface: &Interface,
        filter: &[libc::sock_filter],
        geometry: RingGeometry,
        kind: RingKind,
        buffer_mib: u32,
        timeout_ms: u32,
    ) -> Result<Ring> {
        // Protocol 0: nothing is received until bind(), after the filter and ring are set up.
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::last_os("open the AF_PACKET capture socket"));
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        attach_filter(&fd, filter)?;
        let (version, what, frame_size, units) = match kind {
            RingKind::Blocks => {
                (libc::tpacket_versions::TPACKET_V3, "select TPACKET_V3", FRAME_SIZE, geometry.block_count)
            }
            RingKind::Slots => (
                libc::tpacket_versions::TPACKET_V2,
                "select TPACKET_V2",
                PROMPT_SLOT_SIZE,
                geometry.block_count * (geometry.block_size / PROMPT_SLOT_SIZE),
            ),
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &(version as libc::c_int), what)?;
        let RingGeometry { block_size, block_count } = geometry;
        // A TPACKET_V2 ring reads the first four fields (`tpacket_req`).
        let req = libc::tpacket_req3 {
            tp_block_size: block_size as u32,
            tp_block_nr: block_count as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: (block_size / frame_size * block_count) as u32,
            tp_retire_blk_tov: timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        let refused = |source: io::Error| match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                Error::os("set up the capture ring (PACKET_RX_RING)", source)
            }
            _ => Error::Ring { mib: buffer_mib, blocks: block_count, block_kib: block_size >> 10, source },
        };
        // SAFETY: req is a live tpacket_req3 of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_RX_RING,
                (&raw const req).cast(),
                size_of_val(&req) as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(refused(io::Error::last_os_error()));
        }
        let map_len = geometry.bytes();
        // No MAP_LOCKED: the kernel's ring pages are never swapped anyway,
        // and locking 24 MiB would exceed the usual 8 MiB RLIMIT_MEMLOCK.
        let map = map_ring(&fd, map_len, 0, "map the capture ring").map_err(|e| match e {
            Error::Io { source, .. } => refused(source),
            other => other,
        })?;
        let ring = Ring { fd, map: map.cast(), geometry, kind, units, next_block: Cell::new(0) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = iface.index as i32;
        // SAFETY: addr is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(ring.fd.as_raw_fd(), (&raw const addr).cast(), size_of_val(&addr) as libc::socklen_t)
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENODEV) || err.raw_os_error() == Some(libc::ENETDOWN) {
                return Err(Error::Interface(format!("cannot capture on {}: {err}", iface.name)));
            }
            return Err(Error::os("bind the capture socket to the interface", err));
        }
        Ok(ring)
    }

    /// The ring's shape.
    pub fn geometry(&self) -> RingGeometry {
        self.geometry
    }

    /// Replaces the filter (when collector addresses change).
    pub fn set_filter(&self, filter: &[libc::sock_filter]) -> Result<()> {
        attach_filter(&self.fd, filter)
    }

    /// The ring's kind.
    pub fn kind(&self) -> RingKind {
        self.kind
    }

    /// Units the kernel hands over: blocks, or slots of one frame.
    pub fn units(&self) -> usize {
        self.units
    }

    /// Where unit `index` starts in the mapping.
    fn unit_offset(&self, index: usize) -> usize {
        match self.kind {
            RingKind::Blocks => index * self.geometry.block_size,
            RingKind::Slots => {
                let per_block = self.geometry.block_size / PROMPT_SLOT_SIZE;
                index / per_block * self.geometry.block_size + index % per_block * PROMPT_SLOT_SIZE
            }
        }
    }

    /// A u32 of unit `index`'s header, which the kernel writes concurrently.
    pub(super) fn header_word(&self, index: usize, offset: usize) -> &AtomicU32 {
        debug_assert!(index < self.units && offset + 4 <= BLOCK_HEADER);
        // SAFETY: inside the mapping (index < units, offset within the block
        // descriptor or slot header) and 4-byte aligned (blocks are page-aligned,
        // slots 2048-byte aligned).
        unsafe { AtomicU32::from_ptr(self.map.add(self.unit_offset(index) + offset).cast()) }
    }

    /// The status word: the block descriptor's, or the slot's `tp_status`.
    fn status(&self, index: usize) -> &AtomicU32 {
        match self.kind {
            RingKind::Blocks => self.header_word(index, BLOCK_STATUS),
            RingKind::Slots => self.header_word(index, 0),
        }
    }

    pub(super) fn is_user_owned(&self, index: usize) -> bool {
        self.status(index).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Whether the kernel has handed over the next unit.
    pub fn is_ready(&self) -> bool {
        self.is_user_owned(self.next_block.get())
    }

    /// Whether the next unit holds frames: handed over already, or a block
    /// being filled (then it is handed over within [`BLOCK_TIMEOUT_MS`]). A
    /// slot being filled is not seen: it is handed over within a copy.
    pub(super) fn has_frames(&self) -> bool {
        let index = self.next_block.get();
        self.is_user_owned(index)
            || (self.kind == RingKind::Blocks
                && self.header_word(index, BLOCK_NUM_PKTS).load(Ordering::Acquire) != 0)
    }

    /// Takes the next unit if the kernel has handed it over; it stays ours
    /// until [`Ring::give_back`].
    pub(super) fn take(&self) -> Option<BlockCursor> {
        let index = self.next_block.get();
        if !self.is_user_owned(index) {
            return None;
        }
        self.next_block.set((index + 1) % self.units);
        if self.kind == RingKind::Slots {
            return Some(BlockCursor { index, full: false, left: 1, frames: 1, offset: 0 });
        }
        let status = self.header_word(index, BLOCK_STATUS).load(Ordering::Relaxed);
        let frames = self.header_word(index, BLOCK_NUM_PKTS).load(Ordering::Relaxed);
        Some(BlockCursor {
            index,
            full: status & libc::TP_STATUS_BLK_TMO == 0,
            left: frames,
            frames,
            offset: self.header_word(index, BLOCK_FIRST_FRAME).load(Ordering::Relaxed) as usize,
        })
    }

    /// Hands unit `index` back: the kernel may overwrite it from now on.
    pub(super) fn give_back(&self, index: usize) {
        if self.kind == RingKind::Blocks {
            // Cleared first, so that until the kernel reopens the block,
            // has_frames() does not read the frame count of its previous fill.
            self.header_word(index, BLOCK_NUM_PKTS).store(0, Ordering::Relaxed);
        }
        self.status(index).store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The frame at `offset` of unit `index`, and the offset of the next
    /// one; `None` where the headers do not describe a frame inside the unit.
    pub(super) fn frame_at(&self, index: usize, offset: usize) -> Option<(Frame<'_>, usize)> {
        let size = match self.kind {
            RingKind::Blocks => self.geometry.block_size,
            RingKind::Slots => PROMPT_SLOT_SIZE,
        };
        // SAFETY: unit `index` belongs to user space (taken, not yet given back).
        let unit = unsafe { std::slice::from_raw_parts(self.map.add(self.unit_offset(index)), size) };
        match self.kind {
            RingKind::Blocks => v3_frame(unit, offset),
            RingKind::Slots => v2_frame(unit).map(|f| (f, size)),
        }
    }

    /// Waits up to `timeout_ms` for the next block, with signals as they are.
    pub(super) fn poll_ready(&self, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        self.is_ready()
    }

    /// What a POLLERR on the socket means: `Ok` to go on (the interface is
    /// down, the kernel re-attaches the socket when it is back up).
    pub(super) fn socket_error(&self) -> Result<()> {
        let err: libc::c_int =
            getsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ERROR, "read the capture socket's error")
                .unwrap_or(0);
        match err {
            libc::ENETDOWN => {
                tracing::warn!("capture interface is down; capture resumes when it is up again");
                Ok(())
            }
            // The interface was deleted: the socket is unbound for good.
            libc::ENODEV => Err(Error::Io {
                what: "the capture interface was removed".into(),
                source: io::Error::from_raw_os_error(err),
            }),
            _ => Ok(()),
        }
    }

    /// Reads and resets the kernel's packet and drop counters.
    pub fn stats(&self) -> Result<RingStats> {
        const WHAT: &str = "read capture statistics (PACKET_STATISTICS)";
        let (packets, drops) = match self.kind {
            RingKind::Blocks => {
                let st: libc::tpacket_stats_v3 =
                    getsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_STATISTICS, WHAT)?;
                (st.tp_packets, st.tp_drops)
            }
            RingKind::Slots => {
                let st: libc::tpacket_stats =
                    getsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_STATISTICS, WHAT)?;
                (st.tp_packets, st.tp_drops)
            }
        };
        Ok(RingStats { packets, drops })
    }
}

/// The frame whose `tpacket3_hdr` is at `offset` of a block, and where the
/// next one starts.
fn v3_frame(block: &[u8], offset: usize) -> Option<(Frame<'_>, usize)> {
    if offset + size_of::<libc::tpacket3_hdr>() > block.len() {
        return None;
    }
    // SAFETY: in bounds (checked above), tpacket3_hdr is plain data, read unaligned.
    let hdr: libc::tpacket3_hdr = unsafe { std::ptr::read_unaligned(block.as_ptr().add(offset).cast()) };
    let start = offset + usize::from(hdr.tp_mac);
    let data = block.get(start..start + hdr.tp_snaplen as usize)?;
    let vlan = vlan_tag(hdr.tp_status, hdr.hv1.tp_vlan_tpid, hdr.hv1.tp_vlan_tci as u16);
    let timestamp = Duration::new(u64::from(hdr.tp_sec), hdr.tp_nsec);
    let next = if hdr.tp_next_offset == 0 { block.len() } else { offset + hdr.tp_next_offset as usize };
    Some((Frame { data, wire_len: hdr.tp_len, vlan, timestamp }, next))
}

/// The frame of a slot, whose `tpacket2_hdr` is at its start.
fn v2_frame(slot: &[u8]) -> Option<Frame<'_>> {
    if size_of::<libc::tpacket2_hdr>() > slot.len() {
        return None;
    }
    // SAFETY: in bounds (checked above), tpacket2_hdr is plain data, read unaligned.
    let hdr: libc::tpacket2_hdr = unsafe { std::ptr::read_unaligned(slot.as_ptr().cast()) };
    let start = usize::from(hdr.tp_mac);
    let data = slot.get(start..start + hdr.tp_snaplen as usize)?;
    let vlan = vlan_tag(hdr.tp_status, hdr.tp_vlan_tpid, hdr.tp_vlan_tci);
    let timestamp = Duration::new(u64::from(hdr.tp_sec), hdr.tp_nsec);
    Some(Frame { data, wire_len: hdr.tp_len, vlan, timestamp })
}

/// The 802.1Q tag (TPID + TCI, network order) the kernel stripped, if any.
fn vlan_tag(status: u32, tpid: u16, tci: u16) -> Option<[u8; 4]> {
    (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { tpid } else { 0x8100 };
        let mut tag = [0u8; 4];
        tag[..2].copy_from_slice(&tpid.to_be_bytes());
        tag[2..].copy_from_slice(&tci.to_be_bytes());
        tag
    })
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps what open() mapped; frames borrow the ring, so none is alive.
        unsafe { libc::munmap(self.map.cast(), self.geometry.bytes()) };
    }
}

/// A unit taken from a ring (a block, or a slot of one frame), and how far
/// its frames have been handed over.
#[derive(Debug, Clone, Copy)]
pub(super) struct BlockCursor {
    pub(super) index: usize,
    /// Handed over because it was full, not because its timeout expired.
    pub(super) full: bool,
    /// Frames not yet handed over.
    pub(super) left: u32,
    /// Frames in the block.
    pub(super) frames: u32,
    /// Where the next one starts.
    pub(super) offset: usize,
}
