//! A small in-process cluster of `Node`s: one driver task per node runs the
//! Ready loop (send, persist, send acknowledgements, apply, advance) and
//! publishes what the node applied through a `watch` channel, which tests
//! wait on for conditions.

#![allow(dead_code)]

use bytes::Bytes;
use rudder_node::{Node, SharedStorage};
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::{
    ConfState, Config, MemoryStorage, Message, ProposalOutcome, ReadState, StateRole,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long any wait may take before the test fails as hung. A failure
/// guard only: nothing waits for it to pass.
pub const GUARD: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes longer than [`GUARD`].
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .expect("hung: no progress within the guard time")
}

/// What a node's driver has seen so far.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The highest index applied.
    pub applied_index: u64,
    /// Normal, non-empty entries applied, in order, with their index.
    pub applied: Vec<(u64, Bytes)>,
    /// Membership after each configuration change applied.
    pub conf_states: Vec<ConfState>,
    /// Read states handed out.
    pub read_states: Vec<ReadState>,
    /// Proposal outcomes handed out.
    pub outcomes: Vec<ProposalOutcome>,
    /// The leader as last reported by a `Ready` (0: none).
    pub leader: u64,
    /// The role as last reported by a `Ready`.
    pub role: Option<StateRole>,
    /// How many Readys were handled.
    pub readies: u64,
}

/// Node handles by ID, for delivering messages.
pub type Router = Arc<RwLock<BTreeMap<u64, Node>>>;

/// One member: its handle, storage, view and driver.
pub struct Member {
    pub node: Node,
    pub storage: SharedStorage<MemoryStorage>,
    pub view: watch::Receiver<View>,
    pub driver: JoinHandle<()>,
}

/// Nodes wired to each other in memory.
pub struct Cluster {
    pub members: BTreeMap<u64, Member>,
    pub router: Router,
}

impl Cluster {
    /// Bootstraps a cluster of `ids` (each node with the same peer list);
    /// nobody leads yet.
    pub fn bootstrap(ids: &[u64]) -> Cluster {
        let mut cluster = Cluster {
            members: BTreeMap::new(),
            router: Router::default(),
        };
        for &id in ids {
            let storage = SharedStorage::new(MemoryStorage::new());
            let node = Node::bootstrap(&Config::new(id), storage.clone(), ids).expect("bootstrap");
            cluster.add(node, storage);
        }
        cluster
    }

    /// Bootstraps `ids` and elects node `leader`, waiting until every node
    /// knows it and applied its first entry.
    pub async fn with_leader(ids: &[u64], leader: u64) -> Cluster {
        let cluster = Cluster::bootstrap(ids);
        // A node refuses to campaign before it applied the membership.
        let n = ids.len();
        cluster.wait(leader, |v| v.conf_states.len() == n).await;
        cluster.node(leader).campaign().await.unwrap();
        cluster.wait_leader(leader).await;
        // The bootstrap entries, then the new leader's empty entry.
        cluster.wait_all_applied(ids.len() as u64 + 1).await;
        cluster
    }

    /// Adds a running node and starts its driver.
    pub fn add(&mut self, node: Node, storage: SharedStorage<MemoryStorage>) {
        let id = node.id();
        let (tx, rx) = watch::channel(View::default());
        self.router.write().unwrap().insert(id, node.clone());
        let driver = tokio::spawn(drive(
            node.clone(),
            storage.clone(),
            Arc::clone(&self.router),
            tx,
        ));
        self.members.insert(
            id,
            Member {
                node,
                storage,
                view: rx,
                driver,
            },
        );
    }

    /// The handle of node `id`.
    pub fn node(&self, id: u64) -> &Node {
        &self.members[&id].node
    }

    /// A snapshot of node `id`'s view.
    pub fn view(&self, id: u64) -> View {
        self.members[&id].view.borrow().clone()
    }

    /// Waits until node `id`'s view satisfies `cond`.
    pub async fn wait(&self, id: u64, cond: impl FnMut(&View) -> bool) -> View {
        let mut rx = self.members[&id].view.clone();
        let view = within(rx.wait_for(cond)).await.expect("driver ended");
        view.clone()
    }

    /// Waits until every node's view satisfies `cond`.
    pub async fn wait_all(&self, mut cond: impl FnMut(&View) -> bool) {
        for &id in self.members.keys() {
            self.wait(id, &mut cond).await;
        }
    }

    /// Waits until every node has applied `index`.
    pub async fn wait_all_applied(&self, index: u64) {
        self.wait_all(|v| v.applied_index >= index).await;
    }

    /// Waits until every node reports `leader` as leader.
    pub async fn wait_leader(&self, leader: u64) {
        self.wait_all(|v| v.leader == leader).await;
    }

    /// Stops every node and waits for the drivers to end.
    pub async fn stop(self) {
        for m in self.members.values() {
            within(m.node.stop()).await;
        }
        for (_, m) in self.members {
            within(m.driver).await.expect("driver panicked");
        }
    }
}

/// Delivers messages to their receivers; a receiver not (or no longer)
/// there loses them, as a network would.
async fn deliver(router: &Router, msgs: impl Iterator<Item = Message>) {
    for m in msgs {
        let to = router.read().unwrap().get(&m.to).cloned();
        if let Some(to) = to {
            let _ = to.step(m).await;
        }
    }
}

/// The Ready loop of one node, until it stops.
async fn drive(
    node: Node,
    storage: SharedStorage<MemoryStorage>,
    router: Router,
    view: watch::Sender<View>,
) {
    loop {
        let Ok(mut rd) = node.ready().await else {
            return;
        };
        deliver(&router, rd.messages.drain(..)).await;
        {
            let mut s = storage.lock();
            if let Some(snap) = rd.snapshot.take() {
                s.apply_snapshot(*snap).expect("apply snapshot");
            }
            s.append(&rd.entries).expect("append");
            if let Some(hs) = rd.hard_state {
                s.set_hard_state(hs);
            }
        }
        deliver(&router, rd.persisted_messages.drain(..)).await;
        let mut applied = Vec::new();
        let mut confs = Vec::new();
        let mut last = None;
        for e in rd.committed_entries.drain(..) {
            last = Some(e.index);
            match decode_conf_change(&e).expect("conf change decodes") {
                Some(cc) => match node.apply_conf_change(&cc).await {
                    Ok(cs) => {
                        storage.lock().set_conf_state(cs.clone());
                        confs.push(cs);
                    }
                    Err(_) => return,
                },
                None if !e.data.is_empty() => applied.push((e.index, e.data)),
                None => {}
            }
        }
        let soft_state = rd.soft_state;
        let read_states = std::mem::take(&mut rd.read_states);
        let outcomes = std::mem::take(&mut rd.proposal_outcomes);
        if node.advance(rd).await.is_err() {
            return;
        }
        // Published once advanced: what a test asks of the node after
        // seeing the view is queued behind the advance.
        view.send_modify(|v| {
            v.readies += 1;
            if let Some(ss) = soft_state {
                v.leader = ss.leader_id;
                v.role = Some(ss.raft_state);
            }
            if let Some(last) = last {
                v.applied_index = last;
            }
            v.applied.extend(applied);
            v.conf_states.extend(confs);
            v.read_states.extend(read_states);
            v.outcomes.extend(outcomes);
        });
    }
}
