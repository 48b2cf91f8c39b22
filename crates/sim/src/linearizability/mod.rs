//! Linearizability checking of recorded histories.
//!
//! A history is linearizable when every operation can be given a single
//! instant, between its call and its return, at which it takes effect, such
//! that applying the operations one at a time in the order of those instants
//! to a sequential [`Model`] gives every operation the output it actually
//! returned.
//!
//! [`check`] decides this with Wing and Gong's search as improved by Lowe
//! ("Testing for linearizability", 2017): the calls and returns sit in one
//! doubly linked list in time order; an operation whose call comes before
//! the first remaining return may be linearized next, which lifts its call
//! and return out of the list; when nothing can go next, the last choice is
//! undone (unlifted) and the next candidate tried. A cache of every
//! (set of linearized operations, model state) configuration reached prunes
//! the search: two configurations with the same set and state have the same
//! future, so the second one is never explored.
//!
//! The history is first split by [`Model::partition`] (for a key-value map,
//! by key) and each part is searched on its own. Linearizability is
//! compositional (Herlihy and Wing), so the whole history is linearizable
//! iff every part is, and many small searches are exponentially cheaper
//! than one large one.
//!
//! Operations whose outcome is unknown (`ret: None`: a timeout, Jepsen's
//! `info`, a call still pending at the end) may take effect at any instant
//! after their call, with any output, or not at all. The search may
//! linearize them anywhere after their call like the others, ignoring
//! their recorded output, and never requires them: the search succeeds
//! once every operation with a known return is linearized. This is exactly
//! their meaning, so it is sound (no false alarms) and complete (no missed
//! violation) for every model. Three reductions keep the search small
//! without changing its answer, since they only skip choices some other
//! choice matches:
//! - an unknown operation that would leave the state unchanged is not
//!   linearized: leaving it out instead changes no state and no other
//!   operation's candidacy (it has no return), and keeps it available;
//! - of unknown operations with equal inputs, only the earliest (by call)
//!   not yet linearized may be: any linearization using a later one can
//!   use the earlier one in its place, which real time also allows there;
//! - a configuration is not explored when one with the same operations of
//!   known outcome and state, but a subset of its unknown ones, was: the
//!   unknown operations it has used up can only have narrowed its choices.
//!
//! When a partition is not linearizable, the counterexample names a small
//! set of its operations that conflict, found by relaxing the others one
//! run at a time while the rest stays not linearizable (see
//! [`Counterexample::conflict`]).
//!
//! [`Register`] and [`Kv`] are the sequential models; [`jepsen`] parses the
//! histories Jepsen records, which come with known verdicts.

mod bitset;
mod explored;
pub mod jepsen;
mod kv;
mod register;
mod shrink;
mod wgl;

#[cfg(test)]
mod tests;

pub use kv::{Kv, KvInput, KvOutput, MissingKey};
pub use register::{Register, RegisterInput, RegisterOutput};

use std::collections::HashMap;
use std::fmt::{self, Debug, Write as _};
use std::hash::Hash;

/// One operation of a history: what was asked, when, and what came back.
///
/// Times come from any clock that never runs backwards; operation `a`
/// precedes `b` in real time only if `a.ret < b.call` (strictly), so
/// operations that share an instant count as concurrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// Who called it; only used to describe counterexamples.
    pub client: u64,
    /// When it was called.
    pub call: u64,
    /// When it returned; `None` when the outcome is unknown: it may take
    /// effect at any time after `call`, or never. A return earlier than the
    /// call is taken as returning at the call.
    pub ret: Option<u64>,
    /// What was asked.
    pub input: I,
    /// What it returned; `None` when `ret` is. Ignored when `ret` is
    /// `None`; with a known `ret`, `None` means the output was not recorded,
    /// and any output is accepted.
    pub output: Option<O>,
}

/// A sequential specification: what each operation does and returns when
/// operations run one at a time.
///
/// The checker only ever runs a model on the operations of one partition,
/// so [`Model::State`] is the state of one partition (for [`Kv`], the value
/// of one key) and [`Model::init`] its initial state.
pub trait Model {
    /// The state of one partition. Hashed and compared to recognise
    /// configurations the search has already explored, so it should be
    /// canonical: equal states must compare equal.
    type State: Clone + Eq + Hash;
    /// What an operation asks. Hashed and compared to recognise operations
    /// of unknown outcome that are interchangeable.
    type Input: Eq + Hash;
    /// What an operation returns.
    type Output;
    /// Names a partition: operations of different partitions never affect
    /// each other, so each partition is checked on its own. Models without
    /// independent parts use `()`.
    type Partition: Eq + Hash;

    /// The state of a partition before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`: the new state if the operation, run from
    /// `state`, returns `output`, or `None` if it cannot. An `output` of
    /// `None` is unknown: any result is acceptable.
    ///
    /// It must be a function of its arguments: the search relies on the
    /// same step from the same state always giving the same answer.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// The partition `input` belongs to.
    fn partition(&self, input: &Self::Input) -> Self::Partition;
}

/// The outcome of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations explains every output.
    Linearizable,
    /// No order does; the counterexample shows where the search got stuck.
    NotLinearizable(Counterexample),
    /// The step budget ran out before the search finished.
    Unknown,
}

/// Why a history is not linearizable, as indexes into the checked history.
///
/// All operations named belong to one partition: the first, in order of
/// first appearance, found not linearizable. A partial linearization is a
/// sequence of its operations that respects real time (no operation in it
/// is preceded in real time by one not in it) and the model (applied in
/// order from the initial state, each returns what it returned; those of
/// unknown outcome anything). `linearized` is one holding as many
/// operations of known outcome as any does, and no operation of known
/// outcome can follow it, directly or after any operations of unknown
/// outcome. `next` are the operations of known outcome real time allows
/// right after it (those not in `linearized` called no later than the
/// earliest return among them): each is rejected by the model there.
///
/// `conflict` is usually the most telling part: a few operations that
/// cannot be ordered whatever the rest of the history returned. Let the
/// window be the partition's operations called no later than the earliest
/// return among those not in `linearized` (by themselves not linearizable).
/// Then `conflict` holds operations of the window, all of known outcome,
/// that are not linearizable even when every other operation of the window
/// is relaxed: it may have returned anything, or had no effect at all (if
/// it had one, still between its call and its return). So they are not
/// linearizable by themselves either; and relaxing any one of them too
/// makes the window linearizable, so each is needed (the set is
/// 1-minimal). The others are relaxed rather than removed because removing,
/// say, the write a stale read saw would leave a read of a value never
/// written: a conflict the history does not have. If the step budget of
/// [`check`] runs out while the set is being shrunk, `conflict` is the
/// smallest found so far: still not linearizable, but maybe not minimal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// A minimal conflicting set: operations of known outcome that no
    /// order explains, each one needed; in history order, never empty.
    pub conflict: Vec<usize>,
    /// The partial linearization, in linearization order; it may include
    /// operations of unknown outcome.
    pub linearized: Vec<usize>,
    /// The operations of known outcome that could come next by real time,
    /// each rejected by the model; in history order, never empty.
    pub next: Vec<usize>,
}

impl Counterexample {
    /// A multi-line description naming each operation with its client,
    /// times, input and output, for failure messages: the conflicting set
    /// first, then where the search got stuck.
    pub fn describe<I: Debug, O: Debug>(&self, history: &[Operation<I, O>]) -> String {
        let mut s = String::from("minimal conflicting set (no order explains these):\n");
        describe_ops(&mut s, history, &self.conflict);
        s.push_str("longest partial linearization:\n");
        describe_ops(&mut s, history, &self.linearized);
        s.push_str("could come next, but the model rejects each:\n");
        describe_ops(&mut s, history, &self.next);
        s
    }
}

/// Appends one line per operation of `ops` to `s`.
fn describe_ops<I: Debug, O: Debug>(s: &mut String, history: &[Operation<I, O>], ops: &[usize]) {
    for &i in ops {
        // Indexes come from the checker, but the caller may pass another history.
        let Some(op) = history.get(i) else {
            let _ = writeln!(s, "  #{i}: not in this history");
            continue;
        };
        let _ = writeln!(
            s,
            "  #{i} client {} [{}, {}] {:?} -> {}",
            op.client,
            op.call,
            Ret(op.ret),
            op.input,
            Out(op.output.as_ref()),
        );
    }
}

/// Displays a return time, `?` when unknown.
struct Ret(Option<u64>);

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("?"),
        }
    }
}

/// Displays an output, `?` when unknown.
struct Out<'a, O>(Option<&'a O>);

impl<O: Debug> fmt::Display for Out<'_, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(o) => write!(f, "{o:?}"),
            None => f.write_str("?"),
        }
    }
}

/// Checks whether `history` is linearizable with respect to `model`.
///
/// `budget` bounds the search in steps (one step tries one candidate
/// operation or undoes one choice), summed over all partitions and the
/// shrinking of the counterexample to its conflicting set; `None` is
/// unbounded. Steps rather than wall-clock time keep the verdict a function
/// of the history alone, so a simulation run replays identically. Each
/// partition is searched in order of first appearance; the first one found
/// not linearizable decides the verdict, otherwise a partition that ran out
/// of budget makes it [`Verdict::Unknown`].
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Option<u64>,
) -> Verdict {
    let mut steps = wgl::Steps::new(budget);
    let mut out_of_budget = false;
    let none_relaxed = bitset::Bitset::new(0);
    for part in partitions(model, history) {
        match wgl::search(model, history, &part, &none_relaxed, &mut steps) {
            wgl::Outcome::Linearizable => {}
            wgl::Outcome::NotLinearizable(stuck) => {
                return Verdict::NotLinearizable(Counterexample {
                    conflict: shrink::conflict(model, history, &stuck.called, &mut steps),
                    linearized: stuck.linearized,
                    next: stuck.next,
                })
            }
            wgl::Outcome::OutOfBudget => out_of_budget = true,
        }
    }
    if out_of_budget {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    }
}

/// The indexes of `history` grouped by partition, partitions in order of
/// first appearance and indexes ascending within each.
fn partitions<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> Vec<Vec<usize>> {
    let mut index: HashMap<M::Partition, usize> = HashMap::new();
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        let next = parts.len();
        let p = *index.entry(model.partition(&op.input)).or_insert(next);
        if p == next {
            parts.push(Vec::new());
        }
        parts[p].push(i);
    }
    parts
}
