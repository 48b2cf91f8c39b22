//! Random small histories: the checker must agree with brute force.

use super::brute_force::{assert_counterexample, brute_force};
use super::conflict::{assert_conflicting, assert_one_minimal, brute_force_relaxed};
use super::{KvOp, RegisterOp};
use crate::linearizability::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Random times for `n` operations: calls in a small range so that many
/// overlap or touch, some returns unknown.
fn random_times(rng: &mut SmallRng, n: usize) -> Vec<(u64, Option<u64>)> {
    (0..n)
        .map(|_| {
            let call = rng.random_range(0..10);
            let ret = rng.random_bool(0.8).then(|| call + rng.random_range(0..5));
            (call, ret)
        })
        .collect()
}

/// Builds a history from `inputs` and `times` whose outputs come from
/// running `apply` in a random order consistent with real time (unknown
/// operations possibly never), then sometimes corrupts one with `corrupt`.
fn random_history<I: Clone, O, S>(
    rng: &mut SmallRng,
    inputs: Vec<I>,
    mut state: S,
    apply: impl Fn(&mut S, &I) -> O,
    corrupt: impl Fn(&mut SmallRng, &O) -> Option<O>,
) -> Vec<Operation<I, O>> {
    let times = random_times(rng, inputs.len());
    // Points on a clock four times finer, with a random tie-break; unknown
    // operations take effect up to ten ticks after their call, or never.
    let mut points: Vec<(u64, u64, usize)> = Vec::new();
    for (i, &(call, ret)) in times.iter().enumerate() {
        let end = match ret {
            Some(r) => r * 4,
            None if rng.random_bool(0.3) => continue,
            None => (call + 10) * 4,
        };
        points.push((rng.random_range(call * 4..=end), rng.random(), i));
    }
    points.sort_unstable();
    let mut outputs: Vec<Option<O>> = inputs.iter().map(|_| None).collect();
    for &(_, _, i) in &points {
        outputs[i] = Some(apply(&mut state, &inputs[i]));
    }
    let mut history: Vec<Operation<I, O>> = inputs
        .into_iter()
        .zip(outputs)
        .zip(times)
        .enumerate()
        .map(|(client, ((input, output), (call, ret)))| Operation {
            client: client as u64,
            call,
            ret,
            input,
            output: ret.and(output),
        })
        .collect();
    if rng.random_bool(0.5) {
        // The first output `corrupt` can change, from a random operation on.
        let n = history.len();
        let start = rng.random_range(0..n);
        for k in 0..n {
            let op = &mut history[(start + k) % n];
            if let Some(o) = op.output.as_ref().and_then(|o| corrupt(rng, o)) {
                op.output = Some(o);
                break;
            }
        }
    }
    history
}

fn random_register_history(rng: &mut SmallRng) -> Vec<RegisterOp> {
    let n = rng.random_range(1..=7);
    let inputs = (0..n)
        .map(|_| match rng.random_range(0..3) {
            0 => RegisterInput::Read,
            1 => RegisterInput::Write(rng.random_range(1..=3)),
            _ => RegisterInput::Cas {
                from: rng.random_range(1..=3),
                to: rng.random_range(1..=3),
            },
        })
        .collect();
    let apply = |s: &mut Option<i64>, input: &RegisterInput| match *input {
        RegisterInput::Read => RegisterOutput::Value(*s),
        RegisterInput::Write(v) => {
            *s = Some(v);
            RegisterOutput::Done
        }
        RegisterInput::Cas { from, to } => {
            let ok = *s == Some(from);
            if ok {
                *s = Some(to);
            }
            RegisterOutput::Swapped(ok)
        }
    };
    let corrupt = |rng: &mut SmallRng, o: &RegisterOutput| match o {
        RegisterOutput::Value(_) => Some(RegisterOutput::Value(
            rng.random_bool(0.8).then(|| rng.random_range(1..=3)),
        )),
        RegisterOutput::Done => None,
        RegisterOutput::Swapped(b) => Some(RegisterOutput::Swapped(!b)),
    };
    random_history(rng, inputs, None, apply, corrupt)
}

fn random_kv_history(rng: &mut SmallRng) -> Vec<KvOp> {
    let n = rng.random_range(1..=7);
    let keys = ["a", "b"];
    let values = ["1", "2"];
    let inputs = (0..n)
        .map(|_| {
            let key = keys[rng.random_range(0..keys.len())].to_owned();
            let value = values[rng.random_range(0..values.len())].to_owned();
            match rng.random_range(0..4) {
                0 => KvInput::Get { key },
                1 => KvInput::Put { key, value },
                2 => KvInput::Append { key, value },
                _ => KvInput::Cas {
                    key,
                    from: rng.random_bool(0.7).then(|| value.clone()),
                    to: values[rng.random_range(0..values.len())].to_owned(),
                },
            }
        })
        .collect();
    let apply = |m: &mut BTreeMap<String, String>, input: &KvInput| match input {
        KvInput::Get { key } => KvOutput::Value(m.get(key).cloned()),
        KvInput::Put { key, value } => {
            m.insert(key.clone(), value.clone());
            KvOutput::Done
        }
        KvInput::Append { key, value } => {
            m.entry(key.clone()).or_default().push_str(value);
            KvOutput::Done
        }
        KvInput::Cas { key, from, to } => {
            let ok = m.get(key) == from.as_ref();
            if ok {
                m.insert(key.clone(), to.clone());
            }
            KvOutput::Swapped(ok)
        }
    };
    let corrupt = |rng: &mut SmallRng, o: &KvOutput| match o {
        KvOutput::Value(v) => {
            let mut v = v.clone().unwrap_or_default();
            match rng.random_range(0..3) {
                0 => {
                    v.pop();
                }
                1 => v.insert(0, '1'),
                _ => v.push('2'),
            };
            Some(KvOutput::Value(Some(v)))
        }
        KvOutput::Done => None,
        KvOutput::Swapped(b) => Some(KvOutput::Swapped(!b)),
    };
    random_history(rng, inputs, BTreeMap::new(), apply, corrupt)
}

/// Checks `cases` random histories, from seeds `0..cases`, against brute
/// force: the same verdict, a valid counterexample with a 1-minimal
/// conflicting set, and with a small budget either `Unknown` or the same
/// verdict, the conflicting set maybe larger. Both verdicts must be common.
fn compare_with_brute_force<M: Model>(
    model: &M,
    cases: u64,
    generate: impl Fn(&mut SmallRng) -> Vec<Operation<M::Input, M::Output>>,
) where
    M::Input: Clone + Debug,
    M::Output: Clone + Debug,
{
    let mut bad = 0;
    for seed in 0..cases {
        let mut rng = SmallRng::seed_from_u64(seed);
        let history = generate(&mut rng);
        let why = format!("seed {seed}, history {history:#?}");
        let expected = brute_force(model, &history);
        let decide = |w: &[usize], r: &[usize]| brute_force_relaxed(model, &history, w, r);
        let verdict = check(model, &history, None);
        match &verdict {
            Verdict::Linearizable => assert!(expected, "{why}: passed"),
            Verdict::NotLinearizable(c) => {
                assert!(!expected, "{why}: failed with {c:?}");
                assert_counterexample(model, &history, c, &why);
                assert_conflicting(model, &history, c, &decide, &why);
                assert_one_minimal(model, &history, c, &decide, &why);
                bad += 1;
            }
            Verdict::Unknown => panic!("{why}: Unknown without a budget"),
        }
        let budget = rng.random_range(0..40);
        let why = format!("{why}, budget {budget}");
        match (check(model, &history, Some(budget)), &verdict) {
            (Verdict::Unknown, _) => {}
            (Verdict::NotLinearizable(b), Verdict::NotLinearizable(c)) => {
                assert_eq!((&b.linearized, &b.next), (&c.linearized, &c.next), "{why}");
                let superset = c.conflict.iter().all(|i| b.conflict.contains(i));
                assert!(superset, "{why}: {b:?} lost some of {c:?}");
                assert_conflicting(model, &history, &b, &decide, &why);
            }
            (bounded, _) => assert_eq!(&bounded, &verdict, "{why}"),
        }
    }
    assert!(
        (cases / 5..=cases * 4 / 5).contains(&bad),
        "{bad} of {cases} histories not linearizable: the generator is off"
    );
}

#[test]
fn register_agrees_with_brute_force() {
    compare_with_brute_force(&Register, 3000, random_register_history);
}

#[test]
fn kv_agrees_with_brute_force() {
    compare_with_brute_force(&Kv::default(), 3000, random_kv_history);
}

#[test]
fn kv_with_missing_as_empty_agrees_with_brute_force() {
    let model = Kv::new(MissingKey::Empty);
    compare_with_brute_force(&model, 3000, random_kv_history);
}
