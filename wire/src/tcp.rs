//! The TCP header (RFC 9293): what a receiver reads (ports, the flags that
//! mark a connection's handshake and reset, where the payload starts) and
//! what the agent's segmenter reads (sequence number, flags, header length)
//! and rewrites in every segment.

use crate::checksum::PseudoHeader;
use crate::error::{WireError, fixed_part};
use crate::ports::Ports;

/// The IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// Length of a header without options (data offset 5).
pub const HEADER_LEN: usize = 20;
/// FIN: the sender's last segment.
pub const FLAG_FIN: u8 = 0x01;
/// SYN: the segment opens a connection.
pub const FLAG_SYN: u8 = 0x02;
/// RST: the segment resets the connection.
pub const FLAG_RST: u8 = 0x04;
/// PSH: push the data to the application.
pub const FLAG_PSH: u8 = 0x08;
/// ACK: the acknowledgment number is valid.
pub const FLAG_ACK: u8 = 0x10;
/// CWR: the sender reduced its congestion window (RFC 3168).
pub const FLAG_CWR: u8 = 0x80;
const SEQUENCE_AT: usize = 4;
const FLAGS_AT: usize = 13;
const CHECKSUM_AT: usize = 16;

/// A decoded TCP header and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source and destination port.
    pub ports: Ports,
    /// Sequence number.
    pub sequence: u32,
    /// The flag bits (CWR ... FIN).
    pub flags: u8,
    /// Header length from the data offset, options included.
    pub header_len: usize,
    /// Everything after the header.
    pub payload: &'a [u8],
}

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
        Ok(Self {
            ports: Ports::read(h.first_chunk().expect("20 bytes")),
            sequence: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            flags: h[FLAGS_AT],
            header_len,
            payload,
        })
    }

    /// SYN: the segment opens a connection.
    pub fn syn(&self) -> bool {
        self.flags & FLAG_SYN != 0
    }

    /// ACK: the acknowledgment number is valid.
    pub fn ack(&self) -> bool {
        self.flags & FLAG_ACK != 0
    }

    /// RST: the segment resets the connection.
    pub fn rst(&self) -> bool {
        self.flags & FLAG_RST != 0
    }
}

/// A segment in a buffer (header and payload), its fields rewritten in place.
#[derive(Debug)]
pub struct TcpSegmentMut<'a>(&'a mut [u8]);

impl<'a> TcpSegmentMut<'a> {
    /// The segment `buf` (header first); rejects one shorter than 20 bytes.
    pub fn new(buf: &'a mut [u8]) -> Result<Self, WireError> {
        if buf.len() < HEADER_LEN {
            let available = buf.len();
            return Err(WireError::TruncatedHeader { header: "TCP", needed: HEADER_LEN, available });
        }
        Ok(Self(buf))
    }

    /// Sets the sequence number.
    pub fn set_sequence(&mut self, sequence: u32) {
        self.0[SEQUENCE_AT..SEQUENCE_AT + 4].copy_from_slice(&sequence.to_be_bytes());
    }

    /// Sets the flag bits.
    pub fn set_flags(&mut self, flags: u8) {
        self.0[FLAGS_AT] = flags;
    }

    /// Computes the checksum over the whole buffer under `pseudo`, and writes it.
    pub fn fill_checksum(&mut self, pseudo: &PseudoHeader) {
        let sum = pseudo.checksum(IPPROTO_TCP, self.0, CHECKSUM_AT);
        self.0[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&sum.to_be_bytes());
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
        assert_eq!((s.syn(), s.ack(), s.rst(), s.payload), (true, true, false, &b"GET"[..]));
        seg[13] = 0x04;
        let s = TcpSegment::parse(&seg).unwrap();
        assert_eq!((s.syn(), s.ack(), s.rst()), (false, false, true));
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
                (ours.syn(), ours.ack(), ours.rst()),
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

    const SOURCE: [u8; 4] = [198, 18, 0, 1];
    const DESTINATION: [u8; 4] = [198, 18, 0, 2];

    /// etherparse's bytes: a header with the timestamp option, its checksum, and `payload`.
    fn segment(payload: &[u8]) -> Vec<u8> {
        let mut h = etherparse::TcpHeader::new(40000, 5201, 0x0102_0304, 502);
        h.ack = true;
        h.psh = true;
        h.set_options(&[etherparse::TcpOptionElement::Timestamp(0x1234, 0x5678)]).unwrap();
        h.checksum = h.calc_checksum_ipv4_raw(SOURCE, DESTINATION, payload).unwrap();
        let mut s = h.to_bytes().to_vec();
        s.extend_from_slice(payload);
        s
    }

    #[test]
    fn parse_reads_what_etherparse_wrote() {
        let s = segment(b"hello");
        let v = TcpSegment::parse(&s).unwrap();
        assert_eq!(v.sequence, 0x0102_0304);
        assert_eq!((v.flags, v.header_len, v.payload), (FLAG_ACK | FLAG_PSH, 32, &b"hello"[..]));
    }

    #[test]
    fn parse_rejects_a_short_data_offset_and_truncation_and_never_panics() {
        let mut s = segment(b"");
        for cut in 0..32 {
            assert!(TcpSegment::parse(&s[..cut]).is_err(), "cut at {cut}");
        }
        s[12] = 0x40;
        assert_eq!(TcpSegment::parse(&s), Err(WireError::TcpHeaderLength(16)));
    }

    #[test]
    fn rewritten_fields_and_checksum_match_etherparse() {
        let mut ours = segment(b"payload!");
        let mut s = TcpSegmentMut::new(&mut ours).unwrap();
        s.set_sequence(0xffff_fff0);
        s.set_flags(FLAG_ACK | FLAG_FIN);
        s.fill_checksum(&PseudoHeader::V4 { source: SOURCE, destination: DESTINATION });
        let (mut theirs, payload) = etherparse::TcpHeader::from_slice(&ours).unwrap();
        assert_eq!((theirs.sequence_number, theirs.fin, theirs.psh), (0xffff_fff0, true, false));
        let sum = theirs.checksum;
        theirs.checksum = 0;
        assert_eq!(sum, theirs.calc_checksum_ipv4_raw(SOURCE, DESTINATION, payload).unwrap());
        assert!(TcpSegmentMut::new(&mut [0; 19]).is_err());
    }
}
