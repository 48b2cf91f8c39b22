//! One run: start the cluster, load it while the nemesis works, heal,
//! converge, read everything back, check, and write what happened.

use crate::check::{self, Finding};
use crate::cluster::Cluster;
use crate::error::HarnessError;
use crate::nemesis::Nemesis;
use crate::workload::{self, Client, Endpoints, History, Record};
use rudder_sim::linearizability::{KvInput, KvOutput, Operation};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long the healed cluster may take to converge.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// How long a final read is retried.
const FINAL_READ_RETRIES_FOR: Duration = Duration::from_secs(10);

/// The client IDs of the final reads start here (one per member), apart
/// from the workload's clients.
const FINAL_READER: u64 = 1_000;

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The `rudder` binary.
    pub binary: PathBuf,
    /// The nemesis's and the clients' seed.
    pub seed: u64,
    /// How long the nemesis works (the run takes longer: start, heal,
    /// convergence and checks).
    pub duration: Duration,
    /// Founding members: 3 or 5.
    pub members: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Register keys the clients share.
    pub registers: usize,
    /// Milliseconds per Raft tick (short, so elections come quickly).
    pub tick_ms: u64,
    /// Whether half the reads are lease reads (`consistency=lease`),
    /// whose safety rests on the members' clocks running at about the
    /// same rate, which pauses break. Off in the bounded run.
    pub lease_reads: bool,
    /// Where the run keeps its members' data and logs, and writes its
    /// history and summary.
    pub dir: PathBuf,
}

/// What a run found.
#[derive(Debug)]
pub struct RunReport {
    /// What went wrong; empty for a passing run.
    pub findings: Vec<Finding>,
    /// A readable account: the seed, the faults, the history's size, the
    /// findings.
    pub summary: String,
    /// Where the history, the summary and the members' logs are.
    pub dir: PathBuf,
    /// Whether the nemesis carried out every kind of fault at least once.
    pub tried_every_fault: bool,
}

impl RunReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Runs `config`. Harness failures (a process that would not start) are
/// errors; anything the cluster got wrong is a finding in the report.
pub async fn run(config: RunConfig) -> Result<RunReport, HarnessError> {
    std::fs::create_dir_all(&config.dir).map_err(|source| HarnessError::Io {
        what: format!("creating {}", config.dir.display()),
        source,
    })?;
    let mut cluster =
        Cluster::start(&config.binary, &config.dir, config.members, config.tick_ms).await?;
    let history = History::new();
    let endpoints: Endpoints = Arc::new(Mutex::new(cluster.endpoints()));
    let registers = workload::register_keys(config.registers);
    let (stop, stopped) = watch::channel(false);
    let clients: Vec<_> = (1..=config.clients)
        .map(|id| {
            let c = Client::new(
                id,
                config.seed,
                endpoints.clone(),
                history.clone(),
                registers.clone(),
            )
            .with_lease_reads(config.lease_reads);
            tokio::spawn(c.run(stopped.clone()))
        })
        .collect();
    let mut nemesis = Nemesis::new(config.seed, history.start);
    nemesis
        .run(&mut cluster, &endpoints, Instant::now() + config.duration)
        .await;
    let _ = stop.send(true);
    let mut findings = Vec::new();
    for c in clients {
        if let Err(e) = c.await {
            // Its history is cut short: the run proves less than it says.
            findings.push(Finding::NoProgress(format!("a client task failed: {e}")));
        }
    }
    let mut records = history.records();
    let converged = match heal_and_converge(&mut cluster).await {
        Ok(index) => Some(index),
        Err(e) => {
            findings.push(Finding::NoProgress(e.to_string()));
            None
        }
    };
    let mut dumps = BTreeMap::new();
    if converged.is_some() {
        final_reads(&cluster, &history, &registers, &mut records, &mut findings).await;
        for &id in cluster.members.keys() {
            match cluster.dump(id).await {
                Ok(d) => {
                    dumps.insert(id, d);
                }
                Err(e) => findings.push(Finding::NoProgress(e.to_string())),
            }
        }
        findings.extend(check::data(&records, &dumps));
    }
    findings.extend(check::linearizable(&records));
    findings.extend(cluster.unexpected_exits().into_iter().map(Finding::Crashed));
    findings.extend(
        cluster
            .started_without_data()
            .iter()
            .map(|&id| Finding::StartedWithoutData(id)),
    );
    cluster.stop().await;
    let summary = summarize(&config, &nemesis, &records, converged, &findings);
    write_files(&config, &records, &nemesis.log, &summary, &findings)?;
    Ok(RunReport {
        findings,
        summary,
        dir: config.dir,
        tried_every_fault: nemesis.tried_every_kind(),
    })
}

async fn heal_and_converge(cluster: &mut Cluster) -> Result<u64, HarnessError> {
    cluster.heal()?;
    cluster.wait_for_leader(CONVERGE_WITHIN).await?;
    cluster.wait_converged(CONVERGE_WITHIN).await
}

/// Reads every register on every member, linearizably, into the history:
/// each must see the last write, whoever serves it.
async fn final_reads(
    cluster: &Cluster,
    history: &History,
    registers: &[String],
    records: &mut Vec<Record>,
    findings: &mut Vec<Finding>,
) {
    let http = workload::http_client();
    for (&id, &addr) in &cluster.endpoints() {
        for key in registers {
            let (call, value) = match final_read(&http, history, addr, key).await {
                Some(read) => read,
                None => {
                    findings.push(Finding::NoProgress(format!(
                        "the final read of {key:?} on member {id} kept failing"
                    )));
                    continue;
                }
            };
            records.push(Record {
                op: Operation {
                    client: FINAL_READER + id,
                    call,
                    ret: Some(history.now()),
                    input: KvInput::Get { key: key.clone() },
                    output: Some(KvOutput::Value(value)),
                },
                member: id,
                note: "final read".into(),
            });
        }
    }
}

/// One linearizable read of `key` at `addr`, retried for a while (an
/// election right after convergence refuses reads briefly; a read that
/// failed had no effect): its call time and the value.
async fn final_read(
    http: &reqwest::Client,
    history: &History,
    addr: std::net::SocketAddr,
    key: &str,
) -> Option<(u64, Option<String>)> {
    let deadline = Instant::now() + FINAL_READ_RETRIES_FOR;
    loop {
        let call = history.now();
        if let Some(value) = workload::read_key(http, addr, key).await {
            return Some((call, value));
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn summarize(
    config: &RunConfig,
    nemesis: &Nemesis,
    records: &[Record],
    converged: Option<u64>,
    findings: &[Finding],
) -> String {
    let known = records.iter().filter(|r| r.op.ret.is_some()).count();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "seed {} · {} members · {} clients · {} s of faults · tick {} ms{}",
        config.seed,
        config.members,
        config.clients,
        config.duration.as_secs(),
        config.tick_ms,
        if config.lease_reads {
            " · lease reads"
        } else {
            ""
        }
    );
    let faults: Vec<String> = nemesis
        .counts
        .iter()
        .map(|(k, done, failed)| match failed {
            0 => format!("{k:?} {done}"),
            _ => format!("{k:?} {done} (and {failed} not carried out)"),
        })
        .collect();
    let _ = writeln!(s, "faults: {}", faults.join(", "));
    let _ = writeln!(
        s,
        "operations: {} recorded, {known} with a known outcome, {} unknown",
        records.len(),
        records.len() - known
    );
    match converged {
        Some(i) => {
            let _ = writeln!(s, "converged at applied index {i}");
        }
        None => s.push_str("did not converge\n"),
    }
    if findings.is_empty() {
        s.push_str("every check passed\n");
    }
    for f in findings {
        // The counterexample's conflicting set; its longest partial
        // linearization, often thousands of lines, goes to findings.txt.
        let text = f.to_string();
        let short = text
            .split("longest partial linearization")
            .next()
            .unwrap_or(&text);
        let _ = writeln!(s, "FINDING: {}", short.trim_end());
    }
    s
}

/// Writes `history.jsonl` (one operation per line), `nemesis.log`,
/// `summary.txt` and `findings.txt` (in full) beside the members' logs.
fn write_files(
    config: &RunConfig,
    records: &[Record],
    nemesis_log: &str,
    summary: &str,
    findings: &[Finding],
) -> Result<(), HarnessError> {
    let findings: String = findings.iter().map(|f| format!("{f}\n\n")).collect();
    let mut lines = String::new();
    for r in records {
        let line = serde_json::json!({
            "client": r.op.client,
            "member": r.member,
            "call_us": r.op.call,
            "ret_us": r.op.ret,
            "input": format!("{:?}", r.op.input),
            "output": r.op.output.as_ref().map(|o| format!("{o:?}")),
            "note": r.note,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    for (name, text) in [
        ("history.jsonl", lines.as_str()),
        ("nemesis.log", nemesis_log),
        ("summary.txt", summary),
        ("findings.txt", findings.as_str()),
    ] {
        let path = config.dir.join(name);
        std::fs::write(&path, text).map_err(|source| HarnessError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
    }
    Ok(())
}
