//! Two sets of voters that must both agree (joint consensus, thesis §4.3).

use super::{AckedIndexer, MajorityConfig, VoteResult};

/// The incoming and outgoing voter sets. Outside joint consensus the
/// outgoing set is empty, and the configuration behaves as the incoming
/// majority alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct JointConfig {
    /// The new (or only) voters.
    pub incoming: MajorityConfig,
    /// The old voters while joint; empty otherwise.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// A non-joint configuration of these voters.
    pub fn new(voters: impl IntoIterator<Item = u64>) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(voters),
            outgoing: MajorityConfig::default(),
        }
    }

    /// Whether a joint state is in force.
    #[inline]
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes in either half.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// Every voter of either half, ascending and without duplicates.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .incoming
            .ids()
            .iter()
            .chain(self.outgoing.ids())
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The highest index committed by both halves.
    pub fn committed_index(&self, acks: &impl AckedIndexer) -> u64 {
        self.incoming
            .committed_index(acks)
            .min(self.outgoing.committed_index(acks))
    }

    /// A vote is won when both halves won it, lost when either lost it.
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool>) -> VoteResult {
        let a = self.incoming.vote_result(&votes);
        let b = self.outgoing.vote_result(&votes);
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn joint_needs_both_majorities() {
        let j = JointConfig {
            incoming: MajorityConfig::new([1, 2, 3]),
            outgoing: MajorityConfig::new([3, 4, 5]),
        };
        let acks = |id: u64| Some([0, 9, 9, 2, 1, 1][id as usize]);
        // Incoming commits 9 (1 and 2), outgoing only 1 (4 and 5 at 1, 3 at 2).
        assert_eq!(j.committed_index(&acks), 1);
        assert_eq!(j.vote_result(|id| Some(id <= 2)), VoteResult::Lost);
        assert_eq!(
            j.vote_result(|id| Some((2..=4).contains(&id))),
            VoteResult::Won
        );
        assert_eq!(
            j.vote_result(|id| (id <= 2).then_some(true)),
            VoteResult::Pending
        );
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config())]
        /// A non-joint configuration behaves exactly like its majority.
        #[test]
        fn non_joint_is_the_majority(
            acks in proptest::collection::vec(0u64..50, 1..9),
        ) {
            let n = acks.len() as u64;
            let j = JointConfig::new(1..=n);
            let m = MajorityConfig::new(1..=n);
            let f = |id: u64| Some(acks[(id - 1) as usize]);
            prop_assert_eq!(j.committed_index(&f), m.committed_index(&f));
        }

        /// The joint committed index is held by a majority of each half.
        #[test]
        fn joint_commit_is_safe_in_both_halves(
            acks in proptest::collection::vec(0u64..50, 2..10),
            split in 1usize..9,
        ) {
            let n = acks.len() as u64;
            let split = (split as u64).min(n - 1);
            let j = JointConfig {
                incoming: MajorityConfig::new(1..=split),
                outgoing: MajorityConfig::new(split..=n),
            };
            let f = |id: u64| Some(acks[(id - 1) as usize]);
            let c = j.committed_index(&f);
            for half in [&j.incoming, &j.outgoing] {
                let held = half.ids().iter().filter(|&&id| f(id).unwrap() >= c).count();
                prop_assert!(held > half.len() / 2);
            }
        }
    }
}
