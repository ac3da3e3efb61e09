//! A flow record: the key of one flow as one capturing pod saw it, and its
//! counters; what the flow table keeps and what folding turns into edges.

use std::net::IpAddr;

/// One flow as seen by one capturing pod. `a`/`b` are the ends in canonical
/// order (smaller address:port first), so both directions share one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FlowKey {
    /// IP protocol number.
    pub proto: u8,
    /// Lower end.
    pub a: (IpAddr, u16),
    /// Higher end.
    pub b: (IpAddr, u16),
    /// Source address of the GRE stream that carried the frame: the capturing pod.
    pub observer: IpAddr,
}

/// TCP flags that matter to the handshake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// RST.
    pub rst: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Idle,
    /// SYN from `client` seen at `syn_ns`.
    Syn,
    /// SYN-ACK seen at `synack_ns`.
    SynAck,
}

/// Counters of one flow record.
#[derive(Debug, Clone)]
pub(super) struct FlowState {
    /// 0: `a` is the client, 1: `b` is; None until a SYN says (then ports decide).
    pub(super) client: Option<u8>,
    pub(super) packets: [u64; 2],
    pub(super) bytes: [u64; 2],
    pub(super) resets: u64,
    pub(super) connections: u64,
    pub(super) phase: Phase,
    pub(super) syn_ns: u64,
    pub(super) synack_ns: u64,
    /// Handshake round-trip times, microseconds, one per connection.
    pub(super) rtt_us: Vec<u32>,
    /// Some frame of the flow was timed on arrival, not at capture.
    pub(super) arrival_timed: bool,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
}
