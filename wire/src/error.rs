use thiserror::Error;

/// Why a header could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// The input ends before the header its flags announce.
    #[error("truncated GRE header: flags announce {needed} bytes, only {available} present")]
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes the input has.
        available: usize,
    },
    /// The version field (low 3 bits of the flags word) is not 0.
    #[error("unsupported GRE version {0} (only version 0, RFC 2784, is GRE; 1 is PPTP)")]
    UnsupportedVersion(u8),
    /// A reserved flag bit is set (routing, strict source route, recursion
    /// control or Reserved0), which RFC 2784 receivers must discard.
    #[error("reserved GRE flag bits set: {0:#06x}")]
    ReservedBitsSet(u16),
    /// The checksum present bit is set and the checksum does not verify.
    #[error("GRE checksum mismatch: header says {found:#06x}, computed {computed:#06x}")]
    ChecksumMismatch {
        /// The checksum carried in the header.
        found: u16,
        /// The checksum computed over header and payload.
        computed: u16,
    },
    /// The caller's output buffer cannot hold what is to be encoded.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The input ends before the Ethernet or IPv4 header it starts.
    #[error("truncated {header} header: {needed} bytes needed, only {available} present")]
    TruncatedHeader {
        /// Which header.
        header: &'static str,
        /// Bytes the header needs.
        needed: usize,
        /// Bytes the input has.
        available: usize,
    },
    /// The version nibble of what should be an IPv4 header is not 4.
    #[error("not an IPv4 header: version {0}")]
    NotIpv4(u8),
    /// The IPv4 header length field (IHL) is below 5 words.
    #[error("IPv4 header length {0} bytes is below the minimum of 20")]
    Ipv4HeaderLength(usize),
    /// The version nibble of what should be an IPv6 header is not 6.
    #[error("not an IPv6 header: version {0}")]
    NotIpv6(u8),
    /// The TCP data offset is below 5 words.
    #[error("TCP header length {0} bytes is below the minimum of 20")]
    TcpHeaderLength(usize),
    /// A length does not fit its header field.
    #[error("length {length} does not fit the header's length field (at most {max})")]
    TooLong {
        /// The length to encode.
        length: usize,
        /// The largest the field holds.
        max: usize,
    },
    /// A VXLAN header without the I flag (no valid VNI).
    #[error("VXLAN header without the I flag (flags {0:#04x}): no valid VNI")]
    VxlanNoVni(u8),
    /// An ERSPAN header of another version than its GRE protocol type announces.
    #[error("ERSPAN version {found} where the GRE protocol type announces version {expected}")]
    ErspanVersion {
        /// The version the protocol type stands for (1: type II, 2: type III).
        expected: u8,
        /// The version field.
        found: u8,
    },
    /// A GRE protocol type that carries no Ethernet frame we decode.
    #[error("GRE protocol type {0:#06x} carries no Ethernet frame (0x6558, 0x88be or 0x22eb)")]
    NotEthernet(u16),
}
