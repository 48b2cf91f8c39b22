//! What can go wrong in the harness itself (as opposed to a violation the
//! checks find, which is a [`crate::check::Finding`]).

use thiserror::Error;

/// A harness step that could not be done.
#[derive(Debug, Error)]
pub enum HarnessError {
    /// Starting or signalling a member's process failed.
    #[error("member {id}: {what}: {source}")]
    Process {
        /// The member.
        id: u64,
        /// What was being done.
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file of the run could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An HTTP request the harness needed failed.
    #[error("{what}: {message}")]
    Http {
        /// What was asked.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// A fault aimed at the leader found none (or no other member to
    /// hand leadership to).
    #[error("no leader to aim at")]
    NoLeader,
    /// The nemesis named a member the cluster does not have.
    #[error("member {0} is not in the cluster")]
    NoSuchMember(u64),
    /// A condition the harness waited for did not come in time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the wait was.
        secs: u64,
    },
}
