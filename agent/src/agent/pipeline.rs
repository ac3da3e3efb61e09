//! Everything that touches a frame between the ring and the socket, and
//! the pipeline as the GRE output's frame sink.

use super::*;

/// Everything that touches a frame between the ring and the socket.
pub(super) struct Pipeline {
    sender: Sender,
    segmenter: Segmenter,
    oversize: OversizeMode,
    /// Bytes kept of each sent frame.
    snaplen: usize,
    /// Largest frame that fits one GRE packet on the collector path.
    max_frame: usize,
    /// Largest frame a GRE packet can carry at all (fragmented).
    max_whole: usize,
    /// A VLAN super-frame with its tag put back, for the segmenter.
    scratch: Vec<u8>,
    admission: Admission,
}

impl Pipeline {
    /// The pipeline for `sender`, frames of up to `max_frame` bytes per packet.
    pub(super) fn new(sender: Sender, max_frame: usize, config: &Config) -> Pipeline {
        Pipeline {
            sender,
            segmenter: Segmenter::new(max_frame),
            oversize: config.oversize,
            snaplen: config.snaplen.unwrap_or(CAPTURE_SNAPLEN),
            max_frame,
            // The outer IPv6 header is the larger of the two.
            max_whole: MAX_IP_PACKET - bpc_wire::ipv6::HEADER_LEN - bpc_wire::encap::MAX_HEADER_LEN,
            scratch: Vec::with_capacity(CAPTURE_SNAPLEN + ethernet::VLAN_TAG_LEN),
            admission: Admission::new(config, Instant::now()),
        }
    }

    /// Sends what is queued, then points the sender at the collectors that
    /// have an address now (and the segmenter at their path MTU); returns
    /// their addresses.
    pub(super) fn retarget(&mut self, stats: &Stats) -> Vec<IpAddr> {
        self.sender.flush(stats);
        let (dests, max_frame) = destinations(stats, self.sender.header_len());
        self.sender.set_destinations(&dests);
        if max_frame != self.max_frame {
            info!(max_frame, "largest frame per GRE packet changed");
            self.max_frame = max_frame;
            self.segmenter = Segmenter::new(max_frame);
        }
        dests.iter().map(|d| d.1).collect()
    }

    pub(super) fn handle(&mut self, frame: Frame<'_>, stats: &Stats) {
        let len = frame.tagged_len();
        if !self.admission.admit(len) {
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
        let tag_len = frame.tagged_len() - frame.data.len();
        let data = if frame.tagged_len() > keep {
            self.admission.tally().truncated(1);
            &frame.data[..keep.saturating_sub(tag_len).max(ethernet::HEADER_LEN).min(frame.data.len())]
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
        self.admission.tally().truncated(truncated);
        match outcome {
            Outcome::Segmented { segments: n } | Outcome::Fragmented { fragments: n } => {
                self.admission.tally().segmented(n as u64);
            }
            Outcome::Unchanged | Outcome::Unsplittable => {}
        }
        if unsplittable {
            self.push_ring(frame, max_whole.min(snaplen), stats);
        }
    }
}

/// The pipeline as the capture's frame sink: frames are queued in the
/// sender straight from ring memory and sent before their blocks go back.
pub(super) struct Forward<'a> {
    pipeline: Pipeline,
    stats: &'a Stats,
    config: &'a Config,
    excluded_port: u16,
    /// The collector resolutions last applied.
    seen_generation: u64,
}

impl<'a> Forward<'a> {
    /// `seen_generation`: the collector resolutions `pipeline` was set up with.
    pub(super) fn new(
        pipeline: Pipeline,
        stats: &'a Stats,
        config: &'a Config,
        excluded_port: u16,
        seen_generation: u64,
    ) -> Forward<'a> {
        Forward { pipeline, stats, config, excluded_port, seen_generation }
    }
}

impl Output for Forward<'_> {
    fn limits(&self) -> &Limits {
        self.pipeline.admission.limits()
    }

    fn before_round(&mut self, capture: &Capture) {
        // After the wait, not before: a new collector address published while
        // we slept must apply to the frames that woke us.
        let generation = self.stats.generation.load(Ordering::Acquire);
        if generation != self.seen_generation {
            self.seen_generation = generation;
            let addresses = self.pipeline.retarget(self.stats);
            reconfigure(self.config, self.stats, capture, &addresses, self.excluded_port);
        }
    }

    fn after_round(&mut self, periodic: bool) -> Result<()> {
        self.pipeline.sender.apply_found_links();
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
        self.pipeline.sender.flush(self.stats);
        self.pipeline.admission.release(self.stats, Instant::now());
    }
}
