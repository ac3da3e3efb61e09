//! The TCP header (RFC 9293) as the agent's segmenter reads it (sequence
//! number, flags, header length) and rewrites it in every segment.

use crate::checksum::PseudoHeader;
use crate::error::WireError;

/// The IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// Length of a header without options (data offset 5).
pub const HEADER_LEN: usize = 20;
/// FIN: the sender's last segment.
pub const FLAG_FIN: u8 = 0x01;
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
    /// Decodes the header. Rejects a data offset below 5 and a header longer
    /// than the input. Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let truncated = |needed| WireError::TruncatedHeader { header: "TCP", needed, available: buf.len() };
        let h: &[u8; HEADER_LEN] = buf.first_chunk().ok_or(truncated(HEADER_LEN))?;
        let header_len = usize::from(h[12] >> 4) * 4;
        if header_len < HEADER_LEN {
            return Err(WireError::TcpHeaderLength(header_len));
        }
        if buf.len() < header_len {
            return Err(truncated(header_len));
        }
        Ok(Self {
            sequence: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            flags: h[FLAGS_AT],
            header_len,
            payload: &buf[header_len..],
        })
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
