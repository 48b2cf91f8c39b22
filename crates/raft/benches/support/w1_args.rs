//! Command-line parsing shared by the W1 counting examples.

use crate::w1_cluster::{pipelined, sequential, Workload};

/// Parses `<pipelined|sequential> <proposals>` from the command line of the
/// counting examples; exits with the usage line on anything else.
pub fn parse_args(program: &str) -> (&'static str, Workload, usize) {
    let args: Vec<String> = std::env::args().collect();
    let usage = format!("usage: {program} <pipelined|sequential> <proposals>");
    let parsed = match (
        args.get(1).map(String::as_str),
        args.get(2).map(|n| n.parse()),
    ) {
        (Some("pipelined"), Some(Ok(n))) => Some(("pipelined", pipelined as Workload, n)),
        (Some("sequential"), Some(Ok(n))) => Some(("sequential", sequential as Workload, n)),
        _ => None,
    };
    parsed.unwrap_or_else(|| {
        eprintln!("{usage}");
        std::process::exit(2)
    })
}
