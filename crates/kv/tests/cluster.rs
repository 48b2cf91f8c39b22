//! The KV server as users run it: members on loopback with real sockets
//! and real disks (temporary folders), driven through the HTTP API.
//!
//! Waits are on conditions (the runtime's watch channels, or a request that
//! succeeds), each bounded by a guard that fails a hung test.

use reqwest::StatusCode;
use rudder_kv::server::{Server, ServerConfig};
use rudder_node::runtime::{Members, PeerInfo};
use rudder_raft::StateRole;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

const GUARD: Duration = Duration::from_secs(30);

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// A port on 127.0.0.1 free now, for a member to bind next (the fault
/// harness's ports: below the ephemeral range, never the same twice).
fn free_port() -> u16 {
    rudder_chaos::cluster::free_port().expect("a free port for a test member")
}

fn new_member() -> PeerInfo {
    PeerInfo {
        raft_addr: format!("127.0.0.1:{}", free_port()),
        http_addr: format!("127.0.0.1:{}", free_port()),
        replicated: false,
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    peers: Members,
    servers: BTreeMap<u64, Server>,
    http: reqwest::Client,
    snapshot_every: u64,
}

impl Cluster {
    async fn new(n: u64, snapshot_every: u64) -> Cluster {
        let mut c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            peers: (1..=n).map(|id| (id, new_member())).collect(),
            servers: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            snapshot_every,
        };
        for id in 1..=n {
            c.start(id, false).await;
        }
        c
    }

    async fn start(&mut self, id: u64, join: bool) {
        let config = self.config(id, join);
        let server = Server::start(config).await.expect("the member starts");
        self.servers.insert(id, server);
    }

    /// How member `id` starts: founding, or joining with `join`.
    fn config(&self, id: u64, join: bool) -> ServerConfig {
        let info = &self.peers[&id];
        ServerConfig {
            id,
            cluster_id: 7,
            raft_listen: info.raft_addr.parse().unwrap(),
            http_listen: info.http_addr.parse().unwrap(),
            peers: self.peers.clone(),
            join,
            data_dir: self.dir.path().join(id.to_string()),
            tick: Duration::from_millis(10),
            snapshot_every: self.snapshot_every,
            keep_entries: 10,
            max_body: 1 << 20,
        }
    }

    async fn stop(&mut self, id: u64) {
        self.servers.remove(&id).expect("running").shutdown().await;
    }

    /// Waits until a running member leads and a majority of the running
    /// members follow it.
    async fn leader(&self) -> u64 {
        within("no leader", async {
            loop {
                let seen: Vec<_> = self
                    .servers
                    .values()
                    .map(|s| *s.runtime().leader().borrow())
                    .collect();
                let leading = seen
                    .iter()
                    .filter(|s| s.role == Some(StateRole::Leader))
                    .max_by_key(|s| s.term);
                if let Some(l) = leading.map(|s| s.leader) {
                    if self.servers.contains_key(&l)
                        && seen.iter().filter(|s| s.leader == l).count() * 2 > seen.len()
                    {
                        return l;
                    }
                }
                let mut w = self.servers.values().next().unwrap().runtime().leader();
                let _ = tokio::time::timeout(Duration::from_millis(50), w.changed()).await;
            }
        })
        .await
    }

    fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}{path}", self.peers[&id].http_addr)
    }

    /// `PUT key=value` through any member (following its redirect),
    /// retrying while the cluster has no leader; returns once acknowledged.
    async fn put(&self, key: &str, value: &str) {
        within("a write was never acknowledged", async {
            loop {
                let id = *self.servers.keys().next().unwrap();
                let r = self
                    .http
                    .put(self.url(id, &format!("/v1/kv/{key}")))
                    .body(value.to_owned())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => return,
                    Ok(r) if r.status().is_server_error() => {}
                    Ok(r) => panic!(
                        "put {key}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    Err(_) => {}
                }
                self.leader().await;
            }
        })
        .await
    }

    /// Adds member `id`, reachable at `info`, through the leader `l`.
    async fn add(&self, l: u64, id: u64, info: &PeerInfo, learner: bool) {
        let add = serde_json::json!({ "id": id, "raft_addr": info.raft_addr, "http_addr": info.http_addr, "learner": learner });
        let r = self
            .http
            .post(self.url(l, "/v1/members"))
            .json(&add)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    }

    /// Sends `request`; the status and the JSON body.
    async fn call(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = request.send().await.expect("the member answers");
        (r.status(), r.json().await.expect("a JSON body"))
    }

    /// `GET path` at member `id`: the body as text.
    async fn text(&self, id: u64, path: &str) -> String {
        let r = self
            .http
            .get(self.url(id, path))
            .send()
            .await
            .expect("the member answers");
        r.text().await.expect("a body")
    }

    /// `GET key` at member `id` with `consistency`.
    async fn get(&self, id: u64, key: &str, consistency: &str) -> (StatusCode, Value) {
        let url = self.url(id, &format!("/v1/kv/{key}?consistency={consistency}"));
        self.call(self.http.get(url)).await
    }

    /// Waits until every running member has applied what the leader
    /// committed.
    async fn settle(&self) {
        let l = self.leader().await;
        let commit = self.servers[&l]
            .runtime()
            .status()
            .await
            .unwrap()
            .basic
            .hard_state
            .commit;
        for s in self.servers.values() {
            let mut w = s.runtime().applied();
            within("a member never caught up", w.wait_for(|&a| a >= commit))
                .await
                .unwrap();
        }
    }

    async fn shutdown(self) {
        for (_, s) in self.servers {
            s.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_loses_no_write_and_catches_up_after_restart() {
    let mut c = Cluster::new(3, 10_000).await;
    for i in 0..20 {
        c.put(&format!("a{i}"), &i.to_string()).await;
    }
    let old = c.leader().await;
    c.stop(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    for i in 0..20 {
        c.put(&format!("b{i}"), &i.to_string()).await;
    }
    c.start(old, false).await;
    c.settle().await;
    for i in 0..20 {
        for k in [format!("a{i}"), format!("b{i}")] {
            let (status, body) = c.get(old, &k, "stale").await;
            assert_eq!(
                (status, body["value"].as_str()),
                (StatusCode::OK, Some(&*i.to_string())),
                "{k} on {old}"
            );
        }
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_down_past_compaction_catches_up_by_snapshot() {
    let mut c = Cluster::new(3, 30).await;
    c.put("k", "first").await;
    let l = c.leader().await;
    let lagging = *c.servers.keys().find(|&&id| id != l).unwrap();
    c.stop(lagging).await;
    for i in 0..120 {
        c.put("k", &i.to_string()).await;
    }
    c.start(lagging, false).await;
    c.settle().await;
    assert_eq!(c.get(lagging, "k", "stale").await.1["value"], "119");
    let l = c.leader().await;
    let metrics = c.text(l, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("rudder_messages_sent_total{type=\"MsgSnap\"}")),
        "the leader sent no snapshot:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("rudder_messages_dropped_total{type=\"MsgApp\"}")),
        "appends to the member that was down are counted dropped:\n{metrics}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_is_promoted_and_a_member_is_removed() {
    let mut c = Cluster::new(3, 10_000).await;
    c.put("k", "v").await;
    let four = new_member();
    c.peers.insert(4, four.clone());
    c.start(4, true).await;
    let l = c.leader().await;
    c.add(l, 4, &four, true).await;
    c.settle().await;
    assert_eq!(
        c.get(4, "k", "stale").await.1["value"],
        "v",
        "the learner has the data"
    );
    let (_, body) = c.call(c.http.post(c.url(l, "/v1/members/4/promote"))).await;
    assert!(
        body["voters"].as_array().unwrap().contains(&4.into()),
        "{body}"
    );
    let victim = *c.servers.keys().find(|&&id| id != l && id != 4).unwrap();
    let r = c
        .http
        .delete(c.url(l, &format!("/v1/members/{victim}")))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        !body["voters"].as_array().unwrap().contains(&victim.into()),
        "{body}"
    );
    c.stop(victim).await;
    c.put("k", "after").await;
    c.settle().await;
    let cluster: Value = c.call(c.http.get(c.url(4, "/v1/cluster"))).await.1;
    let ids: Vec<u64> = cluster["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{cluster}");
    assert!(ids.contains(&4) && !ids.contains(&victim), "{cluster}");
    assert_eq!(c.get(4, "k", "linearizable").await.1["value"], "after");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lost_its_data_is_refused_until_removed_and_added_again() {
    let mut c = Cluster::new(3, 10_000).await;
    c.put("k", "v").await;
    c.settle().await;
    let l = c.leader().await;
    within("the leader never marked every member replicated", async {
        loop {
            let view = c.call(c.http.get(c.url(l, "/v1/cluster"))).await.1;
            let members = view["members"].as_array().unwrap();
            if members.iter().all(|m| m["replicated"] == true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let wiped = *c.servers.keys().find(|&&id| id != l).unwrap();
    c.stop(wiped).await;
    std::fs::remove_dir_all(c.dir.path().join(wiped.to_string())).unwrap();
    // A new leader has no memory of how far the wiped member's log went:
    // only the mark in the address book tells.
    let other = *c.servers.keys().find(|&&id| id != l).unwrap();
    within("the transfer never completed", async {
        // Asked again while it has not happened: a transfer may abort.
        while c.leader().await != other {
            let r = c
                .http
                .post(c.url(c.leader().await, "/v1/leader/transfer"))
                .json(&serde_json::json!({ "to": other }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED, "{:?}", r.text().await);
            for _ in 0..20 {
                if c.leader().await == other {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    })
    .await;
    let l = other;
    for join in [false, true] {
        let refused = Server::start(c.config(wiped, join)).await;
        let e = format!(
            "{:#}",
            refused.err().expect("a member that lost its data starts")
        );
        assert!(e.contains("lost its data"), "join {join}: {e}");
    }
    let r = c
        .http
        .delete(c.url(l, &format!("/v1/members/{wiped}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    c.add(l, wiped, &c.peers[&wiped], false).await;
    // Told of one follower only, the joiner learns the leader's address
    // from it: without that it could not answer the leader's appends.
    let follower = *c.servers.keys().find(|&&id| id != l).unwrap();
    let mut config = c.config(wiped, true);
    config.peers.retain(|&id, _| id == wiped || id == follower);
    let server = Server::start(config).await.expect("the member starts");
    c.servers.insert(wiped, server);
    c.put("k", "after").await;
    c.settle().await;
    assert_eq!(c.get(wiped, "k", "stale").await.1["value"], "after");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_after_a_leader_change_sees_the_last_write() {
    let mut c = Cluster::new(3, 10_000).await;
    c.put("k", "1").await;
    let old = c.leader().await;
    c.stop(old).await;
    c.put("k", "2").await;
    for &id in c.servers.keys() {
        let (status, body) = c.get(id, "k", "linearizable").await;
        assert_eq!(
            (status, body["value"].as_str()),
            (StatusCode::OK, Some("2")),
            "member {id}"
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restarted_whole_keeps_its_data() {
    let mut c = Cluster::new(3, 25).await;
    for i in 0..60 {
        c.put(&format!("k{i:02}"), &format!("v{i}")).await;
    }
    for id in 1..=3 {
        c.stop(id).await;
    }
    for id in 1..=3 {
        c.start(id, false).await;
    }
    c.leader().await;
    let l = c.leader().await;
    let list: Value = c
        .call(c.http.get(c.url(l, "/v1/kv?prefix=k&limit=100")))
        .await
        .1;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 60, "{list}");
    assert_eq!(items[59]["value"], "v59");
    // The same keys in pages: the last key of one is the next one's `after`.
    let page = |after: &str| c.url(l, &format!("/v1/kv?prefix=k&limit=50&after={after}"));
    let first: Value = c.call(c.http.get(page(""))).await.1;
    assert_eq!(
        (
            first["items"].as_array().unwrap().len(),
            first["more"].as_bool()
        ),
        (50, Some(true))
    );
    let last = first["items"][49]["key"].as_str().unwrap();
    let second: Value = c.call(c.http.get(page(last))).await.1;
    let rest = second["items"].as_array().unwrap();
    assert_eq!(
        (rest.len(), second["more"].as_bool()),
        (10, Some(false)),
        "{second}"
    );
    assert_eq!(rest[0]["key"], "k50");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_requests_clearly_and_followers_redirect() {
    let c = Cluster::new(3, 10_000).await;
    let l = c.leader().await;
    // A follower that has heard from the leader (one may not have yet).
    let follower = within("no follower knows the leader", async {
        loop {
            let knows = c
                .servers
                .iter()
                .find(|(&id, s)| id != l && s.runtime().leader().borrow().leader == l);
            if let Some((&id, _)) = knows {
                return id;
            }
            let mut w = c.servers.values().next().unwrap().runtime().leader();
            let _ = tokio::time::timeout(Duration::from_millis(20), w.changed()).await;
        }
    })
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .put(c.url(follower, "/v1/kv/x"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, c.url(l, "/v1/kv/x"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["leader"].as_u64()),
        (Some("not_leader"), Some(l))
    );

    c.put("x", "1").await;
    let cas = |prev: &str| {
        c.http
            .put(c.url(l, &format!("/v1/kv/x?prev_value={prev}")))
            .body("2")
            .send()
    };
    assert_eq!(
        cas("9").await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(cas("1").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        c.get(l, "missing", "linearizable").await.0,
        StatusCode::NOT_FOUND
    );
    let huge = "v".repeat((1 << 20) + 1);
    let r = c
        .http
        .put(c.url(l, "/v1/kv/big"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_large");
    let long_key = "k".repeat(5000);
    let r = c
        .http
        .put(c.url(l, &format!("/v1/kv/{long_key}")))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .http
        .get(c.url(l, "/v1/kv/x?consistency=sometimes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .http
        .put(c.url(l, "/v1/kv/bin"))
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, body) = c.call(c.http.delete(c.url(l, "/v1/kv/x"))).await;
    assert_eq!(body["prev_value"], "2");
    // Lease reads on the leader once it applied an entry of its term (it
    // did: the writes above); on a follower, a redirect.
    c.put("x", "3").await;
    let (status, body) = c.get(l, "x", "lease").await;
    assert_eq!(
        (status, body["value"].as_str()),
        (StatusCode::OK, Some("3"))
    );
    let r = no_redirects
        .get(c.url(follower, "/v1/kv/x?consistency=lease"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    // Membership requests that cannot be right are refused before Raft.
    let r = c
        .http
        .post(c.url(l, &format!("/v1/members/{follower}/promote")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a voter is not promoted"
    );
    let bad = serde_json::json!({ "id": 9, "raft_addr": "", "http_addr": "127.0.0.1:1", "learner": true });
    let r = c
        .http
        .post(c.url(l, "/v1/members"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "an empty Raft address");
    let r = c
        .http
        .post(c.url(l, "/v1/members/abc/promote"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_request", "errors are JSON");
    let r = c
        .http
        .post(c.url(l, "/v1/leader/transfer"))
        .json(&serde_json::json!({ "to": 42 }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "no transfer to a stranger"
    );
    let health: Value = c.call(c.http.get(c.url(follower, "/healthz"))).await.1;
    assert_eq!(health["leader"].as_u64(), Some(l));
    c.shutdown().await;
}
