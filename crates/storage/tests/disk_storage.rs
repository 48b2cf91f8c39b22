//! DiskStorage: what it saves, it recovers, across segments, overwrites,
//! snapshots and compaction.

mod common;

use common::*;
use rudder_raft::{ConfState, Storage};
use rudder_storage::fs::MemFs;

#[test]
fn entries_and_hard_state_survive_a_reopen() {
    let fs = MemFs::new(1);
    let mut s = open(&fs, small());
    for lo in (1..=100).step_by(5) {
        s.save(Some(&hs(1, 1, 0)), &entries(lo, lo + 4, 1), true)
            .unwrap();
    }
    s.save(Some(&hs(1, 1, 90)), &[], true).unwrap();
    assert!(
        s.wal_segments().len() > 1,
        "100 entries of ~70 bytes span 4 KiB segments"
    );
    let before = all(&s);
    drop(s);
    let s = open(&fs, small());
    assert_eq!(all(&s), before);
    assert_eq!(s.initial_state().unwrap().hard_state, hs(1, 1, 90));
    assert_eq!(
        (s.first_index().unwrap(), s.last_index().unwrap()),
        (1, 100)
    );
    assert_eq!(s.term(57), Ok(1));
}

#[test]
fn a_conflicting_suffix_is_replaced_across_segments() {
    let fs = MemFs::new(2);
    let mut s = open(&fs, small());
    for lo in (1..=100).step_by(10) {
        s.save(None, &entries(lo, lo + 9, 1), true).unwrap();
    }
    let segments = s.wal_segments().len();
    assert!(segments >= 2, "{segments} segments");
    // Entries from 20 on, of term 2, replace 20..=100 of term 1 written in
    // earlier segments.
    s.save(None, &entries(20, 60, 2), true).unwrap();
    assert!(s.wal_segments().len() >= segments);
    let mut expected = entries(1, 19, 1);
    expected.extend(entries(20, 60, 2));
    assert_eq!(all(&s), expected);
    drop(s);
    let s = open(&fs, small());
    assert_eq!(all(&s), expected);
    assert_eq!(s.last_index().unwrap(), 60);
}

#[test]
fn snapshots_and_compaction_purge_old_segments() {
    let fs = MemFs::new(3);
    let mut s = open(&fs, small());
    for lo in (1..=200).step_by(10) {
        s.save(Some(&hs(1, 1, lo + 9)), &entries(lo, lo + 9, 1), true)
            .unwrap();
    }
    let before = s.wal_segments();
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    let meta = s
        .create_snapshot(150, Some(cs.clone()), b"state at 150")
        .unwrap();
    assert_eq!((meta.index, meta.term), (150, 1));
    s.compact(140).unwrap();
    let after = s.wal_segments();
    assert!(
        after.len() < before.len(),
        "segments {before:?} -> {after:?}"
    );
    assert_eq!(s.first_index().unwrap(), 141);
    assert_eq!(s.term(140), Ok(1));
    drop(s);
    let s = open(&fs, small());
    assert_eq!(s.first_index().unwrap(), 141);
    assert_eq!(all(&s), entries(141, 200, 1));
    assert_eq!(s.initial_state().unwrap().conf_state, cs);
    let snap = s.snapshot(0).unwrap();
    assert_eq!((snap.index(), &snap.data[..]), (150, &b"state at 150"[..]));
}

#[test]
fn a_leaders_snapshot_replaces_the_log() {
    let fs = MemFs::new(4);
    let mut s = open(&fs, small());
    s.save(Some(&hs(1, 1, 10)), &entries(1, 50, 1), true)
        .unwrap();
    let snap = rudder_raft::Snapshot {
        data: bytes::Bytes::from_static(b"leader state"),
        metadata: Some(rudder_raft::SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2],
                ..Default::default()
            }),
            index: 80,
            term: 3,
        }),
    };
    s.apply_snapshot(snap).unwrap();
    assert_eq!(
        (s.first_index().unwrap(), s.last_index().unwrap()),
        (81, 80)
    );
    assert_eq!(s.initial_state().unwrap().hard_state, hs(3, 0, 80));
    s.save(None, &entries(81, 90, 3), true).unwrap();
    drop(s);
    let s = open(&fs, small());
    assert_eq!(all(&s), entries(81, 90, 3));
    assert_eq!(s.term(80), Ok(3));
    assert_eq!(s.initial_state().unwrap().hard_state, hs(3, 0, 80));
}

#[test]
fn records_straddling_read_chunks_replay_whole() {
    // Segments of 4 MiB are read 1 MiB at a time: records of odd sizes fall
    // across every chunk boundary.
    let fs = MemFs::new(5);
    let opts = rudder_storage::Options {
        wal: rudder_storage::wal::WalOptions {
            segment_size: 4 << 20,
        },
        keep_snapshots: 2,
        cache_bytes: 1 << 20,
    };
    let mut s = open(&fs, opts);
    let mut written = Vec::new();
    for i in 1..=2500u64 {
        let size = 1000 + (i * 7919) % 3000;
        let e = rudder_raft::Entry::new(
            1,
            i,
            bytes::Bytes::from(vec![(i % 251) as u8; size as usize]),
        );
        written.push(e);
    }
    for batch in written.chunks(37) {
        s.save(Some(&hs(1, 1, batch[0].index)), batch, true)
            .unwrap();
    }
    assert!(s.wal_segments().len() >= 2);
    drop(s);
    let s = open(&fs, opts);
    assert_eq!(all(&s), written);
    assert_eq!(s.recovery().torn_tail, None);
}
