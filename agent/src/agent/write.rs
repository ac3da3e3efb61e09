//! `--write`: the capture loop's pcapng output.

use super::*;

/// The `--write` loop's frame sink: rate limit → pcapng (frames are copied
/// into the writer, so giving blocks back needs nothing but the tallies).
pub(super) struct WritePcapng<'a> {
    out: &'a mut PcapngOut,
    admission: Admission,
    snaplen: usize,
    stats: &'a Stats,
    delivered: u64,
    failed: Option<Error>,
}

impl FrameSink for WritePcapng<'_> {
    fn frame(&mut self, frame: Frame<'_>) {
        let len = frame.tagged_len();
        if self.failed.is_some() || !self.admission.admit(len) {
            return;
        }
        self.admission.tally().truncated(u64::from(len.min(self.snaplen) < frame.wire_len as usize));
        match self.out.packet(&frame, self.snaplen) {
            Ok(()) => self.delivered += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    fn release(&mut self) {
        self.admission.release(self.stats, Instant::now());
    }
}

impl WritePcapng<'_> {
    /// The interface statistics block: what was captured, dropped and written.
    pub(super) fn statistics(&mut self) -> Result<()> {
        let s = self.stats.snapshot(Instant::now());
        self.out.statistics(
            wall_clock(),
            Counters {
                received: s.capture.packets,
                interface_drops: s.capture.interface_drops,
                os_drops: s.capture.kernel_drops + s.capture.rate_limited,
                delivered: self.delivered,
            },
        )
    }
}

impl Output for WritePcapng<'_> {
    fn limits(&self) -> &Limits {
        self.admission.limits()
    }

    fn after_round(&mut self, periodic: bool) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if periodic {
            self.statistics()?;
        }
        self.out.flush()
    }

    /// The last word: final counters, then everything to the reader.
    fn finish(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.statistics()?;
        self.out.flush()
    }
}

/// The `--write` loop: capture → filter already applied → rate limit → pcapng.
pub(super) fn write_loop(
    config: &Config,
    capture: &mut Capture,
    iface: &Interface,
    mut out: PcapngOut,
    snaplen: usize,
    stats: &Stats,
    wait_mask: &libc::sigset_t,
) -> Result<()> {
    let mut sink = WritePcapng {
        out: &mut out,
        admission: Admission::new(config, Instant::now()),
        snaplen,
        stats,
        delivered: 0,
        failed: None,
    };
    match capture_loop(capture, &mut sink, iface, stats, config.linger, wait_mask) {
        Err(e) if pcapng::reader_gone(&e) => {
            info!("the reader of --write went away (broken pipe); stopping");
            Ok(())
        }
        other => other,
    }
}
