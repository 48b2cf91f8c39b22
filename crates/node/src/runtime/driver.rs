//! The driver task: requests, ticks, and each Ready handed on — messages
//! to peers sent, the storage work to the append and apply workers
//! ([`super::workers`]), read states and proposal outcomes noted — then
//! advanced at once, so the node never waits for the disk.

use super::error::{RequestError, RuntimeError};
use super::members;
use super::metrics::Metrics;
use super::pending::Waiter;
use super::reads::{Read, Reads};
use super::shared::{Shared, Stop};
use super::workers::{self, Applier};
use super::{
    Inbox, LeaderState, Network, NetworkEvent, PeerInfo, Request, Runtime, RuntimeConfig,
    StateMachine,
};
use crate::{Node, NodeError, SharedStorage};
use rudder_raft::storage_writes::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use rudder_raft::{
    ConfChangeV2, ConfState, DropReason, Message, Proposed, Ready, StateRole, Storage,
};
use rudder_storage::DiskStorage;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info};

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
        let fresh = super::is_fresh(&*s).map_err(rudder_raft::Error::from)?;
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
    raft.async_storage_writes = true;
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
    let shared = Arc::new(Shared::new(
        id,
        network,
        Arc::clone(&state),
        Arc::clone(&members),
        Arc::clone(&metrics),
        Reads::new(id, boot_nonce()),
        (snapshot.index(), snapshot.term()),
        leader_tx,
        applied_tx,
    ));
    let failure = shared.failure();
    let (append_tx, append_rx) = mpsc::unbounded_channel();
    let (apply_tx, apply_rx) = mpsc::unbounded_channel();
    tokio::spawn(workers::append(
        node.clone(),
        storage.clone(),
        Arc::clone(&shared),
        append_rx,
    ));
    let applier = Applier::new(
        node.clone(),
        storage,
        Arc::clone(&shared),
        &snapshot,
        config.snapshot_every,
        config.keep_entries,
    );
    tokio::spawn(applier.run(apply_rx));
    let driver = Driver {
        node: node.clone(),
        shared,
        requests,
        append_tx,
        apply_tx,
        config: config.clone(),
        marking: None,
        next_mark_check: Instant::now(),
        waiting_changes: Vec::new(),
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
        failure,
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
                    metrics
                        .unreachable
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    node: Node,
    shared: Arc<Shared<M, N>>,
    requests: mpsc::Receiver<Request<M::Response>>,
    /// Work for the append and apply workers.
    append_tx: mpsc::UnboundedSender<Message>,
    apply_tx: mpsc::UnboundedSender<Message>,
    config: RuntimeConfig,
    /// The member whose mark was last proposed, and until when it may
    /// take to apply before it is proposed again.
    marking: Option<(u64, Instant)>,
    /// When to look for a member to mark again, after a look found none.
    next_mark_check: Instant,
    /// Membership changes waiting for another one to apply.
    waiting_changes: Vec<WaitingChange>,
}

/// Where a membership change's answer goes.
type ChangeAnswer = oneshot::Sender<Result<ConfState, RequestError>>;

/// A membership change the node dropped because another was pending.
struct WaitingChange {
    cc: ConfChangeV2,
    tx: ChangeAnswer,
    deadline: Instant,
}

/// The node stopped (shut down, every handle dropped, or a worker stopped
/// it: then [`Shared::stopped_because`] says why).
struct Stopped;

impl From<NodeError> for Stopped {
    fn from(_: NodeError) -> Stopped {
        Stopped
    }
}

impl<M: StateMachine, N: Network> Driver<M, N> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                rd = self.node.ready() => match rd {
                    Ok(rd) => self.handle_ready(rd).await,
                    Err(_) => Err(Stopped),
                },
                request = self.requests.recv() => match request {
                    Some(r) => self.handle_requests(r).await,
                    None => Err(Stopped),
                },
                _ = ticker.tick() => self.tick().await,
            };
            if step.is_err() {
                break;
            }
        }
        let id = self.shared.id;
        match self.shared.stopped_because() {
            None => info!(id, "node stopped"),
            Some(Stop::Storage(e)) => error!(id, "storage failed, stopping the node: {e}"),
            Some(Stop::Restore(e)) => {
                error!(id, "the state machine refused a snapshot, stopping: {e}")
            }
        }
        self.shared.pending().fail_all(RequestError::Shutdown);
        self.shared.reads().fail_all(RequestError::Shutdown);
        for waiting in self.waiting_changes.drain(..) {
            drop(waiting.tx.send(Err(RequestError::Shutdown)));
        }
        self.requests.close();
        while let Ok(r) = self.requests.try_recv() {
            fail_request(r, RequestError::Shutdown);
        }
        self.node.stop().await;
    }

    /// One tick: the node's clock, deadlines, a lost read round retried,
    /// a member the log reached marked.
    async fn tick(&mut self) -> Result<(), Stopped> {
        self.node.tick().await?;
        let now = Instant::now();
        self.shared.pending().expire(now);
        self.shared.reads().expire(now);
        self.start_read_round().await?;
        self.retry_changes(now).await?;
        self.mark_replicated(now).await
    }

    /// On the leader: proposes to mark in the address book one member
    /// whose progress matched an entry and that is not marked yet
    /// ([`PeerInfo::replicated`](super::PeerInfo::replicated)). One mark
    /// at a time, given an election timeout to apply, and none while a
    /// client's change waits; one the node drops (another change is
    /// pending) is proposed again on a later tick.
    async fn mark_replicated(&mut self, now: Instant) -> Result<(), Stopped> {
        if self.shared.leader().role != Some(StateRole::Leader) || now < self.next_mark_check {
            return Ok(());
        }
        let unmarked: Vec<(u64, PeerInfo)> = self
            .shared
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, info)| !info.replicated)
            .map(|(&id, info)| (id, info.clone()))
            .collect();
        if let Some((id, until)) = self.marking {
            if now < until && unmarked.iter().any(|(peer, _)| *peer == id) {
                return Ok(());
            }
            self.marking = None;
        }
        if unmarked.is_empty() || !self.waiting_changes.is_empty() {
            return Ok(());
        }
        let status = self.node.status().await?;
        let reached = unmarked.into_iter().find(|(id, _)| {
            status
                .progress
                .iter()
                .any(|(peer, p)| peer == id && p.matched > 0)
        });
        let election = self.election_timeout();
        let Some((id, info)) = reached else {
            // Members the log has not reached (down, or never started):
            // look again after a while, not at every tick.
            self.next_mark_check = now + election;
            return Ok(());
        };
        match self
            .node
            .propose_conf_change(&members::mark_replicated(id, &info))
            .await
        {
            Ok(Proposed::Appended { .. }) => self.marking = Some((id, now + election)),
            Ok(Proposed::Forwarded { .. }) => {}
            Err(e) => drop(self.refusal(e)?),
        }
        Ok(())
    }

    /// Handles `first` and every request already queued behind it, so
    /// they reach the next Ready together; runs of proposals go to the
    /// node in one hand-off.
    async fn handle_requests(&mut self, first: Request<M::Response>) -> Result<(), Stopped> {
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
    async fn propose_batch(
        &mut self,
        batch: Vec<(bytes::Bytes, Answer<M::Response>)>,
    ) -> Result<(), Stopped> {
        if batch.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.request_timeout;
        let (data, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let answers = self.node.propose_many(data).await?;
        for (answer, tx) in answers.into_iter().zip(waiters) {
            match answer {
                Ok(Proposed::Appended { index, term }) => {
                    self.shared
                        .pending()
                        .insert(index, term, deadline, Waiter::Command(tx));
                }
                Ok(Proposed::Forwarded { .. }) => drop(tx.send(Err(self.not_leader()))),
                Err(e) => drop(tx.send(Err(self.refusal(e)?))),
            }
        }
        Ok(())
    }

    /// Handles a request other than a proposal.
    async fn handle_request(&mut self, request: Request<M::Response>) -> Result<(), Stopped> {
        let deadline = Instant::now() + self.config.request_timeout;
        match request {
            Request::Propose(data, tx) => self.propose_batch(vec![(data, tx)]).await?,
            // Behind those waiting already: changes go in the order asked.
            Request::ChangeMembers(cc, tx) if !self.waiting_changes.is_empty() => {
                self.waiting_changes
                    .push(WaitingChange { cc, tx, deadline });
            }
            Request::ChangeMembers(cc, tx) => {
                if let Some(waiting) = self.propose_change(cc, tx, deadline).await? {
                    self.waiting_changes.push(waiting);
                }
            }
            Request::Read(reply) => self.shared.reads().push(Read { reply, deadline }),
        }
        Ok(())
    }

    /// Proposes a membership change; gives it back when the node dropped
    /// it only because another change is pending (the leader's own mark,
    /// or another client's change), to be proposed again on a later tick.
    async fn propose_change(
        &mut self,
        cc: ConfChangeV2,
        tx: ChangeAnswer,
        deadline: Instant,
    ) -> Result<Option<WaitingChange>, Stopped> {
        match self.node.propose_conf_change(&cc).await {
            Ok(Proposed::Appended { index, term }) => {
                self.shared
                    .pending()
                    .insert(index, term, deadline, Waiter::ConfChange(tx));
            }
            Ok(Proposed::Forwarded { .. }) => drop(tx.send(Err(self.not_leader()))),
            Err(e) => match self.refusal(e)? {
                RequestError::Dropped(DropReason::ConfChangePending) => {
                    return Ok(Some(WaitingChange { cc, tx, deadline }));
                }
                refused => drop(tx.send(Err(refused))),
            },
        }
        Ok(None)
    }

    /// Proposes again, in order, the changes that waited for another,
    /// until one has to wait again; answers those past their deadline
    /// with [`RequestError::Timeout`].
    async fn retry_changes(&mut self, now: Instant) -> Result<(), Stopped> {
        let mut queue = std::mem::take(&mut self.waiting_changes).into_iter();
        for WaitingChange { cc, tx, deadline } in queue.by_ref() {
            if tx.is_closed() {
                // Its caller gave up: a change nobody waits for is not made.
                continue;
            }
            if now >= deadline {
                drop(tx.send(Err(RequestError::Timeout)));
            } else if let Some(waiting) = self.propose_change(cc, tx, deadline).await? {
                self.waiting_changes.push(waiting);
                break;
            }
        }
        self.waiting_changes.extend(queue);
        Ok(())
    }

    /// Starts a read-index round if reads wait and none is in flight (or
    /// the one in flight was lost: no answer within an election timeout).
    async fn start_read_round(&mut self) -> Result<(), Stopped> {
        let retry_after = self.election_timeout();
        let Some(ctx) = self.shared.reads().start_round(Instant::now(), retry_after) else {
            return Ok(());
        };
        self.shared
            .metrics
            .read_rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.node.read_index(ctx).await {
            let e = self.refusal(e)?;
            self.shared.reads().fail_round(e);
        }
        Ok(())
    }

    /// An election timeout, as time: how long a read round or a mark may
    /// take before it counts as lost.
    fn election_timeout(&self) -> std::time::Duration {
        self.config.tick * self.config.raft.election_tick as u32
    }

    fn not_leader(&self) -> RequestError {
        RequestError::NotLeader {
            leader: self.shared.leader().leader,
        }
    }

    /// What a refusal by the node means for the request (`Err`: the node
    /// stopped).
    fn refusal(&self, e: NodeError) -> Result<RequestError, Stopped> {
        use rudder_raft::DropReason::*;
        match e.drop_reason() {
            Some(NoLeader | ForwardingDisabled | NotMember) => Ok(self.not_leader()),
            Some(reason) => Ok(RequestError::Dropped(reason)),
            None if e == NodeError::Stopped => Err(Stopped),
            None => Ok(RequestError::Refused(e.to_string())),
        }
    }

    /// Hands a Ready on: peers' messages out, the storage work to the
    /// workers (in order), read states and outcomes noted; then advances.
    async fn handle_ready(&mut self, mut rd: Ready) -> Result<(), Stopped> {
        self.observe_leader(&rd);
        let mut peers = Vec::new();
        for m in rd.messages.drain(..) {
            let worker = match m.to {
                LOCAL_APPEND_THREAD => &self.append_tx,
                LOCAL_APPLY_THREAD => &self.apply_tx,
                _ => {
                    self.shared.metrics.count_sent(m.msg_type);
                    peers.push(m);
                    continue;
                }
            };
            // A worker that ended stopped the node: the next ready() says so.
            let _ = worker.send(m);
        }
        if !peers.is_empty() {
            self.shared.network.send(peers);
        }
        let leader = self.shared.leader().leader;
        for o in &rd.proposal_outcomes {
            self.shared.pending().on_outcome(o, leader);
        }
        if !rd.read_states.is_empty() {
            let mut reads = self.shared.reads();
            for rs in rd.read_states.drain(..) {
                reads.confirmed(&rs.request_ctx, rs.index);
            }
            let answered = reads.applied(self.shared.applied());
            self.shared
                .metrics
                .reads
                .fetch_add(answered, std::sync::atomic::Ordering::Relaxed);
        }
        self.node.advance(rd).await?;
        self.start_read_round().await
    }

    /// Publishes a change of leader, term or role.
    fn observe_leader(&mut self, rd: &Ready) {
        let before = self.shared.leader();
        let (mut leader, mut term, mut role) = (before.leader, before.term, before.role);
        if let Some(ss) = &rd.soft_state {
            leader = ss.leader_id;
            role = Some(ss.raft_state);
        }
        if let Some(hs) = &rd.hard_state {
            term = hs.term;
        }
        if leader != before.leader && leader != 0 {
            self.shared
                .metrics
                .leader_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            info!(id = self.shared.id, leader, term, "leader changed");
        }
        self.shared.set_leader(leader, term, role);
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
