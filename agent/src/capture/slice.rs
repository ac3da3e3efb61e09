//! The capture thread's scheduler slice: short on the prompt path, the
//! kernel's default on the blocks.
//!
//! Why: on the prompt path every frame wakes the capture thread, and when
//! the CPU it wakes on is running something else (the pod's application,
//! which shares its CPUs with the sidecar), the fair scheduler lets that
//! task finish its slice first: milliseconds, by default. Since Linux 6.12
//! (EEVDF) a thread may ask for a shorter slice (`sched_attr.sched_runtime`
//! of a `SCHED_OTHER` thread, 0.1 to 100 ms, no privilege needed); a
//! shorter slice preempts longer ones on wake-up. Measured with everything
//! on one CPU at 50 requests a second (`scripts/bench-timeline.sh` under
//! `taskset -c 1`, three runs each): the largest response-time error at the
//! collector fell from 3.1–5.8 ms to 0.4–1.1 ms. On the blocks path the
//! rate is high and the thread runs longer rounds: there a short slice
//! would only add preemptions, so the default comes back. Older kernels accept the call
//! and ignore the value; a refusal (a seccomp profile) is logged once and
//! the capture goes on without it.

use std::io;
use std::time::Duration;

use super::steer::Path;

/// The slice the capture thread asks for on the prompt path: the kernel's
/// shortest.
pub const PROMPT_SLICE: Duration = Duration::from_micros(100);

/// The slice the capture thread holds, kept in step with the path.
#[derive(Debug, Default)]
pub struct ThreadSlice {
    /// The path whose slice the thread holds; `None` before the first.
    applied: Option<Path>,
    /// The kernel refused once: no more asking.
    refused: bool,
}

impl ThreadSlice {
    /// Asks for the slice of `path` when it is not the one held. Must run on
    /// the capture thread: the slice is the calling thread's.
    pub fn follow(&mut self, path: Path) {
        if self.refused || self.applied == Some(path) {
            return;
        }
        let slice = match path {
            Path::Prompt => Some(PROMPT_SLICE),
            Path::Blocks => None,
        };
        match request(slice) {
            Ok(()) => self.applied = Some(path),
            Err(e) => {
                self.refused = true;
                tracing::info!(error = %e, "no shorter scheduler slice for the capture thread; wake-ups may wait behind other tasks");
            }
        }
    }
}

/// Asks the scheduler for `slice` on the calling thread (`None`: the
/// default), keeping its policy and nice value. Only a `SCHED_OTHER` thread
/// is changed: a thread someone put under another policy is left as it is.
pub fn request(slice: Option<Duration>) -> io::Result<()> {
    // SAFETY: sched_attr is plain old data; a zeroed one is valid.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = size_of::<libc::sched_attr>() as u32;
    // SAFETY: the kernel writes at most `size` bytes into `attr`; pid 0 is this thread.
    if unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut libc::sched_attr, size, 0) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    if attr.sched_policy != libc::SCHED_OTHER as u32 {
        return Ok(());
    }
    attr.size = size;
    attr.sched_flags = 0;
    attr.sched_runtime = slice.map_or(0, |s| s.as_nanos() as u64);
    // SAFETY: `attr` is a valid sched_attr of `size` bytes; pid 0 is this thread.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const libc::sched_attr, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's slice request, as the kernel reports it (0: none).
#[cfg(test)]
fn current_runtime_ns() -> u64 {
    // SAFETY: as in `request`.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = size_of::<libc::sched_attr>() as u32;
    // SAFETY: as in `request`.
    let rc =
        unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut libc::sched_attr, size, 0) };
    assert_eq!(rc, 0, "sched_getattr: {}", io::Error::last_os_error());
    attr.sched_runtime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_path_asks_for_the_short_slice_and_the_blocks_give_it_back_keeping_nice() {
        // On a thread of its own: the slice is per thread.
        std::thread::spawn(|| {
            // SAFETY: setpriority on this thread (who 0), raising nice needs no privilege.
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 5) }, 0);
            let mut slice = ThreadSlice::default();
            slice.follow(Path::Prompt);
            assert!(!slice.refused, "the kernel refused the slice");
            // Kernels before EEVDF's custom slices accept and report 0.
            let runtime = current_runtime_ns();
            assert!(runtime == PROMPT_SLICE.as_nanos() as u64 || runtime == 0, "{runtime}");
            // SAFETY: as above.
            assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, 5, "nice kept");
            slice.follow(Path::Blocks);
            assert_eq!(slice.applied, Some(Path::Blocks));
            let after = current_runtime_ns();
            assert!(after == 0 || after != PROMPT_SLICE.as_nanos() as u64, "default slice back: {after}");
        })
        .join()
        .unwrap();
    }
}
