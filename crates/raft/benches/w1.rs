//! Criterion benchmark of workload W1 (see `support/w1_cluster.rs`):
//! 200,000 proposals of 128 bytes through a 3-voter in-memory cluster,
//! pipelined and sequential, with synchronous and asynchronous storage
//! writes. `cargo bench -p rudder-raft`.

#[path = "support/w1_cluster.rs"]
mod w1_cluster;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};
use w1_cluster::{payload, pipelined, sequential, Cluster, Workload, Writes};

const PROPOSALS: usize = 200_000;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("w1");
    g.throughput(Throughput::Elements(PROPOSALS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let data = payload();
    for (name, run, writes) in [
        ("pipelined", pipelined as Workload, Writes::Sync),
        ("sequential", sequential, Writes::Sync),
        ("pipelined-async", pipelined, Writes::Async),
        ("sequential-async", sequential, Writes::Async),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Setup (three nodes, an election) is not timed.
                    let mut cluster = Cluster::new(writes);
                    let start = Instant::now();
                    run(&mut cluster, PROPOSALS, &data);
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
