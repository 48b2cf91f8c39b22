//! Randomized runs of the simulated cluster under every kind of fault: the
//! invariants hold at every step, the cluster recovers once the faults
//! heal, and the clients' history is linearizable.
//!
//! By default the seeds `0..DEFAULT_SEEDS` run, split over two tests so
//! they use both cores, and together must cover at least 1,000,000
//! simulated node-ticks. Environment variables run more, bounded by what
//! you ask:
//!
//! - `RUDDER_SIM_SEEDS=n`: run seeds `0..n` instead.
//! - `RUDDER_SIM_SEED=s`: run only seed `s` (to replay a failure).
//! - `RUDDER_SIM_TICKS=t`: ticks of faults per run (default 2,600).
//! - `RUDDER_SIM_TRACE=path`: write the run's event trace there (the last
//!   run's, or the failing one's).
//!
//! A failure prints its seed and the command that replays it.

use rudder_sim::sim::{Report, SimConfig, Simulation};
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

const DEFAULT_SEEDS: u64 = 140;
const DEFAULT_TICKS: u64 = 2_600;
/// What the default seeds must cover together.
const PROMISED_NODE_TICKS: u64 = 1_000_000;

fn env(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
    )
}

/// Runs one seed; on failure (a broken invariant, or a panic in the core
/// or the simulator) writes the trace if asked and panics with the replay
/// command.
fn run(seed: u64, ticks: u64) -> Report {
    let trace = std::env::var("RUDDER_SIM_TRACE").ok();
    let mut cfg = SimConfig::random(seed, ticks);
    cfg.trace = trace.is_some();
    let replay = format!(
        "config: {cfg:?}\nreplay: RUDDER_SIM_SEED={seed} RUDDER_SIM_TICKS={ticks} \
         RUDDER_SIM_TRACE=trace.txt cargo test -p rudder-sim --test random"
    );
    let sim = Simulation::new(cfg).expect("random configurations are valid");
    match panic::catch_unwind(AssertUnwindSafe(|| sim.run())) {
        Ok(Ok(r)) => {
            if let Some(path) = &trace {
                std::fs::write(path, r.trace.join("\n")).expect("trace file writable");
            }
            r
        }
        Ok(Err(f)) => {
            if let Some(path) = &trace {
                std::fs::write(path, f.trace.join("\n")).expect("trace file writable");
            }
            panic!("{f}\n{replay}");
        }
        Err(cause) => {
            let what = cause
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| cause.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            panic!("seed {seed} panicked: {what}\n{replay}");
        }
    }
}

/// Runs the seeds of `0..n` with `seed % 2 == half`; returns the node-ticks.
fn run_half(half: u64) -> u64 {
    let ticks = env("RUDDER_SIM_TICKS").unwrap_or(DEFAULT_TICKS);
    let seeds: Vec<u64> = match env("RUDDER_SIM_SEED") {
        Some(s) if s % 2 == half => vec![s],
        Some(_) => vec![],
        None => (0..env("RUDDER_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS))
            .filter(|s| s % 2 == half)
            .collect(),
    };
    let start = Instant::now();
    let mut node_ticks = 0;
    for &seed in &seeds {
        let r = run(seed, ticks);
        node_ticks += r.node_ticks;
        println!(
            "seed {seed}: {} node-ticks, {} terms led, {} committed, {} faults, {} operations, {} refusals",
            r.node_ticks,
            r.leaders,
            r.committed,
            r.faults,
            r.history.len(),
            r.refusals
        );
    }
    println!(
        "{} seeds, {node_ticks} node-ticks in {:?}",
        seeds.len(),
        start.elapsed()
    );
    node_ticks
}

fn is_default_run() -> bool {
    ["RUDDER_SIM_SEED", "RUDDER_SIM_SEEDS", "RUDDER_SIM_TICKS"]
        .iter()
        .all(|v| std::env::var(v).is_err())
}

#[test]
fn randomized_runs_even_seeds() {
    let ticks = run_half(0);
    if is_default_run() {
        assert!(
            ticks >= PROMISED_NODE_TICKS / 2,
            "the even default seeds covered {ticks} node-ticks, short of half the promised {PROMISED_NODE_TICKS}"
        );
    }
}

#[test]
fn randomized_runs_odd_seeds() {
    let ticks = run_half(1);
    if is_default_run() {
        assert!(
            ticks >= PROMISED_NODE_TICKS / 2,
            "the odd default seeds covered {ticks} node-ticks, short of half the promised {PROMISED_NODE_TICKS}"
        );
    }
}
