//! Workload W1: three voters in one process and one thread, on
//! `MemoryStorage`, with messages delivered in memory. Shared by the
//! criterion benchmark (`benches/w1.rs`) and the instruction/allocation
//! counters (`examples/w1_count.rs`, `examples/w1_allocs.rs`), so all
//! measure the same code.

use bytes::Bytes;
use rudder_raft::storage_writes::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use rudder_raft::{ConfState, Config, MemoryStorage, Message, RawNode, StateRole};

/// How nodes hand their writes to storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Through `Ready` and `advance`.
    Sync,
    /// As messages to local append and apply workers
    /// (`Config::async_storage_writes`); here the workers finish at once,
    /// so what is measured is the cost of the message plumbing.
    Async,
}

/// A 3-voter cluster with node 1 as leader.
pub struct Cluster {
    nodes: Vec<RawNode<MemoryStorage>>,
    /// Highest applied index per node.
    applied: Vec<u64>,
    writes: Writes,
}

impl Cluster {
    /// Builds the cluster and elects node 1 (not part of any measurement).
    pub fn new(writes: Writes) -> Cluster {
        let voters = ConfState::with_voters([1, 2, 3]);
        let nodes = (1..=3)
            .map(|id| {
                let mut c = Config::new(id);
                c.max_inflight_msgs = 256;
                c.async_storage_writes = writes == Writes::Async;
                RawNode::new(&c, MemoryStorage::new_with_conf_state(voters.clone()))
                    .expect("valid config")
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            applied: vec![0; 3],
            writes,
        };
        cluster.nodes[0].campaign();
        cluster
            .run_until(|c| c.nodes[0].raft().state == StateRole::Leader && c.all_applied(c.last()));
        cluster
    }

    /// The leader's last index.
    pub fn last(&self) -> u64 {
        self.nodes[0].raft().log.last_index()
    }

    fn all_applied(&self, index: u64) -> bool {
        self.applied.iter().all(|&a| a >= index)
    }

    /// Proposes one entry on the leader.
    pub fn propose(&mut self, data: Bytes) {
        self.nodes[0]
            .propose(data)
            .expect("leader accepts proposals");
    }

    /// Runs Ready rounds and deliveries until every node applied `index`.
    pub fn drive_until_all_applied(&mut self, index: u64) {
        self.run_until(|c| c.all_applied(index));
    }

    /// Runs Ready rounds and deliveries until the leader applied `index`.
    pub fn drive_until_leader_applied(&mut self, index: u64) {
        self.run_until(|c| c.applied[0] >= index);
    }

    fn run_until(&mut self, done: impl Fn(&Cluster) -> bool) {
        let mut idle_rounds = 0;
        while !done(self) {
            if self.round() {
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                assert!(
                    idle_rounds < 3,
                    "W1 cluster stalled before reaching its goal"
                );
            }
        }
    }

    /// One round: every node in turn handles its Ready — persist, deliver
    /// its messages straight to their receivers, note what it applied,
    /// advance. Returns whether any node had work.
    fn round(&mut self) -> bool {
        let mut busy = false;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].has_ready() {
                continue;
            }
            busy = true;
            let mut rd = self.nodes[i].ready();
            if self.writes == Writes::Async {
                for m in rd.messages.drain(..) {
                    self.handle_async(i, m);
                }
                continue;
            }
            let store = self.nodes[i].storage_mut();
            store.append(&rd.entries).expect("append");
            if let Some(hs) = rd.hard_state {
                store.set_hard_state(hs);
            }
            if let Some(last) = rd.committed_entries.last() {
                self.applied[i] = last.index;
            }
            for m in rd.messages.drain(..).chain(rd.persisted_messages.drain(..)) {
                let to = (m.to - 1) as usize;
                self.nodes[to].step(m).expect("valid message");
            }
            self.nodes[i].advance(rd);
        }
        busy
    }
}

impl Cluster {
    /// One message of node `i`'s Ready in asynchronous mode: work for a
    /// local worker (done at once, then its responses delivered) or a
    /// message for a peer.
    fn handle_async(&mut self, i: usize, m: Message) {
        match m.to {
            LOCAL_APPEND_THREAD => {
                self.nodes[i]
                    .storage_mut()
                    .persist_append(&m)
                    .expect("append");
                for r in m.responses {
                    self.handle_async(i, r);
                }
            }
            LOCAL_APPLY_THREAD => {
                if let Some(last) = m.entries.last() {
                    self.applied[i] = last.index;
                }
                for r in m.responses {
                    self.handle_async(i, r);
                }
            }
            to => {
                self.nodes[(to - 1) as usize]
                    .step(m)
                    .expect("valid message");
            }
        }
    }
}

/// (a) Pipelined: bursts of 256 proposals, each burst driven until applied
/// everywhere.
pub fn pipelined(cluster: &mut Cluster, proposals: usize, payload: &Bytes) {
    let mut left = proposals;
    while left > 0 {
        let burst = left.min(256);
        for _ in 0..burst {
            cluster.propose(payload.clone());
        }
        left -= burst;
        let target = cluster.last();
        cluster.drive_until_all_applied(target);
    }
}

/// (b) Sequential: propose one, drive until the leader applied it, repeat.
pub fn sequential(cluster: &mut Cluster, proposals: usize, payload: &Bytes) {
    for _ in 0..proposals {
        cluster.propose(payload.clone());
        let target = cluster.last();
        cluster.drive_until_leader_applied(target);
    }
}

/// The 128-byte payload every proposal carries (shared, so the measurement
/// is Raft's cost, not copying the application's bytes).
pub fn payload() -> Bytes {
    Bytes::from(vec![0xAB; 128])
}

/// A W1 variant: drives `proposals` proposals through the cluster.
pub type Workload = fn(&mut Cluster, usize, &Bytes);
