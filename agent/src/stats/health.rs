//! The `/healthz` and `/livez` verdicts (also the `health` of `/stats`).

use std::time::{Duration, Instant};

use super::counters::load;
use super::{Health, Stats};

/// The capture loop must report at least this often to be healthy.
const STALL_AFTER: Duration = Duration::from_secs(5);
/// A collector whose most recent send failed less than this long ago, with no
/// success since, makes the agent unhealthy.
const FAILING_WINDOW: Duration = Duration::from_secs(10);
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
    /// address, and no collector's sends have been failing recently.
    pub fn health(&self, now: Instant) -> Health {
        if let Some(why) = self.capture_error() {
            return bad(format!("not capturing: {why}"));
        }
        let alive = self.liveness(now);
        if !alive.ok {
            return alive;
        }
        // No collectors at all (--write): nothing to resolve, the capture alone decides.
        if !self.collectors.is_empty() && self.collectors.iter().all(|c| c.resolution().is_none()) {
            let why: Vec<String> = self
                .collectors
                .iter()
                .map(|c| {
                    let err = c.resolve_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    format!("{}: {}", c.host, err.unwrap_or_else(|| "not resolved yet".into()))
                })
                .collect();
            return bad(format!("no collector address resolved ({})", why.join("; ")));
        }
        for c in &self.collectors {
            let (Some(err_age), send_age) =
                (c.last_error.age(self.started, now), c.last_send.age(self.started, now))
            else {
                continue;
            };
            let icmp_recent = c.last_icmp.age(self.started, now).is_some_and(|a| a < FAILING_WINDOW);
            let icmp = c.icmp_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(icmp) = icmp.filter(|_| icmp_recent) {
                // Sends "succeed" locally, but the collector host bounces them.
                return bad(format!(
                    "collector {} answers with ICMP errors ({icmp}): unreachable {}",
                    c.host,
                    load(&c.unreachable)
                ));
            }
            if err_age < FAILING_WINDOW && send_age.is_none_or(|s| s > err_age) {
                return bad(format!(
                    "sends to collector {} failing (unreachable {}, no_buffer {}, other {})",
                    c.host,
                    load(&c.unreachable),
                    load(&c.no_buffer),
                    load(&c.other)
                ));
            }
        }
        GOOD
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
        s.collectors[0].unreachable.store(3, Ordering::Relaxed);
        let h = s.health(at(&s, 1000));
        assert!(!h.ok && h.reason.as_deref().unwrap().contains("unreachable 3"), "{h:?}");
        s.collectors[0].last_send.set(s.started, at(&s, 900));
        assert!(s.health(at(&s, 1000)).ok);
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
    fn recent_icmp_errors_make_health_bad_even_while_sends_succeed_locally() {
        let s = running();
        s.collectors[0].last_error.set(s.started, at(&s, 500));
        s.collectors[0].last_icmp.set(s.started, at(&s, 500));
        s.collectors[0].last_send.set(s.started, at(&s, 900));
        *s.collectors[0].icmp_error.lock().unwrap() = Some("protocol unreachable: no GRE receiver".into());
        let h = s.health(at(&s, 1000));
        assert!(!h.ok && h.reason.as_deref().unwrap().contains("no GRE receiver"), "{h:?}");
        s.capture.heartbeat.set(s.started, at(&s, 11_000));
        assert!(s.health(at(&s, 11_000)).ok, "ICMP errors older than 10 s no longer count");
    }
}
