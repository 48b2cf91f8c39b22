//! A randomized run: a cluster, clients and a nemesis on a simulated clock,
//! every choice drawn from one generator seeded by the run's seed, and the
//! invariants checked after every step.
//!
//! Time advances in units; a node ticks every `TICK` units, a message takes
//! 1 to 3 units on a healthy link, a disk write 1 to 2. A run injects faults
//! for `ticks` ticks, then heals everything and demands liveness: a leader
//! and a committed proposal within a bounded time, every client answered or
//! given up, and every member holding the same state.

use crate::disk;
use crate::faults::{Fault, FaultKinds};
use crate::format;
use crate::invariants::{Invariants, Violation};
use crate::kv::{self, Op};
use crate::network::{Arrival, LinkFaults, Network, Sent};
use crate::node::{Answer, SimNode};
use crate::workload::{self, Recorded, Workload};
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rudder_raft::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, Config, Message,
    MessageType, ReadOnlyOption, SnapshotStatus, StateRole,
};
use std::collections::{BTreeMap, BTreeSet};

/// Time units per tick.
pub const TICK: u64 = 10;
/// Election timeout in ticks (heartbeat: 1 tick).
pub const ELECTION_TICKS: u64 = 10;
/// After healing, a leader must commit a proposal within this many ticks.
pub const LIVENESS_TICKS: u64 = 30 * ELECTION_TICKS;

/// What a run does; everything else follows from the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Voters the cluster starts with.
    pub voters: u64,
    /// Nodes that start outside the cluster, for membership changes.
    pub spares: u64,
    /// Ticks of faults and load before healing.
    pub ticks: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Keys the clients touch (few keys, more contention).
    pub keys: u64,
    /// The faults injected.
    pub faults: FaultKinds,
    /// Record every event as a line of text.
    pub trace: bool,
}

impl SimConfig {
    /// A run shaped by its seed: 3 or 5 voters, a spare node when
    /// membership changes, and a mix of fault kinds (most runs get all).
    pub fn random(seed: u64, ticks: u64) -> SimConfig {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_c0f1_6000_0000);
        let mut faults = FaultKinds::ALL;
        if rng.random_bool(0.3) {
            faults.partitions = rng.random_bool(0.5);
            faults.lossy_links = rng.random_bool(0.5);
            faults.crashes = rng.random_bool(0.5);
            faults.pauses = rng.random_bool(0.5);
            faults.transfers = rng.random_bool(0.5);
            faults.membership = rng.random_bool(0.5);
        }
        SimConfig {
            seed,
            voters: if rng.random_bool(0.5) { 3 } else { 5 },
            spares: if faults.membership { 2 } else { 0 },
            ticks,
            clients: rng.random_range(2..=6),
            keys: rng.random_range(1..=4),
            faults,
            trace: false,
        }
    }
}

/// A configuration no run can follow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A cluster needs a voter to start.
    #[error("a cluster needs at least one voter")]
    NoVoters,
    /// Clients pick among the keys.
    #[error("clients need at least one key")]
    NoKeys,
}

impl SimConfig {
    /// Checks that a run can follow the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.voters == 0 {
            return Err(ConfigError::NoVoters);
        }
        if self.keys == 0 {
            return Err(ConfigError::NoKeys);
        }
        Ok(())
    }
}

/// A run that broke something, with what is needed to replay it.
#[derive(Debug, thiserror::Error)]
#[error("seed {seed} at time {time}: {what}")]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// When it was seen.
    pub time: u64,
    /// What broke.
    pub what: String,
    /// The events, when the run was traced.
    pub trace: Vec<String>,
}

/// What a run that passed did.
#[derive(Clone, Debug)]
pub struct Report {
    /// Ticks summed over running members.
    pub node_ticks: u64,
    /// Terms that had a leader.
    pub leaders: u64,
    /// Highest index known committed.
    pub committed: u64,
    /// Faults injected.
    pub faults: u64,
    /// Requests refused before taking effect (and sent again).
    pub refusals: u64,
    /// The clients' history.
    pub history: Vec<Recorded>,
    /// The events, when the run was traced.
    pub trace: Vec<String>,
}

/// A randomized run in progress.
pub struct Simulation {
    cfg: SimConfig,
    rng: SmallRng,
    now: u64,
    nodes: BTreeMap<u64, SimNode>,
    ids: Vec<u64>,
    net: Network,
    paused: BTreeSet<u64>,
    /// Messages that reached a paused node, delivered when it resumes.
    held: BTreeMap<u64, Vec<Message>>,
    /// When each node's disk write completes.
    write_due: BTreeMap<u64, u64>,
    workload: Workload,
    /// Commands applied anywhere: the first apply's time and reply.
    effects: workload::Effects,
    inv: Invariants,
    trace: Vec<String>,
    node_ticks: u64,
    faults: u64,
    next_fault: u64,
}

impl Simulation {
    /// Sets up the cluster: voters `1..=voters` bootstrapped together,
    /// spares started empty, outside the configuration.
    pub fn new(cfg: SimConfig) -> Result<Simulation, ConfigError> {
        cfg.validate()?;
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let voters: Vec<u64> = (1..=cfg.voters).collect();
        let ids: Vec<u64> = (1..=cfg.voters + cfg.spares).collect();
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let mut c = Config::new(id);
            c.election_tick = ELECTION_TICKS as usize;
            c.heartbeat_tick = 1;
            c.read_only_option = ReadOnlyOption::Safe;
            c.max_size_per_msg = 4096;
            c.max_inflight_msgs = 16;
            c.seed = rng.random();
            let node = if voters.contains(&id) {
                SimNode::bootstrap(c, &voters)
            } else {
                SimNode::joining(c)
            };
            nodes.insert(id, node);
        }
        let workload = Workload::new(cfg.clients, cfg.keys, 40 * TICK, 3 * TICK, &voters);
        Ok(Simulation {
            next_fault: 5 * ELECTION_TICKS * TICK,
            cfg,
            rng,
            now: 0,
            nodes,
            ids,
            net: Network::default(),
            paused: BTreeSet::new(),
            held: BTreeMap::new(),
            write_due: BTreeMap::new(),
            workload,
            effects: workload::Effects::new(),
            inv: Invariants::new(),
            trace: Vec::new(),
            node_ticks: 0,
            faults: 0,
        })
    }

    /// Runs: faults and load for the configured ticks, then healing, the
    /// liveness and convergence checks, and the linearizability check of
    /// the clients' history.
    pub fn run(mut self) -> Result<Report, Failure> {
        let end = self.cfg.ticks * TICK;
        while self.now < end {
            self.step(false).map_err(|v| self.fail(v.to_string()))?;
            if self.now >= self.next_fault && self.cfg.faults != FaultKinds::NONE {
                self.inject_fault().map_err(|v| self.fail(v.to_string()))?;
                self.next_fault = self.now + self.rng.random_range(2 * TICK..=30 * TICK);
            }
        }
        self.heal_everything()
            .map_err(|v| self.fail(v.to_string()))?;
        self.check_liveness()?;
        self.drain_clients()?;
        self.check_convergence()?;
        let ops = workload::settle(&self.workload.history, &self.effects)
            .map_err(|what| self.fail(what))?;
        workload::check_linearizable(&ops).map_err(|what| self.fail(what))?;
        Ok(Report {
            node_ticks: self.node_ticks,
            leaders: self.inv.leader_terms(),
            committed: self.inv.committed_index(),
            faults: self.faults,
            refusals: self.workload.refusals,
            history: self.workload.history,
            trace: self.trace,
        })
    }

    fn fail(&self, what: String) -> Failure {
        Failure {
            seed: self.cfg.seed,
            time: self.now,
            what,
            trace: self.trace.clone(),
        }
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            self.trace.push(format!("t={} {}", self.now, line()));
        }
    }

    /// One time unit: deliveries, ticks, clients, disk writes, invariants.
    fn step(&mut self, stopping: bool) -> Result<(), Violation> {
        self.now += 1;
        while let Some(arrival) = self.net.next_due(self.now) {
            match arrival {
                Arrival::Arrived(m) => self.deliver(m)?,
                Arrival::Lost(m) => self.report_lost(&m),
            }
        }
        if self.now % TICK == 0 {
            for (&id, node) in self.nodes.iter_mut() {
                let cs = node.conf_state();
                let member = cs.voters.contains(&id) || cs.learners.contains(&id);
                if let (Some(raw), false) = (node.raw_mut(), self.paused.contains(&id)) {
                    raw.tick();
                    // Only members' ticks count: a spare outside the
                    // configuration ticks but takes no part.
                    self.node_ticks += u64::from(member);
                }
            }
        }
        let submits = self
            .workload
            .act(self.now, stopping, &self.ids, &mut self.rng);
        for s in submits {
            if self.paused.contains(&s.node) {
                continue; // a paused server does not answer: the client times out
            }
            if self.nodes.contains_key(&s.node) {
                let (request, op) = (s.request, s.op);
                self.log(|| format!("client request #{request} to {}: {op:?}", s.node));
                self.nodes
                    .get_mut(&s.node)
                    .expect("checked")
                    .submit(request, &op);
            }
        }
        for id in self.ids.clone() {
            if self.paused.contains(&id) {
                continue;
            }
            self.drive(id)?;
        }
        self.answer_clients();
        self.check_invariants()
    }

    /// Finishes a due disk write and starts the next one.
    fn drive(&mut self, id: u64) -> Result<(), Violation> {
        let node = self.nodes.get_mut(&id).expect("ids name nodes");
        if self.write_due.get(&id).is_some_and(|&t| t <= self.now) {
            self.write_due.remove(&id);
            let later = node.finish_write(&mut self.inv)?;
            self.send_all(later)?;
            self.check_commit_quorum(id)?;
        }
        let node = self.nodes.get_mut(&id).expect("ids name nodes");
        if !node.is_writing() {
            let now_msgs = node.start_write(&self.inv)?;
            if node.is_writing() {
                let due = self.now + self.rng.random_range(1..=2);
                self.write_due.insert(id, due);
            }
            self.send_all(now_msgs)?;
        }
        Ok(())
    }

    /// Hands messages to the network; an acknowledgement is first checked
    /// against the leader it goes to.
    fn send_all(&mut self, msgs: Vec<Message>) -> Result<(), Violation> {
        for m in msgs {
            if let (Some(from), Some(to)) = (self.nodes.get(&m.from), self.nodes.get(&m.to)) {
                if let Some(leader) = to.raw() {
                    self.inv.check_ack(m.from, from.disk(), leader, &m)?;
                }
            }
            let line = self.cfg.trace.then(|| format::message(&m));
            let snapshot = (m.kind() == Some(MessageType::MsgSnap)).then_some((m.from, m.to));
            let sent = self.net.send(self.now, m, &mut self.rng);
            if let (Some((from, to)), Sent::Dropped | Sent::Cut) = (snapshot, sent) {
                self.report_snapshot(from, to, SnapshotStatus::Failure);
            }
            if let Some(line) = line {
                self.log(|| match sent {
                    Sent::InFlight(_) => line,
                    Sent::Duplicated(..) => format!("{line} (duplicated)"),
                    Sent::Dropped => format!("{line} (lost)"),
                    Sent::Cut => format!("{line} (cut)"),
                });
            }
        }
        Ok(())
    }

    fn deliver(&mut self, m: Message) -> Result<(), Violation> {
        if self.paused.contains(&m.to) {
            self.held.entry(m.to).or_default().push(m);
            return Ok(());
        }
        let to = m.to;
        let snapshot = (m.kind() == Some(MessageType::MsgSnap)).then_some((m.from, m.to));
        let delivered = match self.nodes.get_mut(&m.to).and_then(SimNode::raw_mut) {
            Some(raw) => {
                // Refusals (a stale or unknown sender) are the core's to make.
                let _ = raw.step(m);
                // A role can come and go within a time unit: check now.
                self.inv.check_node(raw)?;
                true
            }
            None => false,
        };
        if let Some((from, to)) = snapshot {
            let status = if delivered {
                SnapshotStatus::Finish
            } else {
                SnapshotStatus::Failure
            };
            self.report_snapshot(from, to, status);
        }
        self.check_commit_quorum(to)
    }

    /// A message lost in flight: a snapshot's sender hears of it, as a
    /// transport's failed stream would tell it.
    fn report_lost(&mut self, m: &Message) {
        if m.kind() == Some(MessageType::MsgSnap) {
            self.report_snapshot(m.from, m.to, SnapshotStatus::Failure);
        }
    }

    fn report_snapshot(&mut self, from: u64, to: u64, status: SnapshotStatus) {
        if let Some(raw) = self.nodes.get_mut(&from).and_then(SimNode::raw_mut) {
            raw.report_snapshot(to, status);
        }
        self.log(|| format!("snapshot {from}->{to}: {status:?}"));
    }

    fn answer_clients(&mut self) {
        for id in self.ids.clone() {
            let now = self.now;
            let node = self.nodes.get_mut(&id).expect("ids");
            for (request, reply) in node.effects.drain(..) {
                self.effects.entry(request).or_insert((now, reply));
            }
            let answers = std::mem::take(&mut self.nodes.get_mut(&id).expect("ids").answers);
            for (request, answer) in answers {
                self.log(|| format!("node {id} answers #{request}: {answer:?}"));
                match answer {
                    Answer::Done(reply) => {
                        self.workload.done(self.now, request, reply, &mut self.rng)
                    }
                    Answer::Refused { leader } => {
                        self.workload
                            .refused(self.now, request, leader, &self.ids, &mut self.rng)
                    }
                }
            }
        }
    }

    fn check_invariants(&mut self) -> Result<(), Violation> {
        for node in self.nodes.values() {
            if let Some(raw) = node.raw() {
                self.inv.check_node(raw)?;
                let committed = raw.raft().log.committed();
                if node.applied() > committed {
                    return Err(Violation {
                        property: "applied ≤ committed ≤ last",
                        node: node.id,
                        detail: format!(
                            "the state machine applied {} of {committed} committed",
                            node.applied()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks node `id`'s commit index against its configuration now, if it
    /// leads (see [`Invariants::check_commit_quorum`]).
    fn check_commit_quorum(&mut self, id: u64) -> Result<(), Violation> {
        let Some(raw) = self.nodes.get(&id).and_then(SimNode::raw) else {
            return Ok(());
        };
        if raw.raft().state != StateRole::Leader {
            return Ok(());
        }
        let nodes = &self.nodes;
        self.inv.check_commit_quorum(raw, |id, index, term| {
            nodes
                .get(&id)
                .is_some_and(|n| disk::holds(n.disk(), index, term))
        })
    }

    /// The node that leads in the highest term, if any.
    fn leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter_map(|n| n.raw())
            .filter(|r| r.raft().state == StateRole::Leader)
            .max_by_key(|r| r.raft().term)
            .map(|r| r.raft().id)
    }

    fn inject_fault(&mut self) -> Result<(), Violation> {
        let Some(fault) = self.pick_fault() else {
            return Ok(());
        };
        self.faults += 1;
        self.log(|| format!("nemesis: {fault:?}"));
        self.apply_fault(fault)
    }

    /// Draws the next fault among the enabled kinds; repairs are drawn as
    /// often as faults, so the cluster makes progress between them.
    fn pick_fault(&mut self) -> Option<Fault> {
        let k = self.cfg.faults;
        let ids = self.ids.clone();
        let up: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| self.nodes[id].is_up())
            .collect();
        let down: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !self.nodes[id].is_up())
            .collect();
        let paused: Vec<u64> = self.paused.iter().copied().collect();
        let leader = self.leader_of(&up);
        let mut choices: Vec<Fault> = Vec::new();
        let rng = &mut self.rng;
        if k.partitions && ids.len() > 1 {
            let mut shuffled = ids.clone();
            shuffled.shuffle(rng);
            let cut = rng.random_range(1..shuffled.len());
            let (a, b) = shuffled.split_at(cut);
            choices.push(Fault::Partition(a.to_vec(), b.to_vec()));
            if let Some(l) = leader {
                let rest: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
                choices.push(Fault::Partition(vec![l], rest));
            }
            let from = *ids.choose(rng)?;
            let to = *ids
                .iter()
                .filter(|&&i| i != from)
                .collect::<Vec<_>>()
                .choose(rng)?;
            choices.push(Fault::CutOneWay(from, *to));
        }
        if k.lossy_links {
            let from = *ids.choose(rng)?;
            let to = *ids
                .iter()
                .filter(|&&i| i != from)
                .collect::<Vec<_>>()
                .choose(rng)?;
            choices.push(Fault::LossyLink {
                from,
                to: *to,
                drop: rng.random_range(0.0..0.9),
            });
            choices.push(Fault::Lossy {
                drop: rng.random_range(0.0..0.3),
                duplicate: rng.random_range(0.0..0.2),
                max_delay: rng.random_range(1..=3 * TICK),
            });
        }
        if k.partitions || k.lossy_links {
            choices.push(Fault::HealNetwork);
            choices.push(Fault::HealNetwork);
        }
        if k.crashes {
            if let Some(&id) = up.choose(rng) {
                choices.push(Fault::Crash(id));
            }
            if let Some(&id) = down.choose(rng) {
                choices.push(Fault::Restart(id));
                choices.push(Fault::Restart(id));
            }
        }
        if k.pauses {
            if let Some(&id) = up
                .iter()
                .filter(|i| !paused.contains(i))
                .collect::<Vec<_>>()
                .choose(rng)
            {
                choices.push(Fault::Pause(*id));
            }
            if let Some(&id) = paused.choose(rng) {
                choices.push(Fault::Resume(id));
                choices.push(Fault::Resume(id));
            }
        }
        if let (true, Some(leader)) = (k.transfers, leader) {
            let voters = self.nodes[&leader].conf_state().voters.clone();
            if let Some(&to) = voters
                .iter()
                .filter(|&&v| v != leader)
                .collect::<Vec<_>>()
                .choose(rng)
            {
                choices.push(Fault::Transfer { leader, to: *to });
            }
        }
        if let (true, Some(leader)) = (k.membership, leader) {
            if let Some(change) = self.pick_membership_change(leader) {
                choices.push(Fault::ChangeMembership { leader, change });
            }
        }
        let i = self.rng.random_range(0..choices.len().max(1));
        (!choices.is_empty()).then(|| choices.swap_remove(i))
    }

    fn leader_of(&self, up: &[u64]) -> Option<u64> {
        self.leader().filter(|l| up.contains(l))
    }

    /// A change the leader's configuration allows: add a learner, promote
    /// one, remove a voter (keeping three), or replace a voter by a
    /// learner-less newcomer through joint consensus.
    fn pick_membership_change(&mut self, leader: u64) -> Option<ConfChangeV2> {
        let cs = self.nodes[&leader].conf_state().clone();
        if !cs.voters_outgoing.is_empty() {
            return None; // auto-leave will follow
        }
        let outside: Vec<u64> = self
            .ids
            .iter()
            .copied()
            .filter(|i| !cs.voters.contains(i) && !cs.learners.contains(i))
            .collect();
        let single = |t: ConfChangeType, id: u64| ConfChangeSingle {
            change_type: t as i32,
            node_id: id,
        };
        let mut options = Vec::new();
        if let Some(&id) = outside.choose(&mut self.rng) {
            options.push(vec![single(ConfChangeType::AddLearnerNode, id)]);
            if let Some(&old) = cs.voters.choose(&mut self.rng) {
                options.push(vec![
                    single(ConfChangeType::AddNode, id),
                    single(ConfChangeType::RemoveNode, old),
                ]);
            }
        }
        if let Some(&id) = cs.learners.choose(&mut self.rng) {
            options.push(vec![single(ConfChangeType::AddNode, id)]);
        }
        if cs.voters.len() > 3 {
            if let Some(&id) = cs.voters.choose(&mut self.rng) {
                options.push(vec![single(ConfChangeType::RemoveNode, id)]);
            }
        }
        let changes = options.choose(&mut self.rng)?.clone();
        Some(ConfChangeV2 {
            transition: ConfChangeTransition::Auto as i32,
            changes,
            context: Default::default(),
        })
    }

    fn apply_fault(&mut self, fault: Fault) -> Result<(), Violation> {
        match fault {
            Fault::Partition(a, b) => self.net.partition(&a, &b),
            Fault::CutOneWay(from, to) => self.net.cut(from, to),
            Fault::Lossy {
                drop,
                duplicate,
                max_delay,
            } => {
                self.net.faults = LinkFaults {
                    drop,
                    duplicate,
                    min_delay: 1,
                    max_delay,
                }
            }
            Fault::LossyLink { from, to, drop } => {
                let mut f = self.net.link(from, to);
                f.drop = drop;
                self.net.links.insert((from, to), f);
            }
            Fault::HealNetwork => self.heal_network(),
            Fault::Crash(id) => {
                self.nodes.get_mut(&id).expect("ids").crash();
                self.write_due.remove(&id);
                self.paused.remove(&id);
                self.held.remove(&id);
            }
            Fault::Restart(id) => self.restart(id)?,
            Fault::Pause(id) => {
                self.paused.insert(id);
            }
            Fault::Resume(id) => self.resume(id)?,
            Fault::Transfer { leader, to } => {
                if let Some(raw) = self.nodes.get_mut(&leader).and_then(SimNode::raw_mut) {
                    let _ = raw.transfer_leader(to);
                }
            }
            Fault::ChangeMembership { leader, change } => {
                if let Some(raw) = self.nodes.get_mut(&leader).and_then(SimNode::raw_mut) {
                    // Refusals (one pending already, quota) are the core's.
                    let _ = raw.propose_conf_change(&change);
                }
            }
        }
        Ok(())
    }

    fn restart(&mut self, id: u64) -> Result<(), Violation> {
        let node = self.nodes.get_mut(&id).expect("ids");
        self.inv.on_restart(id, node.disk())?;
        node.restart().map_err(|detail| Violation {
            property: "a node restarts from its own disk",
            node: id,
            detail,
        })
    }

    fn resume(&mut self, id: u64) -> Result<(), Violation> {
        self.paused.remove(&id);
        for m in self.held.remove(&id).unwrap_or_default() {
            self.deliver(m)?;
        }
        Ok(())
    }

    fn heal_network(&mut self) {
        self.net.heal();
        self.net.faults = LinkFaults::default();
        self.net.links.clear();
    }

    /// Heals every fault: network whole and healthy, every node running.
    fn heal_everything(&mut self) -> Result<(), Violation> {
        self.log(|| "nemesis: heal everything".into());
        self.heal_network();
        for id in self.ids.clone() {
            if !self.nodes[&id].is_up() {
                self.restart(id)?;
            }
            if self.paused.contains(&id) {
                self.resume(id)?;
            }
        }
        Ok(())
    }

    /// After healing, a leader must emerge and commit a proposal within
    /// `LIVENESS_TICKS`.
    fn check_liveness(&mut self) -> Result<(), Failure> {
        let deadline = self.now + LIVENESS_TICKS * TICK;
        let marker = kv::encode(
            0,
            &Op::Get {
                key: "liveness".into(),
            },
        );
        let mut proposed: Option<(u64, u64, u64)> = None;
        while self.now < deadline {
            self.step(false).map_err(|v| self.fail(v.to_string()))?;
            let Some(l) = self.leader() else { continue };
            let node = self.nodes.get_mut(&l).expect("ids");
            let applied = node.applied();
            let raw = node.raw_mut().expect("leader is up");
            match proposed {
                Some((leader, index, term)) if leader == l => {
                    if applied >= index && raw.raft().log.term(index) == Ok(term) {
                        return Ok(());
                    }
                }
                _ => {
                    if let Ok(rudder_raft::Proposed::Appended { index, term }) =
                        raw.propose(marker.clone())
                    {
                        proposed = Some((l, index, term));
                    }
                }
            }
        }
        Err(self.fail(format!(
            "liveness: no proposal committed within {LIVENESS_TICKS} ticks of healing (leader: {:?})",
            self.leader()
        )))
    }

    /// Stops new operations and runs until every client is answered or
    /// has given up.
    fn drain_clients(&mut self) -> Result<(), Failure> {
        let deadline = self.now + 60 * TICK;
        while !self.workload.is_idle() && self.now < deadline {
            self.step(true).map_err(|v| self.fail(v.to_string()))?;
        }
        Ok(())
    }

    /// Every member of the leader's configuration ends with the leader's
    /// state once it applied what the leader committed.
    fn check_convergence(&mut self) -> Result<(), Failure> {
        let deadline = self.now + LIVENESS_TICKS * TICK;
        loop {
            self.step(true).map_err(|v| self.fail(v.to_string()))?;
            match self.convergence() {
                Convergence::Done => return Ok(()),
                Convergence::Diverged(what) => {
                    return Err(self.fail(format!("convergence: {what}")))
                }
                Convergence::Waiting(what) if self.now >= deadline => {
                    return Err(self.fail(format!("convergence: not reached in time: {what}")))
                }
                Convergence::Waiting(_) => {}
            }
        }
    }

    /// Whether every member applied all the leader committed, with nothing
    /// in flight, and holds the leader's state.
    fn convergence(&self) -> Convergence {
        let Some(l) = self.leader() else {
            return Convergence::Waiting("no leader".into());
        };
        let leader = &self.nodes[&l];
        let cs = leader.conf_state();
        let target = leader.raw().expect("a leader is up").raft().log.committed();
        let members: Vec<u64> = cs.voters.iter().chain(&cs.learners).copied().collect();
        let behind: Vec<u64> = members
            .iter()
            .copied()
            .filter(|id| self.nodes[id].applied() < target)
            .collect();
        if !behind.is_empty() || !self.net.is_empty() {
            return Convergence::Waiting(format!(
                "leader {l} committed {target}; members {behind:?} applied less; {} messages in flight",
                self.net.len()
            ));
        }
        match members
            .iter()
            .find(|id| self.nodes[id].applied() == target && self.nodes[id].kv != leader.kv)
        {
            Some(id) => Convergence::Diverged(format!(
                "node {id} applied {target} like leader {l} but holds another state"
            )),
            None => Convergence::Done,
        }
    }
}

/// How far the cluster is from converging after the faults healed.
enum Convergence {
    /// Every member holds the leader's state.
    Done,
    /// Not yet, and why.
    Waiting(String),
    /// Two members applied the same entries but hold different states.
    Diverged(String),
}
