//! The read side of a node's durable state, and an in-memory implementation.
//!
//! Raft reads its stable log through [`Storage`]; the application writes to
//! its storage itself, from what each `Ready` asks it to persist. Entries not
//! yet persisted live in the core's own unstable log.

use crate::errors::StorageError;
use crate::proto::{ConfState, Entry, HardState, Message, Snapshot, SnapshotMetadata};
use bytes::Bytes;

/// The state a node restarts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftState {
    /// Term, vote and commit index as last persisted.
    pub hard_state: HardState,
    /// The membership as of the last applied configuration the storage
    /// knows of (the newest snapshot's, or one the application saved).
    pub conf_state: ConfState,
}

/// Read access to the stable part of a node's log and state.
///
/// The log it holds is contiguous: the entries `first_index()..=last_index()`,
/// preceded by a snapshot (possibly empty, at index 0) whose index is
/// `first_index() - 1`. `term(first_index() - 1)` must answer with the
/// snapshot's term.
pub trait Storage {
    /// The hard state and membership to restart from.
    fn initial_state(&self) -> Result<RaftState, StorageError>;

    /// Appends the entries `lo..hi` to `out`, stopping once their
    /// [`Entry::accounted_size`] total would pass `max_size`; at least one
    /// entry is appended when `lo < hi`. `lo < first_index()` is
    /// [`StorageError::Compacted`]; `hi > last_index() + 1` is
    /// [`StorageError::Unavailable`] (the core relies on both).
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError>;

    /// The term of the entry at `index`, for any index in
    /// `first_index() - 1 ..= last_index()`.
    fn term(&self, index: u64) -> Result<u64, StorageError>;

    /// The index of the first entry held (the snapshot's index plus one).
    fn first_index(&self) -> Result<u64, StorageError>;

    /// The index of the last entry held (the snapshot's index if none).
    fn last_index(&self) -> Result<u64, StorageError>;

    /// The newest snapshot, to send to a follower that needs entries from
    /// before `first_index()`. `request_index` is the index the follower
    /// needs; a storage may build a snapshot for it, or answer
    /// [`StorageError::SnapshotTemporarilyUnavailable`] and be asked again.
    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError>;
}

/// A [`Storage`] held in memory, for tests, simulations and benchmarks.
///
/// Entries live in one vector after the snapshot's position, so reading a
/// range is a slice clone (payloads are shared, not copied).
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// The index and term of the last entry covered by the snapshot.
    snapshot_index: u64,
    snapshot_term: u64,
    /// `entries[i]` has index `snapshot_index + 1 + i`.
    entries: Vec<Entry>,
}

impl MemoryStorage {
    /// An empty storage: no entries, no snapshot, no members.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// An empty log whose initial membership is `conf_state`, as if a
    /// snapshot at index 0 carried it: a shortcut for the founding members
    /// of a cluster whose membership never changes (tests, benchmarks).
    ///
    /// A node that joins later cannot learn this membership (an index-0
    /// snapshot is empty and never sent): for clusters that will change
    /// membership, start every founding member with
    /// [`RawNode::bootstrap`](crate::RawNode::bootstrap), which puts the
    /// membership in the log as etcd does.
    pub fn new_with_conf_state(conf_state: ConfState) -> MemoryStorage {
        let mut s = MemoryStorage::new();
        s.snapshot.metadata = Some(SnapshotMetadata {
            conf_state: Some(conf_state),
            index: 0,
            term: 0,
        });
        s
    }

    /// Saves the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// The saved hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Saves the membership without a new snapshot (the application calls
    /// this after applying a configuration change, so a restart sees it).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        let meta = self.snapshot.metadata.get_or_insert_with(Default::default);
        meta.conf_state = Some(cs);
    }

    /// Appends entries, replacing any conflicting suffix. Entries at or
    /// below the snapshot's index are ignored; entries that would leave a
    /// gap are an error.
    #[inline]
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first_new) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        let last = self.last_index_inner();
        if first_new > last + 1 {
            return Err(StorageError::Gap {
                first: first_new,
                last,
            });
        }
        // Skip what the snapshot already covers.
        let skip = (self.snapshot_index + 1).saturating_sub(first_new) as usize;
        let entries = entries.get(skip..).unwrap_or(&[]);
        let Some(first) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        self.entries
            .truncate((first - self.snapshot_index - 1) as usize);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Does the append worker's job for a `MsgStorageAppend` (asynchronous
    /// storage writes): saves its snapshot, entries and hard state. The
    /// caller then delivers the message's responses.
    pub fn persist_append(&mut self, m: &Message) -> Result<(), StorageError> {
        if let Some(snap) = &m.snapshot {
            self.apply_snapshot((**snap).clone())?;
        }
        self.append(&m.entries)?;
        if let Some(hs) = crate::storage_writes::hard_state_of(m) {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Replaces the whole log with a snapshot received from a leader.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let index = snapshot.index();
        if index <= self.snapshot_index {
            return Err(StorageError::SnapshotOutOfDate {
                index,
                current: self.snapshot_index,
            });
        }
        self.snapshot_index = index;
        self.snapshot_term = snapshot.term();
        self.snapshot = snapshot;
        self.entries.clear();
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        if self.hard_state.term < self.snapshot_term {
            self.hard_state.term = self.snapshot_term;
            self.hard_state.vote = 0;
        }
        Ok(())
    }

    /// Records a snapshot of the application's state as of `index`, with the
    /// membership `conf_state` (the one in force at `index`, or `None` to
    /// keep the current one). The log is not compacted; see
    /// [`MemoryStorage::compact`].
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: Option<ConfState>,
        data: Bytes,
    ) -> Result<Snapshot, StorageError> {
        if index <= self.snapshot_index {
            return Err(StorageError::SnapshotOutOfDate {
                index,
                current: self.snapshot_index,
            });
        }
        let term = self.term(index)?;
        let conf_state = conf_state.unwrap_or_else(|| self.snapshot.conf_state());
        self.snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index,
                term,
            }),
        };
        Ok(self.snapshot.clone())
    }

    /// Discards the entries up to and including `index`, which must not
    /// pass the last index. The snapshot should cover them already.
    pub fn compact(&mut self, index: u64) -> Result<(), StorageError> {
        if index <= self.snapshot_index {
            return Err(StorageError::Compacted {
                index,
                first: self.snapshot_index + 1,
            });
        }
        let last = self.last_index_inner();
        if index > last {
            return Err(StorageError::Unavailable { index, last });
        }
        let term = self.term(index)?;
        self.entries.drain(..(index - self.snapshot_index) as usize);
        self.snapshot_index = index;
        self.snapshot_term = term;
        Ok(())
    }

    #[inline]
    fn last_index_inner(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }
}

impl Storage for MemoryStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.snapshot.conf_state(),
        })
    }

    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        if lo <= self.snapshot_index {
            return Err(StorageError::Compacted {
                index: lo,
                first: self.snapshot_index + 1,
            });
        }
        let last = self.last_index_inner();
        if hi > last + 1 {
            return Err(StorageError::Unavailable {
                index: hi - 1,
                last,
            });
        }
        if lo >= hi {
            // An empty range: nothing to append (slicing would panic).
            return Ok(());
        }
        let base = self.snapshot_index + 1;
        let slice = &self.entries[(lo - base) as usize..(hi - base) as usize];
        out.extend_from_slice(crate::util::limit_size(slice, max_size));
        Ok(())
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        if index == self.snapshot_index {
            return Ok(self.snapshot_term);
        }
        if index < self.snapshot_index {
            return Err(StorageError::Compacted {
                index,
                first: self.snapshot_index + 1,
            });
        }
        match self.entries.get((index - self.snapshot_index - 1) as usize) {
            Some(e) => Ok(e.term),
            None => Err(StorageError::Unavailable {
                index,
                last: self.last_index_inner(),
            }),
        }
    }

    fn first_index(&self) -> Result<u64, StorageError> {
        Ok(self.snapshot_index + 1)
    }

    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.last_index_inner())
    }

    fn snapshot(&self, _request_index: u64) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| Entry::new(term, i, Bytes::new())).collect()
    }

    #[test]
    fn append_truncates_conflicts_and_rejects_gaps() {
        let mut s = MemoryStorage::new();
        s.append(&ents(1..=5, 1)).unwrap();
        s.append(&ents(4..=6, 2)).unwrap();
        assert_eq!(s.last_index().unwrap(), 6);
        assert_eq!(s.term(3).unwrap(), 1);
        assert_eq!(s.term(4).unwrap(), 2);
        assert_eq!(
            s.append(&ents(9..=9, 2)),
            Err(StorageError::Gap { first: 9, last: 6 })
        );
    }

    #[test]
    fn compaction_and_snapshots_bound_the_log() {
        let mut s = MemoryStorage::new();
        s.append(&ents(1..=10, 1)).unwrap();
        s.create_snapshot(
            5,
            Some(ConfState::with_voters([1])),
            Bytes::from_static(b"x"),
        )
        .unwrap();
        s.compact(5).unwrap();
        assert_eq!(s.first_index().unwrap(), 6);
        assert_eq!(s.term(5).unwrap(), 1);
        assert!(matches!(s.term(4), Err(StorageError::Compacted { .. })));
        let mut out = Vec::new();
        assert!(matches!(
            s.entries(5, 7, u64::MAX, &mut out),
            Err(StorageError::Compacted { .. })
        ));
        assert!(matches!(
            s.entries(6, 12, u64::MAX, &mut out),
            Err(StorageError::Unavailable { .. })
        ));
        s.entries(6, 11, u64::MAX, &mut out).unwrap();
        assert_eq!(out.len(), 5);
        // Appending below the snapshot ignores the covered part.
        s.append(&ents(4..=7, 3)).unwrap();
        assert_eq!(s.term(6).unwrap(), 3);
        assert_eq!(s.last_index().unwrap(), 7);
    }

    #[test]
    fn entries_respect_max_size_but_return_one() {
        let mut s = MemoryStorage::new();
        s.append(&ents(1..=5, 1)).unwrap();
        let mut out = Vec::new();
        s.entries(1, 6, 0, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        out.clear();
        s.entries(1, 6, 2 * crate::proto::ENTRY_OVERHEAD, &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn empty_or_reversed_ranges_read_nothing() {
        let mut s = MemoryStorage::new();
        s.append(&ents(1..=5, 1)).unwrap();
        let mut out = Vec::new();
        assert_eq!(s.entries(3, 3, u64::MAX, &mut out), Ok(()));
        assert_eq!(s.entries(4, 2, u64::MAX, &mut out), Ok(()));
        assert!(out.is_empty(), "nothing read: {out:?}");
    }

    #[test]
    fn apply_snapshot_replaces_the_log() {
        let mut s = MemoryStorage::new();
        s.append(&ents(1..=3, 1)).unwrap();
        let snap = Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState::with_voters([1, 2])),
                index: 8,
                term: 4,
            }),
        };
        s.apply_snapshot(snap.clone()).unwrap();
        assert_eq!(s.first_index().unwrap(), 9);
        assert_eq!(s.last_index().unwrap(), 8);
        assert_eq!(s.term(8).unwrap(), 4);
        assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2]);
        assert!(matches!(
            s.apply_snapshot(snap),
            Err(StorageError::SnapshotOutOfDate { .. })
        ));
    }
}
