//! Fuzzes the Raft core: a small cluster of `RawNode`s on `MemoryStorage`
//! driven by a fuzzer-chosen sequence of actions, with Raft's safety
//! properties checked after every one.
//!
//! The cluster is three founding members (1, 2, 3) and a fourth node (4)
//! that starts outside the cluster and can be added. Each node is the
//! simulator's `rudder_sim::node::SimNode` (a `RawNode` on a
//! `MemoryStorage` standing for its disk, Ready handled in two halves:
//! messages that may leave at once, then the durable write, the messages
//! that waited for it, applying, `advance`), and the properties are the
//! simulator's `rudder_sim::invariants::Invariants`: at most one leader
//! per term, log matching, leader completeness, committed entries never
//! change, `applied ≤ committed ≤ last`, persist before send, one
//! membership change at a time, commit on a quorum (of both halves when
//! joint).
//!
//! Two kinds of action, checked differently:
//!
//! - **Protocol-following** actions, after which every property above is
//!   checked: ticks; starting and finishing a node's disk write;
//!   delivering, dropping, duplicating and reordering the messages in
//!   flight; replaying any message sent earlier (a stale or duplicated
//!   delivery, which any network may make); proposals, ReadIndex reads,
//!   campaigns, membership changes (simple and joint, among nodes 1–4),
//!   leaving a joint state, leader transfers, forget-leader, unreachable
//!   and snapshot reports; crashes (the write in progress lost) and
//!   restarts from the disk.
//! - **Arbitrary messages** (`Inject`): a message built by the fuzzer —
//!   any type (local ones too), sender (also unknown or 0), term, index,
//!   commit, entries and snapshot — stepped into a node as if from a peer.
//!   Such a message can be a lie no real peer would tell (an append that
//!   claims a commit index past anything the sender could know, a
//!   snapshot of another history), after which the cluster-wide safety
//!   properties need not hold. So after the first one the run checks only
//!   what bad input must never break: no panic, on any later action, and
//!   on each node `applied ≤ committed ≤ last index`.
//!
//! Bad input from a peer must never panic the process: a panic in the
//! second kind is a bug as much as a broken property in the first.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rudder_raft::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Config, Entry,
    Message, MessageType, Snapshot, SnapshotMetadata, SnapshotStatus, Storage,
};
use rudder_sim::disk;
use rudder_sim::invariants::{Invariants, Violation};
use rudder_sim::kv::Op;
use rudder_sim::node::SimNode;

/// Node IDs are 1 to `NODES`; 1 to `FOUNDERS` found the cluster.
const NODES: u64 = 4;
const FOUNDERS: u64 = 3;
/// At most this many messages wait in flight, and this many are kept to
/// replay.
const MAX_IN_FLIGHT: usize = 256;
const MAX_HISTORY: usize = 512;

#[derive(Arbitrary, Debug)]
struct Input {
    pre_vote: bool,
    check_quorum: bool,
    lease_reads: bool,
    /// Small messages and windows, so flow control and splitting run.
    small_limits: bool,
    actions: Vec<Action>,
}

#[derive(Arbitrary, Debug)]
enum Action {
    Tick {
        node: u8,
    },
    TickAll,
    /// Ticks, handles Readies and delivers everything, `rounds` times: a
    /// quick way to an elected, replicating cluster.
    Run {
        rounds: u8,
    },
    StartWrite {
        node: u8,
    },
    FinishWrite {
        node: u8,
    },
    Deliver {
        k: u8,
    },
    DeliverAll,
    Drop {
        k: u8,
    },
    Duplicate {
        k: u8,
    },
    Swap {
        a: u8,
        b: u8,
    },
    Replay {
        k: u16,
    },
    Propose {
        node: u8,
        key: u8,
        value: u8,
    },
    Read {
        node: u8,
        key: u8,
    },
    Campaign {
        node: u8,
    },
    ConfChange {
        node: u8,
        changes: Vec<(u8, u8)>,
        transition: u8,
    },
    LeaveJoint {
        node: u8,
    },
    Transfer {
        node: u8,
        to: u8,
    },
    ForgetLeader {
        node: u8,
    },
    Unreachable {
        node: u8,
        peer: u8,
    },
    SnapshotReport {
        node: u8,
        peer: u8,
        ok: bool,
    },
    Crash {
        node: u8,
    },
    Restart {
        node: u8,
    },
    Inject {
        node: u8,
        msg: FuzzMessage,
    },
}

/// A number relative to the receiver's state (so it lands near what
/// matters), small, or anything at all.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Num {
    Rel(i8),
    Small(u8),
    Any(u64),
}

impl Num {
    fn at(self, base: u64) -> u64 {
        match self {
            Num::Rel(d) => base.saturating_add_signed(i64::from(d)),
            Num::Small(n) => u64::from(n),
            Num::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct FuzzEntry {
    kind: i32,
    term: Num,
    index: Num,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct FuzzSnapshot {
    index: Num,
    term: Num,
    voters: Vec<u8>,
    learners: Vec<u8>,
    voters_outgoing: Vec<u8>,
    learners_next: Vec<u8>,
    auto_leave: bool,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct FuzzMessage {
    /// Any value: known types, local ones, unknown ones.
    kind: i32,
    /// 0 to 4 (0: no sender), or another ID.
    from: u8,
    term: Num,
    log_term: Num,
    index: Num,
    commit: Num,
    entries: Vec<FuzzEntry>,
    snapshot: Option<FuzzSnapshot>,
    reject: bool,
    reject_hint: Num,
    context: Vec<u8>,
    responses: u8,
}

fuzz_target!(|input: Input| {
    let mut c = Cluster::new(&input);
    for action in &input.actions {
        if let Err(v) = c.act(action) {
            panic!("{v}\nafter {action:?}");
        }
    }
});

struct Cluster {
    nodes: Vec<SimNode>,
    in_flight: Vec<Message>,
    history: Vec<Message>,
    inv: Invariants,
    /// False once an arbitrary message was stepped: from then on only
    /// the local properties are checked.
    checking: bool,
    requests: u64,
}

fn config(input: &Input, id: u64) -> Config {
    let mut c = Config::new(id);
    c.pre_vote = input.pre_vote;
    c.check_quorum = input.check_quorum || input.lease_reads;
    if input.lease_reads {
        c.read_only_option = rudder_raft::ReadOnlyOption::LeaseBased;
    }
    if input.small_limits {
        c.max_size_per_msg = 64;
        c.max_inflight_msgs = 2;
        c.max_committed_size_per_ready = 128;
        c.max_uncommitted_entries_size = 1024;
    }
    c
}

fn id(n: u8) -> u64 {
    u64::from(n) % NODES + 1
}

impl Cluster {
    fn new(input: &Input) -> Cluster {
        let founders: Vec<u64> = (1..=FOUNDERS).collect();
        let mut nodes: Vec<SimNode> = founders
            .iter()
            .map(|&i| SimNode::bootstrap(config(input, i), &founders))
            .collect();
        nodes.push(SimNode::joining(config(input, NODES)));
        Cluster {
            nodes,
            in_flight: Vec::new(),
            history: Vec::new(),
            inv: Invariants::new(),
            checking: true,
            requests: 0,
        }
    }

    fn node(&mut self, id: u64) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    fn act(&mut self, action: &Action) -> Result<(), Violation> {
        match action {
            Action::Tick { node } => self.tick(id(*node)),
            Action::TickAll => {
                for i in 1..=NODES {
                    self.tick(i);
                }
            }
            Action::Run { rounds } => {
                for _ in 0..rounds % 32 {
                    for i in 1..=NODES {
                        self.tick(i);
                        self.finish_write(i)?;
                        self.start_write(i)?;
                    }
                    while !self.in_flight.is_empty() {
                        let m = self.in_flight.remove(0);
                        self.deliver(m)?;
                    }
                    self.check()?;
                }
            }
            Action::StartWrite { node } => self.start_write(id(*node))?,
            Action::FinishWrite { node } => self.finish_write(id(*node))?,
            Action::Deliver { k } => {
                if !self.in_flight.is_empty() {
                    let m = self
                        .in_flight
                        .remove(usize::from(*k) % self.in_flight.len());
                    self.deliver(m)?;
                }
            }
            Action::DeliverAll => {
                for m in std::mem::take(&mut self.in_flight) {
                    self.deliver(m)?;
                }
            }
            Action::Drop { k } => {
                if !self.in_flight.is_empty() {
                    let m = self
                        .in_flight
                        .remove(usize::from(*k) % self.in_flight.len());
                    if m.kind() == Some(MessageType::MsgSnap) {
                        self.report_snapshot(m.from, m.to, SnapshotStatus::Failure);
                    }
                }
            }
            Action::Duplicate { k } => {
                if !self.in_flight.is_empty() && self.in_flight.len() < MAX_IN_FLIGHT {
                    let m = self.in_flight[usize::from(*k) % self.in_flight.len()].clone();
                    self.in_flight.push(m);
                }
            }
            Action::Swap { a, b } => {
                let n = self.in_flight.len();
                if n > 1 {
                    self.in_flight
                        .swap(usize::from(*a) % n, usize::from(*b) % n);
                }
            }
            Action::Replay { k } => {
                if !self.history.is_empty() {
                    let m = self.history[usize::from(*k) % self.history.len()].clone();
                    self.deliver(m)?;
                }
            }
            Action::Propose { node, key, value } => {
                self.requests += 1;
                let op = Op::Put {
                    key: format!("k{}", key % 4),
                    value: format!("{value}"),
                };
                let request = self.requests;
                self.node(id(*node)).submit(request, &op);
            }
            Action::Read { node, key } => {
                self.requests += 1;
                let op = Op::Get {
                    key: format!("k{}", key % 4),
                };
                let request = self.requests;
                self.node(id(*node)).submit(request, &op);
            }
            Action::Campaign { node } => {
                if let Some(raw) = self.node(id(*node)).raw_mut() {
                    raw.campaign();
                }
            }
            Action::ConfChange {
                node,
                changes,
                transition,
            } => {
                let cc = ConfChangeV2 {
                    transition: i32::from(transition % 3),
                    changes: changes
                        .iter()
                        .take(4)
                        .map(|&(kind, who)| ConfChangeSingle {
                            change_type: match kind % 4 {
                                0 => ConfChangeType::AddNode,
                                1 => ConfChangeType::RemoveNode,
                                2 => ConfChangeType::UpdateNode,
                                _ => ConfChangeType::AddLearnerNode,
                            } as i32,
                            node_id: id(who),
                        })
                        .collect(),
                    context: Bytes::new(),
                };
                if let Some(raw) = self.node(id(*node)).raw_mut() {
                    // Refusals (a change pending, an invalid one) are the core's.
                    let _ = raw.propose_conf_change(&cc);
                }
            }
            Action::LeaveJoint { node } => {
                let cc = ConfChangeV2 {
                    transition: ConfChangeTransition::Auto as i32,
                    changes: Vec::new(),
                    context: Bytes::new(),
                };
                if let Some(raw) = self.node(id(*node)).raw_mut() {
                    let _ = raw.propose_conf_change(&cc);
                }
            }
            Action::Transfer { node, to } => {
                if let Some(raw) = self.node(id(*node)).raw_mut() {
                    let _ = raw.transfer_leader(id(*to));
                }
            }
            Action::ForgetLeader { node } => {
                if let Some(raw) = self.node(id(*node)).raw_mut() {
                    let _ = raw.forget_leader();
                }
            }
            Action::Unreachable { node, peer } => {
                if let Some(raw) = self.node(id(*node)).raw_mut() {
                    raw.report_unreachable(id(*peer));
                }
            }
            Action::SnapshotReport { node, peer, ok } => {
                let status = if *ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.report_snapshot(id(*node), id(*peer), status);
            }
            Action::Crash { node } => self.node(id(*node)).crash(),
            Action::Restart { node } => {
                let i = id(*node);
                if !self.node(i).is_up() {
                    if self.checking {
                        let disk = self.nodes[(i - 1) as usize].disk().clone();
                        self.inv.on_restart(i, &disk)?;
                    }
                    let restarted = self.node(i).restart();
                    if let (Err(detail), true) = (restarted, self.checking) {
                        return Err(Violation {
                            property: "a node restarts from its own disk",
                            node: i,
                            detail,
                        });
                    }
                }
            }
            Action::Inject { node, msg } => {
                let to = id(*node);
                if self.checking && self.node(to).is_up() {
                    // Disk writes under way finish first, under the checks,
                    // as they would have; from now on Readies are handled
                    // without the checker.
                    for i in 1..=NODES {
                        if self.nodes[(i - 1) as usize].is_writing() {
                            self.finish_write(i)?;
                        }
                    }
                    self.checking = false;
                }
                if let Some(raw) = self.node(to).raw_mut() {
                    let r = raw.raft();
                    let m = build(msg, to, r.term, r.log.last_index(), r.log.committed());
                    let _ = raw.step(m);
                }
            }
        }
        // Answers and effects are the simulator's clients' business.
        for n in &mut self.nodes {
            n.answers.clear();
            n.effects.clear();
        }
        self.check()
    }

    fn tick(&mut self, id: u64) {
        if let Some(raw) = self.node(id).raw_mut() {
            raw.tick();
        }
    }

    fn start_write(&mut self, id: u64) -> Result<(), Violation> {
        if !self.checking {
            return self.ready_unchecked(id);
        }
        let inv = &self.inv;
        let node = &mut self.nodes[(id - 1) as usize];
        let msgs = match node.start_write(inv) {
            Ok(msgs) => msgs,
            Err(v) if self.checking => return Err(v),
            Err(_) => Vec::new(),
        };
        self.send(msgs)
    }

    fn finish_write(&mut self, id: u64) -> Result<(), Violation> {
        if !self.checking {
            return self.ready_unchecked(id);
        }
        let node = &mut self.nodes[(id - 1) as usize];
        let msgs = match node.finish_write(&mut self.inv) {
            Ok(msgs) => msgs,
            Err(v) if self.checking => return Err(v),
            Err(_) => Vec::new(),
        };
        self.send(msgs)?;
        self.check_commit_quorum(id)
    }

    /// After arbitrary input: handles a node's Ready in one go, without
    /// the checker (whose facts may no longer hold, and which would size
    /// its tables by whatever index a made-up entry claims).
    fn ready_unchecked(&mut self, id: u64) -> Result<(), Violation> {
        let Some(raw) = self.nodes[(id - 1) as usize].raw_mut() else {
            return Ok(());
        };
        if !raw.has_ready() {
            return Ok(());
        }
        let mut rd = raw.ready();
        let mut out = std::mem::take(&mut rd.messages);
        let storage = raw.storage_mut();
        // The disk's refusals are fine here: only panics count.
        if let Some(snap) = rd.snapshot.take() {
            let _ = storage.apply_snapshot(*snap);
        }
        let _ = storage.append(&rd.entries);
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs);
        }
        out.append(&mut rd.persisted_messages);
        for e in std::mem::take(&mut rd.committed_entries) {
            let _ = disk::apply_conf_change(raw, &e);
        }
        raw.advance(rd);
        self.send(out)
    }

    /// Puts messages in flight; an acknowledgement is first checked
    /// against the leader it goes to.
    fn send(&mut self, msgs: Vec<Message>) -> Result<(), Violation> {
        for m in msgs {
            if !(1..=NODES).contains(&m.to) || !(1..=NODES).contains(&m.from) {
                continue;
            }
            if self.checking {
                let from = &self.nodes[(m.from - 1) as usize];
                if let Some(leader) = self.nodes[(m.to - 1) as usize].raw() {
                    self.inv.check_ack(m.from, from.disk(), leader, &m)?;
                }
            }
            if self.history.len() < MAX_HISTORY {
                self.history.push(m.clone());
            }
            if self.in_flight.len() < MAX_IN_FLIGHT {
                self.in_flight.push(m);
            } else if m.kind() == Some(MessageType::MsgSnap) {
                self.report_snapshot(m.from, m.to, SnapshotStatus::Failure);
            }
        }
        Ok(())
    }

    fn deliver(&mut self, m: Message) -> Result<(), Violation> {
        let (from, to) = (m.from, m.to);
        let snapshot = m.kind() == Some(MessageType::MsgSnap);
        let delivered = match self.node(to).raw_mut() {
            Some(raw) => {
                // Refusals (a stale or unknown sender) are the core's to make.
                let _ = raw.step(m);
                true
            }
            None => false,
        };
        if snapshot {
            let status = if delivered {
                SnapshotStatus::Finish
            } else {
                SnapshotStatus::Failure
            };
            self.report_snapshot(from, to, status);
        }
        self.check()?;
        self.check_commit_quorum(to)
    }

    fn report_snapshot(&mut self, from: u64, to: u64, status: SnapshotStatus) {
        if let Some(raw) = self.node(from).raw_mut() {
            raw.report_snapshot(to, status);
        }
    }

    fn check_commit_quorum(&mut self, id: u64) -> Result<(), Violation> {
        if !self.checking {
            return Ok(());
        }
        let nodes = &self.nodes;
        let Some(raw) = nodes[(id - 1) as usize].raw() else {
            return Ok(());
        };
        self.inv.check_commit_quorum(raw, |id, index, term| {
            (1..=NODES).contains(&id) && disk::holds(nodes[(id - 1) as usize].disk(), index, term)
        })
    }

    /// The properties after a step: all of them while the run follows the
    /// protocol, the local ones after an arbitrary message.
    fn check(&mut self) -> Result<(), Violation> {
        for n in &self.nodes {
            let Some(raw) = n.raw() else { continue };
            if self.checking {
                self.inv.check_node(raw)?;
            } else {
                let log = &raw.raft().log;
                let (applied, committed, last) = (log.applied(), log.committed(), log.last_index());
                if !(applied <= committed && committed <= last) {
                    return Err(Violation {
                        property: "applied ≤ committed ≤ last (after arbitrary input)",
                        node: n.id,
                        detail: format!("applied {applied}, committed {committed}, last {last}"),
                    });
                }
                // The storage answers for what the log says it holds.
                let _ = raw.storage().first_index();
            }
        }
        Ok(())
    }
}

fn ids(v: &[u8]) -> Vec<u64> {
    v.iter().take(6).map(|&n| u64::from(n % 8)).collect()
}

/// The fuzzer's message, relative to the receiver `to` (its term, last
/// index and commit index).
fn build(f: &FuzzMessage, to: u64, term: u64, last: u64, commit: u64) -> Message {
    let from = match f.from % 8 {
        n @ 0..=4 => u64::from(n),
        _ => u64::from(f.from),
    };
    let entries = f
        .entries
        .iter()
        .take(8)
        .map(|e| Entry {
            entry_type: e.kind,
            term: e.term.at(term),
            index: e.index.at(last),
            data: Bytes::copy_from_slice(&e.data),
        })
        .collect();
    let snapshot = f.snapshot.as_ref().map(|s| {
        Box::new(Snapshot {
            data: Bytes::copy_from_slice(&s.data),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: ids(&s.voters),
                    learners: ids(&s.learners),
                    voters_outgoing: ids(&s.voters_outgoing),
                    learners_next: ids(&s.learners_next),
                    auto_leave: s.auto_leave,
                }),
                index: s.index.at(last),
                term: s.term.at(term),
            }),
        })
    });
    let mut m = Message {
        msg_type: f.kind,
        to,
        from,
        term: f.term.at(term),
        log_term: f.log_term.at(term),
        index: f.index.at(last),
        entries,
        commit: f.commit.at(commit),
        snapshot,
        reject: f.reject,
        reject_hint: f.reject_hint.at(last),
        context: Bytes::copy_from_slice(&f.context),
        vote: 0,
        responses: Vec::new(),
    };
    for _ in 0..f.responses % 3 {
        let mut r = Message::new(MessageType::MsgAppResp, to, from);
        r.term = m.term;
        r.index = m.index;
        m.responses.push(r);
    }
    m
}
