//! bpc-agent: the capture sidecar.
//!
//! It shares its pod's network namespace, captures the pod's traffic with an
//! AF_PACKET TPACKET_V3 ring and a libpcap-compiled filter ([`capture`],
//! [`filter`]), and streams every frame GRE-encapsulated to up to four
//! collectors, through an AF_PACKET TX ring ([`txring`]) or raw IPPROTO_GRE
//! sockets in `sendmmsg` batches ([`send`]).
//! Frames too big for one GRE packet are split by [`segment`]. Counters are
//! served as JSON, Prometheus text and a health check ([`stats`], [`http`]).
//! It needs CAP_NET_RAW and nothing else ([`privilege`]).

pub mod agent;
pub mod capture;
pub mod config;
pub mod control;
pub mod error;
pub mod filter;
pub mod http;
pub mod iface;
pub mod packet_socket;
pub mod pcapng;
pub mod privilege;
pub mod ratelimit;
pub mod resolve;
pub mod route;
pub mod segment;
pub mod send;
pub mod stats;
pub mod txring;

pub use error::{Error, Result};
