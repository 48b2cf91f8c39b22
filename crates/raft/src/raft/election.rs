//! Elections: timeouts, pre-vote, campaigns, and granting votes (§5.2,
//! §5.4.1, thesis §9.6).

use super::{Raft, StateRole};
use crate::errors::{DropReason, Result};
use crate::proto::{Message, MessageType};
use crate::quorum::VoteResult;
use crate::storage::Storage;
use tracing::{debug, info, warn};

/// The context of vote requests sent by a transferee told to campaign: it
/// overrides leader stickiness (the old leader asked for the election).
pub const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// What kind of campaign to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignType {
    /// A pre-vote round first; the real election only if it is won.
    PreElection,
    /// A real election.
    Election,
    /// A real election ordered by a leadership transfer.
    Transfer,
}

impl<S: Storage> Raft<S> {
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.past_election_timeout() {
            self.election_elapsed = 0;
            let t = if self.pre_vote {
                CampaignType::PreElection
            } else {
                CampaignType::Election
            };
            self.hup(t);
        }
    }

    pub(super) fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                self.check_quorum_active();
            }
            if self.state == StateRole::Leader && self.lead_transferee != 0 {
                // The transfer did not finish within an election timeout.
                self.abort_leader_transfer();
            }
        }
        if self.state != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    /// Starts a campaign of the given kind, if this node may.
    pub fn hup(&mut self, t: CampaignType) {
        if self.state == StateRole::Leader {
            debug!(id = self.id, "ignoring campaign: already leader");
            return;
        }
        if !self.promotable() {
            debug!(id = self.id, "ignoring campaign: not promotable");
            return;
        }
        if self.term == u64::MAX {
            // Only a peer's message can have brought the term here (no
            // cluster holds 2^64 elections); a campaign needs a next term.
            warn!(
                id = self.id,
                "ignoring campaign: the term is at its maximum"
            );
            return;
        }
        if self.has_unapplied_conf_change() {
            // The configuration we would campaign in may be stale.
            debug!(
                id = self.id,
                "ignoring campaign: committed conf change not yet applied"
            );
            return;
        }
        info!(id = self.id, term = self.term, kind = ?t, "starting campaign");
        self.campaign(t);
    }

    fn has_unapplied_conf_change(&self) -> bool {
        if self.log.applied >= self.log.committed {
            return false;
        }
        let mut ents = Vec::new();
        let lo = self.log.applied + 1;
        let hi = self.log.committed + 1;
        match self.log.slice(lo, hi, u64::MAX, &mut ents) {
            Ok(()) => ents.iter().any(|e| e.is_conf_change()),
            // Cannot tell: do not campaign on a possibly stale configuration.
            Err(_) => true,
        }
    }

    fn campaign(&mut self, t: CampaignType) {
        let (vote_type, term) = if t == CampaignType::PreElection {
            self.become_pre_candidate();
            // Pre-vote for the term we would campaign in, without moving there.
            (MessageType::MsgPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::MsgVote, self.term)
        };
        let last_index = self.log.last_index();
        let last_term = self.log.last_term();
        for id in self.tracker.config.voters.ids() {
            if id == self.id {
                // Our own vote counts once it is persisted: it is stepped
                // back in after the append (see `send`).
                let mut m = Message::new(vote_type.vote_response(), self.id, self.id);
                m.term = term;
                self.send(m);
                continue;
            }
            let mut m = Message::new(vote_type, self.id, id);
            m.term = term;
            m.index = last_index;
            m.log_term = last_term;
            if t == CampaignType::Transfer {
                m.context = bytes::Bytes::from_static(CAMPAIGN_TRANSFER);
            }
            self.send(m);
        }
    }

    fn become_pre_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "role invariant broken: leader cannot become pre-candidate"
        );
        // Neither term nor vote change: a pre-candidate that loses leaves no
        // trace.
        self.tracker.reset_votes();
        self.lead = 0;
        self.state = StateRole::PreCandidate;
        debug!(id = self.id, term = self.term, "became pre-candidate");
    }

    fn become_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "role invariant broken: leader cannot become candidate"
        );
        self.reset(self.term + 1);
        self.vote = self.id;
        self.state = StateRole::Candidate;
        debug!(id = self.id, term = self.term, "became candidate");
    }

    /// Records a vote and returns the election's state.
    fn poll(&mut self, from: u64, granted: bool) -> VoteResult {
        self.tracker.record_vote(from, granted);
        self.tracker.tally_votes().2
    }

    /// Grants or refuses a vote or pre-vote (Figure 2, RequestVote; §5.4.1).
    pub(super) fn handle_vote_request(&mut self, kind: MessageType, m: &Message) {
        // We may vote for whom we already voted for (a retry), for anyone
        // if we have neither voted nor know a leader in this term, and in a
        // pre-vote for any later term.
        let can_vote = self.vote == m.from
            || (self.vote == 0 && self.lead == 0)
            || (kind == MessageType::MsgPreVote && m.term > self.term);
        let mut resp = Message::new(kind.vote_response(), self.id, m.from);
        if can_vote && self.log.is_up_to_date(m.index, m.log_term) {
            // A granted pre-vote carries the candidate's future term so it
            // is not dropped as stale.
            resp.term = m.term;
            self.send(resp);
            if kind == MessageType::MsgVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
            debug!(
                id = self.id,
                term = self.term,
                to = m.from,
                kind = kind.short_name(),
                "granted vote"
            );
        } else {
            resp.term = self.term;
            resp.reject = true;
            self.send(resp);
            debug!(
                id = self.id,
                term = self.term,
                to = m.from,
                kind = kind.short_name(),
                "rejected vote"
            );
        }
    }

    pub(super) fn step_candidate(&mut self, kind: MessageType, m: &mut Message) -> Result<()> {
        let my_response = if self.state == StateRole::PreCandidate {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        match kind {
            MessageType::MsgProp => return Err(Self::dropped(DropReason::NoLeader)),
            MessageType::MsgApp => {
                self.become_follower(m.term, m.from);
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            k if k == my_response => match self.poll(m.from, !m.reject) {
                VoteResult::Won => {
                    if self.state == StateRole::PreCandidate {
                        self.campaign(CampaignType::Election);
                    } else {
                        self.become_leader();
                    }
                }
                VoteResult::Lost => {
                    // A rejection carries the voter's term, which may be ours
                    // or (for pre-votes) lower; stay in ours.
                    self.become_follower(self.term, 0);
                }
                VoteResult::Pending => {}
            },
            MessageType::MsgReadIndex => return Err(Self::dropped(DropReason::NoLeader)),
            _ => {}
        }
        Ok(())
    }
}
