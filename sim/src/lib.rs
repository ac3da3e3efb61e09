//! bpc-sim: stands in for the packet analyser. [`receiver`] decapsulates and
//! counts GRE streams from agents; [`receive`] is the `bpc-sim receive`
//! command (also embedded by `kubectl bpc sink`); [`check`] applies
//! `--expect` to a saved report; [`replay`] sends pcap or synthetic frames
//! exactly as an agent would.

pub mod check;
mod error;
pub mod expect;
pub mod map;
pub mod paths;
pub mod receive;
pub mod receiver;
pub mod replay;

pub use error::Error;

/// Marker at the start of a synthetic UDP payload: the 4 bytes `BPCT`
/// followed by the send time as u64 big-endian nanoseconds since the Unix epoch.
pub const LATENCY_MARKER: &[u8; 4] = b"BPCT";
