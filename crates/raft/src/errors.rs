//! Typed errors of the core.

use thiserror::Error;

/// What a [`Storage`](crate::Storage) could not provide.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The index asked for lies before the first entry: it was compacted
    /// into a snapshot.
    #[error("index {index} is compacted (first available is {first})")]
    Compacted {
        /// The index asked for.
        index: u64,
        /// The first index still held.
        first: u64,
    },
    /// The index asked for lies after the last entry.
    #[error("index {index} is unavailable (last is {last})")]
    Unavailable {
        /// The index asked for.
        index: u64,
        /// The last index held.
        last: u64,
    },
    /// A snapshot is being prepared; ask again later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// A snapshot older than what the storage already holds.
    #[error("snapshot at index {index} is older than the storage's at {current}")]
    SnapshotOutOfDate {
        /// The snapshot's index.
        index: u64,
        /// The storage's current snapshot index.
        current: u64,
    },
    /// Entries that would leave a gap after the last stored index.
    #[error("entries starting at {first} leave a gap after the last index {last}")]
    Gap {
        /// The first index of the entries given.
        first: u64,
        /// The last stored index.
        last: u64,
    },
    /// Anything else the storage failed at (for example an I/O error in a
    /// durable implementation), with its own message.
    #[error("storage failure: {0}")]
    Other(String),
}

/// Why a configuration was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The node ID is 0, which means "none".
    #[error("id must not be 0")]
    ZeroId,
    /// A tick count that must be positive was 0.
    #[error("heartbeat_tick must be greater than 0")]
    ZeroHeartbeatTick,
    /// The election timeout must outlast several heartbeats.
    #[error("election_tick ({election}) must be greater than heartbeat_tick ({heartbeat})")]
    ElectionTickTooSmall {
        /// The configured election tick.
        election: usize,
        /// The configured heartbeat tick.
        heartbeat: usize,
    },
    /// The randomized election timeout, up to twice `election_tick`, must
    /// be representable.
    #[error("election_tick ({0}) is too large: twice it must fit in a usize")]
    ElectionTickTooLarge(usize),
    /// The inflight window must hold at least one message.
    #[error("max_inflight_msgs must be greater than 0")]
    ZeroInflightMsgs,
    /// The byte window must fit at least one full message.
    #[error("max_inflight_bytes ({inflight}) must be at least max_size_per_msg ({per_msg})")]
    InflightBytesTooSmall {
        /// The configured byte window.
        inflight: u64,
        /// The configured message size.
        per_msg: u64,
    },
    /// Lease-based reads are only safe when the leader steps down on losing
    /// its quorum.
    #[error("read_only_option LeaseBased requires check_quorum")]
    LeaseWithoutCheckQuorum,
}

/// The errors of the core's API.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A proposal was refused; the reason says why.
    #[error("proposal dropped: {0}")]
    ProposalDropped(DropReason),
    /// A message that was malformed or not meant for this node; it was not
    /// applied.
    #[error("invalid message: {0}")]
    InvalidMessage(&'static str),
    /// `RawNode::bootstrap` on a storage that already holds state.
    #[error("cannot bootstrap a non-empty storage")]
    NotEmpty,
    /// `RawNode::bootstrap` with no peers.
    #[error("bootstrap needs at least one peer")]
    NoPeers,
    /// A step from a peer that is not part of the configuration.
    #[error("step from unknown peer {0}")]
    UnknownPeer(u64),
    /// A leadership transfer to a node that is not a voter of the cluster.
    #[error("cannot transfer leadership to {0}: not a voter")]
    InvalidTransferee(u64),
    /// `forget_leader` under lease-based reads, whose safety rests on
    /// followers keeping their leader for the lease.
    #[error("cannot forget the leader under lease-based reads")]
    ForgetLeaderUnderLease,
    /// A conf change entry whose payload does not decode.
    #[error("conf change does not decode: {0}")]
    BadConfChange(String),
}

/// Why a proposal (or read) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No leader is known to forward to.
    NoLeader,
    /// Forwarding to the leader is disabled and this node is not it.
    ForwardingDisabled,
    /// The uncommitted payload would pass `max_uncommitted_entries_size`.
    UncommittedSizeLimit,
    /// Leadership is being transferred.
    TransferringLeader,
    /// Another configuration change is not yet applied.
    ConfChangePending,
    /// The configuration change is not valid in the current configuration.
    InvalidConfChange,
    /// This node is not a voter or learner of the cluster (it was removed).
    NotMember,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DropReason::NoLeader => "no leader",
            DropReason::ForwardingDisabled => "proposal forwarding is disabled",
            DropReason::UncommittedSizeLimit => "uncommitted size limit reached",
            DropReason::TransferringLeader => "leadership transfer in progress",
            DropReason::ConfChangePending => "a configuration change is pending",
            DropReason::InvalidConfChange => "invalid configuration change",
            DropReason::NotMember => "node is not a member",
        })
    }
}

/// The result type of the core.
pub type Result<T> = std::result::Result<T, Error>;
