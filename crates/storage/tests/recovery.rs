//! Recovery from what a crash or a bad disk leaves: each case of the
//! storage issue, on the in-memory file system.
//!
//! A torn tail is cut off and reported; every other kind of damage fails
//! the open with an error that names the file and offset, so committed
//! data is never dropped silently.

mod common;

use common::*;
use rudder_raft::{ConfState, Storage};
use rudder_storage::fs::{FileSystem, MemFs, MemFsFaults};
use rudder_storage::record::{Reader, HEADER_LEN};
use rudder_storage::{DiskStorage, Error};
use std::path::{Path, PathBuf};

/// The paths of the WAL segments, oldest first.
fn segments(fs: &MemFs) -> Vec<PathBuf> {
    let dir = Path::new(DIR).join("wal");
    fs.list(&dir)
        .unwrap()
        .into_iter()
        .map(|n| dir.join(n))
        .collect()
}

/// `(offset, length)` of every record of a durable file, in order.
fn records(fs: &MemFs, path: &Path) -> Vec<(u64, u64)> {
    let data = fs.read_durable(path).expect("the file is durable");
    let mut r = Reader::new(&data);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().expect("an undamaged file") {
        out.push((rec.offset as u64, (HEADER_LEN + rec.payload.len()) as u64));
    }
    out
}

/// Overwrites `path` at `offset` with `bytes`, durably.
fn overwrite(fs: &MemFs, path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = fs.open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

/// A storage of entries 1..=60 (term 1, over two segments), then 61..=63
/// in one last save.
fn sixty_then_three(fs: &MemFs) {
    let mut s = open(fs, small());
    for lo in (1..=60).step_by(3) {
        s.save(Some(&hs(1, 1, lo)), &entries(lo, lo + 2, 1), true)
            .unwrap();
    }
    s.save(None, &entries(61, 63, 1), true).unwrap();
}

#[test]
fn every_truncation_of_the_last_record_is_cut_off_and_reported() {
    let base = MemFs::new(7);
    sixty_then_three(&base);
    let seg = segments(&base).pop().unwrap();
    let (last_off, last_len) = *records(&base, &seg).last().unwrap();
    let original = base.read_durable(&seg).unwrap();
    // (A cut at `last_off` leaves no trace of the write: nothing to report.)
    for cut in last_off + 1..last_off + last_len {
        // The write reached `cut` and no further: the rest of the record
        // reads as the preallocated zeros, or the file ends there.
        for shorten in [false, true] {
            let fs = MemFs::new(cut);
            copy_tree(&base, &fs);
            if shorten {
                let mut f = fs.open(&seg).unwrap();
                f.set_len(cut).unwrap();
                f.sync_all().unwrap();
            } else {
                overwrite(
                    &fs,
                    &seg,
                    cut,
                    &vec![0; (last_off + last_len - cut) as usize],
                );
            }
            let s = open(&fs, small());
            let what = format!("cut at {cut} (shortened: {shorten})");
            assert_eq!(s.last_index().unwrap(), 62, "{what}: entry 63 was torn");
            assert_eq!(all(&s), entries(1, 62, 1), "{what}");
            assert_eq!(
                s.recovery().torn_tail,
                Some((seg.clone(), last_off)),
                "{what}"
            );
            // The storage goes on, and what it writes next survives.
            let mut s = s;
            s.save(None, &entries(63, 64, 2), true).unwrap();
            drop(s);
            let s = open(&fs, small());
            assert_eq!(s.last_index().unwrap(), 64, "{what}");
            assert_eq!(s.recovery().torn_tail, None, "{what}: the tail was cleaned");
        }
    }
    assert_eq!(
        base.read_durable(&seg).unwrap(),
        original,
        "copies were changed, not the original"
    );
}

/// Copies every file under `DIR` from `from` into the empty `to`, durably.
fn copy_tree(from: &MemFs, to: &MemFs) {
    for sub in ["wal", "snap"] {
        let dir = Path::new(DIR).join(sub);
        to.create_dir_all(&dir).unwrap();
        for name in from.list(&dir).unwrap() {
            let path = dir.join(&name);
            let data = from.read_durable(&path).unwrap();
            let mut f = to.create(&path).unwrap();
            f.write_all_at(&data, 0).unwrap();
            f.sync_all().unwrap();
        }
        to.sync_dir(&dir).unwrap();
    }
}

#[test]
fn a_bad_checksum_before_the_tail_fails_naming_file_and_offset() {
    let fs = MemFs::new(8);
    sixty_then_three(&fs);
    let segs = segments(&fs);
    assert!(segs.len() > 1, "the test needs an earlier segment");
    // Damage in an earlier segment, and in the last segment before its
    // last record.
    for seg in [&segs[0], segs.last().unwrap()] {
        let recs = records(&fs, seg);
        let (off, _) = recs[recs.len() - 2];
        let fs2 = MemFs::new(9);
        copy_tree(&fs, &fs2);
        assert!(fs2.flip_bit(seg, off + HEADER_LEN as u64 + 2, 3));
        match open_err(&fs2, small()) {
            Error::Corrupt { path, offset, .. } => {
                assert_eq!((&path, offset), (seg, off));
            }
            other => panic!("expected corruption in {}, got {other}", seg.display()),
        }
    }
}

#[test]
fn a_missing_segment_fails_the_open() {
    let fs = MemFs::new(10);
    let mut s = open(&fs, small());
    for lo in (1..=120).step_by(4) {
        s.save(None, &entries(lo, lo + 3, 1), true).unwrap();
    }
    drop(s);
    let segs = segments(&fs);
    assert!(segs.len() >= 3, "{} segments", segs.len());
    for victim in [&segs[1], &segs[0]] {
        let fs2 = MemFs::new(11);
        copy_tree(&fs, &fs2);
        fs2.remove_file(victim).unwrap();
        let err = open_err(&fs2, small());
        assert!(
            matches!(err, Error::MissingSegment { .. }),
            "removing {}: {err}",
            victim.display()
        );
    }
}

#[test]
fn a_damaged_snapshot_fails_unless_the_log_still_covers_it() {
    let cs = ConfState {
        voters: vec![1],
        ..Default::default()
    };
    for compact in [false, true] {
        let fs = MemFs::new(12);
        let mut s = open(&fs, small());
        s.save(Some(&hs(1, 1, 60)), &entries(1, 60, 1), true)
            .unwrap();
        s.create_snapshot(50, Some(cs.clone()), b"the state at 50")
            .unwrap();
        if compact {
            s.compact(45).unwrap();
        }
        drop(s);
        let snap_dir = Path::new(DIR).join("snap");
        let file = snap_dir.join(fs.list(&snap_dir).unwrap().pop().unwrap());
        let len = fs.durable_len(&file).unwrap();
        assert!(fs.flip_bit(&file, len - 10, 0));
        if compact {
            // Entries up to 45 exist only in the snapshot: opening must fail.
            match open_err(&fs, small()) {
                Error::Corrupt { path, .. } => assert_eq!(path, file),
                other => panic!("expected the snapshot named as corrupt, got {other}"),
            }
        } else {
            let s = open(&fs, small());
            assert!(s.recovery().snapshot_fallback.is_some());
            assert_eq!(all(&s), entries(1, 60, 1), "the log still holds everything");
        }
    }
}

#[test]
fn an_empty_directory_starts_fresh_and_another_is_refused() {
    let fs = MemFs::new(13);
    fs.create_dir_all(Path::new(DIR)).unwrap();
    let s = open(&fs, small());
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    assert_eq!(s.initial_state().unwrap(), Default::default());

    let other = MemFs::new(14);
    other.create_dir_all(Path::new(DIR)).unwrap();
    let mut f = other.create(&Path::new(DIR).join("photos.zip")).unwrap();
    f.write_all_at(b"PK", 0).unwrap();
    match open_err(&other, small()) {
        Error::NotStorage { path, reason } => {
            assert_eq!(path, Path::new(DIR));
            assert!(reason.contains("photos.zip"), "{reason}");
        }
        e => panic!("expected NotStorage, got {e}"),
    }
}

#[test]
fn a_failed_fsync_is_returned_and_later_writes_are_refused() {
    let fs = MemFs::new(15);
    let mut s = open(&fs, small());
    s.save(Some(&hs(1, 1, 5)), &entries(1, 5, 1), true).unwrap();
    fs.set_faults(MemFsFaults {
        fail_sync_after: Some(0),
        ..MemFsFaults::default()
    });
    match s.save(None, &entries(6, 8, 1), true) {
        Err(Error::Io { op, .. }) => assert_eq!(op, "fdatasync"),
        other => panic!("expected the fsync error, got {other:?}"),
    }
    fs.set_faults(MemFsFaults::default());
    // The sync would succeed now, but the pages may be gone: no retry.
    for attempt in [
        s.save(None, &entries(6, 8, 1), true),
        s.save(None, &entries(6, 6, 1), false),
    ] {
        assert!(matches!(attempt, Err(Error::Poisoned(_))), "{attempt:?}");
    }
    assert!(s.create_snapshot(3, None, b"x").is_err());
    drop(s);
    fs.crash();
    let s = open(&fs, small());
    assert_eq!(
        all(&s),
        entries(1, 5, 1),
        "what was synced before the failure survives"
    );
}

#[test]
fn a_save_synced_apart_survives_and_a_failed_apart_sync_poisons() {
    let fs = MemFs::new(16);
    let mut s = open(&fs, small());
    s.save(Some(&hs(1, 1, 0)), &entries(1, 30, 1), false)
        .unwrap();
    let syncer = s.syncer();
    syncer.sync().unwrap();
    // Unsynced, and then lost.
    s.save(None, &entries(31, 32, 1), false).unwrap();
    drop(s);
    fs.set_faults(MemFsFaults {
        torn_write_probability: 0.0,
        ..MemFsFaults::default()
    });
    fs.crash();
    let mut s = open(&fs, small());
    assert_eq!(
        all(&s),
        entries(1, 30, 1),
        "what the syncer synced survives, the rest does not"
    );
    s.save(None, &entries(31, 31, 1), false).unwrap();
    fs.set_faults(MemFsFaults {
        fail_sync_after: Some(0),
        ..MemFsFaults::default()
    });
    assert!(matches!(s.syncer().sync(), Err(Error::Io { .. })));
    fs.set_faults(MemFsFaults::default());
    assert!(matches!(
        s.save(None, &entries(32, 32, 1), true),
        Err(Error::Poisoned(_))
    ));
    assert!(matches!(s.syncer().sync(), Err(Error::Poisoned(_))));
}

#[test]
fn a_snapshot_past_the_durable_commit_raises_it() {
    // The runtime's apply worker snapshots what it applied while the
    // append worker has not yet saved the commit that allowed it (a commit
    // index alone is saved without a sync): found by the simulator's
    // disk-fault runs, where the restart then failed with "applied index
    // past the committed index".
    let fs = MemFs::new(17);
    let mut s = open(&fs, small());
    s.save(Some(&hs(1, 1, 5)), &entries(1, 10, 1), true)
        .unwrap();
    s.create_snapshot(8, None, b"the state at 8").unwrap();
    drop(s);
    fs.crash();
    let s = open(&fs, small());
    assert_eq!(s.snapshot_index(), 8);
    assert_eq!(s.initial_state().unwrap().hard_state.commit, 8);
}

#[test]
fn a_snapshot_file_the_log_never_named_is_removed_on_open() {
    // A snapshot file saved whose marker never reached the log (here its
    // WAL sync fails) must not count among the snapshots kept: found by
    // the simulator's disk-fault runs, where a later save pruned the
    // snapshot the log named and the restart found it missing.
    let wal_sync_failed = |fs: &MemFs, after: u64| {
        let mut s = open(fs, small());
        s.save(Some(&hs(1, 1, 20)), &entries(1, 20, 1), true)
            .unwrap();
        s.create_snapshot(4, None, b"the state at 4").unwrap();
        fs.set_faults(MemFsFaults {
            fail_sync_after: Some(after),
            ..MemFsFaults::default()
        });
        let failed = match s.create_snapshot(12, None, b"the state at 12") {
            Err(Error::Io { path, .. }) => path.starts_with(Path::new(DIR).join("wal")),
            _ => false,
        };
        fs.set_faults(MemFsFaults::default());
        failed
    };
    let fs = (0..10)
        .map(|after| (after, MemFs::new(18)))
        .find(|(after, fs)| wal_sync_failed(fs, *after))
        .map(|(_, fs)| fs)
        .expect("some sync of a snapshot save is the WAL's");
    fs.crash();
    let snap_dir = Path::new(DIR).join("snap");
    assert_eq!(
        fs.list(&snap_dir).unwrap().len(),
        2,
        "the orphan is on disk"
    );
    let mut s = open(&fs, small());
    assert_eq!(s.snapshot_index(), 4);
    // Left there, the orphan at 12 would refuse these as older.
    s.create_snapshot(8, None, b"the state at 8").unwrap();
    s.create_snapshot(10, None, b"the state at 10").unwrap();
    let kept = fs.list(&snap_dir).unwrap();
    assert_eq!(kept.len(), 2, "the orphan is gone: {kept:?}");
    drop(s);
    fs.crash();
    assert_eq!(open(&fs, small()).snapshot_index(), 10);
}

#[test]
fn keeping_one_snapshot_a_failure_anywhere_in_saving_the_next_leaves_a_storage_that_opens() {
    // Saving a snapshot used to prune the one the log names before the log
    // named the new one: keeping one, a failure between the two left a
    // storage that refused to open ("the log names snapshot 1/10, which is
    // not there").
    let opts = rudder_storage::Options {
        keep_snapshots: 1,
        ..small()
    };
    for leaders in [false, true] {
        for after in 0..6 {
            let case = format!(
                "a {} snapshot, a sync failing after {after}",
                if leaders { "leader's" } else { "local" }
            );
            let fs = MemFs::new(after);
            let mut s = open(&fs, opts);
            s.save(Some(&hs(1, 1, 20)), &entries(1, 20, 1), true)
                .unwrap();
            s.create_snapshot(10, None, b"state at 10").unwrap();
            s.compact(5).unwrap();
            fs.set_faults(MemFsFaults {
                fail_sync_after: Some(after),
                ..MemFsFaults::default()
            });
            let saved = if leaders {
                s.apply_snapshot(rudder_raft::Snapshot {
                    data: bytes::Bytes::from_static(b"state at 15"),
                    metadata: Some(rudder_raft::SnapshotMetadata {
                        conf_state: Some(ConfState::default()),
                        index: 15,
                        term: 1,
                    }),
                })
            } else {
                s.create_snapshot(15, None, b"state at 15").map(|_| ())
            };
            drop(s);
            fs.set_faults(MemFsFaults::default());
            fs.crash();
            let s = DiskStorage::open(
                std::sync::Arc::new(fs.clone()) as std::sync::Arc<dyn FileSystem>,
                Path::new(DIR),
                opts,
            )
            .unwrap_or_else(|e| panic!("{case} (the save: {saved:?}): the open failed: {e}"));
            let snap = s.snapshot(0).unwrap();
            let expected: &[u8] = match snap.index() {
                10 => b"state at 10",
                15 => b"state at 15",
                other => panic!("{case}: a snapshot at {other}"),
            };
            assert_eq!(&snap.data[..], expected, "{case}");
            assert_eq!(s.last_index().unwrap(), 20, "{case}");
        }
    }
}
