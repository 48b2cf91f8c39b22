//! Workload W1 (see rudder's `crates/raft/benches/support/w1_cluster.rs`)
//! on tikv/raft-rs 0.7: three voters in one process and one thread, on
//! raft-rs's `MemStorage`, messages delivered in memory, node 1 elected
//! before measuring; pipelined bursts of 256 proposals of 128 bytes, or
//! one at a time until applied on the leader. `batch_append` is on.
//!
//! Usage: `raft-rs-w1 <pipelined|sequential> <proposals>`; with 0 it only
//! builds the cluster, the baseline to subtract from a callgrind total.

use raft::prelude::{Entry, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    applied: Vec<u64>,
}

impl Cluster {
    fn new() -> Cluster {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let nodes = (1..=3u64)
            .map(|id| {
                let cfg = Config {
                    id,
                    election_tick: 10,
                    heartbeat_tick: 1,
                    max_size_per_msg: 1024 * 1024,
                    max_inflight_msgs: 256,
                    batch_append: true,
                    ..Default::default()
                };
                let store = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
                RawNode::new(&cfg, store, &logger).expect("valid config")
            })
            .collect();
        let mut c = Cluster {
            nodes,
            applied: vec![0; 3],
        };
        c.nodes[0].campaign().expect("campaign");
        c.run_until(|c| c.nodes[0].raft.state == StateRole::Leader && c.all_applied(c.last()));
        c
    }

    fn last(&self) -> u64 {
        self.nodes[0].raft.raft_log.last_index()
    }

    fn all_applied(&self, index: u64) -> bool {
        self.applied.iter().all(|&a| a >= index)
    }

    fn run_until(&mut self, done: impl Fn(&Cluster) -> bool) {
        let mut idle = 0;
        while !done(self) {
            if self.round() {
                idle = 0;
            } else {
                idle += 1;
                assert!(idle < 3, "raft-rs W1 cluster stalled");
            }
        }
    }

    fn deliver(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = (m.to - 1) as usize;
            self.nodes[to].step(m).expect("step");
        }
    }

    fn note_applied(&mut self, i: usize, ents: &[Entry]) {
        if let Some(e) = ents.last() {
            self.applied[i] = e.index;
        }
    }

    fn round(&mut self) -> bool {
        let mut busy = false;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].has_ready() {
                continue;
            }
            busy = true;
            let mut rd = self.nodes[i].ready();
            let msgs = rd.take_messages();
            self.deliver(msgs);
            let committed = rd.take_committed_entries();
            self.note_applied(i, &committed);
            let store = self.nodes[i].raft.raft_log.store.clone();
            if !rd.entries().is_empty() {
                store.wl().append(rd.entries()).expect("append");
            }
            if let Some(hs) = rd.hs() {
                store.wl().set_hardstate(hs.clone());
            }
            let persisted = rd.take_persisted_messages();
            self.deliver(persisted);
            let mut light = self.nodes[i].advance(rd);
            if let Some(commit) = light.commit_index() {
                store.wl().mut_hard_state().commit = commit;
            }
            let msgs = light.take_messages();
            self.deliver(msgs);
            let committed = light.take_committed_entries();
            self.note_applied(i, &committed);
            self.nodes[i].advance_apply();
        }
        busy
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: raft-rs-w1 <pipelined|sequential> <proposals>";
    let mode = args.get(1).map(String::as_str).unwrap_or_else(|| panic!("{usage}"));
    let n: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{usage}"));
    let payload = vec![0xABu8; 128];
    let mut c = Cluster::new();
    let start = std::time::Instant::now();
    match mode {
        "pipelined" => {
            let mut left = n;
            while left > 0 {
                let burst = left.min(256);
                for _ in 0..burst {
                    c.nodes[0].propose(vec![], payload.clone()).expect("propose");
                }
                left -= burst;
                let target = c.last();
                c.run_until(|c| c.all_applied(target));
            }
        }
        "sequential" => {
            for _ in 0..n {
                c.nodes[0].propose(vec![], payload.clone()).expect("propose");
                let target = c.last();
                c.run_until(|c| c.applied[0] >= target);
            }
        }
        _ => panic!("{usage}"),
    }
    let secs = start.elapsed().as_secs_f64();
    println!("raft-rs {mode}: {n} proposals in {secs:.3}s, {:.0} proposals/s", n as f64 / secs);
}
