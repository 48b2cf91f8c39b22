//! Runs workload W1 once, to be counted under
//! `valgrind --tool=callgrind` (see docs/BENCHMARKS.md for the commands).
//! No allocator wrapper: the count is Raft's and the workload's alone
//! (`w1_allocs` counts allocations).
//!
//! Usage: `w1_count <pipelined|sequential>[-async] <proposals>`. With 0 proposals
//! it only builds the cluster, which gives the baseline to subtract from a
//! callgrind total.

#[path = "../benches/support/w1_args.rs"]
mod w1_args;
#[path = "../benches/support/w1_cluster.rs"]
mod w1_cluster;

use w1_args::parse_args;
use w1_cluster::{payload, Cluster};

fn main() {
    let args = parse_args("w1_count");
    let (mode, n) = (&args.mode, args.proposals);
    let data = payload();
    let mut cluster = Cluster::new(args.writes);
    let start = std::time::Instant::now();
    (args.run)(&mut cluster, n, &data);
    let elapsed = start.elapsed();
    println!(
        "{mode}: {n} proposals in {:.3}s, {:.0} proposals/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
