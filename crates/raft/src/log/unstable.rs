//! Entries and a snapshot received or created but not yet persisted.

use crate::proto::{Entry, Snapshot};

/// The not-yet-persisted tail of the log, in front of `Storage`.
///
/// `entries[i]` has index `offset + i`. A snapshot, when present, precedes
/// the entries: `offset == snapshot.index() + 1`. Entries and the snapshot
/// are handed to the application in a `Ready` (marked "in progress" so they
/// are not handed out twice) and dropped here once reported stable.
///
/// The `epoch` advances whenever entries already handed out are replaced
/// (a conflicting append, or a snapshot). A stability report carries the
/// epoch of its hand-out and is ignored if the epoch moved on: otherwise an
/// older write finishing late could drop a newer entry that only looks the
/// same (the append/truncate race). The report of a later batch covers the
/// entries then.
#[derive(Debug, Default)]
pub struct Unstable {
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) offset: u64,
    /// Entries below this index are being persisted already.
    pub(crate) offset_in_progress: u64,
    /// The snapshot is being persisted already.
    pub(crate) snapshot_in_progress: bool,
    /// Advances when handed-out entries are replaced; see the type's docs.
    pub(crate) epoch: u64,
}

impl Unstable {
    /// An empty unstable log whose next entry would have index `offset`.
    pub fn new(offset: u64) -> Unstable {
        Unstable {
            offset,
            offset_in_progress: offset,
            ..Default::default()
        }
    }

    /// The entries not yet reported persisted (handed out or not).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The first index, if a snapshot is pending.
    #[inline]
    pub fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.index() + 1)
    }

    /// The last index, if there are entries or a snapshot.
    #[inline]
    pub fn maybe_last_index(&self) -> Option<u64> {
        match (self.entries.last(), &self.snapshot) {
            (Some(e), _) => Some(e.index),
            (None, Some(s)) => Some(s.index()),
            (None, None) => None,
        }
    }

    /// The term of the entry at `index`, if held here.
    #[inline]
    pub fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let s = self.snapshot.as_ref()?;
            return (s.index() == index).then(|| s.term());
        }
        self.entries
            .get((index - self.offset) as usize)
            .map(|e| e.term)
    }

    /// Entries not yet handed out for persisting.
    #[inline]
    pub fn next_entries(&self) -> &[Entry] {
        let start = (self.offset_in_progress - self.offset) as usize;
        &self.entries[start.min(self.entries.len())..]
    }

    /// The snapshot, if not yet handed out for persisting.
    #[inline]
    pub fn next_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot
            .as_ref()
            .filter(|_| !self.snapshot_in_progress)
    }

    /// Marks everything held as handed out for persisting.
    #[inline]
    pub fn accept_in_progress(&mut self) {
        if let Some(e) = self.entries.last() {
            self.offset_in_progress = e.index + 1;
        }
        if self.snapshot.is_some() {
            self.snapshot_in_progress = true;
        }
    }

    /// The epoch to record with a hand-out, for [`Unstable::stable_to`].
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Entries up to `index` of `term`, handed out in `epoch`, are
    /// persisted: drop them. A report from before handed-out entries were
    /// replaced (another epoch), or for an entry since replaced (its term
    /// differs), is ignored.
    #[inline]
    pub fn stable_to(&mut self, index: u64, term: u64, epoch: u64) {
        if epoch != self.epoch || self.maybe_term(index) != Some(term) || index < self.offset {
            return;
        }
        let n = (index + 1 - self.offset) as usize;
        self.entries.drain(..n);
        self.offset = index + 1;
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
    }

    /// The snapshot at `index` is persisted: drop it.
    pub fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| s.index() == index) {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    /// Replaces everything with a snapshot.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.epoch += 1;
        self.offset = snapshot.index() + 1;
        self.offset_in_progress = self.offset;
        self.entries.clear();
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Appends `entries` (contiguous), replacing any conflicting suffix.
    /// `entries[0].index` must be at most one past the last index.
    pub fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first().map(|e| e.index) else {
            return;
        };
        let end = self.offset + self.entries.len() as u64;
        if first < end && first < self.offset_in_progress {
            // Entries already handed out are replaced.
            self.epoch += 1;
        }
        if first == end {
            // The common case: a direct continuation.
        } else if first <= self.offset {
            // Replace everything unstable.
            self.offset = first;
            self.entries.clear();
        } else {
            // Keep the part before `first`.
            self.entries.truncate((first - self.offset) as usize);
        }
        self.offset_in_progress = self.offset_in_progress.min(first).max(self.offset);
        self.entries.extend_from_slice(entries);
    }

    /// Appends entries the caller moves in (no clone of the entries).
    #[inline]
    pub fn truncate_and_append_owned(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first().map(|e| e.index) else {
            return;
        };
        let end = self.offset + self.entries.len() as u64;
        if first != end {
            self.truncate_and_append(&entries);
            return;
        }
        if self.entries.is_empty() && self.entries.capacity() < entries.len() {
            self.offset = first;
            self.entries = entries;
        } else {
            self.entries.extend(entries);
        }
    }

    /// Appends entries moved in that continue the log at `next`, the index
    /// after the last one.
    #[inline]
    pub fn extend(&mut self, next: u64, entries: impl IntoIterator<Item = Entry>) {
        let end = self.offset + self.entries.len() as u64;
        assert_eq!(
            next, end,
            "log invariant broken: the log continues at {next} but unstable entries end at {end}"
        );
        self.entries.extend(entries);
    }

    /// The entries `lo..hi`, all of which must be held here.
    #[inline]
    pub fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        assert!(
            lo >= self.offset && hi <= self.offset + self.entries.len() as u64 && lo <= hi,
            "unstable slice [{lo}, {hi}) out of bounds [{}, {}]",
            self.offset,
            self.offset + self.entries.len() as u64
        );
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| Entry::new(term, i, Bytes::new())).collect()
    }

    #[test]
    fn append_truncate_and_stabilize() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&ents(5..=8, 1));
        u.accept_in_progress();
        assert!(u.next_entries().is_empty());
        let handed_out = u.epoch();
        u.truncate_and_append(&ents(7..=9, 2));
        assert_eq!(
            u.next_entries().len(),
            3,
            "replaced entries are handed out again"
        );
        assert_eq!(u.maybe_term(6), Some(1));
        assert_eq!(u.maybe_term(7), Some(2));
        // Reports of the batch handed out before the replacement are ignored,
        // even for entries that were not replaced.
        u.stable_to(8, 1, handed_out);
        u.stable_to(6, 1, handed_out);
        assert_eq!(u.offset, 5);
        u.accept_in_progress();
        let epoch = u.epoch();
        assert_ne!(
            epoch, handed_out,
            "replacing handed-out entries starts an epoch"
        );
        u.stable_to(6, 1, epoch);
        assert_eq!(u.offset, 7);
        assert_eq!(u.maybe_last_index(), Some(9));
        u.truncate_and_append(&ents(3..=3, 3));
        assert_eq!(u.offset, 3);
        assert_eq!(u.maybe_last_index(), Some(3));
    }

    #[test]
    fn snapshot_precedes_entries() {
        let mut u = Unstable::new(1);
        let snap = Snapshot {
            data: Bytes::new(),
            metadata: Some(crate::proto::SnapshotMetadata {
                conf_state: None,
                index: 10,
                term: 2,
            }),
        };
        u.restore(snap);
        assert_eq!(u.maybe_first_index(), Some(11));
        assert_eq!(u.maybe_last_index(), Some(10));
        assert_eq!(u.maybe_term(10), Some(2));
        assert_eq!(u.maybe_term(9), None);
        assert!(u.next_snapshot().is_some());
        u.accept_in_progress();
        assert!(u.next_snapshot().is_none());
        u.stable_snap_to(10);
        assert!(u.snapshot.is_none());
    }
}
