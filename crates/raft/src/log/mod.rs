//! The replicated log as one node sees it: stable entries in `Storage`,
//! unstable ones in front of it, and the commit and apply positions.

mod unstable;

pub use unstable::Unstable;

use crate::errors::StorageError;
use crate::proto::{Entry, Snapshot};
use crate::storage::Storage;
use crate::util::limit_size;

/// A node's log: `Storage` for what is persisted, [`Unstable`] for what is
/// not yet, and the positions that move through it.
///
/// Invariant: `applied <= applying <= committed <= last_index()`.
pub struct RaftLog<S> {
    pub(crate) storage: S,
    pub(crate) unstable: Unstable,
    /// The highest index known to be stored on a quorum.
    pub(crate) committed: u64,
    /// The highest index handed to the application to apply.
    pub(crate) applying: u64,
    /// The highest index the application reported applied.
    pub(crate) applied: u64,
    /// The most bytes of committed entries one `Ready` hands out.
    max_applying_size: u64,
}

impl<S: Storage> RaftLog<S> {
    /// A log over `storage`, with commit and apply positions at the
    /// storage's snapshot.
    pub fn new(storage: S, max_applying_size: u64) -> Result<RaftLog<S>, StorageError> {
        let first = storage.first_index()?;
        let last = storage.last_index()?;
        Ok(RaftLog {
            storage,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            applying: first - 1,
            applied: first - 1,
            max_applying_size: if max_applying_size == 0 {
                u64::MAX
            } else {
                max_applying_size
            },
        })
    }

    /// The highest index known to be committed.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The highest index the application reported applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The unstable tail (entries and snapshot not yet persisted).
    pub fn unstable(&self) -> &Unstable {
        &self.unstable
    }

    /// The first index still available (after the newest snapshot).
    pub fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(i) => i,
            None => self.storage.first_index().unwrap_or_else(|e| {
                panic!("storage broke its contract: first_index failed: {e}")
            }),
        }
    }

    /// The last index in the log.
    pub fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self.storage.last_index().unwrap_or_else(|e| {
                panic!("storage broke its contract: last_index failed: {e}")
            }),
        }
    }

    /// The term of the entry at `index`.
    pub fn term(&self, index: u64) -> Result<u64, StorageError> {
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        // The only index before the first one with a known term is the
        // snapshot's (first - 1), which storage answers for.
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted {
                index,
                first: dummy + 1,
            });
        }
        let last = self.last_index();
        if index > last {
            return Err(StorageError::Unavailable { index, last });
        }
        self.storage.term(index)
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> u64 {
        let last = self.last_index();
        self.term(last).unwrap_or_else(|e| {
            panic!("log invariant broken: no term for last index {last}: {e}")
        })
    }

    /// The term of `index`, or 0 where unknown (compacted or beyond the end).
    pub fn zero_term_on_out_of_bounds(&self, index: u64) -> u64 {
        self.term(index).unwrap_or(0)
    }

    /// Whether the entry at `index` has `term`.
    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// Appends entries a leader sent after `(index, log_term)`, if our log
    /// matches there, and moves the commit index up to `committed` (bounded
    /// by the last new entry). Returns the index of the last new entry, or
    /// `None` when the log does not match (the leader must go back).
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        entries: Vec<Entry>,
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + entries.len() as u64;
        let conflict = self.find_conflict(&entries);
        if conflict != 0 && conflict <= self.committed {
            // Only a broken or malicious leader sends entries that differ
            // from our committed prefix; refuse them rather than lose it.
            tracing::error!(conflict, committed = self.committed, "append conflicts with committed entries; refused");
            return None;
        }
        if conflict != 0 {
            let skip = (conflict - (index + 1)) as usize;
            if skip == 0 {
                self.unstable.truncate_and_append_owned(entries);
            } else {
                self.unstable.truncate_and_append(&entries[skip..]);
            }
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// Appends entries (created by the leader or already checked), replacing
    /// a conflicting unstable suffix; returns the new last index.
    pub fn append(&mut self, entries: &[Entry]) -> u64 {
        if let Some(first) = entries.first() {
            assert!(
                first.index > self.committed,
                "log invariant broken: append at {} overwrites committed {}",
                first.index,
                self.committed
            );
            self.unstable.truncate_and_append(entries);
        }
        self.last_index()
    }

    /// The index of the first entry in `entries` that is not already in the
    /// log with the same term: 0 if all are present, or the first new index.
    pub fn find_conflict(&self, entries: &[Entry]) -> u64 {
        entries
            .iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map_or(0, |e| e.index)
    }

    /// For a rejection hint: the largest index at or below `index` whose term
    /// is at most `term`, with that term. The leader (or the follower) can
    /// skip all entries of a whole term in one round trip.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index;
        loop {
            match self.term(i) {
                Ok(t) if t > term => {}
                Ok(t) => return (i, t),
                Err(_) => return (i, 0),
            }
            if i == 0 {
                return (0, 0);
            }
            i -= 1;
        }
    }

    /// Whether a log ending at `(last_index, term)` is at least as
    /// up-to-date as ours (§5.4.1).
    pub fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let our_term = self.last_term();
        term > our_term || (term == our_term && last_index >= self.last_index())
    }

    /// Moves the commit index to `index` if that is forward.
    pub fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "log invariant broken: commit {index} is past the last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Commits up to `max_index` if its entry is from `term` (a leader only
    /// counts replicas of entries from its own term, §5.4.2).
    pub fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.zero_term_on_out_of_bounds(max_index) == term {
            self.commit_to(max_index);
            true
        } else {
            false
        }
    }

    /// The application applied up to `index`.
    pub fn applied_to(&mut self, index: u64) {
        if index == 0 {
            return;
        }
        assert!(
            index <= self.committed && index >= self.applied,
            "log invariant broken: applied {index} outside [{}, {}]",
            self.applied,
            self.committed
        );
        self.applied = index;
        self.applying = self.applying.max(index);
    }

    /// The committed entries to hand out next are `(applying, hi]`: up to the
    /// commit index, and, unless `allow_unstable`, only what is persisted.
    fn max_appliable_index(&self, allow_unstable: bool) -> u64 {
        let mut hi = self.committed;
        if !allow_unstable {
            hi = hi.min(self.unstable.offset - 1);
        }
        hi
    }

    /// Whether committed entries wait to be handed out.
    pub fn has_next_committed_entries(&self, allow_unstable: bool) -> bool {
        if self.has_pending_snapshot() {
            return false;
        }
        self.applying < self.max_appliable_index(allow_unstable)
    }

    /// Appends the committed entries to hand out next to `out`, within the
    /// size limit; returns how many bytes they account for.
    pub fn next_committed_entries(
        &self,
        allow_unstable: bool,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        if self.has_pending_snapshot() {
            return Ok(());
        }
        let lo = self.applying + 1;
        let hi = self.max_appliable_index(allow_unstable) + 1;
        if lo >= hi {
            return Ok(());
        }
        self.slice(lo, hi, self.max_applying_size, out)
    }

    /// Whether an unstable snapshot waits to be persisted and applied.
    pub fn has_pending_snapshot(&self) -> bool {
        self.unstable.snapshot.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// The newest snapshot: the unstable one, or the storage's.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.storage.snapshot(request_index),
        }
    }

    /// Appends entries from `lo` on, up to `max_size` bytes, to `out`.
    pub fn entries(&self, lo: u64, max_size: u64, out: &mut Vec<Entry>) -> Result<(), StorageError> {
        let last = self.last_index();
        if lo > last {
            return Ok(());
        }
        self.slice(lo, last + 1, max_size, out)
    }

    /// Appends the entries `lo..hi`, up to `max_size` bytes (at least one),
    /// to `out`, reading storage for the stable part and the unstable log
    /// for the rest.
    pub fn slice(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        if lo >= hi {
            return Ok(());
        }
        let first = self.first_index();
        if lo < first {
            return Err(StorageError::Compacted { index: lo, first });
        }
        let last = self.last_index();
        if hi > last + 1 {
            return Err(StorageError::Unavailable { index: hi - 1, last });
        }
        let start = out.len();
        let offset = self.unstable.offset;
        if lo < offset {
            let stable_hi = hi.min(offset);
            self.storage.entries(lo, stable_hi, max_size, out)?;
            let got = (out.len() - start) as u64;
            if got < stable_hi - lo {
                // Storage stopped at the size limit.
                return Ok(());
            }
        }
        if hi > offset {
            let from = lo.max(offset);
            let used: u64 = crate::util::total_size(&out[start..]);
            let unstable = self.unstable.slice(from, hi);
            if out.len() == start {
                out.extend_from_slice(limit_size(unstable, max_size));
            } else {
                // Only whole entries within the remaining budget.
                let mut total = used;
                for e in unstable {
                    total = total.saturating_add(e.accounted_size());
                    if total > max_size {
                        break;
                    }
                    out.push(e.clone());
                }
            }
        }
        Ok(())
    }

    /// Entries up to `(index, term)` are persisted.
    pub fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    /// The snapshot at `index` is persisted.
    pub fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.index();
        self.committed = index;
        self.applying = index;
        self.applied = index;
        self.unstable.restore(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;
    use bytes::Bytes;

    fn ents(terms: &[(u64, u64)]) -> Vec<Entry> {
        terms
            .iter()
            .map(|&(i, t)| Entry::new(t, i, Bytes::new()))
            .collect()
    }

    fn log_with(stable: &[(u64, u64)], unstable: &[(u64, u64)]) -> RaftLog<MemoryStorage> {
        let mut s = MemoryStorage::new();
        s.append(&ents(stable)).unwrap();
        let mut l = RaftLog::new(s, 0).unwrap();
        l.append(&ents(unstable));
        l
    }

    #[test]
    fn maybe_append_rules() {
        // log: 1/1 2/2 3/3 (index/term)
        let base = [(1, 1), (2, 2), (3, 3)];
        // Mismatch at prev.
        let mut l = log_with(&base, &[]);
        assert_eq!(l.maybe_append(3, 2, 3, ents(&[(4, 4)])), None);
        assert_eq!(l.maybe_append(4, 3, 3, ents(&[(5, 4)])), None);
        // Match, no new entries: commit bounded by last new index.
        let mut l = log_with(&base, &[]);
        assert_eq!(l.maybe_append(2, 2, 3, vec![]), Some(2));
        assert_eq!(l.committed, 2);
        // Conflict replaces the suffix.
        let mut l = log_with(&base, &[]);
        assert_eq!(l.maybe_append(1, 1, 0, ents(&[(2, 4), (3, 4)])), Some(3));
        assert_eq!(l.term(2).unwrap(), 4);
        assert_eq!(l.last_index(), 3);
        // Already present entries are not re-appended.
        let mut l = log_with(&base, &[]);
        assert_eq!(l.maybe_append(1, 1, 0, ents(&[(2, 2)])), Some(2));
        assert_eq!(l.last_index(), 3, "a shorter matching append keeps the tail");
        assert!(l.unstable.entries.is_empty());
    }

    #[test]
    fn find_conflict_by_term_skips_terms() {
        // Stable 1/1 2/1 3/2 4/2 5/4 6/4.
        let l = log_with(&[(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (6, 4)], &[]);
        assert_eq!(l.find_conflict_by_term(6, 3), (4, 2));
        assert_eq!(l.find_conflict_by_term(6, 4), (6, 4));
        assert_eq!(l.find_conflict_by_term(6, 1), (2, 1));
        assert_eq!(l.find_conflict_by_term(6, 0), (0, 0));
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let l = log_with(&[(1, 1), (2, 2), (3, 3)], &[]);
        assert!(l.is_up_to_date(3, 3));
        assert!(l.is_up_to_date(1, 4));
        assert!(!l.is_up_to_date(2, 3));
        assert!(!l.is_up_to_date(9, 2));
    }

    #[test]
    fn commit_only_in_term() {
        let mut l = log_with(&[(1, 1), (2, 2)], &[(3, 3)]);
        assert!(!l.maybe_commit(2, 3));
        assert!(l.maybe_commit(3, 3));
        assert_eq!(l.committed, 3);
        assert!(!l.maybe_commit(2, 3), "commit never moves back");
    }

    #[test]
    fn slice_spans_storage_and_unstable_with_limit() {
        let l = log_with(&[(1, 1), (2, 1)], &[(3, 1), (4, 1)]);
        let mut out = Vec::new();
        l.slice(1, 5, u64::MAX, &mut out).unwrap();
        assert_eq!(out.iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2, 3, 4]);
        out.clear();
        l.slice(2, 5, 2 * crate::proto::ENTRY_OVERHEAD, &mut out).unwrap();
        assert_eq!(out.iter().map(|e| e.index).collect::<Vec<_>>(), [2, 3]);
        out.clear();
        assert!(matches!(
            l.slice(2, 6, u64::MAX, &mut out),
            Err(StorageError::Unavailable { .. })
        ));
    }

    #[test]
    fn committed_entries_wait_for_persistence_unless_allowed() {
        let mut l = log_with(&[(1, 1)], &[(2, 1)]);
        l.commit_to(2);
        let mut out = Vec::new();
        l.next_committed_entries(false, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        out.clear();
        l.next_committed_entries(true, &mut out).unwrap();
        assert_eq!(out.len(), 2);
    }
}
