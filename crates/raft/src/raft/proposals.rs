//! Proposals: admitting them to the leader's log (or forwarding them), with
//! a reason for every refusal, and the leader's own proposal to leave a
//! joint configuration.

use super::{Raft, StateRole};
use crate::confchange::{decode_conf_change, Changer, ConfChangeI};
use crate::errors::{DropReason, Result};
use crate::proto::{ConfChangeV2, Entry, EntryType, Message, MessageType};
use crate::storage::Storage;
use bytes::Bytes;
use tracing::{debug, info};

/// Where a proposal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    /// Appended to this leader's log at `index` in `term`. Its fate —
    /// committed, superseded, or unknown — is reported in a later `Ready`'s
    /// `proposal_outcomes`.
    Appended {
        /// The entry's index.
        index: u64,
        /// The entry's term (this leader's).
        term: u64,
    },
    /// Forwarded to the leader `to`. This node cannot follow it further:
    /// propose on the leader to learn the outcome.
    Forwarded {
        /// The leader it was sent to.
        to: u64,
    },
}

impl<S: Storage> Raft<S> {
    /// Appends proposals to the leader's log; followers get them with the
    /// next `Ready`. `entries` get their index and term here and are moved
    /// into the log. All are admitted or none; returns the (index, term) of
    /// the last.
    pub(crate) fn append_proposals<E>(&mut self, mut entries: E) -> Result<(u64, u64)>
    where
        E: AsMut<[Entry]> + IntoIterator<Item = Entry>,
    {
        if self.tracker.progress.get(self.id).is_none() {
            // Removed from the configuration, still leading until it steps
            // down.
            return Err(Self::dropped(DropReason::NotMember));
        }
        if self.lead_transferee != 0 {
            return Err(Self::dropped(DropReason::TransferringLeader));
        }
        let slice = entries.as_mut();
        let size: u64 = slice.iter().map(|e| e.data.len() as u64).sum();
        if self.max_uncommitted_size != 0
            && self.uncommitted_size > 0
            && size > 0
            && self.uncommitted_size + size > self.max_uncommitted_size
        {
            return Err(Self::dropped(DropReason::UncommittedSizeLimit));
        }
        let mut conf_changes = slice.iter().filter(|e| e.is_conf_change());
        if let Some(e) = conf_changes.next() {
            if conf_changes.next().is_some() || self.pending_conf_index > self.log.applied {
                return Err(Self::dropped(DropReason::ConfChangePending));
            }
            self.check_conf_change(e)?;
        }
        let mut index = self.log.last_index();
        for e in slice.iter_mut() {
            index += 1;
            e.index = index;
            e.term = self.term;
            if e.is_conf_change() {
                self.pending_conf_index = index;
            }
        }
        self.log.append_new(entries);
        self.uncommitted_size += size;
        self.broadcast_pending = true;
        Ok((index, self.term))
    }

    /// Refuses a configuration change that cannot be applied to the
    /// configuration in force (which, with no other change pending, is the
    /// one it will be applied to).
    fn check_conf_change(&self, e: &Entry) -> Result<()> {
        let invalid = |why: String| {
            debug!(id = self.id, why, "refused configuration change");
            Self::dropped(DropReason::InvalidConfChange)
        };
        let cc = match decode_conf_change(e) {
            Ok(Some(cc)) => cc,
            Ok(None) => return Ok(()),
            Err(err) => return Err(invalid(err.to_string())),
        };
        let joint = self.tracker.config.voters.is_joint();
        if !cc.leaves_joint() && joint {
            return Err(invalid(
                "a change must wait until the joint configuration is left".into(),
            ));
        }
        Changer::new(&self.tracker, self.log.last_index())
            .apply(&cc)
            .map(|_| ())
            .map_err(|err| invalid(err.to_string()))
    }

    /// Proposes one entry of `entry_type` carrying `data`: appended here if
    /// this node leads, forwarded to the leader otherwise.
    pub(crate) fn propose_data(&mut self, data: Bytes, entry_type: EntryType) -> Result<Proposed> {
        let mut e = Entry::new(0, 0, data);
        e.entry_type = entry_type as i32;
        match self.state {
            StateRole::Leader => {
                let (index, term) = self.append_proposals([e])?;
                Ok(Proposed::Appended { index, term })
            }
            StateRole::Follower => {
                let to = self.lead;
                let mut m = Message::new(MessageType::MsgProp, self.id, 0);
                m.entries.push(e);
                self.step(m)?;
                Ok(Proposed::Forwarded { to })
            }
            StateRole::Candidate | StateRole::PreCandidate => {
                Err(Self::dropped(DropReason::NoLeader))
            }
        }
    }

    /// The application applied entries up to `index` carrying `size` bytes
    /// of payload: the leader's uncommitted quota is released, and a joint
    /// configuration to be left automatically is left.
    pub(crate) fn applied_to(&mut self, index: u64, size: u64) {
        self.log.applied_to(index);
        if self.state != StateRole::Leader {
            return;
        }
        self.uncommitted_size = self.uncommitted_size.saturating_sub(size);
        self.maybe_auto_leave();
    }

    /// On a leader in a joint configuration to be left automatically, once
    /// the change that entered it is applied: propose leaving. Tried after
    /// every apply and when a transfer (which refuses proposals) ends.
    pub(crate) fn maybe_auto_leave(&mut self) {
        let cfg = &self.tracker.config;
        if self.state == StateRole::Leader
            && cfg.auto_leave
            && cfg.voters.is_joint()
            && self.log.applied >= self.pending_conf_index
        {
            self.propose_leave_joint();
        }
    }

    /// Appends the empty `ConfChangeV2` that leaves the joint configuration.
    fn propose_leave_joint(&mut self) {
        let e = ConfChangeV2::default().to_entry();
        match self.append_proposals([e]) {
            Ok((index, _)) => info!(
                id = self.id,
                index, "proposed leaving the joint configuration"
            ),
            // A transfer under way or a full quota: try again at the next
            // apply.
            Err(err) => {
                debug!(id = self.id, error = %err, "cannot leave the joint configuration yet")
            }
        }
    }
}
