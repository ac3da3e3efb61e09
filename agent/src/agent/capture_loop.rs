//! The one capture loop over an [`Output`], with the stop and linger rules.

use super::*;

/// Where the capture loop's frames go, and what each round ends with: GRE
/// to the collectors ([`Forward`]) or a pcapng file ([`WritePcapng`]).
pub(super) trait Output: FrameSink {
    /// `--duration` and `--count`.
    fn limits(&self) -> &Limits;
    /// Before a round's frames are taken.
    fn before_round(&mut self, _capture: &Capture) {}
    /// After a round; `periodic` once per [`STATS_PERIOD`], after the kernel
    /// counters were read. An error ends the capture.
    fn after_round(&mut self, periodic: bool) -> Result<()>;
    /// After the last frames, the kernel counters read a last time.
    fn finish(&mut self) -> Result<()>;
}

/// The one capture loop: wait for the rings, hand their blocks to `output`,
/// until a stop (with `--linger`), `--duration` or `--count`; then the
/// last blocks and the output's last word.
pub(super) fn capture_loop(
    capture: &mut Capture,
    output: &mut impl Output,
    iface: &Interface,
    stats: &Stats,
    linger: Duration,
    wait_mask: &libc::sigset_t,
) -> Result<()> {
    let base_ifdrops = iface.rx_dropped();
    let mut last_stats = Instant::now();
    // Capture is live: /startupz passes from here.
    stats.capture.heartbeat.set(stats.started, Instant::now());
    let mut shutdown = Shutdown::new(linger);
    let result = loop {
        let now = Instant::now();
        if shutdown.done(stats, now) || output.limits().reached(now) {
            break Ok(());
        }
        let poll = shutdown.poll_ms().unwrap_or_else(|| output.limits().poll_ms(now)).min(capture.poll_ms());
        if let Err(e) = capture.wait(poll, wait_mask) {
            break Err(e);
        }
        output.before_round(capture);
        let blocks = capture.block_count();
        let drained = capture.drain(output, blocks);
        let now = Instant::now();
        capture.steer(drained, now);
        stats.capture.set_path(capture.path());
        stats.capture.heartbeat.set(stats.started, now);
        let periodic = now.duration_since(last_stats) >= STATS_PERIOD;
        if periodic {
            last_stats = now;
            read_kernel_counters(capture, iface, base_ifdrops, stats);
        }
        if let Err(e) = output.after_round(periodic) {
            break Err(e);
        }
        if let Some(pause) = capture.pause(drained) {
            rest(pause, wait_mask);
        }
    };
    if result.is_ok() {
        last_blocks(capture, output);
    }
    read_kernel_counters(capture, iface, base_ifdrops, stats);
    result.and_then(|()| output.finish())
}

/// Lets frames gather for `pause`, ended early by a stop signal: with the
/// signal mask of the wait (the stop signals are unblocked only there).
fn rest(pause: Duration, wait_mask: &libc::sigset_t) {
    let timeout = libc::timespec {
        tv_sec: pause.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(pause.subsec_nanos() as i32),
    };
    // SAFETY: no descriptors (a null array of length 0), a valid timespec and signal mask.
    unsafe { libc::ppoll(std::ptr::null_mut(), 0, &timeout, wait_mask) };
}

/// After SIGTERM or SIGINT: stop at once, or with `--linger`, keep capturing
/// while the pod still has traffic, within the linger.
struct Shutdown {
    linger: Duration,
    /// When the stop signal was first seen.
    since: Option<Instant>,
}

/// Lingering ends after this long without a captured packet.
const LINGER_QUIET: Duration = Duration::from_secs(1);
/// How often lingering looks at the clock.
const LINGER_POLL_MS: i32 = 100;
/// The kernel retires the block being filled within its timeout (counted in
/// jiffies): waiting this long before the last drain takes the frames of the
/// pod's last moments too.
const LAST_BLOCK_WAIT: Duration = Duration::from_millis(20);

impl Shutdown {
    fn new(linger: Duration) -> Shutdown {
        Shutdown { linger, since: None }
    }

    /// Whether the capture should end now.
    fn done(&mut self, stats: &Stats, now: Instant) -> bool {
        if !privilege::stop_requested() {
            return false;
        }
        let since = *self.since.get_or_insert_with(|| {
            if !self.linger.is_zero() {
                info!(linger = ?self.linger, "stop requested: capturing while the pod still has traffic");
            }
            now
        });
        let stopping_for = now.saturating_duration_since(since);
        let quiet = stats.capture.last_packet.age(stats.started, now).is_none_or(|a| a >= LINGER_QUIET);
        stopping_for >= self.linger || (stopping_for >= LINGER_QUIET && quiet)
    }

    /// The wait while lingering: short, to see the clock.
    pub(super) fn poll_ms(&self) -> Option<i32> {
        self.since.map(|_| LINGER_POLL_MS)
    }
}

/// The last drain: the block being filled when the capture ended, once the
/// kernel has retired it.
pub(super) fn last_blocks(capture: &mut Capture, sink: &mut impl FrameSink) {
    std::thread::sleep(LAST_BLOCK_WAIT);
    capture.wait_retired();
    let blocks = capture.block_count();
    capture.drain(sink, blocks);
}

/// Reads the kernel's drop counters and the interface's into the shared counters.
pub(super) fn read_kernel_counters(capture: &Capture, iface: &Interface, base_ifdrops: u64, stats: &Stats) {
    match capture.stats() {
        Ok(s) => {
            stats.capture.kernel_drops.fetch_add(u64::from(s.drops), Ordering::Relaxed);
        }
        Err(e) => warn!(error = %e, "cannot read capture statistics"),
    }
    stats.capture.interface_drops.store(iface.rx_dropped().saturating_sub(base_ifdrops), Ordering::Relaxed);
}
