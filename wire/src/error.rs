use thiserror::Error;

/// Why a GRE packet could not be decoded or encoded.
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
}
