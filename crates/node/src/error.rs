//! The errors of the node handle.

use rudder_raft::DropReason;
use thiserror::Error;

/// Why a call on a [`Node`](crate::Node) failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// The node's task has ended: [`Node::stop`](crate::Node::stop) was
    /// called, every handle was dropped, or the task panicked. Every call
    /// made then, or waiting then, fails with this.
    #[error("the node is stopped")]
    Stopped,
    /// The Raft core refused the request; the inner error says why (for a
    /// proposal, [`rudder_raft::Error::ProposalDropped`] with the reason).
    #[error(transparent)]
    Raft(#[from] rudder_raft::Error),
    /// [`Node::advance`](crate::Node::advance) with a `Ready` that is not
    /// the one handed out and not yet advanced (each `Ready` is advanced
    /// once, and only the one from [`Node::ready`](crate::Node::ready)).
    #[error("Ready {number} is not the Ready awaiting advance")]
    UnknownReady {
        /// The number of the `Ready` given.
        number: u64,
    },
}

impl NodeError {
    /// Why a proposal (or read) was refused, if that is what this error
    /// is: `Some(NoLeader)`, `Some(ConfChangePending)`, ...
    pub fn drop_reason(&self) -> Option<DropReason> {
        match self {
            NodeError::Raft(rudder_raft::Error::ProposalDropped(reason)) => Some(*reason),
            _ => None,
        }
    }
}
