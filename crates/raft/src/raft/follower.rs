//! A follower: forwarding proposals, accepting appends, heartbeats and
//! snapshots from its leader (§5.3, §7).

use super::Raft;
use crate::confchange;
use crate::errors::{DropReason, Result};
use crate::proto::{Message, MessageType, Snapshot};
use crate::read_only::ReadState;
use crate::storage::Storage;
use tracing::{debug, info, warn};

impl<S: Storage> Raft<S> {
    pub(super) fn step_follower(&mut self, kind: MessageType, m: &mut Message) -> Result<()> {
        match kind {
            MessageType::MsgProp => {
                if self.lead == 0 {
                    return Err(Self::dropped(DropReason::NoLeader));
                }
                if self.disable_proposal_forwarding {
                    return Err(Self::dropped(DropReason::ForwardingDisabled));
                }
                m.to = self.lead;
                self.send(std::mem::take(m));
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgReadIndex => {
                if self.lead == 0 {
                    return Err(Self::dropped(DropReason::NoLeader));
                }
                m.to = self.lead;
                self.send(std::mem::take(m));
            }
            MessageType::MsgTransferLeader => {
                if self.lead == 0 {
                    return Err(Self::dropped(DropReason::NoLeader));
                }
                // Forwarded as is: `from` names the transferee, which
                // `send` would overwrite with our ID.
                m.to = self.lead;
                m.term = self.term;
                self.msgs.push(std::mem::take(m));
            }
            MessageType::MsgTimeoutNow => self.handle_timeout_now(),
            MessageType::MsgReadIndexResp => {
                if m.entries.len() != 1 {
                    warn!(
                        id = self.id,
                        from = m.from,
                        "read index response without exactly one context entry"
                    );
                    return Ok(());
                }
                let ctx = m.entries.swap_remove(0).data;
                self.read_states.push(ReadState {
                    index: m.index,
                    request_ctx: ctx,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends what the leader sent if our log matches before it, or
    /// rejects with a hint that lets the leader skip whole terms (§5.3).
    pub(crate) fn handle_append_entries(&mut self, m: &mut Message) {
        let mut resp = Message::new(MessageType::MsgAppResp, self.id, m.from);
        if m.index < self.log.committed {
            // Everything up to our commit index matches the leader's log
            // already; tell it where we are.
            resp.index = self.log.committed;
            self.send(resp);
            return;
        }
        let (index, log_term, commit) = (m.index, m.log_term, m.commit);
        // Entries must follow `index` one by one; anything else is a
        // malformed message, dropped before it can touch the log.
        let contiguous = m
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| index.checked_add(1 + i as u64) == Some(e.index));
        if !contiguous {
            warn!(
                id = self.id,
                from = m.from,
                "append with non-contiguous entries dropped"
            );
            return;
        }
        let carried_entries = !m.entries.is_empty();
        let committed_before = self.log.committed;
        match self
            .log
            .maybe_append(index, log_term, commit, std::mem::take(&mut m.entries))
        {
            Some(last_new) => {
                // An empty append that only moves our commit index, at an
                // index we already acknowledged to this term's leader, would
                // be answered with nothing it does not know: stay silent.
                // (Rejections always get an answer, heartbeats keep
                // the leader's view of us fresh, and commit-only appends
                // do not pause the leader's probing.) One that moves
                // nothing is the leader asking where we are, because its
                // appends or our answers may have been lost: answer it, or
                // the leader never learns what we store (§5.3).
                if !carried_entries
                    && last_new <= self.acked_to_leader
                    && self.log.committed > committed_before
                {
                    return;
                }
                self.acked_to_leader = self.acked_to_leader.max(last_new);
                resp.index = last_new;
                self.send(resp);
            }
            None => {
                // Our log has nothing matching (index, log_term). Hint the
                // largest index at or below it whose term is at most
                // log_term: the leader can then probe from there.
                let hint = index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(hint, log_term);
                debug!(
                    id = self.id,
                    from = m.from,
                    index,
                    log_term,
                    hint_index,
                    hint_term,
                    "rejected append"
                );
                resp.index = index;
                resp.reject = true;
                resp.reject_hint = hint_index;
                resp.log_term = hint_term;
                self.send(resp);
            }
        }
    }

    pub(crate) fn handle_heartbeat(&mut self, m: &mut Message) {
        // The leader never sends more than it knows we hold; a larger value
        // is from a confused peer and is bounded rather than trusted.
        let commit = m.commit.min(self.log.last_index());
        self.log.commit_to(commit);
        let mut resp = Message::new(MessageType::MsgHeartbeatResp, self.id, m.from);
        resp.context = std::mem::take(&mut m.context);
        self.send(resp);
    }

    pub(crate) fn handle_snapshot(&mut self, m: &mut Message) {
        let Some(snapshot) = m.snapshot.take() else {
            warn!(
                id = self.id,
                from = m.from,
                "snapshot message without a snapshot"
            );
            return;
        };
        let (index, term) = (snapshot.index(), snapshot.term());
        let mut resp = Message::new(MessageType::MsgAppResp, self.id, m.from);
        if self.restore(*snapshot) {
            info!(id = self.id, index, term, "restored snapshot");
            resp.index = self.log.last_index();
        } else {
            debug!(id = self.id, index, term, "ignored snapshot");
            resp.index = self.log.committed;
        }
        self.send(resp);
    }

    /// Installs a snapshot from the leader if it is news; returns whether
    /// the log was replaced.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) -> bool {
        let (index, term) = (snapshot.index(), snapshot.term());
        if index <= self.log.committed {
            return false;
        }
        if index == u64::MAX {
            // No leader holds such a log (the next entry would have no
            // index): a peer's bad message.
            warn!(id = self.id, "ignoring a snapshot at the largest index");
            return false;
        }
        if self.state != super::StateRole::Follower {
            warn!(id = self.id, "non-follower asked to restore a snapshot");
            return false;
        }
        let cs = snapshot.conf_state();
        let member = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .chain(&cs.voters_outgoing)
            .any(|&id| id == self.id);
        if !member {
            warn!(
                id = self.id,
                index, "snapshot configuration does not include this node"
            );
            return false;
        }
        if self.log.match_term(index, term) {
            // We hold the snapshot's entries: just move commit forward.
            self.log.commit_to(index);
            return false;
        }
        if self.log.applying_conf_change() {
            // The application is applying a configuration change handed out
            // before this snapshot; applied after the snapshot's
            // configuration was installed, it would replace it with an older
            // one. Wait: the leader offers the snapshot again.
            debug!(
                id = self.id,
                index, "snapshot deferred: a configuration change is being applied"
            );
            return false;
        }
        let (cfg, prs) = match confchange::restore(&self.tracker, index, &cs) {
            Ok(c) => c,
            Err(e) => {
                warn!(id = self.id, index, error = %e, "snapshot configuration is invalid");
                return false;
            }
        };
        self.log.restore(snapshot);
        self.switch_to_config(cfg, prs);
        true
    }
}
