//! Capture with AF_PACKET sockets and TPACKET_V3 receive rings.
//!
//! libpcap uses the same kernel mechanism, and compiles our filter (see
//! [`crate::filter`]); the agent drives the rings itself so that frames can
//! be handed to `sendmmsg` straight from the ring memory: a block is given
//! back to the kernel only after every frame in it was sent, so no frame is
//! copied in user space.
//!
//! Two rings, split by frame length in their filters: the *frame ring*, many
//! small blocks, for every frame up to the interface's MTU, and the
//! *super-frame ring*, blocks large enough for a GSO/GRO super-frame. Why:
//! the kernel retires a block after [`BLOCK_TIMEOUT_MS`] however little it
//! holds, so a ring rides out one millisecond of stall per block at low
//! rates, and a block must hold the largest frame whole. One ring of 128 KiB
//! blocks (what a 64 KiB super-frame needs) held 192 ms in 24 MiB; 32 KiB
//! blocks for the frames hold 639 ms in 20 MiB, and the super-frames keep
//! their 128 KiB blocks in the other 4 MiB. [`Capture::drain`] merges the two
//! rings back into capture order.

use std::cell::Cell;
use std::io;
use std::mem::{size_of, size_of_val};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::iface::Interface;
use crate::packet_socket::{attach_filter, getsockopt, map_ring, setsockopt};

/// Frame slot size the kernel wants to know about (unused by TPACKET_V3 itself).
const FRAME_SIZE: usize = 2048;
/// A block holding at least one frame is handed over after this many
/// milliseconds even if not full: the latency bound at low packet rates.
/// 1 ms, not 4: an analyser times transactions by the frames' arrival, and a
/// 4 ms hold spread request and response apart by up to 4 ms; measured with
/// scripts/bench.sh (512 B, 20k/100k pps) p50 0.6-0.9 ms instead of
/// 2.3-3.0 ms, CPU per packet within the run-to-run noise.
pub const BLOCK_TIMEOUT_MS: u32 = 1;
/// Blocks of the frame ring. 32 KiB, not smaller: a block holds 21 frames of
/// 1400 bytes (4% of it unused; 16 KiB blocks would leave 9% unused and
/// double the block hand-overs at high rates), any jumbo frame up to 9,000
/// bytes, and still gives 640 blocks, 639 ms of stall at low rates, in the
/// default 20 MiB.
pub const FRAME_BLOCK_SIZE: usize = 32 << 10;
/// The smallest block of the super-frame ring: it must hold the largest frame
/// whole, since the kernel cuts a frame that does not fit its block
/// (TPACKET_V3 never spans blocks). 128 KiB holds any GSO/GRO super-frame of
/// a stack without BIG TCP ([`LARGEST_STANDARD_FRAME`]).
pub const MIN_SUPER_FRAME_BLOCK_SIZE: usize = 128 << 10;
/// The super-frame ring's share of `--buffer`: one sixth (4 MiB, 32
/// super-frames in flight, of the default 24 MiB). Super-frames come only
/// from the pod's own TCP sends (segmentation offload); every other frame,
/// at any rate, uses the frame ring, which gets the rest.
const SUPER_FRAME_SHARE: usize = 6;
/// Fewest blocks a ring may have: fewer and one slow `sendmmsg` on the
/// block in hand already fills the rest.
pub const MIN_BLOCKS: usize = 8;
/// An Ethernet header, which the fanout program may not see (see [`join_fanout`]).
const ETH_HEADER_LEN: usize = 14;
/// The block descriptor at the start of every block (`tpacket_block_desc`).
const BLOCK_HEADER: usize = 48;
/// What the kernel puts before each frame: `tpacket3_hdr` and `sockaddr_ll`,
/// padded so the network header is 16-byte aligned (82 bytes before an
/// Ethernet header), plus the 16-byte alignment of the next frame; rounded up.
pub const FRAME_OVERHEAD: usize = 96;
/// The largest frame without BIG TCP: a 65,535-byte IP packet, Ethernet
/// header and a VLAN tag.
pub const LARGEST_STANDARD_FRAME: usize = 65_535 + 14 + 4;
/// Frames handed over before the blocks they came from are given back: one
/// `sendmmsg` batch's worth, so that small blocks of large frames (21 per
/// block) still leave the sender full batches.
const RELEASE_EVERY: usize = 64;
/// How long [`Capture::drain`] waits for the other ring's block in progress
/// to be retired before it hands over frames that may be later than the ones
/// that block holds. Not a few block timeouts: where the kernel's retire
/// timer counts in jiffies (the classic af_packet code), 1 ms is one tick,
/// 4 ms at HZ=250 and 10 ms at HZ=100, and a busy machine delays the timer
/// further; giving up this wait is a way the merge can lose order. The wait
/// ends as soon as the block is retired, so the cap costs nothing when the
/// kernel is on time.
const MERGE_WAIT_MS: i32 = 25;

/// The shape of one TPACKET_V3 receive ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Bytes per block (a power of two of pages).
    pub block_size: usize,
    /// Blocks in the ring.
    pub block_count: usize,
}

impl RingGeometry {
    /// The ring of `block_size` blocks in `bytes` of memory. `Err` says why the size cannot work.
    fn with_blocks(bytes: usize, block_size: usize, what: &str) -> std::result::Result<RingGeometry, String> {
        let block_count = bytes / block_size;
        if block_count < MIN_BLOCKS {
            return Err(format!(
                "{} KiB holds {block_count} blocks of {} KiB for the {what}, at least {MIN_BLOCKS} are needed",
                bytes >> 10,
                block_size >> 10,
            ));
        }
        Ok(RingGeometry { block_size, block_count })
    }

    /// Memory the ring maps (all of it counts in RSS from the start: the
    /// kernel inserts every page at mmap time).
    pub fn bytes(&self) -> usize {
        self.block_size * self.block_count
    }

    /// The largest frame a block holds whole; a larger one arrives cut.
    pub fn largest_whole_frame(&self) -> usize {
        self.block_size - BLOCK_HEADER - FRAME_OVERHEAD
    }

    /// Frames of `frame_len` bytes one block holds.
    pub fn frames_per_block(&self, frame_len: usize) -> usize {
        (self.block_size - BLOCK_HEADER) / (frame_len + FRAME_OVERHEAD)
    }

    /// How long the agent may stop reading before the kernel drops frames of
    /// `frame_len` bytes arriving at `pps`: all blocks but the one being
    /// filled, each retired after [`BLOCK_TIMEOUT_MS`] or when full, or
    /// holding a single frame at rates below one per timeout.
    pub fn stall_ridden_out(&self, pps: f64, frame_len: usize) -> Duration {
        let timeout = f64::from(BLOCK_TIMEOUT_MS) / 1000.0;
        let fill = self.frames_per_block(frame_len) as f64 / pps;
        let per_block = if pps * timeout <= 1.0 { 1.0 / pps } else { fill.min(timeout) };
        Duration::from_secs_f64(per_block * (self.block_count - 1) as f64)
    }
}

/// The shape of the capture: the frame ring and, where the interface's
/// frames are smaller than its super-frames, the super-frame ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureGeometry {
    /// Every frame up to [`CaptureGeometry::split`] bytes.
    pub frames: RingGeometry,
    /// Longer frames; `None` when one block size serves both (an interface
    /// whose MTU is as large as a super-frame, such as loopback).
    pub super_frames: Option<RingGeometry>,
}

impl CaptureGeometry {
    /// The rings for `buffer_bytes` of memory on an interface whose frames
    /// are up to `mtu_frame` bytes (MTU plus link headers) and whose
    /// super-frames are up to `largest_frame` bytes. `Err` says why the size
    /// cannot work.
    pub fn new(
        buffer_bytes: usize,
        mtu_frame: usize,
        largest_frame: usize,
    ) -> std::result::Result<CaptureGeometry, String> {
        let block_for = |frame: usize| (frame + BLOCK_HEADER + FRAME_OVERHEAD).next_power_of_two();
        let super_block = block_for(largest_frame).max(MIN_SUPER_FRAME_BLOCK_SIZE);
        let frame_block = block_for(mtu_frame).max(FRAME_BLOCK_SIZE);
        if frame_block >= super_block {
            let frames = RingGeometry::with_blocks(buffer_bytes, super_block, "frames")?;
            return Ok(CaptureGeometry { frames, super_frames: None });
        }
        let super_count = (buffer_bytes / SUPER_FRAME_SHARE / super_block).max(MIN_BLOCKS);
        let super_frames = RingGeometry { block_size: super_block, block_count: super_count };
        let frames = RingGeometry::with_blocks(
            buffer_bytes.saturating_sub(super_frames.bytes()),
            frame_block,
            &format!("frames after the super-frame ring's {} KiB", super_frames.bytes() >> 10),
        )?;
        Ok(CaptureGeometry { frames, super_frames: Some(super_frames) })
    }

    /// Memory both rings map.
    pub fn bytes(&self) -> usize {
        self.frames.bytes() + self.super_frames.map_or(0, |g| g.bytes())
    }

    /// The longest frame the frame ring takes; longer ones go to the super-frame ring.
    pub fn split(&self) -> usize {
        self.frames.largest_whole_frame()
    }

    /// The largest frame captured whole; a larger one arrives cut.
    pub fn largest_whole_frame(&self) -> usize {
        self.super_frames.unwrap_or(self.frames).largest_whole_frame()
    }

    /// The ring that frames of `frame_len` bytes go to.
    pub fn ring_for(&self, frame_len: usize) -> RingGeometry {
        match self.super_frames {
            Some(s) if frame_len > self.split() => s,
            _ => self.frames,
        }
    }

    /// How long the agent may stop reading before the kernel drops frames of
    /// `frame_len` bytes arriving at `pps` (see [`RingGeometry::stall_ridden_out`]).
    pub fn stall_ridden_out(&self, pps: f64, frame_len: usize) -> Duration {
        self.ring_for(frame_len).stall_ridden_out(pps, frame_len)
    }

    /// The geometry in words, for the start-up log.
    pub fn describe(&self) -> String {
        let ring = |g: &RingGeometry| format!("{} blocks of {} KiB", g.block_count, g.block_size >> 10);
        match &self.super_frames {
            None => {
                format!("{} MiB, {}, {} ms timeout", self.bytes() >> 20, ring(&self.frames), BLOCK_TIMEOUT_MS)
            }
            Some(s) => format!(
                "{} KiB: frames up to {} B in {}, super-frames up to {} B in {}, {} ms timeout",
                self.bytes() >> 10,
                self.split(),
                ring(&self.frames),
                s.largest_whole_frame(),
                ring(s),
                BLOCK_TIMEOUT_MS
            ),
        }
    }
}

/// The filters of the two rings: `filter` and a length clause each, so that
/// every frame goes to exactly one of them. `less N` is `len <= N`,
/// `greater N` is `len >= N` (the length on the wire, without a VLAN tag the
/// kernel stripped, which is also what the ring stores).
pub fn split_filters(filter: &str, split: usize) -> [String; 2] {
    let user = filter.trim();
    let and = if user.is_empty() { String::new() } else { format!("({user}) and ") };
    [format!("{and}less {split}"), format!("{and}greater {}", split + 1)]
}

const ETH_P_ALL: u16 = 0x0003;

/// The kernel's per-socket counters since the previous read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames the kernel delivered or dropped.
    pub packets: u32,
    /// Frames the kernel dropped because the ring was full.
    pub drops: u32,
}

/// An AF_PACKET socket bound to one interface, with its mapped TPACKET_V3 ring.
#[derive(Debug)]
pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    geometry: RingGeometry,
    /// The block to read next: the oldest the kernel may have handed over.
    next_block: Cell<usize>,
}

// SAFETY: the mapping is owned by this value; blocks are shared with the
// kernel only through their status word, read and written atomically.
unsafe impl Send for Ring {}

/// Offsets in `tpacket_block_desc` (version, offset_to_priv, then `hdr.bh1`).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_FRAME: usize = 16;

impl Ring {
    /// Opens the capture socket on `iface` with `filter` already attached,
    /// so that no frame outside the filter is ever queued, and a ring of
    /// `geometry` (`buffer_mib` is the `--buffer` it came from, for errors).
    pub fn open(
        iface: &Interface,
        filter: &[libc::sock_filter],
        geometry: RingGeometry,
        buffer_mib: u32,
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
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version, "select TPACKET_V3")?;
        let RingGeometry { block_size, block_count } = geometry;
        let req = libc::tpacket_req3 {
            tp_block_size: block_size as u32,
            tp_block_nr: block_count as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (block_size / FRAME_SIZE * block_count) as u32,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
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
        let ring = Ring { fd, map: map.cast(), geometry, next_block: Cell::new(0) };
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

    /// A u32 of block `index`'s header, which the kernel writes concurrently.
    fn header_word(&self, index: usize, offset: usize) -> &AtomicU32 {
        debug_assert!(index < self.geometry.block_count && offset + 4 <= BLOCK_HEADER);
        // SAFETY: inside the mapping (index < block_count, offset within the
        // block header) and 4-byte aligned (blocks are page-aligned).
        unsafe { AtomicU32::from_ptr(self.map.add(index * self.geometry.block_size + offset).cast()) }
    }

    fn is_user_owned(&self, index: usize) -> bool {
        self.header_word(index, BLOCK_STATUS).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Whether the kernel has handed over the next block.
    pub fn is_ready(&self) -> bool {
        self.is_user_owned(self.next_block.get())
    }

    /// Whether the next block holds frames: handed over already, or being
    /// filled (then it is handed over within [`BLOCK_TIMEOUT_MS`]).
    fn has_frames(&self) -> bool {
        let index = self.next_block.get();
        self.is_user_owned(index) || self.header_word(index, BLOCK_NUM_PKTS).load(Ordering::Acquire) != 0
    }

    /// Takes the next block if the kernel has handed it over; it stays ours
    /// until [`Ring::give_back`].
    fn take(&self) -> Option<BlockCursor> {
        let index = self.next_block.get();
        if !self.is_user_owned(index) {
            return None;
        }
        self.next_block.set((index + 1) % self.geometry.block_count);
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

    /// Hands block `index` back: the kernel may overwrite it from now on.
    fn give_back(&self, index: usize) {
        // Cleared first, so that until the kernel reopens the block,
        // is_filling() does not read the frame count of its previous fill.
        self.header_word(index, BLOCK_NUM_PKTS).store(0, Ordering::Relaxed);
        self.header_word(index, BLOCK_STATUS).store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The frame at `offset` of block `index`, and the offset of the next
    /// one; `None` where the headers do not describe a frame inside the block.
    fn frame_at(&self, index: usize, offset: usize) -> Option<(Frame<'_>, usize)> {
        let block_size = self.geometry.block_size;
        // SAFETY: block `index` belongs to user space (taken, not yet given back).
        let block = unsafe { std::slice::from_raw_parts(self.map.add(index * block_size), block_size) };
        if offset + size_of::<libc::tpacket3_hdr>() > block.len() {
            return None;
        }
        // SAFETY: in bounds (checked above), tpacket3_hdr is plain data, read unaligned.
        let hdr: libc::tpacket3_hdr = unsafe { std::ptr::read_unaligned(block.as_ptr().add(offset).cast()) };
        let start = offset + usize::from(hdr.tp_mac);
        let data = block.get(start..start + hdr.tp_snaplen as usize)?;
        let vlan = (hdr.tp_status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if hdr.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                hdr.hv1.tp_vlan_tpid
            } else {
                0x8100
            };
            let tci = hdr.hv1.tp_vlan_tci as u16;
            let mut tag = [0u8; 4];
            tag[..2].copy_from_slice(&tpid.to_be_bytes());
            tag[2..].copy_from_slice(&tci.to_be_bytes());
            tag
        });
        let timestamp = Duration::new(u64::from(hdr.tp_sec), hdr.tp_nsec);
        let next = if hdr.tp_next_offset == 0 { block_size } else { offset + hdr.tp_next_offset as usize };
        Some((Frame { data, wire_len: hdr.tp_len, vlan, timestamp }, next))
    }

    /// Waits up to `timeout_ms` for the next block, with signals as they are.
    fn poll_ready(&self, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        self.is_ready()
    }

    /// What a POLLERR on the socket means: `Ok` to go on (the interface is
    /// down, the kernel re-attaches the socket when it is back up).
    fn socket_error(&self) -> Result<()> {
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
        let st: libc::tpacket_stats_v3 = getsockopt(
            &self.fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            "read capture statistics (PACKET_STATISTICS)",
        )?;
        Ok(RingStats { packets: st.tp_packets, drops: st.tp_drops })
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps what open() mapped; frames borrow the ring, so none is alive.
        unsafe { libc::munmap(self.map.cast(), self.geometry.bytes()) };
    }
}

/// A block taken from a ring, and how far its frames have been handed over.
#[derive(Debug, Clone, Copy)]
struct BlockCursor {
    index: usize,
    /// Handed over because it was full, not because its timeout expired.
    full: bool,
    /// Frames not yet handed over.
    left: u32,
    /// Frames in the block.
    frames: u32,
    /// Where the next one starts.
    offset: usize,
}

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'b> {
    /// The bytes captured (the whole frame unless the filter cut it).
    pub data: &'b [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// The 802.1Q tag the kernel stripped from the frame (TPID + TCI,
    /// network order), to be put back after the MAC addresses.
    pub vlan: Option<[u8; 4]>,
    /// When the kernel captured it, since the Unix epoch.
    pub timestamp: Duration,
}

/// What one [`Capture::drain`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Blocks taken.
    pub blocks: usize,
    /// Some block was handed over full, before its timeout: frames arrive
    /// faster than a block per [`BLOCK_TIMEOUT_MS`] (see [`Drained::pause`]).
    pub full: bool,
}

impl Drained {
    /// How long to let frames gather before waiting for the next block.
    /// While blocks fill before their timeout, each one would wake the agent
    /// (32 KiB hold 20 frames of 1500 bytes: 7,500 wake-ups a second at
    /// 150 kpps, measured 18% more CPU per packet than one ring of 128 KiB
    /// blocks); a pause of one block timeout keeps the agent to the pace the
    /// timeout sets at lower rates, at most 1,000 wake-ups a second, and adds
    /// at most that to the latency (half a pause measured 12% more CPU per
    /// 1500-byte packet at 40 kpps than one ring).
    pub fn pause(&self) -> Option<Duration> {
        self.full.then(|| Duration::from_millis(u64::from(BLOCK_TIMEOUT_MS)))
    }
}

/// What takes the frames [`Capture::drain`] hands over.
pub trait FrameSink {
    /// One frame, in capture order. Its bytes stay valid until the next
    /// [`FrameSink::release`] (so they may be queued, not copied, until then).
    fn frame(&mut self, frame: Frame<'_>);
    /// The blocks of every frame handed over so far are about to go back to
    /// the kernel: finish with them (send the queued frames).
    fn release(&mut self);
}

/// How frames are split between the two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// There is one ring.
    One,
    /// The rings form a fanout group whose program picks the ring by length:
    /// each frame goes through one socket and one filter, as with one ring.
    Fanout,
    /// Each ring's filter has a length clause ([`split_filters`]): every
    /// frame goes through both sockets (kernels without `PACKET_FANOUT_CBPF`, 4.2).
    Filters,
}

/// Makes the two rings one fanout group whose classic BPF program sends a
/// frame to the super-frame ring when it is longer than `split` bytes.
///
/// The program sees the frame's length before the kernel pushes the
/// Ethernet header back for the socket: received frames without it, sent
/// ones with it. Comparing with `split - 14` sends every frame of up to
/// `split` bytes that the frame ring must hold whole there, and a sent frame
/// within 14 bytes of the split to the super-frame ring, which holds it too.
fn join_fanout(rings: &[Ring], split: usize) -> Result<()> {
    const LD_LEN: u16 = 0x80; // BPF_LD | BPF_W | BPF_LEN
    const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let threshold = (split - ETH_HEADER_LEN) as u32;
    let demux = [
        libc::sock_filter { code: LD_LEN, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: JGT_K, jt: 0, jf: 1, k: threshold },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: 1 },
        libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: 0 },
    ];
    // The frame ring joins first: member 0. A group id the kernel picks
    // cannot collide with another capture in the pod (tcpdump, a second agent).
    let create = ((libc::PACKET_FANOUT_CBPF | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16) as libc::c_int;
    setsockopt(
        &rings[0].fd,
        libc::SOL_PACKET,
        libc::PACKET_FANOUT,
        &create,
        "create the capture's fanout group",
    )?;
    let group: libc::c_int =
        getsockopt(&rings[0].fd, libc::SOL_PACKET, libc::PACKET_FANOUT, "read the capture's fanout group")?;
    let join = ((libc::PACKET_FANOUT_CBPF << 16) | (group as u32 & 0xffff)) as libc::c_int;
    setsockopt(
        &rings[1].fd,
        libc::SOL_PACKET,
        libc::PACKET_FANOUT,
        &join,
        "join the capture's fanout group",
    )?;
    let program = libc::sock_fprog { len: demux.len() as u16, filter: demux.as_ptr().cast_mut() };
    setsockopt(&rings[0].fd, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &program, "set the fanout program")
}

/// The capture rings of one interface (see the module documentation).
#[derive(Debug)]
pub struct Capture {
    /// The frame ring, then the super-frame ring if there is one.
    rings: Vec<Ring>,
    geometry: CaptureGeometry,
    split: Split,
    /// Per ring, the block whose frames are being handed over.
    cursors: [Option<BlockCursor>; 2],
    /// Per ring, for each frame of the cursor's block, the earliest timestamp
    /// from that frame to the end of the block: what [`Capture::earliest`]
    /// compares (see there why not the next frame's own).
    earliest_ahead: [Vec<Duration>; 2],
    /// Blocks whose frames were all handed over, not yet given back: (ring, index).
    spent: Vec<(usize, usize)>,
}

impl Capture {
    /// Opens the rings of `geometry` on `iface`, each with `filter` and its
    /// length clause attached before it is bound (`buffer_mib` is the
    /// `--buffer` the geometry came from, for errors), then puts them in one
    /// fanout group that splits by length, if the kernel can.
    pub fn open(
        iface: &Interface,
        filter: &str,
        geometry: CaptureGeometry,
        buffer_mib: u32,
    ) -> Result<Capture> {
        let programs = Self::programs(filter, &geometry, Split::Filters)?;
        let mut rings = vec![Ring::open(iface, &programs[0], geometry.frames, buffer_mib)?];
        if let Some(g) = geometry.super_frames {
            rings.push(Ring::open(iface, &programs[1], g, buffer_mib)?);
        }
        let blocks = rings.iter().map(|r| r.geometry.block_count).sum();
        let mut capture = Capture {
            rings,
            geometry,
            split: Split::One,
            cursors: [None, None],
            earliest_ahead: [(); 2].map(|()| Vec::with_capacity(geometry.frames.block_size / FRAME_OVERHEAD)),
            spent: Vec::with_capacity(blocks),
        };
        if capture.rings.len() == 2 {
            capture.split = match join_fanout(&capture.rings, geometry.split()) {
                Ok(()) => Split::Fanout,
                // Each ring's own length clause keeps the split exact, at the cost
                // of every frame going through both sockets.
                Err(e) => {
                    tracing::info!(error = %e, "no fanout group for the capture rings; they split by their filters");
                    Split::Filters
                }
            };
            if capture.split == Split::Fanout {
                capture.set_filter(filter)?;
            }
        }
        Ok(capture)
    }

    /// The filter program of each ring.
    fn programs(
        filter: &str,
        geometry: &CaptureGeometry,
        split: Split,
    ) -> Result<Vec<Vec<libc::sock_filter>>> {
        match split {
            Split::One => Ok(vec![crate::filter::compile(filter)?]),
            Split::Fanout => {
                let program = crate::filter::compile(filter)?;
                Ok(vec![program.clone(), program])
            }
            Split::Filters => {
                split_filters(filter, geometry.split()).iter().map(|f| crate::filter::compile(f)).collect()
            }
        }
    }

    /// How the frames are split between the rings.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The rings' shape.
    pub fn geometry(&self) -> CaptureGeometry {
        self.geometry
    }

    /// Blocks in all rings.
    pub fn block_count(&self) -> usize {
        self.rings.iter().map(|r| r.geometry.block_count).sum()
    }

    /// Replaces the filter of every ring (when collector addresses change);
    /// nothing is replaced if it does not compile.
    pub fn set_filter(&self, filter: &str) -> Result<()> {
        let programs = Self::programs(filter, &self.geometry, self.split)?;
        self.rings.iter().zip(&programs).try_for_each(|(ring, p)| ring.set_filter(p))
    }

    /// Waits up to `timeout_ms` for a block of any ring, with the signal mask
    /// `sigmask` while waiting (see [`crate::privilege::block_stop_signals`]).
    /// `Ok(false)`: timed out or interrupted by a signal.
    pub fn wait(&self, timeout_ms: i32, sigmask: &libc::sigset_t) -> Result<bool> {
        if self.rings.iter().any(Ring::is_ready) {
            return Ok(true);
        }
        let mut pfds = [libc::pollfd { fd: -1, events: libc::POLLIN | libc::POLLERR, revents: 0 }; 2];
        for (pfd, ring) in pfds.iter_mut().zip(&self.rings) {
            pfd.fd = ring.fd.as_raw_fd();
        }
        let timeout = libc::timespec {
            tv_sec: libc::time_t::from(timeout_ms / 1000),
            tv_nsec: libc::c_long::from(timeout_ms % 1000) * 1_000_000,
        };
        // SAFETY: valid pollfds (a negative fd is ignored), timespec and signal mask.
        let rc =
            unsafe { libc::ppoll(pfds.as_mut_ptr(), self.rings.len() as libc::nfds_t, &timeout, sigmask) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(Error::os("poll the capture socket", err));
        }
        for (pfd, ring) in pfds.iter().zip(&self.rings) {
            if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 && pfd.revents & libc::POLLIN == 0 {
                ring.socket_error()?;
            }
        }
        Ok(self.rings.iter().any(Ring::is_ready))
    }

    /// Hands every frame the kernel has handed over to `sink`, in capture
    /// order across the rings, taking at most `max_blocks` blocks. Blocks go
    /// back to the kernel after `sink.release()`.
    ///
    /// Order: the earlier of the two rings' next frames goes first. When one
    /// ring has nothing handed over but its block in progress holds frames,
    /// those may be earlier than the other ring's next frame, so the drain
    /// waits for that block (the kernel retires it within the block timeout),
    /// at most [`MERGE_WAIT_MS`] once per drain and ring.
    pub fn drain(&mut self, sink: &mut impl FrameSink, max_blocks: usize) -> Drained {
        let mut taken = 0;
        let mut full = false;
        let mut handed = 0;
        let mut patient = [true; 2];
        loop {
            for (r, ring) in self.rings.iter().enumerate() {
                if self.cursors[r].is_none() && taken < max_blocks {
                    self.cursors[r] = ring.take();
                    if let Some(c) = self.cursors[r] {
                        taken += 1;
                        full |= c.full;
                        earliest_ahead(ring, c, &mut self.earliest_ahead[r]);
                    }
                }
            }
            let Some(r) = self.earliest() else { break };
            if let Some(w) = (0..self.rings.len())
                .find(|&w| w != r && patient[w] && self.cursors[w].is_none() && self.rings[w].has_frames())
            {
                // Handed over since the take above: take it first.
                if self.rings[w].is_ready() {
                    if taken < max_blocks {
                        continue;
                    }
                    break;
                }
                self.give_back_spent(sink);
                handed = 0;
                patient[w] = self.rings[w].poll_ready(MERGE_WAIT_MS);
                continue;
            }
            // With no frame of the other ring handed over or pending, nothing
            // can come before the rest of this block: hand it over in one run.
            // Otherwise one frame, then compare again.
            let alone = self.cursors.iter().enumerate().all(|(w, c)| w == r || c.is_none());
            let ring = &self.rings[r];
            let Some(cursor) = self.cursors[r].as_mut() else { break };
            loop {
                match ring.frame_at(cursor.index, cursor.offset) {
                    Some((frame, next)) if cursor.left > 0 => {
                        sink.frame(frame);
                        handed += 1;
                        cursor.left -= 1;
                        cursor.offset = next;
                    }
                    // A header that does not fit the block: the rest of it is unreadable.
                    _ => cursor.left = 0,
                }
                if !alone || cursor.left == 0 {
                    break;
                }
            }
            if cursor.left == 0 {
                self.spent.push((r, cursor.index));
                self.cursors[r] = None;
                if handed >= RELEASE_EVERY {
                    self.give_back_spent(sink);
                    handed = 0;
                }
            }
        }
        self.give_back_spent(sink);
        Drained { blocks: taken, full }
    }

    /// The ring whose next frames go first; `None` when no ring has a frame
    /// handed over. Empty blocks are spent on the way.
    ///
    /// Not by the next frames' own timestamps: the kernel takes a frame's
    /// place in the ring before it copies the frame and stamps it after, so
    /// two CPUs filling one ring can leave a frame stamped late (a 64 KiB
    /// copy) ahead of earlier-stamped ones. Comparing that late head would let
    /// the other ring's frames pass the ones queued behind it, and a
    /// connection's segment overtook its predecessor (tshark saw it in
    /// `tests/oversize.rs`). The earliest timestamp still to come in each
    /// block keeps every connection's order: a frame's predecessor on the same
    /// connection was stamped before the frame's own place was taken.
    fn earliest(&mut self) -> Option<usize> {
        let mut best: Option<(usize, Duration)> = None;
        for r in 0..self.rings.len() {
            let Some(cursor) = self.cursors[r] else { continue };
            let Some((frame, _)) =
                self.rings[r].frame_at(cursor.index, cursor.offset).filter(|_| cursor.left > 0)
            else {
                self.spent.push((r, cursor.index));
                self.cursors[r] = None;
                continue;
            };
            let ahead = self.earliest_ahead[r].get((cursor.frames - cursor.left) as usize);
            let t = ahead.copied().unwrap_or(frame.timestamp);
            if best.is_none_or(|(_, best)| t < best) {
                best = Some((r, t));
            }
        }
        best.map(|(r, _)| r)
    }

    fn give_back_spent(&mut self, sink: &mut impl FrameSink) {
        sink.release();
        for (r, index) in self.spent.drain(..) {
            self.rings[r].give_back(index);
        }
    }

    /// Reads and resets the kernel's packet and drop counters, summed over the rings.
    pub fn stats(&self) -> Result<RingStats> {
        self.rings.iter().try_fold(RingStats::default(), |sum, ring| {
            let s = ring.stats()?;
            Ok(RingStats { packets: sum.packets + s.packets, drops: sum.drops + s.drops })
        })
    }
}

/// Fills `out` with, for each frame of the block `cursor` starts, the earliest
/// timestamp from that frame to the block's end (a frame whose header does
/// not fit ends the list, as it ends the block's hand-over).
fn earliest_ahead(ring: &Ring, cursor: BlockCursor, out: &mut Vec<Duration>) {
    out.clear();
    let mut offset = cursor.offset;
    for _ in 0..cursor.left {
        let Some((frame, next)) = ring.frame_at(cursor.index, offset) else { break };
        out.push(frame.timestamp);
        offset = next;
    }
    suffix_minima(out);
}

/// Each element becomes the least of itself and all that follow it.
fn suffix_minima(v: &mut [Duration]) {
    for i in (1..v.len()).rev() {
        v[i - 1] = v[i - 1].min(v[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_late_stamped_head_does_not_hide_the_earlier_frames_behind_it() {
        let us = Duration::from_micros;
        // Ring order as the kernel reserved it; the head was stamped last.
        let mut block = [us(25), us(15), us(30), us(18)];
        suffix_minima(&mut block);
        assert_eq!(block, [us(15), us(15), us(18), us(18)]);
        // Against another ring's next frame stamped at 20 µs, this block goes first
        // (its frame of 15 µs is behind the head), and again after its head and
        // the 15 µs frame are gone (18 µs is still to come).
        assert!(block[0] < us(20) && block[2] < us(20));
        let mut empty: [Duration; 0] = [];
        suffix_minima(&mut empty);
    }
    /// A 1500-byte MTU's frame with a VLAN tag.
    const MTU_FRAME: usize = 1518;

    fn capture(mib: usize) -> CaptureGeometry {
        CaptureGeometry::new(mib * MIB, MTU_FRAME, LARGEST_STANDARD_FRAME).unwrap()
    }

    #[test]
    fn the_default_24_mib_is_640_frame_blocks_of_32_kib_and_32_super_frame_blocks_of_128_kib() {
        let g = capture(24);
        assert_eq!((g.frames.block_size, g.frames.block_count), (32 << 10, 640));
        let s = g.super_frames.unwrap();
        assert_eq!((s.block_size, s.block_count), (128 << 10, 32));
        assert_eq!(g.bytes(), 24 * MIB);
        assert!(s.largest_whole_frame() >= LARGEST_STANDARD_FRAME);
        // A 9000-byte jumbo frame still goes to the frame ring.
        assert!(g.split() > 9018 && g.split() == (32 << 10) - 144);
        // A 64 KiB block would cut the largest standard super-frame.
        let half = RingGeometry { block_size: 64 << 10, block_count: 384 };
        assert!(half.largest_whole_frame() < LARGEST_STANDARD_FRAME);
    }

    #[test]
    fn the_super_frame_ring_gets_a_sixth_of_the_buffer_and_at_least_eight_blocks() {
        for (mib, frames, supers) in
            [(2, 32, 8), (8, 216, 10), (24, 640, 32), (64, 1708, 85), (1024, 27308, 1365)]
        {
            let g = capture(mib);
            assert_eq!(
                (g.frames.block_count, g.super_frames.unwrap().block_count),
                (frames, supers),
                "{mib} MiB"
            );
            assert!(g.bytes() <= mib * MIB, "{mib} MiB");
        }
    }

    #[test]
    fn an_mtu_as_large_as_a_super_frame_gets_one_ring() {
        // Loopback: 65,536-byte MTU.
        let g = CaptureGeometry::new(24 * MIB, 65_536 + 14, LARGEST_STANDARD_FRAME).unwrap();
        assert_eq!(g.super_frames, None);
        assert_eq!((g.frames.block_size, g.frames.block_count), (128 << 10, 192));
        assert_eq!(g.ring_for(60_000), g.frames);
    }

    #[test]
    fn a_super_frame_larger_than_the_smallest_block_gets_a_larger_block() {
        // BIG TCP: a 185,000-byte frame needs 256 KiB blocks, the snaplen maximum 512 KiB.
        let g = CaptureGeometry::new(24 * MIB, MTU_FRAME, 185_000).unwrap();
        assert_eq!(g.super_frames.unwrap().block_size, 256 << 10);
        assert!(g.largest_whole_frame() >= 185_000);
        let g = CaptureGeometry::new(24 * MIB, MTU_FRAME, crate::config::CAPTURE_SNAPLEN).unwrap();
        assert_eq!(g.super_frames.unwrap().block_size, 512 << 10);
        // A jumbo MTU never shrinks the frame block below 32 KiB, and a 16,000-byte one grows it.
        assert_eq!(
            CaptureGeometry::new(24 * MIB, 9018, LARGEST_STANDARD_FRAME).unwrap().frames.block_size,
            32 << 10
        );
        assert_eq!(
            CaptureGeometry::new(24 * MIB, 33_000, LARGEST_STANDARD_FRAME).unwrap().frames.block_size,
            64 << 10
        );
    }

    #[test]
    fn too_small_a_buffer_for_eight_blocks_per_ring_is_refused_naming_the_ring() {
        let e = CaptureGeometry::new(MIB, MTU_FRAME, LARGEST_STANDARD_FRAME).unwrap_err();
        assert!(
            e.contains("at least 8") && e.contains("frames after the super-frame ring's 1024 KiB"),
            "{e}"
        );
        let e = CaptureGeometry::new(MIB / 2, 65_550, LARGEST_STANDARD_FRAME).unwrap_err();
        assert!(e.contains("4 blocks of 128 KiB"), "{e}");
    }

    #[test]
    fn stall_ridden_out_is_one_millisecond_per_frame_block_until_blocks_fill_faster() {
        let g = capture(24);
        let ms = |pps: f64, len: usize| g.stall_ridden_out(pps, len).as_secs_f64() * 1000.0;
        // 40 kpps: 40 frames of 64 bytes a millisecond fit one block; 1400-byte
        // frames fill one (21 frames) in 0.53 ms.
        assert!((ms(40_000.0, 64) - 639.0).abs() < 0.01);
        assert_eq!(g.frames.frames_per_block(1400), 21);
        assert!((ms(40_000.0, 1400) - 639.0 * 21.0 / 40.0).abs() < 0.01);
        // 150 kpps of 1500 bytes fill a block (20 frames) in 0.13 ms.
        assert_eq!(g.frames.frames_per_block(1500), 20);
        assert!((ms(150_000.0, 1500) - 639.0 * 20.0 / 150.0).abs() < 0.01);
        // Below one frame per timeout, every frame gets its own block.
        assert!((ms(500.0, 64) - 1278.0).abs() < 0.01);
        // Super-frames: 31 blocks of one 64 KiB frame each.
        assert!((ms(1000.0, 65_000) - 31.0).abs() < 0.01);
        // The single 128 KiB-block ring of before rode out 191 ms at 40 kpps.
        let before = RingGeometry { block_size: 128 << 10, block_count: 192 };
        assert!((before.stall_ridden_out(40_000.0, 64).as_secs_f64() * 1000.0 - 191.0).abs() < 0.01);
    }

    #[test]
    fn split_filters_send_every_length_to_exactly_one_ring() {
        let [small, large] = split_filters("udp port 9", 32_624);
        assert_eq!(small, "(udp port 9) and less 32624");
        assert_eq!(large, "(udp port 9) and greater 32625");
        assert_eq!(split_filters("  ", 100), ["less 100".to_owned(), "greater 101".to_owned()]);
    }
}
