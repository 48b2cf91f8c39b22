//! Command-line parsing shared by the W1 counting examples.

use crate::w1_cluster::{pipelined, sequential, Workload, Writes};

/// A parsed command line: the mode's name, its workload, how writes are
/// handed to storage, and how many proposals to run.
pub struct Args {
    /// The mode as given, e.g. `sequential-async`.
    pub mode: String,
    /// The workload to run.
    pub run: Workload,
    /// How nodes hand writes to storage.
    pub writes: Writes,
    /// How many proposals.
    pub proposals: usize,
}

/// Parses `<pipelined|sequential>[-async] <proposals>` from the command
/// line of the counting examples; exits with the usage line on anything
/// else.
pub fn parse_args(program: &str) -> Args {
    let args: Vec<String> = std::env::args().collect();
    let usage = format!("usage: {program} <pipelined|sequential>[-async] <proposals>");
    let fail = || -> ! {
        eprintln!("{usage}");
        std::process::exit(2)
    };
    let mode = args.get(1).cloned().unwrap_or_else(|| fail());
    let proposals = args
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| fail());
    let (base, writes) = match mode.strip_suffix("-async") {
        Some(base) => (base, Writes::Async),
        None => (mode.as_str(), Writes::Sync),
    };
    let run = match base {
        "pipelined" => pipelined as Workload,
        "sequential" => sequential as Workload,
        _ => fail(),
    };
    Args {
        mode,
        run,
        writes,
        proposals,
    }
}
