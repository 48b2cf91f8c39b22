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
//! So before such a member starts, [`check`] asks the peers it was given
//! for the leader's view of the cluster (`GET /v1/cluster`), and refuses
//! to start:
//!
//! - when the leader has replicated to this ID before: the data was lost,
//!   or another process runs under this ID;
//! - when a founding member is not in the cluster's configuration: it was
//!   removed, or the cluster was founded without it.
//!
//! The way back is to restore the directory, or to remove the member and
//! add it again, then start it with `--join`. A joining member also
//! learns every member's addresses from the view, so it can answer a
//! leader it was not told of.
//!
//! When no leader answers, as at a new cluster's first start, the member
//! starts. What this cannot see: a leader elected after the data was lost
//! has no memory of the member. The member then starts and catches up by
//! snapshot, but what it lost was lost all the same, so the check narrows
//! the danger without closing it; an operator who wipes a member should
//! remove it first.

use crate::client::{self, ClusterView};
use anyhow::bail;
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
    let Some(view) = leader_view(&http, id, peers).await else {
        info!(id, "no leader answered: starting as a new member");
        return Ok(peers.clone());
    };
    let leader = view.id;
    if let Some(p) = view.progress.iter().find(|p| p.id == id && p.matched > 0) {
        bail!(
            "member {id} has an empty data directory, but the leader (member {leader}) has \
             replicated its log to member {id} up to index {}: this member lost its data, or \
             another process runs as member {id}. Started afresh it could lose committed \
             writes, and it could not catch up. Restore its data directory, or remove it \
             (DELETE /v1/members/{id}), add it again (POST /v1/members) and start it with \
             --join",
            p.matched
        );
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
            });
        }
    }
    info!(
        id,
        leader, "the cluster's leader knows nothing against this start"
    );
    Ok(peers)
}

/// The leader's own view, asked of every peer but `id` at once, and then
/// of the leader one of them names.
async fn leader_view(http: &reqwest::Client, id: u64, peers: &Members) -> Option<ClusterView> {
    let mut asks = JoinSet::new();
    for (_, info) in peers.iter().filter(|(&peer, _)| peer != id) {
        let (http, addr) = (http.clone(), info.http_addr.clone());
        asks.spawn(async move { view_at(&http, &addr).await });
    }
    let mut named = None;
    while let Some(answer) = asks.join_next().await {
        let Ok(Some(view)) = answer else { continue };
        if is_leaders(&view) {
            return Some(view);
        }
        if named.is_none() && view.leader != 0 {
            named = view
                .members
                .iter()
                .find(|m| m.id == view.leader)
                .map(|m| m.http_addr.clone());
        }
    }
    let view = view_at(http, &named?).await?;
    is_leaders(&view).then_some(view)
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
