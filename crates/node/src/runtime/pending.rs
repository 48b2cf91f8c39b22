//! Proposals appended on this node, waiting for their fate.
//!
//! Each is keyed by the index it was appended at, with the term: applied
//! at that index in that term, it gets the state machine's response; told
//! superseded (another entry won the index) or unknown by the core, it gets
//! that error; past its deadline, a timeout. So no proposal waits forever.

use super::error::RequestError;
use rudder_raft::{ConfState, Outcome, ProposalOutcome};
use std::collections::BTreeMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Who waits for a proposal, and for what.
pub enum Waiter<R> {
    /// A command: the state machine's response.
    Command(oneshot::Sender<Result<R, RequestError>>),
    /// A membership change: the membership it brings.
    ConfChange(oneshot::Sender<Result<ConfState, RequestError>>),
}

impl<R> Waiter<R> {
    /// Fails the request with `e`; a waiter that gave up is not told.
    pub fn fail(self, e: RequestError) {
        match self {
            Waiter::Command(tx) => drop(tx.send(Err(e))),
            Waiter::ConfChange(tx) => drop(tx.send(Err(e))),
        }
    }
}

struct Entry<R> {
    term: u64,
    deadline: Instant,
    waiter: Waiter<R>,
}

/// The proposals waiting, by index.
pub struct Pending<R> {
    by_index: BTreeMap<u64, Entry<R>>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Pending {
            by_index: BTreeMap::new(),
        }
    }
}

impl<R> Pending<R> {
    /// A proposal appended at `index` in `term`, answered by `deadline`.
    pub fn insert(&mut self, index: u64, term: u64, deadline: Instant, waiter: Waiter<R>) {
        // An older proposal at the same index lost it to this one.
        if let Some(old) = self.by_index.insert(
            index,
            Entry {
                term,
                deadline,
                waiter,
            },
        ) {
            old.waiter.fail(RequestError::NotLeader { leader: 0 });
        }
    }

    /// The entry at `index` of `term` was applied: its waiter, if it was
    /// proposed here.
    pub fn take_applied(&mut self, index: u64, term: u64) -> Option<Waiter<R>> {
        match self.by_index.get(&index) {
            Some(e) if e.term == term => self.by_index.remove(&index).map(|e| e.waiter),
            Some(_) => {
                // Another term's entry took the index: ours never will be.
                let e = self.by_index.remove(&index).expect("present");
                e.waiter.fail(RequestError::NotLeader { leader: 0 });
                None
            }
            None => None,
        }
    }

    /// The core's verdict on a run of proposals. Committed ones are
    /// answered when applied; `leader` is the hint for superseded ones.
    pub fn on_outcome(&mut self, o: &ProposalOutcome, leader: u64) {
        let error = match o.outcome {
            Outcome::Committed => return,
            Outcome::Superseded => RequestError::NotLeader { leader },
            Outcome::Unknown => RequestError::Unknown,
        };
        let ours: Vec<u64> = self
            .by_index
            .range(o.indexes())
            .filter(|(_, e)| e.term == o.term)
            .map(|(&i, _)| i)
            .collect();
        for i in ours {
            let e = self.by_index.remove(&i).expect("present");
            e.waiter.fail(error.clone());
        }
    }

    /// Fails every proposal whose deadline passed by `now`.
    pub fn expire(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .by_index
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(&i, _)| i)
            .collect();
        for i in late {
            let e = self.by_index.remove(&i).expect("present");
            e.waiter.fail(RequestError::Timeout);
        }
    }

    /// Fails every proposal with `e`.
    pub fn fail_all(&mut self, e: RequestError) {
        for (_, entry) in std::mem::take(&mut self.by_index) {
            entry.waiter.fail(e.clone());
        }
    }
}
