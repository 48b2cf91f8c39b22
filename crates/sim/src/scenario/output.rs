//! What a command prints: lines, indented by nesting (a Ready's contents
//! under the Ready, a message's effects under the message).

use crate::invariants::Violation;

/// The prefix of a safety violation in the output, which the expected
/// output of a scenario must never contain.
pub const VIOLATION: &str = "VIOLATION:";

/// The lines a command printed so far.
#[derive(Debug, Default)]
pub struct Output {
    lines: Vec<String>,
}

impl Output {
    /// Prints `text` indented `depth` levels.
    pub fn line(&mut self, depth: usize, text: impl AsRef<str>) {
        let text = text.as_ref();
        // A blank line would end the case's output when read back.
        if !text.trim().is_empty() {
            self.lines.push(format!("{}{text}", "  ".repeat(depth)));
        }
    }

    /// Prints a violation, if `result` is one.
    pub fn check(&mut self, depth: usize, result: Result<(), Violation>) {
        if let Err(v) = result {
            self.line(depth, format!("{VIOLATION} {v}"));
        }
    }

    /// Whether nothing was printed.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Prints what `other` holds, after what this holds.
    pub fn append(&mut self, other: Output) {
        self.lines.extend(other.lines);
    }

    /// The lines printed.
    pub fn into_lines(self) -> Vec<String> {
        self.lines
    }
}
