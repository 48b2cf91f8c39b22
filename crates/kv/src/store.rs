//! The replicated map: the commands that travel in the log, and the state
//! machine that applies them.
//!
//! A command is a prost message; applying one is deterministic, so every
//! member that applies the same log holds the same map. A snapshot is the
//! whole map, encoded the same way.

use bytes::Bytes;
use prost::Message as _;
use rudder_node::runtime::StateMachine;
use std::collections::BTreeMap;

/// What a client asks to change.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// Set `key` to `value`, if `prev_value` is `None` or `key` holds it.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
        /// Compare-and-set: the value the key must hold (`Some("")` is
        /// the empty value; a missing key never matches).
        prev_value: Option<String>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// A command as it travels in a log entry.
#[derive(Clone, PartialEq, prost::Message)]
struct Wire {
    /// 1: put, 2: delete.
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(string, tag = "2")]
    key: String,
    #[prost(string, tag = "3")]
    value: String,
    #[prost(string, optional, tag = "4")]
    prev_value: Option<String>,
}

impl Command {
    /// The entry payload for this command.
    pub fn encode(&self) -> Bytes {
        let wire = match self {
            Command::Put {
                key,
                value,
                prev_value,
            } => Wire {
                kind: 1,
                key: key.clone(),
                value: value.clone(),
                prev_value: prev_value.clone(),
            },
            Command::Delete { key } => Wire {
                kind: 2,
                key: key.clone(),
                ..Wire::default()
            },
        };
        Bytes::from(wire.encode_to_vec())
    }

    /// The command an entry payload holds, if it holds one.
    pub fn decode(data: &[u8]) -> Option<Command> {
        let w = Wire::decode(data).ok()?;
        match w.kind {
            1 => Some(Command::Put {
                key: w.key,
                value: w.value,
                prev_value: w.prev_value,
            }),
            2 => Some(Command::Delete { key: w.key }),
            _ => None,
        }
    }
}

/// What applying a command did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reply {
    /// It took effect at `index`; `prev_value` is what the key held.
    Done {
        /// The log index it was applied at.
        index: u64,
        /// The key's value before (`None`: missing).
        prev_value: Option<String>,
    },
    /// A compare-and-set found another value (`actual`), and changed
    /// nothing.
    CompareFailed {
        /// What the key holds.
        actual: Option<String>,
    },
    /// The entry held no command this version understands; it was skipped
    /// (by every member alike).
    Invalid,
}

/// The map's snapshot form.
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotData {
    #[prost(btree_map = "string, string", tag = "1")]
    map: BTreeMap<String, String>,
}

/// The replicated map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, String>,
}

impl KvStore {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// Up to `limit` pairs whose key starts with `prefix` and, with
    /// `after`, comes after it, in key order; and whether there are more.
    /// The last key of one page is the next page's `after`.
    pub fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<(&str, &str)>, bool) {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = match after {
            Some(a) if a >= prefix => Excluded(a),
            _ => Included(prefix),
        };
        let mut it = self
            .map
            .range::<str, _>((start, Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let items: Vec<(&str, &str)> = it.by_ref().take(limit).collect();
        let more = it.next().is_some();
        (items, more)
    }

    /// How many keys the map holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl StateMachine for KvStore {
    type Response = Reply;

    fn apply(&mut self, index: u64, data: &[u8]) -> Reply {
        match Command::decode(data) {
            Some(Command::Put {
                key,
                value,
                prev_value,
            }) => {
                let current = self.map.get(&key);
                if let Some(expected) = &prev_value {
                    if current != Some(expected) {
                        return Reply::CompareFailed {
                            actual: current.cloned(),
                        };
                    }
                }
                let prev_value = self.map.insert(key, value);
                Reply::Done { index, prev_value }
            }
            Some(Command::Delete { key }) => Reply::Done {
                index,
                prev_value: self.map.remove(&key),
            },
            None => Reply::Invalid,
        }
    }

    /// Encodes the map as `SnapshotData` straight from the borrowed map,
    /// without the copy of every key and value a `SnapshotData` would need.
    fn snapshot(&self) -> Bytes {
        use prost::encoding::{btree_map, string};
        const TAG: u32 = 1;
        let len = btree_map::encoded_len(string::encoded_len, string::encoded_len, TAG, &self.map);
        let mut buf = Vec::with_capacity(len);
        btree_map::encode(
            |tag, key: &String, buf: &mut Vec<u8>| string::encode(tag, key, buf),
            string::encoded_len,
            |tag, value: &String, buf: &mut Vec<u8>| string::encode(tag, value, buf),
            string::encoded_len,
            TAG,
            &self.map,
            &mut buf,
        );
        Bytes::from(buf)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.map = SnapshotData::decode(snapshot)
            .map_err(|e| e.to_string())?
            .map;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, prev: Option<&str>) -> Bytes {
        Command::Put {
            key: key.into(),
            value: value.into(),
            prev_value: prev.map(String::from),
        }
        .encode()
    }

    #[test]
    fn puts_deletes_and_compare_and_set() {
        let mut s = KvStore::default();
        assert_eq!(
            s.apply(1, &put("a", "1", None)),
            Reply::Done {
                index: 1,
                prev_value: None
            }
        );
        assert_eq!(
            s.apply(2, &put("a", "2", Some("9"))),
            Reply::CompareFailed {
                actual: Some("1".into())
            }
        );
        assert_eq!(
            s.apply(3, &put("a", "2", Some("1"))),
            Reply::Done {
                index: 3,
                prev_value: Some("1".into())
            }
        );
        assert_eq!(
            s.apply(4, &put("b", "x", Some(""))),
            Reply::CompareFailed { actual: None },
            "a missing key is not the empty value"
        );
        let del = Command::Delete { key: "a".into() }.encode();
        assert_eq!(
            s.apply(5, &del),
            Reply::Done {
                index: 5,
                prev_value: Some("2".into())
            }
        );
        assert_eq!(s.get("a"), None);
        assert_eq!(s.apply(6, b"\xff\xff garbage"), Reply::Invalid);
    }

    #[test]
    fn scans_by_prefix_with_a_limit_and_snapshots_round_trip() {
        let mut s = KvStore::default();
        for (i, k) in ["a/1", "a/2", "a/3", "b/1"].iter().enumerate() {
            s.apply(i as u64 + 1, &put(k, "v", None));
        }
        assert_eq!(
            s.scan("a/", None, 2),
            (vec![("a/1", "v"), ("a/2", "v")], true)
        );
        assert!(!s.scan("a/", None, 3).1);
        assert_eq!(s.scan("c", None, 10), (vec![], false));
        assert_eq!(s.scan("a/", Some("a/2"), 5), (vec![("a/3", "v")], false));
        assert_eq!(s.scan("a/", Some("a/3"), 5), (vec![], false));
        assert_eq!(
            s.scan("a/", Some("0"), 1),
            (vec![("a/1", "v")], true),
            "before the prefix"
        );
        assert_eq!(s.scan("", Some("a/3"), 5), (vec![("b/1", "v")], false));
        let mut t = KvStore::default();
        let snapshot = s.snapshot();
        let owned = SnapshotData { map: s.map.clone() }.encode_to_vec();
        assert_eq!(snapshot, owned, "the borrowed encoding is SnapshotData's");
        t.restore(&snapshot).unwrap();
        assert_eq!(t, s);
        assert!(t.restore(b"\xff").is_err());
    }
}
