//! Switching to a new membership once a configuration change is applied.

use super::{Raft, StateRole};
use crate::confchange::{Changer, ConfChangeError};
use crate::proto::{ConfChangeV2, ConfState};
use crate::storage::Storage;
use crate::tracker::{ProgressMap, TrackerConfig};
use tracing::info;

impl<S: Storage> Raft<S> {
    /// Applies a committed configuration change and returns the membership
    /// now in force (to be saved by the application with its state).
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState, ConfChangeError> {
        let (cfg, prs) = Changer::new(&self.tracker, self.log.last_index()).apply(cc)?;
        self.switch_to_config(cfg, prs);
        let cs = self.tracker.conf_state();
        info!(id = self.id, voters = ?cs.voters, learners = ?cs.learners, outgoing = ?cs.voters_outgoing, "applied configuration");
        if self.state == StateRole::Leader {
            if self.step_down_on_removal
                && (self.is_learner || self.tracker.progress.get(self.id).is_none())
            {
                info!(
                    id = self.id,
                    term = self.term,
                    "removed or demoted: stepping down"
                );
                self.become_follower(self.term, 0);
                return Ok(cs);
            }
            if self.lead_transferee != 0 && !self.tracker.is_voter(self.lead_transferee) {
                info!(
                    id = self.id,
                    to = self.lead_transferee,
                    "transferee removed: transfer abandoned"
                );
                self.abort_leader_transfer();
            }
            // A smaller quorum may commit more; new peers need appends.
            if !self.maybe_commit() {
                self.broadcast_pending = true;
            }
        }
        Ok(cs)
    }

    /// Puts a membership and its progress in force.
    pub(crate) fn switch_to_config(&mut self, config: TrackerConfig, progress: ProgressMap) {
        self.tracker.config = config;
        self.tracker.progress = progress;
        self.is_learner = self
            .tracker
            .progress
            .get(self.id)
            .is_some_and(|p| p.is_learner);
    }
}
