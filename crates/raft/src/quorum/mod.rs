//! Quorum arithmetic: which index a set of voters has committed, and how a
//! vote came out. [`MajorityConfig`] is one set of voters; [`JointConfig`]
//! is two (the outgoing and incoming sets of joint consensus), where every
//! decision needs both majorities.

mod joint;
mod majority;

pub use joint::JointConfig;
pub use majority::{quorum_index, MajorityConfig};

/// The outcome of a vote so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: more votes could still win or lose it.
    Pending,
    /// A quorum cannot be reached any more.
    Lost,
    /// A quorum voted yes.
    Won,
}

/// Tells, for a voter, the highest log index it is known to hold.
pub trait AckedIndexer {
    /// The voter's acknowledged index, or `None` if it is unknown.
    fn acked_index(&self, voter: u64) -> Option<u64>;
}

impl<F: Fn(u64) -> Option<u64>> AckedIndexer for F {
    fn acked_index(&self, voter: u64) -> Option<u64> {
        self(voter)
    }
}
