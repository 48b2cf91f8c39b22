//! Scenario scripts: a small text language that drives a cluster step by
//! step and prints what happens, so that a scenario file reads as
//! documentation of Raft and is checked like a test.
//!
//! A file is a sequence of cases, each a command line, a `----` line and
//! the output the command must print, ending at a blank line (the format
//! of etcd's `datadriven` files; see [`parse`]). Lines starting with `#`
//! between cases are comments. [`run_file`] checks every output, or with
//! [`Mode::Rewrite`] (`RUDDER_SCENARIO_REWRITE=1`) writes the actual
//! outputs back into the file, to review in `git diff`.
//!
//! Nothing happens unless a command says so: a node handles a Ready on
//! `process-ready`, a message arrives on `deliver-msgs`, time passes on
//! `tick`. Every run is deterministic (election timeouts are randomized
//! from a seed, the node's ID). Raft's safety properties are checked after
//! every step ([`crate::invariants`]); a violation prints a line starting
//! with `VIOLATION:`, which fails the scenario.
//!
//! # Commands
//!
//! Node IDs are numbers; `(1,2,3)` or `(1 2 3)` is a list.
//!
//! **Nodes**
//! - `add-nodes <n> [voters=(ids)] [log=(terms)] [term=<t>] [options]`:
//!   adds `n` nodes numbered on from the highest ID so far. With `voters`
//!   they are founding members, bootstrapped with that membership
//!   (`RawNode::bootstrap`), or with `log` started from a log of empty
//!   entries with those terms, nothing committed, in term `term` (default:
//!   the last entry's). Without `voters` they start empty, to join once a
//!   leader adds them. Options: `pre-vote=`, `check-quorum=`,
//!   `step-down-on-removal=` (`true`/`false`, default `true` like
//!   `Config::new`), `read-only=safe|lease`, `election=<ticks>` (10),
//!   `heartbeat=<ticks>` (1), `max-size=<bytes>`, `max-inflight=<msgs>`.
//! - `crash <id>`: the node stops; only its disk (and the state machine,
//!   written with each apply) survives.
//! - `restart <id>`: the node starts again from its disk.
//!
//! **Inputs** (printing the role, term or leader changes they cause)
//! - `campaign <id>`: start an election now (a pre-vote first, if on).
//! - `propose <id> <data>`: propose a payload (`"quoted"` for spaces).
//! - `propose-conf-change <id> <change>... [transition=auto|implicit|explicit]`:
//!   propose a `ConfChangeV2`; a change is `v4` (add voter 4), `l5` (add
//!   or demote to learner 5) or `r1` (remove 1); no changes leaves a joint
//!   configuration.
//! - `tick <id>... [times=<n>]`: advance the nodes' clocks `n` ticks (1).
//! - `tick-heartbeat <id>`: tick one heartbeat interval.
//! - `tick-election <id>`: tick until the node's election timer fires (a
//!   follower campaigns, a leader checks its quorum); prints how many
//!   ticks that took.
//! - `transfer-leadership <from> <to>`, `forget-leader <id>`,
//!   `read-index <id> <ctx>`: the `RawNode` calls of those names.
//! - `report-unreachable <leader> <peer>`,
//!   `report-snapshot <leader> <peer> [failure]`: what the transport tells
//!   a leader.
//! - `compact <id> <index>`: snapshot the state machine at the applied
//!   index and discard the log through `index`.
//!
//! **The Ready loop and the network**
//! - `process-ready [<id>...]`: each node (all when none are named)
//!   handles one Ready: `send` its messages, `persist` snapshot, entries
//!   and term/vote/commit, `send after persist` the messages that had to
//!   wait for the disk, `apply` committed entries (printing the new
//!   membership after a change), `read-state` answers, proposals that
//!   will never commit, then `advance`.
//! - `deliver-msgs [<id>...] [type=<MsgX>] [from=<id>] [drop]`: deliver
//!   (or drop) the queued messages to those receivers, of that type, from
//!   that sender, printing each and what the receiver made of it.
//! - `stabilize [<id>...]`: handle Readys and deliver messages among those
//!   nodes (all when none are named) until nothing is left to do.
//! - `partition (<ids>) (<ids>)...`: nodes talk only within their group;
//!   nodes in no group talk to no one.
//! - `cut <from> <to>`: messages from `from` to `to` are lost.
//! - `heal`: every link works again.
//!
//! **Inspection**
//! - `status <id>`: role, positions, membership, election clock, a
//!   leader's view of each peer, the state machine.
//! - `raft-log <id>`: the node's log, one entry per line.
//! - `raft-state`: one line per node: role, term, leader, last index,
//!   commit, applied.
//!
//! # Output
//!
//! Messages print as [`crate::format::message`] does
//! (`1->2 MsgApp term=2 log=1/5 commit=4 entries=[2/6 "x"]`), entries as
//! `term/index payload`. A change of role, term or leader prints as
//! `> 2 became candidate at term 2`. A Ready's steps are indented under
//! `1 handles Ready`, a message's consequences under the message. A
//! message the network loses prints as `lost ... (link cut)`.

pub mod cluster;
pub mod commands;
pub mod node;
pub mod output;
pub mod parse;

mod diff;

use cluster::{Cluster, ClusterError};
use commands::{Command, CommandError};
use output::{Output, VIOLATION};
use parse::{ParseErrorKind, Script};
use std::fmt;
use std::path::Path;
use thiserror::Error;

/// What [`run_file`] does with the actual outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Compare them with the expected outputs.
    Check,
    /// Write them into the file in place of the expected outputs.
    Rewrite,
}

impl Mode {
    /// `Rewrite` when the environment variable `RUDDER_SCENARIO_REWRITE`
    /// is `1`, `Check` otherwise.
    pub fn from_env() -> Mode {
        match std::env::var("RUDDER_SCENARIO_REWRITE").as_deref() {
            Ok("1") => Mode::Rewrite,
            _ => Mode::Check,
        }
    }
}

/// Why a scenario failed. Every variant names the file, and all but `Io`
/// the line.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a well-formed script.
    #[error("{file}:{line}: {kind}")]
    Parse {
        /// The file.
        file: String,
        /// The line.
        line: usize,
        /// What is wrong there.
        kind: ParseErrorKind,
    },
    /// A command line that is not a valid command.
    #[error("{file}:{line}: {source}")]
    Command {
        /// The file.
        file: String,
        /// The command's line.
        line: usize,
        /// What is wrong with it.
        source: CommandError,
    },
    /// A valid command the cluster could not carry out.
    #[error("{file}:{line}: `{command}`: {source}")]
    Cluster {
        /// The file.
        file: String,
        /// The command's line.
        line: usize,
        /// The command's name.
        command: String,
        /// Why.
        source: ClusterError,
    },
    /// Outputs that differ from the expected ones.
    #[error("{}", list(.0))]
    Mismatches(Vec<Mismatch>),
    /// Outputs that report a safety violation.
    #[error("{}", list(.0))]
    Violations(Vec<Violation>),
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(T::to_string).collect();
    parts.join("\n")
}

/// A command whose output differs from the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The file.
    pub file: String,
    /// The command's line.
    pub line: usize,
    /// The command as written.
    pub command: String,
    /// The expected output.
    pub expected: Vec<String>,
    /// The actual output.
    pub actual: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}: output of `{}` differs (-expected +actual):",
            self.file, self.line, self.command
        )?;
        f.write_str(&diff::lines(&self.expected, &self.actual))
    }
}

/// A command whose output reports a safety violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The file.
    pub file: String,
    /// The command's line.
    pub line: usize,
    /// The violation line printed.
    pub report: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.report.trim())
    }
}

/// A script run to its end: the script with each case's actual output.
#[derive(Debug)]
pub struct Run {
    file: String,
    /// The script as read, with the expected outputs.
    script: Script,
    /// Each case's actual output, in order.
    actual: Vec<Vec<String>>,
}

impl Run {
    /// The cases whose output differs from the expected one.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        self.script
            .cases()
            .zip(&self.actual)
            .filter(|(case, actual)| &case.expected != *actual)
            .map(|(case, actual)| Mismatch {
                file: self.file.clone(),
                line: case.line,
                command: case.source.clone(),
                expected: case.expected.clone(),
                actual: actual.clone(),
            })
            .collect()
    }

    /// Every violation printed, with its command's line.
    pub fn violations(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for (case, actual) in self.script.cases().zip(&self.actual) {
            for l in actual.iter().filter(|l| l.contains(VIOLATION)) {
                out.push(Violation {
                    file: self.file.clone(),
                    line: case.line,
                    report: l.clone(),
                });
            }
        }
        out
    }

    /// The script with the actual outputs in place of the expected ones.
    pub fn rewritten(&self) -> String {
        let mut script = self.script.clone();
        for (case, actual) in script.cases_mut().zip(&self.actual) {
            case.expected = actual.clone();
        }
        script.render()
    }
}

/// Runs the script `text` (named `file` in errors) on a new cluster. A
/// script error (malformed line, unknown command or argument, a node that
/// does not exist) stops the run; Raft's refusals are output.
pub fn run_script(file: &str, text: &str) -> Result<Run, ScenarioError> {
    let script = parse::parse(text).map_err(|e| ScenarioError::Parse {
        file: file.to_string(),
        line: e.line,
        kind: e.kind,
    })?;
    let mut cluster = Cluster::new();
    let mut actual = Vec::new();
    for case in script.cases() {
        let cmd = Command::parse(&case.directive, &case.input).map_err(|source| {
            ScenarioError::Command {
                file: file.to_string(),
                line: case.line,
                source,
            }
        })?;
        let mut out = Output::default();
        cluster
            .run(&cmd, &mut out)
            .map_err(|source| ScenarioError::Cluster {
                file: file.to_string(),
                line: case.line,
                command: case.directive.name.clone(),
                source,
            })?;
        actual.push(out.into_lines());
    }
    Ok(Run {
        file: file.to_string(),
        script,
        actual,
    })
}

/// Runs the scenario file at `path`: checks its outputs, or rewrites them
/// (see [`Mode`]). A safety violation fails the run in either mode.
pub fn run_file(path: &Path, mode: Mode) -> Result<(), ScenarioError> {
    let file = path.display().to_string();
    let io = |source| ScenarioError::Io {
        file: file.clone(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let run = run_script(&file, &text)?;
    if mode == Mode::Rewrite {
        let new = run.rewritten();
        if new != text {
            std::fs::write(path, new).map_err(io)?;
        }
    } else {
        let mismatches = run.mismatches();
        if !mismatches.is_empty() {
            return Err(ScenarioError::Mismatches(mismatches));
        }
    }
    let violations = run.violations();
    if !violations.is_empty() {
        return Err(ScenarioError::Violations(violations));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_names_the_command_and_its_line() {
        let script = "add-nodes 1 voters=(1)\n----\nignored\n\n# a typo\ncampain 1\n----\n";
        let err = run_script("typo.txt", script).unwrap_err();
        assert_eq!(err.to_string(), "typo.txt:6: unknown command `campain`");
        let err = run_script("x.txt", "status 7\n----\n").unwrap_err();
        assert_eq!(err.to_string(), "x.txt:1: `status`: there is no node 7");
    }

    #[test]
    fn bad_scripts_are_errors_not_panics() {
        let scripts = [
            "add-nodes\n----\n",
            "add-nodes 0 voters=()\n----\n",
            "add-nodes 1 voters=(1) election=1\n----\n",
            "add-nodes 1 voters=(1) log=(3) term=2\n----\n",
            "add-nodes 2 voters=(1,2)\n----\n\ncompact 1 99\n----\n",
            "add-nodes 1 voters=(1)\n----\n\npropose-conf-change 1 v\u{e9}\n----\n",
            "tick 1\n----\n",
            "deliver-msgs type=MsgNope\n----\n",
            "propose 1\n----\n",
            "\u{e9} (\n----\n",
        ];
        for s in scripts {
            // Ok or Err: never a panic.
            let _ = run_script("bad.txt", s);
        }
        let err = run_script("bad.txt", scripts[2]).unwrap_err();
        assert!(err.to_string().contains("election_tick (1)"), "{err}");
    }

    #[test]
    fn partitions_cut_both_ways_and_cuts_one_way() {
        let script = "add-nodes 3 voters=(1,2,3)\n----\n\nstabilize\n----\n\n\
                      partition (1) (2 3)\n----\n\ncut 2 3\n----\n\n\
                      campaign 3\n----\n\nstabilize\n----\n";
        let run = run_script("cut.txt", script).unwrap();
        let out = &run.actual[5];
        for line in [
            "lost 3->1 MsgPreVote term=2 log=1/3 (link cut)",
            "3->2 MsgPreVote term=2 log=1/3",
            "lost 2->3 MsgPreVoteResp term=2 granted (link cut)",
        ] {
            assert!(out.iter().any(|l| l == line), "{line:?} not in {out:#?}");
        }
    }

    #[test]
    fn a_mismatch_shows_a_diff_and_rewrite_fixes_it() {
        let script =
            "# one node\nadd-nodes 1 voters=(1)\n----\nwrong\n\nraft-state\n----\n1: leader\n";
        let run = run_script("m.txt", script).unwrap();
        let mismatches = run.mismatches();
        assert_eq!(mismatches.len(), 2);
        let shown = mismatches[1].to_string();
        assert!(
            shown.starts_with("m.txt:6: output of `raft-state` differs"),
            "{shown}"
        );
        assert!(shown.contains("-1: leader\n+1: follower term=1"), "{shown}");
        let fixed = run.rewritten();
        assert!(fixed.starts_with("# one node\nadd-nodes 1"), "{fixed}");
        assert!(run_script("m.txt", &fixed).unwrap().mismatches().is_empty());
    }
}
