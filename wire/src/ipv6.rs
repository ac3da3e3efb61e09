//! The IPv6 header (RFC 8200) and its extension headers: the view a
//! receiver needs to find a captured packet's transport header
//! ([`Ipv6Packet`]), and what the agent's segmenter reads and rewrites (the
//! fixed header, the end of the unfragmentable part, the payload length, the
//! Fragment header a fragmenter inserts).
//!
//! ```text
//! | version (4) | class, flow (28) | payload length (16) | next header (8) | hop limit (8) |
//! | source (128) | destination (128) | [extension header]* | upper-layer header ...
//! ```

use std::net::Ipv6Addr;

use crate::error::{WireError, fixed_part};

/// Length of the fixed header (its payload length does not count it).
pub const HEADER_LEN: usize = 40;
/// Length of a Fragment extension header.
pub const FRAGMENT_LEN: usize = 8;
/// Offset of the Next Header field in the fixed header.
pub const NEXT_HEADER_AT: usize = 6;
/// Next Header: Hop-by-Hop Options (only directly after the fixed header).
pub const NEXT_HOP_BY_HOP: u8 = 0;
/// Next Header: Routing.
pub const NEXT_ROUTING: u8 = 43;
/// Next Header: Fragment.
pub const NEXT_FRAGMENT: u8 = 44;
/// Next Header: Destination Options.
pub const NEXT_DESTINATION_OPTIONS: u8 = 60;
/// Next Header: Authentication header (RFC 4302), an extension of IPv4 too.
pub const NEXT_AUTH: u8 = 51;

/// A decoded IPv6 packet: addresses, the upper-layer protocol after the
/// extension headers, and a borrowed upper-layer payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<'a> {
    /// Source address.
    pub source: Ipv6Addr,
    /// Destination address.
    pub destination: Ipv6Addr,
    /// The upper-layer protocol: the last extension header's next header.
    pub protocol: u8,
    /// A Fragment header with an offset or the M flag: the payload is not
    /// a whole upper-layer packet.
    pub fragment: bool,
    /// Everything after the extension headers, up to the payload length.
    pub payload: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    /// Decodes the fixed header and walks the extension headers. Rejects a
    /// version other than 6, a packet shorter than its payload length (a
    /// payload length of 0, a jumbogram, takes the rest of the input), a
    /// hop-by-hop header anywhere but first, and a cut extension header.
    /// Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let h: &[u8; HEADER_LEN] = fixed_part("IPv6", buf)?;
        if h[0] >> 4 != 6 {
            return Err(WireError::NotIpv6(h[0] >> 4));
        }
        let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let end = if payload_len == 0 { buf.len() } else { HEADER_LEN + payload_len };
        let mut rest = buf.get(HEADER_LEN..end).ok_or(WireError::TruncatedHeader {
            header: "IPv6",
            needed: end,
            available: buf.len(),
        })?;
        let mut protocol = h[6];
        let mut fragment = false;
        let mut first = true;
        loop {
            let len = match protocol {
                NEXT_HOP_BY_HOP if !first => {
                    return Err(WireError::IpExtensionHeader("hop-by-hop options after another header"));
                }
                NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DESTINATION_OPTIONS => match rest {
                    [_, units, ..] => (usize::from(*units) + 1) * 8,
                    _ => 8,
                },
                NEXT_FRAGMENT => {
                    if let [_, _, hi, lo, ..] = rest {
                        // The offset (13 bits) and M (the low bit): either makes a fragment.
                        fragment |= u16::from_be_bytes([*hi, *lo]) & 0xfff9 != 0;
                    }
                    FRAGMENT_LEN
                }
                NEXT_AUTH => auth_header_len(rest)?,
                _ => break,
            };
            let header = rest.get(..len).ok_or(WireError::TruncatedHeader {
                header: "IPv6 extension",
                needed: len,
                available: rest.len(),
            })?;
            protocol = header[0];
            rest = &rest[len..];
            first = false;
        }
        Ok(Self {
            source: Ipv6Addr::from(<[u8; 16]>::try_from(&h[8..24]).expect("16 bytes")),
            destination: Ipv6Addr::from(<[u8; 16]>::try_from(&h[24..40]).expect("16 bytes")),
            protocol,
            fragment,
            payload: rest,
        })
    }
}

/// The length of the authentication header at the start of `rest`
/// (`(payload length + 2)` 32-bit words), as IPv4 and IPv6 both carry it.
pub fn auth_header_len(rest: &[u8]) -> Result<usize, WireError> {
    match rest {
        [_, 0, ..] => Err(WireError::IpExtensionHeader("authentication header of length 0")),
        [_, words, ..] => Ok((usize::from(*words) + 2) * 4),
        _ => {
            Err(WireError::TruncatedHeader { header: "IP authentication", needed: 2, available: rest.len() })
        }
    }
}

/// The decoded fixed header, extension headers not walked (what a
/// segmenter reads before it walks them with [`ExtensionHeaders::walk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader<'a> {
    /// The payload length field: bytes after the fixed header (0 for a jumbogram).
    pub payload_len: u16,
    /// The header after the fixed one.
    pub next_header: u8,
    /// Source address.
    pub source: Ipv6Addr,
    /// Destination address.
    pub destination: Ipv6Addr,
    /// Everything after the fixed header, as it is in the input (any
    /// Ethernet padding included; compare with `payload_len`).
    pub payload: &'a [u8],
}

impl<'a> FixedHeader<'a> {
    /// Decodes the fixed header. Rejects a version other than 6 and an
    /// input shorter than 40 bytes. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let (h, payload) = buf.split_first_chunk::<HEADER_LEN>().ok_or(WireError::TruncatedHeader {
            header: "IPv6",
            needed: HEADER_LEN,
            available: buf.len(),
        })?;
        if h[0] >> 4 != 6 {
            return Err(WireError::NotIpv6(h[0] >> 4));
        }
        let address = |at: usize| {
            let octets: [u8; 16] = h[at..at + 16].try_into().expect("16 bytes");
            Ipv6Addr::from(octets)
        };
        Ok(Self {
            payload_len: u16::from_be_bytes([h[4], h[5]]),
            next_header: h[NEXT_HEADER_AT],
            source: address(8),
            destination: address(24),
            payload,
        })
    }
}

/// Where the extension headers of a packet end (RFC 8200 4.1 and 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionHeaders {
    /// The first header that is not Hop-by-Hop, Routing or Destination
    /// Options: the upper layer (TCP, UDP, ...), or Fragment, AH, ESP.
    pub upper_layer: u8,
    /// Offset of that header, from the start of the fixed header.
    pub upper_layer_at: usize,
    /// End of the unfragmentable part: the fixed header and the Hop-by-Hop
    /// and Routing headers (and Destination Options before a Routing header).
    pub unfragmentable_end: usize,
    /// Offset of the Next Header byte that ends the unfragmentable part
    /// (where a Fragment header inserted at `unfragmentable_end` is named).
    pub unfragmentable_next_header_at: usize,
}

impl ExtensionHeaders {
    /// Walks the extension headers of `packet` (fixed header first, cut at
    /// the end its payload length announces). `None` when one runs past the end.
    pub fn walk(packet: &[u8]) -> Option<Self> {
        let mut next = *packet.get(NEXT_HEADER_AT)?;
        let mut next_at = NEXT_HEADER_AT;
        let mut at = HEADER_LEN;
        let mut unfragmentable = (at, next_at);
        while let NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DESTINATION_OPTIONS = next {
            // Next Header, then Hdr Ext Len in 8-byte units past the first 8.
            let len = (usize::from(*packet.get(at + 1)?) + 1) * 8;
            if at + len > packet.len() {
                return None;
            }
            let this = next;
            next = packet[at];
            next_at = at;
            at += len;
            if this != NEXT_DESTINATION_OPTIONS {
                unfragmentable = (at, next_at);
            }
        }
        Some(Self {
            upper_layer: next,
            upper_layer_at: at,
            unfragmentable_end: unfragmentable.0,
            unfragmentable_next_header_at: unfragmentable.1,
        })
    }
}

/// Sets the payload length of the fixed header at the start of `packet`
/// (which must hold it: 40 bytes).
pub fn set_payload_len(packet: &mut [u8], payload_len: u16) {
    packet[4..6].copy_from_slice(&payload_len.to_be_bytes());
}

/// A Fragment extension header to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentHeader {
    /// The header after it (what the unfragmentable part named before).
    pub next_header: u8,
    /// Where this fragment's data starts in the fragmentable part, in bytes (a multiple of 8).
    pub offset: usize,
    /// M: more fragments follow.
    pub more: bool,
    /// Identification, the same in every fragment of a packet.
    pub identification: u32,
}

impl FragmentHeader {
    /// Writes the 8 header bytes at the start of `out`; returns 8.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let available = out.len();
        let h = out
            .get_mut(..FRAGMENT_LEN)
            .ok_or(WireError::BufferTooSmall { needed: FRAGMENT_LEN, available })?;
        debug_assert!(self.offset.is_multiple_of(8));
        h[0] = self.next_header;
        h[1] = 0;
        h[2..4].copy_from_slice(&(self.offset as u16 | u16::from(self.more)).to_be_bytes());
        h[4..8].copy_from_slice(&self.identification.to_be_bytes());
        Ok(FRAGMENT_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: [u8; 16] = [0x20, 0x01, 0x2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DESTINATION: [u8; 16] = [0x20, 0x01, 0x2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// A fixed header with `next`, and `rest` as its payload.
    fn packet(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend((rest.len() as u16).to_be_bytes());
        p.extend([next, 64]);
        p.extend(SOURCE);
        p.extend(DESTINATION);
        p.extend(rest);
        p
    }

    #[test]
    fn parse_reads_addresses_protocol_and_payload_up_to_the_payload_length() {
        let mut p = packet(17, b"UDP-DATAGRAM");
        p.extend([0xee; 6]);
        let v = Ipv6Packet::parse(&p).unwrap();
        assert_eq!((v.source, v.destination), (Ipv6Addr::from(SOURCE), Ipv6Addr::from(DESTINATION)));
        assert_eq!((v.protocol, v.fragment, v.payload), (17, false, &b"UDP-DATAGRAM"[..]));
    }

    #[test]
    fn parse_walks_hop_by_hop_routing_destination_auth_and_fragment_headers() {
        let mut rest = vec![NEXT_ROUTING, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, 8 bytes
        rest.extend([NEXT_DESTINATION_OPTIONS, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // routing, 16
        rest.extend([NEXT_AUTH, 0, 1, 4, 0, 0, 0, 0]); // destination options, 8
        rest.extend([NEXT_FRAGMENT, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]); // AH, (1 + 2) * 4 = 12
        rest.extend([6, 0, 0, 0, 0, 0, 0, 7]); // fragment, offset 0 and M clear
        rest.extend(b"TCP");
        let p = packet(NEXT_HOP_BY_HOP, &rest);
        let v = Ipv6Packet::parse(&p).unwrap();
        assert_eq!((v.protocol, v.fragment, v.payload), (6, false, &b"TCP"[..]));
        for (offset_and_m, fragment) in [([0, 1], true), ([0, 8], true), ([0, 6], false)] {
            let mut f = vec![17, 0];
            f.extend(offset_and_m);
            f.extend([0, 0, 0, 9]);
            let p = packet(NEXT_FRAGMENT, &f);
            let v = Ipv6Packet::parse(&p).unwrap();
            assert_eq!((v.protocol, v.fragment), (17, fragment), "{offset_and_m:?}");
        }
    }

    #[test]
    fn parse_rejects_other_versions_cut_packets_and_misplaced_or_cut_extensions() {
        let mut p = packet(6, &[0; 20]);
        p[0] = 0x45;
        assert_eq!(Ipv6Packet::parse(&p), Err(WireError::NotIpv6(4)));
        let p = packet(6, &[0; 20]);
        assert_eq!(
            Ipv6Packet::parse(&p[..59]),
            Err(WireError::TruncatedHeader { header: "IPv6", needed: 60, available: 59 })
        );
        for cut in 0..HEADER_LEN {
            assert!(matches!(
                Ipv6Packet::parse(&p[..cut]),
                Err(WireError::TruncatedHeader { needed: 40, .. })
            ));
        }
        let hop_by_hop_second = packet(NEXT_DESTINATION_OPTIONS, &[NEXT_HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(Ipv6Packet::parse(&hop_by_hop_second), Err(WireError::IpExtensionHeader(_))));
        let auth_zero = packet(NEXT_AUTH, &[6, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(Ipv6Packet::parse(&auth_zero), Err(WireError::IpExtensionHeader(_))));
        let routing_cut = packet(NEXT_ROUTING, &[6, 1, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            Ipv6Packet::parse(&routing_cut),
            Err(WireError::TruncatedHeader { header: "IPv6 extension", needed: 16, available: 8 })
        ));
    }

    #[test]
    fn a_payload_length_of_zero_takes_the_rest_of_the_input() {
        let mut p = packet(17, b"jumbo");
        p[4..6].fill(0);
        assert_eq!(Ipv6Packet::parse(&p).unwrap().payload, b"jumbo");
    }
}

/// The segmenter's side, against etherparse.
#[cfg(test)]
mod segmenter_tests {
    use super::*;

    const SOURCE: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const DESTINATION: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

    /// etherparse's bytes for a fixed header before `extensions` and 4 payload bytes.
    fn packet(next_header: u8, extensions: &[u8]) -> Vec<u8> {
        let h = etherparse::Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: (extensions.len() + 4) as u16,
            next_header: etherparse::IpNumber(next_header),
            hop_limit: 64,
            source: SOURCE.octets(),
            destination: DESTINATION.octets(),
        };
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(extensions);
        p.extend_from_slice(b"data");
        p
    }

    #[test]
    fn parse_reads_what_etherparse_wrote() {
        let p = packet(17, &[]);
        let v = FixedHeader::parse(&p).unwrap();
        assert_eq!((v.payload_len, v.next_header, v.source, v.destination), (4, 17, SOURCE, DESTINATION));
        assert_eq!(v.payload, b"data");
    }

    #[test]
    fn parse_rejects_other_versions_and_truncation_and_never_panics() {
        let mut p = packet(17, &[]);
        p[0] = 0x45;
        assert_eq!(FixedHeader::parse(&p), Err(WireError::NotIpv6(4)));
        for cut in 0..HEADER_LEN {
            assert_eq!(
                FixedHeader::parse(&p[..cut]),
                Err(WireError::TruncatedHeader { header: "IPv6", needed: 40, available: cut })
            );
        }
    }

    #[test]
    fn walk_keeps_hop_by_hop_and_routing_unfragmentable_and_destination_options_not() {
        let hop_by_hop = [NEXT_DESTINATION_OPTIONS, 0, 1, 4, 0, 0, 0, 0];
        let dest_opts = [NEXT_ROUTING, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let routing = [6, 0, 0, 0, 0, 0, 0, 0];
        let p = packet(NEXT_HOP_BY_HOP, &[&hop_by_hop[..], &dest_opts, &routing].concat());
        let e = ExtensionHeaders::walk(&p).unwrap();
        assert_eq!((e.upper_layer, e.upper_layer_at), (6, 40 + 8 + 16 + 8));
        assert_eq!((e.unfragmentable_end, e.unfragmentable_next_header_at), (72, 64));
        let p = packet(NEXT_DESTINATION_OPTIONS, &[17, 0, 1, 4, 0, 0, 0, 0]);
        let e = ExtensionHeaders::walk(&p).unwrap();
        assert_eq!((e.upper_layer, e.upper_layer_at), (17, 48));
        assert_eq!((e.unfragmentable_end, e.unfragmentable_next_header_at), (40, NEXT_HEADER_AT));
    }

    #[test]
    fn walk_stops_at_a_fragment_header_and_refuses_one_running_past_the_end() {
        let p = packet(NEXT_FRAGMENT, &[17, 0, 0, 1, 0, 0, 0, 9]);
        assert_eq!(ExtensionHeaders::walk(&p).unwrap().upper_layer, NEXT_FRAGMENT);
        let p = packet(NEXT_HOP_BY_HOP, &[17, 1, 1, 4, 0, 0, 0, 0]);
        assert_eq!(ExtensionHeaders::walk(&p), None, "16 bytes announced, 12 there");
        for cut in 0..p.len() {
            let _ = ExtensionHeaders::walk(&p[..cut]);
        }
    }

    #[test]
    fn fragment_header_matches_etherparse() {
        let ours = FragmentHeader { next_header: 17, offset: 1448, more: true, identification: 0x6270_0001 };
        let mut out = [0u8; 8];
        assert_eq!(ours.encode(&mut out), Ok(8));
        let theirs = etherparse::Ipv6FragmentHeader::new(
            etherparse::IpNumber::UDP,
            etherparse::IpFragOffset::try_new(1448 / 8).unwrap(),
            true,
            0x6270_0001,
        );
        assert_eq!(out, theirs.to_bytes());
        assert_eq!(ours.encode(&mut [0; 7]), Err(WireError::BufferTooSmall { needed: 8, available: 7 }));
    }
}
