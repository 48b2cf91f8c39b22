//! Counters and a latency histogram the runtime keeps, for `/metrics`.

use hdrhistogram::Histogram;
use rudder_raft::MessageType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What the runtime has done so far. Shared; read it at any time.
#[derive(Debug)]
pub struct Metrics {
    /// Proposals made through the runtime.
    pub proposals: AtomicU64,
    /// Proposals applied, answered with the state machine's response.
    pub proposals_applied: AtomicU64,
    /// Proposals that failed (any [`RequestError`](super::RequestError)).
    pub proposals_failed: AtomicU64,
    /// Times the known leader changed.
    pub leader_changes: AtomicU64,
    /// Linearizable reads answered.
    pub reads: AtomicU64,
    /// Read-index rounds started (reads arriving together share one).
    pub read_rounds: AtomicU64,
    /// Snapshots taken of the state machine.
    pub snapshots: AtomicU64,
    /// Messages handed to the network, by message type.
    sent: [AtomicU64; MESSAGE_TYPES],
    /// Times the network reported a peer unreachable (messages to it
    /// dropped).
    pub unreachable: AtomicU64,
    /// How long each durable save of a Ready took, in microseconds.
    fsync_micros: Mutex<Histogram<u64>>,
}

/// Message types are numbered from 0; room for all of them.
const MESSAGE_TYPES: usize = 32;

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            proposals: AtomicU64::new(0),
            proposals_applied: AtomicU64::new(0),
            proposals_failed: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            read_rounds: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            sent: [const { AtomicU64::new(0) }; MESSAGE_TYPES],
            unreachable: AtomicU64::new(0),
            fsync_micros: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3)
                    .expect("invariant broken: static histogram bounds"),
            ),
        }
    }
}

impl Metrics {
    /// Counts one message of type `t` sent.
    pub fn count_sent(&self, t: i32) {
        if let Some(c) = usize::try_from(t).ok().and_then(|i| self.sent.get(i)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages sent so far, by type, for the types sent at least once.
    pub fn sent(&self) -> Vec<(MessageType, u64)> {
        (0..MESSAGE_TYPES)
            .filter_map(|i| {
                let n = self.sent[i].load(Ordering::Relaxed);
                let t = MessageType::try_from(i as i32).ok()?;
                (n > 0).then_some((t, n))
            })
            .collect()
    }

    /// Records a save that took `micros`.
    pub fn record_fsync(&self, micros: u64) {
        let mut h = self.fsync_micros.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(micros.max(1));
    }

    /// The save latency histogram, copied.
    pub fn fsync_histogram(&self) -> Histogram<u64> {
        self.fsync_micros
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
