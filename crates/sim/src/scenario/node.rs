//! One node of a scenario: a `RawNode` on a `MemoryStorage` that stands
//! for its disk, its state machine, and its Ready loop, printed step by
//! step.
//!
//! The state machine is the list of payloads applied, written to disk with
//! each apply (as a real server records its applied index with its data),
//! so a crash loses only what Raft had not persisted: the unstable log,
//! the messages not yet handed out, and volatile state such as the leader
//! and the commit index beyond the last persisted one.

use super::output::Output;
use crate::disk::{self, Life};
use crate::format;
use crate::invariants::{Invariants, Violation};
use bytes::Bytes;
use rudder_raft::tracker::ProgressState;
use rudder_raft::{
    ConfState, Config, Entry, HardState, MemoryStorage, Message, Outcome, ProposalOutcome, RawNode,
    Snapshot, StateRole, Storage, StorageError,
};

/// A node of a scenario cluster.
pub struct Node {
    id: u64,
    config: Config,
    life: Life,
    app: StateMachine,
    /// The role, term and leader last printed.
    seen: Seen,
}

/// What the output last said about a node, so each change is told once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    role: StateRole,
    term: u64,
    lead: u64,
}

/// The replicated state machine: the payloads of the normal entries
/// applied, in order, and the index applied up to.
#[derive(Clone, Debug, Default)]
struct StateMachine {
    applied: u64,
    payloads: Vec<Bytes>,
}

impl StateMachine {
    /// Snapshot data: the payloads, one per line (script payloads are
    /// words of a line, so they hold no newline).
    fn encode(&self) -> Bytes {
        let parts: Vec<&[u8]> = self.payloads.iter().map(|p| &p[..]).collect();
        Bytes::from(parts.join(&b'\n'))
    }

    /// The state a snapshot holds.
    fn restore(snap: &Snapshot) -> StateMachine {
        let payloads = if snap.data.is_empty() {
            Vec::new()
        } else {
            snap.data
                .split(|&b| b == b'\n')
                .map(Bytes::copy_from_slice)
                .collect()
        };
        StateMachine {
            applied: snap.index(),
            payloads,
        }
    }
}

/// The lowercase name of a role, as the output prints it.
pub fn role_name(role: StateRole) -> &'static str {
    match role {
        StateRole::Follower => "follower",
        StateRole::PreCandidate => "pre-candidate",
        StateRole::Candidate => "candidate",
        StateRole::Leader => "leader",
    }
}

impl Node {
    /// A founding member of a cluster of `voters`, bootstrapped on an
    /// empty disk.
    pub fn bootstrap(config: Config, voters: &[u64]) -> rudder_raft::Result<Node> {
        let raw = RawNode::bootstrap(&config, MemoryStorage::new(), voters)?;
        Ok(Node::with(config, raw))
    }

    /// A member of `voters` restarting from a disk that holds entries with
    /// the terms `terms` (empty payloads) at term `term`, nothing
    /// committed: a log as a history of elections left it.
    pub fn with_log(
        config: Config,
        voters: &[u64],
        terms: &[u64],
        term: u64,
    ) -> rudder_raft::Result<Node> {
        let mut disk = MemoryStorage::new_with_conf_state(ConfState::with_voters(voters.to_vec()));
        let entries: Vec<Entry> = (1..)
            .zip(terms)
            .map(|(index, &t)| Entry::new(t, index, Bytes::new()))
            .collect();
        disk.append(&entries)?;
        disk.set_hard_state(HardState {
            term,
            vote: 0,
            commit: 0,
        });
        let raw = RawNode::new(&config, disk)?;
        Ok(Node::with(config, raw))
    }

    /// A node on an empty disk that is not a member yet: it learns its
    /// membership from a leader once added.
    pub fn joining(config: Config) -> rudder_raft::Result<Node> {
        let raw = RawNode::new(&config, MemoryStorage::new())?;
        Ok(Node::with(config, raw))
    }

    fn with(config: Config, raw: RawNode<MemoryStorage>) -> Node {
        let seen = observe(&raw);
        Node {
            id: config.id,
            config,
            life: Life::up(raw),
            app: StateMachine::default(),
            seen,
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

    /// The node's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's disk, up or down.
    pub fn disk(&self) -> &MemoryStorage {
        self.life.disk()
    }

    /// Crashes the node: everything but its disk and state machine is lost.
    pub fn crash(&mut self) {
        self.life.crash();
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.life.is_up()
    }

    /// Restarts a crashed node from its disk; the state machine, stored
    /// with each apply, says how far the log was applied.
    pub fn restart(&mut self) -> rudder_raft::Result<()> {
        if self.life.is_up() {
            return Ok(());
        }
        let mut config = self.config.clone();
        config.applied = self.app.applied;
        self.life.restart(&config)?;
        if let Some(raw) = self.life.raw() {
            self.seen = observe(raw);
        }
        Ok(())
    }

    /// Prints a change of role, term or leader since the last one printed.
    pub fn report_changes(&mut self, out: &mut Output, depth: usize) {
        let Some(now) = self.raw().map(observe) else {
            return;
        };
        let before = std::mem::replace(&mut self.seen, now);
        if now == before {
            return;
        }
        let (id, term) = (self.id, now.term);
        let lead = match now.lead {
            0 => "leader unknown".to_string(),
            l => format!("leader {l}"),
        };
        let text = match now.role {
            StateRole::Follower if now.role != before.role => {
                format!("became follower at term {term}, {lead}")
            }
            role if now.role != before.role => format!("became {} at term {term}", role_name(role)),
            StateRole::Candidate => format!("campaigns again at term {term}"),
            _ if now.term != before.term => format!("moved to term {term}, {lead}"),
            _ if now.lead == 0 => format!("forgot leader {}", before.lead),
            _ => format!("follows leader {}", now.lead),
        };
        out.line(depth, format!("> {id} {text}"));
    }

    /// Handles one Ready, if the node has one: sends, persists, applies,
    /// advances, printing each step (under a `handles Ready` line, unless
    /// the Ready only reported a change of role or leader, printed
    /// already) and checking `inv` along the way. Messages go to `net`.
    /// Returns whether there was a Ready.
    pub fn handle_ready(
        &mut self,
        inv: &mut Invariants,
        net: &mut Vec<Message>,
        out: &mut Output,
    ) -> bool {
        let mut steps = Output::default();
        let handled = self.handle_ready_steps(inv, net, &mut steps);
        if !steps.is_empty() {
            out.line(0, format!("{} handles Ready", self.id));
            out.append(steps);
        }
        handled
    }

    fn handle_ready_steps(
        &mut self,
        inv: &mut Invariants,
        net: &mut Vec<Message>,
        out: &mut Output,
    ) -> bool {
        let id = self.id;
        let Life::Up(raw) = &mut self.life else {
            return false;
        };
        if !raw.has_ready() {
            return false;
        }
        let mut rd = raw.ready();
        for e in &rd.entries {
            out.check(1, inv.on_leader_append(raw, e));
        }
        for m in rd.messages.drain(..) {
            out.line(1, format!("send {}", format::message(&m)));
            out.check(1, inv.on_send(id, raw.storage(), &m));
            net.push(m);
        }
        let snapshot = rd.snapshot.as_ref().map(|s| (s.index(), s.term()));
        if let Some(snap) = &rd.snapshot {
            out.line(
                1,
                format!(
                    "persist snapshot={}/{} {}",
                    snap.term(),
                    snap.index(),
                    format::conf_state(&snap.conf_state())
                ),
            );
            let applied = raw.storage_mut().apply_snapshot((**snap).clone());
            out.check(1, applied.map_err(|e| disk::contract(id, e)));
        }
        if !rd.entries.is_empty() {
            out.line(
                1,
                format!("persist entries={}", format::entries(&rd.entries)),
            );
            let appended = raw.storage_mut().append(&rd.entries);
            out.check(1, appended.map_err(|e| disk::contract(id, e)));
        }
        if let Some(hs) = rd.hard_state {
            out.line(
                1,
                format!(
                    "persist term={} vote={} commit={}",
                    hs.term, hs.vote, hs.commit
                ),
            );
            raw.storage_mut().set_hard_state(hs);
        }
        out.check(1, inv.on_persist(id, raw.storage(), &rd.entries, snapshot));
        for m in rd.persisted_messages.drain(..) {
            out.line(1, format!("send after persist {}", format::message(&m)));
            out.check(1, inv.on_send(id, raw.storage(), &m));
            net.push(m);
        }
        if let Some(snap) = rd.snapshot.take() {
            out.line(
                1,
                format!("apply snapshot={}/{}", snap.term(), snap.index()),
            );
            self.app = StateMachine::restore(&snap);
        }
        if !rd.committed_entries.is_empty() {
            out.line(
                1,
                format!("apply entries={}", format::entries(&rd.committed_entries)),
            );
            for e in rd.committed_entries.drain(..) {
                out.check(1, inv.on_apply(id, &e));
                let applied = apply(raw, &mut self.app, &e, out);
                out.check(1, applied);
            }
        }
        for rs in rd.read_states.drain(..) {
            out.line(
                1,
                format!(
                    "read-state index={} ctx={}",
                    rs.index,
                    format::data(&rs.request_ctx)
                ),
            );
        }
        for o in rd.proposal_outcomes.drain(..) {
            if o.outcome != Outcome::Committed {
                out.line(1, describe_outcome(&o));
            }
        }
        raw.advance(rd);
        self.report_changes(out, 1);
        true
    }

    /// Takes a snapshot at the applied index (unless one exists there) and
    /// discards the log through `index`; returns what was done.
    pub fn compact(&mut self, index: u64) -> Result<String, StorageError> {
        let Life::Up(raw) = &mut self.life else {
            return Ok(format!("{} is down", self.id));
        };
        let applied = self.app.applied;
        if index > applied {
            return Err(StorageError::Other(format!(
                "cannot compact through {index}: only {applied} is applied"
            )));
        }
        let conf = raw.raft().tracker.conf_state();
        let data = self.app.encode();
        let storage = raw.storage_mut();
        let snapshotted = storage.snapshot(0)?.index();
        if applied > snapshotted {
            storage.create_snapshot(applied, Some(conf), data)?;
        }
        storage.compact(index)?;
        let term = storage.term(applied)?;
        Ok(format!(
            "{} snapshot at {term}/{applied}, log compacted through {index}",
            self.id
        ))
    }

    /// One line: role, term, leader and log positions, or what is on disk
    /// for a node that is down.
    pub fn summary(&self) -> String {
        let id = self.id;
        match &self.life {
            Life::Up(raw) => {
                let r = raw.raft();
                format!(
                    "{id}: {} term={} lead={} last={} commit={} applied={}",
                    role_name(r.state),
                    r.term,
                    r.lead,
                    r.log.last_index(),
                    r.log.committed(),
                    r.log.applied()
                )
            }
            Life::Down(disk) => {
                let hs = disk.hard_state();
                format!(
                    "{id}: down, on disk term={} vote={} last={} commit={}",
                    hs.term,
                    hs.vote,
                    disk.last_index().unwrap_or(0),
                    hs.commit
                )
            }
        }
    }

    /// The membership in force, as the output prints it.
    pub fn membership(&self) -> String {
        let cs = match &self.life {
            Life::Up(raw) => raw.raft().tracker.conf_state(),
            Life::Down(disk) => disk.snapshot(0).map(|s| s.conf_state()).unwrap_or_default(),
        };
        if cs == ConfState::default() {
            "not a member yet".to_string()
        } else {
            format::conf_state(&cs)
        }
    }

    /// Prints the node's full status: summary, membership, election clock,
    /// leader's view of its peers, state machine.
    pub fn print_status(&self, out: &mut Output) {
        out.line(0, self.summary());
        out.line(0, self.membership());
        if let Some(raw) = self.raw() {
            let r = raw.raft();
            out.line(
                0,
                format!(
                    "vote={} election-elapsed={} election-timeout={}",
                    r.vote,
                    r.election_elapsed(),
                    self.election_timeout(raw)
                ),
            );
            if r.lead_transferee != 0 {
                out.line(
                    0,
                    format!("transferring leadership to {}", r.lead_transferee),
                );
            }
            for (peer, p) in raw.status().progress {
                let mut line = format!(
                    "progress {peer}: match={} next={} {}",
                    p.matched,
                    p.next_idx,
                    match p.state {
                        ProgressState::Probe => "probe",
                        ProgressState::Replicate => "replicate",
                        ProgressState::Snapshot => "snapshot",
                    }
                );
                if p.state == ProgressState::Snapshot {
                    line.push_str(&format!(" pending={}", p.pending_snapshot));
                }
                if p.inflights.count() > 0 {
                    line.push_str(&format!(" inflight={}", p.inflights.count()));
                }
                if p.is_learner {
                    line.push_str(" learner");
                }
                out.line(0, line);
            }
        }
        let payloads: Vec<String> = self.app.payloads.iter().map(|p| format::data(p)).collect();
        out.line(
            0,
            format!(
                "state machine applied={} [{}]",
                self.app.applied,
                payloads.join(" ")
            ),
        );
    }

    /// Prints the log (stable and unstable), or the disk's for a node
    /// that is down.
    pub fn print_log(&self, out: &mut Output) {
        let (first, entries) = match &self.life {
            Life::Up(raw) => {
                let log = &raw.raft().log;
                let mut es = Vec::new();
                let first = log.first_index();
                let read = log.slice(first, log.last_index() + 1, u64::MAX, &mut es);
                (first, read.map(|()| es))
            }
            Life::Down(disk) => {
                let first = disk.first_index().unwrap_or(1);
                let last = disk.last_index().unwrap_or(0);
                let mut es = Vec::new();
                let read = disk.entries(first, last + 1, u64::MAX, &mut es);
                (first, read.map(|()| es))
            }
        };
        if first > 1 {
            let term = match &self.life {
                Life::Up(raw) => raw.raft().log.term(first - 1),
                Life::Down(disk) => disk.term(first - 1),
            };
            let term = term.map_or_else(|_| "?".to_string(), |t| t.to_string());
            out.line(0, format!("compacted through {term}/{}", first - 1));
        }
        match entries {
            Ok(es) if es.is_empty() => out.line(0, "(empty)"),
            Ok(es) => es.iter().for_each(|e| out.line(0, format::entry(e))),
            Err(e) => out.line(0, format!("error: {e}")),
        }
    }

    /// How many ticks until the node's election timer fires (a follower
    /// or candidate campaigns, a leader checks its quorum); `None` while
    /// the node is down.
    pub fn ticks_to_election(&self) -> Option<usize> {
        let raw = self.raw()?;
        let elapsed = raw.raft().election_elapsed();
        Some(self.election_timeout(raw).saturating_sub(elapsed).max(1))
    }

    /// The ticks after which the election timer fires: the randomized
    /// timeout for a follower or candidate, the configured one for a
    /// leader's quorum check.
    fn election_timeout(&self, raw: &RawNode<MemoryStorage>) -> usize {
        let r = raw.raft();
        match r.state {
            StateRole::Leader => self.config.election_tick,
            _ => r.randomized_election_timeout(),
        }
    }
}

/// Why `raw` would ignore a campaign now, if it would: the reasons
/// `Raft::hup` checks, so that the output can say why nothing happens.
pub fn campaign_blocker(raw: &RawNode<MemoryStorage>) -> Option<&'static str> {
    let r = raw.raft();
    if r.state == StateRole::Leader {
        return Some("it leads already");
    }
    if !r.promotable() {
        return Some("it is not a voter, or waits for a snapshot");
    }
    let (applied, committed) = (r.log.applied(), r.log.committed());
    let mut unapplied = Vec::new();
    let unknown = r
        .log
        .slice(applied + 1, committed + 1, u64::MAX, &mut unapplied)
        .is_err();
    if applied < committed && (unknown || unapplied.iter().any(Entry::is_conf_change)) {
        return Some("a committed configuration change is not applied yet");
    }
    None
}

/// The role, term and leader of a running node.
fn observe(raw: &RawNode<MemoryStorage>) -> Seen {
    let r = raw.raft();
    Seen {
        role: r.state,
        term: r.term,
        lead: r.lead,
    }
}

/// Applies one committed entry: a payload to the state machine, a
/// configuration change to Raft and the disk (printing the membership it
/// leads to, when it changes).
fn apply(
    raw: &mut RawNode<MemoryStorage>,
    app: &mut StateMachine,
    e: &Entry,
    out: &mut Output,
) -> Result<(), Violation> {
    app.applied = e.index;
    let before = raw.raft().tracker.conf_state();
    match disk::apply_conf_change(raw, e)? {
        None => {
            if !e.data.is_empty() {
                app.payloads.push(e.data.clone());
            }
        }
        Some((_, cs)) => {
            if cs != before {
                out.line(1, format!("conf now {}", format::conf_state(&cs)));
            }
            raw.storage_mut().set_conf_state(cs);
        }
    }
    Ok(())
}

/// `proposal 2/4 superseded`, or `proposals 2/4..6 unknown` for a run.
fn describe_outcome(o: &ProposalOutcome) -> String {
    let what = match o.outcome {
        Outcome::Committed => "committed",
        Outcome::Superseded => "superseded",
        Outcome::Unknown => "unknown",
    };
    if o.first_index == o.last_index {
        format!("proposal {}/{} {what}", o.term, o.first_index)
    } else {
        format!(
            "proposals {}/{}..{} {what}",
            o.term, o.first_index, o.last_index
        )
    }
}
