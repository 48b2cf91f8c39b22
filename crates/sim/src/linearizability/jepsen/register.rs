//! Jepsen's register histories: `INFO  jepsen.util - <process>\t:<type>\t:<f>\t<value>`.

use super::{
    parse_lines, process, Completion, End, EventType, Pairing, ParseError, ParseErrorKind,
};
use crate::linearizability::{Operation, RegisterInput, RegisterOutput};

/// Parses a register history for [`Register`](crate::linearizability::Register).
///
/// `<f>` is `read` (value `nil` on the call, the value read or `nil` on
/// `ok`), `write` (the value) or `cas` (`[from to]`). A `fail` on a cas
/// means the compare did not match: it returned `Swapped(false)`. A `fail`
/// on anything else drops the operation; an `info` leaves it unknown.
pub fn parse_register(
    text: &str,
) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, ParseError> {
    let mut pairing = Pairing::new();
    parse_lines(text, |line, s| {
        let (_, event) = s
            .split_once(" - ")
            .ok_or(ParseErrorKind::Syntax("no \" - \" before the event"))?;
        let fields: Vec<&str> = event.split('\t').map(str::trim).collect();
        let [p, ty, f, value] = fields[..] else {
            return Err(ParseErrorKind::Syntax(
                "expected process, type, function and value separated by tabs",
            ));
        };
        let p = process(p)?;
        let f = keyword(f, "function")?;
        match EventType::parse(keyword(ty, "type")?)? {
            EventType::Invoke => pairing.invoke(line, p, input(f, value)?),
            EventType::End(end) => {
                pairing.complete(line, p, |input| completion(input, end, f, value))
            }
        }
    })?;
    Ok(pairing.finish())
}

/// `s` without its leading colon.
fn keyword<'a>(s: &'a str, field: &'static str) -> Result<&'a str, ParseErrorKind> {
    s.strip_prefix(':').ok_or_else(|| ParseErrorKind::BadField {
        field,
        text: s.to_owned(),
    })
}

/// The input of a call of `f` with `value`.
fn input(f: &str, value: &str) -> Result<RegisterInput, ParseErrorKind> {
    match f {
        "read" => Ok(RegisterInput::Read),
        "write" => Ok(RegisterInput::Write(int(value)?)),
        "cas" => {
            let pair = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or_else(|| bad_value(value))?;
            let mut parts = pair.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(from), Some(to), None) => Ok(RegisterInput::Cas {
                    from: int(from)?,
                    to: int(to)?,
                }),
                _ => Err(bad_value(value)),
            }
        }
        _ => Err(ParseErrorKind::BadField {
            field: "function",
            text: f.to_owned(),
        }),
    }
}

/// How a call of `input` ended, given the completion's type, function and
/// value.
fn completion(
    input: &RegisterInput,
    end: End,
    f: &str,
    value: &str,
) -> Result<Completion<RegisterOutput>, ParseErrorKind> {
    let called = match input {
        RegisterInput::Read => "read",
        RegisterInput::Write(_) => "write",
        RegisterInput::Cas { .. } => "cas",
    };
    if f != called {
        return Err(ParseErrorKind::Mismatch);
    }
    Ok(match (end, input) {
        (End::Ok, RegisterInput::Read) => {
            let read = if value == "nil" {
                None
            } else {
                Some(int(value)?)
            };
            Completion::Returned(RegisterOutput::Value(read))
        }
        (End::Ok, RegisterInput::Write(_)) => Completion::Returned(RegisterOutput::Done),
        (End::Ok, RegisterInput::Cas { .. }) => Completion::Returned(RegisterOutput::Swapped(true)),
        (End::Fail, RegisterInput::Cas { .. }) => {
            Completion::Returned(RegisterOutput::Swapped(false))
        }
        (End::Fail, _) => Completion::Failed,
        (End::Info, _) => Completion::Unknown,
    })
}

/// Parses a register value.
fn int(s: &str) -> Result<i64, ParseErrorKind> {
    s.parse().map_err(|_| bad_value(s))
}

fn bad_value(s: &str) -> ParseErrorKind {
    ParseErrorKind::BadField {
        field: "value",
        text: s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(process: &str, ty: &str, f: &str, value: &str) -> String {
        format!("INFO  jepsen.util - {process}\t:{ty}\t:{f}\t{value}\n")
    }

    #[test]
    fn pairs_calls_with_completions() {
        let text = [
            line("0", "invoke", "read", "nil"),
            line("1", "invoke", "write", "3"),
            line("0", "ok", "read", "nil"),
            line("1", "ok", "write", "3"),
            "\n".to_owned(),
            line("0", "invoke", "cas", "[3 4]"),
            line("1", "invoke", "cas", "[1 2]"),
            line("0", "ok", "cas", "[3 4]"),
            line("1", "fail", "cas", "[1 2]"),
            line("2", "invoke", "write", "1"),
            line("3", "invoke", "read", "nil"),
            line("2", "info", "write", ":timed-out"),
            line("3", "fail", "read", "nil"),
            line("4", "invoke", "read", "nil"),
        ]
        .concat();
        let op = |client, call, ret, input, output| Operation {
            client,
            call,
            ret,
            input,
            output,
        };
        use RegisterInput::*;
        use RegisterOutput::*;
        assert_eq!(
            parse_register(&text),
            Ok(vec![
                op(0, 1, Some(3), Read, Some(Value(None))),
                op(1, 2, Some(4), Write(3), Some(Done)),
                op(0, 6, Some(8), Cas { from: 3, to: 4 }, Some(Swapped(true))),
                op(1, 7, Some(9), Cas { from: 1, to: 2 }, Some(Swapped(false))),
                op(2, 10, None, Write(1), None),
                op(4, 14, None, Read, None),
            ])
        );
    }

    #[test]
    fn errors_name_the_line() {
        let call = line("0", "invoke", "read", "nil");
        let cases = [
            ("INFO 0\t:invoke\t:read\tnil\n".to_owned(), 1),
            ("INFO  jepsen.util - 0\t:invoke\t:read\n".to_owned(), 1),
            (line("x", "invoke", "read", "nil"), 1),
            (line("0", "call", "read", "nil"), 1),
            (line("0", "invoke", "scan", "nil"), 1),
            (line("0", "invoke", "write", "one"), 1),
            (line("0", "invoke", "cas", "[1]"), 1),
            (line("0", "invoke", "cas", "[1 2 3]"), 1),
            (line("0", "ok", "read", "1"), 1),
            (call.clone() + &call, 2),
            (call.clone() + &line("0", "ok", "write", "1"), 2),
            (call.clone() + &line("0", "ok", "read", "x"), 2),
        ];
        for (text, at) in cases {
            let e = parse_register(&text).expect_err(&text);
            assert_eq!(e.line, at, "{text:?}: {e}");
        }
    }
}
