//! One member as a real `rudder serve` process: started, killed with
//! `SIGKILL`, paused with `SIGSTOP` and resumed, restarted on its data (or
//! on none, expecting it to refuse).

use crate::error::HarnessError;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// How a member's process is started.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// The member's ID.
    pub id: u64,
    /// The `rudder` binary.
    pub binary: PathBuf,
    /// Where the process listens for peers (its proxy forwards here).
    pub raft_listen: SocketAddr,
    /// Where peers reach it: its proxy.
    pub raft_public: SocketAddr,
    /// Where it serves HTTP.
    pub http: SocketAddr,
    /// `--peers`: `ID=RAFT/HTTP` of the members it founds or joins.
    pub peers: String,
    /// Whether it joins a running cluster (`--join`).
    pub join: bool,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Where its standard output and error go (appended across restarts).
    pub log: PathBuf,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
}

/// A member's process and what the nemesis did to it.
#[derive(Debug)]
pub struct Member {
    /// How it starts.
    pub spec: MemberSpec,
    child: Option<Child>,
    paused: bool,
    /// Exits the harness did not cause (a crash, a refusal to start), as
    /// text: each is a finding.
    pub unexpected_exits: Vec<String>,
}

impl Member {
    /// Starts the member's process.
    pub fn start(spec: MemberSpec) -> Result<Member, HarnessError> {
        let mut member = Member {
            spec,
            child: None,
            paused: false,
            unexpected_exits: Vec::new(),
        };
        member.spawn()?;
        Ok(member)
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let s = &self.spec;
        let id = s.id;
        let err = |what| move |source| HarnessError::Process { id, what, source };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .map_err(err("opening its log"))?;
        let log2 = log.try_clone().map_err(err("opening its log"))?;
        let mut cmd = Command::new(&s.binary);
        cmd.arg("serve")
            .args(["--id", &s.id.to_string()])
            .args(["--raft-addr", &s.raft_listen.to_string()])
            .args(["--http-addr", &s.http.to_string()])
            .args(["--peers", &s.peers])
            .arg("--data-dir")
            .arg(&s.data_dir)
            .args(["--tick-ms", &s.tick_ms.to_string()])
            // Small enough that snapshots and compaction happen in a
            // short run, so followers catch up by snapshot too.
            .args(["--snapshot-every", "500", "--keep-entries", "200"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true);
        if s.join {
            cmd.arg("--join");
        }
        self.child = Some(cmd.spawn().map_err(err("starting"))?);
        self.paused = false;
        Ok(())
    }

    /// Whether its process is running (paused counts as running).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Whether its process is stopped by `SIGSTOP`.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Notes whether the process ended by itself: then it is no longer
    /// up, and the exit is recorded in `unexpected_exits`.
    pub fn reap(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        match child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => {
                self.unexpected_exits.push(format!(
                    "member {} exited by itself: {status}",
                    self.spec.id
                ));
                self.child = None;
                self.paused = false;
            }
            Err(e) => self.unexpected_exits.push(format!(
                "member {}: cannot tell whether it runs: {e}",
                self.spec.id
            )),
        }
    }

    /// Kills the process with `SIGKILL`: no chance to flush or sync. A
    /// process that had already ended by itself is recorded first.
    pub async fn kill(&mut self) -> Result<(), HarnessError> {
        self.reap();
        let id = self.spec.id;
        if let Some(mut child) = self.child.take() {
            child.start_kill().map_err(|source| HarnessError::Process {
                id,
                what: "killing",
                source,
            })?;
            child.wait().await.map_err(|source| HarnessError::Process {
                id,
                what: "reaping",
                source,
            })?;
        }
        self.paused = false;
        Ok(())
    }

    /// Starts the process again on its data directory.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        if self.child.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    /// Starts the process and waits up to `within` for it to refuse to
    /// start: to exit by itself, with a failure. Whether it did; a process
    /// still running then is killed.
    pub async fn refuses_to_start(
        &mut self,
        within: std::time::Duration,
    ) -> Result<bool, HarnessError> {
        self.reap();
        if self.child.is_none() {
            self.spawn()?;
        }
        let id = self.spec.id;
        let Some(child) = self.child.as_mut() else {
            return Ok(false);
        };
        match tokio::time::timeout(within, child.wait()).await {
            Ok(Ok(status)) => {
                self.child = None;
                Ok(!status.success())
            }
            Ok(Err(source)) => Err(HarnessError::Process {
                id,
                what: "waiting for it to exit",
                source,
            }),
            Err(_) => {
                self.kill().await?;
                Ok(false)
            }
        }
    }

    /// Stops the process with `SIGSTOP`: it keeps its sockets but does
    /// nothing, as under a long GC pause or a stalled VM.
    pub fn pause(&mut self) -> Result<(), HarnessError> {
        self.signal(libc::SIGSTOP, "pausing")?;
        self.paused = self.child.is_some();
        Ok(())
    }

    /// Lets a paused process go on with `SIGCONT`.
    pub fn resume(&mut self) -> Result<(), HarnessError> {
        self.signal(libc::SIGCONT, "resuming")?;
        self.paused = false;
        Ok(())
    }

    fn signal(&self, signal: libc::c_int, what: &'static str) -> Result<(), HarnessError> {
        let Some(pid) = self.child.as_ref().and_then(Child::id) else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(pid).expect("process IDs fit pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our
        // own child, not yet reaped, so it names no other process.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(HarnessError::Process {
                id: self.spec.id,
                what,
                source: std::io::Error::last_os_error(),
            })
        }
    }
}
