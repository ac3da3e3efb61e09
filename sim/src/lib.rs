//! bpc-sim: stands in for the packet analyser.
//!
//! * [`receiver`]: the receiving engine: a raw GRE socket on its own
//!   thread, per-stream accounting and the [`receiver::Report`].
//! * [`receive_cmd`]: the `bpc-sim receive` command around it (also run
//!   in-process by `kubectl bpc sink`), with [`pcap_out`] for `--write`.
//! * [`expectation`]: the `--expect` model, parsed and checked against a
//!   report; [`check_cmd`] is the `bpc-sim check` command that applies it to
//!   a saved one.
//! * [`replay`]: sends pcap or synthetic frames exactly as an agent would.
//! * [`map`], [`paths`]: workload names from `kubectl bpc map`, and the
//!   service paths discovered in the inner flows.
//!
//! The library has no process-wide side effects: commands take their stop
//! signal from the caller and return what they found; the binaries install
//! signal handlers and print.

pub mod check_cmd;
mod error;
pub mod expectation;
pub mod map;
pub mod names;
pub mod paths;
pub mod pcap_out;
pub mod receive_cmd;
pub mod receiver;
pub mod replay;

pub use error::Error;

/// Marker at the start of a synthetic UDP payload: the 4 bytes `BPCT`
/// followed by the send time as u64 big-endian nanoseconds since the Unix epoch.
pub const LATENCY_MARKER: &[u8; 4] = b"BPCT";
