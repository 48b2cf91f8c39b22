//! Fuzzes recovery of a storage directory: the write-ahead log's segments
//! and the snapshot files, on the in-memory file system.
//!
//! The input is structured (`arbitrary`): a history of operations run
//! through the real [`DiskStorage`] (saves that append, replace suffixes
//! and move the hard state, snapshots, compactions, installed leader
//! snapshots, crashes of the file system with torn writes, reopens), on
//! small segments so the log rotates; then edits to the files it left —
//! flipped bits, truncations, overwrites, zeroed ranges, removed,
//! duplicated or made-up files, and well-formed records (valid length
//! and checksum) with fuzzer-chosen contents, written over or after the
//! real ones, so replay's own checks, not only the checksums, see
//! strange input.
//!
//! Then the directory is opened. It must fail with an error or recover a
//! consistent log, and never panic, hang or allocate from a length field
//! (libFuzzer's `-timeout` and `-rss_limit_mb` catch the last two).
//! Consistent means: every entry from `first_index` to `last_index` reads
//! back, with consecutive indexes and the term `term()` reports; the
//! commit index lies within the log; the entries before `first_index`
//! are covered by the snapshot loaded; opening again recovers exactly the
//! same state; and an entry saved after recovery is there on the next
//! open. With no edits at all, recovery must give back exactly what the
//! history left.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use rudder_raft::{
    ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata, Storage, StorageError,
};
use rudder_storage::fs::{FileSystem, MemFs, MemFsFaults};
use rudder_storage::record::{self, RecordType};
use rudder_storage::wal::WalOptions;
use rudder_storage::{DiskStorage, Options};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DIR: &str = "/data";
/// Edits address at most this far into a file, so the harness itself
/// never makes huge files.
const MAX_EDIT_OFFSET: u64 = 1 << 16;

/// One operation of the history that builds the directory.
#[derive(Arbitrary, Debug)]
enum Op {
    /// Save `count` entries from `last + 1 - back` (so `back > 0`
    /// replaces a suffix) in `term`, with a hard state if asked.
    Save {
        back: u8,
        count: u8,
        term_bump: u8,
        payload: u8,
        hard_state: Option<(u8, u8, u8)>,
        sync: bool,
    },
    /// A snapshot of the state at `min(last, commit) - back`.
    Snapshot { back: u8, data: u8 },
    /// Compact through `snapshot - back`.
    Compact { back: u8 },
    /// Install a leader's snapshot at `last + ahead - back`, if that is
    /// past the commit index (replacing the log unless it holds that
    /// entry with that term).
    Install {
        ahead: u8,
        back: u8,
        term_bump: u8,
        data: u8,
    },
    /// The file system crashes (tearing unsynced writes, by its seeded
    /// choice) and the storage is reopened.
    Crash,
    /// The storage is closed and reopened.
    Reopen,
}

/// A record's contents for a made-up record.
#[derive(Arbitrary, Debug)]
enum Made {
    Entry {
        term: u8,
        index: u16,
        kind: u8,
        data: Vec<u8>,
    },
    HardState {
        term: u8,
        vote: u8,
        commit: u16,
    },
    Snapshot {
        index: u16,
        term: u8,
        voters: Vec<u8>,
    },
    Compact {
        index: u16,
        term: u8,
        replace: bool,
    },
    SegmentHeader {
        magic: bool,
        version: u8,
        seq: u8,
        first_index: u16,
    },
    /// Any type byte (also unknown ones) and payload, checksummed.
    Raw {
        kind: u8,
        payload: Vec<u8>,
    },
}

/// One edit of the files the history left.
#[derive(Arbitrary, Debug)]
enum Edit {
    FlipBit {
        file: u8,
        offset: u16,
        bit: u8,
    },
    Truncate {
        file: u8,
        len: u16,
    },
    Overwrite {
        file: u8,
        offset: u16,
        bytes: Vec<u8>,
    },
    Zero {
        file: u8,
        offset: u16,
        len: u16,
    },
    /// A well-formed record at `offset`, or at the end of the records
    /// (`None`: after the last valid one, where the next write would go).
    Record {
        file: u8,
        offset: Option<u16>,
        made: Made,
    },
    /// Overwrites the length field of the `n`th record (a length beyond
    /// the file, or the limit).
    Length {
        file: u8,
        n: u8,
        len: u32,
    },
    Remove {
        file: u8,
    },
    /// Copies a file's content over another's.
    Copy {
        from: u8,
        to: u8,
    },
    /// A new file in the WAL or snapshot directory, named by the fuzzer
    /// (a segment or snapshot name, usually).
    Create {
        name: NewName,
        bytes: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum NewName {
    Segment { seq: u8, first: u16 },
    Snap { index: u16, term: u8 },
    Tmp { seq: u8 },
    Other(String),
}

#[derive(Debug)]
struct Input {
    segment_size: u64,
    cache_bytes: u64,
    keep: usize,
    ops: Vec<Op>,
    edits: Vec<Edit>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Input> {
        Ok(Input {
            segment_size: [256, 512, 1024, 4096][u.choose_index(4)?],
            cache_bytes: [0, 200, 1 << 20][u.choose_index(3)?],
            keep: u.int_in_range(1..=3)?,
            ops: (0..u.int_in_range(0..=40)?)
                .map(|_| u.arbitrary())
                .collect::<arbitrary::Result<_>>()?,
            edits: (0..u.int_in_range(0..=6)?)
                .map(|_| u.arbitrary())
                .collect::<arbitrary::Result<_>>()?,
        })
    }
}

fuzz_target!(|input: Input| run(input));

fn options(input: &Input) -> Options {
    Options {
        wal: WalOptions {
            segment_size: input.segment_size,
        },
        keep_snapshots: input.keep,
        cache_bytes: input.cache_bytes,
    }
}

fn open(fs: &MemFs, opts: Options) -> rudder_storage::Result<DiskStorage> {
    DiskStorage::open(Arc::new(fs.clone()), Path::new(DIR), opts)
}

/// Everything a recovered storage tells the core.
#[derive(Debug, PartialEq)]
struct State {
    hard_state: HardState,
    conf_state: ConfState,
    first: u64,
    last: u64,
    entries: Vec<Entry>,
    snapshot: SnapshotMetadata,
}

/// Reads the state of `s` through the core's `Storage` trait, checking it
/// is consistent.
fn state_of(s: &DiskStorage) -> State {
    let init = s.initial_state().expect("initial state of an open storage");
    let first = s.first_index().expect("first index");
    let last = s.last_index().expect("last index");
    assert!(
        first >= 1 && first <= last + 1,
        "first {first}, last {last}"
    );
    let mut entries = Vec::new();
    s.entries(first, last + 1, u64::MAX, &mut entries)
        .unwrap_or_else(|e| panic!("entries {first}..={last} do not read back: {e}"));
    assert_eq!(entries.len() as u64, last + 1 - first);
    for (i, e) in (first..).zip(&entries) {
        assert_eq!(e.index, i, "entries out of order");
        assert_eq!(s.term(i), Ok(e.term), "term of {i}");
    }
    // The entry before the first is the compaction point: its term is known.
    s.term(first - 1)
        .unwrap_or_else(|e| panic!("term of {} (before the first entry): {e}", first - 1));
    assert!(matches!(
        s.term(last + 1),
        Err(StorageError::Unavailable { .. })
    ));
    assert!(
        init.hard_state.commit <= last,
        "commit {} past the last index {last}",
        init.hard_state.commit
    );
    let snap = s.snapshot(0).expect("the snapshot loads");
    let meta = snap.metadata.clone().unwrap_or_default();
    // What the log no longer holds, the snapshot must.
    assert!(
        first == 1 || meta.index >= first - 1,
        "the log starts at {first} but the snapshot is at {}",
        meta.index
    );
    State {
        hard_state: init.hard_state,
        conf_state: init.conf_state,
        first,
        last,
        entries,
        snapshot: meta,
    }
}

fn run(input: Input) {
    let opts = options(&input);
    let fs = MemFs::new(0);
    fs.set_faults(MemFsFaults::default());
    let Some(built) = build(&fs, &input, opts) else {
        return;
    };
    for edit in &input.edits {
        apply_edit(&fs, edit);
    }
    let Ok(s) = open(&fs, opts) else {
        return;
    };
    let recovered = state_of(&s);
    if input.edits.is_empty() {
        // Opening raises the commit index to the snapshot's (which holds
        // only committed entries); nothing else may differ.
        let mut built = built;
        built.hard_state.commit = built.hard_state.commit.max(built.snapshot.index);
        assert_eq!(recovered, built, "recovery of an untouched directory");
    }
    drop(s);

    // Recovery is stable: a second open finds what the first left.
    let mut s = open(&fs, opts).expect("a recovered storage opens again");
    assert_eq!(state_of(&s), recovered, "the second recovery differs");

    // And it can be written: an entry after the last is there next time.
    let next = Entry::new(
        recovered
            .hard_state
            .term
            .max(recovered.snapshot.term)
            .max(1),
        recovered.last + 1,
        Bytes::from_static(b"after recovery"),
    );
    if s.save(None, std::slice::from_ref(&next), true).is_ok() {
        drop(s);
        let s = open(&fs, opts).expect("the storage opens after a write");
        let again = state_of(&s);
        assert_eq!(again.last, recovered.last + 1, "the new entry is gone");
        assert_eq!(again.entries.last(), Some(&next));
        assert_eq!(
            &again.entries[..again.entries.len() - 1],
            &recovered.entries[..],
            "the write after recovery changed older entries"
        );
    }
}

/// Runs the history; returns the state it left, or `None` when the
/// storage refused something the harness asked (the history is ended).
fn build(fs: &MemFs, input: &Input, opts: Options) -> Option<State> {
    let mut s = open(fs, opts).expect("a fresh storage opens");
    for op in &input.ops {
        let last = s.last_index().ok()?;
        let first = s.first_index().ok()?;
        let term = s.initial_state().ok()?.hard_state.term.max(1);
        match *op {
            Op::Save {
                back,
                count,
                term_bump,
                payload,
                hard_state,
                sync,
            } => {
                let start = (last + 1).saturating_sub(u64::from(back % 8)).max(first);
                let t = term + u64::from(term_bump % 3);
                let es: Vec<Entry> = (start..start + u64::from(count % 12))
                    .map(|i| Entry {
                        entry_type: EntryType::EntryNormal as i32,
                        term: t,
                        index: i,
                        data: Bytes::from(vec![i as u8; usize::from(payload % 64)]),
                    })
                    .collect();
                let end = es.last().map_or(last, |e| e.index);
                let hs = hard_state.map(|(t2, v, c)| HardState {
                    term: t.max(u64::from(t2)),
                    vote: u64::from(v % 4),
                    commit: u64::from(c).min(end),
                });
                // A save never moves the commit index back, nor past the log.
                let hs = hs.map(|mut h| {
                    let old = s.initial_state().map(|i| i.hard_state).unwrap_or_default();
                    h.commit = h.commit.max(old.commit).min(end);
                    h.term = h.term.max(old.term);
                    h
                });
                if start <= s.initial_state().ok()?.hard_state.commit && !es.is_empty() {
                    // Committed entries are never replaced.
                    continue;
                }
                s.save(hs.as_ref(), &es, sync).ok()?;
            }
            Op::Snapshot { back, data } => {
                // The application snapshots what it applied: committed entries.
                let commit = s.initial_state().ok()?.hard_state.commit;
                let at = last.min(commit).saturating_sub(u64::from(back % 8));
                if at < first || at == 0 || at <= s.snapshot_index() {
                    continue;
                }
                let cs = ConfState::with_voters([1, 2, 3]);
                s.create_snapshot(at, Some(cs), &vec![data; usize::from(data % 32)])
                    .ok()?;
            }
            Op::Compact { back } => {
                let at = s.snapshot_index().saturating_sub(u64::from(back % 8));
                s.compact(at).ok()?;
            }
            Op::Install {
                ahead,
                back,
                term_bump,
                data,
            } => {
                let at = (last + u64::from(ahead % 8)).saturating_sub(u64::from(back % 8));
                // The core installs only snapshots past its commit index.
                let commit = s.initial_state().ok()?.hard_state.commit;
                if at <= s.snapshot_index() || at <= commit {
                    continue;
                }
                let meta = SnapshotMetadata {
                    conf_state: Some(ConfState::with_voters([1, 2, 3])),
                    index: at,
                    term: term + u64::from(term_bump % 2),
                };
                s.apply_snapshot(Snapshot {
                    data: Bytes::from(vec![data; usize::from(data % 32)]),
                    metadata: Some(meta),
                })
                .ok()?;
            }
            Op::Crash => {
                drop(s);
                fs.crash();
                s = open(fs, opts).expect("the storage recovers from a crash");
            }
            Op::Reopen => {
                drop(s);
                s = open(fs, opts).expect("the storage reopens");
            }
        }
    }
    Some(state_of(&s))
}

/// The files of the storage, WAL segments first, in name order.
fn files(fs: &MemFs) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["wal", "snap"] {
        let dir = Path::new(DIR).join(sub);
        if let Ok(names) = fs.list(&dir) {
            out.extend(names.into_iter().map(|n| dir.join(n)));
        }
    }
    out
}

fn pick(fs: &MemFs, n: u8) -> Option<PathBuf> {
    let all = files(fs);
    if all.is_empty() {
        return None;
    }
    Some(all[usize::from(n) % all.len()].clone())
}

fn write(fs: &MemFs, path: &Path, offset: u64, bytes: &[u8]) {
    if let Ok(mut f) = fs.open(path) {
        let _ = f.write_all_at(bytes, offset.min(MAX_EDIT_OFFSET));
        let _ = f.sync_all();
    }
}

fn read(fs: &MemFs, path: &Path) -> Vec<u8> {
    let Ok(f) = fs.open(path) else {
        return Vec::new();
    };
    let len = f.len().unwrap_or(0).min(MAX_EDIT_OFFSET * 2);
    let mut buf = vec![0; len as usize];
    let _ = f.read_exact_at(&mut buf, 0);
    buf
}

/// `(offset, length)` of each valid record at the start of `data`, and
/// where they end.
fn records(data: &[u8]) -> (Vec<(usize, usize)>, usize) {
    let mut r = record::Reader::new(data);
    let mut out = Vec::new();
    while let Ok(Some(rec)) = r.next_record() {
        out.push((rec.offset, record::HEADER_LEN + rec.payload.len()));
    }
    (out, r.position())
}

fn made_record(made: &Made) -> Vec<u8> {
    let mut buf = Vec::new();
    match made {
        Made::Entry {
            term,
            index,
            kind,
            data,
        } => {
            let e = Entry {
                entry_type: i32::from(*kind % 4),
                term: u64::from(*term),
                index: u64::from(*index),
                data: Bytes::copy_from_slice(data),
            };
            record::encode_message(&mut buf, RecordType::Entry, &e);
        }
        Made::HardState { term, vote, commit } => {
            let hs = HardState {
                term: u64::from(*term),
                vote: u64::from(*vote),
                commit: u64::from(*commit),
            };
            record::encode_message(&mut buf, RecordType::HardState, &hs);
        }
        Made::Snapshot {
            index,
            term,
            voters,
        } => {
            let meta = SnapshotMetadata {
                conf_state: Some(ConfState::with_voters(voters.iter().map(|&v| u64::from(v)))),
                index: u64::from(*index),
                term: u64::from(*term),
            };
            record::encode_message(&mut buf, RecordType::Snapshot, &meta);
        }
        Made::Compact {
            index,
            term,
            replace,
        } => {
            let c = rudder_storage::wal::CompactMarker {
                index: u64::from(*index),
                term: u64::from(*term),
                replace: *replace,
            };
            record::encode_message(&mut buf, RecordType::Compact, &c);
        }
        Made::SegmentHeader {
            magic,
            version,
            seq,
            first_index,
        } => {
            let h = rudder_storage::wal::SegmentHeader {
                magic: if *magic {
                    rudder_storage::wal::MAGIC
                } else {
                    "other"
                }
                .into(),
                version: u32::from(*version % 3),
                seq: u64::from(*seq),
                first_index: u64::from(*first_index),
            };
            record::encode(&mut buf, RecordType::SegmentHeader, &h.encode_to_vec());
        }
        Made::Raw { kind, payload } => {
            // `record::encode` only takes known types; frame it by hand.
            let crc = crc32c::crc32c_append(crc32c::crc32c(&[*kind]), payload);
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.push(*kind);
            buf.extend_from_slice(payload);
        }
    }
    buf
}

fn apply_edit(fs: &MemFs, edit: &Edit) {
    match edit {
        Edit::FlipBit { file, offset, bit } => {
            if let Some(p) = pick(fs, *file) {
                let len = fs.read_durable(&p).map_or(0, |d| d.len() as u64);
                if len > 0 {
                    fs.flip_bit(&p, u64::from(*offset) % len, bit % 8);
                }
            }
        }
        Edit::Truncate { file, len } => {
            if let Some(p) = pick(fs, *file) {
                if let Ok(mut f) = fs.open(&p) {
                    let _ = f.set_len(u64::from(*len));
                    let _ = f.sync_all();
                }
            }
        }
        Edit::Overwrite {
            file,
            offset,
            bytes,
        } => {
            if let Some(p) = pick(fs, *file) {
                write(fs, &p, u64::from(*offset), bytes);
            }
        }
        Edit::Zero { file, offset, len } => {
            if let Some(p) = pick(fs, *file) {
                let zeros = vec![0; usize::from(*len % 1024)];
                write(fs, &p, u64::from(*offset), &zeros);
            }
        }
        Edit::Record { file, offset, made } => {
            if let Some(p) = pick(fs, *file) {
                let at = match offset {
                    Some(o) => u64::from(*o),
                    None => records(&read(fs, &p)).1 as u64,
                };
                write(fs, &p, at, &made_record(made));
            }
        }
        Edit::Length { file, n, len } => {
            if let Some(p) = pick(fs, *file) {
                let (recs, _) = records(&read(fs, &p));
                if !recs.is_empty() {
                    let (at, _) = recs[usize::from(*n) % recs.len()];
                    write(fs, &p, at as u64, &len.to_le_bytes());
                }
            }
        }
        Edit::Remove { file } => {
            if let Some(p) = pick(fs, *file) {
                let _ = fs.remove_file(&p);
            }
        }
        Edit::Copy { from, to } => {
            if let (Some(a), Some(b)) = (pick(fs, *from), pick(fs, *to)) {
                let data = read(fs, &a);
                if let Ok(mut f) = fs.open(&b) {
                    let _ = f.set_len(0);
                    let _ = f.write_all_at(&data, 0);
                    let _ = f.sync_all();
                }
            }
        }
        Edit::Create { name, bytes } => {
            let path = match name {
                NewName::Segment { seq, first } => Path::new(DIR)
                    .join("wal")
                    .join(format!("{:016x}-{:016x}.wal", seq, first)),
                NewName::Snap { index, term } => Path::new(DIR)
                    .join("snap")
                    .join(format!("{:016x}-{:016x}.snap", index, term)),
                NewName::Tmp { seq } => Path::new(DIR)
                    .join("wal")
                    .join(format!("{:016x}-{:016x}.wal.tmp", seq, 1)),
                NewName::Other(name) => {
                    if name.is_empty() || name.contains('/') || name.contains('\0') {
                        return;
                    }
                    Path::new(DIR).join("wal").join(name)
                }
            };
            if let Ok(mut f) = fs.create(&path) {
                let _ = f.write_all_at(bytes, 0);
                let _ = f.sync_all();
            }
        }
    }
}
