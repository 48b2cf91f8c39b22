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
            None => self
                .storage
                .first_index()
                .unwrap_or_else(|e| panic!("storage broke its contract: first_index failed: {e}")),
        }
    }

    /// The last index in the log.
    pub fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self
                .storage
                .last_index()
                .unwrap_or_else(|e| panic!("storage broke its contract: last_index failed: {e}")),
        }
    }

    /// The term of the entry at `index`.
    pub fn term(&self, index: u64) -> Result<u64, StorageError> {
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        if index >= self.unstable.offset {
            // Past the unstable entries, so past the end of the log.
            return Err(StorageError::Unavailable {
                index,
                last: self.last_index(),
            });
        }
        if let Some(s) = &self.unstable.snapshot {
            // Below an unstable snapshot (its own index was answered
            // above); storage may still hold entries it superseded.
            return Err(StorageError::Compacted {
                index,
                first: s.index() + 1,
            });
        }
        // Below the unstable part, storage answers, compaction included.
        self.storage.term(index)
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> u64 {
        let last = self.last_index();
        self.term(last)
            .unwrap_or_else(|e| panic!("log invariant broken: no term for last index {last}: {e}"))
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
        // The usual case, entries that extend the log, needs no search.
        let conflict = match entries.first() {
            Some(e) if e.index == self.last_index() + 1 => e.index,
            _ => self.find_conflict(&entries),
        };
        if conflict != 0 && conflict <= self.committed {
            // Only a broken or malicious leader sends entries that differ
            // from our committed prefix; refuse them rather than lose it.
            tracing::error!(
                conflict,
                committed = self.committed,
                "append conflicts with committed entries; refused"
            );
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

    /// Appends entries a leader created at the end of its log, moving them
    /// in; returns the new last index.
    #[inline]
    pub fn append_new(&mut self, entries: impl IntoIterator<Item = Entry>) -> u64 {
        self.unstable.extend(self.last_index() + 1, entries);
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
        if index < self.applied {
            // A report older than what we know applied: entries handed out
            // before a snapshot that was restored meanwhile (`restore`
            // moves `applied` to the snapshot). The snapshot supersedes them.
            return;
        }
        if index == 0 {
            return;
        }
        assert!(
            index <= self.committed,
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
        self.unstable
            .snapshot
            .as_ref()
            .is_some_and(|s| !s.is_empty())
    }

    /// The newest snapshot: the unstable one, or the storage's.
    pub fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.storage.snapshot(request_index),
        }
    }

    /// Appends entries from `lo` on, up to `max_size` bytes, to `out`.
    pub fn entries(
        &self,
        lo: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
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
        let offset = self.unstable.offset;
        let unstable_end = offset + self.unstable.entries.len() as u64;
        if lo >= offset && hi <= unstable_end {
            // All unstable: the hot path of a leader sending what it just
            // appended.
            out.extend_from_slice(limit_size(self.unstable.slice(lo, hi), max_size));
            return Ok(());
        }
        if hi <= offset && self.unstable.snapshot.is_none() {
            // All stable, as committed entries usually are: storage checks
            // the bounds itself.
            return self.storage.entries(lo, hi, max_size, out);
        }
        let first = self.first_index();
        if lo < first {
            return Err(StorageError::Compacted { index: lo, first });
        }
        let last = self.last_index();
        if hi > last + 1 {
            return Err(StorageError::Unavailable {
                index: hi - 1,
                last,
            });
        }
        let start = out.len();
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

    /// Entries up to `(index, term)`, handed out in `epoch` (see
    /// [`Unstable`]), are persisted.
    pub fn stable_to(&mut self, index: u64, term: u64, epoch: u64) {
        self.unstable.stable_to(index, term, epoch);
    }

    /// The snapshot at `index` is persisted.
    pub fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    /// Whether a configuration change is among the entries handed out to
    /// apply and not yet reported applied. Read only when a snapshot
    /// arrives, so the common path pays nothing for it.
    pub fn applying_conf_change(&self) -> bool {
        if self.applying <= self.applied {
            return false;
        }
        let mut handed_out = Vec::new();
        match self.slice(
            self.applied + 1,
            self.applying + 1,
            u64::MAX,
            &mut handed_out,
        ) {
            Ok(()) => handed_out.iter().any(Entry::is_conf_change),
            // Unreadable: assume the worst, the snapshot is offered again.
            Err(_) => true,
        }
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
        assert_eq!(
            l.last_index(),
            3,
            "a shorter matching append keeps the tail"
        );
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
        assert_eq!(
            out.iter().map(|e| e.index).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        out.clear();
        l.slice(2, 5, 2 * crate::proto::ENTRY_OVERHEAD, &mut out)
            .unwrap();
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

    // -----------------------------------------------------------------
    // Property: `maybe_append` follows Figure 2's AppendEntries receiver
    // rules, checked against a plain vector of terms.
    // -----------------------------------------------------------------

    use proptest::prelude::*;
    use proptest::sample::Index;

    /// One step in a follower's life.
    #[derive(Clone, Debug)]
    enum Op {
        /// A leader of a new term: a prefix (`keep`) of an existing
        /// leader's log (`base`) plus `grow` entries of its own term.
        NewLeader {
            base: Index,
            keep: Index,
            grow: usize,
        },
        /// An existing leader appends `grow` entries of its term.
        Grow { src: Index, grow: usize },
        /// Leader `src` sends its entries `prev+1 ..= prev+n` after
        /// `(prev, term(prev))`, with an arbitrary commit index.
        Append {
            src: Index,
            prev: Index,
            n: usize,
            commit: Index,
        },
        /// A `Ready` hands the unstable entries out to be persisted.
        HandOut,
        /// The storage writes finish, in order, and are reported stable.
        Persist,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (any::<Index>(), any::<Index>(), 0..4usize)
                .prop_map(|(base, keep, grow)| Op::NewLeader { base, keep, grow }),
            1 => (any::<Index>(), 1..4usize).prop_map(|(src, grow)| Op::Grow { src, grow }),
            5 => (any::<Index>(), any::<Index>(), 0..6usize, any::<Index>())
                .prop_map(|(src, prev, n, commit)| Op::Append { src, prev, n, commit }),
            1 => Just(Op::HandOut),
            1 => Just(Op::Persist),
        ]
    }

    /// Figure 2, AppendEntries receiver: (2) refuse unless the log holds
    /// `prev` with `prev_term`; (3) delete an existing entry that conflicts
    /// with a new one, and all that follow; (4) append the new entries not
    /// already in the log; (5) commit up to min(leader commit, last new
    /// index). Entries conflicting with committed ones are refused instead
    /// (a correct leader never sends them).
    fn model_append(
        log: &mut Vec<u64>,
        committed: &mut u64,
        prev: u64,
        prev_term: u64,
        ents: &[u64],
        commit: u64,
    ) -> Option<u64> {
        let term_at = |log: &Vec<u64>, i: u64| {
            if i == 0 {
                Some(0)
            } else {
                log.get(i as usize - 1).copied()
            }
        };
        if term_at(log, prev) != Some(prev_term) {
            return None;
        }
        let conflict =
            (0..ents.len()).find(|&k| term_at(log, prev + 1 + k as u64) != Some(ents[k]));
        if let Some(k) = conflict {
            let index = prev + 1 + k as u64;
            if index <= *committed {
                return None;
            }
            log.truncate(index as usize - 1);
            log.extend_from_slice(&ents[k..]);
        }
        let last_new = prev + ents.len() as u64;
        *committed = (*committed).max(commit.min(last_new));
        Some(last_new)
    }

    proptest! {
        #![proptest_config(crate::testing::proptest_config())]
        /// Random appends from leaders whose logs satisfy Log Matching
        /// (§5.3), interleaved with asynchronous persistence: the log
        /// equals the model after every step, the commit index never
        /// decreases, and committed entries never change (§5.4).
        #[test]
        fn maybe_append_matches_the_receiver_rules(ops in prop::collection::vec(op(), 1..80)) {
            // Leaders' logs (terms at 1, 2, ...) and the term each appends in.
            let mut pool: Vec<(Vec<u64>, u64)> = vec![(Vec::new(), 0)];
            let mut max_term = 0;
            let mut l = RaftLog::new(MemoryStorage::new(), 0).unwrap();
            let mut model: Vec<u64> = Vec::new();
            let mut model_committed = 0u64;
            let mut committed_prefix: Vec<u64> = Vec::new();
            let mut handed_out: Vec<(Vec<Entry>, u64)> = Vec::new();

            for op in ops {
                match op {
                    Op::NewLeader { base, keep, grow } => {
                        let (base_log, _) = &pool[base.index(pool.len())];
                        max_term += 1;
                        let mut log = base_log[..keep.index(base_log.len() + 1)].to_vec();
                        log.extend(std::iter::repeat_n(max_term, grow));
                        pool.push((log, max_term));
                    }
                    Op::Grow { src, grow } => {
                        let i = src.index(pool.len());
                        let term = pool[i].1;
                        if term > 0 {
                            pool[i].0.extend(std::iter::repeat_n(term, grow));
                        }
                    }
                    Op::Append { src, prev, n, commit } => {
                        let (log, _) = &pool[src.index(pool.len())];
                        let prev = prev.index(log.len() + 1);
                        let n = n.min(log.len() - prev);
                        let prev_term = if prev == 0 { 0 } else { log[prev - 1] };
                        let terms = &log[prev..prev + n];
                        let prev = prev as u64;
                        let commit = commit.index(prev as usize + n + 3) as u64;
                        let entries: Vec<Entry> = terms
                            .iter()
                            .enumerate()
                            .map(|(k, &t)| Entry::new(t, prev + 1 + k as u64, Bytes::new()))
                            .collect();
                        let got = l.maybe_append(prev, prev_term, commit, entries);
                        let want = model_append(&mut model, &mut model_committed, prev, prev_term, terms, commit);
                        prop_assert_eq!(got, want, "maybe_append({}, {}, {}, {:?})", prev, prev_term, commit, terms);
                    }
                    Op::HandOut => {
                        let batch = l.unstable.next_entries().to_vec();
                        l.unstable.accept_in_progress();
                        if !batch.is_empty() {
                            handed_out.push((batch, l.unstable.epoch()));
                        }
                    }
                    Op::Persist => {
                        for (batch, epoch) in handed_out.drain(..) {
                            l.storage.append(&batch).unwrap();
                            let last = batch.last().unwrap();
                            l.stable_to(last.index, last.term, epoch);
                        }
                    }
                }

                // The log is the model.
                prop_assert_eq!(l.last_index(), model.len() as u64, "last index");
                let mut out = Vec::new();
                l.slice(1, l.last_index() + 1, u64::MAX, &mut out).unwrap();
                let ids: Vec<(u64, u64)> = out.iter().map(|e| (e.index, e.term)).collect();
                let want: Vec<(u64, u64)> = model.iter().enumerate().map(|(i, &t)| (i as u64 + 1, t)).collect();
                prop_assert_eq!(&ids, &want, "entries");
                for (i, &t) in model.iter().enumerate() {
                    prop_assert_eq!(l.term(i as u64 + 1).ok(), Some(t), "term of {}", i + 1);
                }
                // The commit index never decreases and committed entries
                // never change.
                prop_assert_eq!(l.committed(), model_committed, "commit index");
                prop_assert!(l.committed() >= committed_prefix.len() as u64, "commit index went back");
                prop_assert_eq!(&model[..committed_prefix.len()], &committed_prefix[..], "a committed entry changed");
                committed_prefix = model[..model_committed as usize].to_vec();
            }

            // Once everything is persisted, storage alone holds the log.
            let batch = l.unstable.next_entries().to_vec();
            l.unstable.accept_in_progress();
            handed_out.push((batch, l.unstable.epoch()));
            for (batch, epoch) in handed_out.drain(..) {
                if let Some(last) = batch.last() {
                    l.storage.append(&batch).unwrap();
                    l.stable_to(last.index, last.term, epoch);
                }
            }
            prop_assert!(l.unstable.entries.is_empty(), "everything was reported stable");
            prop_assert_eq!(l.storage.last_index().unwrap(), model.len() as u64, "stored last index");
            for (i, &t) in model.iter().enumerate() {
                prop_assert_eq!(l.storage.term(i as u64 + 1).ok(), Some(t), "stored term of {}", i + 1);
            }
        }
    }
}
