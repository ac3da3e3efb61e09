//! The forwarding delay: from the kernel's capture timestamp of a frame to
//! the moment its mirror packet was handed to the kernel. A probe fed by the
//! mirror times transactions by the packets' arrival, so this delay, and
//! above all its spread, is the error in every response time it reports.
//!
//! A histogram of fixed buckets, ten a decade from 1 µs to 10 s (each bound
//! at most 33% above the one before), counted with relaxed atomics by the
//! capture thread, its only writer: nothing allocated per frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets in one decade, in tenths of the decade's unit.
const DECADE: [u64; 10] = [10, 12, 15, 20, 25, 30, 40, 50, 60, 80];
/// Decades from 1 µs (10^3 ns) to 10 s.
const DECADES: usize = 7;
/// Buckets with an upper bound; one more counts the rest.
pub const BOUNDED: usize = DECADES * DECADE.len();

/// The upper bound of bucket `i` in nanoseconds (`i < BOUNDED`).
pub const fn bound_ns(i: usize) -> u64 {
    let mut unit = 100; // ns: tenths of a microsecond
    let mut d = 0;
    while d < i / DECADE.len() {
        unit *= 10;
        d += 1;
    }
    DECADE[i % DECADE.len()] * unit
}

/// Counts of frames per bucket of forwarding delay.
#[derive(Debug)]
pub struct DelayHistogram {
    counts: [AtomicU64; BOUNDED + 1],
    /// The delays' sum in nanoseconds (Prometheus `_sum`).
    sum_ns: AtomicU64,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_ns: AtomicU64::new(0) }
    }
}

/// The bucket of `delay`: the first whose bound it does not exceed.
fn bucket(delay: Duration) -> usize {
    let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    let (mut lo, mut hi) = (0, BOUNDED);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if ns <= bound_ns(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

impl DelayHistogram {
    /// Counts `frames` frames forwarded after `delay`.
    pub fn record(&self, delay: Duration, frames: u64) {
        self.counts[bucket(delay)].fetch_add(frames, Ordering::Relaxed);
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns.saturating_mul(frames), Ordering::Relaxed);
    }

    /// The delays' sum in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The counts now.
    pub fn counts(&self) -> DelayCounts {
        DelayCounts(std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)))
    }
}

/// A copy of the histogram's counts (or the difference of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayCounts(pub [u64; BOUNDED + 1]);

impl Default for DelayCounts {
    fn default() -> Self {
        DelayCounts([0; BOUNDED + 1])
    }
}

impl DelayCounts {
    /// Frames counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &DelayCounts) -> DelayCounts {
        DelayCounts(std::array::from_fn(|i| self.0[i].saturating_sub(earlier.0[i])))
    }

    /// Frames counted with a delay of at most `bound_ns(i)`, for each bounded bucket.
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0[..BOUNDED].iter().enumerate().scan(0, |sum, (i, n)| {
            *sum += n;
            Some((bound_ns(i), *sum))
        })
    }

    /// The delay below which a share `q` of the frames were forwarded, in
    /// microseconds: interpolated within its bucket (so within a third of the
    /// truth), `None` without frames. Beyond the last bound: that bound.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.0.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let upper = bound_ns(i.min(BOUNDED - 1)) as f64;
                let lower = if i == 0 || i >= BOUNDED { upper } else { bound_ns(i - 1) as f64 };
                let within = (rank - below as f64) / n as f64;
                return Some((lower + (upper - lower) * within) / 1000.0);
            }
            below += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_run_ten_a_decade_from_one_microsecond_to_ten_seconds() {
        assert_eq!(bound_ns(0), 1_000);
        assert_eq!(bound_ns(3), 2_000);
        assert_eq!(bound_ns(10), 10_000);
        assert_eq!(bound_ns(17), 50_000);
        assert_eq!(bound_ns(BOUNDED - 1), 8_000_000_000);
        assert!(
            (1..BOUNDED).all(|i| bound_ns(i) > bound_ns(i - 1) && bound_ns(i) * 3 <= bound_ns(i - 1) * 4)
        );
    }

    #[test]
    fn a_delay_goes_to_the_first_bucket_whose_bound_it_does_not_exceed() {
        let us = Duration::from_micros;
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(us(1)), 0);
        assert_eq!(bucket(Duration::from_nanos(1_001)), 1);
        assert_eq!(bucket(us(45)), 17);
        assert_eq!(bucket(us(50)), 17);
        assert_eq!(bucket(Duration::from_secs(60)), BOUNDED);
    }

    #[test]
    fn quantiles_fall_within_the_bucket_of_the_true_value() {
        let h = DelayHistogram::default();
        // 98 frames at 30 µs, one at 400 µs, one at 2 ms.
        h.record(Duration::from_micros(30), 98);
        h.record(Duration::from_micros(400), 1);
        h.record(Duration::from_millis(2), 1);
        let c = h.counts();
        assert_eq!(c.total(), 100);
        let p50 = c.quantile_us(0.5).unwrap();
        assert!((25.0..=30.0).contains(&p50), "{p50}");
        let p99 = c.quantile_us(0.99).unwrap();
        assert!((300.0..=400.0).contains(&p99), "{p99}");
        assert_eq!(DelayCounts::default().quantile_us(0.5), None);
        // The window's difference.
        let before = h.counts();
        h.record(Duration::from_micros(30), 4);
        assert_eq!(h.counts().since(&before).total(), 4);
        assert_eq!(c.cumulative().find(|&(b, _)| b == 50_000).map(|(_, n)| n), Some(98));
    }
}
