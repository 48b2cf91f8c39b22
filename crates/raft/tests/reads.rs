//! Linearizable reads without writing to the log: read-index (thesis
//! §6.4) and lease-based reads (thesis §6.4.1).

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::{
    Config, ConfigError, DropReason, Error, MemoryStorage, MessageType, RawNode, ReadOnlyOption,
    ReadState, StateRole,
};

fn ctx(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Heartbeats that left the leader carrying `c` as their context.
fn heartbeats_with_ctx(net: &Network, c: &Bytes) -> Vec<u64> {
    net.sent_of(MessageType::MsgHeartbeat)
        .into_iter()
        .filter(|m| m.context == c)
        .map(|m| m.to)
        .collect()
}

/// Thesis §6.4, step 3: with `ReadOnlySafe`, the leader records its commit
/// index and answers only after a quorum acknowledges a heartbeat round
/// carrying the request's context. Without acknowledgements there is no
/// answer; once they arrive, the answer carries the commit index.
#[test]
fn safe_read_waits_for_a_heartbeat_quorum() {
    let mut net = Network::new(3);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader, "node 1 must lead");
    let committed = net.committed(1);
    assert_eq!(committed, 1, "the leader's empty entry is committed");

    net.drop_type(MessageType::MsgHeartbeatResp);
    net.node_mut(1)
        .read_index(ctx("r1"))
        .expect("leader accepts a read");
    net.stabilize();
    assert_eq!(
        heartbeats_with_ctx(&net, &ctx("r1")),
        vec![2, 3],
        "the read rides on a heartbeat to every follower"
    );
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "no answer before a quorum acknowledges: {:?}",
        net.nodes[&1].read_states
    );
    // More heartbeat rounds without acknowledgements change nothing.
    net.tick(1, 3);
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "still no answer without acknowledgements: {:?}",
        net.nodes[&1].read_states
    );

    net.recover();
    net.tick(1, 1);
    assert_eq!(
        net.nodes[&1].read_states,
        vec![ReadState {
            index: committed,
            request_ctx: ctx("r1"),
        }],
        "answered once a quorum acknowledged, at the commit index of the request"
    );
    assert_eq!(
        net.committed(1),
        committed,
        "reads write nothing to the log"
    );
}

/// Thesis §6.4, step 3: acknowledgements from a minority do not confirm
/// leadership. In five nodes, the leader and one follower are two of five:
/// no answer; a third acknowledgement makes the quorum.
#[test]
fn safe_read_is_not_answered_by_a_minority() {
    let mut net = Network::new(5);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader, "node 1 must lead");
    let committed = net.committed(1);
    for id in [3, 4, 5] {
        net.isolate(id);
    }
    net.node_mut(1)
        .read_index(ctx("m"))
        .expect("leader accepts a read");
    net.tick(1, 2);
    let acks = net
        .sent_of(MessageType::MsgHeartbeatResp)
        .into_iter()
        .filter(|m| m.from == 2 && m.context == ctx("m"))
        .count();
    assert!(acks > 0, "follower 2 acknowledged the read's heartbeat");
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "two of five acknowledgements must not answer: {:?}",
        net.nodes[&1].read_states
    );

    net.recover();
    net.isolate(4);
    net.isolate(5);
    net.tick(1, 1);
    assert_eq!(
        net.nodes[&1].read_states,
        vec![ReadState {
            index: committed,
            request_ctx: ctx("m"),
        }],
        "three of five acknowledgements answer"
    );
}

/// Thesis §6.4, step 1: a new leader whose commit index may lag (it has not
/// yet committed an entry of its own term) holds read requests until its
/// empty entry commits; the answer then carries that commit index.
#[test]
fn new_leader_holds_reads_until_it_commits_in_its_term() {
    let mut net = Network::new(3);
    net.drop_type(MessageType::MsgApp);
    net.drop_type(MessageType::MsgAppResp);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader, "votes are not dropped");
    assert_eq!(net.committed(1), 0, "the empty entry cannot commit yet");
    assert_eq!(net.last_index(1), 1, "the empty entry is in the log");

    net.node_mut(1)
        .read_index(ctx("early"))
        .expect("leader accepts a read");
    net.stabilize();
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "no answer before committing in the term: {:?}",
        net.nodes[&1].read_states
    );
    assert!(
        heartbeats_with_ctx(&net, &ctx("early")).is_empty(),
        "the read is held, not even confirmed by heartbeats yet"
    );
    // Heartbeats keep flowing (and being acknowledged) but cannot commit.
    net.tick(1, 2);
    assert_eq!(net.committed(1), 0, "appends are still dropped");
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "still held while the empty entry is uncommitted: {:?}",
        net.nodes[&1].read_states
    );
    // A follower (which learned the leader from its heartbeats) forwards a
    // read; it is held the same way.
    assert_eq!(net.node(3).raft().lead, 1, "follower 3 knows the leader");
    net.node_mut(3).read_index(ctx("fwd")).expect("forwarded");
    net.stabilize();
    assert_eq!(
        net.sent_of(MessageType::MsgReadIndex).len(),
        1,
        "the request reached the leader"
    );
    assert!(
        net.sent_of(MessageType::MsgReadIndexResp).is_empty()
            && net.nodes[&3].read_states.is_empty(),
        "no answer to the follower either"
    );

    net.recover();
    net.tick(1, 1);
    assert_eq!(net.committed(1), 1, "the empty entry commits after healing");
    assert_eq!(
        net.nodes[&1].read_states,
        vec![ReadState {
            index: 1,
            request_ctx: ctx("early"),
        }],
        "the held read is answered at the first commit index of the term"
    );
    assert_eq!(
        net.nodes[&3].read_states,
        vec![ReadState {
            index: 1,
            request_ctx: ctx("fwd"),
        }],
        "the held forwarded read is answered too"
    );
}

/// Thesis §6.4: the heartbeat round is what stops a deposed leader from
/// answering with a stale commit index. A leader cut off while the others
/// elect a new leader and commit more never answers; once it hears of the
/// new term it steps down and the pending read is dropped, never answered
/// late.
#[test]
fn deposed_leader_never_answers_reads() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(1);
    net.campaign(2);
    assert_eq!(net.state(2), StateRole::Leader, "2 leads the majority");
    net.propose(2, b"new").expect("new leader accepts");
    assert_eq!(net.committed(2), 3, "the majority committed more");
    assert_eq!(net.state(1), StateRole::Leader, "1 still believes it leads");

    // 1 can reach the others, but hears nothing back from them.
    net.recover();
    net.cut_one_way(2, 1);
    net.cut_one_way(3, 1);
    net.node_mut(1)
        .read_index(ctx("stale"))
        .expect("1 accepts the read");
    net.tick(1, 3);
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "a deposed leader must not answer: {:?}",
        net.nodes[&1].read_states
    );

    net.recover();
    net.tick(2, 1);
    assert_eq!(net.state(1), StateRole::Follower, "1 learned the new term");
    net.tick(1, 3);
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "the stale read is dropped, not answered later: {:?}",
        net.nodes[&1].read_states
    );
}

/// Thesis §6.4: a follower forwards a read request to its leader, which
/// confirms leadership and sends back its own commit index; the follower
/// hands that out (it must apply up to it before reading).
#[test]
fn follower_read_is_forwarded_and_answered_with_the_leaders_commit_index() {
    let mut net = Network::new(3);
    net.campaign(1);
    // Commit an entry on 1 and 3 only, so follower 2 lags behind.
    net.node_mut(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader accepts a proposal");
    for m in net.take_queue() {
        if m.to != 2 {
            net.deliver(m);
        }
    }
    net.stabilize();
    assert_eq!(net.committed(1), 2, "the leader committed the proposal");
    let follower_commit = net.committed(2);
    assert_eq!(follower_commit, 1, "follower 2 lags behind");

    net.sent.clear();
    net.node_mut(2)
        .read_index(ctx("f"))
        .expect("follower forwards");
    net.stabilize();
    let fwd = net.sent_of(MessageType::MsgReadIndex);
    assert_eq!(fwd.len(), 1, "one forwarded request: {fwd:?}");
    assert_eq!((fwd[0].from, fwd[0].to), (2, 1), "forwarded to the leader");
    assert_eq!(
        net.nodes[&2].read_states,
        vec![ReadState {
            index: 2,
            request_ctx: ctx("f"),
        }],
        "the follower gets the leader's commit index, not its own ({follower_commit})"
    );
    assert!(
        net.nodes[&1].read_states.is_empty(),
        "the answer goes to the follower, not to the leader's application"
    );
}

/// Thesis §6.4: several reads in flight at once are all answered, each at
/// the commit index of its arrival; one acknowledged heartbeat round
/// confirms every request queued before it.
#[test]
fn concurrent_reads_with_distinct_contexts_are_all_answered() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.drop_type(MessageType::MsgHeartbeatResp);

    net.node_mut(1).read_index(ctx("a")).expect("read a");
    net.stabilize();
    net.propose(1, b"x").expect("leader accepts a proposal");
    assert_eq!(net.committed(1), 2, "appends still flow");
    net.node_mut(1).read_index(ctx("b")).expect("read b");
    net.node_mut(3)
        .read_index(ctx("c"))
        .expect("read c from a follower");
    net.node_mut(1).read_index(ctx("d")).expect("read d");
    net.stabilize();
    assert!(
        net.nodes[&1].read_states.is_empty() && net.nodes[&3].read_states.is_empty(),
        "nothing is answered without acknowledgements"
    );

    net.recover();
    net.tick(1, 1);
    assert_eq!(
        net.nodes[&1].read_states,
        vec![
            ReadState {
                index: 1,
                request_ctx: ctx("a"),
            },
            ReadState {
                index: 2,
                request_ctx: ctx("b"),
            },
            ReadState {
                index: 2,
                request_ctx: ctx("d"),
            },
        ],
        "every local read answered, in order, at its own commit index"
    );
    assert_eq!(
        net.nodes[&3].read_states,
        vec![ReadState {
            index: 2,
            request_ctx: ctx("c"),
        }],
        "the forwarded read is answered on its follower"
    );
}

/// Thesis §6.4: a single voter is its own quorum; it answers a read at once,
/// with no heartbeat round.
#[test]
fn single_node_answers_at_once() {
    let mut net = Network::new(1);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader, "a lone node elects itself");
    let committed = net.committed(1);
    net.sent.clear();
    net.node_mut(1)
        .read_index(ctx("solo"))
        .expect("read accepted");
    net.process(1);
    assert_eq!(
        net.nodes[&1].read_states,
        vec![ReadState {
            index: committed,
            request_ctx: ctx("solo"),
        }],
        "answered in the next Ready"
    );
    assert!(net.queue.is_empty(), "nothing sent: {:?}", net.queue);
}

/// Thesis §6.4: only a leader can serve reads; with no leader known a read
/// is refused (`NoLeader`), on a follower and on a candidate alike.
#[test]
fn read_without_a_leader_is_refused() {
    let mut net = Network::new(3);
    assert_eq!(
        net.node_mut(1).read_index(ctx("r")),
        Err(Error::ProposalDropped(DropReason::NoLeader)),
        "follower without a leader"
    );
    net.isolate(2);
    net.isolate(3);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Candidate, "no quorum, no leader");
    assert_eq!(
        net.node_mut(1).read_index(ctx("r")),
        Err(Error::ProposalDropped(DropReason::NoLeader)),
        "candidate"
    );
    net.stabilize();
    assert!(
        net.sent_of(MessageType::MsgReadIndex).is_empty(),
        "nothing forwarded"
    );
}

fn lease_config(c: &mut Config) {
    c.check_quorum = true;
    c.read_only_option = ReadOnlyOption::LeaseBased;
}

/// Thesis §6.4.1: with lease-based reads (and check-quorum), the leader
/// answers from its lease without a heartbeat round, for its own reads and
/// for reads forwarded by followers.
#[test]
fn lease_based_read_needs_no_heartbeat_round() {
    let mut net = Network::with_config(3, lease_config);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader, "node 1 must lead");
    let committed = net.committed(1);
    assert_eq!(committed, 1, "the empty entry is committed");

    net.sent.clear();
    net.node_mut(1)
        .read_index(ctx("l1"))
        .expect("read accepted");
    net.process(1);
    assert_eq!(
        net.nodes[&1].read_states,
        vec![ReadState {
            index: committed,
            request_ctx: ctx("l1"),
        }],
        "answered in the next Ready, from the lease"
    );
    assert!(
        net.queue.is_empty(),
        "no heartbeat needed to answer: {:?}",
        net.queue
    );

    net.node_mut(2)
        .read_index(ctx("l2"))
        .expect("follower forwards");
    net.stabilize();
    assert_eq!(
        net.nodes[&2].read_states,
        vec![ReadState {
            index: committed,
            request_ctx: ctx("l2"),
        }],
        "the forwarded read is answered from the lease"
    );
    assert!(
        net.sent_of(MessageType::MsgHeartbeat).is_empty(),
        "no heartbeat between requests and answers: {:?}",
        net.sent_of(MessageType::MsgHeartbeat)
    );
}

/// Thesis §6.4.1: a lease is only safe if a leader that lost its quorum
/// steps down, so `LeaseBased` without `check_quorum` is refused.
#[test]
fn lease_based_reads_require_check_quorum() {
    let mut c = test_config(1);
    c.read_only_option = ReadOnlyOption::LeaseBased;
    c.check_quorum = false;
    assert_eq!(
        c.validate(),
        Err(ConfigError::LeaseWithoutCheckQuorum),
        "validate refuses the combination"
    );
    assert_eq!(
        RawNode::new(&c, MemoryStorage::new()).err(),
        Some(Error::Config(ConfigError::LeaseWithoutCheckQuorum)),
        "and a node cannot be built with it"
    );
    c.check_quorum = true;
    assert_eq!(c.validate(), Ok(()), "with check_quorum it is accepted");
}
