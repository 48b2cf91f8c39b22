//! Read-index requests waiting for a leader to confirm its leadership
//! (thesis §6.4).

use crate::config::ReadOnlyOption;
use crate::proto::Message;
use bytes::Bytes;
use std::collections::VecDeque;

/// The answer to a read-index request: once the application has applied up
/// to `index`, reading its state machine is linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index when the request was confirmed.
    pub index: u64,
    /// The request's context, as given to `read_index`.
    pub request_ctx: Bytes,
}

/// One request waiting for a quorum of heartbeat acknowledgements.
#[derive(Clone, Debug)]
pub struct ReadIndexStatus {
    /// The original request (from this node or a follower).
    pub req: Message,
    /// The leader's commit index when the request arrived.
    pub index: u64,
    /// Who acknowledged the heartbeat carrying the request's context.
    pub acks: Vec<u64>,
}

/// The queue of read-index requests on a leader. Each request's context
/// rides on a heartbeat round; once a quorum acknowledges it, it and every
/// request queued before it are answered.
#[derive(Clone, Debug)]
pub struct ReadOnly {
    /// How reads are served.
    pub option: ReadOnlyOption,
    queue: VecDeque<ReadIndexStatus>,
}

impl ReadOnly {
    /// An empty queue.
    pub fn new(option: ReadOnlyOption) -> ReadOnly {
        ReadOnly {
            option,
            queue: VecDeque::new(),
        }
    }

    /// Queues `req`, which arrived when the commit index was `index`. A
    /// request whose context is already queued is ignored (its heartbeat
    /// round answers both).
    pub fn add_request(&mut self, index: u64, req: Message) {
        let ctx = request_ctx(&req);
        if self.queue.iter().any(|s| request_ctx(&s.req) == ctx) {
            return;
        }
        self.queue.push_back(ReadIndexStatus {
            req,
            index,
            acks: Vec::new(),
        });
    }

    /// Records that `from` acknowledged the heartbeat carrying `ctx`;
    /// returns the acknowledgements so far, or `None` for an unknown context.
    pub fn recv_ack(&mut self, from: u64, ctx: &[u8]) -> Option<&[u64]> {
        let status = self.queue.iter_mut().find(|s| request_ctx(&s.req) == ctx)?;
        if !status.acks.contains(&from) {
            status.acks.push(from);
        }
        Some(&status.acks)
    }

    /// Removes and returns the request with `ctx` and all queued before it:
    /// a quorum acknowledging a later round confirms the earlier ones too.
    pub fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        match self.queue.iter().position(|s| request_ctx(&s.req) == ctx) {
            Some(i) => self.queue.drain(..=i).collect(),
            None => Vec::new(),
        }
    }

    /// The context of the newest queued request, to piggyback on heartbeats.
    pub fn last_pending_request_ctx(&self) -> Option<Bytes> {
        self.queue.back().map(|s| request_ctx(&s.req).clone())
    }

    /// The number of queued requests.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Drops every queued request (on losing leadership).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

/// The context of a read-index request: its first entry's data.
pub fn request_ctx(m: &Message) -> &Bytes {
    static EMPTY: Bytes = Bytes::new();
    m.entries.first().map_or(&EMPTY, |e| &e.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Entry, MessageType};

    fn req(ctx: &'static [u8]) -> Message {
        let mut m = Message::new(MessageType::MsgReadIndex, 1, 1);
        m.entries.push(Entry::new(0, 0, Bytes::from_static(ctx)));
        m
    }

    #[test]
    fn a_later_confirmation_answers_earlier_requests() {
        let mut ro = ReadOnly::new(ReadOnlyOption::Safe);
        ro.add_request(5, req(b"a"));
        ro.add_request(6, req(b"b"));
        ro.add_request(7, req(b"b"));
        assert_eq!(ro.pending(), 2);
        assert_eq!(ro.last_pending_request_ctx().unwrap(), &b"b"[..]);
        assert_eq!(ro.recv_ack(2, b"b"), Some(&[2][..]));
        assert_eq!(ro.recv_ack(2, b"b"), Some(&[2][..]));
        assert_eq!(ro.recv_ack(3, b"zz"), None);
        let done = ro.advance(b"b");
        assert_eq!(done.iter().map(|s| s.index).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(ro.pending(), 0);
    }
}
