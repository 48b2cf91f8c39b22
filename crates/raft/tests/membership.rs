//! Membership changes (thesis ch. 4): learners, one-at-a-time changes
//! (§4.1), joint consensus (§4.3), the leader's refusals of changes it
//! cannot take, and the outcome of a change for its proposer.

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::{
    ConfChange, ConfChangeI, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2,
    ConfState, Config, DropReason, Entry, EntryType, Error, MemoryStorage, Message, MessageType,
    Outcome, ProposalOutcome, Proposed, RawNode, StateRole, Storage,
};

use ConfChangeType::{AddLearnerNode, AddNode, RemoveNode};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn cc(kind: ConfChangeType, node_id: u64) -> ConfChange {
    ConfChange {
        change_type: kind as i32,
        node_id,
        ..Default::default()
    }
}

fn v2(transition: ConfChangeTransition, changes: &[(ConfChangeType, u64)]) -> ConfChangeV2 {
    ConfChangeV2 {
        transition: transition as i32,
        changes: changes
            .iter()
            .map(|&(kind, node_id)| ConfChangeSingle {
                change_type: kind as i32,
                node_id,
            })
            .collect(),
        ..Default::default()
    }
}

/// The empty `ConfChangeV2`: leave the joint configuration.
fn leave_joint() -> ConfChangeV2 {
    ConfChangeV2::default()
}

fn dropped(reason: DropReason) -> rudder_raft::Result<Proposed> {
    Err(Error::ProposalDropped(reason))
}

/// A storage as `RawNode::bootstrap` leaves it once its first `Ready` is
/// handled: the membership `peers` is in the log as committed, applied
/// `ConfChange` entries at indexes 1..=n, term 1. A node joining later
/// learns the membership by replaying these entries.
fn bootstrapped_storage(id: u64, peers: &[u64]) -> MemoryStorage {
    let mut node = RawNode::bootstrap(&test_config(id), MemoryStorage::new(), peers)
        .expect("bootstrap an empty storage");
    let mut rd = node.ready();
    node.storage_mut().append(&rd.entries).expect("append");
    if let Some(hs) = rd.hard_state {
        node.storage_mut().set_hard_state(hs);
    }
    for e in rd.committed_entries.drain(..) {
        let change = decode_conf_change(&e)
            .expect("bootstrap entries decode")
            .expect("bootstrap entries are conf changes");
        let cs = node.apply_conf_change(&change).expect("applies");
        node.storage_mut().set_conf_state(cs);
    }
    node.advance(rd);
    node.storage().clone()
}

/// Voters `1..=n` whose membership is in the log (see
/// [`bootstrapped_storage`]), so that new nodes can join from the log.
fn bootstrapped(n: u64) -> Network {
    let peers: Vec<u64> = (1..=n).collect();
    let net = Network::with_storages(
        peers
            .iter()
            .map(|&id| {
                let mut c = test_config(id);
                c.applied = n;
                (c, bootstrapped_storage(id, &peers))
            })
            .collect(),
    );
    for &id in &peers {
        assert_eq!(
            membership(&net, id),
            ConfState::with_voters(peers.clone()),
            "node {id} starts with the bootstrapped membership"
        );
    }
    net
}

/// Every node of `ids` starts knowing the membership `cs` (its storage
/// holds it as of index 0).
fn with_membership(cs: ConfState, ids: &[u64], f: impl Fn(&mut Config)) -> Network {
    Network::with_storages(
        ids.iter()
            .map(|&id| {
                let mut c = test_config(id);
                f(&mut c);
                (c, MemoryStorage::new_with_conf_state(cs.clone()))
            })
            .collect(),
    )
}

fn voters_and_learners(voters: &[u64], learners: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
        ..Default::default()
    }
}

/// A new, empty node `id` (it knows no membership yet).
fn join(net: &mut Network, id: u64) {
    net.add(test_config(id), MemoryStorage::new());
    assert_eq!(
        membership(net, id),
        ConfState::default(),
        "a new node knows no membership"
    );
}

/// The membership in force on `id`.
fn membership(net: &Network, id: u64) -> ConfState {
    net.node(id).raft().tracker.conf_state()
}

/// Checks that every node of `ids` has `want` in force, and that the
/// application saved it with the node's state.
fn assert_membership(net: &Network, ids: &[u64], want: &ConfState, when: &str) {
    for &id in ids {
        assert_eq!(
            &membership(net, id),
            want,
            "{when}: membership in force on node {id}"
        );
        assert_eq!(
            &net.node(id).storage().initial_state().unwrap().conf_state,
            want,
            "{when}: membership saved by node {id}"
        );
    }
}

fn joint(voters: &[u64], outgoing: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        voters_outgoing: outgoing.to_vec(),
        ..Default::default()
    }
}

/// Proposes `change` on `id` and delivers everything it causes.
fn propose_change(
    net: &mut Network,
    id: u64,
    change: &impl ConfChangeI,
) -> rudder_raft::Result<Proposed> {
    let r = net.node_mut(id).propose_conf_change(change);
    net.stabilize();
    r
}

/// The index a proposal was appended at on the leader.
fn appended(r: rudder_raft::Result<Proposed>, what: &str) -> u64 {
    match r {
        Ok(Proposed::Appended { index, .. }) => index,
        other => panic!("{what}: expected the leader to append it, got {other:?}"),
    }
}

/// Campaign messages (vote or pre-vote requests) `id` sent from `mark` on.
fn campaigns_from(net: &Network, id: u64, mark: usize) -> Vec<&Message> {
    net.sent[mark..]
        .iter()
        .filter(|m| {
            m.from == id
                && matches!(
                    m.kind(),
                    Some(MessageType::MsgVote | MessageType::MsgPreVote)
                )
        })
        .collect()
}

/// The configuration-change entries of `id`'s log after `after`, decoded.
fn conf_changes_after(net: &Network, id: u64, after: u64) -> Vec<(u64, ConfChangeV2)> {
    let r = net.node(id).raft();
    let mut ents = Vec::new();
    r.log
        .slice(after + 1, r.log.last_index() + 1, u64::MAX, &mut ents)
        .expect("log readable");
    ents.iter()
        .filter_map(|e| {
            decode_conf_change(e)
                .expect("conf change decodes")
                .map(|c| (e.index, c))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Learners
// ---------------------------------------------------------------------------

/// A learner receives the leader's log and applies the committed entries,
/// like any follower; the leader tracks its progress as a learner.
#[test]
fn a_learner_receives_and_applies_the_log() {
    let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4]), &[1, 2, 3, 4], |_| {});
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    net.propose(1, b"b").unwrap();
    assert!(
        net.node(4).raft().is_learner,
        "node 4 knows it is a learner"
    );
    assert_eq!(net.log_ids(4), net.log_ids(1), "the learner holds the log");
    assert_eq!(net.committed(4), net.committed(1), "the learner's commit");
    net.assert_applied([4], &[b"a", b"b"], "the learner applied the entries");
    let pr = net.progress(1, 4);
    assert!(pr.is_learner, "the leader tracks 4 as a learner");
    assert_eq!(
        pr.matched,
        net.last_index(1),
        "the learner acknowledged all"
    );
}

/// Thesis §4.2.1: learners ("non-voting members") never start elections.
/// Cut off from its leader and ticked ten election timeouts, a learner sends
/// no vote or pre-vote request, with pre-vote on or off, while a voter in
/// the same position campaigns.
#[test]
fn a_learner_never_campaigns() {
    for pre_vote in [false, true] {
        let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4]), &[1, 2, 3, 4], |c| {
            c.pre_vote = pre_vote
        });
        net.campaign(1);
        net.propose(1, b"a").unwrap();
        let mark = net.sent.len();
        net.isolate(4);
        net.isolate(3);
        let ticks = 10 * net.nodes[&4].config.election_tick;
        net.tick(4, ticks);
        net.tick(3, ticks);
        assert!(
            campaigns_from(&net, 4, mark).is_empty(),
            "pre_vote={pre_vote}: the learner campaigned: {:?}",
            campaigns_from(&net, 4, mark)
        );
        assert_eq!(net.state(4), StateRole::Follower, "pre_vote={pre_vote}");
        assert_eq!(net.term(4), net.term(1), "pre_vote={pre_vote}: no new term");
        assert!(
            !campaigns_from(&net, 3, mark).is_empty(),
            "pre_vote={pre_vote}: a voter in the same position campaigns"
        );
    }
}

/// Learners do not count toward the commit quorum: with 3 voters, 2 of
/// them cut off, an entry held by the leader and every learner does not
/// commit (with two learners, leader plus learners would be 3 of 5 nodes);
/// it commits once a voter is back.
#[test]
fn learners_do_not_count_toward_commit() {
    for learners in [&[4][..], &[4, 5]] {
        let ids: Vec<u64> = (1..=3).chain(learners.iter().copied()).collect();
        let mut net = with_membership(voters_and_learners(&[1, 2, 3], learners), &ids, |_| {});
        net.campaign(1);
        let before = net.committed(1);
        net.isolate(2);
        net.isolate(3);
        let index = appended(net.propose(1, b"x"), "proposal");
        net.tick(1, 3);
        for &l in learners {
            assert!(
                net.last_index(l) >= index,
                "learners {learners:?}: learner {l} holds the entry"
            );
            assert_eq!(net.progress(1, l).matched, net.last_index(1));
        }
        assert_eq!(
            net.committed(1),
            before,
            "learners {learners:?}: nothing commits without a voter majority"
        );
        net.recover();
        net.tick(1, 1);
        assert!(
            net.committed(1) >= index,
            "learners {learners:?}: commits once the voters are back"
        );
    }
}

/// A learner asked to vote answers like a voter (etcd: it may have been
/// promoted without knowing it yet). Node 4 holds its promotion entry but
/// has not seen it committed, so it still thinks it is a learner; the
/// others applied it, so 4's vote is needed once node 1 is gone — and 4
/// grants it, and 2 wins.
#[test]
fn a_learner_asked_to_vote_answers() {
    let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4]), &[1, 2, 3, 4], |_| {});
    net.campaign(1);
    let index = appended(
        net.node_mut(1).propose_conf_change(&cc(AddNode, 4)),
        "promotion",
    );
    // Node 4 gets the entry, then hears nothing more.
    let _held = net.deliver_holding(|n, m| m.to == 4 && n.last_index(4) >= index);
    assert!(net.last_index(4) >= index, "node 4 holds the promotion");
    assert!(net.committed(4) < index, "node 4 did not see it committed");
    assert!(
        net.node(4).raft().is_learner,
        "node 4 still thinks it is a learner"
    );
    let promoted = ConfState::with_voters([1, 2, 3, 4]);
    assert_membership(&net, &[1, 2, 3], &promoted, "after the promotion");

    net.isolate(1);
    let mark = net.sent.len();
    net.campaign(2);
    let answers: Vec<&Message> = net.sent[mark..]
        .iter()
        .filter(|m| m.from == 4 && m.to == 2 && m.kind() == Some(MessageType::MsgVoteResp))
        .collect();
    assert_eq!(answers.len(), 1, "node 4 answered: {answers:?}");
    assert!(!answers[0].reject, "node 4 granted its vote");
    assert_eq!(
        net.state(2),
        StateRole::Leader,
        "2 won with 3 and 4 (a majority of 4 voters)"
    );
    assert_membership(&net, &[2, 3, 4], &promoted, "after the election");
    assert!(
        !net.node(4).raft().is_learner,
        "node 4 learned its promotion"
    );
}

// ---------------------------------------------------------------------------
// Simple changes (§4.1)
// ---------------------------------------------------------------------------

/// §4.1 / §4.2.1: a new server joins with an empty log; the leader brings
/// it up to date from the log (replaying the membership entries teaches it
/// the configuration), and from the change on it counts in the quorum.
#[test]
fn adding_a_voter_the_new_node_catches_up_from_the_log() {
    let mut net = bootstrapped(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    join(&mut net, 4);
    let index = appended(propose_change(&mut net, 1, &cc(AddNode, 4)), "add 4");
    let want = ConfState::with_voters([1, 2, 3, 4]);
    assert_membership(&net, &[1, 2, 3, 4], &want, "after adding 4");
    assert!(net.committed(4) >= index, "node 4 committed its addition");
    assert_eq!(net.log_ids(4), net.log_ids(1), "node 4 caught up");
    assert_eq!(net.nodes[&4].applied, payloads(&[b"a"]), "node 4 applied");
    assert_eq!(net.progress(1, 4).matched, net.last_index(1));
    assert!(!net.progress(1, 4).is_learner, "4 is a voter");

    // 4 now counts: 1 and 3 are 2 of 4 voters, no longer a majority...
    net.isolate(2);
    net.isolate(4);
    let before = net.committed(1);
    let x = appended(net.propose(1, b"x"), "x");
    assert_eq!(net.committed(1), before, "2 of 4 voters do not commit");
    // ... while 1, 3 and 4 are.
    net.recover();
    net.isolate(2);
    net.tick(1, 1);
    assert!(net.committed(1) >= x, "3 of 4 voters commit");
    assert_eq!(net.nodes[&4].applied, payloads(&[b"a", b"x"]));
}

/// §4.1: removing a voter. Once applied the removed node has no progress on
/// the leader and no longer counts: of 4 voters one is removed, and then
/// 2 of the remaining 3 commit (2 of 4 would not). The removed node, which
/// applied its removal, never campaigns.
#[test]
fn removing_a_voter_shrinks_the_quorum() {
    let mut net = Network::new(4);
    net.campaign(1);
    appended(propose_change(&mut net, 1, &cc(RemoveNode, 4)), "remove 4");
    let want = ConfState::with_voters([1, 2, 3]);
    assert_membership(&net, &[1, 2, 3, 4], &want, "after removing 4");
    let status = net.node(1).status();
    assert!(
        status.progress.iter().all(|(id, _)| *id != 4),
        "the leader tracks 4 no more: {:?}",
        status.progress
    );

    net.isolate(3);
    net.isolate(4);
    let x = appended(net.propose(1, b"x"), "x");
    assert!(net.committed(1) >= x, "2 of the 3 remaining voters commit");
    assert_eq!(net.nodes[&2].applied, payloads(&[b"x"]));

    net.recover();
    net.isolate(4);
    let mark = net.sent.len();
    let ticks = 10 * net.nodes[&4].config.election_tick;
    net.tick(4, ticks);
    assert!(
        campaigns_from(&net, 4, mark).is_empty(),
        "the removed node campaigned"
    );
}

/// A learner is added (catching up from the log as a learner), then
/// promoted with `AddNode`: it becomes a voter everywhere, and can win an
/// election.
#[test]
fn a_learner_is_added_then_promoted() {
    let mut net = bootstrapped(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    join(&mut net, 4);
    appended(
        propose_change(&mut net, 1, &cc(AddLearnerNode, 4)),
        "add learner",
    );
    let learner = voters_and_learners(&[1, 2, 3], &[4]);
    assert_membership(&net, &[1, 2, 3, 4], &learner, "after adding learner 4");
    assert!(net.node(4).raft().is_learner, "4 knows it is a learner");
    assert!(net.progress(1, 4).is_learner);
    assert_eq!(net.log_ids(4), net.log_ids(1), "the learner caught up");
    assert_eq!(net.nodes[&4].applied, payloads(&[b"a"]));

    appended(propose_change(&mut net, 1, &cc(AddNode, 4)), "promote");
    let voter = ConfState::with_voters([1, 2, 3, 4]);
    assert_membership(&net, &[1, 2, 3, 4], &voter, "after promoting 4");
    assert!(!net.node(4).raft().is_learner, "4 knows it votes");
    assert!(!net.progress(1, 4).is_learner);
    net.campaign(4);
    assert_eq!(
        net.state(4),
        StateRole::Leader,
        "the promoted node can lead"
    );
}

// ---------------------------------------------------------------------------
// Joint consensus (§4.3)
// ---------------------------------------------------------------------------

/// §4.3: two voters added at once through the joint configuration. Node 4
/// catches up from the log; node 5 is away while the leader compacts its
/// log into a snapshot (taken while joint) and catches up from that
/// snapshot, learning the joint membership from it. Both then count.
#[test]
fn two_voters_added_at_once_one_through_a_snapshot() {
    let mut net = bootstrapped(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    join(&mut net, 4);
    join(&mut net, 5);
    net.isolate(5);
    let change = v2(
        ConfChangeTransition::Explicit,
        &[(AddNode, 4), (AddNode, 5)],
    );
    appended(propose_change(&mut net, 1, &change), "add 4 and 5");
    let in_joint = joint(&[1, 2, 3, 4, 5], &[1, 2, 3]);
    assert_membership(&net, &[1, 2, 3, 4], &in_joint, "joint");
    assert_eq!(net.log_ids(4), net.log_ids(1), "node 4 caught up by log");
    net.propose(1, b"b").unwrap();

    // Compact the leader's log up to what it applied.
    let applied = net.node(1).raft().log.applied();
    assert_eq!(applied, net.last_index(1), "the leader applied everything");
    let storage = net.node_mut(1).storage_mut();
    storage
        .create_snapshot(applied, None, Bytes::from_static(b"state"))
        .expect("snapshot");
    storage.compact(applied).expect("compact");
    let snap = net.node(1).storage().snapshot(0).expect("snapshot held");
    assert_eq!(snap.conf_state(), in_joint, "the snapshot carries joint");

    net.recover();
    net.tick(1, 2);
    let snaps = |to: u64| {
        net.sent_of(MessageType::MsgSnap)
            .iter()
            .filter(|m| m.to == to)
            .count()
    };
    assert_eq!(snaps(5), 1, "node 5 caught up through one snapshot");
    assert_eq!(snaps(4), 0, "node 4 needed none");
    assert_membership(&net, &[1, 2, 3, 4, 5], &in_joint, "5 restored joint");
    assert_eq!(
        net.log_ids(5),
        net.log_ids(1),
        "node 5's log is the leader's"
    );
    assert_eq!(net.committed(5), net.committed(1));

    appended(propose_change(&mut net, 1, &leave_joint()), "leave");
    let after = ConfState::with_voters([1, 2, 3, 4, 5]);
    assert_membership(&net, &[1, 2, 3, 4, 5], &after, "after leaving");
    // 1, 4 and 5 are a majority of the five.
    net.isolate(2);
    net.isolate(3);
    let c = appended(net.propose(1, b"c"), "c");
    assert!(net.committed(1) >= c, "1, 4 and 5 commit");
    assert_eq!(net.nodes[&5].applied, payloads(&[b"c"]), "5 applied c");
}

/// §4.3 / §4.2.2: replacing the leader. While joint the leader is a voter
/// of the outgoing half only; it keeps leading (and committing) until the
/// joint state is left, then, no longer a member, steps down; the new
/// configuration elects a leader without it.
#[test]
fn replacing_the_leader_it_leads_until_leave_then_steps_down() {
    let mut net = bootstrapped(3);
    net.campaign(1);
    join(&mut net, 4);
    let change = v2(
        ConfChangeTransition::Explicit,
        &[(RemoveNode, 1), (AddNode, 4)],
    );
    appended(propose_change(&mut net, 1, &change), "replace 1 by 4");
    let in_joint = joint(&[2, 3, 4], &[1, 2, 3]);
    assert_membership(&net, &[1, 2, 3, 4], &in_joint, "joint");
    assert_eq!(net.state(1), StateRole::Leader, "1 still leads while joint");
    let x = appended(net.propose(1, b"x"), "x while joint");
    assert!(net.committed(4) >= x, "the outgoing-only leader commits");
    assert_eq!(net.nodes[&4].applied, payloads(&[b"x"]));

    let term = net.term(1);
    appended(propose_change(&mut net, 1, &leave_joint()), "leave");
    let after = ConfState::with_voters([2, 3, 4]);
    assert_membership(&net, &[1, 2, 3, 4], &after, "after leaving");
    assert_eq!(net.state(1), StateRole::Follower, "1 stepped down");
    assert_eq!(net.node(1).raft().lead, 0, "1 follows nobody");
    assert_eq!(net.term(1), term, "stepping down keeps the term");

    let mark = net.sent.len();
    net.tick_all(3 * net.nodes[&2].config.election_tick);
    let leader = net.leader().expect("the new configuration elects");
    assert_ne!(leader, 1, "the removed node does not lead");
    assert!(
        campaigns_from(&net, 1, mark).is_empty(),
        "the removed node campaigned"
    );
    let y = appended(net.propose(leader, b"y"), "y");
    for id in [2, 3, 4] {
        assert!(net.committed(id) >= y, "node {id} committed y");
    }
}

/// Thesis §3.10 while joint: leadership moves to a voter of the incoming
/// half only (it needs votes of both majorities); the new leader commits
/// and takes the configuration out of the joint state.
#[test]
fn leadership_transfers_while_joint() {
    let mut net = bootstrapped(3);
    net.campaign(1);
    join(&mut net, 4);
    let change = v2(
        ConfChangeTransition::Explicit,
        &[(RemoveNode, 1), (AddNode, 4)],
    );
    appended(propose_change(&mut net, 1, &change), "replace 1 by 4");
    let in_joint = joint(&[2, 3, 4], &[1, 2, 3]);
    assert_membership(&net, &[1, 2, 3, 4], &in_joint, "joint");

    net.node_mut(1)
        .transfer_leader(4)
        .expect("4 is a voter while joint");
    net.stabilize();
    assert_eq!(net.leader(), Some(4), "4 leads");
    assert_eq!(net.state(1), StateRole::Follower, "1 handed over");
    assert_membership(&net, &[1, 2, 3, 4], &in_joint, "still joint");
    let x = appended(net.propose(4, b"x"), "x on 4");
    assert!(net.committed(1) >= x, "the outgoing half committed x");

    appended(propose_change(&mut net, 4, &leave_joint()), "leave on 4");
    let after = ConfState::with_voters([2, 3, 4]);
    assert_membership(&net, &[2, 3, 4], &after, "after leaving");
    assert_eq!(net.state(4), StateRole::Leader, "4 still leads");
    let status = net.node(4).status();
    assert!(
        status.progress.iter().all(|(id, _)| *id != 1),
        "1 is no longer tracked: {:?}",
        status.progress
    );
}

/// §4.2.2: a leader removed by a simple change steps down once it applies
/// it, never campaigns again, and the remaining voters elect a leader.
#[test]
fn a_removed_leader_steps_down_and_the_rest_elect() {
    let mut net = Network::new(3);
    net.campaign(1);
    let term = net.term(1);
    appended(propose_change(&mut net, 1, &cc(RemoveNode, 1)), "remove 1");
    let after = ConfState::with_voters([2, 3]);
    assert_membership(&net, &[1, 2, 3], &after, "after removing 1");
    assert_eq!(net.state(1), StateRole::Follower, "1 stepped down");
    assert_eq!(net.leader(), None, "nobody leads yet");
    assert_eq!(
        net.node_mut(1).propose(Bytes::from_static(b"no")),
        dropped(DropReason::NoLeader),
        "the removed node takes no proposals"
    );

    let mark = net.sent.len();
    net.tick_all(3 * net.nodes[&2].config.election_tick);
    let leader = net.leader().expect("2 and 3 elect a leader");
    assert!([2, 3].contains(&leader), "leader {leader}");
    assert!(net.term(leader) > term, "in a new term");
    assert!(
        campaigns_from(&net, 1, mark).is_empty(),
        "the removed node campaigned"
    );
    let z = appended(net.propose(leader, b"z"), "z");
    assert!(net.committed(2) >= z && net.committed(3) >= z, "z commits");
}

/// §4.3 with learners: promoting a learner and demoting a voter in one
/// change. While joint the demoted voter still votes in the outgoing half
/// (`learners_next`); it becomes a learner when the joint state is left,
/// and then neither counts nor campaigns.
#[test]
fn promote_a_learner_and_demote_a_voter_at_once() {
    let ids = [1, 2, 3, 4];
    let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4]), &ids, |_| {});
    net.campaign(1);
    let change = v2(
        ConfChangeTransition::Explicit,
        &[(AddNode, 4), (AddLearnerNode, 3)],
    );
    appended(propose_change(&mut net, 1, &change), "swap 3 and 4");
    let in_joint = ConfState {
        voters: vec![1, 2, 4],
        learners: vec![],
        voters_outgoing: vec![1, 2, 3],
        learners_next: vec![3],
        auto_leave: false,
    };
    assert_membership(&net, &ids, &in_joint, "joint");
    assert!(!net.node(3).raft().is_learner, "3 votes until the leave");
    assert!(!net.progress(1, 3).is_learner);
    assert!(!net.node(4).raft().is_learner, "4 votes at once");
    // 3 still counts in the outgoing half: without 2 and 3, no commit.
    net.isolate(2);
    net.isolate(3);
    let before = net.committed(1);
    net.propose(1, b"x").unwrap();
    assert_eq!(
        net.committed(1),
        before,
        "the outgoing half lacks a majority"
    );
    net.recover();
    net.tick(1, 1);

    appended(propose_change(&mut net, 1, &leave_joint()), "leave");
    let after = voters_and_learners(&[1, 2, 4], &[3]);
    assert_membership(&net, &ids, &after, "after leaving");
    assert!(net.node(3).raft().is_learner, "3 is a learner now");
    assert!(net.progress(1, 3).is_learner);
    // 1, 2 and 4 commit without 3; 3 does not campaign.
    net.isolate(3);
    let y = appended(net.propose(1, b"y"), "y");
    assert!(net.committed(1) >= y, "1, 2 and 4 commit");
    let mark = net.sent.len();
    net.tick(3, 10 * net.nodes[&3].config.election_tick);
    assert!(
        campaigns_from(&net, 3, mark).is_empty(),
        "the demoted node campaigned"
    );
}

/// `ConfChangeTransition::Explicit`: the configuration stays joint, even for
/// a single change, through ticks and other entries, until the application
/// proposes the empty `ConfChangeV2`.
#[test]
fn explicit_transition_stays_joint_until_the_application_leaves() {
    let ids = [1, 2, 3, 4];
    let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4]), &ids, |_| {});
    net.campaign(1);
    let change = v2(ConfChangeTransition::Explicit, &[(AddNode, 4)]);
    let index = appended(propose_change(&mut net, 1, &change), "promote 4");
    let in_joint = joint(&[1, 2, 3, 4], &[1, 2, 3]);
    assert_membership(&net, &ids, &in_joint, "joint");
    net.propose(1, b"x").unwrap();
    net.tick_all(3 * net.nodes[&1].config.election_tick);
    net.propose(1, b"y").unwrap();
    assert_membership(&net, &ids, &in_joint, "still joint");
    assert!(
        conf_changes_after(&net, 1, index).is_empty(),
        "the leader proposed no leave itself"
    );

    let leave = appended(propose_change(&mut net, 1, &leave_joint()), "leave");
    let after = ConfState::with_voters([1, 2, 3, 4]);
    assert_membership(&net, &ids, &after, "after leaving");
    assert_eq!(
        conf_changes_after(&net, 1, index),
        vec![(leave, leave_joint())],
        "only the application's leave follows"
    );
}

/// Automatic leave: `Auto` with several changes, or `Implicit`, enters the
/// joint configuration and the leader proposes the leave itself once the
/// change is applied; the application proposes nothing more.
#[test]
fn auto_leave_the_leader_leaves_joint_by_itself() {
    for (transition, changes) in [
        (
            ConfChangeTransition::Auto,
            &[(AddNode, 4), (AddNode, 5)][..],
        ),
        (ConfChangeTransition::Implicit, &[(AddNode, 4)][..]),
    ] {
        let ids = [1, 2, 3, 4, 5];
        let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4, 5]), &ids, |_| {});
        net.campaign(1);
        let index = appended(
            propose_change(&mut net, 1, &v2(transition, changes)),
            "change",
        );
        let mut after = ConfState::with_voters([1, 2, 3, 4]);
        if changes.len() == 2 {
            after.voters.push(5);
        } else {
            after.learners.push(5);
        }
        assert_membership(&net, &ids, &after, &format!("{transition:?}: left"));
        let leaves = conf_changes_after(&net, 1, index);
        assert_eq!(leaves.len(), 1, "{transition:?}: one leave: {leaves:?}");
        assert!(
            leaves[0].1.leaves_joint(),
            "{transition:?}: the entry after the change is the leave"
        );
        let ents = net
            .node(1)
            .raft()
            .log
            .term(leaves[0].0)
            .expect("leave entry term");
        assert_eq!(ents, net.term(1), "{transition:?}: proposed by the leader");
        // Every node applied the joint state before leaving it.
        for id in ids {
            let applied: Vec<u64> = net.nodes[&id].applied_ids.iter().map(|p| p.0).collect();
            assert!(
                applied.contains(&index) && applied.contains(&leaves[0].0),
                "{transition:?}: node {id} applied both"
            );
        }
    }
}

/// Auto-leave survives a change of leader: the successor of a leader that
/// entered an auto-leave joint state proposes the leave itself, whether
/// it commits the joint entry (the old leader never saw it committed) or
/// had already applied it (the old leader's leave never left it).
#[test]
fn a_new_leader_leaves_the_joint_state_its_predecessor_entered() {
    for followers_applied in [false, true] {
        let ids = [1, 2, 3, 4, 5];
        let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4, 5]), &ids, |_| {});
        net.campaign(1);
        let change = v2(ConfChangeTransition::Auto, &[(AddNode, 4), (AddNode, 5)]);
        let index = appended(net.node_mut(1).propose_conf_change(&change), "change");
        let in_joint = ConfState {
            auto_leave: true,
            ..joint(&[1, 2, 3, 4, 5], &[1, 2, 3])
        };
        if followers_applied {
            // Everything gets through but the leader's own leave.
            let _held = net
                .deliver_holding(|_, m| m.from == 1 && m.entries.iter().any(|e| e.index > index));
            assert_membership(&net, &[2, 3, 4, 5], &in_joint, "followers joint");
            let own = conf_changes_after(&net, 1, index);
            assert!(
                own.len() == 1 && own[0].1.leaves_joint(),
                "1 proposed its leave: {own:?}"
            );
        } else {
            // The followers get the entry; the leader hears nothing back.
            let _held = net.deliver_holding(|_, m| m.to == 1);
            assert!(net.committed(1) < index, "not committed under 1");
        }
        for id in 2..=5 {
            assert!(net.last_index(id) >= index, "node {id} holds the change");
            assert!(
                conf_changes_after(&net, id, index).is_empty(),
                "node {id} has no leave"
            );
        }
        net.isolate(1);
        net.campaign(2);
        assert_eq!(net.state(2), StateRole::Leader, "{followers_applied}");
        let after = ConfState::with_voters([1, 2, 3, 4, 5]);
        assert_membership(&net, &[2, 3, 4, 5], &after, "left under 2");
        let leaves = conf_changes_after(&net, 2, index);
        assert_eq!(leaves.len(), 1, "2 proposed one leave: {leaves:?}");
        assert!(leaves[0].1.leaves_joint());
        assert_eq!(
            net.node(2).raft().log.term(leaves[0].0).unwrap(),
            net.term(2),
            "in 2's term"
        );
    }
}

/// Auto-leave is not lost to a leadership transfer: when the joint entry
/// is applied while a transfer is under way, the leader cannot propose the
/// leave then (proposals are refused during a transfer); once the transfer
/// is abandoned it should leave, without the application proposing.
#[test]
fn an_auto_leave_blocked_by_a_transfer_happens_once_the_transfer_ends() {
    let ids = [1, 2, 3, 4, 5];
    let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4, 5]), &ids, |_| {});
    net.campaign(1);
    net.isolate(3);
    let change = v2(ConfChangeTransition::Auto, &[(AddNode, 4), (AddNode, 5)]);
    appended(net.node_mut(1).propose_conf_change(&change), "change");
    net.node_mut(1)
        .transfer_leader(3)
        .expect("3 is a voter (unreachable: the transfer will not finish)");
    net.stabilize();
    let in_joint = ConfState {
        auto_leave: true,
        ..joint(&[1, 2, 3, 4, 5], &[1, 2, 3])
    };
    assert_membership(&net, &[1, 2, 4, 5], &in_joint, "joint, leave refused");
    assert_eq!(net.node(1).raft().lead_transferee, 3, "transfer under way");

    net.tick(1, 2 * net.nodes[&1].config.election_tick);
    assert_eq!(net.node(1).raft().lead_transferee, 0, "transfer abandoned");
    assert_eq!(net.state(1), StateRole::Leader, "1 still leads");
    let after = ConfState::with_voters([1, 2, 3, 4, 5]);
    assert_membership(&net, &[1, 2, 4, 5], &after, "left once the transfer ended");
}

/// §4.3: "agreement (for elections and entry commitment) requires separate
/// majorities from both the old and new configurations." Joint
/// {1,2,3} -> {1,4,5}: without a majority of the outgoing half nothing
/// commits though the whole incoming half holds the entry, and without a
/// majority of the incoming half nothing commits though the whole outgoing
/// half does.
#[test]
fn commit_while_joint_needs_both_majorities() {
    let mut net = bootstrapped(3);
    net.campaign(1);
    join(&mut net, 4);
    join(&mut net, 5);
    let change = v2(
        ConfChangeTransition::Explicit,
        &[(RemoveNode, 2), (RemoveNode, 3), (AddNode, 4), (AddNode, 5)],
    );
    appended(propose_change(&mut net, 1, &change), "replace 2,3 by 4,5");
    let in_joint = joint(&[1, 4, 5], &[1, 2, 3]);
    assert_membership(&net, &[1, 2, 3, 4, 5], &in_joint, "joint");

    for (away, have) in [([2, 3], [4, 5]), ([4, 5], [2, 3])] {
        net.isolate(away[0]);
        net.isolate(away[1]);
        let before = net.committed(1);
        let x = appended(net.propose(1, b"x"), "x");
        net.tick(1, 3);
        for id in have {
            assert!(net.last_index(id) >= x, "{away:?} away: {id} holds x");
        }
        assert_eq!(
            net.committed(1),
            before,
            "{away:?} away: nothing commits with one majority"
        );
        net.recover();
        net.tick(1, 1);
        assert!(net.committed(1) >= x, "{away:?} back: x commits");
    }

    appended(propose_change(&mut net, 1, &leave_joint()), "leave");
    let after = ConfState::with_voters([1, 4, 5]);
    assert_membership(&net, &[1, 4, 5], &after, "after leaving");
    net.isolate(2);
    net.isolate(3);
    let y = appended(net.propose(1, b"y"), "y");
    assert!(net.committed(1) >= y, "the new voters alone commit");
}

/// A leader demoted to learner through the joint state (it stays in
/// `learners_next`, still voting in the outgoing half) leads until the
/// leave, then steps down and keeps receiving the log as a learner.
#[test]
fn a_leader_demoted_to_learner_steps_down_at_the_leave() {
    let ids = [1, 2, 3, 4];
    let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4]), &ids, |_| {});
    net.campaign(1);
    let change = v2(
        ConfChangeTransition::Explicit,
        &[(AddLearnerNode, 1), (AddNode, 4)],
    );
    appended(propose_change(&mut net, 1, &change), "demote 1, promote 4");
    let in_joint = ConfState {
        voters: vec![2, 3, 4],
        voters_outgoing: vec![1, 2, 3],
        learners_next: vec![1],
        ..Default::default()
    };
    assert_membership(&net, &ids, &in_joint, "joint");
    assert_eq!(net.state(1), StateRole::Leader, "1 leads while joint");
    assert!(!net.node(1).raft().is_learner, "1 votes while joint");

    appended(propose_change(&mut net, 1, &leave_joint()), "leave");
    let after = voters_and_learners(&[2, 3, 4], &[1]);
    assert_membership(&net, &ids, &after, "after leaving");
    assert!(net.node(1).raft().is_learner, "1 is a learner");
    assert_eq!(net.state(1), StateRole::Follower, "1 stepped down");

    net.tick_all(3 * net.nodes[&2].config.election_tick);
    let leader = net.leader().expect("2, 3 and 4 elect a leader");
    assert_ne!(leader, 1);
    net.propose(leader, b"z").unwrap();
    net.assert_applied([1], &[b"z"], "the demoted node still applies the log");
}

/// §4.3: elections while joint need both majorities too. Joint
/// {1,2,3} -> {1,4,5} with the leader 1 gone: 4 and 5 are a majority of
/// the incoming half but do not elect without 2 or 3 of the outgoing half;
/// with them back, 4 wins.
#[test]
fn elections_while_joint_need_both_majorities() {
    let mut net = bootstrapped(3);
    net.campaign(1);
    join(&mut net, 4);
    join(&mut net, 5);
    let change = v2(
        ConfChangeTransition::Explicit,
        &[(RemoveNode, 2), (RemoveNode, 3), (AddNode, 4), (AddNode, 5)],
    );
    appended(propose_change(&mut net, 1, &change), "replace 2,3 by 4,5");
    let in_joint = joint(&[1, 4, 5], &[1, 2, 3]);
    assert_membership(&net, &[1, 2, 3, 4, 5], &in_joint, "joint");

    net.isolate(1);
    net.isolate(2);
    net.isolate(3);
    net.campaign(4);
    assert_ne!(net.state(4), StateRole::Leader, "no outgoing majority");
    let votes_from_5 = net
        .sent_of(MessageType::MsgVoteResp)
        .iter()
        .filter(|m| m.from == 5 && m.to == 4 && !m.reject)
        .count();
    assert!(votes_from_5 > 0, "5 voted for 4: the incoming half was won");

    net.recover();
    net.isolate(1);
    net.campaign(4);
    assert_eq!(
        net.state(4),
        StateRole::Leader,
        "2 or 3 complete the quorum"
    );
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

/// One change at a time (§4.1): while a change is not applied, another is
/// refused with `ConfChangePending` and nothing is appended; normal
/// proposals still go through, and once it is applied the next is taken.
#[test]
fn a_second_change_is_refused_while_one_is_pending() {
    let mut net = Network::new(3);
    net.campaign(1);
    let first = appended(
        net.node_mut(1).propose_conf_change(&cc(AddLearnerNode, 4)),
        "first",
    );
    let last = net.last_index(1);
    assert_eq!(
        net.node_mut(1).propose_conf_change(&cc(AddLearnerNode, 5)),
        dropped(DropReason::ConfChangePending),
        "a second ConfChange"
    );
    assert_eq!(
        net.node_mut(1)
            .propose_conf_change(&v2(ConfChangeTransition::Auto, &[(AddNode, 5)])),
        dropped(DropReason::ConfChangePending),
        "a second ConfChangeV2"
    );
    assert_eq!(net.last_index(1), last, "nothing appended");
    assert_eq!(net.node(1).raft().pending_conf_index, first);
    let x = appended(
        net.node_mut(1).propose(Bytes::from_static(b"x")),
        "a normal proposal",
    );
    assert_eq!(x, last + 1);

    net.stabilize();
    assert_membership(
        &net,
        &[1, 2, 3],
        &voters_and_learners(&[1, 2, 3], &[4]),
        "first applied",
    );
    appended(
        propose_change(&mut net, 1, &cc(AddLearnerNode, 5)),
        "after the first is applied",
    );
    assert_membership(
        &net,
        &[1, 2, 3],
        &voters_and_learners(&[1, 2, 3], &[4, 5]),
        "second applied",
    );
}

/// Asserts that proposing `change` on leader `id` is refused as invalid
/// and leaves the log as it was.
fn assert_invalid(net: &mut Network, id: u64, change: &impl ConfChangeI, what: &str) {
    let last = net.last_index(id);
    let pending = net.node(id).raft().pending_conf_index;
    assert_eq!(
        net.node_mut(id).propose_conf_change(change),
        dropped(DropReason::InvalidConfChange),
        "{what}"
    );
    assert_eq!(net.last_index(id), last, "{what}: nothing appended");
    assert_eq!(
        net.node(id).raft().pending_conf_index,
        pending,
        "{what}: no change pending"
    );
    assert!(
        !net.node(id).has_ready(),
        "{what}: nothing to persist or send"
    );
}

/// A change that cannot apply to the configuration in force is refused
/// with `InvalidConfChange` and nothing is appended: leaving when not
/// joint, removing every voter, unknown change types and transitions, any
/// change but the leave while joint.
#[test]
fn a_change_that_cannot_apply_is_refused() {
    let mut net = Network::new(3);
    net.campaign(1);
    assert_invalid(&mut net, 1, &leave_joint(), "leave while not joint");
    assert_invalid(
        &mut net,
        1,
        &v2(
            ConfChangeTransition::Auto,
            &[(RemoveNode, 1), (RemoveNode, 2), (RemoveNode, 3)],
        ),
        "remove all voters (joint)",
    );
    let bad_type = ConfChange {
        change_type: 99,
        node_id: 4,
        ..Default::default()
    };
    assert_invalid(&mut net, 1, &bad_type, "unknown change type");
    let mut bad_transition = v2(ConfChangeTransition::Auto, &[(AddNode, 4), (AddNode, 5)]);
    bad_transition.transition = 7;
    assert_invalid(&mut net, 1, &bad_transition, "unknown transition");

    let enter = v2(ConfChangeTransition::Explicit, &[(AddLearnerNode, 4)]);
    appended(propose_change(&mut net, 1, &enter), "enter joint");
    assert!(!membership(&net, 1).voters_outgoing.is_empty(), "joint now");
    assert_invalid(&mut net, 1, &cc(AddLearnerNode, 5), "simple while joint");
    assert_invalid(
        &mut net,
        1,
        &v2(ConfChangeTransition::Explicit, &[(AddLearnerNode, 5)]),
        "enter joint while joint",
    );
    appended(propose_change(&mut net, 1, &leave_joint()), "leave is fine");
    assert_membership(
        &net,
        &[1, 2, 3],
        &voters_and_learners(&[1, 2, 3], &[4]),
        "left",
    );

    // A single voter cannot remove itself.
    let mut solo = Network::new(1);
    solo.campaign(1);
    assert_eq!(solo.state(1), StateRole::Leader);
    assert_invalid(&mut solo, 1, &cc(RemoveNode, 1), "remove the only voter");
}

/// A configuration-change entry whose payload does not decode (it can
/// only arrive in a forwarded proposal) is refused with
/// `InvalidConfChange`, for either version, and nothing is appended.
#[test]
fn a_conf_change_that_does_not_decode_is_refused() {
    let mut net = Network::new(3);
    net.campaign(1);
    for kind in [EntryType::EntryConfChange, EntryType::EntryConfChangeV2] {
        let mut e = Entry::new(0, 0, Bytes::from_static(&[0xff, 0xff, 0xff]));
        e.entry_type = kind as i32;
        assert!(decode_conf_change(&e).is_err(), "{kind:?}: garbage");
        let mut m = Message::new(MessageType::MsgProp, 2, 1);
        m.entries.push(e);
        let last = net.last_index(1);
        assert_eq!(
            net.node_mut(1).step(m),
            Err(Error::ProposalDropped(DropReason::InvalidConfChange)),
            "{kind:?}"
        );
        assert_eq!(net.last_index(1), last, "{kind:?}: nothing appended");
        assert_eq!(net.node(1).raft().pending_conf_index, 0, "{kind:?}");
    }
    // Forwarded by a follower through the network: dropped at the leader.
    let mut e = Entry::new(0, 0, Bytes::from_static(&[0xff, 0xff, 0xff]));
    e.entry_type = EntryType::EntryConfChange as i32;
    let mut m = Message::new(MessageType::MsgProp, 2, 2);
    m.entries.push(e);
    let last = net.last_index(1);
    net.node_mut(2).step(m).expect("the follower forwards");
    net.stabilize();
    assert_eq!(net.last_index(1), last, "nothing appended by the leader");
    for id in 1..=3 {
        assert_eq!(net.last_index(id), last, "node {id}'s log unchanged");
    }
}

// ---------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------

/// The proposer of a configuration change learns it was committed from
/// `Ready::proposal_outcomes`, once; the leave the leader proposes itself
/// (auto-leave) and refused proposals get no outcome.
#[test]
fn the_proposer_learns_its_change_committed() {
    let ids = [1, 2, 3, 4, 5];
    let mut net = with_membership(voters_and_learners(&[1, 2, 3], &[4, 5]), &ids, |_| {});
    net.campaign(1);
    let term = net.term(1);
    let simple = appended(
        propose_change(&mut net, 1, &cc(AddNode, 4)),
        "simple change",
    );
    let change = v2(ConfChangeTransition::Auto, &[(AddNode, 5), (RemoveNode, 3)]);
    let joint_index = appended(propose_change(&mut net, 1, &change), "joint change");
    assert_eq!(
        net.node_mut(1).propose_conf_change(&leave_joint()),
        dropped(DropReason::InvalidConfChange),
        "already left"
    );
    net.stabilize();
    assert_membership(
        &net,
        &[1, 2, 4, 5],
        &ConfState::with_voters([1, 2, 4, 5]),
        "after both",
    );
    let committed = |index| ProposalOutcome {
        first_index: index,
        last_index: index,
        term,
        outcome: Outcome::Committed,
    };
    assert_eq!(
        net.nodes[&1].outcomes,
        vec![committed(simple), committed(joint_index)],
        "the leader's outcomes: one per proposal, none for the auto-leave"
    );
    for id in 2..=5 {
        assert!(
            net.nodes[&id].outcomes.is_empty(),
            "node {id} proposed nothing"
        );
    }
}

/// A change appended by a leader that lost its leadership before it
/// committed is reported `Superseded` once the new leader's log replaces
/// it, and it never takes effect.
#[test]
fn a_change_lost_with_its_leader_is_superseded() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(1);
    let proposed = net.node_mut(1).propose_conf_change(&cc(RemoveNode, 3));
    let Ok(Proposed::Appended { index, term }) = proposed else {
        panic!("the isolated leader appends: {proposed:?}");
    };
    net.stabilize();
    net.campaign(2);
    net.propose(2, b"x").unwrap();
    net.propose(2, b"y").unwrap();
    net.recover();
    net.tick(2, 1);
    assert_eq!(net.log_ids(1), net.log_ids(2), "1's log replaced");
    assert_eq!(
        net.nodes[&1].outcomes,
        vec![ProposalOutcome {
            first_index: index,
            last_index: index,
            term,
            outcome: Outcome::Superseded
        }]
    );
    assert_membership(
        &net,
        &[1, 2, 3],
        &ConfState::with_voters([1, 2, 3]),
        "unchanged",
    );
}

/// Figure 2 as refined in etcd: a node does not campaign while a committed
/// configuration change is not yet applied — it could campaign in a stale
/// configuration (thesis §4.1). Bootstrap leaves the membership committed
/// but unapplied until the first Ready is handled.
#[test]
fn no_campaign_while_a_committed_conf_change_is_unapplied() {
    let mut n = RawNode::bootstrap(&test_config(1), MemoryStorage::new(), &[1, 2, 3])
        .expect("bootstrap an empty storage");
    n.campaign();
    for _ in 0..3 * 10 {
        n.tick();
    }
    assert_eq!(
        n.raft().state,
        StateRole::Follower,
        "no campaign, explicit or by timeout, before the membership is applied"
    );
    let mut rd = n.ready();
    assert!(
        !rd.messages
            .iter()
            .any(|m| m.kind() == Some(MessageType::MsgVote)),
        "no vote requests either"
    );
    n.storage_mut().append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        n.storage_mut().set_hard_state(hs);
    }
    for e in rd.committed_entries.drain(..) {
        let cc = decode_conf_change(&e)
            .expect("decodes")
            .expect("bootstrap entries are conf changes");
        n.apply_conf_change(&cc).unwrap();
    }
    n.advance(rd);
    n.campaign();
    assert_eq!(
        n.raft().state,
        StateRole::Candidate,
        "once applied, the campaign goes ahead"
    );
}
