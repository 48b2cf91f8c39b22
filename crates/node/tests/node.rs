//! `Node` driving single-node and three-node clusters: proposals (many at
//! once), reads, status, leadership transfer, membership changes.

mod common;

use bytes::Bytes;
use common::{within, Cluster};
use futures_util::StreamExt;
use rudder_node::{Node, NodeError, SharedStorage};
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::tracker::ProgressState;
use rudder_raft::{
    ConfChange, ConfChangeType, ConfState, Config, DropReason, MemoryStorage, Outcome, Proposed,
    Ready, SnapshotStatus, StateRole, Storage,
};
use std::collections::{BTreeSet, HashMap};

fn data(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test]
async fn single_node_elects_itself_and_commits() {
    let c = Cluster::bootstrap(&[1]);
    // A node refuses to campaign before it applied the membership.
    c.wait(1, |v| v.conf_states.len() == 1).await;
    c.node(1).campaign().await.unwrap();
    c.wait(1, |v| v.role == Some(StateRole::Leader)).await;
    let proposed = c.node(1).propose(data("x")).await.unwrap();
    let Proposed::Appended { index, .. } = proposed else {
        panic!("the leader appends: {proposed:?}");
    };
    let view = c.wait(1, |v| v.applied_index >= index).await;
    assert_eq!(view.applied, vec![(index, data("x"))]);
    assert_eq!(
        view.conf_states.last(),
        Some(&ConfState::with_voters([1])),
        "the bootstrap membership was applied through the node"
    );
    c.stop().await;
}

/// Ticks alone elect a leader: the node has no clock, `tick` is its clock.
#[tokio::test]
async fn ticks_elect_a_leader() {
    let c = Cluster::bootstrap(&[1, 2, 3]);
    c.wait(1, |v| v.conf_states.len() == 3).await;
    // Only node 1 is ticked; its randomized election timeout is below
    // twice `election_tick`.
    for _ in 0..2 * Config::new(1).election_tick {
        c.node(1).tick().await.unwrap();
    }
    c.wait_leader(1).await;
    c.stop().await;
}

#[tokio::test]
async fn three_nodes_replicate_from_leader_and_forward_from_followers() {
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    let on_leader = c.node(1).propose(data("from leader")).await.unwrap();
    assert!(
        matches!(on_leader, Proposed::Appended { .. }),
        "{on_leader:?}"
    );
    let on_follower = c.node(3).propose(data("from follower")).await.unwrap();
    assert_eq!(on_follower, Proposed::Forwarded { to: 1 });
    c.wait_all(|v| v.applied.len() == 2).await;
    let expected: Vec<Bytes> = vec![data("from leader"), data("from follower")];
    for id in 1..=3 {
        let got: Vec<Bytes> = c.view(id).applied.into_iter().map(|(_, d)| d).collect();
        assert_eq!(got, expected, "node {id}");
    }
    c.stop().await;
}

/// Many tasks propose at once on the leader (and some on followers): every
/// proposal is committed and applied exactly once, in the same order on
/// every node, and the leader reports each of its own as committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_from_many_tasks_are_applied_exactly_once() {
    const TASKS: usize = 16;
    const EACH: usize = 40;
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        // Three quarters on the leader, the rest through followers.
        let node = c.node([1, 1, 1, 2, 3][t % 5]).clone();
        tasks.push(tokio::spawn(async move {
            let mut appended = Vec::new();
            for i in 0..EACH {
                match node.propose(data(&format!("{t}/{i}"))).await.unwrap() {
                    Proposed::Appended { index, term } => appended.push((index, term)),
                    Proposed::Forwarded { to } => assert_eq!(to, 1),
                }
            }
            appended
        }));
    }
    let mut appended = BTreeSet::new();
    for t in tasks {
        for p in within(t).await.unwrap() {
            assert!(appended.insert(p), "two proposals at one index: {p:?}");
        }
    }
    let total = TASKS * EACH;
    let applied_first = |v: &common::View| v.applied.len() >= total;
    c.wait_all(applied_first).await;

    let leader_order: Vec<Bytes> = c.view(1).applied.iter().map(|(_, d)| d.clone()).collect();
    let mut seen = HashMap::new();
    for d in &leader_order {
        *seen.entry(d.clone()).or_insert(0) += 1;
    }
    assert_eq!(leader_order.len(), total, "nothing applied twice");
    for t in 0..TASKS {
        for i in 0..EACH {
            assert_eq!(seen.get(&data(&format!("{t}/{i}"))), Some(&1), "{t}/{i}");
        }
    }
    // Each task's proposals in the order it made them.
    for t in 0..TASKS {
        let mine: Vec<&Bytes> = leader_order
            .iter()
            .filter(|d| d.starts_with(format!("{t}/").as_bytes()))
            .collect();
        let expected: Vec<Bytes> = (0..EACH).map(|i| data(&format!("{t}/{i}"))).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>(), "task {t}");
    }
    for id in [2, 3] {
        let order: Vec<Bytes> = c.view(id).applied.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(order, leader_order, "node {id} applied the same sequence");
    }
    // The leader settled every proposal appended on it, as committed.
    let outcomes = c.view(1).outcomes;
    assert!(
        outcomes.iter().all(|o| o.outcome == Outcome::Committed),
        "only commits: {outcomes:?}"
    );
    let committed: Vec<(u64, u64)> = outcomes
        .iter()
        .flat_map(|o| o.indexes().map(move |i| (i, o.term)))
        .collect();
    let once: BTreeSet<(u64, u64)> = committed.iter().copied().collect();
    assert_eq!(
        committed.len(),
        once.len(),
        "each settled once: {outcomes:?}"
    );
    let committed = once;
    assert_eq!(committed, appended);
    c.stop().await;
}

#[tokio::test]
async fn a_proposal_without_a_leader_is_refused_with_the_reason() {
    let c = Cluster::bootstrap(&[1, 2, 3]);
    let err = c.node(2).propose(data("x")).await.unwrap_err();
    assert_eq!(err.drop_reason(), Some(DropReason::NoLeader), "{err}");
    c.stop().await;
}

#[tokio::test]
async fn status_reports_progress_on_the_leader_only() {
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    let leader = c.node(1).status().await.unwrap();
    assert_eq!(leader.basic.id, 1);
    assert_eq!(leader.basic.soft_state.raft_state, StateRole::Leader);
    let ids: Vec<u64> = leader.progress.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!(
        leader.progress.iter().all(|(_, p)| p.matched >= 4),
        "{:?}",
        leader.progress
    );
    let follower = c.node(2).status().await.unwrap();
    assert_eq!(follower.basic.soft_state.raft_state, StateRole::Follower);
    assert_eq!(follower.basic.soft_state.leader_id, 1);
    assert!(follower.progress.is_empty());
    assert_eq!(follower.config.to_conf_state().voters, vec![1, 2, 3]);
    let basic = c.node(3).basic_status().await.unwrap();
    assert_eq!((basic.id, basic.soft_state.leader_id), (3, 1));
    assert!(basic.applied >= 4);
    c.stop().await;
}

#[tokio::test]
async fn read_index_produces_a_read_state_on_leader_and_follower() {
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    c.node(1).propose(data("w")).await.unwrap();
    c.wait_all(|v| v.applied.len() == 1).await;
    let commit = c.node(1).basic_status().await.unwrap().hard_state.commit;

    c.node(1).read_index(data("read-1")).await.unwrap();
    let view = c.wait(1, |v| !v.read_states.is_empty()).await;
    assert_eq!(view.read_states[0].request_ctx, data("read-1"));
    assert_eq!(view.read_states[0].index, commit);

    c.node(2).read_index(data("read-2")).await.unwrap();
    let view = c.wait(2, |v| !v.read_states.is_empty()).await;
    assert_eq!(view.read_states[0].request_ctx, data("read-2"));
    assert_eq!(view.read_states[0].index, commit);
    c.stop().await;
}

#[tokio::test]
async fn transfer_leadership_changes_the_leader() {
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    c.node(1).transfer_leadership(2).await.unwrap();
    c.wait_leader(2).await;
    assert_eq!(
        c.node(2)
            .basic_status()
            .await
            .unwrap()
            .soft_state
            .raft_state,
        StateRole::Leader
    );
    // The new leader takes proposals; the old one forwards them.
    assert!(matches!(
        c.node(2).propose(data("after")).await.unwrap(),
        Proposed::Appended { .. }
    ));
    assert_eq!(
        c.node(1).propose(data("forwarded")).await.unwrap(),
        Proposed::Forwarded { to: 2 }
    );
    c.wait_all(|v| v.applied.len() == 2).await;
    // Transfer to a non-member is refused.
    let err = c.node(2).transfer_leadership(9).await.unwrap_err();
    assert!(matches!(err, NodeError::Raft(_)), "{err:?}");
    c.stop().await;
}

#[tokio::test]
async fn forget_leader_on_a_follower() {
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    c.node(2).forget_leader().await.unwrap();
    let basic = c.node(2).basic_status().await.unwrap();
    assert_eq!(basic.soft_state.leader_id, 0);
    c.wait(2, |v| v.leader == 0).await;
    c.stop().await;
}

/// A conf change proposed and applied through the nodes; the new node,
/// started from an empty storage, catches up on the whole log.
#[tokio::test]
async fn conf_change_adds_a_node_that_then_catches_up() {
    let mut c = Cluster::with_leader(&[1, 2, 3], 1).await;
    // Node 4 runs before it is added, so the leader's first probe reaches
    // it (a lost probe is retried only on a heartbeat, and nothing ticks).
    let storage = SharedStorage::new(MemoryStorage::new());
    let node = Node::new(&Config::new(4), storage.clone()).unwrap();
    c.add(node, storage);
    let cc = ConfChange {
        change_type: ConfChangeType::AddNode as i32,
        node_id: 4,
        ..Default::default()
    };
    let Proposed::Appended { index, .. } = c.node(1).propose_conf_change(&cc).await.unwrap() else {
        panic!("the leader appends");
    };
    let four = ConfState::with_voters([1, 2, 3, 4]);
    c.wait_all(|v| v.applied_index >= index).await;
    for id in 1..=4 {
        assert_eq!(c.view(id).conf_states.last(), Some(&four), "node {id}");
        let status = c.node(id).status().await.unwrap();
        assert_eq!(status.config.to_conf_state().voters, vec![1, 2, 3, 4]);
        assert_eq!(
            c.members[&id].storage.initial_state().unwrap().conf_state,
            four
        );
    }
    c.node(1).propose(data("welcome")).await.unwrap();
    let view = c.wait(4, |v| v.applied.len() == 1).await;
    assert_eq!(view.applied[0].1, data("welcome"));
    assert_eq!(view.conf_states.last(), Some(&four));
    assert_eq!(view.leader, 1);
    c.stop().await;
}

/// The leader refuses a second conf change while one is not yet applied;
/// the error carries the reason.
#[tokio::test]
async fn conf_change_refusals_come_back_typed() {
    // A node whose Readys nobody takes: its conf change stays unapplied.
    let storage = SharedStorage::new(MemoryStorage::new_with_conf_state(ConfState::with_voters(
        [1],
    )));
    let node = Node::new(&Config::new(1), storage.clone()).unwrap();
    node.campaign().await.unwrap();
    // Become leader: persist and advance the election's Readys by hand.
    loop {
        let rd = within(node.ready()).await.unwrap();
        persist(&storage, &rd);
        node.advance(rd).await.unwrap();
        if node.basic_status().await.unwrap().soft_state.raft_state == StateRole::Leader {
            break;
        }
    }
    let add = |id| ConfChange {
        change_type: ConfChangeType::AddLearnerNode as i32,
        node_id: id,
        ..Default::default()
    };
    node.propose_conf_change(&add(2)).await.unwrap();
    let err = node.propose_conf_change(&add(3)).await.unwrap_err();
    assert_eq!(
        err.drop_reason(),
        Some(DropReason::ConfChangePending),
        "{err}"
    );
    node.stop().await;
}

fn persist(storage: &SharedStorage<MemoryStorage>, rd: &Ready) {
    let mut s = storage.lock();
    if let Some(snap) = &rd.snapshot {
        s.apply_snapshot((**snap).clone()).unwrap();
    }
    s.append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        s.set_hard_state(hs);
    }
}

#[tokio::test]
async fn report_unreachable_sends_the_leader_back_to_probing() {
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    let state_of = |s: &rudder_raft::Status, id| {
        s.progress
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, p)| p.state)
            .unwrap()
    };
    let before = c.node(1).status().await.unwrap();
    assert_eq!(state_of(&before, 2), ProgressState::Replicate);
    c.node(1).report_unreachable(2).await.unwrap();
    let after = c.node(1).status().await.unwrap();
    assert_eq!(state_of(&after, 2), ProgressState::Probe);
    // A snapshot report for a peer not receiving one changes nothing.
    c.node(1)
        .report_snapshot(3, SnapshotStatus::Finish)
        .await
        .unwrap();
    let after = c.node(1).status().await.unwrap();
    assert_eq!(state_of(&after, 3), ProgressState::Replicate);
    c.stop().await;
}

#[tokio::test]
async fn advance_refuses_a_ready_not_handed_out() {
    let storage = SharedStorage::new(MemoryStorage::new());
    let node = Node::bootstrap(&Config::new(1), storage.clone(), &[1]).unwrap();
    assert_eq!(
        node.advance(Ready::default()).await,
        Err(NodeError::UnknownReady { number: 0 })
    );
    let rd = within(node.ready()).await.unwrap();
    let forged = Ready {
        number: rd.number + 1,
        ..Ready::default()
    };
    assert_eq!(
        node.advance(forged).await,
        Err(NodeError::UnknownReady {
            number: rd.number + 1
        })
    );
    persist(&storage, &rd);
    node.advance(rd).await.unwrap();
    node.stop().await;
}

/// The stream form of `ready` drives a node; while it lives, `ready`
/// waits; it ends when the node stops.
#[tokio::test]
async fn ready_stream_drives_a_node_and_ends_at_stop() {
    let storage = SharedStorage::new(MemoryStorage::new());
    let node = Node::bootstrap(&Config::new(1), storage.clone(), &[1]).unwrap();
    let mut readies = node.ready_stream().await;
    let mut applied = Vec::new();
    let mut proposed = false;
    while applied.is_empty() {
        let mut rd = within(readies.next()).await.expect("a Ready");
        persist(&storage, &rd);
        for e in rd.committed_entries.drain(..) {
            match decode_conf_change(&e).unwrap() {
                Some(cc) => {
                    let cs = node.apply_conf_change(&cc).await.unwrap();
                    storage.lock().set_conf_state(cs);
                }
                None if !e.data.is_empty() => applied.push(e.data),
                None => {}
            }
        }
        node.advance(rd).await.unwrap();
        match node.basic_status().await.unwrap().soft_state.raft_state {
            StateRole::Follower => node.campaign().await.unwrap(),
            StateRole::Leader if !proposed => {
                node.propose(data("s")).await.unwrap();
                proposed = true;
            }
            _ => {}
        }
    }
    assert_eq!(applied, vec![data("s")]);
    node.stop().await;
    assert!(within(readies.next()).await.is_none());
    drop(readies);
    assert_eq!(node.ready().await.unwrap_err(), NodeError::Stopped);
}
