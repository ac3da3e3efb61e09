//! One received GRE stream (one key from one source address), as the
//! receiver reports it: the `streams` entries of `bpc-sim receive -o json`,
//! and what `kubectl bpc sink` and `verify` read from the embedded receiver.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The header layout a stream arrived with (the receiver's classification).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceivedProfile {
    /// Key and sequence number: a workload key, loss measurable.
    #[default]
    Standard,
    /// Key only (pktminerg): keybit and direction, no sequence.
    Netis,
    /// No key: counted, but not attributable to a workload.
    Anonymous,
    /// VXLAN: the VNI as key; no sequence, loss cannot be measured.
    Vxlan,
    /// ERSPAN type II: the session ID as key, sequence numbers.
    #[serde(rename = "erspan-ii")]
    ErspanIi,
    /// ERSPAN type III: the session ID as key, sequence numbers, capture times.
    #[serde(rename = "erspan-iii")]
    ErspanIii,
}

names!(ReceivedProfile, "stream profile" {
    Standard => "standard",
    Netis => "netis",
    Anonymous => "anonymous",
    Vxlan => "vxlan",
    ErspanIi => "erspan-ii",
    ErspanIii => "erspan-iii",
});

/// One stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    /// The GRE key, `0x%08x` (netis: the keybit; anonymous: 0; VXLAN: the
    /// VNI; ERSPAN: the session ID).
    pub key: String,
    /// `namespace/kind/name` from the map, when known.
    pub workload: Option<String>,
    /// The sending agent's address (the pod IP).
    pub source: IpAddr,
    /// The layout the stream arrived with.
    pub profile: ReceivedProfile,
    /// Packets received (duplicates included).
    pub packets: u64,
    /// Inner frame bytes.
    pub bytes: u64,
    /// Sequence numbers missing (standard only).
    pub lost: u64,
    /// Packets that arrived late.
    pub reordered: u64,
    /// Packets whose number was already seen.
    pub duplicated: u64,
    /// Times the agent restarted numbering.
    pub restarts: u64,
    /// Unix seconds of the first packet.
    pub first_seen: f64,
    /// Unix seconds of the last packet.
    pub last_seen: f64,
    /// Packets per second over the stream's lifetime.
    pub rate_pps: f64,
    /// Netis and ERSPAN III streams: packets by direction.
    pub directions: Option<DirectionCounts>,
}

impl StreamReport {
    /// A stream with nothing counted yet.
    pub fn new(key: impl Into<String>, source: IpAddr, profile: ReceivedProfile) -> Self {
        StreamReport {
            key: key.into(),
            workload: None,
            source,
            profile,
            packets: 0,
            bytes: 0,
            lost: 0,
            reordered: 0,
            duplicated: 0,
            restarts: 0,
            first_seen: 0.0,
            last_seen: 0.0,
            rate_pps: 0.0,
            directions: None,
        }
    }

    /// The key a workload can be told by: none for an anonymous stream,
    /// whose `key` is a placeholder.
    pub fn workload_key(&self) -> Option<&str> {
        (self.profile != ReceivedProfile::Anonymous).then_some(self.key.as_str())
    }
}

/// Netis direction counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionCounts {
    /// Direction 1: towards the pod.
    pub inbound: u64,
    /// Direction 2: from the pod.
    pub outbound: u64,
    /// Direction 0 or other.
    pub unknown: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(profile: ReceivedProfile) -> StreamReport {
        let source = "198.18.0.1".parse().unwrap();
        StreamReport {
            packets: 1,
            bytes: 60,
            first_seen: 1.5,
            ..StreamReport::new("0x00000000", source, profile)
        }
    }

    #[test]
    fn source_and_profile_travel_as_the_strings_the_report_always_had() {
        let v = serde_json::to_value(stream(ReceivedProfile::Anonymous)).unwrap();
        assert_eq!((v["source"].as_str(), v["profile"].as_str()), (Some("198.18.0.1"), Some("anonymous")));
        let back: StreamReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, stream(ReceivedProfile::Anonymous));
    }

    #[test]
    fn a_source_that_is_not_an_address_is_rejected() {
        let mut v = serde_json::to_value(stream(ReceivedProfile::Standard)).unwrap();
        v["source"] = "pod-a".into();
        assert!(serde_json::from_value::<StreamReport>(v).is_err());
    }

    #[test]
    fn only_keyed_streams_have_a_workload_key() {
        assert_eq!(stream(ReceivedProfile::Standard).workload_key(), Some("0x00000000"));
        assert_eq!(stream(ReceivedProfile::Anonymous).workload_key(), None);
    }
}
