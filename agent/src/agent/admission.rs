//! What both outputs do first with every frame: `--count`, the tallies,
//! `--max-pps`/`--max-mbps`; and after each release, the tallies published
//! and the rate limiter refilled.

use super::*;

/// Per-block tallies, added to the shared atomics once per release.
#[derive(Debug, Default)]
pub(super) struct Tally {
    packets: u64,
    bytes: u64,
    truncated: u64,
    segmented: u64,
    segments: u64,
    rate_limited: u64,
}

impl Tally {
    /// `n` frames sent shorter than captured.
    pub(super) fn truncated(&mut self, n: u64) {
        self.truncated += n;
    }

    /// One super-frame split into `segments` frames.
    pub(super) fn segmented(&mut self, segments: u64) {
        self.segmented += 1;
        self.segments += segments;
    }

    /// Adds the tallies to the shared counters.
    fn publish(self, stats: &Stats, now: Instant) {
        if self.packets == 0 {
            return;
        }
        let c = &stats.capture;
        c.packets.fetch_add(self.packets, Ordering::Relaxed);
        c.bytes.fetch_add(self.bytes, Ordering::Relaxed);
        c.truncated.fetch_add(self.truncated, Ordering::Relaxed);
        c.segmented.fetch_add(self.segmented, Ordering::Relaxed);
        c.segments.fetch_add(self.segments, Ordering::Relaxed);
        c.rate_limited.fetch_add(self.rate_limited, Ordering::Relaxed);
        c.last_packet.set(stats.started, now);
    }
}

/// `--duration` and `--count`: when the capture ends by itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    deadline: Option<Instant>,
    /// Packets still to capture.
    remaining: Option<u64>,
}

impl Limits {
    fn new(config: &Config, now: Instant) -> Limits {
        Limits { deadline: config.duration.map(|d| now + d), remaining: config.count }
    }

    /// Takes one packet; false once `--count` packets were taken.
    fn take(&mut self) -> bool {
        match &mut self.remaining {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }

    pub(super) fn reached(&self, now: Instant) -> bool {
        self.remaining == Some(0) || self.deadline.is_some_and(|d| now >= d)
    }

    /// How long to sleep in ppoll: the idle period, shorter near the deadline.
    pub(super) fn poll_ms(&self, now: Instant) -> i32 {
        match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(now).as_millis().min(POLL_MS as u128) as i32;
                left.max(1)
            }
            None => POLL_MS,
        }
    }
}

/// The limits, the rate limiter and the tallies of one output.
pub(super) struct Admission {
    limits: Limits,
    limiter: RateLimiter,
    tally: Tally,
}

impl Admission {
    pub(super) fn new(config: &Config, now: Instant) -> Admission {
        Admission {
            limits: Limits::new(config, now),
            limiter: RateLimiter::new(config.max_pps, config.max_bytes_per_sec, now),
            tally: Tally::default(),
        }
    }

    /// Whether a frame of `len` bytes (its VLAN tag included) goes on:
    /// counted unless `--count` is reached, refused over the rate limits.
    pub(super) fn admit(&mut self, len: usize) -> bool {
        if !self.limits.take() {
            return false;
        }
        self.tally.packets += 1;
        self.tally.bytes += len as u64;
        if !self.limiter.admit(len) {
            self.tally.rate_limited += 1;
            return false;
        }
        true
    }

    /// The tallies of the frames admitted since the last release.
    pub(super) fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The frames handed over so far are done with: publish their tallies,
    /// refill the rate limiter.
    pub(super) fn release(&mut self, stats: &Stats, now: Instant) {
        std::mem::take(&mut self.tally).publish(stats, now);
        if self.limiter.is_active() {
            self.limiter.refill(now);
        }
    }
}
