//! The simulator's error type.

/// Everything that can go wrong in bpc-sim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The receiver (`receive`) or what it shares with `check` (reports,
    /// maps, expectations) failed.
    #[error(transparent)]
    Receiver(#[from] bpc_receiver::Error),
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
    /// An option or a saved report was not understood.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A pcap file could not be read.
    #[error("pcap: {0}")]
    Pcap(#[from] pcap_file::PcapError),
}
