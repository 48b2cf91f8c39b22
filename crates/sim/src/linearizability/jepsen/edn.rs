//! Just enough EDN to read one flat map a line, as in
//! `{:process 0, :type :invoke, :f :get, :key "4", :value nil}`.

use super::ParseErrorKind;
use std::iter::Peekable;
use std::str::Chars;

/// A value of a flat EDN map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    /// `:name`, without the colon.
    Keyword(String),
    /// `"text"`, unescaped.
    Str(String),
    /// An integer.
    Int(i64),
    /// `nil`.
    Nil,
}

/// Parses `{:key value ...}` into its entries, in order. Commas count as
/// whitespace, as in EDN.
pub(super) fn parse_map(s: &str) -> Result<Vec<(String, Value)>, ParseErrorKind> {
    let mut chars = s.chars().peekable();
    skip_space(&mut chars);
    if chars.next() != Some('{') {
        return Err(ParseErrorKind::Syntax("expected '{'"));
    }
    let mut entries = Vec::new();
    loop {
        skip_space(&mut chars);
        match chars.peek() {
            Some('}') => {
                chars.next();
                break;
            }
            Some(':') => {
                let Value::Keyword(key) = value(&mut chars)? else {
                    return Err(ParseErrorKind::Syntax("expected a keyword key"));
                };
                skip_space(&mut chars);
                entries.push((key, value(&mut chars)?));
            }
            Some(_) => return Err(ParseErrorKind::Syntax("expected a keyword key")),
            None => return Err(ParseErrorKind::Syntax("expected '}'")),
        }
    }
    skip_space(&mut chars);
    match chars.next() {
        None => Ok(entries),
        Some(_) => Err(ParseErrorKind::Syntax("text after '}'")),
    }
}

fn skip_space(chars: &mut Peekable<Chars<'_>>) {
    while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
}

/// Reads one value.
fn value(chars: &mut Peekable<Chars<'_>>) -> Result<Value, ParseErrorKind> {
    match chars.peek() {
        Some('"') => {
            chars.next();
            string(chars).map(Value::Str)
        }
        Some(':') => {
            chars.next();
            let name = atom(chars);
            if name.is_empty() {
                return Err(ParseErrorKind::Syntax("empty keyword"));
            }
            Ok(Value::Keyword(name))
        }
        Some(_) => {
            let a = atom(chars);
            if a == "nil" {
                return Ok(Value::Nil);
            }
            a.parse()
                .map(Value::Int)
                .map_err(|_| ParseErrorKind::BadField {
                    field: "value",
                    text: a,
                })
        }
        None => Err(ParseErrorKind::Syntax("expected a value")),
    }
}

/// Reads up to the next delimiter.
fn atom(chars: &mut Peekable<Chars<'_>>) -> String {
    let mut s = String::new();
    while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !matches!(c, ',' | '{' | '}' | '"'))
    {
        s.push(c);
    }
    s
}

/// Reads the rest of a string whose opening quote was consumed.
fn string(chars: &mut Peekable<Chars<'_>>) -> Result<String, ParseErrorKind> {
    let mut s = String::new();
    loop {
        match chars.next() {
            Some('"') => return Ok(s),
            Some('\\') => s.push(match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some(c @ ('"' | '\\')) => c,
                _ => return Err(ParseErrorKind::Syntax("bad escape in a string")),
            }),
            Some(c) => s.push(c),
            None => return Err(ParseErrorKind::Syntax("unterminated string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_flat_map() {
        let m = parse_map(r#" {:process 3, :type :ok, :key "a, \"b\"}", :value nil, :n -2} "#);
        assert_eq!(
            m,
            Ok(vec![
                ("process".into(), Value::Int(3)),
                ("type".into(), Value::Keyword("ok".into())),
                ("key".into(), Value::Str("a, \"b\"}".into())),
                ("value".into(), Value::Nil),
                ("n".into(), Value::Int(-2)),
            ])
        );
    }

    #[test]
    fn rejects_malformed_maps() {
        for bad in [
            "",
            "{",
            "{:a}",
            "{:a 1",
            "{a 1}",
            "{:a \"x}",
            "{:a \"\\q\"}",
            "{:a 1} x",
            "{:a 1x}",
            "{: 1}",
        ] {
            assert!(parse_map(bad).is_err(), "{bad:?} parsed");
        }
    }
}
