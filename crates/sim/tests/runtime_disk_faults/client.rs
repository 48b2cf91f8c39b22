//! Clients: each runs one operation at a time — a put, a compare-and-set,
//! or a get (through a linearizable read barrier on any member, or through
//! the log) — on a few keys, against the runtimes running now, and records
//! it with its call and return times ([`Recorded`]).
//!
//! A request refused as certainly not carried out (not the leader, dropped
//! or refused by the core) is sent again, under a new request ID, to the
//! leader named or another member. One whose outcome cannot be known (a
//! timeout, an unknown outcome, the member stopping under it) ends the
//! operation with no return: the checker lets it take effect or not.

use super::cluster::{runtimes, Runtimes};
use super::Clock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rudder_node::runtime::{RequestError, Runtime};
use rudder_raft::StateRole;
use rudder_sim::kv::{self, Op, Reply};
use rudder_sim::workload::Recorded;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::machine::Replica;

/// Sends before an operation is given up on (all refused: it certainly had
/// no effect).
const ATTEMPTS: usize = 4;

/// The running clients and the history they record.
pub struct Clients {
    history: Arc<Mutex<Vec<Recorded>>>,
    next_request: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What clients share.
#[derive(Clone)]
pub struct Env {
    /// The runtimes to send to.
    pub runtimes: Runtimes,
    /// The run's clock.
    pub clock: Clock,
    /// How many keys (`k0`, `k1`, …) the operations touch.
    pub keys: u64,
}

impl Clients {
    /// Starts `n` clients, their choices drawn from `seed`.
    pub fn spawn(n: u64, seed: u64, env: Env) -> Clients {
        let history = Arc::new(Mutex::new(Vec::new()));
        let next_request = Arc::new(AtomicU64::new(1));
        let (stop, stopped) = watch::channel(false);
        let tasks = (1..=n)
            .map(|id| {
                let c = Client {
                    id,
                    rng: SmallRng::seed_from_u64(seed.wrapping_mul(7_919).wrapping_add(id)),
                    env: env.clone(),
                    history: Arc::clone(&history),
                    next_request: Arc::clone(&next_request),
                    hint: None,
                    seen: HashMap::new(),
                    written: 0,
                };
                tokio::spawn(c.run(stopped.clone()))
            })
            .collect();
        Clients {
            history,
            next_request,
            stop,
            tasks,
        }
    }

    /// A client of its own for the final reads, sharing the history.
    pub fn single(&self, id: u64, seed: u64, env: Env) -> Client {
        Client {
            id,
            rng: SmallRng::seed_from_u64(seed),
            env,
            history: Arc::clone(&self.history),
            next_request: Arc::clone(&self.next_request),
            hint: None,
            seen: HashMap::new(),
            written: 0,
        }
    }

    /// Tells the clients to stop after their current operation, and waits
    /// until they have.
    pub async fn stop(&mut self) {
        self.stop.send_replace(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// The history so far.
    pub fn history(&self) -> Vec<Recorded> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How an operation is carried out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Proposed through the log (writes, and some gets).
    Log,
    /// A get served after a read barrier, on any member.
    Barrier,
}

/// One client.
pub struct Client {
    id: u64,
    rng: SmallRng,
    env: Env,
    history: Arc<Mutex<Vec<Recorded>>>,
    next_request: Arc<AtomicU64>,
    /// The member to send to next, if known.
    hint: Option<u64>,
    /// The value this client last saw per key, for compare-and-set.
    seen: HashMap<String, Option<String>>,
    written: u64,
}

impl Client {
    async fn run(mut self, stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let think = Duration::from_millis(self.rng.random_range(1..15));
            tokio::time::sleep(think).await;
            let (op, via) = self.next_op();
            self.perform(op, via).await;
        }
    }

    fn next_op(&mut self) -> (Op, Via) {
        let key = format!("k{}", self.rng.random_range(0..self.env.keys));
        self.written += 1;
        let value = format!("{}.{}", self.id, self.written);
        match self.rng.random_range(0..100) {
            0..35 => (Op::Get { key }, Via::Barrier),
            35..45 => (Op::Get { key }, Via::Log),
            45..80 => (Op::Put { key, value }, Via::Log),
            _ => {
                let from = self.seen.get(&key).cloned().flatten();
                let op = Op::Cas {
                    key,
                    from,
                    to: value,
                };
                (op, Via::Log)
            }
        }
    }

    /// A linearizable get of `key`, for the final check.
    pub async fn read(&mut self, key: &str) -> Option<Reply> {
        let op = Op::Get {
            key: key.to_owned(),
        };
        self.perform(op, Via::Barrier).await
    }

    /// A write through the log, for the final check.
    pub async fn write(&mut self, op: Op) -> Option<Reply> {
        self.perform(op, Via::Log).await
    }

    /// Carries `op` out and records it; returns the reply, if any.
    async fn perform(&mut self, op: Op, via: Via) -> Option<Reply> {
        let call = self.env.clock.now();
        let mut requests = Vec::new();
        let mut reply = None;
        for _ in 0..ATTEMPTS {
            let Some(rt) = self.target(via) else {
                // Nobody is up: a pause before looking again.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let request = self.next_request.fetch_add(1, Ordering::Relaxed);
            requests.push(request);
            match self.send(&rt, request, &op, via).await {
                Ok(r) => {
                    reply = Some(r);
                    break;
                }
                Err(RequestError::NotLeader { leader }) => {
                    self.hint = (leader != 0).then_some(leader);
                    // A pause before sending again (longer while an
                    // election is under way): members that answer at once
                    // must not keep the clock from moving.
                    let pause = if leader == 0 { 10 } else { 1 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(RequestError::Dropped(_) | RequestError::Refused(_)) => {
                    self.hint = None;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(RequestError::Timeout | RequestError::Unknown | RequestError::Shutdown) => {
                    self.hint = None;
                    break;
                }
            }
        }
        if requests.is_empty() {
            return None;
        }
        let ret = reply.clone().map(|r| (self.env.clock.now(), r));
        if let Some((_, r)) = &ret {
            self.saw(&op, r);
        }
        let r = Recorded {
            client: self.id,
            op,
            requests,
            call,
            ret,
        };
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
        reply
    }

    /// One send of `op` to `rt`.
    async fn send(
        &self,
        rt: &Runtime<Replica>,
        request: u64,
        op: &Op,
        via: Via,
    ) -> Result<Reply, RequestError> {
        match (via, op) {
            (Via::Barrier, Op::Get { key }) => {
                rt.read_barrier().await?;
                let value = rt
                    .state()
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(key);
                Ok(Reply::Value(value))
            }
            _ => match rt.propose(kv::encode(request, op)).await? {
                Some(reply) => Ok(reply),
                // Only an entry that is no command answers nothing.
                None => Err(RequestError::Unknown),
            },
        }
    }

    /// Remembers what a reply showed of its key.
    fn saw(&mut self, op: &Op, reply: &Reply) {
        let seen = match (op, reply) {
            (Op::Get { .. }, Reply::Value(v)) => v.clone(),
            (Op::Put { value, .. }, _) => Some(value.clone()),
            (Op::Cas { to, .. }, Reply::Swapped(true)) => Some(to.clone()),
            _ => return,
        };
        self.seen.insert(op.key().to_owned(), seen);
    }

    /// Where to send: the hinted member, else the one that says it leads
    /// (or, for a read barrier, half the time any member), else any.
    fn target(&mut self, via: Via) -> Option<Runtime<Replica>> {
        let table = runtimes(&self.env.runtimes);
        if table.is_empty() {
            return None;
        }
        if let Some(rt) = self.hint.and_then(|h| table.get(&h)) {
            return Some(rt.clone());
        }
        let any_member = via == Via::Barrier && self.rng.random_bool(0.5);
        let leader = table
            .values()
            .find(|rt| rt.leader().borrow().role == Some(StateRole::Leader));
        match leader {
            Some(rt) if !any_member => Some(rt.clone()),
            _ => {
                let i = self.rng.random_range(0..table.len());
                table.values().nth(i).cloned()
            }
        }
    }
}
