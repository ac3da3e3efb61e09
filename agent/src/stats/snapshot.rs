//! `/stats`: the counters as the contract's [`AgentStats`].

use std::time::{Duration, Instant};

use bpc_contract::stats::{AgentStats, CaptureStats, CollectorStats, HttpStats, SendErrors};

use super::counters::load;
use super::{Moment, Stats, VERSION};

/// `$ty` with each listed field read from the counter of the same name in
/// `$from`: the JSON names and the counter names cannot drift apart.
macro_rules! loaded {
    ($ty:ident from $from:expr; $($field:ident),+; $($rest:tt)*) => {
        $ty { $($field: load(&$from.$field),)+ $($rest)* }
    };
}

/// Rounds to milliseconds so the JSON stays readable.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

impl Stats {
    /// Everything, as `/stats` reports it.
    pub fn snapshot(&self, now: Instant) -> AgentStats {
        let c = &self.capture;
        let age = |m: &Moment| m.age(self.started, now).map(secs);
        let collectors = self.collector_stats(now);
        AgentStats {
            version: VERSION.to_owned(),
            key: self.identity.key.clone(),
            workload: self.identity.workload.clone(),
            interface: self.interface(),
            filter: self.filter(),
            profile: self.identity.profile,
            oversize: self.identity.oversize,
            uptime_seconds: secs(now.saturating_duration_since(self.started)),
            capture: loaded!(CaptureStats from c;
                packets, bytes, kernel_drops, interface_drops, truncated, segmented, rate_limited;
                last_packet_age_seconds: age(&c.last_packet),
                forwarding_delay: Some(self.recent_delay(now)),
            ),
            health: self.health_of(now, &collectors),
            collectors,
            capture_error: self.capture_error(),
            http: Some(loaded!(HttpStats from self.http; served, timeout, bad_request, evicted, closed;)),
        }
    }
}

impl Stats {
    /// The collectors as `/stats` reports them, recent window included: what
    /// `/healthz` judges too.
    pub fn collector_stats(&self, now: Instant) -> Vec<CollectorStats> {
        let age = |m: &Moment| m.age(self.started, now).map(secs);
        let text = |m: &std::sync::Mutex<Option<String>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.collectors
            .iter()
            .enumerate()
            .map(|(i, s)| CollectorStats {
                host: s.host.clone(),
                address: s.resolution().map(|r| r.address),
                sent_packets: load(&s.sent_packets),
                sent_bytes: load(&s.sent_bytes),
                errors: loaded!(SendErrors from s; unreachable, no_buffer, resolve, other;),
                last_send_age_seconds: age(&s.last_send),
                last_error_age_seconds: age(&s.last_error),
                icmp_error: text(&s.icmp_error),
                resolve_error: text(&s.resolve_error),
                recent: Some(self.recent(i, now)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fixture::{at, resolved};
    use super::*;

    #[test]
    fn stats_json_has_exactly_the_contract_fields() {
        let s = resolved();
        let now = at(&s, 12_500);
        s.capture.heartbeat.set(s.started, now);
        s.capture.packets.store(1520, Ordering::Relaxed);
        s.capture.last_packet.set(s.started, now - Duration::from_millis(1200));
        s.capture.set_path(Some(bpc_contract::stats::CapturePath::Prompt));
        s.capture.forwarding_delay.record(Duration::from_micros(30), 1523);
        let got = serde_json::to_value(s.snapshot(now)).unwrap();
        let contract: serde_json::Value =
            serde_json::from_str(include_str!("../../../testdata/status/agent-stats.json")).unwrap();
        // Same shape and key names, recursively, as the shared contract example.
        fn keys(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| {
                    out.push(format!("{path}.{k}"));
                    keys(v, &format!("{path}.{k}"), out)
                }),
                serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, &format!("{path}[]"), out)),
                _ => {}
            }
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys(&got, "", &mut a);
        keys(&contract, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(got["uptime_seconds"], 12.5);
        assert_eq!(got["capture"]["last_packet_age_seconds"], 1.2);
        assert_eq!(got["collectors"][0]["address"], "198.18.0.2");
        assert_eq!(got["collectors"][0]["last_send_age_seconds"], serde_json::Value::Null);
        assert_eq!(got["health"]["ok"], true);
        assert_eq!(got["capture"]["forwarding_delay"]["path"], "prompt");
        assert_eq!(got["capture"]["forwarding_delay"]["frames"], 1523);
        assert_eq!(got["capture"]["forwarding_delay"]["window_seconds"], 12.5);
    }
}
