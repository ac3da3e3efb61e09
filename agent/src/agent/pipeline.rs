//! Everything that touches a frame between the ring and the socket, and
//! the pipeline as the GRE output's frame sink.

use super::*;

/// Per-block tallies, added to the shared atomics once per block.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) truncated: u64,
    pub(super) segmented: u64,
    pub(super) segments: u64,
    pub(super) rate_limited: u64,
}

/// `--duration` and `--count`: when the capture ends by itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) deadline: Option<Instant>,
    /// Packets still to capture.
    pub(super) remaining: Option<u64>,
}

impl Limits {
    pub(super) fn new(config: &Config, now: Instant) -> Limits {
        Limits { deadline: config.duration.map(|d| now + d), remaining: config.count }
    }

    /// Takes one packet; false once `--count` packets were taken.
    pub(super) fn take(&mut self) -> bool {
        match &mut self.remaining {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }

    pub(super) fn reached(&self, now: Instant) -> bool {
        self.remaining == Some(0) || self.deadline.is_some_and(|d| now >= d)
    }

    /// How long to sleep in ppoll: the idle period, shorter near the deadline.
    pub(super) fn poll_ms(&self, now: Instant) -> i32 {
        match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(now).as_millis().min(POLL_MS as u128) as i32;
                left.max(1)
            }
            None => POLL_MS,
        }
    }
}

/// Everything that touches a frame between the ring and the socket.
pub(super) struct Pipeline {
    pub(super) sender: Sender,
    pub(super) segmenter: Segmenter,
    pub(super) limiter: RateLimiter,
    pub(super) oversize: OversizeMode,
    /// Bytes kept of each sent frame.
    pub(super) snaplen: usize,
    /// Largest frame that fits one GRE packet on the collector path.
    pub(super) max_frame: usize,
    /// Largest frame a GRE packet can carry at all (fragmented).
    pub(super) max_whole: usize,
    /// A VLAN super-frame with its tag put back, for the segmenter.
    pub(super) scratch: Vec<u8>,
    pub(super) tally: Tally,
    pub(super) limits: Limits,
}

impl Pipeline {
    pub(super) fn handle(&mut self, frame: Frame<'_>, stats: &Stats) {
        if !self.limits.take() {
            return;
        }
        let tag_len = if frame.vlan.is_some() { 4 } else { 0 };
        let len = frame.data.len() + tag_len;
        self.tally.packets += 1;
        self.tally.bytes += len as u64;
        if !self.limiter.admit(len) {
            self.tally.rate_limited += 1;
            return;
        }
        // Longer than a ring block (BIG TCP): the kernel kept only the start,
        // which cannot be segmented; send what there is, cut to fit, and
        // count it as truncated.
        if frame.data.len() < (frame.wire_len as usize).min(CAPTURE_SNAPLEN) {
            self.push_ring(frame, self.max_frame.min(self.snaplen), stats);
            return;
        }
        if len <= self.max_frame {
            self.push_ring(frame, self.snaplen, stats);
            return;
        }
        match self.oversize {
            OversizeMode::Truncate => self.push_ring(frame, self.max_frame.min(self.snaplen), stats),
            OversizeMode::Fragment => self.push_ring(frame, self.max_whole.min(self.snaplen), stats),
            OversizeMode::Segment => self.segment(frame, stats),
        }
    }

    /// Queues a ring frame (zero copy), cut to `keep` bytes.
    pub(super) fn push_ring(&mut self, frame: Frame<'_>, keep: usize, stats: &Stats) {
        let tag_len = if frame.vlan.is_some() { 4 } else { 0 };
        let data = if frame.data.len() + tag_len > keep {
            self.tally.truncated += 1;
            &frame.data[..keep.saturating_sub(tag_len).max(14).min(frame.data.len())]
        } else {
            frame.data
        };
        // SAFETY: the frame lives in the ring block being processed; the
        // capture loop flushes the sender before it releases that block.
        unsafe { self.sender.push_borrowed(data, frame.vlan, frame.timestamp, stats) };
    }

    pub(super) fn segment(&mut self, frame: Frame<'_>, stats: &Stats) {
        let data: &[u8] = match frame.vlan.as_ref().and_then(|tag| Retagged::new(frame.data, tag)) {
            // The scratch buffer holds a whole capture (allocated once); encode cannot fail.
            Some(tagged) => {
                self.scratch.resize(tagged.len(), 0);
                match tagged.encode(&mut self.scratch) {
                    Ok(n) => &self.scratch[..n],
                    Err(_) => frame.data,
                }
            }
            None => frame.data,
        };
        let whole = data.as_ptr();
        let (snaplen, max_whole, captured) = (self.snaplen, self.max_whole, frame.timestamp);
        let mut truncated = 0;
        let mut unsplittable = false;
        let outcome = self.segmenter.segment(data, |out| {
            if out.as_ptr() == whole {
                // Handed back whole: send it from the ring like --oversize fragment.
                unsplittable = true;
                return;
            }
            let keep = out.len().min(snaplen);
            truncated += u64::from(keep < out.len());
            self.sender.push_copied(&out[..keep], captured, stats);
        });
        self.tally.truncated += truncated;
        match outcome {
            Outcome::Segmented { segments: n } | Outcome::Fragmented { fragments: n } => {
                self.tally.segmented += 1;
                self.tally.segments += n as u64;
            }
            Outcome::Unchanged | Outcome::Unsplittable => {}
        }
        if unsplittable {
            self.push_ring(frame, max_whole.min(snaplen), stats);
        }
    }

    pub(super) fn publish(&mut self, stats: &Stats, now: Instant) {
        publish(std::mem::take(&mut self.tally), stats, now);
    }
}

/// The pipeline as the capture's frame sink: frames are queued in the
/// sender straight from ring memory and sent before their blocks go back.
pub(super) struct Forward<'a> {
    pub(super) pipeline: &'a mut Pipeline,
    pub(super) stats: &'a Stats,
    pub(super) config: &'a Config,
    pub(super) excluded_port: u16,
    /// The collector resolutions last applied.
    pub(super) seen_generation: u64,
}

impl Output for Forward<'_> {
    fn limits(&self) -> &Limits {
        &self.pipeline.limits
    }

    fn before_round(&mut self, capture: &Capture) {
        // After the wait, not before: a new collector address published while
        // we slept must apply to the frames that woke us.
        let generation = self.stats.generation.load(Ordering::Acquire);
        if generation != self.seen_generation {
            self.seen_generation = generation;
            reconfigure(self.config, self.stats, capture, self.pipeline, self.excluded_port);
        }
    }

    fn after_round(&mut self, periodic: bool) -> Result<()> {
        if periodic {
            self.pipeline.sender.drain_icmp_errors(self.stats);
            // After the ICMP errors: the window judges them with the sends.
            self.stats.roll_recent(Instant::now());
            self.pipeline.sender.refresh_links();
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.pipeline.sender.flush(self.stats);
        Ok(())
    }
}

impl FrameSink for Forward<'_> {
    fn frame(&mut self, frame: Frame<'_>) {
        self.pipeline.handle(frame, self.stats);
    }

    fn release(&mut self) {
        let now = Instant::now();
        self.pipeline.sender.flush(self.stats);
        self.pipeline.publish(self.stats, now);
        if self.pipeline.limiter.is_active() {
            self.pipeline.limiter.refill(now);
        }
    }
}

/// Adds a batch's tallies to the shared counters.
pub(super) fn publish(t: Tally, stats: &Stats, now: Instant) {
    if t.packets == 0 {
        return;
    }
    let c = &stats.capture;
    c.packets.fetch_add(t.packets, Ordering::Relaxed);
    c.bytes.fetch_add(t.bytes, Ordering::Relaxed);
    c.truncated.fetch_add(t.truncated, Ordering::Relaxed);
    c.segmented.fetch_add(t.segmented, Ordering::Relaxed);
    c.segments.fetch_add(t.segments, Ordering::Relaxed);
    c.rate_limited.fetch_add(t.rate_limited, Ordering::Relaxed);
    c.last_packet.set(stats.started, now);
}
