//! The UDP header (RFC 768), for senders that build their own test frames,
//! the datagram view a receiver reads, and the checksum of a whole datagram
//! (a segmenter's fragments carry it).

use crate::checksum::PseudoHeader;
use crate::error::{WireError, fixed_part};
use crate::ports::Ports;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM_AT: usize = 6;

/// A UDP header to encode, with checksum 0 ("not computed", which IPv4
/// allows): the frames built here are load and test traffic, and a receiver
/// that checks would have to recompute it for every replayed copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpHeader {
    /// Source port.
    pub source_port: u16,
    /// Destination port.
    pub destination_port: u16,
    /// Bytes after the header.
    pub payload_len: usize,
}

impl UdpHeader {
    /// Writes the 8 header bytes at the start of `out`; returns 8.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let length = HEADER_LEN + self.payload_len;
        let length = u16::try_from(length).map_err(|_| WireError::TooLong { length, max: 0xffff })?;
        let available = out.len();
        let h =
            out.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall { needed: HEADER_LEN, available })?;
        h[0..2].copy_from_slice(&self.source_port.to_be_bytes());
        h[2..4].copy_from_slice(&self.destination_port.to_be_bytes());
        h[4..6].copy_from_slice(&length.to_be_bytes());
        h[6..8].fill(0);
        Ok(HEADER_LEN)
    }
}

/// A decoded UDP datagram: ports and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source and destination port.
    pub ports: Ports,
    /// The payload, up to the length field.
    pub payload: &'a [u8],
}

impl<'a> UdpDatagram<'a> {
    /// Decodes the header. Rejects a datagram shorter than its length
    /// field and a length field below 8; a length of 0 (an IPv6 jumbogram)
    /// takes the rest of the input. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let h: &[u8; HEADER_LEN] = fixed_part("UDP", buf)?;
        let end = match usize::from(u16::from_be_bytes([h[4], h[5]])) {
            0 => buf.len(),
            length if length < HEADER_LEN => return Err(WireError::UdpLength(length)),
            length if length > buf.len() => {
                return Err(WireError::TruncatedHeader {
                    header: "UDP",
                    needed: length,
                    available: buf.len(),
                });
            }
            length => length,
        };
        Ok(Self { ports: Ports::read(h.first_chunk().expect("8 bytes")), payload: &buf[HEADER_LEN..end] })
    }
}

/// The checksum of `datagram` (header and payload) under `pseudo`, as its
/// sender writes it; `None` when its length field is not the datagram's length.
pub fn checksum(pseudo: &PseudoHeader, datagram: &[u8]) -> Option<u16> {
    let length = datagram.get(4..6)?;
    if usize::from(u16::from_be_bytes([length[0], length[1]])) != datagram.len()
        || datagram.len() < HEADER_LEN
    {
        return None;
    }
    let sum = pseudo.checksum(crate::ipv4::IPPROTO_UDP, datagram, CHECKSUM_AT);
    // Zero means "no checksum" in UDP; its one's complement twin stands in.
    Some(if sum == 0 { 0xffff } else { sum })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_etherparse_over_ipv4_and_ipv6_and_refuses_a_lying_length() {
        let (src4, dst4) = ([198, 18, 0, 1], [198, 18, 0, 2]);
        let (src6, dst6) = ([0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0x20; 16]);
        let payload = b"odd length";
        let h = etherparse::UdpHeader::without_ipv4_checksum(5353, 53, payload.len()).unwrap();
        let mut datagram = h.to_bytes().to_vec();
        datagram.extend_from_slice(payload);
        let v4 = PseudoHeader::V4 { source: src4, destination: dst4 };
        assert_eq!(checksum(&v4, &datagram), Some(h.calc_checksum_ipv4_raw(src4, dst4, payload).unwrap()));
        let v6 = PseudoHeader::V6 { source: src6, destination: dst6 };
        assert_eq!(checksum(&v6, &datagram), Some(h.calc_checksum_ipv6_raw(src6, dst6, payload).unwrap()));
        datagram.push(0);
        assert_eq!(checksum(&v4, &datagram), None);
        assert_eq!(checksum(&v4, &datagram[..5]), None);
    }

    #[test]
    fn header_encodes_to_the_golden_bytes_with_no_checksum() {
        let mut out = [0xffu8; 8];
        let h = UdpHeader { source_port: 40000, destination_port: 9, payload_len: 18 };
        assert_eq!(h.encode(&mut out), Ok(8));
        assert_eq!(out, [0x9c, 0x40, 0x00, 0x09, 0x00, 0x1a, 0x00, 0x00]);
    }

    #[test]
    fn header_refuses_a_length_over_65535_and_a_short_buffer() {
        let h = UdpHeader { source_port: 1, destination_port: 2, payload_len: 65528 };
        assert_eq!(h.encode(&mut [0; 8]), Err(WireError::TooLong { length: 65536, max: 65535 }));
        let h = UdpHeader { payload_len: 0, ..h };
        assert_eq!(h.encode(&mut [0; 7]), Err(WireError::BufferTooSmall { needed: 8, available: 7 }));
    }

    #[test]
    fn datagram_reads_back_what_the_header_encoded_and_stops_at_its_length() {
        let mut d = [0xeeu8; 8 + 18 + 4];
        UdpHeader { source_port: 40000, destination_port: 9, payload_len: 18 }.encode(&mut d).unwrap();
        let v = UdpDatagram::parse(&d).unwrap();
        assert_eq!((v.ports, v.payload.len()), (Ports { source: 40000, destination: 9 }, 18));
        d[4..6].fill(0);
        assert_eq!(UdpDatagram::parse(&d).unwrap().payload.len(), 22, "length 0: the rest of the input");
    }

    #[test]
    fn datagram_rejects_a_length_beyond_the_input_or_below_the_header() {
        let mut d = [0u8; 12];
        d[4..6].copy_from_slice(&13u16.to_be_bytes());
        assert_eq!(
            UdpDatagram::parse(&d),
            Err(WireError::TruncatedHeader { header: "UDP", needed: 13, available: 12 })
        );
        d[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpDatagram::parse(&d), Err(WireError::UdpLength(7)));
        for cut in 0..HEADER_LEN {
            assert!(UdpDatagram::parse(&d[..cut]).is_err());
        }
    }
}
