//! The capture loop's and the HTTP endpoint's counters, and [`Moment`], the
//! lock-free timestamp the renderings turn into ages.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use bpc_contract::stats::CapturePath;

use super::delay::DelayHistogram;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A point in time as nanoseconds since the agent started, plus one (0 = never).
#[derive(Debug, Default)]
pub struct Moment(AtomicU64);

impl Moment {
    /// Records `at`.
    pub fn set(&self, stats_start: Instant, at: Instant) {
        let ns = at.saturating_duration_since(stats_start).as_nanos() as u64;
        self.0.store(ns + 1, Ordering::Relaxed);
    }

    /// Time since the recorded moment, `None` if never set.
    pub fn age(&self, stats_start: Instant, now: Instant) -> Option<Duration> {
        let v = self.0.load(Ordering::Relaxed);
        (v != 0).then(|| now.saturating_duration_since(stats_start + Duration::from_nanos(v - 1)))
    }

    /// The recorded moment as Unix seconds, `None` if never set.
    pub(super) fn unix(&self, started_unix: SystemTime) -> Option<f64> {
        let v = self.0.load(Ordering::Relaxed);
        (v != 0).then(|| {
            (started_unix + Duration::from_nanos(v - 1))
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        })
    }
}

/// Reads a counter; the renderings need no ordering with the writers.
pub(super) fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Capture-side counters.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    /// Frames the filter accepted.
    pub packets: AtomicU64,
    /// Bytes of those frames, as captured.
    pub bytes: AtomicU64,
    /// Frames the kernel dropped because the ring was full (pcap ps_drop).
    pub kernel_drops: AtomicU64,
    /// The interface's rx_dropped since start (pcap ps_ifdrop).
    pub interface_drops: AtomicU64,
    /// Frames sent shorter than captured (--snaplen, --oversize truncate).
    pub truncated: AtomicU64,
    /// Super-frames split by the segmenter (segments or IP fragments).
    pub segmented: AtomicU64,
    /// Frames the segmenter produced from them.
    pub segments: AtomicU64,
    /// Frames dropped by --max-pps/--max-mbps.
    pub rate_limited: AtomicU64,
    /// When the last frame was captured.
    pub last_packet: Moment,
    /// When the capture loop last went round (health).
    pub heartbeat: Moment,
    /// From capture to send, per frame sent.
    pub forwarding_delay: DelayHistogram,
    /// The path of the frames up to an MTU: 0 unknown, 1 prompt, 2 blocks.
    path: AtomicU8,
}

impl CaptureCounters {
    /// Records the path the capture's small frames take.
    pub fn set_path(&self, path: Option<CapturePath>) {
        let v = match path {
            None => 0,
            Some(CapturePath::Prompt) => 1,
            Some(CapturePath::Blocks) => 2,
        };
        self.path.store(v, Ordering::Relaxed);
    }

    /// The path last recorded.
    pub fn path(&self) -> Option<CapturePath> {
        match self.path.load(Ordering::Relaxed) {
            1 => Some(CapturePath::Prompt),
            2 => Some(CapturePath::Blocks),
            _ => None,
        }
    }
}

/// How the HTTP endpoint's connections ended (see [`crate::http::Outcome`]).
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// A well-formed request was answered.
    pub served: AtomicU64,
    /// The deadline from accept passed before the answer was out.
    pub timeout: AtomicU64,
    /// Malformed or oversize requests, answered 400/414/431.
    pub bad_request: AtomicU64,
    /// Closed to make room: more than the bound were open.
    pub evicted: AtomicU64,
    /// The client left before a complete request.
    pub closed: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_never_set_until_recorded_and_then_ages_from_its_instant() {
        let start = Instant::now();
        let m = Moment::default();
        assert_eq!(m.age(start, start + Duration::from_secs(1)), None);
        m.set(start, start + Duration::from_millis(250));
        assert_eq!(m.age(start, start + Duration::from_secs(1)), Some(Duration::from_millis(750)));
        let unix = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(m.unix(unix), Some(100.25));
    }
}
