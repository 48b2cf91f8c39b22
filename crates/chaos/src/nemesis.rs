//! The nemesis: one fault at a time, drawn from a seed, held for a while
//! and healed, while the clients keep going.
//!
//! The schedule (which fault, on whom, for how long, the quiet between) is
//! a function of the seed alone; what the cluster does meanwhile is not,
//! since real processes and sockets are involved. The first faults go
//! through every kind once, in an order the seed shuffles, so even a short
//! run tries them all.

use crate::cluster::Cluster;
use crate::error::HarnessError;
use crate::workload::Endpoints;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `SIGKILL` a member, then restart it.
    Kill,
    /// `SIGKILL` the leader, then restart it.
    KillLeader,
    /// `SIGKILL` every member at once (a cluster-wide crash), then restart
    /// them all.
    KillAll,
    /// `SIGSTOP` a member (the leader half the time), then `SIGCONT`.
    Pause,
    /// Cut the leader off from every other member.
    IsolateLeader,
    /// Cut a minority off from the majority.
    Split,
    /// Two sides that only one member (the bridge) connects.
    Bridge,
    /// Ask the leader to hand over to another member.
    Transfer,
    /// Replace a member: add a new one, promote it, remove the old one.
    Replace,
    /// Wipe a member's data directory (a dead disk): it must refuse to
    /// start on it; removed and added again, it joins afresh.
    LoseData,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::KillAll,
        FaultKind::Pause,
        FaultKind::IsolateLeader,
        FaultKind::Split,
        FaultKind::Bridge,
        FaultKind::Transfer,
        FaultKind::Replace,
        FaultKind::LoseData,
    ];
}

/// How many times the first round tries each kind of fault.
pub const FIRST_ROUND_TRIES: u32 = 3;

/// The nemesis's schedule and its log.
pub struct Nemesis {
    rng: SmallRng,
    start: Instant,
    /// What was done and when (milliseconds since the run began).
    pub log: String,
    /// Of each kind, how many faults were carried out and how many the
    /// harness could not carry out.
    pub counts: Vec<(FaultKind, u32, u32)>,
    first_round: Vec<FaultKind>,
}

impl Nemesis {
    /// The nemesis for `seed`; times in its log count from `start`.
    pub fn new(seed: u64, start: Instant) -> Nemesis {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut first_round = FaultKind::ALL.to_vec();
        first_round.shuffle(&mut rng);
        Nemesis {
            rng,
            start,
            log: String::new(),
            counts: FaultKind::ALL.iter().map(|&k| (k, 0, 0)).collect(),
            first_round,
        }
    }

    fn note(&mut self, what: &str) {
        let ms = self.start.elapsed().as_millis();
        let _ = writeln!(self.log, "{ms:>8} ms  {what}");
    }

    /// Whether every kind of fault was carried out at least once.
    pub fn tried_every_kind(&self) -> bool {
        self.counts.iter().all(|c| c.1 > 0)
    }

    /// Runs faults until `until`, then leaves the cluster healed. A fault
    /// the harness could not carry out is logged, not fatal: the checks at
    /// the end decide whether the cluster survived it.
    ///
    /// The first round (every kind once) is finished even past `until`,
    /// and a kind that could not be carried out in it is tried again, up
    /// to [`FIRST_ROUND_TRIES`] times, so that a slow machine does not
    /// make a run skip a kind of fault.
    pub async fn run(&mut self, cluster: &mut Cluster, endpoints: &Endpoints, until: Instant) {
        let mut tries = [0u32; FaultKind::ALL.len()];
        while Instant::now() < until || !self.first_round.is_empty() {
            let in_first_round = !self.first_round.is_empty();
            let kind = self
                .first_round
                .pop()
                .unwrap_or_else(|| FaultKind::ALL[self.rng.random_range(0..FaultKind::ALL.len())]);
            let hold = Duration::from_millis(self.rng.random_range(800..2500));
            let done = self.fault(kind, hold, cluster, endpoints).await;
            if let Err(e) = &done {
                self.note(&format!("  {kind:?} could not be done: {e}"));
                let k = FaultKind::ALL.iter().position(|&x| x == kind).unwrap_or(0);
                tries[k] += 1;
                if in_first_round && tries[k] < FIRST_ROUND_TRIES {
                    self.first_round.insert(0, kind);
                }
            }
            if let Some(c) = self.counts.iter_mut().find(|c| c.0 == kind) {
                if done.is_ok() {
                    c.1 += 1;
                } else {
                    c.2 += 1;
                }
            }
            if let Err(e) = cluster.heal() {
                self.note(&format!("  healing failed: {e}"));
            }
            self.note("healed");
            let quiet = Duration::from_millis(self.rng.random_range(500..1500));
            tokio::time::sleep(quiet).await;
        }
    }

    /// A member drawn from the current ones.
    fn pick(&mut self, ids: &[u64]) -> u64 {
        ids[self.rng.random_range(0..ids.len())]
    }

    async fn fault(
        &mut self,
        kind: FaultKind,
        hold: Duration,
        cluster: &mut Cluster,
        endpoints: &Endpoints,
    ) -> Result<(), HarnessError> {
        let ids: Vec<u64> = cluster.members.keys().copied().collect();
        let leader = cluster.leader().await;
        // A fault aimed at the leader is not carried out without one.
        let the_leader = || leader.ok_or(HarnessError::NoLeader);
        match kind {
            FaultKind::Kill | FaultKind::KillLeader => {
                let id = if kind == FaultKind::Kill {
                    self.pick(&ids)
                } else {
                    the_leader()?
                };
                self.note(&format!("kill -9 member {id} (leader {leader:?})"));
                member(cluster, id)?.kill().await?;
                tokio::time::sleep(hold).await;
                self.note(&format!("restart member {id}"));
                member(cluster, id)?.restart()?;
            }
            FaultKind::KillAll => {
                self.note(&format!("kill -9 every member (leader {leader:?})"));
                for &id in &ids {
                    member(cluster, id)?.kill().await?;
                }
                tokio::time::sleep(hold).await;
                self.note("restart every member");
                for &id in &ids {
                    member(cluster, id)?.restart()?;
                }
            }
            FaultKind::Pause => {
                let id = match leader {
                    Some(l) if self.rng.random_bool(0.5) => l,
                    _ => self.pick(&ids),
                };
                self.note(&format!("pause member {id} (leader {leader:?})"));
                member(cluster, id)?.pause()?;
                tokio::time::sleep(hold).await;
                self.note(&format!("resume member {id}"));
                member(cluster, id)?.resume()?;
            }
            FaultKind::IsolateLeader => {
                let l = the_leader()?;
                let others: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
                cluster.links.cut(&[l], &others);
                self.note(&format!("isolate leader {l}"));
                tokio::time::sleep(hold).await;
            }
            FaultKind::Split => {
                let mut shuffled = ids.clone();
                shuffled.shuffle(&mut self.rng);
                let (minority, majority) = shuffled.split_at(ids.len() / 2);
                cluster.links.cut(minority, majority);
                self.note(&format!(
                    "split {minority:?} from {majority:?} (leader {leader:?})"
                ));
                tokio::time::sleep(hold).await;
            }
            FaultKind::Bridge => {
                let mut shuffled = ids.clone();
                shuffled.shuffle(&mut self.rng);
                let bridge = shuffled.pop().expect("a cluster has members");
                let (a, b) = shuffled.split_at(shuffled.len() / 2);
                cluster.links.cut(a, b);
                self.note(&format!(
                    "bridge: {a:?} and {b:?} meet only through {bridge}"
                ));
                tokio::time::sleep(hold).await;
            }
            FaultKind::Transfer => {
                let l = the_leader()?;
                let others: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
                if others.is_empty() {
                    return Err(HarnessError::NoLeader);
                }
                let to = self.pick(&others);
                self.note(&format!("transfer leadership {l} -> {to}"));
                cluster.transfer(to).await?;
                cluster
                    .wait_for_leader_to_be(to, hold.max(Duration::from_secs(2)))
                    .await?;
            }
            FaultKind::Replace => {
                let old = self.pick(&ids);
                self.note(&format!("replace member {old} (leader {leader:?})"));
                let new = cluster.replace(old).await?;
                *endpoints.lock().unwrap_or_else(|e| e.into_inner()) = cluster.endpoints();
                self.note(&format!("member {new} replaced {old}"));
            }
            FaultKind::LoseData => {
                let id = self.pick(&ids);
                self.note(&format!("wipe member {id}'s data (leader {leader:?})"));
                cluster.lose_data(id).await?;
                self.note(&format!("member {id} refused, was removed, joined again"));
            }
        }
        Ok(())
    }
}

fn member(cluster: &mut Cluster, id: u64) -> Result<&mut crate::member::Member, HarnessError> {
    cluster
        .members
        .get_mut(&id)
        .ok_or(HarnessError::NoSuchMember(id))
}
