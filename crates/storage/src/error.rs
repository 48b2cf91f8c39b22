//! Errors of the storage crate, each naming the file (and offset) involved.

use std::io;
use std::path::PathBuf;

/// The storage crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong with the storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `write`, `fdatasync`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Data on disk fails its checks: committed data may be at stake, so
    /// the storage will not guess.
    #[error("corrupt {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment the log needs is missing.
    #[error("missing WAL segment in {dir}: {reason}")]
    MissingSegment {
        /// The WAL directory.
        dir: PathBuf,
        /// Which segment and why it is needed.
        reason: String,
    },
    /// The directory holds something other than a rudder storage.
    #[error("{path} is not a rudder storage directory: {reason}")]
    NotStorage {
        /// The directory.
        path: PathBuf,
        /// What was found there.
        reason: String,
    },
    /// An earlier `fsync` failed; the storage refuses writes from then on.
    #[error("storage refuses writes after an earlier failed sync: {0}")]
    Poisoned(String),
    /// A write the log cannot take (a gap, an index below the snapshot).
    #[error("invalid write: {0}")]
    InvalidWrite(String),
}

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Corrupt`] for `path` at `offset`.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

impl From<Error> for rudder_raft::StorageError {
    fn from(e: Error) -> Self {
        rudder_raft::StorageError::Other(e.to_string())
    }
}
