//! The membership in force and, on a leader, the progress of every peer.

mod inflights;
mod progress;

pub use inflights::Inflights;
pub use progress::{Progress, ProgressState};

use crate::proto::ConfState;
use crate::quorum::{JointConfig, VoteResult};

/// The membership: voters (possibly joint) and learners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Who votes.
    pub voters: JointConfig,
    /// Who learns, ascending; never a voter of the incoming half.
    pub learners: Vec<u64>,
    /// Outgoing voters that become learners when the joint state is left.
    pub learners_next: Vec<u64>,
    /// Whether the joint state is left automatically.
    pub auto_leave: bool,
}

impl TrackerConfig {
    /// The configuration as a `ConfState`, the form that is persisted.
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.ids().to_vec(),
            learners: self.learners.clone(),
            voters_outgoing: self.voters.outgoing.ids().to_vec(),
            learners_next: self.learners_next.clone(),
            auto_leave: self.auto_leave,
        }
    }
}

/// Peers' progress, kept sorted by ID: clusters are small, and a sorted
/// vector is both the cheapest to search and deterministic to iterate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgressMap {
    peers: Vec<(u64, Progress)>,
}

impl ProgressMap {
    /// The position of `id`: a linear scan for the usual handful of peers
    /// (cheaper than a binary search there), a binary search beyond.
    #[inline]
    fn position(&self, id: u64) -> Option<usize> {
        if self.peers.len() <= 8 {
            self.peers.iter().position(|p| p.0 == id)
        } else {
            self.peers.binary_search_by_key(&id, |p| p.0).ok()
        }
    }

    /// The progress of `id`.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&Progress> {
        let i = self.position(id)?;
        Some(&self.peers[i].1)
    }

    /// The progress of `id`, to change.
    #[inline]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Progress> {
        let i = self.position(id)?;
        Some(&mut self.peers[i].1)
    }

    /// Adds or replaces the progress of `id`.
    pub fn insert(&mut self, id: u64, pr: Progress) {
        match self.peers.binary_search_by_key(&id, |p| p.0) {
            Ok(i) => self.peers[i].1 = pr,
            Err(i) => self.peers.insert(i, (id, pr)),
        }
    }

    /// Removes the progress of `id`.
    pub fn remove(&mut self, id: u64) {
        if let Ok(i) = self.peers.binary_search_by_key(&id, |p| p.0) {
            self.peers.remove(i);
        }
    }

    /// Every peer, ascending by ID.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Progress)> {
        self.peers.iter().map(|(id, p)| (*id, p))
    }

    /// Every peer, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut Progress)> {
        self.peers.iter_mut().map(|(id, p)| (*id, p))
    }

    /// The `i`-th peer's ID in ascending order (`i < len()`); lets callers
    /// walk the peers while changing other state, without collecting IDs.
    #[inline]
    pub fn id_at(&self, i: usize) -> u64 {
        self.peers[i].0
    }

    /// The `i`-th peer in ascending ID order (`i < len()`).
    #[inline]
    pub fn at(&self, i: usize) -> (u64, &Progress) {
        let (id, pr) = &self.peers[i];
        (*id, pr)
    }

    /// The IDs, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.peers.iter().map(|p| p.0)
    }

    /// The number of peers.
    #[inline]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

/// The membership, every member's progress and the votes of an election.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    /// The membership in force.
    pub config: TrackerConfig,
    /// Every member's progress (voters of both halves and learners).
    pub progress: ProgressMap,
    /// Votes received in the current election, by voter.
    votes: Vec<(u64, bool)>,
    /// The inflight window of each new progress.
    pub(crate) max_inflight: usize,
    pub(crate) max_inflight_bytes: u64,
}

impl ProgressTracker {
    /// An empty tracker whose progresses get these window limits.
    pub fn new(max_inflight: usize, max_inflight_bytes: u64) -> ProgressTracker {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: ProgressMap::default(),
            votes: Vec::new(),
            max_inflight,
            max_inflight_bytes,
        }
    }

    /// The membership as a `ConfState`.
    pub fn conf_state(&self) -> ConfState {
        self.config.to_conf_state()
    }

    /// Whether `id` is a voter (in either half).
    #[inline]
    pub fn is_voter(&self, id: u64) -> bool {
        self.config.voters.contains(id)
    }

    /// Whether the configuration is a single voter, `id`.
    pub fn is_singleton(&self) -> bool {
        self.config.voters.incoming.len() == 1 && !self.config.voters.is_joint()
    }

    /// The highest index a quorum of voters has acknowledged.
    #[inline]
    pub fn committed(&self) -> u64 {
        if !self.config.voters.is_joint() && self.progress.len() <= 7 {
            // Outside joint consensus the voters are exactly the members
            // that are not learners: read their progress in one pass.
            let mut acked = [0u64; 7];
            let mut n = 0;
            for (_, pr) in self.progress.iter().filter(|(_, p)| !p.is_learner) {
                acked[n] = pr.matched;
                n += 1;
            }
            debug_assert_eq!(
                n,
                self.config.voters.incoming.len(),
                "voters are the non-learners"
            );
            return crate::quorum::quorum_index(&mut acked[..n]);
        }
        let progress = &self.progress;
        self.config
            .voters
            .committed_index(&|id| progress.get(id).map(|p| p.matched))
    }

    /// Whether a quorum of voters was recently active (`recent_active`).
    pub fn quorum_active(&self) -> bool {
        let progress = &self.progress;
        self.config.voters.vote_result(|id| {
            progress
                .get(id)
                .filter(|p| !p.is_learner)
                .map(|p| p.recent_active)
        }) == VoteResult::Won
    }

    /// Forgets the votes of the last election.
    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote; the first vote of each voter counts.
    pub fn record_vote(&mut self, id: u64, granted: bool) {
        if !self.votes.iter().any(|v| v.0 == id) {
            self.votes.push((id, granted));
        }
    }

    /// The election's tally: (granted, rejected, result).
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let voters = self.config.voters.ids();
        let count = |want: bool| {
            self.votes
                .iter()
                .filter(|(id, g)| *g == want && voters.contains(id))
                .count()
        };
        let result = self
            .config
            .voters
            .vote_result(|id| self.votes.iter().find(|v| v.0 == id).map(|v| v.1));
        (count(true), count(false), result)
    }

    /// The IDs of all members (voters and learners), ascending.
    pub fn member_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.progress.ids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(voters: &[u64]) -> ProgressTracker {
        let mut t = ProgressTracker::new(8, 0);
        t.config.voters = JointConfig::new(voters.iter().copied());
        for &id in voters {
            t.progress.insert(id, Progress::new(1, 8, 0));
        }
        t
    }

    #[test]
    fn votes_count_once_and_only_from_voters() {
        let mut t = tracker(&[1, 2, 3]);
        t.record_vote(1, true);
        t.record_vote(1, false);
        t.record_vote(9, true);
        assert_eq!(t.tally_votes(), (1, 0, VoteResult::Pending));
        t.record_vote(2, true);
        assert_eq!(t.tally_votes(), (2, 0, VoteResult::Won));
    }

    #[test]
    fn quorum_active_needs_a_majority() {
        let mut t = tracker(&[1, 2, 3]);
        t.progress.get_mut(1).unwrap().recent_active = true;
        assert!(!t.quorum_active());
        t.progress.get_mut(3).unwrap().recent_active = true;
        assert!(t.quorum_active());
    }

    #[test]
    fn committed_uses_matched() {
        let mut t = tracker(&[1, 2, 3]);
        t.progress.get_mut(1).unwrap().matched = 7;
        t.progress.get_mut(2).unwrap().matched = 4;
        assert_eq!(t.committed(), 4);
        assert_eq!(t.conf_state().voters, vec![1, 2, 3]);
    }
}
