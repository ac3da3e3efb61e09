//! VXLAN (RFC 7348): an 8-byte header after UDP (destination port 4789),
//! then the captured Ethernet frame.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The I flag must be set; the reserved bits are sent as zero and ignored on
//! receipt (RFC 7348 section 5), so extensions that use them (GBP, GPE) still
//! decode. VXLAN has no sequence number: a receiver cannot measure loss.
//!
//! The outer UDP source port carries the flow's entropy for ECMP (RFC 7348:
//! "a hash of fields from the inner packet"): [`source_port`].

use crate::error::WireError;
use crate::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetFrame};
use crate::key::WorkloadKey;

/// IANA's VXLAN port, the default destination port.
pub const PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// Largest VNI: 24 bits.
pub const MAX_VNI: u32 = 0x00ff_ffff;
const FLAG_I: u8 = 0x08;
/// The outer source ports used: the dynamic range RFC 7348 recommends.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// The VNI a workload's agent sends by default: the key's low 24 bits
/// (FNV-1a's low bits are as well mixed as its high ones).
pub const fn vni_of(key: WorkloadKey) -> u32 {
    key.0 & MAX_VNI
}

/// A VXLAN header to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanHeader {
    /// The VNI (24 bits; higher bits are refused).
    pub vni: u32,
}

impl VxlanHeader {
    /// Writes the 8 header bytes at the start of `out`; returns 8.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        if self.vni > MAX_VNI {
            return Err(WireError::TooLong { length: self.vni as usize, max: MAX_VNI as usize });
        }
        let available = out.len();
        let h =
            out.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall { needed: HEADER_LEN, available })?;
        h[0] = FLAG_I;
        h[1..4].fill(0);
        h[4..8].copy_from_slice(&(self.vni << 8).to_be_bytes());
        Ok(HEADER_LEN)
    }
}

/// A decoded VXLAN packet (starting at the VXLAN header, after UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<'a> {
    /// The VNI.
    pub vni: u32,
    /// The inner Ethernet frame.
    pub payload: &'a [u8],
}

impl<'a> VxlanPacket<'a> {
    /// Decodes the header; rejects a missing I flag and truncation. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let h: &[u8; HEADER_LEN] = buf.first_chunk().ok_or(WireError::TruncatedHeader {
            header: "VXLAN",
            needed: HEADER_LEN,
            available: buf.len(),
        })?;
        if h[0] & FLAG_I == 0 {
            return Err(WireError::VxlanNoVni(h[0]));
        }
        let vni = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) >> 8;
        Ok(Self { vni, payload: &buf[HEADER_LEN..] })
    }
}

/// FNV-1a, 32-bit, continued from `hash`.
fn fnv(mut hash: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The outer UDP source port for `frame`: a hash of its IP addresses,
/// protocol and (TCP, UDP, SCTP; first fragments only) ports, folded into
/// [`SOURCE_PORTS`]. Symmetric: both directions of a connection get the same
/// port, so an ECMP fabric takes one connection to one collector path and the
/// two directions stay in order with each other. Frames that are not IP
/// (ARP...) get the lowest port. No allocation, never panics.
pub fn source_port(frame: &[u8]) -> u16 {
    let span = u32::from(*SOURCE_PORTS.end() - *SOURCE_PORTS.start()) + 1;
    let Some((a, b, proto, ports)) = flow_of(frame) else { return *SOURCE_PORTS.start() };
    let (pa, pb) = ports;
    // Order the two ends so that the reverse direction hashes alike.
    let ((lo, plo), (hi, phi)) = if (a, pa) <= (b, pb) { ((a, pa), (b, pb)) } else { ((b, pb), (a, pa)) };
    let mut h = fnv(0x811c_9dc5, lo);
    h = fnv(h, &plo.to_be_bytes());
    h = fnv(h, hi);
    h = fnv(h, &phi.to_be_bytes());
    h = fnv(h, &[proto]);
    *SOURCE_PORTS.start() + (h % span) as u16
}

type Flow<'a> = (&'a [u8], &'a [u8], u8, (u16, u16));

/// Addresses, protocol and ports of an IP frame.
fn flow_of(frame: &[u8]) -> Option<Flow<'_>> {
    let eth = EthernetFrame::parse(frame).ok()?;
    let ip = eth.payload;
    let (src, dst, proto, l4) = match eth.ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            let fragment_offset = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
            let l4 = if fragment_offset == 0 { ip.get(ihl..) } else { None };
            (ip.get(12..16)?, ip.get(16..20)?, *ip.get(9)?, l4)
        }
        ETHERTYPE_IPV6 => (ip.get(8..24)?, ip.get(24..40)?, *ip.get(6)?, ip.get(40..)),
        _ => return None,
    };
    let ports = match (proto, l4) {
        (6 | 17 | 132, Some(l4)) if l4.len() >= 4 => {
            (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]))
        }
        _ => (0, 0),
    };
    Some((src, dst, proto, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_encodes_to_the_golden_bytes() {
        let mut out = [0xffu8; 8];
        assert_eq!(VxlanHeader { vni: 0x3f9626 }.encode(&mut out), Ok(8));
        assert_eq!(out, [0x08, 0, 0, 0, 0x3f, 0x96, 0x26, 0x00]);
    }

    #[test]
    fn the_vni_of_a_key_is_its_low_24_bits() {
        assert_eq!(vni_of(WorkloadKey(0x773f_9626)), 0x3f_9626);
    }

    #[test]
    fn encode_refuses_a_vni_over_24_bits_and_a_short_buffer() {
        assert!(VxlanHeader { vni: 0x0100_0000 }.encode(&mut [0; 8]).is_err());
        assert_eq!(
            VxlanHeader { vni: 1 }.encode(&mut [0; 7]),
            Err(WireError::BufferTooSmall { needed: 8, available: 7 })
        );
    }

    #[test]
    fn parse_reads_the_vni_ignores_reserved_bits_and_rejects_a_missing_i_flag() {
        let p = VxlanPacket::parse(&[0x88, 1, 2, 3, 0, 0, 5, 0xff, 0xab]).unwrap();
        assert_eq!((p.vni, p.payload), (5, &[0xab][..]));
        assert_eq!(VxlanPacket::parse(&[0x80, 0, 0, 0, 0, 0, 5, 0]), Err(WireError::VxlanNoVni(0x80)));
        for cut in 0..8 {
            assert!(matches!(
                VxlanPacket::parse(&[0x08; 8][..cut]),
                Err(WireError::TruncatedHeader { header: "VXLAN", needed: 8, .. })
            ));
        }
    }

    fn tcp_v4(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, 1, 1000)
            .write(&mut out, b"x")
            .unwrap();
        out
    }

    #[test]
    fn source_port_is_the_same_both_ways_differs_between_flows_and_stays_in_range() {
        let a = tcp_v4([198, 18, 1, 2], 40000, [198, 18, 1, 1], 8080);
        let b = tcp_v4([198, 18, 1, 1], 8080, [198, 18, 1, 2], 40000);
        assert_eq!(source_port(&a), source_port(&b));
        let ports: std::collections::HashSet<u16> =
            (0..64).map(|i| source_port(&tcp_v4([198, 18, 1, 2], 40000 + i, [198, 18, 1, 1], 80))).collect();
        assert!(ports.len() > 50, "64 flows spread over {} ports", ports.len());
        assert!(ports.iter().all(|p| SOURCE_PORTS.contains(p)));
        let v6 = crate::test_frames::udp_over_ipv6(5353, 53, b"q");
        assert!(SOURCE_PORTS.contains(&source_port(&v6)));
        assert_eq!(source_port(&[0u8; 3]), *SOURCE_PORTS.start(), "not IP: the first port");
    }
}
