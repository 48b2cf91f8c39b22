//! # rudder-raft: a deterministic Raft core
//!
//! This crate is the Raft consensus algorithm as a pure state machine: no
//! I/O, no threads, no clock. The application feeds it inputs — clock
//! ticks, messages from peers, proposals, read requests — and it answers
//! with a [`Ready`]: what to persist, what to send, what to apply. The
//! application does those things and calls [`RawNode::advance`]. Randomness
//! (election timeouts) comes from a generator seeded by [`Config::seed`],
//! so the same inputs always give the same outputs.
//!
//! ## The loop
//!
//! Every node runs the same loop:
//!
//! 1. Call [`RawNode::tick`] at a fixed interval (say every 100 ms); the
//!    election and heartbeat timeouts in [`Config`] count these ticks.
//! 2. Step every message received from a peer with [`RawNode::step`], and
//!    offer client writes with [`RawNode::propose`].
//! 3. When [`RawNode::has_ready`], take the [`Ready`] and, in order:
//!    send `messages`; write `snapshot`, `entries` and `hard_state` to
//!    stable storage (fsync if `must_sync`); send `persisted_messages`;
//!    apply the snapshot and `committed_entries` to the state machine
//!    (calling [`RawNode::apply_conf_change`] for configuration entries);
//!    then call [`RawNode::advance`].
//!
//! A single node that elects itself and commits one proposal:
//!
//! ```
//! use bytes::Bytes;
//! use rudder_raft::{Config, ConfState, EntryType, MemoryStorage, RawNode, StateRole};
//!
//! let storage = MemoryStorage::new_with_conf_state(ConfState::with_voters([1]));
//! let mut node = RawNode::new(&Config::new(1), storage).unwrap();
//! let mut applied = Vec::new();
//! node.campaign();
//! let mut proposed = false;
//! for _ in 0..10 {
//!     if node.raft().state == StateRole::Leader && !proposed {
//!         node.propose(Bytes::from_static(b"hello")).unwrap();
//!         proposed = true;
//!     }
//!     if !node.has_ready() {
//!         node.tick();
//!         continue;
//!     }
//!     let mut rd = node.ready();
//!     // A single node has no peers: `messages` is empty. Persist first.
//!     if let Some(snap) = rd.snapshot.take() {
//!         node.storage_mut().apply_snapshot(*snap).unwrap();
//!     }
//!     node.storage_mut().append(&rd.entries).unwrap();
//!     if let Some(hs) = rd.hard_state {
//!         node.storage_mut().set_hard_state(hs);
//!     }
//!     // Then apply.
//!     for entry in rd.committed_entries.drain(..) {
//!         if entry.kind() == EntryType::EntryNormal && !entry.data.is_empty() {
//!             applied.push(entry.data);
//!         }
//!     }
//!     node.advance(rd);
//! }
//! assert_eq!(applied, vec![Bytes::from_static(b"hello")]);
//! ```
//!
//! ## Map
//!
//! - [`proto`]: the wire types (etcd's `raft.proto` numbering).
//! - [`RawNode`] and [`Ready`]: the application's handle.
//! - [`Raft`]: the rules, one module per concern (elections, leader,
//!   follower, reads, membership).
//! - [`log`]: the log, stable (via [`Storage`]) and unstable.
//! - [`tracker`] and [`quorum`]: peers' progress and majority arithmetic,
//!   joint configurations included.
//! - [`Storage`] and [`MemoryStorage`]: the read side of durable state.

#![warn(missing_docs)]

pub mod confchange;
pub mod config;
pub mod errors;
pub mod log;
pub mod outcomes;
pub mod proto;
pub mod quorum;
mod raft;
pub mod raw_node;
pub mod read_only;
pub mod status;
pub mod storage;
pub mod storage_writes;
#[cfg(test)]
mod testing;
pub mod tracker;
pub mod util;

pub use confchange::ConfChangeI;
pub use config::{Config, ReadOnlyOption};
pub use errors::{ConfigError, DropReason, Error, Result, StorageError};
pub use outcomes::{Outcome, ProposalOutcome};
pub use proto::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};
pub use raft::{CampaignType, Proposed, Raft, SoftState, StateRole};
pub use raw_node::{RawNode, Ready, SnapshotStatus};
pub use read_only::ReadState;
pub use status::{BasicStatus, Status};
pub use storage::{MemoryStorage, RaftState, Storage};
