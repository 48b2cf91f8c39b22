//! A single register with read, write and compare-and-set: the model of
//! Jepsen's register histories.

use super::Model;

/// What an operation on a [`Register`] asks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Set the value.
    Write(i64),
    /// Set the value to `to` if it is `from`.
    Cas {
        /// The value expected.
        from: i64,
        /// The value set if the expectation holds.
        to: i64,
    },
}

/// What an operation on a [`Register`] returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// The value a `Read` saw; `None` before any write.
    Value(Option<i64>),
    /// A `Write` took effect.
    Done,
    /// Whether a `Cas` matched (and so took effect); Jepsen's `fail` on a
    /// cas is `Swapped(false)`.
    Swapped(bool),
}

/// A single integer register that starts missing. Its values are integers
/// because Jepsen's register histories use small integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Register;

impl Model for Register {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;
    type Partition = ();

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<Option<i64>> {
        let (after, result) = match *input {
            RegisterInput::Read => (*state, RegisterOutput::Value(*state)),
            RegisterInput::Write(v) => (Some(v), RegisterOutput::Done),
            RegisterInput::Cas { from, to } => {
                let matches = *state == Some(from);
                let after = if matches { Some(to) } else { *state };
                (after, RegisterOutput::Swapped(matches))
            }
        };
        match output {
            Some(o) if *o != result => None,
            _ => Some(after),
        }
    }

    fn partition(&self, _: &RegisterInput) {}
}
