//! The write-ahead log: a directory of segment files of
//! [records](crate::record).
//!
//! A segment is named `{seq:016x}-{first_index:016x}.wal`: its sequence
//! number, and the index the next entry was expected to take when it was
//! started. Segments are created whole — preallocated, their first records
//! written and synced under a temporary name, then renamed and the
//! directory synced — so a segment that exists is never half made. Each
//! starts with a header record and copies of the hard state and the latest
//! snapshot marker, so older segments can be removed without losing them.
//!
//! [`Wal::save`] writes one `Ready`'s records — a snapshot marker, a
//! compaction point, entries, the hard state — with one write and at most
//! one `fdatasync` (group commit). The log is append-only: an entry at
//! an index already written replaces that entry and everything after it,
//! both now and when the log is read back, wherever the replaced entries
//! lie, in this segment or earlier ones.
//!
//! Replay ([`Wal::open`]) reads every segment in order. A bad record at the
//! end of the last segment, with nothing valid after it, is a write torn by
//! a crash: it was never acknowledged, so it is cut off (and the cut is
//! reported). So are non-zero bytes after the end of the last segment's
//! log (later pages of a torn write), which a later save could otherwise
//! end next to. Any other bad record, a missing segment, or entries the log
//! should hold but does not, fail the open with an error naming the file
//! and offset.

use crate::error::{Error, Result};
use crate::fs::{File, FileSystem};
use crate::record::{self, RecordType, HEADER_LEN};
use prost::Message as _;
use rudder_raft::{Entry, HardState, SnapshotMetadata};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The format a segment header names; anything else is refused.
pub const MAGIC: &str = "rudder-wal";
/// The segment format version written and understood.
const VERSION: u32 = 1;
/// Suffix of a segment being created.
const TMP_SUFFIX: &str = ".wal.tmp";

/// The first record of a segment (public, like [`CompactMarker`], so
/// tests and fuzz targets can write segments the WAL must judge).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentHeader {
    /// [`MAGIC`].
    #[prost(string, tag = "1")]
    pub magic: String,
    /// The format version.
    #[prost(uint32, tag = "2")]
    pub version: u32,
    /// The segment's sequence number (its name's first part).
    #[prost(uint64, tag = "3")]
    pub seq: u64,
    /// The index of the first entry it may hold (its name's second part).
    #[prost(uint64, tag = "4")]
    pub first_index: u64,
}

/// The log up to `index` (whose entry had `term`) is discarded, and with
/// `replace` everything after it too.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct CompactMarker {
    /// The last index discarded.
    #[prost(uint64, tag = "1")]
    pub index: u64,
    /// The term of the entry at `index`.
    #[prost(uint64, tag = "2")]
    pub term: u64,
    /// A leader's snapshot replaced the whole log: the entries after
    /// `index` are discarded as well. Said explicitly, because the entry
    /// that shows the log diverged may lie in a segment already removed.
    #[prost(bool, tag = "3")]
    pub replace: bool,
}

/// What one [`Wal::save`] writes, in this order, with one write.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch<'a> {
    /// A snapshot file now holds this snapshot.
    pub snapshot: Option<&'a SnapshotMetadata>,
    /// Discard the log up to here (after the snapshot, before entries,
    /// so a leader's snapshot followed by its entries replays in order).
    pub compact: Option<CompactMarker>,
    /// Entries continuing the log, or replacing its suffix.
    pub entries: &'a [Entry],
    /// The new hard state.
    pub hard_state: Option<&'a HardState>,
    /// Whether to `fdatasync` before returning.
    pub sync: bool,
}

/// An entry record's index and term, decoded without its payload (replay
/// needs only these; the payload is read back when asked for).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
struct EntryHead {
    #[prost(uint64, tag = "2")]
    term: u64,
    #[prost(uint64, tag = "3")]
    index: u64,
}

/// How the log is laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is closed and a new one started once a write would take
    /// it past this many bytes (a single larger write still fits in one
    /// segment). Segments are preallocated to this size.
    pub segment_size: u64,
}

impl Default for WalOptions {
    /// 64 MiB segments.
    fn default() -> WalOptions {
        WalOptions {
            segment_size: 64 << 20,
        }
    }
}

/// Where a record lies: the segment, the offset of its header, and its
/// length including the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The segment's sequence number.
    pub segment: u64,
    /// The offset of the record's header in the segment.
    pub offset: u64,
    /// The record's length, header included.
    pub len: u32,
}

/// An entry of the log as replay found it: its index, term and place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// The entry's index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// Where its record lies.
    pub pos: Position,
}

/// What replay recovered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The newest snapshot marker: the snapshot file to load.
    pub snapshot: Option<SnapshotMetadata>,
    /// Where the log was last compacted to (`(0, 0)`: never).
    pub compacted: CompactMarker,
    /// The entries after `compacted`, in index order, without gaps.
    pub entries: Vec<Located>,
    /// Where a torn tail (or stray bytes after the end of the log) was cut
    /// off, if one was: the segment and the offset of the cut.
    pub torn_tail: Option<(PathBuf, u64)>,
}

/// An open segment.
#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    file: Box<dyn File>,
}

/// The write-ahead log, open for appending.
#[derive(Debug)]
pub struct Wal {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: WalOptions,
    /// Oldest first; the last is the one written to.
    segments: Vec<Segment>,
    /// Where the next record goes in the last segment.
    offset: u64,
    /// The index of the last entry written (or the compaction point, if
    /// later).
    last_index: u64,
    /// The last hard state, snapshot marker and compaction point written,
    /// copied into each new segment.
    hard_state: HardState,
    snapshot: Option<SnapshotMetadata>,
    compacted: CompactMarker,
    /// Set by a failed write or sync (here or through a [`Syncer`]):
    /// every later write is refused.
    poisoned: Arc<Mutex<Option<String>>>,
    /// Syncs the last segment apart from the log.
    syncer: Option<Syncer>,
    /// The encoding buffer, kept between saves.
    buf: Vec<u8>,
}

/// Makes the writes of the segment being written durable, apart from the
/// [`Wal`]: a caller that guards the log with a lock can save without
/// syncing (`Batch::sync` false), let go of the lock, and sync through
/// this, so readers of the log need not wait for the disk. It syncs the
/// file through a handle of its own (an `fdatasync` covers every write to
/// the file, whichever handle made it). A failed sync poisons the log.
#[derive(Clone, Debug)]
pub struct Syncer {
    file: Arc<Mutex<Box<dyn File>>>,
    path: PathBuf,
    poisoned: Arc<Mutex<Option<String>>>,
}

impl Syncer {
    /// `fdatasync`s the segment; after a failure (here or in the log) it
    /// refuses, as the log does.
    pub fn sync(&self) -> Result<()> {
        let mut poisoned = self.poisoned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &*poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.sync_data().map_err(|e| {
            let e = Error::io("fdatasync", &self.path, e);
            *poisoned = Some(e.to_string());
            e
        })
    }
}

/// The path of segment `seq` starting at `first_index` in `dir`.
fn segment_path(dir: &Path, seq: u64, first_index: u64) -> PathBuf {
    dir.join(format!("{seq:016x}-{first_index:016x}.wal"))
}

/// `(seq, first_index)` of a segment file name, `None` if it is not one.
fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    if seq.len() != 16 || first.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

/// Replay's view of the log as it reads records in order.
#[derive(Default)]
struct Replay {
    rec: Recovered,
    /// Whether any entry record was read yet.
    seen_entry: bool,
}

impl Replay {
    /// An entry record: it continues the log, or replaces the entry at its
    /// index and everything after. Only the very first entry read may
    /// start past the compaction point (older segments were removed);
    /// whether a compaction read later covers that hole is checked at the
    /// end.
    fn entry(
        &mut self,
        path: &Path,
        offset: u64,
        index: u64,
        term: u64,
        pos: Position,
    ) -> Result<()> {
        let c = self.rec.compacted.index;
        if index <= c {
            return Ok(()); // discarded already
        }
        let entries = &mut self.rec.entries;
        match (
            entries.first().map(|e| e.index),
            entries.last().map(|e| e.index),
        ) {
            (Some(first), Some(last)) if index >= first => {
                if index > last + 1 {
                    return Err(Error::corrupt(
                        path,
                        offset,
                        format!("entry {index} follows entry {last}: a gap in the log"),
                    ));
                }
                entries.truncate((index - first) as usize);
            }
            (None, _) if self.seen_entry && index > c + 1 => {
                return Err(Error::corrupt(
                    path,
                    offset,
                    format!("entry {index} follows the compaction point {c}: a gap in the log"),
                ));
            }
            _ => entries.clear(),
        }
        entries.push(Located { index, term, pos });
        self.seen_entry = true;
        Ok(())
    }

    /// A compaction point: entries up to it are dropped, and those after it
    /// too if it replaced the log.
    fn compact(&mut self, marker: CompactMarker) {
        if marker.index <= self.rec.compacted.index {
            return; // a copy in a segment's preamble
        }
        let entries = &mut self.rec.entries;
        if marker.replace {
            entries.clear();
        } else {
            let keep_from = entries.partition_point(|e| e.index <= marker.index);
            entries.drain(..keep_from);
        }
        self.rec.compacted = marker;
    }

    /// The recovered log, once every segment is read: it must continue
    /// from the compaction point.
    fn finish(self, dir: &Path) -> Result<Recovered> {
        let c = self.rec.compacted.index;
        // Entries are only ever discarded under a snapshot, whose marker
        // the log keeps (every segment's preamble copies it): a compaction
        // past the newest snapshot named would leave the entries up to it
        // in neither the log nor a snapshot.
        let named = self.rec.snapshot.as_ref().map_or(0, |s| s.index);
        if c > named {
            return Err(Error::corrupt(
                dir,
                0,
                format!("the log is compacted through {c} but names no snapshot past {named}"),
            ));
        }
        if let Some(first) = self.rec.entries.first().filter(|e| e.index != c + 1) {
            return Err(Error::MissingSegment {
                dir: dir.to_owned(),
                reason: format!(
                    "entries {}..{} are in no segment and no compaction covers them",
                    c + 1,
                    first.index
                ),
            });
        }
        Ok(self.rec)
    }
}

impl Wal {
    /// Opens the log in `dir` (created if missing), replays it, and makes
    /// it ready to append after the last valid record.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, opts: WalOptions) -> Result<(Wal, Recovered)> {
        fs.create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
        let mut found = Vec::new();
        for name in fs.list(dir).map_err(|e| Error::io("list", dir, e))? {
            let path = dir.join(&name);
            if name.ends_with(TMP_SUFFIX) {
                // A segment whose creation a crash interrupted: it never
                // held anything.
                fs.remove_file(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
                continue;
            }
            let Some((seq, first)) = parse_segment_name(&name) else {
                return Err(Error::NotStorage {
                    path: dir.to_owned(),
                    reason: format!("unexpected file {name} among the WAL segments"),
                });
            };
            found.push((seq, first, path));
        }
        found.sort();
        let mut wal = Wal {
            fs,
            dir: dir.to_owned(),
            opts,
            segments: Vec::new(),
            offset: 0,
            last_index: 0,
            hard_state: HardState::default(),
            snapshot: None,
            compacted: CompactMarker::default(),
            poisoned: Arc::new(Mutex::new(None)),
            syncer: None,
            buf: Vec::new(),
        };
        if found.is_empty() {
            wal.start_segment(1, 1)?;
            return Ok((wal, Recovered::default()));
        }
        for pair in found.windows(2) {
            if pair[1].0 != pair[0].0 + 1 {
                return Err(Error::MissingSegment {
                    dir: dir.to_owned(),
                    reason: format!(
                        "segments {} and {} are there but not the ones between",
                        pair[0].2.display(),
                        pair[1].2.display()
                    ),
                });
            }
        }
        let mut segments = Vec::with_capacity(found.len());
        for (seq, first, path) in found {
            let file = wal
                .fs
                .open(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            segments.push((Segment { seq, path, file }, first));
        }
        let mut replay = Replay::default();
        wal.offset = replay_all(&mut replay, &segments)?;
        wal.segments = segments.into_iter().map(|(seg, _)| seg).collect();
        let last = wal
            .segments
            .last()
            .expect("replayed at least one segment")
            .path
            .clone();
        wal.syncer = Some(wal.syncer_for(&last)?);
        let rec = replay.finish(dir)?;
        if let Some((path, offset)) = &rec.torn_tail {
            let seg = wal
                .segments
                .last_mut()
                .expect("replayed at least one segment");
            // Zero what the torn write left, so the next write starts clean.
            seg.file
                .set_len(*offset)
                .and_then(|()| seg.file.allocate(wal.opts.segment_size.max(*offset)))
                .and_then(|()| seg.file.sync_all())
                .map_err(|e| Error::io("cut the torn tail of", path, e))?;
            tracing::warn!(segment = %path.display(), offset, "cut off a torn write at the end of the log");
        }
        wal.hard_state = rec.hard_state;
        wal.snapshot = rec.snapshot.clone();
        wal.compacted = rec.compacted;
        wal.last_index = rec.entries.last().map_or(rec.compacted.index, |e| e.index);
        Ok((wal, rec))
    }

    /// Writes `batch` with one write, and syncs once if it asks. Returns
    /// where each of its entries' records lies.
    ///
    /// The entries must continue the log or replace part of it: the first
    /// may not lie past the last index (after the batch's compaction)
    /// plus one.
    pub fn save(&mut self, batch: &Batch<'_>) -> Result<Vec<Position>> {
        self.check_writable()?;
        let last_index = match batch.compact {
            Some(c) if c.replace => c.index,
            Some(c) => self.last_index.max(c.index),
            None => self.last_index,
        };
        if let Some(first) = batch.entries.first() {
            if first.index > last_index + 1 || first.index == 0 {
                return Err(Error::InvalidWrite(format!(
                    "entry {} would leave a gap after the last index {last_index}",
                    first.index
                )));
            }
        }
        if let Some(e) = batch
            .entries
            .iter()
            .find(|e| e.encoded_len() > record::MAX_PAYLOAD)
        {
            return Err(Error::InvalidWrite(format!(
                "entry {} of {} bytes exceeds the record limit of {}",
                e.index,
                e.encoded_len(),
                record::MAX_PAYLOAD
            )));
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if let Some(meta) = batch.snapshot {
            record::encode_message(&mut buf, RecordType::Snapshot, meta);
        }
        if let Some(c) = &batch.compact {
            record::encode_message(&mut buf, RecordType::Compact, c);
        }
        let entries_at = buf.len();
        let mut lens = Vec::with_capacity(batch.entries.len());
        for e in batch.entries {
            let start = buf.len();
            record::encode_message(&mut buf, RecordType::Entry, e);
            lens.push((buf.len() - start) as u32);
        }
        if let Some(hs) = batch.hard_state {
            record::encode_message(&mut buf, RecordType::HardState, hs);
        }
        let rotated = if self.offset + buf.len() as u64 > self.opts.segment_size
            && self.offset > self.header_len()
        {
            self.rotate()
        } else {
            Ok(())
        };
        let result = rotated.and_then(|()| self.write_at_end(&buf, batch.sync));
        let start = self.offset - (buf.len() as u64) * u64::from(result.is_ok());
        self.buf = buf;
        result?;
        if let Some(meta) = batch.snapshot {
            self.snapshot = Some(meta.clone());
        }
        if let Some(c) = batch.compact {
            self.compacted = c;
        }
        if let Some(hs) = batch.hard_state {
            self.hard_state = *hs;
        }
        self.last_index = batch.entries.last().map_or(last_index, |e| e.index);
        let segment = self.segments.last().expect("a log has a segment").seq;
        let mut offset = start + entries_at as u64;
        Ok(lens
            .into_iter()
            .map(|len| {
                let pos = Position {
                    segment,
                    offset,
                    len,
                };
                offset += u64::from(len);
                pos
            })
            .collect())
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> Result<()> {
        self.check_writable()?;
        self.write_at_end(&[], true)
    }

    /// Reads the entry whose record lies at `pos`, checking it again.
    pub fn read(&self, pos: Position) -> Result<Entry> {
        let mut out = self.read_many(&[pos])?;
        Ok(out.pop().expect("one position, one entry"))
    }

    /// Reads the entries whose records lie at `positions`, checking each
    /// again; records that lie one after another in a segment are read
    /// with one read.
    pub fn read_many(&self, positions: &[Position]) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(positions.len());
        let mut rest = positions;
        while let Some(first) = rest.first() {
            let run = 1 + rest
                .windows(2)
                .take_while(|w| {
                    w[1].segment == w[0].segment && w[1].offset == w[0].offset + u64::from(w[0].len)
                })
                .count();
            let (now, later) = rest.split_at(run);
            let seg = self
                .segments
                .binary_search_by_key(&first.segment, |s| s.seq)
                .map(|i| &self.segments[i])
                .map_err(|_| {
                    Error::InvalidWrite(format!("segment {} was removed", first.segment))
                })?;
            let len: u64 = now.iter().map(|p| u64::from(p.len)).sum();
            let mut buf = vec![0; len as usize];
            seg.file
                .read_exact_at(&mut buf, first.offset)
                .map_err(|e| Error::io("read", &seg.path, e))?;
            let mut reader = record::Reader::new(&buf);
            for pos in now {
                let rec = reader
                    .next_record()
                    .map_err(|bad| Error::corrupt(&seg.path, pos.offset, bad.reason))?;
                let entry = match rec {
                    Some(r) if r.kind == RecordType::Entry => {
                        Entry::decode(r.payload).map_err(|e| {
                            Error::corrupt(&seg.path, pos.offset, format!("entry record: {e}"))
                        })?
                    }
                    _ => {
                        return Err(Error::corrupt(
                            &seg.path,
                            pos.offset,
                            "no entry record here",
                        ))
                    }
                };
                out.push(entry);
            }
            rest = later;
        }
        Ok(out)
    }

    /// Removes every segment older than `seq` (never the one written to),
    /// and syncs the directory.
    pub fn purge_before(&mut self, seq: u64) -> Result<()> {
        let active = self.segments.last().expect("a log has a segment").seq;
        let cut = self.segments.partition_point(|s| s.seq < seq.min(active));
        if cut == 0 {
            return Ok(());
        }
        for seg in self.segments.drain(..cut) {
            self.fs
                .remove_file(&seg.path)
                .map_err(|e| Error::io("remove", &seg.path, e))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("sync", &self.dir, e))
    }

    /// The sequence numbers of the segments, oldest first.
    pub fn segments(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.seq).collect()
    }

    /// A [`Syncer`] for the segment being written.
    pub fn syncer(&self) -> Syncer {
        self.syncer
            .clone()
            .expect("invariant broken: an open log has a syncer")
    }

    /// A syncer on a handle of its own for the segment at `path`.
    fn syncer_for(&self, path: &Path) -> Result<Syncer> {
        let file = self.fs.open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(Syncer {
            file: Arc::new(Mutex::new(file)),
            path: path.to_owned(),
            poisoned: Arc::clone(&self.poisoned),
        })
    }

    fn poison(&self, why: String) {
        *self.poisoned.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    fn check_writable(&self) -> Result<()> {
        match &*self.poisoned.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Writes `buf` at the end of the last segment and syncs if asked; any
    /// failure poisons the log.
    fn write_at_end(&mut self, buf: &[u8], sync: bool) -> Result<()> {
        let seg = self.segments.last_mut().expect("a log has a segment");
        let mut outcome = Ok(());
        if !buf.is_empty() {
            outcome = seg
                .file
                .write_all_at(buf, self.offset)
                .map_err(|e| Error::io("write", &seg.path, e));
        }
        if outcome.is_ok() && sync {
            outcome = seg
                .file
                .sync_data()
                .map_err(|e| Error::io("fdatasync", &seg.path, e));
        }
        if let Err(e) = &outcome {
            self.poison(e.to_string());
        } else {
            self.offset += buf.len() as u64;
        }
        outcome
    }

    /// The bytes a fresh segment starts with.
    fn header_len(&self) -> u64 {
        self.segment_preamble(0, 0).len() as u64
    }

    /// A segment's first records: its header, the hard state and the
    /// snapshot marker (so removing older segments loses neither).
    fn segment_preamble(&self, seq: u64, first_index: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        let header = SegmentHeader {
            magic: MAGIC.into(),
            version: VERSION,
            seq,
            first_index,
        };
        record::encode_message(&mut buf, RecordType::SegmentHeader, &header);
        record::encode_message(&mut buf, RecordType::HardState, &self.hard_state);
        if let Some(s) = &self.snapshot {
            record::encode_message(&mut buf, RecordType::Snapshot, s);
        }
        record::encode_message(&mut buf, RecordType::Compact, &self.compacted);
        buf
    }

    /// Syncs the current segment and starts the next.
    fn rotate(&mut self) -> Result<()> {
        self.write_at_end(&[], true)?;
        let seq = self.segments.last().expect("a log has a segment").seq + 1;
        let first = self.last_index + 1;
        self.start_segment(seq, first)
            .inspect_err(|e| self.poison(e.to_string()))
    }

    /// Creates segment `seq` whole: preallocated, preamble written and
    /// synced under a temporary name, renamed, directory synced.
    fn start_segment(&mut self, seq: u64, first_index: u64) -> Result<()> {
        let path = segment_path(&self.dir, seq, first_index);
        let tmp = self
            .dir
            .join(format!("{seq:016x}-{first_index:016x}{TMP_SUFFIX}"));
        let preamble = self.segment_preamble(seq, first_index);
        let mut file = self
            .fs
            .create(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.allocate(self.opts.segment_size)
            .and_then(|()| file.write_all_at(&preamble, 0))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("prepare segment", &tmp, e))?;
        self.fs
            .rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("sync", &self.dir, e))?;
        self.syncer = Some(self.syncer_for(&path)?);
        self.segments.push(Segment { seq, path, file });
        self.offset = preamble.len() as u64;
        Ok(())
    }
}

/// Reads every segment's records into `replay`, in order; returns the
/// offset after the last valid record of the last segment.
fn replay_all(replay: &mut Replay, segments: &[(Segment, u64)]) -> Result<u64> {
    let last = segments.len() - 1;
    // One buffer of a few reads' size for every segment: sequential reads
    // of a moderate size let the kernel read ahead while records are
    // checked, and nothing of a segment is held beyond what is parsed.
    let mut buf = Vec::with_capacity(2 * READ_CHUNK);
    let mut end = 0;
    for (i, (seg, first_index)) in segments.iter().enumerate() {
        let mut segment = SegmentReplay {
            replay: &mut *replay,
            path: &seg.path,
            seq: seg.seq,
            first_index: *first_index,
            header_seen: false,
        };
        end = segment.run(&*seg.file, &mut buf, i == last)?;
    }
    Ok(end)
}

/// The size of each read when replaying a segment.
const READ_CHUNK: usize = 1 << 20;

/// Whether `file` holds only zeros from `from` to `len`, read a chunk at a
/// time.
fn zeros_from(file: &dyn File, path: &Path, from: u64, len: u64) -> Result<bool> {
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut at = from;
    while at < len {
        let n = READ_CHUNK.min((len - at) as usize);
        file.read_exact_at(&mut chunk[..n], at)
            .map_err(|e| Error::io("read", path, e))?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Whether `rest` (the start of a record and what follows in the buffer)
/// holds less than the whole record, so more must be read to judge it.
fn incomplete(rest: &[u8]) -> bool {
    if rest.len() < HEADER_LEN {
        return true;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    len <= record::MAX_PAYLOAD && HEADER_LEN + len > rest.len()
}

/// Replaying one segment.
struct SegmentReplay<'a> {
    replay: &'a mut Replay,
    path: &'a Path,
    seq: u64,
    first_index: u64,
    header_seen: bool,
}

impl SegmentReplay<'_> {
    /// Reads the segment through `buf`, a chunk at a time, replaying its
    /// records; returns the offset after the last valid one. It stops at
    /// the first header of zeros (the unwritten, preallocated rest). A torn
    /// tail is allowed only in the last segment.
    fn run(&mut self, file: &dyn File, buf: &mut Vec<u8>, is_last: bool) -> Result<u64> {
        let path = self.path;
        let file_len = file.len().map_err(|e| Error::io("stat", path, e))?;
        buf.clear();
        // The file offset of `buf[0]`.
        let mut base = 0u64;
        loop {
            let at_eof = base + buf.len() as u64 >= file_len;
            let mut reader = record::Reader::new(buf);
            loop {
                let done = reader.position();
                if !at_eof && incomplete(&buf[done..]) {
                    break;
                }
                match reader.next_record() {
                    Ok(Some(rec)) => {
                        self.record(rec.kind, rec.payload, base + rec.offset as u64)?
                    }
                    Ok(None) if self.header_seen => {
                        let end = base + done as u64;
                        if is_last && !zeros_from(file, path, end, file_len)? {
                            self.stray_after_end(end);
                        }
                        return Ok(end);
                    }
                    Ok(None) => return Err(Error::corrupt(path, 0, "segment without a header")),
                    Err(_) => return self.bad_record(file, base + done as u64, file_len, is_last),
                }
            }
            let done = reader.position();
            buf.drain(..done);
            base += done as u64;
            let have = base + buf.len() as u64;
            let want = READ_CHUNK.min((file_len - have) as usize);
            let old = buf.len();
            buf.resize(old + want, 0);
            file.read_exact_at(&mut buf[old..], have)
                .map_err(|e| Error::io("read", path, e))?;
        }
    }

    /// Non-zero bytes after the end of the last segment's log (which ends
    /// at its first header of zeros): the later pages of a write whose
    /// earlier page never reached the disk, or bit rot in the unwritten
    /// rest. Nothing there was acknowledged, since the log read up to here
    /// is all that was, but left in place the next save could end next to
    /// them and the open after it read them as a damaged record. They are
    /// cut like a torn tail.
    fn stray_after_end(&mut self, end: u64) {
        tracing::warn!(segment = %self.path.display(), offset = end, "non-zero bytes after the end of the log");
        self.replay.rec.torn_tail = Some((self.path.to_owned(), end));
    }

    /// A bad record at `offset`: a torn tail to cut if nothing valid
    /// follows it in the last segment (judged over the whole rest of the
    /// file), otherwise damage.
    fn bad_record(
        &mut self,
        file: &dyn File,
        offset: u64,
        file_len: u64,
        is_last: bool,
    ) -> Result<u64> {
        let path = self.path;
        let rest_len = usize::try_from(file_len - offset)
            .map_err(|_| Error::corrupt(path, offset, "segment larger than memory"))?;
        let mut rest = vec![0; rest_len];
        file.read_exact_at(&mut rest, offset)
            .map_err(|e| Error::io("read", path, e))?;
        let bad = match record::Reader::new(&rest).next_record() {
            Err(bad) => bad,
            Ok(_) => {
                return Err(Error::corrupt(
                    path,
                    offset,
                    "a record read differently twice",
                ))
            }
        };
        if bad.torn && is_last && self.header_seen {
            self.replay.rec.torn_tail = Some((path.to_owned(), offset));
            return Ok(offset);
        }
        Err(Error::corrupt(path, offset, bad.reason))
    }

    /// Replays one valid record found at `offset`.
    fn record(&mut self, kind: RecordType, payload: &[u8], offset: u64) -> Result<()> {
        let path = self.path;
        let bad_payload = |what: &str, e: prost::DecodeError| {
            Error::corrupt(path, offset, format!("{what} record: {e}"))
        };
        if !self.header_seen {
            let header =
                SegmentHeader::decode(payload).map_err(|e| bad_payload("segment header", e))?;
            if kind != RecordType::SegmentHeader || header.magic != MAGIC {
                return Err(Error::corrupt(path, offset, "not a rudder WAL segment"));
            }
            if header.version != VERSION {
                return Err(Error::corrupt(
                    path,
                    offset,
                    format!(
                        "segment format version {} (this build reads {VERSION})",
                        header.version
                    ),
                ));
            }
            if (header.seq, header.first_index) != (self.seq, self.first_index) {
                return Err(Error::corrupt(
                    path,
                    offset,
                    format!(
                        "header names segment {}-{}, not the file's",
                        header.seq, header.first_index
                    ),
                ));
            }
            self.header_seen = true;
            return Ok(());
        }
        let replay = &mut *self.replay;
        match kind {
            RecordType::Entry => {
                let len = (HEADER_LEN + payload.len()) as u32;
                let e = EntryHead::decode(payload).map_err(|e| bad_payload("entry", e))?;
                let pos = Position {
                    segment: self.seq,
                    offset,
                    len,
                };
                replay.entry(path, offset, e.index, e.term, pos)?;
            }
            RecordType::HardState => {
                replay.rec.hard_state =
                    HardState::decode(payload).map_err(|e| bad_payload("hard state", e))?;
            }
            RecordType::Snapshot => {
                let meta =
                    SnapshotMetadata::decode(payload).map_err(|e| bad_payload("snapshot", e))?;
                if replay
                    .rec
                    .snapshot
                    .as_ref()
                    .is_none_or(|s| s.index < meta.index)
                {
                    replay.rec.snapshot = Some(meta);
                }
            }
            RecordType::Compact => {
                let marker =
                    CompactMarker::decode(payload).map_err(|e| bad_payload("compaction", e))?;
                replay.compact(marker);
            }
            RecordType::SegmentHeader => {
                return Err(Error::corrupt(path, offset, "a second segment header"));
            }
        }
        Ok(())
    }
}
