//! The two GRE header layouts an agent can send.
//!
//! | profile    | flags word | header | key field                      | sequence |
//! |------------|-----------|--------|--------------------------------|----------|
//! | `standard` | `0x3000`  | 12 B   | [`WorkloadKey`](crate::WorkloadKey) | per packet, from 0 |
//! | `netis`    | `0x2000`  | 8 B    | `keybit \| direction << 28`     | none     |
//!
//! Both carry protocol type 0x6558 (Transparent Ethernet Bridging): the
//! payload is the captured Ethernet frame. `netis` is what the pktminerg agent
//! sends and what Netis BPC appliances already ingest; without sequence
//! numbers a receiver cannot measure loss on it.

use std::fmt;
use std::str::FromStr;

use crate::error::WireError;
use crate::gre::{GreFlags, GreHeader, GrePacket, PROTO_TEB};

/// The direction of a frame relative to the capturing pod, as the netis
/// profile carries it in the top 4 bits of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Not known (or a value other than 1 and 2).
    #[default]
    Unknown,
    /// Towards the pod: the frame's destination MAC is the interface's own.
    Inbound,
    /// From the pod: the frame's source MAC is the interface's own.
    Outbound,
}

impl Direction {
    /// The 4-bit value carried in the key.
    pub const fn bits(self) -> u32 {
        match self {
            Direction::Unknown => 0,
            Direction::Inbound => 1,
            Direction::Outbound => 2,
        }
    }

    /// Reads the 4-bit value; anything but 1 and 2 is `Unknown`.
    pub const fn from_bits(bits: u32) -> Self {
        match bits {
            1 => Direction::Inbound,
            2 => Direction::Outbound,
            _ => Direction::Unknown,
        }
    }

    /// Decides the direction of an Ethernet frame from the capturing
    /// interface's own MAC address.
    pub fn of_frame(frame: &[u8], own_mac: &[u8; 6]) -> Self {
        match (frame.get(0..6), frame.get(6..12)) {
            (Some(dst), _) if dst == own_mac => Direction::Inbound,
            (_, Some(src)) if src == own_mac => Direction::Outbound,
            _ => Direction::Unknown,
        }
    }
}

/// The netis profile's key: a 28-bit `keybit` and a [`Direction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetisKey {
    /// The low 28 bits of the key (pktminerg's `--keybit`).
    pub keybit: u32,
    /// Direction, in bits 28-31.
    pub direction: Direction,
}

impl NetisKey {
    /// Largest keybit that fits below the direction bits.
    pub const MAX_KEYBIT: u32 = 0x0fff_ffff;

    /// The 32-bit GRE key: `keybit | direction << 28` (keybit masked to 28 bits).
    pub const fn to_key(self) -> u32 {
        (self.keybit & Self::MAX_KEYBIT) | (self.direction.bits() << 28)
    }

    /// Splits a 32-bit GRE key into keybit and direction.
    pub const fn from_key(key: u32) -> Self {
        Self { keybit: key & Self::MAX_KEYBIT, direction: Direction::from_bits(key >> 28) }
    }
}

/// Which header layout an agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GreProfile {
    /// K + S, protocol 0x6558: key = workload key, sequence per packet.
    #[default]
    Standard,
    /// K only, protocol 0x6558: key = `keybit | direction << 28` (pktminerg).
    Netis,
}

impl GreProfile {
    /// Header length of this profile: 12 (standard) or 8 (netis).
    pub const fn header_len(self) -> usize {
        self.flags().header_len()
    }

    /// The flags this profile sends.
    pub const fn flags(self) -> GreFlags {
        match self {
            GreProfile::Standard => GreFlags { checksum: false, key: true, sequence: true },
            GreProfile::Netis => GreFlags { checksum: false, key: true, sequence: false },
        }
    }

    /// Writes this profile's header into `out` (the payload goes in a second
    /// iovec). `key` is the workload key (standard) or keybit (netis);
    /// `sequence` is ignored by netis and `direction` by standard.
    pub fn write_header(
        self,
        out: &mut [u8],
        key: u32,
        sequence: u32,
        direction: Direction,
    ) -> Result<usize, WireError> {
        let header = match self {
            GreProfile::Standard => {
                GreHeader { protocol: PROTO_TEB, checksum: false, key: Some(key), sequence: Some(sequence) }
            }
            GreProfile::Netis => GreHeader {
                protocol: PROTO_TEB,
                checksum: false,
                key: Some(NetisKey { keybit: key, direction }.to_key()),
                sequence: None,
            },
        };
        header.encode_header(&[], out)
    }
}

// The names belong to the contract (flags, environment, /stats): one table.
impl fmt::Display for GreProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&bpc_contract::GreProfile::from(*self), f)
    }
}

impl From<GreProfile> for bpc_contract::GreProfile {
    fn from(p: GreProfile) -> Self {
        match p {
            GreProfile::Standard => bpc_contract::GreProfile::Standard,
            GreProfile::Netis => bpc_contract::GreProfile::Netis,
        }
    }
}

impl From<bpc_contract::GreProfile> for GreProfile {
    fn from(p: bpc_contract::GreProfile) -> Self {
        match p {
            bpc_contract::GreProfile::Standard => GreProfile::Standard,
            bpc_contract::GreProfile::Netis => GreProfile::Netis,
        }
    }
}

/// Why a string is not a [`GreProfile`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown GRE profile {0:?}: expected \"standard\" (key + sequence) or \"netis\" (pktminerg, key only)"
)]
pub struct ParseProfileError(pub String);

impl FromStr for GreProfile {
    type Err = ParseProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<bpc_contract::GreProfile>()
            .map(GreProfile::from)
            .map_err(|_| ParseProfileError(s.to_owned()))
    }
}

/// What a receiver makes of a decoded packet's header: which stream it
/// belongs to and how to account for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamProfile {
    /// K and S present: the key is a workload key, the sequence is tracked.
    Standard {
        /// The workload key.
        key: u32,
        /// The sequence number.
        sequence: u32,
    },
    /// K present, S absent: a netis (pktminerg) stream.
    Netis(NetisKey),
    /// Neither layout (no key): counted, but not attributable to a workload.
    Anonymous,
}

impl StreamProfile {
    /// Classifies a decoded packet.
    pub const fn of(packet: &GrePacket<'_>) -> Self {
        match (packet.key, packet.sequence) {
            (Some(key), Some(sequence)) => StreamProfile::Standard { key, sequence },
            (Some(key), None) => StreamProfile::Netis(NetisKey::from_key(key)),
            (None, _) => StreamProfile::Anonymous,
        }
    }
}

impl From<&StreamProfile> for bpc_contract::stream::ReceivedProfile {
    fn from(p: &StreamProfile) -> Self {
        match p {
            StreamProfile::Standard { .. } => bpc_contract::stream::ReceivedProfile::Standard,
            StreamProfile::Netis(_) => bpc_contract::stream::ReceivedProfile::Netis,
            StreamProfile::Anonymous => bpc_contract::stream::ReceivedProfile::Anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_header_golden_bytes() {
        let mut out = [0u8; 16];
        let n = GreProfile::Standard.write_header(&mut out, 0xdead_beef, 7, Direction::Inbound).unwrap();
        assert_eq!(n, 12);
        assert_eq!(out[..n], [0x30, 0x00, 0x65, 0x58, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7]);
    }

    #[test]
    fn netis_header_golden_bytes_per_direction() {
        let mut out = [0u8; 8];
        let cases = [
            (Direction::Unknown, [0x20, 0x00, 0x65, 0x58, 0x00, 0x00, 0x00, 0x01]),
            (Direction::Inbound, [0x20, 0x00, 0x65, 0x58, 0x10, 0x00, 0x00, 0x01]),
            (Direction::Outbound, [0x20, 0x00, 0x65, 0x58, 0x20, 0x00, 0x00, 0x01]),
        ];
        for (direction, golden) in cases {
            let n = GreProfile::Netis.write_header(&mut out, 1, 99, direction).unwrap();
            assert_eq!(n, 8);
            assert_eq!(out, golden, "{direction:?}");
        }
    }

    #[test]
    fn netis_keybit_is_masked_below_direction_bits() {
        let key = NetisKey { keybit: 0xffff_ffff, direction: Direction::Outbound }.to_key();
        assert_eq!(key, 0x2fff_ffff);
        assert_eq!(NetisKey::from_key(key), NetisKey { keybit: 0x0fff_ffff, direction: Direction::Outbound });
        assert_eq!(NetisKey::from_key(0xf000_0005).direction, Direction::Unknown);
    }

    #[test]
    fn direction_follows_own_mac() {
        let own = [2, 0, 0, 0, 0, 1];
        let mut frame = [0u8; 14];
        frame[0..6].copy_from_slice(&own);
        assert_eq!(Direction::of_frame(&frame, &own), Direction::Inbound);
        frame[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        frame[6..12].copy_from_slice(&own);
        assert_eq!(Direction::of_frame(&frame, &own), Direction::Outbound);
        frame[6..12].fill(0xff);
        assert_eq!(Direction::of_frame(&frame, &own), Direction::Unknown);
        assert_eq!(Direction::of_frame(&frame[..3], &own), Direction::Unknown);
    }

    #[test]
    fn written_headers_are_classified_back_to_their_profile() {
        let mut out = [0u8; 12];
        let n = GreProfile::Standard.write_header(&mut out, 42, 9, Direction::Unknown).unwrap();
        let packet = GrePacket::parse(&out[..n]).unwrap();
        assert_eq!(StreamProfile::of(&packet), StreamProfile::Standard { key: 42, sequence: 9 });
        let n = GreProfile::Netis.write_header(&mut out, 3, 9, Direction::Inbound).unwrap();
        let packet = GrePacket::parse(&out[..n]).unwrap();
        assert_eq!(
            StreamProfile::of(&packet),
            StreamProfile::Netis(NetisKey { keybit: 3, direction: Direction::Inbound })
        );
        let packet = GrePacket::parse(&[0, 0, 0x65, 0x58]).unwrap();
        assert_eq!(StreamProfile::of(&packet), StreamProfile::Anonymous);
        let reported = bpc_contract::stream::ReceivedProfile::from(&StreamProfile::of(&packet));
        assert_eq!(reported, bpc_contract::stream::ReceivedProfile::Anonymous);
    }

    #[test]
    fn profile_names_parse_and_display() {
        assert_eq!("standard".parse::<GreProfile>().unwrap(), GreProfile::Standard);
        assert_eq!("NETIS".parse::<GreProfile>().unwrap(), GreProfile::Netis);
        assert_eq!(GreProfile::Netis.to_string(), "netis");
        assert_eq!("pktminerg".parse::<GreProfile>().unwrap(), GreProfile::Netis);
        assert!("gre".parse::<GreProfile>().unwrap_err().to_string().contains("standard"));
        for p in [GreProfile::Standard, GreProfile::Netis] {
            assert_eq!(GreProfile::from(bpc_contract::GreProfile::from(p)), p);
        }
        assert_eq!(GreProfile::Standard.header_len(), 12);
        assert_eq!(GreProfile::Netis.header_len(), 8);
    }

    #[test]
    fn short_output_buffer_is_an_error_not_a_panic() {
        let mut out = [0u8; 11];
        assert_eq!(
            GreProfile::Standard.write_header(&mut out, 1, 1, Direction::Unknown),
            Err(WireError::BufferTooSmall { needed: 12, available: 11 })
        );
    }
}
