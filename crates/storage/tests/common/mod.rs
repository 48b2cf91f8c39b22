//! Helpers shared by the storage tests.

#![allow(dead_code)] // each test binary uses its own part

use bytes::Bytes;
use rudder_raft::{Entry, HardState, Storage};
use rudder_storage::fs::{FileSystem, MemFs};
use rudder_storage::wal::WalOptions;
use rudder_storage::{DiskStorage, Options};
use std::path::Path;
use std::sync::Arc;

/// Where the tests' storages live on a `MemFs`.
pub const DIR: &str = "/data";

/// Small segments so that a few entries rotate, and a small cache so reads
/// go to disk.
pub fn small() -> Options {
    Options {
        wal: WalOptions { segment_size: 4096 },
        keep_snapshots: 2,
        cache_bytes: 1024,
    }
}

/// Entries `lo..=hi` of `term`, each with a payload naming it.
pub fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..=hi)
        .map(|i| {
            Entry::new(
                term,
                i,
                Bytes::from(format!("entry {i} of term {term} {}", "x".repeat(40))),
            )
        })
        .collect()
}

/// Opens the storage in `DIR` on `fs`.
pub fn open(fs: &MemFs, opts: Options) -> DiskStorage {
    DiskStorage::open(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        Path::new(DIR),
        opts,
    )
    .unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// Opens the storage, expecting an error.
pub fn open_err(fs: &MemFs, opts: Options) -> rudder_storage::Error {
    match DiskStorage::open(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        Path::new(DIR),
        opts,
    ) {
        Ok(_) => panic!("open succeeded on a damaged storage"),
        Err(e) => e,
    }
}

/// All entries `s` holds.
pub fn all(s: &DiskStorage) -> Vec<Entry> {
    let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
    let mut out = Vec::new();
    s.entries(first, last + 1, u64::MAX, &mut out).unwrap();
    out
}

/// A hard state.
pub fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

/// Opens the storage in `DIR` on `fs`, returning the error rather than
/// panicking (for tests that report a failed open with more context).
pub fn try_open(fs: &MemFs, opts: Options) -> rudder_storage::Result<DiskStorage> {
    DiskStorage::open(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        Path::new(DIR),
        opts,
    )
}
