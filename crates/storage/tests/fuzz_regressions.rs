//! Inputs the `wal_recovery` fuzz target (`fuzz/`) found, replayed as
//! ordinary tests: each builds the directory the crashing input built and
//! checks that opening it now fails cleanly or recovers a consistent log.

mod common;

use common::*;
use rudder_raft::Storage;
use rudder_storage::fs::{FileSystem, MemFs};
use rudder_storage::record::{self, Reader, RecordType};
use rudder_storage::wal::CompactMarker;
use rudder_storage::Error;
use std::path::Path;

/// Writes `record` right after the last valid record of the only WAL
/// segment, where the next save would go, durably.
fn append_record(fs: &MemFs, record: &[u8]) {
    let dir = Path::new(DIR).join("wal");
    let names = fs.list(&dir).unwrap();
    assert_eq!(names.len(), 1, "one segment: {names:?}");
    let path = dir.join(&names[0]);
    let data = fs.read_durable(&path).unwrap();
    let mut r = Reader::new(&data);
    while r.next_record().unwrap().is_some() {}
    let mut f = fs.open(&path).unwrap();
    f.write_all_at(record, r.position() as u64).unwrap();
    f.sync_all().unwrap();
}

/// A well-formed compaction record (valid length and checksum) past any
/// snapshot: a fresh log said to be compacted through 518 names no
/// snapshot. Opening used to succeed with `first_index` 519 and an empty
/// snapshot, so entries 1..=518 were in neither the log nor a snapshot.
#[test]
fn a_compaction_past_every_snapshot_is_refused() {
    let fs = MemFs::new(1);
    drop(open(&fs, small()));
    let mut rec = Vec::new();
    let marker = CompactMarker {
        index: 518,
        term: 0,
        replace: false,
    };
    record::encode_message(&mut rec, RecordType::Compact, &marker);
    append_record(&fs, &rec);
    match try_open(&fs, small()) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("compacted through 518"), "{reason}")
        }
        Err(other) => panic!("expected a corrupt log, got {other}"),
        Ok(s) => panic!(
            "opened with first index {} and a snapshot at {}",
            s.first_index().unwrap(),
            s.snapshot_index()
        ),
    }
}

/// Replay ended the log at the first header of zeros without looking at
/// what follows, so a stray non-zero byte in the preallocated rest of the
/// last segment (bit rot, or a torn write whose later page reached the
/// disk and earlier one did not) stayed there. The next save ended just
/// before it, and the open after that read the stray byte as part of a
/// record header: a bad
/// record with a valid one further on, so damage, and the storage no
/// longer opened although nothing it acknowledged was harmed.
///
/// Now such bytes are cut like a torn tail when the log is opened.
#[test]
fn garbage_after_the_end_of_the_log_survives_the_next_save() {
    let opts = rudder_storage::Options {
        wal: rudder_storage::wal::WalOptions { segment_size: 512 },
        keep_snapshots: 1,
        cache_bytes: 0,
    };
    let fs = MemFs::new(0);
    {
        let mut s = open(&fs, opts);
        let e = [rudder_raft::Entry::new(3, 1, vec![1u8; 21].into())];
        s.save(Some(&hs(85, 1, 1)), &e, true).unwrap();
    }
    let dir = Path::new(DIR).join("wal");
    let seg = dir.join(&fs.list(&dir).unwrap()[0]);
    // The log ends at 96; byte 126 of the zeros after it goes bad, and a
    // valid record lies far past the end.
    let end = {
        let data = fs.read_durable(&seg).unwrap();
        let mut r = Reader::new(&data);
        while r.next_record().unwrap().is_some() {}
        r.position() as u64
    };
    assert_eq!(end, 96);
    assert!(fs.flip_bit(&seg, 126, 3));
    let mut rec = Vec::new();
    record::encode_message(&mut rec, RecordType::Entry, &rudder_raft::Entry::default());
    let mut f = fs.open(&seg).unwrap();
    f.write_all_at(&rec, 60195).unwrap();
    f.sync_all().unwrap();
    drop(f);

    let mut s = try_open(&fs, opts).expect("the log ends cleanly at 96");
    assert_eq!(s.last_index().unwrap(), 1);
    // A 29-byte record: it ends at 125, next to the stray byte.
    let e = rudder_raft::Entry::new(85, 2, bytes::Bytes::from_static(b"after recovery"));
    s.save(None, &[e], true).unwrap();
    drop(s);
    let s = try_open(&fs, opts)
        .unwrap_or_else(|e| panic!("a saved entry made the log unopenable: {e}"));
    assert_eq!(s.last_index().unwrap(), 2);
}
