//! One-line descriptions of messages and entries, for traces and scenario
//! output: `1->2 MsgApp term=2 log=1/5 commit=4 entries=[2/6 "x"]`.
//!
//! Each message type shows the fields that mean something for it, so a
//! trace reads like the paper's description of the exchange.

use rudder_raft::confchange::decode_conf_change;
use rudder_raft::{ConfState, Entry, EntryType, Message, MessageType};
use std::fmt::Write as _;

/// Payloads longer than this are cut, with `…`.
const MAX_DATA: usize = 24;

/// `from->to MsgX` and the fields that matter for that type.
pub fn message(m: &Message) -> String {
    let Some(kind) = m.kind() else {
        return format!("{}->{} unknown type {}", m.from, m.to, m.msg_type);
    };
    let mut s = format!(
        "{}->{} Msg{} term={}",
        m.from,
        m.to,
        kind.short_name(),
        m.term
    );
    use MessageType::*;
    match kind {
        MsgApp => {
            let _ = write!(s, " log={}/{} commit={}", m.log_term, m.index, m.commit);
            if !m.entries.is_empty() {
                let _ = write!(s, " entries={}", entries(&m.entries));
            }
        }
        MsgAppResp => {
            if m.reject {
                let _ = write!(
                    s,
                    " rejected={} hint={}/{}",
                    m.index, m.log_term, m.reject_hint
                );
            } else {
                let _ = write!(s, " index={}", m.index);
            }
            if m.commit != 0 {
                let _ = write!(s, " commit={}", m.commit);
            }
        }
        MsgVote | MsgPreVote => {
            let _ = write!(s, " log={}/{}", m.log_term, m.index);
            if !m.context.is_empty() {
                let _ = write!(s, " {}", String::from_utf8_lossy(&m.context));
            }
        }
        MsgVoteResp | MsgPreVoteResp => {
            s.push_str(if m.reject { " rejected" } else { " granted" });
        }
        MsgHeartbeat => {
            let _ = write!(s, " commit={}", m.commit);
            context(&mut s, m);
        }
        MsgHeartbeatResp => context(&mut s, m),
        MsgSnap => {
            if let Some(snap) = &m.snapshot {
                let _ = write!(
                    s,
                    " snapshot={}/{} {}",
                    snap.term(),
                    snap.index(),
                    conf_state(&snap.conf_state())
                );
            }
        }
        MsgProp => {
            let _ = write!(s, " entries={}", entries(&m.entries));
        }
        MsgReadIndex | MsgReadIndexResp => {
            if kind == MsgReadIndexResp {
                let _ = write!(s, " index={}", m.index);
            }
            if let Some(e) = m.entries.first() {
                let _ = write!(s, " ctx={}", data(&e.data));
            }
        }
        _ => {}
    }
    s
}

fn context(s: &mut String, m: &Message) {
    if !m.context.is_empty() {
        let _ = write!(s, " ctx={}", data(&m.context));
    }
}

/// `[term/index payload, …]`.
pub fn entries(es: &[Entry]) -> String {
    let parts: Vec<String> = es.iter().map(entry).collect();
    format!("[{}]", parts.join(", "))
}

/// `term/index` and the payload: a quoted string, a conf change, or a size.
pub fn entry(e: &Entry) -> String {
    match e.kind() {
        EntryType::EntryNormal if e.data.is_empty() => format!("{}/{}", e.term, e.index),
        EntryType::EntryNormal => format!("{}/{} {}", e.term, e.index, data(&e.data)),
        EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
            format!("{}/{} {}", e.term, e.index, conf_change(e))
        }
    }
}

/// A conf change entry as `conf(v3 l4)`: `v` add voter, `l` add learner,
/// `r` remove; `conf(leave)` for leaving a joint configuration.
fn conf_change(e: &Entry) -> String {
    let Ok(Some(cc)) = decode_conf_change(e) else {
        return "conf(undecodable)".into();
    };
    if cc.changes.is_empty() {
        return "conf(leave)".into();
    }
    let parts: Vec<String> = cc
        .changes
        .iter()
        .map(|c| {
            let t = match c.change_type {
                0 => "v",
                1 => "r",
                3 => "l",
                _ => "u",
            };
            format!("{t}{}", c.node_id)
        })
        .collect();
    format!("conf({})", parts.join(" "))
}

/// `voters=[1 2 3]`, with learners and the outgoing half when present.
pub fn conf_state(cs: &ConfState) -> String {
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let mut s = format!("voters=[{}]", ids(&cs.voters));
    if !cs.voters_outgoing.is_empty() {
        let _ = write!(s, "&&[{}]", ids(&cs.voters_outgoing));
    }
    if !cs.learners.is_empty() {
        let _ = write!(s, " learners=[{}]", ids(&cs.learners));
    }
    if !cs.learners_next.is_empty() {
        let _ = write!(s, " learners_next=[{}]", ids(&cs.learners_next));
    }
    s
}

/// A payload: quoted when it is short printable text, a KV command when it
/// decodes as one, its size otherwise.
pub fn data(d: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(d) {
        if text.chars().all(|c| !c.is_control()) {
            return if text.chars().count() > MAX_DATA {
                let cut: String = text.chars().take(MAX_DATA).collect();
                format!("{cut:?}…")
            } else {
                format!("{text:?}")
            };
        }
    }
    match crate::kv::decode(d) {
        Some((request, op)) => format!("#{request}:{op:?}"),
        None => format!("<{} bytes>", d.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn describes_an_append() {
        let mut m = Message::new(MessageType::MsgApp, 1, 2);
        m.term = 2;
        m.log_term = 1;
        m.index = 5;
        m.commit = 4;
        m.entries = vec![
            Entry::new(2, 6, Bytes::from_static(b"x")),
            Entry::new(2, 7, Bytes::new()),
        ];
        assert_eq!(
            message(&m),
            r#"1->2 MsgApp term=2 log=1/5 commit=4 entries=[2/6 "x", 2/7]"#
        );
    }

    #[test]
    fn describes_a_rejection() {
        let mut m = Message::new(MessageType::MsgAppResp, 2, 1);
        m.term = 3;
        m.index = 9;
        m.reject = true;
        m.reject_hint = 6;
        m.log_term = 2;
        assert_eq!(message(&m), "2->1 MsgAppResp term=3 rejected=9 hint=2/6");
    }
}
