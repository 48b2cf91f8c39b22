//! Check-quorum and leader stickiness (thesis §6.2 and §4.2.3, as in
//! etcd's `CheckQuorum`), alone and with pre-vote (thesis §9.6).

#[path = "common/network.rs"]
mod network;

use network::*;
use rudder_raft::{Message, MessageType, StateRole};

const ELECTION_TICK: usize = 10;

/// A cluster of `n` with check-quorum on (pre-vote off).
fn check_quorum_cluster(n: u64) -> Network {
    Network::with_config(n, |c| c.check_quorum = true)
}

/// Ticks the given nodes once each, then lets the network settle, `n`
/// times.
fn tick_nodes(net: &mut Network, ids: &[u64], n: usize) {
    for _ in 0..n {
        for &id in ids {
            net.node_mut(id).tick();
        }
        net.stabilize();
    }
}

/// Ticks `id` alone until it is no longer leader; returns after how many
/// ticks, or `None` if it still leads after `max` ticks.
fn ticks_until_step_down(net: &mut Network, id: u64, max: usize) -> Option<usize> {
    (1..=max).find(|_| {
        net.tick(id, 1);
        net.state(id) != StateRole::Leader
    })
}

/// The messages that crossed the wire since `mark` (an index into `sent`).
fn sent_since(net: &Network, mark: usize) -> Vec<Message> {
    net.sent[mark..].to_vec()
}

/// Thesis §6.2 ("a leader steps down if an election timeout elapses
/// without a successful round of heartbeats to a majority of its
/// cluster"): a leader cut off from every follower steps down — not before
/// an election timeout since it last heard from a quorum, and within two —
/// keeping its term; the majority elects a new leader.
#[test]
fn leader_cut_off_from_quorum_steps_down() {
    let mut net = check_quorum_cluster(3);
    net.campaign(1);
    // Run into the middle of a check period, hearing from everyone.
    net.tick_all(ELECTION_TICK + ELECTION_TICK / 2);
    assert_eq!(net.leader(), Some(1));
    net.isolate(1);
    let ticks = ticks_until_step_down(&mut net, 1, 4 * ELECTION_TICK)
        .expect("a leader without a quorum steps down");
    assert!(
        ticks > ELECTION_TICK && ticks <= 2 * ELECTION_TICK,
        "stepped down after {ticks} ticks, expected ({ELECTION_TICK}, {}]",
        2 * ELECTION_TICK
    );
    let r = net.node(1).raft();
    assert_eq!(r.state, StateRole::Follower);
    assert_eq!(r.term, 1, "stepping down does not start a new term");
    assert_eq!(r.lead, 0, "it knows no leader");

    tick_nodes(&mut net, &[2, 3], 4 * ELECTION_TICK);
    let new_leader = net
        .leader()
        .filter(|&l| l != 1)
        .expect("2 and 3 elect a leader");
    assert!(net.term(new_leader) > 1);
}

/// Thesis §6.2: a leader that keeps hearing from a majority keeps leading,
/// however long a minority stays unreachable.
#[test]
fn leader_with_quorum_stays() {
    for (n, down) in [(3, &[3][..]), (5, &[4, 5][..])] {
        let mut net = check_quorum_cluster(n);
        net.campaign(1);
        for &id in down {
            net.isolate(id);
        }
        net.tick_all(10 * ELECTION_TICK);
        assert_eq!(net.leader(), Some(1), "{n} nodes, {down:?} down");
        assert_eq!(net.term(1), 1, "{n} nodes, {down:?} down");
        for id in (2..=n).filter(|id| !down.contains(id)) {
            let r = net.node(id).raft();
            assert_eq!(
                (r.state, r.term, r.lead),
                (StateRole::Follower, 1, 1),
                "{n} nodes: node {id}"
            );
        }
    }
}

/// Thesis §6.2 ("a *successful* round of heartbeats"): what counts is the
/// followers' answers, not the leader's sending. With every answer lost the
/// leader steps down within two election timeouts, although its followers
/// hear it all along.
#[test]
fn check_quorum_counts_answers_not_sends() {
    let mut net = check_quorum_cluster(3);
    net.campaign(1);
    net.drop_type(MessageType::MsgHeartbeatResp);
    net.drop_type(MessageType::MsgAppResp);
    let mut stepped_down = None;
    for t in 1..=3 * ELECTION_TICK {
        net.tick_all(1);
        if net.state(1) != StateRole::Leader {
            stepped_down = Some(t);
            break;
        }
        for id in [2, 3] {
            assert_eq!(
                (net.state(id), net.node(id).raft().lead),
                (StateRole::Follower, 1),
                "tick {t}: node {id} hears the leader"
            );
        }
    }
    let t = stepped_down.expect("a leader that hears no answers steps down");
    assert!(t <= 2 * ELECTION_TICK, "stepped down after {t} ticks");
    assert_eq!(net.term(1), 1);
}

/// Thesis §4.2.3 (leader stickiness: "if a server receives a RequestVote
/// request within the minimum election timeout of hearing from a current
/// leader, it does not update its term or grant its vote"): followers and
/// the leader ignore a vote request of a higher term while in lease; the
/// leader keeps its role and term.
#[test]
fn vote_request_within_lease_is_ignored() {
    let mut net = check_quorum_cluster(3);
    net.campaign(1);
    net.tick_all(3);
    // 3 campaigns out of turn (as after a pause): it has not timed out.
    net.node_mut(3).campaign();
    let requests = net.take_queue();
    assert_eq!(requests.len(), 2);
    assert!(requests
        .iter()
        .all(|m| m.kind() == Some(MessageType::MsgVote) && m.term == 2));
    for m in requests {
        net.deliver(m);
    }
    let answers = net.take_queue();
    assert!(
        answers.is_empty(),
        "vote requests within the lease are neither granted nor answered: {answers:?}"
    );
    let leader = net.node(1).raft();
    assert_eq!(
        (leader.state, leader.term),
        (StateRole::Leader, 1),
        "the leader keeps its role and term"
    );
    let follower = net.node(2).raft();
    assert_eq!(
        (follower.state, follower.term, follower.vote, follower.lead),
        (StateRole::Follower, 1, 1, 1),
        "the follower keeps its term, vote and leader"
    );
    assert_eq!((net.state(3), net.term(3)), (StateRole::Candidate, 2));
}

/// Thesis §4.2.3: the lease lasts the (minimum) election timeout and no
/// longer. A follower cut off from its leader ignores a vote request of a
/// higher term one tick before the timeout has elapsed since it last heard
/// the leader, and grants it once it has.
#[test]
fn lease_ends_after_one_election_timeout() {
    let mut net = check_quorum_cluster(3);
    net.campaign(1);
    net.tick_all(3);
    assert_eq!(
        net.node(2).raft().election_elapsed(),
        0,
        "2 just heard the leader"
    );
    net.cut(1, 2);
    net.tick(2, ELECTION_TICK - 1);
    assert_eq!(net.node(2).raft().election_elapsed(), ELECTION_TICK - 1);
    let request = |net: &Network| {
        // Term 3: above anything 2 can reach by campaigning once itself.
        let mut m = Message::new(MessageType::MsgVote, 3, 2);
        m.term = 3;
        m.index = net.last_index(3);
        m.log_term = net.log_ids(3).last().map_or(0, |&(_, t)| t);
        m
    };
    let votes_from_two = |net: &mut Network| -> Vec<Message> {
        net.process(2);
        let out: Vec<Message> = net.queue.drain(..).collect();
        out.into_iter()
            .filter(|m| m.kind() == Some(MessageType::MsgVoteResp) && m.to == 3)
            .collect()
    };

    let m = request(&net);
    net.node_mut(2).step(m).expect("a well-formed vote request");
    assert!(
        votes_from_two(&mut net).is_empty(),
        "within the lease: ignored"
    );
    let r = net.node(2).raft();
    assert_eq!(
        (r.term, r.vote, r.lead),
        (1, 1, 1),
        "within the lease: nothing changes"
    );

    net.tick(2, 1);
    let m = request(&net);
    net.node_mut(2).step(m).expect("a well-formed vote request");
    let answers = votes_from_two(&mut net);
    assert_eq!(answers.len(), 1, "after the lease: answered");
    assert!(!answers[0].reject, "and granted (3's log is as up-to-date)");
    let r = net.node(2).raft();
    assert_eq!(
        (r.term, r.vote),
        (3, 3),
        "2 moved to term 3 and voted for 3"
    );
}

/// Figure 2 ("If RPC request or response contains term T > currentTerm:
/// set currentTerm = T, convert to follower"), with check-quorum's answer
/// to a stale leader: an old leader partitioned away while the others
/// elected a new one, on healing, is told the newer term in the answer to
/// its heartbeat, steps down, and follows the new leader.
#[test]
fn stale_leader_learns_the_newer_term_and_steps_down() {
    let mut net = check_quorum_cluster(3);
    net.campaign(1);
    net.isolate(1);
    // Only 2 and 3 tick: 1 does not notice (yet) that it lost its quorum.
    let mut new_leader = None;
    for _ in 0..10 * ELECTION_TICK {
        tick_nodes(&mut net, &[2, 3], 1);
        new_leader = [2, 3]
            .into_iter()
            .find(|&id| net.state(id) == StateRole::Leader);
        if new_leader.is_some() {
            break;
        }
    }
    let new_leader = new_leader.expect("2 and 3 elect a leader once their lease expires");
    let new_term = net.term(new_leader);
    assert!(new_term > 1);
    assert_eq!(
        (net.state(1), net.term(1)),
        (StateRole::Leader, 1),
        "the old leader has not noticed"
    );

    net.recover();
    let mark = net.sent.len();
    // One tick: the old leader heartbeats with its old term.
    net.tick(1, 1);
    let sent = sent_since(&net, mark);
    assert!(
        sent.iter()
            .any(|m| m.kind() == Some(MessageType::MsgHeartbeat) && m.from == 1 && m.term == 1),
        "the old leader heartbeats in term 1"
    );
    let answers: Vec<&Message> = sent
        .iter()
        .filter(|m| m.to == 1 && m.kind() == Some(MessageType::MsgAppResp))
        .collect();
    assert!(!answers.is_empty(), "the stale heartbeat is answered");
    assert!(
        answers.iter().all(|m| m.term == new_term),
        "with the newer term: {answers:?}"
    );
    let r = net.node(1).raft();
    assert_eq!(
        (r.state, r.term),
        (StateRole::Follower, new_term),
        "the old leader steps down"
    );

    net.tick_all(ELECTION_TICK);
    assert_eq!(net.leader(), Some(new_leader), "the new leader stays");
    assert_eq!(net.term(new_leader), new_term);
    assert_eq!(
        net.node(1).raft().lead,
        new_leader,
        "the old leader follows it"
    );
    assert_eq!(net.log_ids(1), net.log_ids(new_leader), "and takes its log");
}

/// Figure 2 (a higher term in any response converts to follower) and
/// check-quorum: a node that raised its term alone while cut off is not
/// stuck forever once back — its answer to the leader's heartbeat carries
/// its term, the leader steps down, and the cluster converges on one leader
/// in a term at least as high.
#[test]
fn stuck_candidate_with_higher_term_is_freed() {
    let mut net = check_quorum_cluster(3);
    net.campaign(1);
    net.isolate(3);
    net.tick_all(5 * ELECTION_TICK);
    let stuck_term = net.term(3);
    assert!(
        stuck_term > 1,
        "without pre-vote the isolated node raised its term"
    );
    assert_eq!(net.state(3), StateRole::Candidate);
    assert_eq!((net.leader(), net.term(1)), (Some(1), 1));

    net.recover();
    let mark = net.sent.len();
    net.tick_all(5 * ELECTION_TICK);
    assert!(
        sent_since(&net, mark).iter().any(|m| m.from == 3
            && m.to == 1
            && m.kind() == Some(MessageType::MsgAppResp)
            && m.term >= stuck_term),
        "3 answers the stale heartbeat with its term"
    );
    let leader = net.leader().expect("the cluster has a leader again");
    let term = net.term(leader);
    assert!(
        term >= stuck_term,
        "term {term} below the stuck candidate's {stuck_term}"
    );
    for id in 1..=3 {
        let r = net.node(id).raft();
        assert_eq!(r.term, term, "node {id}: one term");
        assert_eq!(r.lead, leader, "node {id}: one leader");
    }
}

/// Thesis §9.6 with §4.2.3 (pre-vote plus leader stickiness): a node
/// partitioned away pre-votes without raising its term, and on rejoining —
/// even campaigning at once, with a log as up-to-date as anyone's — finds
/// every peer in lease: the leader and the term stay.
#[test]
fn prevote_and_check_quorum_rejoining_node_does_not_disrupt() {
    let mut net = Network::with_config(3, |c| {
        c.check_quorum = true;
        c.pre_vote = true;
    });
    net.campaign(1);
    net.isolate(3);
    net.tick_all(10 * ELECTION_TICK);
    assert_eq!(net.term(3), 1, "pre-voting alone does not raise the term");
    assert_eq!((net.leader(), net.term(1)), (Some(1), 1));

    net.recover();
    net.campaign(3);
    let granted = net
        .sent_of(MessageType::MsgPreVoteResp)
        .iter()
        .filter(|m| m.to == 3 && !m.reject)
        .count();
    assert_eq!(granted, 0, "peers in lease grant 3 no pre-vote");
    net.tick_all(5 * ELECTION_TICK);
    assert_eq!(net.leader(), Some(1), "the leader stays");
    for id in 1..=3 {
        let r = net.node(id).raft();
        assert_eq!(r.term, 1, "node {id}: the term stays");
        assert_eq!(r.lead, 1, "node {id} follows 1");
    }
    assert!(
        net.sent_of(MessageType::MsgVote)
            .iter()
            .all(|m| m.from != 3),
        "3 never ran a real election"
    );
    net.propose(1, b"after the rejoin")
        .expect("the leader accepts");
    assert_eq!(net.log_ids(3), net.log_ids(1));
}
