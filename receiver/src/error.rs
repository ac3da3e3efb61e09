//! The crate's error type.

/// Everything that can go wrong in the receiver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket call failed (usually a missing CAP_NET_RAW).
    #[error("{what}: {source} (raw GRE sockets need root or CAP_NET_RAW)")]
    Socket {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The map file or an option was not understood.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A pcap file could not be read or written.
    #[error("pcap: {0}")]
    Pcap(#[from] pcap_file::PcapError),
}
