//! Parsers for the histories Jepsen records, one event a line, into
//! [`Operation`]s for [`check`](super::check).
//!
//! Each line is a call (`invoke`) or a completion of the call a process has
//! under way: `ok` (returned), `fail` (did not take effect) or `info`
//! (unknown). A call becomes one operation, in call order; its time and its
//! return's are their line numbers. A `fail` drops the operation (it had no
//! effect), except where the format says otherwise; an `info`, or a call
//! still under way at the end, leaves the return unknown.

mod edn;
mod kv;
mod register;

pub use kv::parse_kv;
pub use register::parse_register;

use super::Operation;
use std::collections::HashMap;
use thiserror::Error;

/// A line that could not be parsed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ParseErrorKind,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseErrorKind {
    /// The line does not have the shape of an event.
    #[error("not an event: {0}")]
    Syntax(&'static str),
    /// A field holds something it cannot.
    #[error("bad {field} {text:?}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What it held.
        text: String,
    },
    /// A field every event needs is absent.
    #[error("missing :{0}")]
    MissingField(&'static str),
    /// A completion for a process with no call under way.
    #[error("process {0} has no call under way")]
    NoCall(u64),
    /// A call by a process whose previous call is still under way.
    #[error("process {process} calls while its call on line {line} is under way")]
    CallUnderWay {
        /// The process.
        process: u64,
        /// The line of the call under way.
        line: usize,
    },
    /// A completion whose function or key differs from its call's.
    #[error("the completion does not match the call under way")]
    Mismatch,
}

/// The kind of an event line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    /// A call.
    Invoke,
    /// The completion of the process's call under way.
    End(End),
}

/// The kind of a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Returned.
    Ok,
    /// Did not take effect (or, for some functions, returned a failure).
    Fail,
    /// Unknown.
    Info,
}

impl EventType {
    /// Parses a type keyword without its colon.
    fn parse(s: &str) -> Result<EventType, ParseErrorKind> {
        match s {
            "invoke" => Ok(EventType::Invoke),
            "ok" => Ok(EventType::End(End::Ok)),
            "fail" => Ok(EventType::End(End::Fail)),
            "info" => Ok(EventType::End(End::Info)),
            _ => Err(ParseErrorKind::BadField {
                field: "type",
                text: s.to_owned(),
            }),
        }
    }
}

/// How a call ended.
enum Completion<O> {
    /// It returned `O`.
    Returned(O),
    /// It did not take effect: the operation is dropped.
    Failed,
    /// It may or may not have taken effect.
    Unknown,
}

/// Operations being assembled from calls and completions, matched by
/// process.
struct Pairing<I, O> {
    /// In call order; `None` for those dropped by a `fail`.
    ops: Vec<Option<Operation<I, O>>>,
    /// Each process's call under way: its operation and line.
    under_way: HashMap<u64, (usize, usize)>,
}

impl<I, O> Pairing<I, O> {
    fn new() -> Pairing<I, O> {
        Pairing {
            ops: Vec::new(),
            under_way: HashMap::new(),
        }
    }

    /// Records a call of `input` by `process` at `line`.
    fn invoke(&mut self, line: usize, process: u64, input: I) -> Result<(), ParseErrorKind> {
        if let Some(&(_, call_line)) = self.under_way.get(&process) {
            return Err(ParseErrorKind::CallUnderWay {
                process,
                line: call_line,
            });
        }
        self.under_way.insert(process, (self.ops.len(), line));
        self.ops.push(Some(Operation {
            client: process,
            call: line as u64,
            ret: None,
            input,
            output: None,
        }));
        Ok(())
    }

    /// Ends `process`'s call under way at `line`, as `end` says given the
    /// call's input.
    fn complete(
        &mut self,
        line: usize,
        process: u64,
        end: impl FnOnce(&I) -> Result<Completion<O>, ParseErrorKind>,
    ) -> Result<(), ParseErrorKind> {
        let (index, _) = self
            .under_way
            .remove(&process)
            .ok_or(ParseErrorKind::NoCall(process))?;
        let slot = self
            .ops
            .get_mut(index)
            .ok_or(ParseErrorKind::NoCall(process))?;
        let Some(op) = slot else {
            return Err(ParseErrorKind::NoCall(process));
        };
        match end(&op.input)? {
            Completion::Returned(output) => {
                op.ret = Some(line as u64);
                op.output = Some(output);
            }
            Completion::Failed => *slot = None,
            Completion::Unknown => {}
        }
        Ok(())
    }

    /// The history: every call not dropped, in call order.
    fn finish(self) -> Vec<Operation<I, O>> {
        self.ops.into_iter().flatten().collect()
    }
}

/// Runs `parse_line` on each non-blank line of `text` with its number,
/// attaching the number to the first error.
fn parse_lines(
    text: &str,
    mut parse_line: impl FnMut(usize, &str) -> Result<(), ParseErrorKind>,
) -> Result<(), ParseError> {
    for (line, s) in (1..).zip(text.lines()) {
        let s = s.trim();
        if !s.is_empty() {
            parse_line(line, s).map_err(|kind| ParseError { line, kind })?;
        }
    }
    Ok(())
}

/// Parses a process number.
fn process(s: &str) -> Result<u64, ParseErrorKind> {
    s.parse().map_err(|_| ParseErrorKind::BadField {
        field: "process",
        text: s.to_owned(),
    })
}
