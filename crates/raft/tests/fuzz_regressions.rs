//! Inputs the `core_messages` fuzz target (`fuzz/`) found that panicked
//! the core, replayed: bad input from a peer must never panic a node.

use rudder_raft::{Config, MemoryStorage, Message, MessageType, RawNode, StateRole};

/// A peer's message with term `u64::MAX` (here a `MsgSnap` from a member,
/// as in the fuzzer's input; any message type raises the term) used to
/// leave the node at the largest term, and its next campaign computed
/// the next term with an overflow: a panic in debug builds, term 0 in
/// release. Now a node at the largest term refuses to campaign.
#[test]
fn a_peer_at_the_largest_term_cannot_make_a_campaign_overflow() {
    for pre_vote in [false, true] {
        let mut config = Config::new(1);
        config.pre_vote = pre_vote;
        let mut raw = RawNode::bootstrap(&config, MemoryStorage::new(), &[1, 2, 3]).unwrap();
        let mut m = Message::new(MessageType::MsgSnap, 2, 1);
        m.term = u64::MAX;
        let _ = raw.step(m);
        let mut m = Message::new(MessageType::MsgHeartbeat, 2, 1);
        m.term = u64::MAX;
        raw.step(m).unwrap();
        assert_eq!(raw.raft().term, u64::MAX);
        raw.campaign();
        for _ in 0..3 * config.election_tick {
            raw.tick();
        }
        assert_eq!(raw.raft().term, u64::MAX, "pre_vote {pre_vote}");
        assert_ne!(raw.raft().state, StateRole::Candidate);
        let _ = raw.ready();
    }
}

/// A `MsgSnap` whose snapshot claims index `u64::MAX` (with this node in
/// its configuration) used to be installed, and the log's next index was
/// computed as `index + 1`: an overflow. Now it is ignored.
#[test]
fn a_snapshot_at_the_largest_index_is_ignored() {
    use rudder_raft::{ConfState, Snapshot, SnapshotMetadata};
    let config = Config::new(1);
    let mut raw = RawNode::bootstrap(&config, MemoryStorage::new(), &[1, 2, 3]).unwrap();
    let last = raw.raft().log.last_index();
    let mut m = Message::new(MessageType::MsgSnap, 3, 1);
    m.term = 9_151_314_477_193_363_472;
    m.snapshot = Some(Box::new(Snapshot {
        data: Default::default(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState::with_voters([1, 2, 3])),
            index: u64::MAX,
            term: u64::MAX,
        }),
    }));
    let _ = raw.step(m);
    assert_eq!(
        raw.raft().log.last_index(),
        last,
        "the snapshot was installed"
    );
    let _ = raw.ready();
}
