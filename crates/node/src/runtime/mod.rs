//! The runtime (the seeds' `raftNode`): a [`Node`](crate::Node) driven with
//! durable storage and a network, applying committed entries to a user
//! [`StateMachine`].
//!
//! It runs the core with asynchronous storage writes
//! ([`rudder_raft::storage_writes`]), so the seeds' steps are spread over
//! three tasks and the node never waits for the disk:
//!
//! - the **driver** takes each `Ready`: it sends the messages for peers at
//!   once (a leader's appends go out while it writes its own log, as
//!   etcd's contract allows), hands the saving to the append worker and
//!   the applying to the apply worker, notes read states and proposal
//!   outcomes, and advances; it also takes the requests and ticks;
//! - the **append worker** saves the snapshot, then entries and hard
//!   state — one write each, one fsync for everything waiting, off the
//!   async threads and outside the storage lock — and only then sends the
//!   acknowledgements they carry and steps its own back into the node;
//! - the **apply worker** applies snapshots, committed entries and
//!   configuration changes (to the node and the address book), answers
//!   the proposals and reads that waited for them, and every
//!   `snapshot_every` entries (each node at its own phase) snapshots the
//!   state machine and compacts the log, keeping `keep_entries` for slow
//!   followers.
//!
//! Proposals and reads come to the driver as requests from any number of
//! [`Runtime`] handles; those that arrive while the disk works go to the
//! node together, and the append worker syncs all the appends waiting at
//! once (group commit). Every request ends with its answer or a
//! [`RequestError`]: the core reports every proposal's fate, and deadlines
//! bound the rest.
//!
//! Membership changes go one at a time, as the core requires: one asked
//! while another is pending waits its turn (within its deadline) instead
//! of failing. The leader's own changes count too: it marks in the address
//! book each member its log reaches ([`PeerInfo::replicated`]), so that an
//! application can tell a member that lost its data from a new one.
//!
//! The network is behind the [`Network`] trait and the disk behind the
//! storage's file-system trait; time is Tokio's clock, which tests pause
//! and advance. Messages from peers and the network's reports come in on
//! channels ([`Inbox`]).

mod driver;
mod error;
mod members;
mod metrics;
mod pending;
mod reads;
mod shared;
mod workers;

pub use error::{RequestError, RuntimeError};
pub use members::{context_for, Members, PeerInfo};
pub use metrics::Metrics;

use crate::SharedStorage;
use bytes::Bytes;
use rudder_raft::{
    ConfChangeType, ConfChangeV2, ConfState, Config, Message, SnapshotStatus, StateRole, Status,
    Storage, StorageError,
};
use rudder_storage::DiskStorage;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The replicated application: commands in log order, snapshots.
pub trait StateMachine: Send + Sync + 'static {
    /// What applying a command answers the client that proposed it.
    type Response: Send + 'static;

    /// Applies the command `data` committed at `index`. Must be
    /// deterministic: every replica applies the same commands in the same
    /// order and must reach the same state. A command it cannot make sense
    /// of is answered (with an error response), not panicked on.
    fn apply(&mut self, index: u64, data: &[u8]) -> Self::Response;

    /// The whole state, encoded, as of the last command applied.
    fn snapshot(&self) -> Bytes;

    /// Replaces the state with the one `snapshot` encodes.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

/// Sends messages to peers. It must not block: queue, and drop what cannot
/// be queued (reporting the peer unreachable through [`Inbox::events`]).
pub trait Network: Send + Sync + 'static {
    /// Sends each message to the peer its `to` names.
    fn send(&self, msgs: Vec<Message>);
    /// Learns where member `id` listens (it was added, or is a founder).
    fn add_peer(&self, id: u64, info: &PeerInfo);
    /// Forgets member `id` (it was removed).
    fn remove_peer(&self, id: u64);
}

/// What the network reports back about sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkEvent {
    /// Messages to this peer could not be delivered.
    Unreachable(u64),
    /// How sending a snapshot to `to` went.
    Snapshot {
        /// The peer.
        to: u64,
        /// Finished or failed.
        status: SnapshotStatus,
    },
}

/// What comes in from the network.
#[derive(Debug)]
pub struct Inbox {
    /// Messages from peers.
    pub messages: mpsc::Receiver<Message>,
    /// Reports about sends.
    pub events: mpsc::UnboundedReceiver<NetworkEvent>,
}

/// How a runtime runs. [`RuntimeConfig::new`] has the defaults.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The core's settings (`id`, ticks, limits). The runtime sets
    /// `applied` from the storage, and turns proposal forwarding off: it
    /// answers a proposal on a follower with [`RequestError::NotLeader`].
    pub raft: Config,
    /// How often the node ticks.
    pub tick: Duration,
    /// Snapshot the state machine once every this many entries applied,
    /// at a phase of this node's own (its ID decides it), so that the
    /// members of a cluster do not all stop to snapshot together.
    pub snapshot_every: u64,
    /// Entries kept below a snapshot when compacting, for slow followers.
    pub keep_entries: u64,
    /// How long a proposal or a read may wait for its answer.
    pub request_timeout: Duration,
    /// The founding members (to bootstrap a new cluster, and to reach them
    /// from a node that joins); empty when restarting from storage.
    pub peers: Members,
    /// Start a new cluster of `peers` if the storage is empty; false for a
    /// node joining a running cluster (it waits for the leader to add it).
    pub bootstrap: bool,
}

impl RuntimeConfig {
    /// The defaults for node `id`: ticks of 100 ms, an election timeout of
    /// 10 ticks and a heartbeat of 1, pre-vote and check-quorum on, a
    /// snapshot every 10,000 entries keeping 5,000, requests answered
    /// within 10 s.
    pub fn new(id: u64) -> RuntimeConfig {
        let mut raft = Config::new(id);
        raft.election_tick = 10;
        raft.heartbeat_tick = 1;
        raft.pre_vote = true;
        raft.check_quorum = true;
        RuntimeConfig {
            raft,
            tick: Duration::from_millis(100),
            snapshot_every: 10_000,
            keep_entries: 5_000,
            request_timeout: Duration::from_secs(10),
            peers: Members::new(),
            bootstrap: true,
        }
    }
}

/// Who leads, as this node last heard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaderState {
    /// The leader's ID (0: none known).
    pub leader: u64,
    /// The term it leads (0 before any is known).
    pub term: u64,
    /// This node's own role.
    pub role: Option<StateRole>,
    /// This node leads and has applied an entry of its own term, so its
    /// state holds every write acknowledged before it came to lead: what
    /// a read served from the leader's state (a lease read) needs.
    pub caught_up: bool,
}

/// What a handle asks of the driver.
enum Request<R> {
    Propose(Bytes, oneshot::Sender<Result<R, RequestError>>),
    ChangeMembers(
        ConfChangeV2,
        oneshot::Sender<Result<ConfState, RequestError>>,
    ),
    Read(oneshot::Sender<Result<u64, RequestError>>),
}

/// A handle on a running node: propose, read, change membership, watch.
/// Cheap to clone.
pub struct Runtime<M: StateMachine> {
    id: u64,
    node: crate::Node,
    requests: mpsc::Sender<Request<M::Response>>,
    state: Arc<RwLock<M>>,
    members: Arc<RwLock<Members>>,
    leader: watch::Receiver<LeaderState>,
    metrics: Arc<Metrics>,
    applied: watch::Receiver<u64>,
    failure: watch::Receiver<Option<String>>,
    driver: Arc<tokio::sync::Mutex<Option<JoinHandle<()>>>>,
    timeout: Duration,
}

/// Whether `storage` holds nothing yet: no entry, no snapshot, no hard
/// state. A runtime on fresh storage founds a cluster (with
/// [`RuntimeConfig::bootstrap`]) or waits to be sent one; an application
/// asks first to tell a first start from lost data.
pub fn is_fresh(storage: &impl Storage) -> Result<bool, StorageError> {
    Ok(storage.last_index()? == 0 && storage.initial_state()?.hard_state == Default::default())
}

impl<M: StateMachine> Clone for Runtime<M> {
    fn clone(&self) -> Self {
        Runtime {
            id: self.id,
            node: self.node.clone(),
            requests: self.requests.clone(),
            state: Arc::clone(&self.state),
            members: Arc::clone(&self.members),
            leader: self.leader.clone(),
            metrics: Arc::clone(&self.metrics),
            applied: self.applied.clone(),
            failure: self.failure.clone(),
            driver: Arc::clone(&self.driver),
            timeout: self.timeout,
        }
    }
}

impl<M: StateMachine> Runtime<M> {
    /// Starts the node on `storage` (recovering what it holds) with the
    /// state machine `state` (empty: it is restored from the snapshot, and
    /// the log after it is applied again), sending through `network` and
    /// receiving from `inbox`. Needs a multi-threaded Tokio runtime (saves
    /// run on its blocking threads).
    pub fn start(
        config: RuntimeConfig,
        storage: DiskStorage,
        state: M,
        network: impl Network,
        inbox: Inbox,
    ) -> Result<Runtime<M>, RuntimeError> {
        driver::start(config, SharedStorage::new(storage), state, network, inbox)
    }

    /// This node's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the node still runs (not shut down, and not stopped by a
    /// storage failure).
    pub fn is_running(&self) -> bool {
        !self.node.is_stopped()
    }

    /// Proposes a command; resolves with the state machine's response once
    /// it is applied here, or with why not.
    pub async fn propose(&self, command: Bytes) -> Result<M::Response, RequestError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.proposals.fetch_add(1, Relaxed);
        let answer = self.ask(|tx| Request::Propose(command, tx)).await;
        match &answer {
            Ok(_) => self.metrics.proposals_applied.fetch_add(1, Relaxed),
            Err(_) => self.metrics.proposals_failed.fetch_add(1, Relaxed),
        };
        answer
    }

    /// Waits until this node may serve a linearizable read: it has applied
    /// up to an index the leader confirmed after this call began. Returns
    /// that index; then read the state machine ([`Runtime::state`]).
    pub async fn read_barrier(&self) -> Result<u64, RequestError> {
        self.ask(Request::Read).await
    }

    /// Adds member `id` (a learner if `learner`) reachable at `info`;
    /// resolves with the new membership once applied here.
    pub async fn add_member(
        &self,
        id: u64,
        info: &PeerInfo,
        learner: bool,
    ) -> Result<ConfState, RequestError> {
        let kind = if learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        self.change(kind, id, context_for(info)).await
    }

    /// Promotes learner `id` to voter.
    pub async fn promote_member(&self, id: u64) -> Result<ConfState, RequestError> {
        let info = self.members().get(&id).cloned().unwrap_or_default();
        self.change(ConfChangeType::AddNode, id, context_for(&info))
            .await
    }

    /// Removes member `id`.
    pub async fn remove_member(&self, id: u64) -> Result<ConfState, RequestError> {
        self.change(ConfChangeType::RemoveNode, id, Bytes::new())
            .await
    }

    async fn change(
        &self,
        kind: ConfChangeType,
        id: u64,
        context: Bytes,
    ) -> Result<ConfState, RequestError> {
        let cc = members::single_change(kind, id, context);
        self.ask(|tx| Request::ChangeMembers(cc, tx)).await
    }

    /// Hands leadership to `to` (from the leader; forwarded otherwise).
    /// Resolves once asked; watch [`Runtime::leader`] for the result.
    pub async fn transfer_leadership(&self, to: u64) -> Result<(), RequestError> {
        self.node.transfer_leadership(to).await.map_err(node_error)
    }

    /// The node's Raft status (role, term, positions, progress of peers).
    pub async fn status(&self) -> Result<Status, RequestError> {
        self.node.status().await.map_err(node_error)
    }

    /// Who leads, now and as it changes.
    pub fn leader(&self) -> watch::Receiver<LeaderState> {
        self.leader.clone()
    }

    /// The index applied to the state machine, now and as it grows.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Why the node stopped on its own — a storage failure (a failed
    /// write or fsync) or a snapshot the state machine refused — now and
    /// once it happens: `None` while it runs or after a plain
    /// [`Runtime::shutdown`]. A node that stops this way answers every
    /// request with [`RequestError::Shutdown`] and must be restarted from
    /// its storage.
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.failure.clone()
    }

    /// The state machine, to read (the driver writes it while applying).
    pub fn state(&self) -> &Arc<RwLock<M>> {
        &self.state
    }

    /// The members' addresses as this node knows them.
    pub fn members(&self) -> Members {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the runtime has counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops the node: the driver ends, every request waiting and every
    /// later one fails with [`RequestError::Shutdown`]. What was saved
    /// stays saved.
    pub async fn shutdown(&self) {
        self.node.stop().await;
        if let Some(driver) = self.driver.lock().await.take() {
            let _ = driver.await;
        }
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, RequestError>>) -> Request<M::Response>,
    ) -> Result<T, RequestError> {
        let (tx, rx) = oneshot::channel();
        // The driver answers every request by its deadline; this bound
        // covers a driver that is stuck (a full queue behind a hung disk)
        // or stopped without answering.
        let asked = async {
            self.requests
                .send(request(tx))
                .await
                .map_err(|_| RequestError::Shutdown)?;
            rx.await.map_err(|_| RequestError::Shutdown)?
        };
        match tokio::time::timeout(self.timeout + self.timeout / 2, asked).await {
            Ok(answer) => answer,
            Err(_) => Err(RequestError::Timeout),
        }
    }
}

/// A node handle's error as a request's.
fn node_error(e: crate::NodeError) -> RequestError {
    match (e.drop_reason(), e) {
        (Some(reason), _) => RequestError::Dropped(reason),
        (None, crate::NodeError::Raft(refusal)) => RequestError::Refused(refusal.to_string()),
        (None, _) => RequestError::Shutdown,
    }
}
