//! Snapshots: streamed in chunks on their own connection, reassembled,
//! acknowledged; reported as finished or failed.

mod common;

use common::*;
use rudder_raft::{ConfState, Message, MessageType, Snapshot, SnapshotMetadata, SnapshotStatus};
use rudder_transport::frame::Body;
use rudder_transport::{TransportConfig, TransportEvent};
use std::collections::HashMap;
use std::time::Duration;

fn snapshot(from: u64, to: u64, bytes: usize) -> Message {
    let mut m = Message::new(MessageType::MsgSnap, from, to);
    m.term = 3;
    m.snapshot = Some(Box::new(Snapshot {
        data: pattern(bytes),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState::with_voters([1, 2, 3])),
            index: 100,
            term: 3,
        }),
    }));
    m
}

#[tokio::test]
async fn a_snapshot_of_several_mib_arrives_whole() {
    let mut nodes = cluster(2).await;
    // Five chunks of 1 MiB and a short last one.
    let snap = snapshot(1, 2, (5 << 20) + 12_345);
    nodes[0].transport.send([snap.clone()]);
    assert_eq!(nodes[1].recv().await, snap);
    assert_eq!(
        nodes[0].event().await,
        TransportEvent::Snapshot {
            to: 2,
            status: SnapshotStatus::Finish
        }
    );
    // An empty one too: a header and no chunks.
    let empty = snapshot(1, 2, 0);
    nodes[0].transport.send([empty.clone()]);
    assert_eq!(nodes[1].recv().await, empty);
    assert_eq!(
        nodes[0].event().await,
        TransportEvent::Snapshot {
            to: 2,
            status: SnapshotStatus::Finish
        }
    );
}

#[tokio::test]
async fn a_snapshot_to_a_peer_that_is_down_fails() {
    let (_held, down) = reserved_port();
    let mut node = start(TransportConfig {
        peers: HashMap::from([(2, down)]),
        ..config(1)
    })
    .await;
    node.transport.send([snapshot(1, 2, 1000)]);
    assert_eq!(
        node.event().await,
        TransportEvent::Snapshot {
            to: 2,
            status: SnapshotStatus::Failure
        }
    );
    // To a peer nobody knows: failed at once, and unreachable.
    node.transport.send([snapshot(1, 9, 10)]);
    assert_eq!(
        node.events.try_recv(),
        Ok(TransportEvent::Snapshot {
            to: 9,
            status: SnapshotStatus::Failure
        })
    );
    assert_eq!(node.events.try_recv(), Ok(TransportEvent::Unreachable(9)));
}

/// The receiver takes the snapshot's connection and stops reading after
/// the header: messages still flow on the message connection, and the
/// snapshot fails once the I/O timeout passes.
#[tokio::test]
async fn a_stalled_snapshot_does_not_hold_up_messages() {
    let peer = RawPeer::bind().await;
    let mut node = start(TransportConfig {
        io_timeout: Duration::from_millis(300),
        ..config(1)
    })
    .await;
    node.transport.add_peer(2, peer.addr());

    node.transport.send([msg(1, 2, 1)]);
    let (mut messages, _) = peer.accept().await;
    assert!(
        matches!(messages.recv().await, Some(Body::Messages(b)) if b.messages == [msg(1, 2, 1)])
    );

    node.transport.send([snapshot(1, 2, 16 << 20)]);
    let (mut stalled, _) = peer.accept().await;
    assert!(matches!(
        stalled.recv().await,
        Some(Body::SnapshotHeader(_))
    ));

    node.transport.send([msg(1, 2, 2)]);
    assert!(
        matches!(messages.recv().await, Some(Body::Messages(b)) if b.messages == [msg(1, 2, 2)])
    );
    assert_eq!(
        node.event().await,
        TransportEvent::Snapshot {
            to: 2,
            status: SnapshotStatus::Failure
        }
    );
}
