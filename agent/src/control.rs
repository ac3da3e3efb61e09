//! `--stdin-control`: start and stop driven by whoever attached to stdin.
//!
//! A container's output written before anyone attaches is not replayed by the
//! runtime, so `kubectl bpc capture -w` would miss the pcapng header. The
//! agent therefore waits for one byte on stdin (sent once the attach stream
//! is up) before it captures, and stops when stdin sends another byte or
//! closes: with `stdinOnce` the runtime closes it when the attach session
//! ends, so a plugin that dies never leaves the capture running.

use std::io;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::privilege;

/// How long the agent waits for its start byte: a plugin that patched the pod
/// but never attached (killed, lost its connection) must not leave a capture
/// container waiting forever.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Waits for the start byte on stdin with `sigmask` while waiting (see
/// [`privilege::block_stop_signals`]). `Ok(true)`: start; `Ok(false)`: stdin
/// closed or SIGTERM/SIGINT before the start, so there is nothing to do.
pub fn wait_for_start(sigmask: &libc::sigset_t) -> Result<bool> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if privilege::stop_requested() {
            return Ok(false);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Io {
                what: format!(
                    "--stdin-control: no start byte on stdin within {}s (nobody attached)",
                    START_TIMEOUT.as_secs()
                ),
                source: io::ErrorKind::TimedOut.into(),
            });
        }
        let mut pfd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        let timeout = libc::timespec { tv_sec: left.as_secs().min(1) as libc::time_t, tv_nsec: 0 };
        // SAFETY: one valid pollfd, a valid timespec and signal mask.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, &timeout, sigmask) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::Io { what: "poll stdin (--stdin-control)".into(), source: err });
        }
        if rc == 0 {
            continue;
        }
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into a live u8.
        let n = unsafe { libc::read(0, (&raw mut byte).cast(), 1) };
        return Ok(n == 1);
    }
}

/// Starts a thread that turns the next byte on stdin, or its close, into a
/// SIGTERM for this process: the capture loop stops the way it does for
/// `kubectl delete`, flushing what it has.
pub fn spawn_stop_watch() -> io::Result<()> {
    std::thread::Builder::new().name("stdin-control".into()).spawn(|| {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads at most one byte into a live u8.
            let n = unsafe { libc::read(0, (&raw mut byte).cast(), 1) };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        tracing::info!("stdin-control: stop requested on stdin");
        // Process-directed, so it reaches the capture thread in its ppoll:
        // this thread blocks SIGTERM like every thread but that one.
        // SAFETY: kill(2) on our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    })?;
    Ok(())
}
