//! The one capability the agent needs, CAP_NET_RAW, and stopping on signals.

use std::sync::atomic::{AtomicBool, Ordering};

const CAP_NET_RAW: u32 = 13;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Makes CAP_NET_RAW effective when it is only permitted.
///
/// The image gives the binary the file capability `cap_net_raw=+p` (not
/// `+ep`): with `+ep` the kernel refuses to execute it at all when the
/// runtime did not grant NET_RAW, and the operator would see a bare
/// "operation not permitted" instead of our explanation. Returns whether
/// CAP_NET_RAW is effective now.
pub fn raise_net_raw() -> bool {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a v3 header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return false;
    }
    let bit = 1 << CAP_NET_RAW;
    if data[0].effective & bit != 0 {
        return true;
    }
    if data[0].permitted & bit == 0 {
        return false;
    }
    data[0].effective |= bit;
    // SAFETY: capset with the same header and data we read.
    unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) == 0 }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Installs SIGTERM/SIGINT handlers that set [`stop_requested`]. Without
/// SA_RESTART, so a blocked poll returns at once and the agent exits fast.
pub fn install_stop_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = 0;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread
/// it spawns afterwards, and returns the mask to wait with: the capture loop
/// passes it to `ppoll`, so the signals are delivered only while it sleeps
/// (never to another thread, never lost between checking [`stop_requested`]
/// and sleeping). The loop can then sleep long when idle and still stop at once.
pub fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t manipulation and pthread_sigmask on the calling thread.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTERM);
        libc::sigaddset(&mut block, libc::SIGINT);
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut previous);
        libc::sigdelset(&mut previous, libc::SIGTERM);
        libc::sigdelset(&mut previous, libc::SIGINT);
        previous
    }
}

/// Whether SIGTERM or SIGINT arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Sleeps until SIGTERM or SIGINT arrives (they are delivered only while
/// waiting with `sigmask`, the mask of [`block_stop_signals`]).
pub fn wait_for_stop(sigmask: &libc::sigset_t) {
    while !stop_requested() {
        let timeout = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // SAFETY: no file descriptors, a valid timespec and signal mask.
        unsafe { libc::ppoll(std::ptr::null_mut(), 0, &timeout, sigmask) };
    }
}
