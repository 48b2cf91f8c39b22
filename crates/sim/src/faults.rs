//! Which faults a randomized run injects, and the faults themselves as
//! values, so a run's schedule can be printed and read back in the trace.

use rudder_raft::ConfChangeV2;

/// The kinds of fault a run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultKinds {
    /// Partitions of any shape: a random split, the leader isolated, a
    /// link cut one way.
    pub partitions: bool,
    /// Lossy, duplicating, slow links (messages reorder).
    pub lossy_links: bool,
    /// Crashes (unsynced state lost) and restarts from disk.
    pub crashes: bool,
    /// Pauses: a node stops (no ticks, no I/O) and resumes later.
    pub pauses: bool,
    /// Leader transfers.
    pub transfers: bool,
    /// Membership changes: learners added and promoted, voters removed,
    /// voters replaced through joint consensus.
    pub membership: bool,
}

impl FaultKinds {
    /// Every kind of fault.
    pub const ALL: FaultKinds = FaultKinds {
        partitions: true,
        lossy_links: true,
        crashes: true,
        pauses: true,
        transfers: true,
        membership: true,
    };

    /// No faults: a healthy cluster.
    pub const NONE: FaultKinds = FaultKinds {
        partitions: false,
        lossy_links: false,
        crashes: false,
        pauses: false,
        transfers: false,
        membership: false,
    };
}

/// One fault (or repair) the nemesis applies.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Cut every link between the two groups, both ways.
    Partition(Vec<u64>, Vec<u64>),
    /// Cut the link `from -> to` only.
    CutOneWay(u64, u64),
    /// Every link loses, duplicates and delays messages so.
    Lossy {
        /// Loss probability.
        drop: f64,
        /// Duplication probability.
        duplicate: f64,
        /// Largest delay, in time units.
        max_delay: u64,
    },
    /// One link loses messages with this probability.
    LossyLink {
        /// The sending end.
        from: u64,
        /// The receiving end.
        to: u64,
        /// Loss probability.
        drop: f64,
    },
    /// Heal every cut and make links healthy again.
    HealNetwork,
    /// Crash a node.
    Crash(u64),
    /// Restart a crashed node from its disk.
    Restart(u64),
    /// Pause a node.
    Pause(u64),
    /// Resume a paused node.
    Resume(u64),
    /// Ask the leader to hand leadership to a node.
    Transfer {
        /// The leader asked.
        leader: u64,
        /// The node to lead next.
        to: u64,
    },
    /// Propose a configuration change on the leader.
    ChangeMembership {
        /// The leader asked.
        leader: u64,
        /// The change.
        change: ConfChangeV2,
    },
}
