//! Which ring takes the frames of up to an MTU: the prompt ring while the
//! pod's rate is low, the frame ring's blocks above.
//!
//! Why two paths: an analyser times transactions by the mirrored packets'
//! arrival, so the forwarding delay is an error in every response time it
//! reports. A TPACKET_V3 block leaves when full or [`BLOCK_TIMEOUT_MS`](super::BLOCK_TIMEOUT_MS) after
//! its first frame: at low rates a request and its response leave together
//! (measured: a 350 µs response seen as 0-1 ms). The prompt ring's slots
//! wake the agent per frame: tens of microseconds, but one wake-up per
//! frame, which at high rates costs more CPU than the frames' batching
//! saves. So the fanout program sends small frames to the prompt ring up to
//! [`PROMPT_MAX_PPS`], and to the blocks above, where a block fills in well
//! under its timeout anyway.

use std::time::{Duration, Instant};

/// Where the frames of up to an MTU go ([`Path::Prompt`] or [`Path::Blocks`]).
pub use bpc_contract::stats::CapturePath as Path;

/// Above this many frames a second the frames go to the blocks: from
/// [`STEER_WINDOW`]'s frames, as soon as they are exceeded.
pub const PROMPT_MAX_PPS: u64 = 2_000;
/// Below this many frames a second over a whole [`STEER_WINDOW`], they come
/// back to the prompt ring. Half the way up: a rate near one threshold does
/// not switch at every window.
pub const PROMPT_RETURN_PPS: u64 = 1_000;
/// The window the rate is counted over.
pub const STEER_WINDOW: Duration = Duration::from_millis(100);

/// Counts the frames handed over and decides the path.
#[derive(Debug, Clone, Copy)]
pub struct Steering {
    path: Path,
    window_start: Instant,
    frames: u64,
}

impl Steering {
    /// Starts on the prompt path: a pod's first packets come at a low rate.
    pub fn new(now: Instant) -> Steering {
        Steering { path: Path::Prompt, window_start: now, frames: 0 }
    }

    /// The current path.
    pub fn path(&self) -> Path {
        self.path
    }

    /// Counts `frames` handed over up to `now`; the new path when it changes.
    pub fn observe(&mut self, frames: u64, now: Instant) -> Option<Path> {
        self.frames += frames;
        let elapsed = now.saturating_duration_since(self.window_start);
        let per_window = |pps: u64| pps * STEER_WINDOW.as_millis() as u64 / 1000;
        let next = match self.path {
            // At once: the prompt ring is small, and every frame a wake-up.
            Path::Prompt if self.frames > per_window(PROMPT_MAX_PPS) => Some(Path::Blocks),
            _ if elapsed < STEER_WINDOW => return None,
            Path::Blocks if (self.frames as f64) < PROMPT_RETURN_PPS as f64 * elapsed.as_secs_f64() => {
                Some(Path::Prompt)
            }
            _ => None,
        };
        self.window_start = now;
        self.frames = 0;
        if let Some(path) = next {
            self.path = path;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_low_rate_stays_on_the_prompt_path() {
        let t0 = Instant::now();
        let mut s = Steering::new(t0);
        // 50 requests a second of about ten frames each: 500 frames a second.
        for i in 1..=100 {
            assert_eq!(s.observe(5, ms(t0, i * 10)), None);
        }
        assert_eq!(s.path(), Path::Prompt);
    }

    #[test]
    fn more_than_the_prompt_rate_within_a_window_moves_to_the_blocks_at_once() {
        let t0 = Instant::now();
        let mut s = Steering::new(t0);
        assert_eq!(s.observe(150, ms(t0, 5)), None);
        // 201 frames in 10 ms: over 200 a window, without waiting for its end.
        assert_eq!(s.observe(51, ms(t0, 10)), Some(Path::Blocks));
        assert_eq!(s.path(), Path::Blocks);
    }

    #[test]
    fn the_blocks_return_to_the_prompt_path_after_a_whole_window_below_the_return_rate() {
        let t0 = Instant::now();
        let mut s = Steering::new(t0);
        s.observe(1_000, ms(t0, 1));
        // 1,500 frames a second: between the thresholds, stays on the blocks.
        assert_eq!(s.observe(150, ms(t0, 101)), None);
        assert_eq!(s.path(), Path::Blocks);
        // Not before the window ends, however quiet.
        assert_eq!(s.observe(0, ms(t0, 150)), None);
        // 90 frames in 100 ms: 900 a second.
        assert_eq!(s.observe(90, ms(t0, 201)), Some(Path::Prompt));
        // Idle for a second (the loop's poll timeout) and then back on the prompt path.
        let mut s = Steering::new(t0);
        s.observe(500, ms(t0, 1));
        assert_eq!(s.observe(0, ms(t0, 1001)), Some(Path::Prompt));
    }
}
