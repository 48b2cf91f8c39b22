//! Linearizable reads by ReadIndex, with the reads that arrive together
//! sharing one round.
//!
//! A read may be answered from the local state machine once it has applied
//! up to an index the leader confirmed as its commit index *after the read
//! arrived*. So a round started before a read arrived cannot serve it:
//! reads arriving while a round is in flight wait for the next one, which
//! starts as soon as the current one gets its index. Every round gets a
//! fresh context, unique across nodes and restarts (node ID, a nonce drawn
//! at start, a counter): the leader drops a request whose context it
//! already holds, and a late answer to another node's, or to this node's
//! previous life's, request must never serve a read. A round whose answer
//! is lost (a leader change drops it) is started again.

use super::error::RequestError;
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// One read waiting: its answer goes out with the index it may read at.
pub struct Read {
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<u64, RequestError>>,
    /// When the read gives up.
    pub deadline: Instant,
}

struct Round {
    ctx: u64,
    started: Instant,
    reads: Vec<Read>,
}

/// The reads waiting, in rounds.
pub struct Reads {
    /// Node ID and nonce: the first 16 bytes of every context.
    prefix: [u8; 16],
    next_ctx: u64,
    /// Arrived, waiting for the next round.
    queued: Vec<Read>,
    /// The round asked of the core, not answered yet.
    in_flight: Option<Round>,
    /// Rounds with their read index, waiting for it to be applied.
    confirmed: Vec<(u64, Vec<Read>)>,
}

impl Reads {
    /// No reads yet, for node `id`; `nonce` must differ between its starts.
    pub fn new(id: u64, nonce: u64) -> Reads {
        let mut prefix = [0; 16];
        prefix[..8].copy_from_slice(&id.to_be_bytes());
        prefix[8..].copy_from_slice(&nonce.to_be_bytes());
        Reads {
            prefix,
            next_ctx: 0,
            queued: Vec::new(),
            in_flight: None,
            confirmed: Vec::new(),
        }
    }

    /// Queues a read.
    pub fn push(&mut self, read: Read) {
        self.queued.push(read);
    }

    /// The context of a round to start now, if reads are queued and none is
    /// in flight (or the one in flight is older than `retry_after`, its
    /// answer lost). The caller asks the core with it.
    pub fn start_round(&mut self, now: Instant, retry_after: Duration) -> Option<Bytes> {
        if let Some(r) = &self.in_flight {
            if now.duration_since(r.started) < retry_after {
                return None;
            }
            // Lost: start again, with every read of it.
            let lost = self.in_flight.take().expect("checked");
            self.queued.splice(0..0, lost.reads);
        }
        if self.queued.is_empty() {
            return None;
        }
        self.next_ctx += 1;
        self.in_flight = Some(Round {
            ctx: self.next_ctx,
            started: now,
            reads: std::mem::take(&mut self.queued),
        });
        let mut ctx = Vec::with_capacity(24);
        ctx.extend_from_slice(&self.prefix);
        ctx.extend_from_slice(&self.next_ctx.to_be_bytes());
        Some(Bytes::from(ctx))
    }

    /// The core could not start the round: its reads fail with `e`.
    pub fn fail_round(&mut self, e: RequestError) {
        if let Some(r) = self.in_flight.take() {
            for read in r.reads {
                let _ = read.reply.send(Err(e.clone()));
            }
        }
    }

    /// The core confirmed the round of `ctx` at `index`.
    pub fn confirmed(&mut self, ctx: &[u8], index: u64) {
        let Some(counter) = ctx.strip_prefix(&self.prefix[..]) else {
            return; // not this node's, or not this life's
        };
        let Ok(ctx) = <[u8; 8]>::try_from(counter).map(u64::from_be_bytes) else {
            return;
        };
        if self.in_flight.as_ref().is_some_and(|r| r.ctx == ctx) {
            let r = self.in_flight.take().expect("checked");
            self.confirmed.push((index, r.reads));
        }
    }

    /// Answers the rounds whose index is applied; returns how many reads.
    pub fn applied(&mut self, applied: u64) -> u64 {
        let mut answered = 0;
        self.confirmed.retain_mut(|(index, reads)| {
            if *index > applied {
                return true;
            }
            for read in reads.drain(..) {
                answered += u64::from(read.reply.send(Ok(*index)).is_ok());
            }
            false
        });
        answered
    }

    /// Fails the reads whose deadline passed by `now`.
    pub fn expire(&mut self, now: Instant) {
        let late = |r: &Read| r.deadline <= now;
        let fail = |reads: &mut Vec<Read>| {
            for read in extract(reads, late) {
                let _ = read.reply.send(Err(RequestError::Timeout));
            }
        };
        fail(&mut self.queued);
        if let Some(r) = &mut self.in_flight {
            fail(&mut r.reads);
        }
        for (_, reads) in &mut self.confirmed {
            fail(reads);
        }
    }

    /// Fails every read with `e`.
    pub fn fail_all(&mut self, e: RequestError) {
        let rounds = self.in_flight.take().map(|r| r.reads).into_iter();
        let confirmed = self.confirmed.drain(..).map(|(_, reads)| reads);
        for read in rounds
            .chain(confirmed)
            .flatten()
            .chain(self.queued.drain(..))
        {
            let _ = read.reply.send(Err(e.clone()));
        }
    }
}

/// Removes and returns the reads that match `pred`.
fn extract(reads: &mut Vec<Read>, pred: impl Fn(&Read) -> bool) -> Vec<Read> {
    let (out, keep): (Vec<Read>, Vec<Read>) = reads.drain(..).partition(|r| pred(r));
    *reads = keep;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(deadline: Instant) -> (Read, oneshot::Receiver<Result<u64, RequestError>>) {
        let (reply, rx) = oneshot::channel();
        (Read { reply, deadline }, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn reads_arriving_during_a_round_wait_for_the_next() {
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        let mut reads = Reads::new(1, 42);
        let (a, mut rx_a) = read(far);
        reads.push(a);
        let ctx1 = reads.start_round(now, Duration::from_secs(1)).unwrap();
        let (b, mut rx_b) = read(far);
        reads.push(b);
        assert!(
            reads.start_round(now, Duration::from_secs(1)).is_none(),
            "one round at a time"
        );
        reads.confirmed(&ctx1, 7);
        let ctx2 = reads.start_round(now, Duration::from_secs(1)).unwrap();
        assert_ne!(ctx1, ctx2);
        assert_eq!(reads.applied(6), 0);
        assert_eq!(reads.applied(7), 1);
        assert_eq!(rx_a.try_recv().unwrap(), Ok(7));
        assert!(rx_b.try_recv().is_err(), "b needs its own round");
        reads.confirmed(&ctx1, 9); // a stale answer is ignored
        let mut other_life = ctx2.to_vec();
        other_life[15] ^= 1;
        reads.confirmed(&other_life, 3); // another nonce: not ours
        reads.confirmed(&ctx2, 8);
        assert_eq!(reads.applied(8), 1);
        assert_eq!(rx_b.try_recv().unwrap(), Ok(8));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_round_is_retried_and_late_reads_time_out() {
        let now = Instant::now();
        let mut reads = Reads::new(1, 42);
        let (a, mut rx_a) = read(now + Duration::from_secs(60));
        let (b, mut rx_b) = read(now + Duration::from_secs(2));
        reads.push(a);
        reads.push(b);
        let ctx1 = reads.start_round(now, Duration::from_secs(1)).unwrap();
        let later = now + Duration::from_secs(3);
        reads.expire(later);
        assert_eq!(rx_b.try_recv().unwrap(), Err(RequestError::Timeout));
        let ctx2 = reads.start_round(later, Duration::from_secs(1)).unwrap();
        assert_ne!(ctx1, ctx2, "the lost round is asked again, freshly");
        reads.confirmed(&ctx2, 4);
        reads.applied(4);
        assert_eq!(rx_a.try_recv().unwrap(), Ok(4));
    }
}
