//! Following proposals to their outcome, which etcd leaves to timeouts.
//!
//! A proposal appended on this node as leader is at `(index, term)`. It is
//! committed if the entry committed at `index` has `term`; superseded if
//! the entry committed at `index` has another term; unknown if the log
//! moved past `index` through a snapshot before this node saw which entry
//! was committed there.
//!
//! Only a committed entry settles a proposal. Seeing this node's own copy
//! overwritten is not enough: the entry that overwrote it may itself be
//! overwritten, and a later leader that still holds the proposal can commit
//! it (§5.4.2, Figure 8) — so the old leader applies it after all.

use crate::log::RaftLog;
use crate::proto::Entry;
use crate::raft::{Raft, StateRole};
use crate::storage::Storage;
use std::collections::VecDeque;

/// What became of a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed: it will be (or was, in this `Ready`) applied.
    Committed,
    /// Another entry was committed at its index: it will never be applied.
    Superseded,
    /// A snapshot covered its index before its fate was seen here.
    Unknown,
}

/// The outcome of the proposal appended at `(index, term)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposalOutcome {
    /// The entry's index.
    pub index: u64,
    /// The term it was appended in.
    pub term: u64,
    /// What became of it.
    pub outcome: Outcome,
}

/// Proposals appended here whose outcome is not known yet, oldest first.
#[derive(Debug, Default)]
pub(crate) struct ProposalTracker {
    pending: VecDeque<(u64, u64)>,
    /// The term of every pending proposal, if they share one.
    common_term: Option<u64>,
}

impl ProposalTracker {
    /// Follows the proposal appended at `(index, term)`.
    pub fn track(&mut self, index: u64, term: u64) {
        self.common_term = match (self.pending.is_empty(), self.common_term) {
            (true, _) => Some(term),
            (false, Some(t)) if t == term => Some(t),
            _ => None,
        };
        self.pending.push_back((index, term));
    }

    /// Settles every proposal whose outcome is now known, given the
    /// committed entries handed out in this `Ready`, into `out`.
    #[inline]
    pub fn settle<S: Storage>(
        &mut self,
        raft: &Raft<S>,
        committed: &[Entry],
        out: &mut Vec<ProposalOutcome>,
    ) {
        if !self.pending.is_empty() {
            self.settle_pending(raft, committed, out);
        }
    }

    #[inline(never)]
    fn settle_pending<S: Storage>(
        &mut self,
        raft: &Raft<S>,
        committed: &[Entry],
        out: &mut Vec<ProposalOutcome>,
    ) {
        let Some(&(oldest, _)) = self.pending.front() else {
            return;
        };
        let leading = raft.state == StateRole::Leader && self.common_term == Some(raft.term);
        if leading && committed.last().is_none_or(|e| e.index < oldest) {
            // The usual Ready on a leader: nothing it proposed committed yet.
            return;
        }
        let first = committed.first().map_or(u64::MAX, |e| e.index);
        let by_commit = |(index, term): (u64, u64)| -> Option<Outcome> {
            let e = committed.get(index.checked_sub(first)? as usize)?;
            Some(if e.term == term {
                Outcome::Committed
            } else {
                Outcome::Superseded
            })
        };
        let settled = |(index, term), outcome| ProposalOutcome {
            index,
            term,
            outcome,
        };
        if leading {
            // Leading in the term of every pending proposal: their entries
            // cannot be replaced and commit in order, so only the front can
            // settle, and only by commit.
            while let Some(&p) = self.pending.front() {
                let Some(outcome) = by_commit(p) else { break };
                out.push(settled(p, outcome));
                self.pending.pop_front();
            }
        } else {
            self.pending.retain(|&p| {
                match by_commit(p).or_else(|| covered_by_snapshot(&raft.log, p.0)) {
                    Some(outcome) => {
                        out.push(settled(p, outcome));
                        false
                    }
                    None => true,
                }
            });
        }
        if self.pending.is_empty() {
            self.common_term = None;
        }
    }
}

/// `Unknown` if the log moved past `index` without handing out its entry
/// to apply (a snapshot covers it); `None` while the proposal may still be
/// committed or superseded. Whatever stands at `index` in the log now is
/// not final until committed, so it decides nothing.
fn covered_by_snapshot<S: Storage>(log: &RaftLog<S>, index: u64) -> Option<Outcome> {
    if index <= log.applied() {
        // Past it without seeing it committed here: a snapshot jumped over.
        return Some(Outcome::Unknown);
    }
    match log.term(index) {
        Err(crate::StorageError::Compacted { .. }) => Some(Outcome::Unknown),
        _ => None,
    }
}
