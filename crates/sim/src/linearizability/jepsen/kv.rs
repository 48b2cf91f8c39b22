//! Jepsen's kv histories: one EDN map a line,
//! `{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}`.

use super::edn::{parse_map, Value};
use super::{parse_lines, Completion, End, EventType, Pairing, ParseError, ParseErrorKind};
use crate::linearizability::{KvInput, KvOutput, Operation};

/// Parses a kv history for [`Kv`](crate::linearizability::Kv) (check it with
/// [`MissingKey::Empty`](crate::linearizability::MissingKey::Empty): these
/// histories read a missing key as "").
///
/// `:f` is `:get` (`:value` is what an `:ok` read), `:put` or `:append`
/// (`:value` is the value written). A `:fail` drops the operation; an
/// `:info`, or a call with no completion, leaves it unknown.
pub fn parse_kv(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>, ParseError> {
    let mut pairing = Pairing::new();
    parse_lines(text, |line, s| {
        let event = Event::parse(s)?;
        match event.ty {
            EventType::Invoke => pairing.invoke(line, event.process, event.input()?),
            EventType::End(end) => {
                pairing.complete(line, event.process, |input| event.completion(input, end))
            }
        }
    })?;
    Ok(pairing.finish())
}

/// The fields of one line.
struct Event {
    process: u64,
    ty: EventType,
    f: String,
    key: String,
    value: Value,
}

impl Event {
    /// Reads the fields of line `s`; a missing `:value` is `nil`.
    fn parse(s: &str) -> Result<Event, ParseErrorKind> {
        let mut entries = parse_map(s)?;
        let mut take = |name: &'static str| {
            let i = entries.iter().position(|(k, _)| k == name)?;
            Some(entries.swap_remove(i).1)
        };
        let process = take("process").ok_or(ParseErrorKind::MissingField("process"))?;
        let ty = take("type").ok_or(ParseErrorKind::MissingField("type"))?;
        let f = take("f").ok_or(ParseErrorKind::MissingField("f"))?;
        let key = take("key").ok_or(ParseErrorKind::MissingField("key"))?;
        let value = take("value").unwrap_or(Value::Nil);
        Ok(Event {
            process: match process {
                Value::Int(p) if p >= 0 => p.unsigned_abs(),
                v => return Err(bad("process", &v)),
            },
            ty: match ty {
                Value::Keyword(t) => EventType::parse(&t)?,
                v => return Err(bad("type", &v)),
            },
            f: match f {
                Value::Keyword(f) => f,
                v => return Err(bad("f", &v)),
            },
            key: match key {
                Value::Str(k) => k,
                Value::Int(k) => k.to_string(),
                v => return Err(bad("key", &v)),
            },
            value,
        })
    }

    /// The input of this call.
    fn input(&self) -> Result<KvInput, ParseErrorKind> {
        let key = self.key.clone();
        match self.f.as_str() {
            "get" => Ok(KvInput::Get { key }),
            "put" => Ok(KvInput::Put {
                key,
                value: self.string_value()?,
            }),
            "append" => Ok(KvInput::Append {
                key,
                value: self.string_value()?,
            }),
            f => Err(bad("f", &Value::Keyword(f.to_owned()))),
        }
    }

    /// How the call of `input` ended, this line being its completion.
    fn completion(
        &self,
        input: &KvInput,
        end: End,
    ) -> Result<Completion<KvOutput>, ParseErrorKind> {
        let called = match input {
            KvInput::Get { .. } => "get",
            KvInput::Put { .. } => "put",
            KvInput::Append { .. } => "append",
            KvInput::Cas { .. } => "cas",
        };
        if self.f != called || self.key != input.key() {
            return Err(ParseErrorKind::Mismatch);
        }
        Ok(match (end, input) {
            (End::Ok, KvInput::Get { .. }) => {
                Completion::Returned(KvOutput::Value(match &self.value {
                    Value::Nil => None,
                    _ => Some(self.string_value()?),
                }))
            }
            (End::Ok, _) => Completion::Returned(KvOutput::Done),
            (End::Fail, _) => Completion::Failed,
            (End::Info, _) => Completion::Unknown,
        })
    }

    /// The value as a string (an integer is taken as its digits).
    fn string_value(&self) -> Result<String, ParseErrorKind> {
        match &self.value {
            Value::Str(v) => Ok(v.clone()),
            Value::Int(v) => Ok(v.to_string()),
            v => Err(bad("value", v)),
        }
    }
}

/// `field` holds `value`, which it cannot.
fn bad(field: &'static str, value: &Value) -> ParseErrorKind {
    ParseErrorKind::BadField {
        field,
        text: format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_calls_with_completions() {
        let text = r#"{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}
{:process 1, :type :invoke, :f :get, :key "4", :value nil}
{:process 0, :type :ok, :f :append, :key "4", :value "x 0 1 y"}
{:process 1, :type :ok, :f :get, :key "4", :value ""}
{:process 2, :type :invoke, :f :put, :key 5, :value "v"}
{:process 3, :type :invoke, :f :get, :key "5"}
{:process 3, :type :fail, :f :get, :key "5", :value nil}
{:process 4, :type :invoke, :f :put, :key "6", :value "w"}
{:process 4, :type :info, :f :put, :key "6", :value "w"}
"#;
        let op = |client, call, ret, input, output| Operation {
            client,
            call,
            ret,
            input,
            output,
        };
        let s = |v: &str| v.to_owned();
        assert_eq!(
            parse_kv(text),
            Ok(vec![
                op(
                    0,
                    1,
                    Some(3),
                    KvInput::Append {
                        key: s("4"),
                        value: s("x 0 1 y")
                    },
                    Some(KvOutput::Done)
                ),
                op(
                    1,
                    2,
                    Some(4),
                    KvInput::Get { key: s("4") },
                    Some(KvOutput::Value(Some(s(""))))
                ),
                op(
                    2,
                    5,
                    None,
                    KvInput::Put {
                        key: s("5"),
                        value: s("v")
                    },
                    None
                ),
                op(
                    4,
                    8,
                    None,
                    KvInput::Put {
                        key: s("6"),
                        value: s("w")
                    },
                    None
                ),
            ])
        );
    }

    #[test]
    fn errors_name_the_line() {
        let call = r#"{:process 0, :type :invoke, :f :get, :key "1", :value nil}"#;
        let cases = [
            r#"{:process 0, :type :invoke, :f :get, :key "1""#,
            r#"{:type :invoke, :f :get, :key "1"}"#,
            r#"{:process 0, :f :get, :key "1"}"#,
            r#"{:process 0, :type :invoke, :key "1"}"#,
            r#"{:process 0, :type :invoke, :f :get}"#,
            r#"{:process -1, :type :invoke, :f :get, :key "1"}"#,
            r#"{:process 0, :type "invoke", :f :get, :key "1"}"#,
            r#"{:process 0, :type :invoke, :f "get", :key "1"}"#,
            r#"{:process 0, :type :invoke, :f :get, :key nil}"#,
            r#"{:process 0, :type :invoke, :f :scan, :key "1"}"#,
            r#"{:process 0, :type :invoke, :f :put, :key "1", :value nil}"#,
            r#"{:process 1, :type :ok, :f :get, :key "1", :value "a"}"#,
            call,
            r#"{:process 0, :type :ok, :f :get, :key "2", :value "a"}"#,
            r#"{:process 0, :type :ok, :f :put, :key "1", :value "a"}"#,
            r#"{:process 0, :type :ok, :f :get, :key "1", :value :a}"#,
        ];
        for bad in cases {
            let text = format!("{call}\n\n{bad}\n");
            let e = parse_kv(&text).expect_err(&text);
            assert_eq!(e.line, 3, "{text:?}: {e}");
        }
    }
}
