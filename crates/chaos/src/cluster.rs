//! A cluster of member processes behind their proxies, and the HTTP calls
//! the harness makes to run it: who leads, membership, convergence.

use crate::error::HarnessError;
use crate::member::{Member, MemberSpec};
use crate::proxy::{Links, Proxy};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// How often the harness polls the cluster while it waits for a state.
const POLL: Duration = Duration::from_millis(100);

/// A port on 127.0.0.1 free now, for a member to bind next. Taken below
/// the kernel's ephemeral range (32768 up), so no outgoing connection can
/// take it meanwhile, and never the same twice in this process.
pub fn free_port() -> Result<u16, HarnessError> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Start where the process ID says, so parallel test binaries rarely meet.
    let _ = NEXT.compare_exchange(
        0,
        10_000 + (std::process::id() % 400) as u16 * 25,
        SeqCst,
        SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, SeqCst);
        if port >= 32_768 {
            return Err(HarnessError::Io {
                what: "finding a free port".into(),
                source: std::io::Error::other("no free port below the ephemeral range"),
            });
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What one member said about the cluster (`GET /v1/cluster`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The member that answered.
    pub id: u64,
    /// The leader it knows (0: none).
    pub leader: u64,
    /// Its role, as the API names it.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// Its commit index.
    pub commit: u64,
    /// Its applied index.
    pub applied: u64,
    /// The voters and learners of its configuration.
    pub members: Vec<u64>,
    /// The learners among them.
    pub learners: Vec<u64>,
}

/// The cluster under test.
#[derive(Debug)]
pub struct Cluster {
    /// The members started so far, by ID (removed ones are taken out).
    pub members: BTreeMap<u64, Member>,
    proxies: BTreeMap<u64, Proxy>,
    /// The network between the members.
    pub links: Links,
    http: reqwest::Client,
    binary: PathBuf,
    dir: PathBuf,
    tick_ms: u64,
    next_id: u64,
    /// Unexpected exits of members removed since.
    removed_exits: Vec<String>,
    /// Members that started on a wiped data directory instead of refusing.
    started_without_data: Vec<u64>,
}

impl Cluster {
    /// Starts `size` founding members of `binary` with their data and logs
    /// under `dir`, and waits for a leader.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        size: u64,
        tick_ms: u64,
    ) -> Result<Cluster, HarnessError> {
        let mut cluster = Cluster {
            members: BTreeMap::new(),
            proxies: BTreeMap::new(),
            links: Links::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| HarnessError::Http {
                    what: "building an HTTP client".into(),
                    message: e.to_string(),
                })?,
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            tick_ms,
            next_id: size + 1,
            removed_exits: Vec::new(),
            started_without_data: Vec::new(),
        };
        let mut specs = Vec::new();
        for id in 1..=size {
            specs.push(cluster.spec(id, false).await?);
        }
        let peers = peer_list(specs.iter());
        for mut spec in specs {
            spec.peers.clone_from(&peers);
            cluster.members.insert(spec.id, Member::start(spec)?);
        }
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// A member's spec with fresh ports and its proxy started.
    async fn spec(&mut self, id: u64, join: bool) -> Result<MemberSpec, HarnessError> {
        let raft_listen = local(free_port()?);
        let proxy = Proxy::start(local(free_port()?), raft_listen, id, self.links.clone())
            .await
            .map_err(|source| HarnessError::Io {
                what: format!("starting member {id}'s proxy"),
                source,
            })?;
        let spec = MemberSpec {
            id,
            binary: self.binary.clone(),
            raft_listen,
            raft_public: proxy.addr(),
            http: local(free_port()?),
            peers: String::new(),
            join,
            data_dir: self.dir.join(format!("member-{id}")),
            log: self.dir.join(format!("member-{id}.log")),
            tick_ms: self.tick_ms,
        };
        self.proxies.insert(id, proxy);
        Ok(spec)
    }

    /// Every member's HTTP address, by ID.
    pub fn endpoints(&self) -> BTreeMap<u64, SocketAddr> {
        self.members
            .iter()
            .map(|(&id, m)| (id, m.spec.http))
            .collect()
    }

    /// GETs `url` and reads its JSON body; `what` names it in errors.
    async fn get_json(&self, url: &str, what: String) -> Result<Value, HarnessError> {
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| http_error(what.clone(), &e))?
            .json()
            .await
            .map_err(|e| http_error(what, &e))
    }

    /// What member `id` says about the cluster.
    pub async fn view(&self, id: u64) -> Result<View, HarnessError> {
        let addr = self.members[&id].spec.http;
        let what = format!("GET /v1/cluster on member {id}");
        let v = self
            .get_json(&format!("http://{addr}/v1/cluster"), what)
            .await?;
        let num = |k: &str| v[k].as_u64().unwrap_or(0);
        Ok(View {
            id,
            leader: num("leader"),
            role: v["role"].as_str().unwrap_or("").to_owned(),
            term: num("term"),
            commit: num("commit"),
            applied: num("applied"),
            members: v["members"]
                .as_array()
                .map(|ms| ms.iter().filter_map(|m| m["id"].as_u64()).collect())
                .unwrap_or_default(),
            learners: v["members"]
                .as_array()
                .map(|ms| {
                    ms.iter()
                        .filter(|m| m["role"] == "learner")
                        .filter_map(|m| m["id"].as_u64())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The views of every member that answers.
    pub async fn views(&self) -> Vec<View> {
        let mut views = Vec::new();
        for &id in self.members.keys() {
            if let Ok(v) = self.view(id).await {
                views.push(v);
            }
        }
        views
    }

    /// The member that says it leads, in the highest term any member
    /// claims leadership in.
    pub async fn leader(&self) -> Option<u64> {
        self.views()
            .await
            .into_iter()
            .filter(|v| v.role == "leader")
            .max_by_key(|v| v.term)
            .map(|v| v.id)
    }

    /// Waits until some member leads.
    pub async fn wait_for_leader(&self, within: Duration) -> Result<u64, HarnessError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.leader().await {
                return Ok(l);
            }
            if Instant::now() > deadline {
                return Err(timeout("a leader", within));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until member `to` leads.
    pub async fn wait_for_leader_to_be(
        &self,
        to: u64,
        within: Duration,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.leader().await == Some(to) {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(timeout(&format!("member {to} to lead"), within))
    }

    /// Waits until every member of the leader's configuration is up and
    /// has applied everything the leader committed, at one term and
    /// index, and returns that applied index.
    pub async fn wait_converged(&self, within: Duration) -> Result<u64, HarnessError> {
        let deadline = Instant::now() + within;
        loop {
            let views = self.views().await;
            let started: Vec<u64> = self.members.keys().copied().collect();
            if let Some(index) = converged(&views, &started) {
                return Ok(index);
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout {
                    what: format!("convergence; last views: {views:?}"),
                    secs: within.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `request` (a method and a path) with an optional JSON body to
    /// the leader, following redirects; retries until `within` passes.
    async fn to_leader(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        within: Duration,
    ) -> Result<Value, HarnessError> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(leader) = self.leader().await {
                let addr = self.members[&leader].spec.http;
                let mut req = self
                    .http
                    .request(method.clone(), format!("http://{addr}{path}"));
                if let Some(b) = &body {
                    req = req.json(b);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        return r.json().await.map_err(|e| http_error(path.into(), &e));
                    }
                    Ok(r) => {
                        last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default())
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Err(HarnessError::Http {
            what: format!("{method} {path}"),
            message: format!("no success within {} s; last: {last}", within.as_secs()),
        })
    }

    /// Replaces member `old` by a new one: the new member is added as a
    /// learner and started with `--join`, promoted once it caught up, and
    /// `old` is removed and stopped. Returns the new member's ID.
    pub async fn replace(&mut self, old: u64) -> Result<u64, HarnessError> {
        let id = self.next_id;
        self.next_id += 1;
        let t = Duration::from_secs(20);
        let mut spec = self.spec(id, true).await?;
        self.add_learner(&spec, t).await?;
        let peers = peer_list(self.members.values().map(|m| &m.spec).chain([&spec]));
        spec.peers = peers;
        self.members.insert(id, Member::start(spec)?);
        self.promote_when_caught_up(id, t).await?;
        self.remove_member(old, t).await?;
        if let Some(mut m) = self.members.remove(&old) {
            m.kill().await?;
            self.removed_exits.append(&mut m.unexpected_exits);
        }
        self.proxies.remove(&old);
        Ok(id)
    }

    // Each change below may have taken effect though its answer was lost
    // (a leader change mid-request): then the retry is refused, and the
    // configuration says whether the change is done.

    /// Adds the member `spec` describes as a learner, through the leader.
    async fn add_learner(&self, spec: &MemberSpec, t: Duration) -> Result<(), HarnessError> {
        let id = spec.id;
        let body = serde_json::json!({
            "id": id,
            "raft_addr": spec.raft_public.to_string(),
            "http_addr": spec.http.to_string(),
            "learner": true,
        });
        let added = self
            .to_leader(reqwest::Method::POST, "/v1/members", Some(body), t)
            .await;
        self.done_or(added, |v| v.learners.contains(&id)).await
    }

    /// Waits until learner `id` has caught up, then promotes it.
    async fn promote_when_caught_up(&self, id: u64, t: Duration) -> Result<(), HarnessError> {
        self.wait_caught_up(id, t).await?;
        let promote = format!("/v1/members/{id}/promote");
        let promoted = self
            .to_leader(reqwest::Method::POST, &promote, None, t)
            .await;
        self.done_or(promoted, |v| {
            v.members.contains(&id) && !v.learners.contains(&id)
        })
        .await
    }

    /// Removes member `id` from the configuration (its process runs on).
    async fn remove_member(&self, id: u64, t: Duration) -> Result<(), HarnessError> {
        let remove = format!("/v1/members/{id}");
        let removed = self
            .to_leader(reqwest::Method::DELETE, &remove, None, t)
            .await;
        self.done_or(removed, |v| !v.members.contains(&id)).await
    }

    /// Loses member `id`'s data as a dead disk would: kills it and wipes
    /// its data directory. Started again as it was, it must refuse (else
    /// it is noted, see [`Cluster::started_without_data`]); then it comes
    /// back the documented way: removed, added again as a learner under
    /// its ID and addresses, started with `--join`, caught up, promoted.
    pub async fn lose_data(&mut self, id: u64) -> Result<(), HarnessError> {
        let t = Duration::from_secs(20);
        let m = self
            .members
            .get_mut(&id)
            .ok_or(HarnessError::NoSuchMember(id))?;
        m.kill().await?;
        match std::fs::remove_dir_all(&m.spec.data_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(HarnessError::Io {
                    what: format!("wiping member {id}'s data"),
                    source: e,
                })
            }
            _ => {}
        }
        if !m.refuses_to_start(t).await? {
            self.started_without_data.push(id);
        }
        self.remove_member(id, t).await?;
        let spec = self.members[&id].spec.clone();
        self.add_learner(&spec, t).await?;
        let peers = peer_list(self.members.values().map(|m| &m.spec));
        let m = self
            .members
            .get_mut(&id)
            .ok_or(HarnessError::NoSuchMember(id))?;
        m.spec.join = true;
        m.spec.peers = peers;
        m.restart()?;
        self.promote_when_caught_up(id, t).await
    }

    /// The members that started on a wiped data directory instead of
    /// refusing to (each is a finding).
    pub fn started_without_data(&self) -> &[u64] {
        &self.started_without_data
    }

    /// `outcome` if it succeeded; otherwise success if the leader's view
    /// shows the change done anyway.
    async fn done_or(
        &self,
        outcome: Result<Value, HarnessError>,
        done: impl Fn(&View) -> bool,
    ) -> Result<(), HarnessError> {
        let Err(e) = outcome else {
            return Ok(());
        };
        // The change may be applied but not visible yet: look for a while.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(l) = self.leader().await {
                if self.view(l).await.is_ok_and(|v| done(&v)) {
                    return Ok(());
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Err(e)
    }

    /// Waits until member `id` has applied what the leader had committed
    /// when the wait began.
    async fn wait_caught_up(&self, id: u64, within: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + within;
        let mut target = None;
        while Instant::now() < deadline {
            if target.is_none() {
                if let Some(l) = self.leader().await {
                    target = self.view(l).await.ok().map(|v| v.commit);
                }
            }
            if let (Some(t), Ok(v)) = (target, self.view(id).await) {
                if v.applied >= t {
                    return Ok(());
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Err(timeout(&format!("member {id} to catch up"), within))
    }

    /// Asks the leader to hand leadership to `to`.
    pub async fn transfer(&self, to: u64) -> Result<(), HarnessError> {
        let body = serde_json::json!({ "to": to });
        self.to_leader(
            reqwest::Method::POST,
            "/v1/leader/transfer",
            Some(body),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }

    /// Resumes paused members, restarts killed ones and restores every link.
    pub fn heal(&mut self) -> Result<(), HarnessError> {
        self.links.heal();
        for m in self.members.values_mut() {
            m.reap();
            if m.is_paused() {
                m.resume()?;
            }
            if !m.is_up() {
                m.restart()?;
            }
        }
        Ok(())
    }

    /// Kills every member's process.
    pub async fn stop(&mut self) {
        for m in self.members.values_mut() {
            let _ = m.kill().await;
        }
    }

    /// Every exit of a member's process the harness did not cause, so far.
    pub fn unexpected_exits(&mut self) -> Vec<String> {
        let mut all = self.removed_exits.clone();
        for m in self.members.values_mut() {
            m.reap();
            all.extend(m.unexpected_exits.iter().cloned());
        }
        all
    }

    /// Every key and value member `id` has applied, read without a round
    /// (`consistency=stale`), so after convergence it is that member's own
    /// state; a page of 10,000 keys at a time.
    pub async fn dump(&self, id: u64) -> Result<BTreeMap<String, String>, HarnessError> {
        let addr = self.members[&id].spec.http;
        let what = || format!("listing member {id}'s keys");
        let mut all = BTreeMap::new();
        let mut after = String::new();
        loop {
            let url = reqwest::Url::parse_with_params(
                &format!("http://{addr}/v1/kv"),
                [
                    ("consistency", "stale"),
                    ("limit", "10000"),
                    ("after", &after),
                ],
            )
            .map_err(|e| HarnessError::Http {
                what: what(),
                message: e.to_string(),
            })?;
            let v = self.get_json(url.as_str(), what()).await?;
            for item in v["items"].as_array().into_iter().flatten() {
                if let (Some(k), Some(v)) = (item["key"].as_str(), item["value"].as_str()) {
                    all.insert(k.to_owned(), v.to_owned());
                    k.clone_into(&mut after);
                }
            }
            if v["more"].as_bool() != Some(true) {
                return Ok(all);
            }
        }
    }
}

/// `--peers` for these members: `ID=PROXY/HTTP`, comma-separated.
fn peer_list<'a>(specs: impl Iterator<Item = &'a MemberSpec>) -> String {
    specs
        .map(|s| format!("{}={}/{}", s.id, s.raft_public, s.http))
        .collect::<Vec<_>>()
        .join(",")
}

/// The applied index every member agrees on, if the views show a
/// converged cluster: the leader of the highest term, its configuration
/// exactly the members started (`started`, sorted), every one answering,
/// all at its term with everything it committed applied.
fn converged(views: &[View], started: &[u64]) -> Option<u64> {
    let leader = views
        .iter()
        .filter(|v| v.role == "leader")
        .max_by_key(|v| v.term)?;
    let all_there = leader.members.iter().all(|id| {
        views.iter().any(|v| {
            v.id == *id
                && v.term == leader.term
                && v.applied == leader.commit
                && v.leader == leader.id
        })
    });
    let mut config = leader.members.clone();
    config.sort_unstable();
    let same_members = config == started;
    (all_there && same_members && leader.applied == leader.commit).then_some(leader.commit)
}

fn http_error(what: String, e: &reqwest::Error) -> HarnessError {
    HarnessError::Http {
        what,
        message: e.to_string(),
    }
}

fn timeout(what: &str, within: Duration) -> HarnessError {
    HarnessError::Timeout {
        what: what.into(),
        secs: within.as_secs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: u64, role: &str, term: u64, commit: u64, applied: u64) -> View {
        View {
            id,
            leader: 1,
            role: role.into(),
            term,
            commit,
            applied,
            members: vec![1, 2, 3],
            learners: vec![],
        }
    }

    #[test]
    fn converged_needs_every_member_at_the_leaders_commit() {
        let mut views = vec![
            view(1, "leader", 4, 10, 10),
            view(2, "follower", 4, 10, 10),
            view(3, "follower", 4, 10, 10),
        ];
        assert_eq!(converged(&views, &[1, 2, 3]), Some(10));
        views[2].applied = 9;
        assert_eq!(converged(&views, &[1, 2, 3]), None, "a member behind");
        views.pop();
        assert_eq!(
            converged(&views, &[1, 2, 3]),
            None,
            "a member not answering"
        );
        views.push(view(3, "follower", 3, 10, 10));
        assert_eq!(
            converged(&views, &[1, 2, 3]),
            None,
            "a member in an older term"
        );
        views[2].term = 4;
        assert_eq!(converged(&views, &[1, 2, 3]), Some(10));
        assert_eq!(
            converged(&views, &[1, 2, 3, 4]),
            None,
            "a started member left out"
        );
    }
}
