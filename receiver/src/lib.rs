//! bpc-receiver: the receiving end of kubectl-bpc, what `kubectl bpc sink`
//! and `verify` run in-process and the `bpc-sim receive` command wraps.
//!
//! * [`receiver`]: the receiving engine: GRE/ERSPAN and VXLAN sockets read
//!   with `recvmmsg` on their own threads, per-stream accounting, the inner
//!   frames' flows, and the [`receiver::Report`].
//! * [`receive`]: a whole receive run around it (options, live view, map
//!   file, path files, the report it ends with), with [`pcap_out`] for
//!   `--write` and [`names`] for pcapng's name resolution.
//! * [`expectation`]: the `--expect` model, parsed and checked against a
//!   report (live, or saved: `bpc-sim check`).
//! * [`map`], [`paths`]: workload names from `kubectl bpc map`, and the
//!   service paths discovered in the inner flows.
//!
//! The library has no process-wide side effects: a run takes its stop
//! signal from the caller and returns what it found; the binaries install
//! signal handlers and print.

mod error;
pub mod expectation;
pub mod map;
pub mod names;
pub mod paths;
pub mod pcap_out;
pub mod receive;
pub mod receiver;

pub use error::Error;

/// Marker at the start of a synthetic UDP payload: the 4 bytes `BPCT`
/// followed by the send time as u64 big-endian nanoseconds since the Unix epoch.
/// `bpc-sim replay --synthetic` and the bench load generator send it; the
/// receiver measures latency from it.
pub const LATENCY_MARKER: &[u8; 4] = b"BPCT";
