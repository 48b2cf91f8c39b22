//! The application's handle: bootstrap, restart, the `Ready` contract,
//! status, and configuration checks.

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use prost::Message as _;
use rudder_raft::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Config, ConfigError, Entry, EntryType,
    Error, HardState, MemoryStorage, Message, MessageType, RawNode, ReadOnlyOption, Ready,
    StateRole, Storage,
};
use std::collections::BTreeMap;

/// Handles one `Ready` the way the application must: persist, apply
/// (configuration changes included), advance. Returns the messages to send
/// (`messages` first, then `persisted_messages`) and the applied entries.
fn handle(node: &mut RawNode<MemoryStorage>, mut rd: Ready) -> (Vec<Message>, Vec<Entry>) {
    let mut out: Vec<Message> = rd.messages.drain(..).collect();
    if let Some(snap) = rd.snapshot.clone() {
        node.storage_mut()
            .apply_snapshot(*snap)
            .expect("snapshot applies");
    }
    node.storage_mut()
        .append(&rd.entries)
        .expect("entries append");
    if let Some(hs) = rd.hard_state {
        node.storage_mut().set_hard_state(hs);
    }
    out.append(&mut rd.persisted_messages);
    let applied: Vec<Entry> = rd.committed_entries.drain(..).collect();
    for e in &applied {
        let cc = match e.kind() {
            EntryType::EntryNormal => continue,
            EntryType::EntryConfChange => ConfChange::decode(e.data.clone())
                .expect("conf change decodes")
                .into_v2(),
            EntryType::EntryConfChangeV2 => {
                ConfChangeV2::decode(e.data.clone()).expect("conf change decodes")
            }
        };
        let cs = node.apply_conf_change(&cc).expect("conf change applies");
        node.storage_mut().set_conf_state(cs);
    }
    node.advance(rd);
    (out, applied)
}

/// Runs every node's Ready loop and delivers messages until quiet.
fn settle(nodes: &mut BTreeMap<u64, RawNode<MemoryStorage>>) {
    for _ in 0..1000 {
        let mut queue = Vec::new();
        for node in nodes.values_mut() {
            while node.has_ready() {
                let rd = node.ready();
                queue.extend(handle(node, rd).0);
            }
        }
        if queue.is_empty() {
            return;
        }
        for m in queue {
            let to = m.to;
            if let Some(node) = nodes.get_mut(&to) {
                // Errors are observed through state.
                let _ = node.step(m);
            }
        }
    }
    panic!("cluster did not settle");
}

fn conf_change_of(e: &Entry) -> ConfChange {
    assert_eq!(e.kind(), EntryType::EntryConfChange, "entry {e:?}");
    ConfChange::decode(e.data.clone()).expect("conf change decodes")
}

fn leader_of(net: &Network) -> u64 {
    net.leader().expect("a leader")
}

/// Bootstrap (etcd `RawNode::Bootstrap`): each initial member starts with
/// the same membership as committed `ConfChange` entries at term 1, handed
/// out by the first Ready to persist (with a hard state, synced) and to
/// apply; once applied, a campaign elects a leader of all three.
#[test]
fn bootstrap_hands_out_the_membership_then_a_leader_is_elected() {
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let node = RawNode::bootstrap(&test_config(id), MemoryStorage::new(), &[1, 2, 3])
            .expect("bootstrap on an empty storage");
        nodes.insert(id, node);
    }
    for (&id, node) in nodes.iter_mut() {
        assert!(node.has_ready(), "node {id} has the membership to hand out");
        let rd = node.ready();
        assert_eq!(rd.entries.len(), 3, "node {id}: three entries");
        for (i, e) in rd.entries.iter().enumerate() {
            let cc = conf_change_of(e);
            assert_eq!(
                (e.index, e.term, cc.node_id, cc.change_type),
                (
                    i as u64 + 1,
                    1,
                    i as u64 + 1,
                    ConfChangeType::AddNode as i32
                ),
                "node {id}: entry {i} adds voter {}",
                i + 1
            );
        }
        assert_eq!(
            rd.committed_entries, rd.entries,
            "node {id}: the entries are committed and to apply"
        );
        assert_eq!(
            rd.hard_state,
            Some(HardState {
                term: 1,
                vote: 0,
                commit: 3,
            }),
            "node {id}: term and commit to persist"
        );
        assert!(rd.must_sync, "node {id}: new entries must be synced");
        assert!(
            rd.messages.is_empty() && rd.persisted_messages.is_empty(),
            "node {id}: nothing to send yet"
        );
        let (_, applied) = handle(node, rd);
        assert_eq!(applied.len(), 3, "node {id} applied the membership");
        assert_eq!(
            node.storage().initial_state().map(|s| s.conf_state.voters),
            Ok(vec![1, 2, 3]),
            "node {id} saved the membership"
        );
        assert_eq!(node.basic_status().applied, 3, "node {id} applied index");
    }

    // What the first Ready persisted is enough to restart from.
    let mut cfg = test_config(3);
    cfg.applied = 3;
    let restarted = RawNode::new(&cfg, nodes[&3].storage().clone()).expect("restart");
    assert_eq!(
        restarted.status().config.to_conf_state().voters,
        vec![1, 2, 3],
        "the membership survives a restart"
    );
    assert_eq!(
        restarted.basic_status().hard_state,
        HardState {
            term: 1,
            vote: 0,
            commit: 3,
        },
        "so does the hard state"
    );
    assert!(!restarted.has_ready(), "nothing to hand out again");
    nodes.insert(3, restarted);

    nodes.get_mut(&1).expect("node 1").campaign();
    settle(&mut nodes);
    assert_eq!(nodes[&1].raft().state, StateRole::Leader, "node 1 leads");
    assert_eq!(
        nodes[&1].raft().term,
        2,
        "elected in the term after bootstrap"
    );
    for (&id, node) in &nodes {
        assert_eq!(node.raft().lead, 1, "node {id} follows 1");
        assert_eq!(
            node.raft().log.committed(),
            4,
            "node {id} committed the leader's empty entry"
        );
    }

    nodes
        .get_mut(&2)
        .expect("node 2")
        .propose(Bytes::from_static(b"after-bootstrap"))
        .expect("forwarded to the leader");
    settle(&mut nodes);
    for (&id, node) in &nodes {
        assert_eq!(node.raft().log.committed(), 5, "node {id} committed it");
    }
}

/// Bootstrap is only for a brand-new member: a storage holding entries, a
/// hard state or a membership is refused (`NotEmpty`), and so is an empty
/// peer list (`NoPeers`).
#[test]
fn bootstrap_refuses_non_empty_storage_and_no_peers() {
    let cfg = test_config(1);
    let with_entries = storage_with_log(&[1], &[1, 1]);
    assert_eq!(
        RawNode::bootstrap(&cfg, with_entries, &[1]).err(),
        Some(Error::NotEmpty),
        "storage with entries"
    );
    let with_members = MemoryStorage::new_with_conf_state(ConfState::with_voters([1, 2, 3]));
    assert_eq!(
        RawNode::bootstrap(&cfg, with_members, &[1, 2, 3]).err(),
        Some(Error::NotEmpty),
        "storage with a membership"
    );
    let mut with_hard_state = MemoryStorage::new();
    with_hard_state.set_hard_state(HardState {
        term: 3,
        vote: 1,
        commit: 0,
    });
    assert_eq!(
        RawNode::bootstrap(&cfg, with_hard_state, &[1]).err(),
        Some(Error::NotEmpty),
        "storage with a hard state"
    );
    assert_eq!(
        RawNode::bootstrap(&cfg, MemoryStorage::new(), &[]).err(),
        Some(Error::NoPeers),
        "no peers"
    );
}

/// A three-node cluster where every node committed and applied `a`, `b`,
/// `c` (indexes 2..=4 after the leader's empty entry at 1).
fn cluster_with_three_entries() -> Network {
    let mut net = Network::new(3);
    net.campaign(1);
    for p in [&b"a"[..], b"b", b"c"] {
        net.propose(1, p).expect("leader accepts");
    }
    for id in 1..=3 {
        assert_eq!(net.node(id).basic_status().applied, 4, "node {id} applied");
    }
    net
}

/// Restart (`Config::applied`): entries up to the applied index are not
/// handed out again; with `applied = 0` everything committed is handed out
/// again, and with a middle value only what follows it.
#[test]
fn restart_hands_out_only_entries_after_config_applied() {
    let net = cluster_with_three_entries();
    let storage = net.node(2).storage().clone();
    assert_eq!(
        storage.hard_state().commit,
        4,
        "the commit index was persisted"
    );

    let mut cfg = test_config(2);
    cfg.applied = 4;
    let restarted = RawNode::new(&cfg, storage.clone()).expect("restart");
    assert_eq!(
        restarted.basic_status().applied,
        4,
        "applied restored from config"
    );
    assert_eq!(
        restarted.raft().log.committed(),
        4,
        "commit restored from storage"
    );
    assert!(
        !restarted.has_ready(),
        "nothing to hand out again after a restart at the applied index"
    );

    for (applied, want) in [
        (0, vec![(1, ""), (2, "a"), (3, "b"), (4, "c")]),
        (2, vec![(3, "b"), (4, "c")]),
    ] {
        let mut cfg = test_config(2);
        cfg.applied = applied;
        let mut node = RawNode::new(&cfg, storage.clone()).expect("restart");
        assert!(node.has_ready(), "applied={applied}: entries to hand out");
        let rd = node.ready();
        let got: Vec<(u64, &[u8])> = rd
            .committed_entries
            .iter()
            .map(|e| (e.index, &e.data[..]))
            .collect();
        let want: Vec<(u64, &[u8])> = want.iter().map(|&(i, d)| (i, d.as_bytes())).collect();
        assert_eq!(got, want, "applied={applied}: handed out again");
        assert!(
            rd.entries.is_empty(),
            "applied={applied}: nothing to persist"
        );
        node.advance(rd);
        assert!(
            !node.has_ready(),
            "applied={applied}: each entry handed out once"
        );
    }

    let mut cfg = test_config(2);
    cfg.applied = 9;
    assert!(
        RawNode::new(&cfg, storage).is_err(),
        "an applied index past the commit index is an error, not a panic"
    );
}

/// The Ready contract: a follower's `MsgAppResp` promises its log holds the
/// entries, so it is in `persisted_messages` (sent after the sync); the
/// leader's `MsgApp` may go at once, in `messages`. New entries require a
/// sync.
#[test]
fn ready_separates_acknowledgements_from_messages() {
    let mut net = Network::new(3);
    net.campaign(1);
    let leader = leader_of(&net);
    assert_eq!(leader, 1, "node 1 leads");

    net.node_mut(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader accepts");
    let rd = net.node_mut(1).ready();
    let apps: Vec<u64> = rd
        .messages
        .iter()
        .filter(|m| m.kind() == Some(MessageType::MsgApp))
        .map(|m| m.to)
        .collect();
    assert_eq!(apps, vec![2, 3], "the leader's appends go out at once");
    assert!(
        rd.messages.iter().all(|m| !m.entries.is_empty()),
        "they carry the entry: {:?}",
        rd.messages
    );
    assert!(
        rd.persisted_messages.is_empty(),
        "the leader acknowledges its own append internally: {:?}",
        rd.persisted_messages
    );
    assert_eq!(rd.entries.len(), 1, "the proposal to persist");
    assert!(rd.must_sync, "new entries must be synced");
    let (out, _) = handle(net.node_mut(1), rd);

    let to_2 = out
        .into_iter()
        .find(|m| m.to == 2 && m.kind() == Some(MessageType::MsgApp))
        .expect("append to 2");
    net.node_mut(2)
        .step(to_2)
        .expect("follower accepts the append");
    let rd = net.node_mut(2).ready();
    assert_eq!(rd.entries.len(), 1, "the follower persists the entry");
    assert!(rd.must_sync, "new entries must be synced");
    assert!(
        rd.messages.is_empty(),
        "no acknowledgement before persisting: {:?}",
        rd.messages
    );
    assert_eq!(
        rd.persisted_messages
            .iter()
            .map(|m| (m.kind(), m.to, m.index, m.reject))
            .collect::<Vec<_>>(),
        vec![(Some(MessageType::MsgAppResp), 1, 2, false)],
        "the acknowledgement waits for persistence"
    );
    handle(net.node_mut(2), rd);
}

/// The Ready contract: `must_sync` is set when entries, the term or the
/// vote change (they must be durable before acknowledging), and unset when
/// only the commit index moved (it can be recomputed after a crash).
#[test]
fn must_sync_only_for_entries_term_or_vote() {
    let mut net = Network::new(3);
    // A vote request: term and vote change, no entries.
    let mut vote = Message::new(MessageType::MsgVote, 1, 2);
    vote.term = 1;
    net.node_mut(2).step(vote).expect("vote request");
    let rd = net.node_mut(2).ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 1,
            vote: 1,
            commit: 0,
        }),
        "term and vote to persist"
    );
    assert!(rd.entries.is_empty(), "no entries");
    assert!(rd.must_sync, "a new term and vote must be synced");
    assert_eq!(
        rd.persisted_messages
            .iter()
            .map(|m| (m.kind(), m.to, m.reject))
            .collect::<Vec<_>>(),
        vec![(Some(MessageType::MsgVoteResp), 1, false)],
        "the granted vote is sent only once persisted"
    );
    assert!(rd.messages.is_empty(), "nothing else: {:?}", rd.messages);
    handle(net.node_mut(2), rd);

    // Bring node 1 to leadership in term 1 over the cluster, so a commit
    // index alone travels to node 2.
    let mut net = Network::new(3);
    net.campaign(1);
    net.node_mut(1)
        .propose(Bytes::from_static(b"y"))
        .expect("leader accepts");
    // Deliver the appends and their acknowledgements, but hold back what the
    // leader sends after committing.
    for m in net.take_queue() {
        net.deliver(m);
    }
    for m in net.take_queue() {
        assert_eq!(m.kind(), Some(MessageType::MsgAppResp), "acks only: {m:?}");
        net.deliver(m);
    }
    assert_eq!(net.committed(1), 2, "the leader committed");
    assert_eq!(net.committed(2), 1, "the follower does not know yet");
    let commit_update = net
        .take_queue()
        .into_iter()
        .find(|m| m.to == 2 && m.kind() == Some(MessageType::MsgApp))
        .expect("a commit update to 2");
    assert!(commit_update.entries.is_empty(), "it carries no entries");
    net.node_mut(2)
        .step(commit_update)
        .expect("follower accepts");
    let rd = net.node_mut(2).ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 1,
            vote: 1,
            commit: 2,
        }),
        "only the commit index moved"
    );
    assert!(rd.entries.is_empty(), "no entries");
    assert_eq!(
        rd.committed_entries
            .iter()
            .map(|e| &e.data[..])
            .collect::<Vec<_>>(),
        vec![&b"y"[..]],
        "the entry is now to apply"
    );
    assert!(!rd.must_sync, "a commit-only change needs no sync");
    handle(net.node_mut(2), rd);
}

/// A single-node leader is its own quorum, but its acknowledgement counts
/// only once its append is persisted: a proposal commits only after
/// `advance` for the Ready that carried it.
#[test]
fn single_node_leader_commits_only_after_advance() {
    let storage = MemoryStorage::new_with_conf_state(ConfState::with_voters([1]));
    let mut node = RawNode::new(&test_config(1), storage).expect("valid node");
    node.campaign();
    while node.has_ready() {
        let rd = node.ready();
        handle(&mut node, rd);
    }
    assert_eq!(node.raft().state, StateRole::Leader, "a lone node leads");
    assert_eq!(node.raft().log.committed(), 1, "its empty entry committed");

    node.propose(Bytes::from_static(b"z")).expect("accepted");
    let rd = node.ready();
    assert_eq!(
        rd.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![2],
        "the proposal to persist"
    );
    assert!(rd.committed_entries.is_empty(), "not committed yet");
    assert_eq!(rd.hard_state, None, "the commit index has not moved");
    assert_eq!(
        node.raft().log.committed(),
        1,
        "no commit before persisting"
    );
    handle(&mut node, rd);
    assert_eq!(node.raft().log.committed(), 2, "committed on advance");
    assert!(node.has_ready(), "the commit is to hand out");
    let rd = node.ready();
    assert_eq!(
        rd.committed_entries
            .iter()
            .map(|e| (e.index, &e.data[..]))
            .collect::<Vec<_>>(),
        vec![(2, &b"z"[..])],
        "the proposal to apply"
    );
    assert_eq!(
        rd.hard_state.map(|h| h.commit),
        Some(2),
        "commit to persist"
    );
    assert!(!rd.must_sync, "a commit-only change needs no sync");
    handle(&mut node, rd);
    assert!(!node.has_ready(), "nothing left");
}

/// `status()` shows each peer's progress on a leader (etcd
/// `getProgressCopy`) and none elsewhere; `basic_status()` reports
/// identity, hard and soft state, applied index and transfer target.
#[test]
fn status_reports_progress_on_the_leader_only() {
    let net = cluster_with_three_entries();
    let status = net.node(1).status();
    assert_eq!(
        status
            .progress
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        vec![1, 2, 3],
        "the leader tracks every member"
    );
    for (id, pr) in &status.progress {
        assert_eq!(pr.matched, 4, "peer {id} matched the whole log");
    }
    assert_eq!(
        status.config.to_conf_state().voters,
        vec![1, 2, 3],
        "membership"
    );

    let follower = net.node(2).status();
    assert!(
        follower.progress.is_empty(),
        "a follower reports no progress: {:?}",
        follower.progress
    );
    assert_eq!(
        follower.config.to_conf_state().voters,
        vec![1, 2, 3],
        "but knows the membership"
    );

    for (id, role, vote) in [(1, StateRole::Leader, 1), (2, StateRole::Follower, 1)] {
        let b = net.node(id).basic_status();
        assert_eq!(b.id, id, "id");
        assert_eq!(
            b.hard_state,
            HardState {
                term: 1,
                vote,
                commit: 4,
            },
            "node {id} hard state"
        );
        assert_eq!(b.soft_state.leader_id, 1, "node {id} knows the leader");
        assert_eq!(b.soft_state.raft_state, role, "node {id} role");
        assert_eq!(b.applied, 4, "node {id} applied");
        assert_eq!(b.lead_transferee, 0, "node {id}: no transfer");
    }
}

/// A named change that breaks a config, and the error it must produce.
type BadConfigCase = (&'static str, fn(&mut Config), ConfigError);

/// Configuration checks: every bad field makes `RawNode::new` return
/// `Err(Error::Config(..))` naming it; none panics.
#[test]
fn bad_config_fields_are_errors_from_new() {
    let cases: Vec<BadConfigCase> = vec![
        ("id", |c| c.id = 0, ConfigError::ZeroId),
        (
            "heartbeat_tick",
            |c| c.heartbeat_tick = 0,
            ConfigError::ZeroHeartbeatTick,
        ),
        (
            "election_tick",
            |c| c.election_tick = 1,
            ConfigError::ElectionTickTooSmall {
                election: 1,
                heartbeat: 1,
            },
        ),
        (
            "election_tick = heartbeat_tick",
            |c| {
                c.heartbeat_tick = 5;
                c.election_tick = 5
            },
            ConfigError::ElectionTickTooSmall {
                election: 5,
                heartbeat: 5,
            },
        ),
        (
            "election_tick too large to double",
            |c| c.election_tick = usize::MAX / 2 + 1,
            ConfigError::ElectionTickTooLarge(usize::MAX / 2 + 1),
        ),
        (
            "max_inflight_msgs",
            |c| c.max_inflight_msgs = 0,
            ConfigError::ZeroInflightMsgs,
        ),
        (
            "max_inflight_bytes",
            |c| {
                c.max_size_per_msg = 100;
                c.max_inflight_bytes = 99
            },
            ConfigError::InflightBytesTooSmall {
                inflight: 99,
                per_msg: 100,
            },
        ),
        (
            "read_only_option",
            |c| {
                c.read_only_option = ReadOnlyOption::LeaseBased;
                c.check_quorum = false
            },
            ConfigError::LeaseWithoutCheckQuorum,
        ),
    ];
    for (field, f, want) in cases {
        let mut c = test_config(1);
        f(&mut c);
        assert_eq!(
            c.validate(),
            Err(want.clone()),
            "{field}: validate names it"
        );
        let storage = MemoryStorage::new_with_conf_state(ConfState::with_voters([1]));
        let got = std::panic::catch_unwind(|| RawNode::new(&c, storage).err());
        assert_eq!(
            got.ok(),
            Some(Some(Error::Config(want))),
            "{field}: an error, not a panic and not a node"
        );
        assert!(
            RawNode::bootstrap(&c, MemoryStorage::new(), &[1]).is_err(),
            "{field}: bootstrap refuses it too"
        );
    }
}
