//! Capture with an AF_PACKET socket and a TPACKET_V3 receive ring.
//!
//! libpcap uses the same kernel mechanism, and compiles our filter (see
//! [`crate::filter`]); the agent drives the ring itself so that frames can be
//! handed to `sendmmsg` straight from the ring memory: a block is given back
//! to the kernel only after every frame in it was sent, so no frame is copied
//! in user space.

use std::io;
use std::mem::{size_of, size_of_val};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::iface::Interface;

/// Frame slot size the kernel wants to know about (unused by TPACKET_V3 itself).
const FRAME_SIZE: usize = 2048;
/// A block holding at least one frame is handed over after this many
/// milliseconds even if not full: the latency bound at low packet rates.
/// 1 ms, not 4: an analyser times transactions by the frames' arrival, and a
/// 4 ms hold spread request and response apart by up to 4 ms; measured with
/// scripts/bench.sh (512 B, 20k/100k pps) p50 0.6-0.9 ms instead of
/// 2.3-3.0 ms, CPU per packet within the run-to-run noise.
pub const BLOCK_TIMEOUT_MS: u32 = 1;
/// The smallest block: it must hold the largest frame whole, since the
/// kernel cuts a frame that does not fit its block (TPACKET_V3 never spans
/// blocks). 128 KiB holds any GSO/GRO super-frame of a stack without BIG TCP
/// ([`LARGEST_STANDARD_FRAME`]); smaller blocks would not.
pub const MIN_BLOCK_SIZE: usize = 128 << 10;
/// Fewest blocks a ring may have: fewer and one slow `sendmmsg` on the
/// block in hand already fills the rest.
pub const MIN_BLOCKS: usize = 8;
/// The block descriptor at the start of every block (`tpacket_block_desc`).
const BLOCK_HEADER: usize = 48;
/// What the kernel puts before each frame: `tpacket3_hdr` and `sockaddr_ll`,
/// padded so the network header is 16-byte aligned (82 bytes before an
/// Ethernet header), plus the 8-byte alignment of the next frame; rounded up.
pub const FRAME_OVERHEAD: usize = 96;
/// The largest frame without BIG TCP: a 65,535-byte IP packet, Ethernet
/// header and a VLAN tag.
pub const LARGEST_STANDARD_FRAME: usize = 65_535 + 14 + 4;

/// The shape of the TPACKET_V3 receive ring.
///
/// Why many small blocks rather than a few large ones: the kernel hands a
/// block to user space when it is full *or* when [`BLOCK_TIMEOUT_MS`]
/// passes with at least one frame in it. While the agent is not scheduled
/// (a busy node, CPU throttling), the timer keeps retiring blocks every
/// millisecond however little they hold, so at any rate below a block per
/// millisecond the ring rides out one millisecond of stall per block,
/// whatever its size in bytes. 8 blocks of 1 MiB rode out 8 ms; 192 blocks
/// of 128 KiB ride out 191 ms in 24 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Bytes per block (a power of two, at least [`MIN_BLOCK_SIZE`]).
    pub block_size: usize,
    /// Blocks in the ring.
    pub block_count: usize,
}

impl RingGeometry {
    /// The ring for `buffer_bytes` of memory whose blocks hold frames of up
    /// to `largest_frame` bytes whole. `Err` says why the size cannot work.
    pub fn new(buffer_bytes: usize, largest_frame: usize) -> std::result::Result<RingGeometry, String> {
        let block_size =
            (largest_frame + BLOCK_HEADER + FRAME_OVERHEAD).next_power_of_two().max(MIN_BLOCK_SIZE);
        let block_count = buffer_bytes / block_size;
        if block_count < MIN_BLOCKS {
            return Err(format!(
                "{} KiB holds {block_count} blocks of {} KiB, at least {MIN_BLOCKS} are needed (at least {} KiB)",
                buffer_bytes >> 10,
                block_size >> 10,
                (MIN_BLOCKS * block_size) >> 10
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
    pub fn stall_ridden_out(&self, pps: f64, frame_len: usize) -> std::time::Duration {
        let timeout = f64::from(BLOCK_TIMEOUT_MS) / 1000.0;
        let fill = self.frames_per_block(frame_len) as f64 / pps;
        let per_block = if pps * timeout <= 1.0 { 1.0 / pps } else { fill.min(timeout) };
        std::time::Duration::from_secs_f64(per_block * (self.block_count - 1) as f64)
    }
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
    next_block: usize,
}

// SAFETY: the mapping is owned by this value and only touched through &mut self.
unsafe impl Send for Ring {}

/// `setsockopt(2)` with a typed value; `what` names the step in the error.
pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &'static str,
) -> Result<()> {
    // SAFETY: value points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(Error::last_os(what)) }
}

/// Maps the ring the kernel allocated for an AF_PACKET socket
/// (PACKET_RX_RING or PACKET_TX_RING), shared, with `flags` added.
pub(crate) fn map_ring(
    fd: &OwnedFd,
    len: usize,
    flags: libc::c_int,
    what: &'static str,
) -> Result<*mut libc::c_void> {
    // SAFETY: maps `len` bytes of the ring the kernel holds for fd; the
    // caller unmaps exactly that length when it drops the ring.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED { Err(Error::last_os(what)) } else { Ok(map) }
}

/// Attaches a classic BPF program to a socket (replacing any earlier one atomically).
pub fn attach_filter(fd: &OwnedFd, program: &[libc::sock_filter]) -> Result<()> {
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
    setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &prog,
        "attach the capture filter (SO_ATTACH_FILTER)",
    )
}

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
        let ring = Ring { fd, map: map.cast(), geometry, next_block: 0 };
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

    /// The socket, for re-attaching the filter.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Replaces the filter (when collector addresses change).
    pub fn set_filter(&self, filter: &[libc::sock_filter]) -> Result<()> {
        attach_filter(&self.fd, filter)
    }

    fn block_status(&self, index: usize) -> &AtomicU32 {
        // SAFETY: block_status is the first u32 of the block header, inside the mapping
        // and 4-byte aligned; the kernel writes it concurrently, hence the atomic.
        unsafe {
            let desc = self.map.add(index * self.geometry.block_size).cast::<libc::tpacket_block_desc>();
            AtomicU32::from_ptr((&raw mut (*desc).hdr.bh1.block_status).cast())
        }
    }

    /// Waits up to `timeout_ms` for a block, with the signal mask `sigmask`
    /// while waiting (see [`crate::privilege::block_stop_signals`]).
    /// `Ok(false)`: timed out or interrupted by a signal.
    pub fn wait(&self, timeout_ms: i32, sigmask: &libc::sigset_t) -> Result<bool> {
        if self.block_status(self.next_block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0 {
            return Ok(true);
        }
        let mut pfd =
            libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN | libc::POLLERR, revents: 0 };
        let timeout = libc::timespec {
            tv_sec: libc::time_t::from(timeout_ms / 1000),
            tv_nsec: libc::c_long::from(timeout_ms % 1000) * 1_000_000,
        };
        // SAFETY: one valid pollfd, a valid timespec and signal mask.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, &timeout, sigmask) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(Error::os("poll the capture socket", err));
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 && pfd.revents & libc::POLLIN == 0 {
            let mut err: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: reads SO_ERROR into a c_int.
            unsafe {
                libc::getsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&raw mut err).cast(),
                    &mut len,
                )
            };
            match err {
                // The interface went down: the kernel re-attaches the socket
                // when it comes back up, so capture resumes by itself.
                libc::ENETDOWN => {
                    tracing::warn!("capture interface is down; capture resumes when it is up again");
                    return Ok(false);
                }
                // The interface was deleted: the socket is unbound for good.
                libc::ENODEV => {
                    return Err(Error::Io {
                        what: "the capture interface was removed".into(),
                        source: io::Error::from_raw_os_error(err),
                    });
                }
                _ => {}
            }
        }
        Ok(self.block_status(self.next_block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0)
    }

    /// The next block the kernel handed over, if any. The block goes back to
    /// the kernel when the returned value is dropped.
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        if self.block_status(self.next_block).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return None;
        }
        let index = self.next_block;
        let block_size = self.geometry.block_size;
        self.next_block = (self.next_block + 1) % self.geometry.block_count;
        // SAFETY: the block belongs to user space until we store TP_STATUS_KERNEL.
        let data = unsafe { std::slice::from_raw_parts(self.map.add(index * block_size), block_size) };
        Some(Block { ring: self, index, data })
    }

    /// Reads and resets the kernel's packet and drop counters.
    pub fn stats(&self) -> Result<RingStats> {
        // SAFETY: plain data.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = size_of_val(&st) as libc::socklen_t;
        // SAFETY: getsockopt into a tpacket_stats_v3 of the given size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(Error::last_os("read capture statistics (PACKET_STATISTICS)"));
        }
        Ok(RingStats { packets: st.tp_packets, drops: st.tp_drops })
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps what open() mapped; no Block can be alive (they borrow self).
        unsafe { libc::munmap(self.map.cast(), self.geometry.bytes()) };
    }
}

/// A block of frames owned by user space until dropped.
#[derive(Debug)]
pub struct Block<'r> {
    ring: &'r Ring,
    index: usize,
    data: &'r [u8],
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
    /// When the kernel captured it, since the Unix epoch (for `--write`).
    pub timestamp: std::time::Duration,
}

impl Block<'_> {
    fn u32_at(&self, off: usize) -> u32 {
        self.data.get(off..off + 4).map_or(0, |b| u32::from_ne_bytes(b.try_into().unwrap()))
    }

    /// Calls `f` for every frame of the block, in capture order.
    pub fn for_each_frame<'b>(&'b self, mut f: impl FnMut(Frame<'b>)) {
        // Offsets of tpacket_block_desc.hdr.bh1 fields (version, offset_to_priv, then bh1).
        let num_pkts = self.u32_at(12) as usize;
        let mut off = self.u32_at(16) as usize;
        for _ in 0..num_pkts {
            if off + size_of::<libc::tpacket3_hdr>() > self.data.len() {
                break;
            }
            // SAFETY: in bounds (checked above), tpacket3_hdr is plain data, read unaligned.
            let hdr: libc::tpacket3_hdr =
                unsafe { std::ptr::read_unaligned(self.data.as_ptr().add(off).cast()) };
            let start = off + usize::from(hdr.tp_mac);
            let Some(data) = self.data.get(start..start + hdr.tp_snaplen as usize) else { break };
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
            let timestamp = std::time::Duration::new(u64::from(hdr.tp_sec), hdr.tp_nsec);
            f(Frame { data, wire_len: hdr.tp_len, vlan, timestamp });
            if hdr.tp_next_offset == 0 {
                break;
            }
            off += hdr.tp_next_offset as usize;
        }
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // Hands the block back: the kernel may overwrite it from now on.
        self.ring.block_status(self.index).store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_default_24_mib_is_192_blocks_of_128_kib_holding_any_standard_super_frame() {
        let g = RingGeometry::new(24 * MIB, LARGEST_STANDARD_FRAME).unwrap();
        assert_eq!((g.block_size, g.block_count, g.bytes()), (128 << 10, 192, 24 * MIB));
        assert!(g.largest_whole_frame() >= LARGEST_STANDARD_FRAME);
        // A 64 KiB block would cut the largest standard super-frame.
        let half = RingGeometry { block_size: 64 << 10, block_count: 384 };
        assert!(half.largest_whole_frame() < LARGEST_STANDARD_FRAME);
    }

    #[test]
    fn block_count_follows_the_buffer_size() {
        for (mib, blocks) in [(1, 8), (8, 64), (16, 128), (24, 192), (64, 512), (1024, 8192)] {
            let g = RingGeometry::new(mib * MIB, LARGEST_STANDARD_FRAME).unwrap();
            assert_eq!((g.block_size, g.block_count), (128 << 10, blocks), "{mib} MiB");
        }
        // Not a whole number of blocks: the rest is not used.
        assert_eq!(RingGeometry::new(MIB + 100_000, LARGEST_STANDARD_FRAME).unwrap().block_count, 8);
    }

    #[test]
    fn a_super_frame_larger_than_the_smallest_block_gets_a_larger_block() {
        // BIG TCP: a 185,000-byte frame needs 256 KiB blocks, the snaplen maximum 512 KiB.
        let g = RingGeometry::new(24 * MIB, 185_000).unwrap();
        assert_eq!((g.block_size, g.block_count), (256 << 10, 96));
        assert!(g.largest_whole_frame() >= 185_000);
        let g = RingGeometry::new(24 * MIB, crate::config::CAPTURE_SNAPLEN).unwrap();
        assert_eq!((g.block_size, g.block_count), (512 << 10, 48));
        // Jumbo or standard frames never shrink the block below 128 KiB.
        assert_eq!(RingGeometry::new(24 * MIB, 9018).unwrap().block_size, 128 << 10);
    }

    #[test]
    fn too_small_a_buffer_for_eight_blocks_is_refused_with_the_minimum() {
        let e = RingGeometry::new(MIB / 2, LARGEST_STANDARD_FRAME).unwrap_err();
        assert!(e.contains("at least 8") && e.contains("1024 KiB"), "{e}");
        assert!(RingGeometry::new(2 * MIB, crate::config::CAPTURE_SNAPLEN).is_err(), "4 blocks of 512 KiB");
    }

    #[test]
    fn stall_ridden_out_is_one_millisecond_per_block_until_blocks_fill_faster() {
        let g = RingGeometry::new(24 * MIB, LARGEST_STANDARD_FRAME).unwrap();
        let ms = |pps: f64, len: usize| g.stall_ridden_out(pps, len).as_secs_f64() * 1000.0;
        // 40 kpps: 40 frames a millisecond fit one block at 64 and 1400 bytes.
        assert!((ms(40_000.0, 64) - 191.0).abs() < 0.01);
        assert!((ms(40_000.0, 1400) - 191.0).abs() < 0.01);
        // 150 kpps of 1500 bytes fill a block (80 frames) in 0.53 ms.
        assert_eq!(g.frames_per_block(1500), 82);
        assert!((ms(150_000.0, 1500) - 191.0 * 82.0 / 150.0).abs() < 0.01);
        // Below one frame per timeout, every frame gets its own block.
        assert!((ms(500.0, 64) - 382.0).abs() < 0.01);
        // The old ring: 8 blocks of 1 MiB rode out 7 ms at 40 kpps.
        let old = RingGeometry { block_size: MIB, block_count: 8 };
        assert!((old.stall_ridden_out(40_000.0, 64).as_secs_f64() * 1000.0 - 7.0).abs() < 0.01);
    }
}
