/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
///
/// Parts may have odd lengths: a byte left over at the end of one part is
/// paired with the first byte of the next, exactly as if the parts were one
/// contiguous buffer. Returns the one's complement of the one's complement sum,
/// ready to be written into a header whose checksum field was zero.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut carry_byte: Option<u8> = None;
    for part in parts {
        let mut data: &[u8] = part;
        if let Some(hi) = carry_byte.take() {
            match data.split_first() {
                Some((lo, rest)) => {
                    sum += u64::from(u16::from_be_bytes([hi, *lo]));
                    data = rest;
                }
                None => {
                    carry_byte = Some(hi);
                    continue;
                }
            }
        }
        let mut chunks = data.chunks_exact(2);
        for pair in &mut chunks {
            sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = chunks.remainder() {
            carry_byte = Some(*last);
        }
    }
    if let Some(hi) = carry_byte {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The addresses of the pseudo-header a TCP or UDP checksum covers
/// (RFC 793 / 768 over IPv4, RFC 8200 8.1 over IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader {
    /// IPv4 source and destination.
    V4 {
        /// Source address.
        source: [u8; 4],
        /// Destination address.
        destination: [u8; 4],
    },
    /// IPv6 source and destination (the final destination).
    V6 {
        /// Source address.
        source: [u8; 16],
        /// Destination address.
        destination: [u8; 16],
    },
}

impl PseudoHeader {
    /// The checksum of `segment` (a TCP segment or UDP datagram, header and
    /// payload) of upper-layer `protocol` under this pseudo-header; the two
    /// bytes at `checksum_at` (the checksum field) count as zero.
    pub fn checksum(&self, protocol: u8, segment: &[u8], checksum_at: usize) -> u16 {
        let (before, after) = (&segment[..checksum_at], &segment[checksum_at + 2..]);
        match self {
            PseudoHeader::V4 { source, destination } => {
                let len = (segment.len() as u16).to_be_bytes();
                let tail = [0, protocol, len[0], len[1]];
                internet_checksum(&[source, destination, &tail, before, after])
            }
            PseudoHeader::V6 { source, destination } => {
                let len = (segment.len() as u32).to_be_bytes();
                let tail = [len[0], len[1], len[2], len[3], 0, 0, 0, protocol];
                internet_checksum(&[source, destination, &tail, before, after])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_documented_value() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&[&data]), !0xddf2);
    }

    #[test]
    fn split_parts_give_same_checksum_as_contiguous_buffer() {
        let data: Vec<u8> = (0u8..=250).collect();
        let whole = internet_checksum(&[&data]);
        for a in 0..data.len() {
            for b in a..data.len() {
                let parts = [&data[..a], &data[a..b], &data[b..]];
                assert_eq!(internet_checksum(&parts), whole, "split at {a},{b}");
            }
        }
    }

    #[test]
    fn buffer_including_its_checksum_verifies_to_zero() {
        let mut data = vec![0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x11, 0, 0];
        let c = internet_checksum(&[&data]);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(internet_checksum(&[&data]), 0);
    }

    #[test]
    fn empty_input_checksum_is_all_ones() {
        assert_eq!(internet_checksum(&[]), 0xffff);
        assert_eq!(internet_checksum(&[&[], &[]]), 0xffff);
    }
}
