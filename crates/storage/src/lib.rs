//! Durable storage for rudder: a write-ahead log and snapshot files.
//!
//! [`DiskStorage`] implements the core's [`rudder_raft::Storage`] over a
//! directory holding
//!
//! - `wal/`: the write-ahead log ([`wal`]), segment files of checksummed
//!   records (entries, hard state, snapshot markers), appended with one
//!   write and at most one `fdatasync` per `Ready`;
//! - `snap/`: snapshot files ([`snap`]), each written atomically and
//!   checksummed, the newest few kept.
//!
//! Opening a directory recovers the hard state, membership, snapshot and
//! entries. A torn tail (a crash in the middle of a write) is cut off and
//! logged; any other damage — a bad checksum before the tail, a missing
//! segment, a snapshot the log no longer covers that fails its checksum —
//! fails the open with an error naming the file and offset, so committed
//! data is never dropped silently. After a failed `fsync` the storage
//! refuses every further write: the kernel may already have dropped the
//! pages, so retrying could report success for data that is gone.
//!
//! All file access goes through [`fs::FileSystem`]: [`fs::OsFs`] for real
//! disks and [`fs::MemFs`], in memory, which can lose unsynced writes on a
//! simulated crash, tear a write, fail an `fsync` or flip a bit.

pub mod error;
pub mod fs;
pub mod record;
pub mod snap;
pub mod wal;

mod disk_storage;

pub use disk_storage::{DiskStorage, Options, Recovery};
pub use error::{Error, Result};
