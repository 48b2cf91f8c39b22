//! The nemesis run on real `rudder serve` processes (see `rudder-chaos`
//! and docs/RELIABILITY.md): kill -9 and restarts, pauses, partitions,
//! leader transfers and member replacements under a recorded client load;
//! then the history must be linearizable, no acknowledged write missing,
//! and every member must hold the same data.
//!
//! Bounded by default (one run, a fixed seed, about a minute). Longer and
//! other runs:
//!
//! ```text
//! RUDDER_NEMESIS_SEED=7 RUDDER_NEMESIS_SECS=600 RUDDER_NEMESIS_MEMBERS=5 \
//!     cargo test -p rudder-kv --test nemesis -- --nocapture
//! ```
//!
//! A failing run keeps its directory (printed): `summary.txt`,
//! `history.jsonl`, `nemesis.log` and every member's log.

use rudder_chaos::{run, RunConfig};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The seed of the bounded run.
const DEFAULT_SEED: u64 = 1;

/// Seconds of faults in the bounded run.
const DEFAULT_SECS: u64 = 40;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_run_keeps_every_promise() {
    let seed = env_u64("RUDDER_NEMESIS_SEED", DEFAULT_SEED);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("nemesis")
        .join(format!("seed-{seed}-{stamp}"));
    let config = RunConfig {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_rudder")),
        seed,
        duration: Duration::from_secs(env_u64("RUDDER_NEMESIS_SECS", DEFAULT_SECS)),
        members: env_u64("RUDDER_NEMESIS_MEMBERS", 3),
        clients: 6,
        registers: 8,
        tick_ms: 20,
        lease_reads: env_u64("RUDDER_NEMESIS_LEASE", 0) == 1,
        dir: dir.clone(),
    };
    let report = run(config).await.expect("the harness itself failed");
    println!("{}", report.summary);
    if report.passed() && !report.tried_every_fault {
        panic!(
            "seed {seed}: the nemesis did not carry out every kind of fault, so the run proves less than it claims; see {}\n{}",
            report.dir.display(),
            report.summary
        );
    }
    if report.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        panic!(
            "nemesis run with seed {seed} failed; history, summary and logs in {}\n{}\nreplay: RUDDER_NEMESIS_SEED={seed} cargo test -p rudder-kv --test nemesis",
            report.dir.display(),
            report.summary
        );
    }
}
