//! The application's handle on a node: inputs in, `Ready` out.

use crate::confchange::ConfChangeI;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::outcomes::{ProposalOutcome, ProposalTracker};
use crate::proto::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message,
    MessageType, Snapshot,
};
use crate::raft::{Proposed, Raft, SoftState, StateRole};
use crate::read_only::ReadState;
use crate::status::{BasicStatus, Status};
use crate::storage::Storage;
use crate::storage_writes::{self, AsyncWrites, Handout, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use bytes::Bytes;
use prost::Message as _;

/// How sending a snapshot to a peer went, for [`RawNode::report_snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The peer received the whole snapshot.
    Finish,
    /// Sending failed; the leader will probe again later.
    Failure,
}

/// Everything the application must do after feeding inputs to a node: what
/// to persist, what to send, what to apply.
///
/// Handle it in this order, then call [`RawNode::advance`] with it:
/// 1. send `messages` (this may happen before or during the next steps;
///    a leader can ship appends while writing its own log);
/// 2. persist `snapshot` (if any), then `entries`, then `hard_state`,
///    with an fsync if `must_sync`;
/// 3. send `persisted_messages` (acknowledgements that promise what was
///    just persisted);
/// 4. apply `snapshot` and then `committed_entries` to the state machine,
///    and answer reads from `read_states` once applied up to their index.
///
/// Drain the vectors rather than replacing them: `advance` reuses their
/// buffers for the next `Ready`.
#[derive(Debug, Default)]
pub struct Ready {
    /// A sequence number, increasing by one per `Ready`.
    pub number: u64,
    /// Who leads and this node's role, if that changed.
    pub soft_state: Option<SoftState>,
    /// Term, vote and commit index to persist, if they changed.
    pub hard_state: Option<HardState>,
    /// Answers to read-index requests.
    pub read_states: Vec<ReadState>,
    /// Entries to append to stable storage (replacing any conflicting
    /// suffix there).
    pub entries: Vec<Entry>,
    /// A snapshot to persist and apply (boxed: rare, and large to move).
    pub snapshot: Option<Box<Snapshot>>,
    /// Committed entries to apply, in order.
    pub committed_entries: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages: Vec<Message>,
    /// Messages to send only after `entries`, `hard_state` and `snapshot`
    /// are durable.
    pub persisted_messages: Vec<Message>,
    /// What became of proposals made on this node as leader.
    pub proposal_outcomes: Vec<ProposalOutcome>,
    /// Whether the writes must be fsynced before `persisted_messages` are
    /// sent (new entries, or a new term or vote). A commit index alone
    /// may be written lazily: it can be recomputed.
    pub must_sync: bool,
}

/// A node driven by the application: feed it ticks, messages and
/// proposals, take a [`Ready`], handle it, [`advance`](RawNode::advance).
///
/// Nothing here does I/O, reads a clock or spawns a thread; the same inputs
/// (and config seed) give the same outputs.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_soft: SoftState,
    prev_hard: HardState,
    /// Messages to ourselves (acknowledgements of our own writes), stepped
    /// in `advance`.
    steps_on_advance: Vec<Message>,
    /// What the last `Ready` handed out, for `advance` to acknowledge.
    in_flight: Handout,
    /// With asynchronous storage writes, the writes under way.
    async_writes: Option<AsyncWrites>,
    ready_number: u64,
    /// Buffers of the last `Ready`, reused by the next.
    spare: SpareBuffers,
    /// Proposals appended here, until their outcome is known.
    proposals: ProposalTracker,
}

/// The vectors of a handled `Ready`, emptied, kept for their capacity.
#[derive(Debug, Default)]
struct SpareBuffers {
    read_states: Vec<ReadState>,
    entries: Vec<Entry>,
    committed_entries: Vec<Entry>,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    proposal_outcomes: Vec<ProposalOutcome>,
}

impl<S: Storage> RawNode<S> {
    /// A node on `storage`: restarting from its state, or, on an empty
    /// storage, waiting to be told its membership (by a snapshot from a
    /// leader, or a storage created with a `ConfState`).
    pub fn new(config: &Config, storage: S) -> Result<RawNode<S>> {
        let raft = Raft::new(config, storage)?;
        let prev_soft = raft.soft_state();
        let prev_hard = raft.hard_state();
        Ok(RawNode {
            raft,
            prev_soft,
            prev_hard,
            steps_on_advance: Vec::new(),
            in_flight: Handout::default(),
            async_writes: config.async_storage_writes.then(AsyncWrites::default),
            ready_number: 0,
            spare: SpareBuffers::default(),
            proposals: ProposalTracker::default(),
        })
    }

    /// A new cluster member on an empty `storage`, starting the cluster
    /// with `peers` as its voters (every initial member calls this with the
    /// same list).
    ///
    /// The membership goes into the log as committed `ConfChange` entries
    /// at term 1, handed out by the first `Ready` to persist and to apply
    /// (with [`RawNode::apply_conf_change`]) like any other.
    pub fn bootstrap(config: &Config, storage: S, peers: &[u64]) -> Result<RawNode<S>> {
        if peers.is_empty() {
            return Err(Error::NoPeers);
        }
        let state = storage.initial_state()?;
        if storage.last_index()? != 0
            || !state.hard_state.is_empty()
            || state.conf_state != ConfState::default()
        {
            return Err(Error::NotEmpty);
        }
        let mut node = RawNode::new(config, storage)?;
        let r = &mut node.raft;
        r.become_follower(1, 0);
        let entries: Vec<Entry> = peers
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let cc = ConfChange {
                    change_type: ConfChangeType::AddNode as i32,
                    node_id: id,
                    ..Default::default()
                };
                Entry {
                    entry_type: EntryType::EntryConfChange as i32,
                    term: 1,
                    index: i as u64 + 1,
                    data: Bytes::from(cc.encode_to_vec()),
                }
            })
            .collect();
        r.log.append(&entries);
        r.log.committed = entries.len() as u64;
        // The configuration is in force at once; applying the entries
        // later changes nothing.
        for &id in peers {
            let cc = ConfChange {
                change_type: ConfChangeType::AddNode as i32,
                node_id: id,
                ..Default::default()
            };
            r.apply_conf_change(&cc.into_v2())
                .map_err(|e| Error::BadConfChange(e.to_string()))?;
        }
        // The first Ready reports the term and commit as changes to persist.
        node.prev_hard = HardState::default();
        Ok(node)
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (with a pre-vote round if configured), as an
    /// election timeout would.
    pub fn campaign(&mut self) {
        let id = self.raft.id;
        // MsgHup is handled without error in every role.
        let _ = self.raft.step(Message::new(MessageType::MsgHup, id, id));
    }

    /// Proposes `data` to be appended to the log. On the leader it is
    /// appended, and its outcome comes in a later `Ready`'s
    /// `proposal_outcomes`; on a follower it is forwarded to the leader. An
    /// error says why it was refused.
    pub fn propose(&mut self, data: Bytes) -> Result<Proposed> {
        let proposed = self.raft.propose_data(data, EntryType::EntryNormal)?;
        self.track(proposed);
        Ok(proposed)
    }

    /// Proposes a configuration change (`ConfChange` or `ConfChangeV2`),
    /// like [`RawNode::propose`]. The leader refuses one while another is
    /// not yet applied (`ConfChangePending`) and one that cannot apply to
    /// the configuration in force (`InvalidConfChange`). Once committed, the
    /// application applies it with [`RawNode::apply_conf_change`].
    pub fn propose_conf_change(&mut self, cc: &impl ConfChangeI) -> Result<Proposed> {
        let e = cc.to_entry();
        let kind = e.kind();
        let proposed = self.raft.propose_data(e.data, kind)?;
        self.track(proposed);
        Ok(proposed)
    }

    fn track(&mut self, proposed: Proposed) {
        if let Proposed::Appended { index, term } = proposed {
            self.proposals.track(index, term);
        }
    }

    /// Steps a message received from a peer.
    ///
    /// Local message types and responses from peers outside the
    /// configuration are refused with an error; nothing else is touched.
    pub fn step(&mut self, mut m: Message) -> Result<()> {
        let Some(kind) = m.kind() else {
            return Err(Error::InvalidMessage("unknown message type"));
        };
        if kind.is_local() {
            return self.step_local(kind, &m);
        }
        if kind.is_response() && self.raft.tracker.progress.get(m.from).is_none() {
            return Err(Error::UnknownPeer(m.from));
        }
        if m.from == 0 && kind != MessageType::MsgProp {
            return Err(Error::InvalidMessage("message without a sender"));
        }
        self.raft.step_kind(kind, &mut m)
    }

    /// The local messages a node accepts: its storage workers' reports.
    /// Every other local type is refused (it must not come from the
    /// network).
    fn step_local(&mut self, kind: MessageType, m: &Message) -> Result<()> {
        let writes = self.async_writes.as_mut();
        match (kind, m.from, writes) {
            (MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD, Some(w)) => {
                let done = w.append_done(m)?;
                storage_writes::persisted(&mut self.raft.log, done);
                Ok(())
            }
            (MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD, Some(w)) => {
                let (index, size) = w.apply_done(m)?;
                self.raft.applied_to(index, size);
                Ok(())
            }
            _ => Err(Error::InvalidMessage(
                "local message type received from the network",
            )),
        }
    }

    /// Asks for a read index: once confirmed, a [`ReadState`] with
    /// `request_ctx` comes out in a `Ready`. Make the context unique per
    /// request.
    pub fn read_index(&mut self, request_ctx: Bytes) -> Result<()> {
        let mut m = Message::new(MessageType::MsgReadIndex, 0, 0);
        m.entries.push(Entry::new(0, 0, request_ctx));
        self.raft.step(m)
    }

    /// Applies a committed configuration change and returns the membership
    /// now in force.
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        self.raft
            .apply_conf_change(cc)
            .map_err(|e| Error::BadConfChange(e.to_string()))
    }

    /// Hands leadership to `transferee`: on the leader the transfer starts
    /// (proposals are refused until it ends, at most an election timeout);
    /// on a follower the request is forwarded to the leader. A transfer to
    /// itself is a no-op; to a learner or a non-member, an error.
    pub fn transfer_leader(&mut self, transferee: u64) -> Result<()> {
        let id = self.raft.id;
        let m = Message::new(MessageType::MsgTransferLeader, transferee, id);
        self.raft.step(m)
    }

    /// On a follower, forgets the leader so it can grant pre-votes at once
    /// (when the application knows the leader is gone). Refused under
    /// lease-based reads, whose safety rests on followers keeping their
    /// leader for the lease; leaders and candidates ignore it.
    pub fn forget_leader(&mut self) -> Result<()> {
        self.raft.forget_leader()
    }

    /// Tells the leader that `id` could not be reached: it stops streaming
    /// to it and probes instead.
    pub fn report_unreachable(&mut self, id: u64) {
        let m = Message::new(MessageType::MsgUnreachable, id, 0);
        // Only a leader acts on it; elsewhere it is a no-op.
        let _ = self.raft.step(m);
    }

    /// Tells the leader how sending a snapshot to `id` went.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        let mut m = Message::new(MessageType::MsgSnapStatus, id, 0);
        m.reject = status == SnapshotStatus::Failure;
        let _ = self.raft.step(m);
    }

    /// Whether a `Ready` has anything to do.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_soft
            || r.hard_state() != self.prev_hard
            || !r.log.unstable.next_entries().is_empty()
            || r.log.unstable.next_snapshot().is_some()
            || !r.msgs.is_empty()
            || !r.msgs_after_append.is_empty()
            || !r.read_states.is_empty()
            || (r.broadcast_pending && r.state == StateRole::Leader)
            || r.log
                .has_next_committed_entries(self.async_writes.is_none())
    }

    /// Everything to persist, send and apply since the last `Ready`. Call
    /// [`RawNode::advance`] with it once handled.
    pub fn ready(&mut self) -> Ready {
        self.raft.flush_broadcast();
        self.ready_number += 1;
        let spare = &mut self.spare;
        let mut rd = Ready {
            number: self.ready_number,
            soft_state: None,
            hard_state: None,
            read_states: std::mem::take(&mut spare.read_states),
            entries: std::mem::take(&mut spare.entries),
            snapshot: None,
            committed_entries: std::mem::take(&mut spare.committed_entries),
            messages: std::mem::take(&mut spare.messages),
            persisted_messages: std::mem::take(&mut spare.persisted_messages),
            proposal_outcomes: std::mem::take(&mut spare.proposal_outcomes),
            must_sync: false,
        };
        let r = &mut self.raft;

        let soft = r.soft_state();
        rd.soft_state = (soft != self.prev_soft).then_some(soft);
        self.prev_soft = soft;

        let hard = r.hard_state();
        rd.hard_state = (hard != self.prev_hard).then_some(hard);
        rd.must_sync = hard.term != self.prev_hard.term || hard.vote != self.prev_hard.vote;
        self.prev_hard = hard;

        rd.entries.extend_from_slice(r.log.unstable.next_entries());
        let epoch = r.log.unstable.epoch();
        let mut handout = Handout {
            last_entry: rd.entries.last().map(|e| (e.index, e.term, epoch)),
            ..Handout::default()
        };
        rd.must_sync |= !rd.entries.is_empty();
        rd.snapshot = r.log.unstable.next_snapshot().map(|s| Box::new(s.clone()));
        handout.snapshot_index = rd.snapshot.as_ref().map(|s| s.index());
        r.log.unstable.accept_in_progress();

        // Synchronously, entries persisted in this Ready may be applied
        // after it; asynchronously, only entries already persisted (the
        // same rule as in `has_ready`).
        let allow_unstable = self.async_writes.is_none();
        if let Err(e) = r
            .log
            .next_committed_entries(allow_unstable, &mut rd.committed_entries)
        {
            panic!("log invariant broken: committed entries unreadable: {e}");
        }
        handout.applied = rd.committed_entries.last().map(|e| {
            let size = rd
                .committed_entries
                .iter()
                .map(|e| e.data.len() as u64)
                .sum();
            (e.index, size)
        });
        if let Some((index, _)) = handout.applied {
            r.log.applying = index;
        }

        std::mem::swap(&mut rd.messages, &mut r.msgs);
        std::mem::swap(&mut rd.read_states, &mut r.read_states);
        if r.state == StateRole::Leader {
            if let Some((index, _, _)) = handout.last_entry {
                // The leader's own acknowledgement of its append, once
                // persisted.
                let mut ack = Message::new(MessageType::MsgAppResp, r.id, r.id);
                ack.term = r.term;
                ack.index = index;
                self.steps_on_advance.push(ack);
            }
        }
        if r.msgs_after_append.iter().any(|m| m.to == r.id) {
            for m in r.msgs_after_append.drain(..) {
                if m.to == r.id {
                    self.steps_on_advance.push(m);
                } else {
                    rd.persisted_messages.push(m);
                }
            }
        } else {
            // The usual case: nothing addressed to ourselves.
            std::mem::swap(&mut rd.persisted_messages, &mut r.msgs_after_append);
        }
        self.proposals
            .settle(&self.raft, &rd.committed_entries, &mut rd.proposal_outcomes);
        match &mut self.async_writes {
            Some(writes) => {
                let own_steps = std::mem::take(&mut self.steps_on_advance);
                writes.hand_out(self.raft.id, &mut rd, handout, own_steps);
            }
            None => self.in_flight = handout,
        }
        rd
    }

    /// Reports a `Ready` handled: its entries and snapshot persisted, its
    /// committed entries applied. Acknowledgements of our own writes are
    /// stepped now, which may commit entries (on a leader) or win an
    /// election.
    pub fn advance(&mut self, rd: Ready) {
        let r = &mut self.raft;
        let done = std::mem::take(&mut self.in_flight);
        storage_writes::persisted(&mut r.log, done);
        if let Some((index, size)) = done.applied {
            r.applied_to(index, size);
        }
        if !self.steps_on_advance.is_empty() {
            let mut steps = std::mem::take(&mut self.steps_on_advance);
            for m in steps.drain(..) {
                // Our own acknowledgements: a stale one (term moved on) is
                // dropped by the term rules, never an error.
                let _ = r.step(m);
            }
            self.steps_on_advance = steps;
        }
        let spare = &mut self.spare;
        recycle(rd.read_states, &mut spare.read_states);
        recycle(rd.entries, &mut spare.entries);
        recycle(rd.committed_entries, &mut spare.committed_entries);
        recycle(rd.messages, &mut spare.messages);
        recycle(rd.persisted_messages, &mut spare.persisted_messages);
        recycle(rd.proposal_outcomes, &mut spare.proposal_outcomes);
    }

    /// The node's identity, state and positions, cheaply.
    pub fn basic_status(&self) -> BasicStatus {
        BasicStatus::of(&self.raft)
    }

    /// The basic status plus the membership and, on a leader, every peer's
    /// progress.
    pub fn status(&self) -> Status {
        Status::of(&self.raft)
    }

    /// The underlying state machine, for inspection.
    pub fn raft(&self) -> &Raft<S> {
        &self.raft
    }

    /// The storage, to read.
    pub fn storage(&self) -> &S {
        &self.raft.log.storage
    }

    /// The storage, to write what a `Ready` asks to persist.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.raft.log.storage
    }
}

/// Empties `v` and keeps it in `slot` for its capacity (a vector the
/// application replaced has none worth keeping).
#[inline(always)]
fn recycle<T>(mut v: Vec<T>, slot: &mut Vec<T>) {
    if v.capacity() == 0 {
        return;
    }
    if !v.is_empty() {
        v.clear();
    }
    // `slot` was emptied by `ready`; swapping leaves nothing to free.
    std::mem::swap(slot, &mut v);
}
