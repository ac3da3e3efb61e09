//! The GRE header: RFC 2784 with the key and sequence number fields of RFC 2890.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|R|K|S| Reserved0       | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (if C)          |       Reserved1 (if C)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Key (if K)                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Sequence Number (if S)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The optional fields appear in the order C, K, S, each 4 bytes, so a header
//! is 4, 8, 12 or 16 bytes long. `R` (bit 1) and Reserved0 (bits 4-12) are
//! the routing/recursion bits of the obsolete RFC 1701: a receiver that does
//! not implement RFC 1701 must discard such packets (RFC 2784 section 2.3),
//! so decoding rejects them.

use crate::checksum::internet_checksum;
use crate::error::WireError;

/// Protocol type of Transparent Ethernet Bridging: the payload is a whole
/// Ethernet frame. This is what agents send.
pub const PROTO_TEB: u16 = 0x6558;
/// Protocol type of an IPv4 payload.
pub const PROTO_IPV4: u16 = 0x0800;
/// Protocol type of an IPv6 payload.
pub const PROTO_IPV6: u16 = 0x86dd;

const FLAG_C: u16 = 0x8000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
/// R (0x4000) and Reserved0 (0x0ff8).
const FLAGS_RESERVED: u16 = 0x4000 | 0x0ff8;
const VERSION_MASK: u16 = 0x0007;

/// The length of the fixed part of every GRE header.
pub const BASE_HEADER_LEN: usize = 4;
/// The longest GRE header this crate reads or writes (C, K and S all set).
pub const MAX_HEADER_LEN: usize = 16;

/// Which optional fields a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GreFlags {
    /// C: checksum and Reserved1 present.
    pub checksum: bool,
    /// K: key present.
    pub key: bool,
    /// S: sequence number present.
    pub sequence: bool,
}

impl GreFlags {
    /// The header length these flags announce: 4 plus 4 for each field present.
    pub const fn header_len(self) -> usize {
        BASE_HEADER_LEN + 4 * (self.checksum as usize + self.key as usize + self.sequence as usize)
    }

    /// The first 16-bit word of the header (version 0).
    pub const fn to_word(self) -> u16 {
        (if self.checksum { FLAG_C } else { 0 })
            | (if self.key { FLAG_K } else { 0 })
            | (if self.sequence { FLAG_S } else { 0 })
    }

    /// Reads the flags from the first 16-bit word, rejecting a version other
    /// than 0 and any reserved bit.
    pub const fn from_word(word: u16) -> Result<Self, WireError> {
        let version = (word & VERSION_MASK) as u8;
        if version != 0 {
            return Err(WireError::UnsupportedVersion(version));
        }
        if word & FLAGS_RESERVED != 0 {
            return Err(WireError::ReservedBitsSet(word & FLAGS_RESERVED));
        }
        Ok(Self { checksum: word & FLAG_C != 0, key: word & FLAG_K != 0, sequence: word & FLAG_S != 0 })
    }
}

/// What to encode: the protocol type and which optional fields, with values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreHeader {
    /// Protocol type of the payload ([`PROTO_TEB`] for agents).
    pub protocol: u16,
    /// Whether to carry a checksum over header and payload.
    pub checksum: bool,
    /// The key field, if carried.
    pub key: Option<u32>,
    /// The sequence number field, if carried.
    pub sequence: Option<u32>,
}

impl GreHeader {
    /// The flags this header encodes with.
    pub const fn flags(&self) -> GreFlags {
        GreFlags { checksum: self.checksum, key: self.key.is_some(), sequence: self.sequence.is_some() }
    }

    /// Length of the encoded header in bytes (4 to 16).
    pub const fn len(&self) -> usize {
        self.flags().header_len()
    }

    /// Always false: a GRE header is at least 4 bytes. Present for clippy's
    /// `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header alone into `out`, for senders that pass header and
    /// payload to the kernel as two iovecs. When the checksum is on, it is
    /// computed over the header and `payload`; otherwise `payload` is unused.
    /// Returns the number of bytes written.
    pub fn encode_header(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let available = out.len();
        let out = out.get_mut(..len).ok_or(WireError::BufferTooSmall { needed: len, available })?;
        out[0..2].copy_from_slice(&self.flags().to_word().to_be_bytes());
        out[2..4].copy_from_slice(&self.protocol.to_be_bytes());
        let mut at = BASE_HEADER_LEN;
        if self.checksum {
            out[at..at + 4].fill(0);
            at += 4;
        }
        if let Some(key) = self.key {
            out[at..at + 4].copy_from_slice(&key.to_be_bytes());
            at += 4;
        }
        if let Some(sequence) = self.sequence {
            out[at..at + 4].copy_from_slice(&sequence.to_be_bytes());
        }
        if self.checksum {
            let sum = internet_checksum(&[out, payload]);
            out[4..6].copy_from_slice(&sum.to_be_bytes());
        }
        Ok(len)
    }

    /// Writes header and payload contiguously into `out` and returns the
    /// total length.
    pub fn encode(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, WireError> {
        let total = self.len() + payload.len();
        if out.len() < total {
            return Err(WireError::BufferTooSmall { needed: total, available: out.len() });
        }
        let (head, rest) = out.split_at_mut(self.len());
        rest[..payload.len()].copy_from_slice(payload);
        self.encode_header(payload, head)?;
        Ok(total)
    }
}

/// A decoded GRE packet: the header fields and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrePacket<'a> {
    /// Which optional fields were present.
    pub flags: GreFlags,
    /// Protocol type of the payload.
    pub protocol: u16,
    /// The checksum field, if C was set (already verified by [`GrePacket::parse`]).
    pub checksum: Option<u16>,
    /// The Reserved1 field, if C was set. RFC 2784 says it is sent as zero;
    /// it is reported, not enforced.
    pub reserved1: Option<u16>,
    /// The key field, if K was set.
    pub key: Option<u32>,
    /// The sequence number, if S was set.
    pub sequence: Option<u32>,
    /// Length of the header that was read.
    pub header_len: usize,
    /// Everything after the header.
    pub payload: &'a [u8],
}

impl<'a> GrePacket<'a> {
    /// Decodes a GRE packet (starting at the GRE header, not the IP header).
    ///
    /// Accepts every combination of C, K and S; verifies the checksum when C
    /// is set; rejects version != 0, reserved flag bits and truncated headers.
    /// Never panics, whatever the input.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let base: [u8; 4] = match buf.first_chunk() {
            Some(b) => *b,
            None => return Err(WireError::Truncated { needed: BASE_HEADER_LEN, available: buf.len() }),
        };
        let flags = GreFlags::from_word(u16::from_be_bytes([base[0], base[1]]))?;
        let protocol = u16::from_be_bytes([base[2], base[3]]);
        let header_len = flags.header_len();
        if buf.len() < header_len {
            return Err(WireError::Truncated { needed: header_len, available: buf.len() });
        }
        let word = |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let mut at = BASE_HEADER_LEN;
        let (mut checksum, mut reserved1, mut key, mut sequence) = (None, None, None, None);
        if flags.checksum {
            let found = u16::from_be_bytes([buf[at], buf[at + 1]]);
            reserved1 = Some(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
            // A buffer that includes its own correct checksum sums to zero.
            if internet_checksum(&[buf]) != 0 {
                let computed = internet_checksum(&[&buf[..at], &[0, 0], &buf[at + 2..]]);
                return Err(WireError::ChecksumMismatch { found, computed });
            }
            checksum = Some(found);
            at += 4;
        }
        if flags.key {
            key = Some(word(at));
            at += 4;
        }
        if flags.sequence {
            sequence = Some(word(at));
        }
        Ok(Self {
            flags,
            protocol,
            checksum,
            reserved1,
            key,
            sequence,
            header_len,
            payload: &buf[header_len..],
        })
    }
}
