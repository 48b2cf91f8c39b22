//! The fault schedule: every so often, one fault drawn from the seed —
//! a crash (unsynced writes lost or torn, and sometimes a bit flipped in
//! the WAL before the restart), an fsync that will fail, writes that fail,
//! a partition, a worse network — and the tending of faults under way:
//! members restarted when their downtime ends, and members whose sync or
//! write failed checked to have stopped themselves, then rebooted.
//!
//! At most a minority of the members is down or faulty at once, so the
//! cluster can make progress between faults.

use super::cluster::{Cluster, Started, DATA_DIR};
use super::disk::quiet;
use super::Stats;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rudder_raft::StateRole;
use rudder_storage::fs::{FileSystem, MemFsFaults};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a member is in the schedule.
#[derive(Clone, Debug)]
enum Life {
    Up,
    /// Crashed; restarts at `until` (µs), with a bit flipped in its WAL
    /// first if `flip`.
    Down {
        until: u64,
        flip: bool,
    },
    /// A sync or writes will fail; if none has by `deadline`, the fault is
    /// withdrawn.
    Faulty {
        deadline: u64,
    },
}

/// A bit flipped in a WAL segment, to flip back.
struct Flip {
    path: PathBuf,
    offset: u64,
    bit: u8,
}

/// The nemesis.
pub struct Nemesis {
    rng: SmallRng,
    life: BTreeMap<u64, Life>,
    /// When the current partition heals (µs).
    cut_until: Option<u64>,
    /// How many members may be down or faulty at once.
    budget: usize,
}

const MS: u64 = 1_000;

impl Nemesis {
    /// A nemesis for `ids`, its choices drawn from `seed`.
    pub fn new(seed: u64, ids: &[u64]) -> Nemesis {
        Nemesis {
            rng: SmallRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973),
            life: ids.iter().map(|&id| (id, Life::Up)).collect(),
            cut_until: None,
            budget: (ids.len() - 1) / 2,
        }
    }

    /// Runs faults until `end` (µs on the cluster's clock).
    pub async fn run(
        &mut self,
        c: &mut Cluster,
        end: u64,
        stats: &mut Stats,
    ) -> Result<(), String> {
        while c.clock.now() < end {
            let pause = self.rng.random_range(10..60);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            self.tend(c, stats).await?;
            self.strike(c, stats).await?;
        }
        Ok(())
    }

    /// Ends every fault: the network heals, faults not fired are
    /// withdrawn, members that failed are rebooted and the down restarted.
    pub async fn heal(&mut self, c: &mut Cluster, stats: &mut Stats) -> Result<(), String> {
        c.net.heal();
        self.cut_until = None;
        for id in c.ids() {
            if let Life::Faulty { .. } = self.life[&id] {
                c.members[&id].disk.fs.set_faults(quiet(false));
                self.life.insert(id, Life::Faulty { deadline: 0 });
            }
            if let Life::Down { flip, .. } = self.life[&id] {
                self.life.insert(id, Life::Down { until: 0, flip });
            }
        }
        self.tend(c, stats).await?;
        for id in c.ids() {
            if let Life::Down { flip, .. } = self.life[&id] {
                self.restart(c, id, flip, stats)?;
                self.life.insert(id, Life::Up);
            }
        }
        Ok(())
    }

    /// Restarts members whose downtime ended, reboots those whose sync or
    /// write failed (once they have stopped themselves), withdraws faults
    /// that did not fire in time, heals an expired partition, and checks
    /// that no healthy member stopped on its own.
    async fn tend(&mut self, c: &mut Cluster, stats: &mut Stats) -> Result<(), String> {
        let now = c.clock.now();
        if self.cut_until.is_some_and(|t| now >= t) {
            c.net.uncut();
            self.cut_until = None;
        }
        for id in c.ids() {
            match self.life[&id].clone() {
                Life::Down { until, flip } if now >= until => {
                    self.restart(c, id, flip, stats)?;
                    self.life.insert(id, Life::Up);
                }
                Life::Down { .. } => {}
                Life::Faulty { deadline } => {
                    if c.members[&id].disk.io_failed() {
                        c.expect_fail_stop(id).await?;
                        stats.fail_stops += 1;
                        self.crash(c, id, stats).await?;
                    } else if now >= deadline {
                        c.members[&id].disk.fs.set_faults(quiet(false));
                        // A fault that fired just before it was withdrawn
                        // is checked next time.
                        let next = if c.members[&id].disk.io_failed() {
                            Life::Faulty { deadline: 0 }
                        } else {
                            Life::Up
                        };
                        self.life.insert(id, next);
                    }
                }
                Life::Up => {
                    if let Some(rt) = &c.members[&id].runtime {
                        if let Some(why) = rt.failure().borrow().clone() {
                            return Err(format!(
                                "member {id} stopped with no fault injected: {why}"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Draws one fault (or none) and starts it.
    async fn strike(&mut self, c: &mut Cluster, stats: &mut Stats) -> Result<(), String> {
        let now = c.clock.now();
        let healthy: Vec<u64> = self
            .life
            .iter()
            .filter(|(_, l)| matches!(l, Life::Up))
            .map(|(&id, _)| id)
            .collect();
        let room = self.life.len() - healthy.len() < self.budget && !healthy.is_empty();
        match self.rng.random_range(0..10) {
            0..3 if room => {
                let id = self.victim(c, &healthy);
                self.crash(c, id, stats).await?;
            }
            3..5 if room => {
                let id = healthy[self.rng.random_range(0..healthy.len())];
                let after = self.rng.random_range(0..4);
                c.members[&id].disk.fs.set_faults(MemFsFaults {
                    fail_sync_after: Some(after),
                    ..quiet(self.rng.random_bool(0.5))
                });
                stats.sync_faults += 1;
                let deadline = now + self.rng.random_range(200..1_500) * MS;
                self.life.insert(id, Life::Faulty { deadline });
            }
            5 if room => {
                let id = healthy[self.rng.random_range(0..healthy.len())];
                c.members[&id].disk.fs.set_faults(MemFsFaults {
                    fail_writes: true,
                    ..quiet(self.rng.random_bool(0.5))
                });
                stats.write_faults += 1;
                let deadline = now + self.rng.random_range(100..800) * MS;
                self.life.insert(id, Life::Faulty { deadline });
            }
            6..8 if self.cut_until.is_none() => {
                self.partition(c);
                stats.partitions += 1;
                self.cut_until = Some(now + self.rng.random_range(50..500) * MS);
            }
            8 => {
                let loss = self.rng.random_range(0.0..0.15);
                let slow = Duration::from_micros(self.rng.random_range(0..15_000));
                c.net.set_quality(loss, (Duration::ZERO, slow));
            }
            _ => {}
        }
        Ok(())
    }

    /// The member to crash: the leader half the time.
    fn victim(&mut self, c: &Cluster, healthy: &[u64]) -> u64 {
        let leader = healthy.iter().copied().find(|id| {
            c.members[id]
                .runtime
                .as_ref()
                .is_some_and(|rt| rt.leader().borrow().role == Some(StateRole::Leader))
        });
        match leader {
            Some(l) if self.rng.random_bool(0.5) => l,
            _ => healthy[self.rng.random_range(0..healthy.len())],
        }
    }

    /// Crashes member `id`, losing or tearing its unsynced writes, to
    /// restart after a while (sometimes with a bit flipped in its WAL).
    async fn crash(&mut self, c: &mut Cluster, id: u64, stats: &mut Stats) -> Result<(), String> {
        let torn = self.rng.random_bool(0.5);
        c.crash(id, torn).await?;
        stats.crashes += 1;
        stats.torn_crashes += u64::from(torn);
        let until = c.clock.now() + self.rng.random_range(0..400) * MS;
        let flip = self.rng.random_bool(0.15);
        self.life.insert(id, Life::Down { until, flip });
        Ok(())
    }

    /// Cuts one member off, a minority off, or one direction of a pair.
    fn partition(&mut self, c: &Cluster) {
        let mut ids = c.ids();
        let all = ids.clone();
        let n = ids.len();
        for i in (1..n).rev() {
            ids.swap(i, self.rng.random_range(0..=i));
        }
        match self.rng.random_range(0..3) {
            0 => c.net.isolate(&ids[..1], &all),
            1 => c.net.isolate(&ids[..(n - 1) / 2], &all),
            _ => c.net.cut_one_way(ids[0], ids[1]),
        }
    }

    /// Starts member `id` again. With `flip`, a bit of the first record of
    /// one of its WAL segments is flipped first: the member must refuse to
    /// start, naming the damage; then the bit is put back (the operator
    /// restored the disk) and it must start.
    fn restart(
        &mut self,
        c: &mut Cluster,
        id: u64,
        flip: bool,
        stats: &mut Stats,
    ) -> Result<(), String> {
        let flipped = if flip { self.flip(c, id) } else { None };
        let started = c.start(id)?;
        let Some(f) = flipped else {
            return match started {
                Started::Up { torn_tail } => {
                    stats.torn_tails += u64::from(torn_tail);
                    Ok(())
                }
                Started::Refused(e) => {
                    Err(format!("member {id} refused to restart after a crash: {e}"))
                }
            };
        };
        stats.bit_flips += 1;
        match started {
            Started::Up { .. } => Err(format!(
                "member {id} started on a WAL with a flipped bit (bit {} at {} of {}): damage not detected",
                f.bit,
                f.offset,
                f.path.display()
            )),
            Started::Refused(e) => {
                if !e.contains("corrupt") {
                    return Err(format!("member {id}: a flipped bit refused with an unclear error: {e}"));
                }
                stats.damage_refused += 1;
                c.members[&id].disk.fs.flip_bit(&f.path, f.offset, f.bit);
                match c.start(id)? {
                    Started::Up { torn_tail } => {
                        stats.torn_tails += u64::from(torn_tail);
                        Ok(())
                    }
                    Started::Refused(e) => Err(format!("member {id} refused to start on its restored disk: {e}")),
                }
            }
        }
    }

    /// Flips a bit in the first record of a random WAL segment of member
    /// `id` (valid records always follow it, so this is damage, never a
    /// torn tail); `None` if it has no segment yet.
    fn flip(&mut self, c: &Cluster, id: u64) -> Option<Flip> {
        let fs = &c.members[&id].disk.fs;
        let dir = Path::new(DATA_DIR).join("wal");
        let segments: Vec<String> = fs
            .list(&dir)
            .ok()?
            .into_iter()
            .filter(|n| n.ends_with(".wal"))
            .collect();
        if segments.is_empty() {
            return None;
        }
        let path = dir.join(&segments[self.rng.random_range(0..segments.len())]);
        let bytes = fs.read_durable(&path)?;
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let first_record = (9 + len).min(bytes.len());
        let offset = self.rng.random_range(0..first_record) as u64;
        let bit = self.rng.random_range(0..8);
        fs.flip_bit(&path, offset, bit)
            .then_some(Flip { path, offset, bit })
    }
}
