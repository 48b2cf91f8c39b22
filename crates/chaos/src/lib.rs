//! Fault tests on real rudder processes, the way Jepsen tests etcd.
//!
//! A run starts 3 or 5 `rudder serve` processes on loopback, each behind a
//! fault-injecting [`proxy`] that every peer reaches it through. Clients
//! ([`workload`]) read, write and compare-and-set a few registers and add
//! unique keys to a set, over HTTP, recording every call and return. A
//! [`nemesis`] drawn from a seed meanwhile kills members with `SIGKILL`
//! and restarts them (one, the leader, or all at once), pauses them with `SIGSTOP`, partitions the network
//! (the leader alone, a majority from a minority, a bridge), moves
//! leadership and replaces members. Afterwards everything heals, the
//! cluster must converge, and [`check`] requires that:
//! - the history is linearizable (`rudder_sim`'s checker);
//! - no acknowledged write is missing: every acknowledged set key is on
//!   every member, and nothing is there that no client wrote;
//! - every member holds the same data at the same applied index.
//!
//! [`run`](mod@run) ties it together; `crates/kv/tests/nemesis.rs` runs it under
//! `cargo test`. See docs/RELIABILITY.md.

pub mod check;
pub mod cluster;
pub mod error;
pub mod member;
pub mod nemesis;
pub mod proxy;
pub mod run;
pub mod workload;

pub use error::HarnessError;
pub use run::{run, RunConfig, RunReport};
