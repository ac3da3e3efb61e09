//! The GRE wire format of kubectl-bpc, and the workload key.
//!
//! This crate is the one place the format lives: `bpc-agent` encodes with it,
//! `bpc-receiver` (`kubectl-bpc sink`, `bpc-sim receive`) decodes with it;
//! the Ethernet, IP, TCP and UDP headers senders build, receivers read and
//! the agent's segmenter rewrites live here too, and the pcapng blocks the
//! product writes. It opens nothing and never
//! allocates on the encode or decode path: decoding borrows from the caller's
//! `&[u8]`, encoding writes into the caller's `&mut [u8]` (pcapng: into the
//! caller's `io::Write`).
//!
//! * [`gre`]: the GRE header of RFC 2784 with the key and sequence number
//!   extensions of RFC 2890 (any combination of C, K and S).
//! * [`profile`]: the two header layouts agents send: `standard` (K + S,
//!   protocol 0x6558) and `netis` (K only, direction in the key, as the
//!   pktminerg agent sends it).
//! * [`key`]: [`WorkloadKey`], the stable 32-bit key of a workload.
//! * [`ethernet`], [`ipv4`], [`ipv6`], [`tcp`], [`udp`]: the headers around
//!   and inside GRE that senders build (the agent's TX ring, replay, the
//!   bench tools), receivers walk (VLAN tags, the IPv4 header length, IPv6
//!   extension headers) and the agent's segmenter rewrites (lengths,
//!   sequence numbers, fragments, checksums over a [`PseudoHeader`]), and a
//!   capture's stripped VLAN tag put back ([`ethernet::Retagged`]).
//! * [`inner`]: what a receiver reads from an inner frame: [`InnerFlow`],
//!   its addresses, protocol, ports, TCP flags and UDP payload, and the
//!   protocols' names in reports.
//! * [`encap`]: the four formats an agent sends in (GRE, VXLAN, ERSPAN II
//!   and III) behind one [`Encapsulation`], and [`Decapsulated`], what a
//!   receiver reads from any of them; the headers in [`vxlan`] and [`erspan`].
//! * [`sequence`]: [`SequenceTracker`], loss/reorder/duplicate accounting
//!   from sequence numbers with RFC 1982 wrap-around.
//! * [`pcapng`]: [`PcapngWriter`], the pcapng blocks the agent's `--write`
//!   and the CLI's `capture -w` merge write (into any `io::Write`).
//! * `test_frames` (tests, and the `test-frames` feature): frames built by
//!   etherparse, the independent encoder other crates' tests use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checksum;
pub mod encap;
mod error;
pub mod erspan;
pub mod ethernet;
pub mod gre;
pub mod inner;
pub mod ipv4;
pub mod ipv6;
pub mod key;
pub mod pcapng;
mod ports;
pub mod profile;
pub mod sequence;
pub mod tcp;
#[cfg(any(test, feature = "test-frames"))]
pub mod test_frames;
pub mod udp;
pub mod vxlan;

pub use checksum::{PseudoHeader, internet_checksum};
pub use encap::{Decapsulated, Encap, Encapsulation, FrameInfo, StreamKind};
pub use error::WireError;
pub use erspan::{ErspanII, ErspanIII};
pub use ethernet::{EthernetFrame, EthernetHeader, MacText, Retagged, parse_mac};
pub use gre::{GreFlags, GreHeader, GrePacket, PROTO_IPV4, PROTO_IPV6, PROTO_TEB};
pub use inner::{InnerFlow, Transport, protocol_name};
pub use ipv4::{Ipv4Header, Ipv4HeaderMut, Ipv4Packet};
pub use ipv6::Ipv6Packet;
pub use key::{ParseKeyError, WorkloadKey, WorkloadKind};
pub use pcapng::PcapngWriter;
pub use ports::Ports;
pub use profile::{Direction, GreProfile, NetisKey, ParseProfileError, StreamProfile};
pub use sequence::{Observation, SequenceCounters, SequenceTracker};
pub use tcp::{TcpSegment, TcpSegmentMut};
pub use udp::{UdpDatagram, UdpHeader};
pub use vxlan::{VxlanHeader, VxlanPacket};

/// The IP protocol number of GRE (the raw-socket protocol agents send with).
pub const IPPROTO_GRE: u8 = 47;
