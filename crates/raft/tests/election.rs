//! Elections (§5.2, §5.4.1; thesis §9.6 for pre-vote), and the term and
//! input rules every message goes through (Figure 2, "Rules for All
//! Servers").

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::{Config, Entry, Error, MemoryStorage, Message, MessageType, Raft, StateRole};
use std::collections::BTreeSet;

const ELECTION_TICK: usize = 10;

/// A message of `kind` from `from` to `to` in `term`, everything else zero.
fn msg(kind: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::new(kind, from, to);
    m.term = term;
    m
}

/// An append from `from` in `term` after `(index, log_term)` carrying
/// entries with these `(index, term)` ids.
fn append(from: u64, to: u64, term: u64, index: u64, log_term: u64, ids: &[(u64, u64)]) -> Message {
    let mut m = msg(MessageType::MsgApp, from, to, term);
    m.index = index;
    m.log_term = log_term;
    m.entries = ids
        .iter()
        .map(|&(i, t)| Entry::new(t, i, Bytes::from_static(b"x")))
        .collect();
    m
}

/// The messages of `kind` that crossed the wire from `from` to `to`.
fn sent_between(net: &Network, kind: MessageType, from: u64, to: u64) -> Vec<Message> {
    net.sent_of(kind)
        .into_iter()
        .filter(|m| m.from == from && m.to == to)
        .cloned()
        .collect()
}

/// The pre-vote test config.
fn pre_vote_config(id: u64) -> Config {
    let mut c = test_config(id);
    c.pre_vote = true;
    c
}

// ---------------------------------------------------------------------------
// Elections (§5.2)
// ---------------------------------------------------------------------------

/// §5.2: a candidate that receives votes from a majority of the cluster
/// becomes leader; its empty entry commits everywhere.
#[test]
fn a_majority_elects_a_leader() {
    let mut net = Network::new(3);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader);
    assert_eq!(net.state(2), StateRole::Follower);
    assert_eq!(net.term(1), 1);
    assert_eq!(net.node(2).raft().lead, 1);
    // The leader's empty entry of its term is committed everywhere.
    for id in 1..=3 {
        assert_eq!(net.committed(id), 1, "node {id}");
    }
}

/// §5.2: a majority of the *whole* cluster suffices: with two of five nodes
/// down, the votes of the other two plus the candidate's own win.
#[test]
fn a_bare_majority_of_five_elects_a_leader() {
    let mut net = Network::new(5);
    net.isolate(4);
    net.isolate(5);
    net.campaign(1);
    assert_eq!(
        net.state(1),
        StateRole::Leader,
        "3 of 5 votes is a majority"
    );
    assert_eq!(net.term(1), 1);
    let granted: BTreeSet<u64> = net
        .sent_of(MessageType::MsgVoteResp)
        .iter()
        .filter(|m| m.to == 1 && !m.reject)
        .map(|m| m.from)
        .collect();
    assert_eq!(
        granted,
        BTreeSet::from([2, 3]),
        "only the reachable peers voted"
    );
    for id in [2, 3] {
        assert_eq!(net.node(id).raft().vote, 1, "node {id} voted for 1");
        assert_eq!(net.node(id).raft().lead, 1, "node {id} follows 1");
    }
}

/// §5.2: without a majority a candidate does not become leader, and each
/// campaign starts a new, higher term.
#[test]
fn no_quorum_no_leader_and_terms_keep_rising_without_prevote() {
    let mut net = Network::new(3);
    net.isolate(2);
    net.isolate(3);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Candidate);
    net.campaign(1);
    assert_eq!(net.term(1), 2, "each campaign raises the term");
}

/// §5.2: "If election timeout elapses without receiving AppendEntries from
/// current leader or granting vote to candidate: convert to candidate", and
/// a candidate that neither wins nor loses "times out and starts a new
/// election by incrementing its term" — exactly when its randomized timeout
/// runs out, each round with a fresh timeout in [election_tick,
/// 2*election_tick).
#[test]
fn isolated_candidate_times_out_and_raises_its_term_each_round() {
    let mut net = Network::new(3);
    net.isolate(1);
    let mut last_round_start = 0;
    let mut rounds: u64 = 0;
    for t in 1..=100 {
        let r = net.node(1).raft();
        let (term, timeout, elapsed) = (
            r.term,
            r.randomized_election_timeout(),
            r.election_elapsed(),
        );
        net.tick(1, 1);
        let campaigned = net.term(1) != term;
        assert_eq!(
            campaigned,
            elapsed + 1 >= timeout,
            "tick {t}: a campaign starts exactly when the timeout {timeout} runs out (elapsed was {elapsed})"
        );
        if campaigned {
            assert_eq!(
                net.term(1),
                term + 1,
                "tick {t}: one campaign raises the term by one"
            );
            assert_eq!(net.state(1), StateRole::Candidate, "tick {t}");
            assert_eq!(
                net.node(1).raft().vote,
                1,
                "tick {t}: a candidate votes for itself"
            );
            let gap = t - last_round_start;
            assert!(
                (ELECTION_TICK..2 * ELECTION_TICK).contains(&gap),
                "tick {t}: round lasted {gap} ticks, outside [{ELECTION_TICK}, {})",
                2 * ELECTION_TICK
            );
            last_round_start = t;
            rounds += 1;
        }
    }
    let (min, max) = (100 / (2 * ELECTION_TICK) as u64, 100 / ELECTION_TICK as u64);
    assert!(
        (min..=max).contains(&rounds),
        "{rounds} elections in 100 ticks, expected {min}..={max}"
    );
    assert_eq!(
        net.term(1),
        rounds,
        "one term per election, starting from 0"
    );
}

/// Figure 2 (persistent state is "updated on stable storage before
/// responding to RPCs"): a candidate counts its own vote only after the
/// Ready that records it is persisted and advanced.
#[test]
fn own_vote_counts_only_after_it_is_persisted() {
    // Alone, the node is its own majority, but only once its vote is durable.
    let mut solo = Network::new(1);
    solo.node_mut(1).campaign();
    assert_eq!(
        solo.state(1),
        StateRole::Candidate,
        "own vote not yet persisted"
    );
    solo.process(1);
    assert_eq!(
        solo.state(1),
        StateRole::Leader,
        "own vote counted after advance"
    );

    // In three, one peer's grant plus the unpersisted own vote is not enough.
    let mut net = Network::new(3);
    let mut rd = {
        let node = net.node_mut(1);
        node.campaign();
        node.ready()
    };
    let hs = rd
        .hard_state
        .expect("the new term and vote are to be persisted");
    assert_eq!((hs.term, hs.vote), (1, 1));
    assert!(rd.must_sync, "a vote must be synced");
    let to_two = rd
        .messages
        .iter()
        .find(|m| m.to == 2)
        .cloned()
        .expect("a vote request to 2 may leave before persisting");
    assert_eq!(to_two.kind(), Some(MessageType::MsgVote));
    net.deliver(to_two);
    net.process(2);
    let grant = net.queue.pop_front().expect("2 answers");
    assert_eq!(grant.kind(), Some(MessageType::MsgVoteResp));
    assert!(!grant.reject, "2 grants its vote");
    net.node_mut(1)
        .step(grant)
        .expect("a vote response from a member");
    assert_eq!(
        net.state(1),
        StateRole::Candidate,
        "one grant without the persisted own vote is no majority of three"
    );
    let node = net.node_mut(1);
    node.storage_mut().set_hard_state(hs);
    node.storage_mut().append(&rd.entries).unwrap();
    rd.messages.clear();
    node.advance(rd);
    assert_eq!(
        net.state(1),
        StateRole::Leader,
        "own vote counted once persisted"
    );
}

/// Figure 2 (RequestVote: grant if "votedFor is null or candidateId"): a
/// node votes for at most one candidate per term, first come first served,
/// and repeats the same answer to a retry.
#[test]
fn a_node_votes_at_most_once_per_term() {
    let mut net = Network::new(3);
    net.node_mut(1).campaign();
    net.node_mut(2).campaign();
    let requests = net.take_queue();
    assert_eq!(
        (net.term(1), net.term(2)),
        (1, 1),
        "two candidates in term 1"
    );
    let to_three = |from: u64| -> Message {
        requests
            .iter()
            .find(|m| m.from == from && m.to == 3)
            .cloned()
            .unwrap_or_else(|| panic!("a vote request from {from} to 3"))
    };
    net.deliver(to_three(1));
    net.deliver(to_three(2));
    // A retry of each.
    net.deliver(to_three(1));
    net.deliver(to_three(2));
    let answers = net.take_queue();
    let from_three: Vec<(u64, bool)> = answers
        .iter()
        .filter(|m| m.from == 3 && m.kind() == Some(MessageType::MsgVoteResp))
        .map(|m| (m.to, m.reject))
        .collect();
    assert_eq!(
        from_three,
        [(1, false), (2, true), (1, false), (2, true)],
        "3 grants the first candidate (again on retry) and refuses the second"
    );
    assert_eq!(net.node(3).raft().vote, 1);
    assert_eq!(net.term(3), 1);
    for m in answers {
        net.deliver(m);
    }
    net.stabilize();
    assert_eq!(net.state(1), StateRole::Leader);
    assert_eq!(
        net.state(2),
        StateRole::Follower,
        "the other candidate follows"
    );
    let leaders_of_term_1 = (1..=3)
        .filter(|&id| net.state(id) == StateRole::Leader && net.term(id) == 1)
        .count();
    assert_eq!(leaders_of_term_1, 1, "at most one leader per term");
}

/// §5.4.1 (election restriction): a voter refuses a candidate whose log is
/// less up-to-date than its own — a lower last term, or the same last term
/// and a shorter log — and grants one whose log is at least as up-to-date.
#[test]
fn vote_refused_to_a_less_up_to_date_log() {
    // (candidate's log terms, voters' log terms, granted)
    let cases: [(&[u64], &[u64], bool); 6] = [
        (&[1, 1, 1, 1], &[1, 1, 2], false), // lower last term, though longer
        (&[1, 2], &[1, 2, 2], false),       // same last term, shorter
        (&[1, 2, 2], &[1, 2, 2], true),     // identical
        (&[1, 1, 2], &[1, 1, 1, 1], true),  // higher last term, though shorter
        (&[1, 2, 2, 2], &[1, 2, 2], true),  // same last term, longer
        (&[], &[], true),                   // both empty
    ];
    for (candidate, voter, granted) in cases {
        let voters = [1, 2, 3];
        let mut net = Network::with_storages(vec![
            (test_config(1), storage_with_log(&voters, candidate)),
            (test_config(2), storage_with_log(&voters, voter)),
            (test_config(3), storage_with_log(&voters, voter)),
        ]);
        let case = format!("candidate {candidate:?} vs voters {voter:?}");
        net.campaign(1);
        let term = candidate.last().copied().unwrap_or(0) + 1;
        for id in [2, 3] {
            let answers = sent_between(&net, MessageType::MsgVoteResp, id, 1);
            assert_eq!(answers.len(), 1, "{case}: node {id} answers once");
            assert_eq!(answers[0].reject, !granted, "{case}: node {id}'s answer");
            assert_eq!(
                answers[0].term, term,
                "{case}: the answer is in the candidate's term"
            );
            let vote = net.node(id).raft().vote;
            assert_eq!(
                vote,
                if granted { 1 } else { 0 },
                "{case}: node {id}'s recorded vote"
            );
        }
        if granted {
            assert_eq!(net.state(1), StateRole::Leader, "{case}");
        } else {
            assert_eq!(
                net.state(1),
                StateRole::Follower,
                "{case}: a refused candidate steps down"
            );
            assert!(net.leader().is_none(), "{case}: nobody leads");
        }
    }
}

/// §5.2: "If the leader's term is at least as large as the candidate's
/// current term, then the candidate recognizes the leader as legitimate and
/// returns to follower state." Two candidates of one term: the loser
/// follows the winner as soon as its first append arrives.
#[test]
fn candidate_steps_down_on_append_from_leader_of_its_term() {
    let mut net = Network::new(3);
    net.node_mut(1).campaign();
    net.node_mut(3).campaign();
    let requests = net.take_queue();
    // Only 2 hears 1's request; 3's requests are lost.
    let to_two = requests
        .into_iter()
        .find(|m| m.from == 1 && m.to == 2)
        .expect("1 asks 2 for a vote");
    net.deliver(to_two);
    for m in net.take_queue() {
        net.deliver(m);
    }
    assert_eq!(net.state(1), StateRole::Leader, "1 won with 2's vote");
    assert_eq!((net.state(3), net.term(3)), (StateRole::Candidate, 1));
    let appends = net.take_queue();
    let to_three = appends
        .into_iter()
        .find(|m| m.to == 3 && m.kind() == Some(MessageType::MsgApp))
        .expect("the new leader appends to 3");
    assert_eq!(to_three.term, 1);
    net.deliver(to_three);
    assert_eq!(
        net.state(3),
        StateRole::Follower,
        "the candidate steps down"
    );
    assert_eq!(net.term(3), 1, "in the same term");
    assert_eq!(net.node(3).raft().lead, 1, "and follows the leader");
    net.stabilize();
    assert_eq!(net.log_ids(3), net.log_ids(1), "and takes its log");
}

/// §5.2 and Figure 2 ("If RPC request or response contains term T >
/// currentTerm: set currentTerm = T, convert to follower"; a request from an
/// older term is rejected): a candidate follows a leader of its own or a
/// newer term, on an append or a heartbeat, and ignores one of an older
/// term.
#[test]
fn candidate_follows_current_or_newer_leader_and_ignores_older() {
    for (kind, offset) in [
        (MessageType::MsgApp, 0i64),
        (MessageType::MsgHeartbeat, 0),
        (MessageType::MsgApp, 1),
        (MessageType::MsgHeartbeat, 1),
        (MessageType::MsgApp, -1),
        (MessageType::MsgHeartbeat, -1),
    ] {
        let mut net = Network::new(3);
        net.isolate(3);
        net.campaign(3);
        net.campaign(3);
        let cand_term = net.term(3);
        assert_eq!((net.state(3), cand_term), (StateRole::Candidate, 2));
        let term = cand_term.checked_add_signed(offset).unwrap();
        let m = if kind == MessageType::MsgApp {
            append(2, 3, term, 0, 0, &[])
        } else {
            msg(kind, 2, 3, term)
        };
        net.node_mut(3).step(m).expect("a well-formed message");
        let case = format!("{kind:?} of term {term} to a candidate of term {cand_term}");
        let r = net.node(3).raft();
        if offset >= 0 {
            assert_eq!(r.state, StateRole::Follower, "{case}");
            assert_eq!(r.term, term, "{case}");
            assert_eq!(r.lead, 2, "{case}: follows the sender");
        } else {
            assert_eq!(r.state, StateRole::Candidate, "{case}: stays candidate");
            assert_eq!(r.term, cand_term, "{case}: keeps its term");
            assert_eq!(r.lead, 0, "{case}: knows no leader");
        }
    }
}

/// Figure 2 ("If RPC request ... contains term T > currentTerm: set
/// currentTerm = T, convert to follower"): without check-quorum (no lease),
/// a vote request of a higher term makes the leader step down at once, and
/// it may then grant the vote.
#[test]
fn vote_request_of_higher_term_makes_leader_step_down() {
    let mut net = Network::new(3);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader);
    net.node_mut(3).campaign();
    let requests = net.take_queue();
    let to_one = requests
        .iter()
        .find(|m| m.to == 1 && m.kind() == Some(MessageType::MsgVote))
        .cloned()
        .expect("3 asks 1 for a vote");
    assert_eq!(to_one.term, 2);
    net.deliver(to_one);
    assert_eq!(
        net.state(1),
        StateRole::Follower,
        "the leader steps down at once"
    );
    assert_eq!(net.term(1), 2, "and adopts the newer term");
    assert_eq!(
        net.node(1).raft().vote,
        3,
        "its log is no newer: it grants the vote"
    );
    for m in requests.into_iter().filter(|m| m.to != 1) {
        net.deliver(m);
    }
    net.stabilize();
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.term(3), 2);
}

/// §5.2 ("election timeouts are chosen randomly from a fixed interval"):
/// the randomized timeout lies in [election_tick, 2*election_tick), covers
/// that interval across seeds, and is drawn again on every term change.
#[test]
fn randomized_election_timeout_is_in_range_and_varies() {
    for election_tick in [5, ELECTION_TICK, 20] {
        let mut seen = BTreeSet::new();
        for seed in 0..500u64 {
            let mut c = test_config(1);
            c.election_tick = election_tick;
            c.seed = seed;
            let storage =
                MemoryStorage::new_with_conf_state(rudder_raft::ConfState::with_voters([1, 2, 3]));
            let r = Raft::new(&c, storage).expect("valid config");
            let t = r.randomized_election_timeout();
            assert!(
                (election_tick..2 * election_tick).contains(&t),
                "seed {seed}: timeout {t} outside [{election_tick}, {})",
                2 * election_tick
            );
            seen.insert(t);
        }
        assert_eq!(
            seen.len(),
            election_tick,
            "500 seeds cover every value of [{election_tick}, {}): saw {seen:?}",
            2 * election_tick
        );
    }

    // One node: a fresh draw at each term change.
    let storage =
        MemoryStorage::new_with_conf_state(rudder_raft::ConfState::with_voters([1, 2, 3]));
    let mut r = Raft::new(&test_config(1), storage).expect("valid config");
    let mut seen = BTreeSet::new();
    for term in 1..=200 {
        r.become_follower(term, 0);
        let t = r.randomized_election_timeout();
        assert!(
            (ELECTION_TICK..2 * ELECTION_TICK).contains(&t),
            "term {term}: {t}"
        );
        seen.insert(t);
    }
    assert!(
        seen.len() > 1,
        "one node's timeout changes between terms: {seen:?}"
    );
}

/// §5.2 ("a server remains in follower state as long as it receives valid
/// RPCs from a leader"): followers that hear heartbeats never campaign, for
/// many election timeouts; once the heartbeats stop, one does.
#[test]
fn followers_hearing_heartbeats_never_campaign() {
    let mut net = Network::with_config(3, |c| c.heartbeat_tick = 4);
    net.campaign(1);
    let requests_before = net.sent_of(MessageType::MsgVote).len();
    for round in 0..20 {
        net.tick_all(ELECTION_TICK);
        assert_eq!(net.leader(), Some(1), "round {round}");
        for id in 1..=3 {
            assert_eq!(net.term(id), 1, "round {round}: node {id}");
        }
        for id in [2, 3] {
            let r = net.node(id).raft();
            assert_eq!(r.state, StateRole::Follower, "round {round}: node {id}");
            assert!(
                r.election_elapsed() < ELECTION_TICK,
                "round {round}: node {id} heard from the leader lately"
            );
        }
    }
    assert_eq!(
        net.sent_of(MessageType::MsgVote).len(),
        requests_before,
        "nobody campaigned"
    );

    // Control: without heartbeats a follower campaigns within 2 timeouts.
    net.drop_type(MessageType::MsgHeartbeat);
    net.tick_all(2 * ELECTION_TICK);
    assert!(
        net.sent_of(MessageType::MsgVote).len() > requests_before,
        "a follower that hears nothing campaigns"
    );
}

// ---------------------------------------------------------------------------
// Pre-vote (thesis §9.6)
// ---------------------------------------------------------------------------

/// Thesis §9.6: a node that cannot reach a majority keeps pre-voting but
/// never raises its term (or changes its vote), since no pre-vote round
/// succeeds.
#[test]
fn prevote_isolated_node_does_not_raise_its_term() {
    let mut net = Network::with_config(3, |c| c.pre_vote = true);
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.node(3).raft().vote, 1);
    net.isolate(3);
    net.tick_all(10 * ELECTION_TICK);
    assert_eq!(net.term(3), 1, "an isolated pre-candidate keeps its term");
    assert_eq!(net.node(3).raft().vote, 1, "and its vote");
    assert_eq!(net.state(3), StateRole::PreCandidate);
    let pre_votes = net
        .sent_of(MessageType::MsgPreVote)
        .into_iter()
        .filter(|m| m.from == 3)
        .collect::<Vec<_>>();
    assert!(
        pre_votes.len() >= 2 * 5,
        "at least one round per two timeouts, to each of two peers: {} requests",
        pre_votes.len()
    );
    assert!(
        pre_votes.iter().all(|m| m.term == 2),
        "pre-votes ask for the next term, without moving to it"
    );
    assert!(
        net.sent_of(MessageType::MsgVote)
            .iter()
            .all(|m| m.from != 3),
        "no real election without winning a pre-vote"
    );
    assert_eq!((net.leader(), net.term(1)), (Some(1), 1));
}

/// Thesis §9.6: a node that was partitioned (and fell behind) does not
/// disrupt the leader when it rejoins: its pre-vote is refused, so the
/// leader and the term stay, and it catches up.
#[test]
fn prevote_rejoining_node_does_not_disrupt_the_leader() {
    let mut net = Network::with_config(3, |c| c.pre_vote = true);
    net.campaign(1);
    net.isolate(3);
    net.tick_all(5 * ELECTION_TICK);
    net.propose(1, b"while 3 was away")
        .expect("the leader accepts");
    assert_eq!(net.committed(1), 2, "1 and 2 commit without 3");
    net.recover();
    // It campaigns before hearing the leader.
    net.campaign(3);
    assert_eq!(net.leader(), Some(1), "the leader is undisturbed");
    for id in 1..=3 {
        assert_eq!(net.term(id), 1, "node {id} keeps term 1");
    }
    let answers: Vec<_> = net
        .sent_of(MessageType::MsgPreVoteResp)
        .into_iter()
        .filter(|m| m.to == 3)
        .collect();
    assert_eq!(answers.len(), 2, "both peers answer the pre-vote");
    assert!(
        answers.iter().all(|m| m.reject),
        "both refuse: 3's log is behind"
    );
    net.tick_all(ELECTION_TICK);
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.term(1), 1);
    assert_eq!(net.node(3).raft().lead, 1, "3 follows the leader again");
    net.propose(1, b"after 3 is back")
        .expect("the leader accepts");
    assert_eq!(net.log_ids(3), net.log_ids(1), "and catches up");
    assert_eq!(net.committed(3), 3);
}

/// §5.3 ("If followers crash or run slowly, or if network packets are lost,
/// the leader retries AppendEntries RPCs indefinitely ... until all
/// followers eventually store all log entries"): a follower that missed an
/// append while cut off gets it once back, even from an idle leader.
#[test]
fn follower_that_missed_an_append_catches_up_with_an_idle_leader() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"missed by 3").expect("the leader accepts");
    assert_eq!(net.committed(1), 2, "1 and 2 commit without 3");
    net.recover();
    net.tick_all(5 * ELECTION_TICK);
    assert_eq!(net.node(3).raft().lead, 1, "3 hears the leader");
    assert_eq!(
        net.log_ids(3),
        net.log_ids(1),
        "3 holds the entry it missed"
    );
    assert_eq!(net.committed(3), 2, "and knows it committed");
}

/// Thesis §9.6 with §5.4.1: a pre-vote is granted only to a candidate whose
/// log is at least as up-to-date; a refused pre-candidate leaves no trace
/// (no term, no vote moved anywhere), an up-to-date one wins.
#[test]
fn prevote_needs_an_up_to_date_log() {
    let voters = [1, 2, 3];
    let mut net = Network::with_storages(vec![
        (pre_vote_config(1), storage_with_log(&voters, &[1])),
        (pre_vote_config(2), storage_with_log(&voters, &[1, 1])),
        (pre_vote_config(3), storage_with_log(&voters, &[1, 1])),
    ]);
    net.campaign(1);
    let answers = net.sent_of(MessageType::MsgPreVoteResp);
    assert_eq!(answers.len(), 2, "both peers answer");
    assert!(
        answers.iter().all(|m| m.reject),
        "1's log is behind: refused"
    );
    assert!(
        net.sent_of(MessageType::MsgVote).is_empty(),
        "no real election follows"
    );
    for id in 1..=3 {
        let r = net.node(id).raft();
        assert_eq!(
            (r.term, r.vote),
            (1, 0),
            "node {id}: term and vote unchanged"
        );
        assert_eq!(r.state, StateRole::Follower, "node {id}");
    }

    net.campaign(2);
    let granted: BTreeSet<u64> = net
        .sent_of(MessageType::MsgPreVoteResp)
        .iter()
        .filter(|m| m.to == 2 && !m.reject)
        .map(|m| m.from)
        .collect();
    assert_eq!(
        granted,
        BTreeSet::from([1, 3]),
        "2's log is up to date: granted"
    );
    assert_eq!(net.leader(), Some(2));
    assert_eq!(net.term(2), 2);
}

/// Thesis §9.6: a pre-candidate asks for the next term without moving to it;
/// once a majority grants, it becomes a candidate in term+1, and then leader
/// through a real election.
#[test]
fn prevote_winner_becomes_candidate_then_leader() {
    let mut net = Network::with_config(3, |c| c.pre_vote = true);
    net.node_mut(1).campaign();
    let requests = net.take_queue();
    assert_eq!((net.state(1), net.term(1)), (StateRole::PreCandidate, 0));
    assert_eq!(net.node(1).raft().vote, 0, "a pre-candidate does not vote");
    assert_eq!(requests.len(), 2);
    for m in &requests {
        assert_eq!(m.kind(), Some(MessageType::MsgPreVote));
        assert_eq!(m.term, 1, "the pre-vote is for the next term");
    }
    for m in requests {
        net.deliver(m);
    }
    let mut answers = net.take_queue();
    assert_eq!(answers.len(), 2);
    for m in &answers {
        assert_eq!(m.kind(), Some(MessageType::MsgPreVoteResp));
        assert!(!m.reject, "{} grants", m.from);
        assert_eq!(m.term, 1, "a granted pre-vote carries the future term");
    }
    for id in [2, 3] {
        let r = net.node(id).raft();
        assert_eq!(
            (r.term, r.vote),
            (0, 0),
            "node {id}: granting a pre-vote changes nothing"
        );
    }
    let first = answers.remove(0);
    net.deliver(first);
    net.process(1);
    assert_eq!(
        net.state(1),
        StateRole::Candidate,
        "own pre-vote plus one is a majority"
    );
    assert_eq!(net.term(1), 1, "the candidate moves to term+1");
    assert_eq!(net.node(1).raft().vote, 1);
    for m in answers {
        net.deliver(m);
    }
    net.stabilize();
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.term(1), 1, "leader in the term it pre-voted for");
    let votes = net.sent_of(MessageType::MsgVote);
    assert_eq!(votes.len(), 2, "one real vote request per peer");
    assert!(votes.iter().all(|m| m.term == 1));
}

// ---------------------------------------------------------------------------
// Bad input (Figure 2, "Rules for All Servers"): never a panic
// ---------------------------------------------------------------------------

/// A three-node cluster that went through terms 1, 2 and 3 (leader 1) and
/// committed two proposals: logs 1/1 2/2 3/3 4/3 5/3.
fn busy_cluster() -> Network {
    let mut net = Network::new(3);
    net.campaign(1);
    net.campaign(2);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    net.propose(1, b"b").unwrap();
    assert_eq!((net.leader(), net.term(1)), (Some(1), 3));
    assert_eq!(net.log_ids(2), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 3)]);
    assert_eq!(net.committed(2), 5);
    net
}

/// Everything a bad message must not touch.
#[derive(Debug, PartialEq)]
struct Observed {
    state: StateRole,
    term: u64,
    vote: u64,
    lead: u64,
    committed: u64,
    log: Vec<(u64, u64)>,
}

fn observe(net: &Network, id: u64) -> Observed {
    let r = net.node(id).raft();
    Observed {
        state: r.state,
        term: r.term,
        vote: r.vote,
        lead: r.lead,
        committed: r.log.committed(),
        log: net.log_ids(id),
    }
}

/// Steps `m` into `id` and returns the result and what the node sent.
fn step_and_collect(
    net: &mut Network,
    id: u64,
    m: Message,
) -> (rudder_raft::Result<()>, Vec<Message>) {
    net.queue.clear();
    let res = net.node_mut(id).step(m);
    net.process(id);
    (res, net.queue.drain(..).collect())
}

/// The step contract (`RawNode::step`): local message types are a node's
/// own inputs and never cross the network. From a peer they are refused
/// with an error and change nothing — a forged MsgHup starts no election,
/// repeated forged MsgCheckQuorums (no answers in between) depose no
/// leader, a forged MsgBeat sends nothing.
#[test]
fn bad_input_local_message_types_from_the_network_are_refused() {
    let local = [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgCheckQuorum,
        MessageType::MsgStorageAppend,
        MessageType::MsgStorageAppendResp,
        MessageType::MsgStorageApply,
        MessageType::MsgStorageApplyResp,
        MessageType::MsgForgetLeader,
    ];
    let mut net = busy_cluster();
    for id in [1, 2] {
        let before = observe(&net, id);
        for kind in local {
            for (from, term) in [(3, 0), (3, 3), (id, 0), (id, 4)] {
                let case = format!("{kind:?} from {from} in term {term} to {id}");
                let (res, out) = step_and_collect(&mut net, id, msg(kind, from, id, term));
                assert!(
                    matches!(res, Err(Error::InvalidMessage(_))),
                    "{case}: {res:?}"
                );
                assert!(out.is_empty(), "{case}: nothing sent, got {out:?}");
                assert_eq!(observe(&net, id), before, "{case}: state unchanged");
            }
        }
    }
}

/// A message type number outside the protocol is refused, not guessed at.
#[test]
fn bad_input_unknown_message_type_is_refused() {
    let mut net = busy_cluster();
    for id in [1, 2] {
        let before = observe(&net, id);
        for t in [24, 99, i32::MAX, -1, i32::MIN] {
            let mut m = msg(MessageType::MsgApp, 3, id, 4);
            m.msg_type = t;
            let (res, out) = step_and_collect(&mut net, id, m);
            assert!(
                matches!(res, Err(Error::InvalidMessage(_))),
                "type {t} to {id}: {res:?}"
            );
            assert!(out.is_empty(), "type {t} to {id}: nothing sent");
            assert_eq!(
                observe(&net, id),
                before,
                "type {t} to {id}: state unchanged"
            );
        }
    }
}

/// Responses come only from members: one from an unknown peer is refused
/// before it can move a term, a commit index or a vote count.
#[test]
fn bad_input_responses_from_unknown_peers_are_refused() {
    let mut net = busy_cluster();
    for id in [1, 2] {
        let before = observe(&net, id);
        for kind in [
            MessageType::MsgAppResp,
            MessageType::MsgHeartbeatResp,
            MessageType::MsgVoteResp,
            MessageType::MsgPreVoteResp,
            MessageType::MsgReadIndexResp,
        ] {
            for term in [2, 3, 9] {
                let mut m = msg(kind, 99, id, term);
                m.index = 5;
                let (res, out) = step_and_collect(&mut net, id, m);
                let case = format!("{kind:?} from 99 in term {term} to {id}");
                assert_eq!(res, Err(Error::UnknownPeer(99)), "{case}");
                assert!(out.is_empty(), "{case}: nothing sent");
                assert_eq!(observe(&net, id), before, "{case}: state unchanged");
            }
        }
    }
}

/// Figure 2 (AppendEntries: "Reply false if term < currentTerm"; a vote is
/// granted only if "votedFor is null or candidateId"): requests from an
/// unknown sender of an older term are dropped, and its vote request in the
/// current term is refused (the node already has a leader and a vote).
#[test]
fn bad_input_requests_from_unknown_senders_change_nothing() {
    let mut net = busy_cluster();
    let before = observe(&net, 2);
    for (kind, term) in [
        (MessageType::MsgApp, 2),
        (MessageType::MsgHeartbeat, 2),
        (MessageType::MsgSnap, 1),
        (MessageType::MsgVote, 2),
        (MessageType::MsgTimeoutNow, 2),
    ] {
        let mut m = msg(kind, 99, 2, term);
        m.commit = 1000;
        let (res, out) = step_and_collect(&mut net, 2, m);
        assert!(res.is_ok(), "{kind:?} of old term {term}: {res:?}");
        assert!(
            out.is_empty(),
            "{kind:?} of old term {term}: dropped silently, got {out:?}"
        );
        assert_eq!(observe(&net, 2), before, "{kind:?} of old term {term}");
    }
    let mut m = msg(MessageType::MsgVote, 99, 2, 3);
    m.index = 100;
    m.log_term = 3;
    let (res, out) = step_and_collect(&mut net, 2, m);
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(out.len(), 1, "one answer: {out:?}");
    assert_eq!(out[0].kind(), Some(MessageType::MsgVoteResp));
    assert!(out[0].reject, "already voted and following 1 in term 3");
    assert_eq!(observe(&net, 2), before);
}

/// Figure 2 (AppendEntries: "Reply false if term < currentTerm"): an append
/// from the deposed leader of an older term, conflicting with the log,
/// touches neither the log nor the commit index.
#[test]
fn bad_input_stale_append_does_not_touch_the_log() {
    let mut net = busy_cluster();
    for id in [1, 3] {
        let before = observe(&net, id);
        // 2 led term 2; it now pushes term-2 entries over term-3 ones.
        let mut m = append(2, id, 2, 2, 2, &[(3, 2), (4, 2), (5, 2), (6, 2)]);
        m.commit = 6;
        let (res, out) = step_and_collect(&mut net, id, m);
        assert!(res.is_ok(), "to {id}: {res:?}");
        assert!(
            out.is_empty(),
            "to {id}: no answer without check-quorum/pre-vote"
        );
        assert_eq!(
            observe(&net, id),
            before,
            "to {id}: log and commit unchanged"
        );
    }
}

/// Figure 2 (AppendEntries: "Reply false if log doesn't contain an entry at
/// prevLogIndex whose term matches prevLogTerm"): an append far beyond the
/// log is rejected with a hint inside the log, and the leader recovers from
/// that rejection.
#[test]
fn bad_input_append_far_beyond_the_log_is_rejected_with_a_hint() {
    let mut net = busy_cluster();
    let before = observe(&net, 2);
    let mut m = append(1, 2, 3, 1000, 3, &[(1001, 3)]);
    m.commit = 1001;
    let (res, out) = step_and_collect(&mut net, 2, m);
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(observe(&net, 2), before, "nothing appended or committed");
    assert_eq!(out.len(), 1, "one answer: {out:?}");
    let resp = &out[0];
    assert_eq!(resp.kind(), Some(MessageType::MsgAppResp));
    assert!(resp.reject, "rejected");
    assert_eq!(resp.index, 1000, "the rejected index");
    assert!(
        resp.reject_hint <= 5,
        "hint {} within the log",
        resp.reject_hint
    );
    // The leader takes the rejection in stride (its probe is answered, or
    // retried after the next heartbeat round).
    net.deliver(resp.clone());
    net.stabilize();
    net.propose(1, b"c").unwrap();
    net.tick(1, 1);
    assert_eq!(net.committed(2), 6, "replication goes on");
    assert_eq!(net.log_ids(2), net.log_ids(1));
}

/// Figure 2 (AppendEntries: "set commitIndex = min(leaderCommit, index of
/// last new entry)"): a commit index beyond the log, in a heartbeat or an
/// append, never moves the commit index past the last entry.
#[test]
fn bad_input_commit_beyond_the_log_is_bounded() {
    for (i, mut m) in [
        msg(MessageType::MsgHeartbeat, 1, 3, 1),
        append(1, 3, 1, 3, 1, &[]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut net = Network::new(3);
        net.campaign(1);
        // 3 gets two more entries of the leader without their commit.
        let (res, _) = step_and_collect(&mut net, 3, append(1, 3, 1, 1, 1, &[(2, 1), (3, 1)]));
        assert!(res.is_ok(), "{res:?}");
        let last = net.last_index(3);
        assert_eq!((last, net.committed(3)), (3, 1));
        m.commit = u64::MAX;
        let (res, _) = step_and_collect(&mut net, 3, m);
        assert!(res.is_ok(), "message {i}: {res:?}");
        assert!(
            net.committed(3) <= last,
            "message {i}: commit {} past the log",
            net.committed(3)
        );
        assert_eq!(net.last_index(3), last, "message {i}: nothing appended");
    }
    // An append whose prev entry matches but that carries nothing commits
    // at most up to that prev entry.
    let mut net = busy_cluster();
    let mut m = append(1, 2, 3, 2, 2, &[]);
    m.commit = 1000;
    let before = observe(&net, 2);
    let (res, _) = step_and_collect(&mut net, 2, m);
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(
        observe(&net, 2),
        before,
        "commit already past the prev entry: unchanged"
    );
}

/// Figure 2 (AppendEntries carries "log entries to store" following
/// prevLogIndex): entries that do not follow prevLogIndex one by one are a
/// malformed message, dropped before they touch the log.
#[test]
fn bad_input_non_contiguous_append_entries_are_dropped() {
    let mut net = busy_cluster();
    let before = observe(&net, 2);
    let shapes: [&[(u64, u64)]; 5] = [
        &[(6, 3), (8, 3)], // a gap between entries
        &[(7, 3)],         // a gap after prev
        &[(6, 3), (6, 3)], // a duplicate
        &[(5, 3), (6, 3)], // overlapping prev
        &[(7, 3), (6, 3)], // reversed
    ];
    for ids in shapes {
        let mut m = append(1, 2, 3, 5, 3, ids);
        m.commit = 5;
        let (res, out) = step_and_collect(&mut net, 2, m);
        assert!(res.is_ok(), "{ids:?}: {res:?}");
        assert!(
            out.iter()
                .all(|m| m.kind() != Some(MessageType::MsgAppResp) || m.reject),
            "{ids:?}: never acknowledged: {out:?}"
        );
        assert_eq!(observe(&net, 2), before, "{ids:?}: log unchanged");
    }
}

/// Figure 2 ("Reply false if log doesn't contain an entry at
/// prevLogIndex"): an append whose index is at the very end of the u64
/// range is rejected like any other mismatch, without arithmetic overflow.
#[test]
fn bad_input_append_at_the_end_of_the_index_range_is_rejected() {
    let mut net = busy_cluster();
    let before = observe(&net, 2);
    for ids in [&[][..], &[(0, 3)][..], &[(0, 3), (1, 3)][..]] {
        let m = append(1, 2, 3, u64::MAX, 3, ids);
        let (res, out) = step_and_collect(&mut net, 2, m);
        assert!(res.is_ok(), "{ids:?}: {res:?}");
        assert!(
            out.iter().all(|m| m.reject),
            "{ids:?}: nothing acknowledged: {out:?}"
        );
        assert_eq!(observe(&net, 2), before, "{ids:?}");
    }
}

/// Figure 2 (a leader's matchIndex only moves to what a follower holds):
/// an append response claiming the last possible index does not overflow
/// the leader's bookkeeping nor commit past its log.
#[test]
fn bad_input_append_response_at_the_end_of_the_index_range() {
    let mut net = busy_cluster();
    let last = net.last_index(1);
    let mut m = msg(MessageType::MsgAppResp, 2, 1, 3);
    m.index = u64::MAX;
    let (res, _) = step_and_collect(&mut net, 1, m);
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(net.state(1), StateRole::Leader);
    assert!(
        net.committed(1) <= last,
        "commit {} past the log",
        net.committed(1)
    );
}

/// Figure 2 ("If RPC request or response contains term T > currentTerm";
/// older terms are refused): every Raft RPC carries its sender's term. A
/// vote request, vote response, append or heartbeat with term 0 is
/// malformed: it must neither panic nor be taken for a message of the
/// current term.
#[test]
fn bad_input_messages_without_a_term_are_not_trusted() {
    // A fresh node (term 0) asked for a vote or pre-vote with term 0.
    for kind in [MessageType::MsgVote, MessageType::MsgPreVote] {
        let mut net = Network::new(3);
        let before = observe(&net, 2);
        let (res, out) = step_and_collect(&mut net, 2, msg(kind, 1, 2, 0));
        assert!(
            out.iter().all(|m| m.reject),
            "{kind:?} without a term: no vote granted: {out:?} ({res:?})"
        );
        assert_eq!(observe(&net, 2), before, "{kind:?} without a term");
    }

    // A candidate of term 1 that gets two grants without a term.
    let mut net = Network::new(3);
    net.isolate(1);
    net.campaign(1);
    assert_eq!((net.state(1), net.term(1)), (StateRole::Candidate, 1));
    for from in [2, 3] {
        let _ = step_and_collect(&mut net, 1, msg(MessageType::MsgVoteResp, from, 1, 0));
    }
    assert_eq!(
        net.state(1),
        StateRole::Candidate,
        "votes without a term are not votes in term 1"
    );

    // A follower of 1 in term 3 hearing a heartbeat and an append with term
    // 0 from a stranger.
    let mut net = busy_cluster();
    let before = observe(&net, 2);
    let mut hb = msg(MessageType::MsgHeartbeat, 99, 2, 0);
    hb.commit = 5;
    let (_, out) = step_and_collect(&mut net, 2, hb);
    assert!(
        out.is_empty(),
        "no answer to a heartbeat without a term: {out:?}"
    );
    assert_eq!(
        observe(&net, 2),
        before,
        "a heartbeat without a term installs no leader"
    );
    let (_, out) = step_and_collect(&mut net, 2, append(99, 2, 0, 2, 2, &[(3, 0)]));
    assert!(
        out.is_empty(),
        "no answer to an append without a term: {out:?}"
    );
    assert_eq!(
        observe(&net, 2),
        before,
        "an append without a term rewrites nothing"
    );
}
