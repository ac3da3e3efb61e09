//! The raw IPPROTO_GRE sockets (IPPROTO_UDP for VXLAN): the kernel adds the
//! outer IP header (and fragments what exceeds the path MTU); `sendmmsg`
//! sends a batch per call.
//!
//! VXLAN goes through a raw UDP socket rather than an ordinary one because
//! its source port is per flow (ECMP entropy, RFC 7348): the agent writes the
//! UDP header itself. Over IPv4 its checksum is 0 (RFC 7348 allows it); over
//! IPv6, where 0 is invalid, the kernel computes it (`IPV6_CHECKSUM`).

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::stats::SendErrorKind;

fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a c_int value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as u32,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Opens a raw socket of `protocol` (GRE, or UDP for VXLAN) for one address
/// family: non-blocking (a full queue drops, it never blocks capture), DF
/// clear (oversize packets are fragmented rather than refused), and a filter
/// that drops everything it would otherwise receive (all GRE, or all UDP,
/// arriving in the pod).
pub(crate) fn open(family: libc::c_int, protocol: u8) -> Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::c_int::from(protocol),
        )
    };
    if raw < 0 {
        return Err(Error::last_os(if protocol == bpc_wire::IPPROTO_GRE {
            "open the raw GRE socket"
        } else {
            "open the raw UDP socket (VXLAN)"
        }));
    }
    // SAFETY: fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let drop_all = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }];
    crate::packet_socket::attach_filter(&fd, &drop_all)?;
    let pmtu = if family == libc::AF_INET {
        set_int(&fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DONT)
    } else {
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DONT)
    };
    pmtu.map_err(|e| Error::os("clear DF on the GRE socket", e))?;
    // Without RECVERR an unconnected raw socket ignores ICMP errors: a
    // collector host with no GRE receiver would look healthy.
    let recverr = if family == libc::AF_INET {
        set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
    } else {
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
    };
    recverr.map_err(|e| Error::os("enable ICMP error reports on the GRE socket", e))?;
    if family == libc::AF_INET6 && protocol == bpc_wire::encap::IPPROTO_UDP {
        // The kernel fills UDP's checksum field in what we write; IPv6 forbids 0.
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, bpc_wire::udp::CHECKSUM_AT as libc::c_int)
            .map_err(|e| Error::os("have the kernel checksum VXLAN's UDP over IPv6", e))?;
    }
    // Absorbs bursts; the kernel caps it at net.core.wmem_max.
    let _ = set_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20);
    Ok(fd)
}

/// A socket address for `ip` (port 0), for `msg_name`.
pub(crate) fn sockaddr(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match SocketAddr::new(ip, 0) {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_addr.s6_addr = a.ip().octets();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Whether two socket addresses (port ignored) name the same IP address.
pub(crate) fn same_address(a: &libc::sockaddr_storage, b: &libc::sockaddr_storage) -> bool {
    if a.ss_family != b.ss_family {
        return false;
    }
    // SAFETY: the family says which sockaddr type each storage holds.
    unsafe {
        match i32::from(a.ss_family) {
            libc::AF_INET => {
                let (a, b) = (
                    &*(a as *const _ as *const libc::sockaddr_in),
                    &*(b as *const _ as *const libc::sockaddr_in),
                );
                a.sin_addr.s_addr == b.sin_addr.s_addr
            }
            libc::AF_INET6 => {
                let (a, b) = (
                    &*(a as *const _ as *const libc::sockaddr_in6),
                    &*(b as *const _ as *const libc::sockaddr_in6),
                );
                a.sin6_addr.s6_addr == b.sin6_addr.s6_addr
            }
            _ => false,
        }
    }
}

/// What one [`send_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub packets: u64,
    pub bytes: u64,
}

/// Sends every message of `msgs` on `fd` (`sendmmsg`, non-blocking, as many
/// calls as it takes). A message that fails is skipped and `failed(kind, 1)`
/// called; when sends fail twice in a row for the same lasting reason (no
/// route, queue full), the rest would fail the same way and are counted with
/// one `failed(kind, rest)` without trying.
pub(crate) fn send_all(
    fd: &OwnedFd,
    msgs: &mut [libc::mmsghdr],
    mut failed: impl FnMut(SendErrorKind, u64),
) -> Sent {
    let n = msgs.len();
    let mut sent = Sent::default();
    let (mut off, mut failed_in_a_row) = (0usize, 0);
    while off < n {
        // SAFETY: msgs[off..] are filled by the caller with pointers it keeps
        // valid for this call.
        let rc = unsafe {
            libc::sendmmsg(fd.as_raw_fd(), msgs[off..].as_mut_ptr(), (n - off) as u32, libc::MSG_DONTWAIT)
        };
        if rc > 0 {
            failed_in_a_row = 0;
            let rc = rc as usize;
            sent.packets += rc as u64;
            sent.bytes += msgs[off..off + rc].iter().map(|m| u64::from(m.msg_len)).sum::<u64>();
            off += rc;
            continue;
        }
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if errno == libc::EINTR {
            continue;
        }
        let kind = SendErrorKind::of_errno(errno);
        failed_in_a_row += 1;
        if kind == SendErrorKind::Other || failed_in_a_row == 1 {
            // One bad message (EMSGSIZE), or a one-off error: a pending
            // ICMP error fails exactly one send. Skip it, send the rest.
            failed(kind, 1);
            off += 1;
        } else {
            failed(kind, (n - off) as u64);
            off = n;
        }
    }
    sent
}
