//! The recent window: snapshots of each collector's counters every
//! [`SLOT`], kept for [`RECENT_WINDOW_SECONDS`], so `/stats` and `/healthz`
//! judge what changed lately, not lifetime totals: a collector fault cured an
//! hour ago does not fail the pod, and an idle pod whose few sends all
//! bounced still shows them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bpc_contract::stats::{ForwardingDelay, RECENT_WINDOW_SECONDS, RecentSends, SendErrors};

use super::Stats;
use super::counters::load;
use super::delay::DelayCounts;

/// How often a snapshot is taken: the window's granularity.
const SLOT: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(RECENT_WINDOW_SECONDS);

/// One collector's totals at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Totals {
    sent_packets: u64,
    errors: SendErrors,
}

/// The counters at one moment: each collector's, and the forwarding delay's.
#[derive(Debug)]
struct Snapshot {
    at: Instant,
    collectors: Vec<Totals>,
    delay: DelayCounts,
}

/// Snapshots, oldest first; the first is the window's start.
#[derive(Debug, Default)]
pub struct Snapshots(VecDeque<Snapshot>);

impl Stats {
    fn totals(&self) -> Vec<Totals> {
        self.collectors
            .iter()
            .map(|c| Totals {
                sent_packets: load(&c.sent_packets),
                errors: SendErrors {
                    unreachable: load(&c.unreachable),
                    no_buffer: load(&c.no_buffer),
                    resolve: load(&c.resolve),
                    other: load(&c.other),
                },
            })
            .collect()
    }

    /// Takes a snapshot when the last one is a [`SLOT`] old, and forgets those
    /// the window no longer needs: the oldest kept is the newest at least a
    /// window old. Cheap; the capture loop calls it every second.
    pub fn roll_recent(&self, now: Instant) {
        let mut s = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let at = |s: &Snapshots, i: usize| s.0.get(i).map(|e| now.saturating_duration_since(e.at));
        if s.0.is_empty() {
            // The start, with zero counts: until the agent is a window old the
            // window runs from its start.
            s.0.push_back(Snapshot {
                at: self.started,
                collectors: vec![Totals::default(); self.collectors.len()],
                delay: DelayCounts::default(),
            });
        }
        if at(&s, s.0.len() - 1).is_some_and(|age| age >= SLOT) {
            let collectors = self.totals();
            s.0.push_back(Snapshot { at: now, collectors, delay: self.capture.forwarding_delay.counts() });
        }
        while at(&s, 1).is_some_and(|age| age >= WINDOW) {
            s.0.pop_front();
        }
    }

    /// What collector `i` did over the recent window, up to `now`.
    pub fn recent(&self, i: usize, now: Instant) -> RecentSends {
        let s = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let (start, base) = s.0.front().map_or((self.started, Totals::default()), |e| {
            (e.at, e.collectors.get(i).copied().unwrap_or_default())
        });
        drop(s);
        let c = &self.collectors[i];
        let since = |now: u64, then: u64| now.saturating_sub(then);
        RecentSends {
            window_seconds: window_seconds(start, now),
            sent_packets: since(load(&c.sent_packets), base.sent_packets),
            errors: SendErrors {
                unreachable: since(load(&c.unreachable), base.errors.unreachable),
                no_buffer: since(load(&c.no_buffer), base.errors.no_buffer),
                resolve: since(load(&c.resolve), base.errors.resolve),
                other: since(load(&c.other), base.errors.other),
            },
        }
    }

    /// The forwarding delay over the recent window, up to `now`.
    pub fn recent_delay(&self, now: Instant) -> ForwardingDelay {
        let s = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let (start, base) = s.0.front().map_or((self.started, DelayCounts::default()), |e| (e.at, e.delay));
        drop(s);
        let window = self.capture.forwarding_delay.counts().since(&base);
        let round = |us: f64| (us * 10.0).round() / 10.0;
        ForwardingDelay {
            path: self.capture.path(),
            window_seconds: window_seconds(start, now),
            frames: window.total(),
            p50_us: window.quantile_us(0.5).map(round),
            p99_us: window.quantile_us(0.99).map(round),
        }
    }
}

/// A window's span in seconds, to the tenth.
fn window_seconds(start: Instant, now: Instant) -> f64 {
    (now.saturating_duration_since(start).as_secs_f64() * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fixture::{at, resolved};

    #[test]
    fn the_window_runs_from_the_start_while_the_agent_is_young() {
        let s = resolved();
        s.collectors[0].unreachable.store(3, Ordering::Relaxed);
        s.roll_recent(at(&s, 5_000));
        let r = s.recent(0, at(&s, 5_000));
        assert_eq!((r.window_seconds, r.errors.unreachable), (5.0, 3));
    }

    #[test]
    fn errors_older_than_the_window_leave_it() {
        let s = resolved();
        s.collectors[0].unreachable.store(138, Ordering::Relaxed);
        s.collectors[0].sent_packets.store(280, Ordering::Relaxed);
        // The capture loop rolls every second; the errors stop at 1 s.
        for sec in 1..=80 {
            if sec == 40 {
                s.collectors[0].sent_packets.store(300, Ordering::Relaxed);
            }
            s.roll_recent(at(&s, sec * 1000));
        }
        let r = s.recent(0, at(&s, 80_000));
        assert_eq!(r.errors.unreachable, 0, "{r:?}");
        assert_eq!(r.sent_packets, 20);
        assert!((60.0..=70.0).contains(&r.window_seconds), "{r:?}");
    }

    #[test]
    fn errors_within_the_window_stay_in_it_until_it_passes() {
        let s = resolved();
        for sec in 1..=130 {
            if sec == 50 {
                s.collectors[0].unreachable.fetch_add(1, Ordering::Relaxed);
            }
            s.roll_recent(at(&s, sec * 1000));
            let r = s.recent(0, at(&s, sec * 1000));
            // Snapshots every 10 s: the error is in the one taken at 50 s,
            // which starts the window 60 s later.
            let expect = u64::from((50..110).contains(&sec));
            assert_eq!(r.errors.unreachable, expect, "at {sec} s: {r:?}");
        }
    }
}
