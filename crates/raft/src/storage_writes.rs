//! Asynchronous storage writes: the work of each `Ready` goes to local
//! append and apply workers as messages, so a node can keep stepping while
//! its disk works, and several writes can be under way at once.
//!
//! With `Config::async_storage_writes`, `Ready::messages` holds, besides the
//! messages for peers:
//! - a [`MsgStorageAppend`](MessageType::MsgStorageAppend) to
//!   [`LOCAL_APPEND_THREAD`]: persist its `snapshot`, `entries` and hard
//!   state (`term`, `vote`, `commit`, when `term` is non-zero), then deliver
//!   its `responses`;
//! - a [`MsgStorageApply`](MessageType::MsgStorageApply) to
//!   [`LOCAL_APPLY_THREAD`]: apply its `snapshot` and `entries` to the state
//!   machine, then deliver its `responses`.
//!
//! Delivering a response means stepping it into this node when it is
//! addressed to this node (acknowledgements of its own writes) and sending
//! it to the peer otherwise. Each worker handles its messages in the order
//! they were handed out. `advance` is not used in this mode.
//!
//! A response that comes back after the log was rewritten (a new leader
//! replaced entries being written) does not mark the newer entries stable:
//! the unstable log's epoch tells them apart.

use crate::errors::{Error, Result};
use crate::log::RaftLog;
use crate::proto::{HardState, Message, MessageType};
use crate::raw_node::Ready;
use crate::storage::Storage;
use std::collections::VecDeque;

/// The ID that append work is addressed to (and its responses come from).
pub const LOCAL_APPEND_THREAD: u64 = u64::MAX;
/// The ID that apply work is addressed to (and its responses come from).
pub const LOCAL_APPLY_THREAD: u64 = u64::MAX - 1;

/// What one `Ready` handed out, to acknowledge when it is done.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handout {
    /// Index and term of the last entry handed out for persisting, and the
    /// unstable log's epoch then.
    pub last_entry: Option<(u64, u64, u64)>,
    /// Index of the snapshot handed out.
    pub snapshot_index: Option<u64>,
    /// Last committed index handed out for applying, and their payload
    /// bytes.
    pub applied: Option<(u64, u64)>,
}

/// The writes handed to the workers and not yet reported done, oldest
/// first.
#[derive(Debug, Default)]
pub(crate) struct AsyncWrites {
    appends: VecDeque<Handout>,
    applies: VecDeque<(u64, u64)>,
}

impl AsyncWrites {
    /// Moves the persistence and apply work of `rd` into messages to the
    /// workers, with `own_steps` (acknowledgements of our own writes) among
    /// the append's responses.
    #[inline(never)]
    pub fn hand_out(&mut self, id: u64, rd: &mut Ready, handout: Handout, own_steps: Vec<Message>) {
        let persist = !rd.entries.is_empty()
            || rd.hard_state.is_some()
            || rd.snapshot.is_some()
            || !rd.persisted_messages.is_empty()
            || !own_steps.is_empty();
        if persist {
            let mut m = Message::new(MessageType::MsgStorageAppend, id, LOCAL_APPEND_THREAD);
            m.entries = std::mem::take(&mut rd.entries);
            if let Some(hs) = rd.hard_state {
                m.term = hs.term;
                m.vote = hs.vote;
                m.commit = hs.commit;
            }
            m.snapshot = rd.snapshot.clone();
            let mut done = Message::new(MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD, id);
            if let Some((index, term, _)) = handout.last_entry {
                done.index = index;
                done.log_term = term;
            }
            m.responses.push(done);
            m.responses.extend(own_steps);
            m.responses.append(&mut rd.persisted_messages);
            self.appends.push_back(Handout {
                applied: None,
                ..handout
            });
            rd.messages.push(m);
        }
        if !rd.committed_entries.is_empty() || rd.snapshot.is_some() {
            let mut m = Message::new(MessageType::MsgStorageApply, id, LOCAL_APPLY_THREAD);
            m.entries = std::mem::take(&mut rd.committed_entries);
            m.snapshot = rd.snapshot.take();
            let (index, size) = handout
                .applied
                .or(handout.snapshot_index.map(|i| (i, 0)))
                .expect("hand-out invariant broken: apply work without an index");
            let mut done = Message::new(MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD, id);
            done.index = index;
            m.responses.push(done);
            self.applies.push_back((index, size));
            rd.messages.push(m);
        }
    }

    /// The append worker finished the oldest append: returns what it made
    /// durable. A response out of order (or one never handed out) is an
    /// error and changes nothing.
    pub fn append_done(&mut self, m: &Message) -> Result<Handout> {
        let front = self.appends.front().ok_or(Error::InvalidMessage(
            "storage append response with no append under way",
        ))?;
        let (index, term) = front.last_entry.map_or((0, 0), |(i, t, _)| (i, t));
        if (m.index, m.log_term) != (index, term) {
            return Err(Error::InvalidMessage(
                "storage append responses out of order",
            ));
        }
        Ok(self.appends.pop_front().expect("checked above"))
    }

    /// The apply worker finished the oldest apply: returns the index and
    /// payload bytes applied.
    pub fn apply_done(&mut self, m: &Message) -> Result<(u64, u64)> {
        match self.applies.front() {
            Some(&(index, size)) if index == m.index => {
                self.applies.pop_front();
                Ok((index, size))
            }
            Some(_) => Err(Error::InvalidMessage(
                "storage apply responses out of order",
            )),
            None => Err(Error::InvalidMessage(
                "storage apply response with no apply under way",
            )),
        }
    }
}

/// The hard state a `MsgStorageAppend` asks to persist, if any (it rides
/// in the message's `term`, `vote` and `commit`, `term` non-zero).
pub fn hard_state_of(m: &Message) -> Option<HardState> {
    (m.term != 0).then_some(HardState {
        term: m.term,
        vote: m.vote,
        commit: m.commit,
    })
}

/// Marks what an append made durable as stable in the log.
#[inline]
pub(crate) fn persisted<S: Storage>(log: &mut RaftLog<S>, done: Handout) {
    if let Some(index) = done.snapshot_index {
        log.stable_snap_to(index);
    }
    if let Some((index, term, epoch)) = done.last_entry {
        log.stable_to(index, term, epoch);
    }
}
