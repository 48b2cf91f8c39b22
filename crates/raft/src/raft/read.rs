//! Read-index: answering linearizable reads without writing to the log
//! (thesis §6.4).

use super::{Raft, StateRole};
use crate::config::ReadOnlyOption;
use crate::proto::{Message, MessageType};
use crate::quorum::VoteResult;
use crate::read_only::{request_ctx, ReadState};
use crate::storage::Storage;

impl<S: Storage> Raft<S> {
    /// Whether this leader has committed an entry of its own term; until it
    /// has, its commit index may lag the true one and reads must wait.
    fn committed_entry_in_current_term(&self) -> bool {
        self.log.zero_term_on_out_of_bounds(self.log.committed) == self.term
    }

    pub(super) fn leader_read_index(&mut self, m: Message) {
        if self.tracker.is_singleton() && self.tracker.is_voter(self.id) {
            // Alone, we are the quorum.
            let index = self.log.committed;
            self.answer_read(m, index);
            return;
        }
        if !self.committed_entry_in_current_term() {
            self.pending_read_index.push(m);
            return;
        }
        self.serve_read(m);
    }

    fn serve_read(&mut self, m: Message) {
        let index = self.log.committed;
        match self.read_only.option {
            ReadOnlyOption::Safe => {
                let ctx = request_ctx(&m).clone();
                self.read_only.add_request(index, m);
                // Our own acknowledgement; the rest come with heartbeats.
                self.read_only.recv_ack(self.id, &ctx);
                self.bcast_heartbeat_with_ctx(ctx);
            }
            ReadOnlyOption::LeaseBased => self.answer_read(m, index),
        }
    }

    /// Answers reads that waited for the first commit of this term.
    pub(super) fn release_pending_read_index(&mut self) {
        if self.pending_read_index.is_empty() || !self.committed_entry_in_current_term() {
            return;
        }
        for m in std::mem::take(&mut self.pending_read_index) {
            self.serve_read(m);
        }
    }

    /// A heartbeat response may confirm pending reads.
    pub(super) fn leader_read_ack(&mut self, m: &Message) {
        if self.read_only.option != ReadOnlyOption::Safe || m.context.is_empty() {
            return;
        }
        let Some(acks) = self.read_only.recv_ack(m.from, &m.context) else {
            return;
        };
        let result = self
            .tracker
            .config
            .voters
            .vote_result(|id| acks.contains(&id).then_some(true));
        if result != VoteResult::Won {
            return;
        }
        for status in self.read_only.advance(&m.context) {
            self.answer_read(status.req, status.index);
        }
    }

    /// Hands the answer to a local request to the application, or sends it
    /// to the follower that forwarded it.
    fn answer_read(&mut self, req: Message, index: u64) {
        debug_assert_eq!(self.state, StateRole::Leader);
        if req.from == 0 || req.from == self.id {
            let request_ctx = request_ctx(&req).clone();
            self.read_states.push(ReadState { index, request_ctx });
            return;
        }
        let mut resp = Message::new(MessageType::MsgReadIndexResp, self.id, req.from);
        resp.index = index;
        resp.entries = req.entries;
        self.send(resp);
    }
}
