//! The four formats an agent sends a captured frame in, and what a receiver
//! makes of any of them: [`Encapsulation`] writes the header that goes before
//! the frame (for the raw socket, or after the outer IP header in the TX
//! ring), [`Decapsulated`] reads one back.
//!
//! | format | IP protocol | header before the frame | stream id | sequence |
//! |---|---|---|---|---|
//! | GRE (`standard`/`netis`) | 47 | GRE, 12 / 8 bytes | key / keybit | standard: GRE S |
//! | VXLAN | 17 | UDP (8) + VXLAN (8) | VNI | none |
//! | ERSPAN II | 47 | GRE with S (8) + ERSPAN II (8) | session ID | GRE S |
//! | ERSPAN III | 47 | GRE with S (8) + ERSPAN III (12) + Platf ID 3 (8) | session ID | GRE S |

use std::time::Duration;

use crate::error::WireError;
use crate::erspan::{self, ErspanII, ErspanIII, SpanDirection, VlanInfo};
use crate::gre::{GreHeader, GrePacket, PROTO_TEB};
use crate::key::WorkloadKey;
use crate::profile::{Direction, GreProfile, NetisKey};
use crate::udp::UdpHeader;
use crate::vxlan::{self, VxlanHeader, VxlanPacket};

/// The longest header [`Encapsulation::write_header`] writes (ERSPAN III).
pub const MAX_HEADER_LEN: usize = 8 + erspan::TYPE_III_LEN + erspan::PLATFORM_LEN;
pub use crate::ipv4::IPPROTO_UDP;

/// Which format, without its parameters (the flag's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encap {
    /// GRE, protocol 0x6558 (the profiles of [`GreProfile`]).
    #[default]
    Gre,
    /// VXLAN over UDP.
    Vxlan,
    /// ERSPAN type II.
    ErspanII,
    /// ERSPAN type III.
    ErspanIII,
}

impl Encap {
    /// The id a stream of this format carries for `key` by default (GRE:
    /// the key, or the netis keybit; VXLAN: the VNI; ERSPAN: the session).
    pub const fn stream_id(self, key: WorkloadKey, profile: GreProfile) -> u32 {
        match self {
            Encap::Gre => key.as_sent(profile).0,
            Encap::Vxlan => vxlan::vni_of(key),
            Encap::ErspanII | Encap::ErspanIII => erspan::session_of(key) as u32,
        }
    }

    /// The format and profile a receiver classified a stream as.
    pub const fn of_received(profile: bpc_contract::stream::ReceivedProfile) -> (Encap, GreProfile) {
        use bpc_contract::stream::ReceivedProfile as P;
        match profile {
            P::Standard | P::Anonymous => (Encap::Gre, GreProfile::Standard),
            P::Netis => (Encap::Gre, GreProfile::Netis),
            P::Vxlan => (Encap::Vxlan, GreProfile::Standard),
            P::ErspanIi => (Encap::ErspanII, GreProfile::Standard),
            P::ErspanIii => (Encap::ErspanIII, GreProfile::Standard),
        }
    }

    /// The id a stream of `received` profile carries for `key` (the
    /// receiver's labels and `--expect workload=` match streams by it).
    pub const fn received_id(key: WorkloadKey, received: bpc_contract::stream::ReceivedProfile) -> u32 {
        let (encap, profile) = Encap::of_received(received);
        encap.stream_id(key, profile)
    }

    /// Whether streams of this format carry sequence numbers (so a receiver measures loss).
    pub const fn has_sequence(self, profile: GreProfile) -> bool {
        !matches!((self, profile), (Encap::Vxlan, _) | (Encap::Gre, GreProfile::Netis))
    }
}

impl From<bpc_contract::Encap> for Encap {
    fn from(e: bpc_contract::Encap) -> Self {
        match e {
            bpc_contract::Encap::Gre => Encap::Gre,
            bpc_contract::Encap::Vxlan => Encap::Vxlan,
            bpc_contract::Encap::ErspanIi => Encap::ErspanII,
            bpc_contract::Encap::ErspanIii => Encap::ErspanIII,
        }
    }
}

impl From<Encap> for bpc_contract::Encap {
    fn from(e: Encap) -> Self {
        match e {
            Encap::Gre => bpc_contract::Encap::Gre,
            Encap::Vxlan => bpc_contract::Encap::Vxlan,
            Encap::ErspanII => bpc_contract::Encap::ErspanIi,
            Encap::ErspanIII => bpc_contract::Encap::ErspanIii,
        }
    }
}

/// A format with everything fixed for the agent's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encapsulation {
    /// GRE: the profile and the key (standard: the key; netis: the keybit).
    Gre {
        /// Header layout.
        profile: GreProfile,
        /// Key or keybit.
        key: u32,
    },
    /// VXLAN to `port`.
    Vxlan {
        /// VNI (24 bits).
        vni: u32,
        /// Destination UDP port.
        port: u16,
    },
    /// ERSPAN type II.
    ErspanII {
        /// Session ID (10 bits).
        session: u16,
        /// Index (20 bits): the capture interface's ifindex.
        index: u32,
    },
    /// ERSPAN type III, IEEE 1588 timestamps.
    ErspanIII {
        /// Session ID (10 bits).
        session: u16,
        /// Port index (14 bits): the capture interface's ifindex.
        port_index: u16,
    },
}

/// What a header needs to know of the frame it goes before.
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo<'a> {
    /// The frame's first bytes (at least the MAC addresses, for the
    /// direction, and the IP and transport headers, for VXLAN's source port).
    pub head: &'a [u8],
    /// The whole frame's length as sent (with a re-inserted VLAN tag).
    pub len: usize,
    /// The sequence number of this packet.
    pub sequence: u32,
    /// Relative to the capturing pod.
    pub direction: Direction,
    /// The 802.1Q tag put back into the frame, if any.
    pub vlan: Option<[u8; 4]>,
    /// When the kernel captured it, since the Unix epoch.
    pub captured: Duration,
}

impl Encapsulation {
    /// The format.
    pub const fn encap(&self) -> Encap {
        match self {
            Encapsulation::Gre { .. } => Encap::Gre,
            Encapsulation::Vxlan { .. } => Encap::Vxlan,
            Encapsulation::ErspanII { .. } => Encap::ErspanII,
            Encapsulation::ErspanIII { .. } => Encap::ErspanIII,
        }
    }

    /// Bytes between the outer IP header and the frame.
    pub const fn header_len(&self) -> usize {
        match self {
            Encapsulation::Gre { profile, .. } => profile.header_len(),
            Encapsulation::Vxlan { .. } => crate::udp::HEADER_LEN + vxlan::HEADER_LEN,
            Encapsulation::ErspanII { .. } => 8 + erspan::TYPE_II_LEN,
            Encapsulation::ErspanIII { .. } => MAX_HEADER_LEN,
        }
    }

    /// The outer IP header's protocol: GRE (47) or UDP (17).
    pub const fn ip_protocol(&self) -> u8 {
        match self {
            Encapsulation::Vxlan { .. } => IPPROTO_UDP,
            _ => crate::IPPROTO_GRE,
        }
    }

    /// Whether the header needs the frame's direction.
    pub const fn uses_direction(&self) -> bool {
        matches!(
            self,
            Encapsulation::Gre { profile: GreProfile::Netis, .. } | Encapsulation::ErspanIII { .. }
        )
    }

    /// Writes the header for `frame` into `out` (at least [`Encapsulation::header_len`]
    /// bytes); returns its length. VXLAN's UDP checksum is left 0 (IPv4
    /// allows it; over IPv6 the sender has the kernel fill it in).
    pub fn write_header(&self, out: &mut [u8], frame: &FrameInfo<'_>) -> Result<usize, WireError> {
        let erspan_gre =
            |protocol| GreHeader { protocol, checksum: false, key: None, sequence: Some(frame.sequence) };
        match *self {
            Encapsulation::Gre { profile, key } => {
                profile.write_header(out, key, frame.sequence, frame.direction)
            }
            Encapsulation::Vxlan { vni, port } => {
                let udp = UdpHeader {
                    source_port: vxlan::source_port(frame.head),
                    destination_port: port,
                    payload_len: vxlan::HEADER_LEN + frame.len,
                };
                let at = udp.encode(out)?;
                Ok(at + VxlanHeader { vni }.encode(out.get_mut(at..).unwrap_or_default())?)
            }
            Encapsulation::ErspanII { session, index } => {
                let at = erspan_gre(erspan::PROTO_ERSPAN_II).encode_header(&[], out)?;
                let h = ErspanII { session, vlan: VlanInfo::of_tag(frame.vlan), index };
                Ok(at + h.encode(out.get_mut(at..).unwrap_or_default())?)
            }
            Encapsulation::ErspanIII { session, port_index } => {
                let at = erspan_gre(erspan::PROTO_ERSPAN_III).encode_header(&[], out)?;
                let mut vlan = VlanInfo::of_tag(frame.vlan);
                vlan.en = 0; // BSO in type III: a good frame
                let h = ErspanIII::captured(
                    session,
                    vlan,
                    SpanDirection::of(frame.direction),
                    port_index,
                    frame.captured,
                );
                Ok(at + h.encode(out.get_mut(at..).unwrap_or_default())?)
            }
        }
    }
}

/// How a received packet is accounted: its format and stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// GRE with key and sequence.
    Standard,
    /// GRE with key only (pktminerg): `id` is the keybit.
    Netis,
    /// GRE without key.
    Anonymous,
    /// VXLAN: `id` is the VNI.
    Vxlan,
    /// ERSPAN II: `id` is the session.
    ErspanII,
    /// ERSPAN III: `id` is the session.
    ErspanIII,
}

impl From<StreamKind> for bpc_contract::stream::ReceivedProfile {
    fn from(k: StreamKind) -> Self {
        use bpc_contract::stream::ReceivedProfile as P;
        match k {
            StreamKind::Standard => P::Standard,
            StreamKind::Netis => P::Netis,
            StreamKind::Anonymous => P::Anonymous,
            StreamKind::Vxlan => P::Vxlan,
            StreamKind::ErspanII => P::ErspanIi,
            StreamKind::ErspanIII => P::ErspanIii,
        }
    }
}

/// A received packet of any format, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// The format.
    pub kind: StreamKind,
    /// Key, keybit, VNI or session ID.
    pub id: u32,
    /// The sequence number, where the format has one.
    pub sequence: Option<u32>,
    /// Netis: from the key; ERSPAN III: from D; otherwise unknown.
    pub direction: Direction,
    /// ERSPAN III: the capture time (modulo 2^32 s).
    pub captured: Option<Duration>,
    /// The inner Ethernet frame.
    pub frame: &'a [u8],
}

impl<'a> Decapsulated<'a> {
    /// Decodes a GRE packet (from its GRE header): GRE over Ethernet (every
    /// C/K/S shape) or ERSPAN II/III. Other protocol types are [`WireError::NotEthernet`].
    pub fn from_gre(buf: &'a [u8]) -> Result<Self, WireError> {
        let gre = GrePacket::parse(buf)?;
        let base = Decapsulated {
            kind: StreamKind::Anonymous,
            id: 0,
            sequence: gre.sequence,
            direction: Direction::Unknown,
            captured: None,
            frame: gre.payload,
        };
        match gre.protocol {
            PROTO_TEB => Ok(match (gre.key, gre.sequence) {
                (Some(key), Some(_)) => Decapsulated { kind: StreamKind::Standard, id: key, ..base },
                (Some(key), None) => {
                    let nk = NetisKey::from_key(key);
                    Decapsulated { kind: StreamKind::Netis, id: nk.keybit, direction: nk.direction, ..base }
                }
                (None, _) => base,
            }),
            erspan::PROTO_ERSPAN_II => {
                let (h, frame) = ErspanII::parse(gre.payload)?;
                Ok(Decapsulated { kind: StreamKind::ErspanII, id: u32::from(h.session), frame, ..base })
            }
            erspan::PROTO_ERSPAN_III => {
                let (h, frame) = ErspanIII::parse(gre.payload)?;
                let direction = match h.direction {
                    SpanDirection::Egress => Direction::Outbound,
                    SpanDirection::Ingress => Direction::Inbound,
                };
                Ok(Decapsulated {
                    kind: StreamKind::ErspanIII,
                    id: u32::from(h.session),
                    direction,
                    captured: h.capture_time(),
                    frame,
                    ..base
                })
            }
            other => Err(WireError::NotEthernet(other)),
        }
    }

    /// Decodes a VXLAN packet (the UDP payload).
    pub fn from_vxlan(buf: &'a [u8]) -> Result<Self, WireError> {
        let v = VxlanPacket::parse(buf)?;
        Ok(Decapsulated {
            kind: StreamKind::Vxlan,
            id: v.vni,
            sequence: None,
            direction: Direction::Unknown,
            captured: None,
            frame: v.payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: WorkloadKey = WorkloadKey(0x773f_9626);

    fn info(frame: &[u8]) -> FrameInfo<'_> {
        FrameInfo {
            head: frame,
            len: frame.len(),
            sequence: 7,
            direction: Direction::Outbound,
            vlan: None,
            captured: Duration::new(1_700_000_000, 5),
        }
    }

    #[test]
    fn every_format_decodes_back_to_its_stream_id_sequence_and_frame() {
        let frame = [0xaau8; 60];
        let cases = [
            (
                Encapsulation::Gre { profile: GreProfile::Standard, key: KEY.0 },
                StreamKind::Standard,
                KEY.0,
                Some(7),
            ),
            (Encapsulation::Vxlan { vni: 0x3f9626, port: 4789 }, StreamKind::Vxlan, 0x3f9626, None),
            (Encapsulation::ErspanII { session: 0x226, index: 3 }, StreamKind::ErspanII, 0x226, Some(7)),
            (
                Encapsulation::ErspanIII { session: 0x226, port_index: 3 },
                StreamKind::ErspanIII,
                0x226,
                Some(7),
            ),
        ];
        for (e, kind, id, sequence) in cases {
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = e.write_header(&mut out, &info(&frame)).unwrap();
            assert_eq!(n, e.header_len(), "{e:?}");
            let packet = [&out[..n], &frame[..]].concat();
            let d = match e {
                Encapsulation::Vxlan { .. } => Decapsulated::from_vxlan(&packet[8..]).unwrap(),
                _ => Decapsulated::from_gre(&packet).unwrap(),
            };
            assert_eq!((d.kind, d.id, d.sequence, d.frame), (kind, id, sequence, &frame[..]), "{e:?}");
        }
    }

    #[test]
    fn stream_ids_follow_the_documented_mapping_of_the_key() {
        assert_eq!(Encap::Gre.stream_id(KEY, GreProfile::Standard), 0x773f_9626);
        assert_eq!(Encap::Gre.stream_id(KEY, GreProfile::Netis), 0x073f_9626);
        assert_eq!(Encap::Vxlan.stream_id(KEY, GreProfile::Standard), 0x3f_9626);
        assert_eq!(Encap::ErspanII.stream_id(KEY, GreProfile::Standard), 0x226);
        assert!(!Encap::Vxlan.has_sequence(GreProfile::Standard));
        assert!(Encap::ErspanIII.has_sequence(GreProfile::Standard));
    }

    #[test]
    fn other_gre_protocol_types_are_not_ethernet() {
        assert_eq!(Decapsulated::from_gre(&[0, 0, 0x08, 0x00, 0x45]), Err(WireError::NotEthernet(0x0800)));
    }
}
