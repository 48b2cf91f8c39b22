//! Clients of the simulated cluster: each runs one operation at a time
//! (get, put, append, cas on a few keys) against the node it thinks leads,
//! follows refusals to the leader they name, gives up after a timeout, and
//! records every operation with its call and return times.

use crate::kv::{Op, Reply};
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
    /// When it was first sent.
    pub call: u64,
    /// When its reply arrived and what it said; `None` when the client gave
    /// up: it may or may not have taken effect.
    pub ret: Option<(u64, Reply)>,
}

/// An operation under way.
#[derive(Clone, Debug)]
struct Pending {
    request: u64,
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
    pub fn act(&mut self, now: u64, stopping: bool, nodes: &[u64], rng: &mut SmallRng) -> Vec<Submit> {
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
            call: p.call,
            ret: Some((now, reply)),
        });
    }

    /// Request `request` was refused before taking effect; the client
    /// tries again at `leader` (or another node) a little later.
    pub fn refused(&mut self, now: u64, request: u64, leader: u64, nodes: &[u64], rng: &mut SmallRng) {
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
