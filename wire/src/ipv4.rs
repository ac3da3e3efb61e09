//! The IPv4 header (RFC 791): the header without options a sender that
//! builds its own frames writes (the agent's TX ring, replay's synthetic
//! frames, the bench tools), the view a receiver needs to find the payload,
//! and the fields a segmenter rewrites in place ([`Ipv4HeaderMut`]).

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
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;
/// An option with this bit in its type is copied into every fragment (RFC 791).
const OPTION_COPIED: u8 = 0x80;
const OPTION_END_OF_LIST: u8 = 0;
const OPTION_NO_OPERATION: u8 = 1;

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
    /// Identification (what reassembly tells fragments apart by).
    pub identification: u16,
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
            identification: u16::from_be_bytes([h[4], h[5]]),
            payload: &buf[header_len..end],
        })
    }
}

/// A header in a buffer, its fields rewritten in place: what a segmenter or
/// a fragmenter changes in a copy of a captured header.
#[derive(Debug)]
pub struct Ipv4HeaderMut<'a>(&'a mut [u8]);

impl<'a> Ipv4HeaderMut<'a> {
    /// The header at the start of `buf`, whose IHL says how long it is.
    /// Rejects a buffer shorter than 20 bytes or than that length.
    pub fn new(buf: &'a mut [u8]) -> Result<Self, WireError> {
        let available = buf.len();
        let truncated = |needed| WireError::TruncatedHeader { header: "IPv4", needed, available };
        let ihl = usize::from(buf.first().ok_or(truncated(HEADER_LEN))? & 0x0f) * 4;
        let needed = ihl.max(HEADER_LEN);
        if available < needed {
            return Err(truncated(needed));
        }
        Ok(Self(buf))
    }

    /// Sets IHL (version 4 kept) to `header_len` bytes, a multiple of 4 from 20 to 60.
    pub fn set_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len.is_multiple_of(4) && (HEADER_LEN..=60).contains(&header_len));
        self.0[0] = 0x40 | (header_len / 4) as u8;
    }

    /// Sets the total length (header and payload).
    pub fn set_total_len(&mut self, total_len: u16) {
        self.0[2..4].copy_from_slice(&total_len.to_be_bytes());
    }

    /// Sets the identification.
    pub fn set_identification(&mut self, identification: u16) {
        self.0[4..6].copy_from_slice(&identification.to_be_bytes());
    }

    /// Makes the packet a fragment at `offset` bytes (a multiple of 8) of
    /// the original payload, with MF as `more` and DF clear (a fragment must
    /// be allowed to exist).
    pub fn set_fragment(&mut self, more: bool, offset: usize) {
        debug_assert!(offset.is_multiple_of(8));
        let more = if more { FLAG_MORE_FRAGMENTS } else { 0 };
        let field = more | ((offset / 8) as u16 & FRAGMENT_OFFSET_MASK);
        self.0[6..8].copy_from_slice(&field.to_be_bytes());
    }

    /// Computes the header checksum over the header as IHL now says, and writes it.
    pub fn fill_checksum(&mut self) {
        let header_len = usize::from(self.0[0] & 0x0f) * 4;
        self.0[10..12].fill(0);
        let sum = internet_checksum(&[&self.0[..header_len]]);
        self.0[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The options of a header (the bytes between 20 and IHL), one slice per
/// option, up to End of Option List; a malformed length ends the walk.
pub fn options(options: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = match *options.get(at)? {
            OPTION_END_OF_LIST => return None,
            OPTION_NO_OPERATION => 1,
            _ => match options.get(at + 1) {
                Some(&l) if l >= 2 && at + usize::from(l) <= options.len() => usize::from(l),
                _ => return None,
            },
        };
        let option = &options[at..at + len];
        at += len;
        Some(option)
    })
}

/// Whether an option (from [`options`]) goes into every fragment, not only the first.
pub fn is_copied_into_fragments(option: &[u8]) -> bool {
    option.first().is_some_and(|kind| kind & OPTION_COPIED != 0)
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

    #[test]
    fn parse_reads_identification_and_fragment_fields() {
        let mut packet = [0u8; 20];
        GRE_TO_COLLECTOR.encode(&mut packet).unwrap();
        let p = Ipv4Packet::parse(&packet).unwrap();
        assert_eq!((p.identification, p.fragment), (0x1234, false));
        for fragment in [0x2000u16, 0x00b9, 0x4001] {
            packet[6..8].copy_from_slice(&fragment.to_be_bytes()); // MF; offset 185 * 8; DF and offset 8
            assert!(Ipv4Packet::parse(&packet).unwrap().fragment, "{fragment:#06x}");
        }
        packet[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        assert!(!Ipv4Packet::parse(&packet).unwrap().fragment, "DF alone");
    }

    #[test]
    fn rewritten_fields_and_checksum_match_etherparse() {
        // A header with 8 bytes of options, cut to its first (copied) option.
        let options = [0x94, 4, 0, 0, 1, 7, 7, 0];
        let mut packet = [0u8; 28];
        GRE_TO_COLLECTOR.encode(&mut packet).unwrap();
        packet[20..].copy_from_slice(&options);
        let mut h = Ipv4HeaderMut::new(&mut packet).unwrap();
        h.set_header_len(24);
        h.set_total_len(24 + 8);
        h.set_identification(7);
        h.set_fragment(true, 2960);
        h.fill_checksum();
        let (read, _) = etherparse::Ipv4Header::from_slice(&packet).unwrap();
        assert_eq!((read.options.as_slice(), read.total_len, read.identification), (&options[..4], 32, 7));
        assert!(read.more_fragments && !read.dont_fragment);
        assert_eq!(read.fragment_offset.byte_offset(), 2960);
        assert_eq!(read.header_checksum, read.calc_header_checksum());
        assert!(Ipv4HeaderMut::new(&mut packet[..23]).is_err(), "IHL 6 needs 24 bytes");
    }

    #[test]
    fn options_walk_stops_at_the_end_of_list_and_at_a_malformed_length() {
        let walk = |o: &[u8]| options(o).map(<[u8]>::to_vec).collect::<Vec<_>>();
        let all = [0x94, 4, 0, 0, 1, 7, 3, 9, 0, 0x83, 3];
        assert_eq!(walk(&all), [vec![0x94, 4, 0, 0], vec![1], vec![7, 3, 9]]);
        assert_eq!(walk(&[0x83, 1, 0, 0]), Vec::<Vec<u8>>::new(), "length below 2");
        assert_eq!(walk(&[1, 0x83, 5, 0]), [vec![1]], "length past the end");
        let copied: Vec<_> = options(&all).filter(|o| is_copied_into_fragments(o)).collect();
        assert_eq!(copied, [&[0x94, 4, 0, 0][..]]);
    }
}
