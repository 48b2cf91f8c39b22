//! A fixed-size set of small integers: the linearized operations in the
//! search's record of explored configurations, and the relaxed operations
//! of a shrinking counterexample.

/// A set of integers below the capacity it was made with, one bit each, so
/// that hashing and comparing a set of `n` operations costs `n / 64` words.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    /// An empty set able to hold `0..capacity`.
    pub(super) fn new(capacity: usize) -> Bitset {
        Bitset {
            words: vec![0; capacity.div_ceil(64)],
        }
    }

    /// Adds `i`; `i` must be below the capacity.
    pub(super) fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// Removes `i`; `i` must be below the capacity.
    pub(super) fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    /// Whether `i` is in the set; `false` beyond the capacity.
    pub(super) fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Whether every element of `self` is in `other`, a set of the same
    /// capacity.
    pub(super) fn is_subset(&self, other: &Bitset) -> bool {
        self.words
            .iter()
            .zip(&other.words)
            .all(|(a, b)| a & !b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_contains() {
        let mut s = Bitset::new(130);
        for i in [0, 63, 64, 129] {
            assert!(!s.contains(i));
            s.insert(i);
            assert!(s.contains(i));
        }
        s.remove(64);
        assert!(!s.contains(64) && s.contains(63) && s.contains(129));
        assert!(!s.contains(500));
        let mut t = Bitset::new(130);
        for i in [0, 63, 129] {
            t.insert(i);
        }
        assert_eq!(s, t);
        assert!(s.is_subset(&t) && t.is_subset(&s));
        s.insert(100);
        assert!(t.is_subset(&s) && !s.is_subset(&t));
        assert!(Bitset::new(130).is_subset(&t));
    }
}
