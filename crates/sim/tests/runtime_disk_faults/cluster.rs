//! The simulated cluster: members (each a [`Disk`] and, while up, a
//! [`Runtime`] on it), the network, and what every incarnation shares —
//! the book of applied commands, the clock, the table of running
//! runtimes the clients use, and the Raft invariants checked on every
//! storage a member recovers.

use super::disk::Disk;
use super::machine::{Book, Replica};
use super::net::Net;
use super::{within, Clock};
use rudder_node::runtime::{Inbox, Members, PeerInfo, Runtime, RuntimeConfig};
use rudder_raft::Storage;
use rudder_sim::invariants::Invariants;
use rudder_storage::wal::WalOptions;
use rudder_storage::{DiskStorage, Options};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where a member's storage lives on its disk.
pub const DATA_DIR: &str = "/data";

/// How long a runtime may take to stop itself after a failed sync or
/// write, or to shut down when asked.
const STOP_BOUND: Duration = Duration::from_secs(2);

/// Small segments, so the log rotates and old segments are purged.
fn storage_options() -> Options {
    Options {
        wal: WalOptions {
            segment_size: 8 << 10,
        },
        ..Options::default()
    }
}

/// How the members run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Seeds the members' Raft cores and disks.
    pub seed: u64,
    /// The tick of every runtime.
    pub tick: Duration,
    /// Snapshot every this many entries (small, so snapshots, compaction
    /// and snapshots sent to followers happen under faults).
    pub snapshot_every: u64,
    /// How long a request may wait in the runtime.
    pub request_timeout: Duration,
}

/// The runtimes running now, by member: what clients send to.
pub type Runtimes = Arc<Mutex<BTreeMap<u64, Runtime<Replica>>>>;

/// Locks the table of runtimes.
pub fn runtimes(table: &Runtimes) -> MutexGuard<'_, BTreeMap<u64, Runtime<Replica>>> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// One member.
pub struct Member {
    /// Its disk, kept across crashes.
    pub disk: Disk,
    /// The running incarnation, if up.
    pub runtime: Option<Runtime<Replica>>,
}

/// How a start went.
pub enum Started {
    /// Running; whether recovery cut a torn tail off the log.
    Up { torn_tail: bool },
    /// The storage or the runtime refused to start, with this error.
    Refused(String),
}

/// The cluster.
pub struct Cluster {
    /// The members by ID.
    pub members: BTreeMap<u64, Member>,
    /// The network.
    pub net: Net,
    /// What every member applied.
    pub book: Book,
    /// The run's clock.
    pub clock: Clock,
    /// The runtimes running, for clients.
    pub runtimes: Runtimes,
    /// Raft's safety properties over every recovered storage.
    pub invariants: Invariants,
    settings: Settings,
    peers: Members,
}

impl Cluster {
    /// `n` members with empty disks, none started.
    pub fn new(n: u64, settings: Settings, clock: Clock) -> Cluster {
        let peers: Members = (1..=n)
            .map(|id| {
                let info = PeerInfo {
                    raft_addr: format!("m{id}:2380"),
                    http_addr: format!("m{id}:2379"),
                    replicated: false,
                };
                (id, info)
            })
            .collect();
        let members = (1..=n)
            .map(|id| {
                let disk = Disk::new(settings.seed.wrapping_mul(1_000).wrapping_add(id));
                let member = Member {
                    disk,
                    runtime: None,
                };
                (id, member)
            })
            .collect();
        Cluster {
            members,
            net: Net::new(settings.seed ^ 0x006e_6574_776f_726b),
            book: Book::default(),
            clock,
            runtimes: Runtimes::default(),
            invariants: Invariants::new(),
            settings,
            peers,
        }
    }

    /// The members' IDs.
    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// Starts member `id` from its disk. `Err` is a broken property (the
    /// recovered storage breaks an invariant, or opening it panicked);
    /// refusing to start is for the caller to judge.
    pub fn start(&mut self, id: u64) -> Result<Started, String> {
        let config = self.config(id);
        let member = self.members.get_mut(&id).expect("a member");
        let (fs, fence) = member.disk.incarnation();
        let opened = panic::catch_unwind(AssertUnwindSafe(|| {
            DiskStorage::open(fs, Path::new(DATA_DIR), storage_options())
        }));
        let storage = match opened {
            Err(_) => return Err(format!("member {id}: opening its storage panicked")),
            Ok(Err(e)) => return Ok(Started::Refused(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let torn_tail = storage.recovery().torn_tail.is_some();
        check_recovered(&mut self.invariants, id, &storage)?;
        let (inbox_tx, messages) = mpsc::channel(4096);
        let (events_tx, events) = mpsc::unbounded_channel();
        self.net.attach(id, inbox_tx);
        let port = self.net.port(id, fence, events_tx);
        let state = Replica::new(id, Arc::clone(&self.book), self.clock);
        match Runtime::start(config, storage, state, port, Inbox { messages, events }) {
            Err(e) => {
                self.net.detach(id);
                Ok(Started::Refused(e.to_string()))
            }
            Ok(rt) => {
                runtimes(&self.runtimes).insert(id, rt.clone());
                member.runtime = Some(rt);
                Ok(Started::Up { torn_tail })
            }
        }
    }

    fn config(&self, id: u64) -> RuntimeConfig {
        let mut c = RuntimeConfig::new(id);
        c.tick = self.settings.tick;
        c.raft.seed = self.settings.seed.wrapping_mul(31).wrapping_add(id);
        c.snapshot_every = self.settings.snapshot_every;
        c.keep_entries = 5;
        c.request_timeout = self.settings.request_timeout;
        c.peers = self.peers.clone();
        c
    }

    /// Crashes member `id` (if up): the process dies at once (no more
    /// I/O, no more messages), the disk keeps only what was synced — torn
    /// to a prefix if `torn` — and the runtime's tasks are shut down.
    pub async fn crash(&mut self, id: u64, torn: bool) -> Result<(), String> {
        self.net.detach(id);
        runtimes(&self.runtimes).remove(&id);
        let member = self.members.get_mut(&id).expect("a member");
        member.disk.crash(torn);
        if let Some(rt) = member.runtime.take() {
            within(STOP_BOUND, rt.shutdown())
                .await
                .map_err(|_| format!("member {id}: shutdown hung"))?;
        }
        Ok(())
    }

    /// After a sync or a write of member `id` failed: the runtime must stop
    /// itself, saying why, instead of carrying on. Returns the reason.
    pub async fn expect_fail_stop(&self, id: u64) -> Result<String, String> {
        let rt = self.members[&id]
            .runtime
            .as_ref()
            .ok_or_else(|| format!("member {id} is not up"))?;
        let mut failure = rt.failure();
        let reason = within(STOP_BOUND, failure.wait_for(Option::is_some))
            .await
            .map_err(|_| {
                format!("member {id} kept running for {STOP_BOUND:?} after a failed sync or write")
            })?
            .map_err(|_| format!("member {id}: the failure watch closed"))?
            .clone()
            .unwrap_or_default();
        if rt.is_running() {
            return Err(format!("member {id} reported {reason:?} but still runs"));
        }
        if !reason.starts_with("storage failed") {
            return Err(format!("member {id} stopped for another reason: {reason}"));
        }
        Ok(reason)
    }

    /// Stops every runtime (a clean shutdown, then the disk crashes, with
    /// nothing unsynced left to lose), and checks the invariants on what
    /// each disk recovers. Returns each member's recovered storage.
    pub async fn stop_all(&mut self) -> Result<BTreeMap<u64, DiskStorage>, String> {
        let mut recovered = BTreeMap::new();
        for id in self.ids() {
            if let Some(rt) = self.members[&id].runtime.clone() {
                within(STOP_BOUND, rt.shutdown())
                    .await
                    .map_err(|_| format!("member {id}: shutdown hung"))?;
            }
            self.crash(id, true).await?;
            let (fs, _fence) = self.members.get_mut(&id).unwrap().disk.incarnation();
            let storage = DiskStorage::open(fs, Path::new(DATA_DIR), storage_options())
                .map_err(|e| format!("member {id}: the final storage does not open: {e}"))?;
            check_recovered(&mut self.invariants, id, &storage)?;
            recovered.insert(id, storage);
        }
        Ok(recovered)
    }
}

/// Checks Raft's invariants on a storage member `id` recovered: every
/// entry it knew committed is still there, and its log agrees with every
/// log seen before (log matching).
fn check_recovered(inv: &mut Invariants, id: u64, s: &DiskStorage) -> Result<(), String> {
    inv.on_restart(id, s).map_err(|v| v.to_string())?;
    let first = s.first_index().map_err(|e| e.to_string())?;
    let last = s.last_index().map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    if last >= first {
        s.entries(first, last + 1, u64::MAX, &mut entries)
            .map_err(|e| format!("member {id}: reading its recovered log: {e}"))?;
    }
    let snapshot = match first - 1 {
        0 => None,
        i => Some((i, s.term(i).map_err(|e| e.to_string())?)),
    };
    inv.on_persist(id, s, &entries, snapshot)
        .map_err(|v| v.to_string())
}
