//! Stopping a `Node`: pending calls and later calls fail with `Stopped`,
//! nothing hangs.

mod common;

use bytes::Bytes;
use common::{within, Cluster};
use futures_util::poll;
use rudder_node::{Node, NodeError, SharedStorage};
use rudder_raft::{
    ConfChange, ConfChangeType, ConfState, Config, MemoryStorage, Message, MessageType, RawNode,
    Ready, SnapshotStatus,
};
use std::pin::pin;

fn single_node() -> (Node, rudder_node::NodeTask<SharedStorage<MemoryStorage>>) {
    let storage = SharedStorage::new(MemoryStorage::new());
    let raw = RawNode::bootstrap(&Config::new(1), storage, &[1]).unwrap();
    Node::unspawned(raw)
}

/// Proposals queued when the node stops, before the task took them,
/// resolve with `Stopped`.
#[tokio::test]
async fn proposals_pending_at_stop_fail_with_stopped() {
    let (node, task) = single_node();
    let mut pending = Vec::new();
    for i in 0..100u8 {
        let mut p = Box::pin(node.propose(Bytes::from(vec![i])));
        // Polled once: queued, now waiting for the task's answer.
        assert!(poll!(&mut p).is_pending());
        pending.push(p);
    }
    let mut ready = pin!(node.ready());
    assert!(poll!(&mut ready).is_pending(), "the task has not run yet");

    // Stop, then let the task run: it ends without taking the commands.
    let (_, raw) = within(async { tokio::join!(node.stop(), task.run()) }).await;
    assert_eq!(raw.raft().log.last_index(), 1, "nothing was proposed");
    for p in pending {
        assert_eq!(within(p).await, Err(NodeError::Stopped));
    }
    assert_eq!(within(ready).await.unwrap_err(), NodeError::Stopped);
}

/// A running cluster under a stream of proposals from many tasks: stopping
/// every node ends every proposer (its last call fails with `Stopped`) and
/// every driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_under_load_ends_every_caller() {
    let c = Cluster::with_leader(&[1, 2, 3], 1).await;
    let mut proposers = Vec::new();
    for _ in 0..8 {
        let node = c.node(1).clone();
        proposers.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                match node.propose(Bytes::from_static(b"load")).await {
                    Ok(_) => accepted += 1,
                    Err(e) => return (accepted, e),
                }
            }
        }));
    }
    // Stop in the middle of the stream: once some proposals were applied.
    c.wait(1, |v| v.applied.len() >= 200).await;
    let leader = c.node(1).clone();
    c.stop().await;
    let mut accepted = 0;
    for p in proposers {
        let (n, err) = within(p).await.unwrap();
        accepted += n;
        assert_eq!(err, NodeError::Stopped);
    }
    assert!(accepted >= 200);
    assert!(leader.is_stopped());
}

/// After `stop`, every method fails with `Stopped` at once.
#[tokio::test]
async fn every_call_after_stop_fails_with_stopped() {
    let storage = SharedStorage::new(MemoryStorage::new());
    let node = Node::bootstrap(&Config::new(1), storage, &[1]).unwrap();
    // A Ready handed out and not advanced when the node stops.
    let rd = within(node.ready()).await.unwrap();
    within(node.stop()).await;
    assert!(node.is_stopped());
    let stopped = Err(NodeError::Stopped);
    assert_eq!(node.advance(rd).await, stopped);
    assert_eq!(node.tick().await, stopped);
    assert_eq!(node.campaign().await, stopped);
    assert_eq!(
        node.propose(Bytes::from_static(b"x")).await,
        Err(NodeError::Stopped)
    );
    let cc = ConfChange {
        change_type: ConfChangeType::AddNode as i32,
        node_id: 2,
        ..Default::default()
    };
    assert_eq!(node.propose_conf_change(&cc).await, Err(NodeError::Stopped));
    assert_eq!(node.apply_conf_change(&cc).await, Err(NodeError::Stopped));
    let m = Message::new(MessageType::MsgHeartbeat, 2, 1);
    assert_eq!(node.step(m).await, stopped);
    assert_eq!(node.ready().await.unwrap_err(), NodeError::Stopped);
    assert_eq!(node.advance(Ready::default()).await, stopped);
    assert_eq!(node.transfer_leadership(1).await, stopped);
    assert_eq!(node.forget_leader().await, stopped);
    assert_eq!(node.read_index(Bytes::from_static(b"r")).await, stopped);
    assert_eq!(node.status().await.unwrap_err(), NodeError::Stopped);
    assert_eq!(node.basic_status().await.unwrap_err(), NodeError::Stopped);
    assert_eq!(node.report_unreachable(2).await, stopped);
    assert_eq!(
        node.report_snapshot(2, SnapshotStatus::Failure).await,
        stopped
    );
    // Stopping again returns at once; so does a clone.
    within(node.stop()).await;
    within(node.clone().stop()).await;
}

/// A `ready` waiting on an idle node when it stops fails with `Stopped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_ready_fails_when_the_node_stops() {
    let storage = SharedStorage::new(MemoryStorage::new_with_conf_state(ConfState::with_voters(
        [1, 2, 3],
    )));
    // A follower with nothing to do: no Ready will come.
    let node = Node::new(&Config::new(1), storage).unwrap();
    let waiter = tokio::spawn({
        let node = node.clone();
        async move { node.ready().await.map(|rd| rd.number) }
    });
    node.stop().await;
    assert_eq!(within(waiter).await.unwrap(), Err(NodeError::Stopped));
}

/// Dropping every handle ends the task, which gives the `RawNode` back.
#[tokio::test]
async fn dropping_every_handle_ends_the_task() {
    let (node, task) = single_node();
    let task = tokio::spawn(task.run());
    let other = node.clone();
    node.propose(Bytes::from_static(b"a"))
        .await
        .expect_err("not leader yet");
    drop(node);
    drop(other);
    let raw = within(task).await.unwrap();
    assert_eq!(raw.basic_status().id, 1);
}

/// A dropped `ready` future loses nothing; a task dropped unrun fails the
/// handle's calls instead of leaving them waiting.
#[tokio::test]
async fn dropped_ready_futures_and_unrun_tasks_lose_nothing() {
    let (node, task) = single_node();
    for _ in 0..3 {
        let mut ready = pin!(node.ready());
        assert!(poll!(&mut ready).is_pending());
    }
    let task = tokio::spawn(task.run());
    let rd = within(node.ready()).await.unwrap();
    assert_eq!(rd.number, 1, "the bootstrap Ready");
    node.stop().await;
    within(task).await.unwrap();

    let (node, task) = single_node();
    drop(task);
    assert!(node.is_stopped());
    assert_eq!(node.status().await.unwrap_err(), NodeError::Stopped);
    assert_eq!(node.ready().await.unwrap_err(), NodeError::Stopped);
    within(node.stop()).await;
}
