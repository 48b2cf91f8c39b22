//! Runs every scenario script under `crates/sim/scenarios/` and checks its
//! output; with `RUDDER_SCENARIO_REWRITE=1`, rewrites the files with the
//! actual output instead (review the change with `git diff`).

use rudder_sim::scenario::{run_file, Mode};
use std::path::{Path, PathBuf};

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_prints_what_it_expects() {
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenario files found");
    let mode = Mode::from_env();
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run_file(f, mode).err())
        .map(|e| e.to_string())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
