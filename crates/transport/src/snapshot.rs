//! Snapshots, streamed on a connection of their own so a large one never
//! holds up the heartbeats and appends on the peer's message connection.
//!
//! The sender dials, sends a [`SnapshotHeader`] (the `MsgSnap` without its
//! data) and the data in [`SnapshotChunk`]s, then waits for the receiver's
//! [`SnapshotAck`], which comes once the receiver has reassembled the
//! message and handed it on. The sender reports
//! [`SnapshotStatus::Finish`] on the ack and [`SnapshotStatus::Failure`] on
//! anything else, so the leader always hears how it went.

use crate::error::TransportError;
use crate::frame::{Body, SnapshotChunk, SnapshotHeader};
use crate::handshake;
use crate::transport::{Shared, TransportEvent};
use bytes::{Bytes, BytesMut};
use rudder_raft::{Message, MessageType, SnapshotStatus};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The most the receiver reserves up front for the data a header
/// announces; a larger snapshot grows the buffer as chunks arrive.
const MAX_PREALLOC: u64 = 16 << 20;

/// Sends the `MsgSnap` `msg` to `peer` at `addr` and reports the outcome;
/// `cancel` (the peer removed, the transport shut down) ends it as a
/// failure.
pub(crate) async fn send(
    shared: Arc<Shared>,
    peer: u64,
    addr: SocketAddr,
    msg: Message,
    cancel: CancellationToken,
) {
    let index = msg.snapshot.as_ref().map_or(0, |s| s.index());
    let bytes = msg.snapshot.as_ref().map_or(0, |s| s.data.len());
    let outcome = tokio::select! {
        _ = cancel.cancelled() => None,
        r = stream(&shared, peer, addr, msg) => Some(r),
    };
    let status = match outcome {
        Some(Ok(())) => {
            info!(peer, index, bytes, "snapshot sent");
            SnapshotStatus::Finish
        }
        Some(Err(error)) => {
            warn!(peer, %addr, index, %error, "sending a snapshot failed");
            SnapshotStatus::Failure
        }
        None => {
            debug!(
                peer,
                index, "snapshot abandoned: peer removed or transport shut down"
            );
            SnapshotStatus::Failure
        }
    };
    shared.report(TransportEvent::Snapshot { to: peer, status });
}

/// Dials, streams the header and chunks, and waits for the ack.
async fn stream(
    shared: &Shared,
    peer: u64,
    addr: SocketAddr,
    mut msg: Message,
) -> Result<(), TransportError> {
    let config = &shared.config;
    let mut conn = handshake::dial(addr, shared.hello(peer), config).await?;
    let data = msg
        .snapshot
        .as_mut()
        .map(|s| std::mem::take(&mut s.data))
        .unwrap_or_default();
    conn.send(Body::SnapshotHeader(SnapshotHeader {
        message: Some(msg),
        total_bytes: data.len() as u64,
    }))
    .await?;
    let mut start = 0;
    while start < data.len() {
        let end = data.len().min(start + config.snapshot_chunk_bytes);
        conn.send(Body::SnapshotChunk(SnapshotChunk {
            data: data.slice(start..end),
        }))
        .await?;
        start = end;
    }
    let reply = tokio::time::timeout(config.io_timeout, conn.recv())
        .await
        .map_err(|_| TransportError::Timeout("the snapshot's acknowledgement"))??;
    match reply {
        Some(Body::SnapshotAck(_)) => Ok(()),
        Some(other) => Err(TransportError::UnexpectedFrame {
            got: other.name(),
            expected: "SnapshotAck",
        }),
        None => Err(TransportError::Closed),
    }
}

/// A snapshot being received: the header's message and the data so far.
#[derive(Debug)]
pub(crate) struct Assembly {
    message: Message,
    data: BytesMut,
    declared: u64,
}

impl Assembly {
    /// Starts from a header, which must carry a `MsgSnap`.
    pub(crate) fn new(header: SnapshotHeader) -> Result<Assembly, TransportError> {
        let message = header
            .message
            .filter(|m| m.kind() == Some(MessageType::MsgSnap))
            .ok_or(TransportError::NotASnapshot)?;
        Ok(Assembly {
            message,
            data: BytesMut::with_capacity(header.total_bytes.min(MAX_PREALLOC) as usize),
            declared: header.total_bytes,
        })
    }

    /// Appends the next chunk; more data than the header announced is an
    /// error.
    pub(crate) fn push(&mut self, chunk: &Bytes) -> Result<(), TransportError> {
        let received = self.data.len() as u64 + chunk.len() as u64;
        if received > self.declared {
            return Err(TransportError::SnapshotOverrun {
                declared: self.declared,
                received,
            });
        }
        self.data.extend_from_slice(chunk);
        Ok(())
    }

    /// Whether all the announced data has arrived.
    pub(crate) fn is_complete(&self) -> bool {
        self.data.len() as u64 == self.declared
    }

    /// The original message, its data back in place.
    pub(crate) fn finish(self) -> Message {
        let mut message = self.message;
        if !self.data.is_empty() || message.snapshot.is_some() {
            message.snapshot.get_or_insert_with(Default::default).data = self.data.freeze();
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_raft::{Snapshot, SnapshotMetadata};

    fn header(total_bytes: u64) -> SnapshotHeader {
        let mut m = Message::new(MessageType::MsgSnap, 1, 2);
        m.snapshot = Some(Box::new(Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                index: 5,
                term: 2,
                conf_state: None,
            }),
        }));
        SnapshotHeader {
            message: Some(m),
            total_bytes,
        }
    }

    #[test]
    fn reassembles_the_chunks_in_order() {
        let mut a = Assembly::new(header(5)).unwrap();
        assert!(!a.is_complete());
        a.push(&Bytes::from_static(b"abc")).unwrap();
        a.push(&Bytes::from_static(b"de")).unwrap();
        assert!(a.is_complete());
        let m = a.finish();
        let snap = m.snapshot.unwrap();
        assert_eq!(snap.data, Bytes::from_static(b"abcde"));
        assert_eq!(snap.index(), 5);
    }

    #[test]
    fn an_empty_snapshot_is_complete_at_once() {
        let a = Assembly::new(header(0)).unwrap();
        assert!(a.is_complete());
        assert_eq!(a.finish().snapshot.unwrap().index(), 5);
        // A MsgSnap that carried no snapshot at all arrives as it left.
        let bare = Message::new(MessageType::MsgSnap, 1, 2);
        let a = Assembly::new(SnapshotHeader {
            message: Some(bare.clone()),
            total_bytes: 0,
        })
        .unwrap();
        assert_eq!(a.finish(), bare);
    }

    #[test]
    fn refuses_more_data_than_announced() {
        let mut a = Assembly::new(header(2)).unwrap();
        let err = a.push(&Bytes::from_static(b"abc")).unwrap_err();
        assert!(matches!(
            err,
            TransportError::SnapshotOverrun {
                declared: 2,
                received: 3
            }
        ));
    }

    #[test]
    fn a_header_must_carry_a_msg_snap() {
        let mut h = header(1);
        h.message.as_mut().unwrap().msg_type = MessageType::MsgApp as i32;
        assert!(matches!(
            Assembly::new(h),
            Err(TransportError::NotASnapshot)
        ));
        assert!(matches!(
            Assembly::new(SnapshotHeader {
                message: None,
                total_bytes: 1
            }),
            Err(TransportError::NotASnapshot)
        ));
    }
}
