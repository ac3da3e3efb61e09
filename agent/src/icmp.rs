//! ICMP errors about the GRE packets sent: read from the raw sockets' error
//! queues (`IP_RECVERR`), and what each means for a collector.

use std::mem::{size_of, size_of_val};
use std::os::fd::{AsRawFd, OwnedFd};

/// What an ICMP error means for a collector, for logs and /healthz.
pub fn describe(v6: bool, icmp_type: u8, code: u8) -> String {
    let what = match (v6, icmp_type, code) {
        (false, 3, 0) | (true, 1, 0) => "network unreachable",
        (false, 3, 1) | (true, 1, 3) => "host unreachable",
        (false, 3, 2) | (true, 4, 1) => "protocol unreachable: no GRE receiver on the collector host",
        (false, 3, 3) | (true, 1, 4) => "port unreachable",
        (false, 3, 4) => "fragmentation needed",
        (true, 2, _) => "packet too big",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "administratively prohibited (firewall or NetworkPolicy)",
        (false, 11, _) | (true, 3, _) => "time exceeded",
        _ => "",
    };
    if what.is_empty() {
        format!("ICMP{} type {icmp_type} code {code}", if v6 { "v6" } else { "" })
    } else {
        what.to_owned()
    }
}

/// Reads every ICMP error the kernel queued on `fd` (never blocks) and calls
/// `each(address the failed packet went to, ICMP type, code)` for each.
pub(crate) fn read_errors(fd: &OwnedFd, mut each: impl FnMut(&libc::sockaddr_storage, u8, u8)) {
    loop {
        // SAFETY: plain data buffers for recvmsg.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut data = [0u8; 64];
        let mut control = [0u64; 64];
        let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
        // SAFETY: msghdr is plain data; the pointers below are valid for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut name).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: recvmsg on our socket with the buffers above.
        let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc < 0 {
            break;
        }
        if let Some((icmp_type, icmp_code)) = extended_error(&msg) {
            each(&name, icmp_type, icmp_code);
        }
    }
}

/// The ICMP type and code of an error-queue message, if it carries one.
fn extended_error(msg: &libc::msghdr) -> Option<(u8, u8)> {
    // SAFETY: walks the control buffer recvmsg filled, with the libc CMSG macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR)
            {
                let ee: libc::sock_extended_err = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP || ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6 {
                    return Some((ee.ee_type, ee.ee_code));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}
