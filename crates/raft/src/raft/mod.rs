//! The Raft state machine of one node: roles, terms, and the dispatch of
//! every message to the rules of the node's role.
//!
//! The rules live in one file per concern: `election` (timeouts, pre-vote,
//! votes), `leader` (proposals, replication, heartbeats, commit),
//! `follower` (appends, heartbeats and snapshots from a leader), `read`
//! (read-index) and `membership` (applying configuration changes).

mod election;
mod follower;
mod leader;
mod membership;
mod proposals;
mod read;
mod transfer;

use crate::confchange;
use crate::config::Config;
use crate::errors::{DropReason, Error, Result, StorageError};
use crate::log::RaftLog;
use crate::proto::{HardState, Message, MessageType};
use crate::read_only::{ReadOnly, ReadState};
use crate::storage::Storage;
use crate::tracker::{Progress, ProgressTracker};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracing::debug;

pub use election::CampaignType;
pub use proposals::Proposed;

/// The role a node plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asks for votes in a pre-vote round, without raising its term.
    PreCandidate,
    /// Asks for votes in an election.
    Candidate,
    /// Replicates the log.
    Leader,
}

/// The state that is not persisted but that the application may want to
/// watch: who leads, and this node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SoftState {
    /// The known leader (0: none).
    pub leader_id: u64,
    /// This node's role.
    pub raft_state: StateRole,
}

/// One node's Raft state machine. The application drives it through
/// [`RawNode`](crate::RawNode), which adds the `Ready` handshake.
pub struct Raft<S: Storage> {
    /// This node's ID.
    pub id: u64,
    /// The current term.
    pub term: u64,
    /// Whom this node voted for in `term` (0: nobody).
    pub vote: u64,
    /// The log.
    pub log: RaftLog<S>,
    /// Membership and (on the leader) peers' progress.
    pub tracker: ProgressTracker,
    /// This node's role.
    pub state: StateRole,
    /// Whether this node is a learner in the configuration.
    pub is_learner: bool,
    /// The leader of `term` as far as known (0: none).
    pub lead: u64,
    /// The target of a leadership transfer under way (0: none).
    pub lead_transferee: u64,
    /// The index of the newest configuration change a leader proposed;
    /// another may only be proposed once this one is applied.
    pub pending_conf_index: u64,
    /// Bytes of payload a leader appended that are not yet applied.
    pub uncommitted_size: u64,
    /// Read-index requests awaiting a heartbeat quorum.
    pub read_only: ReadOnly,
    /// Answers to read-index requests, handed out in the next `Ready`.
    pub read_states: Vec<ReadState>,
    /// Read-index requests that arrived before this leader committed an
    /// entry of its term; answered once it has.
    pending_read_index: Vec<Message>,
    /// As a follower, the highest index acknowledged to the leader of the
    /// current term (one leader per term, so reset with the term or role).
    acked_to_leader: u64,

    election_elapsed: usize,
    heartbeat_elapsed: usize,
    randomized_election_timeout: usize,
    election_timeout: usize,
    heartbeat_timeout: usize,
    check_quorum: bool,
    pre_vote: bool,
    max_msg_size: u64,
    max_uncommitted_size: u64,
    disable_proposal_forwarding: bool,
    step_down_on_removal: bool,
    rng: SmallRng,

    /// Messages that may be sent at once.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may be sent only once everything the node appended
    /// before them (entries, term, vote) is persisted: acknowledgements.
    pub(crate) msgs_after_append: Vec<Message>,
    /// Entries were appended (or the commit index moved) on a leader and
    /// followers have not been sent appends for them yet. Sending is
    /// deferred to `RawNode::ready`, so a burst of proposals leaves as one
    /// append per follower.
    pub(crate) broadcast_pending: bool,
}

impl<S: Storage> Raft<S> {
    /// A node restarting from `storage` (or starting on an empty one).
    pub fn new(config: &Config, storage: S) -> Result<Raft<S>> {
        config.validate()?;
        let state = storage.initial_state()?;
        let log = RaftLog::new(storage, config.max_committed_size_per_ready)?;
        let tracker = ProgressTracker::new(config.max_inflight_msgs, config.max_inflight_bytes);
        let (tracker_config, progress) =
            confchange::restore(&tracker, log.last_index(), &state.conf_state)
                .map_err(|e| Error::BadConfChange(e.to_string()))?;
        let mut r = Raft {
            id: config.id,
            term: 0,
            vote: 0,
            log,
            tracker,
            state: StateRole::Follower,
            is_learner: false,
            lead: 0,
            lead_transferee: 0,
            pending_conf_index: 0,
            uncommitted_size: 0,
            read_only: ReadOnly::new(config.read_only_option),
            read_states: Vec::new(),
            pending_read_index: Vec::new(),
            acked_to_leader: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: config.election_tick,
            election_timeout: config.election_tick,
            heartbeat_timeout: config.heartbeat_tick,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            max_msg_size: config.max_size_per_msg,
            max_uncommitted_size: config.max_uncommitted_entries_size,
            disable_proposal_forwarding: config.disable_proposal_forwarding,
            step_down_on_removal: config.step_down_on_removal,
            rng: SmallRng::seed_from_u64(config.seed),
            msgs: Vec::new(),
            msgs_after_append: Vec::new(),
            broadcast_pending: false,
        };
        r.switch_to_config(tracker_config, progress);
        if !state.hard_state.is_empty() {
            r.load_hard_state(state.hard_state)?;
        }
        if config.applied > 0 {
            if config.applied > r.log.committed {
                return Err(Error::Storage(StorageError::Other(format!(
                    "config applied index {} is past the committed index {}",
                    config.applied, r.log.committed
                ))));
            }
            r.log.applied_to(config.applied);
        }
        r.become_follower(r.term, 0);
        Ok(r)
    }

    fn load_hard_state(&mut self, hs: HardState) -> Result<()> {
        let last = self.log.last_index();
        if hs.commit < self.log.committed || hs.commit > last {
            return Err(Error::Storage(StorageError::Other(format!(
                "hard state commit {} is outside the log [{}, {}]",
                hs.commit, self.log.committed, last
            ))));
        }
        self.log.committed = hs.commit;
        self.term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    /// The state to persist.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// The state to watch.
    pub fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            raft_state: self.state,
        }
    }

    /// Queues `m` for sending, stamping sender and term.
    #[inline]
    pub(crate) fn send(&mut self, mut m: Message) {
        m.from = self.id;
        let kind = m.kind();
        match kind {
            Some(
                MessageType::MsgVote
                | MessageType::MsgPreVote
                | MessageType::MsgVoteResp
                | MessageType::MsgPreVoteResp,
            ) => {
                assert!(
                    m.term != 0,
                    "message invariant broken: {kind:?} sent without a term"
                );
            }
            // Proposals and read requests are forwarded with the term they
            // carry (0), as in etcd: they are not tied to a term.
            Some(MessageType::MsgProp | MessageType::MsgReadIndex) => {}
            _ => m.term = self.term,
        }
        match kind {
            Some(
                MessageType::MsgAppResp | MessageType::MsgVoteResp | MessageType::MsgPreVoteResp,
            ) => self.msgs_after_append.push(m),
            _ => self.msgs.push(m),
        }
    }

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
            // An acknowledgement queued in the old term vouches for entries
            // not written yet, which a leader of the new term may overwrite
            // before they are: sent after the write, it would count toward
            // the old leader's quorum without being true. Drop it; the new
            // leader probes anew.
            self.msgs_after_append
                .retain(|m| m.reject || m.kind() != Some(MessageType::MsgAppResp));
        }
        self.lead = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = 0;
        self.tracker.reset_votes();
        let last = self.log.last_index();
        let (max_inflight, max_bytes) =
            (self.tracker.max_inflight, self.tracker.max_inflight_bytes);
        let id = self.id;
        for (pid, pr) in self.tracker.progress.iter_mut() {
            let is_learner = pr.is_learner;
            *pr = Progress::new(last + 1, max_inflight, max_bytes);
            pr.is_learner = is_learner;
            if pid == id {
                pr.matched = last;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.read_only.clear();
        self.pending_read_index.clear();
        self.acked_to_leader = 0;
        self.broadcast_pending = false;
    }

    fn reset_randomized_election_timeout(&mut self) {
        let et = self.election_timeout;
        self.randomized_election_timeout = self.rng.random_range(et..2 * et);
    }

    /// The randomized election timeout in force, in ticks.
    pub fn randomized_election_timeout(&self) -> usize {
        self.randomized_election_timeout
    }

    /// Follow `lead` (0: unknown) in `term`.
    pub fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.state = StateRole::Follower;
        debug!(id = self.id, term, lead, "became follower");
    }

    /// Ticks the logical clock: followers and candidates count toward an
    /// election, leaders toward heartbeats and quorum checks.
    pub fn tick(&mut self) {
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    /// Whether this node may campaign: it is a voter and not waiting for a
    /// snapshot to be applied.
    pub fn promotable(&self) -> bool {
        self.tracker
            .progress
            .get(self.id)
            .is_some_and(|p| !p.is_learner)
            && self.tracker.is_voter(self.id)
            && !self.log.has_pending_snapshot()
    }

    fn past_election_timeout(&self) -> bool {
        self.election_elapsed >= self.randomized_election_timeout
    }

    /// Ticks since the last election reset (heard from a leader, voted, or
    /// on a leader, the last quorum check).
    pub fn election_elapsed(&self) -> usize {
        self.election_elapsed
    }

    /// Steps one message into the state machine.
    ///
    /// Messages of an older term are answered or dropped by the rules;
    /// messages of a newer term move this node to it first. A proposal that
    /// cannot be accepted returns [`Error::ProposalDropped`].
    pub fn step(&mut self, mut m: Message) -> Result<()> {
        let Some(kind) = m.kind() else {
            return Err(Error::InvalidMessage("unknown message type"));
        };
        self.step_kind(kind, &mut m)
    }

    /// [`Raft::step`] for a message whose kind is known, by reference: the
    /// hot path moves the message no further than its caller's frame.
    pub(crate) fn step_kind(&mut self, kind: MessageType, m: &mut Message) -> Result<()> {
        if m.term == 0 && carries_term(kind) {
            // Term 0 would read as "no term" and slip past the term rules
            // below as if it were of the current term: a vote granted and
            // answered without a term, a stranger taken for the leader.
            return Err(Error::InvalidMessage("message without a term"));
        }
        if m.term > self.term {
            if matches!(kind, MessageType::MsgVote | MessageType::MsgPreVote) {
                let force = m.context.as_ref() == election::CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && self.lead != 0
                    && self.election_elapsed < self.election_timeout;
                if !force && in_lease {
                    // Leader stickiness: a node that heard from its leader
                    // within the timeout does not help depose it.
                    debug!(
                        id = self.id,
                        from = m.from,
                        term = m.term,
                        "ignored vote request within lease"
                    );
                    return Ok(());
                }
            }
            match kind {
                // A pre-vote does not change terms.
                MessageType::MsgPreVote => {}
                // A granted pre-vote comes with the future term; the
                // candidate moves there only when it campaigns.
                MessageType::MsgPreVoteResp if !m.reject => {}
                MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap => {
                    self.become_follower(m.term, m.from)
                }
                _ => self.become_follower(m.term, 0),
            }
        } else if m.term < self.term && m.term != 0 {
            self.step_stale(kind, m);
            return Ok(());
        }
        match kind {
            MessageType::MsgHup => {
                self.hup(if self.pre_vote {
                    CampaignType::PreElection
                } else {
                    CampaignType::Election
                });
                Ok(())
            }
            MessageType::MsgVote | MessageType::MsgPreVote => {
                self.handle_vote_request(kind, m);
                Ok(())
            }
            _ => match self.state {
                StateRole::Leader => self.step_leader(kind, m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(kind, m),
                StateRole::Follower => self.step_follower(kind, m),
            },
        }
    }

    /// A message from an older term: tell a stale leader or pre-candidate
    /// the newer term, drop everything else.
    fn step_stale(&mut self, kind: MessageType, m: &Message) {
        match kind {
            MessageType::MsgHeartbeat | MessageType::MsgApp
                if self.check_quorum || self.pre_vote =>
            {
                // A leader cut off from the cluster learns the new term from
                // this answer and steps down. Without it, with check-quorum
                // or pre-vote on, it could keep the others' elections at bay.
                let mut resp = Message::new(MessageType::MsgAppResp, self.id, m.from);
                resp.term = self.term;
                self.send(resp);
            }
            MessageType::MsgPreVote => {
                let mut resp = Message::new(MessageType::MsgPreVoteResp, self.id, m.from);
                resp.term = self.term;
                resp.reject = true;
                self.send(resp);
            }
            _ => {
                debug!(
                    id = self.id,
                    term = self.term,
                    msg_term = m.term,
                    kind = kind.short_name(),
                    from = m.from,
                    "ignored message from an older term"
                );
            }
        }
    }

    /// A proposal refused for `reason`.
    pub(crate) fn dropped(reason: DropReason) -> Error {
        Error::ProposalDropped(reason)
    }
}

/// Whether every message of `kind` carries its sender's term (it is a Raft
/// RPC or its answer, stamped by `send`): one with term 0 is malformed.
/// Proposals, read requests and local messages travel without a term.
fn carries_term(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::MsgApp
            | MessageType::MsgAppResp
            | MessageType::MsgVote
            | MessageType::MsgVoteResp
            | MessageType::MsgSnap
            | MessageType::MsgHeartbeat
            | MessageType::MsgHeartbeatResp
            | MessageType::MsgPreVote
            | MessageType::MsgPreVoteResp
    )
}
