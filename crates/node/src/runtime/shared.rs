//! What the driver and the two workers share: the requests waiting, who
//! leads, how far the state machine got, and why the node stopped.

use super::members::Members;
use super::metrics::Metrics;
use super::pending::Pending;
use super::reads::Reads;
use super::{LeaderState, Network, StateMachine};
use rudder_raft::StateRole;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::watch;

/// Why the node stopped on its own.
#[derive(Debug)]
pub enum Stop {
    /// The storage failed: nothing more can be made durable.
    Storage(rudder_storage::Error),
    /// The state machine (or its envelope) refused a snapshot.
    Restore(String),
}

/// Who leads as the Readys tell it, and the term of the last entry
/// applied: together, whether this leader has caught up.
#[derive(Debug, Default)]
struct LeaderView {
    state: LeaderState,
    applied_term: u64,
}

/// The state the driver, the append worker and the apply worker share.
pub struct Shared<M: StateMachine, N: Network> {
    /// This node's ID.
    pub id: u64,
    /// The network: peers' messages go out through it.
    pub network: N,
    /// The state machine, read by handles and written by the apply worker.
    pub state: Arc<RwLock<M>>,
    /// The address book.
    pub members: Arc<RwLock<Members>>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    pending: Mutex<Pending<M::Response>>,
    reads: Mutex<Reads>,
    leader: Mutex<LeaderView>,
    leader_tx: watch::Sender<LeaderState>,
    applied: AtomicU64,
    applied_tx: watch::Sender<u64>,
    stop: Mutex<Option<Stop>>,
    /// Why the node stopped on its own, as text, for [`super::Runtime::failure`].
    failure: watch::Sender<Option<String>>,
}

/// A lock taken anyway after a panic elsewhere: every value behind these
/// locks is whole between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M: StateMachine, N: Network> Shared<M, N> {
    /// The shared state of node `id`, its state machine applied up to
    /// `applied` (of `applied_term`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        network: N,
        state: Arc<RwLock<M>>,
        members: Arc<RwLock<Members>>,
        metrics: Arc<Metrics>,
        reads: Reads,
        (applied, applied_term): (u64, u64),
        leader_tx: watch::Sender<LeaderState>,
        applied_tx: watch::Sender<u64>,
    ) -> Self {
        Shared {
            id,
            network,
            state,
            members,
            metrics,
            pending: Mutex::new(Pending::default()),
            reads: Mutex::new(reads),
            leader: Mutex::new(LeaderView {
                state: LeaderState::default(),
                applied_term,
            }),
            leader_tx,
            applied: AtomicU64::new(applied),
            applied_tx,
            stop: Mutex::new(None),
            failure: watch::channel(None).0,
        }
    }

    /// The proposals waiting.
    pub fn pending(&self) -> MutexGuard<'_, Pending<M::Response>> {
        lock(&self.pending)
    }

    /// The reads waiting.
    pub fn reads(&self) -> MutexGuard<'_, Reads> {
        lock(&self.reads)
    }

    /// Who leads, as last published.
    pub fn leader(&self) -> LeaderState {
        lock(&self.leader).state
    }

    /// A new leader, term or role from a Ready.
    pub fn set_leader(&self, leader: u64, term: u64, role: Option<StateRole>) {
        let mut view = lock(&self.leader);
        view.state.leader = leader;
        view.state.term = term;
        view.state.role = role;
        self.publish(&mut view);
    }

    /// The index applied so far.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The state machine applied up to `index`, of `term`: publishes it,
    /// answers the reads it completes.
    pub fn set_applied(&self, index: u64, term: u64) {
        self.applied.store(index, Ordering::Release);
        self.applied_tx.send_replace(index);
        let mut view = lock(&self.leader);
        view.applied_term = term;
        self.publish(&mut view);
        drop(view);
        let answered = self.reads().applied(index);
        self.metrics.reads.fetch_add(answered, Ordering::Relaxed);
    }

    /// Publishes the leader state with `caught_up` worked out, if changed.
    fn publish(&self, view: &mut LeaderView) {
        let mut now = view.state;
        now.caught_up = now.role == Some(StateRole::Leader) && view.applied_term == now.term;
        view.state = now;
        self.leader_tx.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
    }

    /// Records why the node must stop (the first reason wins).
    pub fn stop_with(&self, why: Stop) {
        let text = match &why {
            Stop::Storage(e) => format!("storage failed: {e}"),
            Stop::Restore(e) => format!("the state machine refused a snapshot: {e}"),
        };
        lock(&self.stop).get_or_insert(why);
        self.failure.send_if_modified(|f| {
            let first = f.is_none();
            if first {
                *f = Some(text);
            }
            first
        });
    }

    /// Why the node stopped on its own, as text (`None` while it runs, or
    /// after a plain shutdown), now and once it happens.
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.failure.subscribe()
    }

    /// Why the node stopped on its own, if it did.
    pub fn stopped_because(&self) -> Option<Stop> {
        lock(&self.stop).take()
    }
}
