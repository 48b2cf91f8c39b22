//! The sending side for one peer: its bounded queue, and the task that
//! dials it, coalesces what is queued into batches and writes them.
//!
//! The task dials only when there is something to send. A failed dial
//! drops the messages waiting (Raft sends again what still matters) and
//! reports the peer unreachable, then waits with exponential backoff; a
//! connection lost with a batch in flight reports it too. The acceptor
//! sends nothing on a message connection after its ack, so the task also
//! reads: the end of that stream is the end of the connection, noticed even
//! while idle.

use crate::backoff::Backoff;
use crate::batch::Batch;
use crate::conn::Connection;
use crate::error::TransportError;
use crate::handshake;
use crate::transport::{Shared, TransportEvent};
use prost::Message as _;
use rudder_raft::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A peer as the transport holds it: where it is, its queue, and the token
/// that ends its tasks and connections (cancelled when the handle is
/// dropped: the peer removed, replaced or the transport shut down).
#[derive(Debug)]
pub(crate) struct PeerHandle {
    pub(crate) addr: SocketAddr,
    pub(crate) queue: mpsc::Sender<Message>,
    pub(crate) cancel: CancellationToken,
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts the writer task for `peer` at `addr`.
pub(crate) fn start(shared: &Arc<Shared>, peer: u64, addr: SocketAddr) -> PeerHandle {
    let (queue, rx) = mpsc::channel(shared.config.queue_capacity);
    let cancel = shared.cancel.child_token();
    let mut writer = Writer {
        backoff: Backoff::new(shared.config.backoff_min, shared.config.backoff_max),
        shared: shared.clone(),
        peer,
        addr,
        queue: rx,
        carry: None,
    };
    let token = cancel.clone();
    shared.spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            () = writer.run() => {}
        }
    });
    PeerHandle {
        addr,
        queue,
        cancel,
    }
}

/// Why a connection's streaming ended.
enum Ended {
    /// The queue closed: the peer is gone from the transport.
    QueueClosed,
    /// The connection failed; `lost` messages were in the failed write.
    Lost { error: TransportError, lost: usize },
}

/// The writer task's state.
struct Writer {
    shared: Arc<Shared>,
    peer: u64,
    addr: SocketAddr,
    queue: mpsc::Receiver<Message>,
    /// A message taken from the queue that did not fit the last batch.
    carry: Option<Message>,
    backoff: Backoff,
}

impl Writer {
    /// Dials when messages wait, streams them while connected, backs off
    /// after failures; returns when the queue closes.
    async fn run(&mut self) {
        let mut failures = 0u32;
        loop {
            if self.carry.is_none() {
                match self.queue.recv().await {
                    Some(m) => self.carry = Some(m),
                    None => return,
                }
            }
            let hello = self.shared.hello(self.peer);
            match handshake::dial(self.addr, hello, &self.shared.config).await {
                Ok(mut conn) => {
                    if failures > 0 {
                        info!(peer = self.peer, addr = %self.addr, failures, "connected to peer");
                    } else {
                        debug!(peer = self.peer, addr = %self.addr, "connected to peer");
                    }
                    failures = 0;
                    self.backoff.reset();
                    match self.stream(&mut conn).await {
                        Ended::QueueClosed => return,
                        Ended::Lost { error, lost } => {
                            info!(peer = self.peer, addr = %self.addr, %error, lost, "lost the connection to peer");
                            if lost > 0 {
                                self.shared.report(TransportEvent::Unreachable(self.peer));
                            }
                        }
                    }
                }
                Err(error) => {
                    failures += 1;
                    let dropped = self.drop_waiting();
                    // Said once per outage; the retries after it, at debug.
                    if failures == 1 {
                        warn!(peer = self.peer, addr = %self.addr, %error, dropped, "cannot reach peer; retrying with backoff");
                    } else {
                        debug!(peer = self.peer, addr = %self.addr, %error, dropped, failures, "cannot reach peer");
                    }
                    self.shared.report(TransportEvent::Unreachable(self.peer));
                }
            }
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    /// Writes batches on `conn` until it fails or the queue closes.
    async fn stream(&mut self, conn: &mut Connection) -> Ended {
        loop {
            let first = match self.carry.take() {
                Some(m) => m,
                None => tokio::select! {
                    biased;
                    r = conn.recv() => {
                        let error = match r {
                            Ok(None) => TransportError::Closed,
                            Ok(Some(body)) => TransportError::UnexpectedFrame {
                                got: body.name(),
                                expected: "nothing after HelloAck",
                            },
                            Err(error) => error,
                        };
                        return Ended::Lost { error, lost: 0 };
                    }
                    m = self.queue.recv() => match m {
                        Some(m) => m,
                        None => return Ended::QueueClosed,
                    },
                },
            };
            let Some(batch) = self.fill(first) else {
                continue;
            };
            let lost = batch.len();
            if let Err(error) = conn.send(batch.into_body()).await {
                return Ended::Lost { error, lost };
            }
        }
    }

    /// A batch of `first` and everything queued after it that fits one
    /// frame (the first that does not is carried to the next batch). `None`
    /// when `first` alone is too large to send: it is dropped and reported.
    fn fill(&mut self, first: Message) -> Option<Batch> {
        let mut batch = Batch::new(self.shared.config.max_frame_bytes);
        if let Some(m) = batch.push(first) {
            self.shared.count_dropped(&m);
            warn!(
                peer = self.peer,
                kind = ?m.kind(),
                bytes = m.encoded_len(),
                max_frame_bytes = self.shared.config.max_frame_bytes,
                "dropping a message too large for one frame"
            );
            self.shared.report(TransportEvent::Unreachable(self.peer));
            return None;
        }
        while let Ok(m) = self.queue.try_recv() {
            if let Some(m) = batch.push(m) {
                self.carry = Some(m);
                break;
            }
        }
        Some(batch)
    }

    /// Drops the carried message and everything queued; returns how many.
    fn drop_waiting(&mut self) -> usize {
        let mut dropped = 0;
        for m in self
            .carry
            .take()
            .into_iter()
            .chain(std::iter::from_fn(|| self.queue.try_recv().ok()))
        {
            self.shared.count_dropped(&m);
            dropped += 1;
        }
        dropped
    }
}
