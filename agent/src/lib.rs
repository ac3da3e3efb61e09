//! bpc-agent: the capture sidecar.
//!
//! It shares its pod's network namespace, captures the pod's traffic with
//! AF_PACKET TPACKET_V3 rings and a libpcap-compiled filter ([`capture`],
//! [`filter`]), and streams every frame GRE-encapsulated to up to four
//! collectors, through an AF_PACKET TX ring (`txring`) or raw IPPROTO_GRE
//! sockets in `sendmmsg` batches (`send`, `batch`, `gre_socket`).
//! Frames too big for one GRE packet are split by `segment`. Counters are
//! served as JSON, Prometheus text and a health check (`stats`, [`http`]).
//! It needs CAP_NET_RAW and nothing else (`privilege`).
//!
//! Public modules are the ones `main.rs`, the integration tests and the
//! bench tools (`segment`) use; the rest is private, so that rustc reports what nothing uses.

pub mod agent;
mod batch;
pub mod capture;
pub mod config;
mod control;
mod error;
pub mod filter;
mod gre_socket;
pub mod http;
mod icmp;
pub mod iface;
mod link_watch;
mod packet_socket;
mod pcapng;
mod privilege;
mod ratelimit;
mod resolve;
mod route;
pub mod segment;
mod send;
mod stats;
mod txring;

pub use error::{Error, Result};
