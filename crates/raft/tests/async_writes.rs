//! Asynchronous storage writes (`Config::async_storage_writes`): the work
//! of each Ready goes to local append and apply workers as messages, and
//! their responses are stepped back when each finishes.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rudder_raft::storage_writes::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use rudder_raft::{
    ConfState, Config, Entry, MemoryStorage, Message, MessageType, RawNode, StateRole, Storage,
};
use std::collections::VecDeque;

/// One node with its two workers' queues.
struct Node {
    raw: RawNode<MemoryStorage>,
    appends: VecDeque<Message>,
    applies: VecDeque<Message>,
    applied: Vec<(u64, u64, Bytes)>,
}

/// Nodes 1..=n with asynchronous writes, and the network between them.
struct Cluster {
    nodes: Vec<Node>,
    wire: VecDeque<Message>,
}

fn async_config(id: u64) -> Config {
    let mut c = Config::new(id);
    c.async_storage_writes = true;
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let voters = ConfState::with_voters(1..=n);
        let nodes = (1..=n)
            .map(|id| Node {
                raw: RawNode::new(
                    &async_config(id),
                    MemoryStorage::new_with_conf_state(voters.clone()),
                )
                .unwrap(),
                appends: VecDeque::new(),
                applies: VecDeque::new(),
                applied: Vec::new(),
            })
            .collect();
        Cluster {
            nodes,
            wire: VecDeque::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Takes every Ready of `id`, queueing worker messages and network
    /// messages. No `advance`: this mode has none.
    fn collect(&mut self, id: u64) {
        let node = self.node(id);
        let mut out = Vec::new();
        for round in 0.. {
            if !node.raw.has_ready() {
                break;
            }
            assert!(
                round < 1000,
                "has_ready stays true but ready hands out nothing new"
            );
            let mut rd = node.raw.ready();
            assert!(
                rd.entries.is_empty() && rd.committed_entries.is_empty(),
                "async mode hands entries to the workers, not in Ready fields"
            );
            assert!(
                rd.persisted_messages.is_empty(),
                "acks ride in the append's responses"
            );
            for m in rd.messages.drain(..) {
                match m.to {
                    LOCAL_APPEND_THREAD => node.appends.push_back(m),
                    LOCAL_APPLY_THREAD => node.applies.push_back(m),
                    _ => out.push(m),
                }
            }
        }
        self.wire.extend(out);
    }

    /// Finishes `id`'s oldest append: persist, then deliver responses.
    fn finish_append(&mut self, id: u64) -> bool {
        let node = self.node(id);
        let Some(m) = node.appends.pop_front() else {
            return false;
        };
        node.raw.storage_mut().persist_append(&m).unwrap();
        self.deliver_responses(id, m.responses);
        true
    }

    /// Finishes `id`'s oldest apply: apply, then deliver responses.
    fn finish_apply(&mut self, id: u64) -> bool {
        let node = self.node(id);
        let Some(m) = node.applies.pop_front() else {
            return false;
        };
        for e in &m.entries {
            if !e.data.is_empty() {
                node.applied.push((e.index, e.term, e.data.clone()));
            }
        }
        self.deliver_responses(id, m.responses);
        true
    }

    fn deliver_responses(&mut self, id: u64, responses: Vec<Message>) {
        for r in responses {
            if r.to == id {
                self.node(id)
                    .raw
                    .step(r)
                    .expect("own write's response is accepted");
            } else {
                self.wire.push_back(r);
            }
        }
    }

    /// Delivers one message from the wire (in order).
    fn deliver_one(&mut self) -> bool {
        let Some(m) = self.wire.pop_front() else {
            return false;
        };
        let to = m.to;
        let _ = self.node(to).raw.step(m);
        true
    }

    fn ids(&self) -> Vec<u64> {
        (1..=self.nodes.len() as u64).collect()
    }

    /// Runs until nothing is left to do, picking among pending work at
    /// random (workers finish in any interleaving with each other and the
    /// network).
    fn run_random(&mut self, rng: &mut SmallRng) {
        loop {
            for id in self.ids() {
                self.collect(id);
            }
            let mut choices: Vec<(u8, u64)> = Vec::new();
            if !self.wire.is_empty() {
                choices.push((0, 0));
            }
            for id in self.ids() {
                if !self.node(id).appends.is_empty() {
                    choices.push((1, id));
                }
                if !self.node(id).applies.is_empty() {
                    choices.push((2, id));
                }
            }
            if choices.is_empty() {
                return;
            }
            match choices[rng.random_range(0..choices.len())] {
                (0, _) => self.deliver_one(),
                (1, id) => self.finish_append(id),
                (_, id) => self.finish_apply(id),
            };
        }
    }
}

fn seeds() -> Vec<u64> {
    (0..40).collect()
}

/// With workers that finish in random interleavings (several writes under
/// way, applies overtaking appends of later Readys), every node applies
/// the same entries in the same order, and everything proposed is applied.
#[test]
fn random_worker_interleavings_apply_the_same_log_everywhere() {
    for seed in seeds() {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut c = Cluster::new(3);
        c.node(1).raw.campaign();
        c.run_random(&mut rng);
        assert_eq!(c.node(1).raw.raft().state, StateRole::Leader, "seed {seed}");
        let mut proposed = Vec::new();
        for round in 0..10u64 {
            for k in 0..(1 + rng.random_range(0..5u64)) {
                let data = Bytes::from(format!("{round}-{k}"));
                c.node(1).raw.propose(data.clone()).unwrap();
                proposed.push(data);
            }
            // Let some work happen between bursts, not all of it.
            for _ in 0..rng.random_range(0..20) {
                c.collect(1);
                if !c.deliver_one() {
                    let id = 1 + rng.random_range(0..3u64);
                    let _ = c.finish_append(id) || c.finish_apply(id);
                }
            }
        }
        c.run_random(&mut rng);
        for id in 1..=3 {
            let got: Vec<Bytes> = c.node(id).applied.iter().map(|a| a.2.clone()).collect();
            assert_eq!(
                got, proposed,
                "seed {seed}: node {id} applied everything, in order"
            );
            assert_eq!(
                c.node(id)
                    .raw
                    .storage()
                    .last_index()
                    .map_err(|e| e.to_string()),
                Ok(c.node(1).raw.raft().log.last_index()),
                "seed {seed}: node {id} persisted the whole log"
            );
            assert!(
                c.node(id)
                    .raw
                    .raft()
                    .log
                    .unstable()
                    .next_entries()
                    .is_empty(),
                "seed {seed}: node {id} has nothing left to write"
            );
        }
    }
}

/// The append/truncate race: a follower's append of entries from one
/// leader is still being written when a new leader replaces them. When the
/// old write finishes, the newer entries must not be taken as stable (they
/// are not on disk yet); they are written and applied afterwards.
#[test]
fn a_late_write_does_not_mark_replacing_entries_stable() {
    let voters = ConfState::with_voters([1, 2, 3]);
    let mut f = RawNode::new(&async_config(2), MemoryStorage::new_with_conf_state(voters)).unwrap();
    let app = |term: u64, prev: u64, prev_term: u64, entries: &[(u64, u64)], commit: u64| {
        let mut m = Message::new(MessageType::MsgApp, 1, 2);
        m.term = term;
        m.index = prev;
        m.log_term = prev_term;
        m.commit = commit;
        m.entries = entries
            .iter()
            .map(|&(i, t)| Entry::new(t, i, Bytes::from(format!("{i}@{t}"))))
            .collect();
        m
    };
    let take_append = |f: &mut RawNode<MemoryStorage>| -> Message {
        let mut rd = f.ready();
        let pos = rd
            .messages
            .iter()
            .position(|m| m.to == LOCAL_APPEND_THREAD)
            .expect("an append for the workers");
        rd.messages.swap_remove(pos)
    };
    // Term 1 leader sends 1..=2; the write A is handed out, not finished.
    f.step(app(1, 0, 0, &[(1, 1), (2, 1)], 0)).unwrap();
    let a = take_append(&mut f);
    // A term 2 leader replaces entry 2 (and adds 3); write B handed out.
    let mut m = app(2, 1, 1, &[(2, 2), (3, 2)], 0);
    m.from = 3;
    f.step(m).unwrap();
    let b = take_append(&mut f);
    // Write A finishes: only A's entries are on disk.
    let persist = |f: &mut RawNode<MemoryStorage>, m: &Message| {
        f.storage_mut().append(&m.entries).unwrap();
        for r in &m.responses {
            if r.to == 2 {
                f.step(r.clone()).unwrap();
            }
        }
    };
    persist(&mut f, &a);
    assert_eq!(
        f.raft().log.unstable().next_entries().len() + b.entries.len(),
        2,
        "entries 2@2 and 3@2 are still B's (in flight), not stable"
    );
    assert!(
        f.raft().log.term(2) == Ok(2) && f.raft().log.last_index() == 3,
        "the log still reads the newer entries"
    );
    // B finishes: now they are stable, and storage holds them.
    persist(&mut f, &b);
    assert_eq!(
        f.storage().term(2),
        Ok(2),
        "storage holds the newer entry 2"
    );
    assert_eq!(f.storage().last_index(), Ok(3));
    assert!(
        f.raft().log.unstable().entries().is_empty(),
        "nothing unstable once B is done"
    );
}

/// Misuse is refused, never a panic: worker responses out of order, a
/// response with nothing under way, worker messages from the network, and
/// worker responses in synchronous mode.
#[test]
fn worker_responses_out_of_order_or_from_elsewhere_are_refused() {
    let mut c = Cluster::new(1);
    c.node(1).raw.campaign();
    c.collect(1);
    // Nothing finished yet: a made-up response is refused.
    let bogus = Message::new(MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD, 1);
    let mut wrong = bogus.clone();
    wrong.index = 99;
    wrong.log_term = 9;
    assert!(
        c.node(1).raw.step(wrong).is_err(),
        "a response for a write never handed out"
    );
    let mut from_peer = bogus.clone();
    from_peer.from = 2;
    assert!(
        c.node(1).raw.step(from_peer).is_err(),
        "worker responses only from the workers"
    );
    let apply = Message::new(MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD, 1);
    assert!(c.node(1).raw.step(apply).is_err(), "no apply under way");
    // The cluster still works afterwards.
    c.run_random(&mut SmallRng::seed_from_u64(1));
    assert_eq!(c.node(1).raw.raft().state, StateRole::Leader);

    let voters = ConfState::with_voters([1]);
    let mut sync =
        RawNode::new(&Config::new(1), MemoryStorage::new_with_conf_state(voters)).unwrap();
    assert!(
        sync.step(bogus).is_err(),
        "worker responses are refused without asynchronous writes"
    );
}
