//! Counters shared by the capture loop, the resolver and the HTTP endpoint,
//! and their three renderings: `/stats` JSON, `/metrics` Prometheus text and
//! the `/healthz` verdict.
//!
//! The capture thread is the only writer of the capture and send counters;
//! it adds per block, so the atomics are uncontended.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The agent's version, as reported in /stats and the info metric.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The capture loop must report at least this often to be healthy.
const STALL_AFTER: Duration = Duration::from_secs(5);
/// A collector whose most recent send failed less than this long ago, with no
/// success since, makes the agent unhealthy.
const FAILING_WINDOW: Duration = Duration::from_secs(10);

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

    fn unix(&self, started_unix: SystemTime) -> Option<f64> {
        let v = self.0.load(Ordering::Relaxed);
        (v != 0).then(|| {
            (started_unix + Duration::from_nanos(v - 1))
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        })
    }
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

/// Why sends fail, as counted per collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// No route, host or network unreachable, ICMP errors (ENETUNREACH, EHOSTUNREACH, ...).
    Unreachable,
    /// Socket or device queue full (ENOBUFS, EAGAIN): the packet is dropped, not queued.
    NoBuffer,
    /// Anything else (EMSGSIZE, EPERM from a firewall, ...).
    Other,
}

impl SendErrorKind {
    /// Classifies an errno from `sendmmsg`.
    pub fn of_errno(errno: i32) -> Self {
        match errno {
            libc::ENETUNREACH
            | libc::EHOSTUNREACH
            | libc::ENETDOWN
            | libc::EHOSTDOWN
            | libc::ECONNREFUSED
            | libc::EADDRNOTAVAIL
            | libc::ENOPROTOOPT
            | libc::ENONET => SendErrorKind::Unreachable,
            libc::ENOBUFS | libc::EAGAIN | libc::ENOMEM => SendErrorKind::NoBuffer,
            _ => SendErrorKind::Other,
        }
    }

    /// The label used in /stats and /metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SendErrorKind::Unreachable => "unreachable",
            SendErrorKind::NoBuffer => "no_buffer",
            SendErrorKind::Other => "other",
        }
    }
}

/// Where a collector's name currently points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// The address packets go to.
    pub address: IpAddr,
    /// MTU of the route to it (the outer packet must fit it).
    pub path_mtu: u32,
}

/// One collector's counters.
#[derive(Debug)]
pub struct CollectorStats {
    /// The host as configured.
    pub host: String,
    /// Current address, `None` until a name resolves.
    pub resolution: Mutex<Option<Resolution>>,
    /// Last resolution error, for /healthz.
    pub resolve_error: Mutex<Option<String>>,
    /// What the last ICMP error about our packets said, for /healthz.
    pub icmp_error: Mutex<Option<String>>,
    /// When that ICMP error was read.
    pub last_icmp: Moment,
    /// GRE packets handed to the kernel.
    pub sent_packets: AtomicU64,
    /// Their bytes (GRE header + frame).
    pub sent_bytes: AtomicU64,
    /// Failed sends (no route, ...) and ICMP errors received: unreachable.
    pub unreachable: AtomicU64,
    /// Failed sends: no buffer.
    pub no_buffer: AtomicU64,
    /// Failed DNS resolutions.
    pub resolve: AtomicU64,
    /// Failed sends: other.
    pub other: AtomicU64,
    /// Last successful send.
    pub last_send: Moment,
    /// Last failed send.
    pub last_error: Moment,
}

impl CollectorStats {
    fn new(host: &str) -> Self {
        CollectorStats {
            host: host.to_owned(),
            resolution: Mutex::new(None),
            resolve_error: Mutex::new(None),
            icmp_error: Mutex::new(None),
            last_icmp: Moment::default(),
            sent_packets: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
            no_buffer: AtomicU64::new(0),
            resolve: AtomicU64::new(0),
            other: AtomicU64::new(0),
            last_send: Moment::default(),
            last_error: Moment::default(),
        }
    }

    /// The counter for `kind`.
    pub fn errors(&self, kind: SendErrorKind) -> &AtomicU64 {
        match kind {
            SendErrorKind::Unreachable => &self.unreachable,
            SendErrorKind::NoBuffer => &self.no_buffer,
            SendErrorKind::Other => &self.other,
        }
    }

    /// The current resolution.
    pub fn resolution(&self) -> Option<Resolution> {
        *self.resolution.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the agent reports about itself that does not change per packet.
#[derive(Debug, Clone)]
pub struct Identity {
    /// GRE key, `0x%08x`.
    pub key: String,
    /// Workload path, when known.
    pub workload: Option<String>,
    /// Capture interface.
    pub interface: String,
    /// GRE profile name.
    pub profile: String,
    /// Oversize mode name.
    pub oversize: String,
}

/// All counters of one agent.
#[derive(Debug)]
pub struct Stats {
    /// Monotonic start time.
    pub started: Instant,
    started_unix: SystemTime,
    /// Static facts.
    pub identity: Identity,
    /// The effective filter (changes when collector addresses change).
    pub filter: Mutex<String>,
    /// Capture counters.
    pub capture: CaptureCounters,
    /// Per collector, in configuration order.
    pub collectors: Vec<CollectorStats>,
    /// Bumped whenever a collector's resolution changes.
    pub generation: AtomicU64,
    /// The HTTP endpoint's connections.
    pub http: HttpCounters,
}

/// `/stats` JSON (schema shared with `kubectl bpc status`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub version: &'static str,
    pub key: String,
    pub workload: Option<String>,
    pub interface: String,
    pub filter: String,
    pub profile: String,
    pub oversize: String,
    pub uptime_seconds: f64,
    pub capture: CaptureSnapshot,
    pub collectors: Vec<CollectorSnapshot>,
    pub health: Health,
    pub http: HttpSnapshot,
}

/// The `http` object of `/stats`: connections to the endpoint by outcome.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HttpSnapshot {
    pub served: u64,
    pub timeout: u64,
    pub bad_request: u64,
    pub evicted: u64,
    pub closed: u64,
}

/// The `capture` object of `/stats`.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaptureSnapshot {
    pub packets: u64,
    pub bytes: u64,
    pub kernel_drops: u64,
    pub interface_drops: u64,
    pub truncated: u64,
    pub segmented: u64,
    pub rate_limited: u64,
    pub last_packet_age_seconds: Option<f64>,
}

/// One entry of `collectors` in `/stats`.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CollectorSnapshot {
    pub host: String,
    pub address: Option<String>,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub errors: ErrorsSnapshot,
    pub last_send_age_seconds: Option<f64>,
}

/// Send errors by kind.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorsSnapshot {
    pub unreachable: u64,
    pub no_buffer: u64,
    pub resolve: u64,
    pub other: u64,
}

/// The `/healthz` verdict (also in `/stats`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// Capture runs and sends succeed.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Rounds to milliseconds so the JSON stays readable.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

impl Stats {
    /// Fresh counters for the given collectors.
    pub fn new(identity: Identity, filter: String, hosts: &[String]) -> Self {
        Stats {
            started: Instant::now(),
            started_unix: SystemTime::now(),
            identity,
            filter: Mutex::new(filter),
            capture: CaptureCounters::default(),
            collectors: hosts.iter().map(|h| CollectorStats::new(h)).collect(),
            generation: AtomicU64::new(0),
            http: HttpCounters::default(),
        }
    }

    /// The current effective filter.
    pub fn filter(&self) -> String {
        self.filter.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything, as `/stats` reports it.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let c = &self.capture;
        let age = |m: &Moment| m.age(self.started, now).map(secs);
        let collectors = self
            .collectors
            .iter()
            .map(|s| CollectorSnapshot {
                host: s.host.clone(),
                address: s.resolution().map(|r| r.address.to_string()),
                sent_packets: load(&s.sent_packets),
                sent_bytes: load(&s.sent_bytes),
                errors: ErrorsSnapshot {
                    unreachable: load(&s.unreachable),
                    no_buffer: load(&s.no_buffer),
                    resolve: load(&s.resolve),
                    other: load(&s.other),
                },
                last_send_age_seconds: age(&s.last_send),
            })
            .collect();
        Snapshot {
            version: VERSION,
            key: self.identity.key.clone(),
            workload: self.identity.workload.clone(),
            interface: self.identity.interface.clone(),
            filter: self.filter(),
            profile: self.identity.profile.clone(),
            oversize: self.identity.oversize.clone(),
            uptime_seconds: secs(now.saturating_duration_since(self.started)),
            capture: CaptureSnapshot {
                packets: load(&c.packets),
                bytes: load(&c.bytes),
                kernel_drops: load(&c.kernel_drops),
                interface_drops: load(&c.interface_drops),
                truncated: load(&c.truncated),
                segmented: load(&c.segmented),
                rate_limited: load(&c.rate_limited),
                last_packet_age_seconds: age(&c.last_packet),
            },
            collectors,
            health: self.health(now),
            http: HttpSnapshot {
                served: load(&self.http.served),
                timeout: load(&self.http.timeout),
                bad_request: load(&self.http.bad_request),
                evicted: load(&self.http.evicted),
                closed: load(&self.http.closed),
            },
        }
    }

    /// Alive while the capture loop runs (`/livez`, the liveness probe's
    /// check). A collector outage is not in it: restarting the agent does not
    /// cure one, and the restart would lose what it captures meanwhile.
    pub fn liveness(&self, now: Instant) -> Health {
        let bad = |reason: String| Health { ok: false, reason: Some(reason) };
        match self.capture.heartbeat.age(self.started, now) {
            None => bad("capture has not started".into()),
            Some(age) if age > STALL_AFTER => {
                bad(format!("capture loop stalled for {:.1}s", age.as_secs_f64()))
            }
            Some(_) => Health { ok: true, reason: None },
        }
    }

    /// Healthy while the capture loop runs, at least one collector has an
    /// address, and no collector's sends have been failing recently.
    pub fn health(&self, now: Instant) -> Health {
        let bad = |reason: String| Health { ok: false, reason: Some(reason) };
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
        Health { ok: true, reason: None }
    }

    /// Everything, as `/metrics` reports it (Prometheus text format 0.0.4).
    pub fn prometheus(&self, now: Instant) -> String {
        let s = self.snapshot(now);
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP bpc_agent_{name} {help}\n# TYPE bpc_agent_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "bpc_agent_{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v as f64)];
        metric(
            "info",
            "gauge",
            "Agent identity: version, GRE key, workload, interface, effective filter, profile, oversize mode.",
            &[(
                labels(&[
                    ("version", s.version),
                    ("key", &s.key),
                    ("workload", s.workload.as_deref().unwrap_or("")),
                    ("interface", &s.interface),
                    ("filter", &s.filter),
                    ("profile", &s.profile),
                    ("oversize", &s.oversize),
                ]),
                1.0,
            )],
        );
        metric("up", "gauge", "1 while healthy (see /healthz), else 0.", &one(u64::from(s.health.ok)));
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the agent started.",
            &[(String::new(), s.uptime_seconds)],
        );
        let cap = &s.capture;
        metric("captured_packets_total", "counter", "Frames the capture filter accepted.", &one(cap.packets));
        metric("captured_bytes_total", "counter", "Bytes of the captured frames.", &one(cap.bytes));
        metric(
            "kernel_drops_total",
            "counter",
            "Frames the kernel dropped because the capture ring was full (pcap ps_drop).",
            &one(cap.kernel_drops),
        );
        metric(
            "interface_drops_total",
            "counter",
            "Frames the interface dropped since the agent started (pcap ps_ifdrop, rx_dropped).",
            &one(cap.interface_drops),
        );
        metric("truncated_total", "counter", "Frames sent shorter than captured.", &one(cap.truncated));
        metric(
            "segmented_total",
            "counter",
            "Super-frames split into segments or fragments.",
            &one(cap.segmented),
        );
        metric(
            "segments_total",
            "counter",
            "Frames produced by splitting super-frames.",
            &one(load(&self.capture.segments)),
        );
        metric(
            "rate_limited_total",
            "counter",
            "Frames dropped by --max-pps/--max-mbps.",
            &one(cap.rate_limited),
        );
        if let Some(t) = self.capture.last_packet.unix(self.started_unix) {
            metric(
                "last_packet_timestamp_seconds",
                "gauge",
                "Unix time of the last captured frame.",
                &[(String::new(), t)],
            );
        }
        let per = |f: &dyn Fn(&CollectorSnapshot) -> u64| -> Vec<(String, f64)> {
            s.collectors.iter().map(|c| (labels(&[("collector", &c.host)]), f(c) as f64)).collect()
        };
        metric(
            "sent_packets_total",
            "counter",
            "GRE packets sent, per collector.",
            &per(&|c| c.sent_packets),
        );
        metric(
            "sent_bytes_total",
            "counter",
            "GRE payload bytes sent, per collector.",
            &per(&|c| c.sent_bytes),
        );
        let mut errors = Vec::new();
        for c in &s.collectors {
            for (kind, v) in [
                ("unreachable", c.errors.unreachable),
                ("no_buffer", c.errors.no_buffer),
                ("resolve", c.errors.resolve),
                ("other", c.errors.other),
            ] {
                errors.push((labels(&[("collector", &c.host), ("kind", kind)]), v as f64));
            }
        }
        metric(
            "send_errors_total",
            "counter",
            "Failed sends (and DNS resolutions) per collector, by kind.",
            &errors,
        );
        let last: Vec<(String, f64)> = self
            .collectors
            .iter()
            .filter_map(|c| {
                c.last_send.unix(self.started_unix).map(|t| (labels(&[("collector", &c.host)]), t))
            })
            .collect();
        if !last.is_empty() {
            metric(
                "last_send_timestamp_seconds",
                "gauge",
                "Unix time of the last successful send, per collector.",
                &last,
            );
        }
        let resolved: Vec<(String, f64)> = s
            .collectors
            .iter()
            .map(|c| {
                let addr = c.address.as_deref().unwrap_or("");
                (labels(&[("collector", &c.host), ("address", addr)]), f64::from(u8::from(!addr.is_empty())))
            })
            .collect();
        let h = &s.http;
        let outcomes: Vec<(String, f64)> = [
            ("served", h.served),
            ("timeout", h.timeout),
            ("bad_request", h.bad_request),
            ("evicted", h.evicted),
            ("closed", h.closed),
        ]
        .iter()
        .map(|(outcome, v)| (labels(&[("outcome", outcome)]), *v as f64))
        .collect();
        metric(
            "http_connections_total",
            "counter",
            "Connections to this endpoint by how they ended: served, timeout (deadline from accept), \
             bad_request (400/414/431), evicted (over the connection bound), closed (client left first).",
            &outcomes,
        );
        metric(
            "collector_resolved",
            "gauge",
            "1 when the collector has an address, with that address.",
            &resolved,
        );
        out
    }
}

/// `{a="x",b="y"}` with Prometheus label escaping.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"");
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Stats {
        let identity = Identity {
            key: "0x1234abcd".into(),
            workload: Some("shop/deployment/checkout".into()),
            interface: "eth0".into(),
            profile: "standard".into(),
            oversize: "segment".into(),
        };
        Stats::new(identity, "not (ip proto 47)".into(), &["collector.monitoring.svc".into()])
    }

    fn resolve(s: &Stats) {
        *s.collectors[0].resolution.lock().unwrap() =
            Some(Resolution { address: "198.18.0.2".parse().unwrap(), path_mtu: 1500 });
    }

    #[test]
    fn stats_json_has_exactly_the_contract_fields() {
        let s = stats();
        resolve(&s);
        let now = s.started + Duration::from_millis(12_500);
        s.capture.heartbeat.set(s.started, now);
        s.capture.packets.store(1520, Ordering::Relaxed);
        s.capture.last_packet.set(s.started, now - Duration::from_millis(1200));
        let got = serde_json::to_value(s.snapshot(now)).unwrap();
        let contract: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/status/agent-stats.json")).unwrap();
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
    }

    #[test]
    fn health_is_bad_before_capture_starts_and_when_the_loop_stalls() {
        let s = stats();
        resolve(&s);
        assert!(!s.health(s.started).ok);
        s.capture.heartbeat.set(s.started, s.started);
        assert!(s.health(s.started + Duration::from_secs(1)).ok);
        let h = s.health(s.started + Duration::from_secs(6));
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
        let s = stats();
        resolve(&s);
        let t = |ms| s.started + Duration::from_millis(ms);
        s.capture.heartbeat.set(s.started, t(1000));
        s.collectors[0].last_send.set(s.started, t(100));
        s.collectors[0].last_error.set(s.started, t(500));
        s.collectors[0].unreachable.store(3, Ordering::Relaxed);
        let h = s.health(t(1000));
        assert!(!h.ok && h.reason.as_deref().unwrap().contains("unreachable 3"), "{h:?}");
        s.collectors[0].last_send.set(s.started, t(900));
        assert!(s.health(t(1000)).ok);
    }

    #[test]
    fn liveness_follows_the_capture_loop_only_not_the_collector() {
        let s = stats();
        resolve(&s);
        let t = |ms| s.started + Duration::from_millis(ms);
        assert!(!s.liveness(t(10)).ok, "not alive before capture starts");
        s.capture.heartbeat.set(s.started, t(1000));
        s.collectors[0].last_error.set(s.started, t(900));
        s.collectors[0].unreachable.store(3, Ordering::Relaxed);
        assert!(!s.health(t(1000)).ok);
        assert!(s.liveness(t(1000)).ok, "a failing collector must not get the agent restarted");
        let stalled = s.liveness(t(1000) + STALL_AFTER + Duration::from_secs(1));
        assert!(!stalled.ok && stalled.reason.unwrap().contains("stalled"));
    }

    #[test]
    fn recent_icmp_errors_make_health_bad_even_while_sends_succeed_locally() {
        let s = stats();
        resolve(&s);
        let t = |ms| s.started + Duration::from_millis(ms);
        s.capture.heartbeat.set(s.started, t(1000));
        s.collectors[0].last_error.set(s.started, t(500));
        s.collectors[0].last_icmp.set(s.started, t(500));
        s.collectors[0].last_send.set(s.started, t(900));
        *s.collectors[0].icmp_error.lock().unwrap() = Some("protocol unreachable: no GRE receiver".into());
        let h = s.health(t(1000));
        assert!(!h.ok && h.reason.as_deref().unwrap().contains("no GRE receiver"), "{h:?}");
        s.capture.heartbeat.set(s.started, t(11_000));
        assert!(s.health(t(11_000)).ok, "ICMP errors older than 10 s no longer count");
    }

    #[test]
    fn prometheus_text_has_every_family_and_escapes_labels() {
        let s = stats();
        resolve(&s);
        *s.filter.lock().unwrap() = "tcp and not (host \"x\")".into();
        s.capture.heartbeat.set(s.started, s.started);
        s.collectors[0].sent_packets.store(7, Ordering::Relaxed);
        s.collectors[0].last_send.set(s.started, s.started);
        let text = s.prometheus(s.started);
        for family in [
            "info",
            "up",
            "captured_packets_total",
            "captured_bytes_total",
            "kernel_drops_total",
            "interface_drops_total",
            "truncated_total",
            "segmented_total",
            "rate_limited_total",
            "sent_packets_total",
            "sent_bytes_total",
            "send_errors_total",
            "last_send_timestamp_seconds",
            "http_connections_total",
        ] {
            assert!(text.contains(&format!("# TYPE bpc_agent_{family} ")), "missing {family}:\n{text}");
        }
        assert!(
            text.contains("bpc_agent_sent_packets_total{collector=\"collector.monitoring.svc\"} 7"),
            "{text}"
        );
        assert!(text.contains("filter=\"tcp and not (host \\\"x\\\")\""), "{text}");
        assert!(text.contains(
            "bpc_agent_send_errors_total{collector=\"collector.monitoring.svc\",kind=\"no_buffer\"} 0"
        ));
        // No sample line may be malformed: name{labels} value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }

    #[test]
    fn errno_classes_match_the_error_kinds() {
        assert_eq!(SendErrorKind::of_errno(libc::ENETUNREACH), SendErrorKind::Unreachable);
        assert_eq!(SendErrorKind::of_errno(libc::EHOSTUNREACH), SendErrorKind::Unreachable);
        assert_eq!(SendErrorKind::of_errno(libc::ENOBUFS), SendErrorKind::NoBuffer);
        assert_eq!(SendErrorKind::of_errno(libc::EAGAIN), SendErrorKind::NoBuffer);
        assert_eq!(SendErrorKind::of_errno(libc::EMSGSIZE), SendErrorKind::Other);
    }
}
