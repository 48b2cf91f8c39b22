//! Deterministic simulation of rudder clusters.
//!
//! - [`linearizability`]: a checker for histories of register and
//!   key-value operations.

pub mod linearizability;
