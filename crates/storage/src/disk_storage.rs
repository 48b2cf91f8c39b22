//! [`DiskStorage`]: the core's [`Storage`] on the write-ahead log and the
//! snapshot files.
//!
//! In memory it keeps the hard state, the newest snapshot's metadata, where
//! each entry's record lies in the WAL, and the newest entries themselves
//! (up to [`Options::cache_bytes`]), so the hot path — appending and reading
//! back what was just appended — never reads the disk. Older entries are
//! read from their segment when asked for, and checked again.

use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::snap::{SnapshotStore, DEFAULT_KEEP};
use crate::wal::{Batch, CompactMarker, Located, Position, Wal, WalOptions};
use rudder_raft::storage_writes::hard_state_of;
use rudder_raft::{
    ConfState, Entry, HardState, Message, RaftState, Snapshot, SnapshotMetadata, Storage,
    StorageError,
};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The subdirectory of the write-ahead log.
const WAL_DIR: &str = "wal";
/// The subdirectory of the snapshot files.
const SNAP_DIR: &str = "snap";

/// How a [`DiskStorage`] lays out and caches its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The WAL's layout (segment size).
    pub wal: WalOptions,
    /// How many snapshot files to keep (the newest; at least 1).
    pub keep_snapshots: usize,
    /// How many bytes of the newest entries ([`Entry::accounted_size`]) to
    /// keep decoded in memory.
    pub cache_bytes: u64,
}

impl Default for Options {
    /// 64 MiB segments, 2 snapshots kept, 64 MiB of entries cached.
    fn default() -> Options {
        Options {
            wal: WalOptions::default(),
            keep_snapshots: DEFAULT_KEEP,
            cache_bytes: 64 << 20,
        }
    }
}

/// What opening the storage found and did about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A torn write cut off the end of the log: the segment and offset.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// The snapshot the log names was damaged or missing, and an older one
    /// (whose entries on the log still follow) was loaded instead: why.
    pub snapshot_fallback: Option<String>,
    /// The number of entries recovered.
    pub entries: u64,
}

/// The core's [`Storage`], durable: a WAL and snapshot files in one
/// directory. See the crate docs for the layout and the guarantees.
#[derive(Debug)]
pub struct DiskStorage {
    wal: Wal,
    snaps: SnapshotStore,
    opts: Options,
    hard_state: HardState,
    /// The newest snapshot's metadata (index 0: none) and file.
    snapshot: SnapshotMetadata,
    snapshot_path: Option<PathBuf>,
    /// The log up to here is discarded: `first_index() - 1` and its term.
    compacted: CompactMarker,
    /// `index[i]` locates entry `compacted.index + 1 + i`.
    index: VecDeque<Located>,
    /// `cache[i]` is entry `cache_first + i`; the cache is a suffix of the log.
    cache: VecDeque<Entry>,
    cache_first: u64,
    cache_size: u64,
    recovery: Recovery,
}

impl DiskStorage {
    /// Opens (or creates) the storage in `dir` and recovers its state.
    ///
    /// An empty or missing directory starts fresh. A directory holding
    /// anything but a rudder storage is refused, as is damaged data (see
    /// the crate docs), with an error naming the file and offset.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, opts: Options) -> Result<DiskStorage> {
        check_directory(&*fs, dir)?;
        let snaps = SnapshotStore::open(fs.clone(), dir.join(SNAP_DIR), opts.keep_snapshots)?;
        let (wal, rec) = Wal::open(fs, &dir.join(WAL_DIR), opts.wal)?;
        let last = rec.entries.last().map_or(rec.compacted.index, |e| e.index);
        if rec.hard_state.commit > last {
            return Err(Error::corrupt(
                dir.join(WAL_DIR),
                0,
                format!(
                    "the hard state commits index {} but the log ends at {last}: committed entries are missing",
                    rec.hard_state.commit
                ),
            ));
        }
        let mut storage = DiskStorage {
            wal,
            snaps,
            opts,
            hard_state: rec.hard_state,
            snapshot: SnapshotMetadata::default(),
            snapshot_path: None,
            compacted: rec.compacted,
            index: rec.entries.into_iter().collect(),
            cache: VecDeque::new(),
            cache_first: last + 1,
            cache_size: 0,
            recovery: Recovery {
                torn_tail: rec.torn_tail,
                snapshot_fallback: None,
                entries: 0,
            },
        };
        storage.recovery.entries = storage.index.len() as u64;
        let named = rec.snapshot.as_ref().map_or((0, 0), |m| (m.index, m.term));
        if let Some(meta) = rec.snapshot {
            storage.load_snapshot(meta)?;
        }
        storage.remove_unnamed_snapshots(named)?;
        // A snapshot holds only committed entries, but the hard state saved
        // last may not say so: a commit index alone is saved without a
        // sync, and a snapshot of the applied state is taken apart from
        // the saves, so it can be durable before the commit that let the
        // state machine reach it.
        storage.hard_state.commit = storage.hard_state.commit.max(storage.snapshot.index);
        storage.fill_cache()?;
        Ok(storage)
    }

    /// What opening found: a torn tail cut off, a snapshot fallen back from.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Saves one Ready's entries and hard state with one write, synced if
    /// `must_sync`. Entries the log already compacted, or already holds
    /// with the same term, are skipped; an entry at an index held with
    /// another term replaces it and everything after it. (Unlike
    /// `MemoryStorage::append`, a save of held entries does not drop the
    /// entries after them: the core never asks for that.)
    pub fn save(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
        must_sync: bool,
    ) -> Result<()> {
        let skip =
            (self.compacted.index + 1).saturating_sub(entries.first().map_or(0, |e| e.index));
        let entries = entries.get(skip as usize..).unwrap_or(&[]);
        // Entries held already (same index and term: the same entry, by
        // log matching) are not written again: rewriting them would put
        // durable entries at the mercy of a torn write.
        let held = entries
            .iter()
            .take_while(|e| self.term(e.index) == Ok(e.term))
            .count();
        let entries = &entries[held..];
        let positions = self.wal.save(&Batch {
            entries,
            hard_state,
            sync: must_sync,
            ..Batch::default()
        })?;
        if let Some(hs) = hard_state {
            self.hard_state = *hs;
        }
        let Some(first) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        self.index
            .truncate((first - self.compacted.index - 1) as usize);
        self.index
            .extend(entries.iter().zip(positions).map(|(e, pos)| Located {
                index: e.index,
                term: e.term,
                pos,
            }));
        if first < self.cache_first {
            self.cache.clear();
            self.cache_size = 0;
            self.cache_first = first;
        } else {
            while self.cache_first + self.cache.len() as u64 > first {
                let e = self.cache.pop_back().expect("the cache reaches past first");
                self.cache_size -= e.accounted_size();
            }
        }
        for e in entries {
            self.cache_size += e.accounted_size();
            self.cache.push_back(e.clone());
        }
        self.evict();
        Ok(())
    }

    /// A handle that syncs what [`DiskStorage::save`] wrote with
    /// `must_sync` false, without the storage: a storage shared behind a
    /// lock can be saved to under the lock and synced after releasing it,
    /// so the node reading it does not wait for the disk. Sync before
    /// acknowledging what was saved.
    pub fn syncer(&self) -> crate::wal::Syncer {
        self.wal.syncer()
    }

    /// Appends entries durably (see [`DiskStorage::save`]).
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.save(None, entries, true)
    }

    /// Saves the hard state durably.
    pub fn set_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.save(Some(&hs), &[], true)
    }

    /// Does the append worker's job for a `MsgStorageAppend` (asynchronous
    /// storage writes): its snapshot, then its entries and hard state with
    /// one write and one sync.
    pub fn persist_append(&mut self, m: &Message) -> Result<()> {
        if let Some(snap) = &m.snapshot {
            self.apply_snapshot((**snap).clone())?;
        }
        self.save(hard_state_of(m).as_ref(), &m.entries, true)
    }

    /// Installs a snapshot received from a leader: writes its file, then
    /// records it and discards the log it replaces (all of it, unless the
    /// log holds the snapshot's last entry with its term), and raises the
    /// hard state to it.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        self.check_newer(&meta)?;
        let path = self.snaps.save_bytes(&meta, &snapshot.data)?;
        let mut hs = self.hard_state;
        hs.commit = hs.commit.max(meta.index);
        if hs.term < meta.term {
            hs.term = meta.term;
            hs.vote = 0;
        }
        let keeps_log = self.term(meta.index) == Ok(meta.term);
        let marker = CompactMarker {
            index: meta.index,
            term: meta.term,
            replace: !keeps_log,
        };
        self.wal.save(&Batch {
            snapshot: Some(&meta),
            compact: Some(marker),
            hard_state: Some(&hs),
            sync: true,
            ..Batch::default()
        })?;
        self.hard_state = hs;
        self.discard_through(marker);
        self.set_snapshot(meta, path);
        self.snaps.prune()?;
        self.purge()
    }

    /// Records a snapshot of the application's state as of `index` (which
    /// the log must hold), with the membership in force there (`None`:
    /// the previous snapshot's). The log is not compacted; see
    /// [`DiskStorage::compact`].
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: Option<ConfState>,
        data: &[u8],
    ) -> Result<SnapshotMetadata> {
        self.create_snapshot_from(index, conf_state, &mut &data[..])
    }

    /// [`DiskStorage::create_snapshot`] with the data streamed from `data`,
    /// so a large state need not be held in memory.
    pub fn create_snapshot_from(
        &mut self,
        index: u64,
        conf_state: Option<ConfState>,
        data: &mut dyn Read,
    ) -> Result<SnapshotMetadata> {
        let term = self
            .term(index)
            .map_err(|e| Error::InvalidWrite(format!("a snapshot at {index}: {e}")))?;
        let meta = SnapshotMetadata {
            conf_state: Some(
                conf_state.unwrap_or_else(|| self.snapshot.conf_state.clone().unwrap_or_default()),
            ),
            index,
            term,
        };
        self.check_newer(&meta)?;
        let path = self.snaps.save(&meta, data)?;
        self.wal.save(&Batch {
            snapshot: Some(&meta),
            sync: true,
            ..Batch::default()
        })?;
        self.set_snapshot(meta.clone(), path);
        // Only now that the log names the new one may the old go.
        self.snaps.prune()?;
        Ok(meta)
    }

    /// Discards the entries up to and including `index`, which the newest
    /// snapshot must cover, and removes the WAL segments that then hold
    /// nothing needed.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.compacted.index {
            return Ok(());
        }
        if index > self.snapshot.index {
            return Err(Error::InvalidWrite(format!(
                "compacting through {index} would discard entries no snapshot holds (the newest is at {})",
                self.snapshot.index
            )));
        }
        let term = self
            .term(index)
            .map_err(|e| Error::InvalidWrite(format!("compacting through {index}: {e}")))?;
        let marker = CompactMarker {
            index,
            term,
            replace: false,
        };
        self.wal.save(&Batch {
            compact: Some(marker),
            sync: true,
            ..Batch::default()
        })?;
        self.discard_through(marker);
        self.purge()
    }

    /// The index of the newest snapshot held (0: none).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.index
    }

    /// The sequence numbers of the WAL segments on disk, oldest first.
    pub fn wal_segments(&self) -> Vec<u64> {
        self.wal.segments()
    }

    /// Drops the entries through `marker` from memory, and those after it
    /// too if it replaces the log.
    fn discard_through(&mut self, marker: CompactMarker) {
        let drop = if marker.replace {
            self.index.len()
        } else {
            (marker.index - self.compacted.index) as usize
        };
        self.index.drain(..drop.min(self.index.len()));
        self.compacted = marker;
        let last = self.last_index_inner();
        while self.cache_first <= marker.index
            || self.cache_first + self.cache.len() as u64 > last + 1
        {
            let Some(e) = self.cache.pop_front() else {
                break;
            };
            self.cache_size -= e.accounted_size();
            self.cache_first += 1;
        }
        if self.cache.is_empty() {
            self.cache_first = last + 1;
        }
    }

    /// Removes the WAL segments older than the one holding the first entry.
    fn purge(&mut self) -> Result<()> {
        let keep_from = match self.index.front() {
            Some(e) => e.pos.segment,
            None => u64::MAX, // nothing but the active segment is needed
        };
        self.wal.purge_before(keep_from)
    }

    fn check_newer(&self, meta: &SnapshotMetadata) -> Result<()> {
        if meta.index <= self.snapshot.index {
            return Err(Error::InvalidWrite(format!(
                "a snapshot at {} is not newer than the one held at {}",
                meta.index, self.snapshot.index
            )));
        }
        Ok(())
    }

    fn set_snapshot(&mut self, meta: SnapshotMetadata, path: PathBuf) {
        self.snapshot = meta;
        self.snapshot_path = Some(path);
    }

    /// Finds and verifies the snapshot file the log names. If it is missing
    /// or damaged, an older valid one will do when the log still holds
    /// every entry after it; otherwise committed state would be lost, and
    /// opening fails.
    fn load_snapshot(&mut self, meta: SnapshotMetadata) -> Result<()> {
        let files = self.snaps.list()?;
        let named = files
            .iter()
            .find(|f| (f.index, f.term) == (meta.index, meta.term));
        let problem = match named {
            Some(f) => match self.verify(&f.path) {
                Ok(()) => {
                    let path = f.path.clone();
                    self.set_snapshot(meta, path);
                    return Ok(());
                }
                Err(e) => e,
            },
            None => Error::corrupt(
                self.snaps.dir(),
                0,
                format!(
                    "the log names snapshot {}/{}, which is not there",
                    meta.term, meta.index
                ),
            ),
        };
        for f in files
            .iter()
            .filter(|f| f.index < meta.index && f.index >= self.compacted.index)
        {
            if self.verify(&f.path).is_ok() {
                let older = self.snaps.metadata_of(&f.path)?;
                let why = format!(
                    "{problem}; loaded the older snapshot {}/{} instead",
                    f.term, f.index
                );
                tracing::warn!("{why}");
                self.recovery.snapshot_fallback = Some(why);
                self.set_snapshot(older, f.path.clone());
                return Ok(());
            }
        }
        if self.compacted.index == 0 {
            // The log still starts at the beginning: no snapshot is needed.
            let why = format!("{problem}; the log holds every entry, so no snapshot is loaded");
            tracing::warn!("{why}");
            self.recovery.snapshot_fallback = Some(why);
            return Ok(());
        }
        Err(problem)
    }

    /// Removes the snapshot files newer than the one the log names
    /// (`(index, term)`; `(0, 0)`: none): a crash or a failed write came
    /// between saving such a file and recording it in the log. Its state
    /// is committed and the log still holds it, but left there it would
    /// count among the snapshots kept, and it would refuse every later
    /// snapshot older than itself.
    fn remove_unnamed_snapshots(&self, named: (u64, u64)) -> Result<()> {
        for f in self.snaps.list()? {
            if (f.index, f.term) > named {
                tracing::warn!(path = %f.path.display(), "removing a snapshot the log does not name");
                self.snaps.remove(&f.path)?;
            }
        }
        Ok(())
    }

    /// Reads a snapshot file through, checking its checksum, without
    /// holding its data.
    fn verify(&self, path: &Path) -> Result<()> {
        let mut reader = self.snaps.open_reader(path)?;
        io::copy(&mut reader, &mut io::sink())
            .map(|_| ())
            .map_err(|e| Error::corrupt(path, 0, e.to_string()))
    }

    /// Decodes the newest entries into the cache, up to its budget.
    fn fill_cache(&mut self) -> Result<()> {
        // Records are a little smaller than entries count for, so this
        // takes a little more than the budget; `evict` trims it.
        let mut bytes = 0;
        let tail = self
            .index
            .iter()
            .rev()
            .take_while(|loc| {
                bytes += u64::from(loc.pos.len);
                bytes <= self.opts.cache_bytes
            })
            .count();
        let positions: Vec<Position> = self
            .index
            .range(self.index.len() - tail..)
            .map(|loc| loc.pos)
            .collect();
        let newest = self.wal.read_many(&positions)?;
        self.cache_first = self.last_index_inner() + 1 - newest.len() as u64;
        self.cache_size = newest.iter().map(Entry::accounted_size).sum();
        self.cache = newest.into();
        self.evict();
        Ok(())
    }

    /// Drops the oldest cached entries past the budget.
    fn evict(&mut self) {
        while self.cache_size > self.opts.cache_bytes {
            let Some(e) = self.cache.pop_front() else {
                break;
            };
            self.cache_size -= e.accounted_size();
            self.cache_first += 1;
        }
    }

    fn last_index_inner(&self) -> u64 {
        self.compacted.index + self.index.len() as u64
    }

    /// Entry `index`, which the log holds: from the cache, or read back.
    fn entry(&self, index: u64) -> Result<Entry, StorageError> {
        if index >= self.cache_first {
            return Ok(self.cache[(index - self.cache_first) as usize].clone());
        }
        let loc = self.index[(index - self.compacted.index - 1) as usize];
        Ok(self.wal.read(loc.pos)?)
    }
}

/// Refuses a directory that holds anything but a rudder storage; creates
/// a missing one.
fn check_directory(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    if !fs.is_dir(dir) {
        return fs
            .create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e));
    }
    let names = fs.list(dir).map_err(|e| Error::io("list", dir, e))?;
    if let Some(other) = names.iter().find(|n| *n != WAL_DIR && *n != SNAP_DIR) {
        return Err(Error::NotStorage {
            path: dir.to_owned(),
            reason: format!("it holds {other:?}; a storage holds only {WAL_DIR}/ and {SNAP_DIR}/"),
        });
    }
    Ok(())
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.snapshot.conf_state.clone().unwrap_or_default(),
        })
    }

    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        if lo <= self.compacted.index {
            return Err(StorageError::Compacted {
                index: lo,
                first: self.compacted.index + 1,
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
            return Ok(());
        }
        let mut size = 0;
        for index in lo..hi {
            let e = self.entry(index)?;
            size += e.accounted_size();
            if size > max_size && index > lo {
                break;
            }
            out.push(e);
        }
        Ok(())
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        if index == self.compacted.index {
            return Ok(self.compacted.term);
        }
        if index < self.compacted.index {
            return Err(StorageError::Compacted {
                index,
                first: self.compacted.index + 1,
            });
        }
        match self.index.get((index - self.compacted.index - 1) as usize) {
            Some(loc) => Ok(loc.term),
            None => Err(StorageError::Unavailable {
                index,
                last: self.last_index_inner(),
            }),
        }
    }

    fn first_index(&self) -> Result<u64, StorageError> {
        Ok(self.compacted.index + 1)
    }

    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.last_index_inner())
    }

    fn snapshot(&self, _request_index: u64) -> Result<Snapshot, StorageError> {
        match &self.snapshot_path {
            Some(path) => Ok(self.snaps.load(path)?),
            None => Ok(Snapshot::default()),
        }
    }
}
