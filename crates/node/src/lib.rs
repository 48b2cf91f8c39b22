//! # rudder-node: etcd's `Node` over the rudder core
//!
//! [`rudder_raft::RawNode`] is Raft as a plain state machine: no I/O, no
//! threads, no clock. This crate runs one on its own Tokio task and hands
//! out a [`Node`], a cheap-to-clone handle with etcd's methods:
//! [`campaign`](Node::campaign), [`propose`](Node::propose),
//! [`propose_conf_change`](Node::propose_conf_change),
//! [`step`](Node::step), [`ready`](Node::ready) (or
//! [`ready_stream`](Node::ready_stream)), [`advance`](Node::advance),
//! [`apply_conf_change`](Node::apply_conf_change),
//! [`transfer_leadership`](Node::transfer_leadership),
//! [`forget_leader`](Node::forget_leader),
//! [`read_index`](Node::read_index), [`status`](Node::status),
//! [`report_unreachable`](Node::report_unreachable),
//! [`report_snapshot`](Node::report_snapshot), [`tick`](Node::tick) and
//! [`stop`](Node::stop). As in etcd's `node.go`, the task selects over the
//! commands the handles send (etcd's `propc`, `recvc`, `confc`, `tickc`,
//! `status`, `stop` channels) and offers one `Ready` at a time (`readyc`),
//! the next only after [`Node::advance`] (`advancec`).
//!
//! Any number of tasks may propose, step or ask for status through clones
//! of the handle. One task — the application's driver — takes the `Ready`s
//! and does what they ask.
//!
//! [`runtime`] is such a driver, ready-made: it runs a `Node` over the
//! durable [`rudder_storage::DiskStorage`] and a [`runtime::Network`],
//! applies to a [`runtime::StateMachine`], and answers proposals and
//! linearizable reads (the seeds' raftNode). The loop below is what to
//! write instead when driving a `Node` by hand.
//!
//! ## The loop
//!
//! The driver runs the same loop as over a `RawNode`, with `.await`:
//!
//! 1. [`Node::tick`] at a fixed interval; the node has no clock of its own.
//! 2. When [`Node::ready`] hands out a [`Ready`](rudder_raft::Ready), in
//!    order:
//!    - send `messages` (they may leave at once);
//!    - save `snapshot`, `entries` and `hard_state` to the storage (sync if
//!      `must_sync`);
//!    - send `persisted_messages` (acknowledgements of what was just
//!      saved);
//!    - apply the snapshot and `committed_entries`, calling
//!      [`Node::apply_conf_change`] for configuration entries, and answer
//!      reads in `read_states` once applied up to their index;
//!    - [`Node::advance`].
//! 3. Step messages from peers with [`Node::step`], from whichever task
//!    receives them.
//!
//! A single node that bootstraps a cluster, elects itself and commits a
//! proposal:
//!
//! ```
//! use bytes::Bytes;
//! use rudder_node::{Node, NodeError, SharedStorage};
//! use rudder_raft::confchange::decode_conf_change;
//! use rudder_raft::{Config, MemoryStorage, Message, StateRole};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! rt.block_on(async {
//!     // The node's task reads the storage; this task writes it.
//!     let storage = SharedStorage::new(MemoryStorage::new());
//!     let node = Node::bootstrap(&Config::new(1), storage.clone(), &[1])?;
//!     // A real cluster sends to its peers here (and those call `step`).
//!     let send = |m: Message| unreachable!("a single node has no peers: {m:?}");
//!
//!     let mut ticker = tokio::time::interval(Duration::from_millis(100));
//!     let mut applied = Vec::new();
//!     let mut proposed = false;
//!     while applied.is_empty() {
//!         tokio::select! {
//!             _ = ticker.tick() => node.tick().await?,
//!             rd = node.ready() => {
//!                 let mut rd = rd?;
//!                 // Send what may leave at once.
//!                 rd.messages.drain(..).for_each(send);
//!                 // Persist: snapshot, entries, hard state.
//!                 {
//!                     let mut s = storage.lock();
//!                     if let Some(snap) = rd.snapshot.take() {
//!                         s.apply_snapshot(*snap)?;
//!                     }
//!                     s.append(&rd.entries)?;
//!                     if let Some(hs) = rd.hard_state {
//!                         s.set_hard_state(hs);
//!                     }
//!                 }
//!                 // Acknowledgements, now that the writes are durable.
//!                 rd.persisted_messages.drain(..).for_each(send);
//!                 // Apply, configuration changes included.
//!                 for entry in rd.committed_entries.drain(..) {
//!                     match decode_conf_change(&entry)? {
//!                         Some(cc) => {
//!                             let cs = node.apply_conf_change(&cc).await?;
//!                             storage.lock().set_conf_state(cs);
//!                         }
//!                         None if !entry.data.is_empty() => applied.push(entry.data),
//!                         None => {} // a new leader's empty entry
//!                     }
//!                 }
//!                 node.advance(rd).await?;
//!             }
//!         }
//!         // Elections come from ticks; this one node need not wait for one.
//!         let role = node.basic_status().await?.soft_state.raft_state;
//!         if role == StateRole::Follower {
//!             node.campaign().await?;
//!         } else if role == StateRole::Leader && !proposed {
//!             node.propose(Bytes::from_static(b"hello")).await?;
//!             proposed = true;
//!         }
//!     }
//!     assert_eq!(applied, vec![Bytes::from_static(b"hello")]);
//!
//!     node.stop().await;
//!     assert_eq!(node.propose(Bytes::from_static(b"late")).await, Err(NodeError::Stopped));
//!     Ok(())
//! })
//! # }
//! ```
//!
//! ## Storage: shared, written by the application
//!
//! The task owns the `RawNode` and so its [`Storage`](rudder_raft::Storage),
//! which the core reads (terms, entries to send, snapshots). The
//! application writes it, from its driver task. [`SharedStorage`] is that
//! shared storage: an `Arc<Mutex<S>>` implementing `Storage` by locking per
//! call; the driver keeps a clone and writes through
//! [`SharedStorage::lock`]. This is etcd's arrangement (its `MemoryStorage`
//! has a mutex for it). Any other `Storage` with shared interior state works
//! the same way. The writes and the reads cannot race in a harmful way: the
//! core reads what it handed out for persisting from its own unstable log
//! until the `Ready` that carried it is advanced, and the driver writes
//! before it advances.
//!
//! The alternative — the application asking the task to write on its behalf
//! — would put every write (and every fsync) on the node's task, stalling
//! proposals and messages behind the disk, and would copy each `Ready`'s
//! entries into a closure instead of reusing its buffers.
//!
//! With [`Config::async_storage_writes`](rudder_raft::Config::async_storage_writes)
//! the storage work comes as messages in `Ready::messages` to the append and
//! apply workers ([`rudder_raft::storage_writes`]): hand them over, call
//! [`Node::advance`] at once (the node hands out one `Ready` at a time, and
//! advance acknowledges nothing in this mode), and have the workers step
//! their responses back with [`Node::step`].
//!
//! ## Stopping
//!
//! [`Node::stop`] ends the task and waits for it; so does dropping every
//! handle. Afterwards, and for calls waiting at that moment (proposals
//! queued, a `ready` waiting for work), every method fails with
//! [`NodeError::Stopped`]: nothing waits forever. A driver loop ends when
//! `ready` (or `advance`) says `Stopped`.
//!
//! ## Determinism
//!
//! The task adds no clock and no randomness: what the core sees is the
//! commands in the order the task receives them. Under a single-threaded
//! runtime with a scripted driver the same program gives the same run.
//! [`Node::unspawned`] hands over the task itself, to run where the caller
//! chooses, and gives the `RawNode` back when it ends.

#![warn(missing_docs)]

mod error;
mod node;
pub mod runtime;
mod storage;

pub use error::NodeError;
pub use node::{Node, NodeTask, ReadyStream, COMMAND_QUEUE_CAPACITY};
pub use storage::SharedStorage;

/// The Raft core this crate drives, re-exported so that its types
/// (`Ready`, `Message`, `Config`, ...) match the node's.
pub use rudder_raft;
