//! Computing a new membership from a configuration change, and rebuilding
//! the membership from a `ConfState`.
//!
//! A change is computed on copies and returned; the caller switches to it.
//! Simple changes alter at most one voter. Anything larger goes through
//! joint consensus: the old voters stay as the outgoing half until the
//! joint state is left (thesis §4.3).

use crate::proto::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType,
};
use crate::quorum::MajorityConfig;
use crate::tracker::{Progress, ProgressMap, ProgressTracker, TrackerConfig};
use bytes::Bytes;
use prost::Message as _;
use thiserror::Error;

/// Why a configuration change cannot be applied.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfChangeError {
    /// Entering joint consensus while already joint.
    #[error("configuration is already joint")]
    AlreadyJoint,
    /// Leaving joint consensus while not joint.
    #[error("configuration is not joint")]
    NotJoint,
    /// A simple change may not run while joint.
    #[error("a simple change cannot be applied while joint")]
    SimpleWhileJoint,
    /// A simple change that alters more than one voter.
    #[error("more than one voter changed without entering joint consensus")]
    TooManyVoterChanges,
    /// The change would leave no voters.
    #[error("the change removes all voters")]
    RemovesAllVoters,
    /// Joint consensus cannot start from an empty configuration.
    #[error("cannot enter joint consensus from a configuration without voters")]
    ZeroVoters,
    /// A change of an unknown kind.
    #[error("unknown change type {0}")]
    UnknownType(i32),
    /// An unknown transition.
    #[error("unknown transition {0}")]
    UnknownTransition(i32),
}

/// A configuration change of either version, as the application proposes
/// it: `ConfChange` (one change) or `ConfChangeV2` (several, joint).
pub trait ConfChangeI {
    /// The change in the V2 form every rule works on.
    fn as_v2(&self) -> ConfChangeV2;
    /// A log entry carrying the change in its own version's encoding.
    fn to_entry(&self) -> Entry;
}

impl ConfChangeI for ConfChange {
    fn as_v2(&self) -> ConfChangeV2 {
        self.clone().into_v2()
    }
    fn to_entry(&self) -> Entry {
        let mut e = Entry::new(0, 0, Bytes::from(self.encode_to_vec()));
        e.entry_type = EntryType::EntryConfChange as i32;
        e
    }
}

impl ConfChangeI for ConfChangeV2 {
    fn as_v2(&self) -> ConfChangeV2 {
        self.clone()
    }
    fn to_entry(&self) -> Entry {
        let mut e = Entry::new(0, 0, Bytes::from(self.encode_to_vec()));
        e.entry_type = EntryType::EntryConfChangeV2 as i32;
        e
    }
}

/// The configuration change an entry carries, in the V2 form; `None` for a
/// normal entry. A payload that does not decode is an error.
pub fn decode_conf_change(e: &Entry) -> Result<Option<ConfChangeV2>, prost::DecodeError> {
    match e.kind() {
        EntryType::EntryNormal => Ok(None),
        EntryType::EntryConfChange => Ok(Some(ConfChange::decode(e.data.clone())?.into_v2())),
        EntryType::EntryConfChangeV2 => Ok(Some(ConfChangeV2::decode(e.data.clone())?)),
    }
}

/// The membership and progress a change produces.
pub type Changed = (TrackerConfig, ProgressMap);

impl ConfChangeV2 {
    /// Whether applying this change enters joint consensus, and if so
    /// whether the joint state is left automatically.
    pub fn enter_joint(&self) -> Result<Option<bool>, ConfChangeError> {
        let transition = ConfChangeTransition::try_from(self.transition)
            .map_err(|_| ConfChangeError::UnknownTransition(self.transition))?;
        if transition == ConfChangeTransition::Auto && self.changes.len() <= 1 {
            return Ok(None);
        }
        if self.changes.is_empty() {
            return Ok(None);
        }
        Ok(Some(transition != ConfChangeTransition::Explicit))
    }
}

/// Computes new memberships from the one in a tracker.
pub struct Changer<'a> {
    tracker: &'a ProgressTracker,
    /// New peers start probing from here.
    last_index: u64,
}

impl<'a> Changer<'a> {
    /// A changer over `tracker`; new peers start at `last_index`.
    pub fn new(tracker: &'a ProgressTracker, last_index: u64) -> Changer<'a> {
        Changer {
            tracker,
            last_index,
        }
    }

    /// The membership after `cc`: leave joint (empty change), enter joint,
    /// or a simple change, as the change says.
    pub fn apply(&self, cc: &ConfChangeV2) -> Result<Changed, ConfChangeError> {
        if cc.leaves_joint() {
            return self.leave_joint();
        }
        match cc.enter_joint()? {
            Some(auto_leave) => self.enter_joint(auto_leave, &cc.changes),
            None => self.simple(&cc.changes),
        }
    }

    /// Enters joint consensus: the current voters become the outgoing half
    /// and the changes apply to the incoming half.
    pub fn enter_joint(
        &self,
        auto_leave: bool,
        changes: &[ConfChangeSingle],
    ) -> Result<Changed, ConfChangeError> {
        let (mut cfg, mut prs) = self.snapshot();
        if cfg.voters.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        if cfg.voters.incoming.is_empty() {
            return Err(ConfChangeError::ZeroVoters);
        }
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        self.apply_changes(&mut cfg, &mut prs, changes)?;
        cfg.auto_leave = auto_leave;
        Ok((cfg, prs))
    }

    /// Leaves joint consensus: the outgoing half is dropped, and its voters
    /// that were demoted become learners.
    pub fn leave_joint(&self) -> Result<Changed, ConfChangeError> {
        let (mut cfg, mut prs) = self.snapshot();
        if !cfg.voters.is_joint() {
            return Err(ConfChangeError::NotJoint);
        }
        for id in std::mem::take(&mut cfg.learners_next) {
            insert_sorted(&mut cfg.learners, id);
            if let Some(pr) = prs.get_mut(id) {
                pr.is_learner = true;
            }
        }
        for &id in cfg.voters.outgoing.ids() {
            if !cfg.voters.incoming.contains(id) && cfg.learners.binary_search(&id).is_err() {
                prs.remove(id);
            }
        }
        cfg.voters.outgoing = MajorityConfig::default();
        cfg.auto_leave = false;
        Ok((cfg, prs))
    }

    /// Applies changes that alter at most one voter, outside joint
    /// consensus.
    pub fn simple(&self, changes: &[ConfChangeSingle]) -> Result<Changed, ConfChangeError> {
        let (mut cfg, mut prs) = self.snapshot();
        if cfg.voters.is_joint() {
            return Err(ConfChangeError::SimpleWhileJoint);
        }
        self.apply_changes(&mut cfg, &mut prs, changes)?;
        let before = self.tracker.config.voters.incoming.ids();
        let after = cfg.voters.incoming.ids();
        let differ = before.iter().filter(|id| !after.contains(id)).count()
            + after.iter().filter(|id| !before.contains(id)).count();
        if differ > 1 {
            return Err(ConfChangeError::TooManyVoterChanges);
        }
        Ok((cfg, prs))
    }

    fn snapshot(&self) -> Changed {
        (self.tracker.config.clone(), self.tracker.progress.clone())
    }

    fn apply_changes(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut ProgressMap,
        changes: &[ConfChangeSingle],
    ) -> Result<(), ConfChangeError> {
        for cc in changes {
            if cc.node_id == 0 {
                continue;
            }
            let kind = ConfChangeType::try_from(cc.change_type)
                .map_err(|_| ConfChangeError::UnknownType(cc.change_type))?;
            match kind {
                ConfChangeType::AddNode => self.make_voter(cfg, prs, cc.node_id),
                ConfChangeType::AddLearnerNode => self.make_learner(cfg, prs, cc.node_id),
                ConfChangeType::RemoveNode => remove(cfg, prs, cc.node_id),
                ConfChangeType::UpdateNode => {}
            }
        }
        if cfg.voters.incoming.is_empty() {
            return Err(ConfChangeError::RemovesAllVoters);
        }
        Ok(())
    }

    fn new_progress(&self, is_learner: bool) -> Progress {
        let mut pr = Progress::new(
            self.last_index.max(1),
            self.tracker.max_inflight,
            self.tracker.max_inflight_bytes,
        );
        pr.is_learner = is_learner;
        // A new peer counts as active so that a leader adding it does not
        // step down at the next quorum check before it could answer.
        pr.recent_active = true;
        pr
    }

    fn make_voter(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        match prs.get_mut(id) {
            None => prs.insert(id, self.new_progress(false)),
            Some(pr) => pr.is_learner = false,
        }
        remove_sorted(&mut cfg.learners, id);
        remove_sorted(&mut cfg.learners_next, id);
        cfg.voters.incoming.insert(id);
    }

    fn make_learner(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        let Some(pr) = prs.get(id).cloned() else {
            prs.insert(id, self.new_progress(true));
            insert_sorted(&mut cfg.learners, id);
            return;
        };
        if pr.is_learner {
            return;
        }
        // A voter becomes a learner: out of the incoming half now; if it
        // still votes in the outgoing half, only once the joint state ends.
        remove(cfg, prs, id);
        let mut pr = pr;
        if cfg.voters.outgoing.contains(id) {
            insert_sorted(&mut cfg.learners_next, id);
        } else {
            pr.is_learner = true;
            insert_sorted(&mut cfg.learners, id);
        }
        prs.insert(id, pr);
    }
}

fn remove(cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
    cfg.voters.incoming.remove(id);
    remove_sorted(&mut cfg.learners, id);
    remove_sorted(&mut cfg.learners_next, id);
    // An outgoing voter keeps its progress while the joint state lasts.
    if !cfg.voters.outgoing.contains(id) {
        prs.remove(id);
    }
}

fn insert_sorted(v: &mut Vec<u64>, id: u64) {
    if let Err(i) = v.binary_search(&id) {
        v.insert(i, id);
    }
}

fn remove_sorted(v: &mut Vec<u64>, id: u64) {
    if let Ok(i) = v.binary_search(&id) {
        v.remove(i);
    }
}

fn single(kind: ConfChangeType, node_id: u64) -> ConfChangeSingle {
    ConfChangeSingle {
        change_type: kind as i32,
        node_id,
    }
}

/// Rebuilds the membership of `cs` into an empty-membership `tracker`
/// (keeping its window limits), as after a restart or a snapshot. New peers
/// start at `last_index`.
pub fn restore(
    tracker: &ProgressTracker,
    last_index: u64,
    cs: &ConfState,
) -> Result<Changed, ConfChangeError> {
    let mut t = ProgressTracker::new(tracker.max_inflight, tracker.max_inflight_bytes);
    let step = |t: &mut ProgressTracker, changes: &[ConfChangeSingle], joint: Option<bool>| {
        let c = Changer::new(t, last_index);
        let (cfg, prs) = match joint {
            Some(auto_leave) => c.enter_joint(auto_leave, changes)?,
            None => c.simple(changes)?,
        };
        t.config = cfg;
        t.progress = prs;
        Ok::<(), ConfChangeError>(())
    };
    let incoming: Vec<ConfChangeSingle> = cs
        .voters
        .iter()
        .map(|&id| single(ConfChangeType::AddNode, id))
        .chain(
            cs.learners
                .iter()
                .map(|&id| single(ConfChangeType::AddLearnerNode, id)),
        )
        .collect();
    if cs.voters_outgoing.is_empty() {
        // Add one at a time; learners need no voter before them except that
        // a configuration may never be left without voters, so voters go
        // first.
        for cc in &incoming {
            if t.config.voters.incoming.is_empty()
                && cc.change_type != ConfChangeType::AddNode as i32
            {
                // Learners without voters: only possible for an empty voter
                // set, which is refused below.
                return Err(ConfChangeError::RemovesAllVoters);
            }
            step(&mut t, std::slice::from_ref(cc), None)?;
        }
    } else {
        for &id in &cs.voters_outgoing {
            step(&mut t, &[single(ConfChangeType::AddNode, id)], None)?;
        }
        let joint: Vec<ConfChangeSingle> = cs
            .voters_outgoing
            .iter()
            .map(|&id| single(ConfChangeType::RemoveNode, id))
            .chain(incoming)
            .chain(
                cs.learners_next
                    .iter()
                    .map(|&id| single(ConfChangeType::AddLearnerNode, id)),
            )
            .collect();
        step(&mut t, &joint, Some(cs.auto_leave))?;
    }
    Ok((t.config, t.progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    fn tracker_of(cs: &ConfState) -> ProgressTracker {
        let empty = ProgressTracker::new(8, 0);
        let (config, progress) = restore(&empty, 10, cs).unwrap();
        let mut t = empty;
        t.config = config;
        t.progress = progress;
        t
    }

    #[test]
    fn restore_round_trips_plain_and_joint_states() {
        for cs in [
            ConfState::with_voters([1, 2, 3]),
            ConfState {
                voters: vec![1, 2],
                learners: vec![5],
                ..Default::default()
            },
            ConfState {
                voters: vec![1, 2, 4],
                learners: vec![5],
                voters_outgoing: vec![1, 2, 3],
                learners_next: vec![3],
                auto_leave: true,
            },
        ] {
            assert_eq!(tracker_of(&cs).conf_state(), cs);
        }
    }

    #[test]
    fn simple_change_allows_one_voter() {
        let t = tracker_of(&ConfState::with_voters([1, 2, 3]));
        let c = Changer::new(&t, 10);
        let (cfg, prs) = c.simple(&[single(ConfChangeType::AddNode, 4)]).unwrap();
        assert_eq!(cfg.voters.incoming.ids(), &[1, 2, 3, 4]);
        assert_eq!(prs.get(4).unwrap().next_idx, 10);
        assert_eq!(
            c.simple(&[
                single(ConfChangeType::AddNode, 4),
                single(ConfChangeType::AddNode, 5)
            ]),
            Err(ConfChangeError::TooManyVoterChanges)
        );
        // Learner changes are free.
        assert!(c
            .simple(&[
                single(ConfChangeType::AddLearnerNode, 7),
                single(ConfChangeType::AddLearnerNode, 8)
            ])
            .is_ok());
    }

    #[test]
    fn joint_demotion_waits_for_leave() {
        let t = tracker_of(&ConfState::with_voters([1, 2, 3]));
        let (cfg, prs) = Changer::new(&t, 10)
            .enter_joint(
                false,
                &[
                    single(ConfChangeType::AddLearnerNode, 3),
                    single(ConfChangeType::AddNode, 4),
                ],
            )
            .unwrap();
        assert_eq!(cfg.learners_next, vec![3]);
        assert!(cfg.voters.outgoing.contains(3));
        assert!(!prs.get(3).unwrap().is_learner);
        let mut t2 = t.clone();
        t2.config = cfg;
        t2.progress = prs;
        assert_eq!(
            Changer::new(&t2, 10).enter_joint(false, &[]),
            Err(ConfChangeError::AlreadyJoint)
        );
        let (cfg, prs) = Changer::new(&t2, 10).leave_joint().unwrap();
        assert_eq!(cfg.learners, vec![3]);
        assert!(prs.get(3).unwrap().is_learner);
        assert_eq!(cfg.voters.incoming.ids(), &[1, 2, 4]);
        assert!(!cfg.voters.is_joint());
    }

    #[test]
    fn cannot_remove_all_voters() {
        let t = tracker_of(&ConfState::with_voters([1]));
        assert_eq!(
            Changer::new(&t, 1).simple(&[single(ConfChangeType::RemoveNode, 1)]),
            Err(ConfChangeError::RemovesAllVoters)
        );
    }

    /// The members of a tracker as (id, is_learner), ascending.
    fn members(prs: &ProgressMap) -> Vec<(u64, bool)> {
        prs.iter().map(|(id, p)| (id, p.is_learner)).collect()
    }

    /// The invariants every membership keeps: progress exactly for the
    /// voters of both halves and the learners; learners vote in neither
    /// half; `learners_next` are outgoing voters leaving the incoming half.
    fn check_invariants(cfg: &TrackerConfig, prs: &ProgressMap) -> Result<(), String> {
        let mut want: Vec<u64> = cfg.voters.ids();
        want.extend(&cfg.learners);
        want.extend(&cfg.learners_next);
        want.sort_unstable();
        want.dedup();
        let got: Vec<u64> = prs.ids().collect();
        if got != want {
            return Err(format!("progress for {got:?}, members {want:?}"));
        }
        for &id in &cfg.learners {
            if cfg.voters.contains(id) || !prs.get(id).unwrap().is_learner {
                return Err(format!("learner {id} votes or is not marked a learner"));
            }
        }
        for &id in &cfg.learners_next {
            if !cfg.voters.outgoing.contains(id) || cfg.voters.incoming.contains(id) {
                return Err(format!("learner-next {id} is not an outgoing-only voter"));
            }
        }
        for id in cfg.voters.ids() {
            if prs.get(id).unwrap().is_learner {
                return Err(format!("voter {id} is marked a learner"));
            }
        }
        if !cfg.voters.is_joint() && (!cfg.learners_next.is_empty() || cfg.auto_leave) {
            return Err("learners_next or auto_leave outside joint consensus".into());
        }
        Ok(())
    }

    fn change_strategy() -> impl Strategy<Value = ConfChangeSingle> {
        (
            prop_oneof![
                Just(ConfChangeType::AddNode),
                Just(ConfChangeType::RemoveNode),
                Just(ConfChangeType::AddLearnerNode),
                Just(ConfChangeType::UpdateNode),
            ],
            1u64..=8,
        )
            .prop_map(|(kind, id)| single(kind, id))
    }

    /// A valid `ConfState` over nodes 1..=8: each node is outside the
    /// cluster, an incoming voter, a learner or (while joint) a voter of
    /// the outgoing half only, possibly demoted into `learners_next`.
    /// At least one incoming voter, and one outgoing voter when joint.
    fn conf_state_strategy() -> impl Strategy<Value = ConfState> {
        (
            proptest::collection::vec((0u8..4, any::<bool>()), 8),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_filter_map(
                "needs voters in every half",
                |(roles, joint, auto_leave)| {
                    let mut cs = ConfState::default();
                    for (i, &(role, outgoing)) in roles.iter().enumerate() {
                        let id = i as u64 + 1;
                        let outgoing = joint && outgoing;
                        match role {
                            0 => {}
                            1 => cs.voters.push(id),
                            // A learner never votes in the outgoing half.
                            2 if !outgoing => cs.learners.push(id),
                            2 => cs.learners_next.push(id),
                            _ => {}
                        }
                        if outgoing {
                            cs.voters_outgoing.push(id);
                        }
                    }
                    cs.auto_leave = joint && auto_leave;
                    let ok = !cs.voters.is_empty() && (!joint || !cs.voters_outgoing.is_empty());
                    ok.then_some(cs)
                },
            )
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config())]

        /// Thesis §4.3: joint consensus reaches the same new configuration
        /// as the one-at-a-time changes it replaces. Changes applied one
        /// by one as simple changes (skipping those refused, such as one
        /// removing the last voter) and the same accepted changes entered
        /// as one joint change and then left end with the same voters,
        /// learners and progress, and every step keeps the invariants.
        #[test]
        fn simple_steps_and_one_joint_change_agree(
            n in 1u64..=5,
            changes in proptest::collection::vec(change_strategy(), 0..12),
        ) {
            let start = tracker_of(&ConfState::with_voters(1..=n));
            let mut t = start.clone();
            let mut accepted = Vec::new();
            for cc in &changes {
                match Changer::new(&t, 10).simple(std::slice::from_ref(cc)) {
                    Ok((cfg, prs)) => {
                        check_invariants(&cfg, &prs).map_err(TestCaseError::fail)?;
                        t.config = cfg;
                        t.progress = prs;
                        accepted.push(*cc);
                    }
                    Err(e) => prop_assert_eq!(e, ConfChangeError::RemovesAllVoters),
                }
            }
            let (cfg, prs) = Changer::new(&start, 10)
                .enter_joint(false, &accepted)
                .map_err(|e| TestCaseError::fail(format!("entering joint: {e}")))?;
            check_invariants(&cfg, &prs).map_err(TestCaseError::fail)?;
            prop_assert_eq!(cfg.voters.outgoing.ids(), start.config.voters.incoming.ids());
            prop_assert_eq!(cfg.voters.incoming.ids(), t.config.voters.incoming.ids());
            let mut joint = start.clone();
            joint.config = cfg;
            joint.progress = prs;
            let (cfg, prs) = Changer::new(&joint, 10)
                .leave_joint()
                .map_err(|e| TestCaseError::fail(format!("leaving joint: {e}")))?;
            check_invariants(&cfg, &prs).map_err(TestCaseError::fail)?;
            prop_assert_eq!(cfg.to_conf_state(), t.config.to_conf_state());
            prop_assert_eq!(members(&prs), members(&t.progress));
        }

        /// A membership survives a restart: a `ConfState` (joint or not,
        /// with learners and learners-next) rebuilt into a tracker gives
        /// back the same `ConfState`, with progress for exactly its
        /// members, learners marked as such and demoted outgoing voters
        /// still voting until the joint state is left.
        #[test]
        fn restore_round_trips_any_valid_conf_state(cs in conf_state_strategy()) {
            let empty = ProgressTracker::new(8, 0);
            let (cfg, prs) = restore(&empty, 10, &cs)
                .map_err(|e| TestCaseError::fail(format!("restoring {cs:?}: {e}")))?;
            check_invariants(&cfg, &prs).map_err(TestCaseError::fail)?;
            prop_assert_eq!(cfg.to_conf_state(), cs.clone());
            for &id in &cs.learners_next {
                prop_assert!(!prs.get(id).unwrap().is_learner, "{} still votes while joint", id);
            }
        }
    }
}
