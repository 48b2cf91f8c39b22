//! Clients of the simulated cluster: each runs one operation at a time
//! (get, put, append, cas on a few keys) against the node it thinks leads,
//! follows refusals to the leader they name, gives up after a timeout, and
//! records every operation with its call and return times.

use crate::kv::{Op, Reply};
use crate::linearizability::{self, Kv, MissingKey, Operation, Verdict};
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::HashMap;

/// One operation of the recorded history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The client that ran it.
    pub client: u64,
    /// What it asked.
    pub op: Op,
    /// The request IDs it was sent under, in order: a refused request is
    /// sent again under a new ID; a reply answers the last one.
    pub requests: Vec<u64>,
    /// When it was first sent.
    pub call: u64,
    /// When its reply arrived and what it said; `None` when the client gave
    /// up: it may or may not have taken effect.
    pub ret: Option<(u64, Reply)>,
}

/// Where and when a command took effect: the reply of its first apply and
/// the time of it, by request ID.
pub type Effects = HashMap<u64, (u64, Reply)>;

/// Search steps the checker may spend on one run's history. Running out is
/// reported as a failure, never taken as a pass.
pub const CHECK_BUDGET: u64 = 50_000_000;

/// Turns the clients' history into the checker's operations, settling
/// what the clients could not know from what the nodes applied:
///
/// - an operation given up on whose command some node applied took
///   effect, with the reply that apply computed, no later than the first
///   apply: it returns then;
/// - one whose command nobody applied by the end of the run (every member
///   has applied everything committed by then) had no effect within the
///   history, and is left out, as are reads given up on;
/// - a request refused as certainly not applied that was applied anyway,
///   or an operation that took effect twice, is an error.
///
/// Settling outcomes only adds facts that held in the run, so it never
/// hides a violation; it keeps the search from exploring which of many
/// timed-out writes took effect.
pub fn settle(
    history: &[Recorded],
    effects: &Effects,
) -> Result<Vec<Operation<Op, Reply>>, String> {
    let mut ops = Vec::with_capacity(history.len());
    for r in history {
        let answered = r
            .ret
            .as_ref()
            .map(|_| *r.requests.last().expect("sent at least once"));
        let applied: Vec<u64> = r
            .requests
            .iter()
            .copied()
            .filter(|q| effects.contains_key(q))
            .collect();
        if let Some(q) = applied.iter().find(|&&q| Some(q) != answered) {
            if answered.is_some() || applied.len() > 1 {
                return Err(format!(
                    "client {} {:?}: request #{q} took effect although it was refused \
                     as certainly not applied (requests {:?}, applied {applied:?})",
                    r.client, r.op, r.requests
                ));
            }
        }
        let (ret, output) = match (&r.ret, applied.first()) {
            (Some((t, reply)), _) => (*t, reply.clone()),
            (None, Some(q)) => effects[q].clone(),
            (None, None) => continue,
        };
        ops.push(Operation {
            client: r.client,
            call: r.call,
            ret: Some(ret),
            input: r.op.clone(),
            output: Some(output),
        });
    }
    Ok(ops)
}

/// Checks that the operations are linearizable for the store's model (a
/// missing key reads as absent); on failure, says why with the operations
/// the checker could not order.
pub fn check_linearizable(ops: &[Operation<Op, Reply>]) -> Result<(), String> {
    match linearizability::check(&Kv::new(MissingKey::Absent), ops, Some(CHECK_BUDGET)) {
        Verdict::Linearizable => Ok(()),
        Verdict::NotLinearizable(c) => Err(format!(
            "linearizability: the history of {} operations is not linearizable\n{}",
            ops.len(),
            c.describe(ops)
        )),
        Verdict::Unknown => Err(format!(
            "linearizability: undecided within {CHECK_BUDGET} search steps ({} operations)",
            ops.len()
        )),
    }
}

/// An operation under way.
#[derive(Clone, Debug)]
struct Pending {
    request: u64,
    /// Every request ID used so far, `request` last.
    requests: Vec<u64>,
    op: Op,
    call: u64,
    deadline: u64,
    /// When to send it next (after a refusal), to `target`.
    resend_at: Option<u64>,
}

/// A client.
#[derive(Clone, Debug)]
struct Client {
    id: u64,
    target: u64,
    pending: Option<Pending>,
    /// When to start the next operation.
    next_at: u64,
    /// Values this client last saw per key, for compare-and-set.
    seen: HashMap<String, Option<String>>,
    counter: u64,
}

/// What the workload wants sent: request `request` for `op` to `node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submit {
    /// The node to send to.
    pub node: u64,
    /// The request's ID, unique in the run.
    pub request: u64,
    /// The operation.
    pub op: Op,
}

/// The clients and the history they record.
#[derive(Debug)]
pub struct Workload {
    clients: Vec<Client>,
    keys: u64,
    timeout: u64,
    think: u64,
    next_request: u64,
    /// Request → index of the client waiting for it.
    waiting: HashMap<u64, usize>,
    /// Finished operations, in order of return (or of giving up).
    pub history: Vec<Recorded>,
    /// Operations that were refused before taking effect, and not retried.
    pub refusals: u64,
}

impl Workload {
    /// `clients` clients over `keys` keys, each giving up on an operation
    /// after `timeout` time units and pausing up to `think` between
    /// operations; `nodes` are the nodes to start with.
    pub fn new(clients: u64, keys: u64, timeout: u64, think: u64, nodes: &[u64]) -> Workload {
        let clients = (1..=clients)
            .map(|id| Client {
                id,
                target: nodes[(id as usize - 1) % nodes.len()],
                pending: None,
                next_at: 0,
                seen: HashMap::new(),
                counter: 0,
            })
            .collect();
        Workload {
            clients,
            keys,
            timeout,
            think,
            next_request: 0,
            waiting: HashMap::new(),
            history: Vec::new(),
            refusals: 0,
        }
    }

    /// Whether every client is idle.
    pub fn is_idle(&self) -> bool {
        self.clients.iter().all(|c| c.pending.is_none())
    }

    /// Lets clients act at time `now`: start operations (unless `stopping`),
    /// give up on late ones, resend refused ones. Returns what to send.
    pub fn act(
        &mut self,
        now: u64,
        stopping: bool,
        nodes: &[u64],
        rng: &mut SmallRng,
    ) -> Vec<Submit> {
        let mut out = Vec::new();
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if let Some(p) = &mut c.pending {
                if now >= p.deadline {
                    let p = c.pending.take().expect("checked");
                    self.waiting.remove(&p.request);
                    c.next_at = now + rng.random_range(0..=self.think);
                    c.target = nodes[rng.random_range(0..nodes.len())];
                    self.history.push(Recorded {
                        client: c.id,
                        op: p.op,
                        requests: p.requests,
                        call: p.call,
                        ret: None,
                    });
                    continue;
                }
                if p.resend_at.is_some_and(|t| now >= t) {
                    p.resend_at = None;
                    self.next_request += 1;
                    self.waiting.remove(&p.request);
                    p.request = self.next_request;
                    p.requests.push(p.request);
                    self.waiting.insert(p.request, i);
                    out.push(Submit {
                        node: c.target,
                        request: p.request,
                        op: p.op.clone(),
                    });
                }
                continue;
            }
            if stopping || now < c.next_at {
                continue;
            }
            c.counter += 1;
            let key = format!("k{}", rng.random_range(0..self.keys));
            let value = format!("{}.{}", c.id, c.counter);
            let op = match rng.random_range(0..10) {
                0..=3 => Op::Get { key },
                4..=5 => Op::Put { key, value },
                6..=7 => Op::Append { key, value },
                _ => {
                    let from = c.seen.get(&key).cloned().flatten();
                    Op::Cas {
                        key,
                        from,
                        to: value,
                    }
                }
            };
            self.next_request += 1;
            let request = self.next_request;
            self.waiting.insert(request, i);
            c.pending = Some(Pending {
                request,
                requests: vec![request],
                op: op.clone(),
                call: now,
                deadline: now + self.timeout,
                resend_at: None,
            });
            out.push(Submit {
                node: c.target,
                request,
                op,
            });
        }
        out
    }

    /// Request `request` was answered with `reply` at `now`.
    pub fn done(&mut self, now: u64, request: u64, reply: Reply, rng: &mut SmallRng) {
        let Some(i) = self.waiting.remove(&request) else {
            return; // the client gave up on it already
        };
        let c = &mut self.clients[i];
        let Some(p) = c.pending.take() else {
            return;
        };
        match (&p.op, &reply) {
            (Op::Get { key }, Reply::Value(v)) => {
                c.seen.insert(key.clone(), v.clone());
            }
            (Op::Put { key, value }, _) => {
                c.seen.insert(key.clone(), Some(value.clone()));
            }
            (Op::Cas { key, to, .. }, Reply::Swapped(true)) => {
                c.seen.insert(key.clone(), Some(to.clone()));
            }
            _ => {}
        }
        c.next_at = now + rng.random_range(0..=self.think);
        self.history.push(Recorded {
            client: c.id,
            op: p.op,
            requests: p.requests,
            call: p.call,
            ret: Some((now, reply)),
        });
    }

    /// Request `request` was refused before taking effect; the client
    /// tries again at `leader` (or another node) a little later.
    pub fn refused(
        &mut self,
        now: u64,
        request: u64,
        leader: u64,
        nodes: &[u64],
        rng: &mut SmallRng,
    ) {
        let Some(&i) = self.waiting.get(&request) else {
            return;
        };
        let c = &mut self.clients[i];
        let Some(p) = &mut c.pending else {
            return;
        };
        self.refusals += 1;
        c.target = if leader != 0 && leader != c.target {
            leader
        } else {
            nodes[rng.random_range(0..nodes.len())]
        };
        p.resend_at = Some(now + 1 + rng.random_range(0..=self.think / 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(value: &str) -> Op {
        Op::Put {
            key: "k".into(),
            value: value.into(),
        }
    }

    fn get() -> Op {
        Op::Get { key: "k".into() }
    }

    fn recorded(
        client: u64,
        op: Op,
        requests: &[u64],
        call: u64,
        ret: Option<(u64, Reply)>,
    ) -> Recorded {
        Recorded {
            client,
            op,
            requests: requests.to_vec(),
            call,
            ret,
        }
    }

    #[test]
    fn a_write_given_up_on_returns_when_first_applied() {
        let history = [recorded(1, put("a"), &[1, 2], 10, None)];
        let effects = Effects::from([(2, (25, Reply::Done))]);
        let ops = settle(&history, &effects).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(
            (ops[0].call, ops[0].ret, ops[0].output.clone()),
            (10, Some(25), Some(Reply::Done))
        );
    }

    #[test]
    fn unapplied_writes_and_unanswered_reads_are_left_out() {
        let history = [
            recorded(1, put("a"), &[1], 10, None),
            recorded(2, get(), &[2], 10, None),
            recorded(3, get(), &[3], 12, Some((14, Reply::Value(None)))),
        ];
        let ops = settle(&history, &Effects::new()).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].client, 3);
    }

    #[test]
    fn a_refused_request_that_took_effect_is_an_error() {
        // Request 1 was refused, so the client sent it again as 2 and was
        // answered; 1 must never have been applied.
        let history = [recorded(1, put("a"), &[1, 2], 10, Some((30, Reply::Done)))];
        let effects = Effects::from([(1, (20, Reply::Done)), (2, (29, Reply::Done))]);
        let err = settle(&history, &effects).unwrap_err();
        assert!(err.contains("request #1 took effect"), "{err}");
        // Given up on, but applied under two IDs: it took effect twice.
        let history = [recorded(1, put("a"), &[1, 2], 10, None)];
        assert!(settle(&history, &effects).is_err());
    }

    #[test]
    fn a_stale_read_fails_the_check() {
        let history = [
            recorded(1, put("a"), &[1], 0, Some((5, Reply::Done))),
            recorded(2, put("b"), &[2], 6, None),
            recorded(
                3,
                get(),
                &[3],
                20,
                Some((21, Reply::Value(Some("a".into())))),
            ),
        ];
        // "b" was applied at 8, before the read began: reading "a" is stale.
        let effects = Effects::from([(1, (4, Reply::Done)), (2, (8, Reply::Done))]);
        let ops = settle(&history, &effects).unwrap();
        let err = check_linearizable(&ops).unwrap_err();
        assert!(err.contains("not linearizable"), "{err}");
        // Had "b" not been applied, the read would be right.
        let effects = Effects::from([(1, (4, Reply::Done))]);
        check_linearizable(&settle(&history, &effects).unwrap()).unwrap();
    }
}
