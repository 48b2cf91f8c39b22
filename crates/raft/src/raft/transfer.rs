//! Leadership transfer (thesis §3.10) and a follower forgetting its leader.

use super::election::CampaignType;
use super::{Raft, StateRole};
use crate::config::ReadOnlyOption;
use crate::errors::{Error, Result};
use crate::proto::{Message, MessageType};
use crate::storage::Storage;
use tracing::info;

impl<S: Storage> Raft<S> {
    /// On the leader: hand leadership to `transferee`. It is caught up
    /// first, then told to campaign at once; proposals are refused
    /// meanwhile, and the transfer is abandoned after an election timeout.
    pub(super) fn start_leader_transfer(&mut self, transferee: u64) -> Result<()> {
        let Some(pr) = self.tracker.progress.get(transferee) else {
            return Err(Error::InvalidTransferee(transferee));
        };
        if pr.is_learner {
            return Err(Error::InvalidTransferee(transferee));
        }
        if transferee == self.id || transferee == self.lead_transferee {
            // Already leader, or already under way.
            return Ok(());
        }
        let caught_up = pr.matched == self.log.last_index();
        if self.lead_transferee != 0 {
            info!(
                id = self.id,
                from = self.lead_transferee,
                to = transferee,
                "replacing a leadership transfer"
            );
        }
        self.lead_transferee = transferee;
        // The transfer must finish within one election timeout.
        self.election_elapsed = 0;
        info!(
            id = self.id,
            term = self.term,
            to = transferee,
            "transferring leadership"
        );
        if caught_up {
            self.send_timeout_now(transferee);
        } else {
            self.maybe_send_append(transferee, true);
        }
        Ok(())
    }

    /// The transferee acknowledged up to `matched`: once it holds our whole
    /// log, it may campaign.
    pub(super) fn maybe_finish_transfer(&mut self, from: u64, matched: u64) {
        if from == self.lead_transferee && matched == self.log.last_index() {
            self.send_timeout_now(from);
        }
    }

    fn send_timeout_now(&mut self, to: u64) {
        self.send(Message::new(MessageType::MsgTimeoutNow, self.id, to));
    }

    /// On a follower told by its leader to campaign: do so at once, past
    /// leases and without a pre-vote (the leader asked for it).
    pub(super) fn handle_timeout_now(&mut self) {
        if self.promotable() {
            info!(
                id = self.id,
                term = self.term,
                "campaigning at the leader's request"
            );
            self.hup(CampaignType::Transfer);
        }
    }

    /// On a follower: forget the leader, so that pre-votes can be granted
    /// at once (for example when the application knows the leader is
    /// gone). Refused under lease-based reads, whose safety rests on
    /// followers not helping a new leader within the lease. Leaders and
    /// candidates ignore it.
    pub(crate) fn forget_leader(&mut self) -> Result<()> {
        if self.state != StateRole::Follower || self.lead == 0 {
            return Ok(());
        }
        if self.read_only.option == ReadOnlyOption::LeaseBased {
            return Err(Error::ForgetLeaderUnderLease);
        }
        info!(
            id = self.id,
            term = self.term,
            lead = self.lead,
            "forgetting the leader"
        );
        self.lead = 0;
        Ok(())
    }
}
