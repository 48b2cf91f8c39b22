//! Deterministic simulation of rudder clusters.
//!
//! A run is a function of one `u64` seed: the network (loss, delay and
//! reordering, duplication, partitions of any shape), crashes that lose
//! whatever was not yet durable, pauses, leader transfers and membership
//! changes, and the clients' operations are all drawn from it. Raft's
//! safety properties are checked after every step ([`invariants`]); after
//! the faults heal the cluster must make progress and converge; the
//! clients' history must be linearizable ([`linearizability`]).
//!
//! - [`sim`]: randomized runs ([`sim::Simulation`], [`sim::SimConfig`]).
//! - [`node`]: one simulated server, its disk and its state machine.
//! - [`disk`]: what both kinds of node share: running or down, the disk.
//! - [`network`]: messages in flight, with faults.
//! - [`workload`]: clients and the history they record.
//! - [`kv`]: the replicated key-value state machine.
//! - [`format`](mod@format): one-line descriptions of messages, for traces.
//! - [`scenario`]: scenario scripts that drive a cluster step by step.

pub mod disk;
pub mod faults;
pub mod format;
pub mod invariants;
pub mod kv;
pub mod linearizability;
pub mod network;
pub mod node;
pub mod scenario;
pub mod sim;
pub mod workload;
