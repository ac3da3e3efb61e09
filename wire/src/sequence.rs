//! Loss, reorder and duplicate accounting from GRE sequence numbers.
//!
//! Sequence numbers are 32-bit and wrap; comparisons use serial number
//! arithmetic (RFC 1982): `a` is after `b` when `a - b`, taken as a signed
//! 32-bit number, is positive.
//!
//! Agents number their packets from 0. A packet that arrives behind the
//! expected number is *late* (it was counted as lost when the gap opened, so
//! it is taken off `lost`) or a *duplicate* (already seen), as long as it is
//! within the last [`WINDOW`] numbers. A stream *restarts* (a new agent
//! process started counting from 0 again) when sequence 0 arrives although it
//! was already seen, or when a number below [`WINDOW`] arrives more than
//! [`WINDOW`] behind: counting continues from there without 4 billion losses.

/// How many sequence numbers behind the newest one are remembered, to tell a
/// late packet from a duplicate.
pub const WINDOW: u32 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

/// What one sequence number meant for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The stream's first packet.
    First,
    /// Exactly the expected number.
    InOrder,
    /// Ahead of the expected number: `missing` packets are (so far) lost.
    Gap {
        /// How many numbers were skipped.
        missing: u32,
    },
    /// Behind the expected number and not seen before: reordered.
    Late,
    /// Already seen.
    Duplicate,
    /// The sender restarted its numbering: a new stream began.
    Restart,
}

/// Counters of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequenceCounters {
    /// Packets observed, duplicates included.
    pub received: u64,
    /// Numbers skipped and not (yet) arrived late.
    pub lost: u64,
    /// Packets that arrived behind a higher number (late, not duplicate).
    pub reordered: u64,
    /// Packets whose number was already seen.
    pub duplicated: u64,
    /// Times the sender restarted its numbering.
    pub restarts: u64,
}

/// Tracks one stream's sequence numbers (one per key and sender).
#[derive(Debug, Clone)]
pub struct SequenceTracker {
    /// The next number expected; meaningful once `started`.
    next: u32,
    started: bool,
    /// Bit `s % WINDOW` is set when `s`, one of the `WINDOW` numbers before
    /// `next`, was seen.
    seen: [u64; WORDS],
    counters: SequenceCounters,
}

impl Default for SequenceTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SequenceTracker {
    /// A tracker that has seen nothing.
    pub const fn new() -> Self {
        Self {
            next: 0,
            started: false,
            seen: [0; WORDS],
            counters: SequenceCounters { received: 0, lost: 0, reordered: 0, duplicated: 0, restarts: 0 },
        }
    }

    /// The counters so far.
    pub const fn counters(&self) -> SequenceCounters {
        self.counters
    }

    /// The next sequence number expected, if any packet was seen.
    pub const fn expected(&self) -> Option<u32> {
        if self.started { Some(self.next) } else { None }
    }

    fn bit(seq: u32) -> (usize, u64) {
        let slot = seq % WINDOW;
        ((slot / 64) as usize, 1u64 << (slot % 64))
    }

    fn is_seen(&self, seq: u32) -> bool {
        let (word, mask) = Self::bit(seq);
        self.seen[word] & mask != 0
    }

    fn mark_seen(&mut self, seq: u32) {
        let (word, mask) = Self::bit(seq);
        self.seen[word] |= mask;
    }

    /// Starts counting afresh at `seq` (first packet, or a restart).
    fn begin(&mut self, seq: u32) {
        self.seen = [0; WORDS];
        self.mark_seen(seq);
        self.next = seq.wrapping_add(1);
        self.started = true;
    }

    /// Accounts for one received sequence number.
    pub fn observe(&mut self, seq: u32) -> Observation {
        self.counters.received += 1;
        if !self.started {
            self.begin(seq);
            return Observation::First;
        }
        let ahead = seq.wrapping_sub(self.next) as i32;
        if ahead >= 0 {
            let ahead = ahead as u32;
            // Slots from `next` to `seq` now enter the window: forget what
            // they meant WINDOW numbers ago.
            if ahead >= WINDOW {
                self.seen = [0; WORDS];
            } else {
                for s in 0..=ahead {
                    let (word, mask) = Self::bit(self.next.wrapping_add(s));
                    self.seen[word] &= !mask;
                }
            }
            self.mark_seen(seq);
            self.next = seq.wrapping_add(1);
            if ahead == 0 {
                return Observation::InOrder;
            }
            self.counters.lost += u64::from(ahead);
            return Observation::Gap { missing: ahead };
        }
        let behind = ahead.unsigned_abs();
        if behind <= WINDOW {
            if self.is_seen(seq) {
                if seq == 0 {
                    self.counters.restarts += 1;
                    self.begin(seq);
                    return Observation::Restart;
                }
                self.counters.duplicated += 1;
                return Observation::Duplicate;
            }
            self.mark_seen(seq);
            self.counters.lost = self.counters.lost.saturating_sub(1);
            self.counters.reordered += 1;
            return Observation::Late;
        }
        if seq < WINDOW {
            self.counters.restarts += 1;
            self.begin(seq);
            return Observation::Restart;
        }
        // Later than the window remembers: it was counted lost when its gap
        // opened; whether it is also a duplicate can no longer be told.
        self.counters.lost = self.counters.lost.saturating_sub(1);
        self.counters.reordered += 1;
        Observation::Late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u32]) -> (Vec<Observation>, SequenceCounters) {
        let mut t = SequenceTracker::new();
        let obs = seqs.iter().map(|&s| t.observe(s)).collect();
        (obs, t.counters())
    }

    #[test]
    fn in_order_stream_has_no_loss() {
        let seqs: Vec<u32> = (0..10_000).collect();
        let (_, c) = run(&seqs);
        assert_eq!(c, SequenceCounters { received: 10_000, ..Default::default() });
    }

    #[test]
    fn gap_counts_missing_numbers_as_lost() {
        let (obs, c) = run(&[0, 1, 5, 6]);
        assert_eq!(obs[2], Observation::Gap { missing: 3 });
        assert_eq!((c.received, c.lost, c.reordered), (4, 3, 0));
    }

    #[test]
    fn late_packet_is_reordered_and_no_longer_lost() {
        let (obs, c) = run(&[0, 2, 1, 3]);
        assert_eq!(
            obs,
            [Observation::First, Observation::Gap { missing: 1 }, Observation::Late, Observation::InOrder]
        );
        assert_eq!((c.lost, c.reordered, c.duplicated), (0, 1, 0));
    }

    #[test]
    fn repeated_number_is_duplicate() {
        let (obs, c) = run(&[0, 1, 2, 1, 2, 3]);
        assert_eq!(obs[3], Observation::Duplicate);
        assert_eq!((c.received, c.lost, c.duplicated, c.reordered), (6, 0, 2, 0));
    }

    #[test]
    fn wrap_around_is_in_order() {
        let start = u32::MAX - 3;
        let seqs: Vec<u32> = (0..8).map(|i| start.wrapping_add(i)).collect();
        let (obs, c) = run(&seqs);
        assert!(obs[1..].iter().all(|o| *o == Observation::InOrder), "{obs:?}");
        assert_eq!(c.lost, 0);
        // A late 0 just after the wrap is reordering, not a restart.
        let (obs, c) = run(&[u32::MAX - 1, u32::MAX, 1, 0, 2]);
        assert_eq!(obs[3], Observation::Late);
        assert_eq!((c.lost, c.reordered, c.restarts), (0, 1, 0));
    }

    /// Numbers `0..n`, then `then`: how the first of `then` is seen, and the counters.
    fn after_a_run_of(n: u32, then: std::ops::Range<u32>) -> (Observation, SequenceCounters) {
        let seqs: Vec<u32> = (0..n).chain(then).collect();
        let (obs, c) = run(&seqs);
        (obs[n as usize], c)
    }

    #[test]
    fn agent_restart_is_a_new_stream_not_four_billion_losses() {
        let (first, c) = after_a_run_of(100_000, 0..50);
        assert_eq!(first, Observation::Restart);
        assert_eq!(c, SequenceCounters { received: 100_050, restarts: 1, ..Default::default() });
    }

    #[test]
    fn restart_soon_after_start_is_detected_by_sequence_zero() {
        let (obs, c) = run(&[0, 1, 2, 3, 0, 1, 2]);
        assert_eq!(obs[4], Observation::Restart);
        assert_eq!((c.restarts, c.duplicated, c.lost), (1, 0, 0));
    }

    #[test]
    fn restart_whose_first_packet_was_lost_is_still_a_restart() {
        let (first, c) = after_a_run_of(10_000, 3..10);
        assert_eq!(first, Observation::Restart);
        assert_eq!((c.restarts, c.lost), (1, 0));
    }

    #[test]
    fn packet_later_than_window_is_late_not_restart() {
        let mut seqs: Vec<u32> = vec![0];
        seqs.extend(10_001..20_000);
        seqs.push(5_000);
        let (obs, c) = run(&seqs);
        assert_eq!(*obs.last().unwrap(), Observation::Late);
        assert_eq!((c.lost, c.reordered, c.restarts), (10_000 - 1, 1, 0));
    }

    #[test]
    fn gap_wider_than_window_forgets_old_numbers() {
        let (obs, c) = run(&[0, 1, 1 + 2 * WINDOW, 2 * WINDOW]);
        assert_eq!(obs[3], Observation::Late);
        assert_eq!(c.duplicated, 0);
    }

    #[test]
    fn first_packet_may_have_any_number() {
        let (obs, c) = run(&[1000, 1001]);
        assert_eq!(obs, [Observation::First, Observation::InOrder]);
        assert_eq!(c.lost, 0);
    }
}
