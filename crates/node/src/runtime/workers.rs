//! The append and apply workers of asynchronous storage writes
//! ([`rudder_raft::storage_writes`]): the node hands each Ready's saving
//! and applying to them as messages and goes on, so a leader takes new
//! proposals, and applies what committed, while its disk works.
//!
//! - The **append worker** saves every `MsgStorageAppend` waiting, in
//!   order, with one write each and one fsync for all of them (and none
//!   when they only move the commit index), then delivers their responses:
//!   acknowledgements to peers go out, its own are stepped into the node.
//! - The **apply worker** applies each `MsgStorageApply` (a snapshot, the
//!   committed entries, configuration changes), answers the proposals and
//!   reads that waited for them, steps its response back, and takes a
//!   snapshot every `snapshot_every` entries: a blocking thread encodes
//!   the state while the worker waits, then writes it and compacts the
//!   log while the worker applies on.
//!
//! A storage failure or a snapshot the state machine refuses stops the
//! node: nothing more can be made durable or applied in order.

use super::error::RequestError;
use super::members;
use super::pending::Waiter;
use super::shared::{Shared, Stop};
use super::{Network, StateMachine};
use crate::{Node, NodeError, SharedStorage};
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::storage_writes::hard_state_of;
use rudder_raft::{ConfState, Entry, Message, Snapshot, Storage};
use rudder_storage::DiskStorage;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Delivers a worker's responses: its own to the node, the rest to peers.
/// Returns false once the node stopped.
async fn deliver<M: StateMachine, N: Network>(
    node: &Node,
    shared: &Shared<M, N>,
    responses: Vec<Message>,
) -> bool {
    let mut peers = Vec::new();
    for r in responses {
        if r.to == shared.id {
            if node.step(r).await.is_err() {
                return false;
            }
        } else {
            shared.metrics.count_sent(r.msg_type);
            peers.push(r);
        }
    }
    if !peers.is_empty() {
        shared.network.send(peers);
    }
    true
}

/// Stops the node for `why`.
async fn fail<M: StateMachine, N: Network>(node: &Node, shared: &Shared<M, N>, why: Stop) {
    shared.stop_with(why);
    node.stop().await;
}

/// The append worker: runs until the driver drops its sender.
pub async fn append<M: StateMachine, N: Network>(
    node: Node,
    storage: SharedStorage<DiskStorage>,
    shared: Arc<Shared<M, N>>,
    mut work: mpsc::UnboundedReceiver<Message>,
) {
    // The term and vote last saved: a change of either needs an fsync
    // before any vote response leaves; a commit index alone does not.
    let mut saved_vote = match storage.lock().initial_state() {
        Ok(s) => (s.hard_state.term, s.hard_state.vote),
        Err(_) => (0, 0),
    };
    while let Some(first) = work.recv().await {
        let mut batch = vec![first];
        while let Ok(m) = work.try_recv() {
            batch.push(m);
        }
        for m in &batch {
            if let Some(snap) = &m.snapshot {
                if let Err(e) = members::open(&snap.data) {
                    // Refused before it is saved: saved, it would fail
                    // every restart.
                    return fail(
                        &node,
                        &shared,
                        Stop::Restore(format!("a snapshot's envelope: {e}")),
                    )
                    .await;
                }
            }
        }
        let storage = storage.clone();
        let started = Instant::now();
        let (batch, saved) = tokio::task::spawn_blocking(move || {
            let saved =
                save_all(&storage, &batch, &mut saved_vote).map(|synced| (synced, saved_vote));
            (batch, saved)
        })
        .await
        .expect("invariant broken: the save task panicked");
        match saved {
            Ok((synced, vote)) => {
                saved_vote = vote;
                if synced {
                    shared
                        .metrics
                        .record_fsync(started.elapsed().as_micros() as u64);
                }
            }
            Err(e) => return fail(&node, &shared, Stop::Storage(e)).await,
        }
        for m in batch {
            if !deliver(&node, &shared, m.responses).await {
                return;
            }
        }
    }
}

/// Saves every append of `batch` under the storage lock, then syncs once
/// outside it if any needs it; returns whether it synced.
fn save_all(
    storage: &SharedStorage<DiskStorage>,
    batch: &[Message],
    saved_vote: &mut (u64, u64),
) -> Result<bool, rudder_storage::Error> {
    let mut must_sync = false;
    let syncer = {
        let mut s = storage.lock();
        for m in batch {
            if let Some(snap) = &m.snapshot {
                s.apply_snapshot((**snap).clone())?;
            }
            let hs = hard_state_of(m);
            if let Some(hs) = &hs {
                must_sync |= (hs.term, hs.vote) != *saved_vote;
                *saved_vote = (hs.term, hs.vote);
            }
            must_sync |= !m.entries.is_empty();
            s.save(hs.as_ref(), &m.entries, false)?;
        }
        s.syncer()
    };
    if must_sync {
        syncer.sync()?;
    }
    Ok(must_sync)
}

/// The first index past `after` (the last snapshot's) at which member
/// `id` snapshots, one every `every` entries at a phase of its own: the
/// fractional parts of the golden ratio's multiples spread any number of
/// members over the interval, so a cluster's members do not all stop to
/// write a snapshot (which holds their storage) at the same entries.
fn snapshot_due(id: u64, every: u64, after: u64) -> u64 {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let every = every.max(1);
    let phase = ((id as f64 * GOLDEN).fract() * every as f64) as u64 % every;
    if after < phase {
        phase
    } else {
        phase + ((after - phase) / every + 1) * every
    }
}

/// The apply worker's own state.
pub struct Applier<M: StateMachine, N: Network> {
    node: Node,
    storage: SharedStorage<DiskStorage>,
    shared: Arc<Shared<M, N>>,
    applied: u64,
    applied_term: u64,
    last_snapshot: u64,
    conf_state: ConfState,
    snapshot_every: u64,
    keep_entries: u64,
    /// The snapshot being written (and the log compacted) on a blocking
    /// thread while applying goes on; it resolves to its index, `None` if
    /// a newer one was there first, or `Err` if the storage failed (the
    /// task has stopped the node then).
    snapshotting: Option<JoinHandle<Result<Option<u64>, ()>>>,
}

impl<M: StateMachine, N: Network> Applier<M, N> {
    /// An apply worker starting from the snapshot `snap` (index 0: none).
    pub fn new(
        node: Node,
        storage: SharedStorage<DiskStorage>,
        shared: Arc<Shared<M, N>>,
        snap: &Snapshot,
        snapshot_every: u64,
        keep_entries: u64,
    ) -> Self {
        Applier {
            node,
            storage,
            shared,
            applied: snap.index(),
            applied_term: snap.term(),
            last_snapshot: snap.index(),
            conf_state: snap.conf_state(),
            snapshot_every,
            keep_entries,
            snapshotting: None,
        }
    }

    /// Runs until the driver drops its sender; then waits for the
    /// snapshot being written, so nothing writes the storage after.
    pub async fn run(mut self, mut work: mpsc::UnboundedReceiver<Message>) {
        while let Some(m) = work.recv().await {
            let outcome = self.handle(m).await;
            if let Err(why) = outcome {
                if let Some(why) = why {
                    fail(&self.node, &self.shared, why).await;
                }
                break;
            }
        }
        // Its failure has stopped the node already.
        let _ = self.finish_snapshot().await;
    }

    /// Applies one `MsgStorageApply`. `Err(None)`: the node stopped.
    async fn handle(&mut self, m: Message) -> Result<(), Option<Stop>> {
        if let Some(snap) = &m.snapshot {
            self.restore(snap).map_err(Some)?;
        }
        for e in m.entries {
            self.apply(e).await?;
        }
        self.shared.set_applied(self.applied, self.applied_term);
        if !deliver(&self.node, &self.shared, m.responses).await {
            return Err(None);
        }
        self.maybe_snapshot().await
    }

    /// Replaces the state machine with a snapshot's, and adds the
    /// snapshot's addresses to the book (the founders', known from the
    /// configuration, may be missing from it).
    fn restore(&mut self, snap: &Snapshot) -> Result<(), Stop> {
        let (known, data) = members::open(&snap.data).map_err(|e| Stop::Restore(e.to_string()))?;
        self.shared
            .state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .restore(&data)
            .map_err(Stop::Restore)?;
        for (&peer, info) in &known {
            if peer != self.shared.id {
                self.shared.network.add_peer(peer, info);
            }
        }
        self.shared
            .members
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(known);
        self.applied = snap.index();
        self.applied_term = snap.term();
        self.last_snapshot = snap.index();
        self.conf_state = snap.conf_state();
        Ok(())
    }

    /// Applies one committed entry and answers its proposer, if here.
    async fn apply(&mut self, e: Entry) -> Result<(), Option<Stop>> {
        self.applied = e.index;
        self.applied_term = e.term;
        let cc = match decode_conf_change(&e) {
            Ok(Some(cc)) => cc,
            Ok(None) if e.data.is_empty() => return Ok(()), // a new leader's entry
            Ok(None) => {
                let response = self
                    .shared
                    .state
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply(e.index, &e.data);
                let waiter = self.shared.pending().take_applied(e.index, e.term);
                match waiter {
                    Some(Waiter::Command(tx)) => drop(tx.send(Ok(response))),
                    Some(w) => w.fail(RequestError::Unknown),
                    None => {}
                }
                return Ok(());
            }
            Err(err) => {
                // Committed, so every replica skips it alike.
                error!(
                    id = self.shared.id,
                    index = e.index,
                    "skipping an undecodable configuration change: {err}"
                );
                return Ok(());
            }
        };
        let id = self.shared.id;
        let book = members::changes(&cc);
        {
            let mut members = self
                .shared
                .members
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let present = |peer: &u64| members.contains_key(peer);
            let updated: Vec<_> = book
                .updated
                .into_iter()
                .filter(|(p, _)| present(p))
                .collect();
            for (peer, info) in book.added.into_iter().chain(updated) {
                let Some(info) = info else { continue };
                let info = members::record(&mut members, peer, info);
                if peer != id {
                    self.shared.network.add_peer(peer, &info);
                }
            }
        }
        let cs = match self.node.apply_conf_change(&cc).await {
            Ok(cs) => cs,
            Err(NodeError::Raft(err)) => {
                // Committed, so every member refuses it alike.
                warn!(
                    id,
                    index = e.index,
                    "configuration change not applied: {err}"
                );
                if let Some(w) = self.shared.pending().take_applied(e.index, e.term) {
                    w.fail(RequestError::Refused(err.to_string()));
                }
                return Ok(());
            }
            Err(_) => return Err(None),
        };
        for peer in book.removed {
            self.shared
                .members
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&peer);
            if peer != id {
                self.shared.network.remove_peer(peer);
            }
        }
        self.conf_state = cs.clone();
        let waiter = self.shared.pending().take_applied(e.index, e.term);
        match waiter {
            Some(Waiter::ConfChange(tx)) => drop(tx.send(Ok(cs))),
            Some(w) => w.fail(RequestError::Unknown),
            None => {}
        }
        Ok(())
    }

    /// Every `snapshot_every` entries: snapshots the state machine (with
    /// the address book), then writes it and compacts the log, keeping
    /// `keep_entries`, all on a blocking thread; the apply worker waits
    /// for the encoding only, and applies on while the rest is done. One
    /// at a time: a snapshot due while one is written waits for it. A
    /// storage failure stops the node from the writing task itself, at
    /// once, not when the next entries come (`Err(None)` here then).
    async fn maybe_snapshot(&mut self) -> Result<(), Option<Stop>> {
        if self.snapshotting.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        self.finish_snapshot().await.map_err(|()| None)?;
        if self.applied < snapshot_due(self.shared.id, self.snapshot_every, self.last_snapshot) {
            return Ok(());
        }
        let index = self.applied;
        let cs = self.conf_state.clone();
        let keep = self.keep_entries;
        let storage = self.storage.clone();
        let (node, shared) = (self.node.clone(), Arc::clone(&self.shared));
        let (encoded_tx, encoded) = oneshot::channel();
        self.snapshotting = Some(tokio::spawn(async move {
            let (state, book) = (Arc::clone(&shared.state), Arc::clone(&shared.members));
            let written = tokio::task::spawn_blocking(move || {
                // Encoded off the async threads (it takes milliseconds),
                // while the apply worker waits: the state is as of `index`.
                let state = state.read().unwrap_or_else(|e| e.into_inner()).snapshot();
                let data = members::seal(&book.read().unwrap_or_else(|e| e.into_inner()), state);
                let _ = encoded_tx.send(());
                let mut s = storage.lock();
                if s.snapshot_index() >= index {
                    // A leader's snapshot, saved by the append worker while
                    // this one was applying what came before it, is newer.
                    return Ok(None);
                }
                s.create_snapshot(index, Some(cs), &data)?;
                match index.checked_sub(keep) {
                    Some(through) if through > 0 => s.compact(through)?,
                    _ => {}
                }
                Ok(Some(index))
            })
            .await
            .expect("invariant broken: the snapshot task panicked");
            match written {
                Ok(taken) => {
                    if taken.is_some() {
                        shared.metrics.snapshots.fetch_add(1, Relaxed);
                        info!(id = shared.id, index, "snapshot taken");
                    }
                    Ok(taken)
                }
                Err(e) => {
                    fail(&node, &shared, Stop::Storage(e)).await;
                    Err(())
                }
            }
        }));
        // Dropped unsent only if the task panicked: its join says so.
        let _ = encoded.await;
        Ok(())
    }

    /// Waits for the snapshot being written, if any, and counts from it;
    /// `Err` if it failed (and stopped the node).
    async fn finish_snapshot(&mut self) -> Result<(), ()> {
        let Some(task) = self.snapshotting.take() else {
            return Ok(());
        };
        let taken = task
            .await
            .expect("invariant broken: the snapshot task panicked")?;
        if let Some(index) = taken {
            // A leader's snapshot restored meanwhile may be newer.
            self.last_snapshot = self.last_snapshot.max(index);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::snapshot_due;

    #[test]
    fn snapshots_come_every_interval_at_a_phase_of_each_members_own() {
        let every = 10_000;
        let phases: Vec<u64> = (1..=5).map(|id| snapshot_due(id, every, 0)).collect();
        for (id, &p) in (1..=5u64).zip(&phases) {
            assert!(p > 0 && p < every, "member {id}'s first snapshot at {p}");
            // One every interval from then on, restarts included.
            assert_eq!(snapshot_due(id, every, p), p + every);
            assert_eq!(snapshot_due(id, every, p + 1), p + every);
            assert_eq!(snapshot_due(id, every, p + every - 1), p + every);
        }
        let mut sorted = phases.clone();
        sorted.sort_unstable();
        let gaps: Vec<u64> = sorted.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|&g| g >= every / 10),
            "five members' phases bunch up: {phases:?}"
        );
        assert_eq!(snapshot_due(3, 1, 41), 42, "every entry: the next one");
        assert_eq!(snapshot_due(3, 0, 41), 42, "0 counts as 1");
    }
}
