//! Disk faults end to end: clusters of the real runtime
//! (`rudder_node::runtime`) on faulty in-memory disks (`MemFs`), with
//! crashes that lose or tear unsynced writes, fsyncs and writes that fail,
//! bits flipped in the WAL, and a lossy, partitioned network — checked for
//! safety: a linearizable history, one command per index on every member
//! across restarts, no acknowledged write lost, convergence, and Raft's
//! invariants on every recovered disk.
//!
//! This lives in the simulator's tests, not its library: it drives the
//! node crate's runtime, which the simulator's deterministic core
//! simulation does not need, so `rudder-node` stays a dev-dependency.
//!
//! Each run is one `u64` seed: the cluster size (3, or 5 for every fourth
//! seed), the fault schedule ([`nemesis`]), the network's choices
//! ([`net`]), the disks' torn-write cuts and the clients' operations
//! ([`client`]). Runs use Tokio's paused clock on a current-thread
//! runtime: time moves only when every task waits, so a run of several
//! simulated seconds takes a fraction of that, and is close to
//! deterministic (the runtime's fsyncs run on blocking threads, which
//! Tokio waits for before moving the clock, but whose completion order
//! against the other tasks is the OS's).
//!
//! - `RUDDER_DISK_FAULT_SEED=s`: run only seed `s` (to replay a failure).
//! - `RUDDER_DISK_FAULT_SEEDS=n`: run seeds `0..n` instead of the default.
//! - `RUDDER_DISK_FAULT_THREADS=t`: runs at once (default 2).
//!
//! A failure prints the seed, the run's statistics and the replay
//! command. Over the default seeds every kind of fault must have fired,
//! or the test proves nothing and fails.

#[path = "runtime_disk_faults/client.rs"]
mod client;
#[path = "runtime_disk_faults/cluster.rs"]
mod cluster;
#[path = "runtime_disk_faults/disk.rs"]
mod disk;
#[path = "runtime_disk_faults/machine.rs"]
mod machine;
#[path = "runtime_disk_faults/nemesis.rs"]
mod nemesis;
#[path = "runtime_disk_faults/net.rs"]
mod net;
#[path = "runtime_disk_faults/run.rs"]
mod run;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// Seeds run by default: `0..DEFAULT_SEEDS`.
const DEFAULT_SEEDS: u64 = 64;

/// Seeds that once failed, run with the default ones (51, the other, is
/// among them): 51 found a snapshot file the log never named pruning the
/// one it did, 70 a snapshot durable past the durable commit index. Runs
/// replay only approximately (see the module docs); the storage's
/// `recovery` tests pin both bugs down deterministically.
const REGRESSION_SEEDS: &[u64] = &[70];

/// How much simulated time a whole run may take before it counts as hung.
const RUN_GUARD: Duration = Duration::from_secs(300);

/// How much real time a whole run may take before it counts as hung.
const REAL_TIME_GUARD: Duration = Duration::from_secs(120);

/// The run's clock: Tokio's (paused) time, in microseconds since the
/// start. Never runs backwards.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            start: tokio::time::Instant::now(),
        }
    }

    /// Microseconds since the start.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// `fut`, unless it takes longer than `limit`.
pub async fn within<F: Future>(
    limit: Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(limit, fut).await
}

/// What a run did: the faults that happened and the work done.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Crashes.
    pub crashes: u64,
    /// Crashes that tore unsynced writes to a prefix (the others lost
    /// them).
    pub torn_crashes: u64,
    /// Restarts whose recovery cut a torn tail off the log.
    pub torn_tails: u64,
    /// Sync failures injected.
    pub sync_faults: u64,
    /// Syncs that failed.
    pub sync_failures: u64,
    /// Write failures injected.
    pub write_faults: u64,
    /// Writes that failed.
    pub write_failures: u64,
    /// Members seen to stop themselves after a failed sync or write.
    pub fail_stops: u64,
    /// Bits flipped in a WAL.
    pub bit_flips: u64,
    /// Restarts refused for a flipped bit, naming the damage.
    pub damage_refused: u64,
    /// Partitions.
    pub partitions: u64,
    /// Operations recorded.
    pub ops: u64,
    /// Operations of unknown outcome.
    pub unknown: u64,
    /// Writes acknowledged.
    pub acked_writes: u64,
    /// Simulated time the run took.
    pub sim_ms: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.crashes += o.crashes;
        self.torn_crashes += o.torn_crashes;
        self.torn_tails += o.torn_tails;
        self.sync_faults += o.sync_faults;
        self.sync_failures += o.sync_failures;
        self.write_faults += o.write_faults;
        self.write_failures += o.write_failures;
        self.fail_stops += o.fail_stops;
        self.bit_flips += o.bit_flips;
        self.damage_refused += o.damage_refused;
        self.partitions += o.partitions;
        self.ops += o.ops;
        self.unknown += o.unknown;
        self.acked_writes += o.acked_writes;
        self.sim_ms += o.sim_ms;
    }

    /// The fault kinds that never happened.
    fn missing(&self) -> Vec<&'static str> {
        let kinds = [
            (
                "crashes losing unsynced writes",
                self.crashes - self.torn_crashes,
            ),
            ("crashes tearing unsynced writes", self.torn_crashes),
            ("torn tails recovered", self.torn_tails),
            ("failed fsyncs", self.sync_failures),
            ("failed writes", self.write_failures),
            ("fail-stops verified", self.fail_stops),
            ("damaged WALs refused", self.damage_refused),
            ("partitions", self.partitions),
            ("unknown outcomes", self.unknown),
        ];
        kinds
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(k, _)| *k)
            .collect()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crashes {} (torn {}, torn tails cut {}), fsync failures {} of {} injected, \
             write failures {} ({} injected), fail-stops {}, bit flips {} (refused {}), \
             partitions {}, ops {} (unknown {}, writes acked {}), simulated {} ms",
            self.crashes,
            self.torn_crashes,
            self.torn_tails,
            self.sync_failures,
            self.sync_faults,
            self.write_failures,
            self.write_faults,
            self.fail_stops,
            self.bit_flips,
            self.damage_refused,
            self.partitions,
            self.ops,
            self.unknown,
            self.acked_writes,
            self.sim_ms
        )
    }
}

thread_local! {
    /// The seed this thread runs, for the panic hook.
    static SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Every panic seen anywhere during the runs, with the seed its thread
/// was running, if known: a panic is always a failure, even one a task
/// swallowed.
static PANICS: Mutex<Vec<(Option<u64>, String)>> = Mutex::new(Vec::new());

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let seed = SEED.with(Cell::get);
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            let what = format!("thread {thread}: {info}");
            PANICS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((seed, what));
            previous(info);
        }));
    });
}

/// The panics recorded for `seed`.
fn panics_of(seed: Option<u64>) -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(s, _)| *s == seed)
        .map(|(_, p)| p.clone())
        .collect()
}

fn env(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
    )
}

/// Runs one seed on a paused current-thread runtime of its own.
fn run_seed(seed: u64) -> (Stats, Result<(), String>) {
    SEED.with(|s| s.set(Some(seed)));
    let cfg = run::RunConfig::for_seed(seed);
    let mut stats = Stats::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a Tokio runtime");
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            match within(RUN_GUARD, run::run(&cfg, &mut stats)).await {
                Ok(r) => r,
                Err(_) => Err(format!("the run hung for {RUN_GUARD:?} of simulated time")),
            }
        })
    }));
    drop(rt);
    SEED.with(|s| s.set(None));
    let mut outcome = outcome.unwrap_or_else(|_| Err("the run panicked".into()));
    let panics = panics_of(Some(seed));
    if outcome.is_ok() && !panics.is_empty() {
        outcome = Err(format!("a task panicked: {}", panics.join("; ")));
    }
    (stats, outcome.map_err(|e| format!("{e}\nconfig: {cfg:?}")))
}

/// Runs one seed on a thread of its own, failing it if it takes longer
/// than [`REAL_TIME_GUARD`] of real time (a run whose tasks never let the
/// paused clock move would otherwise hang the test; its thread is left
/// behind).
fn run_guarded(seed: u64) -> (Stats, Result<(), String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || {
            let _ = tx.send(run_seed(seed));
        })
        .expect("a thread");
    rx.recv_timeout(REAL_TIME_GUARD).unwrap_or_else(|_| {
        let why = format!("the run took over {REAL_TIME_GUARD:?} of real time (a livelock?)");
        (Stats::default(), Err(why))
    })
}

/// Runs `seeds` on `threads` threads; returns each seed's outcome.
fn run_all(seeds: &[u64], threads: u64) -> Vec<(u64, Stats, Result<(), String>)> {
    let next = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(i) else { break };
                let (stats, outcome) = run_guarded(seed);
                let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
                println!("seed {seed}: {verdict} — {stats}");
                results.lock().unwrap().push((seed, stats, outcome));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    results
}

#[test]
fn runtime_survives_disk_faults() {
    install_panic_hook();
    let one = env("RUDDER_DISK_FAULT_SEED");
    let many = env("RUDDER_DISK_FAULT_SEEDS");
    let default = one.is_none() && many.is_none();
    let seeds: Vec<u64> = match (one, many) {
        (Some(s), _) => vec![s],
        (None, Some(n)) => (0..n).collect(),
        (None, None) => (0..DEFAULT_SEEDS)
            .chain(REGRESSION_SEEDS.iter().copied())
            .collect(),
    };
    let threads = env("RUDDER_DISK_FAULT_THREADS").unwrap_or(2);
    let started = std::time::Instant::now();
    let results = run_all(&seeds, threads);
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for (seed, stats, outcome) in &results {
        total.add(stats);
        if let Err(why) = outcome {
            failures.push(format!(
                "seed {seed} failed: {why}\nstats: {stats}\nreplay: RUDDER_DISK_FAULT_SEED={seed} \
                 cargo test -p rudder-sim --test runtime_disk_faults -- --nocapture"
            ));
        }
    }
    println!(
        "{} seeds in {:.1} s: {total}",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    let stray = panics_of(None);
    assert!(stray.is_empty(), "panics outside any run: {stray:#?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    if default {
        let missing = total.missing();
        assert!(
            missing.is_empty(),
            "over the default seeds these faults never happened, so nothing was tested for them: \
             {missing:?} ({total})"
        );
    }
}
