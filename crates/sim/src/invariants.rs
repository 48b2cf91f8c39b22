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

use rudder_raft::quorum::VoteResult;
use rudder_raft::{Entry, MemoryStorage, Message, MessageType, RawNode, StateRole, Storage};
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

/// What the checker knows of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntryFacts {
    hash: u64,
    /// The term of the entry before it, where the writer saw it.
    prev_term: Option<u64>,
}

/// The facts learned so far; see the module docs.
#[derive(Debug, Default)]
pub struct Invariants {
    leaders: HashMap<u64, u64>,
    entries: HashMap<(u64, u64), EntryFacts>,
    /// `committed[i - 1]` is `(term, hash)` of the entry committed at `i`.
    committed: Vec<Option<(u64, u64)>>,
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
        storage: &MemoryStorage,
        entries: &[Entry],
        snapshot: Option<(u64, u64)>,
    ) -> Result<(), Violation> {
        if let Some((index, term)) = snapshot {
            if let Some(Some((t, _))) = self.committed.get(index as usize - 1) {
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
                            format!("entry {}/{} differs from the one seen before", e.term, e.index),
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
    pub fn on_restart(&mut self, node: u64, storage: &MemoryStorage) -> Result<(), Violation> {
        let commit = storage.hard_state().commit;
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
            self.record_committed(node, e.index, e.term, fingerprint(e))?;
        }
        Ok(())
    }

    /// Node `node` applies `e`: checks state machine safety.
    pub fn on_apply(&mut self, node: u64, e: &Entry) -> Result<(), Violation> {
        self.record_committed(node, e.index, e.term, fingerprint(e))
    }

    fn record_committed(&mut self, node: u64, index: u64, term: u64, hash: u64) -> Result<(), Violation> {
        let i = index as usize - 1;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        match self.committed[i] {
            None => self.committed[i] = Some((term, hash)),
            Some((t, h)) if (t, h) != (term, hash) => {
                return Err(violation(
                    "state machine safety",
                    node,
                    format!(
                        "entry {term}/{index} committed here, but {t}/{index}{} was committed before",
                        if t == term { " (other content)" } else { "" }
                    ),
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Node `node` hands `m` to the network, with `storage` its durable
    /// state: checks persist-before-send.
    pub fn on_send(&self, node: u64, storage: &MemoryStorage, m: &Message) -> Result<(), Violation> {
        let hs = storage.hard_state();
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
            Some(MessageType::MsgVoteResp) if !m.reject => {
                // A later durable term also binds: the node can never vote
                // in `m.term` again.
                if hs.term < m.term || (hs.term == m.term && hs.vote != m.to) {
                    return Err(violation(
                        "persist before send",
                        node,
                        format!(
                            "grants its vote to {} at term {} with term {} vote {} durable",
                            m.to, m.term, hs.term, hs.vote
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks one node's state after a step: election safety, leader
    /// completeness, `applied ≤ committed ≤ last`, and records its
    /// committed entries.
    pub fn check_node(&mut self, raw: &RawNode<MemoryStorage>) -> Result<(), Violation> {
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
        let from = self.recorded.get(&id).copied().unwrap_or(0).max(r.log.first_index() - 1);
        if committed > from {
            let mut es = Vec::new();
            if r.log.slice(from + 1, committed + 1, u64::MAX, &mut es).is_ok() {
                for e in &es {
                    self.record_committed(id, e.index, e.term, fingerprint(e))?;
                }
            }
        }
        self.recorded.insert(id, committed);
        Ok(())
    }

    /// A new leader must hold every committed entry it has not compacted.
    fn check_completeness(&self, raw: &RawNode<MemoryStorage>) -> Result<(), Violation> {
        let r = raw.raft();
        for (i, c) in self.committed.iter().enumerate() {
            let (Some((term, _)), index) = (c, i as u64 + 1) else {
                continue;
            };
            if index < r.log.first_index() {
                continue;
            }
            match r.log.term(index) {
                Ok(t) if t == *term => {}
                other => {
                    return Err(violation(
                        "leader completeness",
                        r.id,
                        format!(
                            "leads term {} without committed entry {term}/{index} (has {other:?})",
                            r.term
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Node `leader` appended `e` in its own term: a configuration change
    /// may be appended only when no earlier one is unapplied.
    pub fn on_leader_append(&self, raw: &RawNode<MemoryStorage>, e: &Entry) -> Result<(), Violation> {
        let r = raw.raft();
        if !e.is_conf_change() || e.term != r.term || r.state != StateRole::Leader {
            return Ok(());
        }
        let applied = r.log.applied();
        let mut between = Vec::new();
        if r.log.slice(applied + 1, e.index, u64::MAX, &mut between).is_err() {
            return Ok(());
        }
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
        raw: &RawNode<MemoryStorage>,
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
    use rudder_raft::{Config, HardState};

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
        let err = inv.on_persist(3, &MemoryStorage::new(), &[], Some((1, 2))).unwrap_err();
        assert_eq!(err.property, "state machine safety", "a snapshot of another history");
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
        assert_eq!(inv.on_send(2, &s, &ack).unwrap_err().property, "persist before send");
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
        let mut inv = Invariants::new();
        // Index 2 was committed elsewhere with term 9.
        inv.on_apply(5, &entry(9, 2, "x")).unwrap();
        let leader = lone_leader(1); // holds 1/1 (membership), 2/2 (empty)
        assert_ne!(leader.raft().log.term(2), Ok(9));
        assert_eq!(inv.check_node(&leader).unwrap_err().property, "leader completeness");
    }

    #[test]
    fn commit_quorum_needs_a_durable_majority() {
        let mut inv = Invariants::new();
        let raw = lone_leader(1);
        assert_eq!(raw.raft().log.term(raw.raft().log.committed()), Ok(raw.raft().term));
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
