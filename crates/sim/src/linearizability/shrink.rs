//! Shrinking operations that are not linearizable to a minimal conflicting
//! set, by greedy relaxation.
//!
//! Operations of known outcome, latest call first, are tried relaxed (each
//! may have returned anything, or had no effect at all), a run of them at a
//! time; a run stays relaxed if the operations are still not linearizable.
//! Relaxing only widens what an operation may do, so it never turns a
//! linearizable history into one that is not: an operation kept because
//! relaxing it alone made the history linearizable would still make it
//! linearizable with every later relaxation added. One pass in which each
//! kept operation was tried alone therefore leaves a 1-minimal set.
//!
//! Most operations are unrelated to the conflict, so runs grow while they
//! can be relaxed and shrink back to one operation when they cannot: the
//! unrelated operations cost a few searches, not one each. Going latest
//! first keeps the searches cheap, as the many early operations, relaxed
//! (which makes a search explore more), are relaxed last.

use super::bitset::Bitset;
use super::wgl::{self, Outcome, Steps};
use super::{Model, Operation};
use std::cmp::Reverse;

/// Shrinks `ops` (indexes into `history`, one partition, ascending, not
/// linearizable) to operations of known outcome that cannot be relaxed,
/// each alone, with the others relaxed, without `ops` becoming
/// linearizable; ascending. Spends `steps`; if they run out, keeps the
/// operations not yet relaxed, which are still not linearizable.
pub(super) fn conflict<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
    steps: &mut Steps,
) -> Vec<usize> {
    let mut order: Vec<usize> = ops
        .iter()
        .copied()
        .filter(|&i| history[i].ret.is_some())
        .collect();
    order.sort_by_key(|&i| Reverse((history[i].call, i)));
    let mut relaxed = Bitset::new(history.len());
    let mut kept = Vec::new();
    // The next operation of `order` to try, and how many from it.
    let (mut at, mut run) = (0, 1);
    while at < order.len() {
        let tried = &order[at..order.len().min(at + run)];
        tried.iter().for_each(|&i| relaxed.insert(i));
        match wgl::search(model, history, ops, &relaxed, steps) {
            Outcome::NotLinearizable(_) => {
                at += tried.len();
                run *= 2;
            }
            Outcome::Linearizable => {
                tried.iter().for_each(|&i| relaxed.remove(i));
                if let [needed] = tried {
                    kept.push(*needed);
                    at += 1;
                } else {
                    run = tried.len() / 2;
                }
            }
            Outcome::OutOfBudget => {
                kept.extend_from_slice(&order[at..]);
                break;
            }
        }
    }
    kept.sort_unstable();
    kept
}
