//! The leader: accepting proposals, replicating the log to each follower
//! within its flow-control window, heartbeats, quorum checks and commit
//! (§5.3, §5.4.2).

use super::{Raft, StateRole};
use crate::errors::Result;
use crate::errors::StorageError;
use crate::proto::{Entry, Message, MessageType};
use crate::storage::Storage;
use crate::tracker::ProgressState;
use bytes::Bytes;
use tracing::{debug, info, warn};

impl<S: Storage> Raft<S> {
    pub(crate) fn become_leader(&mut self) {
        assert!(
            self.state != StateRole::Follower,
            "role invariant broken: a follower must campaign before leading"
        );
        self.reset(self.term);
        self.lead = self.id;
        self.state = StateRole::Leader;
        let id = self.id;
        if let Some(pr) = self.tracker.progress.get_mut(id) {
            // We hold our own log: replicate state, and count as active.
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Entries of earlier terms may be in the log unapplied; one of them
        // may be a conf change, so assume one is pending until all applied.
        self.pending_conf_index = self.log.last_index();
        // An empty entry of our term lets us commit everything before it
        // (§5.4.2) and answer reads (thesis §6.4).
        let empty = Entry::new(self.term, self.log.last_index() + 1, Bytes::new());
        self.log.append(std::slice::from_ref(&empty));
        self.broadcast_pending = true;
        info!(id = self.id, term = self.term, "became leader");
    }

    /// Steps down if a quorum was not heard from since the last check, and
    /// starts a new observation period.
    pub(super) fn check_quorum_active(&mut self) {
        if self.state != StateRole::Leader {
            return;
        }
        if !self.tracker.quorum_active() {
            warn!(
                id = self.id,
                term = self.term,
                "stepping down: quorum not active"
            );
            self.become_follower(self.term, 0);
            return;
        }
        let id = self.id;
        for (pid, pr) in self.tracker.progress.iter_mut() {
            if pid != id {
                pr.recent_active = false;
            }
        }
    }

    pub(crate) fn abort_leader_transfer(&mut self) {
        if std::mem::take(&mut self.lead_transferee) != 0 {
            // A leave refused while the transfer ran can go now.
            self.maybe_auto_leave();
        }
    }

    /// Sends what the followers lack, once per follower, for everything
    /// appended or committed since the last call.
    pub(crate) fn flush_broadcast(&mut self) {
        if !std::mem::take(&mut self.broadcast_pending) || self.state != StateRole::Leader {
            return;
        }
        for i in 0..self.tracker.progress.len() {
            let id = self.tracker.progress.id_at(i);
            if id != self.id {
                self.maybe_send_append(id, false);
            }
        }
    }

    /// Sends `to` the entries it lacks (or a snapshot), if its window
    /// allows; with nothing to send, an empty append if `send_if_empty` or
    /// if its commit index can move. Returns whether a message was sent.
    pub(crate) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let committed = self.log.committed;
        let Some(pr) = self.tracker.progress.get_mut(to) else {
            return false;
        };
        if pr.is_paused() {
            // Throttled, but commit must keep moving: an empty append at
            // the index known to match tells the follower how far to commit.
            if pr.state != ProgressState::Snapshot && committed.min(pr.matched) > pr.sent_commit {
                let matched = pr.matched;
                if let Ok(term) = self.log.term(matched) {
                    pr.sent_commit = committed.min(matched);
                    self.send_append_message(to, matched, term, Vec::new(), committed);
                    return true;
                }
            }
            return false;
        }
        let next = pr.next_idx;
        let has_entries = next <= self.log.last_index();
        // With entries in flight, an empty append that only carries the
        // commit index goes after what is known to match, so it cannot
        // overtake them and be rejected. One sent on purpose
        // (`send_if_empty`: answering a heartbeat response) goes after the
        // last entry sent instead: a follower that lost those entries
        // rejects it, and the leader resends from its match (§5.3: the
        // leader retries until the follower stores every entry).
        let prev = if !has_entries && pr.state == ProgressState::Replicate && !send_if_empty {
            pr.matched
        } else {
            next - 1
        };
        if !has_entries && !send_if_empty && committed.min(prev) <= pr.sent_commit {
            return false;
        }
        let log_term = match self.log.term(prev) {
            Ok(t) => t,
            Err(StorageError::Compacted { .. }) => return self.send_snapshot(to),
            Err(e) => {
                warn!(id = self.id, to, prev, error = %e, "cannot read term to send append");
                return false;
            }
        };
        let mut entries = Vec::new();
        if has_entries {
            if let Err(e) = self.log.entries(next, self.max_msg_size, &mut entries) {
                return match e {
                    StorageError::Compacted { .. } => self.send_snapshot(to),
                    e => {
                        warn!(id = self.id, to, next, error = %e, "cannot read entries to send append");
                        false
                    }
                };
            }
        }
        let last_sent = prev + entries.len() as u64;
        if !entries.is_empty() || send_if_empty {
            // A commit-only append is not a probe and is not answered when
            // it brings nothing new (see `handle_append_entries`): it must
            // not pause the peer.
            pr.sent_entries(last_sent, crate::util::total_size(&entries));
        }
        pr.sent_commit = pr.sent_commit.max(committed.min(last_sent));
        self.send_append_message(to, prev, log_term, entries, committed);
        true
    }

    fn send_append_message(
        &mut self,
        to: u64,
        prev: u64,
        log_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) {
        let mut m = Message::new(MessageType::MsgApp, self.id, to);
        m.index = prev;
        m.log_term = log_term;
        m.entries = entries;
        m.commit = commit;
        self.send(m);
    }

    fn send_snapshot(&mut self, to: u64) -> bool {
        let Some(pr) = self.tracker.progress.get(to) else {
            return false;
        };
        if !pr.recent_active {
            debug!(
                id = self.id,
                to, "not sending snapshot to a peer not recently active"
            );
            return false;
        }
        let snapshot = match self.log.snapshot(pr.next_idx - 1) {
            Ok(s) => s,
            Err(StorageError::SnapshotTemporarilyUnavailable) => {
                debug!(id = self.id, to, "snapshot temporarily unavailable");
                return false;
            }
            Err(e) => {
                warn!(id = self.id, to, error = %e, "cannot read snapshot");
                return false;
            }
        };
        if snapshot.is_empty() {
            warn!(
                id = self.id,
                to, "storage compacted entries but has no snapshot"
            );
            return false;
        }
        let index = snapshot.index();
        info!(id = self.id, to, index, "sending snapshot");
        if let Some(pr) = self.tracker.progress.get_mut(to) {
            pr.become_snapshot(index);
        }
        let mut m = Message::new(MessageType::MsgSnap, self.id, to);
        m.snapshot = Some(Box::new(snapshot));
        self.send(m);
        true
    }

    /// Sends heartbeats to every peer, carrying the newest pending read
    /// request's context.
    pub(super) fn bcast_heartbeat(&mut self) {
        let ctx = self
            .read_only
            .last_pending_request_ctx()
            .unwrap_or_default();
        self.bcast_heartbeat_with_ctx(ctx);
    }

    pub(super) fn bcast_heartbeat_with_ctx(&mut self, ctx: Bytes) {
        for i in 0..self.tracker.progress.len() {
            let (id, pr) = self.tracker.progress.at(i);
            if id == self.id {
                continue;
            }
            // Never tell a follower to commit past what it is known to hold.
            let commit = pr.matched.min(self.log.committed);
            let mut m = Message::new(MessageType::MsgHeartbeat, self.id, id);
            m.commit = commit;
            m.context = ctx.clone();
            self.send(m);
        }
    }

    /// Commits what a quorum holds; returns whether the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let mci = self.tracker.committed();
        if self.log.maybe_commit(mci, self.term) {
            // Followers learn the new commit index with the next broadcast.
            self.broadcast_pending = true;
            self.release_pending_read_index();
            true
        } else {
            false
        }
    }

    pub(super) fn step_leader(&mut self, kind: MessageType, m: &mut Message) -> Result<()> {
        match kind {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                self.check_quorum_active();
                return Ok(());
            }
            MessageType::MsgProp => {
                if m.entries.is_empty() {
                    return Err(crate::Error::InvalidMessage("proposal without entries"));
                }
                return self
                    .append_proposals(std::mem::take(&mut m.entries))
                    .map(|_| ());
            }
            MessageType::MsgReadIndex => {
                self.leader_read_index(std::mem::take(m));
                return Ok(());
            }
            // `from` names the transferee, which may be anyone.
            MessageType::MsgTransferLeader => return self.start_leader_transfer(m.from),
            _ => {}
        }
        if self.tracker.progress.get(m.from).is_none() {
            debug!(
                id = self.id,
                from = m.from,
                kind = kind.short_name(),
                "no progress for sender"
            );
            return Ok(());
        }
        match kind {
            MessageType::MsgAppResp => self.handle_append_response(m),
            MessageType::MsgHeartbeatResp => self.handle_heartbeat_response(m),
            MessageType::MsgSnapStatus => {
                let pr = self
                    .tracker
                    .progress
                    .get_mut(m.from)
                    .expect("checked above");
                if pr.state == ProgressState::Snapshot {
                    if m.reject {
                        pr.pending_snapshot = 0;
                    }
                    pr.become_probe();
                    // Wait for the follower's answer (or a heartbeat) before
                    // the next probe.
                    pr.probe_sent = true;
                    debug!(
                        id = self.id,
                        to = m.from,
                        failed = m.reject,
                        "snapshot status reported"
                    );
                }
            }
            MessageType::MsgUnreachable => {
                let pr = self
                    .tracker
                    .progress
                    .get_mut(m.from)
                    .expect("checked above");
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        if !m.reject && m.index > self.log.last_index() {
            // No follower can hold more than we appended in our term: a
            // confused or forged acknowledgement must not count to commit.
            warn!(
                id = self.id,
                from,
                index = m.index,
                "acknowledgement beyond the last index ignored"
            );
            return;
        }
        let pr = self
            .tracker
            .progress
            .get_mut(from)
            .expect("checked by caller");
        pr.recent_active = true;
        if m.reject {
            // The follower's hint (its last index, or with a term the last
            // entry of at most that term) lets us skip a whole term of
            // mismatches at once.
            let mut next_probe = m.reject_hint;
            if m.log_term > 0 {
                next_probe = self.log.find_conflict_by_term(m.reject_hint, m.log_term).0;
            }
            let pr = self
                .tracker
                .progress
                .get_mut(from)
                .expect("checked by caller");
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.maybe_send_append(from, true);
            }
            return;
        }
        let updated = pr.maybe_update(m.index);
        if !(updated || (pr.matched == m.index && pr.state == ProgressState::Probe)) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot => {
                if pr.matched + 1 >= self.log.first_index() {
                    // The snapshot (or entries after it) arrived.
                    pr.become_probe();
                    pr.become_replicate();
                }
            }
            ProgressState::Replicate => pr.inflights.free_le(m.index),
        }
        let matched = pr.matched;
        // A commit is broadcast with the next Ready; otherwise keep this
        // follower's pipeline full.
        if !self.maybe_commit() && from != self.id {
            while self.maybe_send_append(from, false) {}
        }
        if from == self.lead_transferee {
            self.maybe_finish_transfer(from, matched);
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last = self.log.last_index();
        let pr = self
            .tracker
            .progress
            .get_mut(m.from)
            .expect("checked by caller");
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            // Acknowledgements may have been lost; the follower is alive, so
            // let one more append through.
            pr.inflights.free_first_one();
        }
        if pr.matched < last || pr.state == ProgressState::Probe {
            // Even with nothing new to send: appends (or their answers) may
            // have been lost, and only an answered append tells us.
            self.maybe_send_append(m.from, true);
        }
        self.leader_read_ack(m);
    }
}
