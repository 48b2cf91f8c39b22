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
//! - when any of them knows this ID as holding the log, or the leader has
//!   replicated to it (before the mark is in): the data was lost, or
//!   another process runs under this ID;
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

/// Checks that member `id`, whose storage is empty, may start with
/// `peers` (founding the cluster, or with `join` joining it); returns the
/// peers to start with: for a joiner, every member the leader lists.
pub async fn check(id: u64, peers: &Members, join: bool) -> anyhow::Result<Members> {
    let http = client::http_client(ASK_TIMEOUT, 1)?;
    let views = views(&http, id, peers).await;
    let marked = |v: &&ClusterView| v.members.iter().any(|m| m.id == id && m.replicated);
    if let Some(v) = views.iter().find(marked) {
        return Err(lost_data(
            id,
            &format!("member {} knows it as holding the log", v.id),
        ));
    }
    let Some(view) = views.iter().find(|v| is_leaders(v)) else {
        info!(id, "no leader answered: starting as a new member");
        return Ok(peers.clone());
    };
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
        for m in &view.members {
            peers.entry(m.id).or_insert_with(|| PeerInfo {
                raft_addr: m.raft_addr.clone(),
                http_addr: m.http_addr.clone(),
                replicated: m.replicated,
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

/// Every peer's view but `id`'s, asked at once; and, when none of them is
/// the leader's, the view of the leader one of them names.
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
    if !views.iter().any(is_leaders) {
        let named = views.iter().find_map(|v| {
            v.members
                .iter()
                .find(|m| m.id == v.leader && v.leader != 0)
                .map(|m| m.http_addr.clone())
        });
        if let Some(view) = async { view_at(http, &named?).await }.await {
            views.push(view);
        }
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
