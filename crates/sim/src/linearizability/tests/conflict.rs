//! Minimal conflicting sets: checks of what [`Counterexample::conflict`]
//! promises, and hand-made histories that shrink to known sets.

use super::brute_force::brute_force;
use super::{cas, read, unknown, write, RegisterOp};
use crate::linearizability::bitset::Bitset;
use crate::linearizability::wgl::{self, Outcome, Steps};
use crate::linearizability::*;

/// Decides whether the operations `window` of a history, those of
/// `relaxed` relaxed (each may return anything, or have no effect), are
/// linearizable.
pub(super) type Decide<'a> = dyn Fn(&[usize], &[usize]) -> bool + 'a;

/// [`Decide`] by brute force: whether some choice of relaxed operations to
/// leave out, the others with any output, is linearizable.
pub(super) fn brute_force_relaxed<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    window: &[usize],
    relaxed: &[usize],
) -> bool
where
    M::Input: Clone,
    M::Output: Clone,
{
    assert!(relaxed.len() < 16, "too many relaxed operations to try");
    (0..1u32 << relaxed.len()).any(|left_out| {
        let left_out = |i: &usize| {
            let k = relaxed.iter().position(|r| r == i);
            k.is_some_and(|k| left_out & (1 << k) != 0)
        };
        let sub: Vec<_> = window
            .iter()
            .filter(|&i| !left_out(i))
            .map(|&i| {
                let mut o = history[i].clone();
                if relaxed.contains(&i) {
                    o.output = None;
                }
                o
            })
            .collect();
        brute_force(model, &sub)
    })
}

/// [`Decide`] by the checker's own search, for histories too long for
/// brute force.
fn search_relaxed<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    window: &[usize],
    relaxed: &[usize],
) -> bool {
    let mut set = Bitset::new(history.len());
    relaxed.iter().for_each(|&i| set.insert(i));
    let outcome = wgl::search(model, history, window, &set, &mut Steps::new(None));
    matches!(outcome, Outcome::Linearizable)
}

/// The window `c.conflict` is drawn from: the operations of its partition
/// called no later than the earliest return of those not in `linearized`.
fn window<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    c: &Counterexample,
) -> Vec<usize> {
    let key = model.partition(&history[c.next[0]].input);
    let part: Vec<usize> = (0..history.len())
        .filter(|&i| model.partition(&history[i].input) == key)
        .collect();
    let stuck_at = part
        .iter()
        .filter(|i| !c.linearized.contains(i))
        .filter_map(|&i| history[i].ret.map(|r| r.max(history[i].call)))
        .min()
        .expect("a known operation not linearized");
    part.into_iter()
        .filter(|&i| history[i].call <= stuck_at)
        .collect()
}

/// Checks that `c.conflict` is a conflicting set of `history`: operations
/// of known outcome of the window, not linearizable alone, nor with every
/// other operation of the window relaxed.
pub(super) fn assert_conflicting<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    c: &Counterexample,
    decide: &Decide,
    why: &str,
) {
    let window = window(model, history, c);
    assert!(!c.conflict.is_empty(), "{why}: empty conflict");
    assert!(c.conflict.is_sorted(), "{why}: conflict out of order");
    for &i in &c.conflict {
        assert!(window.contains(&i), "{why}: #{i} outside the window");
        assert!(history[i].ret.is_some(), "{why}: #{i} of unknown outcome");
    }
    assert!(
        !decide(&c.conflict, &[]),
        "{why}: the conflict alone passed"
    );
    let others = relaxable(history, &window, &c.conflict);
    assert!(
        !decide(&window, &others),
        "{why}: passed with the others relaxed"
    );
}

/// Checks that relaxing any one operation of `c.conflict`, with the other
/// operations of the window, makes the window linearizable.
pub(super) fn assert_one_minimal<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    c: &Counterexample,
    decide: &Decide,
    why: &str,
) {
    let window = window(model, history, c);
    for &i in &c.conflict {
        let rest: Vec<usize> = c.conflict.iter().copied().filter(|&j| j != i).collect();
        let others = relaxable(history, &window, &rest);
        assert!(decide(&window, &others), "{why}: #{i} is not needed");
    }
}

/// The operations of known outcome of `window` not in `kept`.
fn relaxable<I, O>(history: &[Operation<I, O>], window: &[usize], kept: &[usize]) -> Vec<usize> {
    window
        .iter()
        .copied()
        .filter(|i| !kept.contains(i) && history[*i].ret.is_some())
        .collect()
}

/// The counterexample for `history`, which must not be linearizable.
fn counterexample(history: &[RegisterOp], budget: Option<u64>) -> Counterexample {
    match check(&Register, history, budget) {
        Verdict::NotLinearizable(c) => c,
        v => panic!("expected not linearizable, got {v:?}"),
    }
}

/// Checks `c` is a 1-minimal conflicting set, by the checker's search.
fn assert_minimal_conflict(history: &[RegisterOp], c: &Counterexample) {
    let decide = |w: &[usize], r: &[usize]| search_relaxed(&Register, history, w, r);
    assert_conflicting(&Register, history, c, &decide, "");
    assert_one_minimal(&Register, history, c, &decide, "");
}

/// Rounds of operations that are linearizable on their own, starting at
/// `t` with the register holding anything, and using values from `v` on:
/// a write, a read overlapping it, a cas and a read of what the cas wrote.
fn unrelated(rounds: i64, t: u64, v: i64) -> Vec<RegisterOp> {
    (0..rounds)
        .flat_map(|k| {
            let (t, v) = (t + 10 * k as u64, v + 2 * k);
            [
                write(0, t, t + 2, v),
                read(1, t + 1, t + 4, Some(v)),
                cas(2, t + 5, t + 6, v, v + 1, true),
                read(3, t + 7, t + 8, Some(v + 1)),
            ]
        })
        .collect()
}

#[test]
fn stale_read_amid_unrelated_operations() {
    let mut h = unrelated(10, 0, 10);
    let start = h.len();
    h.extend([
        write(0, 100, 101, 1),
        write(1, 102, 103, 2),
        read(2, 104, 105, Some(1)),
    ]);
    h.extend(unrelated(10, 106, 50));
    let c = counterexample(&h, None);
    // The second write, done before the read began, yet the read saw the
    // first: the first write is not needed, as it may have had no effect.
    assert_eq!(c.conflict, [start + 1, start + 2]);
    assert_minimal_conflict(&h, &c);
    let text = c.describe(&h);
    let conflict_at = text.find("#41 client 1 [102, 103] Write(2)");
    let linearization_at = text.find("longest partial linearization");
    assert!(
        conflict_at.is_some() && conflict_at < linearization_at,
        "{text}"
    );
}

#[test]
fn two_successful_cas_from_one_write() {
    let mut h = unrelated(5, 0, 10);
    h.extend([
        write(0, 50, 51, 1),
        cas(1, 52, 55, 1, 2, true),
        cas(2, 52, 55, 1, 3, true),
        read(3, 53, 54, Some(2)),
    ]);
    let c = counterexample(&h, None);
    assert_eq!(c.conflict, [21, 22]);
    assert_minimal_conflict(&h, &c);
}

#[test]
fn a_value_never_written_conflicts_alone() {
    let mut h = unrelated(5, 0, 10);
    h.push(read(0, 50, 51, Some(7)));
    let c = counterexample(&h, None);
    assert_eq!(c.conflict, [20]);
    assert_minimal_conflict(&h, &c);
}

#[test]
fn operations_of_unknown_outcome_are_left_out() {
    let h = [
        unknown(0, 0, RegisterInput::Write(1)),
        read(1, 2, 3, Some(1)),
        read(1, 5, 6, None),
    ];
    let c = counterexample(&h, None);
    assert_eq!(c.conflict, [1, 2]);
    assert_minimal_conflict(&h, &c);
}

/// With too few steps to finish shrinking, the set is larger but still
/// conflicting; more steps never make it larger, and enough give the set
/// found without a budget.
#[test]
fn budget_running_out_while_shrinking() {
    let mut h = unrelated(3, 0, 10);
    h.extend([
        write(0, 100, 101, 1),
        write(1, 102, 103, 2),
        read(2, 104, 105, Some(1)),
    ]);
    let unbounded = counterexample(&h, None).conflict;
    let decide = |w: &[usize], r: &[usize]| search_relaxed(&Register, &h, w, r);
    let mut previous: Option<Vec<usize>> = None;
    let mut budget = 0;
    loop {
        if let Verdict::NotLinearizable(c) = check(&Register, &h, Some(budget)) {
            let why = format!("budget {budget}");
            assert_conflicting(&Register, &h, &c, &decide, &why);
            assert!(unbounded.iter().all(|i| c.conflict.contains(i)), "{why}");
            if let Some(p) = &previous {
                assert!(c.conflict.iter().all(|i| p.contains(i)), "{why}");
            } else {
                // Out of budget as soon as shrinking began: every operation
                // of the window, here all of them.
                assert_eq!(c.conflict, (0..h.len()).collect::<Vec<_>>(), "{why}");
            }
            if c.conflict == unbounded {
                break;
            }
            previous = Some(c.conflict);
        }
        budget += 1;
    }
}
