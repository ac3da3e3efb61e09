//! The GRE wire format of kubectl-bpc, and the workload key.
//!
//! This crate is the one place the format lives: `bpc-agent` encodes with it,
//! `bpc-sim` and `kubectl-bpc sink` decode with it. It does no I/O and never
//! allocates on the encode or decode path: decoding borrows from the caller's
//! `&[u8]`, encoding writes into the caller's `&mut [u8]`.
//!
//! * [`gre`]: the GRE header of RFC 2784 with the key and sequence number
//!   extensions of RFC 2890 (any combination of C, K and S).
//! * [`profile`]: the two header layouts agents send: `standard` (K + S,
//!   protocol 0x6558) and `netis` (K only, direction in the key, as the
//!   pktminerg agent sends it).
//! * [`key`]: [`WorkloadKey`], the stable 32-bit key of a workload.
//! * [`sequence`]: [`SequenceTracker`], loss/reorder/duplicate accounting
//!   from sequence numbers with RFC 1982 wrap-around.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checksum;
mod error;
pub mod gre;
pub mod key;
pub mod profile;
pub mod sequence;

pub use checksum::internet_checksum;
pub use error::WireError;
pub use gre::{GreFlags, GreHeader, GrePacket, PROTO_IPV4, PROTO_IPV6, PROTO_TEB};
pub use key::{ParseKeyError, WorkloadKey, WorkloadKind};
pub use profile::{Direction, GreProfile, NetisKey, ParseProfileError, StreamProfile};
pub use sequence::{Observation, SequenceCounters, SequenceTracker};

/// The IP protocol number of GRE (the raw-socket protocol agents send with).
pub const IPPROTO_GRE: u8 = 47;
