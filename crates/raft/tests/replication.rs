//! Log replication (§5.3), the commitment rule (§5.4.2, Figure 8), the
//! leader's repair of follower logs (Figure 7), fast backtracking of
//! rejected appends, and the leader's flow control.

#[path = "common/network.rs"]
mod network;

use bytes::Bytes;
use network::*;
use rudder_raft::tracker::ProgressState;
use rudder_raft::{Entry, HardState, Message, MessageType, StateRole};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn is_kind(m: &Message, kind: MessageType) -> bool {
    m.kind() == Some(kind)
}

/// Appends from `from` to `to` that carry entries, among those that crossed
/// the wire.
fn appends_with_entries(net: &Network, from: u64, to: u64) -> Vec<&Message> {
    net.sent_of(MessageType::MsgApp)
        .into_iter()
        .filter(|m| m.from == from && m.to == to && !m.entries.is_empty())
        .collect()
}

/// Heals every fault, lets the leader (node 1) retry for a few ticks, and
/// checks that all three nodes committed `index` and applied exactly `x`.
fn heal_and_expect_x_everywhere(net: &mut Network, index: u64) {
    net.recover();
    net.tick(1, 3);
    for id in 1..=3 {
        assert_eq!(
            net.committed(id),
            index,
            "node {id} commit index after healing"
        );
        assert_eq!(
            net.nodes[&id].applied,
            payloads(&[b"x"]),
            "node {id} applied x after healing"
        );
    }
}

/// Rejected appends `from` sent.
fn rejections_from(net: &Network, from: u64) -> usize {
    net.sent_of(MessageType::MsgAppResp)
        .iter()
        .filter(|m| m.from == from && m.reject)
        .count()
}

/// The test config's node with an explicit log (terms at indexes 1, 2, ...)
/// and hard state.
fn node_with(
    id: u64,
    voters: &[u64],
    terms: &[u64],
    hs: HardState,
) -> (rudder_raft::Config, rudder_raft::MemoryStorage) {
    let mut s = storage_with_log(voters, terms);
    s.set_hard_state(hs);
    (test_config(id), s)
}

/// Crashes and restarts `id` from what it persisted.
fn restart(net: &mut Network, id: u64) {
    let storage = net.node(id).storage().clone();
    let config = net.nodes[&id].config.clone();
    net.add(config, storage);
}

fn hs(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote: 0,
        commit,
    }
}

/// State machine safety (§5.4.3): no two nodes ever applied different
/// entries at the same index. Checked on what every node applied so far.
fn assert_state_machine_safety(net: &Network, when: &str) {
    let ids: Vec<u64> = net.nodes.keys().copied().collect();
    for &a in &ids {
        for &b in &ids {
            let (la, lb) = (&net.nodes[&a].applied_ids, &net.nodes[&b].applied_ids);
            let n = la.len().min(lb.len());
            assert_eq!(
                la[..n],
                lb[..n],
                "{when}: nodes {a} and {b} applied different entries at the same indexes"
            );
        }
    }
}

/// Log matching (§5.3): if two logs hold an entry with the same index and
/// term, the logs are identical in all entries up through that index.
fn assert_log_matching(net: &Network, when: &str) {
    let ids: Vec<u64> = net.nodes.keys().copied().collect();
    for &a in &ids {
        for &b in &ids {
            let (la, lb) = (net.log_ids(a), net.log_ids(b));
            for (i, ea) in la.iter().enumerate() {
                if lb.get(i) == Some(ea) {
                    assert_eq!(
                        la[..=i],
                        lb[..=i],
                        "{when}: logs of {a} and {b} share {ea:?} but differ before it"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// §5.3: replication and commitment with a majority
// ---------------------------------------------------------------------------

/// §5.3: the leader appends a command to its log, replicates it, and once it
/// is safely replicated every server applies it, in log order.
#[test]
fn every_node_applies_the_same_entries_when_all_are_up() {
    let mut net = Network::new(3);
    net.campaign(1);
    assert_eq!(
        net.state(1),
        StateRole::Leader,
        "node 1 must win with all votes"
    );
    for data in [&b"a"[..], b"b", b"c"] {
        net.propose(1, data).expect("leader accepts proposals");
    }
    // A burst: several proposals handled in one Ready.
    for data in [&b"d"[..], b"e"] {
        net.node_mut(1)
            .propose(Bytes::from_static(data))
            .expect("leader accepts proposals");
    }
    net.stabilize();
    let want = payloads(&[b"a", b"b", b"c", b"d", b"e"]);
    let last = net.last_index(1);
    assert_eq!(
        last, 6,
        "one empty entry of the leader's term plus five proposals"
    );
    for id in 1..=3 {
        assert_eq!(net.nodes[&id].applied, want, "node {id} applied payloads");
        assert_eq!(net.committed(id), last, "node {id} commit index");
        assert_eq!(
            net.nodes[&id].applied_ids, net.nodes[&1].applied_ids,
            "node {id} applied the same (index, term) sequence as the leader"
        );
        assert_eq!(
            net.log_ids(id),
            net.log_ids(1),
            "node {id} log equals the leader's"
        );
    }
}

/// §5.3: an entry is committed once the leader has replicated it on a
/// majority; one follower down does not stop the cluster.
#[test]
fn leader_commits_with_one_follower_down() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(3);
    let before = net.committed(1);
    net.propose(1, b"x").unwrap();
    assert_eq!(
        net.committed(1),
        before + 1,
        "leader + node 2 are a majority"
    );
    assert_eq!(net.committed(2), before + 1, "node 2 learns the commit");
    assert_eq!(net.nodes[&1].applied, payloads(&[b"x"]), "leader applied x");
    assert_eq!(net.nodes[&2].applied, payloads(&[b"x"]), "node 2 applied x");
    assert!(
        net.nodes[&3].applied.is_empty(),
        "isolated node 3 applied nothing"
    );
    assert_eq!(net.last_index(3), before, "isolated node 3 got no entry");
}

/// §5.3 ("once the entry has been safely replicated" on a majority) with
/// the Ready contract: a copy counts only once it is durable. A follower's
/// acknowledgement comes in `persisted_messages`, never in `messages`; the
/// leader's own copy counts only after its Ready is persisted and advanced,
/// so one follower's acknowledgement before that is not yet a majority.
#[test]
fn the_leaders_own_copy_counts_only_once_persisted() {
    let mut net = Network::new(3);
    net.campaign(1);
    let before = net.committed(1);
    net.node_mut(1).propose(Bytes::from_static(b"x")).unwrap();
    let rd = net.node_mut(1).ready();
    assert_eq!(rd.entries.len(), 1, "the leader's Ready asks to persist x");
    assert!(rd.committed_entries.is_empty(), "nothing new committed yet");
    let (to_2, rest): (Vec<Message>, Vec<Message>) =
        rd.messages.iter().cloned().partition(|m| m.to == 2);
    assert!(
        to_2.len() == 1 && is_kind(&to_2[0], MessageType::MsgApp),
        "one append to node 2 goes out with the Ready: {to_2:?}"
    );

    // Node 2 appends x; its acknowledgement may leave only once persisted.
    for m in to_2 {
        net.node_mut(2).step(m).unwrap();
    }
    let rd2 = net.node_mut(2).ready();
    assert!(
        !rd2.messages
            .iter()
            .any(|m| is_kind(m, MessageType::MsgAppResp)),
        "a follower's acknowledgement is not among the messages sent before persisting"
    );
    let acks: Vec<Message> = rd2
        .persisted_messages
        .iter()
        .filter(|m| is_kind(m, MessageType::MsgAppResp) && !m.reject)
        .cloned()
        .collect();
    assert_eq!(acks.len(), 1, "node 2 acknowledges x after persisting it");
    assert_eq!(acks[0].index, before + 1, "acknowledging x's index");
    assert!(
        rd2.committed_entries.is_empty(),
        "node 2 has nothing new to apply"
    );
    net.node_mut(2).storage_mut().append(&rd2.entries).unwrap();
    if let Some(hs) = rd2.hard_state {
        net.node_mut(2).storage_mut().set_hard_state(hs);
    }
    net.node_mut(2).advance(rd2);

    // The acknowledgement reaches the leader before its own write is done.
    net.node_mut(1).step(acks[0].clone()).unwrap();
    assert_eq!(
        net.committed(1),
        before,
        "node 2's copy alone is no majority while the leader's copy is not durable"
    );
    net.node_mut(1).storage_mut().append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        net.node_mut(1).storage_mut().set_hard_state(hs);
    }
    net.node_mut(1).advance(rd);
    assert_eq!(
        net.committed(1),
        before + 1,
        "leader's durable copy + node 2's: committed"
    );

    net.queue.extend(rest);
    net.stabilize();
    net.assert_applied(1..=3, &[b"x"], "x, everywhere");
}

/// §5.3 with §5.4: an acknowledgement vouches for entries the follower
/// holds durably. Follower 2 steps leader 1's append of x (term 1) and
/// queues its acknowledgement; before it writes anything, leader 3 of term
/// 2 overwrites x. The term-1 acknowledgement of x must never leave: x was
/// never written, and old leader 1 would count it toward committing x.
/// (Found by the simulator: a paused follower resumed with both appends
/// waiting.)
#[test]
fn an_acknowledgement_queued_before_a_term_change_is_not_sent() {
    let mut net = Network::new(5);
    net.campaign(1);
    let base = net.last_index(1);
    net.node_mut(1).propose(Bytes::from_static(b"x")).unwrap();
    let append_x = net
        .take_queue()
        .into_iter()
        .find(|m| m.to == 2 && is_kind(m, MessageType::MsgApp) && !m.entries.is_empty())
        .expect("1 sends x to 2");
    // 3 wins term 2 with 4 and 5; its append to 2 is held back.
    net.isolate(1);
    net.isolate(2);
    net.campaign(3);
    assert_eq!((net.state(3), net.term(3)), (StateRole::Leader, 2));
    let append_term_2 = appends_with_entries(&net, 3, 2)
        .first()
        .map(|m| (*m).clone())
        .expect("3 sent its first entry toward 2");
    assert_eq!(
        append_term_2.entries[0].index,
        base + 1,
        "where x stands on 2"
    );

    net.node_mut(2).step(append_x).unwrap();
    net.node_mut(2).step(append_term_2).unwrap();
    let rd = net.node_mut(2).ready();
    let acks: Vec<(u64, u64)> = rd
        .messages
        .iter()
        .chain(&rd.persisted_messages)
        .filter(|m| is_kind(m, MessageType::MsgAppResp) && !m.reject)
        .map(|m| (m.term, m.index))
        .collect();
    assert!(
        !acks.contains(&(1, base + 1)),
        "x (term 1) was overwritten before it was written, yet acknowledged: {acks:?}"
    );
    assert!(
        acks.contains(&(2, base + 1)),
        "the term-2 entry is acknowledged: {acks:?}"
    );
    assert_eq!(
        rd.entries.iter().map(|e| e.term).collect::<Vec<_>>(),
        [2],
        "only 3's entry is written"
    );
}

/// §5.3: "If followers crash or run slowly, or if network packets are lost,
/// the leader retries AppendEntries RPCs indefinitely ... until all
/// followers eventually store all log entries." The appends to the downed
/// follower were lost; after it comes back, the leader's heartbeats (no new
/// proposal) must be enough to bring it up to date.
#[test]
fn leader_retries_until_a_lagging_follower_stores_every_entry() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"x").unwrap();
    net.propose(1, b"y").unwrap();
    net.recover();
    // Well within an election timeout: only heartbeats, no new entries.
    net.tick(1, 3);
    assert_eq!(net.log_ids(3), net.log_ids(1), "node 3's log after healing");
    assert_eq!(net.committed(3), net.committed(1), "node 3's commit index");
    net.assert_applied([3], &[b"x", b"y"], "node 3 applied what it missed");
}

/// §5.3: the leader retries "until all followers eventually store all log
/// entries", and an entry is committed once the leader knows a majority
/// stores it. Here the followers stored the entry but every
/// acknowledgement was lost: once the links heal, the leader's heartbeats
/// (no new proposal) must be enough to learn it and commit.
#[test]
fn leader_commits_after_lost_acknowledgements_once_healed() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.cut_one_way(2, 1);
    net.cut_one_way(3, 1);
    let before = net.committed(1);
    net.propose(1, b"x").unwrap();
    for id in [2, 3] {
        assert_eq!(net.last_index(id), before + 1, "node {id} stored x");
    }
    assert_eq!(
        net.committed(1),
        before,
        "the leader heard no acknowledgement"
    );
    heal_and_expect_x_everywhere(&mut net, before + 1);
}

/// §5.3: without a majority nothing is committed (and so nothing applied);
/// once the majority is back within the election timeout, the leader's
/// retries commit the entry.
#[test]
fn no_commit_without_a_majority_and_commit_once_healed() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.isolate(2);
    net.isolate(3);
    let before = net.committed(1);
    net.propose(1, b"x")
        .expect("the leader still accepts the proposal");
    assert_eq!(net.last_index(1), before + 1, "the leader appended x");
    for id in 1..=3 {
        assert_eq!(
            net.committed(id),
            before,
            "node {id}: no majority, no commit"
        );
        assert!(
            net.nodes[&id].applied.is_empty(),
            "node {id} applied nothing"
        );
    }
    // More ticks of the leader while partitioned change nothing.
    net.tick(1, 3);
    assert_eq!(
        net.committed(1),
        before,
        "heartbeats alone cannot commit without a majority"
    );

    heal_and_expect_x_everywhere(&mut net, before + 1);
}

/// §5.3 (Log Matching) and §5.4.3 (State Machine Safety): a leader's
/// uncommitted entries that never reached a majority are overwritten by the
/// next leader; afterwards every follower's log equals the leader's, and no
/// node ever applied a different entry at the same index.
#[test]
fn followers_logs_equal_the_leaders_after_a_leader_change() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    // Node 1 appends two entries nobody else sees.
    net.isolate(2);
    net.isolate(3);
    net.propose(1, b"lost-1").unwrap();
    net.propose(1, b"lost-2").unwrap();
    // Node 1 is cut off; 2 and 3 elect 2, which commits its own entries.
    net.recover();
    net.isolate(1);
    net.campaign(2);
    assert_eq!(net.state(2), StateRole::Leader, "2 wins with 3's vote");
    net.propose(2, b"b").unwrap();
    net.propose(2, b"c").unwrap();
    assert_ne!(
        net.log_ids(1),
        net.log_ids(2),
        "logs differ while 1 is cut off"
    );
    assert_log_matching(&net, "while partitioned");
    assert_state_machine_safety(&net, "while partitioned");

    net.recover();
    net.tick(2, 2);
    assert_eq!(
        net.state(1),
        StateRole::Follower,
        "the old leader steps down"
    );
    for id in 1..=3 {
        assert_eq!(
            net.log_ids(id),
            net.log_ids(2),
            "node {id}'s log equals the leader's"
        );
        assert_eq!(
            net.committed(id),
            net.last_index(2),
            "node {id} committed everything"
        );
        assert_eq!(
            net.nodes[&id].applied,
            payloads(&[b"a", b"b", b"c"]),
            "node {id} applied"
        );
    }
    assert!(
        !net.log_ids(1).contains(&(3, 1)) && !net.log_ids(1).contains(&(4, 1)),
        "node 1's uncommitted term-1 entries were overwritten"
    );
    assert_state_machine_safety(&net, "after healing");
}

/// §5.4.3 (State Machine Safety), under a scripted series of partitions
/// and leader changes: at every step, for every index, all nodes that
/// applied an entry there applied the same one; at the end all logs match.
#[test]
fn applied_entries_are_identical_on_all_nodes_across_leader_changes() {
    let mut net = Network::new(5);
    let payloads: [&'static [u8]; 6] = [b"p0", b"p1", b"p2", b"p3", b"p4", b"p5"];
    for (round, &data) in payloads.iter().enumerate() {
        let round = round as u64;
        // Cut off two nodes, rotating; campaign one of the rest.
        let down = [round % 5 + 1, (round + 2) % 5 + 1];
        net.recover();
        for id in down {
            net.isolate(id);
        }
        let candidate = (round + 1) % 5 + 1;
        if !down.contains(&candidate) {
            net.campaign(candidate);
        }
        if let Some(lead) = net.leader() {
            // The proposal may be dropped or stay uncommitted; both are fine.
            let _ = net.propose(lead, data);
            let _ = net.propose(lead, data);
        }
        assert_state_machine_safety(&net, &format!("round {round}"));
        assert_log_matching(&net, &format!("round {round}"));
    }
    net.recover();
    // Let the cluster settle on one leader, then commit an entry of its term.
    net.tick_all(40);
    let lead = net.leader().expect("a leader once healed");
    net.propose(lead, b"final").unwrap();
    net.tick_all(3);
    let lead = net.leader().expect("a leader once healed");
    for id in 1..=5 {
        assert_eq!(
            net.log_ids(id),
            net.log_ids(lead),
            "node {id}'s log equals the leader's"
        );
        assert_eq!(
            net.nodes[&id].applied_ids, net.nodes[&lead].applied_ids,
            "node {id} applied exactly what the leader applied"
        );
    }
    assert!(
        net.nodes[&lead]
            .applied
            .contains(&Bytes::from_static(b"final")),
        "the final proposal was applied"
    );
    assert_state_machine_safety(&net, "at the end");
}

// ---------------------------------------------------------------------------
// Figure 7: the leader brings every follower's log into line with its own
// ---------------------------------------------------------------------------

/// Figure 7 / §5.3: "the leader handles inconsistencies by forcing the
/// followers' logs to duplicate its own". The leader that comes to power in
/// term 8 holds `[1,1,1,4,4,5,5,6,6,6]`; each of the follower logs (a)-(f)
/// of the figure ends up equal to the leader's. Followers whose log is more
/// up to date than the leader's ((c), (d)) refuse their vote, so a third,
/// empty node gives it.
#[test]
fn figure_7_leader_repairs_each_follower_log() {
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let cases: [(&str, &[u64]); 6] = [
        ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b", &[1, 1, 1, 4]),
        ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e", &[1, 1, 1, 4, 4, 4, 4]),
        ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    for (name, follower_log) in cases {
        // The follower votes for the leader iff the leader's log is at least
        // as up to date (§5.4.1); otherwise a third node is needed.
        let follower_votes = {
            let (lt, ft) = (*leader_log.last().unwrap(), *follower_log.last().unwrap());
            lt > ft || (lt == ft && leader_log.len() >= follower_log.len())
        };
        let voters: Vec<u64> = if follower_votes {
            vec![1, 2]
        } else {
            vec![1, 2, 3]
        };
        let follower_term = *follower_log.last().unwrap();
        let mut nodes = vec![
            // Term 7 so that its campaign is for term 8, as in the figure.
            node_with(1, &voters, &leader_log, hs(7, 0)),
            node_with(2, &voters, follower_log, hs(follower_term, 0)),
        ];
        if !follower_votes {
            nodes.push(node_with(3, &voters, &[], hs(0, 0)));
        }
        let mut net = Network::with_storages(nodes);
        net.campaign(1);
        assert_eq!(net.state(1), StateRole::Leader, "({name}) the leader wins");
        assert_eq!(net.term(1), 8, "({name}) the leader leads term 8");
        let votes_from_2: Vec<bool> = net
            .sent_of(MessageType::MsgVoteResp)
            .iter()
            .filter(|m| m.from == 2)
            .map(|m| !m.reject)
            .collect();
        assert_eq!(
            votes_from_2,
            vec![follower_votes],
            "({name}) follower's vote"
        );

        let mut want: Vec<(u64, u64)> = leader_log
            .iter()
            .enumerate()
            .map(|(i, &t)| (i as u64 + 1, t))
            .collect();
        want.push((11, 8));
        assert_eq!(
            net.log_ids(1),
            want,
            "({name}) the leader's own log is untouched"
        );
        assert_eq!(
            net.log_ids(2),
            want,
            "({name}) follower log equals the leader's"
        );
        assert_eq!(
            net.committed(2),
            11,
            "({name}) follower committed the leader's log"
        );
        assert_eq!(net.committed(1), 11, "({name}) leader committed its log");
    }
}

// ---------------------------------------------------------------------------
// Fast backtracking of rejected appends (§5.3, "the protocol can be
// optimized to reduce the number of rejected AppendEntries RPCs")
// ---------------------------------------------------------------------------

/// §5.3 optimization: on a rejection the follower reports the term of the
/// conflicting entry and the first index it stores for that term (here: the
/// last index at or below the probe with a term not above the probe's), and
/// the leader skips a whole term per round trip. A divergence of 50 entries
/// of one term must cost at most two rejections, not fifty.
#[test]
fn a_diverging_follower_is_repaired_in_few_round_trips() {
    /// A log given as runs of (count, term), from index 1.
    fn runs(spec: &[(usize, u64)]) -> Vec<u64> {
        spec.iter()
            .flat_map(|&(count, term)| std::iter::repeat_n(term, count))
            .collect()
    }
    let cases: Vec<(&str, Vec<u64>, Vec<u64>)> = vec![
        (
            "follower holds 50 extra entries of a stale term",
            runs(&[(2, 1), (3, 3)]),
            runs(&[(2, 1), (50, 2)]),
        ),
        (
            "follower lags 50 entries behind",
            runs(&[(2, 1), (50, 3)]),
            runs(&[(2, 1)]),
        ),
        (
            "50 entries of one term on each side, different terms",
            runs(&[(1, 1), (10, 2), (50, 4)]),
            runs(&[(1, 1), (10, 2), (50, 3)]),
        ),
        (
            // The follower's run has a higher term than the leader's entries
            // at the same indexes: only the follower can skip it.
            "follower's 50 entries of a term above the leader's at the same indexes",
            runs(&[(1, 1), (55, 4), (1, 6)]),
            runs(&[(1, 1), (5, 4), (50, 5)]),
        ),
    ];
    for (name, leader_log, follower_log) in cases {
        let leader_term = *leader_log.last().unwrap();
        let follower_term = *follower_log.last().unwrap();
        assert!(
            leader_term > follower_term,
            "({name}) setup: the follower must vote for the leader"
        );
        let mut net = Network::with_storages(vec![
            node_with(1, &[1, 2], &leader_log, hs(leader_term, 0)),
            node_with(2, &[1, 2], &follower_log, hs(follower_term, 0)),
        ]);
        net.campaign(1);
        assert_eq!(net.state(1), StateRole::Leader, "({name}) leader elected");
        let rejections = rejections_from(&net, 2);
        assert!(
            (1..=2).contains(&rejections),
            "({name}) a divergence of ~50 entries of one term took {rejections} rejections"
        );
        assert_eq!(net.log_ids(2), net.log_ids(1), "({name}) follower repaired");
        assert_eq!(
            net.committed(2),
            net.last_index(1),
            "({name}) follower committed"
        );
    }
}

// ---------------------------------------------------------------------------
// §5.4.2 / Figure 8: committing entries from previous terms
// ---------------------------------------------------------------------------

/// §5.4.2: "Raft never commits log entries from previous terms by counting
/// replicas. Only log entries from the leader's current term are committed
/// by counting replicas; once an entry from the current term has been
/// committed in this way, all prior entries are committed indirectly."
/// The leader of term 3 gets its term-2 entry onto all three nodes (and
/// knows it), yet commits nothing until its term-3 entry is replicated.
#[test]
fn a_leader_commits_an_old_term_entry_only_with_one_of_its_own() {
    let voters = [1, 2, 3];
    let mut nodes = vec![
        node_with(1, &voters, &[1, 2], hs(2, 1)),
        node_with(2, &voters, &[1], hs(1, 1)),
        node_with(3, &voters, &[1], hs(1, 1)),
    ];
    // One entry per append, so the old-term entry travels alone.
    for (c, _) in nodes.iter_mut() {
        c.max_size_per_msg = 0;
    }
    let mut net = Network::with_storages(nodes);
    net.node_mut(1).campaign();
    // Hold the leader's own-term entry once the follower holds index 2.
    let held = net.deliver_holding(|net, m| {
        is_kind(m, MessageType::MsgApp)
            && m.entries.iter().any(|e| e.term == 3)
            && net.last_index(m.to) >= 2
    });
    assert_eq!(net.state(1), StateRole::Leader, "node 1 leads");
    assert_eq!(net.term(1), 3, "in term 3");
    assert!(!held.is_empty(), "the term-3 entry was held back");
    for id in 1..=3 {
        assert!(
            net.log_ids(id).contains(&(2, 2)),
            "node {id} stores the term-2 entry"
        );
    }
    for peer in [2, 3] {
        assert_eq!(
            net.progress(1, peer).matched,
            2,
            "the leader knows {peer} stores index 2"
        );
    }
    for id in 1..=3 {
        assert_eq!(
            net.committed(id),
            1,
            "node {id}: the term-2 entry is not committed by counting replicas"
        );
        assert!(
            !net.nodes[&id].applied_ids.contains(&(2, 2)),
            "node {id} must not apply the uncommitted term-2 entry"
        );
    }

    for m in held {
        net.deliver(m);
    }
    net.stabilize();
    for id in 1..=3 {
        assert_eq!(
            net.committed(id),
            3,
            "node {id}: the term-3 entry commits index 2 with it"
        );
        let after_restart: Vec<(u64, u64)> = net.nodes[&id]
            .applied_ids
            .iter()
            .copied()
            .filter(|&(i, _)| i >= 2)
            .collect();
        assert_eq!(
            after_restart,
            vec![(2, 2), (3, 3)],
            "node {id} applied the old-term entry, then the new one"
        );
    }
}

/// Figure 8 steps (a)-(c), with terms one lower than in the paper (the
/// first election is term 1): S1 leads term 1 and replicates index 2 to S2
/// only; S5 wins term 2 (votes of S3, S4) and appends a different index 2;
/// S1 wins term 3 and copies its index 2 onto S3 and S4 but not its term-3
/// entry. Returns the network and S1's held term-3 appends.
fn figure_8_up_to_c() -> (Network, Vec<Message>) {
    let mut net = Network::with_config(5, |c| c.max_size_per_msg = 0);
    net.campaign(1);
    // (a) S1 replicates index 2 to S2 only.
    for id in [3, 4, 5] {
        net.cut(1, id);
    }
    net.propose(1, b"s1-term1").unwrap();
    assert_eq!(net.log_ids(2), vec![(1, 1), (2, 1)], "(a) S2 holds index 2");
    assert_eq!(net.committed(1), 1, "(a) two of five is no majority");
    // (b) S1 crashes; S5 is elected with S3's and S4's votes and appends a
    // different entry at index 2 that nobody else receives.
    net.recover();
    net.isolate(1);
    restart(&mut net, 1);
    net.node_mut(5).campaign();
    let _lost = net.deliver_holding(|_, m| m.from == 5 && is_kind(m, MessageType::MsgApp));
    assert_eq!(net.state(5), StateRole::Leader, "(b) S5 leads");
    assert_eq!(net.term(5), 2, "(b) in term 2");
    assert_eq!(net.log_ids(5), vec![(1, 1), (2, 2)], "(b) S5's own index 2");
    // (c) S5 crashes; S1 restarts and is elected (S3 and S4 voted for S5 in
    // term 2, so it takes until term 3), and copies index 2 to S3 and S4,
    // holding back its term-3 entry from anyone that stores index 2.
    net.recover();
    net.isolate(5);
    restart(&mut net, 5);
    let hold_own_term = |net: &Network, m: &Message| {
        is_kind(m, MessageType::MsgApp)
            && m.entries.iter().any(|e| e.term >= 3)
            && net.last_index(m.to) >= 2
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        net.node_mut(1).campaign();
        held.extend(net.deliver_holding(hold_own_term));
        if net.state(1) == StateRole::Leader {
            break;
        }
    }
    assert_eq!(net.state(1), StateRole::Leader, "(c) S1 leads again");
    assert_eq!(net.term(1), 3, "(c) in term 3");
    let holders: Vec<u64> = (1..=5)
        .filter(|&id| net.log_ids(id).contains(&(2, 1)))
        .collect();
    assert!(
        holders.len() >= 3,
        "(c) index 2 of term 1 is on a majority: {holders:?}"
    );
    let known: Vec<u64> = [2, 3, 4, 5]
        .into_iter()
        .filter(|&p| net.progress(1, p).matched >= 2)
        .collect();
    assert!(
        known.len() >= 2,
        "(c) S1 knows a majority (itself and {known:?}) stores index 2"
    );
    (net, held)
}

/// Figure 8 (c)-(d): although S1's term-1 entry at index 2 sits on a
/// majority, it must not be committed, because S5 can still be elected
/// and overwrite it, which it then does.
#[test]
fn figure_8_an_old_term_entry_on_a_majority_is_not_committed_and_can_be_overwritten() {
    let (mut net, _held) = figure_8_up_to_c();
    for id in 1..=5 {
        assert_eq!(
            net.committed(id),
            1,
            "(c) node {id} must not commit index 2 of term 1"
        );
        assert!(
            !net.nodes[&id].applied_ids.contains(&(2, 1)),
            "(c) node {id} applied index 2"
        );
    }
    // (d) S1 crashes; S5 is elected with the votes of S2, S3 and S4 (its
    // last term, 2, beats their 1) and overwrites index 2 everywhere.
    net.recover();
    net.isolate(1);
    restart(&mut net, 1);
    net.campaign(5);
    if net.state(5) != StateRole::Leader {
        // Its first try is in term 3, in which everybody voted for S1.
        net.campaign(5);
    }
    assert_eq!(net.state(5), StateRole::Leader, "(d) S5 is elected");
    for id in 2..=5 {
        assert_eq!(
            net.log_ids(id),
            net.log_ids(5),
            "(d) S{id} follows S5's log"
        );
        assert!(
            net.log_ids(id).contains(&(2, 2)),
            "(d) S{id} holds S5's index 2"
        );
    }
    assert_state_machine_safety(&net, "(d)");
}

/// Figure 8 (e): if S1 replicates an entry of its current term on a
/// majority before crashing, that entry and index 2 before it are
/// committed, and S5 can no longer win an election.
#[test]
fn figure_8_an_entry_of_the_current_term_commits_the_old_one_for_good() {
    let (mut net, held) = figure_8_up_to_c();
    for m in held {
        net.deliver(m);
    }
    net.stabilize();
    assert!(
        net.committed(1) >= 3,
        "(e) S1 commits its term-3 entry and index 2 with it"
    );
    assert!(
        net.nodes[&1].applied_ids.contains(&(2, 1)),
        "(e) S1 applied index 2 of term 1"
    );
    net.recover();
    net.isolate(1);
    restart(&mut net, 1);
    for _ in 0..3 {
        net.campaign(5);
    }
    assert_ne!(
        net.state(5),
        StateRole::Leader,
        "(e) S5 cannot be elected any more"
    );
    for id in 2..=4 {
        assert!(
            net.log_ids(id).contains(&(2, 1)),
            "(e) S{id} keeps the committed index 2"
        );
    }
    assert_state_machine_safety(&net, "(e)");
}

// ---------------------------------------------------------------------------
// Flow control
// ---------------------------------------------------------------------------

/// Flow control by bytes: with `max_inflight_bytes` holding two
/// one-entry appends, a follower that never answers gets exactly two, while
/// the other follower keeps the cluster committing.
#[test]
fn inflight_bytes_limit_appends_to_a_silent_follower() {
    // Each proposal of 10 bytes accounts for 26; one entry per message.
    let per_entry = 10 + rudder_raft::proto::ENTRY_OVERHEAD;
    let mut net = Network::with_config(3, |c| {
        c.max_size_per_msg = per_entry;
        c.max_inflight_bytes = 2 * per_entry;
    });
    net.campaign(1);
    let before = appends_with_entries(&net, 1, 2).len();
    net.cut_one_way(2, 1);
    let items: [&'static [u8]; 5] = [
        b"aaaaaaaaa0",
        b"aaaaaaaaa1",
        b"aaaaaaaaa2",
        b"aaaaaaaaa3",
        b"aaaaaaaaa4",
    ];
    for data in items {
        net.propose(1, data).unwrap();
    }
    assert_eq!(
        appends_with_entries(&net, 1, 2).len() - before,
        2,
        "a byte window of two entries lets two appends through"
    );
    assert!(
        net.progress(1, 2).is_paused(),
        "the leader waits for node 2"
    );
    assert_eq!(
        net.committed(1),
        net.last_index(1),
        "node 3 keeps the cluster committing"
    );
    net.recover();
    net.tick(1, 3);
    assert_eq!(
        net.log_ids(2),
        net.log_ids(1),
        "node 2 catches up once it answers"
    );
}

/// Flow control (etcd's MaxInflightMsgs): in replicate state the leader
/// keeps at most `max_inflight_msgs` appends unacknowledged per follower.
/// A follower that never answers gets no more than that; once it answers
/// again it catches up.
#[test]
fn inflight_window_limits_appends_to_a_silent_follower() {
    let mut net = Network::with_config(3, |c| c.max_inflight_msgs = 2);
    net.campaign(1);
    assert_eq!(
        net.progress(1, 2).state,
        ProgressState::Replicate,
        "node 2 replicating"
    );
    let before = appends_with_entries(&net, 1, 2).len();
    let before_3 = appends_with_entries(&net, 1, 3).len();
    net.cut_one_way(2, 1); // node 2's answers are lost
    let items: [&'static [u8]; 10] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
    for data in items {
        net.propose(1, data).unwrap();
    }
    let sent = appends_with_entries(&net, 1, 2).len() - before;
    assert_eq!(
        sent, 2,
        "appends with entries to the silent follower, window of 2"
    );
    let pr = net.progress(1, 2);
    assert_eq!(pr.inflights.count(), 2, "two appends in flight");
    assert!(pr.is_paused(), "the leader is paused towards node 2");
    assert_eq!(
        net.committed(1),
        net.last_index(1),
        "node 3 keeps the cluster committing"
    );
    assert_eq!(
        appends_with_entries(&net, 1, 3).len() - before_3,
        10,
        "node 3 got one append per proposal"
    );

    net.recover();
    net.tick(1, 2);
    assert_eq!(
        net.log_ids(2),
        net.log_ids(1),
        "node 2 catches up once it answers again"
    );
    assert_eq!(net.committed(2), net.committed(1), "node 2 commit index");
}

/// Flow control (etcd's MaxSizePerMsg): every append carries at most
/// `max_size_per_msg` bytes of entries, or a single entry if that one is
/// larger; the follower still receives every entry.
#[test]
fn max_size_per_msg_bounds_the_entries_of_each_append() {
    const ENTRY_SIZE: u64 = 10 + rudder_raft::proto::ENTRY_OVERHEAD;
    let max = 3 * ENTRY_SIZE;
    let mut net = Network::with_config(3, |c| c.max_size_per_msg = max);
    net.campaign(1);
    let small: [&'static [u8]; 10] = [
        b"payload-00",
        b"payload-01",
        b"payload-02",
        b"payload-03",
        b"payload-04",
        b"payload-05",
        b"payload-06",
        b"payload-07",
        b"payload-08",
        b"payload-09",
    ];
    // Two bursts; the second is sent while the first is stable on the
    // leader and the second is not, so appends span both parts of its log.
    for data in &small[..5] {
        net.node_mut(1).propose(Bytes::from_static(data)).unwrap();
    }
    net.process(1);
    for data in &small[5..] {
        net.node_mut(1).propose(Bytes::from_static(data)).unwrap();
    }
    let big = Bytes::from(vec![7u8; 4 * max as usize]);
    net.node_mut(1).propose(big.clone()).unwrap();
    net.stabilize();

    let mut most = 0;
    for m in net.sent_of(MessageType::MsgApp) {
        if m.from != 1 || m.entries.is_empty() {
            continue;
        }
        let size: u64 = m.entries.iter().map(Entry::accounted_size).sum();
        assert!(
            size <= max || m.entries.len() == 1,
            "append to {} with {} entries of {size} bytes exceeds {max}",
            m.to,
            m.entries.len()
        );
        most = most.max(m.entries.len());
    }
    assert_eq!(most, 3, "appends are filled up to the limit");
    let mut want: Vec<Bytes> = small.iter().map(|b| Bytes::from_static(b)).collect();
    want.push(big);
    for id in 1..=3 {
        assert_eq!(
            net.nodes[&id].applied, want,
            "node {id} applied every entry"
        );
    }
}

/// Flow control: with `max_size_per_msg = 0` every append carries exactly
/// one entry (progress is always possible).
#[test]
fn max_size_per_msg_zero_sends_one_entry_per_append() {
    let mut net = Network::with_config(3, |c| c.max_size_per_msg = 0);
    net.campaign(1);
    for data in [&b"a"[..], b"b", b"c", b"d"] {
        net.node_mut(1).propose(Bytes::from_static(data)).unwrap();
    }
    net.stabilize();
    let apps: Vec<&Message> = net
        .sent_of(MessageType::MsgApp)
        .into_iter()
        .filter(|m| !m.entries.is_empty())
        .collect();
    assert!(
        apps.iter().all(|m| m.entries.len() == 1),
        "one entry per append"
    );
    net.assert_applied(1..=3, &[b"a", b"b", b"c", b"d"], "every proposal, in order");
}

/// Flow control must not stall commitment (§5.3: followers learn the
/// commit index from the leader's messages): a follower whose window is
/// full still has its commit index advanced up to what it is known to
/// hold, by an empty append at its match index or a heartbeat, and never
/// past it.
#[test]
fn a_throttled_follower_still_learns_the_commit_index() {
    let mut net = Network::with_config(5, |c| c.max_inflight_msgs = 1);
    net.campaign(1);
    let carries_entries = |m: &Message| is_kind(m, MessageType::MsgApp) && !m.entries.is_empty();
    // "a" (index 2) reaches node 2 only.
    net.node_mut(1).propose(Bytes::from_static(b"a")).unwrap();
    let held_a = net.deliver_holding(|_, m| carries_entries(m) && m.to != 2);
    assert_eq!(net.progress(1, 2).matched, 2, "node 2 acknowledged a");
    assert_eq!(net.committed(1), 1, "two of five hold a: not committed");
    // "b" (index 3) goes to node 2 and is lost: its window is full.
    net.node_mut(1).propose(Bytes::from_static(b"b")).unwrap();
    let lost_b = net.deliver_holding(|_, m| carries_entries(m) && m.to == 2);
    assert_eq!(lost_b.len(), 1, "one append carrying b to node 2");
    assert!(net.progress(1, 2).is_paused(), "node 2's window is full");
    // The others get a (and then b): a and b commit.
    for m in held_a {
        net.deliver(m);
    }
    let more = net.deliver_holding(|_, m| carries_entries(m) && m.to == 2);
    assert!(
        more.is_empty(),
        "nothing new with entries to the paused node 2"
    );
    assert_eq!(net.committed(1), 3, "a and b committed by nodes 1, 3, 4, 5");
    assert_eq!(net.last_index(2), 2, "node 2 never got b");
    assert_eq!(
        net.committed(2),
        2,
        "node 2 learned the commit index up to its match"
    );
    let commit_msgs: Vec<&Message> = net
        .sent_of(MessageType::MsgApp)
        .into_iter()
        .filter(|m| m.to == 2 && m.entries.is_empty() && m.index == 2)
        .collect();
    assert!(
        !commit_msgs.is_empty(),
        "an empty append at node 2's match carried the commit"
    );

    // A heartbeat to the throttled follower carries a commit within its match.
    net.node_mut(1).tick();
    let heartbeats = net.deliver_holding(|_, m| is_kind(m, MessageType::MsgHeartbeat) && m.to == 2);
    assert_eq!(heartbeats.len(), 1, "one heartbeat to node 2");
    assert_eq!(
        heartbeats[0].commit, 2,
        "the heartbeat's commit is bounded by node 2's match"
    );
    // Delivered, the heartbeat's answer lets the leader find out b was lost.
    for m in heartbeats {
        net.deliver(m);
    }
    net.stabilize();
    assert_eq!(net.log_ids(2), net.log_ids(1), "node 2 gets b after all");
    assert_eq!(net.committed(2), 3, "and commits it");
}

/// Flow control: a follower reported unreachable falls back from
/// replicate to probe state (one append at a time until it answers), and
/// returns to replicate once it answers.
#[test]
fn report_unreachable_moves_a_follower_to_probe() {
    let mut net = Network::new(3);
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    assert_eq!(
        net.progress(1, 2).state,
        ProgressState::Replicate,
        "replicating to 2"
    );
    net.node_mut(1).report_unreachable(2);
    let pr = net.progress(1, 2);
    assert_eq!(
        pr.state,
        ProgressState::Probe,
        "probe after report_unreachable"
    );
    assert_eq!(pr.next_idx, pr.matched + 1, "probing right after the match");
    assert_eq!(
        net.progress(1, 3).state,
        ProgressState::Replicate,
        "node 3 unaffected"
    );

    // In probe state one append at a time: node 2's answers are lost.
    let before = appends_with_entries(&net, 1, 2).len();
    net.cut_one_way(2, 1);
    net.propose(1, b"b").unwrap();
    net.propose(1, b"c").unwrap();
    assert_eq!(
        appends_with_entries(&net, 1, 2).len() - before,
        1,
        "a single probe in flight"
    );

    net.recover();
    net.tick(1, 2);
    assert_eq!(
        net.progress(1, 2).state,
        ProgressState::Replicate,
        "back to replicate"
    );
    assert_eq!(net.log_ids(2), net.log_ids(1), "node 2 caught up");
}
