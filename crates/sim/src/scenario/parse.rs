//! The script format: test cases in the style of etcd's `datadriven`
//! files.
//!
//! ```text
//! # Comments and blank lines between cases are kept as they are.
//!
//! command arg key=value key=(1,2,3) "quoted words"
//! ----
//! expected output
//! (until a blank line or the end of the file)
//! ```
//!
//! A case is a command line, optional input lines, a `----` line, then the
//! expected output up to the next blank line. The text between cases is
//! kept verbatim, so a file can be written back with new outputs
//! ([`Script::render`]) and differ from the original only in them.

use thiserror::Error;

/// The line that separates a command from its expected output.
pub const SEPARATOR: &str = "----";

/// A parsed script: its cases in order, and the text around them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Comments, blank lines and cases, in file order.
    pub blocks: Vec<Block>,
}

/// A stretch of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// Comment and blank lines between cases, verbatim.
    Text(Vec<String>),
    /// A test case.
    Case(Case),
}

/// One test case: a command and the output it must print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The 1-based line number of the command, for messages.
    pub line: usize,
    /// The command line as written.
    pub source: String,
    /// The command line, split into a name and arguments.
    pub directive: Directive,
    /// Lines between the command and the separator.
    pub input: Vec<String>,
    /// The expected output, one string per line.
    pub expected: Vec<String>,
}

/// A command name and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The command's name, the first word of the line.
    pub name: String,
    /// The arguments, in order.
    pub args: Vec<Arg>,
}

/// One argument: `value` (positional) or `key=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// The name before `=`, if any.
    pub key: Option<String>,
    /// The value.
    pub value: Value,
}

/// An argument's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A bare word, or a `"quoted string"` without its quotes.
    Word(String),
    /// A parenthesized list, `(1,2,3)` or `(2 3)`.
    List(Vec<String>),
}

/// A script that cannot be read, and where.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub kind: ParseErrorKind,
}

/// What is wrong with a script line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseErrorKind {
    /// A command whose expected output never starts.
    #[error("`{0}` has no `----` line after it")]
    MissingSeparator(String),
    /// A `"` that is never closed.
    #[error("unterminated quote")]
    UnterminatedQuote,
    /// A `(` that is never closed.
    #[error("unclosed `(`")]
    UnclosedParen,
    /// A `)` without its `(`, or lists inside lists.
    #[error("unbalanced parentheses")]
    UnbalancedParen,
    /// A quote or parenthesis in the middle of a word.
    #[error("`{0}`: quotes and parentheses must enclose a whole value")]
    MisplacedDelimiter(String),
    /// `=value` with nothing before the `=`.
    #[error("`{0}`: an argument name is missing before `=`")]
    EmptyKey(String),
}

fn error(line: usize, kind: ParseErrorKind) -> ParseError {
    ParseError { line, kind }
}

/// Parses a whole script.
pub fn parse(text: &str) -> Result<Script, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut text_lines = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            text_lines.push(line.to_string());
            i += 1;
            continue;
        }
        if !text_lines.is_empty() {
            blocks.push(Block::Text(std::mem::take(&mut text_lines)));
        }
        let (case, next) = parse_case(&lines, i)?;
        blocks.push(Block::Case(case));
        i = next;
    }
    if !text_lines.is_empty() {
        blocks.push(Block::Text(text_lines));
    }
    Ok(Script { blocks })
}

/// Parses the case whose command is at `lines[start]`; returns it and the
/// index of the first line after it (past the blank line ending it).
fn parse_case(lines: &[&str], start: usize) -> Result<(Case, usize), ParseError> {
    let line = start + 1;
    let source = lines[start].trim_end().to_string();
    let directive = parse_directive(&source).map_err(|kind| error(line, kind))?;
    let mut i = start + 1;
    let mut input = Vec::new();
    loop {
        match lines.get(i) {
            Some(l) if l.trim_end() == SEPARATOR => break,
            Some(l) if !l.trim().is_empty() => input.push(l.to_string()),
            _ => {
                return Err(error(
                    line,
                    ParseErrorKind::MissingSeparator(directive.name.clone()),
                ))
            }
        }
        i += 1;
    }
    i += 1;
    let mut expected = Vec::new();
    while let Some(l) = lines.get(i) {
        i += 1;
        if l.trim().is_empty() {
            break;
        }
        expected.push(l.to_string());
    }
    let case = Case {
        line,
        source,
        directive,
        input,
        expected,
    };
    Ok((case, i))
}

/// Splits a command line into its name and arguments.
pub fn parse_directive(line: &str) -> Result<Directive, ParseErrorKind> {
    let mut tokens = tokens(line)?.into_iter();
    let name = tokens.next().unwrap_or_default();
    let args = tokens.map(|t| arg(&t)).collect::<Result<_, _>>()?;
    Ok(Directive { name, args })
}

/// Splits on whitespace outside quotes and parentheses.
fn tokens(line: &str) -> Result<Vec<String>, ParseErrorKind> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut depth) = (false, 0);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            '(' if depth > 0 => return Err(ParseErrorKind::UnbalancedParen),
            '(' => depth += 1,
            ')' if depth == 0 => return Err(ParseErrorKind::UnbalancedParen),
            ')' => depth -= 1,
            c if c.is_whitespace() && depth == 0 => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quoted {
        return Err(ParseErrorKind::UnterminatedQuote);
    }
    if depth > 0 {
        return Err(ParseErrorKind::UnclosedParen);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// One token as an argument: `key=value` when an `=` comes before any
/// quote or parenthesis.
fn arg(token: &str) -> Result<Arg, ParseErrorKind> {
    let split = token
        .find('=')
        .filter(|&i| !token[..i].contains(['"', '(']));
    let (key, raw) = match split {
        Some(0) => return Err(ParseErrorKind::EmptyKey(token.to_string())),
        Some(i) => (Some(token[..i].to_string()), &token[i + 1..]),
        None => (None, token),
    };
    let misplaced = || ParseErrorKind::MisplacedDelimiter(token.to_string());
    let value = if let Some(inner) = raw.strip_prefix('(') {
        let inner = inner.strip_suffix(')').ok_or_else(misplaced)?;
        let items = inner
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Value::List(items)
    } else if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or_else(misplaced)?;
        if inner.contains('"') {
            return Err(misplaced());
        }
        Value::Word(inner.to_string())
    } else if raw.contains(['"', '(', ')']) {
        return Err(misplaced());
    } else {
        Value::Word(raw.to_string())
    };
    Ok(Arg { key, value })
}

impl Script {
    /// The script as text, each case with its `expected` lines: the
    /// inverse of [`parse`] for a well-formed file.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            match block {
                Block::Text(lines) => {
                    for l in lines {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
                Block::Case(case) => {
                    out.push_str(&case.source);
                    out.push('\n');
                    for l in case.input.iter().chain([&SEPARATOR.to_string()]) {
                        out.push_str(l);
                        out.push('\n');
                    }
                    for l in &case.expected {
                        out.push_str(l);
                        out.push('\n');
                    }
                    out.push('\n');
                }
            }
        }
        // One newline at the end, whatever the last block was.
        let trimmed = out.trim_end_matches('\n').len();
        out.truncate(trimmed);
        out.push('\n');
        out
    }

    /// The cases, in order.
    pub fn cases(&self) -> impl Iterator<Item = &Case> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Case(c) => Some(c),
            Block::Text(_) => None,
        })
    }

    /// The cases, mutably, to replace their expected output.
    pub fn cases_mut(&mut self) -> impl Iterator<Item = &mut Case> {
        self.blocks.iter_mut().filter_map(|b| match b {
            Block::Case(c) => Some(c),
            Block::Text(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(key: Option<&str>, v: &str) -> Arg {
        Arg {
            key: key.map(str::to_string),
            value: Value::Word(v.to_string()),
        }
    }

    fn list(key: Option<&str>, v: &[&str]) -> Arg {
        Arg {
            key: key.map(str::to_string),
            value: Value::List(v.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn arguments_are_words_lists_and_keys() {
        let d =
            parse_directive(r#"add-nodes 3 voters=(1,2, 3) "a b" pre-vote=false (4 5)"#).unwrap();
        assert_eq!(d.name, "add-nodes");
        assert_eq!(
            d.args,
            vec![
                word(None, "3"),
                list(Some("voters"), &["1", "2", "3"]),
                word(None, "a b"),
                word(Some("pre-vote"), "false"),
                list(None, &["4", "5"]),
            ]
        );
    }

    #[test]
    fn a_file_round_trips_and_keeps_its_comments() {
        let text = "# about\n\ncampaign 1\n----\n> 1 did\n  more\n\n# next\nraft-state\n----\n";
        let script = parse(text).unwrap();
        let cases: Vec<_> = script.cases().collect();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].line, 3);
        assert_eq!(cases[0].expected, vec!["> 1 did", "  more"]);
        assert_eq!(cases[1].line, 9);
        assert!(cases[1].expected.is_empty());
        assert_eq!(script.render(), text.trim_end().to_string() + "\n");
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        let cases: [(&str, usize, ParseErrorKind); 6] = [
            (
                "# c\ncampaign 1\nraft-state\n",
                2,
                ParseErrorKind::MissingSeparator("campaign".into()),
            ),
            (
                "\n\npropose 1 \"x\n----\n",
                3,
                ParseErrorKind::UnterminatedQuote,
            ),
            (
                "partition (1 (2))\n----\n",
                1,
                ParseErrorKind::UnbalancedParen,
            ),
            ("partition (1\n----\n", 1, ParseErrorKind::UnclosedParen),
            (
                "x a(b)\n----\n",
                1,
                ParseErrorKind::MisplacedDelimiter("a(b)".into()),
            ),
            ("x =3\n----\n", 1, ParseErrorKind::EmptyKey("=3".into())),
        ];
        for (text, line, kind) in cases {
            assert_eq!(parse(text), Err(ParseError { line, kind }), "{text:?}");
        }
        let err = parse("a\n----\n\nb 1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 4: `b` has no `----` line after it");
    }
}
