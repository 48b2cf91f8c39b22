//! `Node` with the core's asynchronous storage writes: the driver hands
//! each `Ready`'s storage work to append and apply worker tasks and
//! advances at once; the workers step their responses back through the
//! handle.

mod common;

use bytes::Bytes;
use common::within;
use rudder_node::{Node, SharedStorage};
use rudder_raft::storage_writes::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use rudder_raft::{ConfState, Config, MemoryStorage, Message, Proposed};
use tokio::sync::{mpsc, watch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_persist_and_apply_while_the_node_goes_on() {
    let storage = SharedStorage::new(MemoryStorage::new_with_conf_state(ConfState::with_voters(
        [1],
    )));
    let mut config = Config::new(1);
    config.async_storage_writes = true;
    let node = Node::new(&config, storage.clone()).unwrap();

    let (append_tx, mut append_rx) = mpsc::unbounded_channel::<Message>();
    let (apply_tx, mut apply_rx) = mpsc::unbounded_channel::<Message>();
    let (applied_tx, applied) = watch::channel((0u64, Vec::<Bytes>::new()));

    // The append worker: persist, then deliver the responses.
    let appender = tokio::spawn({
        let node = node.clone();
        async move {
            while let Some(m) = append_rx.recv().await {
                storage.lock().persist_append(&m).unwrap();
                for r in m.responses {
                    assert_eq!(r.to, 1, "a single node answers only itself");
                    if node.step(r).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // The apply worker: apply, then deliver the responses.
    let applier = tokio::spawn({
        let node = node.clone();
        async move {
            while let Some(m) = apply_rx.recv().await {
                applied_tx.send_modify(|(index, data)| {
                    for e in &m.entries {
                        *index = e.index;
                        if !e.data.is_empty() {
                            data.push(e.data.clone());
                        }
                    }
                });
                for r in m.responses {
                    if node.step(r).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // The driver: hand out the work, advance at once.
    let driver = tokio::spawn({
        let node = node.clone();
        async move {
            while let Ok(mut rd) = node.ready().await {
                for m in rd.messages.drain(..) {
                    match m.to {
                        LOCAL_APPEND_THREAD => append_tx.send(m).unwrap(),
                        LOCAL_APPLY_THREAD => apply_tx.send(m).unwrap(),
                        to => panic!("a single node has no peer {to}"),
                    }
                }
                if node.advance(rd).await.is_err() {
                    return;
                }
            }
        }
    });

    node.campaign().await.unwrap();
    // The new leader's empty entry, applied.
    within(applied.clone().wait_for(|(index, _)| *index >= 1))
        .await
        .unwrap();
    let mut last = 0;
    for d in ["a", "b", "c"] {
        match node.propose(Bytes::from(d)).await.unwrap() {
            Proposed::Appended { index, .. } => last = index,
            other => panic!("the leader appends: {other:?}"),
        }
    }
    let (_, data) = within(applied.clone().wait_for(|(index, _)| *index >= last))
        .await
        .unwrap()
        .clone();
    assert_eq!(
        data,
        vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]
    );

    node.stop().await;
    within(driver).await.unwrap();
    within(appender).await.unwrap();
    within(applier).await.unwrap();
}
