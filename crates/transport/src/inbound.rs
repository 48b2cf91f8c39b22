//! The receiving side: the accept loop and, per connection, the handshake
//! and the reader that hands messages on.
//!
//! Whatever goes wrong on a connection — a refused or failed handshake, a
//! malformed or oversize frame, a frame out of place — is logged with the
//! peer and the reason and closes that connection only.

use crate::conn::Connection;
use crate::error::TransportError;
use crate::frame::{Body, HelloAck, Refused, SnapshotAck};
use crate::handshake::{self, Refusal, HANDSHAKE_FRAME_BYTES};
use crate::snapshot::Assembly;
use crate::transport::Shared;
use rudder_raft::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Accepts connections until the transport shuts down, each served on a
/// task of its own; messages received go to `deliver`.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    deliver: mpsc::Sender<Message>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                shared.spawn(serve(shared.clone(), stream, remote, deliver.clone()));
            }
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                warn!(%error, "accepting a connection failed");
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    _ = tokio::time::sleep(shared.config.backoff_min) => {}
                }
            }
        }
    }
}

/// Serves one inbound connection: the handshake, then frames until the
/// peer closes, a frame is bad, or the peer is removed.
async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    deliver: mpsc::Sender<Message>,
) {
    let mut conn = Connection::new(stream, HANDSHAKE_FRAME_BYTES, shared.config.io_timeout);
    let admitted = tokio::select! {
        _ = shared.cancel.cancelled() => return,
        r = tokio::time::timeout(shared.config.connect_timeout, admit(&shared, &mut conn, remote)) => r,
    };
    let (peer, cancel) = match admitted {
        Ok(Ok(Some(admitted))) => admitted,
        Ok(Ok(None)) => return, // refused, and logged
        Ok(Err(error)) => {
            warn!(%remote, %error, "handshake failed; closing the connection");
            return;
        }
        Err(_) => {
            warn!(%remote, "no handshake in time; closing the connection");
            return;
        }
    };
    conn.set_max_frame_bytes(shared.config.max_frame_bytes);
    debug!(peer, %remote, "accepted a connection");
    let ended = tokio::select! {
        _ = cancel.cancelled() => Ok(()),
        r = read_frames(&shared, &mut conn, peer, &deliver) => r,
    };
    match ended {
        Ok(()) => debug!(peer, %remote, "connection closed"),
        Err(error) => warn!(peer, %remote, %error, "closing the connection"),
    }
}

/// Reads the `Hello` and answers it. `Some` with the peer's ID and the
/// token that ends its connections when it is accepted, `None` when it is
/// refused (logged, and told to the dialer).
async fn admit(
    shared: &Shared,
    conn: &mut Connection,
    remote: SocketAddr,
) -> Result<Option<(u64, CancellationToken)>, TransportError> {
    let hello = match conn.recv().await? {
        Some(Body::Hello(hello)) => hello,
        Some(other) => {
            return Err(TransportError::UnexpectedFrame {
                got: other.name(),
                expected: "Hello",
            })
        }
        None => return Err(TransportError::Closed),
    };
    let admitted = handshake::check_hello(&hello, &shared.config).and_then(|()| {
        shared
            .peer_token(hello.from)
            .ok_or(Refusal::UnknownPeer { from: hello.from })
    });
    match admitted {
        Ok(cancel) => {
            conn.send(Body::HelloAck(HelloAck {})).await?;
            Ok(Some((hello.from, cancel)))
        }
        Err(refusal) => {
            warn!(%remote, from = hello.from, reason = %refusal, "refused a connection");
            conn.send(Body::Refused(Refused {
                reason: refusal.to_string(),
            }))
            .await?;
            Ok(None)
        }
    }
}

/// Hands on the messages of an admitted connection from `peer`: message
/// batches, or one snapshot after another, each acknowledged once handed
/// on. Waits when `deliver` is full, which slows this peer only. Ends
/// quietly when the peer closes or nobody receives any more.
async fn read_frames(
    shared: &Shared,
    conn: &mut Connection,
    peer: u64,
    deliver: &mpsc::Sender<Message>,
) -> Result<(), TransportError> {
    let me = shared.config.id;
    let mut snapshot: Option<Assembly> = None;
    while let Some(body) = conn.recv().await? {
        let complete = match body {
            Body::Messages(batch) if snapshot.is_none() => {
                for m in batch.messages {
                    if addressed(&m, peer, me) && deliver.send(m).await.is_err() {
                        return Ok(());
                    }
                }
                None
            }
            Body::SnapshotHeader(header) if snapshot.is_none() => {
                let assembly = Assembly::new(header)?;
                if assembly.is_complete() {
                    Some(assembly)
                } else {
                    snapshot = Some(assembly);
                    None
                }
            }
            Body::SnapshotChunk(chunk) => {
                let Some(assembly) = snapshot.as_mut() else {
                    return Err(TransportError::UnexpectedFrame {
                        got: "SnapshotChunk",
                        expected: "Messages or SnapshotHeader",
                    });
                };
                assembly.push(&chunk.data)?;
                if assembly.is_complete() {
                    snapshot.take()
                } else {
                    None
                }
            }
            other => {
                return Err(TransportError::UnexpectedFrame {
                    got: other.name(),
                    expected: if snapshot.is_some() {
                        "SnapshotChunk"
                    } else {
                        "Messages or SnapshotHeader"
                    },
                })
            }
        };
        if let Some(assembly) = complete {
            let m = assembly.finish();
            if !addressed(&m, peer, me) {
                // No ack: the sender reports the snapshot failed.
                return Ok(());
            }
            let (index, bytes) = m
                .snapshot
                .as_ref()
                .map_or((0, 0), |s| (s.index(), s.data.len()));
            if deliver.send(m).await.is_err() {
                return Ok(());
            }
            conn.send(Body::SnapshotAck(SnapshotAck {})).await?;
            info!(peer, index, bytes, "received a snapshot");
        }
    }
    Ok(())
}

/// Whether `m` is from the connection's `peer` and for this node `me`;
/// logs and says no otherwise, and the message is dropped.
fn addressed(m: &Message, peer: u64, me: u64) -> bool {
    if m.from == peer && m.to == me {
        return true;
    }
    warn!(
        peer,
        from = m.from,
        to = m.to,
        "dropping a message whose sender or receiver does not match its connection"
    );
    false
}
