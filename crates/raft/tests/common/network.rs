#![allow(dead_code)] // Each test binary uses a different part of the helper.

//! A small in-memory cluster for the core's tests: every node runs the
//! Ready loop on a `MemoryStorage`, and messages travel through one queue
//! that tests can filter (isolate a node, cut a link, drop a type).

use bytes::Bytes;
use prost::Message as _;
use rudder_raft::tracker::Progress;
use rudder_raft::{
    ConfChange, ConfChangeV2, ConfState, Config, Entry, EntryType, MemoryStorage, Message,
    MessageType, ProposalOutcome, RawNode, ReadState, StateRole,
};
use std::collections::{BTreeMap, HashSet, VecDeque};

/// One node of the test cluster.
pub struct TestNode {
    pub raw: RawNode<MemoryStorage>,
    /// Payloads of applied normal entries, in order (empty entries skipped).
    pub applied: Vec<Bytes>,
    /// Every applied entry's (index, term).
    pub applied_ids: Vec<(u64, u64)>,
    /// Read states handed out.
    pub read_states: Vec<ReadState>,
    /// Proposal outcomes handed out, in the order of the `Ready`s.
    pub outcomes: Vec<ProposalOutcome>,
    pub config: Config,
}

/// A cluster and the messages in flight between its nodes.
pub struct Network {
    pub nodes: BTreeMap<u64, TestNode>,
    pub queue: VecDeque<Message>,
    /// Links `from -> to` that lose every message.
    cut: HashSet<(u64, u64)>,
    /// Nodes that neither send nor receive.
    isolated: HashSet<u64>,
    /// Message types that are dropped on the wire.
    dropped_types: HashSet<MessageType>,
    /// Every message that crossed the wire (delivered or dropped).
    pub sent: Vec<Message>,
}

/// The test default: no pre-vote, no check-quorum, election after 10 ticks,
/// heartbeat every tick, seeded by ID.
pub fn test_config(id: u64) -> Config {
    let mut c = Config::new(id);
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

impl Network {
    /// Voters `1..=n` with the test defaults.
    pub fn new(n: u64) -> Network {
        Network::with_config(n, |_| {})
    }

    /// Voters `1..=n`, each config adjusted by `f`.
    pub fn with_config(n: u64, f: impl Fn(&mut Config)) -> Network {
        let ids: Vec<u64> = (1..=n).collect();
        Network::with_storages(
            ids.iter()
                .map(|&id| {
                    let mut c = test_config(id);
                    f(&mut c);
                    (
                        c,
                        MemoryStorage::new_with_conf_state(ConfState::with_voters(ids.clone())),
                    )
                })
                .collect(),
        )
    }

    /// Nodes from explicit configs and storages.
    pub fn with_storages(nodes: Vec<(Config, MemoryStorage)>) -> Network {
        let mut net = Network {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: HashSet::new(),
            isolated: HashSet::new(),
            dropped_types: HashSet::new(),
            sent: Vec::new(),
        };
        for (config, storage) in nodes {
            net.add(config, storage);
        }
        net
    }

    /// Adds (or replaces) a node.
    pub fn add(&mut self, config: Config, storage: MemoryStorage) {
        let raw = RawNode::new(&config, storage).expect("valid test node");
        let id = config.id;
        self.nodes.insert(
            id,
            TestNode {
                raw,
                applied: Vec::new(),
                applied_ids: Vec::new(),
                read_states: Vec::new(),
                outcomes: Vec::new(),
                config,
            },
        );
    }

    pub fn node(&self, id: u64) -> &RawNode<MemoryStorage> {
        &self.nodes[&id].raw
    }

    pub fn node_mut(&mut self, id: u64) -> &mut RawNode<MemoryStorage> {
        &mut self.nodes.get_mut(&id).expect("node exists").raw
    }

    pub fn state(&self, id: u64) -> StateRole {
        self.node(id).raft().state
    }

    pub fn term(&self, id: u64) -> u64 {
        self.node(id).raft().term
    }

    /// The leader of the highest term among nodes that think they lead.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raw.raft().state == StateRole::Leader)
            .max_by_key(|(_, n)| n.raw.raft().term)
            .map(|(&id, _)| id)
    }

    pub fn isolate(&mut self, id: u64) {
        self.isolated.insert(id);
    }

    pub fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    pub fn drop_type(&mut self, t: MessageType) {
        self.dropped_types.insert(t);
    }

    /// Heals every fault.
    pub fn recover(&mut self) {
        self.cut.clear();
        self.isolated.clear();
        self.dropped_types.clear();
    }

    fn lost(&self, m: &Message) -> bool {
        self.isolated.contains(&m.from)
            || self.isolated.contains(&m.to)
            || self.cut.contains(&(m.from, m.to))
            || m.kind().is_some_and(|k| self.dropped_types.contains(&k))
            || !self.nodes.contains_key(&m.to)
    }

    /// Runs one node's Ready loop until it has nothing to do: persist,
    /// queue messages, apply, advance.
    pub fn process(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        for round in 0.. {
            if !node.raw.has_ready() {
                break;
            }
            assert!(
                round < 1000,
                "node {id}: has_ready stays true but ready hands out nothing new"
            );
            let mut rd = node.raw.ready();
            let mut out: Vec<Message> = rd.messages.drain(..).collect();
            if let Some(snap) = rd.snapshot.clone() {
                node.raw
                    .storage_mut()
                    .apply_snapshot(*snap)
                    .expect("snapshot applies");
            }
            node.raw
                .storage_mut()
                .append(&rd.entries)
                .expect("entries append");
            if let Some(hs) = rd.hard_state {
                node.raw.storage_mut().set_hard_state(hs);
            }
            out.append(&mut rd.persisted_messages);
            if let Some(snap) = &rd.snapshot {
                node.applied_ids.push((snap.index(), snap.term()));
            }
            for e in rd.committed_entries.drain(..) {
                node.applied_ids.push((e.index, e.term));
                match e.kind() {
                    EntryType::EntryNormal => {
                        if !e.data.is_empty() {
                            node.applied.push(e.data.clone());
                        }
                    }
                    EntryType::EntryConfChange => {
                        let cc = ConfChange::decode(e.data.clone()).expect("conf change decodes");
                        let cs = node
                            .raw
                            .apply_conf_change(&cc.into_v2())
                            .expect("conf change applies");
                        node.raw.storage_mut().set_conf_state(cs);
                    }
                    EntryType::EntryConfChangeV2 => {
                        let cc = ConfChangeV2::decode(e.data.clone()).expect("conf change decodes");
                        let cs = node
                            .raw
                            .apply_conf_change(&cc)
                            .expect("conf change applies");
                        node.raw.storage_mut().set_conf_state(cs);
                    }
                }
            }
            node.read_states.append(&mut rd.read_states);
            node.outcomes.append(&mut rd.proposal_outcomes);
            node.raw.advance(rd);
            self.queue.extend(out);
        }
    }

    /// Delivers everything in flight, and everything that causes, until
    /// the cluster is quiet.
    pub fn stabilize(&mut self) {
        loop {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in ids {
                self.process(id);
            }
            if self.queue.is_empty() {
                return;
            }
            self.deliver_all_once();
        }
    }

    /// Delivers the messages in flight now (not the ones they cause).
    pub fn deliver_all_once(&mut self) {
        let batch: Vec<Message> = self.queue.drain(..).collect();
        for m in batch {
            self.deliver(m);
        }
    }

    /// Delivers one message unless a fault loses it.
    pub fn deliver(&mut self, m: Message) {
        self.sent.push(m.clone());
        if self.lost(&m) {
            return;
        }
        let to = m.to;
        // Errors (e.g. a proposal dropped at a node without a leader) are
        // part of what tests observe through state, not failures here.
        let _ = self.node_mut(to).step(m);
    }

    /// Delivers everything in flight and everything it causes, except the
    /// messages `hold` picks out, which are returned undelivered.
    pub fn deliver_holding(
        &mut self,
        mut hold: impl FnMut(&Network, &Message) -> bool,
    ) -> Vec<Message> {
        let mut held = Vec::new();
        loop {
            let batch = self.take_queue();
            if batch.is_empty() {
                return held;
            }
            for m in batch {
                if hold(self, &m) {
                    held.push(m);
                } else {
                    self.deliver(m);
                }
            }
        }
    }

    /// The leader's view of `peer`'s progress.
    pub fn progress(&self, leader: u64, peer: u64) -> Progress {
        self.node(leader)
            .status()
            .progress
            .into_iter()
            .find(|(id, _)| *id == peer)
            .map(|(_, p)| p)
            .unwrap_or_else(|| {
                panic!("node {leader} has no progress for {peer} (is it the leader?)")
            })
    }

    /// Takes the messages in flight out of the network, for tests that
    /// deliver them by hand.
    pub fn take_queue(&mut self) -> Vec<Message> {
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.process(id);
        }
        self.queue.drain(..).collect()
    }

    pub fn campaign(&mut self, id: u64) {
        self.node_mut(id).campaign();
        self.stabilize();
    }

    pub fn propose(
        &mut self,
        id: u64,
        data: &'static [u8],
    ) -> rudder_raft::Result<rudder_raft::Proposed> {
        let r = self.node_mut(id).propose(Bytes::from_static(data));
        self.stabilize();
        r
    }

    /// Ticks one node `n` times, processing and delivering after each.
    pub fn tick(&mut self, id: u64, n: usize) {
        for _ in 0..n {
            self.node_mut(id).tick();
            self.stabilize();
        }
    }

    /// Ticks every node `n` times.
    pub fn tick_all(&mut self, n: usize) {
        for _ in 0..n {
            for id in self.nodes.keys().copied().collect::<Vec<_>>() {
                self.node_mut(id).tick();
            }
            self.stabilize();
        }
    }

    pub fn committed(&self, id: u64) -> u64 {
        self.node(id).raft().log.committed()
    }

    pub fn last_index(&self, id: u64) -> u64 {
        self.node(id).raft().log.last_index()
    }

    /// The whole log of a node (index, term) from its first index.
    pub fn log_ids(&self, id: u64) -> Vec<(u64, u64)> {
        let r = self.node(id).raft();
        let mut out = Vec::new();
        let first = r.log.first_index();
        r.log
            .slice(first, r.log.last_index() + 1, u64::MAX, &mut out)
            .unwrap();
        out.iter().map(|e| (e.index, e.term)).collect()
    }

    /// Asserts that each of `ids` applied exactly `want`, in order.
    pub fn assert_applied(
        &self,
        ids: impl IntoIterator<Item = u64>,
        want: &[&'static [u8]],
        context: &str,
    ) {
        let want = payloads(want);
        for id in ids {
            assert_eq!(
                self.nodes[&id].applied, want,
                "node {id} applied ({context})"
            );
        }
    }

    /// Messages of `kind` that crossed the wire.
    pub fn sent_of(&self, kind: MessageType) -> Vec<&Message> {
        self.sent
            .iter()
            .filter(|m| m.kind() == Some(kind))
            .collect()
    }
}

/// Payloads as the cluster records them, from byte-string literals.
pub fn payloads(items: &[&'static [u8]]) -> Vec<Bytes> {
    items.iter().map(|b| Bytes::from_static(b)).collect()
}

/// Entries with the given terms at indexes 1, 2, ...
pub fn entries_with_terms(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry::new(t, i as u64 + 1, Bytes::new()))
        .collect()
}

/// A storage for voters `voters` holding a log with these terms and a hard
/// state at the last term.
pub fn storage_with_log(voters: &[u64], terms: &[u64]) -> MemoryStorage {
    let mut s = MemoryStorage::new_with_conf_state(ConfState::with_voters(voters.iter().copied()));
    s.append(&entries_with_terms(terms)).unwrap();
    let term = terms.last().copied().unwrap_or(0);
    s.set_hard_state(rudder_raft::HardState {
        term,
        vote: 0,
        commit: 0,
    });
    s
}
