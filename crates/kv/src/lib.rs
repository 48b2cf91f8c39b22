//! # rudder-kv: the replicated key-value server
//!
//! A key-value map replicated with Raft ([`store`]), served over HTTP/1.1
//! with JSON ([`api`]), one process per member ([`server`]) that checks
//! an empty data directory is a first start ([`preflight`]), plus the
//! command line's client commands ([`client`]), a local demo cluster
//! ([`demo`]) and a load generator ([`bench`](mod@bench)).

pub mod api;
pub mod bench;
pub mod client;
pub mod demo;
pub mod logging;
pub mod preflight;
pub mod server;
pub mod store;
