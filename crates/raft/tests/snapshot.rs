//! Log compaction and InstallSnapshot (§7 of the Raft paper): a leader that
//! discarded entries a follower needs sends it a snapshot instead; the
//! follower replaces its log with it and catches up from there.

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::tracker::ProgressState;
use rudder_raft::{
    ConfChangeI, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, HardState,
    MemoryStorage, Message, MessageType, RaftState, RawNode, Snapshot, SnapshotMetadata,
    SnapshotStatus, StateRole, Storage, StorageError,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn snaps_to(net: &Network, to: u64) -> usize {
    net.sent_of(MessageType::MsgSnap)
        .iter()
        .filter(|m| m.to == to)
        .count()
}

/// The application's state: every applied payload, joined.
fn state_of(applied: &[Bytes]) -> Bytes {
    Bytes::from(
        applied
            .iter()
            .map(|b| b.as_ref())
            .collect::<Vec<_>>()
            .join(&b","[..]),
    )
}

/// A 3-node cluster led by 1 in which node 3 missed entries the leader has
/// since compacted into a snapshot (taken at the leader's applied index,
/// carrying its state). One more entry follows the snapshot. Node 3 is
/// still isolated. Returns the network and the snapshot's index.
fn compacted_while_3_was_away() -> (Network, u64) {
    let mut net = Network::new(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    net.isolate(3);
    for data in [&b"b"[..], b"c", b"d"] {
        net.propose(1, data).unwrap();
    }
    let applied = net.node(1).raft().log.applied();
    assert_eq!(applied, net.last_index(1), "the leader applied everything");
    let state = state_of(&net.nodes[&1].applied);
    let storage = net.node_mut(1).storage_mut();
    storage
        .create_snapshot(applied, None, state)
        .expect("snapshot at the applied index");
    storage
        .compact(applied)
        .expect("compact up to the snapshot");
    assert_eq!(
        net.node(1).raft().log.first_index(),
        applied + 1,
        "the leader's log starts after the snapshot"
    );
    assert!(
        net.last_index(3) < applied,
        "node 3 lacks entries the leader no longer has"
    );
    net.propose(1, b"e").unwrap();
    (net, applied)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// §7: "the leader must occasionally send snapshots to followers that lag
/// behind ... when the leader has already discarded the next log entry that
/// it needs to send to a follower." The follower discards its log, installs
/// the snapshot, and then receives the entries after it, ending with the
/// leader's log and the same application state.
#[test]
fn a_follower_behind_the_compacted_log_is_caught_up_by_a_snapshot() {
    let (mut net, snap_index) = compacted_while_3_was_away();
    assert_eq!(snaps_to(&net, 3), 0, "no snapshot while node 3 is away");
    net.recover();
    net.tick(1, 2);
    assert_eq!(snaps_to(&net, 3), 1, "exactly one snapshot sent to node 3");
    let node3 = net.node(3);
    assert_eq!(
        node3.raft().log.first_index(),
        snap_index + 1,
        "node 3's log starts after the snapshot"
    );
    assert_eq!(
        net.log_ids(3),
        net.log_ids(1),
        "node 3's log equals the leader's"
    );
    assert_eq!(net.committed(3), net.committed(1), "node 3's commit index");
    assert_eq!(
        node3.raft().log.applied(),
        net.node(1).raft().log.applied(),
        "node 3's applied index"
    );
    // Application state: the snapshot's state, then the entries after it.
    let snap = net.node(3).storage().clone();
    let data = rudder_raft::Storage::snapshot(&snap, 0)
        .expect("node 3 holds the snapshot")
        .data;
    assert_eq!(
        data,
        state_of(&net.nodes[&1].applied[..4]),
        "node 3 installed the leader's state"
    );
    assert_eq!(
        net.nodes[&3].applied.last(),
        Some(&Bytes::from_static(b"e")),
        "node 3 applied e after it"
    );
    assert_eq!(
        net.nodes[&3].applied_ids.last(),
        net.nodes[&1].applied_ids.last(),
        "node 3 applied up to the same entry"
    );
    assert_eq!(
        net.progress(1, 3).state,
        ProgressState::Replicate,
        "node 3 replicating again"
    );
    assert_eq!(
        net.progress(1, 3).matched,
        net.last_index(1),
        "the leader knows node 3 caught up"
    );
}

/// §7 / etcd's ReportSnapshot: if sending the snapshot failed, the leader
/// stops waiting for it: the peer goes back to probe state, and the next
/// heartbeat response makes the leader try again (here: a new snapshot).
/// While the snapshot is outstanding the leader sends no appends to it.
#[test]
fn a_failed_snapshot_is_retried_after_the_next_heartbeat_response() {
    let (mut net, snap_index) = compacted_while_3_was_away();
    net.recover();
    net.drop_type(MessageType::MsgSnap);
    net.tick(1, 1);
    assert_eq!(snaps_to(&net, 3), 1, "a snapshot was sent (and lost)");
    let pr = net.progress(1, 3);
    assert_eq!(
        pr.state,
        ProgressState::Snapshot,
        "waiting for the snapshot"
    );
    assert_eq!(
        pr.pending_snapshot, snap_index,
        "the snapshot's index is pending"
    );
    let appends_before = net
        .sent_of(MessageType::MsgApp)
        .iter()
        .filter(|m| m.to == 3)
        .count();
    net.propose(1, b"f").unwrap();
    let appends_after = net
        .sent_of(MessageType::MsgApp)
        .iter()
        .filter(|m| m.to == 3)
        .count();
    assert_eq!(
        appends_after, appends_before,
        "no appends to a peer in snapshot state"
    );

    net.node_mut(1).report_snapshot(3, SnapshotStatus::Failure);
    let pr = net.progress(1, 3);
    assert_eq!(
        pr.state,
        ProgressState::Probe,
        "a failed snapshot moves the peer to probe"
    );
    assert_eq!(pr.pending_snapshot, 0, "nothing pending any more");
    assert_eq!(
        pr.next_idx,
        pr.matched + 1,
        "probing from the match, not past the lost snapshot"
    );
    net.stabilize();
    assert_eq!(
        snaps_to(&net, 3),
        1,
        "no retry before the peer is heard from"
    );

    net.recover();
    net.tick(1, 2);
    assert_eq!(
        snaps_to(&net, 3),
        2,
        "the heartbeat response led to a second snapshot"
    );
    assert_eq!(net.log_ids(3), net.log_ids(1), "node 3 caught up");
    assert_eq!(net.committed(3), net.committed(1), "node 3's commit index");
    assert_eq!(
        net.progress(1, 3).state,
        ProgressState::Replicate,
        "node 3 replicating again"
    );
}

/// §7 / etcd's ReportSnapshot: a snapshot reported delivered lets the
/// leader resume right after it (probe from the snapshot's index), and the
/// follower's next answer puts it back in replicate state, even when the
/// follower's own answer to the snapshot was lost.
#[test]
fn a_finished_snapshot_leads_back_to_replicate() {
    let (mut net, snap_index) = compacted_while_3_was_away();
    net.recover();
    net.node_mut(1).tick();
    // The snapshot arrives, but node 3's answer to it is lost.
    let lost = net.deliver_holding(|_, m| {
        m.from == 3
            && m.kind() == Some(MessageType::MsgAppResp)
            && !m.reject
            && m.index >= snap_index
    });
    assert_eq!(snaps_to(&net, 3), 1, "a snapshot was sent");
    assert!(!lost.is_empty(), "node 3 answered the snapshot");
    assert_eq!(
        net.committed(3),
        snap_index,
        "node 3 installed the snapshot"
    );
    assert_eq!(
        net.progress(1, 3).state,
        ProgressState::Snapshot,
        "the leader still waits"
    );

    net.node_mut(1).report_snapshot(3, SnapshotStatus::Finish);
    let pr = net.progress(1, 3);
    assert_eq!(
        pr.state,
        ProgressState::Probe,
        "probing after a finished snapshot"
    );
    assert_eq!(
        pr.next_idx,
        snap_index + 1,
        "probing right after the snapshot"
    );

    net.tick(1, 2);
    assert_eq!(
        net.progress(1, 3).state,
        ProgressState::Replicate,
        "back to replicate"
    );
    assert_eq!(net.log_ids(3), net.log_ids(1), "node 3 caught up");
    assert_eq!(snaps_to(&net, 3), 1, "no second snapshot was needed");
}

fn snapshot_msg(
    from: u64,
    to: u64,
    term: u64,
    index: u64,
    snap_term: u64,
    data: &'static [u8],
) -> Message {
    let mut m = Message::new(MessageType::MsgSnap, from, to);
    m.term = term;
    m.snapshot = Some(Box::new(Snapshot {
        data: Bytes::from_static(data),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState::with_voters([1, 2, 3])),
            index,
            term: snap_term,
        }),
    }));
    m
}

/// §7 / Figure 13 (InstallSnapshot receiver): a snapshot that covers no more
/// than the follower's committed prefix brings nothing (a delayed or
/// duplicated message); the follower keeps its log, its own snapshot and
/// its commit index, and answers with its commit index. Checked on a
/// follower with its full log and on one that compacted its own log past
/// the stale snapshot (where its log cannot even confirm the snapshot's
/// last entry).
#[test]
fn a_stale_snapshot_is_ignored() {
    let mut net = Network::new(3);
    net.campaign(1);
    for data in [&b"a"[..], b"b", b"c"] {
        net.propose(1, data).unwrap();
    }
    let committed = net.committed(2);
    assert_eq!(committed, 4, "node 2 committed everything");
    for compacted in [false, true] {
        if compacted {
            let storage = net.node_mut(2).storage_mut();
            storage
                .create_snapshot(3, None, Bytes::from_static(b"a,b"))
                .unwrap();
            storage.compact(3).unwrap();
        }
        let first_before = net.node(2).raft().log.first_index();
        let log_before = net.log_ids(2);
        let snap_before = rudder_raft::Storage::snapshot(net.node(2).storage(), 0).unwrap();
        let stale = snapshot_msg(1, 2, net.term(1), 2, 1, b"stale");
        net.node_mut(2)
            .step(stale)
            .expect("node 2 takes the snapshot message");
        let out = net.take_queue();
        let case = if compacted {
            "compacted follower"
        } else {
            "full log"
        };
        assert_eq!(
            net.log_ids(2),
            log_before,
            "({case}) node 2's log is untouched"
        );
        assert_eq!(
            net.committed(2),
            committed,
            "({case}) node 2's commit index never goes back"
        );
        assert_eq!(
            net.node(2).raft().log.first_index(),
            first_before,
            "({case}) same first index"
        );
        let snap_after = rudder_raft::Storage::snapshot(net.node(2).storage(), 0).unwrap();
        assert_eq!(
            snap_after, snap_before,
            "({case}) the stale snapshot was not installed"
        );
        let resp: Vec<&Message> = out
            .iter()
            .filter(|m| m.kind() == Some(MessageType::MsgAppResp))
            .collect();
        assert_eq!(resp.len(), 1, "({case}) node 2 answers the snapshot");
        assert!(!resp[0].reject, "({case}) the answer is no rejection");
        assert_eq!(
            resp[0].index, committed,
            "({case}) node 2 tells the leader its commit index"
        );
        assert_eq!(
            net.state(2),
            StateRole::Follower,
            "({case}) node 2 still follows"
        );
    }
}

/// §7: "If instead the follower receives a snapshot that describes a prefix
/// of its log ... entries following the snapshot are still valid and must
/// be retained." A follower holding the snapshot's last entry (beyond its
/// commit index) keeps its log and only commits up to the snapshot.
#[test]
fn a_snapshot_of_a_prefix_of_the_log_keeps_the_entries_after_it() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    // Node 2 stores b and c but nobody hears its answers; node 3 is away:
    // nothing more commits.
    net.isolate(3);
    net.cut_one_way(2, 1);
    net.propose(1, b"b").unwrap();
    net.propose(1, b"c").unwrap();
    let committed = net.committed(2);
    assert_eq!(committed, 2, "node 2 committed up to a");
    assert_eq!(net.last_index(2), 4, "node 2 stores b and c");
    let log_before = net.log_ids(2);
    let (snap_index, snap_term) = log_before[2];

    let m = snapshot_msg(1, 2, net.term(1), snap_index, snap_term, b"a,b");
    net.node_mut(2)
        .step(m)
        .expect("node 2 takes the snapshot message");
    net.recover();
    net.isolate(3);
    let out = net.take_queue();
    assert_eq!(
        net.log_ids(2),
        log_before,
        "node 2 keeps its entries, including the one after the snapshot"
    );
    assert_eq!(
        net.committed(2),
        snap_index,
        "node 2 commits up to the snapshot"
    );
    assert_eq!(
        net.nodes[&2].applied,
        payloads(&[b"a", b"b"]),
        "node 2 applies its own entries up to the snapshot"
    );
    let resp: Vec<&Message> = out
        .iter()
        .filter(|m| m.kind() == Some(MessageType::MsgAppResp))
        .collect();
    assert_eq!(resp.len(), 1, "node 2 answers the snapshot");
    assert_eq!(resp[0].index, snap_index, "with its new commit index");
}

/// §7: a snapshot with new information supersedes the follower's log and
/// state machine ("the follower discards its entire log"), and a state
/// machine only moves forward. Here the snapshot arrives while a `Ready`
/// handing out an older committed entry is still being handled (the node
/// keeps stepping messages meanwhile, which the Ready contract does not
/// forbid): reporting that older entry applied must not move the applied
/// index back, or trip an invariant, and the follower then catches up.
#[test]
fn a_snapshot_arriving_while_older_entries_are_applied_supersedes_them() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    // Node 3 stores b, but the commit index moving past b never reaches it.
    net.node_mut(1).propose(Bytes::from_static(b"b")).unwrap();
    let _lost = net.deliver_holding(|_, m| {
        m.to == 3 && m.kind() == Some(MessageType::MsgApp) && m.entries.is_empty()
    });
    assert_eq!(
        (net.last_index(3), net.committed(3)),
        (3, 2),
        "node 3 holds b uncommitted"
    );
    // Node 3 goes away (and the transport says so); the leader compacts.
    net.isolate(3);
    net.node_mut(1).report_unreachable(3);
    for data in [&b"c"[..], b"d"] {
        net.propose(1, data).unwrap();
    }
    let applied = net.node(1).raft().log.applied();
    let state = state_of(&net.nodes[&1].applied);
    let storage = net.node_mut(1).storage_mut();
    storage.create_snapshot(applied, None, state).unwrap();
    storage.compact(applied).unwrap();
    net.propose(1, b"e").unwrap();
    net.recover();

    // A heartbeat tells node 3 that b is committed; its Ready hands b out.
    net.node_mut(1).tick();
    net.process(1);
    for m in net.queue.drain(..).collect::<Vec<_>>() {
        if m.to == 3 {
            net.node_mut(3).step(m).unwrap();
        } else {
            net.deliver(m);
        }
    }
    let rd3 = net.node_mut(3).ready();
    let handed_out: Vec<(u64, u64)> = rd3
        .committed_entries
        .iter()
        .map(|e| (e.index, e.term))
        .collect();
    assert_eq!(
        handed_out,
        vec![(3, 1)],
        "node 3's Ready hands out b to apply"
    );
    // While node 3 applies b, its heartbeat answer reaches the leader, whose
    // snapshot reaches node 3.
    for m in rd3.messages.iter().chain(&rd3.persisted_messages) {
        net.node_mut(1).step(m.clone()).unwrap();
    }
    net.process(1);
    let mut snaps = 0;
    for m in net.queue.drain(..).collect::<Vec<_>>() {
        if m.to == 3 {
            snaps += usize::from(m.kind() == Some(MessageType::MsgSnap));
            net.node_mut(3).step(m).unwrap();
        } else {
            net.deliver(m);
        }
    }
    assert_eq!(snaps, 1, "the leader sent node 3 its snapshot");
    assert_eq!(net.committed(3), applied, "node 3 took the snapshot");

    // Node 3 finishes handling its Ready: b is applied.
    net.node_mut(3).storage_mut().append(&rd3.entries).unwrap();
    if let Some(hs) = rd3.hard_state {
        net.node_mut(3).storage_mut().set_hard_state(hs);
    }
    net.nodes
        .get_mut(&3)
        .unwrap()
        .applied_ids
        .extend(handed_out);
    net.node_mut(3).advance(rd3);
    assert!(
        net.node(3).raft().log.applied() >= applied,
        "node 3's applied index never goes back behind the snapshot"
    );

    net.tick(1, 2);
    assert_eq!(net.log_ids(3), net.log_ids(1), "node 3 caught up");
    assert_eq!(
        net.node(3).raft().log.applied(),
        net.node(1).raft().log.applied(),
        "applied index"
    );
    let ids: Vec<u64> = net.nodes[&3].applied_ids.iter().map(|&(i, _)| i).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "node 3 applied in increasing order: {ids:?}"
    );
    assert_eq!(
        net.nodes[&3].applied.last(),
        Some(&Bytes::from_static(b"e")),
        "node 3 applied e"
    );
}

/// A storage whose snapshot can be made temporarily unavailable, as a real
/// one is while it writes a new snapshot.
struct SnapshotBusyStorage {
    inner: MemoryStorage,
    busy: bool,
}

impl Storage for SnapshotBusyStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        self.inner.initial_state()
    }
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        self.inner.entries(lo, hi, max, out)
    }
    fn term(&self, index: u64) -> Result<u64, StorageError> {
        self.inner.term(index)
    }
    fn first_index(&self) -> Result<u64, StorageError> {
        self.inner.first_index()
    }
    fn last_index(&self) -> Result<u64, StorageError> {
        self.inner.last_index()
    }
    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        if self.busy {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        self.inner.snapshot(request_index)
    }
}

/// Storage contract: while the snapshot is temporarily unavailable the
/// leader sends none (and does not fail); once it is available, the next
/// heartbeat round sends it and the follower catches up.
#[test]
fn a_temporarily_unavailable_snapshot_is_sent_once_available() {
    let voters = ConfState::with_voters([1, 2]);
    let mut leader_store = MemoryStorage::new_with_conf_state(voters.clone());
    leader_store
        .append(
            &(1..=10)
                .map(|i| Entry::new(1, i, Bytes::new()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    leader_store.set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: 10,
    });
    leader_store
        .create_snapshot(5, Some(voters.clone()), Bytes::from_static(b"state@5"))
        .unwrap();
    leader_store.compact(5).unwrap();
    let mut leader = RawNode::new(
        &test_config(1),
        SnapshotBusyStorage {
            inner: leader_store,
            busy: true,
        },
    )
    .unwrap();
    let mut follower =
        RawNode::new(&test_config(2), MemoryStorage::new_with_conf_state(voters)).unwrap();

    // Drives both nodes until quiet; returns the leader's messages.
    fn drive(
        leader: &mut RawNode<SnapshotBusyStorage>,
        follower: &mut RawNode<MemoryStorage>,
    ) -> Vec<Message> {
        let mut from_leader = Vec::new();
        loop {
            let mut wire = Vec::new();
            if leader.has_ready() {
                let mut rd = leader.ready();
                let store = &mut leader.storage_mut().inner;
                store.append(&rd.entries).unwrap();
                if let Some(hs) = rd.hard_state {
                    store.set_hard_state(hs);
                }
                wire.append(&mut rd.messages);
                wire.append(&mut rd.persisted_messages);
                leader.advance(rd);
            }
            if follower.has_ready() {
                let mut rd = follower.ready();
                if let Some(snap) = rd.snapshot.take() {
                    follower.storage_mut().apply_snapshot(*snap).unwrap();
                }
                follower.storage_mut().append(&rd.entries).unwrap();
                if let Some(hs) = rd.hard_state {
                    follower.storage_mut().set_hard_state(hs);
                }
                wire.append(&mut rd.messages);
                wire.append(&mut rd.persisted_messages);
                follower.advance(rd);
            }
            if wire.is_empty() {
                return from_leader;
            }
            for m in wire {
                if m.to == 1 {
                    leader.step(m).unwrap();
                } else {
                    from_leader.push(m.clone());
                    follower.step(m).unwrap();
                }
            }
        }
    }

    leader.campaign();
    let sent = drive(&mut leader, &mut follower);
    assert_eq!(leader.raft().state, StateRole::Leader);
    assert!(
        !sent.iter().any(|m| m.kind() == Some(MessageType::MsgSnap)),
        "no snapshot while storage says it is temporarily unavailable"
    );
    assert_eq!(
        follower.raft().log.last_index(),
        0,
        "the follower has nothing yet"
    );

    leader.storage_mut().busy = false;
    let mut snaps = 0;
    for _ in 0..5 {
        leader.tick();
        snaps += drive(&mut leader, &mut follower)
            .iter()
            .filter(|m| m.kind() == Some(MessageType::MsgSnap))
            .count();
    }
    assert_eq!(snaps, 1, "exactly one snapshot once available");
    assert_eq!(
        follower.raft().log.last_index(),
        leader.raft().log.last_index(),
        "the follower caught up after the snapshot"
    );
}

/// Persists and applies every Ready of `node` until it has none
/// (configuration changes included), as an application would.
fn settle(node: &mut RawNode<MemoryStorage>) {
    while node.has_ready() {
        let rd = node.ready();
        node.storage_mut().append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            node.storage_mut().set_hard_state(hs);
        }
        for e in &rd.committed_entries {
            if let Some(cc) = decode_conf_change(e).unwrap() {
                node.apply_conf_change(&cc).unwrap();
            }
        }
        node.advance(rd);
    }
}

/// A snapshot must not be installed while a configuration change handed
/// out before it is still being applied: applied after the snapshot's
/// configuration was installed, the older change would replace it (found
/// by the simulator: a follower ended in a joint configuration the cluster
/// had left). Node 3 is handed "add learner 5" to apply; a snapshot whose
/// configuration has no learner arrives meanwhile. It is deferred, and
/// installed when offered again after the change is applied — leaving
/// exactly the snapshot's configuration.
#[test]
fn a_snapshot_waits_for_a_configuration_change_being_applied() {
    let mut node = RawNode::bootstrap(&test_config(3), MemoryStorage::new(), &[1, 2, 3]).unwrap();
    settle(&mut node);
    let mut append = Message::new(MessageType::MsgApp, 1, 3);
    append.term = 2;
    append.log_term = 1;
    append.index = 3;
    append.commit = 4;
    let mut change = ConfChangeV2 {
        changes: vec![ConfChangeSingle {
            change_type: ConfChangeType::AddLearnerNode as i32,
            node_id: 5,
        }],
        ..Default::default()
    }
    .to_entry();
    (change.index, change.term) = (4, 2);
    append.entries = vec![change];
    node.step(append).unwrap();
    let rd = node.ready();
    assert_eq!(
        rd.committed_entries.len(),
        1,
        "the change is handed out to apply"
    );

    let snapshot = snapshot_msg(1, 3, 2, 10, 2, b"state");
    node.step(snapshot.clone()).unwrap();
    assert_eq!(node.raft().log.committed(), 4, "the snapshot is deferred");

    node.storage_mut().append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        node.storage_mut().set_hard_state(hs);
    }
    let cc = decode_conf_change(&rd.committed_entries[0])
        .unwrap()
        .unwrap();
    node.apply_conf_change(&cc).unwrap();
    node.advance(rd);
    assert_eq!(node.raft().tracker.config.learners, vec![5]);

    node.step(snapshot).unwrap();
    assert_eq!(
        node.raft().log.committed(),
        10,
        "offered again, the snapshot is installed"
    );
    settle(&mut node);
    assert_eq!(
        node.raft().tracker.conf_state(),
        ConfState::with_voters([1, 2, 3]),
        "exactly the snapshot's configuration"
    );
}
