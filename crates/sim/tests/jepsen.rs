//! The checker against real Jepsen histories with known verdicts, from
//! `jepsen-histories/` beside the project root (see its README.md).

use rudder_sim::linearizability::jepsen::{parse_kv, parse_register, ParseError};
use rudder_sim::linearizability::{check, Kv, MissingKey, Model, Operation, Register, Verdict};
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};

/// The folder of histories: `../shared/jepsen-histories` from the root of
/// the workspace.
fn histories() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/jepsen-histories");
    assert!(
        dir.join("README.md").is_file(),
        "no Jepsen histories at {}: this test needs the folder jepsen-histories \
         (README.md, register/ and kv/, each with a VERDICTS file) beside the \
         project root",
        dir.display()
    );
    dir
}

/// The `(file, linearizable)` pairs a VERDICTS file lists.
fn verdicts(dir: &Path) -> Vec<(String, bool)> {
    let path = dir.join("VERDICTS");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let verdicts: Vec<(String, bool)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [file, "linearizable"] => (file.to_owned(), true),
            [file, "not-linearizable"] => (file.to_owned(), false),
            _ => panic!("{}: bad line {l:?}", path.display()),
        })
        .collect();
    assert!(!verdicts.is_empty(), "{} lists nothing", path.display());
    verdicts
}

/// A parser of one of the formats, for model `M`.
type Parser<M> =
    fn(&str) -> Result<Vec<Operation<<M as Model>::Input, <M as Model>::Output>>, ParseError>;

/// Parses and checks every history `dir`'s VERDICTS lists; returns a line
/// for each that disagrees, does not parse, or has a conflicting set that
/// is linearizable by itself.
fn check_all<M: Model>(dir: &Path, model: &M, parse: Parser<M>) -> Vec<String>
where
    M::Input: Clone + Debug,
    M::Output: Clone + Debug,
{
    let mut wrong = Vec::new();
    for (file, expected) in verdicts(dir) {
        let path = dir.join(&file);
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let history = match parse(&text) {
            Ok(h) => h,
            Err(e) => {
                wrong.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let verdict = check(model, &history, None);
        let agrees = match &verdict {
            Verdict::Linearizable => expected,
            Verdict::NotLinearizable(_) => !expected,
            Verdict::Unknown => false,
        };
        if let Verdict::NotLinearizable(c) = &verdict {
            let alone: Vec<_> = c.conflict.iter().map(|&i| history[i].clone()).collect();
            if !matches!(check(model, &alone, None), Verdict::NotLinearizable(_)) {
                wrong.push(format!(
                    "{}: the conflicting set alone is linearizable\n{}",
                    path.display(),
                    c.describe(&history)
                ));
            }
        }
        if !agrees {
            let detail = match &verdict {
                Verdict::NotLinearizable(c) => c.describe(&history),
                _ => String::new(),
            };
            wrong.push(format!(
                "{}: expected linearizable = {expected}, got {verdict:?}\n{detail}",
                path.display()
            ));
        }
    }
    wrong
}

#[test]
fn register_histories() {
    let wrong = check_all(&histories().join("register"), &Register, parse_register);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn kv_histories() {
    let model = Kv::new(MissingKey::Empty);
    let wrong = check_all(&histories().join("kv"), &model, parse_kv);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
