//! The agent's `GET /stats` JSON. `bpc-agent` fills it from its counters;
//! `kubectl bpc status` reads it through the API server's pod proxy and
//! embeds it in its own `-o json` report.
//!
//! `testdata/status/agent-stats.json` is the example every side is tested
//! against: this crate round-trips it, the agent produces its shape.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{GreProfile, Oversize};

/// The whole `/stats` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Agent version.
    pub version: String,
    /// Workload key, `0x%08x` (netis: the keybit).
    pub key: String,
    /// `namespace/kind/name`, null when the agent could not tell.
    pub workload: Option<String>,
    /// Capture interface.
    pub interface: String,
    /// Effective BPF filter (the user's, with the agent's own traffic excluded).
    pub filter: String,
    /// GRE header layout sent.
    pub profile: GreProfile,
    /// What happens to frames too big for one GRE packet.
    pub oversize: Oversize,
    /// Seconds since the agent started, to the millisecond.
    pub uptime_seconds: f64,
    /// Capture counters.
    pub capture: CaptureStats,
    /// One entry per collector, in configuration order.
    pub collectors: Vec<CollectorStats>,
    /// The agent's own verdict (`/healthz`).
    pub health: Health,
    /// Why capture is not running, when it could not start or failed and the
    /// agent kept serving (`--on-error serve`, the sidecars' setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_error: Option<String>,
    /// Connections to the endpoint by outcome. Absent from status reports
    /// saved before the CLI kept it; the agent always writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpStats>,
}

/// The `capture` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// Frames the filter accepted.
    pub packets: u64,
    /// Bytes of those frames, as captured.
    pub bytes: u64,
    /// Frames the kernel dropped because the capture ring was full.
    pub kernel_drops: u64,
    /// Frames the interface dropped since the agent started.
    pub interface_drops: u64,
    /// Frames sent shorter than captured (`--snaplen`, `--oversize truncate`).
    pub truncated: u64,
    /// Super-frames split into segments or fragments.
    pub segmented: u64,
    /// Frames dropped by `--max-pps`/`--max-mbps`.
    pub rate_limited: u64,
    /// Seconds since the last captured frame, null before the first.
    pub last_packet_age_seconds: Option<f64>,
    /// Capture-to-send delay over the recent window, and the frames' path (absent from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_delay: Option<ForwardingDelay>,
}

/// How frames of up to an MTU leave the capture ring: the agent moves them
/// between the two by the rate (docs/agent.md, "The timeline").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapturePath {
    /// Each frame as soon as it is captured (TPACKET_V2 slots): low rates.
    Prompt,
    /// In blocks, full or after the block timeout (TPACKET_V3): high rates.
    Blocks,
}

impl CapturePath {
    /// The name in JSON, `/metrics` and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CapturePath::Prompt => "prompt",
            CapturePath::Blocks => "blocks",
        }
    }
}

/// The `capture.forwarding_delay` object: how long frames waited in the
/// agent, from the kernel's capture timestamp to the send. A probe times
/// transactions by the mirror's arrival, so this is the error (and its spread
/// the jitter) of every response time it measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ForwardingDelay {
    /// Where the frames of up to an MTU go now; absent when the kernel gave
    /// the agent no prompt ring (they keep the blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<CapturePath>,
    /// Seconds the window spans (as `collectors[].recent`).
    pub window_seconds: f64,
    /// Frames forwarded in the window.
    pub frames: u64,
    /// Median delay in microseconds, null without frames.
    pub p50_us: Option<f64>,
    /// 99th percentile in microseconds, null without frames.
    pub p99_us: Option<f64>,
}

/// One entry of `collectors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorStats {
    /// The host as configured.
    pub host: String,
    /// Where the host currently points, null until it resolves.
    pub address: Option<IpAddr>,
    /// GRE packets handed to the kernel.
    pub sent_packets: u64,
    /// Their bytes (GRE header + frame).
    pub sent_bytes: u64,
    /// Failures by kind.
    pub errors: SendErrors,
    /// Seconds since the last successful send, null before the first.
    pub last_send_age_seconds: Option<f64>,
    /// Seconds since the last failed send or ICMP error, null before the
    /// first. Absent from agents before the recent window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_age_seconds: Option<f64>,
    /// What the collector host's last ICMP error about our packets said
    /// (e.g. `protocol unreachable: no GRE receiver on the collector host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_error: Option<String>,
    /// Why the host's last lookup failed, while it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_error: Option<String>,
    /// Sends and errors over the agent's recent window: what [`Self::fault`]
    /// judges, so a fault long cured does not fail a pod and an idle pod's
    /// bounces are still seen. Absent from agents before the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent: Option<RecentSends>,
}

/// The `recent` object of a collector: what changed over the last
/// `window_seconds` (the agent keeps snapshots of its counters; the window
/// runs from the oldest it keeps, [`RECENT_WINDOW_SECONDS`] or a little more,
/// or from the start while the agent is younger).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentSends {
    /// Seconds the window spans.
    pub window_seconds: f64,
    /// GRE packets handed to the kernel in the window.
    pub sent_packets: u64,
    /// Failures in the window, by kind.
    pub errors: SendErrors,
}

/// The agent judges its collectors over at least this many seconds.
pub const RECENT_WINDOW_SECONDS: u64 = 60;

/// A collector that bounced is cured once sends have succeeded for this long
/// after its last error: the host answers (about once a second, rate-limited)
/// within milliseconds of a send, and the agent reads the errors every second.
const CURED_AFTER_SECONDS: f64 = 5.0;

/// Share of failed sends (no buffer, other) in the window that makes a
/// collector faulty even while some sends succeed: one in ten.
const FAILING_SHARE_DENOMINATOR: u64 = 10;

impl CollectorStats {
    /// Whether this collector is faulty over the recent window, and why: the
    /// one rule the agent's `/healthz` and `kubectl bpc status` both apply,
    /// so they cannot disagree. None when fine, or when the agent predates
    /// the window (`recent` absent).
    ///
    /// * No address and lookups failing: nothing can be sent.
    /// * `unreachable` errors (no route, or the collector host bouncing our
    ///   packets with ICMP) in the window, unless sends have succeeded for
    ///   [`CURED_AFTER_SECONDS`] since the last one: no share is asked for,
    ///   the host rate-limits its ICMP errors (about one a second), so one
    ///   bounce stands for many lost packets; an idle pod whose last send
    ///   bounced stays faulty until the error leaves the window.
    /// * Other failures (queue full, EPERM...): when no send succeeded since
    ///   the last one, or when they are at least a tenth of the attempts.
    pub fn fault(&self) -> Option<String> {
        let recent = self.recent?;
        let e = recent.errors;
        let window = recent.window_seconds;
        if self.address.is_none() && e.resolve > 0 {
            let why = self.resolve_error.as_deref().unwrap_or("lookup failed");
            return Some(format!(
                "collector {} does not resolve ({why}; {} failed lookups in {window:.0} s)",
                self.host, e.resolve
            ));
        }
        let attempts = recent.sent_packets + e.unreachable + e.no_buffer + e.other;
        let share = |n: u64| n > 0 && n * FAILING_SHARE_DENOMINATOR >= attempts;
        // Seconds sends have succeeded since the last error (none: 0).
        let cured_for = match (self.last_error_age_seconds, self.last_send_age_seconds) {
            (Some(err), Some(send)) => err - send,
            (None, Some(_)) => f64::INFINITY,
            (_, None) => 0.0,
        };
        if e.unreachable > 0 && cured_for < CURED_AFTER_SECONDS {
            let how = match &self.icmp_error {
                Some(icmp) => format!("ICMP {icmp}"),
                None => "no route to it".to_owned(),
            };
            return Some(format!(
                "collector {}{} unreachable: {} of {attempts} sends in {window:.0} s bounced or had no route ({how})",
                self.host,
                // The address it points to, unless the host is that address.
                self.address
                    .filter(|a| a.to_string() != self.host)
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default(),
                e.unreachable
            ));
        }
        let failed = e.no_buffer + e.other;
        if failed > 0 && (cured_for <= 0.0 || share(failed)) {
            return Some(format!(
                "sends to collector {} failing: {failed} of {attempts} in {window:.0} s ({} no_buffer, {} other)",
                self.host, e.no_buffer, e.other
            ));
        }
        None
    }
}

/// The `errors` object of a collector: why packets for it did not leave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendErrors {
    /// No route, host or network unreachable, ICMP errors about our packets.
    pub unreachable: u64,
    /// Socket or device queue full: the packet was dropped, not queued.
    pub no_buffer: u64,
    /// Failed DNS resolutions of the host.
    pub resolve: u64,
    /// Anything else (EMSGSIZE, EPERM from a firewall, ...).
    pub other: u64,
}

impl SendErrors {
    /// Failing sends, the one sum the agent's log, `status`'s verdict and its
    /// table use: every kind, since each one (an unresolvable name too) means
    /// packets for this collector that never left.
    pub fn failing(&self) -> u64 {
        self.unreachable + self.no_buffer + self.resolve + self.other
    }
}

/// The `health` object: the `/healthz` (and, for `/livez`, liveness) verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Whether the agent considers itself healthy.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// The `http` object: connections to the endpoint by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpStats {
    /// A well-formed request was answered.
    pub served: u64,
    /// The deadline from accept passed before the answer was out.
    pub timeout: u64,
    /// Malformed or oversize requests, answered 400/414/431.
    pub bad_request: u64,
    /// Closed to make room: more than the bound were open.
    pub evicted: u64,
    /// The client left before a complete request.
    pub closed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = include_str!("../../testdata/status/agent-stats.json");

    #[test]
    fn the_golden_stats_decode_to_typed_fields() {
        let s: AgentStats = serde_json::from_str(GOLDEN).unwrap();
        assert_eq!(
            (s.key.as_str(), s.profile, s.oversize),
            ("0x1234abcd", GreProfile::Standard, Oversize::Segment)
        );
        assert_eq!(s.collectors[0].address, Some("198.18.0.2".parse().unwrap()));
        assert_eq!(s.capture.last_packet_age_seconds, Some(1.2));
        assert_eq!(s.http.map(|h| h.served), Some(41));
        assert!(s.health.ok);
    }

    #[test]
    fn the_golden_stats_round_trip_without_losing_or_adding_a_field() {
        let golden: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
        let typed: AgentStats = serde_json::from_value(golden.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), golden);
    }

    #[test]
    fn a_report_without_http_counters_still_decodes_and_writes_none() {
        let mut v: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
        v.as_object_mut().unwrap().remove("http");
        let s: AgentStats = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.http, None);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
    }

    fn collector(recent: RecentSends) -> CollectorStats {
        CollectorStats {
            host: "collector.monitoring.svc".into(),
            address: Some("198.18.0.2".parse().unwrap()),
            sent_packets: 280,
            last_send_age_seconds: Some(0.5),
            recent: Some(recent),
            ..Default::default()
        }
    }

    fn window(sent_packets: u64, errors: SendErrors) -> RecentSends {
        RecentSends { window_seconds: 62.0, sent_packets, errors }
    }

    #[test]
    fn bounces_in_the_window_are_a_fault_naming_the_collector_and_the_icmp_reason() {
        let mut c = collector(window(142, SendErrors { unreachable: 138, ..Default::default() }));
        c.icmp_error = Some("protocol unreachable: no GRE receiver on the collector host".into());
        // A busy pod: its last send a moment ago, the last bounce a second ago.
        c.last_error_age_seconds = Some(1.0);
        let why = c.fault().expect("sends bouncing now");
        assert!(
            why.contains("collector.monitoring.svc (198.18.0.2)") && why.contains("no GRE receiver"),
            "{why}"
        );
        assert!(why.contains("138 of 280 sends in 62 s"), "{why}");
        // An idle pod: its last send bounced 30 s ago, nothing sent since.
        c.last_send_age_seconds = Some(30.2);
        c.last_error_age_seconds = Some(30.0);
        assert!(c.fault().is_some(), "one bounce stands for many: ICMP errors are rate-limited");
    }

    #[test]
    fn a_collector_is_cured_once_sends_succeeded_for_five_seconds_after_its_last_bounce() {
        let mut c = collector(window(231, SendErrors { unreachable: 11, ..Default::default() }));
        c.last_send_age_seconds = Some(0.1);
        c.last_error_age_seconds = Some(4.0);
        assert!(c.fault().is_some(), "4 s of sends since the last bounce: not yet");
        c.last_error_age_seconds = Some(6.0);
        assert_eq!(c.fault(), None, "the receiver came up 6 s ago: no fault, whatever the share");
    }

    #[test]
    fn old_errors_outside_the_window_are_no_fault() {
        let mut c = collector(window(500, SendErrors::default()));
        c.errors = SendErrors { unreachable: 138, ..Default::default() };
        assert_eq!(c.fault(), None, "lifetime totals are not judged, the window is");
    }

    #[test]
    fn a_collector_that_never_resolves_is_a_fault_and_one_that_kept_its_address_is_not() {
        let mut c = collector(window(0, SendErrors { resolve: 12, ..Default::default() }));
        c.resolve_error = Some("failed to lookup address information".into());
        assert_eq!(c.fault(), None, "the last good address is still used");
        c.address = None;
        assert!(c.fault().unwrap().contains("does not resolve (failed to lookup"));
    }

    #[test]
    fn other_failures_count_when_failing_now_or_a_tenth_of_the_attempts() {
        let mut c = collector(window(95, SendErrors { no_buffer: 5, ..Default::default() }));
        c.last_error_age_seconds = Some(3.0);
        assert_eq!(c.fault(), None, "a few full queues with sends since are transient");
        c.last_error_age_seconds = Some(0.1);
        assert!(c.fault().is_some(), "no send succeeded since the last failure");
        let mut c = collector(window(90, SendErrors { other: 10, ..Default::default() }));
        c.last_error_age_seconds = Some(3.0);
        assert!(c.fault().unwrap().contains("10 of 100 in 62 s"));
    }

    #[test]
    fn an_agent_without_the_window_is_not_judged_by_it() {
        let mut c = collector(window(0, SendErrors::default()));
        c.recent = None;
        c.errors.unreachable = 5;
        assert_eq!(c.fault(), None);
    }

    #[test]
    fn failing_sends_count_every_kind_of_error() {
        let e = SendErrors { unreachable: 1, no_buffer: 2, resolve: 4, other: 8 };
        assert_eq!(e.failing(), 15);
    }
}
