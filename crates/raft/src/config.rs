//! The settings of one Raft node, validated before use.

use crate::errors::ConfigError;

/// How a leader serves read-index requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadOnlyOption {
    /// Confirm leadership with a heartbeat round acknowledged by a quorum
    /// before answering (thesis §6.4). Always safe.
    #[default]
    Safe,
    /// Answer from the leader's lease: safe only while clocks drift little,
    /// and only with `check_quorum` on (a leader that lost its quorum steps
    /// down within an election timeout).
    LeaseBased,
}

/// The settings of one Raft node.
///
/// Times are in ticks: the caller decides how long a tick is. Every field
/// is checked by [`Config::validate`]; a bad value is an error, never a
/// panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's ID; 0 is reserved for "none".
    pub id: u64,
    /// A follower that hears nothing from a leader for a randomized number
    /// of ticks in `[election_tick, 2 * election_tick)` starts an election.
    pub election_tick: usize,
    /// A leader sends heartbeats every `heartbeat_tick` ticks.
    pub heartbeat_tick: usize,
    /// The last applied index, when restarting; entries up to it are not
    /// handed out again.
    pub applied: u64,
    /// The most bytes of entries one append message carries (at least one
    /// entry is always sent). 0 means one entry per message.
    pub max_size_per_msg: u64,
    /// The most bytes of committed entries one `Ready` hands out (at least
    /// one entry). 0 means no limit.
    pub max_committed_size_per_ready: u64,
    /// The most bytes of uncommitted payload a leader accepts before it
    /// refuses proposals. 0 means no limit.
    pub max_uncommitted_entries_size: u64,
    /// The most append messages in flight to one follower in replicate
    /// state.
    pub max_inflight_msgs: usize,
    /// The most bytes of entries in flight to one follower. 0 means no
    /// limit.
    pub max_inflight_bytes: u64,
    /// A leader steps down when it has not heard from a quorum within an
    /// election timeout, and followers that heard from a leader recently
    /// ignore vote requests (leader stickiness).
    pub check_quorum: bool,
    /// Run a pre-vote round before an election, so a node that cannot win
    /// does not raise the cluster's term (thesis §9.6).
    pub pre_vote: bool,
    /// How read-index requests are served.
    pub read_only_option: ReadOnlyOption,
    /// Refuse proposals on followers instead of forwarding them.
    pub disable_proposal_forwarding: bool,
    /// Hand persistence and apply work to local workers as messages
    /// instead of through `Ready` and `advance`; see [`crate::storage_writes`].
    pub async_storage_writes: bool,
    /// A leader removed from the configuration, or demoted to learner,
    /// steps down once the change is applied (otherwise it keeps leading
    /// a cluster it is not part of until a new election).
    pub step_down_on_removal: bool,
    /// Seed of the random source that spreads election timeouts; a run with
    /// the same seed and inputs makes the same decisions.
    pub seed: u64,
}

impl Config {
    /// A configuration for node `id` with the defaults: election after 10
    /// ticks, heartbeat every tick, 1 MiB messages, 256 messages in flight,
    /// pre-vote and check-quorum on, safe reads, leaders step down when
    /// removed.
    pub fn new(id: u64) -> Config {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_committed_size_per_ready: 0,
            max_uncommitted_entries_size: 0,
            max_inflight_msgs: 256,
            max_inflight_bytes: 0,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            disable_proposal_forwarding: false,
            step_down_on_removal: true,
            async_storage_writes: false,
            seed: id,
        }
    }

    /// Checks every field; the first bad one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_tick == 0 {
            return Err(ConfigError::ZeroHeartbeatTick);
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(ConfigError::ElectionTickTooSmall {
                election: self.election_tick,
                heartbeat: self.heartbeat_tick,
            });
        }
        if self.election_tick.checked_mul(2).is_none() {
            return Err(ConfigError::ElectionTickTooLarge(self.election_tick));
        }
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError::ZeroInflightMsgs);
        }
        if self.max_inflight_bytes != 0 && self.max_inflight_bytes < self.max_size_per_msg {
            return Err(ConfigError::InflightBytesTooSmall {
                inflight: self.max_inflight_bytes,
                per_msg: self.max_size_per_msg,
            });
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::new(1).validate(), Ok(()));
    }

    // Each bad field and its error: tests/raw_node.rs,
    // `bad_config_fields_are_errors_from_new`, through the public API.
}
