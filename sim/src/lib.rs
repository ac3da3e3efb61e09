//! bpc-sim: the simulator around the receiver library (`bpc_receiver`):
//!
//! * [`check_cmd`]: `bpc-sim check`, the `--expect` assertions applied to a
//!   report saved with `receive -o json`.
//! * [`replay`]: sends pcap or synthetic frames exactly as an agent would.
//!
//! `bpc-sim receive` is [`bpc_receiver::receive`] behind the binary's
//! signal handler. Nothing here is linked by the plugin or the agent.

pub mod check_cmd;
pub mod replay;

/// The simulator fails in the receiver's ways (a socket, a file, an input
/// not understood, a pcap), with the same messages: one error type for both.
pub use bpc_receiver::Error;
