//! The runtime over durable storage (on the in-memory file system) and an
//! in-process network: elections, replication, leader failure, restarts,
//! snapshots that catch a follower up, linearizable reads, shutdown.
//!
//! Time is real but short (ticks of 5 ms). Tests wait for conditions on the
//! runtime's watch channels, with a guard that fails a hung test; nothing
//! sleeps in place of a condition.

use bytes::Bytes;
use rudder_node::runtime::{
    Inbox, LeaderState, Network, NetworkEvent, PeerInfo, RequestError, Runtime, RuntimeConfig,
    StateMachine,
};
use rudder_raft::{Message, MessageType, SnapshotStatus, StateRole};
use rudder_storage::fs::{FileSystem, MemFs};
use rudder_storage::wal::WalOptions;
use rudder_storage::{DiskStorage, Options};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long any wait may take before the test fails as hung.
const GUARD: Duration = Duration::from_secs(20);

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// A map of strings: a command `key=value` sets a key and answers the
/// previous value.
#[derive(Default)]
struct Map(BTreeMap<String, String>);

impl StateMachine for Map {
    type Response = Option<String>;

    fn apply(&mut self, _index: u64, data: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(data);
        let (k, v) = text.split_once('=')?;
        self.0.insert(k.to_owned(), v.to_owned())
    }

    fn snapshot(&self) -> Bytes {
        let lines: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Bytes::from(lines.join("\n"))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(snapshot).map_err(|e| e.to_string())?;
        self.0 = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(())
    }
}

/// The in-process network: every node's inbox by ID, and the nodes that
/// are down (messages to them are lost, and reported).
#[derive(Clone, Default)]
struct Switch {
    inboxes: Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>,
    down: Arc<Mutex<HashSet<u64>>>,
}

/// One node's side of the switch.
struct Port {
    switch: Switch,
    events: mpsc::UnboundedSender<NetworkEvent>,
}

impl Network for Port {
    fn send(&self, msgs: Vec<Message>) {
        let inboxes = self.switch.inboxes.lock().unwrap();
        let down = self.switch.down.lock().unwrap();
        for m in msgs {
            let (to, snap) = (m.to, m.msg_type == MessageType::MsgSnap as i32);
            let delivered =
                !down.contains(&to) && inboxes.get(&to).is_some_and(|tx| tx.try_send(m).is_ok());
            if !delivered {
                let _ = self.events.send(NetworkEvent::Unreachable(to));
            }
            if snap {
                let status = if delivered {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                let _ = self.events.send(NetworkEvent::Snapshot { to, status });
            }
        }
    }

    fn add_peer(&self, _id: u64, _info: &PeerInfo) {}

    fn remove_peer(&self, _id: u64) {}
}

/// A cluster of runtimes, each on its own in-memory disk.
struct Cluster {
    switch: Switch,
    disks: BTreeMap<u64, MemFs>,
    nodes: BTreeMap<u64, Runtime<Map>>,
    peers: BTreeMap<u64, PeerInfo>,
    snapshot_every: u64,
}

fn info(id: u64) -> PeerInfo {
    PeerInfo {
        raft_addr: format!("node{id}:2380"),
        http_addr: format!("node{id}:2379"),
        replicated: false,
    }
}

impl Cluster {
    async fn new(n: u64, snapshot_every: u64) -> Cluster {
        let mut c = Cluster {
            switch: Switch::default(),
            disks: BTreeMap::new(),
            nodes: BTreeMap::new(),
            peers: (1..=n).map(|id| (id, info(id))).collect(),
            snapshot_every,
        };
        for id in 1..=n {
            c.disks.insert(id, MemFs::new(id));
            c.start(id);
        }
        c
    }

    /// Starts node `id` on its disk (recovering what it holds).
    fn start(&mut self, id: u64) {
        self.launch(id, true);
    }

    /// Starts a new node `id` that joins the running cluster once added.
    fn join(&mut self, id: u64) {
        self.disks.insert(id, MemFs::new(id));
        self.launch(id, false);
    }

    fn launch(&mut self, id: u64, bootstrap: bool) {
        let fs = self.disks[&id].clone();
        let opts = Options {
            wal: WalOptions {
                segment_size: 64 << 10,
            },
            ..Options::default()
        };
        let storage = DiskStorage::open(
            Arc::new(fs) as Arc<dyn FileSystem>,
            Path::new("/data"),
            opts,
        )
        .expect("the storage opens");
        let mut config = RuntimeConfig::new(id);
        config.tick = Duration::from_millis(5);
        config.raft.seed = id;
        config.snapshot_every = self.snapshot_every;
        config.keep_entries = 5;
        config.request_timeout = Duration::from_secs(5);
        config.peers = self.peers.clone();
        config.bootstrap = bootstrap;
        let (tx, messages) = mpsc::channel(4096);
        let (events_tx, events) = mpsc::unbounded_channel();
        self.switch.inboxes.lock().unwrap().insert(id, tx);
        self.switch.down.lock().unwrap().remove(&id);
        let port = Port {
            switch: self.switch.clone(),
            events: events_tx,
        };
        let rt = Runtime::start(
            config,
            storage,
            Map::default(),
            port,
            Inbox { messages, events },
        )
        .expect("the runtime starts");
        self.nodes.insert(id, rt);
    }

    /// Stops node `id` as a crash would: the network loses it, the runtime
    /// ends, and its disk keeps only what was synced.
    async fn crash(&mut self, id: u64) {
        self.switch.down.lock().unwrap().insert(id);
        self.switch.inboxes.lock().unwrap().remove(&id);
        let rt = self.nodes.remove(&id).expect("the node runs");
        rt.shutdown().await;
        self.disks[&id].crash();
    }

    /// Waits until a running node leads and a majority of the running
    /// nodes follow it (a node that is not a member yet knows no leader).
    async fn leader(&self) -> u64 {
        within("no leader elected", async {
            loop {
                let seen: Vec<LeaderState> = self
                    .nodes
                    .values()
                    .map(|rt| *rt.leader().borrow())
                    .collect();
                let leading = seen
                    .iter()
                    .filter(|s| s.role == Some(StateRole::Leader))
                    .max_by_key(|s| s.term);
                if let Some(l) = leading.map(|s| s.leader) {
                    let following = seen.iter().filter(|s| s.leader == l).count();
                    if self.nodes.contains_key(&l) && following * 2 > seen.len() {
                        return l;
                    }
                }
                let mut w = self.nodes.values().next().unwrap().leader();
                let _ = tokio::time::timeout(Duration::from_millis(20), w.changed()).await;
            }
        })
        .await
    }

    /// The commit index of the leader: every write acknowledged so far is
    /// at or below it.
    async fn commit_index(&self) -> u64 {
        let l = self.leader().await;
        self.nodes[&l]
            .status()
            .await
            .expect("the leader runs")
            .basic
            .hard_state
            .commit
    }

    /// Waits until node `id` has applied `index`.
    async fn applied(&self, id: u64, index: u64) {
        let mut w = self.nodes[&id].applied();
        within(
            "the node never applied the index",
            w.wait_for(|&a| a >= index),
        )
        .await
        .expect("the node runs");
    }

    fn value(&self, id: u64, key: &str) -> Option<String> {
        self.nodes[&id].state().read().unwrap().0.get(key).cloned()
    }

    fn map(&self, id: u64) -> BTreeMap<String, String> {
        self.nodes[&id].state().read().unwrap().0.clone()
    }
}

fn cmd(k: &str, v: impl std::fmt::Display) -> Bytes {
    Bytes::from(format!("{k}={v}"))
}

/// Proposes `key=value` at the leader, retrying through leader changes;
/// returns once acknowledged.
async fn put(c: &Cluster, key: &str, value: u64) {
    within("a write was never acknowledged", async {
        loop {
            let l = c.leader().await;
            match c.nodes[&l].propose(cmd(key, value)).await {
                Ok(_) => return,
                Err(
                    RequestError::NotLeader { .. } | RequestError::Timeout | RequestError::Unknown,
                ) => continue,
                Err(e) => panic!("put {key}={value}: {e}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_followers_point_to_the_leader() {
    let c = Cluster::new(3, 10_000).await;
    let l = c.leader().await;
    for i in 0..50 {
        let previous = c.nodes[&l]
            .propose(cmd("k", i))
            .await
            .expect("the leader applies");
        assert_eq!(previous, (i > 0).then(|| (i - 1).to_string()));
    }
    let index = c.commit_index().await;
    for &id in c.nodes.keys() {
        c.applied(id, index).await;
        assert_eq!(c.value(id, "k").as_deref(), Some("49"), "node {id}");
    }
    let follower = *c.nodes.keys().find(|&&id| id != l).unwrap();
    assert_eq!(
        c.nodes[&follower].propose(cmd("x", 1)).await,
        Err(RequestError::NotLeader { leader: l })
    );
    let status = c.nodes[&l].status().await.unwrap();
    assert_eq!(status.progress.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_loses_no_acknowledged_write_and_catches_up() {
    let mut c = Cluster::new(3, 10_000).await;
    for i in 0..30 {
        put(&c, &format!("a{i}"), i).await;
    }
    let old = c.leader().await;
    c.crash(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    for i in 0..30 {
        put(&c, &format!("b{i}"), i).await;
    }
    c.start(old);
    let index = c.commit_index().await;
    c.applied(old, index).await;
    let restarted = c.map(old);
    for i in 0..30 {
        assert_eq!(
            restarted.get(&format!("a{i}")),
            Some(&i.to_string()),
            "a{i} on the restarted node"
        );
        assert_eq!(
            restarted.get(&format!("b{i}")),
            Some(&i.to_string()),
            "b{i} on the restarted node"
        );
    }
    assert_eq!(restarted, c.map(new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_by_snapshot() {
    let mut c = Cluster::new(3, 20).await;
    put(&c, "first", 0).await;
    let l = c.leader().await;
    let lagging = *c.nodes.keys().find(|&&id| id != l).unwrap();
    c.crash(lagging).await;
    for i in 0..100 {
        put(&c, "k", i).await;
    }
    assert!(
        c.nodes[&l]
            .metrics()
            .snapshots
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    c.start(lagging);
    let index = c.commit_index().await;
    c.applied(lagging, index).await;
    assert_eq!(c.map(lagging), c.map(l));
    let sent = c.nodes[&l].metrics().sent();
    assert!(
        sent.iter()
            .any(|&(t, n)| t == MessageType::MsgSnap && n > 0),
        "the leader sent no snapshot: {sent:?}"
    );
    // The follower got a snapshot: it restarts from one of its own too.
    c.crash(lagging).await;
    c.start(lagging);
    c.applied(lagging, index).await;
    assert_eq!(c.value(lagging, "k").as_deref(), Some("99"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_leader_change_sees_the_latest_write() {
    let mut c = Cluster::new(3, 10_000).await;
    put(&c, "k", 1).await;
    let old = c.leader().await;
    c.crash(old).await;
    let new = c.leader().await;
    put(&c, "k", 2).await;
    for (&id, rt) in &c.nodes {
        let index = within("read", rt.read_barrier())
            .await
            .expect("a read barrier");
        assert!(*rt.applied().borrow() >= index);
        assert_eq!(
            c.value(id, "k").as_deref(),
            Some("2"),
            "node {id} (leader {new})"
        );
    }
    // Many reads at once share rounds.
    let reads: Vec<_> = (0..50).map(|_| c.nodes[&new].read_barrier()).collect();
    for r in futures_util::future::join_all(reads).await {
        r.expect("a read barrier");
    }
    let rounds = c.nodes[&new]
        .metrics()
        .read_rounds
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(rounds < 50, "{rounds} rounds for 53 reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_every_request_fails_at_once() {
    let c = Cluster::new(1, 10_000).await;
    let l = c.leader().await;
    c.nodes[&l].propose(cmd("k", 1)).await.unwrap();
    let rt = c.nodes[&l].clone();
    rt.shutdown().await;
    assert_eq!(
        within("propose", rt.propose(cmd("k", 2))).await,
        Err(RequestError::Shutdown)
    );
    assert_eq!(
        within("read", rt.read_barrier()).await,
        Err(RequestError::Shutdown)
    );
    let info = PeerInfo::default();
    assert_eq!(
        within("add", rt.add_member(2, &info, true)).await,
        Err(RequestError::Shutdown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_is_promoted_and_a_voter_is_removed() {
    let mut c = Cluster::new(3, 10_000).await;
    put(&c, "k", 1).await;
    c.join(4);
    let l = c.leader().await;
    let cs = c.nodes[&l]
        .add_member(4, &info(4), true)
        .await
        .expect("learner added");
    assert_eq!((cs.voters.len(), cs.learners.clone()), (3, vec![4]));
    let index = c.commit_index().await;
    c.applied(4, index).await;
    assert_eq!(
        c.value(4, "k").as_deref(),
        Some("1"),
        "the learner has the log"
    );
    let cs = c.nodes[&l].promote_member(4).await.expect("promoted");
    assert!(cs.voters.contains(&4) && cs.learners.is_empty(), "{cs:?}");
    let victim = *c.nodes.keys().find(|&&id| id != l && id != 4).unwrap();
    let cs = c.nodes[&l].remove_member(victim).await.expect("removed");
    assert!(!cs.voters.contains(&victim), "{cs:?}");
    let book = c.nodes[&l].members();
    assert_eq!(
        book.get(&4).map(|i| (&*i.raft_addr, &*i.http_addr)),
        Some((&*info(4).raft_addr, &*info(4).http_addr))
    );
    assert!(!c.nodes[&l].members().contains_key(&victim));
    c.crash(victim).await;
    put(&c, "k", 2).await;
    let index = c.commit_index().await;
    c.applied(4, index).await;
    assert_eq!(c.value(4, "k").as_deref(), Some("2"));
}

/// Whether every running node's address book says, of each member in
/// `ids`, `replicated`.
fn marked(c: &Cluster, ids: &[u64], replicated: bool) -> bool {
    c.nodes.values().all(|rt| {
        let book = rt.members();
        ids.iter()
            .all(|id| book.get(id).is_some_and(|i| i.replicated == replicated))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_marks_the_members_its_log_reached_and_no_other() {
    let mut c = Cluster::new(3, 10_000).await;
    put(&c, "k", 1).await;
    let l = c.leader().await;
    // Added, never started: the log cannot reach it.
    c.nodes[&l]
        .add_member(4, &info(4), true)
        .await
        .expect("learner added");
    within("the founders were never marked everywhere", async {
        while !marked(&c, &[1, 2, 3], true) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(marked(&c, &[4], false), "a member that never ran is marked");
    c.join(4);
    within("the learner was never marked once it held the log", async {
        while !marked(&c, &[1, 2, 3, 4], true) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The marks are in the log: a restarted node has them back once it
    // has applied it again.
    let victim = *c.nodes.keys().find(|&&id| id != l).unwrap();
    c.crash(victim).await;
    c.start(victim);
    let index = c.commit_index().await;
    c.applied(victim, index).await;
    assert!(marked(&c, &[1, 2, 3, 4], true), "a restart lost the marks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_waits_for_the_one_before_it_instead_of_failing() {
    let c = Cluster::new(3, 10_000).await;
    let l = c.leader().await;
    let rt = &c.nodes[&l];
    // The core takes one change at a time: the second arrives while the
    // first is pending, and waits for it.
    let (info4, info5) = (info(4), info(5));
    let (four, five) = tokio::join!(
        rt.add_member(4, &info4, true),
        rt.add_member(5, &info5, true)
    );
    let four = four.expect("the first change applies");
    let five = five.expect("the second change applies after it");
    assert_eq!(
        (four.learners, five.learners),
        (vec![4], vec![4, 5]),
        "in the order asked"
    );
}
