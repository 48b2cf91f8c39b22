//! Dialling again: a peer that comes up late, one that restarts, one
//! removed and added back.

mod common;

use common::*;
use rudder_transport::frame::Body;
use rudder_transport::{TransportConfig, TransportEvent};
use std::collections::HashMap;

#[tokio::test]
async fn a_peer_started_later_is_reached_after_backoff() {
    let (held, addr) = reserved_port();
    let mut a = start(TransportConfig {
        peers: HashMap::from([(2, addr)]),
        ..config(1)
    })
    .await;

    a.transport.send([msg(1, 2, 1)]);
    // The dial is refused: the message is dropped and reported.
    assert_eq!(a.event().await, TransportEvent::Unreachable(2));

    drop(held);
    let mut b = start(TransportConfig {
        listen: addr,
        peers: HashMap::from([(1, a.addr())]),
        ..config(2)
    })
    .await;
    a.transport.send([msg(1, 2, 2)]);
    // After the backoff the writer dials again, and this time gets through.
    assert_eq!(b.recv().await, msg(1, 2, 2));
    b.transport.send([msg(2, 1, 3)]);
    assert_eq!(a.recv().await, msg(2, 1, 3));
}

#[tokio::test]
async fn a_peer_that_restarts_is_reconnected() {
    let mut nodes = cluster(2).await;
    nodes[0].transport.send([msg(1, 2, 1)]);
    assert_eq!(nodes[1].recv().await, msg(1, 2, 1));
    nodes[1].transport.send([msg(2, 1, 1)]);
    assert_eq!(nodes[0].recv().await, msg(2, 1, 1));

    let old = nodes.pop().unwrap();
    let addr = old.addr();
    within(old.transport.shutdown()).await;
    drop(old);
    let mut b = start(TransportConfig {
        listen: addr,
        peers: HashMap::from([(1, nodes[0].addr())]),
        ..config(2)
    })
    .await;
    let a = &mut nodes[0];

    // The new incarnation dials in...
    b.transport.send([msg(2, 1, 2)]);
    assert_eq!(a.recv().await, msg(2, 1, 2));
    // ...and by then node 1 has seen its old connection close (the close
    // came before the new dial), so it dials again to send.
    a.transport.send([msg(1, 2, 2)]);
    assert_eq!(b.recv().await, msg(1, 2, 2));
}

#[tokio::test]
async fn a_removed_peer_is_forgotten_until_added_again() {
    let mut nodes = cluster(2).await;
    nodes[0].transport.send([msg(1, 2, 1)]);
    assert_eq!(nodes[1].recv().await, msg(1, 2, 1));

    nodes[0].transport.remove_peer(2);
    nodes[0].transport.send([msg(1, 2, 2)]);
    assert_eq!(
        nodes[0].events.try_recv(),
        Ok(TransportEvent::Unreachable(2))
    );
    let mut raw = RawConn::connect(nodes[0].addr()).await;
    raw.send(Body::Hello(hello(2, 1))).await;
    assert!(matches!(raw.recv().await, Some(Body::Refused(_))));

    let addr = nodes[1].addr();
    nodes[0].transport.add_peer(2, addr);
    nodes[0].transport.send([msg(1, 2, 3)]);
    assert_eq!(nodes[1].recv().await, msg(1, 2, 3));
}
