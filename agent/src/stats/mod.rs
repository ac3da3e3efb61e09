//! The agent's counters, shared by the capture loop, the resolver and the
//! HTTP endpoint, and their three renderings: `/stats` JSON ([`snapshot`],
//! schema owned by `bpc_contract::stats`), the `/healthz` and `/livez`
//! verdicts ([`health`]) and `/metrics` Prometheus text ([`prometheus`]).
//!
//! The capture thread is the only writer of the capture and send counters;
//! it adds per block, so the atomics are uncontended.

mod collector;
mod counters;
pub mod delay;
mod health;
mod prometheus;
mod recent;
mod snapshot;

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime};

pub use bpc_contract::stats::Health;
use bpc_contract::{GreProfile, Oversize};
pub use collector::{CollectorCounters, Resolution, SendErrorKind};
pub use counters::{CaptureCounters, HttpCounters, Moment};
pub use recent::Snapshots;

/// The agent's version, as reported in /stats and the info metric.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the agent reports about itself that does not change per packet.
#[derive(Debug, Clone)]
pub struct Identity {
    /// GRE key, `0x%08x`.
    pub key: String,
    /// Workload path, when known.
    pub workload: Option<String>,
    /// GRE profile.
    pub profile: GreProfile,
    /// Oversize mode.
    pub oversize: Oversize,
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
    /// The capture interface, once chosen.
    pub interface: Mutex<String>,
    /// Why capture is not running, once it failed (`--on-error serve`).
    pub capture_error: Mutex<Option<String>>,
    /// Capture counters.
    pub capture: CaptureCounters,
    /// Per collector, in configuration order.
    pub collectors: Vec<CollectorCounters>,
    /// Bumped whenever a collector's resolution changes.
    pub generation: AtomicU64,
    /// The HTTP endpoint's connections.
    pub http: HttpCounters,
    /// The collectors' counters over the recent window ([`Stats::roll_recent`]).
    pub recent: Mutex<Snapshots>,
}

impl Stats {
    /// Fresh counters for the given collectors.
    pub fn new(identity: Identity, filter: String, hosts: &[String]) -> Self {
        Stats {
            started: Instant::now(),
            started_unix: SystemTime::now(),
            identity,
            filter: Mutex::new(filter),
            interface: Mutex::new(String::new()),
            capture_error: Mutex::new(None),
            capture: CaptureCounters::default(),
            collectors: hosts.iter().map(|h| CollectorCounters::new(h)).collect(),
            generation: AtomicU64::new(0),
            http: HttpCounters::default(),
            recent: Mutex::new(Snapshots::default()),
        }
    }

    /// The current effective filter.
    pub fn filter(&self) -> String {
        self.filter.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The capture interface ("" until chosen).
    pub fn interface(&self) -> String {
        self.interface.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why capture is not running, if it failed.
    pub fn capture_error(&self) -> Option<String> {
        self.capture_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records that capture failed: health says why from now on.
    pub fn set_capture_error(&self, why: String) {
        *self.capture_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// Fixtures shared by the renderings' tests.
#[cfg(test)]
mod fixture {
    use std::time::{Duration, Instant};

    use super::*;

    /// One collector, `collector.monitoring.svc`, not resolved yet.
    pub(super) fn stats() -> Stats {
        let identity = Identity {
            key: "0x1234abcd".into(),
            workload: Some("shop/deployment/checkout".into()),
            profile: GreProfile::Standard,
            oversize: Oversize::Segment,
        };
        let s = Stats::new(identity, "not (ip proto 47)".into(), &["collector.monitoring.svc".into()]);
        *s.interface.lock().unwrap() = "eth0".into();
        s
    }

    /// The collector resolved to 198.18.0.2.
    pub(super) fn resolved() -> Stats {
        let s = stats();
        *s.collectors[0].resolution.lock().unwrap() =
            Some(Resolution { address: "198.18.0.2".parse().unwrap(), path_mtu: 1500 });
        s
    }

    /// `ms` milliseconds after the start.
    pub(super) fn at(s: &Stats, ms: u64) -> Instant {
        s.started + Duration::from_millis(ms)
    }
}
