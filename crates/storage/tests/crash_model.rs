//! A model-based crash test of [`DiskStorage`] over [`MemFs`].
//!
//! Each case runs a random sequence of writes as a Raft node issues them —
//! entries continuing the log, replacing an uncommitted suffix with a
//! higher term, or re-sending entries the storage holds (some already
//! compacted); hard states (the term never decreases, the commit index
//! never passes the last index); local snapshots at a committed index and
//! compaction at or below them; a leader's snapshot beyond or inside the
//! log, alone or with the entries that follow it (`persist_append`) —
//! synced or not, on a `DiskStorage` with small segments and a small cache
//! (so reads go to the WAL), and the same writes on a model: the core's
//! `MemoryStorage`, with DiskStorage's documented differences mirrored (see
//! [`model_apply`]). Between writes it crashes the file system (unsynced
//! writes lost or torn) and reopens, or reopens cleanly.
//!
//! Checked:
//!
//! - after every write and every clean reopen, every `Storage` query
//!   (`entries` over ranges in and around the log with various `max_size`,
//!   `term` of every index around the log, first and last index,
//!   `initial_state`, `snapshot`) answers exactly as the model does, and a
//!   write the model refuses the storage refuses, and only those;
//! - after a crash the storage opens, and holds exactly the model's state
//!   as of the last synced write or as of a later, unsynced one; an
//!   unsynced save survives whole, not at all, or (the WAL cuts a torn
//!   tail at a record boundary) as a prefix of its entries without its
//!   hard state — never anything else;
//! - then it keeps working: more writes, more crashes.
//!
//! Deterministic: 64 cases of up to 40 steps, a fixed seed. More cases or
//! another seed (a failure prints the shrunk case and the concrete writes
//! it made, step by step):
//!
//! ```text
//! PROPTEST_CASES=5000 cargo test -p rudder-storage --release --test crash_model
//! PROPTEST_RNG_SEED=42 cargo test -p rudder-storage --test crash_model
//! CRASH_MODEL_STATS=1 cargo test -p rudder-storage --test crash_model -- --nocapture
//! ```

mod common;

use bytes::Bytes;
use common::try_open;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use rudder_raft::{
    ConfState, Entry, HardState, MemoryStorage, Message, MessageType, RaftState, Snapshot,
    SnapshotMetadata, Storage, StorageError,
};
use rudder_storage::fs::{MemFs, MemFsFaults};
use rudder_storage::wal::WalOptions;
use rudder_storage::{DiskStorage, Error, Options};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The seed used unless `PROPTEST_RNG_SEED` names another (the one the
/// core's property tests use).
const DEFAULT_SEED: u64 = 0x005E_ED0F_2AF7;
/// Cases run unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 64;
/// The most steps in a case.
const MAX_STEPS: usize = 40;
/// Proptest's configuration (with its environment overrides) but
/// deterministic and short by default: a fixed seed unless
/// `PROPTEST_RNG_SEED` is set, [`DEFAULT_CASES`] unless `PROPTEST_CASES` is.
fn config() -> Config {
    let mut config = Config {
        // Cases are generated from the seed; a failure prints its case.
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    if matches!(config.rng_seed, RngSeed::Random) {
        config.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    config
}

// ---------------------------------------------------------------------------
// Generated operations: abstract choices, resolved against the model's
// state when they run, so every case is a valid Raft history.

/// A new hard state, relative to the current one.
#[derive(Clone, Debug)]
struct HsSel {
    /// Raise the term by one (past what the entries written need).
    bump_term: bool,
    /// The vote, if the term changes or no vote was cast in it yet.
    vote: u64,
    /// Where the commit index goes between the current one and the last index.
    commit: Index,
}

/// Where a save's entries start.
#[derive(Clone, Copy, Debug)]
enum SaveKind {
    /// After the last entry, in the current term.
    Continue,
    /// Inside the uncommitted suffix, replacing it, in a new term.
    Overwrite,
    /// Re-sending entries the log holds (or compacted), then new ones.
    Resend,
}

/// Which of DiskStorage's write calls a save goes through.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// `save`.
    Save,
    /// `append` or `set_hard_state` when the save is one of those.
    Api,
    /// `persist_append` with a `MsgStorageAppend`.
    PersistAppend,
}

/// A step's operation, before resolution.
#[derive(Clone, Debug)]
enum Op {
    Save {
        kind: SaveKind,
        from: Index,
        n: usize,
        hs: Option<HsSel>,
        sync: bool,
        via: Via,
    },
    /// Entries that would leave a gap after the last index: refused.
    Gap {
        skip: u64,
        n: usize,
    },
    HardState {
        hs: HsSel,
        sync: bool,
        via: Via,
    },
    CreateSnapshot {
        pick: Index,
        voters: Option<u8>,
        data_len: usize,
    },
    Compact {
        pick: Index,
    },
    ApplySnapshot {
        pick: Index,
        term: u8,
        voters: u8,
        data_len: usize,
        /// Through `persist_append`, with this many entries after it and a hard state.
        then: Option<(usize, HsSel)>,
    },
    /// A power loss: unsynced writes lost, or torn with this probability
    /// (index into [`TORN`]), then a reopen.
    Crash {
        torn: usize,
    },
    /// Drop the storage and open it again, without a crash.
    Reopen,
}

/// Tear probabilities a crash uses.
const TORN: [f64; 3] = [0.0, 0.5, 1.0];

/// An `entries` query, resolved against the log around it.
#[derive(Clone, Debug)]
struct Query {
    lo: Index,
    hi: Index,
    max_size: Index,
}

/// The `max_size` values queries use.
const MAX_SIZES: [u64; 7] = [0, 1, 64, 200, 1000, 5000, u64::MAX];

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// Extra `entries` queries checked after the step.
    queries: Vec<Query>,
}

/// One generated case.
#[derive(Clone, Debug)]
struct Case {
    /// Seeds the `MemFs`, whose crashes choose what survives.
    fs_seed: u64,
    opts: Options,
    steps: Vec<Step>,
}

fn hs_sel() -> impl Strategy<Value = HsSel> {
    (prop::bool::weighted(0.25), 0u64..4, any::<Index>()).prop_map(|(bump_term, vote, commit)| {
        HsSel {
            bump_term,
            vote,
            commit,
        }
    })
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![Just(Via::Save), Just(Via::Api), Just(Via::PersistAppend)]
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        5 => Just(SaveKind::Continue),
        2 => Just(SaveKind::Overwrite),
        1 => Just(SaveKind::Resend),
    ];
    prop_oneof![
        12 => (kind, any::<Index>(), 0usize..6, prop::option::weighted(0.7, hs_sel()), any::<bool>(), via())
            .prop_map(|(kind, from, n, hs, sync, via)| Op::Save { kind, from, n, hs, sync, via }),
        1 => (1u64..4, 1usize..3).prop_map(|(skip, n)| Op::Gap { skip, n }),
        3 => (hs_sel(), any::<bool>(), via()).prop_map(|(hs, sync, via)| Op::HardState { hs, sync, via }),
        2 => (any::<Index>(), prop::option::of(1u8..6), 0usize..3000)
            .prop_map(|(pick, voters, data_len)| Op::CreateSnapshot { pick, voters, data_len }),
        2 => any::<Index>().prop_map(|pick| Op::Compact { pick }),
        2 => (any::<Index>(), 0u8..4, 1u8..6, 0usize..3000, prop::option::of((0usize..4, hs_sel())))
            .prop_map(|(pick, term, voters, data_len, then)| Op::ApplySnapshot { pick, term, voters, data_len, then }),
        2 => (0..TORN.len()).prop_map(|torn| Op::Crash { torn }),
        1 => Just(Op::Reopen),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let query = (any::<Index>(), any::<Index>(), any::<Index>())
        .prop_map(|(lo, hi, max_size)| Query { lo, hi, max_size });
    (op(), prop::collection::vec(query, 0..4)).prop_map(|(op, queries)| Step { op, queries })
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        prop::sample::select(vec![2048u64, 4096, 8192]),
        prop::sample::select(vec![0u64, 600, 4096]),
        1usize..=2,
        prop::collection::vec(step(), 1..=MAX_STEPS),
    )
        .prop_map(
            |(fs_seed, segment_size, cache_bytes, keep_snapshots, steps)| Case {
                fs_seed,
                opts: Options {
                    wal: WalOptions { segment_size },
                    keep_snapshots,
                    cache_bytes,
                },
                steps,
            },
        )
}

// ---------------------------------------------------------------------------
// Concrete writes.

/// Which DiskStorage call a [`Action::Save`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Save,
    Append,
    SetHardState,
    PersistAppend,
}

/// A step, resolved: the exact call to make on both storages.
#[derive(Clone, Debug)]
enum Action {
    Save {
        hs: Option<HardState>,
        entries: Vec<Entry>,
        sync: bool,
        call: Call,
    },
    CreateSnapshot {
        index: u64,
        conf: Option<ConfState>,
        data: Bytes,
    },
    Compact(u64),
    /// `apply_snapshot`, or with entries (and a hard state) after it,
    /// `persist_append` of a message carrying all three.
    ApplySnapshot {
        snapshot: Snapshot,
        then: Option<(Vec<Entry>, Option<HardState>)>,
    },
    Crash(f64),
    Reopen,
}

/// Mixes two numbers into pseudo-random bits (splitmix64's finalizer).
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// `len` bytes derived from `h`, after a readable `tag`.
fn filler(tag: String, h: u64, len: usize) -> Bytes {
    let mut data = tag.into_bytes();
    data.extend((0..len).map(|k| (h.rotate_left(k as u32 % 64) as u8) ^ k as u8));
    Bytes::from(data)
}

/// The entry at `index` of `term`: the payload is a function of both, so
/// a re-sent entry is identical and a replaced one differs. Sizes vary
/// from empty to larger than a segment (one in fifty).
fn entry(index: u64, term: u64) -> Entry {
    let h = mix(index, term);
    let len = match h % 50 {
        0 => 2500 + (h >> 8) % 8000,
        1..=5 => 0,
        _ => (h >> 8) % 250,
    };
    Entry::new(
        term,
        index,
        filler(format!("{index}@{term}:"), h, len as usize),
    )
}

/// Entries `start..start + n` of `term`.
fn run_of(start: u64, n: usize, term: u64) -> Vec<Entry> {
    (start..start + n as u64).map(|i| entry(i, term)).collect()
}

/// A snapshot's data: `len` bytes naming its index and who made it.
fn snapshot_data(who: &str, index: u64, len: usize) -> Bytes {
    filler(
        format!("{who} state at {index}:"),
        mix(index, len as u64),
        len,
    )
}

/// A `MsgStorageAppend` asking for `entries`, `hs` and `snapshot`.
fn append_message(
    entries: Vec<Entry>,
    hs: Option<HardState>,
    snapshot: Option<Snapshot>,
) -> Message {
    let mut m = Message::new(MessageType::MsgStorageAppend, 1, 1);
    m.entries = entries;
    if let Some(hs) = hs {
        (m.term, m.vote, m.commit) = (hs.term, hs.vote, hs.commit);
    }
    m.snapshot = snapshot.map(Box::new);
    m
}

/// Where the model stands.
#[derive(Clone, Copy, Debug)]
struct At {
    /// The compaction point (`first_index() - 1`) and its term.
    compacted: u64,
    compacted_term: u64,
    last: u64,
    hs: HardState,
    /// The newest snapshot's index (0: none). MemoryStorage's own notion
    /// of "snapshot index" is its compaction point; this is its snapshot's.
    snap: u64,
    /// The greatest term in the hard state or the log.
    max_term: u64,
}

fn at(m: &MemoryStorage) -> At {
    let compacted = m.first_index().unwrap() - 1;
    let last = m.last_index().unwrap();
    let hs = m.hard_state();
    At {
        compacted,
        compacted_term: m.term(compacted).unwrap(),
        last,
        hs,
        snap: m.snapshot(0).unwrap().index(),
        max_term: hs.term.max(m.term(last).unwrap()),
    }
}

/// A hard state after `cur`: its term at least `min_term` (plus one if
/// `sel` bumps it), the vote kept within a term once cast, the commit
/// index between `cur`'s and `last`. No `sel`: only the term rises.
fn resolve_hs(sel: Option<&HsSel>, cur: HardState, min_term: u64, last: u64) -> HardState {
    let term = cur.term.max(min_term) + u64::from(sel.is_some_and(|s| s.bump_term));
    let vote = match sel {
        Some(s) if term != cur.term || cur.vote == 0 => s.vote,
        _ if term != cur.term => 0,
        _ => cur.vote,
    };
    let commit = match sel {
        Some(s) => cur.commit + s.commit.index((last - cur.commit + 1) as usize) as u64,
        None => cur.commit,
    };
    HardState { term, vote, commit }
}

/// The call a save with these parts makes.
fn call_for(via: Via, sync: bool, hs: &Option<HardState>, entries: &[Entry]) -> Call {
    match via {
        _ if !sync => Call::Save,
        Via::Api if hs.is_none() => Call::Append,
        Via::Api if entries.is_empty() => Call::SetHardState,
        Via::PersistAppend => Call::PersistAppend,
        _ => Call::Save,
    }
}

/// Turns a generated step into the concrete write, given the model.
fn resolve(op: &Op, m: &MemoryStorage) -> Action {
    let a = at(m);
    match op {
        &Op::Save {
            kind,
            from,
            n,
            ref hs,
            sync,
            via,
        } => {
            let term = a.max_term.max(1);
            // A re-send never rewrites committed entries the storage holds
            // (Raft does not, and a torn rewrite would lose them: see
            // `an_unsynced_resend_of_committed_entries_can_lose_them`): it
            // starts past the commit index, or, when nothing is committed
            // past the compaction point, at or below it (skipped).
            let resend_from = if a.commit() == a.compacted {
                a.compacted.saturating_sub(2).max(1)
            } else {
                a.commit() + 1
            };
            let entries = match kind {
                SaveKind::Overwrite if a.last > a.commit() => {
                    let start = a.commit() + 1 + from.index((a.last - a.commit()) as usize) as u64;
                    run_of(start, n.max(1), a.max_term + 1)
                }
                SaveKind::Resend if resend_from <= a.last => {
                    let start =
                        resend_from + from.index((a.last - resend_from + 1) as usize) as u64;
                    let mut es: Vec<Entry> = (start..=a.last)
                        .map(|i| entry(i, m.term(i).unwrap_or(a.compacted_term)))
                        .collect();
                    es.extend(run_of(a.last + 1, n, term));
                    es
                }
                _ => run_of(a.last + 1, n, term),
            };
            let top = entries.iter().map(|e| e.term).max().unwrap_or(0);
            let new_last = match entries.last() {
                Some(e) if e.index > a.compacted => e.index,
                _ => a.last,
            };
            let hs = match hs {
                Some(sel) => Some(resolve_hs(Some(sel), a.hs, top, new_last)),
                None if top > a.hs.term => Some(resolve_hs(None, a.hs, top, new_last)),
                None => None,
            };
            let call = call_for(via, sync, &hs, &entries);
            Action::Save {
                hs,
                entries,
                sync,
                call,
            }
        }
        &Op::Gap { skip, n } => Action::Save {
            hs: None,
            entries: run_of(a.last + 1 + skip, n, a.max_term.max(1)),
            sync: true,
            call: Call::Save,
        },
        &Op::HardState { ref hs, sync, via } => {
            let hs = Some(resolve_hs(Some(hs), a.hs, 0, a.last));
            let call = call_for(via, sync, &hs, &[]);
            Action::Save {
                hs,
                entries: Vec::new(),
                sync,
                call,
            }
        }
        &Op::CreateSnapshot {
            pick,
            voters,
            data_len,
        } => {
            // Anywhere from below the compaction point to the commit index
            // (refused up to the newest snapshot), or past the log (refused).
            let lo = a.compacted.saturating_sub(1);
            let index = lo + pick.index((a.commit() - lo + 2) as usize) as u64;
            let index = if index > a.commit() {
                a.last + 1
            } else {
                index
            };
            Action::CreateSnapshot {
                index,
                conf: voters.map(|v| ConfState::with_voters(1..=u64::from(v))),
                data: snapshot_data("local", index, data_len),
            }
        }
        &Op::Compact { pick } => {
            // From below the compaction point (a no-op) to one past the
            // newest snapshot (refused).
            let lo = a.compacted.saturating_sub(1);
            Action::Compact(lo + pick.index((a.snap + 2 - lo) as usize) as u64)
        }
        &Op::ApplySnapshot {
            pick,
            term,
            voters,
            data_len,
            ref then,
        } => {
            // From the newest snapshot's index (not newer: refused) to
            // past the log.
            let index = a.snap + pick.index((a.last + 5 - a.snap) as usize) as u64;
            let term = if index <= a.commit() {
                // Committed: the leader's log agrees.
                m.term(index).unwrap_or(a.max_term.max(1))
            } else {
                match term {
                    0 => m.term(index).unwrap_or(a.max_term).max(1),
                    1 => a.max_term + 1,
                    2 => a.max_term.max(1),
                    _ => m.term(a.commit()).unwrap_or(0).max(1),
                }
            };
            let snapshot = Snapshot {
                data: snapshot_data("leader", index, data_len),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(ConfState::with_voters(1..=u64::from(voters))),
                    index,
                    term,
                }),
            };
            let then = then.as_ref().map(|(n, sel)| {
                let mut after = m.clone();
                if index > a.snap {
                    model_install(&mut after, &snapshot);
                }
                let b = at(&after);
                let term = b.max_term.max(1);
                let entries = run_of(b.last + 1, *n, term);
                let hs = resolve_hs(Some(sel), b.hs, term, b.last + *n as u64);
                (entries, Some(hs))
            });
            Action::ApplySnapshot { snapshot, then }
        }
        &Op::Crash { torn } => Action::Crash(TORN[torn]),
        Op::Reopen => Action::Reopen,
    }
}

impl At {
    fn commit(&self) -> u64 {
        self.hs.commit
    }
}

// ---------------------------------------------------------------------------
// The model.

/// What the model says a write does.
struct Effect {
    /// Accepted: the storage must succeed; otherwise it must refuse
    /// ([`Error::InvalidWrite`]) and change nothing.
    accepted: bool,
    /// Durable once it returns: a crash after it keeps it.
    synced: bool,
    /// States besides "before" and "after" a crash may leave: an unsynced
    /// save cut at one of its records.
    partial: Vec<(String, MemoryStorage)>,
    /// What `create_snapshot` returns.
    meta: Option<SnapshotMetadata>,
}

impl Effect {
    fn refused() -> Effect {
        Effect {
            accepted: false,
            synced: false,
            partial: Vec::new(),
            meta: None,
        }
    }

    fn done(synced: bool) -> Effect {
        Effect {
            accepted: true,
            synced,
            partial: Vec::new(),
            meta: None,
        }
    }
}

/// DiskStorage's `apply_snapshot` on the model: MemoryStorage's, except
/// that the entries after the snapshot stay when the log holds its last
/// entry with its term (MemoryStorage clears them).
fn model_install(m: &mut MemoryStorage, snapshot: &Snapshot) {
    let (index, term) = (snapshot.index(), snapshot.term());
    let mut kept = Vec::new();
    if m.term(index) == Ok(term) {
        m.entries(index + 1, m.last_index().unwrap() + 1, u64::MAX, &mut kept)
            .unwrap();
    }
    m.apply_snapshot(snapshot.clone()).unwrap();
    m.append(&kept).unwrap();
}

/// Applies `action` to the model, with DiskStorage's documented
/// differences from MemoryStorage: `compact` refuses to pass the newest
/// snapshot (and is a no-op at or below the compaction point);
/// `create_snapshot` and `apply_snapshot` refuse a snapshot not newer than
/// the newest one (MemoryStorage compares with its compaction point);
/// `apply_snapshot` keeps a log that matches it ([`model_install`]).
fn model_apply(m: &mut MemoryStorage, action: &Action) -> Effect {
    let a = at(m);
    match action {
        Action::Save {
            hs,
            entries,
            sync,
            call,
        } => {
            let before = m.clone();
            let result = match call {
                Call::PersistAppend => {
                    m.persist_append(&append_message(entries.clone(), *hs, None))
                }
                _ => m.append(entries).map(|()| {
                    if let Some(hs) = hs {
                        m.set_hard_state(*hs);
                    }
                }),
            };
            if result.is_err() {
                *m = before;
                return Effect::refused();
            }
            let mut effect = Effect::done(*sync);
            if !*sync {
                // The WAL writes the entries' records, then the hard
                // state's; a torn tail is cut at a record.
                let whole = entries.len() - usize::from(hs.is_none() && !entries.is_empty());
                for j in 1..=whole {
                    let mut p = before.clone();
                    p.append(&entries[..j]).unwrap();
                    let what = format!(
                        "cut after {j} of its {} entries, without its hard state",
                        entries.len()
                    );
                    effect.partial.push((what, p));
                }
            }
            effect
        }
        Action::CreateSnapshot { index, conf, data } => {
            if *index <= a.snap || m.term(*index).is_err() {
                return Effect::refused();
            }
            let snap = m
                .create_snapshot(*index, conf.clone(), data.clone())
                .unwrap();
            Effect {
                meta: snap.metadata,
                ..Effect::done(true)
            }
        }
        &Action::Compact(index) => {
            if index <= a.compacted {
                return Effect::done(false); // nothing to do: nothing written
            }
            if index > a.snap {
                return Effect::refused();
            }
            m.compact(index).unwrap();
            Effect::done(true)
        }
        Action::ApplySnapshot { snapshot, then } => {
            if snapshot.index() <= a.snap {
                return Effect::refused();
            }
            model_install(m, snapshot);
            if let Some((entries, hs)) = then {
                m.persist_append(&append_message(entries.clone(), *hs, None))
                    .unwrap();
            }
            Effect::done(true)
        }
        Action::Crash(_) | Action::Reopen => unreachable!("not a write"),
    }
}

/// Applies `action` to the storage; returns what `create_snapshot` does.
fn disk_apply(d: &mut DiskStorage, action: &Action) -> Result<Option<SnapshotMetadata>, Error> {
    match action {
        Action::Save {
            hs,
            entries,
            sync,
            call,
        } => match call {
            Call::Save => d.save(hs.as_ref(), entries, *sync),
            Call::Append => d.append(entries),
            Call::SetHardState => d.set_hard_state(hs.expect("a hard state to set")),
            Call::PersistAppend => d.persist_append(&append_message(entries.clone(), *hs, None)),
        }
        .map(|()| None),
        Action::CreateSnapshot { index, conf, data } => {
            d.create_snapshot(*index, conf.clone(), data).map(Some)
        }
        &Action::Compact(index) => d.compact(index).map(|()| None),
        Action::ApplySnapshot {
            snapshot,
            then: None,
        } => d.apply_snapshot(snapshot.clone()).map(|()| None),
        Action::ApplySnapshot {
            snapshot,
            then: Some((entries, hs)),
        } => d
            .persist_append(&append_message(
                entries.clone(),
                *hs,
                Some(snapshot.clone()),
            ))
            .map(|()| None),
        Action::Crash(_) | Action::Reopen => unreachable!("not a write"),
    }
}

// ---------------------------------------------------------------------------
// Comparing storages.

/// Everything a storage answers about its whole state.
#[derive(Clone, PartialEq)]
struct View {
    state: Result<RaftState, StorageError>,
    first: Result<u64, StorageError>,
    last: Result<u64, StorageError>,
    /// `term(first_index() - 1)`.
    compacted_term: Result<u64, StorageError>,
    entries: Result<Vec<Entry>, StorageError>,
    snapshot: Result<Snapshot, StorageError>,
}

fn view<S: Storage>(s: &S) -> View {
    let first = s.first_index();
    let last = s.last_index();
    let (f, l) = (*first.as_ref().unwrap_or(&1), *last.as_ref().unwrap_or(&0));
    let mut entries = Vec::new();
    View {
        state: s.initial_state(),
        compacted_term: s.term(f - 1),
        entries: s
            .entries(f, l + 1, u64::MAX, &mut entries)
            .map(|()| entries),
        snapshot: s.snapshot(0),
        first,
        last,
    }
}

/// Entries as runs of one term: `1..=4@1 5..=9@2`.
fn runs(entries: &[Entry]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let mut j = i;
        while j + 1 < entries.len()
            && entries[j + 1].term == entries[i].term
            && entries[j + 1].index == entries[j].index + 1
        {
            j += 1;
        }
        out.push(if i == j {
            format!("{}@{}", entries[i].index, entries[i].term)
        } else {
            format!(
                "{}..={}@{}",
                entries[i].index, entries[j].index, entries[i].term
            )
        });
        i = j + 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(" ")
    }
}

fn describe_hs(hs: &HardState) -> String {
    format!(
        "hs(term {}, vote {}, commit {})",
        hs.term, hs.vote, hs.commit
    )
}

fn describe_snapshot(s: &Snapshot) -> String {
    match &s.metadata {
        None => "none".into(),
        Some(m) => format!(
            "{}@{} voters {:?}, {} bytes",
            m.index,
            m.term,
            m.conf_state.as_ref().map(|c| c.voters.clone()),
            s.data.len()
        ),
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Ok(s) => write!(
                f,
                "{}, voters {:?}",
                describe_hs(&s.hard_state),
                s.conf_state.voters
            )?,
            Err(e) => write!(f, "initial_state {e:?}")?,
        }
        write!(
            f,
            "; first {:?}, last {:?}, compacted term {:?}; entries ",
            self.first, self.last, self.compacted_term
        )?;
        match &self.entries {
            Ok(es) => write!(f, "{}", runs(es))?,
            Err(e) => write!(f, "{e:?}")?,
        }
        match &self.snapshot {
            Ok(s) => write!(f, "; snapshot {}", describe_snapshot(s)),
            Err(e) => write!(f, "; snapshot {e:?}"),
        }
    }
}

/// Where two views first differ, beyond what their summaries show (an
/// entry's payload, a snapshot's data).
fn first_difference(d: &View, m: &View) -> String {
    if let (Ok(de), Ok(me)) = (&d.entries, &m.entries) {
        if let Some((x, y)) = de.iter().zip(me).find(|(x, y)| x != y) {
            return format!("\n  first differing entry: disk {x:?}\n                  model {y:?}");
        }
    }
    if d.snapshot != m.snapshot {
        return "\n  the snapshots differ".into();
    }
    String::new()
}

/// Checks that `disk` answers every query as `model` does: its whole
/// state, `term` of every index around the log, and `queries`.
fn check_same(disk: &DiskStorage, model: &MemoryStorage, queries: &[Query]) -> Result<(), String> {
    let (d, m) = (view(disk), view(model));
    if d != m {
        return Err(format!(
            "the storage differs from the model:\n  disk  {d:?}\n  model {m:?}{}",
            first_difference(&d, &m)
        ));
    }
    let a = at(model);
    for i in 0..=a.last + 2 {
        let (x, y) = (disk.term(i), model.term(i));
        if x != y {
            return Err(format!("term({i}): disk {x:?}, model {y:?}"));
        }
    }
    let base = (a.compacted + 1).saturating_sub(2);
    for q in queries {
        let lo = base + q.lo.index((a.last + 3 - base) as usize) as u64;
        let hi = lo.saturating_sub(1) + q.hi.index((a.last + 4 - lo) as usize) as u64;
        let max_size = MAX_SIZES[q.max_size.index(MAX_SIZES.len())];
        let sentinel = entry(u64::MAX, 0);
        let (mut x, mut y) = (vec![sentinel.clone()], vec![sentinel]);
        let (rx, ry) = (
            disk.entries(lo, hi, max_size, &mut x),
            model.entries(lo, hi, max_size, &mut y),
        );
        if (&rx, &x) != (&ry, &y) {
            return Err(format!(
                "entries({lo}, {hi}, {max_size}): disk {rx:?} {}, model {ry:?} {}",
                runs(&x[1..]),
                runs(&y[1..])
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running a case.

/// Counts over a run, to see what the cases exercised.
static STATS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
const STEPS: usize = 0;
const REFUSED: usize = 1;
const CRASHES: usize = 2;
const TORN_TAILS: usize = 3;
const LOST_UNSYNCED: usize = 4;
const PARTIAL: usize = 5;
const REOPENS: usize = 6;
const SNAPSHOT_FALLBACKS: usize = 7;

fn count(what: usize) {
    STATS[what].fetch_add(1, Ordering::Relaxed);
}

/// A one-line description of `action`.
fn describe(action: &Action) -> String {
    let hs = |hs: &Option<HardState>| hs.as_ref().map_or("no hs".into(), describe_hs);
    match action {
        Action::Save {
            hs: h,
            entries,
            sync,
            call,
        } => {
            format!(
                "{call:?}({}, entries {}, sync {sync})",
                hs(h),
                runs(entries)
            )
        }
        Action::CreateSnapshot { index, conf, data } => format!(
            "create_snapshot({index}, voters {:?}, {} bytes)",
            conf.as_ref().map(|c| c.voters.clone()),
            data.len()
        ),
        Action::Compact(index) => format!("compact({index})"),
        Action::ApplySnapshot {
            snapshot,
            then: None,
        } => format!("apply_snapshot({})", describe_snapshot(snapshot)),
        Action::ApplySnapshot {
            snapshot,
            then: Some((entries, h)),
        } => format!(
            "persist_append(snapshot {}, entries {}, {})",
            describe_snapshot(snapshot),
            runs(entries),
            hs(h)
        ),
        Action::Crash(p) => format!("crash (tear probability {p})"),
        Action::Reopen => "reopen".into(),
    }
}

/// Runs `case`.
fn run(case: &Case) -> Result<(), String> {
    let mut trace = Vec::new();
    run_traced(case, &mut trace).map_err(|why| {
        format!(
            "{why}\nsteps (options {:?}):\n  {}",
            case.opts,
            trace.join("\n  ")
        )
    })
}

/// Why an open failed, and when.
fn open_failed(e: Error, when: &str) -> String {
    format!("{when} failed: {e}")
}

fn run_traced(case: &Case, trace: &mut Vec<String>) -> Result<(), String> {
    let fs = MemFs::new(case.fs_seed);
    let mut disk = try_open(&fs, case.opts).map_err(|e| open_failed(e, "opening"))?;
    let mut model = MemoryStorage::new();
    // The states a crash now may leave, oldest first: the one as of the
    // last synced write, then each later one.
    let mut possible: Vec<(String, MemoryStorage)> =
        vec![("the initial state".into(), model.clone())];
    for (i, step) in case.steps.iter().enumerate() {
        count(STEPS);
        let action = resolve(&step.op, &model);
        trace.push(format!("{i}: {}", describe(&action)));
        match action {
            Action::Crash(p) => {
                drop(disk);
                fs.set_faults(MemFsFaults {
                    torn_write_probability: p,
                    ..MemFsFaults::default()
                });
                fs.crash();
                count(CRASHES);
                disk = try_open(&fs, case.opts)
                    .map_err(|e| open_failed(e, "reopening after the crash"))?;
                let got = view(&disk);
                let Some(k) = possible.iter().rposition(|(_, m)| view(m) == got) else {
                    let states: Vec<String> = possible
                        .iter()
                        .map(|(what, m)| format!("{what}: {:?}", view(m)))
                        .collect();
                    return Err(format!(
                        "after the crash the storage holds\n  {got:?}\nwhich is none of the states it may hold:\n  {}",
                        states.join("\n  ")
                    ));
                };
                trace.push(format!("   recovered {}", possible[k].0));
                if k + 1 < possible.len() {
                    count(LOST_UNSYNCED);
                }
                if possible[k].0.contains("cut after") {
                    count(PARTIAL);
                }
                if disk.recovery().torn_tail.is_some() {
                    count(TORN_TAILS);
                }
                if disk.recovery().snapshot_fallback.is_some() {
                    count(SNAPSHOT_FALLBACKS);
                }
                model = possible.swap_remove(k).1;
                possible = vec![(format!("the state recovered at step {i}"), model.clone())];
            }
            Action::Reopen => {
                drop(disk);
                count(REOPENS);
                disk = try_open(&fs, case.opts).map_err(|e| open_failed(e, "reopening"))?;
            }
            ref write => {
                let before = view(&model);
                let effect = model_apply(&mut model, write);
                match (effect.accepted, disk_apply(&mut disk, write)) {
                    (true, Ok(meta)) if meta == effect.meta => {}
                    (true, Ok(meta)) => {
                        return Err(format!("returned {meta:?}, the model {:?}", effect.meta))
                    }
                    (true, Err(e)) => return Err(format!("failed: {e}")),
                    (false, Err(Error::InvalidWrite(why))) => {
                        count(REFUSED);
                        trace.push(format!("   refused: {why}"));
                        if view(&model) != before {
                            return Err("the model changed on a refused write".into());
                        }
                    }
                    (false, Err(e)) => {
                        return Err(format!("refused, but not as an invalid write: {e}"))
                    }
                    (false, Ok(_)) => return Err("accepted a write the model refuses".into()),
                }
                if effect.synced {
                    possible.clear();
                }
                if effect.accepted {
                    for (what, p) in effect.partial {
                        possible.push((format!("step {i} {what}"), p));
                    }
                    possible.push((format!("the state after step {i}"), model.clone()));
                }
            }
        }
        check_same(&disk, &model, &step.queries).map_err(|e| format!("after step {i}: {e}"))?;
    }
    Ok(())
}

#[test]
fn disk_storage_matches_the_model_across_crashes() {
    let mut runner = TestRunner::new(config());
    let result = runner.run(&case(), |case| match run(&case) {
        Ok(()) => Ok(()),
        Err(why) => Err(TestCaseError::fail(why)),
    });
    if std::env::var_os("CRASH_MODEL_STATS").is_some() {
        let names = [
            "steps",
            "refused",
            "crashes",
            "torn tails cut",
            "crashes losing unsynced writes",
            "partial saves recovered",
            "clean reopens",
            "snapshot fallbacks",
        ];
        for (name, n) in names.iter().zip(&STATS) {
            eprintln!("{name}: {}", n.load(Ordering::Relaxed));
        }
    }
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, case)) => panic!("{why}\nminimal case: {case:#?}"),
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------
// Bugs found, as the smallest failing cases (ignored until fixed).

/// A leader's snapshot at `index` of `term`, voters 1.
fn leader_snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        data: Bytes::from_static(b"leader state"),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState::with_voters([1])),
            index,
            term,
        }),
    }
}

/// Regression: after a leader's snapshot inside the log with another term
/// (the log after it is dropped), a save leaving a gap was accepted and
/// entry 4 was then returned at index 2: the WAL kept the old last index.
/// Found by this model test with gap writes.
#[test]
fn a_gap_after_a_leaders_snapshot_inside_the_log_is_refused() {
    let fs = MemFs::new(1);
    let mut s = try_open(&fs, common::small()).unwrap();
    s.save(Some(&common::hs(1, 0, 0)), &run_of(1, 5, 1), true)
        .unwrap();
    s.apply_snapshot(leader_snapshot(1, 2)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (Ok(2), Ok(1)));
    // MemoryStorage refuses this with StorageError::Gap { first: 4, last: 1 }.
    let accepted = s.save(None, &[entry(4, 2)], true);
    let mut got = Vec::new();
    let read = s.entries(2, s.last_index().unwrap() + 1, u64::MAX, &mut got);
    assert!(
        matches!(accepted, Err(Error::InvalidWrite(_))),
        "entries 2..=3 missing, yet the save of entry 4 returned {accepted:?}; \
         now last_index {:?}, entries from 2: {read:?} {}",
        s.last_index(),
        runs(&got)
    );
}

/// Regression: a segment whose records end 1 to 8 bytes (less than a
/// record header) before its preallocated end failed a clean reopen once
/// it was no longer the last: the zeros were read as a header fragment.
#[test]
fn a_segment_filled_to_within_a_header_of_its_end_reopens() {
    use prost::Message as _;
    use rudder_storage::record::HEADER_LEN;
    let opts = Options {
        wal: WalOptions { segment_size: 2048 },
        keep_snapshots: 1,
        cache_bytes: 0,
    };
    // Where the first record goes: after the preamble of a fresh segment,
    // whose last byte (the compaction marker's record type) is non-zero.
    let fs = MemFs::new(1);
    drop(try_open(&fs, opts).unwrap());
    let segment = std::path::Path::new("/data/wal/0000000000000001-0000000000000001.wal");
    let fresh = fs.read_durable(segment).expect("the first segment");
    let preamble = fresh.iter().rposition(|&b| b != 0).unwrap() + 1;
    let big = (0..2048)
        .map(|len| Entry::new(1, 1, Bytes::from(vec![0xAB; len])))
        .find(|e| preamble + HEADER_LEN + e.encoded_len() == 2048 - 4)
        .expect("an entry size leaving 4 bytes");

    let mut s = try_open(&fs, opts).unwrap();
    s.save(None, &[big], true).unwrap();
    s.save(Some(&common::hs(1, 0, 0)), &[entry(2, 1)], true)
        .unwrap();
    assert_eq!(
        s.wal_segments(),
        [1, 2],
        "the second entry starts a segment"
    );
    drop(s);
    match try_open(&fs, opts) {
        Ok(s) => assert_eq!(s.last_index(), Ok(2)),
        Err(e) => panic!("a clean reopen failed: {e}"),
    }
}

/// Regression: after a leader's snapshot that disagrees with the log at
/// its index, the storage did not reopen ("entries 2..N are in no
/// segment"): replay judged divergence by the entry at the snapshot's
/// index, which lay in a removed segment. The compaction record now says
/// explicitly that it replaces the log.
#[test]
fn a_leaders_snapshot_replacing_a_diverged_log_reopens() {
    let fs = MemFs::new(1);
    let opts = common::small(); // 4 KiB segments
    let mut s = try_open(&fs, opts).unwrap();
    for i in 1..=100 {
        s.save(Some(&common::hs(1, 0, 0)), &[entry(i, 1)], true)
            .unwrap();
    }
    assert!(s.wal_segments().len() > 2);
    // The leader's log holds entry 1 of term 2: all of ours goes.
    s.apply_snapshot(leader_snapshot(1, 2)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (Ok(2), Ok(1)));
    drop(s);
    match try_open(&fs, opts) {
        Ok(s) => assert_eq!((s.first_index(), s.last_index()), (Ok(2), Ok(1))),
        Err(e) => panic!("a clean reopen failed: {e}"),
    }
}

/// Regression (same cause as the previous test): when the dropped entries
/// after the snapshot started a segment, a reopen silently brought back an
/// entry the snapshot had discarded, of an older term.
#[test]
fn a_leaders_snapshot_replacing_a_diverged_log_stays_replaced() {
    let fs = MemFs::new(1);
    let opts = common::small();
    let mut s = try_open(&fs, opts).unwrap();
    let mut k = 0;
    while s.wal_segments().len() < 2 {
        k += 1;
        s.save(Some(&common::hs(1, 0, 0)), &[entry(k, 1)], true)
            .unwrap();
    }
    // Entry k starts segment 2; entry k - 1 ends segment 1.
    s.apply_snapshot(leader_snapshot(k - 1, 2)).unwrap();
    assert_eq!((s.first_index(), s.last_index()), (Ok(k), Ok(k - 1)));
    drop(s);
    let s = try_open(&fs, opts).unwrap();
    let mut got = Vec::new();
    let _ = s.entries(k, s.last_index().unwrap() + 1, u64::MAX, &mut got);
    assert_eq!(
        (s.first_index(), s.last_index()),
        (Ok(k), Ok(k - 1)),
        "after a reopen the log holds {} again (snapshot {k_1}@2)",
        runs(&got),
        k_1 = k - 1
    );
}

/// Regression: a save re-sending entries the log already holds durably
/// (committed and identical) used to rewrite them, so a torn save cut the
/// log inside committed entries and the storage no longer opened. Held
/// entries are now skipped.
#[test]
fn an_unsynced_resend_of_committed_entries_keeps_them() {
    let fs = MemFs::new(0);
    let mut s = try_open(&fs, common::small()).unwrap();
    s.save(Some(&common::hs(1, 0, 10)), &run_of(1, 10, 1), true)
        .unwrap();
    // Entries 5..=8 again, as they are, unsynced; then a crash tears it.
    s.save(None, &run_of(5, 8, 1), false).unwrap();
    drop(s);
    fs.set_faults(MemFsFaults {
        torn_write_probability: 1.0,
        ..MemFsFaults::default()
    });
    fs.crash();
    match try_open(&fs, common::small()) {
        Ok(s) => assert!(s.last_index().unwrap() >= 10),
        Err(e) => panic!("synced, committed entries 1..=10 are lost: {e}"),
    }
}
