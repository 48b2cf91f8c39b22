//! One simulated server: a `RawNode` on a `MemoryStorage` that stands for
//! its disk, the KV state machine, and the client requests it is serving.
//!
//! A `Ready` is handled in two halves, so the disk takes time: `start_write`
//! takes the Ready and returns the messages that may leave at once (a
//! leader's appends go out while it writes, §10.2.1); `finish_write`, when
//! the disk is done, makes the Ready durable, returns the messages that
//! had to wait for it, applies committed entries and calls `advance`. A
//! crash in between loses the write, and everything else not on the disk:
//! the state machine is rebuilt on restart from the snapshot and the log.

use crate::disk::{self, Life};
use crate::invariants::{Invariants, Violation};
use crate::kv::{self, KvStore, Op, Reply};
use bytes::Bytes;
use rudder_raft::{
    ConfChangeType, ConfState, Config, MemoryStorage, Message, Outcome, Proposed, RawNode, Ready,
    StateRole, Storage,
};
use std::collections::HashMap;

/// How a request ended at this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The state machine's reply: the request took effect (or read).
    Done(Reply),
    /// Certainly not applied, and never will be; `leader` is a hint.
    Refused { leader: u64 },
}

/// When the log is longer than this past the last snapshot, a node takes a
/// snapshot and compacts, so slow followers need snapshots to catch up.
pub const COMPACT_AFTER: u64 = 64;
/// Entries kept below the snapshot for followers a little behind.
pub const KEEP_AFTER_COMPACT: u64 = 8;

/// A simulated server.
pub struct SimNode {
    /// The node's ID.
    pub id: u64,
    config: Config,
    /// Running, or down with only the disk left.
    life: Life,
    /// The Ready being written.
    write: Option<Ready>,
    /// The replicated state, as of `applied`.
    pub kv: KvStore,
    /// The last index applied to `kv` (the core's own `applied` moves to a
    /// snapshot as soon as it is received, before the state machine has
    /// it).
    applied: u64,
    conf_state: ConfState,
    /// Proposals this node appended as leader: `(index, term)` → request.
    proposals: HashMap<(u64, u64), u64>,
    /// Reads waiting for their ReadState: request → key.
    reads: HashMap<u64, String>,
    /// Reads waiting for their index to be applied: (index, request, key).
    ready_reads: Vec<(u64, u64, String)>,
    /// Answers for the simulation to pass to clients.
    pub answers: Vec<(u64, Answer)>,
    /// Commands applied since the simulation last took them: request and
    /// reply, whoever proposed them.
    pub effects: Vec<(u64, Reply)>,
    /// How many times the node was (re)started, to vary its seed.
    starts: u64,
    /// A member was added: snapshot at once, so that a snapshot sent to it
    /// names it in its configuration (it would ignore one that does not).
    snapshot_now: bool,
}

impl SimNode {
    /// A founding member of a cluster of `peers`, on an empty disk.
    pub fn bootstrap(config: Config, peers: &[u64]) -> SimNode {
        let raw = RawNode::bootstrap(&config, MemoryStorage::new(), peers)
            .expect("invariant broken: bootstrap on an empty storage failed");
        SimNode::with(config, raw)
    }

    /// A node that is not a member yet, on an empty disk: it learns its
    /// membership from a leader once added.
    pub fn joining(config: Config) -> SimNode {
        let raw = RawNode::new(&config, MemoryStorage::new())
            .expect("invariant broken: a node on an empty storage failed to start");
        SimNode::with(config, raw)
    }

    fn with(config: Config, raw: RawNode<MemoryStorage>) -> SimNode {
        SimNode {
            id: config.id,
            config,
            life: Life::up(raw),
            write: None,
            kv: KvStore::default(),
            applied: 0,
            conf_state: ConfState::default(),
            proposals: HashMap::new(),
            reads: HashMap::new(),
            ready_reads: Vec::new(),
            answers: Vec::new(),
            effects: Vec::new(),
            starts: 1,
            snapshot_now: false,
        }
    }

    /// The running node, or `None` while it is down.
    pub fn raw(&self) -> Option<&RawNode<MemoryStorage>> {
        self.life.raw()
    }

    /// The running node, mutably.
    pub fn raw_mut(&mut self) -> Option<&mut RawNode<MemoryStorage>> {
        self.life.raw_mut()
    }

    /// What is on the node's disk, up or down.
    pub fn disk(&self) -> &MemoryStorage {
        self.life.disk()
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.life.is_up()
    }

    /// Whether a Ready is being written.
    pub fn is_writing(&self) -> bool {
        self.write.is_some()
    }

    /// The leader this node knows of (0: none, or down).
    pub fn leader_hint(&self) -> u64 {
        self.life.raw().map_or(0, |r| r.raft().lead)
    }

    /// The last index applied to the state machine.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The configuration this node applied last.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Crashes the node: the write in progress, the state machine and the
    /// requests it served are lost; the disk stays.
    pub fn crash(&mut self) {
        self.life.crash();
        self.write = None;
        self.kv = KvStore::default();
        self.applied = 0;
        self.conf_state = ConfState::default();
        self.proposals.clear();
        self.reads.clear();
        self.ready_reads.clear();
    }

    /// Restarts a crashed node from its disk. The state machine starts
    /// from the disk's snapshot; later committed entries are applied again.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.life.is_up() {
            return Ok(());
        }
        let snap = self.life.disk().snapshot(0).map_err(|e| e.to_string())?;
        self.kv = KvStore::restore(&snap.data).map_err(|e| format!("snapshot data: {e}"))?;
        self.conf_state = snap.conf_state();
        self.applied = snap.index();
        self.starts += 1;
        let mut config = self.config.clone();
        config.seed = self.config.seed.wrapping_mul(31).wrapping_add(self.starts);
        // The snapshot already holds what was applied up to its index; the
        // log may reach back further (compaction keeps a tail).
        config.applied = snap.index();
        self.life
            .restart(&config)
            .map_err(|e| format!("restart failed: {e}"))
    }

    /// Serves a client request: writes are proposed (on the leader only),
    /// reads go through ReadIndex (on any node that knows a leader).
    pub fn submit(&mut self, request: u64, op: &Op) {
        let Some(raw) = self.life.raw_mut() else {
            return;
        };
        let leader = raw.raft().lead;
        if let Op::Get { key } = op {
            match raw.read_index(Bytes::copy_from_slice(&request.to_be_bytes())) {
                Ok(()) => {
                    self.reads.insert(request, key.clone());
                }
                Err(_) => self.answers.push((request, Answer::Refused { leader })),
            }
            return;
        }
        if raw.raft().state != StateRole::Leader {
            self.answers.push((request, Answer::Refused { leader }));
            return;
        }
        match raw.propose(kv::encode(request, op)) {
            Ok(Proposed::Appended { index, term }) => {
                self.proposals.insert((index, term), request);
            }
            Ok(Proposed::Forwarded { .. }) | Err(_) => {
                self.answers.push((request, Answer::Refused { leader }));
            }
        }
    }

    /// Takes the next Ready if the disk is free; returns the messages that
    /// may be sent before it is durable.
    pub fn start_write(&mut self, inv: &Invariants) -> Result<Vec<Message>, Violation> {
        let Some(raw) = self.life.raw_mut() else {
            return Ok(Vec::new());
        };
        if self.write.is_some() || !raw.has_ready() {
            return Ok(Vec::new());
        }
        let mut rd = raw.ready();
        for e in &rd.entries {
            inv.on_leader_append(raw, e)?;
        }
        for rs in rd.read_states.drain(..) {
            let Ok(bytes) = <[u8; 8]>::try_from(&rs.request_ctx[..]) else {
                continue;
            };
            let request = u64::from_be_bytes(bytes);
            if let Some(key) = self.reads.remove(&request) {
                self.ready_reads.push((rs.index, request, key));
            }
        }
        let now = std::mem::take(&mut rd.messages);
        for m in &now {
            inv.on_send(self.id, raw.storage(), m)?;
        }
        self.write = Some(rd);
        Ok(now)
    }

    /// The disk finished the write: persists it, returns the messages that
    /// waited for it, applies committed entries and advances.
    pub fn finish_write(&mut self, inv: &mut Invariants) -> Result<Vec<Message>, Violation> {
        let (Some(raw), Some(mut rd)) = (self.life.raw_mut(), self.write.take()) else {
            return Ok(Vec::new());
        };
        let id = self.id;
        let storage = raw.storage_mut();
        let snapshot = rd.snapshot.as_ref().map(|s| (s.index(), s.term()));
        if let Some(snap) = rd.snapshot.take() {
            self.kv = KvStore::restore(&snap.data).map_err(|e| Violation {
                property: "snapshot data decodes",
                node: id,
                detail: e.to_string(),
            })?;
            self.conf_state = snap.conf_state();
            self.applied = snap.index();
            storage
                .apply_snapshot(*snap)
                .map_err(|e| disk::contract(id, e))?;
        }
        storage
            .append(&rd.entries)
            .map_err(|e| disk::contract(id, e))?;
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs);
        }
        inv.on_persist(id, raw.storage(), &rd.entries, snapshot)?;
        let later = std::mem::take(&mut rd.persisted_messages);
        for m in &later {
            inv.on_send(id, raw.storage(), m)?;
        }
        for e in std::mem::take(&mut rd.committed_entries) {
            inv.on_apply(id, &e)?;
            self.apply(&e)?;
        }
        for o in std::mem::take(&mut rd.proposal_outcomes) {
            if o.outcome != Outcome::Superseded {
                continue;
            }
            for index in o.indexes() {
                if let Some(request) = self.proposals.remove(&(index, o.term)) {
                    let leader = self.leader_hint();
                    self.answers.push((request, Answer::Refused { leader }));
                }
            }
        }
        let raw = self.life.raw_mut().expect("checked above");
        raw.advance(rd);
        self.answer_reads();
        self.maybe_compact()?;
        Ok(later)
    }

    /// Applies one committed entry to the state machine (or the
    /// configuration) and answers the request that proposed it here.
    fn apply(&mut self, e: &rudder_raft::Entry) -> Result<(), Violation> {
        let raw = self.life.raw_mut().expect("apply runs on a running node");
        self.applied = e.index;
        if let Some((cc, cs)) = disk::apply_conf_change(raw, e)? {
            self.conf_state = cs;
            let adds = |t: ConfChangeType| {
                t == ConfChangeType::AddNode || t == ConfChangeType::AddLearnerNode
            };
            self.snapshot_now |= cc
                .changes
                .iter()
                .any(|c| ConfChangeType::try_from(c.change_type).is_ok_and(adds));
            return Ok(());
        }
        let Some((request, op)) = kv::decode(&e.data) else {
            return Ok(());
        };
        let reply = self.kv.apply(&op);
        if self.proposals.remove(&(e.index, e.term)) == Some(request) {
            self.answers.push((request, Answer::Done(reply.clone())));
        }
        self.effects.push((request, reply));
        Ok(())
    }

    /// Answers the reads whose index is applied.
    fn answer_reads(&mut self) {
        let applied = self.applied;
        let kv = &self.kv;
        let answers = &mut self.answers;
        self.ready_reads.retain(|(index, request, key)| {
            if *index > applied {
                return true;
            }
            answers.push((*request, Answer::Done(Reply::Value(kv.get(key)))));
            false
        });
    }

    /// Snapshots the state machine once a member was added, and compacts
    /// the log once it grew `COMPACT_AFTER` entries past the last snapshot.
    fn maybe_compact(&mut self) -> Result<(), Violation> {
        let raw = self
            .life
            .raw_mut()
            .expect("compaction runs on a running node");
        let applied = self.applied;
        let first = raw.storage().first_index().unwrap_or(1);
        let compact = applied >= first + COMPACT_AFTER;
        let snapshotted = raw.storage().snapshot(0).map_or(0, |s| s.index());
        if !(compact || self.snapshot_now) || applied <= snapshotted {
            return Ok(());
        }
        self.snapshot_now = false;
        let data = self.kv.snapshot();
        let id = self.id;
        let storage = raw.storage_mut();
        storage
            .create_snapshot(applied, Some(self.conf_state.clone()), data)
            .map_err(|e| disk::contract(id, e))?;
        if compact {
            storage
                .compact(applied - KEEP_AFTER_COMPACT)
                .map_err(|e| disk::contract(id, e))?;
        }
        Ok(())
    }
}
