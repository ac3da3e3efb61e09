//! The receiver's report: per stream, per key (over a workload's streams),
//! totals, malformed reasons, top inner flows, latency and notes. Its JSON
//! form is `-o json`'s schema.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bpc_contract::stream::{ReceivedProfile, StreamReport};
use serde::{Deserialize, Serialize};

use super::accounting::State;
use crate::map::WorkloadMap;

/// One inner flow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowReport {
    /// "tcp", "udp", "icmp" or the IP protocol number.
    pub protocol: String,
    /// Source address:port.
    pub source: String,
    /// Destination address:port.
    pub destination: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Latency percentiles of synthetic frames (send timestamp in the payload).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyReport {
    /// Samples.
    pub samples: u64,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Maximum, microseconds.
    pub max_us: f64,
}

/// One workload key over all its streams: the view that survives pod
/// restarts, rollouts and rescheduling (each new pod is a new stream of the
/// same key).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyReport {
    /// The GRE key, `0x%08x` (netis: the keybit).
    pub key: String,
    /// "namespace/kind/name" from the map, when known.
    pub workload: Option<String>,
    /// Streams (source address and profile) seen with this key.
    pub streams: u64,
    /// Packets over all streams.
    pub packets: u64,
    /// Inner frame bytes over all streams.
    pub bytes: u64,
    /// Sequence numbers missing, over all streams.
    pub lost: u64,
    /// Late packets, over all streams.
    pub reordered: u64,
    /// Duplicated packets, over all streams.
    pub duplicated: u64,
    /// Times a source started numbering again at 0 (an agent restarted in the same pod).
    pub sequence_restarts: u64,
    /// Streams that took over from one that had gone silent: the first packet
    /// of the new stream came after the last packet of the old one (a pod
    /// replaced by one with a new IP). Each silent stream is taken over at most once.
    pub restarted_streams: u64,
    /// `sequence_restarts + restarted_streams`.
    pub restarts: u64,
}

/// Per-key summary of `streams` (any order), sorted by key. Used for the
/// report and by `--expect`, so a saved JSON report gives the same answers.
pub fn summarize_keys(streams: &[StreamReport]) -> Vec<KeyReport> {
    let mut by_key: BTreeMap<&str, Vec<&StreamReport>> = BTreeMap::new();
    for s in streams {
        by_key.entry(&s.key).or_default().push(s);
    }
    by_key
        .into_iter()
        .map(|(key, mut group)| {
            let mut k = KeyReport {
                key: key.to_string(),
                workload: group.iter().find_map(|s| s.workload.clone()),
                streams: group.len() as u64,
                ..Default::default()
            };
            for s in &group {
                k.packets += s.packets;
                k.bytes += s.bytes;
                k.lost += s.lost;
                k.reordered += s.reordered;
                k.duplicated += s.duplicated;
                k.sequence_restarts += s.restarts;
            }
            // Oldest first; a stream takes over from one whose last packet it
            // follows: that is a replacement, not a scale-up (the old one would
            // still be sending) and not loss (the new one numbers from its own 0).
            group.sort_by(|a, b| a.first_seen.total_cmp(&b.first_seen));
            let mut taken = vec![false; group.len()];
            for (i, s) in group.iter().enumerate() {
                if let Some(j) = (0..i).find(|&j| !taken[j] && group[j].last_seen < s.first_seen) {
                    taken[j] = true;
                    k.restarted_streams += 1;
                }
            }
            k.restarts = k.sequence_restarts + k.restarted_streams;
            k
        })
        .collect()
}

/// Totals over all streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Valid GRE packets.
    pub packets: u64,
    /// Inner bytes.
    pub bytes: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Sum of lost.
    pub lost: u64,
}

/// The receiver's report (the `-o json` schema).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Seconds since the receiver started.
    pub elapsed_seconds: f64,
    /// Totals.
    pub totals: Totals,
    /// Streams ordered by key then source.
    pub streams: Vec<StreamReport>,
    /// Per-key summary ([`summarize_keys`] of `streams`).
    #[serde(default)]
    pub keys: Vec<KeyReport>,
    /// Malformed datagrams by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Top 10 inner flows by packets.
    pub top_flows: Vec<FlowReport>,
    /// Latency of timestamped synthetic frames.
    pub latency: Option<LatencyReport>,
    /// Caveats (e.g. netis streams have no sequence numbers).
    pub notes: Vec<String>,
}

/// The note of a report with VXLAN streams: what a receiver can and cannot tell without sequence numbers.
pub const VXLAN_NOTE: &str = "VXLAN streams carry no sequence numbers: loss, reordering and duplicates cannot be \
                              measured; compare the stream's packets with the agent's sent_packets in /stats";

pub(super) fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub(super) fn build_report(st: &State, map: &WorkloadMap, elapsed: Duration) -> Report {
    let mut r = Report { elapsed_seconds: elapsed.as_secs_f64(), ..Default::default() };
    let mut keys: Vec<_> = st.streams.keys().collect();
    keys.sort();
    for k in keys {
        let s = &st.streams[k];
        let c = s.tracker.counters();
        let span = s.last.duration_since(s.first).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        r.streams.push(StreamReport {
            key: bpc_wire::WorkloadKey(k.0).to_string(),
            workload: map.name(k.0, s.profile).map(str::to_string),
            source: k.1,
            profile: s.profile,
            packets: s.packets,
            bytes: s.bytes,
            lost: c.lost,
            reordered: c.reordered,
            duplicated: c.duplicated,
            restarts: c.restarts,
            first_seen: unix(s.first),
            last_seen: unix(s.last),
            rate_pps: if span > 0.0 { (s.packets.saturating_sub(1)) as f64 / span } else { 0.0 },
            directions: s.dirs,
        });
        r.totals.packets += s.packets;
        r.totals.bytes += s.bytes;
        r.totals.lost += c.lost;
        let note = match s.profile {
            ReceivedProfile::Netis => {
                Some("netis streams carry no sequence numbers: loss and reordering cannot be measured")
            }
            ReceivedProfile::Vxlan => Some(VXLAN_NOTE),
            _ => None,
        };
        if let Some(note) = note.filter(|n| !r.notes.iter().any(|have| have == n)) {
            r.notes.push(note.into());
        }
    }
    if let Some(note) = &st.vxlan_note {
        r.notes.push(note.clone());
    }
    r.keys = summarize_keys(&r.streams);
    for k in r.keys.iter().filter(|k| k.restarts > 0) {
        r.notes.push(format!(
            "{}: {} restarted stream(s) (a new source after another went silent: pod replaced) and {} \
             sequence restart(s) (agent restarted in place); counted as restarts, not loss",
            k.workload.as_deref().unwrap_or(&k.key),
            k.restarted_streams,
            k.sequence_restarts
        ));
    }
    r.malformed = st.malformed.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    r.totals.malformed = st.malformed.values().sum();
    let mut flows: Vec<_> = st.inner.flows.iter().collect();
    flows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(b.1.1.cmp(&a.1.1)).then(a.0.cmp(b.0)));
    for ((p, s, sp, d, dp), (pk, by)) in flows.into_iter().take(10) {
        let protocol = bpc_wire::protocol_name(*p).into_owned();
        r.top_flows.push(FlowReport {
            protocol,
            source: SocketAddr::new(*s, *sp).to_string(),
            destination: SocketAddr::new(*d, *dp).to_string(),
            packets: *pk,
            bytes: *by,
        });
    }
    if !st.inner.latencies_ns.is_empty() {
        let mut l = st.inner.latencies_ns.clone();
        l.sort_unstable();
        let pct = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        r.latency = Some(LatencyReport {
            samples: l.len() as u64,
            p50_us: pct(0.5),
            p99_us: pct(0.99),
            max_us: *l.last().unwrap() as f64 / 1000.0,
        });
    }
    r
}
