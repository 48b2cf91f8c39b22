//! Requests the `http_api` fuzz target (`fuzz/`) found answered without
//! the API's JSON error body, replayed against a one-member cluster on an
//! in-memory disk: every 4xx must carry `{"error", "message", "leader"}`.

use rudder_kv::api;
use rudder_kv::store::KvStore;
use rudder_node::runtime::{Inbox, Members, Network, PeerInfo, Runtime, RuntimeConfig};
use rudder_raft::Message;
use rudder_storage::fs::MemFs;
use rudder_storage::{DiskStorage, Options};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Sends nothing: a one-member cluster has nobody to talk to.
struct Nobody;

impl Network for Nobody {
    fn send(&self, _msgs: Vec<Message>) {}
    fn add_peer(&self, _id: u64, _info: &PeerInfo) {}
    fn remove_peer(&self, _id: u64) {}
}

/// Answers `method url` with a status the fuzzer saw, and checks the body
/// is the API's JSON error naming `code`.
async fn expect_json_error(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    status: u16,
    code: &str,
) {
    let answer = client
        .request(method.clone(), &url)
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), status, "{method} {url}");
    let content_type = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{method} {url}: {content_type}"
    );
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], code, "{method} {url}: {body}");
    assert!(
        body["message"].is_string() && body["leader"].is_u64(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_error_has_the_json_error_body() {
    let storage = DiskStorage::open(
        Arc::new(MemFs::new(1)),
        Path::new("/member"),
        Options::default(),
    )
    .unwrap();
    let mut config = RuntimeConfig::new(1);
    config.tick = Duration::from_millis(5);
    let mut peers = Members::new();
    peers.insert(
        1,
        PeerInfo {
            raft_addr: "127.0.0.1:2380".into(),
            http_addr: "127.0.0.1:2379".into(),
            replicated: false,
        },
    );
    config.peers = peers;
    let (_messages, messages_rx) = mpsc::channel(16);
    let (_events, events_rx) = mpsc::unbounded_channel();
    let runtime = Runtime::start(
        config,
        storage,
        KvStore::default(),
        Nobody,
        Inbox {
            messages: messages_rx,
            events: events_rx,
        },
    )
    .unwrap();
    let app = api::router(runtime.clone(), 1, Arc::new(Vec::new), 1 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    // A method the route does not take: axum's bare 405 had no body.
    for method in [reqwest::Method::PATCH, reqwest::Method::POST] {
        let url = format!("{base}/v1/kv/a");
        expect_json_error(&client, method, url, 405, "method_not_allowed").await;
    }
    let url = format!("{base}/v1/members/3/promote");
    expect_json_error(
        &client,
        reqwest::Method::GET,
        url,
        405,
        "method_not_allowed",
    )
    .await;

    // A key that percent-decodes to invalid UTF-8: axum's text/plain 400.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let url = format!("{base}/v1/kv/wbN.%FF");
        expect_json_error(&client, method, url, 400, "bad_request").await;
    }
    // A write's query that does not parse (the field twice).
    let url = format!("{base}/v1/kv/a?prev_value=1&prev_value=2");
    expect_json_error(&client, reqwest::Method::PUT, url, 400, "bad_request").await;

    server.abort();
    runtime.shutdown().await;
}
