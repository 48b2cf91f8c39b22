//! Runs workload W1 once and counts the heap allocations made while the
//! proposals run (cluster setup excluded), with dhat's allocator.
//!
//! Usage: `w1_allocs <pipelined|sequential>[-async] <proposals>`.

#[path = "../benches/support/w1_args.rs"]
mod w1_args;
#[path = "../benches/support/w1_cluster.rs"]
mod w1_cluster;

use w1_args::parse_args;
use w1_cluster::{payload, Cluster};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let args = parse_args("w1_allocs");
    let (mode, n) = (&args.mode, args.proposals);
    let data = payload();
    let mut cluster = Cluster::new(args.writes);
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    (args.run)(&mut cluster, n, &data);
    let allocs = dhat::HeapStats::get().total_blocks - before.total_blocks;
    println!(
        "{mode}: {n} proposals, {allocs} allocations, {:.3} allocations/proposal",
        allocs as f64 / n.max(1) as f64
    );
}
