//! What a member whose data directory is empty asks the cluster before it
//! starts.
//!
//! An empty directory is a first start, or lost data. A member that lost
//! its data must not start afresh under its old ID. It has forgotten what
//! it acknowledged and whom it voted for, so a committed write may now
//! rest on too few members to survive an election. It would not catch up
//! either: the leader remembers how far the member's log reached and
//! ignores its refusals of appends below that.
//!
//! The cluster remembers which members held the log: a leader marks each
//! member its log reached in the replicated address book
//! ([`PeerInfo::replicated`]), once. So before a member on empty storage
//! starts, [`check`] asks the peers it was given for their view of the
//! cluster (`GET /v1/cluster`), and refuses to start:
//!
//! - when the freshest view (the leader's, when one answers) knows this ID
//!   as holding the log, or the leader has replicated to it (before the
//!   mark is in): the data was lost, or another process runs under this
//!   ID;
//! - when a founding member is not in the leader's configuration: it was
//!   removed, or the cluster was founded without it.
//!
//! The way back is to restore the directory, or to remove the member and
//! add it again (which clears the mark), then start it with `--join`. A
//! joining member also learns every member's addresses from the leader's
//! view, so it can answer a leader it was not told of.
//!
//! When nobody answers, as at a new cluster's first start, the member
//! starts. What this cannot see: a member wiped before its mark was
//! committed (within a few ticks of first holding the log) when the
//! leader has changed since; or a cluster none of whose peers answer.

use crate::client::{self, ClusterView};
use anyhow::{anyhow, bail};
use rudder_node::runtime::{Members, PeerInfo};
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::info;

/// How long one peer may take to answer (a peer that is down refuses at
/// once; one that is cut off costs this much of the start).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks that member `id` of cluster `cluster_id`, whose storage is
/// empty, may start with `peers` (founding the cluster, or with `join`
/// joining it); returns the peers to start with: for a joiner, every
/// member the leader lists. Views of other clusters are ignored.
pub async fn check(
    id: u64,
    cluster_id: u64,
    peers: &Members,
    join: bool,
) -> anyhow::Result<Members> {
    let http = client::http_client(ASK_TIMEOUT, 1)?;
    let views = views(&http, id, peers).await;
    decide(id, peers, join, &of_cluster(cluster_id, views))
}

/// The views among `views` of cluster `cluster_id`.
fn of_cluster(cluster_id: u64, mut views: Vec<ClusterView>) -> Vec<ClusterView> {
    views.retain(|v| v.cluster_id == cluster_id);
    views
}

/// The freshest of `views`: a leader's, of the highest term; without one,
/// the one that applied the most. A follower that has not applied the
/// latest changes yet (a member removed and added again, which clears its
/// mark) must not speak for the cluster when the leader answers.
fn freshest(views: &[ClusterView]) -> Option<&ClusterView> {
    views
        .iter()
        .filter(|v| is_leaders(v))
        .max_by_key(|v| v.term)
        .or_else(|| views.iter().max_by_key(|v| (v.term, v.applied)))
}

/// [`check`]'s verdict on the `views` its peers gave.
fn decide(id: u64, peers: &Members, join: bool, views: &[ClusterView]) -> anyhow::Result<Members> {
    let Some(view) = freshest(views) else {
        info!(id, "no peer answered: starting as a new member");
        return Ok(peers.clone());
    };
    if view.members.iter().any(|m| m.id == id && m.replicated) {
        let evidence = format!("member {} knows it as holding the log", view.id);
        return Err(lost_data(id, &evidence));
    }
    if !is_leaders(view) {
        info!(id, "no leader answered: starting as a new member");
        return Ok(peers.clone());
    }
    let leader = view.id;
    if let Some(p) = view.progress.iter().find(|p| p.id == id && p.matched > 0) {
        let evidence = format!(
            "the leader (member {leader}) has replicated its log to it up to index {}",
            p.matched
        );
        return Err(lost_data(id, &evidence));
    }
    if !join && !view.members.iter().any(|m| m.id == id) {
        let ids: Vec<u64> = view.members.iter().map(|m| m.id).collect();
        bail!(
            "member {id} is not in the cluster's configuration (the leader, member {leader}, \
             lists {ids:?}): it was removed, or the cluster was founded without it. To add \
             it, POST /v1/members at a member, then start it with --join"
        );
    }
    let mut peers = peers.clone();
    if join {
        // Addresses only: what the log says of each member, the runtime
        // learns from the log.
        for m in &view.members {
            peers.entry(m.id).or_insert_with(|| PeerInfo {
                raft_addr: m.raft_addr.clone(),
                http_addr: m.http_addr.clone(),
                replicated: false,
            });
        }
    }
    info!(id, leader, "the cluster knows nothing against this start");
    Ok(peers)
}

/// The refusal of member `id`, with what shows it held data before.
fn lost_data(id: u64, evidence: &str) -> anyhow::Error {
    anyhow!(
        "member {id} has an empty data directory, but {evidence}: this member lost its data, \
         or another process runs as member {id}. Started afresh it could lose committed \
         writes, and it could not catch up. Restore its data directory, or remove it \
         (DELETE /v1/members/{id}), add it again (POST /v1/members) and start it with --join"
    )
}

/// Every peer's view but `id`'s, asked at once; and the view of the
/// leader the newest of them names, if it is not among them.
async fn views(http: &reqwest::Client, id: u64, peers: &Members) -> Vec<ClusterView> {
    let mut asks = JoinSet::new();
    for (_, info) in peers.iter().filter(|(&peer, _)| peer != id) {
        let (http, addr) = (http.clone(), info.http_addr.clone());
        asks.spawn(async move { view_at(&http, &addr).await });
    }
    let mut views = Vec::new();
    while let Some(answer) = asks.join_next().await {
        if let Ok(Some(view)) = answer {
            views.push(view);
        }
    }
    // The leader the newest term names, when it has not answered itself
    // (it was not among the peers given, or an old leader answered).
    let named = views
        .iter()
        .filter(|v| v.leader != 0)
        .max_by_key(|v| v.term)
        .filter(|v| !views.iter().any(|w| w.id == v.leader))
        .and_then(|v| v.members.iter().find(|m| m.id == v.leader))
        .map(|m| m.http_addr.clone());
    if let Some(view) = async { view_at(http, &named?).await }.await {
        views.push(view);
    }
    views
}

/// Whether `view` is a leader's own.
fn is_leaders(view: &ClusterView) -> bool {
    view.leader != 0 && view.leader == view.id
}

/// `GET /v1/cluster` at `http_addr`; nothing if it does not answer with one.
async fn view_at(http: &reqwest::Client, http_addr: &str) -> Option<ClusterView> {
    let base = client::parse_endpoint(http_addr).ok()?;
    let url = client::api_url(&base, &["v1", "cluster"], &[]);
    let response = http.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{MemberView, ProgressView};

    /// Member `id`'s view at `term` and `applied`, leading if `leads`, of
    /// `members` (ID, replicated), with `progress` (ID, match) if it leads.
    fn view(
        id: u64,
        leads: bool,
        (term, applied): (u64, u64),
        members: &[(u64, bool)],
        progress: &[(u64, u64)],
    ) -> ClusterView {
        ClusterView {
            cluster_id: 7,
            id,
            leader: if leads { id } else { 9 },
            role: String::new(),
            term,
            commit: applied,
            applied,
            members: members
                .iter()
                .map(|&(id, replicated)| MemberView {
                    id,
                    raft_addr: format!("m{id}:2380"),
                    http_addr: format!("m{id}:2379"),
                    role: "voter".into(),
                    replicated,
                })
                .collect(),
            progress: progress
                .iter()
                .map(|&(id, matched)| ProgressView {
                    id,
                    matched,
                    next: matched + 1,
                    state: "replicate".into(),
                })
                .collect(),
        }
    }

    fn founders() -> Members {
        (1..=3)
            .map(|id| {
                let info = PeerInfo {
                    raft_addr: format!("m{id}:2380"),
                    http_addr: format!("m{id}:2379"),
                    replicated: false,
                };
                (id, info)
            })
            .collect()
    }

    fn refusal(r: anyhow::Result<Members>) -> String {
        format!("{:#}", r.expect_err("the start is refused"))
    }

    #[test]
    fn nobody_answering_or_no_mark_and_no_progress_is_a_first_start() {
        let peers = founders();
        assert_eq!(decide(3, &peers, false, &[]).unwrap(), peers);
        let follower = view(2, false, (1, 3), &[(1, false), (2, false), (3, false)], &[]);
        assert_eq!(decide(3, &peers, false, &[follower]).unwrap(), peers);
        let leader = view(
            1,
            true,
            (2, 4),
            &[(1, true), (2, true), (3, false)],
            &[(3, 0)],
        );
        assert_eq!(decide(3, &peers, false, &[leader]).unwrap(), peers);
    }

    #[test]
    fn a_mark_or_the_leaders_progress_says_the_data_was_lost() {
        let peers = founders();
        let marked = view(1, true, (2, 9), &[(1, true), (2, true), (3, true)], &[]);
        let e = refusal(decide(3, &peers, false, &[marked]));
        assert!(
            e.contains("lost its data") && e.contains("holding the log"),
            "{e}"
        );
        let matched = view(
            1,
            true,
            (2, 9),
            &[(1, true), (2, true), (3, false)],
            &[(3, 7)],
        );
        let e = refusal(decide(3, &peers, true, &[matched]));
        assert!(
            e.contains("lost its data") && e.contains("up to index 7"),
            "{e}"
        );
        // No leader answers: the follower that applied the most speaks.
        let behind = view(2, false, (2, 5), &[(3, false)], &[]);
        let ahead = view(1, false, (2, 9), &[(3, true)], &[]);
        let e = refusal(decide(3, &peers, false, &[behind, ahead]));
        assert!(e.contains("member 1 knows it"), "{e}");
    }

    #[test]
    fn a_lagging_follower_or_a_deposed_leader_does_not_speak_for_the_leader() {
        let peers = founders();
        // Member 3 removed and added again: the leader of term 3 has no
        // mark for it, and its progress has matched nothing yet.
        let leader = || {
            view(
                1,
                true,
                (3, 22),
                &[(1, true), (2, true), (3, false)],
                &[(3, 0)],
            )
        };
        // A follower that has not applied the removal still has the mark.
        let lagging = view(2, false, (3, 20), &[(1, true), (2, true), (3, true)], &[]);
        assert!(decide(3, &peers, true, &[lagging, leader()]).is_ok());
        // An old leader cut off in term 2.
        let deposed = view(2, true, (2, 30), &[(1, true), (2, true), (3, true)], &[]);
        assert!(decide(3, &peers, true, &[deposed, leader()]).is_ok());
    }

    #[test]
    fn another_clusters_views_are_not_heard() {
        let mut stranger = view(1, true, (5, 50), &[(3, true)], &[(3, 40)]);
        stranger.cluster_id = 8;
        let ours = view(2, true, (2, 9), &[(1, true), (2, true), (3, false)], &[]);
        let heard = of_cluster(7, vec![stranger, ours]);
        assert_eq!(heard.iter().map(|v| v.id).collect::<Vec<_>>(), vec![2]);
        assert!(decide(3, &founders(), false, &heard).is_ok());
    }

    #[test]
    fn a_founder_the_configuration_lacks_is_refused_and_a_joiner_learns_every_member() {
        let peers = founders();
        let leader = view(1, true, (2, 9), &[(1, true), (2, true), (4, true)], &[]);
        let e = refusal(decide(3, &peers, false, std::slice::from_ref(&leader)));
        assert!(e.contains("not in the cluster's configuration"), "{e}");
        let told: Members = peers
            .iter()
            .filter(|(&id, _)| id != 2)
            .map(|(&id, i)| (id, i.clone()))
            .collect();
        let learned = decide(5, &told, true, &[leader]).unwrap();
        assert_eq!(
            learned.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(learned[&4].raft_addr, "m4:2380");
        assert!(
            !learned[&4].replicated,
            "marks come from the log, not the view"
        );
    }
}
