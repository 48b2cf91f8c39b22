//! The driver task: the Ready loop, requests, ticks (see the module docs
//! of [`crate::runtime`] for the order of a Ready's steps).

use super::error::{RequestError, RuntimeError};
use super::members::{self, Members};
use super::metrics::Metrics;
use super::pending::{Pending, Waiter};
use super::reads::{Read, Reads};
use super::{Inbox, LeaderState, Network, NetworkEvent, Request, Runtime, RuntimeConfig, StateMachine};
use crate::{Node, NodeError, SharedStorage};
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::{ConfState, Entry, Message, Proposed, Ready, Snapshot, Storage};
use rudder_storage::DiskStorage;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Where a proposal's answer goes.
type Answer<R> = oneshot::Sender<Result<R, RequestError>>;

/// Requests that may wait for the driver before callers wait too.
const REQUEST_QUEUE: usize = 4096;

/// Recovers the node's state, starts the node, the driver and the inbox
/// tasks, and returns the handle.
pub(super) fn start<M: StateMachine, N: Network>(
    config: RuntimeConfig,
    storage: SharedStorage<DiskStorage>,
    mut state: M,
    network: N,
    inbox: Inbox,
) -> Result<Runtime<M>, RuntimeError> {
    let id = config.raft.id;
    let (snapshot, fresh) = {
        let s = storage.lock();
        let fresh = s.last_index().map_err(rudder_raft::Error::from)? == 0
            && s.initial_state().map_err(rudder_raft::Error::from)?.hard_state == Default::default();
        (s.snapshot(0).map_err(rudder_raft::Error::from)?, fresh)
    };
    let mut members = config.peers.clone();
    if snapshot.index() > 0 {
        let (known, data) = members::open(&snapshot.data)?;
        members.extend(known);
        state.restore(&data).map_err(RuntimeError::StateMachine)?;
    }
    for (&peer, info) in &members {
        if peer != id {
            network.add_peer(peer, info);
        }
    }
    let mut raft = config.raft.clone();
    raft.applied = snapshot.index();
    raft.disable_proposal_forwarding = true;
    let node = if fresh && config.bootstrap {
        let founders: Vec<u64> = config.peers.keys().copied().collect();
        info!(id, ?founders, "bootstrapping a new cluster");
        Node::bootstrap(&raft, storage.clone(), &founders)?
    } else {
        info!(id, applied = raft.applied, "starting from storage");
        Node::new(&raft, storage.clone())?
    };
    let metrics = Arc::new(Metrics::default());
    spawn_inbox(node.clone(), inbox, Arc::clone(&metrics));
    let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let (leader_tx, leader) = watch::channel(LeaderState::default());
    let (applied_tx, applied) = watch::channel(snapshot.index());
    let state = Arc::new(RwLock::new(state));
    let members = Arc::new(RwLock::new(members));
    let driver = Driver {
        id,
        node: node.clone(),
        storage,
        network,
        state: Arc::clone(&state),
        members: Arc::clone(&members),
        requests,
        pending: Pending::default(),
        reads: Reads::new(id, boot_nonce()),
        leader_tx,
        applied_tx,
        metrics: Arc::clone(&metrics),
        applied: snapshot.index(),
        applied_term: snapshot.term(),
        last_snapshot: snapshot.index(),
        conf_state: snapshot.metadata.and_then(|m| m.conf_state).unwrap_or_default(),
        leader: LeaderState::default(),
        config: config.clone(),
    };
    let handle = tokio::spawn(driver.run());
    Ok(Runtime {
        id,
        node,
        requests: requests_tx,
        state,
        members,
        leader,
        metrics,
        applied,
        driver: Arc::new(tokio::sync::Mutex::new(Some(handle))),
        timeout: config.request_timeout,
    })
}

/// A number that differs between starts of this process (and between
/// processes): the time, mixed with the process ID.
fn boot_nonce() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// Steps messages from peers into the node and passes the network's
/// reports on, each on its own task so neither waits for a save.
fn spawn_inbox(node: Node, inbox: Inbox, metrics: Arc<Metrics>) {
    let Inbox {
        mut messages,
        mut events,
    } = inbox;
    let stepper = node.clone();
    tokio::spawn(async move {
        while let Some(m) = messages.recv().await {
            if stepper.step(m).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let done = match event {
                NetworkEvent::Unreachable(peer) => {
                    metrics.unreachable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    node.report_unreachable(peer).await
                }
                NetworkEvent::Snapshot { to, status } => node.report_snapshot(to, status).await,
            };
            if done.is_err() {
                break;
            }
        }
    });
}

/// The driver's state.
struct Driver<M: StateMachine, N: Network> {
    id: u64,
    node: Node,
    storage: SharedStorage<DiskStorage>,
    network: N,
    state: Arc<RwLock<M>>,
    members: Arc<RwLock<Members>>,
    requests: mpsc::Receiver<Request<M::Response>>,
    pending: Pending<M::Response>,
    reads: Reads,
    leader_tx: watch::Sender<LeaderState>,
    applied_tx: watch::Sender<u64>,
    metrics: Arc<Metrics>,
    /// The last index applied to the state machine, and its term.
    applied: u64,
    applied_term: u64,
    /// The index of the last snapshot taken (or loaded).
    last_snapshot: u64,
    conf_state: ConfState,
    leader: LeaderState,
    config: RuntimeConfig,
}

/// Why the loop ended early.
enum Stop {
    /// The node stopped (shutdown, or every handle dropped).
    Stopped,
    /// The storage failed: nothing more can be made durable.
    Storage(rudder_storage::Error),
    /// The state machine refused a snapshot.
    Restore(String),
}

impl From<NodeError> for Stop {
    fn from(_: NodeError) -> Stop {
        Stop::Stopped
    }
}

impl<M: StateMachine, N: Network> Driver<M, N> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            let step = tokio::select! {
                rd = self.node.ready() => match rd {
                    Ok(rd) => self.handle_ready(rd).await,
                    Err(_) => Err(Stop::Stopped),
                },
                request = self.requests.recv() => match request {
                    Some(r) => self.handle_requests(r).await,
                    None => Err(Stop::Stopped),
                },
                _ = ticker.tick() => self.tick().await,
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        match outcome {
            Stop::Stopped => info!(id = self.id, "node stopped"),
            Stop::Storage(e) => error!(id = self.id, "storage failed, stopping the node: {e}"),
            Stop::Restore(e) => error!(id = self.id, "the state machine refused a snapshot, stopping: {e}"),
        }
        self.pending.fail_all(RequestError::Shutdown);
        self.reads.fail_all(RequestError::Shutdown);
        self.requests.close();
        while let Ok(r) = self.requests.try_recv() {
            fail_request(r, RequestError::Shutdown);
        }
        self.node.stop().await;
    }

    /// One tick: the node's clock, deadlines, a lost read round retried.
    async fn tick(&mut self) -> Result<(), Stop> {
        self.node.tick().await?;
        let now = Instant::now();
        self.pending.expire(now);
        self.reads.expire(now);
        self.start_read_round().await
    }

    /// Handles `first` and every request already queued behind it, so
    /// they reach the next Ready together; runs of proposals go to the
    /// node in one hand-off.
    async fn handle_requests(&mut self, first: Request<M::Response>) -> Result<(), Stop> {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take().or_else(|| self.requests.try_recv().ok()) {
            match request {
                Request::Propose(data, tx) => batch.push((data, tx)),
                other => {
                    self.propose_batch(std::mem::take(&mut batch)).await?;
                    self.handle_request(other).await?;
                }
            }
        }
        self.propose_batch(batch).await?;
        self.start_read_round().await
    }

    /// Proposes a run of commands with one hand-off to the node.
    async fn propose_batch(&mut self, batch: Vec<(bytes::Bytes, Answer<M::Response>)>) -> Result<(), Stop> {
        if batch.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.request_timeout;
        let (data, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let answers = self.node.propose_many(data).await?;
        for (answer, tx) in answers.into_iter().zip(waiters) {
            match answer {
                Ok(Proposed::Appended { index, term }) => {
                    self.pending.insert(index, term, deadline, Waiter::Command(tx));
                }
                Ok(Proposed::Forwarded { .. }) => drop(tx.send(Err(self.not_leader()))),
                Err(e) => drop(tx.send(Err(self.refusal(e)?))),
            }
        }
        Ok(())
    }

    /// Handles a request other than a proposal.
    async fn handle_request(&mut self, request: Request<M::Response>) -> Result<(), Stop> {
        let deadline = Instant::now() + self.config.request_timeout;
        match request {
            Request::Propose(data, tx) => self.propose_batch(vec![(data, tx)]).await?,
            Request::ChangeMembers(cc, tx) => match self.node.propose_conf_change(&cc).await {
                Ok(Proposed::Appended { index, term }) => {
                    self.pending.insert(index, term, deadline, Waiter::ConfChange(tx));
                }
                Ok(Proposed::Forwarded { .. }) => {
                    let _ = tx.send(Err(self.not_leader()));
                }
                Err(e) => {
                    let _ = tx.send(Err(self.refusal(e)?));
                }
            },
            Request::Read(reply) => self.reads.push(Read { reply, deadline }),
        }
        Ok(())
    }

    /// Starts a read-index round if reads wait and none is in flight (or
    /// the one in flight was lost: no answer within an election timeout).
    async fn start_read_round(&mut self) -> Result<(), Stop> {
        let retry_after = self.config.tick * self.config.raft.election_tick as u32;
        let Some(ctx) = self.reads.start_round(Instant::now(), retry_after) else {
            return Ok(());
        };
        self.metrics.read_rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.node.read_index(ctx).await {
            let e = self.refusal(e)?;
            self.reads.fail_round(e);
        }
        Ok(())
    }

    fn not_leader(&self) -> RequestError {
        RequestError::NotLeader {
            leader: self.leader.leader,
        }
    }

    /// What a refusal by the node means for the request (`Err`: the node
    /// stopped).
    fn refusal(&self, e: NodeError) -> Result<RequestError, Stop> {
        use rudder_raft::DropReason::*;
        match e.drop_reason() {
            Some(NoLeader | ForwardingDisabled | NotMember) => Ok(self.not_leader()),
            Some(reason) => Ok(RequestError::Dropped(reason)),
            None if e == NodeError::Stopped => Err(Stop::Stopped),
            None => Ok(RequestError::Refused(e.to_string())),
        }
    }

    async fn handle_ready(&mut self, mut rd: Ready) -> Result<(), Stop> {
        self.observe_leader(&rd);
        self.send(std::mem::take(&mut rd.messages));
        if let Some(snap) = &rd.snapshot {
            // Refused before it is saved: saved, it would fail every restart.
            members::open(&snap.data).map_err(|e| Stop::Restore(format!("a snapshot's envelope: {e}")))?;
        }
        let mut rd = self.persist(rd).await?;
        self.send(std::mem::take(&mut rd.persisted_messages));
        if let Some(snap) = rd.snapshot.take() {
            self.restore(&snap)?;
        }
        for e in std::mem::take(&mut rd.committed_entries) {
            self.apply(e).await?;
        }
        self.applied_tx.send_replace(self.applied);
        self.publish_leader(self.leader);
        for o in &rd.proposal_outcomes {
            self.pending.on_outcome(o, self.leader.leader);
        }
        for rs in rd.read_states.drain(..) {
            self.reads.confirmed(&rs.request_ctx, rs.index);
        }
        self.node.advance(rd).await?;
        let answered = self.reads.applied(self.applied);
        self.metrics.reads.fetch_add(answered, std::sync::atomic::Ordering::Relaxed);
        self.start_read_round().await?;
        self.maybe_snapshot().await
    }

    /// Publishes a change of leader, term or role.
    fn observe_leader(&mut self, rd: &Ready) {
        let mut now = self.leader;
        if let Some(ss) = &rd.soft_state {
            now.leader = ss.leader_id;
            now.role = Some(ss.raft_state);
        }
        if let Some(hs) = &rd.hard_state {
            now.term = hs.term;
        }
        if now.leader != self.leader.leader && now.leader != 0 {
            self.metrics.leader_changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            info!(id = self.id, leader = now.leader, term = now.term, "leader changed");
        }
        self.publish_leader(now);
    }

    /// Publishes `now` (with `caught_up` worked out) if it changed.
    fn publish_leader(&mut self, mut now: LeaderState) {
        now.caught_up = now.role == Some(rudder_raft::StateRole::Leader) && self.applied_term == now.term;
        if now != self.leader {
            self.leader = now;
            self.leader_tx.send_replace(now);
        }
    }

    fn send(&self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        for m in &msgs {
            self.metrics.count_sent(m.msg_type);
        }
        self.network.send(msgs);
    }

    /// Saves the Ready's snapshot, entries and hard state on a blocking
    /// thread (one write, one fsync if it must, the fsync outside the
    /// storage's lock), and hands it back.
    async fn persist(&self, rd: Ready) -> Result<Ready, Stop> {
        if rd.snapshot.is_none() && rd.entries.is_empty() && rd.hard_state.is_none() {
            return Ok(rd);
        }
        let storage = self.storage.clone();
        let started = Instant::now();
        let must_sync = rd.must_sync;
        let (rd, saved) = tokio::task::spawn_blocking(move || {
            let saved = (|| {
                // Written under the lock, synced after it: the node reads
                // the storage meanwhile (what it reads is its own to
                // trust only once advanced, after the sync).
                let syncer = {
                    let mut s = storage.lock();
                    if let Some(snap) = &rd.snapshot {
                        s.apply_snapshot((**snap).clone())?;
                    }
                    s.save(rd.hard_state.as_ref(), &rd.entries, false)?;
                    s.syncer()
                };
                if rd.must_sync {
                    syncer.sync()?;
                }
                Ok::<(), rudder_storage::Error>(())
            })();
            (rd, saved)
        })
        .await
        .expect("invariant broken: the save task panicked");
        saved.map_err(Stop::Storage)?;
        if must_sync {
            self.metrics.record_fsync(started.elapsed().as_micros() as u64);
        }
        Ok(rd)
    }

    /// Replaces the state machine with a snapshot's, and adds the
    /// snapshot's addresses to the book (the founders', known from the
    /// configuration, may be missing from it).
    fn restore(&mut self, snap: &Snapshot) -> Result<(), Stop> {
        let (known, data) = members::open(&snap.data).map_err(|e| Stop::Restore(e.to_string()))?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .restore(&data)
            .map_err(Stop::Restore)?;
        for (&peer, info) in &known {
            if peer != self.id {
                self.network.add_peer(peer, info);
            }
        }
        self.members.write().unwrap_or_else(|e| e.into_inner()).extend(known);
        self.applied = snap.index();
        self.applied_term = snap.term();
        self.last_snapshot = snap.index();
        self.conf_state = snap.conf_state();
        Ok(())
    }

    /// Applies one committed entry and answers its proposer, if here.
    async fn apply(&mut self, e: Entry) -> Result<(), Stop> {
        self.applied = e.index;
        self.applied_term = e.term;
        let cc = match decode_conf_change(&e) {
            Ok(Some(cc)) => cc,
            Ok(None) if e.data.is_empty() => return Ok(()), // a new leader's entry
            Ok(None) => {
                let response = self.state.write().unwrap_or_else(|e| e.into_inner()).apply(e.index, &e.data);
                match self.pending.take_applied(e.index, e.term) {
                    Some(Waiter::Command(tx)) => drop(tx.send(Ok(response))),
                    Some(w) => w.fail(RequestError::Unknown),
                    None => {}
                }
                return Ok(());
            }
            Err(err) => {
                // Committed, so every replica skips it alike.
                error!(id = self.id, index = e.index, "skipping an undecodable configuration change: {err}");
                return Ok(());
            }
        };
        let (added, removed) = members::changes(&cc);
        for (peer, info) in added {
            if let Some(info) = info {
                if peer != self.id {
                    self.network.add_peer(peer, &info);
                }
                self.members.write().unwrap_or_else(|e| e.into_inner()).insert(peer, info);
            }
        }
        let cs = match self.node.apply_conf_change(&cc).await {
            Ok(cs) => cs,
            Err(NodeError::Raft(err)) => {
                // Committed, so every member refuses it alike.
                warn!(id = self.id, index = e.index, "configuration change not applied: {err}");
                if let Some(w) = self.pending.take_applied(e.index, e.term) {
                    w.fail(RequestError::Refused(err.to_string()));
                }
                return Ok(());
            }
            Err(other) => return Err(other.into()),
        };
        for peer in removed {
            self.members.write().unwrap_or_else(|e| e.into_inner()).remove(&peer);
            if peer != self.id {
                self.network.remove_peer(peer);
            }
        }
        self.conf_state = cs.clone();
        match self.pending.take_applied(e.index, e.term) {
            Some(Waiter::ConfChange(tx)) => drop(tx.send(Ok(cs))),
            Some(w) => w.fail(RequestError::Unknown),
            None => {}
        }
        Ok(())
    }

    /// Every `snapshot_every` entries: snapshots the state machine (with
    /// the address book) and compacts the log, keeping `keep_entries`.
    async fn maybe_snapshot(&mut self) -> Result<(), Stop> {
        if self.applied < self.last_snapshot + self.config.snapshot_every.max(1) {
            return Ok(());
        }
        let index = self.applied;
        let state = self.state.read().unwrap_or_else(|e| e.into_inner()).snapshot();
        let data = members::seal(&self.members.read().unwrap_or_else(|e| e.into_inner()), state);
        let cs = self.conf_state.clone();
        let keep = self.config.keep_entries;
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = storage.lock();
            s.create_snapshot(index, Some(cs), &data)?;
            match index.checked_sub(keep) {
                Some(through) if through > 0 => s.compact(through),
                _ => Ok(()),
            }
        })
        .await
        .expect("invariant broken: the snapshot task panicked")
        .map_err(Stop::Storage)?;
        self.last_snapshot = index;
        self.metrics.snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!(id = self.id, index, "snapshot taken");
        Ok(())
    }
}

/// Fails a request that never reached the node.
fn fail_request<R>(request: Request<R>, e: RequestError) {
    match request {
        Request::Propose(_, tx) => drop(tx.send(Err(e))),
        Request::ChangeMembers(_, tx) => drop(tx.send(Err(e))),
        Request::Read(tx) => drop(tx.send(Err(e))),
    }
}
