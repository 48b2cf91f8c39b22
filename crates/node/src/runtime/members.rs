//! Who the members are and where to reach them, and the snapshot envelope
//! that keeps that knowledge across log compaction.
//!
//! A member's addresses travel in the context of the configuration change
//! that adds it, so every node learns them from the log; a snapshot holds
//! them too, beside the state machine's data, since the changes it covers
//! are compacted away. Founding members are known from the configuration.
//!
//! The book also says which members the log has reached
//! ([`PeerInfo::replicated`]): a leader marks each one, once, with an
//! `UpdateNode` change carrying its addresses (as that leader's book has
//! them, which every member's book then takes) and the mark. A marked
//! member that starts again on empty storage has lost its data, and an
//! application can refuse to start it.

use bytes::Bytes;
use prost::Message as _;
use rudder_raft::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use std::collections::BTreeMap;

/// Where a member listens, and whether it has held the log.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerInfo {
    /// Its Raft (peer-to-peer) address, `host:port`.
    #[prost(string, tag = "1")]
    pub raft_addr: String,
    /// Its client (HTTP) address, `host:port`.
    #[prost(string, tag = "2")]
    pub http_addr: String,
    /// A leader saw this member hold entries of the log (its progress
    /// matched one) and said so in the log. Set by the runtime; removing
    /// the member clears it.
    #[prost(bool, tag = "3")]
    pub replicated: bool,
}

/// One member in a snapshot envelope.
#[derive(Clone, PartialEq, prost::Message)]
struct MemberRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, optional, tag = "2")]
    info: Option<PeerInfo>,
}

/// A snapshot's data: the members' addresses and the state machine's own
/// snapshot.
#[derive(Clone, PartialEq, prost::Message)]
struct Envelope {
    #[prost(message, repeated, tag = "1")]
    members: Vec<MemberRecord>,
    #[prost(bytes = "bytes", tag = "2")]
    state: Bytes,
}

/// The address book: every member's addresses, by ID.
pub type Members = BTreeMap<u64, PeerInfo>;

/// Encodes a snapshot's data from the members and the state machine's
/// snapshot.
pub fn seal(members: &Members, state: Bytes) -> Bytes {
    let envelope = Envelope {
        members: members
            .iter()
            .map(|(&id, info)| MemberRecord {
                id,
                info: Some(info.clone()),
            })
            .collect(),
        state,
    };
    Bytes::from(envelope.encode_to_vec())
}

/// Decodes a snapshot's data into the members and the state machine's
/// snapshot. An empty snapshot (none taken yet) is no members and no state.
pub fn open(data: &[u8]) -> Result<(Members, Bytes), prost::DecodeError> {
    let envelope = Envelope::decode(data)?;
    let members = envelope
        .members
        .into_iter()
        .map(|m| (m.id, m.info.unwrap_or_default()))
        .collect();
    Ok((members, envelope.state))
}

/// The context of a change adding a member: its addresses.
pub fn context_for(info: &PeerInfo) -> Bytes {
    Bytes::from(info.encode_to_vec())
}

/// The change of one member: `kind` for `id`, with `context`.
pub(super) fn single_change(kind: ConfChangeType, id: u64, context: Bytes) -> ConfChangeV2 {
    ConfChangeV2 {
        transition: ConfChangeTransition::Auto as i32,
        changes: vec![ConfChangeSingle {
            change_type: kind as i32,
            node_id: id,
        }],
        context,
    }
}

/// The change that marks member `id`, found at `info`, as reached by the
/// log ([`PeerInfo::replicated`]).
pub(super) fn mark_replicated(id: u64, info: &PeerInfo) -> ConfChangeV2 {
    let marked = PeerInfo {
        replicated: true,
        ..info.clone()
    };
    single_change(ConfChangeType::UpdateNode, id, context_for(&marked))
}

/// What a committed change says of the address book.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BookChanges {
    /// Members added, or added again (a learner promoted), with the
    /// addresses in the change's context when it has one.
    pub added: Vec<(u64, Option<PeerInfo>)>,
    /// Members updated in place (`UpdateNode`, as the leader's marks are):
    /// a member the book no longer has stays out of it.
    pub updated: Vec<(u64, Option<PeerInfo>)>,
    /// Members removed.
    pub removed: Vec<u64>,
}

/// What the committed change `cc` does to the address book.
pub fn changes(cc: &ConfChangeV2) -> BookChanges {
    let info = (!cc.context.is_empty())
        .then(|| PeerInfo::decode(&cc.context[..]).ok())
        .flatten();
    let mut out = BookChanges::default();
    for c in &cc.changes {
        match ConfChangeType::try_from(c.change_type) {
            Ok(ConfChangeType::AddNode | ConfChangeType::AddLearnerNode) => {
                out.added.push((c.node_id, info.clone()));
            }
            Ok(ConfChangeType::UpdateNode) => out.updated.push((c.node_id, info.clone())),
            Ok(ConfChangeType::RemoveNode) => out.removed.push(c.node_id),
            Err(_) => {}
        }
    }
    out
}

/// Writes member `id`'s entry `info` into `book`, keeping the mark the
/// book has for it (a promotion asked before the mark applied carries
/// none; only removing a member clears its mark); returns the entry.
pub fn record(book: &mut Members, id: u64, mut info: PeerInfo) -> PeerInfo {
    info.replicated |= book.get(&id).is_some_and(|old| old.replicated);
    book.insert(id, info.clone());
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(n: u16) -> PeerInfo {
        PeerInfo {
            raft_addr: format!("127.0.0.1:{n}"),
            http_addr: format!("127.0.0.1:{}", n + 1),
            replicated: false,
        }
    }

    #[test]
    fn envelopes_round_trip_and_empty_is_nothing() {
        let marked = PeerInfo {
            replicated: true,
            ..info(20)
        };
        let members = Members::from([(1, info(10)), (2, marked)]);
        let (m, state) = open(&seal(&members, Bytes::from_static(b"kv"))).unwrap();
        assert_eq!((m, &state[..]), (members, &b"kv"[..]));
        let (m, state) = open(&[]).unwrap();
        assert!(m.is_empty() && state.is_empty());
        assert!(open(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn a_change_names_what_it_adds_and_removes() {
        let cc = ConfChangeV2 {
            changes: vec![
                ConfChangeSingle {
                    change_type: ConfChangeType::AddLearnerNode as i32,
                    node_id: 4,
                },
                ConfChangeSingle {
                    change_type: ConfChangeType::RemoveNode as i32,
                    node_id: 2,
                },
            ],
            context: context_for(&info(40)),
            ..Default::default()
        };
        let expected = BookChanges {
            added: vec![(4, Some(info(40)))],
            removed: vec![2],
            ..BookChanges::default()
        };
        assert_eq!(changes(&cc), expected);
    }

    #[test]
    fn a_member_keeps_its_mark_until_it_is_removed() {
        let mut book = Members::new();
        let marked = PeerInfo {
            replicated: true,
            ..info(30)
        };
        record(&mut book, 3, marked.clone());
        assert_eq!(
            record(&mut book, 3, info(30)),
            marked,
            "a promotion clears no mark"
        );
        book.remove(&3);
        assert_eq!(
            record(&mut book, 3, info(30)),
            info(30),
            "added again: unmarked"
        );
    }

    #[test]
    fn a_mark_updates_the_member_with_its_addresses_kept() {
        let cc = mark_replicated(3, &info(30));
        let marked = PeerInfo {
            replicated: true,
            ..info(30)
        };
        let expected = BookChanges {
            updated: vec![(3, Some(marked))],
            ..BookChanges::default()
        };
        assert_eq!(changes(&cc), expected);
        assert_eq!(cc.changes[0].change_type, ConfChangeType::UpdateNode as i32);
    }
}
