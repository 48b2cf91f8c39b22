//! Messages between transports: both ways, in order, coalesced; a full
//! queue; start and shutdown.

mod common;

use common::*;
use rudder_transport::frame::Body;
use rudder_transport::{ConfigError, Transport, TransportError, TransportEvent};
use tokio::sync::mpsc::error::TryRecvError;

#[tokio::test]
async fn two_nodes_exchange_messages_both_ways() {
    let mut nodes = cluster(2).await;
    nodes[0].transport.send([msg(1, 2, 10)]);
    nodes[1].transport.send([msg(2, 1, 20)]);
    assert_eq!(nodes[1].recv().await, msg(1, 2, 10));
    assert_eq!(nodes[0].recv().await, msg(2, 1, 20));
    for n in &nodes {
        n.transport.shutdown().await;
    }
}

#[tokio::test]
async fn three_nodes_exchange_every_way() {
    let mut nodes = cluster(3).await;
    for from in 1..=3u64 {
        let to: Vec<_> = (1..=3u64).filter(|&to| to != from).collect();
        nodes[from as usize - 1]
            .transport
            .send(to.iter().map(|&to| msg(from, to, from * 10 + to)));
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let me = i as u64 + 1;
        let mut got = vec![node.recv().await, node.recv().await];
        got.sort_by_key(|m| m.from);
        let want: Vec<_> = (1..=3u64)
            .filter(|&f| f != me)
            .map(|f| msg(f, me, f * 10 + me))
            .collect();
        assert_eq!(got, want, "node {me}");
    }
}

#[tokio::test]
async fn many_messages_arrive_in_order_per_peer() {
    const PER_SENDER: u64 = 3000; // below the queue capacity: none dropped
    let mut nodes = cluster(3).await;
    for round in 0..30 {
        for from in [1u64, 2] {
            let first = round * 100;
            nodes[from as usize - 1]
                .transport
                .send((first..first + 100).map(|i| msg(from, 3, i)));
        }
    }
    let mut next = [0u64; 2];
    while next != [PER_SENDER; 2] {
        let m = nodes[2].recv().await;
        let expected = &mut next[m.from as usize - 1];
        assert_eq!(m.index, *expected, "from {}", m.from);
        *expected += 1;
    }
    for node in &mut nodes[..2] {
        assert_eq!(node.events.try_recv(), Err(TryRecvError::Empty));
    }
}

/// The test runs on one thread, so the writer cannot run while `send`
/// queues: everything queued is what it drains at once.
#[tokio::test]
async fn what_is_queued_leaves_in_one_frame() {
    let peer = RawPeer::bind().await;
    let node = start(config(1)).await;
    node.transport.add_peer(2, peer.addr());

    node.transport.send([msg(1, 2, 0)]);
    let (mut conn, hello) = peer.accept().await;
    assert_eq!(hello, common::hello(1, 2));
    match conn.recv().await {
        Some(Body::Messages(batch)) => assert_eq!(batch.messages, vec![msg(1, 2, 0)]),
        other => panic!("expected Messages, got {other:?}"),
    }

    node.transport.send((1..=1000).map(|i| msg(1, 2, i)));
    let mut frames = 0;
    let mut received = Vec::new();
    while received.len() < 1000 {
        match conn.recv().await {
            Some(Body::Messages(batch)) => received.extend(batch.messages),
            other => panic!("expected Messages, got {other:?}"),
        }
        frames += 1;
    }
    assert_eq!(
        received,
        (1..=1000).map(|i| msg(1, 2, i)).collect::<Vec<_>>()
    );
    assert_eq!(frames, 1, "1000 queued messages should leave as one frame");
}

#[tokio::test]
async fn a_full_queue_reports_unreachable_without_blocking() {
    let (_held, down) = reserved_port();
    let mut node = start(rudder_transport::TransportConfig {
        queue_capacity: 4,
        ..config(1)
    })
    .await;
    node.transport.add_peer(2, down);

    // `send` is synchronous: by the time it returns, the overflow is known.
    node.transport.send((0..10).map(|i| msg(1, 2, i)));
    assert_eq!(node.events.try_recv(), Ok(TransportEvent::Unreachable(2)));
    assert_eq!(
        node.events.try_recv(),
        Err(TryRecvError::Empty),
        "one report per peer per call"
    );
    node.transport.send([msg(1, 9, 0)]);
    assert_eq!(node.events.try_recv(), Ok(TransportEvent::Unreachable(9)));
    // The messages that were queued are dropped when the dial fails.
    assert_eq!(node.event().await, TransportEvent::Unreachable(2));
    // All eleven are counted dropped, by type: six to the full queue,
    // one to the unknown peer, four when the dial failed.
    let dropped: u64 = node
        .transport
        .dropped_by_type()
        .iter()
        .map(|&(_, n)| n)
        .sum();
    assert_eq!(dropped, 11, "{:?}", node.transport.dropped_by_type());
}

#[tokio::test]
async fn start_refuses_a_taken_port_and_a_bad_config() {
    let node = start(config(1)).await;
    let taken = rudder_transport::TransportConfig {
        listen: node.addr(),
        ..config(2)
    };
    match Transport::start(taken).await {
        Err(TransportError::Bind { addr, .. }) => assert_eq!(addr, node.addr()),
        other => panic!("expected Bind, got {:?}", other.map(|_| ())),
    }
    let bad = rudder_transport::TransportConfig {
        queue_capacity: 0,
        ..config(2)
    };
    match Transport::start(bad).await {
        Err(TransportError::Config(ConfigError::ZeroQueueCapacity)) => {}
        other => panic!("expected Config, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn shutdown_ends_everything() {
    let mut nodes = cluster(2).await;
    nodes[1].transport.send([msg(2, 1, 1)]);
    assert_eq!(nodes[0].recv().await, msg(2, 1, 1));
    let mut raw = RawConn::admitted(nodes[0].addr(), 2, 1).await;
    let addr = nodes[0].addr();

    within(nodes[0].transport.shutdown()).await;
    // Every task that could deliver has ended.
    assert!(within(nodes[0].incoming.recv()).await.is_none());
    within(raw.closed()).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
    nodes[0].transport.send([msg(1, 2, 2)]);
    assert_eq!(
        nodes[0].events.try_recv(),
        Ok(TransportEvent::Unreachable(2))
    );
    // A second shutdown is harmless.
    within(nodes[0].transport.shutdown()).await;
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let start = Transport::start(config(1));
    // Polled by a plain executor, with no Tokio runtime around.
    let result = futures_util::FutureExt::now_or_never(start).expect("ready at once");
    assert!(matches!(result, Err(TransportError::NoRuntime)));
}
