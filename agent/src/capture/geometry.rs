//! The capture rings' geometry: how `--buffer` is shared between the frame
//! ring and the super-frame ring, their block and frame sizes, and the
//! length filters that send each frame to one of them.

use std::time::Duration;

/// Frame slot size the kernel wants to know about (unused by TPACKET_V3 itself).
pub(super) const FRAME_SIZE: usize = 2048;
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
/// bytes, and still gives 608 blocks, 607 ms of stall at low rates, in the
/// 19 MiB of the default 24 MiB left after the super-frame and prompt rings.
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
pub(super) const SUPER_FRAME_SHARE: usize = 6;
/// A slot of the prompt ring: one frame of up to an MTU of 1500 and its
/// headers (`tpacket2_hdr`, `sockaddr_ll`, alignment: 80 bytes before the
/// network header), [`PROMPT_SLOTS_PER_BLOCK`] to a block.
pub const PROMPT_SLOT_SIZE: usize = 2048;
/// The largest frame a prompt slot holds whole; the fanout program sends
/// longer ones to the block rings.
pub const PROMPT_LARGEST_FRAME: usize = PROMPT_SLOT_SIZE - FRAME_OVERHEAD;
// A 1500-byte MTU's frame, tagged, fits a prompt slot whole.
const _: () = assert!(PROMPT_LARGEST_FRAME >= 1518);
/// Blocks of the prompt ring hold this many slots (64 KiB).
pub(super) const PROMPT_SLOTS_PER_BLOCK: usize = 32;

/// The prompt ring's share of `--buffer`: one twenty-fourth (1 MiB, 512
/// slots, of the default 24 MiB), at least [`MIN_PROMPT_BYTES`]. It carries
/// the frames only while the rate is low ([`super::steer`]): 512 frames
/// ride out 256 ms at the highest rate it keeps.
pub(super) const PROMPT_SHARE: usize = 24;
/// The smallest prompt ring: 128 slots.
pub(super) const MIN_PROMPT_BYTES: usize = 4 * PROMPT_BLOCK_SIZE;
/// Blocks of the prompt ring ([`PROMPT_SLOTS_PER_BLOCK`] slots).
pub(super) const PROMPT_BLOCK_SIZE: usize = PROMPT_SLOTS_PER_BLOCK * PROMPT_SLOT_SIZE;
/// Fewest blocks a ring may have: fewer and one slow `sendmmsg` on the
/// block in hand already fills the rest.
pub const MIN_BLOCKS: usize = 8;
/// An Ethernet header, which the fanout program may not see (see [`join_fanout`]).
pub(super) const ETH_HEADER_LEN: usize = 14;
/// The block descriptor at the start of every block (`tpacket_block_desc`).
pub(super) const BLOCK_HEADER: usize = 48;
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
pub(super) const RELEASE_EVERY: usize = 64;
/// How long [`Capture::drain`] waits for the other ring's block in progress
/// to be retired before it hands over frames that may be later than the ones
/// that block holds. Not a few block timeouts: where the kernel's retire
/// timer counts in jiffies (the classic af_packet code), 1 ms is one tick,
/// 4 ms at HZ=250 and 10 ms at HZ=100, and a busy machine delays the timer
/// further; giving up this wait is a way the merge can lose order. The wait
/// ends as soon as the block is retired, so the cap costs nothing when the
/// kernel is on time.
pub(super) const MERGE_WAIT_MS: i32 = 25;

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
    pub(super) fn with_blocks(
        bytes: usize,
        block_size: usize,
        what: &str,
    ) -> std::result::Result<RingGeometry, String> {
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
    /// filled, each retired after `timeout_ms` or when full, or holding a
    /// single frame at rates below one per timeout.
    pub fn stall_ridden_out(&self, pps: f64, frame_len: usize, timeout_ms: u32) -> Duration {
        let timeout = f64::from(timeout_ms) / 1000.0;
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
    /// The prompt ring's slots ([`super::RingKind::Slots`]), for frames up to
    /// [`PROMPT_LARGEST_FRAME`] while the rate is low; with the super-frame
    /// ring only (it takes the prompt ring into the same fanout group).
    pub prompt: Option<RingGeometry>,
    /// `--batch`: the blocks time out after it ([`CaptureGeometry::batched`]).
    pub batch: Option<Duration>,
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
            return Ok(CaptureGeometry { frames, super_frames: None, prompt: None, batch: None });
        }
        let super_count = (buffer_bytes / SUPER_FRAME_SHARE / super_block).max(MIN_BLOCKS);
        let super_frames = RingGeometry { block_size: super_block, block_count: super_count };
        let prompt_bytes = (buffer_bytes / PROMPT_SHARE).max(MIN_PROMPT_BYTES);
        let prompt =
            RingGeometry { block_size: PROMPT_BLOCK_SIZE, block_count: prompt_bytes / PROMPT_BLOCK_SIZE };
        let frames = RingGeometry::with_blocks(
            buffer_bytes.saturating_sub(super_frames.bytes() + prompt.bytes()),
            frame_block,
            &format!(
                "frames after the super-frame ring's {} KiB and the prompt ring's {} KiB",
                super_frames.bytes() >> 10,
                prompt.bytes() >> 10
            ),
        )?;
        Ok(CaptureGeometry { frames, super_frames: Some(super_frames), prompt: Some(prompt), batch: None })
    }

    /// The rings for `--batch`: blocks retired `batch` after their first
    /// frame (or when full), as a libpcap ring with a timeout, so that a
    /// slow pod's frames share blocks instead of taking one each; no prompt
    /// ring (frames gather in the blocks at every rate), its memory given
    /// to the frame ring.
    pub fn batched(self, batch: Duration) -> CaptureGeometry {
        let frames = RingGeometry {
            block_count: self.frames.block_count
                + self.prompt.map_or(0, |p| p.bytes() / self.frames.block_size),
            ..self.frames
        };
        CaptureGeometry { frames, prompt: None, batch: Some(batch), ..self }
    }

    /// The blocks' timeout: [`BLOCK_TIMEOUT_MS`], or the batch.
    pub fn block_timeout_ms(&self) -> u32 {
        self.batch.map_or(BLOCK_TIMEOUT_MS, |b| {
            u32::try_from(b.as_millis()).unwrap_or(u32::MAX).max(BLOCK_TIMEOUT_MS)
        })
    }

    /// How long the drain may wait for one ring's block in progress (see
    /// [`MERGE_WAIT_MS`]): a block timeout longer than the default adds to it.
    pub fn merge_wait_ms(&self) -> i32 {
        MERGE_WAIT_MS
            .saturating_add(i32::try_from(self.block_timeout_ms() - BLOCK_TIMEOUT_MS).unwrap_or(i32::MAX))
    }

    /// Memory the rings map.
    pub fn bytes(&self) -> usize {
        self.frames.bytes()
            + self.super_frames.map_or(0, |g| g.bytes())
            + self.prompt.map_or(0, |g| g.bytes())
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
        self.ring_for(frame_len).stall_ridden_out(pps, frame_len, self.block_timeout_ms())
    }

    /// The geometry in words, for the start-up log (with `--batch`, its
    /// timeout is the batch's).
    pub fn describe(&self) -> String {
        let ring = |g: &RingGeometry| format!("{} blocks of {} KiB", g.block_count, g.block_size >> 10);
        match &self.super_frames {
            None => {
                format!(
                    "{} MiB, {}, {} ms timeout",
                    self.bytes() >> 20,
                    ring(&self.frames),
                    self.block_timeout_ms()
                )
            }
            Some(s) => format!(
                "{} KiB: frames up to {} B in {}, super-frames up to {} B in {}, {} ms timeout{}",
                self.bytes() >> 10,
                self.split(),
                ring(&self.frames),
                s.largest_whole_frame(),
                ring(s),
                self.block_timeout_ms(),
                self.prompt.map_or(String::new(), |p| format!(
                    "; at low rates frames up to {PROMPT_LARGEST_FRAME} B in {} slots",
                    p.bytes() / PROMPT_SLOT_SIZE
                )),
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// A 1500-byte MTU's frame with a VLAN tag.
    const MTU_FRAME: usize = 1518;

    fn capture(mib: usize) -> CaptureGeometry {
        CaptureGeometry::new(mib * MIB, MTU_FRAME, LARGEST_STANDARD_FRAME).unwrap()
    }

    #[test]
    fn the_default_24_mib_is_608_frame_blocks_of_32_kib_32_super_frame_blocks_of_128_kib_and_512_prompt_slots()
     {
        let g = capture(24);
        assert_eq!((g.frames.block_size, g.frames.block_count), (32 << 10, 608));
        let s = g.super_frames.unwrap();
        assert_eq!((s.block_size, s.block_count), (128 << 10, 32));
        let p = g.prompt.unwrap();
        assert_eq!(p.bytes() / PROMPT_SLOT_SIZE, 512);
        assert_eq!(g.bytes(), 24 * MIB);
        assert!(s.largest_whole_frame() >= LARGEST_STANDARD_FRAME);
        // A 9000-byte jumbo frame still goes to the frame ring.
        assert!(g.split() > 9018 && g.split() == (32 << 10) - 144);
        // A 64 KiB block would cut the largest standard super-frame.
        let half = RingGeometry { block_size: 64 << 10, block_count: 384 };
        assert!(half.largest_whole_frame() < LARGEST_STANDARD_FRAME);
    }

    #[test]
    fn the_super_frame_ring_gets_a_sixth_of_the_buffer_and_the_prompt_ring_a_twenty_fourth() {
        for (mib, frames, supers, slots) in [
            (2, 24, 8, 128),
            (8, 206, 10, 160),
            (24, 608, 32, 512),
            (64, 1624, 85, 1344),
            (1024, 25944, 1365, 21824),
        ] {
            let g = capture(mib);
            assert_eq!(
                (
                    g.frames.block_count,
                    g.super_frames.unwrap().block_count,
                    g.prompt.unwrap().bytes() / PROMPT_SLOT_SIZE
                ),
                (frames, supers, slots),
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
    fn batched_rings_time_out_after_the_batch_and_give_the_prompt_rings_memory_to_the_frames() {
        let g = CaptureGeometry::new(24 * MIB, MTU_FRAME, LARGEST_STANDARD_FRAME).unwrap();
        let batched = g.batched(Duration::from_millis(100));
        assert_eq!(batched.prompt, None);
        assert_eq!(batched.super_frames, g.super_frames);
        assert_eq!(batched.bytes(), g.bytes());
        assert_eq!(batched.frames.block_count, 608 + 32);
        assert_eq!((g.block_timeout_ms(), batched.block_timeout_ms()), (1, 100));
        assert_eq!((g.merge_wait_ms(), batched.merge_wait_ms()), (25, 124));
        // At 200 frames a second a block now takes 20 frames: 639 blocks ride out 64 s, not 3.0 s.
        assert!(batched.stall_ridden_out(200.0, 64) > g.stall_ridden_out(200.0, 64) * 19);
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
        assert!((ms(40_000.0, 64) - 607.0).abs() < 0.01);
        assert_eq!(g.frames.frames_per_block(1400), 21);
        assert!((ms(40_000.0, 1400) - 607.0 * 21.0 / 40.0).abs() < 0.01);
        // 150 kpps of 1500 bytes fill a block (20 frames) in 0.13 ms.
        assert_eq!(g.frames.frames_per_block(1500), 20);
        assert!((ms(150_000.0, 1500) - 607.0 * 20.0 / 150.0).abs() < 0.01);
        // Below one frame per timeout, every frame gets its own block.
        assert!((ms(500.0, 64) - 1214.0).abs() < 0.01);
        // Super-frames: 31 blocks of one 64 KiB frame each.
        assert!((ms(1000.0, 65_000) - 31.0).abs() < 0.01);
        // The single 128 KiB-block ring of before rode out 191 ms at 40 kpps.
        let before = RingGeometry { block_size: 128 << 10, block_count: 192 };
        assert!(
            (before.stall_ridden_out(40_000.0, 64, BLOCK_TIMEOUT_MS).as_secs_f64() * 1000.0 - 191.0).abs()
                < 0.01
        );
    }

    #[test]
    fn split_filters_send_every_length_to_exactly_one_ring() {
        let [small, large] = split_filters("udp port 9", 32_624);
        assert_eq!(small, "(udp port 9) and less 32624");
        assert_eq!(large, "(udp port 9) and greater 32625");
        assert_eq!(split_filters("  ", 100), ["less 100".to_owned(), "greater 101".to_owned()]);
    }
}
