//! The sockets a receiver reads and its receive loop: a raw IPPROTO_GRE
//! socket (GRE, ERSPAN II and III) and a UDP socket on the VXLAN port, each
//! read with `recvmmsg` into pre-allocated buffers with the kernel's
//! per-packet receive times.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bpc_wire::{Decapsulated, Ipv4Packet};
use socket2::{Domain, Protocol, Socket, Type};

use super::accounting::{FrameSink, State, bump, handle};
use crate::Error;

const BATCH: usize = 64;
const BUF: usize = 65536;
/// Control buffer per message: room for one SCM_TIMESTAMPNS (a timespec).
const CTRL: usize = 64;

pub(super) fn sock_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Socket { what: what.to_string(), source }
}

/// Opens the UDP socket VXLAN arrives on.
pub(super) fn vxlan_socket(listen: IpAddr, port: u16) -> Result<Socket, Error> {
    let domain = if listen.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket =
        Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(sock_err("opening a UDP socket"))?;
    if listen.is_ipv6() {
        // One family per receiver, as for GRE.
        let _ = socket.set_only_v6(true);
    }
    socket.bind(&SocketAddr::new(listen, port).into()).map_err(|source| Error::Socket {
        what: format!("binding the VXLAN port {listen}:{port}"),
        source,
    })?;
    force_recv_buffer(&socket, 64 << 20);
    socket.set_read_timeout(Some(Duration::from_millis(50))).map_err(sock_err("setting timeout"))?;
    Ok(socket)
}

/// Opens the raw GRE socket (IPv4 or IPv6 as `listen` is).
pub(super) fn gre_socket(listen: IpAddr) -> Result<Socket, Error> {
    let domain = if listen.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(bpc_wire::IPPROTO_GRE as i32)))
        .map_err(sock_err("opening a raw GRE socket"))?;
    socket.bind(&SocketAddr::new(listen, 0).into()).map_err(sock_err("binding"))?;
    force_recv_buffer(&socket, 64 << 20);
    socket.set_read_timeout(Some(Duration::from_millis(50))).map_err(sock_err("setting timeout"))?;
    Ok(socket)
}

/// What a receiving socket delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    /// A raw GRE socket: GRE and ERSPAN, with the IPv4 header before them (IPv6: none).
    RawGre { v4: bool },
    /// A UDP socket on the VXLAN port: the VXLAN header and the frame.
    Vxlan,
}

pub(super) fn receive_loop(
    socket: Socket,
    arrival: Arrival,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    sink: Option<Arc<Mutex<dyn FrameSink>>>,
) {
    let mut bufs = vec![0u8; BATCH * BUF];
    // SAFETY: sockaddr_storage is plain integers and bytes: all zeroes is a valid value.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = (0..BATCH)
        .map(|i| libc::iovec { iov_base: bufs[i * BUF..].as_mut_ptr().cast(), iov_len: BUF })
        .collect();
    // Per-packet kernel receive times (SO_TIMESTAMPNS): packets of one
    // batch differ, which a handshake's RTT needs. Without them, the batch's time.
    let stamped = set_socket_int(&socket, libc::SO_TIMESTAMPNS, 1);
    let mut ctrl = vec![[0u64; CTRL / 8]; BATCH];
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|i| {
            // SAFETY: mmsghdr is integers and raw pointers: all zeroes (null
            // pointers, zero lengths) is a valid, empty message.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            m
        })
        .collect();
    let fd = socket.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = &mut iovs[i];
            if stamped {
                m.msg_hdr.msg_control = ctrl[i].as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = CTRL as _;
            }
        }
        // SAFETY: msgs point at iovs/addrs/bufs, all alive and sized as declared.
        let n = unsafe {
            libc::recvmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if n <= 0 {
            continue;
        }
        let now = SystemTime::now();
        let mut st = state.lock().unwrap();
        for i in 0..n as usize {
            let len = msgs[i].msg_len as usize;
            let data = &bufs[i * BUF..i * BUF + len];
            let src = sockaddr_ip(&addrs[i]);
            let now = if stamped { kernel_time(&msgs[i].msg_hdr).unwrap_or(now) } else { now };
            // An IPv4 raw socket delivers the IP header too; IPv6 does not.
            let decoded = match arrival {
                Arrival::RawGre { v4: true } => match Ipv4Packet::parse(data) {
                    Ok(ip) => Decapsulated::from_gre(ip.payload),
                    Err(_) => {
                        bump(&mut st, "truncated_ip");
                        continue;
                    }
                },
                Arrival::RawGre { v4: false } => Decapsulated::from_gre(data),
                Arrival::Vxlan => Decapsulated::from_vxlan(data),
            };
            handle(&mut st, src, decoded, now, sink.as_deref());
        }
    }
}

/// A large receive buffer absorbs bursts; root may exceed rmem_max with
/// SO_RCVBUFFORCE, otherwise the kernel caps the ordinary request.
fn force_recv_buffer(socket: &Socket, bytes: libc::c_int) {
    if !set_socket_int(socket, libc::SO_RCVBUFFORCE, bytes) {
        let _ = socket.set_recv_buffer_size(bytes as usize);
    }
}

/// Sets a SOL_SOCKET option socket2 does not wrap; true when the kernel took it.
fn set_socket_int(socket: &Socket, option: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: setsockopt reads exactly size_of::<c_int>() bytes from a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    rc == 0
}

/// The SCM_TIMESTAMPNS control message of a received packet.
fn kernel_time(hdr: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the control buffer was filled by recvmmsg for this header; the
    // CMSG macros stay within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

fn sockaddr_ip(sa: &libc::sockaddr_storage) -> IpAddr {
    if sa.ss_family as i32 == libc::AF_INET6 {
        // SAFETY: family says sockaddr_in6.
        let s: &libc::sockaddr_in6 = unsafe { &*(sa as *const _ as *const libc::sockaddr_in6) };
        IpAddr::from(s.sin6_addr.s6_addr)
    } else {
        // SAFETY: family AF_INET (sockaddr_in fits in storage).
        let s: &libc::sockaddr_in = unsafe { &*(sa as *const _ as *const libc::sockaddr_in) };
        IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes())
    }
}
