//! The IPv4 header (RFC 791) without options: what a sender that builds its
//! own frames writes (the agent's TX ring, replay's synthetic frames, the
//! bench tools), and the view a receiver needs to find the payload.

use std::net::Ipv4Addr;

use crate::checksum::internet_checksum;
use crate::error::{WireError, fixed_part};

/// Length of a header without options (IHL 5).
pub const HEADER_LEN: usize = 20;
/// The IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
const FLAG_DONT_FRAGMENT: u16 = 0x4000;
/// MF and the fragment offset: either set makes a packet a fragment.
const MORE_FRAGMENTS_AND_OFFSET: u16 = 0x3fff;

/// An IPv4 header to encode: version 4, IHL 5, no options, not a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Header {
    /// Source address.
    pub source: Ipv4Addr,
    /// Destination address.
    pub destination: Ipv4Addr,
    /// Protocol of the payload ([`crate::IPPROTO_GRE`], [`IPPROTO_UDP`], ...).
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification (what reassembly tells fragments apart by).
    pub identification: u16,
    /// DF: routers must not fragment it.
    pub dont_fragment: bool,
    /// Bytes after the header.
    pub payload_len: usize,
}

impl Ipv4Header {
    /// Writes the 20 header bytes, checksum included, at the start of `out`;
    /// returns 20. The total length must fit the 16-bit field.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let total = HEADER_LEN + self.payload_len;
        let total = u16::try_from(total).map_err(|_| WireError::TooLong { length: total, max: 0xffff })?;
        let available = out.len();
        let h =
            out.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall { needed: HEADER_LEN, available })?;
        let flags = if self.dont_fragment { FLAG_DONT_FRAGMENT } else { 0 };
        h[0] = 0x45;
        h[1] = 0;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.identification.to_be_bytes());
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].fill(0);
        h[12..16].copy_from_slice(&self.source.octets());
        h[16..20].copy_from_slice(&self.destination.octets());
        let sum = internet_checksum(&[h]);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

/// A decoded IPv4 packet: the fields a receiver uses and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    /// Header length from IHL, options included.
    pub header_len: usize,
    /// The total length field (header and payload as sent).
    pub total_len: u16,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Source address.
    pub source: Ipv4Addr,
    /// Destination address.
    pub destination: Ipv4Addr,
    /// A fragment (MF set or an offset): the payload is not a whole
    /// upper-layer packet, and only the first fragment starts with its header.
    pub fragment: bool,
    /// The payload: up to the total length, or to the end of a cut packet.
    pub payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Whether the whole packet its total length announces is here (a
    /// capture's snap length or a sender's truncation cuts packets short).
    pub fn is_whole(&self) -> bool {
        self.header_len + self.payload.len() == usize::from(self.total_len)
    }

    /// Decodes the header. Rejects a version other than 4, an IHL below 5
    /// and a header longer than the input; does not verify the checksum
    /// (the kernel has, for what a socket delivers). Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let h: &[u8; HEADER_LEN] = fixed_part("IPv4", buf)?;
        if h[0] >> 4 != 4 {
            return Err(WireError::NotIpv4(h[0] >> 4));
        }
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if header_len < HEADER_LEN {
            return Err(WireError::Ipv4HeaderLength(header_len));
        }
        if buf.len() < header_len {
            return Err(WireError::TruncatedHeader {
                header: "IPv4",
                needed: header_len,
                available: buf.len(),
            });
        }
        let total_len = u16::from_be_bytes([h[2], h[3]]);
        // Ethernet padding after the packet is not payload; a cut packet keeps what there is.
        let end = usize::from(total_len).clamp(header_len, buf.len());
        Ok(Self {
            header_len,
            total_len,
            protocol: h[9],
            source: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            destination: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            fragment: u16::from_be_bytes([h[6], h[7]]) & MORE_FRAGMENTS_AND_OFFSET != 0,
            payload: &buf[header_len..end],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRE_TO_COLLECTOR: Ipv4Header = Ipv4Header {
        source: Ipv4Addr::new(198, 18, 2, 1),
        destination: Ipv4Addr::new(198, 18, 2, 2),
        protocol: crate::IPPROTO_GRE,
        ttl: 64,
        identification: 0x1234,
        dont_fragment: false,
        payload_len: 100,
    };

    #[test]
    fn header_encodes_to_the_golden_bytes_with_a_checksum_that_verifies() {
        let mut out = [0u8; 20];
        assert_eq!(GRE_TO_COLLECTOR.encode(&mut out), Ok(20));
        let golden = [
            0x45, 0x00, 0x00, 0x78, 0x12, 0x34, 0x00, 0x00, 0x40, 0x2f, 0x00, 0x00, 198, 18, 2, 1, 198, 18,
            2, 2,
        ];
        assert_eq!(out[..10], golden[..10]);
        assert_eq!(out[12..], golden[12..]);
        assert_eq!(internet_checksum(&[&out]), 0, "a header with its checksum sums to zero");
    }

    #[test]
    fn header_matches_etherparse_including_dont_fragment() {
        for dont_fragment in [false, true] {
            let h = Ipv4Header { dont_fragment, protocol: IPPROTO_UDP, ..GRE_TO_COLLECTOR };
            let mut ours = [0u8; 20];
            h.encode(&mut ours).unwrap();
            let mut theirs = etherparse::Ipv4Header::new(
                100,
                64,
                etherparse::IpNumber::UDP,
                [198, 18, 2, 1],
                [198, 18, 2, 2],
            )
            .unwrap();
            theirs.identification = 0x1234;
            theirs.dont_fragment = dont_fragment;
            theirs.header_checksum = theirs.calc_header_checksum();
            assert_eq!(ours[..], theirs.to_bytes()[..], "DF {dont_fragment}");
        }
    }

    #[test]
    fn header_refuses_a_total_length_over_65535_and_a_short_buffer() {
        let big = Ipv4Header { payload_len: 65516, ..GRE_TO_COLLECTOR };
        assert_eq!(big.encode(&mut [0; 20]), Err(WireError::TooLong { length: 65536, max: 65535 }));
        assert!(Ipv4Header { payload_len: 65515, ..big }.encode(&mut [0; 20]).is_ok());
        assert_eq!(
            GRE_TO_COLLECTOR.encode(&mut [0; 19]),
            Err(WireError::BufferTooSmall { needed: 20, available: 19 })
        );
    }

    #[test]
    fn parse_reads_back_what_encode_wrote_and_stops_at_the_total_length() {
        let mut packet = [0xeeu8; 20 + 100 + 6];
        GRE_TO_COLLECTOR.encode(&mut packet).unwrap();
        let p = Ipv4Packet::parse(&packet).unwrap();
        assert_eq!((p.header_len, p.total_len, p.protocol), (20, 120, 47));
        assert_eq!((p.source, p.destination), (GRE_TO_COLLECTOR.source, GRE_TO_COLLECTOR.destination));
        assert_eq!(p.payload.len(), 100, "the 6 bytes of padding are not payload");
        assert_eq!(
            Ipv4Packet::parse(&packet[..50]).unwrap().payload.len(),
            30,
            "a cut packet keeps what it has"
        );
    }

    #[test]
    fn parse_skips_options_by_the_header_length() {
        let mut packet = [0u8; 24 + 4];
        packet[0] = 0x46;
        packet[2..4].copy_from_slice(&28u16.to_be_bytes());
        packet[24..].copy_from_slice(b"GRE!");
        let p = Ipv4Packet::parse(&packet).unwrap();
        assert_eq!((p.header_len, p.payload), (24, &b"GRE!"[..]));
    }

    #[test]
    fn parse_rejects_other_versions_short_ihl_and_truncation_and_never_panics() {
        let mut packet = [0u8; 24];
        packet[0] = 0x65;
        assert_eq!(Ipv4Packet::parse(&packet), Err(WireError::NotIpv4(6)));
        packet[0] = 0x44;
        assert_eq!(Ipv4Packet::parse(&packet), Err(WireError::Ipv4HeaderLength(16)));
        packet[0] = 0x47;
        assert_eq!(
            Ipv4Packet::parse(&packet),
            Err(WireError::TruncatedHeader { header: "IPv4", needed: 28, available: 24 })
        );
        for cut in 0..20 {
            assert_eq!(
                Ipv4Packet::parse(&packet[..cut]),
                Err(WireError::TruncatedHeader { header: "IPv4", needed: 20, available: cut })
            );
        }
        // Total length below the header's: an empty payload, not a panic.
        packet[0] = 0x45;
        assert_eq!(Ipv4Packet::parse(&packet).unwrap().payload, &[] as &[u8]);
    }
}
