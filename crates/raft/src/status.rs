//! A node's status, for operators and tests.

use crate::proto::HardState;
use crate::raft::{Raft, SoftState};
use crate::storage::Storage;
use crate::tracker::{Progress, TrackerConfig};

/// Identity, role and log positions: cheap to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicStatus {
    /// The node's ID.
    pub id: u64,
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// Leader and role.
    pub soft_state: SoftState,
    /// The highest index applied.
    pub applied: u64,
    /// The target of a leadership transfer under way (0: none).
    pub lead_transferee: u64,
}

impl BasicStatus {
    pub(crate) fn of<S: Storage>(r: &Raft<S>) -> BasicStatus {
        BasicStatus {
            id: r.id,
            hard_state: r.hard_state(),
            soft_state: r.soft_state(),
            applied: r.log.applied,
            lead_transferee: r.lead_transferee,
        }
    }
}

/// The basic status, the membership, and on a leader each peer's progress.
#[derive(Clone, Debug)]
pub struct Status {
    /// Identity, role and positions.
    pub basic: BasicStatus,
    /// The membership in force.
    pub config: TrackerConfig,
    /// Each member's progress, ascending by ID (leader only; empty
    /// elsewhere).
    pub progress: Vec<(u64, Progress)>,
}

impl Status {
    pub(crate) fn of<S: Storage>(r: &Raft<S>) -> Status {
        let progress = if r.state == crate::raft::StateRole::Leader {
            r.tracker
                .progress
                .iter()
                .map(|(id, p)| (id, p.clone()))
                .collect()
        } else {
            Vec::new()
        };
        Status {
            basic: BasicStatus::of(r),
            config: r.tracker.config.clone(),
            progress,
        }
    }
}
