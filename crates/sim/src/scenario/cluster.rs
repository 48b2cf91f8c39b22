//! The cluster a scenario drives: its nodes, the messages in flight
//! between them, the faults of the network, and the safety checker that
//! watches every step.
//!
//! Nothing happens on its own: a node handles a Ready only when told to
//! (`process-ready`, `stabilize`), a message arrives only when delivered
//! (`deliver-msgs`, `stabilize`), time passes only by `tick`s. Messages
//! wait in one queue in the order they were sent; a cut link or a receiver
//! that is down loses them when they are delivered.

use super::commands::{AddNodes, Command, MsgFilter};
use super::node::{campaign_blocker, Node};
use super::output::Output;
use crate::disk;
use crate::format;
use crate::invariants::Invariants;
use rudder_raft::{MemoryStorage, Message, Proposed, RawNode, StateRole};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// `stabilize` gives up after this many rounds of Readys and deliveries.
const MAX_ROUNDS: usize = 1000;

/// A command the cluster cannot carry out: a mistake in the script, not
/// something Raft did (Raft's refusals are printed instead).
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The script names a node that was never added.
    #[error("there is no node {0}")]
    NoSuchNode(u64),
    /// A node could not be created or restarted.
    #[error("node {0} cannot start: {1}")]
    Start(u64, rudder_raft::Error),
    /// `add-nodes log=... term=...` with a term before the log's last.
    #[error("term={term} is before the last entry's term {last}")]
    TermBeforeLog {
        /// The term asked for.
        term: u64,
        /// The last entry's term.
        last: u64,
    },
    /// `stabilize` never went quiet.
    #[error("the cluster did not settle within {MAX_ROUNDS} rounds")]
    Unsettled,
}

/// The nodes, the network and the checker.
#[derive(Default)]
pub struct Cluster {
    nodes: BTreeMap<u64, Node>,
    /// Messages sent and not yet delivered, oldest first.
    net: Vec<Message>,
    /// Links `(from, to)` that lose every message.
    cut: BTreeSet<(u64, u64)>,
    inv: Invariants,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Carries out one command, printing what happens, then checks every
    /// node's safety properties.
    pub fn run(&mut self, cmd: &Command, out: &mut Output) -> Result<(), ClusterError> {
        match cmd {
            Command::AddNodes(a) => self.add_nodes(a, out)?,
            Command::Campaign(id) => self.input(*id, out, |raw| {
                let blocked = campaign_blocker(raw);
                let was = raw.raft().state;
                raw.campaign();
                match blocked {
                    Some(why) => Some(format!("{id} ignores the campaign: {why}")),
                    None => another_pre_vote(was, raw),
                }
            })?,
            Command::Propose(id, data) => {
                let data = data.clone();
                self.input(*id, out, |raw| Some(proposed(*id, raw.propose(data))))?
            }
            Command::ProposeConfChange(id, cc) => self.input(*id, out, |raw| {
                Some(proposed(*id, raw.propose_conf_change(cc)))
            })?,
            Command::Tick(ids, times) => {
                for id in ids {
                    self.node(*id)?;
                }
                for _ in 0..*times {
                    for &id in ids {
                        self.input(id, out, |raw| {
                            raw.tick();
                            None
                        })?;
                    }
                }
            }
            Command::TickHeartbeat(id) => {
                let n = self.node(*id)?.config().heartbeat_tick;
                self.tick_times(*id, n, out)?;
            }
            Command::TickElection(id) => self.tick_election(*id, out)?,
            Command::TransferLeadership(from, to) => self.input(*from, out, |raw| {
                raw.transfer_leader(*to).err().map(|e| refused(*from, e))
            })?,
            Command::ForgetLeader(id) => self.input(*id, out, |raw| {
                raw.forget_leader().err().map(|e| refused(*id, e))
            })?,
            Command::ReadIndex(id, ctx) => {
                let ctx = ctx.clone();
                self.input(*id, out, |raw| {
                    raw.read_index(ctx).err().map(|e| refused(*id, e))
                })?
            }
            Command::ReportUnreachable(leader, peer) => self.input(*leader, out, |raw| {
                raw.report_unreachable(*peer);
                None
            })?,
            Command::ReportSnapshot(leader, peer, status) => self.input(*leader, out, |raw| {
                raw.report_snapshot(*peer, *status);
                None
            })?,
            Command::Compact(id, index) => {
                let line = match self.node_mut(*id)?.compact(*index) {
                    Ok(done) => done,
                    Err(e) => format!("error: {e}"),
                };
                out.line(0, line);
            }
            Command::ProcessReady(ids) => self.process_ready(ids, out)?,
            Command::DeliverMsgs(filter) => self.deliver_msgs(filter, out),
            Command::Stabilize(ids) => self.stabilize(ids, out)?,
            Command::Partition(groups) => self.partition(groups),
            Command::Cut(from, to) => {
                self.cut.insert((*from, *to));
            }
            Command::Heal => self.cut.clear(),
            Command::Crash(id) => {
                let node = self.node_mut(*id)?;
                node.crash();
                out.line(0, node.summary());
            }
            Command::Restart(id) => {
                let node = self
                    .nodes
                    .get_mut(id)
                    .ok_or(ClusterError::NoSuchNode(*id))?;
                // What the disk says was committed must agree with what
                // the cluster committed, as the randomized runs check.
                if !node.is_up() {
                    out.check(0, self.inv.on_restart(*id, node.disk()));
                }
                node.restart().map_err(|e| ClusterError::Start(*id, e))?;
                out.line(0, format!("restarted {}", node.summary()));
            }
            Command::Status(id) => self.node(*id)?.print_status(out),
            Command::RaftLog(id) => self.node(*id)?.print_log(out),
            Command::RaftState => {
                for node in self.nodes.values() {
                    out.line(0, node.summary());
                }
            }
        }
        self.check(out, 0);
        Ok(())
    }

    fn node(&self, id: u64) -> Result<&Node, ClusterError> {
        self.nodes.get(&id).ok_or(ClusterError::NoSuchNode(id))
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut Node, ClusterError> {
        self.nodes.get_mut(&id).ok_or(ClusterError::NoSuchNode(id))
    }

    /// Gives node `id` an input: `f` acts on it and may return a line to
    /// print; then the changes of role, term or leader it caused are
    /// printed. A node that is down
    /// takes no input.
    fn input(
        &mut self,
        id: u64,
        out: &mut Output,
        f: impl FnOnce(&mut RawNode<MemoryStorage>) -> Option<String>,
    ) -> Result<(), ClusterError> {
        let node = self.node_mut(id)?;
        let Some(raw) = node.raw_mut() else {
            out.line(0, format!("{id} is down"));
            return Ok(());
        };
        if let Some(line) = f(raw) {
            out.line(0, line);
        }
        node.report_changes(out, 0);
        Ok(())
    }

    fn tick_times(&mut self, id: u64, n: usize, out: &mut Output) -> Result<(), ClusterError> {
        for _ in 0..n {
            self.input(id, out, |raw| {
                raw.tick();
                None
            })?;
        }
        Ok(())
    }

    /// Ticks node `id` until its election timer fires, saying how many
    /// ticks that took.
    fn tick_election(&mut self, id: u64, out: &mut Output) -> Result<(), ClusterError> {
        let Some(n) = self.node(id)?.ticks_to_election() else {
            out.line(0, format!("{id} is down"));
            return Ok(());
        };
        let s = if n == 1 { "" } else { "s" };
        out.line(
            0,
            format!("{id} ticks {n} time{s}, to its election timeout"),
        );
        self.tick_times(id, n - 1, out)?;
        self.input(id, out, |raw| {
            let was = raw.raft().state;
            raw.tick();
            campaign_blocker(raw)
                .is_none()
                .then(|| another_pre_vote(was, raw))
                .flatten()
        })
    }

    fn add_nodes(&mut self, a: &AddNodes, out: &mut Output) -> Result<(), ClusterError> {
        let first = self.nodes.keys().next_back().map_or(1, |last| last + 1);
        for id in first..first + a.count {
            let mut config = a.config.clone();
            config.id = id;
            config.seed = id;
            let node = match &a.log {
                _ if a.voters.is_empty() => Node::joining(config),
                None => Node::bootstrap(config, &a.voters),
                Some(terms) => {
                    let last = terms.last().copied().unwrap_or(0);
                    let term = a.term.unwrap_or(last);
                    if term < last {
                        return Err(ClusterError::TermBeforeLog { term, last });
                    }
                    Node::with_log(config, &a.voters, terms, term)
                }
            }
            .map_err(|e| ClusterError::Start(id, e))?;
            out.line(
                0,
                format!("added {}, {}", node.summary(), node.membership()),
            );
            self.nodes.insert(id, node);
        }
        Ok(())
    }

    fn process_ready(&mut self, ids: &[u64], out: &mut Output) -> Result<(), ClusterError> {
        if ids.is_empty() {
            let all: Vec<u64> = self.nodes.keys().copied().collect();
            for id in all {
                self.handle_ready(id, out);
            }
            return Ok(());
        }
        for &id in ids {
            self.node(id)?;
            if !self.handle_ready(id, out) {
                let why = if self.nodes[&id].raw().is_some() {
                    "has no Ready"
                } else {
                    "is down"
                };
                out.line(0, format!("{id} {why}"));
            }
        }
        Ok(())
    }

    /// Lets node `id` handle one Ready, if it has one.
    fn handle_ready(&mut self, id: u64, out: &mut Output) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let sent_before = self.net.len();
        let handled = node.handle_ready(&mut self.inv, &mut self.net, out);
        if handled {
            // Acknowledgements must vouch for the leader's entries.
            let disk = self.nodes[&id].disk();
            for m in &self.net[sent_before..] {
                if let Some(leader) = self.nodes.get(&m.to).and_then(Node::raw) {
                    out.check(1, self.inv.check_ack(id, disk, leader, m));
                }
            }
            self.check(out, 1);
        }
        handled
    }

    fn deliver_msgs(&mut self, filter: &MsgFilter, out: &mut Output) {
        let batch = self.take_messages(|m| filter.matches(m.from, m.to, m.kind()));
        if batch.is_empty() {
            out.line(0, "no messages");
        }
        for m in batch {
            if filter.drop {
                out.line(0, format!("dropped {}", format::message(&m)));
            } else {
                self.deliver(m, out);
            }
        }
    }

    /// Takes the queued messages `pick` selects out of the network,
    /// ordered by receiver, oldest first for each.
    fn take_messages(&mut self, pick: impl Fn(&Message) -> bool) -> Vec<Message> {
        let (mut taken, kept): (Vec<Message>, Vec<Message>) =
            std::mem::take(&mut self.net).into_iter().partition(pick);
        self.net = kept;
        taken.sort_by_key(|m| m.to);
        taken
    }

    /// Delivers one message, unless the network or a crash loses it, and
    /// prints what the receiver made of it.
    fn deliver(&mut self, m: Message, out: &mut Output) {
        let lost = if self.cut.contains(&(m.from, m.to)) {
            Some("link cut")
        } else {
            match self.nodes.get(&m.to) {
                None => Some("no such node"),
                Some(n) if n.raw().is_none() => Some("receiver down"),
                Some(_) => None,
            }
        };
        if let Some(why) = lost {
            out.line(0, format!("lost {} ({why})", format::message(&m)));
            return;
        }
        out.line(0, format::message(&m));
        let node = self.nodes.get_mut(&m.to).expect("checked above");
        let raw = node.raw_mut().expect("checked above");
        if let Err(e) = raw.step(m) {
            out.line(1, format!("error: {e}"));
        }
        node.report_changes(out, 1);
        self.check(out, 1);
    }

    /// Handles Readys and delivers messages among `ids` (all nodes when
    /// empty) until none has anything left to do.
    fn stabilize(&mut self, ids: &[u64], out: &mut Output) -> Result<(), ClusterError> {
        let ids: Vec<u64> = if ids.is_empty() {
            self.nodes.keys().copied().collect()
        } else {
            for &id in ids {
                self.node(id)?;
            }
            ids.to_vec()
        };
        for _ in 0..MAX_ROUNDS {
            let mut busy = false;
            for &id in &ids {
                busy |= self.handle_ready(id, out);
            }
            let batch = self.take_messages(|m| ids.contains(&m.to));
            if batch.is_empty() && !busy {
                return Ok(());
            }
            for m in batch {
                self.deliver(m, out);
            }
        }
        Err(ClusterError::Unsettled)
    }

    /// Cuts every link between nodes of different groups, and every link
    /// of a node in no group.
    fn partition(&mut self, groups: &[Vec<u64>]) {
        let group_of = |id: u64| groups.iter().position(|g| g.contains(&id));
        let ids: BTreeSet<u64> = self
            .nodes
            .keys()
            .copied()
            .chain(groups.iter().flatten().copied())
            .collect();
        for &a in &ids {
            for &b in &ids {
                let apart = match (group_of(a), group_of(b)) {
                    (Some(x), Some(y)) => x != y,
                    _ => true,
                };
                if a != b && apart {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    /// Checks every running node's safety properties, printing violations.
    fn check(&mut self, out: &mut Output, depth: usize) {
        let nodes = &self.nodes;
        for node in nodes.values() {
            let Some(raw) = node.raw() else {
                continue;
            };
            out.check(depth, self.inv.check_node(raw));
            let durable = |id: u64, index: u64, term: u64| {
                nodes
                    .get(&id)
                    .is_some_and(|n| disk::holds(n.disk(), index, term))
            };
            out.check(depth, self.inv.check_commit_quorum(raw, durable));
        }
    }
}

/// A pre-candidate that campaigns again stays one, in the same term: no
/// change of role or term shows it, so it is told here.
fn another_pre_vote(was: StateRole, raw: &RawNode<MemoryStorage>) -> Option<String> {
    let r = raw.raft();
    (was == StateRole::PreCandidate && r.state == StateRole::PreCandidate)
        .then(|| format!("> {} starts another pre-vote at term {}", r.id, r.term))
}

/// What became of a proposal, as printed.
fn proposed(id: u64, r: rudder_raft::Result<Proposed>) -> String {
    match r {
        Ok(Proposed::Appended { index, term }) => format!("{id} appended {term}/{index}"),
        Ok(Proposed::Forwarded { to }) => format!("{id} forwards it to {to}"),
        Err(e) => refused(id, e),
    }
}

/// A call that `id` refused, as printed.
fn refused(id: u64, e: rudder_raft::Error) -> String {
    format!("{id} refused: {e}")
}
