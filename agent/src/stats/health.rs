//! The `/healthz` and `/livez` verdicts (also the `health` of `/stats`).

use std::time::{Duration, Instant};

use bpc_contract::stats::CollectorStats;

use super::{Health, Stats};

/// The capture loop must report at least this often to be healthy.
const STALL_AFTER: Duration = Duration::from_secs(5);
/// `/startupz` passes this long after the start whatever the capture's
/// state: a native sidecar's startup probe holds the app's containers back
/// until it passes, and capture must never hold the app hostage. Capture
/// that goes live later still mirrors everything from then on.
pub const STARTUP_BOUND: Duration = Duration::from_secs(10);

fn bad(reason: String) -> Health {
    Health { ok: false, reason: Some(reason) }
}

const GOOD: Health = Health { ok: true, reason: None };

impl Stats {
    /// Started (`/startupz`, a native sidecar's startup probe): once capture
    /// is live (the socket bound, its filter attached), once capture has
    /// failed for good (the reason stays in `/healthz` and `/stats`), or
    /// [`STARTUP_BOUND`] after the start, whichever comes first.
    pub fn startup(&self, now: Instant) -> Health {
        if self.capture.heartbeat.age(self.started, now).is_some() {
            return GOOD;
        }
        if let Some(why) = self.capture_error() {
            return Health { ok: true, reason: Some(format!("not capturing: {why}")) };
        }
        let waited = now.saturating_duration_since(self.started);
        if waited >= STARTUP_BOUND {
            return Health {
                ok: true,
                reason: Some(format!(
                    "capture not live after {}s; letting the pod start without it",
                    STARTUP_BOUND.as_secs()
                )),
            };
        }
        bad(format!("capture starting ({:.1}s)", waited.as_secs_f64()))
    }

    /// Alive while the capture loop runs (`/livez`, the liveness probe's
    /// check). A collector outage is not in it: restarting the agent does not
    /// cure one, and the restart would lose what it captures meanwhile.
    pub fn liveness(&self, now: Instant) -> Health {
        if let Some(why) = self.capture_error() {
            // Alive and saying why: a restart would not cure it (no NET_RAW,
            // no such interface, a filter the kernel refuses), and a
            // restarting sidecar takes its pod out of Ready.
            return Health { ok: true, reason: Some(format!("not capturing: {why}")) };
        }
        match self.capture.heartbeat.age(self.started, now) {
            None => bad("capture has not started".into()),
            Some(age) if age > STALL_AFTER => {
                bad(format!("capture loop stalled for {:.1}s", age.as_secs_f64()))
            }
            Some(_) => GOOD,
        }
    }

    /// Healthy while the capture loop runs, at least one collector has an
    /// address, and no collector is faulty over the recent window (the
    /// contract's [`CollectorStats::fault`], the rule `kubectl bpc status`
    /// applies to the same `/stats`: the two cannot disagree).
    pub fn health(&self, now: Instant) -> Health {
        self.health_of(now, &self.collector_stats(now))
    }

    /// [`Self::health`] over collectors already read (a `/stats` snapshot).
    pub(super) fn health_of(&self, now: Instant, collectors: &[CollectorStats]) -> Health {
        if let Some(why) = self.capture_error() {
            return bad(format!("not capturing: {why}"));
        }
        let alive = self.liveness(now);
        if !alive.ok {
            return alive;
        }
        // No collectors at all (--write): nothing to resolve, the capture alone decides.
        if !collectors.is_empty() && collectors.iter().all(|c| c.address.is_none()) {
            let why: Vec<String> = collectors
                .iter()
                .map(|c| format!("{}: {}", c.host, c.resolve_error.as_deref().unwrap_or("not resolved yet")))
                .collect();
            return bad(format!("no collector address resolved ({})", why.join("; ")));
        }
        let faults: Vec<String> = collectors.iter().filter_map(CollectorStats::fault).collect();
        if faults.is_empty() { GOOD } else { bad(faults.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fixture::{at, resolved, stats};
    use super::*;

    /// Resolved, with the capture loop's last round at 1 s.
    fn running() -> Stats {
        let s = resolved();
        s.capture.heartbeat.set(s.started, at(&s, 1000));
        s
    }

    #[test]
    fn startup_passes_when_capture_is_live_when_it_failed_or_after_the_bound() {
        let s = resolved();
        let early = s.startup(at(&s, 500));
        assert!(!early.ok && early.reason.unwrap().contains("starting"));
        let late = s.startup(s.started + STARTUP_BOUND);
        assert!(late.ok && late.reason.unwrap().contains("letting the pod start"), "never holds the app");
        s.capture.heartbeat.set(s.started, at(&s, 300));
        assert_eq!(s.startup(at(&s, 400)), GOOD, "live capture starts at once");
        let failed = stats();
        failed.set_capture_error("no interface eth9".into());
        assert!(failed.startup(failed.started).ok, "a failed capture lets the pod start at once");
    }

    #[test]
    fn a_capture_error_is_unhealthy_with_its_reason_but_alive() {
        let s = resolved();
        s.set_capture_error("interface eth9 not found".into());
        let h = s.health(at(&s, 100));
        assert!(!h.ok && h.reason.unwrap().contains("interface eth9 not found"));
        let l = s.liveness(at(&s, 100_000));
        assert!(l.ok && l.reason.unwrap().contains("eth9"), "a restart would not cure it");
    }

    #[test]
    fn health_is_bad_before_capture_starts_and_when_the_loop_stalls() {
        let s = resolved();
        assert!(!s.health(s.started).ok);
        s.capture.heartbeat.set(s.started, s.started);
        assert!(s.health(at(&s, 1000)).ok);
        let h = s.health(at(&s, 6000));
        assert!(!h.ok && h.reason.unwrap().contains("stalled"));
    }

    #[test]
    fn health_is_bad_without_any_resolved_collector_and_names_the_dns_error() {
        let s = stats();
        s.capture.heartbeat.set(s.started, s.started);
        *s.collectors[0].resolve_error.lock().unwrap() = Some("no such host".into());
        let h = s.health(s.started);
        assert!(!h.ok);
        let reason = h.reason.unwrap();
        assert!(reason.contains("collector.monitoring.svc: no such host"), "{reason}");
    }

    #[test]
    fn health_turns_bad_while_sends_fail_and_recovers_after_a_success() {
        let s = running();
        s.collectors[0].last_send.set(s.started, at(&s, 100));
        s.collectors[0].last_error.set(s.started, at(&s, 500));
        s.collectors[0].no_buffer.store(3, Ordering::Relaxed);
        s.collectors[0].sent_packets.store(100, Ordering::Relaxed);
        let h = s.health(at(&s, 1000));
        assert!(!h.ok && h.reason.as_deref().unwrap().contains("3 no_buffer"), "{h:?}");
        s.collectors[0].last_send.set(s.started, at(&s, 900));
        assert!(s.health(at(&s, 1000)).ok, "3 in 103 with a send since: transient");
    }

    #[test]
    fn a_second_collector_that_never_resolves_makes_health_bad_as_status_says() {
        let s = running();
        let mut two = stats();
        two.collectors.push(super::super::CollectorCounters::new("nowhere.invalid"));
        two.collectors.swap(0, 1);
        *two.collectors[1].resolution.lock().unwrap() = s.collectors[0].resolution();
        two.capture.heartbeat.set(two.started, at(&two, 1000));
        two.collectors[0].resolve.store(4, Ordering::Relaxed);
        *two.collectors[0].resolve_error.lock().unwrap() = Some("Name or service not known".into());
        let h = two.health(at(&two, 1000));
        assert!(!h.ok, "one collector resolved does not hide the other: {h:?}");
        assert!(h.reason.unwrap().contains("nowhere.invalid does not resolve (Name or service not known"));
    }

    #[test]
    fn liveness_follows_the_capture_loop_only_not_the_collector() {
        let s = resolved();
        assert!(!s.liveness(at(&s, 10)).ok, "not alive before capture starts");
        s.capture.heartbeat.set(s.started, at(&s, 1000));
        s.collectors[0].last_error.set(s.started, at(&s, 900));
        s.collectors[0].unreachable.store(3, Ordering::Relaxed);
        assert!(!s.health(at(&s, 1000)).ok);
        assert!(s.liveness(at(&s, 1000)).ok, "a failing collector must not get the agent restarted");
        let stalled = s.liveness(at(&s, 1000) + STALL_AFTER + Duration::from_secs(1));
        assert!(!stalled.ok && stalled.reason.unwrap().contains("stalled"));
    }

    #[test]
    fn icmp_bounces_make_health_bad_while_sends_succeed_locally_until_they_leave_the_window() {
        let s = running();
        s.collectors[0].sent_packets.store(280, Ordering::Relaxed);
        s.collectors[0].last_send.set(s.started, at(&s, 900));
        s.collectors[0].last_error.set(s.started, at(&s, 500));
        s.collectors[0].unreachable.store(138, Ordering::Relaxed);
        *s.collectors[0].icmp_error.lock().unwrap() = Some("protocol unreachable: no GRE receiver".into());
        let h = s.health(at(&s, 1000));
        assert!(!h.ok && h.reason.as_deref().unwrap().contains("no GRE receiver"), "{h:?}");
        assert_eq!(s.snapshot(at(&s, 1000)).health, h, "/stats carries the same verdict");
        for sec in 1..=80 {
            s.capture.heartbeat.set(s.started, at(&s, sec * 1000));
            s.roll_recent(at(&s, sec * 1000));
        }
        assert!(s.health(at(&s, 80_000)).ok, "bounces older than the window no longer count");
    }
}
