//! Proposals: forwarding to the leader (§5.1, thesis §6.2), refusals, flow
//! control of uncommitted and committed entries, and batching.

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::{
    ConfState, DropReason, EntryType, Error, MemoryStorage, MessageType, RawNode, StateRole,
};

/// §5.1 / thesis §6.2: clients may talk to any server; a follower forwards
/// a proposal to the leader, which appends it, and it commits and is
/// applied everywhere.
#[test]
fn follower_forwards_proposal_to_leader_and_it_commits_everywhere() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.sent.clear();
    net.propose(2, b"fwd")
        .expect("follower accepts for forwarding");
    let props = net.sent_of(MessageType::MsgProp);
    assert_eq!(props.len(), 1, "one forwarded proposal: {props:?}");
    assert_eq!(
        (props[0].from, props[0].to),
        (2, 1),
        "forwarded to the leader"
    );
    for id in 1..=3 {
        assert_eq!(net.committed(id), 2, "node {id} committed the proposal");
        assert_eq!(
            net.nodes[&id].applied,
            payloads(&[b"fwd"]),
            "node {id} applied the proposal"
        );
    }
}

/// With `disable_proposal_forwarding`, a follower refuses proposals itself
/// (`ForwardingDisabled`) instead of forwarding them; the leader still
/// accepts.
#[test]
fn disabled_forwarding_refuses_proposals_on_followers() {
    let mut net = Network::with_config(3, |c| c.disable_proposal_forwarding = true);
    net.campaign(1);
    net.sent.clear();
    assert_eq!(
        net.propose(2, b"no"),
        Err(Error::ProposalDropped(DropReason::ForwardingDisabled)),
        "the follower refuses"
    );
    assert!(
        net.sent_of(MessageType::MsgProp).is_empty(),
        "nothing forwarded: {:?}",
        net.sent_of(MessageType::MsgProp)
    );
    assert_eq!(net.last_index(1), 1, "the leader's log is unchanged");
    net.propose(1, b"yes").expect("the leader itself accepts");
    for id in 1..=3 {
        assert_eq!(net.nodes[&id].applied, payloads(&[b"yes"]), "node {id}");
    }
}

/// A follower that knows no leader has nowhere to forward a proposal: it is
/// refused with `NoLeader`, and nothing is sent.
#[test]
fn proposal_without_a_leader_is_refused() {
    let mut net = Network::new(3);
    assert_eq!(
        net.propose(1, b"x"),
        Err(Error::ProposalDropped(DropReason::NoLeader)),
        "no leader yet"
    );
    assert!(net.sent.is_empty(), "nothing sent: {:?}", net.sent);
    assert_eq!(net.last_index(1), 0, "nothing appended");
}

/// A candidate is not a leader and knows none: it drops proposals
/// (`NoLeader`) rather than appending them.
#[test]
fn candidate_drops_proposals() {
    let mut net = Network::new(3);
    net.isolate(2);
    net.isolate(3);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Candidate, "no quorum, no leader");
    let last = net.last_index(1);
    assert_eq!(
        net.propose(1, b"x"),
        Err(Error::ProposalDropped(DropReason::NoLeader)),
        "candidate refuses"
    );
    assert_eq!(net.last_index(1), last, "nothing appended");
    assert!(
        net.sent_of(MessageType::MsgProp).is_empty(),
        "nothing forwarded"
    );
}

/// `max_uncommitted_entries_size` (etcd's uncommitted-size quota): a leader
/// refuses a proposal whose payload would take its uncommitted payload past
/// the limit, and accepts again once entries commit and are applied (the
/// quota is released on apply).
#[test]
fn uncommitted_size_limit_refuses_then_releases_on_apply() {
    let mut net = Network::with_config(3, |c| c.max_uncommitted_entries_size = 10);
    net.campaign(1);
    net.isolate(2);
    net.isolate(3);
    net.propose(1, b"aaaa").expect("4 bytes uncommitted");
    net.propose(1, b"bbbb").expect("8 bytes uncommitted");
    assert_eq!(
        net.node(1).raft().uncommitted_size,
        8,
        "payload bytes counted"
    );
    assert_eq!(
        net.propose(1, b"cccc"),
        Err(Error::ProposalDropped(DropReason::UncommittedSizeLimit)),
        "12 bytes would pass the limit of 10"
    );
    assert_eq!(net.committed(1), 1, "nothing commits while isolated");
    assert_eq!(net.last_index(1), 3, "the refused proposal is not appended");

    net.recover();
    net.tick(1, 1);
    assert_eq!(net.committed(1), 3, "the entries commit after healing");
    net.assert_applied([1], &[b"aaaa", b"bbbb"], "and are applied");
    assert_eq!(
        net.node(1).raft().uncommitted_size,
        0,
        "applying released the quota"
    );
    net.propose(1, b"cccc")
        .expect("accepted again once the quota is released");
    net.propose(1, b"dddd").expect("and again");
    net.assert_applied(1..=3, &[b"aaaa", b"bbbb", b"cccc", b"dddd"], "as proposed");
}

/// `max_uncommitted_entries_size`: the quota is released when entries are
/// applied (etcd `reduceUncommittedSize` in `appliedTo`), not when they
/// commit: between the Ready that commits them and the one that applies
/// them, the leader still refuses.
#[test]
fn uncommitted_quota_is_held_until_apply() {
    let mut config = test_config(1);
    config.max_uncommitted_entries_size = 10;
    let storage = MemoryStorage::new_with_conf_state(ConfState::with_voters([1]));
    let mut node = RawNode::new(&config, storage).expect("valid node");
    node.campaign();
    for _ in 0..10 {
        if !node.has_ready() {
            break;
        }
        let rd = node.ready();
        node.storage_mut().append(&rd.entries).expect("append");
        node.advance(rd);
    }
    assert_eq!(node.raft().state, StateRole::Leader, "a lone node leads");
    let refused = Err(Error::ProposalDropped(DropReason::UncommittedSizeLimit));

    node.propose(Bytes::from_static(b"aaaa")).expect("4 bytes");
    node.propose(Bytes::from_static(b"bbbb")).expect("8 bytes");
    assert_eq!(
        node.propose(Bytes::from_static(b"cccc")),
        refused,
        "12 bytes would pass 10"
    );
    // Persist: the leader's own acknowledgement commits both entries.
    let rd = node.ready();
    assert_eq!(rd.entries.len(), 2, "both proposals to persist");
    node.storage_mut().append(&rd.entries).expect("append");
    node.advance(rd);
    assert_eq!(node.raft().log.committed(), 3, "committed on advance");
    assert_eq!(
        node.propose(Bytes::from_static(b"cccc")),
        refused,
        "committed but not yet applied: the quota is still held"
    );
    // Apply.
    let rd = node.ready();
    assert_eq!(
        rd.committed_entries
            .iter()
            .map(|e| &e.data[..])
            .collect::<Vec<_>>(),
        vec![&b"aaaa"[..], b"bbbb"],
        "the entries to apply"
    );
    if let Some(hs) = rd.hard_state {
        node.storage_mut().set_hard_state(hs);
    }
    node.advance(rd);
    assert_eq!(node.raft().uncommitted_size, 0, "released on apply");
    node.propose(Bytes::from_static(b"cccc"))
        .expect("accepted once applied");
}

/// §5.3: a leader retries appends that were lost (etcd: a heartbeat
/// response from a follower that lags makes the leader send to it again;
/// in etcd the empty append at `next - 1` is rejected by the follower and
/// the leader falls back to probing and resends). After a partition heals,
/// heartbeats alone must bring the followers up to date and commit the
/// entries appended meanwhile.
#[test]
fn appends_lost_during_a_partition_are_resent_after_it_heals() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(2);
    net.isolate(3);
    net.propose(1, b"lost").expect("leader accepts");
    assert_eq!(net.committed(1), 1, "nothing commits while isolated");
    net.recover();
    net.tick(1, 3);
    for id in 1..=3 {
        assert_eq!(net.committed(id), 2, "node {id} commits after healing");
        assert_eq!(net.nodes[&id].applied, payloads(&[b"lost"]), "node {id}");
    }
}

/// `max_committed_size_per_ready` bounds the committed entries one Ready
/// hands out (by accounted size), but every Ready with committed entries
/// pending carries at least one, even one larger than the limit.
#[test]
fn committed_entries_per_ready_are_bounded_but_never_empty() {
    let entry_size = 8 + rudder_raft::proto::ENTRY_OVERHEAD;
    let limit = 2 * entry_size;
    let mut config = test_config(1);
    config.max_committed_size_per_ready = limit;
    let storage = MemoryStorage::new_with_conf_state(ConfState::with_voters([1]));
    let mut node = RawNode::new(&config, storage).expect("valid node");
    node.campaign();

    let big = Bytes::from(vec![b'B'; 100]);
    let mut proposals: Vec<Bytes> = (0..5)
        .map(|i| Bytes::from(format!("entry-{i:02}").into_bytes()))
        .collect();
    proposals.insert(2, big.clone());
    let mut proposed = false;
    let mut per_ready: Vec<Vec<Bytes>> = Vec::new();
    for _ in 0..100 {
        if node.raft().state == StateRole::Leader && !proposed {
            for p in &proposals {
                node.propose(p.clone()).expect("leader accepts");
            }
            proposed = true;
        }
        if !node.has_ready() {
            if proposed {
                break;
            }
            node.tick();
            continue;
        }
        let mut rd = node.ready();
        node.storage_mut().append(&rd.entries).expect("append");
        if let Some(hs) = rd.hard_state {
            node.storage_mut().set_hard_state(hs);
        }
        let committed: Vec<_> = rd.committed_entries.drain(..).collect();
        let size: u64 = committed.iter().map(|e| e.accounted_size()).sum();
        assert!(
            committed.len() <= 1 || size <= limit,
            "Ready {} hands out {size} bytes in {} entries, over the limit {limit}",
            rd.number,
            committed.len()
        );
        let normal: Vec<Bytes> = committed
            .iter()
            .filter(|e| e.kind() == EntryType::EntryNormal && !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect();
        if !normal.is_empty() {
            per_ready.push(normal);
        }
        node.advance(rd);
    }
    assert!(proposed, "the node became leader");
    let all: Vec<Bytes> = per_ready.iter().flatten().cloned().collect();
    assert_eq!(all, proposals, "every proposal applied, in order");
    assert!(
        per_ready.iter().any(|r| r == &vec![big.clone()]),
        "the oversized entry comes out alone: {per_ready:?}"
    );
    assert!(
        per_ready.iter().any(|r| r.len() == 2),
        "entries within the limit are batched: {per_ready:?}"
    );
    assert!(
        per_ready.iter().all(|r| r.len() <= 2),
        "never more than the limit allows: {per_ready:?}"
    );
}

/// Proposals are appended at once but sent when the Ready is taken, so a
/// burst of proposals leaves the leader as one `MsgApp` per follower.
#[test]
fn a_burst_of_proposals_leaves_as_one_append_per_follower() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.sent.clear();
    const N: usize = 5;
    for i in 0..N {
        net.node_mut(1)
            .propose(Bytes::from(format!("p{i}").into_bytes()))
            .expect("leader accepts");
    }
    net.stabilize();
    for to in [2, 3] {
        let with_entries: Vec<_> = net
            .sent_of(MessageType::MsgApp)
            .into_iter()
            .filter(|m| m.to == to && !m.entries.is_empty())
            .collect();
        assert_eq!(
            with_entries.len(),
            1,
            "one append carrying entries to {to}: {with_entries:?}"
        );
        assert_eq!(
            with_entries[0].entries.len(),
            N,
            "the append to {to} carries the whole burst"
        );
    }
    for id in 1..=3 {
        assert_eq!(net.nodes[&id].applied.len(), N, "node {id} applied all");
    }
}
