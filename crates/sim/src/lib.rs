//! Deterministic simulation of rudder clusters.
//!
//! - [`sim`]: randomized runs ([`sim::Simulation`], [`sim::SimConfig`]).
//! - [`node`]: one simulated server, its disk and its state machine.
//! - [`network`]: messages in flight, with faults.
//! - [`workload`]: clients and the history they record.
//! - [`kv`]: the replicated key-value state machine.
//! - [`format`]: one-line descriptions of messages, for traces.

pub mod faults;
pub mod format;
pub mod invariants;
pub mod kv;
pub mod linearizability;
pub mod network;
pub mod node;
pub mod sim;
pub mod workload;
