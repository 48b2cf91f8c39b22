//! A checker that tries every order of the operations, simple enough to
//! trust, and a check of counterexamples against what they promise.

use crate::linearizability::{Counterexample, Model, Operation};

/// Every order of the operations, placing one at a time: whether some order
/// places every operation with a known return, respects real time and gives
/// each placed operation its output; states are kept per partition.
pub(super) fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    let mut keys: Vec<M::Partition> = Vec::new();
    let part: Vec<usize> = history
        .iter()
        .map(|o| {
            let k = model.partition(&o.input);
            keys.iter().position(|x| *x == k).unwrap_or_else(|| {
                keys.push(k);
                keys.len() - 1
            })
        })
        .collect();
    let states = vec![model.init(); keys.len()];
    let all: Vec<usize> = (0..history.len()).collect();
    let mut placed = vec![false; history.len()];
    let mut found = false;
    let mut visit = |placed: &[bool]| {
        found |= placed
            .iter()
            .zip(history)
            .all(|(&p, o)| p || o.ret.is_none());
    };
    orders(model, history, &all, &mut placed, &mut visit, &part, states);
    found
}

/// Calls `visit` on every valid placement reachable from `placed` (the
/// operations of `ops` placed so far) and `states` (one per partition).
fn orders<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
    placed: &mut Vec<bool>,
    visit: &mut impl FnMut(&[bool]),
    part: &[usize],
    states: Vec<M::State>,
) {
    visit(placed);
    for &i in ops {
        if placed[i] || !may_go_next(history, ops, placed, i) {
            continue;
        }
        let o = &history[i];
        let output = o.ret.and(o.output.as_ref());
        if let Some(s) = model.step(&states[part[i]], &o.input, output) {
            let mut next = states.clone();
            next[part[i]] = s;
            placed[i] = true;
            orders(model, history, ops, placed, visit, part, next);
            placed[i] = false;
        }
    }
}

/// Whether no unplaced operation of `ops` returned before `i` was called.
fn may_go_next<I, O>(
    history: &[Operation<I, O>],
    ops: &[usize],
    placed: &[bool],
    i: usize,
) -> bool {
    ops.iter()
        .all(|&j| placed[j] || j == i || history[j].ret.is_none_or(|r| r >= history[i].call))
}

/// The most operations of known outcome of partition `ops` that a valid
/// order can place, by brute force.
fn most_known<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
) -> usize {
    let part = vec![0; history.len()];
    let mut placed = vec![false; history.len()];
    let mut best = 0;
    let mut visit = |placed: &[bool]| {
        let known = placed
            .iter()
            .zip(history)
            .filter(|(&p, o)| p && o.ret.is_some());
        best = best.max(known.count());
    };
    orders(
        model,
        history,
        ops,
        &mut placed,
        &mut visit,
        &part,
        vec![model.init()],
    );
    best
}

/// Checks `c` says what [`Counterexample`] promises about `history`.
pub(super) fn assert_counterexample<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    c: &Counterexample,
    why: &str,
) {
    assert!(!c.next.is_empty(), "{why}: no next operations");
    let key = model.partition(&history[c.next[0]].input);
    let ops: Vec<usize> = (0..history.len())
        .filter(|&i| model.partition(&history[i].input) == key)
        .collect();
    let mut placed = vec![false; history.len()];
    let mut state = model.init();
    for &i in &c.linearized {
        assert!(ops.contains(&i) && !placed[i], "{why}: bad linearized #{i}");
        assert!(
            may_go_next(history, &ops, &placed, i),
            "{why}: #{i} too early"
        );
        let o = &history[i];
        state = model
            .step(&state, &o.input, o.ret.and(o.output.as_ref()))
            .unwrap_or_else(|| panic!("{why}: #{i} rejected"));
        placed[i] = true;
    }
    let allowed: Vec<usize> = ops
        .iter()
        .copied()
        .filter(|&i| !placed[i] && history[i].ret.is_some())
        .filter(|&i| may_go_next(history, &ops, &placed, i))
        .collect();
    assert_eq!(c.next, allowed, "{why}: next");
    for &i in &c.next {
        let o = &history[i];
        let output = o.ret.and(o.output.as_ref());
        assert!(
            model.step(&state, &o.input, output).is_none(),
            "{why}: #{i} fits next"
        );
    }
    let known = c.linearized.iter().filter(|&&i| history[i].ret.is_some());
    assert_eq!(
        known.count(),
        most_known(model, history, &ops),
        "{why}: not the most"
    );
}
