//! The search's record of the configurations it has explored.
//!
//! A configuration is the set of operations linearized and the model state
//! reached. Two with the same set and state have the same future, so the
//! second is never explored (Lowe's cache). Further, operations of unknown
//! outcome are never required and never hold others back (they have no
//! return), so having linearized fewer of them leaves every choice open
//! that more would: a configuration is skipped when one with the same
//! operations of known outcome, the same state and a subset of its
//! operations of unknown outcome was explored. Without this, each unknown
//! operation that the others do not constrain (say, every read around it
//! relaxed while shrinking a counterexample) doubles the configurations.

use super::bitset::Bitset;
use std::collections::HashMap;
use std::hash::Hash;

/// The configurations explored: for each set of operations of known
/// outcome linearized and state reached, the sets of operations of unknown
/// outcome linearized with them, none a subset of another.
pub(super) struct Explored<S> {
    configs: HashMap<(Bitset, S), Vec<Bitset>>,
}

impl<S: Clone + Eq + Hash> Explored<S> {
    /// Nothing explored yet.
    pub(super) fn new() -> Explored<S> {
        Explored {
            configs: HashMap::new(),
        }
    }

    /// Records the configuration with operations `known` and `unknown`
    /// linearized and `state` reached; `false`, recording nothing, if it
    /// needs no exploring: it, or one with a subset of `unknown`, was
    /// recorded before.
    pub(super) fn insert(&mut self, known: &Bitset, unknown: &Bitset, state: &S) -> bool {
        let used = self
            .configs
            .entry((known.clone(), state.clone()))
            .or_default();
        if used.iter().any(|u| u.is_subset(unknown)) {
            return false;
        }
        used.retain(|u| !unknown.is_subset(u));
        used.push(unknown.clone());
        true
    }
}
