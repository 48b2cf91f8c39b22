//! A map of string keys to string values with get, put, append and
//! compare-and-set: the model of Jepsen's kv histories and of the
//! simulator's store. Keys are independent, so it partitions by key.

use super::Model;

/// What an operation on a [`Kv`] asks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read `key`.
    Get {
        /// The key read.
        key: String,
    },
    /// Set `key` to `value`.
    Put {
        /// The key set.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Append `value` to `key`'s value (a missing key counts as empty).
    Append {
        /// The key appended to.
        key: String,
        /// What is appended.
        value: String,
    },
    /// Set `key` to `to` if it holds `from` (`None`: missing).
    Cas {
        /// The key compared and set.
        key: String,
        /// The value expected; `None` expects the key missing.
        from: Option<String>,
        /// The value set if the expectation holds.
        to: String,
    },
}

impl KvInput {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Append { key, .. }
            | KvInput::Cas { key, .. } => key,
        }
    }
}

/// What an operation on a [`Kv`] returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value a `Get` read; `None` for a missing key.
    Value(Option<String>),
    /// A `Put` or `Append` took effect.
    Done,
    /// Whether a `Cas` matched (and so took effect).
    Swapped(bool),
}

/// How a [`Kv`] treats a key that was never written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MissingKey {
    /// Missing is distinct from the empty string: a get returns `None`, and
    /// only a cas from `None` matches it (the simulator's store).
    #[default]
    Absent,
    /// Missing is the same as the empty string: a get of it returning `None`
    /// or `Some("")` are both right, and a cas from `None` or `Some("")`
    /// both match it (Jepsen's kv histories, which read missing as "").
    Empty,
}

/// A string map, checked one key at a time; the state of a partition is the
/// value of its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    /// How a key that was never written reads.
    pub missing: MissingKey,
}

impl Kv {
    /// A map whose never-written keys behave as `missing` says.
    pub fn new(missing: MissingKey) -> Kv {
        Kv { missing }
    }

    /// `value` as this map compares it: under [`MissingKey::Empty`], missing
    /// is the empty string.
    fn view<'a>(&self, value: Option<&'a str>) -> Option<&'a str> {
        match (self.missing, value) {
            (MissingKey::Empty, None) => Some(""),
            _ => value,
        }
    }
}

impl Model for Kv {
    type State = Option<String>;
    type Input = KvInput;
    type Output = KvOutput;
    type Partition = String;

    fn init(&self) -> Option<String> {
        // Canonical: under `Empty`, missing and "" are one state.
        self.view(None).map(String::from)
    }

    fn step(
        &self,
        state: &Option<String>,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Option<Option<String>> {
        let current = self.view(state.as_deref());
        match (input, output) {
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Value(v))) => {
                (self.view(v.as_deref()) == current).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, None | Some(KvOutput::Done)) => Some(Some(value.clone())),
            (KvInput::Append { value, .. }, None | Some(KvOutput::Done)) => {
                Some(Some(format!("{}{value}", current.unwrap_or(""))))
            }
            (KvInput::Cas { from, to, .. }, output) => {
                let matches = self.view(from.as_deref()) == current;
                match output {
                    Some(o) if *o != KvOutput::Swapped(matches) => None,
                    _ if matches => Some(Some(to.clone())),
                    _ => Some(state.clone()),
                }
            }
            _ => None,
        }
    }

    fn partition(&self, input: &KvInput) -> String {
        input.key().to_owned()
    }
}
