//! The file operations the storage needs, behind one small trait, so the
//! same code runs on a real disk ([`OsFs`]) and on a simulated one that
//! injects faults ([`MemFs`]).
//!
//! The contract follows POSIX as the storage relies on it:
//!
//! - a write is durable only once the file is synced ([`File::sync_data`]
//!   or [`File::sync_all`]); until then a crash may lose it, or keep any
//!   prefix of it (a torn write);
//! - creating, renaming or removing a file is durable only once its
//!   directory is synced ([`FileSystem::sync_dir`]);
//! - after a failed sync the unsynced data may be gone even though a later
//!   sync succeeds, so callers must not retry a sync.

mod mem;
mod os;

pub use mem::{MemFs, MemFsFaults};
pub use os::OsFs;

use std::fmt;
use std::io;
use std::path::Path;

/// A file system: the directory operations the storage uses.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn File>>;

    /// Creates a new, empty file for reading and writing; fails with
    /// [`io::ErrorKind::AlreadyExists`] if there is one.
    fn create(&self, path: &Path) -> io::Result<Box<dyn File>>;

    /// Creates a directory and any missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// The names of the entries of directory `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Whether `path` names a directory.
    fn is_dir(&self, path: &Path) -> bool;

    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Makes the directory's entries (files created, renamed, removed in
    /// it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file, read and written at explicit offsets.
// `len` is fallible I/O, not a collection's size: no `is_empty` to pair.
#[allow(clippy::len_without_is_empty)]
pub trait File: Send + Sync + fmt::Debug {
    /// Reads into `buf` from `offset`; returns how many bytes were read,
    /// fewer than `buf.len()` only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;

    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;

    /// Reserves space up to `len` bytes (zeros past the current end), so
    /// later writes there need no allocation and a `sync_data` of them no
    /// metadata update.
    fn allocate(&mut self, len: u64) -> io::Result<()>;

    /// Cuts or extends (with zeros) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Reads exactly `buf.len()` bytes from `offset`;
    /// [`io::ErrorKind::UnexpectedEof`] if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], offset + done as u64)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}
