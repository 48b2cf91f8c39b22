//! What a transport refuses: another cluster, an unknown peer, a missing
//! handshake, malformed and oversize frames, misaddressed messages. Each
//! closes (or drops) only what it concerns, with a log line saying why.

mod common;

use common::logs::{self, logged};
use common::*;
use rudder_transport::frame::{Body, MessageBatch};
use rudder_transport::{TransportConfig, TransportEvent};
use std::collections::HashMap;
use tokio::sync::mpsc::error::TryRecvError;
use tracing::Level;

#[tokio::test]
async fn a_peer_of_another_cluster_is_refused() {
    logs::capture();
    let mut other = start(TransportConfig {
        cluster_id: 8,
        ..config(2)
    })
    .await;
    let mut node = start(TransportConfig {
        peers: HashMap::from([(2, other.addr())]),
        ..config(1)
    })
    .await;
    other.transport.add_peer(1, node.addr());

    node.transport.send([msg(1, 2, 1)]);
    // The refusal fails the dial: the message is dropped and reported.
    assert_eq!(node.event().await, TransportEvent::Unreachable(2));
    assert_eq!(other.incoming.try_recv(), Err(TryRecvError::Empty));
    assert!(logged(
        Level::WARN,
        &[
            "refused a connection",
            "cluster 7, this node is in cluster 8"
        ]
    ));
    assert!(logged(
        Level::WARN,
        &["cannot reach peer", "peer refused the handshake"]
    ));
}

#[tokio::test]
async fn an_unknown_peer_is_refused_and_disconnected() {
    logs::capture();
    let mut node = start(config(11)).await;
    let mut raw = RawConn::connect(node.addr()).await;
    raw.send(Body::Hello(hello(5, 11))).await;
    match raw.recv().await {
        Some(Body::Refused(r)) => assert_eq!(r.reason, "node 5 is not a known peer"),
        other => panic!("expected Refused, got {other:?}"),
    }
    raw.closed().await;
    assert_eq!(node.incoming.try_recv(), Err(TryRecvError::Empty));
    assert!(logged(
        Level::WARN,
        &["refused a connection", "from=5", "not a known peer"]
    ));

    // A known peer that dials the wrong node is refused too.
    node.transport.add_peer(5, reserved_port().1);
    let mut raw = RawConn::connect(node.addr()).await;
    raw.send(Body::Hello(hello(5, 12))).await;
    match raw.recv().await {
        Some(Body::Refused(r)) => assert_eq!(r.reason, "meant for node 12, this is node 11"),
        other => panic!("expected Refused, got {other:?}"),
    }
    raw.closed().await;
}

#[tokio::test]
async fn a_connection_that_does_not_start_with_hello_is_closed() {
    logs::capture();
    let mut node = start(config(21)).await;
    node.transport.add_peer(22, reserved_port().1);
    let mut raw = RawConn::connect(node.addr()).await;
    raw.send(Body::Messages(MessageBatch {
        messages: vec![msg(22, 21, 1)],
    }))
    .await;
    raw.closed().await;
    assert_eq!(node.incoming.try_recv(), Err(TryRecvError::Empty));
    assert!(logged(
        Level::WARN,
        &["handshake failed", "unexpected Messages frame"]
    ));
}

/// Node 1 of a pair, and a raw connection admitted to it as node 2.
async fn pair_with_raw() -> (Vec<Node>, RawConn) {
    let nodes = cluster(2).await;
    let raw = RawConn::admitted(nodes[0].addr(), 2, 1).await;
    (nodes, raw)
}

/// The transport still serves node 2's real connection, and takes new ones.
async fn still_serving(nodes: &mut [Node], index: u64) {
    nodes[1].transport.send([msg(2, 1, index)]);
    assert_eq!(nodes[0].recv().await, msg(2, 1, index));
    RawConn::admitted(nodes[0].addr(), 2, 1).await;
}

#[tokio::test]
async fn a_malformed_frame_closes_only_that_connection() {
    logs::capture();
    let (mut nodes, mut raw) = pair_with_raw().await;
    // A Frame whose Hello field claims 200 bytes and has one.
    raw.send_raw(&[0, 0, 0, 3, 0x0a, 0xc8, 0x01]).await;
    raw.closed().await;
    assert!(logged(
        Level::WARN,
        &["closing the connection", "peer=2", "malformed frame"]
    ));
    still_serving(&mut nodes, 1).await;
}

#[tokio::test]
async fn an_oversize_frame_closes_only_that_connection() {
    logs::capture();
    let (mut nodes, mut raw) = pair_with_raw().await;
    let too_large = TransportConfig::new(1, 1, nodes[0].addr()).max_frame_bytes as u32 + 1;
    // Only the length prefix: refused before any body is read.
    raw.send_raw(&too_large.to_be_bytes()).await;
    raw.closed().await;
    assert!(logged(
        Level::WARN,
        &[
            "closing the connection",
            "peer=2",
            &format!("frame of {too_large} bytes exceeds")
        ]
    ));
    still_serving(&mut nodes, 2).await;
}

#[tokio::test]
async fn a_message_not_from_the_connections_peer_is_dropped() {
    logs::capture();
    let (mut nodes, mut raw) = pair_with_raw().await;
    let batch = vec![msg(3, 1, 1), msg(2, 1, 2), msg(2, 9, 3), msg(2, 1, 4)];
    raw.send(Body::Messages(MessageBatch { messages: batch }))
        .await;
    assert_eq!(nodes[0].recv().await, msg(2, 1, 2));
    assert_eq!(nodes[0].recv().await, msg(2, 1, 4));
    assert!(logged(
        Level::WARN,
        &["dropping a message whose sender", "from=3"]
    ));
    assert!(logged(
        Level::WARN,
        &["dropping a message whose sender", "to=9"]
    ));
    // The connection stays open.
    raw.send(Body::Messages(MessageBatch {
        messages: vec![msg(2, 1, 5)],
    }))
    .await;
    assert_eq!(nodes[0].recv().await, msg(2, 1, 5));
}
