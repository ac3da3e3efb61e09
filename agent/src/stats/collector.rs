//! One collector's state: where its name points (written by the resolver,
//! read by the sender and the filter) and what happened to the packets sent
//! to it (written by the sender).

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use super::Moment;

/// Why sends fail, as counted per collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// No route, host or network unreachable, ICMP errors (ENETUNREACH, EHOSTUNREACH, ...).
    Unreachable,
    /// Socket or device queue full (ENOBUFS, EAGAIN): the packet is dropped, not queued.
    NoBuffer,
    /// Anything else (EMSGSIZE, EPERM from a firewall, ...).
    Other,
}

impl SendErrorKind {
    /// Classifies an errno from `sendmmsg`.
    pub fn of_errno(errno: i32) -> Self {
        match errno {
            libc::ENETUNREACH
            | libc::EHOSTUNREACH
            | libc::ENETDOWN
            | libc::EHOSTDOWN
            | libc::ECONNREFUSED
            | libc::EADDRNOTAVAIL
            | libc::ENOPROTOOPT
            | libc::ENONET => SendErrorKind::Unreachable,
            libc::ENOBUFS | libc::EAGAIN | libc::ENOMEM => SendErrorKind::NoBuffer,
            _ => SendErrorKind::Other,
        }
    }

    /// The label used in /stats and /metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SendErrorKind::Unreachable => "unreachable",
            SendErrorKind::NoBuffer => "no_buffer",
            SendErrorKind::Other => "other",
        }
    }
}

/// Where a collector's name currently points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// The address packets go to.
    pub address: IpAddr,
    /// MTU of the route to it (the outer packet must fit it).
    pub path_mtu: u32,
}

/// One collector's counters.
#[derive(Debug)]
pub struct CollectorCounters {
    /// The host as configured.
    pub host: String,
    /// Current address, `None` until a name resolves.
    pub resolution: Mutex<Option<Resolution>>,
    /// Last resolution error, for /healthz.
    pub resolve_error: Mutex<Option<String>>,
    /// What the last ICMP error about our packets said, for /healthz.
    pub icmp_error: Mutex<Option<String>>,
    /// When that ICMP error was read.
    pub last_icmp: Moment,
    /// GRE packets handed to the kernel.
    pub sent_packets: AtomicU64,
    /// Their bytes (GRE header + frame).
    pub sent_bytes: AtomicU64,
    /// Failed sends (no route, ...) and ICMP errors received: unreachable.
    pub unreachable: AtomicU64,
    /// Failed sends: no buffer.
    pub no_buffer: AtomicU64,
    /// Failed DNS resolutions.
    pub resolve: AtomicU64,
    /// Failed sends: other.
    pub other: AtomicU64,
    /// Last successful send.
    pub last_send: Moment,
    /// Last failed send.
    pub last_error: Moment,
}

impl CollectorCounters {
    pub(super) fn new(host: &str) -> Self {
        CollectorCounters {
            host: host.to_owned(),
            resolution: Mutex::new(None),
            resolve_error: Mutex::new(None),
            icmp_error: Mutex::new(None),
            last_icmp: Moment::default(),
            sent_packets: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
            no_buffer: AtomicU64::new(0),
            resolve: AtomicU64::new(0),
            other: AtomicU64::new(0),
            last_send: Moment::default(),
            last_error: Moment::default(),
        }
    }

    /// The counter for `kind`.
    pub fn errors(&self, kind: SendErrorKind) -> &AtomicU64 {
        match kind {
            SendErrorKind::Unreachable => &self.unreachable,
            SendErrorKind::NoBuffer => &self.no_buffer,
            SendErrorKind::Other => &self.other,
        }
    }

    /// The current resolution.
    pub fn resolution(&self) -> Option<Resolution> {
        *self.resolution.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes_match_the_error_kinds() {
        assert_eq!(SendErrorKind::of_errno(libc::ENETUNREACH), SendErrorKind::Unreachable);
        assert_eq!(SendErrorKind::of_errno(libc::EHOSTUNREACH), SendErrorKind::Unreachable);
        assert_eq!(SendErrorKind::of_errno(libc::ENOBUFS), SendErrorKind::NoBuffer);
        assert_eq!(SendErrorKind::of_errno(libc::EAGAIN), SendErrorKind::NoBuffer);
        assert_eq!(SendErrorKind::of_errno(libc::EMSGSIZE), SendErrorKind::Other);
    }
}
