//! Token buckets for `--max-pps` and `--max-mbps`.
//!
//! Excess frames are dropped and counted, never queued: the agent must not
//! grow memory or latency when the business container is busy.

use std::time::Instant;

/// How much burst a bucket holds: this many seconds of its rate.
const BURST_SECONDS: f64 = 0.1;

/// A token bucket that may go briefly into debt: a frame is admitted while
/// the balance is positive, and costs its full size. That lets a 64 KB
/// super-frame through a small byte cap (then nothing passes until the debt
/// is repaid) while the long-run rate still equals the cap.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `rate` tokens per second.
    pub fn new(rate: f64, now: Instant) -> Self {
        let capacity = (rate * BURST_SECONDS).max(1.0);
        TokenBucket { rate, capacity, tokens: capacity, last: now }
    }

    /// Adds the tokens earned since the last refill.
    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
    }

    /// Whether a frame may pass now (the balance is positive).
    pub fn ready(&self) -> bool {
        self.tokens > 0.0
    }

    /// Takes `cost` tokens for an admitted frame.
    pub fn take(&mut self, cost: f64) {
        self.tokens -= cost;
    }
}

/// Both caps together; a frame passes only if every configured bucket admits it.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    packets: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

impl RateLimiter {
    /// A limiter for the given caps (`None`: no cap).
    pub fn new(max_pps: Option<u64>, max_bytes_per_sec: Option<f64>, now: Instant) -> Self {
        RateLimiter {
            packets: max_pps.map(|r| TokenBucket::new(r as f64, now)),
            bytes: max_bytes_per_sec.map(|r| TokenBucket::new(r, now)),
        }
    }

    /// Whether any cap is configured (the capture loop skips the clock otherwise).
    pub fn is_active(&self) -> bool {
        self.packets.is_some() || self.bytes.is_some()
    }

    /// Refills from the clock; call once per batch of frames.
    pub fn refill(&mut self, now: Instant) {
        self.packets.iter_mut().chain(self.bytes.iter_mut()).for_each(|b| b.refill(now));
    }

    /// Admits (and charges) a frame of `len` bytes, or refuses it.
    pub fn admit(&mut self, len: usize) -> bool {
        if !self.packets.as_ref().is_none_or(TokenBucket::ready)
            || !self.bytes.as_ref().is_none_or(TokenBucket::ready)
        {
            return false;
        }
        if let Some(p) = &mut self.packets {
            p.take(1.0);
        }
        if let Some(b) = &mut self.bytes {
            b.take(len as f64);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Offers `per_ms` frames of `len` bytes every millisecond for `ms` ms; returns how many pass.
    fn simulate(limiter: &mut RateLimiter, start: Instant, ms: u64, per_ms: usize, len: usize) -> usize {
        let mut passed = 0;
        for t in 1..=ms {
            limiter.refill(start + Duration::from_millis(t));
            passed += (0..per_ms).filter(|_| limiter.admit(len)).count();
        }
        passed
    }

    #[test]
    fn no_caps_admit_everything() {
        let now = Instant::now();
        let mut l = RateLimiter::new(None, None, now);
        assert!(!l.is_active());
        assert_eq!(simulate(&mut l, now, 100, 100, 1500), 10_000);
    }

    #[test]
    fn packet_cap_holds_the_long_run_rate_plus_one_burst() {
        let now = Instant::now();
        let mut l = RateLimiter::new(Some(1000), None, now);
        // 10 s offered at 10,000 pps: 10,000 pass at 1,000 pps, plus the 100-packet burst.
        let passed = simulate(&mut l, now, 10_000, 10, 100);
        assert!((10_000..=10_101).contains(&passed), "{passed}");
    }

    #[test]
    fn byte_cap_holds_the_rate_for_mixed_sizes() {
        let now = Instant::now();
        // 8 Mbit/s = 1,000,000 B/s; 2 s offered of 1000-byte frames at 5 MB/s.
        let mut l = RateLimiter::new(None, Some(1_000_000.0), now);
        let passed = simulate(&mut l, now, 2000, 5, 1000);
        let bytes = passed * 1000;
        assert!((2_000_000..=2_102_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn a_super_frame_larger_than_the_burst_passes_then_the_debt_blocks_until_repaid() {
        let now = Instant::now();
        let mut l = RateLimiter::new(None, Some(100_000.0), now); // burst 10,000 B
        assert!(l.admit(65_000));
        assert!(!l.admit(60), "in debt: nothing passes");
        // Debt is 55,000 B: repaid after 550 ms.
        l.refill(now + Duration::from_millis(500));
        assert!(!l.admit(60));
        l.refill(now + Duration::from_millis(560));
        assert!(l.admit(60));
    }

    #[test]
    fn both_caps_apply_and_a_refused_frame_costs_nothing() {
        let now = Instant::now();
        let mut l = RateLimiter::new(Some(2), Some(1e9), now); // burst of 1 packet (min 1)
        assert!(l.admit(10));
        assert!(!l.admit(10));
        l.refill(now + Duration::from_millis(500));
        assert!(l.admit(10), "one packet earned in 500 ms at 2 pps");
    }
}
