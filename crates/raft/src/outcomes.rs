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
//!
//! Proposals are tracked and reported as runs of consecutive indexes in one
//! term, so a burst of proposals costs one record, not one per entry.

use crate::log::RaftLog;
use crate::proto::Entry;
use crate::raft::{Raft, StateRole};
use crate::storage::Storage;
use std::collections::VecDeque;
use std::ops::RangeInclusive;

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

/// The outcome shared by the proposals appended at `first_index ..=
/// last_index`, all in `term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposalOutcome {
    /// The first entry's index.
    pub first_index: u64,
    /// The last entry's index (equal to `first_index` for one proposal).
    pub last_index: u64,
    /// The term they were appended in.
    pub term: u64,
    /// What became of them.
    pub outcome: Outcome,
}

impl ProposalOutcome {
    /// The indexes this outcome covers.
    pub fn indexes(&self) -> RangeInclusive<u64> {
        self.first_index..=self.last_index
    }

    /// Whether it covers the proposal appended at `(index, term)`, as
    /// [`Proposed::Appended`](crate::Proposed::Appended) reported it.
    pub fn covers(&self, index: u64, term: u64) -> bool {
        term == self.term && self.indexes().contains(&index)
    }
}

/// Proposals appended at `first ..= last` in `term`, not settled yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: u64,
    last: u64,
    term: u64,
}

/// Proposals appended here whose outcome is not known yet, oldest first.
#[derive(Debug, Default)]
pub(crate) struct ProposalTracker {
    /// The run the newest proposals extend, kept out of `pending` so that
    /// following a proposal costs a comparison and a store.
    open: Option<Run>,
    /// Older runs, oldest first.
    pending: VecDeque<Run>,
    /// The term of every pending proposal, if they share one.
    common_term: Option<u64>,
}

impl ProposalTracker {
    /// Follows the proposal appended at `(index, term)`.
    #[inline]
    pub fn track(&mut self, index: u64, term: u64) {
        match &mut self.open {
            Some(run) if run.term == term && run.last + 1 == index => run.last = index,
            _ => self.open_run(index, term),
        }
    }

    /// Starts a run at `(index, term)`, closing the open one.
    #[inline(never)]
    fn open_run(&mut self, index: u64, term: u64) {
        self.close_run();
        self.common_term = match (self.pending.is_empty(), self.common_term) {
            (true, _) => Some(term),
            (false, common) => common.filter(|&t| t == term),
        };
        self.open = Some(Run {
            first: index,
            last: index,
            term,
        });
    }

    /// Moves the open run to `pending`, merged with the newest run there
    /// when it continues it.
    fn close_run(&mut self) {
        let Some(run) = self.open.take() else { return };
        match self.pending.back_mut() {
            Some(back) if back.term == run.term && back.last + 1 == run.first => {
                back.last = run.last;
            }
            _ => self.pending.push_back(run),
        }
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
        if self.open.is_some() || !self.pending.is_empty() {
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
        let leading = raft.state == StateRole::Leader && self.common_term == Some(raft.term);
        if leading && committed.is_empty() {
            // The usual Ready on a leader: nothing committed yet.
            return;
        }
        self.close_run();
        let first_committed = committed.first().map_or(u64::MAX, |e| e.index);
        if let (true, Some(upto)) = (leading, committed.last().map(|e| e.index)) {
            if self
                .pending
                .front()
                .is_some_and(|r| r.first >= first_committed)
            {
                self.settle_own(upto, out);
                return;
            }
        }
        self.settle_each(raft, committed, first_committed, out);
    }

    /// Settles as `Committed` every pending proposal up to `upto`, for a
    /// leader in the term of them all: their entries are its own, cannot be
    /// replaced, and commit in order.
    fn settle_own(&mut self, upto: u64, out: &mut Vec<ProposalOutcome>) {
        while let Some(run) = self.pending.front_mut() {
            if run.first > upto {
                return;
            }
            let last = run.last.min(upto);
            out.push(settled(run.first, last, run.term, Outcome::Committed));
            if last < run.last {
                run.first = last + 1;
                return;
            }
            self.pending.pop_front();
        }
        self.common_term = None;
    }

    /// Settles proposal by proposal: after a change of leader or term, or
    /// a snapshot, when some may have been superseded or jumped over.
    fn settle_each<S: Storage>(
        &mut self,
        raft: &Raft<S>,
        committed: &[Entry],
        first_committed: u64,
        out: &mut Vec<ProposalOutcome>,
    ) {
        let by_commit = |index: u64, term: u64| -> Option<Outcome> {
            let e = committed.get(index.checked_sub(first_committed)? as usize)?;
            Some(if e.term == term {
                Outcome::Committed
            } else {
                Outcome::Superseded
            })
        };
        let mut still = VecDeque::new();
        for run in std::mem::take(&mut self.pending) {
            // Split the run where the outcome changes; unsettled parts stay.
            let mut start = run.first;
            let mut current = None;
            for index in run.first..=run.last {
                let outcome =
                    by_commit(index, run.term).or_else(|| covered_by_snapshot(&raft.log, index));
                if index > start && outcome != current {
                    emit(start, index - 1, run.term, current, out, &mut still);
                    start = index;
                }
                current = outcome;
            }
            emit(start, run.last, run.term, current, out, &mut still);
        }
        self.pending = still;
        let mut terms = self.pending.iter().map(|r| r.term);
        self.common_term = terms.next().filter(|&t| terms.all(|u| u == t));
    }
}

/// Reports `first ..= last` as settled with `outcome`, or keeps it pending.
fn emit(
    first: u64,
    last: u64,
    term: u64,
    outcome: Option<Outcome>,
    out: &mut Vec<ProposalOutcome>,
    pending: &mut VecDeque<Run>,
) {
    match outcome {
        Some(outcome) => out.push(settled(first, last, term, outcome)),
        None => pending.push_back(Run { first, last, term }),
    }
}

fn settled(first_index: u64, last_index: u64, term: u64, outcome: Outcome) -> ProposalOutcome {
    ProposalOutcome {
        first_index,
        last_index,
        term,
        outcome,
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
