//! One seeded run: a cluster of runtimes on faulty disks, clients, the
//! nemesis for a while; then heal, converge, and check.
//!
//! The checks, in order: no member stopped or refused to start where it
//! should not have (during the run); after healing, a write and a read of
//! every key succeed, every member reaches the leader's commit index and
//! all hold the same map at the same applied index; the history (with the
//! final reads) is linearizable; no member applied another command at an
//! index than another did, nor a request twice; and on every disk, once
//! all stop, the recovered log keeps what it knew committed, agrees with
//! the others (log matching), and a majority holds the final commit.

use super::client::{Clients, Env};
use super::cluster::{runtimes, Cluster, Settings};
use super::machine::lock;
use super::nemesis::Nemesis;
use super::{within, Clock, Stats};
use rudder_raft::{StateRole, Storage};
use rudder_sim::kv::{Op, Reply};
use rudder_sim::workload::{check_linearizable, settle, Recorded};
use std::time::Duration;

/// The pause before a final write or read that failed is tried again.
const RETRY: Duration = Duration::from_millis(10);

/// How long convergence may take once the faults are healed.
const CONVERGE: Duration = Duration::from_secs(30);

/// What a run is made of; all of it from the seed.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed.
    pub seed: u64,
    /// Members: 3, or 5 for every fourth seed.
    pub members: u64,
    /// Clients running at once.
    pub clients: u64,
    /// Keys they touch.
    pub keys: u64,
    /// How long faults go on.
    pub fault_time: Duration,
    /// How the members run.
    pub settings: Settings,
}

impl RunConfig {
    /// The run of `seed`.
    pub fn for_seed(seed: u64) -> RunConfig {
        RunConfig {
            seed,
            members: if seed % 4 == 3 { 5 } else { 3 },
            clients: 4,
            keys: 4,
            fault_time: Duration::from_secs(4),
            settings: Settings {
                seed,
                tick: Duration::from_millis(5),
                snapshot_every: 40,
                request_timeout: Duration::from_millis(800),
            },
        }
    }
}

/// Runs `cfg`, counting into `stats`; `Err` says what broke.
pub async fn run(cfg: &RunConfig, stats: &mut Stats) -> Result<(), String> {
    let clock = Clock::start();
    let mut c = Cluster::new(cfg.members, cfg.settings.clone(), clock);
    for id in c.ids() {
        c.start(id)?;
    }
    let env = Env {
        runtimes: c.runtimes.clone(),
        clock,
        keys: cfg.keys,
    };
    let mut clients = Clients::spawn(cfg.clients, cfg.seed, env.clone());
    let mut nemesis = Nemesis::new(cfg.seed, &c.ids());
    let outcome = faults_then_checks(cfg, &mut c, &mut clients, &mut nemesis, env, stats).await;
    clients.stop().await;
    count_history(&clients.history(), stats);
    stats.sim_ms = clock.now() / 1_000;
    let io = c.members.values().map(|m| m.disk.counts());
    for counts in io {
        use std::sync::atomic::Ordering::Relaxed;
        stats.sync_failures += counts.sync_failures.load(Relaxed);
        stats.write_failures += counts.write_failures.load(Relaxed);
    }
    outcome
}

async fn faults_then_checks(
    cfg: &RunConfig,
    c: &mut Cluster,
    clients: &mut Clients,
    nemesis: &mut Nemesis,
    env: Env,
    stats: &mut Stats,
) -> Result<(), String> {
    let end = c.clock.now() + cfg.fault_time.as_micros() as u64;
    nemesis.run(c, end, stats).await?;
    nemesis.heal(c, stats).await?;
    clients.stop().await;
    let mut last = clients.single(cfg.clients + 1, cfg.seed, env);
    let commit = within(CONVERGE, converge(c, &mut last, cfg.keys))
        .await
        .map_err(|_| format!("no convergence within {CONVERGE:?} of healing"))??;
    let ops = settle(&clients.history(), &lock(&c.book).effects)?;
    check_linearizable(&ops)?;
    if let Some(v) = lock(&c.book).violations.first() {
        return Err(v.clone());
    }
    check_disks(c, commit).await
}

/// After healing: a write goes through, every key reads (linearizably,
/// into the history), and every member converges to one map at one
/// applied index. Returns the commit index reached.
async fn converge(c: &Cluster, last: &mut super::client::Client, keys: u64) -> Result<u64, String> {
    let done = Op::Put {
        key: "k0".into(),
        value: "final".into(),
    };
    while last.write(done.clone()).await != Some(Reply::Done) {
        tokio::time::sleep(RETRY).await;
    }
    for k in 0..keys {
        while last.read(&format!("k{k}")).await.is_none() {
            tokio::time::sleep(RETRY).await;
        }
    }
    let commit = leader_commit(c).await;
    for (id, member) in &c.members {
        let rt = member
            .runtime
            .as_ref()
            .ok_or(format!("member {id} is down"))?;
        let _ = rt.applied().wait_for(|&a| a >= commit).await;
    }
    same_state(c).await?;
    Ok(commit)
}

/// The commit index of a leader a majority follows.
async fn leader_commit(c: &Cluster) -> u64 {
    loop {
        let table = runtimes(&c.runtimes).clone();
        let states: Vec<_> = table.values().map(|rt| *rt.leader().borrow()).collect();
        let leader = states
            .iter()
            .filter(|s| s.role == Some(StateRole::Leader))
            .max_by_key(|s| s.term)
            .map(|s| s.leader);
        if let Some(l) = leader {
            let following = states.iter().filter(|s| s.leader == l).count();
            if following * 2 > c.members.len() {
                if let Ok(status) = table[&l].status().await {
                    return status.basic.hard_state.commit;
                }
            }
        }
        let mut w = table.values().next().expect("members run").leader();
        let _ = tokio::time::timeout(Duration::from_millis(20), w.changed()).await;
    }
}

/// Waits until every member has applied the same index, and checks that
/// they then hold the same map.
async fn same_state(c: &Cluster) -> Result<(), String> {
    loop {
        let mut seen = Vec::new();
        for (id, m) in &c.members {
            let rt = m.runtime.as_ref().ok_or(format!("member {id} is down"))?;
            let before = *rt.applied().borrow();
            let contents = rt
                .state()
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contents();
            let after = *rt.applied().borrow();
            seen.push((*id, before, after, contents));
        }
        let top = seen.iter().map(|s| s.2).max().unwrap_or(0);
        if seen.iter().all(|s| s.1 == top && s.2 == top) {
            let (first, _, _, map) = &seen[0];
            for (id, _, _, other) in &seen[1..] {
                if other != map {
                    return Err(format!(
                        "members {first} and {id} applied up to {top} but hold different maps: \
                         {map:?} and {other:?}"
                    ));
                }
            }
            return Ok(());
        }
        for (id, m) in &c.members {
            if let Some(rt) = &m.runtime {
                let _ = rt.applied().wait_for(|&a| a >= top).await;
            } else {
                return Err(format!("member {id} is down"));
            }
        }
    }
}

/// Stops every member and checks what each disk recovers: the
/// invariants, and the final commit held by a majority.
async fn check_disks(c: &mut Cluster, commit: u64) -> Result<(), String> {
    let recovered = c.stop_all().await?;
    let holding = recovered
        .values()
        .filter(|s| s.last_index().unwrap_or(0) >= commit)
        .count();
    if holding * 2 <= recovered.len() {
        return Err(format!(
            "only {holding} of {} disks hold the committed index {commit} after a final crash",
            recovered.len()
        ));
    }
    Ok(())
}

/// Counts operations, unknown outcomes and acknowledged writes.
fn count_history(history: &[Recorded], stats: &mut Stats) {
    stats.ops = history.len() as u64;
    stats.unknown = history.iter().filter(|r| r.ret.is_none()).count() as u64;
    stats.acked_writes = history
        .iter()
        .filter(|r| r.ret.is_some() && !matches!(r.op, Op::Get { .. }))
        .count() as u64;
}
