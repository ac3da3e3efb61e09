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
//! blocks for the frames held 639 ms in 20 MiB (607 ms in 19 MiB beside the prompt ring), and the super-frames keep
//! their 128 KiB blocks in the other 4 MiB. [`Capture::drain`] merges the
//! rings back into capture order.
//!
//! A third ring, the *prompt ring* (TPACKET_V2 slots, [`RingKind::Slots`]),
//! joins the same fanout group and takes the frames of up to an MTU while
//! the rate is low ([`steer`]): each is handed over as soon as it is
//! captured, instead of when its block retires, so the collector sees the
//! pod's timeline within tens of microseconds. Above the rate, the fanout
//! program is swapped and the frames go to the frame ring's blocks again.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::iface::Interface;

mod fanout;
mod geometry;
mod ring;
pub mod steer;

use fanout::*;

pub use geometry::*;
pub use ring::*;
use steer::{Path, Steering};

/// Now on the clock the kernel stamps captured frames with (the real-time
/// clock), as a time since the Unix epoch.
pub fn wall_clock() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
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

impl Frame<'_> {
    /// The frame's captured length with its VLAN tag put back, as sent.
    pub fn tagged_len(&self) -> usize {
        self.data.len() + if self.vlan.is_some() { bpc_wire::ethernet::VLAN_TAG_LEN } else { 0 }
    }
}

/// What one [`Capture::drain`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Units taken: blocks, and slots of the prompt ring.
    pub blocks: usize,
    /// Frames handed over.
    pub frames: usize,
    /// Some block was handed over full, before its timeout: frames arrive
    /// faster than a block per [`BLOCK_TIMEOUT_MS`] (see [`Drained::pause`]).
    pub full: bool,
    /// From the first frame's capture time to the last one's: how long the
    /// kernel took to fill what was taken (not the wall time since the
    /// previous round, which includes any quiet time before).
    pub span: Duration,
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

/// Rings of one capture at most: frames, super-frames, prompt.
const MAX_RINGS: usize = 3;

/// The capture rings of one interface (see the module documentation).
#[derive(Debug)]
pub struct Capture {
    /// The frame ring, then the super-frame ring and the prompt ring if there are.
    rings: Vec<Ring>,
    geometry: CaptureGeometry,
    split: Split,
    /// The prompt ring's place in `rings` (its fanout member), when it is open.
    prompt: Option<usize>,
    /// Where the frames of up to an MTU go, by the rate.
    steering: Steering,
    /// Swaps the fanout program for the steering, off this thread.
    swapper: Option<ProgramSwapper>,
    /// Per ring, the block whose frames are being handed over.
    cursors: [Option<BlockCursor>; MAX_RINGS],
    /// Per ring, for each frame of the cursor's block, the earliest timestamp
    /// from that frame to the end of the block: what [`Capture::earliest`]
    /// compares (see there why not the next frame's own).
    earliest_ahead: [Vec<Duration>; MAX_RINGS],
    /// Blocks whose frames were all handed over, not yet given back: (ring, index).
    spent: Vec<(usize, usize)>,
}

impl Capture {
    /// Opens the rings of `geometry` on `iface`, each with `filter` and its
    /// length clause attached before it is bound (`buffer_mib` is the
    /// `--buffer` the geometry came from, for errors), then puts them in one
    /// fanout group that splits by length, with the prompt ring, if the
    /// kernel can.
    pub fn open(
        iface: &Interface,
        filter: &str,
        geometry: CaptureGeometry,
        buffer_mib: u32,
    ) -> Result<Capture> {
        let programs = Self::programs(filter, &geometry, Split::Filters, 2)?;
        let mut rings = vec![Ring::open(
            iface,
            &programs[0],
            geometry.frames,
            RingKind::Blocks,
            buffer_mib,
            geometry.block_timeout_ms(),
        )?];
        if let Some(g) = geometry.super_frames {
            rings.push(Ring::open(
                iface,
                &programs[1],
                g,
                RingKind::Blocks,
                buffer_mib,
                geometry.block_timeout_ms(),
            )?);
        }
        let units = rings.iter().map(|r| r.units).sum::<usize>()
            + geometry.prompt.map_or(0, |g| g.bytes() / PROMPT_SLOT_SIZE);
        let mut capture = Capture {
            rings,
            geometry,
            split: Split::One,
            prompt: None,
            steering: Steering::new(Instant::now()),
            swapper: None,
            cursors: [None; MAX_RINGS],
            earliest_ahead: [(); MAX_RINGS]
                .map(|()| Vec::with_capacity(geometry.frames.block_size / FRAME_OVERHEAD)),
            spent: Vec::with_capacity(units),
        };
        if capture.rings.len() == 2 {
            capture.split = match join_fanout(&capture.rings, &demux_program(geometry.split(), None)) {
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
                if let Some(g) = geometry.prompt {
                    capture.open_prompt(iface, filter, g, buffer_mib);
                }
            }
        }
        Ok(capture)
    }

    /// Adds the prompt ring to the fanout group and sends it the small frames
    /// ([`Path::Prompt`]). Without it (a kernel that refuses), the frames keep
    /// the blocks: only the latency is lost, so this is logged, not an error.
    fn open_prompt(&mut self, iface: &Interface, filter: &str, g: RingGeometry, buffer_mib: u32) {
        let opened = Ring::open(iface, &TAKE_NOTHING, g, RingKind::Slots, buffer_mib, BLOCK_TIMEOUT_MS)
            .and_then(|ring| {
                join_group(&self.rings[0], &ring)?;
                ring.set_filter(&crate::filter::compile(filter)?)?;
                Ok(ring)
            });
        match opened {
            Ok(ring) => {
                self.rings.push(ring);
                self.prompt = Some(self.rings.len() - 1);
                if let Err(e) = set_fanout_program(&self.rings[0].fd, &self.program(Path::Prompt)) {
                    tracing::info!(error = %e, "the prompt ring takes no frames; they keep the blocks");
                }
                self.swapper = ProgramSwapper::spawn(&self.rings[0].fd)
                    .map_err(|e| tracing::info!(error = %e, "no thread to swap the fanout program; swapped inline"))
                    .ok();
            }
            Err(e) => tracing::info!(error = %e, "no prompt ring; frames keep the blocks at every rate"),
        }
    }

    /// The fanout program for `path`.
    fn program(&self, path: Path) -> Vec<libc::sock_filter> {
        let member = self.prompt.filter(|_| path == Path::Prompt).map(|m| m as u32);
        demux_program(self.geometry.split(), member)
    }

    /// Counts the frames of a round and, when the rate crosses a threshold
    /// ([`steer`]), moves the small frames to the other path. Frames already
    /// in the old ring keep their order: the drain merges the rings.
    pub fn steer(&mut self, drained: Drained, now: Instant) {
        if self.prompt.is_none() {
            return;
        }
        if let Some(path) = self.steering.observe(drained.frames as u64, now) {
            tracing::debug!(path = path.as_str(), "frames up to an MTU change path");
            let program = self.program(path);
            match &self.swapper {
                Some(swapper) => swapper.swap(program),
                None => {
                    if let Err(e) = set_fanout_program(&self.rings[0].fd, &program) {
                        tracing::warn!(error = %e, "cannot change the frames' path");
                    }
                }
            }
        }
    }

    /// How long to let frames gather after a round that took `drained`,
    /// before waiting again: [`Drained::pause`]; with `--batch`, whose blocks
    /// time out after the batch, only when a block filled before that,
    /// [`batch_pause`].
    pub fn pause(&self, drained: Drained) -> Option<Duration> {
        match self.geometry.batch {
            None => drained.pause(),
            Some(batch) if drained.full => {
                let frames = self.geometry.frames;
                Some(batch_pause(batch, drained.blocks, drained.span, frames.block_count, frames.block_size))
            }
            Some(_) => None,
        }
    }

    /// The longest the capture loop should wait for frames: on the blocks
    /// path, one steering window, so that a pod gone quiet gets the prompt
    /// path back before its next frame instead of after the idle poll (the
    /// first frame after a pause would wait for a block); otherwise no bound.
    pub fn poll_ms(&self) -> i32 {
        match self.path() {
            Some(Path::Blocks) => steer::STEER_WINDOW.as_millis() as i32,
            _ => i32::MAX,
        }
    }

    /// Where the frames of up to an MTU go now; `None` without a prompt ring.
    pub fn path(&self) -> Option<Path> {
        self.prompt.map(|_| self.steering.path())
    }

    /// The filter program of each of `count` rings.
    fn programs(
        filter: &str,
        geometry: &CaptureGeometry,
        split: Split,
        count: usize,
    ) -> Result<Vec<Vec<libc::sock_filter>>> {
        match split {
            Split::One => Ok(vec![crate::filter::compile(filter)?]),
            Split::Fanout => Ok(vec![crate::filter::compile(filter)?; count]),
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

    /// Waits until no ring holds frames in a block the kernel has not handed
    /// over yet, at most one block timeout: before the last drain, so that
    /// the frames of the pod's last moments leave too (with `--batch` the
    /// block in progress may be the batch's whole age from its timeout).
    pub fn wait_retired(&self) {
        let deadline = Instant::now() + Duration::from_millis(u64::from(self.geometry.block_timeout_ms()));
        for ring in &self.rings {
            while ring.has_frames() && !ring.is_ready() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                ring.poll_ready(left.as_millis().clamp(1, i32::MAX as u128) as i32);
            }
        }
    }

    /// Units in all rings: blocks, and the prompt ring's slots.
    pub fn block_count(&self) -> usize {
        self.rings.iter().map(Ring::units).sum()
    }

    /// Replaces the filter of every ring (when collector addresses change);
    /// nothing is replaced if it does not compile.
    pub fn set_filter(&self, filter: &str) -> Result<()> {
        let programs = Self::programs(filter, &self.geometry, self.split, self.rings.len())?;
        self.rings.iter().zip(&programs).try_for_each(|(ring, p)| ring.set_filter(p))
    }

    /// Waits up to `timeout_ms` for a block of any ring, with the signal mask
    /// `sigmask` while waiting (see [`crate::privilege::block_stop_signals`]).
    /// `Ok(false)`: timed out or interrupted by a signal.
    pub fn wait(&self, timeout_ms: i32, sigmask: &libc::sigset_t) -> Result<bool> {
        if self.rings.iter().any(Ring::is_ready) {
            return Ok(true);
        }
        let mut pfds = [libc::pollfd { fd: -1, events: libc::POLLIN | libc::POLLERR, revents: 0 }; MAX_RINGS];
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
        let mut frames = 0;
        let mut patient = [true; MAX_RINGS];
        let (mut first, mut last) = (None, Duration::ZERO);
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
                patient[w] = self.rings[w].poll_ready(self.geometry.merge_wait_ms());
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
                        first.get_or_insert(frame.timestamp);
                        last = last.max(frame.timestamp);
                        sink.frame(frame);
                        handed += 1;
                        frames += 1;
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
        let span = first.map_or(Duration::ZERO, |f| last.saturating_sub(f));
        Drained { blocks: taken, frames, full, span }
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

/// With `--batch`, frames gather after a round whose blocks filled before
/// their timeout up to this many bytes of blocks, as libpcap's 256 KiB blocks
/// (Netis pktminerg's) do: fewer wake-ups buy little more beyond it, and a
/// longer gathering only delays the frames.
const BATCH_GATHER_BYTES: usize = 256 << 10;

/// With `--batch`, the pause after a round that took `blocks` blocks of
/// `block_size` bytes, their frames captured over `span`: `batch`, unless at
/// that rate [`BATCH_GATHER_BYTES`], or a quarter of the frame ring's
/// `ring_blocks`, fill sooner; then as long as that takes. The rate is the
/// frames' own (their capture times), so a round after a quiet spell does not
/// take the quiet for slowness: measured with the wall time since the
/// previous round, the first pause after idle was the whole batch, and at
/// 28 MB/s it overran the ring.
fn batch_pause(
    batch: Duration,
    blocks: usize,
    span: Duration,
    ring_blocks: usize,
    block_size: usize,
) -> Duration {
    let gather = (BATCH_GATHER_BYTES / block_size).clamp(1, (ring_blocks / 4).max(1));
    batch.min(span.mul_f64(gather as f64 / blocks.max(1) as f64))
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

    #[test]
    fn a_batch_pause_is_the_batch_unless_256_kib_or_a_quarter_of_the_ring_fill_sooner() {
        let ms = Duration::from_millis;
        const KIB32: usize = 32 << 10;
        // A round that took 8 blocks (256 KiB) in 100 ms: pause 100 ms.
        assert_eq!(batch_pause(ms(500), 8, ms(100), 640, KIB32), ms(100));
        // 80 blocks in 10 ms: 8 blocks take 1 ms.
        assert_eq!(batch_pause(ms(500), 80, ms(10), 640, KIB32), ms(1));
        // Slower than 256 KiB a batch: the batch.
        assert_eq!(batch_pause(ms(100), 2, ms(100), 640, KIB32), ms(100));
        // The smallest ring (24 blocks): a quarter is 6 blocks, less than 8.
        assert_eq!(batch_pause(ms(500), 12, ms(100), 24, KIB32), ms(50));
        assert_eq!(batch_pause(ms(100), 0, ms(1000), 640, KIB32), ms(100));
    }

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
}
