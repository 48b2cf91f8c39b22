//! The transport's handle: start it, send through it, change its peers,
//! shut it down.

use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::frame::{Hello, PROTOCOL_VERSION};
use crate::inbound;
use crate::peer::{self, PeerHandle};
use crate::snapshot;
use rudder_raft::{Message, MessageType, SnapshotStatus};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// What the transport tells the application, to pass on to Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// Messages to this peer were dropped: its queue was full, it is not a
    /// known peer, a dial failed while messages waited, or a connection was
    /// lost with messages in flight. Pass it to `report_unreachable`.
    Unreachable(u64),
    /// How sending a snapshot to `to` went: `Finish` once the peer
    /// acknowledged the whole snapshot, `Failure` otherwise. Pass it to
    /// `report_snapshot`.
    Snapshot {
        /// The peer the snapshot was for.
        to: u64,
        /// The outcome.
        status: SnapshotStatus,
    },
}

/// Raft messages between this node and its peers over TCP.
///
/// [`Transport::start`] binds the listener and returns the handle with two
/// receivers: messages from peers, and [`TransportEvent`]s. Each peer has
/// a bounded queue and one outbound connection, dialled when there is
/// something to send and redialled with exponential backoff; what is
/// queued leaves coalesced, one frame per write. [`Transport::send`] never
/// waits, so the Ready loop never blocks on the network.
///
/// Dropping the handle ends the transport's tasks, as
/// [`Transport::shutdown`] does without waiting for them.
#[derive(Debug)]
pub struct Transport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

/// The messages peers sent, in order per peer. Bounded (by
/// `queue_capacity`): while it is full, connections wait to hand theirs
/// on. It closes once the transport has shut down.
pub type Incoming = mpsc::Receiver<Message>;

/// The transport's [`TransportEvent`]s.
pub type Events = mpsc::UnboundedReceiver<TransportEvent>;

impl Transport {
    /// Checks `config`, binds its listen address, starts accepting peers
    /// and a writer per configured peer.
    ///
    /// Must run within a Tokio runtime with I/O and time enabled (else
    /// [`TransportError::NoRuntime`]); the transport's tasks run on it,
    /// also those started by a [`Transport::send`] called from outside it.
    pub async fn start(
        mut config: TransportConfig,
    ) -> Result<(Transport, Incoming, Events), TransportError> {
        config.validate()?;
        let runtime = Handle::try_current().map_err(|_| TransportError::NoRuntime)?;
        let addr = config.listen;
        let bind_error = |source| TransportError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let peers = std::mem::take(&mut config.peers);
        let (deliver, incoming) = mpsc::channel(config.queue_capacity);
        let (events, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            peers: Mutex::new(HashMap::new()),
            events,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            runtime,
            dropped: [const { AtomicU64::new(0) }; MESSAGE_TYPES],
        });
        let transport = Transport { shared, local_addr };
        for (id, addr) in peers {
            transport.add_peer(id, addr);
        }
        let shared = &transport.shared;
        shared.spawn(inbound::accept_loop(shared.clone(), listener, deliver));
        info!(id = shared.config.id, cluster_id = shared.config.cluster_id, %local_addr, "transport listening");
        Ok((transport, incoming, events_rx))
    }

    /// The address the transport listens on (the port chosen, if the
    /// config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues each message for the peer `m.to`; never waits.
    ///
    /// A `MsgSnap` is streamed on a connection of its own, and its outcome
    /// comes back as [`TransportEvent::Snapshot`]. A message to an unknown
    /// peer, or to a peer whose queue is full, is dropped and reported as
    /// [`TransportEvent::Unreachable`] (once per peer per call); a `MsgSnap`
    /// to an unknown peer also as a snapshot `Failure`.
    pub fn send(&self, msgs: impl IntoIterator<Item = Message>) {
        let mut unreachable: Vec<u64> = Vec::new();
        let mut unknown_snapshots: Vec<u64> = Vec::new();
        {
            let peers = self.shared.peers();
            for m in msgs {
                let to = m.to;
                let kind = m.kind();
                let Some(peer) = peers.get(&to) else {
                    debug!(to, ?kind, "dropping a message to an unknown peer");
                    self.shared.count_dropped(&m);
                    if kind == Some(MessageType::MsgSnap) {
                        unknown_snapshots.push(to);
                    }
                    mark(&mut unreachable, to);
                    continue;
                };
                if kind == Some(MessageType::MsgSnap) {
                    let shared = self.shared.clone();
                    let cancel = peer.cancel.child_token();
                    self.shared
                        .spawn(snapshot::send(shared, to, peer.addr, m, cancel));
                    continue;
                }
                match peer.queue.try_send(m) {
                    Ok(()) => {}
                    Err(TrySendError::Full(m)) => {
                        debug!(to, ?kind, "dropping a message: the peer's queue is full");
                        self.shared.count_dropped(&m);
                        mark(&mut unreachable, to);
                    }
                    Err(TrySendError::Closed(m)) => {
                        self.shared.count_dropped(&m);
                        mark(&mut unreachable, to);
                    }
                }
            }
        }
        for to in unknown_snapshots {
            self.shared.report(TransportEvent::Snapshot {
                to,
                status: SnapshotStatus::Failure,
            });
        }
        for to in unreachable {
            self.shared.report(TransportEvent::Unreachable(to));
        }
    }

    /// Messages dropped so far before being written (no such peer, a full
    /// queue, a failed dial, too large for a frame), by type, for the types
    /// dropped at least once. Messages lost with a connection after being
    /// written are not among them: they may have arrived.
    pub fn dropped_by_type(&self) -> Vec<(MessageType, u64)> {
        (0..MESSAGE_TYPES)
            .filter_map(|i| {
                let n = self.shared.dropped[i].load(Ordering::Relaxed);
                let t = MessageType::try_from(i as i32).ok()?;
                (n > 0).then_some((t, n))
            })
            .collect()
    }

    /// Adds peer `id` at `addr`, or moves it there: it may dial in, and
    /// messages to it are sent there. Moving a peer ends its connections
    /// and drops what was queued for it. This node's own ID, ID 0, the
    /// same address again, and calls after shutdown change nothing.
    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        if id == 0 || id == self.shared.config.id {
            debug!(id, "not adding a peer with this node's ID or ID 0");
            return;
        }
        let mut peers = self.shared.peers();
        if self.shared.cancel.is_cancelled() || peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        info!(peer = id, %addr, "adding peer");
        let handle = peer::start(&self.shared, id, addr);
        // A handle replaced is dropped here, which ends its tasks.
        peers.insert(id, handle);
    }

    /// Removes peer `id`: what was queued for it is dropped, its
    /// connections (both ways) and snapshot streams end, and it can no
    /// longer dial in.
    pub fn remove_peer(&self, id: u64) {
        if self.shared.peers().remove(&id).is_some() {
            info!(peer = id, "removed peer");
        }
    }

    /// Closes the listener and every connection, and waits for all the
    /// transport's tasks to end. Snapshots in flight are reported as
    /// failed; the [`Incoming`] receiver closes. Later sends report every
    /// peer unreachable.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        self.shared.peers().clear();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        info!(id = self.shared.config.id, "transport shut down");
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// Adds `id` to `ids` unless it is there (a call reports a peer once).
fn mark(ids: &mut Vec<u64>, id: u64) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

/// What the handle and the transport's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration; its `peers` moved to `peers`.
    pub(crate) config: TransportConfig,
    peers: Mutex<HashMap<u64, PeerHandle>>,
    events: mpsc::UnboundedSender<TransportEvent>,
    /// Cancelled on shutdown; every task ends on it.
    pub(crate) cancel: CancellationToken,
    tasks: TaskTracker,
    runtime: Handle,
    /// Messages dropped before they were written, by message type.
    dropped: [AtomicU64; MESSAGE_TYPES],
}

/// Room for every message type's number.
const MESSAGE_TYPES: usize = 32;

impl Shared {
    /// Counts `m` as dropped before it was written.
    pub(crate) fn count_dropped(&self, m: &Message) {
        if let Some(c) = usize::try_from(m.msg_type)
            .ok()
            .and_then(|i| self.dropped.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The peer table. Its lock is never held across an await; a panic
    /// while holding it cannot leave it half-changed, so poisoning is
    /// ignored.
    fn peers(&self) -> MutexGuard<'_, HashMap<u64, PeerHandle>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A token for a connection from peer `id`, ended when the peer is
    /// removed; `None` if `id` is not a known peer.
    pub(crate) fn peer_token(&self, id: u64) -> Option<CancellationToken> {
        self.peers().get(&id).map(|p| p.cancel.child_token())
    }

    /// The `Hello` this node sends to peer `to`.
    pub(crate) fn hello(&self, to: u64) -> Hello {
        Hello {
            cluster_id: self.config.cluster_id,
            from: self.config.id,
            to,
            version: PROTOCOL_VERSION,
        }
    }

    /// Tells the application; nobody listening is fine.
    pub(crate) fn report(&self, event: TransportEvent) {
        let _ = self.events.send(event);
    }

    /// Runs `task` on the transport's runtime, tracked for shutdown.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn_on(task, &self.runtime);
    }
}
