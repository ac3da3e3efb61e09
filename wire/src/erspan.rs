//! ERSPAN type II and type III (draft-foschiano-erspan-03): a GRE header
//! with the sequence number (S) bit and protocol type 0x88BE (II) or 0x22EB
//! (III), then an ERSPAN header, then the mirrored Ethernet frame.
//!
//! Type II, 8 bytes after the 8-byte GRE header `10 00 88 be <sequence>`:
//!
//! ```text
//! |  Ver=1  |          VLAN         | COS | En|T|    Session ID     |
//! |      Reserved         |                 Index                   |
//! ```
//!
//! Type III, 12 bytes (+ 8 for the platform subheader when O is set) after
//! the 8-byte GRE header `10 00 22 eb <sequence>`:
//!
//! ```text
//! |  Ver=2  |          VLAN         | COS |BSO|T|    Session ID     |
//! |                          Timestamp                              |
//! |             SGT               |P|    FT   |   Hw ID   |D|Gra|O|
//! | Platf ID  |           Platform specific info (if O)             |
//! |                 Platform specific info (if O)                   |
//! ```
//!
//! Agents send type III with `Gra = 0b10` (IEEE 1588: the timestamp field
//! holds the nanoseconds of the second) and the platform subheader of
//! Platf ID 3, whose second word holds the seconds (Unix time, low 32 bits):
//! the capture time to the nanosecond, as the kernel stamped the frame.

use std::time::Duration;

use crate::error::WireError;
use crate::key::WorkloadKey;
use crate::profile::Direction;

/// GRE protocol type of ERSPAN type II.
pub const PROTO_ERSPAN_II: u16 = 0x88be;
/// GRE protocol type of ERSPAN type III.
pub const PROTO_ERSPAN_III: u16 = 0x22eb;
/// Length of the type II header.
pub const TYPE_II_LEN: usize = 8;
/// Length of the type III header without the platform subheader.
pub const TYPE_III_LEN: usize = 12;
/// Length of the platform-specific subheader.
pub const PLATFORM_LEN: usize = 8;
/// Largest session ID: 10 bits.
pub const MAX_SESSION: u16 = 0x03ff;
/// Largest type II index: 20 bits.
pub const MAX_INDEX: u32 = 0x000f_ffff;
/// The platform ID whose subheader carries the upper 32 bits of an IEEE 1588 timestamp.
pub const PLATFORM_ID_TIMESTAMP: u8 = 3;

/// The session ID a workload's agent sends by default: the key's low 10 bits.
/// 1,024 values: unlike a GRE key or a VNI, two workloads share one with a
/// fair chance once there are a few dozen (set `--session` to tell them apart).
pub const fn session_of(key: WorkloadKey) -> u16 {
    (key.0 & MAX_SESSION as u32) as u16
}

/// ERSPAN II `En` / the VLAN-related part of the first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanInfo {
    /// VLAN ID of the mirrored frame (12 bits).
    pub vlan: u16,
    /// Class of service (the tag's priority, 3 bits).
    pub cos: u8,
    /// Type II: encapsulation type `En` (0 untagged, 3 tag preserved in the frame);
    /// type III: `BSO` (bad/short/oversized, 0 good frame).
    pub en: u8,
    /// The frame was truncated.
    pub truncated: bool,
}

impl VlanInfo {
    /// The fields for a frame whose 802.1Q tag (TPID + TCI) was put back in
    /// the frame (`En` 3 in type II), or for an untagged frame.
    pub fn of_tag(tag: Option<[u8; 4]>) -> Self {
        match tag {
            Some(t) => {
                let tci = u16::from_be_bytes([t[2], t[3]]);
                VlanInfo { vlan: tci & 0x0fff, cos: (tci >> 13) as u8, en: 3, truncated: false }
            }
            None => VlanInfo::default(),
        }
    }

    fn word(&self, version: u8, session: u16) -> u32 {
        u32::from(version & 0xf) << 28
            | u32::from(self.vlan & 0x0fff) << 16
            | u32::from(self.cos & 0x7) << 13
            | u32::from(self.en & 0x3) << 11
            | u32::from(self.truncated) << 10
            | u32::from(session & MAX_SESSION)
    }

    /// The first word of a type II or III header at the start of `buf`
    /// (`len` bytes long, of `version`): the VLAN fields and the session.
    fn parse(buf: &[u8], header: &'static str, len: usize, version: u8) -> Result<(Self, u16), WireError> {
        if buf.len() < len {
            return Err(truncated(header, len, buf.len()));
        }
        let w = word(buf, 0);
        let found = (w >> 28) as u8;
        if found != version {
            return Err(WireError::ErspanVersion { expected: version, found });
        }
        let info = VlanInfo {
            vlan: (w >> 16) as u16 & 0x0fff,
            cos: (w >> 13) as u8 & 0x7,
            en: (w >> 11) as u8 & 0x3,
            truncated: w & (1 << 10) != 0,
        };
        Ok((info, (w as u16) & MAX_SESSION))
    }
}

fn word(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn truncated(header: &'static str, needed: usize, available: usize) -> WireError {
    WireError::TruncatedHeader { header, needed, available }
}

/// The ERSPAN type II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErspanII {
    /// Session ID (10 bits).
    pub session: u16,
    /// VLAN, COS, En, T.
    pub vlan: VlanInfo,
    /// The source port's index (20 bits): agents send the capture interface's ifindex.
    pub index: u32,
}

impl ErspanII {
    /// Writes the 8 bytes; returns 8.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let available = out.len();
        let h =
            out.get_mut(..TYPE_II_LEN).ok_or(WireError::BufferTooSmall { needed: TYPE_II_LEN, available })?;
        h[0..4].copy_from_slice(&self.vlan.word(1, self.session).to_be_bytes());
        h[4..8].copy_from_slice(&(self.index & MAX_INDEX).to_be_bytes());
        Ok(TYPE_II_LEN)
    }

    /// Decodes the header at the start of `buf` and returns it with the
    /// frame after it. Rejects a version other than 1. Never panics.
    pub fn parse(buf: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let (vlan, session) = VlanInfo::parse(buf, "ERSPAN II", TYPE_II_LEN, 1)?;
        Ok((ErspanII { session, vlan, index: word(buf, 4) & MAX_INDEX }, &buf[TYPE_II_LEN..]))
    }
}

/// Timestamp granularity of type III (`Gra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// 0b00: units of 100 microseconds.
    Micros100,
    /// 0b01: units of 100 nanoseconds.
    Nanos100,
    /// 0b10: IEEE 1588: nanoseconds of the second; the seconds in the Platf ID 3 subheader.
    Ieee1588,
    /// 0b11: user configurable.
    User,
}

impl Granularity {
    const fn bits(self) -> u16 {
        match self {
            Granularity::Micros100 => 0,
            Granularity::Nanos100 => 1,
            Granularity::Ieee1588 => 2,
            Granularity::User => 3,
        }
    }

    const fn from_bits(bits: u16) -> Self {
        match bits & 3 {
            0 => Granularity::Micros100,
            1 => Granularity::Nanos100,
            2 => Granularity::Ieee1588,
            _ => Granularity::User,
        }
    }
}

/// ERSPAN III's direction bit: how the monitored interface saw the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanDirection {
    /// D = 0: received by the interface (towards the pod).
    Ingress,
    /// D = 1: sent by the interface (from the pod).
    Egress,
}

impl SpanDirection {
    /// From the agent's direction: outbound frames are egress, the rest
    /// (inbound, and unknown, which the bit cannot say) ingress.
    pub const fn of(direction: Direction) -> Self {
        match direction {
            Direction::Outbound => SpanDirection::Egress,
            Direction::Inbound | Direction::Unknown => SpanDirection::Ingress,
        }
    }
}

/// The platform-specific subheader of type III.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// Platf ID 3: port index (14 bits) and the upper 32 bits of an IEEE 1588 timestamp (seconds).
    Timestamp {
        /// The source port's index.
        port_index: u16,
        /// Seconds (low 32 bits).
        seconds: u32,
    },
    /// Any other platform ID, with its 58 bits kept as they came.
    Other {
        /// Platf ID (6 bits).
        id: u8,
        /// The remaining 58 bits.
        info: u64,
    },
}

/// The ERSPAN type III header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErspanIII {
    /// Session ID (10 bits).
    pub session: u16,
    /// VLAN, COS, BSO, T.
    pub vlan: VlanInfo,
    /// Timestamp, in units of `granularity`.
    pub timestamp: u32,
    /// Security group tag.
    pub sgt: u16,
    /// P: 1 for an Ethernet frame (PDU).
    pub pdu: bool,
    /// FT, frame type: 0 Ethernet, 2 IP.
    pub frame_type: u8,
    /// Hardware ID (6 bits).
    pub hw_id: u8,
    /// D.
    pub direction: SpanDirection,
    /// Gra.
    pub granularity: Granularity,
    /// The subheader, present when O is set.
    pub platform: Option<Platform>,
}

impl ErspanIII {
    /// The header agents send: an Ethernet frame captured at `captured`
    /// (since the Unix epoch), stamped to the nanosecond (IEEE 1588 with the
    /// seconds in the Platf ID 3 subheader).
    pub fn captured(
        session: u16,
        vlan: VlanInfo,
        direction: SpanDirection,
        port_index: u16,
        captured: Duration,
    ) -> Self {
        ErspanIII {
            session,
            vlan,
            timestamp: captured.subsec_nanos(),
            sgt: 0,
            pdu: true,
            frame_type: 0,
            hw_id: 0,
            direction,
            granularity: Granularity::Ieee1588,
            platform: Some(Platform::Timestamp { port_index, seconds: captured.as_secs() as u32 }),
        }
    }

    /// Header length: 12, or 20 with the subheader.
    pub const fn len(&self) -> usize {
        TYPE_III_LEN + if self.platform.is_some() { PLATFORM_LEN } else { 0 }
    }

    /// Always false; for clippy's `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The capture time the header carries, since the Unix epoch, when it
    /// carries an absolute one (IEEE 1588 with the seconds subheader); the
    /// seconds are the low 32 bits, so this is the time modulo 2^32 s.
    pub fn capture_time(&self) -> Option<Duration> {
        match (self.granularity, self.platform) {
            (Granularity::Ieee1588, Some(Platform::Timestamp { seconds, .. }))
                if self.timestamp < 1_000_000_000 =>
            {
                Some(Duration::new(u64::from(seconds), self.timestamp))
            }
            _ => None,
        }
    }

    /// Writes the header; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let available = out.len();
        let h = out.get_mut(..len).ok_or(WireError::BufferTooSmall { needed: len, available })?;
        h[0..4].copy_from_slice(&self.vlan.word(2, self.session).to_be_bytes());
        h[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        h[8..10].copy_from_slice(&self.sgt.to_be_bytes());
        let bits = u16::from(self.pdu) << 15
            | u16::from(self.frame_type & 0x1f) << 10
            | u16::from(self.hw_id & 0x3f) << 4
            | u16::from(self.direction == SpanDirection::Egress) << 3
            | self.granularity.bits() << 1
            | u16::from(self.platform.is_some());
        h[10..12].copy_from_slice(&bits.to_be_bytes());
        match self.platform {
            None => {}
            Some(Platform::Timestamp { port_index, seconds }) => {
                let w = u32::from(PLATFORM_ID_TIMESTAMP) << 26 | u32::from(port_index & 0x3fff);
                h[12..16].copy_from_slice(&w.to_be_bytes());
                h[16..20].copy_from_slice(&seconds.to_be_bytes());
            }
            Some(Platform::Other { id, info }) => {
                let v = u64::from(id & 0x3f) << 58 | (info & ((1 << 58) - 1));
                h[12..20].copy_from_slice(&v.to_be_bytes());
            }
        }
        Ok(len)
    }

    /// Decodes the header at the start of `buf` and returns it with the
    /// frame after it. Rejects a version other than 2. Never panics.
    pub fn parse(buf: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let (vlan, session) = VlanInfo::parse(buf, "ERSPAN III", TYPE_III_LEN, 2)?;
        let bits = u16::from_be_bytes([buf[10], buf[11]]);
        let platform = if bits & 1 == 1 {
            if buf.len() < TYPE_III_LEN + PLATFORM_LEN {
                return Err(truncated("ERSPAN III", TYPE_III_LEN + PLATFORM_LEN, buf.len()));
            }
            let v = u64::from_be_bytes(buf[12..20].try_into().expect("8 bytes"));
            let id = (v >> 58) as u8;
            Some(if id == PLATFORM_ID_TIMESTAMP {
                Platform::Timestamp { port_index: (v >> 32) as u16 & 0x3fff, seconds: v as u32 }
            } else {
                Platform::Other { id, info: v & ((1 << 58) - 1) }
            })
        } else {
            None
        };
        let header = ErspanIII {
            session,
            vlan,
            timestamp: word(buf, 4),
            sgt: u16::from_be_bytes([buf[8], buf[9]]),
            pdu: bits & 0x8000 != 0,
            frame_type: (bits >> 10) as u8 & 0x1f,
            hw_id: (bits >> 4) as u8 & 0x3f,
            direction: if bits & 0x8 != 0 { SpanDirection::Egress } else { SpanDirection::Ingress },
            granularity: Granularity::from_bits(bits >> 1),
            platform,
        };
        Ok((header, &buf[header.len()..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ii_encodes_to_the_golden_bytes_and_back() {
        let h = ErspanII { session: 0x226, vlan: VlanInfo::of_tag(Some([0x81, 0, 0xa0, 0x64])), index: 7 };
        let mut out = [0u8; 8];
        assert_eq!(h.encode(&mut out), Ok(8));
        // Ver 1, VLAN 100, COS 5, En 3, T 0, session 0x226 | reserved, index 7.
        assert_eq!(out, [0x10, 0x64, 0xba, 0x26, 0, 0, 0, 7]);
        assert_eq!(ErspanII::parse(&out), Ok((h, &[][..])));
    }

    #[test]
    fn type_iii_encodes_to_the_golden_bytes_and_back_with_the_capture_time() {
        let at = Duration::new(1_700_000_000, 123_456_789);
        let h = ErspanIII::captured(0x226, VlanInfo::default(), SpanDirection::Egress, 2, at);
        let mut out = [0u8; 20];
        assert_eq!(h.encode(&mut out), Ok(20));
        assert_eq!(
            out,
            [
                0x20, 0x00, 0x02, 0x26, // ver 2, session 0x226
                0x07, 0x5b, 0xcd, 0x15, // 123456789 ns
                0x00, 0x00, 0x80, 0x0d, // SGT 0 | P 1, FT 0, HW 0, D 1, Gra 2, O 1
                0x0c, 0x00, 0x00, 0x02, // Platf ID 3, port index 2
                0x65, 0x53, 0xf1, 0x00, // 1700000000 s
            ]
        );
        let (back, rest) = ErspanIII::parse(&out).unwrap();
        assert_eq!((back, rest.len()), (h, 0));
        assert_eq!(back.capture_time(), Some(at));
    }

    #[test]
    fn wrong_versions_and_every_truncation_are_rejected() {
        assert_eq!(
            ErspanII::parse(&[0x20, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::ErspanVersion { expected: 1, found: 2 })
        );
        assert_eq!(
            ErspanIII::parse(&[0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::ErspanVersion { expected: 2, found: 1 })
        );
        let mut full = [0u8; 20];
        ErspanIII::captured(1, VlanInfo::default(), SpanDirection::Ingress, 0, Duration::ZERO)
            .encode(&mut full)
            .unwrap();
        for cut in 0..20 {
            assert!(
                matches!(ErspanIII::parse(&full[..cut]), Err(WireError::TruncatedHeader { .. })),
                "{cut}"
            );
        }
        for cut in 0..8 {
            assert!(matches!(ErspanII::parse(&[0x10; 8][..cut]), Err(WireError::TruncatedHeader { .. })));
        }
    }

    #[test]
    fn the_session_of_a_key_is_its_low_10_bits_and_directions_map_to_the_d_bit() {
        assert_eq!(session_of(WorkloadKey(0x773f_9626)), 0x226);
        assert_eq!(SpanDirection::of(Direction::Outbound), SpanDirection::Egress);
        assert_eq!(SpanDirection::of(Direction::Inbound), SpanDirection::Ingress);
        assert_eq!(SpanDirection::of(Direction::Unknown), SpanDirection::Ingress);
    }
}
