//! The handle, and the task that owns the `RawNode` behind it.

use crate::error::NodeError;
use bytes::Bytes;
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::{
    BasicStatus, ConfChangeI, ConfChangeV2, ConfState, Config, Entry, Message, Proposed, RawNode,
    Ready, SnapshotStatus, Status, Storage,
};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot, OwnedMutexGuard};
use tracing::{debug, error, warn};

/// How many commands may wait for the task before callers wait too
/// (backpressure on proposals and incoming messages).
pub const COMMAND_QUEUE_CAPACITY: usize = 1024;

/// The most commands the task handles per wake-up before it looks at the
/// stop signal again; what is queued by then lands in one `Ready`.
const DRAIN_BUDGET: usize = COMMAND_QUEUE_CAPACITY;

type Reply<T> = oneshot::Sender<T>;

/// What a handle asks of the task.
enum Command {
    Tick,
    Campaign,
    Propose(Bytes, Reply<rudder_raft::Result<Proposed>>),
    ProposeMany(Vec<Bytes>, Reply<Vec<rudder_raft::Result<Proposed>>>),
    ProposeConfChange(Entry, Reply<rudder_raft::Result<Proposed>>),
    Step(Message),
    Advance(Ready),
    ApplyConfChange(ConfChangeV2, Reply<rudder_raft::Result<ConfState>>),
    TransferLeader(u64, Reply<rudder_raft::Result<()>>),
    ForgetLeader(Reply<rudder_raft::Result<()>>),
    ReadIndex(Bytes, Reply<rudder_raft::Result<()>>),
    ReportUnreachable(u64),
    ReportSnapshot(u64, SnapshotStatus),
    Status(Reply<Status>),
    BasicStatus(Reply<BasicStatus>),
}

/// State shared by every handle and the task.
struct Shared {
    /// Set by `stop` (before signalling the task) and by the task when it
    /// ends, however it ends.
    stopped: AtomicBool,
    /// Wakes the task out of its wait for commands.
    stop_signal: Mutex<Option<oneshot::Sender<()>>>,
    /// The number of the `Ready` handed out and not yet advanced (0: none).
    outstanding: AtomicU64,
    /// Where the task puts each `Ready`; one at a time.
    readies: Arc<tokio::sync::Mutex<mpsc::Receiver<Ready>>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// A handle on a Raft node running on its own Tokio task: etcd's `Node`.
///
/// Cheap to clone; every clone drives the same node. Each method sends a
/// command to the task, which owns the [`RawNode`] and applies commands in
/// the order they arrive (from one handle: in the order they were made).
/// Methods that report the core's answer (`propose`, `read_index`,
/// `status`, ...) wait for it; the others (`tick`, `step`, `advance`, ...)
/// return once the command is queued. The queue is bounded
/// ([`COMMAND_QUEUE_CAPACITY`]): a caller waits while it is full.
///
/// The task hands out one [`Ready`] at a time: the next comes only after
/// the last was given back with [`Node::advance`]. Meanwhile it keeps
/// taking proposals and messages, which land in the next `Ready`.
///
/// After [`Node::stop`], or once every handle is dropped, the task ends and
/// every call — those waiting and those made later — fails with
/// [`NodeError::Stopped`].
///
/// Every future returned here may be dropped before it completes. A
/// command already queued is still carried out (a dropped `propose` may
/// still be appended, as a timed-out one is in etcd); [`Node::ready`] loses
/// nothing if dropped.
#[derive(Clone)]
pub struct Node {
    id: u64,
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl Node {
    /// Starts a node on `storage`, restarting from the state it holds
    /// (etcd's `RestartNode`), on a new task of the current Tokio runtime.
    /// An empty storage created with a membership
    /// ([`MemoryStorage::new_with_conf_state`](rudder_raft::MemoryStorage::new_with_conf_state))
    /// starts a new cluster; one without waits to hear from a leader.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn new<S: Storage + Send + 'static>(
        config: &Config,
        storage: S,
    ) -> Result<Node, NodeError> {
        Ok(Node::spawn(RawNode::new(config, storage)?))
    }

    /// Starts a new cluster member on an empty `storage`, with `peers` as
    /// the initial voters (etcd's `StartNode`; see
    /// [`RawNode::bootstrap`]), on a new task of the current Tokio runtime.
    /// The first `Ready` carries the membership as committed conf-change
    /// entries, to persist and to apply like any other.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn bootstrap<S: Storage + Send + 'static>(
        config: &Config,
        storage: S,
        peers: &[u64],
    ) -> Result<Node, NodeError> {
        Ok(Node::spawn(RawNode::bootstrap(config, storage, peers)?))
    }

    /// Runs `raw` on a new task of the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn<S: Storage + Send + 'static>(raw: RawNode<S>) -> Node {
        let (node, task) = Node::unspawned(raw);
        tokio::spawn(task.run());
        node
    }

    /// A handle on `raw` and the task to run it, not yet running: spawn
    /// [`NodeTask::run`] where you like (or await it), and get the
    /// `RawNode` back when it ends. Calls wait until it runs, and fail with
    /// [`NodeError::Stopped`] if it is dropped unrun.
    pub fn unspawned<S: Storage>(raw: RawNode<S>) -> (Node, NodeTask<S>) {
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        // At most one Ready is out at a time, so one slot never fills.
        let (readies_tx, readies_rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            stopped: AtomicBool::new(false),
            stop_signal: Mutex::new(Some(stop_tx)),
            outstanding: AtomicU64::new(0),
            readies: Arc::new(tokio::sync::Mutex::new(readies_rx)),
        });
        let id = raw.basic_status().id;
        let node = Node {
            id,
            commands: commands_tx,
            shared: Arc::clone(&shared),
        };
        let task = NodeTask {
            raw,
            commands: Commands(commands_rx),
            readies: readies_tx,
            stop: stop_rx,
            shared,
        };
        (node, task)
    }

    /// This node's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the node's task has ended (or is ending after
    /// [`Node::stop`]): every call now fails with [`NodeError::Stopped`].
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped() || self.commands.is_closed()
    }

    /// A slot in the command queue. Commands are built only once a slot is
    /// held, so the futures that wait for one stay small (a `Ready` or a
    /// `Message` is not moved through every layer of them). A slot is used
    /// at once, never held across an await: the task's end relies on it
    /// (see `Commands`).
    async fn slot(&self) -> Result<mpsc::Permit<'_, Command>, NodeError> {
        if self.shared.stopped() {
            return Err(NodeError::Stopped);
        }
        self.commands
            .reserve()
            .await
            .map_err(|_| NodeError::Stopped)
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        let slot = self.slot().await?;
        let (tx, rx) = oneshot::channel();
        slot.send(command(tx));
        // A reply dropped unanswered means the task ended with the command
        // still queued.
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Advances the node's logical clock by one tick. Call it at a fixed
    /// interval; [`Config`]'s election and heartbeat timeouts count ticks.
    /// The node has no clock of its own.
    pub async fn tick(&self) -> Result<(), NodeError> {
        self.slot().await.map(|slot| slot.send(Command::Tick))
    }

    /// Starts an election now, as an election timeout would. Like one, it
    /// does nothing while committed configuration changes wait to be
    /// applied: a node just bootstrapped campaigns only after its first
    /// `Ready` was applied and advanced.
    pub async fn campaign(&self) -> Result<(), NodeError> {
        self.slot().await.map(|slot| slot.send(Command::Campaign))
    }

    /// Proposes `data` for the log. Resolves once the core took it —
    /// [`Proposed::Appended`] on the leader (its fate then comes in a later
    /// `Ready`'s `proposal_outcomes`), [`Proposed::Forwarded`] on a
    /// follower — or with the refusal ([`NodeError::Raft`], see
    /// [`NodeError::drop_reason`]). It does not wait for the commit.
    pub async fn propose(&self, data: Bytes) -> Result<Proposed, NodeError> {
        self.call(|reply| Command::Propose(data, reply))
            .await?
            .map_err(NodeError::Raft)
    }

    /// Proposes each payload of `batch`, in order, with one command to the
    /// task (one hand-off for many proposals, where `propose` costs one
    /// each). Resolves with each one's answer, as [`Node::propose`] would
    /// give it.
    pub async fn propose_many(
        &self,
        batch: Vec<Bytes>,
    ) -> Result<Vec<Result<Proposed, NodeError>>, NodeError> {
        let answers = self
            .call(|reply| Command::ProposeMany(batch, reply))
            .await?;
        Ok(answers
            .into_iter()
            .map(|a| a.map_err(NodeError::Raft))
            .collect())
    }

    /// Proposes a configuration change (`ConfChange` or `ConfChangeV2`),
    /// like [`Node::propose`]. Once committed, apply it with
    /// [`Node::apply_conf_change`]. The change is encoded before this
    /// returns; the future does not borrow `cc`.
    pub fn propose_conf_change(
        &self,
        cc: &impl ConfChangeI,
    ) -> impl Future<Output = Result<Proposed, NodeError>> + Send + '_ {
        let entry = cc.to_entry();
        async move {
            self.call(|reply| Command::ProposeConfChange(entry, reply))
                .await?
                .map_err(NodeError::Raft)
        }
    }

    /// Steps a message received from a peer. Resolves once the message is
    /// queued for the task; like etcd, a message the core refuses (from a
    /// peer outside the configuration, a local type from the network) is
    /// dropped there and only logged: the network is not told.
    pub async fn step(&self, m: Message) -> Result<(), NodeError> {
        self.slot().await.map(|slot| slot.send(Command::Step(m)))
    }

    /// The next [`Ready`]: waits until the node has something to persist,
    /// send or apply and the previous `Ready` was advanced. Handle it as
    /// the crate docs say and give it back with [`Node::advance`].
    ///
    /// If several callers wait, each `Ready` goes to one of them. Dropping
    /// the future loses nothing: the `Ready` goes to the next call.
    pub async fn ready(&self) -> Result<Ready, NodeError> {
        if self.shared.stopped() {
            return Err(NodeError::Stopped);
        }
        let mut readies = self.shared.readies.lock().await;
        match readies.recv().await {
            Some(rd) if !self.shared.stopped() => Ok(rd),
            _ => Err(NodeError::Stopped),
        }
    }

    /// The `Ready`s as a [`Stream`](futures_core::Stream), ending when the
    /// node stops. While the stream lives it is the only consumer:
    /// [`Node::ready`] calls wait until it is dropped.
    pub async fn ready_stream(&self) -> ReadyStream {
        ReadyStream {
            readies: Arc::clone(&self.shared.readies).lock_owned().await,
            shared: Arc::clone(&self.shared),
        }
    }

    /// Hands back a handled `Ready`: its entries, hard state and snapshot
    /// are persisted and its committed entries applied. The node then
    /// counts its own acknowledgements (which may commit entries or win an
    /// election) and may hand out the next `Ready`. The `Ready`'s buffers
    /// are reused for the next one.
    pub async fn advance(&self, rd: Ready) -> Result<(), NodeError> {
        if self.shared.stopped() {
            return Err(NodeError::Stopped);
        }
        // Set before the Ready was handed out, cleared only by its advance:
        // no race for a Ready received from `ready`.
        if rd.number == 0 || rd.number != self.shared.outstanding.load(Ordering::Acquire) {
            return Err(NodeError::UnknownReady { number: rd.number });
        }
        self.slot()
            .await
            .map(|slot| slot.send(Command::Advance(rd)))
    }

    /// Applies a committed configuration change and returns the membership
    /// now in force (to save, for example with
    /// [`MemoryStorage::set_conf_state`](rudder_raft::MemoryStorage::set_conf_state)).
    /// The future does not borrow `cc`.
    pub fn apply_conf_change(
        &self,
        cc: &impl ConfChangeI,
    ) -> impl Future<Output = Result<ConfState, NodeError>> + Send + '_ {
        let cc = cc.as_v2();
        async move {
            self.call(|reply| Command::ApplyConfChange(cc, reply))
                .await?
                .map_err(NodeError::Raft)
        }
    }

    /// Hands leadership to `transferee` (see [`RawNode::transfer_leader`]):
    /// started on the leader, forwarded from a follower. Resolves once the
    /// core took the request, not when the transfer is done: watch
    /// `soft_state` in the `Ready`s for the new leader.
    pub async fn transfer_leadership(&self, transferee: u64) -> Result<(), NodeError> {
        self.call(|reply| Command::TransferLeader(transferee, reply))
            .await?
            .map_err(NodeError::Raft)
    }

    /// On a follower, forgets the leader so it can grant pre-votes at once
    /// (see [`RawNode::forget_leader`]).
    pub async fn forget_leader(&self) -> Result<(), NodeError> {
        self.call(Command::ForgetLeader)
            .await?
            .map_err(NodeError::Raft)
    }

    /// Asks for a read index: once the leader confirms it, a
    /// [`ReadState`](rudder_raft::ReadState) with `request_ctx` comes out
    /// in a `Ready`'s `read_states`. Make the context unique per request.
    pub async fn read_index(&self, request_ctx: Bytes) -> Result<(), NodeError> {
        self.call(|reply| Command::ReadIndex(request_ctx, reply))
            .await?
            .map_err(NodeError::Raft)
    }

    /// The node's status: identity, role, positions, membership and, on a
    /// leader, every peer's progress.
    pub async fn status(&self) -> Result<Status, NodeError> {
        self.call(Command::Status).await
    }

    /// The node's identity, role and positions.
    pub async fn basic_status(&self) -> Result<BasicStatus, NodeError> {
        self.call(Command::BasicStatus).await
    }

    /// Tells the leader that `id` could not be reached (a send failed): it
    /// stops streaming to it and probes instead.
    pub async fn report_unreachable(&self, id: u64) -> Result<(), NodeError> {
        self.slot()
            .await
            .map(|slot| slot.send(Command::ReportUnreachable(id)))
    }

    /// Tells the leader how sending a snapshot to `id` went. Every
    /// `MsgSnap` sent must be reported.
    pub async fn report_snapshot(&self, id: u64, status: SnapshotStatus) -> Result<(), NodeError> {
        self.slot()
            .await
            .map(|slot| slot.send(Command::ReportSnapshot(id, status)))
    }

    /// Stops the node and resolves once its task has ended. Calls waiting
    /// then — proposals queued but not yet taken, a `ready` with nothing
    /// to hand out — fail with [`NodeError::Stopped`], and so does every
    /// later call. Stopping again does nothing more.
    ///
    /// Commands still queued are not carried out; a `Ready` handed out and
    /// not advanced stays the application's (what it persisted stays
    /// persisted). For a task from [`Node::unspawned`], this waits until
    /// the task runs (or is dropped).
    pub async fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        let signal = self
            .shared
            .stop_signal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(signal) = signal {
            let _ = signal.send(());
        }
        self.commands.closed().await;
    }
}

/// A configuration change already encoded as an entry, proposed as is.
struct EncodedConfChange(Entry);

impl ConfChangeI for EncodedConfChange {
    fn as_v2(&self) -> ConfChangeV2 {
        // Encoded by `to_entry` of a ConfChangeI: always decodes.
        decode_conf_change(&self.0)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn to_entry(&self) -> Entry {
        self.0.clone()
    }
}

/// The task behind a [`Node`]: owns the [`RawNode`] and serves the
/// handles' commands until stopped. Made by [`Node::unspawned`];
/// [`Node::new`], [`Node::bootstrap`] and [`Node::spawn`] run it on
/// `tokio::spawn`.
pub struct NodeTask<S: Storage> {
    raw: RawNode<S>,
    commands: Commands,
    readies: mpsc::Sender<Ready>,
    stop: oneshot::Receiver<()>,
    shared: Arc<Shared>,
}

impl<S: Storage> fmt::Debug for NodeTask<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTask")
            .field("id", &self.raw.basic_status().id)
            .finish_non_exhaustive()
    }
}

/// The task's end of the command queue. However the task ends — stopped,
/// panicking, or dropped unrun — dropping this closes the queue and drops
/// every command in it, so that no caller waits for an answer that will
/// never come.
struct Commands(mpsc::Receiver<Command>);

impl Drop for Commands {
    fn drop(&mut self) {
        let queue = &mut self.0;
        queue.close();
        // Also take what arrives through slots reserved before the close:
        // the receiver's own drop would miss those, and they would stay in
        // the queue (their callers waiting) as long as any handle lives.
        loop {
            match queue.try_recv() {
                Ok(_) => {}
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                // A caller holds a slot and is about to use it: handles
                // never hold one across an await, so this is a moment.
                Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
    }
}

/// Marks the node stopped when the task ends, whether it returns or
/// panics.
struct MarkStopped<'a>(&'a Shared);

impl Drop for MarkStopped<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Release);
    }
}

impl<S: Storage> NodeTask<S> {
    /// Serves the node's handles until [`Node::stop`] is called or every
    /// handle is dropped, then returns the `RawNode`.
    ///
    /// Each turn: hand out a `Ready` if the node has one and none is
    /// awaiting advance; wait for a command; carry it out and every command
    /// already queued behind it (so a burst of proposals lands in one
    /// `Ready`).
    pub async fn run(self) -> RawNode<S> {
        let NodeTask {
            mut raw,
            mut commands,
            readies,
            mut stop,
            shared,
        } = self;
        let id = raw.basic_status().id;
        let stopped_on_exit = MarkStopped(&shared);
        // The number of the Ready handed out and not yet advanced.
        let mut outstanding = 0;
        loop {
            if shared.stopped() {
                break;
            }
            if outstanding == 0 && raw.has_ready() {
                let rd = raw.ready();
                outstanding = rd.number;
                shared.outstanding.store(outstanding, Ordering::Release);
                // One slot, and it is empty: the last Ready was taken (and
                // advanced). The receiver lives in `shared`. Only a forged
                // Ready passed to `advance` with the number of the real one
                // (still untaken) can fill it; the node cannot go on then.
                if readies.try_send(rd).is_err() {
                    error!(id, "a Ready was advanced before it was taken: stopping");
                    break;
                }
            }
            let command = tokio::select! {
                biased;
                _ = &mut stop => break,
                command = commands.0.recv() => match command {
                    Some(command) => command,
                    // Every handle is gone.
                    None => break,
                },
            };
            handle(&mut raw, &shared, &mut outstanding, command);
            for _ in 0..DRAIN_BUDGET {
                if shared.stopped() {
                    break;
                }
                match commands.0.try_recv() {
                    Ok(command) => handle(&mut raw, &shared, &mut outstanding, command),
                    Err(_) => break,
                }
            }
        }
        // Stopped before the queue goes: a caller woken by its dropped
        // reply sees the node stopped.
        drop(stopped_on_exit);
        drop(commands);
        drop(readies);
        debug!(id, "raft node stopped");
        raw
    }
}

/// Carries out one command on the node.
fn handle<S: Storage>(
    raw: &mut RawNode<S>,
    shared: &Shared,
    outstanding: &mut u64,
    command: Command,
) {
    // A reply whose caller went away is simply dropped.
    match command {
        Command::Tick => raw.tick(),
        Command::Campaign => raw.campaign(),
        Command::Propose(data, reply) => {
            let _ = reply.send(raw.propose(data));
        }
        Command::ProposeMany(batch, reply) => {
            let _ = reply.send(batch.into_iter().map(|data| raw.propose(data)).collect());
        }
        Command::ProposeConfChange(entry, reply) => {
            let _ = reply.send(raw.propose_conf_change(&EncodedConfChange(entry)));
        }
        Command::Step(m) => {
            let (from, kind) = (m.from, m.msg_type);
            if let Err(e) = raw.step(m) {
                debug!(from, msg_type = kind, error = %e, "message dropped");
            }
        }
        Command::Advance(rd) => {
            if rd.number == *outstanding {
                raw.advance(rd);
                *outstanding = 0;
                shared.outstanding.store(0, Ordering::Release);
            } else {
                // The handle checks; only a forged Ready gets here.
                warn!(
                    number = rd.number,
                    "advance of a Ready not handed out: ignored"
                );
            }
        }
        Command::ApplyConfChange(cc, reply) => {
            let _ = reply.send(raw.apply_conf_change(&cc));
        }
        Command::TransferLeader(transferee, reply) => {
            let _ = reply.send(raw.transfer_leader(transferee));
        }
        Command::ForgetLeader(reply) => {
            let _ = reply.send(raw.forget_leader());
        }
        Command::ReadIndex(ctx, reply) => {
            let _ = reply.send(raw.read_index(ctx));
        }
        Command::ReportUnreachable(id) => raw.report_unreachable(id),
        Command::ReportSnapshot(id, status) => raw.report_snapshot(id, status),
        Command::Status(reply) => {
            let _ = reply.send(raw.status());
        }
        Command::BasicStatus(reply) => {
            let _ = reply.send(raw.basic_status());
        }
    }
}

/// The `Ready`s of a node as a [`Stream`](futures_core::Stream), from
/// [`Node::ready_stream`]. It ends when the node stops. Advance each item
/// with [`Node::advance`] as with [`Node::ready`].
pub struct ReadyStream {
    readies: OwnedMutexGuard<mpsc::Receiver<Ready>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for ReadyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyStream").finish_non_exhaustive()
    }
}

impl futures_core::Stream for ReadyStream {
    type Item = Ready;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Ready>> {
        if self.shared.stopped() {
            return Poll::Ready(None);
        }
        match self.readies.poll_recv(cx) {
            Poll::Ready(Some(rd)) if !self.shared.stopped() => Poll::Ready(Some(rd)),
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
