//! A single set of voters deciding by simple majority.

use super::{AckedIndexer, VoteResult};

/// A set of voters (sorted, without duplicates) that decide by majority.
///
/// The empty set is a degenerate case: it commits everything and wins every
/// vote, so that in a joint configuration with an empty half only the
/// other half decides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MajorityConfig {
    voters: Vec<u64>,
}

impl MajorityConfig {
    /// A configuration of these voters (any order, duplicates ignored).
    pub fn new(voters: impl IntoIterator<Item = u64>) -> MajorityConfig {
        let mut voters: Vec<u64> = voters.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        MajorityConfig { voters }
    }

    /// The voters, in ascending order.
    pub fn ids(&self) -> &[u64] {
        &self.voters
    }

    /// Whether `id` is a voter.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// The number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether there are no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Adds a voter.
    pub fn insert(&mut self, id: u64) {
        if let Err(pos) = self.voters.binary_search(&id) {
            self.voters.insert(pos, id);
        }
    }

    /// Removes a voter.
    pub fn remove(&mut self, id: u64) {
        if let Ok(pos) = self.voters.binary_search(&id) {
            self.voters.remove(pos);
        }
    }

    /// The highest index that a majority has acknowledged; `u64::MAX` for
    /// the empty set. Voters with an unknown index count as 0.
    pub fn committed_index(&self, acks: &impl AckedIndexer) -> u64 {
        let n = self.voters.len();
        if n == 0 {
            return u64::MAX;
        }
        // Small clusters sort on the stack; this runs after every
        // acknowledgement on the leader.
        let mut stack = [0u64; 7];
        let mut heap;
        let idx: &mut [u64] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap = vec![0u64; n];
            &mut heap
        };
        for (slot, &id) in idx.iter_mut().zip(&self.voters) {
            *slot = acks.acked_index(id).unwrap_or(0);
        }
        quorum_index(idx)
    }

    /// How a vote came out, given each voter's vote (`None`: not yet).
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for &id in &self.voters {
            match votes(id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.voters.len() / 2 + 1;
        if yes >= q {
            VoteResult::Won
        } else if yes + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// The highest value that a majority of `acked` (one value per voter)
/// has reached; `acked` is reordered. Empty input gives `u64::MAX`.
#[inline]
pub fn quorum_index(acked: &mut [u64]) -> u64 {
    let n = acked.len();
    if n == 0 {
        return u64::MAX;
    }
    acked.sort_unstable();
    // Sorted ascending, the value at n - (n/2 + 1) is held by n/2 + 1
    // voters or more: a majority.
    acked[n - (n / 2 + 1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn committed_index_examples() {
        let acks: HashMap<u64, u64> = [(1, 5), (2, 3), (3, 9)].into();
        let f = |id| acks.get(&id).copied();
        assert_eq!(MajorityConfig::new([1, 2, 3]).committed_index(&f), 5);
        assert_eq!(MajorityConfig::new([1, 2]).committed_index(&f), 3);
        assert_eq!(MajorityConfig::new([3]).committed_index(&f), 9);
        assert_eq!(MajorityConfig::new([1, 2, 3, 4]).committed_index(&f), 3);
        assert_eq!(MajorityConfig::new([]).committed_index(&f), u64::MAX);
    }

    #[test]
    fn vote_result_examples() {
        let c = MajorityConfig::new([1, 2, 3]);
        assert_eq!(c.vote_result(|_| None), VoteResult::Pending);
        assert_eq!(
            c.vote_result(|id| (id < 3).then_some(true)),
            VoteResult::Won
        );
        assert_eq!(
            c.vote_result(|id| (id < 3).then_some(false)),
            VoteResult::Lost
        );
        assert_eq!(
            c.vote_result(|id| (id == 1)
                .then_some(true)
                .or(Some(false).filter(|_| id == 2))),
            VoteResult::Pending
        );
        assert_eq!(
            MajorityConfig::new([]).vote_result(|_| None),
            VoteResult::Won
        );
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config())]
        /// The committed index is the largest index that at least a
        /// majority of voters has reached, checked against a brute force
        /// definition.
        #[test]
        fn committed_index_is_largest_majority_index(
            acks in proptest::collection::vec(proptest::option::of(0u64..20), 1..12)
        ) {
            let voters: Vec<u64> = (1..=acks.len() as u64).collect();
            let cfg = MajorityConfig::new(voters.clone());
            let f = |id: u64| acks[(id - 1) as usize];
            let got = cfg.committed_index(&f);
            let q = voters.len() / 2 + 1;
            let reached = |i: u64| acks.iter().filter(|a| a.unwrap_or(0) >= i).count() >= q;
            prop_assert!(reached(got));
            prop_assert!(!reached(got + 1));
        }

        /// A vote is won exactly when a majority said yes, lost exactly when
        /// a majority can no longer say yes.
        #[test]
        fn vote_result_matches_counts(
            votes in proptest::collection::vec(proptest::option::of(any::<bool>()), 1..12)
        ) {
            let cfg = MajorityConfig::new(1..=votes.len() as u64);
            let r = cfg.vote_result(|id| votes[(id - 1) as usize]);
            let q = votes.len() / 2 + 1;
            let yes = votes.iter().filter(|v| **v == Some(true)).count();
            let no = votes.iter().filter(|v| **v == Some(false)).count();
            let want = if yes >= q { VoteResult::Won }
                else if votes.len() - no >= q { VoteResult::Pending }
                else { VoteResult::Lost };
            prop_assert_eq!(r, want);
        }
    }
}
