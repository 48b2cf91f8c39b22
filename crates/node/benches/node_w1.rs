//! Workload W1 through `Node` handles: what the task hand-off costs per
//! proposal, beside the core's own W1 (`cargo bench -p rudder-raft`).
//!
//! Three voters in one process on `MemoryStorage` (shared with the driver
//! through `SharedStorage`), node 1 elected before anything is measured,
//! 128-byte proposals (clones of one shared payload):
//!
//! - **pipelined**: bursts of 256 proposals made at once on the leader
//!   (all 256 `propose` calls in flight together), each burst driven until
//!   applied on every node;
//! - **sequential**: propose one, wait until the leader applied it, repeat.
//!
//! Each node has its own task (the `Node`) and a driver task running the
//! Ready loop: deliver `messages` to the receivers' `step`, persist
//! entries and hard state, deliver `persisted_messages`, publish the
//! applied index, `advance`. Both on a single-threaded runtime (every task
//! on one thread, as the core's W1 is) and on a two-worker runtime.
//!
//! `cargo bench -p rudder-node`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures_util::future::join_all;
use rudder_node::{Node, SharedStorage};
use rudder_raft::{ConfState, Config, MemoryStorage, Proposed};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const PROPOSALS: usize = 50_000;
const BURST: usize = 256;

/// A 3-voter cluster of `Node`s with node 1 as leader.
struct Cluster {
    nodes: Vec<Node>,
    /// Highest applied index per node, published by its driver.
    applied: Vec<watch::Receiver<u64>>,
    drivers: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Starts three nodes and their drivers and elects node 1 (not part of
    /// any measurement).
    async fn new() -> Cluster {
        let voters = ConfState::with_voters([1, 2, 3]);
        let mut nodes = Vec::new();
        let mut storages = Vec::new();
        for id in 1..=3 {
            let storage = SharedStorage::new(MemoryStorage::new_with_conf_state(voters.clone()));
            let mut config = Config::new(id);
            config.max_inflight_msgs = 256;
            nodes.push(Node::new(&config, storage.clone()).expect("valid config"));
            storages.push(storage);
        }
        let mut applied = Vec::new();
        let mut drivers = Vec::new();
        for (node, storage) in nodes.iter().zip(storages) {
            let (tx, rx) = watch::channel(0);
            applied.push(rx);
            drivers.push(tokio::spawn(drive(
                node.clone(),
                storage,
                nodes.clone(),
                tx,
            )));
        }
        let cluster = Cluster {
            nodes,
            applied,
            drivers,
        };
        cluster.nodes[0].campaign().await.expect("running");
        // The new leader's empty entry, at index 1, applied everywhere.
        cluster.wait_all_applied(1).await;
        cluster
    }

    async fn wait_all_applied(&self, index: u64) {
        for rx in &self.applied {
            wait_applied(rx, index).await;
        }
    }

    async fn stop(self) {
        for node in &self.nodes {
            node.stop().await;
        }
        for d in self.drivers {
            d.await.expect("driver");
        }
    }
}

async fn wait_applied(rx: &watch::Receiver<u64>, index: u64) {
    rx.clone()
        .wait_for(|&a| a >= index)
        .await
        .expect("driver running");
}

/// The Ready loop of one node, until it stops.
async fn drive(
    node: Node,
    storage: SharedStorage<MemoryStorage>,
    peers: Vec<Node>,
    applied: watch::Sender<u64>,
) {
    while let Ok(mut rd) = node.ready().await {
        for m in rd.messages.drain(..) {
            let _ = peers[(m.to - 1) as usize].step(m).await;
        }
        {
            let mut s = storage.lock();
            s.append(&rd.entries).expect("append");
            if let Some(hs) = rd.hard_state {
                s.set_hard_state(hs);
            }
        }
        for m in rd.persisted_messages.drain(..) {
            let _ = peers[(m.to - 1) as usize].step(m).await;
        }
        if let Some(last) = rd.committed_entries.last() {
            applied.send_replace(last.index);
        }
        if node.advance(rd).await.is_err() {
            break;
        }
    }
}

fn appended_index(p: Result<Proposed, rudder_node::NodeError>) -> u64 {
    match p {
        Ok(Proposed::Appended { index, .. }) => index,
        other => panic!("the leader appends: {other:?}"),
    }
}

/// (a) Pipelined: bursts of 256 proposals in flight together, each burst
/// driven until applied everywhere.
async fn pipelined(cluster: &Cluster, proposals: usize, payload: &Bytes) {
    let leader = &cluster.nodes[0];
    let mut left = proposals;
    while left > 0 {
        let burst = left.min(BURST);
        let results = join_all((0..burst).map(|_| leader.propose(payload.clone()))).await;
        let target = results.into_iter().map(appended_index).max().unwrap();
        left -= burst;
        cluster.wait_all_applied(target).await;
    }
}

/// (b) Sequential: propose one, wait until the leader applied it, repeat.
async fn sequential(cluster: &Cluster, proposals: usize, payload: &Bytes) {
    let leader = &cluster.nodes[0];
    for _ in 0..proposals {
        let index = appended_index(leader.propose(payload.clone()).await);
        wait_applied(&cluster.applied[0], index).await;
    }
}

type Workload = for<'a> fn(&'a Cluster, usize, &'a Bytes) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

fn bench(c: &mut Criterion) {
    let payload = Bytes::from(vec![0xAB; 128]);
    let runtimes: [(&str, Runtime); 2] = [
        (
            "current_thread",
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        ),
        (
            "multi_thread_2",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .expect("runtime"),
        ),
    ];
    let workloads: [(&str, Workload); 2] = [
        ("pipelined", |c, n, p| Box::pin(pipelined(c, n, p))),
        ("sequential", |c, n, p| Box::pin(sequential(c, n, p))),
    ];
    let mut g = c.benchmark_group("node_w1");
    g.throughput(Throughput::Elements(PROPOSALS as u64));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(15));
    for (rt_name, rt) in &runtimes {
        for (name, run) in workloads {
            g.bench_function(format!("{name}/{rt_name}"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            // Setup (three nodes, an election) is not timed.
                            let cluster = Cluster::new().await;
                            let start = Instant::now();
                            run(&cluster, PROPOSALS, &payload).await;
                            total += start.elapsed();
                            cluster.stop().await;
                        }
                        total
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
