//! The window of append messages in flight to one follower.

use std::collections::VecDeque;

/// Append messages sent to a follower and not yet acknowledged, as the last
/// index and byte size of each, oldest first. The leader stops sending when
/// either the count or the byte total reaches its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    sent: VecDeque<(u64, u64)>,
    bytes: u64,
    max_count: usize,
    max_bytes: u64,
}

impl Inflights {
    /// A window of at most `max_count` messages and `max_bytes` bytes
    /// (0: no byte limit). Nothing is allocated until the first send.
    pub fn new(max_count: usize, max_bytes: u64) -> Inflights {
        Inflights {
            sent: VecDeque::new(),
            bytes: 0,
            max_count,
            max_bytes: if max_bytes == 0 { u64::MAX } else { max_bytes },
        }
    }

    /// Records a message whose last entry is `index`, carrying `bytes`.
    pub fn add(&mut self, index: u64, bytes: u64) {
        assert!(
            !self.full(),
            "progress invariant broken: send into a full inflight window"
        );
        if let Some(&(last, _)) = self.sent.back() {
            assert!(
                index > last,
                "progress invariant broken: inflight index {index} not above {last}"
            );
        }
        if self.sent.capacity() == 0 {
            self.sent.reserve_exact(self.max_count.min(1024));
        }
        self.sent.push_back((index, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is at most `index`.
    #[inline]
    pub fn free_le(&mut self, index: u64) {
        while let Some(&(i, b)) = self.sent.front() {
            if i > index {
                break;
            }
            self.bytes -= b;
            self.sent.pop_front();
        }
    }

    /// Frees the oldest message (used when a heartbeat response shows the
    /// follower alive but acknowledgements may have been lost).
    pub fn free_first_one(&mut self) {
        if let Some((_, b)) = self.sent.pop_front() {
            self.bytes -= b;
        }
    }

    /// Whether no more messages may be sent.
    #[inline]
    pub fn full(&self) -> bool {
        self.sent.len() >= self.max_count || self.bytes >= self.max_bytes
    }

    /// The number of messages in flight.
    pub fn count(&self) -> usize {
        self.sent.len()
    }

    /// Forgets everything in flight.
    pub fn reset(&mut self) {
        self.sent.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_and_bytes_limit_the_window() {
        let mut w = Inflights::new(3, 100);
        w.add(1, 10);
        w.add(2, 10);
        assert!(!w.full());
        w.add(3, 10);
        assert!(w.full(), "count limit");
        w.free_le(2);
        assert_eq!(w.count(), 1);
        w.add(4, 90);
        assert!(w.full(), "byte limit");
        w.free_first_one();
        assert!(!w.full());
        w.reset();
        assert_eq!(w.count(), 0);
    }
}
