//! The key-value state machine the simulated cluster replicates, and the
//! commands clients send it.
//!
//! A command travels in a log entry as a prost message; the store applies
//! it deterministically, so every replica that applies the same entries
//! holds the same map. Snapshots are the whole map, encoded the same way.

use bytes::Bytes;
use prost::Message as _;
use std::collections::BTreeMap;

/// What a client asks of the store: the checker's key-value inputs, so a
/// recorded operation is checked as it was sent.
pub use crate::linearizability::KvInput as Op;
/// What the store answered: the checker's key-value outputs.
pub use crate::linearizability::KvOutput as Reply;

/// A command as it travels in a log entry: the operation and who asked.
#[derive(Clone, PartialEq, prost::Message)]
struct Command {
    #[prost(uint64, tag = "1")]
    request: u64,
    /// 0 get, 1 put, 2 append, 3 cas.
    #[prost(uint32, tag = "2")]
    kind: u32,
    #[prost(string, tag = "3")]
    key: String,
    #[prost(string, tag = "4")]
    value: String,
    #[prost(string, optional, tag = "5")]
    from: Option<String>,
}

/// Encodes `op`, asked by request `request`, as an entry payload.
pub fn encode(request: u64, op: &Op) -> Bytes {
    let (kind, key, value, from) = match op {
        Op::Get { key } => (0, key, String::new(), None),
        Op::Put { key, value } => (1, key, value.clone(), None),
        Op::Append { key, value } => (2, key, value.clone(), None),
        Op::Cas { key, from, to } => (3, key, to.clone(), from.clone()),
    };
    let c = Command {
        request,
        kind,
        key: key.clone(),
        value,
        from,
    };
    Bytes::from(c.encode_to_vec())
}

/// Decodes an entry payload into its request ID and operation; `None` for
/// anything that is not a command (the empty entry of a new leader).
pub fn decode(data: &[u8]) -> Option<(u64, Op)> {
    if data.is_empty() {
        return None;
    }
    let c = Command::decode(data).ok()?;
    let op = match c.kind {
        0 => Op::Get { key: c.key },
        1 => Op::Put {
            key: c.key,
            value: c.value,
        },
        2 => Op::Append {
            key: c.key,
            value: c.value,
        },
        3 => Op::Cas {
            key: c.key,
            from: c.from,
            to: c.value,
        },
        _ => return None,
    };
    Some((c.request, op))
}

/// The replicated map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, String>,
}

/// The snapshot form of the map.
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotData {
    #[prost(btree_map = "string, string", tag = "1")]
    map: BTreeMap<String, String>,
}

impl KvStore {
    /// Applies `op` and says what it returned.
    pub fn apply(&mut self, op: &Op) -> Reply {
        match op {
            Op::Get { key } => Reply::Value(self.map.get(key).cloned()),
            Op::Put { key, value } => {
                self.map.insert(key.clone(), value.clone());
                Reply::Done
            }
            Op::Append { key, value } => {
                self.map.entry(key.clone()).or_default().push_str(value);
                Reply::Done
            }
            Op::Cas { key, from, to } => {
                let matches = self.map.get(key) == from.as_ref();
                if matches {
                    self.map.insert(key.clone(), to.clone());
                }
                Reply::Swapped(matches)
            }
        }
    }

    /// Reads `key` without going through the log (the read side of
    /// ReadIndex, once the read's index is applied).
    pub fn get(&self, key: &str) -> Option<String> {
        self.map.get(key).cloned()
    }

    /// The whole map, encoded for a snapshot.
    pub fn snapshot(&self) -> Bytes {
        Bytes::from(
            SnapshotData {
                map: self.map.clone(),
            }
            .encode_to_vec(),
        )
    }

    /// The map a snapshot holds; an empty snapshot is an empty map.
    pub fn restore(data: &[u8]) -> Result<KvStore, prost::DecodeError> {
        Ok(KvStore {
            map: SnapshotData::decode(data)?.map,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let ops = [
            Op::Get { key: "k".into() },
            Op::Put {
                key: "k".into(),
                value: "v".into(),
            },
            Op::Append {
                key: "k".into(),
                value: "w".into(),
            },
            Op::Cas {
                key: "k".into(),
                from: None,
                to: "x".into(),
            },
            Op::Cas {
                key: "k".into(),
                from: Some(String::new()),
                to: "x".into(),
            },
        ];
        for (i, op) in (1..).zip(&ops) {
            assert_eq!(decode(&encode(i, op)), Some((i, op.clone())));
        }
        assert_eq!(decode(b""), None, "a leader's empty entry is no command");
    }

    #[test]
    fn store_applies_and_snapshots() {
        let mut s = KvStore::default();
        let k = || "k".to_string();
        assert_eq!(s.apply(&Op::Get { key: k() }), Reply::Value(None));
        let cas = |from: Option<&str>, to: &str| Op::Cas {
            key: k(),
            from: from.map(String::from),
            to: to.into(),
        };
        assert_eq!(s.apply(&cas(Some("a"), "b")), Reply::Swapped(false));
        assert_eq!(s.apply(&cas(None, "a")), Reply::Swapped(true));
        let append = Op::Append {
            key: k(),
            value: "z".into(),
        };
        assert_eq!(s.apply(&append), Reply::Done);
        assert_eq!(s.get("k").as_deref(), Some("az"));
        let restored = KvStore::restore(&s.snapshot()).unwrap();
        assert_eq!(restored, s);
        assert_eq!(KvStore::restore(b"").unwrap(), KvStore::default());
    }
}
