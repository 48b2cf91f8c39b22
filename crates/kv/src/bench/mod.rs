//! `rudder bench`: a load generator for a running cluster.
//!
//! It asks the endpoints for the leader (`GET /v1/cluster`) and sends every
//! write straight to it, so no request pays a redirect hop; gets go to the
//! leader too, except `stale` ones, spread over the endpoints. With gets in
//! the workload, every key is first written once, so gets read real values.
//! Then `--clients` tasks, each with its own keep-alive connection (no
//! shared pool: the generator's own CPU is taken from the servers on the
//! same machine), dialled before the clock starts, each send one request,
//! wait for its answer and send the next, until the deadline; a request
//! in flight then is still waited for, at most [`REQUEST_TIMEOUT`], so the
//! run ends by itself.
//!
//! Each successful operation's latency goes into a histogram (µs), one for
//! puts and one for gets. A failed one is counted by its kind instead: the
//! API's error code, `timeout`, `connect`, or `redirect` (the leader moved
//! during the run: the redirected request is not resent, to measure the
//! leader only, but the client's later writes go to the new leader). The report gives throughput, errors and p50/p90/p99/p99.9/max per
//! operation, as a table and as one JSON line (`--json`: the line alone).

use crate::client::{self, Consistency, EndpointArgs, ErrorReply};
use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long one request may take before it counts as a `timeout` error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the cluster to have a leader before starting.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// The highest latency the histograms tell apart; a request is cut off at
/// [`REQUEST_TIMEOUT`] anyway.
const MAX_LATENCY_US: u64 = 60_000_000;
/// The most concurrent clients.
const MAX_CLIENTS: u16 = 1024;
/// The longest run, in seconds.
const MAX_DURATION_S: u64 = 3600;
/// The largest value: the server's default body limit.
const MAX_VALUE_SIZE: u32 = 1 << 20;
/// The largest key space (each key is written once before gets).
const MAX_KEYS: u64 = 1_000_000;

/// What the clients send.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Puts only.
    Put,
    /// Gets only (after the preload).
    Get,
    /// Gets and puts, `--read-ratio` of them gets.
    Mix,
}

/// `rudder bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The servers to talk to.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// Concurrent clients, each with one request in flight at a time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_CLIENTS)))]
    pub clients: u16,
    /// Seconds to measure for (the preload and the clients' dialling come
    /// first, uncounted).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_S))]
    pub duration: u64,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Workload::Mix)]
    pub workload: Workload,
    /// With `--workload mix`, the share of operations that are gets, 0 to 1.
    #[arg(long, default_value_t = 0.5, value_parser = parse_ratio)]
    pub read_ratio: f64,
    /// Bytes per value written.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_VALUE_SIZE)))]
    pub value_size: u32,
    /// How many keys the operations pick from, uniformly.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_KEYS))]
    pub keys: u64,
    /// The consistency of gets.
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Parses a share from 0 to 1.
fn parse_ratio(s: &str) -> anyhow::Result<f64> {
    let r: f64 = s
        .trim()
        .parse()
        .with_context(|| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&r) {
        bail!("{s} is not between 0 and 1");
    }
    Ok(r)
}

impl BenchArgs {
    /// Refuses what the command line's parsers would have refused, for
    /// arguments built in code.
    fn check(&self) -> anyhow::Result<()> {
        if self.endpoints.endpoints.is_empty() {
            bail!("no endpoints");
        }
        if !(1..=MAX_CLIENTS).contains(&self.clients) {
            bail!("--clients must be 1 to {MAX_CLIENTS}");
        }
        if !(1..=MAX_DURATION_S).contains(&self.duration) {
            bail!("--duration must be 1 to {MAX_DURATION_S} seconds");
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            bail!("--read-ratio must be between 0 and 1");
        }
        if self.value_size > MAX_VALUE_SIZE {
            bail!("--value-size must be at most {MAX_VALUE_SIZE}");
        }
        if !(1..=MAX_KEYS).contains(&self.keys) {
            bail!("--keys must be 1 to {MAX_KEYS}");
        }
        Ok(())
    }

    /// The share of operations that are gets.
    fn get_share(&self) -> f64 {
        match self.workload {
            Workload::Put => 0.0,
            Workload::Get => 1.0,
            Workload::Mix => self.read_ratio,
        }
    }
}

/// Runs `rudder bench` and prints its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    if !args.json {
        print!("{}", report.table());
    }
    println!(
        "{}",
        serde_json::to_string(&report).context("writing the JSON report")?
    );
    Ok(())
}

mod conn;

use conn::Conn;

/// Where the operations go, and how.
struct Target {
    /// For the preload (not measured).
    http: reqwest::Client,
    /// Where puts go (and gets, unless stale).
    leader: Url,
    /// Where gets go: client `i` uses `readers[i % len]`.
    readers: Vec<Url>,
    consistency: Consistency,
    /// The value every put writes.
    value: Bytes,
}

/// What every key's name starts with: the rest is its number, so a key's
/// name needs no escaping in a path.
const KEY_PREFIX: &str = "bench-";

/// The key numbered `n`.
fn key_name(n: u64) -> String {
    format!("{KEY_PREFIX}{n}")
}

/// `url`'s `host:port`.
fn authority(url: &Url) -> anyhow::Result<String> {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => Ok(format!("{host}:{port}")),
        _ => bail!("{url} has no host and port"),
    }
}

impl Target {
    /// The request target of a put of key `n`. Formatted directly, not
    /// through a `Url`: this runs for every request, and the generator's
    /// CPU is taken from the servers it measures.
    fn put_path(n: u64) -> String {
        format!("/v1/kv/{KEY_PREFIX}{n}")
    }

    fn reader(&self, client: usize) -> &Url {
        &self.readers[client % self.readers.len()]
    }

    /// The request target of a get of key `n` (as [`Target::put_path`]).
    fn get_path(&self, n: u64) -> String {
        format!(
            "/v1/kv/{KEY_PREFIX}{n}?consistency={}",
            self.consistency.as_str()
        )
    }

    /// Writes key `n` through the shared client (the preload); an error is
    /// its kind.
    async fn preload_put(&self, n: u64) -> Result<(), String> {
        let url = client::api_url(&self.leader, &["v1", "kv", &key_name(n)], &[]);
        let response = self
            .http
            .put(url)
            .body(self.value.clone())
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| transport_error(&e))?;
        judge(status.as_u16(), &body)
    }
}

/// One client's connections: to the leader for puts, and to its reader for
/// gets when that is another server.
struct Client {
    writer: Conn,
    reader: Option<Conn>,
}

impl Client {
    fn new(target: &Target, i: usize) -> anyhow::Result<Client> {
        let reader = target.reader(i);
        Ok(Client {
            writer: Conn::new(authority(&target.leader)?, REQUEST_TIMEOUT),
            reader: if reader == &target.leader {
                None
            } else {
                Some(Conn::new(authority(reader)?, REQUEST_TIMEOUT))
            },
        })
    }

    /// Dials this client's connections before the run, all clients at
    /// once.
    async fn dial(&mut self) {
        match &mut self.reader {
            Some(reader) => drop(tokio::join!(self.writer.dial(), reader.dial())),
            None => self.writer.dial().await,
        }
    }

    /// Writes key `n`. A redirect counts as an error (the run measures
    /// leaders, not hops), but this client's later requests go where it
    /// pointed: a leader that changes mid-run is followed.
    async fn put(&mut self, target: &Target, n: u64) -> Result<(), String> {
        let answer = self
            .writer
            .send(
                hyper::Method::PUT,
                &Target::put_path(n),
                target.value.clone(),
            )
            .await?;
        let new_leader = answer
            .location
            .as_deref()
            .and_then(|l| Url::parse(l).ok())
            .and_then(|url| authority(&url).ok());
        if let Some(to) = new_leader {
            self.writer = Conn::new(to, REQUEST_TIMEOUT);
        }
        judge(answer.status.as_u16(), &answer.body)
    }

    async fn get(&mut self, target: &Target, n: u64) -> Result<(), String> {
        let conn = self.reader.as_mut().unwrap_or(&mut self.writer);
        let answer = conn
            .send(hyper::Method::GET, &target.get_path(n), Bytes::new())
            .await?;
        judge(answer.status.as_u16(), &answer.body)
    }
}

/// What an answer means: success, or the error's kind (`redirect`, or the
/// API's error code).
fn judge(status: u16, body: &[u8]) -> Result<(), String> {
    match StatusCode::from_u16(status) {
        Ok(s) if s.is_success() => Ok(()),
        Ok(StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT) => {
            Err("redirect".into())
        }
        Ok(s) => Err(ErrorReply::parse(s, body).code),
        Err(_) => Err(format!("status {status}")),
    }
}

/// The kind of a request that got no complete answer.
fn transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    kind.into()
}

/// One operation type's results.
#[derive(Debug, Clone)]
struct OpStats {
    /// Latencies of the successful operations, in µs.
    latency: Histogram<u64>,
    /// Failed operations by kind.
    errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn new() -> anyhow::Result<OpStats> {
        Ok(OpStats {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .context("creating a latency histogram")?,
            errors: BTreeMap::new(),
        })
    }

    fn record(&mut self, outcome: Result<(), String>, took: Duration) {
        match outcome {
            Ok(()) => self
                .latency
                .saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX)),
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }
}

/// The results of all clients, shared: a lock is cheap beside a request.
#[derive(Debug)]
struct Stats {
    put: OpStats,
    get: OpStats,
}

fn lock(stats: &Mutex<Stats>) -> MutexGuard<'_, Stats> {
    // Nothing panics while holding the lock; if it did, the counts are still whole.
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

/// Measures a cluster as `args` ask, preload included.
pub async fn measure(args: &BenchArgs) -> anyhow::Result<Report> {
    args.check()?;
    let endpoints = &args.endpoints.endpoints;
    let http = client::http_client(REQUEST_TIMEOUT, usize::from(args.clients))?;
    let (leader_id, leader) = find_leader(&http, endpoints).await?;
    let readers = match args.consistency {
        Consistency::Stale => endpoints.clone(),
        Consistency::Linearizable | Consistency::Lease => vec![leader.clone()],
    };
    let value: Bytes = (0..args.value_size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let target = Arc::new(Target {
        http,
        leader: leader.clone(),
        readers,
        consistency: args.consistency,
        value,
    });
    if args.get_share() > 0.0 {
        if !args.json {
            eprintln!(
                "preloading {} keys at {}",
                args.keys,
                client::endpoint_name(&leader)
            );
        }
        preload(&target, args.keys, usize::from(args.clients)).await?;
    }

    let stats = Arc::new(Mutex::new(Stats {
        put: OpStats::new()?,
        get: OpStats::new()?,
    }));
    // Every connection is open before the clock starts: the latencies are
    // of requests on open keep-alive connections, not of a burst of
    // handshakes at the start (a client whose dial failed dials again at
    // its first request, which then counts it).
    let mut dials = tokio::task::JoinSet::new();
    for i in 0..usize::from(args.clients) {
        let mut client = Client::new(&target, i)?;
        dials.spawn(async move {
            client.dial().await;
            (i, client)
        });
    }
    let mut dialled = Vec::with_capacity(dials.len());
    while let Some(done) = dials.join_next().await {
        dialled.push(done.context("a client failed to dial")?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut clients = tokio::task::JoinSet::new();
    for (i, mut client) in dialled {
        let (target, stats) = (target.clone(), stats.clone());
        let (keys, get_share) = (args.keys, args.get_share());
        clients.spawn(async move {
            let mut rng = SmallRng::seed_from_u64(i as u64);
            while Instant::now() < deadline {
                let key = rng.random_range(0..keys);
                let is_get = rng.random::<f64>() < get_share;
                let start = Instant::now();
                let outcome = if is_get {
                    client.get(&target, key).await
                } else {
                    client.put(&target, key).await
                };
                let took = start.elapsed();
                let mut stats = lock(&stats);
                let op = if is_get {
                    &mut stats.get
                } else {
                    &mut stats.put
                };
                op.record(outcome, took);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.context("a client task failed")?;
    }
    let elapsed = started.elapsed();
    let stats = lock(&stats);
    Ok(Report::new(args, leader_id, &leader, elapsed, &stats))
}

/// The leader's ID and HTTP endpoint, waiting up to [`LEADER_WAIT`] for
/// one to be elected (or for a starting cluster to answer).
async fn find_leader(http: &reqwest::Client, endpoints: &[Url]) -> anyhow::Result<(u64, Url)> {
    let give_up = Instant::now() + LEADER_WAIT;
    loop {
        let outcome = client::cluster_view(http, endpoints).await;
        if let Ok(view) = &outcome {
            if let Some(url) = view.leader_endpoint() {
                return Ok((view.leader, url?));
            }
        }
        if Instant::now() >= give_up {
            return match outcome {
                Ok(_) => bail!(
                    "the cluster has had no leader for {} s",
                    LEADER_WAIT.as_secs()
                ),
                Err(e) => Err(e.context("finding the leader")),
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes every key once, `clients` at a time; any failure stops the run.
async fn preload(target: &Arc<Target>, keys: u64, clients: usize) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for first in 0..clients as u64 {
        let target = target.clone();
        tasks.spawn(async move {
            for n in (first..keys).step_by(clients) {
                target
                    .preload_put(n)
                    .await
                    .map_err(|kind| anyhow::anyhow!("preloading {}: {kind}", key_name(n)))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a preload task failed")??;
    }
    Ok(())
}

/// What a run measured, with what it was asked: printed as a table and as
/// JSON.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Report {
    /// The run's parameters.
    pub params: Params,
    /// The leader's ID.
    pub leader: u64,
    /// The leader's endpoint.
    pub leader_endpoint: String,
    /// From the first request to the last answer, in seconds.
    pub elapsed_s: f64,
    /// Successful operations of both kinds.
    pub ops: u64,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// Failed operations of both kinds.
    pub errors: u64,
    /// Puts.
    pub put: OpReport,
    /// Gets.
    pub get: OpReport,
}

/// What a run was asked to do.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Params {
    /// The endpoints given.
    pub endpoints: Vec<String>,
    /// Concurrent clients.
    pub clients: u16,
    /// Seconds asked for.
    pub duration_s: u64,
    /// The workload.
    pub workload: Workload,
    /// The share of operations that are gets (0 for `put`, 1 for `get`).
    pub read_ratio: f64,
    /// Bytes per value.
    pub value_size: u32,
    /// The key space.
    pub keys: u64,
    /// The consistency of gets.
    pub consistency: Consistency,
}

/// One operation type's results.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct OpReport {
    /// Successful operations.
    pub ops: u64,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations by kind (`timeout`, `redirect`, an API code, …).
    pub error_kinds: BTreeMap<String, u64>,
    /// Latency of the successful operations; `null` if there were none.
    pub latency_us: Option<Latency>,
}

/// Latency percentiles, in µs.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// The slowest.
    pub max: u64,
}

/// Rounds a rate to one decimal, which is all it means.
fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (count as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl OpReport {
    fn new(stats: &OpStats, elapsed: Duration) -> OpReport {
        let h = &stats.latency;
        let ops = h.len();
        OpReport {
            ops,
            ops_per_s: rate(ops, elapsed),
            errors: stats.errors.values().sum(),
            error_kinds: stats.errors.clone(),
            latency_us: (ops > 0).then(|| Latency {
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p99_9: h.value_at_quantile(0.999),
                max: h.max(),
            }),
        }
    }
}

impl Report {
    fn new(
        args: &BenchArgs,
        leader: u64,
        leader_endpoint: &Url,
        elapsed: Duration,
        stats: &Stats,
    ) -> Report {
        let (put, get) = (
            OpReport::new(&stats.put, elapsed),
            OpReport::new(&stats.get, elapsed),
        );
        let ops = put.ops + get.ops;
        Report {
            params: Params {
                endpoints: args
                    .endpoints
                    .endpoints
                    .iter()
                    .map(|e| client::endpoint_name(e).to_owned())
                    .collect(),
                clients: args.clients,
                duration_s: args.duration,
                workload: args.workload,
                read_ratio: args.get_share(),
                value_size: args.value_size,
                keys: args.keys,
                consistency: args.consistency,
            },
            leader,
            leader_endpoint: client::endpoint_name(leader_endpoint).to_owned(),
            elapsed_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            ops,
            ops_per_s: rate(ops, elapsed),
            errors: put.errors + get.errors,
            put,
            get,
        }
    }

    /// The report for people: the parameters, then one row per operation.
    pub fn table(&self) -> String {
        let p = &self.params;
        let gets = match p.workload {
            Workload::Put => String::new(),
            _ => format!(
                ", {:.0}% gets ({})",
                p.read_ratio * 100.0,
                p.consistency.as_str()
            ),
        };
        let mut out = format!(
            "{} workload{gets}: {} clients for {} s, {}-byte values over {} keys\n\
             leader: member {} at {}; measured {:.2} s\n\n",
            p.workload.as_str(),
            p.clients,
            p.duration_s,
            p.value_size,
            p.keys,
            self.leader,
            self.leader_endpoint,
            self.elapsed_s,
        );
        out.push_str(&format!(
            "{:<4} {:>9} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "op", "ops", "ops/s", "errors", "p50", "p90", "p99", "p99.9", "max"
        ));
        for (name, op) in [("put", &self.put), ("get", &self.get)] {
            if op.ops == 0 && op.errors == 0 {
                continue;
            }
            out.push_str(&format!(
                "{name:<4} {:>9} {:>10.1} {:>7}",
                op.ops, op.ops_per_s, op.errors
            ));
            if let Some(l) = op.latency_us {
                for us in [l.p50, l.p90, l.p99, l.p99_9, l.max] {
                    out.push_str(&format!(" {:>9}", micros(us)));
                }
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "{:<4} {:>9} {:>10.1} {:>7}\n",
            "all", self.ops, self.ops_per_s, self.errors
        ));
        for (name, op) in [("put", &self.put), ("get", &self.get)] {
            if !op.error_kinds.is_empty() {
                let kinds: Vec<String> = op
                    .error_kinds
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                out.push_str(&format!("{name} errors: {}\n", kinds.join(", ")));
            }
        }
        if self.put.error_kinds.contains_key("redirect")
            || self.get.error_kinds.contains_key("redirect")
        {
            out.push_str(
                "(redirect: the leader changed during the run; those requests were not resent, later ones went to the new leader)\n",
            );
        }
        out.push('\n');
        out
    }
}

impl Workload {
    /// Its name on the command line.
    fn as_str(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Mix => "mix",
        }
    }
}

/// A latency for people: µs below a millisecond, then ms, then s.
fn micros(us: u64) -> String {
    match us {
        0..=999 => format!("{us}µs"),
        1_000..=999_999 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::http::StatusCode as AxStatus;
    use axum::response::IntoResponse;
    use clap::Parser;
    use std::collections::HashMap;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn request_targets_are_what_the_api_urls_give() {
        let base = client::parse_endpoint("127.0.0.1:2379").unwrap();
        let of = |url: Url| match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        for n in [0, 7, MAX_KEYS - 1] {
            let key = key_name(n);
            assert_eq!(
                Target::put_path(n),
                of(client::api_url(&base, &["v1", "kv", &key], &[]))
            );
            for consistency in [
                Consistency::Linearizable,
                Consistency::Lease,
                Consistency::Stale,
            ] {
                let target = Target {
                    http: client::http_client(REQUEST_TIMEOUT, 1).unwrap(),
                    leader: base.clone(),
                    readers: vec![base.clone()],
                    consistency,
                    value: Bytes::new(),
                };
                let query = [("consistency", consistency.as_str())];
                assert_eq!(
                    target.get_path(n),
                    of(client::api_url(&base, &["v1", "kv", &key], &query))
                );
            }
        }
    }

    #[test]
    fn arguments_have_defaults_and_bounds() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            (a.clients, a.duration, a.workload, a.value_size, a.keys),
            (16, 10, Workload::Mix, 128, 1000)
        );
        assert_eq!(
            (a.read_ratio, a.consistency, a.json),
            (0.5, Consistency::Linearizable, false)
        );
        assert_eq!(a.endpoints.endpoints.len(), 3);
        a.check().unwrap();
        let a = parse(&[
            "--workload",
            "get",
            "--consistency",
            "stale",
            "--read-ratio",
            "0.9",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            (a.workload, a.consistency, a.get_share(), a.json),
            (Workload::Get, Consistency::Stale, 1.0, true)
        );
        assert_eq!(parse(&["--workload", "put"]).unwrap().get_share(), 0.0);
        assert_eq!(parse(&["--read-ratio", "0.25"]).unwrap().get_share(), 0.25);
        for bad in [
            &["--clients", "0"][..],
            &["--clients", "1025"],
            &["--duration", "0"],
            &["--duration", "3601"],
            &["--read-ratio", "1.5"],
            &["--read-ratio", "NaN"],
            &["--value-size", "1048577"],
            &["--keys", "0"],
            &["--workload", "scan"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let mut a = parse(&[]).unwrap();
        a.keys = 0;
        assert!(a.check().is_err());
    }

    fn sample_stats() -> Stats {
        let mut stats = Stats {
            put: OpStats::new().unwrap(),
            get: OpStats::new().unwrap(),
        };
        for us in 1..=1000 {
            stats.put.record(Ok(()), Duration::from_micros(us));
        }
        stats
            .put
            .record(Err("timeout".into()), Duration::from_secs(5));
        stats
            .put
            .record(Err("redirect".into()), Duration::from_micros(10));
        stats
            .put
            .record(Err("timeout".into()), Duration::from_secs(5));
        stats
    }

    #[test]
    fn the_json_report_holds_parameters_and_numbers() {
        let args = parse(&[
            "--workload",
            "put",
            "--endpoints",
            "h:1,h:2",
            "--clients",
            "4",
        ])
        .unwrap();
        let leader = client::parse_endpoint("h:2").unwrap();
        let report = Report::new(&args, 2, &leader, Duration::from_secs(2), &sample_stats());
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(
            json["params"],
            serde_json::json!({
                "endpoints": ["http://h:1", "http://h:2"], "clients": 4, "duration_s": 10,
                "workload": "put", "read_ratio": 0.0, "value_size": 128, "keys": 1000,
                "consistency": "linearizable",
            })
        );
        assert_eq!(
            (json["leader"].as_u64(), json["leader_endpoint"].as_str()),
            (Some(2), Some("http://h:2"))
        );
        assert_eq!(
            (json["elapsed_s"].as_f64(), json["ops"].as_u64()),
            (Some(2.0), Some(1000))
        );
        assert_eq!(
            (json["ops_per_s"].as_f64(), json["errors"].as_u64()),
            (Some(500.0), Some(3))
        );
        let put = &json["put"];
        assert_eq!(
            put["error_kinds"],
            serde_json::json!({ "redirect": 1, "timeout": 2 })
        );
        let latency = &put["latency_us"];
        assert_eq!(latency["p50"], 500);
        assert_eq!(latency["p90"], 900);
        assert_eq!(latency["p99"], 990);
        assert_eq!(latency["p99_9"], 999);
        assert_eq!(latency["max"], 1000);
        assert_eq!(
            json["get"],
            serde_json::json!({ "ops": 0, "ops_per_s": 0.0, "errors": 0, "error_kinds": {}, "latency_us": null })
        );
        let table = report.table();
        assert!(
            table.contains("put workload: 4 clients for 10 s, 128-byte values over 1000 keys"),
            "{table}"
        );
        assert!(
            table.contains("put errors: redirect 1, timeout 2"),
            "{table}"
        );
        assert!(!table.contains("\nget "), "{table}");
    }

    #[test]
    fn latencies_read_well() {
        assert_eq!(
            [micros(850), micros(1_234), micros(2_500_000)],
            ["850µs", "1.23ms", "2.50s"]
        );
    }

    type Map = Arc<Mutex<HashMap<String, String>>>;

    /// A one-member cluster that keeps values in a map.
    async fn fake_member() -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cluster = serde_json::json!({
            "id": 1, "leader": 1, "role": "leader", "term": 1, "commit": 0, "applied": 0,
            "members": [{ "id": 1, "raft_addr": "127.0.0.1:1", "http_addr": addr, "role": "voter" }],
            "progress": [],
        });
        let router = axum::Router::new()
            .route(
                "/v1/cluster",
                axum::routing::get(move || async move { axum::Json(cluster) }),
            )
            .route(
                "/v1/kv/{*key}",
                axum::routing::put(
                    |State(map): State<Map>, Path(key): Path<String>, value: String| async move {
                        let prev = map.lock().unwrap().insert(key.clone(), value);
                        axum::Json(
                            serde_json::json!({ "key": key, "prev_value": prev, "index": 1 }),
                        )
                    },
                )
                .get(
                    |State(map): State<Map>, Path(key): Path<String>| async move {
                        match map.lock().unwrap().get(&key) {
                            Some(v) => axum::Json(
                                serde_json::json!({ "key": key, "value": v, "index": 1 }),
                            )
                            .into_response(),
                            None => (
                                AxStatus::NOT_FOUND,
                                r#"{"error":"not_found","message":"no key"}"#,
                            )
                                .into_response(),
                        }
                    },
                ),
            )
            .with_state(Map::default());
        tokio::spawn(async move { axum::serve(listener, router).await });
        client::parse_endpoint(&addr).unwrap()
    }

    /// A member that redirects every write to `to`, as a deposed leader
    /// does.
    async fn redirecting_member(to: Url) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let router = axum::Router::new().route(
            "/v1/kv/{*key}",
            axum::routing::put(move |Path(key): Path<String>| async move {
                let location = client::api_url(&to, &["v1", "kv", &key], &[]).to_string();
                (
                    AxStatus::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, location)],
                    r#"{"error":"not_leader","message":"member 2 leads","leader":2}"#,
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        client::parse_endpoint(&addr).unwrap()
    }

    #[tokio::test]
    async fn a_client_follows_a_leader_that_moved() {
        let new_leader = fake_member().await;
        let old_leader = redirecting_member(new_leader.clone()).await;
        let target = Target {
            http: client::http_client(REQUEST_TIMEOUT, 1).unwrap(),
            leader: old_leader.clone(),
            readers: vec![old_leader],
            consistency: Consistency::Linearizable,
            value: Bytes::from_static(b"v"),
        };
        let mut c = Client::new(&target, 0).unwrap();
        assert_eq!(c.put(&target, 1).await, Err("redirect".into()));
        assert_eq!(
            c.put(&target, 2).await,
            Ok(()),
            "the second write goes to the new leader"
        );
        let got = c.get(&target, 2).await;
        assert_eq!(
            got,
            Ok(()),
            "reads share the writer's connection, so follow it too"
        );
    }

    #[tokio::test]
    async fn a_run_preloads_measures_and_stops_by_itself() {
        let member = fake_member().await;
        let args = parse(&[
            "--endpoints",
            member.as_str(),
            "--clients",
            "4",
            "--duration",
            "1",
            "--keys",
            "50",
        ])
        .unwrap();
        let started = Instant::now();
        let report = measure(&args).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(
            (report.leader, report.leader_endpoint.as_str()),
            (1, client::endpoint_name(&member))
        );
        assert_eq!(report.errors, 0, "{report:?}");
        assert!(report.put.ops > 0 && report.get.ops > 0, "{report:?}");
        assert!(report.elapsed_s >= 1.0, "{report:?}");
    }
}
