//! The IPv6 header (RFC 8200) and the extension headers before its
//! upper-layer protocol: the view a receiver needs to find a captured
//! packet's transport header.
//!
//! ```text
//! | version (4) | class, flow (28) | payload length (16) | next header (8) | hop limit (8) |
//! | source (128) | destination (128) | [extension header]* | upper-layer header ...
//! ```

use std::net::Ipv6Addr;

use crate::error::{WireError, fixed_part};

/// Length of the fixed header, which the payload length does not count.
pub const HEADER_LEN: usize = 40;
/// Authentication header (RFC 4302), an extension of IPv4 too.
pub const NEXT_AUTH: u8 = 51;
// The other extension headers walked: hop-by-hop options (only directly
// after the fixed header), routing, fragment (8 bytes), destination options.
const NEXT_HOP_BY_HOP: u8 = 0;
const NEXT_ROUTING: u8 = 43;
const NEXT_FRAGMENT: u8 = 44;
const FRAGMENT_LEN: usize = 8;
const NEXT_DESTINATION_OPTIONS: u8 = 60;

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
