//! Errors of the runtime: why a request failed, and why the runtime could
//! not start or had to stop.

use rudder_raft::DropReason;

/// Why a proposal, a read or a membership change did not succeed. Every
/// request ends with its result or one of these: none waits forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// This node is not the leader; `leader` is the one it knows (0: none).
    /// The request was not carried out: it is safe to retry at the leader.
    #[error("not the leader (leader: {leader})")]
    NotLeader {
        /// The leader this node knows of, 0 if none.
        leader: u64,
    },
    /// The core refused the request for this reason; nothing was appended.
    #[error("dropped: {0}")]
    Dropped(DropReason),
    /// The proposal was appended, but its fate cannot be known here (a
    /// snapshot covered it first): it may or may not have been applied.
    #[error("outcome unknown: the proposal may or may not have been applied")]
    Unknown,
    /// The core refused the request as invalid (a transfer to a learner or
    /// a stranger, a change that cannot apply); nothing was done.
    #[error("refused: {0}")]
    Refused(String),
    /// No answer within the deadline; a proposal may still be applied.
    #[error("timed out")]
    Timeout,
    /// The runtime stopped (shut down, or a storage failure stopped it).
    #[error("the node is shutting down")]
    Shutdown,
}

/// Why the runtime could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The durable storage failed.
    #[error("storage: {0}")]
    Storage(#[from] rudder_storage::Error),
    /// The Raft core refused the configuration or the stored state.
    #[error("raft: {0}")]
    Raft(#[from] rudder_raft::Error),
    /// The node could not start.
    #[error("node: {0}")]
    Node(#[from] crate::NodeError),
    /// The state machine could not restore its snapshot.
    #[error("state machine: {0}")]
    StateMachine(String),
    /// A snapshot's envelope (membership and state) does not decode.
    #[error("snapshot: {0}")]
    Snapshot(#[from] prost::DecodeError),
}
