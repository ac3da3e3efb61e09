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

    #[test]
    fn failing_sends_count_every_kind_of_error() {
        let e = SendErrors { unreachable: 1, no_buffer: 2, resolve: 4, other: 8 };
        assert_eq!(e.failing(), 15);
    }
}
