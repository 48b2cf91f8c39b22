//! The checks on a finished run: the history, acknowledged writes, and
//! the members' data.

use crate::workload::{is_set_key, Record};
use rudder_sim::linearizability::{check, Kv, KvInput, KvOutput, MissingKey, Operation, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The checker's search budget (steps over all keys): far above what a
/// run's history needs, and a bound on a pathological one.
const CHECK_BUDGET: u64 = 200_000_000;

/// Something a check found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// No order of the operations explains what the clients saw.
    NotLinearizable(String),
    /// The checker ran out of budget: neither proven nor refuted.
    Inconclusive,
    /// An acknowledged write to the set is missing on a member.
    Lost {
        /// The member lacking it.
        member: u64,
        /// The key.
        key: String,
    },
    /// A member holds a set key no client wrote, or with another value.
    Phantom {
        /// The member holding it.
        member: u64,
        /// The key.
        key: String,
    },
    /// Two members hold different data after converging.
    Diverged {
        /// The member compared against.
        first: u64,
        /// The member that differs.
        other: u64,
        /// Keys whose values differ (a few).
        keys: Vec<String>,
    },
    /// The cluster did not heal: no convergence, or a final read failed.
    NoProgress(String),
    /// A member's process ended without the harness killing it.
    Crashed(String),
    /// A member whose data directory was wiped started on it instead of
    /// refusing: it could vote and acknowledge with its past forgotten.
    StartedWithoutData(u64),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::NotLinearizable(why) => write!(f, "not linearizable: {why}"),
            Finding::Inconclusive => f.write_str("the linearizability check ran out of budget"),
            Finding::Lost { member, key } => {
                write!(
                    f,
                    "acknowledged write of {key:?} missing on member {member}"
                )
            }
            Finding::Phantom { member, key } => {
                write!(f, "member {member} holds {key:?}, which no client wrote so")
            }
            Finding::Diverged { first, other, keys } => {
                write!(f, "members {first} and {other} differ, e.g. at {keys:?}")
            }
            Finding::NoProgress(why) => write!(f, "the cluster did not recover: {why}"),
            Finding::Crashed(what) => write!(f, "a process crashed: {what}"),
            Finding::StartedWithoutData(id) => {
                write!(f, "member {id} started on its wiped data directory")
            }
        }
    }
}

/// Checks that the history is linearizable against a map in which a key
/// never written is absent.
pub fn linearizable(history: &[Record]) -> Option<Finding> {
    let ops: Vec<Operation<KvInput, KvOutput>> = history.iter().map(|r| r.op.clone()).collect();
    match check(&Kv::new(MissingKey::Absent), &ops, Some(CHECK_BUDGET)) {
        Verdict::Linearizable => None,
        Verdict::Unknown => Some(Finding::Inconclusive),
        Verdict::NotLinearizable(c) => Some(Finding::NotLinearizable(c.describe(&ops))),
    }
}

/// Checks every member's data (`dumps`, read after convergence) against
/// the set writes of the history and against each other.
pub fn data(history: &[Record], dumps: &BTreeMap<u64, BTreeMap<String, String>>) -> Vec<Finding> {
    let mut acknowledged = BTreeSet::new();
    let mut attempted = BTreeMap::new();
    for r in history {
        if let KvInput::Put { key, value } = &r.op.input {
            if is_set_key(key) {
                attempted.insert(key.clone(), value.clone());
                if r.op.output == Some(KvOutput::Done) {
                    acknowledged.insert(key.clone());
                }
            }
        }
    }
    let mut findings = Vec::new();
    for (&member, map) in dumps {
        for key in &acknowledged {
            if !map.contains_key(key) {
                findings.push(Finding::Lost {
                    member,
                    key: key.clone(),
                });
            }
        }
        for (key, value) in map.iter().filter(|(k, _)| is_set_key(k)) {
            if attempted.get(key) != Some(value) {
                findings.push(Finding::Phantom {
                    member,
                    key: key.clone(),
                });
            }
        }
    }
    let mut members = dumps.iter();
    if let Some((&first, reference)) = members.next() {
        for (&other, map) in members {
            let keys: Vec<String> = reference
                .keys()
                .chain(map.keys())
                .filter(|k| reference.get(*k) != map.get(*k))
                .take(5)
                .cloned()
                .collect();
            if !keys.is_empty() {
                findings.push(Finding::Diverged { first, other, keys });
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, acked: bool) -> Record {
        Record {
            op: Operation {
                client: 1,
                call: 1,
                ret: acked.then_some(2),
                input: KvInput::Put {
                    key: key.into(),
                    value: value.into(),
                },
                output: acked.then_some(KvOutput::Done),
            },
            member: 1,
            note: String::new(),
        }
    }

    fn get(key: &str, value: Option<&str>, call: u64) -> Record {
        Record {
            op: Operation {
                client: 2,
                call,
                ret: Some(call + 1),
                input: KvInput::Get { key: key.into() },
                output: Some(KvOutput::Value(value.map(String::from))),
            },
            member: 1,
            note: String::new(),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_lost_phantom_and_diverged_data() {
        let history = vec![put("set/a", "a", true), put("set/b", "b", false)];
        let good = map(&[("set/a", "a")]);
        let dumps = BTreeMap::from([
            (1, good.clone()),
            (2, map(&[("set/a", "a"), ("set/b", "b")])),
        ]);
        assert_eq!(
            data(&history, &dumps),
            vec![Finding::Diverged {
                first: 1,
                other: 2,
                keys: vec!["set/b".into()]
            }],
            "an unacknowledged write may land, but on every member"
        );
        let dumps = BTreeMap::from([(1, good), (2, map(&[("set/z", "z")]))]);
        assert_eq!(
            data(&history, &dumps),
            vec![
                Finding::Lost {
                    member: 2,
                    key: "set/a".into()
                },
                Finding::Phantom {
                    member: 2,
                    key: "set/z".into()
                },
                Finding::Diverged {
                    first: 1,
                    other: 2,
                    keys: vec!["set/a".into(), "set/z".into()]
                },
            ]
        );
    }

    #[test]
    fn a_stale_read_is_not_linearizable() {
        let mut history = vec![put("reg/0", "x", true), get("reg/0", Some("x"), 3)];
        assert_eq!(linearizable(&history), None);
        history.push(get("reg/0", None, 5));
        assert!(matches!(
            linearizable(&history),
            Some(Finding::NotLinearizable(_))
        ));
    }
}
