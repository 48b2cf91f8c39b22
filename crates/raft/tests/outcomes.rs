//! What becomes of a proposal (`Proposed` from `propose`, then
//! `Ready::proposal_outcomes`): committed (§5.3, §5.4.2), superseded by
//! another entry committed at its index (§5.3, Log Matching), or unknown
//! when a snapshot covers its index before this node saw it (§7).

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::{DropReason, Error, MessageType, Outcome, ProposalOutcome, Proposed, StateRole};

const ELECTION_TICK: usize = 10;

/// The outcome `outcome` of the proposal appended at `(index, term)`.
fn outcome(index: u64, term: u64, outcome: Outcome) -> ProposalOutcome {
    run(index..=index, term, outcome)
}

/// The outcome `outcome` of the proposals appended at `indexes` in `term`.
fn run(indexes: std::ops::RangeInclusive<u64>, term: u64, outcome: Outcome) -> ProposalOutcome {
    ProposalOutcome {
        first_index: *indexes.start(),
        last_index: *indexes.end(),
        term,
        outcome,
    }
}

/// `(index, term)` of a proposal appended here.
fn appended(p: Proposed) -> (u64, u64) {
    match p {
        Proposed::Appended { index, term } => (index, term),
        other => panic!("expected the proposal appended here, got {other:?}"),
    }
}

fn outcomes(net: &Network, id: u64) -> &[ProposalOutcome] {
    &net.nodes[&id].outcomes
}

fn applied(net: &Network, id: u64) -> &[Bytes] {
    &net.nodes[&id].applied
}

/// Cuts every link between the groups `a` and `b`.
fn partition(net: &mut Network, a: &[u64], b: &[u64]) {
    for &x in a {
        for &y in b {
            net.cut(x, y);
        }
    }
}

/// §5.3 ("the leader appends the command to its log as a new entry"; "once
/// the entry has been safely replicated, the leader applies the entry"): a
/// proposal on the leader is appended at the next index in its term, and
/// settles `Committed` at that index and term in the very `Ready` that
/// hands the entry out to apply — not before.
#[test]
fn leader_proposal_is_appended_then_committed() {
    let mut net = Network::new(3);
    net.campaign(1);
    let before = net.last_index(1);
    let p = net
        .node_mut(1)
        .propose(Bytes::from_static(b"x"))
        .expect("the leader accepts");
    assert_eq!(
        p,
        Proposed::Appended {
            index: before + 1,
            term: 1
        }
    );
    let (index, term) = appended(p);

    // The leader persists and sends; the followers append and answer.
    for m in net.take_queue() {
        net.deliver(m);
    }
    let answers = net.take_queue();
    assert!(
        outcomes(&net, 1).is_empty(),
        "nothing settled before a quorum holds the entry"
    );
    for m in answers {
        net.deliver(m);
    }
    assert_eq!(net.committed(1), index, "a quorum holds it: committed");

    let mut rd = net.node_mut(1).ready();
    assert!(
        rd.committed_entries
            .iter()
            .any(|e| (e.index, e.term) == (index, term)),
        "the entry is handed out to apply: {:?}",
        rd.committed_entries
    );
    assert_eq!(
        rd.proposal_outcomes,
        vec![outcome(index, term, Outcome::Committed)],
        "settled in the same Ready"
    );
    // Finish handling this Ready by hand, then let the cluster settle.
    assert!(rd.entries.is_empty() && rd.snapshot.is_none());
    if let Some(hs) = rd.hard_state {
        net.node_mut(1).storage_mut().set_hard_state(hs);
    }
    let out: Vec<_> = rd
        .messages
        .drain(..)
        .chain(rd.persisted_messages.drain(..))
        .collect();
    net.queue.extend(out);
    net.node_mut(1).advance(rd);
    net.stabilize();
    assert!(
        outcomes(&net, 1).is_empty(),
        "settled once: nothing more afterwards"
    );
    for id in [2, 3] {
        assert_eq!(applied(&net, id), &[Bytes::from_static(b"x")], "node {id}");
    }
}

/// As in etcd (a follower forwards proposals to its leader): a proposal on
/// a follower returns `Forwarded` naming the leader; the entry commits
/// everywhere, and no node reports an outcome for it (the follower cannot
/// follow it; the leader did not propose it).
#[test]
fn follower_proposal_is_forwarded() {
    let mut net = Network::new(3);
    net.campaign(1);
    let p = net.propose(2, b"x").expect("2 knows the leader");
    assert_eq!(p, Proposed::Forwarded { to: 1 });
    for id in 1..=3 {
        assert_eq!(applied(&net, id), &[Bytes::from_static(b"x")], "node {id}");
        assert!(outcomes(&net, id).is_empty(), "node {id}: no outcome");
    }
}

/// §5.3 ("the leader handles inconsistencies by forcing the followers' logs
/// to duplicate its own"): a leader cut off from the majority appends a
/// proposal that never commits; the majority elects a new leader whose
/// entries commit at that index. On rejoining, the old leader's entry is
/// overwritten and it reports the proposal `Superseded`; it is never
/// applied anywhere.
#[test]
fn old_leaders_overwritten_proposal_is_superseded() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(1);
    let (index, term) = appended(net.propose(1, b"lost").expect("1 still leads"));
    assert_eq!(net.committed(1), index - 1, "no quorum: not committed");

    net.campaign(2);
    net.propose(2, b"won").expect("2 leads 2 and 3");
    assert_eq!(net.term(2), 2);
    assert!(net.committed(2) > index, "2 committed past the index");
    assert!(
        outcomes(&net, 1).is_empty(),
        "1 cannot know yet: it still leads term 1 alone"
    );

    net.recover();
    net.tick(2, 1);
    assert_eq!(
        (net.state(1), net.node(1).raft().lead),
        (StateRole::Follower, 2)
    );
    assert_ne!(
        net.log_ids(1)[index as usize - 1],
        (index, term),
        "1's entry was overwritten"
    );
    assert_eq!(
        outcomes(&net, 1),
        &[outcome(index, term, Outcome::Superseded)]
    );
    for id in 1..=3 {
        assert_eq!(
            applied(&net, id),
            &[Bytes::from_static(b"won")],
            "node {id}"
        );
    }
}

/// §5.4.2 and Figure 8 (an entry of an earlier term can still be committed
/// by a later leader whose log holds it): that the old leader's own copy
/// was overwritten by an uncommitted entry does not settle the proposal.
/// Here 1 (term 1) replicates "x" to 3 only; 2 wins term 2 with 4 and 5
/// and overwrites 1's copy, but commits nothing; 3 (holding "x") wins
/// term 3 and commits it. 1 must report `Committed` — it applies "x" — and
/// never `Superseded`.
#[test]
fn locally_overwritten_proposal_can_still_commit() {
    let mut net = Network::new(5);
    net.campaign(1);
    partition(&mut net, &[1], &[2, 4, 5]);
    let (index, term) = appended(net.propose(1, b"x").expect("1 leads"));
    assert!(net.log_ids(3).contains(&(index, term)), "3 holds 1's entry");
    assert_eq!(net.committed(1), index - 1, "1 and 3 are no majority of 5");

    // 2 wins term 2 with 4 and 5; none of its appends reach them.
    net.drop_type(rudder_raft::MessageType::MsgApp);
    net.campaign(2);
    assert_eq!((net.state(2), net.term(2)), (StateRole::Leader, 2));
    net.recover();
    partition(&mut net, &[1, 2], &[3, 4, 5]);
    net.tick(2, 1);
    assert_eq!(net.node(1).raft().lead, 2, "1 follows 2");
    assert_eq!(
        net.log_ids(1)[index as usize - 1],
        (index, 2),
        "1's copy was overwritten by 2's uncommitted entry"
    );
    assert_eq!(net.committed(2), index - 1, "2 and 1 are no majority");
    assert!(
        outcomes(&net, 1).is_empty(),
        "nothing is committed at the index yet: no outcome"
    );

    // 3, holding "x", wins term 3 with 4 and 5 and commits it.
    net.campaign(3);
    assert_eq!((net.state(3), net.term(3)), (StateRole::Leader, 3));
    assert!(net.committed(3) > index);
    net.recover();
    net.tick(3, 1);
    net.stabilize();
    for id in 1..=5 {
        assert_eq!(applied(&net, id), &[Bytes::from_static(b"x")], "node {id}");
    }
    assert_eq!(
        outcomes(&net, 1),
        &[outcome(index, term, Outcome::Committed)],
        "1 applied its proposal: committed"
    );
}

/// §5.4.2 (a new leader commits entries of earlier terms by committing one
/// of its own): a leader that loses its role with a proposal uncommitted
/// and wins a later term reports that proposal `Committed` once its new
/// term's entry commits it, not earlier.
#[test]
fn proposal_committed_under_a_later_term() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(1);
    let (index, term) = appended(net.propose(1, b"x").expect("1 leads"));
    net.recover();
    // 2 campaigns, reaching only 1: 1 steps down (and refuses, its log is
    // newer); 2 cannot win.
    net.cut(2, 3);
    net.campaign(2);
    assert_eq!((net.state(1), net.term(1)), (StateRole::Follower, 2));
    assert_ne!(net.state(2), StateRole::Leader);
    assert!(outcomes(&net, 1).is_empty(), "still pending");

    net.recover();
    net.campaign(1);
    assert_eq!((net.state(1), net.term(1)), (StateRole::Leader, 3));
    assert!(net.committed(1) > index);
    assert_eq!(
        outcomes(&net, 1),
        &[outcome(index, term, Outcome::Committed)]
    );
    for id in 1..=3 {
        assert_eq!(applied(&net, id), &[Bytes::from_static(b"x")], "node {id}");
    }
}

/// §7 (a follower too far behind is sent a snapshot, which replaces its
/// log): an old leader's uncommitted proposal whose index a snapshot from
/// the new leader covers, before this node saw which entry was committed
/// there, is reported `Unknown`.
#[test]
fn proposal_covered_by_a_snapshot_is_unknown() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(1);
    let (index, term) = appended(net.propose(1, b"lost").expect("1 leads"));
    net.campaign(2);
    net.propose(2, b"b").unwrap();
    net.propose(2, b"c").unwrap();
    let applied_2 = net.node(2).raft().log.applied();
    assert!(applied_2 > index);
    let storage = net.node_mut(2).storage_mut();
    storage
        .create_snapshot(applied_2, None, Bytes::from_static(b"b,c"))
        .unwrap();
    storage.compact(applied_2).unwrap();

    net.recover();
    net.tick(2, 1);
    assert_eq!(net.node(1).raft().lead, 2);
    assert!(
        net.nodes[&1].applied_ids.contains(&(applied_2, 2)),
        "1 was sent the snapshot: {:?}",
        net.nodes[&1].applied_ids
    );
    assert_eq!(outcomes(&net, 1), &[outcome(index, term, Outcome::Unknown)]);
    assert!(
        applied(&net, 1).is_empty(),
        "1 applied no entry, only the snapshot"
    );
}

/// §5.3 (entries commit in log order): a burst of proposals on the leader
/// gets consecutive indexes in its term and settles `Committed`, in order,
/// exactly once each — as one run when the commits come in one `Ready`,
/// one run per `Ready` when `max_committed_size_per_ready` spreads them.
#[test]
fn burst_of_proposals_commits_in_order() {
    const N: u64 = 20;
    for limit in [None, Some(1)] {
        let mut net = Network::with_config(3, |c| {
            if let Some(l) = limit {
                c.max_committed_size_per_ready = l;
            }
        });
        net.campaign(1);
        let base = net.last_index(1);
        let data: Vec<Bytes> = (0..N).map(|i| Bytes::from(format!("p{i}"))).collect();
        for (i, d) in (0..).zip(&data) {
            let p = net
                .node_mut(1)
                .propose(d.clone())
                .expect("the leader accepts");
            assert_eq!(
                appended(p),
                (base + 1 + i, 1),
                "limit {limit:?}: proposal {i}"
            );
        }
        net.stabilize();
        let expected: Vec<ProposalOutcome> = match limit {
            None => vec![run(base + 1..=base + N, 1, Outcome::Committed)],
            Some(_) => (base + 1..=base + N)
                .map(|i| outcome(i, 1, Outcome::Committed))
                .collect(),
        };
        assert_eq!(outcomes(&net, 1), &expected[..], "limit {limit:?}");
        for id in 1..=3 {
            assert_eq!(applied(&net, id), &data[..], "limit {limit:?}: node {id}");
        }
    }
}

/// A burst whose entries meet different fates (§5.3, §5.4.1) is reported
/// split where the fate changes. Leader 1 appends "a" and "b" together but
/// only "a" reaches 2 before 1 is cut off; 2 wins term 2 (its log is the
/// longer), commits "a" with its own first entry, and commits "c" where
/// "b" stood. 1 reports "a" `Committed` and "b" `Superseded`.
#[test]
fn a_burst_with_mixed_fates_is_split() {
    let mut net = Network::with_config(3, |c| c.max_size_per_msg = 1);
    net.campaign(1);
    let a = appended(net.node_mut(1).propose(Bytes::from_static(b"a")).unwrap());
    let b = appended(net.node_mut(1).propose(Bytes::from_static(b"b")).unwrap());
    assert_eq!((b.0, b.1), (a.0 + 1, a.1), "one run");
    for m in net.take_queue() {
        let carries_a = m.entries.first().is_some_and(|e| e.data == "a");
        if m.to == 2 && m.kind() == Some(MessageType::MsgApp) && carries_a {
            net.deliver(m);
        }
    }
    net.isolate(1);
    net.stabilize();
    assert!(net.log_ids(2).contains(&a), "2 holds a");
    assert!(!net.log_ids(2).contains(&b), "2 lacks b");

    net.campaign(2);
    net.propose(2, b"c").expect("2 leads 2 and 3");
    net.recover();
    net.tick(2, 1);
    assert_eq!(net.log_ids(1), net.log_ids(2), "1's log replaced");
    assert_eq!(
        outcomes(&net, 1),
        &[
            outcome(a.0, a.1, Outcome::Committed),
            outcome(b.0, b.1, Outcome::Superseded)
        ]
    );
    assert_eq!(applied(&net, 1), &payloads(&[b"a", b"c"])[..]);
}

/// Refused proposals (`propose` returns the reason) get no index and no
/// outcome: during a leadership transfer (thesis §3.10), on a candidate
/// and on a follower knowing no leader. Only the accepted ones settle.
#[test]
fn refused_proposals_have_no_outcome() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(3);
    let accepted = appended(net.propose(1, b"ok").expect("1 and 2 are a majority"));
    net.node_mut(1).transfer_leader(3).expect("3 is a voter");
    assert_eq!(
        net.node_mut(1).propose(Bytes::from_static(b"refused")),
        Err(Error::ProposalDropped(DropReason::TransferringLeader))
    );
    net.tick(1, ELECTION_TICK);
    assert_eq!(net.node(1).basic_status().lead_transferee, 0, "abandoned");

    // 3, cut off, campaigns: a candidate refuses proposals.
    net.node_mut(3).campaign();
    net.stabilize();
    assert_eq!(net.state(3), StateRole::Candidate);
    assert_eq!(
        net.node_mut(3).propose(Bytes::from_static(b"refused")),
        Err(Error::ProposalDropped(DropReason::NoLeader))
    );

    net.recover();
    net.tick_all(3 * ELECTION_TICK);
    net.stabilize();
    assert_eq!(
        outcomes(&net, 1),
        &[outcome(accepted.0, accepted.1, Outcome::Committed)],
        "only the accepted proposal settles"
    );
    for id in 2..=3 {
        assert!(outcomes(&net, id).is_empty(), "node {id}: nothing proposed");
    }
    for id in 1..=3 {
        assert!(
            !applied(&net, id).contains(&Bytes::from_static(b"refused")),
            "node {id}: a refused proposal is never applied"
        );
    }

    // A follower that knows no leader refuses too.
    let mut fresh = Network::new(3);
    assert_eq!(
        fresh.node_mut(2).propose(Bytes::from_static(b"refused")),
        Err(Error::ProposalDropped(DropReason::NoLeader))
    );
    fresh.stabilize();
    assert!(outcomes(&fresh, 2).is_empty());
}
