//! Small helpers shared by the log and the replication code.

use crate::proto::Entry;

/// The longest prefix of `entries` whose accounted size stays within
/// `max_size`, and at least one entry (so progress is always possible).
#[inline]
pub fn limit_size(entries: &[Entry], max_size: u64) -> &[Entry] {
    if max_size == u64::MAX {
        return entries;
    }
    let mut total = 0u64;
    let mut n = 0;
    for e in entries {
        total = total.saturating_add(e.accounted_size());
        if n > 0 && total > max_size {
            break;
        }
        n += 1;
    }
    &entries[..n]
}

/// The accounted size of all of `entries`.
#[inline]
pub fn total_size(entries: &[Entry]) -> u64 {
    entries.iter().map(Entry::accounted_size).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ENTRY_OVERHEAD;
    use bytes::Bytes;

    #[test]
    fn limit_size_keeps_at_least_one() {
        let es: Vec<Entry> = (1..=4).map(|i| Entry::new(1, i, Bytes::new())).collect();
        assert_eq!(limit_size(&es, 0).len(), 1);
        assert_eq!(limit_size(&es, ENTRY_OVERHEAD * 3).len(), 3);
        assert_eq!(limit_size(&es, u64::MAX).len(), 4);
        assert_eq!(limit_size(&[], 0).len(), 0);
        assert_eq!(total_size(&es), 4 * ENTRY_OVERHEAD);
    }
}
