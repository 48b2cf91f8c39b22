//! What a leader knows about one follower's log.

use super::inflights::Inflights;

/// How a leader replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressState {
    /// The follower's log position is unknown: send one append at a time
    /// and go back on rejection until the logs match.
    #[default]
    Probe,
    /// The logs match: stream appends optimistically, within the inflight
    /// window.
    Replicate,
    /// The follower needs entries the leader compacted: a snapshot is on its
    /// way, and nothing else is sent until it is reported.
    Snapshot,
}

/// A leader's view of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to be in the peer's log.
    pub matched: u64,
    /// The next index to send.
    pub next_idx: u64,
    /// How the leader replicates to the peer.
    pub state: ProgressState,
    /// In `Snapshot` state, the index of the snapshot sent.
    pub pending_snapshot: u64,
    /// Whether the peer was heard from since the last quorum check.
    pub recent_active: bool,
    /// In `Probe` state, whether a probe is out and the next must wait.
    pub probe_sent: bool,
    /// The highest commit index sent to the peer.
    pub sent_commit: u64,
    /// Append messages in flight.
    pub inflights: Inflights,
    /// Whether the peer is a learner.
    pub is_learner: bool,
}

impl Progress {
    /// A peer in probe state whose next index is `next_idx`.
    pub fn new(next_idx: u64, max_inflight: usize, max_inflight_bytes: u64) -> Progress {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            probe_sent: false,
            sent_commit: 0,
            inflights: Inflights::new(max_inflight, max_inflight_bytes),
            is_learner: false,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    /// Go back to probing from just after what is known to match (or after
    /// the snapshot that was sent).
    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched + 1;
        }
    }

    /// Start streaming after the matched index.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    /// A snapshot at `snapshot_index` is being sent.
    pub fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// The peer acknowledged up to `index`; returns whether that was news.
    #[inline]
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(index.saturating_add(1));
        updated
    }

    /// Entries up to `last` were sent, `bytes` of them: in replicate state
    /// they join the window, in probe state the probe is out.
    #[inline]
    pub fn sent_entries(&mut self, last: u64, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if last >= self.next_idx {
                    self.inflights.add(last, bytes);
                    self.next_idx = last + 1;
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// The peer rejected an append after `rejected`, hinting that its log may
    /// match at `match_hint`. Returns whether the rejection was news (not a
    /// stale answer to an earlier message) and `next_idx` moved back.
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Only a rejection of something above what matched is news.
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        // In probe state only the rejection of the last probe counts.
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = (match_hint + 1).min(rejected).max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    /// Whether sending appends must wait.
    #[inline]
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_waits_for_its_probe() {
        let mut p = Progress::new(5, 10, 0);
        assert!(!p.is_paused());
        p.sent_entries(6, 10);
        assert!(p.is_paused());
        assert!(p.maybe_update(6));
        assert!(!p.is_paused());
        assert_eq!(p.next_idx, 7);
    }

    #[test]
    fn decrement_rules() {
        // Replicate: stale rejections are ignored, fresh ones fall back to match+1.
        let mut p = Progress::new(1, 10, 0);
        p.matched = 5;
        p.become_replicate();
        p.sent_entries(10, 0);
        assert!(!p.maybe_decr_to(5, 5));
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next_idx, 6);
        // Probe: only the outstanding probe's rejection counts, and the hint
        // moves next back but never at or below match.
        let mut p = Progress::new(10, 10, 0);
        p.matched = 2;
        assert!(!p.maybe_decr_to(5, 1), "not the probe that was sent");
        assert!(p.maybe_decr_to(9, 4));
        assert_eq!(p.next_idx, 5);
        assert!(p.maybe_decr_to(4, 0));
        assert_eq!(p.next_idx, 3);
    }

    #[test]
    fn snapshot_to_probe_skips_past_the_snapshot() {
        let mut p = Progress::new(3, 10, 0);
        p.become_snapshot(20);
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next_idx, 21);
    }
}
