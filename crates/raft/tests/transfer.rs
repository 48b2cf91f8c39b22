//! Leadership transfer (thesis §3.10) and a follower forgetting its leader
//! (etcd's `ForgetLeader`, with leader stickiness of thesis §4.2.3 and
//! pre-vote of thesis §9.6).

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::{
    ConfChange, ConfChangeType, ConfState, DropReason, Error, MemoryStorage, Message, MessageType,
    Proposed, ReadOnlyOption, StateRole,
};

const ELECTION_TICK: usize = 10;

/// The context of vote requests sent by a transferee (etcd's
/// `campaignTransfer`): it overrides leader stickiness.
const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// A cluster of `n` with 1 elected leader and one entry committed
/// everywhere.
fn led_by_one(n: u64) -> Network {
    let mut net = Network::new(n);
    net.campaign(1);
    net.propose(1, b"a").expect("the leader accepts a proposal");
    assert_eq!(net.leader(), Some(1));
    net
}

/// The messages of `kind` that crossed the wire since `mark` (an index
/// into `sent`) from `from` to `to`.
fn sent_since(net: &Network, mark: usize, kind: MessageType, from: u64, to: u64) -> Vec<Message> {
    net.sent[mark..]
        .iter()
        .filter(|m| m.kind() == Some(kind) && m.from == from && m.to == to)
        .cloned()
        .collect()
}

/// Position in `sent` (from `mark`) of the first message matching `f`.
fn position(net: &Network, mark: usize, f: impl Fn(&Message) -> bool) -> Option<usize> {
    net.sent[mark..].iter().position(f).map(|p| p + mark)
}

/// The transfer target the node reports (0: none).
fn transferee(net: &Network, id: u64) -> u64 {
    net.node(id).basic_status().lead_transferee
}

/// Asserts `id` leads in `term`, and every other node follows it in that
/// term.
fn assert_led_by(net: &Network, id: u64, term: u64) {
    for (&n, node) in &net.nodes {
        let r = node.raw.raft();
        if n == id {
            assert_eq!(
                (r.state, r.term),
                (StateRole::Leader, term),
                "node {id} leads in term {term}"
            );
        } else if r.tracker.is_voter(n) {
            assert_eq!(
                (r.state, r.term, r.lead),
                (StateRole::Follower, term, id),
                "node {n} follows {id} in term {term}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Leadership transfer (thesis §3.10)
// ---------------------------------------------------------------------------

/// Thesis §3.10 ("the prior leader sends a TimeoutNow request to the target
/// server", once its log is up to date): to a follower already holding the
/// whole log, the leader sends TimeoutNow at once, with no append first;
/// the follower campaigns in the next term and wins, and the old leader
/// follows it.
#[test]
fn transfer_to_up_to_date_follower() {
    let mut net = led_by_one(3);
    let last = net.last_index(1);
    assert_eq!(
        net.progress(1, 2).matched,
        last,
        "2 holds the leader's whole log"
    );
    net.node_mut(1).transfer_leader(2).expect("2 is a voter");
    assert_eq!(transferee(&net, 1), 2, "the transfer is under way");

    let first = net.take_queue();
    let timeout_now: Vec<&Message> = first
        .iter()
        .filter(|m| m.kind() == Some(MessageType::MsgTimeoutNow))
        .collect();
    assert_eq!(timeout_now.len(), 1, "one TimeoutNow at once: {first:?}");
    assert_eq!((timeout_now[0].from, timeout_now[0].to), (1, 2));
    assert!(
        !first
            .iter()
            .any(|m| m.kind() == Some(MessageType::MsgApp) && m.to == 2),
        "nothing to catch up: no append before TimeoutNow"
    );
    for m in first {
        net.deliver(m);
    }
    net.stabilize();

    assert_led_by(&net, 2, 2);
    assert_eq!(transferee(&net, 1), 0, "the old leader ended the transfer");
    assert_eq!(
        net.committed(2),
        net.last_index(2),
        "the new leader commits its empty entry"
    );
    assert_eq!(net.last_index(2), last + 1);
}

/// Thesis §3.10 ("the prior leader ... transfers its log entries to the
/// target server" before TimeoutNow): a follower that is behind is first
/// sent the entries it lacks; TimeoutNow follows its acknowledgement of the
/// leader's last index, and it wins with the whole log.
#[test]
fn transfer_to_lagging_follower_catches_it_up_first() {
    let mut net = led_by_one(3);
    net.cut(1, 3);
    for data in [&b"b"[..], b"c", b"d"] {
        net.propose(1, data).expect("1 and 2 are a majority");
    }
    net.recover();
    let last = net.last_index(1);
    assert!(net.last_index(3) < last, "3 is behind");
    assert_eq!(net.committed(1), last, "1 and 2 committed without 3");

    let mark = net.sent.len();
    net.node_mut(1).transfer_leader(3).expect("3 is a voter");
    assert_eq!(transferee(&net, 1), 3);
    let first = net.take_queue();
    assert!(
        !first
            .iter()
            .any(|m| m.kind() == Some(MessageType::MsgTimeoutNow)),
        "no TimeoutNow before 3 is caught up: {first:?}"
    );
    assert!(
        first
            .iter()
            .any(|m| m.kind() == Some(MessageType::MsgApp) && m.to == 3),
        "the leader starts catching 3 up at once: {first:?}"
    );
    for m in first {
        net.deliver(m);
    }
    net.stabilize();

    let timeout_now = sent_since(&net, mark, MessageType::MsgTimeoutNow, 1, 3);
    assert_eq!(timeout_now.len(), 1, "one TimeoutNow once caught up");
    let at = position(&net, mark, |m| {
        m.kind() == Some(MessageType::MsgTimeoutNow) && m.to == 3
    })
    .unwrap();
    let entries_sent = position(&net, mark, |m| {
        m.kind() == Some(MessageType::MsgApp) && m.to == 3 && !m.entries.is_empty()
    })
    .expect("the missing entries were sent to 3");
    let caught_up = position(&net, mark, |m| {
        m.kind() == Some(MessageType::MsgAppResp) && m.from == 3 && !m.reject && m.index == last
    })
    .expect("3 acknowledged the leader's last index");
    assert!(
        entries_sent < caught_up && caught_up < at,
        "entries ({entries_sent}), then 3's acknowledgement ({caught_up}), then TimeoutNow ({at})"
    );

    assert_led_by(&net, 3, 2);
    assert_eq!(
        net.nodes[&3].applied,
        payloads(&[b"a", b"b", b"c", b"d"]),
        "the new leader holds and applies every committed entry"
    );
}

/// Thesis §3.10 ("if the transfer does not complete within an election
/// timeout, the prior leader aborts the transfer and resumes accepting
/// client requests"): with the transferee unreachable, the transfer stays
/// under way (refusing proposals) for one election timeout of the leader's
/// ticks and is abandoned at its end; the leader keeps its role and term
/// and accepts proposals again.
#[test]
fn transfer_to_unreachable_follower_is_abandoned_after_election_timeout() {
    let mut net = led_by_one(3);
    // Midway through the leader's own election-timeout period: the
    // transfer's deadline counts from its start, not from the period's.
    net.tick(1, ELECTION_TICK / 2);
    net.isolate(3);
    net.node_mut(1).transfer_leader(3).expect("3 is a voter");
    net.stabilize();
    assert_eq!(transferee(&net, 1), 3);

    net.tick(1, ELECTION_TICK - 1);
    assert_eq!(
        transferee(&net, 1),
        3,
        "still under way before an election timeout"
    );
    assert_eq!(
        net.node_mut(1).propose(Bytes::from_static(b"early")),
        Err(Error::ProposalDropped(DropReason::TransferringLeader)),
        "proposals are refused while under way"
    );

    net.tick(1, 1);
    assert_eq!(
        transferee(&net, 1),
        0,
        "abandoned after an election timeout"
    );
    assert_led_by(&net, 1, 1);
    let before = net.last_index(1);
    let p = net
        .propose(1, b"after")
        .expect("proposals are accepted again");
    assert_eq!(
        p,
        Proposed::Appended {
            index: before + 1,
            term: 1
        }
    );
    assert_eq!(net.committed(1), before + 1, "and commit with 1 and 2");
    assert_led_by(&net, 1, 1);
}

/// Thesis §3.10 ("during this time, the prior leader ... stops accepting
/// new client requests"): while a transfer is under way, the leader
/// refuses proposals — its own and forwarded ones, configuration changes
/// included — with `TransferringLeader`, and its log does not grow.
#[test]
fn proposals_during_transfer_are_refused() {
    let mut net = led_by_one(3);
    net.isolate(3);
    net.node_mut(1).transfer_leader(3).expect("3 is a voter");
    net.stabilize();
    let last = net.last_index(1);

    assert_eq!(
        net.node_mut(1).propose(Bytes::from_static(b"x")),
        Err(Error::ProposalDropped(DropReason::TransferringLeader))
    );
    let cc = ConfChange {
        change_type: ConfChangeType::AddLearnerNode as i32,
        node_id: 4,
        ..Default::default()
    };
    assert_eq!(
        net.node_mut(1).propose_conf_change(&cc),
        Err(Error::ProposalDropped(DropReason::TransferringLeader))
    );
    // A follower forwards; the leader drops it.
    assert_eq!(
        net.propose(2, b"y"),
        Ok(Proposed::Forwarded { to: 1 }),
        "the follower cannot know, and forwards"
    );
    assert_eq!(net.last_index(1), last, "nothing was appended");
    assert_eq!(transferee(&net, 1), 3, "the transfer is still under way");
}

/// Thesis §3.10 (the target campaigns; only voters campaign): a transfer to
/// a learner is refused with `InvalidTransferee`, nothing is sent, and
/// proposals go on being accepted. A learner told TimeoutNow anyway does
/// not campaign.
#[test]
fn transfer_to_learner_is_refused() {
    let cs = ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
        ..Default::default()
    };
    let mut net = Network::with_storages(
        (1..=4)
            .map(|id| {
                (
                    test_config(id),
                    MemoryStorage::new_with_conf_state(cs.clone()),
                )
            })
            .collect(),
    );
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    assert_eq!(
        net.last_index(4),
        net.last_index(1),
        "the learner is caught up"
    );

    let mark = net.sent.len();
    assert_eq!(
        net.node_mut(1).transfer_leader(4),
        Err(Error::InvalidTransferee(4))
    );
    net.stabilize();
    assert_eq!(transferee(&net, 1), 0, "no transfer under way");
    assert!(sent_since(&net, mark, MessageType::MsgTimeoutNow, 1, 4).is_empty());
    assert!(
        matches!(net.propose(1, b"b"), Ok(Proposed::Appended { .. })),
        "proposals are still accepted"
    );

    let mut m = Message::new(MessageType::MsgTimeoutNow, 1, 4);
    m.term = net.term(1);
    net.node_mut(4).step(m).unwrap();
    net.stabilize();
    assert_eq!(
        (net.state(4), net.term(4)),
        (StateRole::Follower, 1),
        "a learner does not campaign"
    );
    assert_led_by(&net, 1, 1);
}

/// Thesis §3.10 (nothing to transfer): a leader asked to transfer to itself
/// does nothing — no transfer under way, no message, proposals accepted,
/// same role and term.
#[test]
fn transfer_to_self_is_a_no_op() {
    let mut net = led_by_one(3);
    let mark = net.sent.len();
    net.node_mut(1)
        .transfer_leader(1)
        .expect("a no-op, not an error");
    net.stabilize();
    assert_eq!(transferee(&net, 1), 0);
    assert!(
        net.sent[mark..].is_empty(),
        "nothing sent: {:?}",
        &net.sent[mark..]
    );
    assert!(matches!(
        net.propose(1, b"b"),
        Ok(Proposed::Appended { term: 1, .. })
    ));
    assert_led_by(&net, 1, 1);
}

/// Thesis §3.10 (the target is a server of the cluster): a transfer to a
/// node outside the configuration (or to "none", 0) is an error and
/// changes nothing.
#[test]
fn transfer_to_non_member_is_an_error() {
    let mut net = led_by_one(3);
    for id in [9, 0] {
        assert_eq!(
            net.node_mut(1).transfer_leader(id),
            Err(Error::InvalidTransferee(id)),
            "transfer to {id}"
        );
        assert_eq!(transferee(&net, 1), 0, "transfer to {id}");
    }
    net.stabilize();
    assert!(net.sent_of(MessageType::MsgTimeoutNow).is_empty());
    assert!(matches!(
        net.propose(1, b"b"),
        Ok(Proposed::Appended { .. })
    ));
    assert_led_by(&net, 1, 1);
}

/// Thesis §3.10, as in etcd (a follower forwards `MsgTransferLeader` to its
/// leader): a transfer asked of a follower reaches the leader naming the
/// requested transferee, which becomes leader.
#[test]
fn follower_transfer_request_is_forwarded_to_the_leader() {
    let mut net = led_by_one(3);
    let mark = net.sent.len();
    net.node_mut(2)
        .transfer_leader(3)
        .expect("2 knows the leader");
    net.stabilize();
    let forwarded = sent_since(&net, mark, MessageType::MsgTransferLeader, 3, 1);
    assert_eq!(
        forwarded.len(),
        1,
        "the request reaches the leader naming 3: {:?}",
        &net.sent[mark..]
    );
    assert_led_by(&net, 3, 2);
}

/// Thesis §3.10 with §4.2.3 (leader stickiness, check-quorum on): the
/// transferee's vote requests carry the transfer context, so followers
/// that heard the leader within the lease grant them anyway. Without the
/// context (an ordinary campaign at the same moment) they are ignored.
#[test]
fn transfer_overrides_leader_stickiness() {
    let setup = || {
        let mut net = Network::with_config(3, |c| c.check_quorum = true);
        net.campaign(1);
        net.tick_all(3);
        for id in [2, 3] {
            let r = net.node(id).raft();
            assert_eq!(r.lead, 1, "node {id} follows 1");
            assert!(
                r.election_elapsed() < ELECTION_TICK,
                "node {id} is within its lease"
            );
        }
        net
    };

    // Control: an ordinary campaign by 2 gets nowhere within the lease.
    let mut control = setup();
    control.node_mut(2).campaign();
    control.stabilize();
    assert_eq!(
        control.leader(),
        Some(1),
        "stickiness holds without transfer"
    );

    let mut net = setup();
    let mark = net.sent.len();
    net.node_mut(1).transfer_leader(2).unwrap();
    net.stabilize();
    let requests = sent_since(&net, mark, MessageType::MsgVote, 2, 3);
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].context.as_ref(),
        CAMPAIGN_TRANSFER,
        "the vote request carries the transfer context"
    );
    let answers = sent_since(&net, mark, MessageType::MsgVoteResp, 3, 2);
    assert_eq!(answers.len(), 1, "3 answers within its lease");
    assert!(!answers[0].reject, "and grants");
    assert_led_by(&net, 2, 2);
}

/// Thesis §3.10 with §9.6 (pre-vote): the transferee, told by the leader to
/// campaign, skips the pre-vote round (which the others would refuse
/// within their lease) and campaigns directly.
#[test]
fn transferee_campaigns_without_pre_vote() {
    let mut net = Network::with_config(3, |c| {
        c.pre_vote = true;
        c.check_quorum = true;
    });
    net.campaign(1);
    net.tick_all(3);
    assert_led_by(&net, 1, 1);
    let mark = net.sent.len();
    net.node_mut(1).transfer_leader(2).unwrap();
    net.stabilize();
    let pre_votes: Vec<&Message> = net.sent[mark..]
        .iter()
        .filter(|m| m.kind() == Some(MessageType::MsgPreVote))
        .collect();
    assert!(
        pre_votes.is_empty(),
        "no pre-vote during the transfer: {pre_votes:?}"
    );
    let votes = sent_since(&net, mark, MessageType::MsgVote, 2, 3);
    assert_eq!(votes.len(), 1, "2 campaigns directly");
    assert_eq!(votes[0].term, 2);
    assert_led_by(&net, 2, 2);
}

/// Thesis §3.10, as in etcd (a new transfer request replaces the one under
/// way): with a transfer to an unreachable node under way, a transfer to
/// another node takes over — TimeoutNow goes to the new target, which
/// becomes leader. Asking again for the transfer under way changes
/// nothing.
#[test]
fn second_transfer_replaces_the_first() {
    let mut net = led_by_one(3);
    net.isolate(3);
    net.node_mut(1).transfer_leader(3).unwrap();
    net.stabilize();
    assert_eq!(transferee(&net, 1), 3);
    let mark = net.sent.len();
    net.node_mut(1).transfer_leader(3).unwrap();
    net.stabilize();
    assert!(
        sent_since(&net, mark, MessageType::MsgTimeoutNow, 1, 3).is_empty(),
        "the same request again sends nothing new"
    );
    net.tick(1, ELECTION_TICK / 2);
    assert_eq!(transferee(&net, 1), 3);

    let mark = net.sent.len();
    net.node_mut(1).transfer_leader(2).unwrap();
    assert_eq!(transferee(&net, 1), 2, "the new transfer replaces the old");
    net.stabilize();
    assert_eq!(
        sent_since(&net, mark, MessageType::MsgTimeoutNow, 1, 2).len(),
        1,
        "TimeoutNow to the new target"
    );
    assert_eq!(net.leader(), Some(2));
    assert_eq!((net.state(1), net.term(2)), (StateRole::Follower, 2));
    assert_eq!(net.node(1).raft().lead, 2);
}

// ---------------------------------------------------------------------------
// Forgetting the leader
// ---------------------------------------------------------------------------

/// The pre-vote and check-quorum test config.
fn sticky_cluster() -> Network {
    let mut net = Network::with_config(3, |c| {
        c.pre_vote = true;
        c.check_quorum = true;
    });
    net.campaign(1);
    net.tick_all(3);
    assert_led_by(&net, 1, 1);
    net
}

/// A pre-vote request from `from` to `to` for the term after `from`'s,
/// with `from`'s last entry.
fn pre_vote(net: &Network, from: u64, to: u64) -> Message {
    let mut m = Message::new(MessageType::MsgPreVote, from, to);
    m.term = net.term(from) + 1;
    m.index = net.last_index(from);
    m.log_term = net.log_ids(from).last().map_or(0, |&(_, t)| t);
    m
}

/// The pre-vote answers `id` queues (processing it) to `to`.
fn pre_vote_answers(net: &mut Network, id: u64, to: u64) -> Vec<Message> {
    net.process(id);
    let out: Vec<Message> = net.queue.drain(..).collect();
    out.into_iter()
        .filter(|m| m.kind() == Some(MessageType::MsgPreVoteResp) && m.to == to)
        .collect()
}

/// etcd's `ForgetLeader` (thesis §4.2.3 and §9.6: stickiness rests on
/// knowing a leader): a follower within its lease ignores a pre-vote
/// request; once it has forgotten its leader it grants it at once, without
/// changing its term. End to end, a follower forgetting the leader lets
/// another follower win a pre-vote and an election the leader's lease
/// would otherwise block.
#[test]
fn forget_leader_lets_a_follower_grant_pre_votes() {
    let mut net = sticky_cluster();
    let m = pre_vote(&net, 2, 3);
    net.node_mut(3).step(m.clone()).unwrap();
    assert!(
        pre_vote_answers(&mut net, 3, 2).is_empty(),
        "within the lease, the pre-vote is ignored"
    );

    net.node_mut(3)
        .forget_leader()
        .expect("allowed: reads are safe");
    let r = net.node(3).raft();
    assert_eq!(
        (r.state, r.term, r.lead),
        (StateRole::Follower, 1, 0),
        "3 forgot its leader, nothing else"
    );
    net.node_mut(3).step(m).unwrap();
    let answers = pre_vote_answers(&mut net, 3, 2);
    assert_eq!(answers.len(), 1, "answered now");
    assert!(!answers[0].reject, "and granted");
    assert_eq!(net.term(3), 1, "a pre-vote does not change the term");

    // End to end: 2 campaigns. Without the forget, the lease blocks it.
    let mut control = sticky_cluster();
    control.node_mut(2).campaign();
    control.stabilize();
    assert_eq!(control.leader(), Some(1), "the lease blocks 2's campaign");
    assert_eq!((control.term(1), control.term(2)), (1, 1));

    let mut net = sticky_cluster();
    net.node_mut(3).forget_leader().unwrap();
    net.node_mut(2).campaign();
    net.stabilize();
    assert_eq!(net.leader(), Some(2), "3's votes let 2 win");
    assert_eq!(net.term(2), 2);
}

/// etcd's `ForgetLeader`: only a follower acts on it. A leader and a
/// (pre-)candidate return `Ok` with role, term, vote and leader unchanged.
#[test]
fn forget_leader_is_ignored_by_leaders_and_candidates() {
    for pre_vote in [false, true] {
        let mut net = Network::with_config(3, |c| c.pre_vote = pre_vote);
        net.campaign(1);
        let before = |net: &Network, id| {
            let r = net.node(id).raft();
            (r.state, r.term, r.vote, r.lead)
        };

        let b = before(&net, 1);
        net.node_mut(1)
            .forget_leader()
            .expect("ignored, not refused");
        assert_eq!(before(&net, 1), b, "pre_vote {pre_vote}: the leader");
        assert_eq!(b.3, 1);

        net.isolate(2);
        net.node_mut(2).campaign();
        net.stabilize();
        let expected = if pre_vote {
            StateRole::PreCandidate
        } else {
            StateRole::Candidate
        };
        assert_eq!(net.state(2), expected, "pre_vote {pre_vote}");
        let b = before(&net, 2);
        net.node_mut(2)
            .forget_leader()
            .expect("ignored, not refused");
        assert_eq!(before(&net, 2), b, "pre_vote {pre_vote}: the candidate");
    }
}

/// etcd's `ForgetLeader` under `ReadOnlyLeaseBased` (thesis §6.4.1: lease
/// reads rest on followers keeping their leader for the lease): refused
/// with `ForgetLeaderUnderLease`; the follower keeps its leader.
#[test]
fn forget_leader_is_refused_under_lease_based_reads() {
    let mut net = Network::with_config(3, |c| {
        c.check_quorum = true;
        c.read_only_option = ReadOnlyOption::LeaseBased;
    });
    net.campaign(1);
    assert_eq!(
        net.node_mut(2).forget_leader(),
        Err(Error::ForgetLeaderUnderLease)
    );
    let r = net.node(2).raft();
    assert_eq!((r.state, r.term, r.lead), (StateRole::Follower, 1, 1));
}
