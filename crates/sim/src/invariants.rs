//! Raft's safety properties, checked as the simulation runs.
//!
//! The checker learns facts as they happen — who led which term, which
//! entry stands at `(index, term)`, what was committed at each index — and
//! every later observation must agree with them:
//!
//! - **Election safety** (§5.2): at most one leader per term.
//! - **Log matching** (§5.3): an entry at `(index, term)` is the same entry
//!   on every node, and is preceded by the same term. By induction the logs
//!   agree on everything before it.
//! - **Leader completeness** (§5.4): a new leader holds every entry known to
//!   be committed.
//! - **State machine safety** (§5.4.3): every node applies the same entry at
//!   an index; an entry once committed stays committed, across crashes.
//! - `applied ≤ committed ≤ last index` on every node.
//! - **Persist before send**: an acknowledgement or a granted vote leaves a
//!   node only once what it vouches for is durable.
//! - **One change at a time**: a leader appends a configuration change
//!   only when every earlier one in its log is applied.
//! - **Joint quorums**: a leader's commit index is held durably by a quorum
//!   of its configuration — of both halves when joint.
//!
//! The checks read a node through the core's [`Storage`] trait and
//! [`RawNode`], whatever the storage behind them, so a durable storage or a
//! simulated faulty disk can stand in for `MemoryStorage`.

use rudder_raft::quorum::VoteResult;
use rudder_raft::{Entry, HardState, Message, MessageType, RawNode, StateRole, Storage};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A broken safety property: what broke, where, and the facts involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{property} violated on node {node}: {detail}")]
pub struct Violation {
    /// The property, as named in the module docs.
    pub property: &'static str,
    /// The node where it was seen.
    pub node: u64,
    /// What was seen, against what was known.
    pub detail: String,
}

fn violation(property: &'static str, node: u64, detail: String) -> Violation {
    Violation {
        property,
        node,
        detail,
    }
}

/// The durable hard state of `storage`; a storage that cannot say breaks
/// the contract the core relies on.
fn durable_hard_state(node: u64, storage: &impl Storage) -> Result<HardState, Violation> {
    storage
        .initial_state()
        .map(|s| s.hard_state)
        .map_err(|e| violation("storage answers", node, e.to_string()))
}

/// The position of index `index` in a table of indexes from 1; index 0
/// names no entry, and a core that hands one out is broken.
fn slot(node: u64, index: u64) -> Result<usize, Violation> {
    match index.checked_sub(1) {
        Some(i) => Ok(i as usize),
        None => Err(violation(
            "entries have indexes from 1",
            node,
            "an entry at index 0".into(),
        )),
    }
}

/// What the checker knows of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntryFacts {
    hash: u64,
    /// The term of the entry before it, where the writer saw it.
    prev_term: Option<u64>,
}

/// A committed entry: its term and fingerprint, and the lowest term of a
/// node seen holding it committed. It was committed in that term or
/// earlier, so every leader of a later term must hold it (§5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Committed {
    term: u64,
    hash: u64,
    seen_in: u64,
}

/// The facts learned so far; see the module docs.
#[derive(Debug, Default)]
pub struct Invariants {
    leaders: HashMap<u64, u64>,
    entries: HashMap<(u64, u64), EntryFacts>,
    /// `committed[i - 1]` is what is known of the entry committed at `i`.
    committed: Vec<Option<Committed>>,
    /// Per node, the commit index up to which its log was recorded.
    recorded: HashMap<u64, u64>,
    /// Per node, the leader term whose completeness was checked.
    checked_leader: HashMap<u64, u64>,
    /// Per leader, the `(term, commit index)` whose quorum was checked.
    checked_commit: HashMap<u64, (u64, u64)>,
}

/// A fingerprint of an entry's content (type and payload).
fn fingerprint(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    e.entry_type.hash(&mut h);
    e.data.hash(&mut h);
    h.finish()
}

impl Invariants {
    /// A checker that knows nothing yet.
    pub fn new() -> Invariants {
        Invariants::default()
    }

    /// The highest index known committed.
    pub fn committed_index(&self) -> u64 {
        self.committed.len() as u64
    }

    /// How many terms had a leader.
    pub fn leader_terms(&self) -> u64 {
        self.leaders.len() as u64
    }

    /// Node `node` made `entries` (and `snapshot_index`/`term`, if any)
    /// durable in `storage`: checks log matching.
    pub fn on_persist(
        &mut self,
        node: u64,
        storage: &impl Storage,
        entries: &[Entry],
        snapshot: Option<(u64, u64)>,
    ) -> Result<(), Violation> {
        if let Some((index, term)) = snapshot.filter(|&(index, _)| index > 0) {
            if let Some(Some(Committed { term: t, .. })) = self.committed.get(slot(node, index)?) {
                if *t != term {
                    return Err(violation(
                        "state machine safety",
                        node,
                        format!("snapshot at {term}/{index}, but {t}/{index} was committed"),
                    ));
                }
            }
        }
        let mut prev_term = entries
            .first()
            .and_then(|e| storage.term(e.index.checked_sub(1)?).ok());
        for e in entries {
            let facts = EntryFacts {
                hash: fingerprint(e),
                prev_term,
            };
            match self.entries.get_mut(&(e.index, e.term)) {
                None => {
                    self.entries.insert((e.index, e.term), facts);
                }
                Some(known) => {
                    if known.hash != facts.hash {
                        return Err(violation(
                            "log matching",
                            node,
                            format!(
                                "entry {}/{} differs from the one seen before",
                                e.term, e.index
                            ),
                        ));
                    }
                    match (known.prev_term, prev_term) {
                        (Some(a), Some(b)) if a != b => {
                            return Err(violation(
                                "log matching",
                                node,
                                format!(
                                    "entry {}/{} follows term {b} here, term {a} elsewhere",
                                    e.term, e.index
                                ),
                            ))
                        }
                        (None, Some(_)) => known.prev_term = prev_term,
                        _ => {}
                    }
                }
            }
            prev_term = Some(e.term);
        }
        Ok(())
    }

    /// Node `node` restarted from `storage`: every entry it knew committed
    /// must still be there, as committed.
    pub fn on_restart(&mut self, node: u64, storage: &impl Storage) -> Result<(), Violation> {
        let hs = durable_hard_state(node, storage)?;
        let commit = hs.commit;
        let first = storage.first_index().unwrap_or(1);
        let last = storage.last_index().unwrap_or(0);
        if commit > last.max(first - 1) {
            return Err(violation(
                "committed entries survive crashes",
                node,
                format!("restarted with commit {commit} but only {last} entries durable"),
            ));
        }
        let mut entries = Vec::new();
        if commit >= first {
            storage
                .entries(first, commit + 1, u64::MAX, &mut entries)
                .map_err(|e| violation("committed entries survive crashes", node, e.to_string()))?;
        }
        for e in &entries {
            self.record_committed(node, e, hs.term)?;
        }
        Ok(())
    }

    /// Node `node` applies `e`: checks state machine safety. (The term it
    /// was committed in is learned by [`Invariants::check_node`].)
    pub fn on_apply(&mut self, node: u64, e: &Entry) -> Result<(), Violation> {
        self.record_committed(node, e, u64::MAX)
    }

    /// Records that `node`, in term `seen_in`, holds `e` committed.
    fn record_committed(&mut self, node: u64, e: &Entry, seen_in: u64) -> Result<(), Violation> {
        let (index, term, hash) = (e.index, e.term, fingerprint(e));
        let i = slot(node, index)?;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        match &mut self.committed[i] {
            None => {
                self.committed[i] = Some(Committed {
                    term,
                    hash,
                    seen_in,
                })
            }
            Some(c) if c.term == term && c.hash == hash => c.seen_in = c.seen_in.min(seen_in),
            Some(Committed { term: t, .. }) => {
                let t = *t;
                return Err(violation(
                    "state machine safety",
                    node,
                    format!(
                        "entry {term}/{index} committed here, but {t}/{index}{} was committed before",
                        if t == term { " (other content)" } else { "" }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Node `node` hands `m` to the network, with `storage` its durable
    /// state: checks persist-before-send. An acknowledgement must not run
    /// past the durable log nor come from a term not yet durable; whether
    /// the acknowledged entries are the leader's is [`Invariants::check_ack`]'s
    /// to check, where the leader is known.
    pub fn on_send(&self, node: u64, storage: &impl Storage, m: &Message) -> Result<(), Violation> {
        let hs = durable_hard_state(node, storage)?;
        match m.kind() {
            Some(MessageType::MsgAppResp) if !m.reject => {
                let last = storage.last_index().unwrap_or(0);
                if m.index > last || hs.term < m.term {
                    return Err(violation(
                        "persist before send",
                        node,
                        format!(
                            "acknowledges {} at term {} with {} durable at term {}",
                            m.index, m.term, last, hs.term
                        ),
                    ));
                }
            }
            // A later durable term also binds: the node can never vote in
            // `m.term` again.
            Some(MessageType::MsgVoteResp)
                if !m.reject && (hs.term < m.term || (hs.term == m.term && hs.vote != m.to)) =>
            {
                return Err(violation(
                    "persist before send",
                    node,
                    format!(
                        "grants its vote to {} at term {} with term {} vote {} durable",
                        m.to, m.term, hs.term, hs.vote
                    ),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks one node's state after a step: election safety, leader
    /// completeness, `applied ≤ committed ≤ last`, and records its
    /// committed entries.
    pub fn check_node(&mut self, raw: &RawNode<impl Storage>) -> Result<(), Violation> {
        let r = raw.raft();
        let id = r.id;
        let (applied, committed, last) = (r.log.applied(), r.log.committed(), r.log.last_index());
        if !(applied <= committed && committed <= last) {
            return Err(violation(
                "applied ≤ committed ≤ last",
                id,
                format!("applied {applied}, committed {committed}, last {last}"),
            ));
        }
        if r.state == StateRole::Leader {
            let leader = *self.leaders.entry(r.term).or_insert(id);
            if leader != id {
                return Err(violation(
                    "election safety",
                    id,
                    format!("leads term {}, which {leader} led", r.term),
                ));
            }
            if self.checked_leader.get(&id) != Some(&r.term) {
                self.checked_leader.insert(id, r.term);
                self.check_completeness(raw)?;
            }
        }
        let from = self
            .recorded
            .get(&id)
            .copied()
            .unwrap_or(0)
            .max(r.log.first_index() - 1);
        if committed > from {
            let mut es = Vec::new();
            r.log
                .slice(from + 1, committed + 1, u64::MAX, &mut es)
                .map_err(|e| {
                    violation(
                        "committed entries are readable",
                        id,
                        format!("{}..={committed}: {e}", from + 1),
                    )
                })?;
            for e in &es {
                self.record_committed(id, e, r.term)?;
            }
        }
        self.recorded.insert(id, committed);
        Ok(())
    }

    /// A new leader must hold every entry committed in an earlier term
    /// that it has not compacted. (A stale leader, elected by votes that
    /// arrived late, need not hold what a later term committed.)
    fn check_completeness(&self, raw: &RawNode<impl Storage>) -> Result<(), Violation> {
        let r = raw.raft();
        for (i, c) in self.committed.iter().enumerate() {
            let (Some(c), index) = (c, i as u64 + 1) else {
                continue;
            };
            if index < r.log.first_index() || c.seen_in >= r.term {
                continue;
            }
            match r.log.term(index) {
                Ok(t) if t == c.term => {}
                other => {
                    return Err(violation(
                        "leader completeness",
                        r.id,
                        format!(
                            "leads term {} without entry {}/{index}, committed by term {} (has {other:?})",
                            r.term, c.term, c.seen_in
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Node `leader` appended `e` in its own term: a configuration change
    /// may be appended only when no earlier one is unapplied.
    pub fn on_leader_append(
        &self,
        raw: &RawNode<impl Storage>,
        e: &Entry,
    ) -> Result<(), Violation> {
        let r = raw.raft();
        if !e.is_conf_change() || e.term != r.term || r.state != StateRole::Leader {
            return Ok(());
        }
        let applied = r.log.applied();
        let mut between = Vec::new();
        r.log
            .slice(applied + 1, e.index, u64::MAX, &mut between)
            .map_err(|err| {
                violation(
                    "unapplied entries are readable",
                    r.id,
                    format!("{}..{}: {err}", applied + 1, e.index),
                )
            })?;
        if let Some(other) = between.iter().find(|x| x.is_conf_change()) {
            return Err(violation(
                "one change at a time",
                r.id,
                format!(
                    "appended a change at {} while the change at {} is unapplied (applied {applied})",
                    e.index, other.index
                ),
            ));
        }
        Ok(())
    }

    /// Node `node` acknowledges an append with `m`, its durable state in
    /// `storage`, to `leader`, which leads `m`'s term: the entry it
    /// acknowledges must be durable with the leader's term for that index
    /// (or lie under its snapshot), since the leader will count every entry
    /// up to it as held there.
    pub fn check_ack(
        &self,
        node: u64,
        storage: &impl Storage,
        leader: &RawNode<impl Storage>,
        m: &Message,
    ) -> Result<(), Violation> {
        let r = leader.raft();
        if m.kind() != Some(MessageType::MsgAppResp)
            || m.reject
            || r.state != StateRole::Leader
            || r.term != m.term
        {
            return Ok(());
        }
        let Ok(expected) = r.log.term(m.index) else {
            return Ok(()); // compacted at the leader: it will send a snapshot
        };
        let under_snapshot = storage.first_index().is_ok_and(|f| m.index < f);
        match storage.term(m.index) {
            Ok(t) if t == expected => Ok(()),
            _ if under_snapshot => Ok(()),
            held => Err(violation(
                "persist before send",
                node,
                format!(
                    "acknowledges {expected}/{} to leader {} but holds {held:?} durably",
                    m.index, r.id
                ),
            )),
        }
    }

    /// A leader's commit index in its own term must be durable on a quorum
    /// of its configuration (both halves when joint); `durable(id, index,
    /// term)` says whether node `id` holds that entry durably.
    ///
    /// Call it as soon as the commit index may have moved (after a message
    /// is stepped, after `advance`): the configuration that counts is the
    /// one in force when the index was committed, and applying a change
    /// replaces it.
    pub fn check_commit_quorum(
        &mut self,
        raw: &RawNode<impl Storage>,
        durable: impl Fn(u64, u64, u64) -> bool,
    ) -> Result<(), Violation> {
        let r = raw.raft();
        if r.state != StateRole::Leader {
            return Ok(());
        }
        let c = r.log.committed();
        let Ok(term) = r.log.term(c) else {
            return Ok(());
        };
        if term != r.term {
            // Committed by an earlier leader, whose configuration counted.
            return Ok(());
        }
        if self.checked_commit.insert(r.id, (r.term, c)) == Some((r.term, c)) {
            return Ok(());
        }
        let voters = &r.tracker.config.voters;
        if voters.vote_result(|id| Some(durable(id, c, term))) != VoteResult::Won {
            return Err(violation(
                "joint quorums",
                r.id,
                format!(
                    "committed {term}/{c}, durable on too few of {:?} / {:?}",
                    voters.incoming.ids(),
                    voters.outgoing.ids()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rudder_raft::{Config, HardState, MemoryStorage};

    fn entry(term: u64, index: u64, data: &'static str) -> Entry {
        Entry::new(term, index, Bytes::from_static(data.as_bytes()))
    }

    /// A storage holding `entries` (from index 1).
    fn disk(entries: &[Entry]) -> MemoryStorage {
        let mut s = MemoryStorage::new();
        s.append(entries).unwrap();
        s
    }

    #[test]
    fn log_matching_catches_another_entry_at_the_same_index_and_term() {
        let mut inv = Invariants::new();
        let a = [entry(1, 1, "a"), entry(1, 2, "b")];
        inv.on_persist(1, &disk(&a), &a, None).unwrap();
        let b = [entry(1, 1, "a"), entry(1, 2, "other")];
        let err = inv.on_persist(2, &disk(&b), &b, None).unwrap_err();
        assert_eq!(err.property, "log matching");
    }

    #[test]
    fn log_matching_catches_another_predecessor() {
        let mut inv = Invariants::new();
        let a = [entry(1, 1, "a"), entry(2, 2, "b")];
        inv.on_persist(1, &disk(&a), &a, None).unwrap();
        // Node 2 holds 2/2 after a term-3 entry at index 1: impossible.
        let b = [entry(3, 1, "z"), entry(2, 2, "b")];
        let err = inv.on_persist(2, &disk(&b), &b[1..], None).unwrap_err();
        assert_eq!(err.property, "log matching");
        assert!(err.detail.contains("follows term 3"), "{err}");
    }

    #[test]
    fn state_machine_safety_catches_another_entry_applied() {
        let mut inv = Invariants::new();
        inv.on_apply(1, &entry(1, 1, "a")).unwrap();
        inv.on_apply(2, &entry(1, 1, "a")).unwrap();
        let err = inv.on_apply(3, &entry(2, 1, "b")).unwrap_err();
        assert_eq!(err.property, "state machine safety");
        let err = inv
            .on_persist(3, &MemoryStorage::new(), &[], Some((1, 2)))
            .unwrap_err();
        assert_eq!(
            err.property, "state machine safety",
            "a snapshot of another history"
        );
    }

    #[test]
    fn persist_before_send_catches_an_early_ack_and_an_early_vote() {
        let inv = Invariants::new();
        let mut s = disk(&[entry(1, 1, "a")]);
        s.set_hard_state(HardState {
            term: 1,
            vote: 0,
            commit: 0,
        });
        let mut ack = Message::new(MessageType::MsgAppResp, 2, 1);
        ack.term = 1;
        ack.index = 2;
        assert_eq!(
            inv.on_send(2, &s, &ack).unwrap_err().property,
            "persist before send"
        );
        ack.index = 1;
        inv.on_send(2, &s, &ack).unwrap();

        let mut vote = Message::new(MessageType::MsgVoteResp, 2, 3);
        vote.term = 1;
        assert!(inv.on_send(2, &s, &vote).is_err(), "vote not durable");
        s.set_hard_state(HardState {
            term: 1,
            vote: 3,
            commit: 0,
        });
        inv.on_send(2, &s, &vote).unwrap();
        s.set_hard_state(HardState {
            term: 2,
            vote: 0,
            commit: 0,
        });
        inv.on_send(2, &s, &vote).unwrap(); // a later term binds as well
        vote.reject = true;
        inv.on_send(2, &MemoryStorage::new(), &vote).unwrap();
    }

    #[test]
    fn an_ack_must_vouch_for_the_leaders_entries() {
        let inv = Invariants::new();
        let leader = lone_leader(1); // term 2: 1/1, 2/2
        let mut log = Vec::new();
        leader.storage().entries(1, 3, u64::MAX, &mut log).unwrap();
        let mut ack = Message::new(MessageType::MsgAppResp, 2, 1);
        ack.term = 2;
        ack.index = 2;
        inv.check_ack(2, &disk(&log), &leader, &ack).unwrap();
        // The follower still holds an older entry at 2 durably.
        log[1] = entry(1, 2, "old");
        let err = inv.check_ack(2, &disk(&log), &leader, &ack).unwrap_err();
        assert_eq!(err.property, "persist before send");
        // A rejection, or an ack to a past term's leader, vouches for nothing here.
        ack.term = 1;
        inv.check_ack(2, &disk(&log), &leader, &ack).unwrap();
    }

    /// Persists and advances until `raw` has nothing to do.
    fn drive(raw: &mut RawNode<MemoryStorage>) {
        while raw.has_ready() {
            let rd = raw.ready();
            raw.storage_mut().append(&rd.entries).unwrap();
            if let Some(hs) = rd.hard_state {
                raw.storage_mut().set_hard_state(hs);
            }
            raw.advance(rd);
        }
    }

    /// A single-voter node that elected itself, its log durable.
    fn lone_leader(id: u64) -> RawNode<MemoryStorage> {
        let mut raw = RawNode::bootstrap(&Config::new(id), MemoryStorage::new(), &[id]).unwrap();
        drive(&mut raw);
        raw.campaign();
        drive(&mut raw);
        assert_eq!(raw.raft().state, StateRole::Leader);
        raw
    }

    #[test]
    fn election_safety_catches_two_leaders_in_a_term() {
        let mut inv = Invariants::new();
        let (a, b) = (lone_leader(1), lone_leader(2));
        assert_eq!(a.raft().term, b.raft().term);
        inv.check_node(&a).unwrap();
        assert_eq!(inv.check_node(&b).unwrap_err().property, "election safety");
    }

    #[test]
    fn leader_completeness_catches_a_leader_missing_a_committed_entry() {
        // A node restarts holding 1/1 and 1/2 committed in term 1.
        let mut inv = Invariants::new();
        let mut d = disk(&[entry(1, 1, "a"), entry(1, 2, "x")]);
        d.set_hard_state(HardState {
            term: 1,
            vote: 0,
            commit: 2,
        });
        inv.on_restart(5, &d).unwrap();
        let leader = lone_leader(1); // term 2, holding 1/1 (membership), 2/2 (empty)
        assert_eq!(leader.raft().term, 2);
        assert_eq!(
            inv.check_node(&leader).unwrap_err().property,
            "leader completeness"
        );
    }

    #[test]
    fn a_stale_leader_need_not_hold_what_a_later_term_committed() {
        // A node in term 9 holds the leader's log and 9/3 committed after it:
        // the leader of term 2 (elected by late votes) cannot have 9/3.
        let leader = lone_leader(1);
        let mut log = Vec::new();
        leader.storage().entries(1, 3, u64::MAX, &mut log).unwrap();
        log.push(entry(9, 3, "x"));
        let mut d = disk(&log);
        d.set_hard_state(HardState {
            term: 9,
            vote: 0,
            commit: 3,
        });
        let mut inv = Invariants::new();
        inv.on_restart(5, &d).unwrap();
        inv.check_node(&leader).unwrap();
    }

    #[test]
    fn commit_quorum_needs_a_durable_majority() {
        let mut inv = Invariants::new();
        let raw = lone_leader(1);
        assert_eq!(
            raw.raft().log.term(raw.raft().log.committed()),
            Ok(raw.raft().term)
        );
        let err = inv.check_commit_quorum(&raw, |_, _, _| false).unwrap_err();
        assert_eq!(err.property, "joint quorums");
        let mut inv = Invariants::new();
        inv.check_commit_quorum(&raw, |_, _, _| true).unwrap();
    }

    #[test]
    fn one_change_at_a_time_catches_a_second_pending_change() {
        use rudder_raft::{ConfChangeI, ConfChangeSingle, ConfChangeType, ConfChangeV2};
        let inv = Invariants::new();
        let mut raw = lone_leader(1);
        let cc = ConfChangeV2 {
            changes: vec![ConfChangeSingle {
                change_type: ConfChangeType::AddLearnerNode as i32,
                node_id: 2,
            }],
            ..Default::default()
        };
        raw.propose_conf_change(&cc).unwrap(); // appended, not applied
        let mut second = cc.to_entry();
        second.index = raw.raft().log.last_index() + 1;
        second.term = raw.raft().term;
        let err = inv.on_leader_append(&raw, &second).unwrap_err();
        assert_eq!(err.property, "one change at a time");
        drive(&mut raw); // the first is applied now
        second.index = raw.raft().log.last_index() + 1;
        inv.on_leader_append(&raw, &second).unwrap();
    }
}
