//! Clients that read, write and compare-and-set a few registers and add
//! unique keys to a set, over HTTP, recording a history.
//!
//! Every operation gets its call and return time (microseconds since the
//! run began, from one monotonic clock). What a reply means:
//! - a success or a failed comparison is a known outcome;
//! - a refusal made before anything was proposed (a redirect, no leader
//!   known, a dropped proposal, a connection never made) certainly did not
//!   apply: the operation is left out, since it had no effect;
//! - anything else on a write (a timeout, a member stopping, a cut
//!   connection) is an unknown outcome (`ret: None`): it may take effect
//!   at any time after its call, or never;
//! - a read that fails is left out: it changed nothing.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rudder_sim::linearizability::{KvInput, KvOutput, Operation};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a client waits for one reply before counting it unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// How many redirects a write follows before giving up (a leader changing
/// under it).
const MAX_REDIRECTS: usize = 3;

/// The register keys the clients share.
pub fn register_keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("reg/{i}")).collect()
}

/// Whether `key` is one the set workload adds (written once, never
/// overwritten, so every acknowledged one must stay).
pub fn is_set_key(key: &str) -> bool {
    key.starts_with("set/")
}

/// One operation of the history and where it went.
#[derive(Clone, Debug)]
pub struct Record {
    /// The operation, as the checker takes it.
    pub op: Operation<KvInput, KvOutput>,
    /// The member first asked.
    pub member: u64,
    /// What happened, for the history file: the HTTP status or error.
    pub note: String,
}

/// The members' HTTP addresses, shared with the nemesis (which replaces
/// members).
pub type Endpoints = Arc<Mutex<BTreeMap<u64, SocketAddr>>>;

/// The history all clients append to, and the clock they share.
#[derive(Clone, Debug)]
pub struct History {
    records: Arc<Mutex<Vec<Record>>>,
    /// When the run began: times are microseconds since.
    pub start: Instant,
}

impl History {
    /// An empty history starting now.
    pub fn new() -> History {
        History {
            records: Arc::default(),
            start: Instant::now(),
        }
    }

    /// Microseconds since the run began.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record.
    pub fn push(&self, record: Record) {
        self.lock().push(record);
    }

    /// A copy of every record so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().clone()
    }
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

/// What a request came to.
enum Outcome {
    /// A known result.
    Known(KvOutput, String),
    /// Certainly no effect: left out of the history.
    NoEffect,
    /// It may or may not have taken effect.
    Unknown(String),
}

/// A client: issues operations one at a time until `stop` turns true.
pub struct Client {
    id: u64,
    http: reqwest::Client,
    endpoints: Endpoints,
    history: History,
    rng: SmallRng,
    registers: Vec<String>,
    /// The last value this client saw in each register, to compare with.
    seen: HashMap<String, String>,
    written: u64,
    /// Whether half the reads use `consistency=lease` (the leader's own
    /// state under its lease) instead of a ReadIndex round.
    lease_reads: bool,
}

/// How a read asks to be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadKind {
    /// `consistency=linearizable`: a ReadIndex round, on any member.
    Linearizable,
    /// `consistency=lease`: the leader's lease (followers redirect).
    Lease,
}

impl Client {
    /// Client `id`, whose choices follow from `seed`.
    pub fn new(
        id: u64,
        seed: u64,
        endpoints: Endpoints,
        history: History,
        registers: Vec<String>,
    ) -> Client {
        Client {
            id,
            http: http_client(),
            endpoints,
            history,
            rng: SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            registers,
            seen: HashMap::new(),
            written: 0,
            lease_reads: false,
        }
    }

    /// Sends half of this client's reads as lease reads.
    pub fn with_lease_reads(mut self, on: bool) -> Client {
        self.lease_reads = on;
        self
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow_and_update() {
            self.one().await;
        }
    }

    /// A fresh value no other write uses.
    fn unique(&mut self) -> String {
        self.written += 1;
        format!("c{}-{}", self.id, self.written)
    }

    /// Picks an operation and a member, runs it and records it.
    async fn one(&mut self) {
        let member = {
            let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<_> = endpoints.iter().collect();
            if ids.is_empty() {
                return;
            }
            let (id, addr) = ids[self.rng.random_range(0..ids.len())];
            (*id, *addr)
        };
        let key = self.registers[self.rng.random_range(0..self.registers.len())].clone();
        let input = match self.rng.random_range(0..100) {
            0..40 => KvInput::Get { key },
            40..65 => KvInput::Put {
                key,
                value: self.unique(),
            },
            65..80 => match self.seen.get(&key).cloned() {
                Some(from) => KvInput::Cas {
                    key,
                    from: Some(from),
                    to: self.unique(),
                },
                None => KvInput::Get { key },
            },
            _ => {
                let n = self.unique();
                KvInput::Put {
                    key: format!("set/{n}"),
                    value: n,
                }
            }
        };
        let kind = if self.lease_reads && self.rng.random_bool(0.5) {
            ReadKind::Lease
        } else {
            ReadKind::Linearizable
        };
        let call = self.history.now();
        let outcome = self.send(member.1, &input, kind).await;
        let ret = self.history.now();
        let (ret, output, note) = match outcome {
            Outcome::NoEffect => return,
            Outcome::Known(output, note) => (Some(ret), Some(output), note),
            Outcome::Unknown(note) => (None, None, note),
        };
        match (&input, &output) {
            (KvInput::Get { key }, Some(KvOutput::Value(Some(v))))
            | (KvInput::Put { key, value: v }, Some(KvOutput::Done))
            | (KvInput::Cas { key, to: v, .. }, Some(KvOutput::Swapped(true))) => {
                self.seen.insert(key.clone(), v.clone());
            }
            _ => {}
        }
        self.history.push(Record {
            op: Operation {
                client: self.id,
                call,
                ret,
                input,
                output,
            },
            member: member.0,
            note,
        });
    }

    async fn send(&self, addr: SocketAddr, input: &KvInput, kind: ReadKind) -> Outcome {
        match input {
            KvInput::Get { key } => read(&self.http, addr, key, kind).await,
            KvInput::Put { key, value } => write(&self.http, addr, key, value, None).await,
            KvInput::Cas { key, from, to } => {
                write(&self.http, addr, key, to, from.as_deref()).await
            }
            KvInput::Append { .. } => unreachable!("the clients never append"),
        }
    }
}

/// An HTTP client for the workload: short timeouts, redirects by hand.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client with a timeout and no redirects always builds")
}

/// A linearizable read of `key` on the member at `addr`.
pub async fn read_key(
    http: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
) -> Option<Option<String>> {
    match read(http, addr, key, ReadKind::Linearizable).await {
        Outcome::Known(KvOutput::Value(v), _) => Some(v),
        _ => None,
    }
}

/// A read of `key` at `addr`; a lease read on a follower follows its
/// redirect to the leader.
async fn read(http: &reqwest::Client, addr: SocketAddr, key: &str, kind: ReadKind) -> Outcome {
    let consistency = match kind {
        ReadKind::Linearizable => "linearizable",
        ReadKind::Lease => "lease",
    };
    let mut url = format!("http://{addr}/v1/kv/{key}?consistency={consistency}");
    for _ in 0..=MAX_REDIRECTS {
        let Ok(r) = http.get(&url).send().await else {
            return Outcome::NoEffect;
        };
        let (status, location, body) = reply(r).await;
        let note = format!("{status} {consistency}");
        match (status, body["error"].as_str(), body["value"].as_str()) {
            (200, _, Some(v)) => return Outcome::Known(KvOutput::Value(Some(v.to_owned())), note),
            (404, Some("not_found"), _) => return Outcome::Known(KvOutput::Value(None), note),
            (307, _, _) => match location {
                Some(l) => url = l,
                None => return Outcome::NoEffect,
            },
            _ => return Outcome::NoEffect,
        }
    }
    Outcome::NoEffect
}

/// A put of `value` at `key` (a compare-and-set if `prev` is given),
/// following redirects to the leader.
async fn write(
    http: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
    value: &str,
    prev: Option<&str>,
) -> Outcome {
    let mut url = format!("http://{addr}/v1/kv/{key}");
    if let Some(p) = prev {
        // The values are letters, digits and '-': nothing to escape.
        url.push_str(&format!("?prev_value={p}"));
    }
    for _ in 0..=MAX_REDIRECTS {
        let r = match http.put(&url).body(value.to_owned()).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Outcome::NoEffect,
            Err(e) => return Outcome::Unknown(short(&e)),
        };
        let (status, location, body) = reply(r).await;
        let error = body["error"].as_str().unwrap_or("");
        let note = format!("{status} {error}");
        match (status, error) {
            (200, _) if prev.is_some() => return Outcome::Known(KvOutput::Swapped(true), note),
            (200, _) => return Outcome::Known(KvOutput::Done, note),
            (412, "compare_failed") if prev.is_some() => {
                return Outcome::Known(KvOutput::Swapped(false), note)
            }
            (307, _) => match location {
                Some(l) => url = l,
                None => return Outcome::NoEffect,
            },
            (503, "no_leader" | "dropped") | (409, "dropped") => return Outcome::NoEffect,
            _ => return Outcome::Unknown(note),
        }
    }
    Outcome::NoEffect
}

/// A reply's status, `Location` header and JSON body (`Null` if it has
/// none).
async fn reply(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let body = r.json().await.unwrap_or(Value::Null);
    (status, location, body)
}

/// An error's kind in a few words, for the history file.
fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_request() {
        "request cut".into()
    } else {
        "transport error".into()
    }
}
