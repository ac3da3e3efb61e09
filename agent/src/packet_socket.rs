//! The socket calls the agent's sockets need (the capture rings, the TX
//! ring, the GRE senders' drop-all filter, the path MTU), with the step they
//! belong to named in their errors.

use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Error, Result};

/// `setsockopt(2)` with a typed value; `what` names the step in the error.
pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &'static str,
) -> Result<()> {
    // SAFETY: value points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(Error::last_os(what)) }
}

/// `getsockopt(2)` into a `T` of plain data (a C struct or integer, for
/// which all-zero bytes are valid); `what` names the step in the error.
pub(crate) fn getsockopt<T: Copy>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    what: &'static str,
) -> Result<T> {
    // SAFETY: T is plain data, so zero bytes are a valid value.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most len bytes into value.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&raw mut value).cast(), &mut len) };
    if rc == 0 { Ok(value) } else { Err(Error::last_os(what)) }
}

/// Maps the ring the kernel allocated for an AF_PACKET socket
/// (PACKET_RX_RING or PACKET_TX_RING), shared, with `flags` added.
pub(crate) fn map_ring(
    fd: &OwnedFd,
    len: usize,
    flags: libc::c_int,
    what: &'static str,
) -> Result<*mut libc::c_void> {
    // SAFETY: maps `len` bytes of the ring the kernel holds for fd; the
    // caller unmaps exactly that length when it drops the ring.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED { Err(Error::last_os(what)) } else { Ok(map) }
}

/// Attaches a classic BPF program to a socket (replacing any earlier one atomically).
pub fn attach_filter(fd: &OwnedFd, program: &[libc::sock_filter]) -> Result<()> {
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
    setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &prog,
        "attach the capture filter (SO_ATTACH_FILTER)",
    )
}
