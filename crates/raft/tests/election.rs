//! Elections (§5.2, §5.4.1; thesis §9.6 for pre-vote).

#[path = "common/network.rs"]
mod network;

use network::*;
use rudder_raft::StateRole;

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
