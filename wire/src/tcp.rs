//! The TCP header (RFC 9293) as a receiver reads it: ports, the flags that
//! mark a connection's handshake and reset, and where the payload starts.

use crate::error::{WireError, fixed_part};
use crate::ports::Ports;

/// Length of a header without options (data offset 5).
pub const HEADER_LEN: usize = 20;
/// The IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// A decoded TCP segment: the fields a receiver uses and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source and destination port.
    pub ports: Ports,
    /// SYN: the segment opens a connection.
    pub syn: bool,
    /// ACK: the acknowledgment number is valid.
    pub ack: bool,
    /// RST: the segment resets the connection.
    pub rst: bool,
    /// Header length from the data offset, options included.
    pub header_len: usize,
    /// Everything after the header.
    pub payload: &'a [u8],
}

// The flag bits of byte 13 a receiver reads.
const FLAG_SYN: u8 = 0x02;
const FLAG_RST: u8 = 0x04;
const FLAG_ACK: u8 = 0x10;

impl<'a> TcpSegment<'a> {
    /// Decodes the header. Rejects a data offset below 5 and a header
    /// (options included) longer than the input. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let h: &[u8; HEADER_LEN] = fixed_part("TCP", buf)?;
        let header_len = usize::from(h[12] >> 4) * 4;
        if header_len < HEADER_LEN {
            return Err(WireError::TcpHeaderLength(header_len));
        }
        let payload = buf.get(header_len..).ok_or(WireError::TruncatedHeader {
            header: "TCP",
            needed: header_len,
            available: buf.len(),
        })?;
        let flags = h[13];
        Ok(Self {
            ports: Ports::read(h.first_chunk().expect("20 bytes")),
            syn: flags & FLAG_SYN != 0,
            ack: flags & FLAG_ACK != 0,
            rst: flags & FLAG_RST != 0,
            header_len,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_ports_flags_and_the_payload_after_the_options() {
        let mut seg = [0u8; 24 + 3];
        seg[..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]); // 40000 -> 80
        seg[12] = 6 << 4;
        seg[13] = 0x12; // SYN + ACK
        seg[24..].copy_from_slice(b"GET");
        let s = TcpSegment::parse(&seg).unwrap();
        assert_eq!((s.ports, s.header_len), (Ports { source: 40000, destination: 80 }, 24));
        assert_eq!((s.syn, s.ack, s.rst, s.payload), (true, true, false, &b"GET"[..]));
        seg[13] = 0x04;
        let s = TcpSegment::parse(&seg).unwrap();
        assert_eq!((s.syn, s.ack, s.rst), (false, false, true));
    }

    #[test]
    fn parse_matches_etherparse_on_every_flag_combination() {
        for flags in 0..=u8::MAX {
            let mut seg = [0u8; 20];
            seg[12] = 5 << 4;
            seg[13] = flags;
            let ours = TcpSegment::parse(&seg).unwrap();
            let theirs = etherparse::TcpHeaderSlice::from_slice(&seg).unwrap();
            assert_eq!(
                (ours.syn, ours.ack, ours.rst),
                (theirs.syn(), theirs.ack(), theirs.rst()),
                "{flags:#04x}"
            );
        }
    }

    #[test]
    fn parse_rejects_a_short_data_offset_and_cut_options() {
        let mut seg = [0u8; 24];
        seg[12] = 4 << 4;
        assert_eq!(TcpSegment::parse(&seg), Err(WireError::TcpHeaderLength(16)));
        seg[12] = 7 << 4;
        assert_eq!(
            TcpSegment::parse(&seg),
            Err(WireError::TruncatedHeader { header: "TCP", needed: 28, available: 24 })
        );
        for cut in 0..HEADER_LEN {
            assert!(matches!(
                TcpSegment::parse(&seg[..cut]),
                Err(WireError::TruncatedHeader { needed: 20, .. })
            ));
        }
    }
}
