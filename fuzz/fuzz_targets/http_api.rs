//! Fuzzes the KV server's HTTP API with requests a client could send.
//!
//! The input is structured (`arbitrary`): a method (the usual ones and
//! odd ones), a target (each route with fuzzer-chosen keys, IDs and query
//! parameters, percent-encoded or not, or any path and query at all),
//! headers from a list of names that matter with arbitrary values, and a
//! body (raw bytes, or JSON shaped like what the membership and transfer
//! routes take). The request goes in-process, with
//! `tower::ServiceExt::oneshot`, to the router `rudder_kv::api::router`
//! builds over a real one-member runtime on a `MemFs` disk; the member is
//! kept across runs (in a `OnceLock`, on a Tokio runtime of its own) and
//! rebuilt whenever a request changed its membership or it stopped
//! leading, so every run meets a working cluster.
//!
//! Checks: nothing panics; every request is answered within a few
//! seconds (the runtime's own request timeout is shorter); no answer is a
//! 500; and every 4xx and 5xx answer (and every redirect) carries the
//! API's JSON error body, `{"error": string, "message": string, "leader":
//! number}`, with a JSON content type (`HEAD` answers have no body).
//!
//! One thing is kept out: a `raft_addr` in an add-member body whose host
//! is not an IP address is resolved with DNS, which on a machine without
//! a resolver can wait longer than any sane per-run limit; such requests
//! are skipped.

#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use rudder_kv::api;
use rudder_kv::store::KvStore;
use rudder_node::runtime::{
    Inbox, Members, Network, NetworkEvent, PeerInfo, Runtime, RuntimeConfig,
};
use rudder_raft::{Message, StateRole};
use rudder_storage::fs::MemFs;
use rudder_storage::wal::WalOptions;
use rudder_storage::{DiskStorage, Options};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// The body limit the router is built with: small, so 413 is reachable.
const MAX_BODY: usize = 2048;

#[derive(Arbitrary, Debug)]
enum Verb {
    Get,
    Put,
    Post,
    Delete,
    Head,
    Patch,
    Options,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Target {
    Key {
        key: Text,
        query: Vec<(Text, Text)>,
    },
    List {
        query: Vec<(Text, Text)>,
    },
    Cluster,
    Members,
    Promote(Text),
    Member(Text),
    Transfer,
    Healthz,
    Metrics,
    /// Any path and query (requests whose URI does not parse are skipped:
    /// the HTTP server would refuse them before the router).
    Raw(String),
}

/// A piece of a path or query: percent-encoded as a client would, or
/// pasted raw (which may leave stray `%`s and invalid escapes).
#[derive(Arbitrary, Debug)]
struct Text {
    raw: bool,
    text: String,
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Bytes(Vec<u8>),
    Member {
        id: u64,
        raft: RaftAddr,
        http_addr: String,
        learner: Option<bool>,
        extra: Option<(String, u64)>,
    },
    Transfer {
        to: Option<i64>,
    },
}

/// A `raft_addr` that needs no DNS: an IP and port, or a string that does
/// not look like `host:port` at all.
#[derive(Arbitrary, Debug)]
enum RaftAddr {
    V4([u8; 4], u16),
    V6([u16; 8], u16),
    Junk(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    verb: Verb,
    target: Target,
    headers: Vec<(u8, Vec<u8>)>,
    payload: Payload,
}

/// The headers the fuzzer may set.
const HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "accept",
    "host",
    "expect",
    "connection",
    "x-forwarded-for",
];

fuzz_target!(|input: Input| run(input));

/// Percent-encodes everything but unreserved characters.
fn encode(t: &Text) -> String {
    if t.raw {
        return t.text.clone();
    }
    let mut out = String::new();
    for b in t.text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(pairs: &[(Text, Text)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

fn uri(target: &Target) -> String {
    match target {
        Target::Key { key, query: q } => format!("/v1/kv/{}{}", encode(key), query(q)),
        Target::List { query: q } => format!("/v1/kv{}", query(q)),
        Target::Cluster => "/v1/cluster".into(),
        Target::Members => "/v1/members".into(),
        Target::Promote(id) => format!("/v1/members/{}/promote", encode(id)),
        Target::Member(id) => format!("/v1/members/{}", encode(id)),
        Target::Transfer => "/v1/leader/transfer".into(),
        Target::Healthz => "/healthz".into(),
        Target::Metrics => "/metrics".into(),
        Target::Raw(s) => s.clone(),
    }
}

fn body(payload: &Payload) -> Vec<u8> {
    match payload {
        Payload::Bytes(b) => b.clone(),
        Payload::Member {
            id,
            raft,
            http_addr,
            learner,
            extra,
        } => {
            let raft_addr = match raft {
                RaftAddr::V4(ip, port) => format!("{}:{port}", IpAddr::from(*ip)),
                RaftAddr::V6(ip, port) => format!("[{}]:{port}", IpAddr::from(*ip)),
                RaftAddr::Junk(n) => "x".repeat(usize::from(*n % 8)),
            };
            let mut v = serde_json::json!({
                "id": id, "raft_addr": raft_addr, "http_addr": http_addr,
            });
            if let Some(l) = learner {
                v["learner"] = (*l).into();
            }
            if let Some((k, n)) = extra {
                v[k.as_str()] = (*n).into();
            }
            serde_json::to_vec(&v).expect("JSON encodes")
        }
        Payload::Transfer { to } => match to {
            Some(to) => format!("{{\"to\":{to}}}").into_bytes(),
            None => b"{}".to_vec(),
        },
    }
}

/// Whether the body names a `raft_addr` that would be resolved with DNS.
fn needs_dns(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let Some(addr) = v.get("raft_addr").and_then(|a| a.as_str()) else {
        return false;
    };
    addr.parse::<std::net::SocketAddr>().is_err() && addr.contains(':')
}

/// A network with nobody on it: a one-member cluster sends nothing that
/// matters.
struct Nobody;

impl Network for Nobody {
    fn send(&self, _msgs: Vec<Message>) {}
    fn add_peer(&self, _id: u64, _info: &PeerInfo) {}
    fn remove_peer(&self, _id: u64) {}
}

/// One running member, its router, and the inbox senders it must not see
/// closed.
struct Member {
    runtime: Runtime<KvStore>,
    router: Router,
    _inbox: (mpsc::Sender<Message>, mpsc::UnboundedSender<NetworkEvent>),
}

struct Harness {
    rt: tokio::runtime::Runtime,
    member: Mutex<Option<Member>>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| Harness {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime"),
        member: Mutex::new(None),
    })
}

/// Starts a fresh one-member cluster on an empty in-memory disk and waits
/// until it leads.
async fn start_member() -> Member {
    let fs = Arc::new(MemFs::new(1));
    let opts = Options {
        wal: WalOptions {
            segment_size: 1 << 20,
        },
        ..Options::default()
    };
    let storage = DiskStorage::open(fs, Path::new("/member"), opts).expect("storage opens");
    let mut config = RuntimeConfig::new(1);
    config.tick = Duration::from_millis(2);
    config.request_timeout = Duration::from_millis(500);
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
    config.bootstrap = true;
    let (msg_tx, msg_rx) = mpsc::channel(16);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let runtime = Runtime::start(
        config,
        storage,
        KvStore::default(),
        Nobody,
        Inbox {
            messages: msg_rx,
            events: ev_rx,
        },
    )
    .expect("the runtime starts");
    let mut leader = runtime.leader();
    tokio::time::timeout(
        Duration::from_secs(10),
        leader.wait_for(|l| l.role == Some(StateRole::Leader) && l.caught_up),
    )
    .await
    .expect("a one-member cluster elects itself")
    .expect("the runtime runs");
    let router = api::router(runtime.clone(), 1, Arc::new(Vec::new), MAX_BODY);
    Member {
        runtime,
        router,
        _inbox: (msg_tx, ev_tx),
    }
}

/// Whether the member is still a healthy one-member cluster.
async fn healthy(m: &Member) -> bool {
    let leads = {
        let l = *m.runtime.leader().borrow();
        l.role == Some(StateRole::Leader)
    };
    if !leads || !m.runtime.is_running() {
        return false;
    }
    match m.runtime.status().await {
        Ok(s) => s.config.voters.ids().len() == 1 && s.config.learners.is_empty(),
        Err(_) => false,
    }
}

fn run(input: Input) {
    let method = match &input.verb {
        Verb::Get => Method::GET,
        Verb::Put => Method::PUT,
        Verb::Post => Method::POST,
        Verb::Delete => Method::DELETE,
        Verb::Head => Method::HEAD,
        Verb::Patch => Method::PATCH,
        Verb::Options => Method::OPTIONS,
        Verb::Other(m) => match Method::from_bytes(m.as_bytes()) {
            Ok(m) => m,
            Err(_) => return,
        },
    };
    let body = body(&input.payload);
    if needs_dns(&body) {
        return;
    }
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri(&input.target));
    for (name, value) in &input.headers {
        let name = HeaderName::from_static(HEADERS[usize::from(*name) % HEADERS.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            req = req.header(name, value);
        }
    }
    let Ok(req) = req.body(Body::from(body)) else {
        return; // not a request an HTTP server would pass on
    };
    let h = harness();
    h.rt.block_on(async {
        let mut slot = h.member.lock().unwrap();
        if slot.is_none() {
            *slot = Some(start_member().await);
        }
        let member = slot.as_ref().expect("started");
        let answer =
            tokio::time::timeout(Duration::from_secs(5), member.router.clone().oneshot(req))
                .await
                .expect("the API answered within 5 s")
                .expect("the router is infallible");
        let status = answer.status();
        let content_type = answer
            .headers()
            .get("content-type")
            .map(|v| v.as_bytes().to_vec());
        let bytes = axum::body::to_bytes(answer.into_body(), 16 << 20)
            .await
            .expect("the answer's body reads");
        check(&method, status, content_type.as_deref(), &bytes);
        if !healthy(member).await {
            let old = slot.take().expect("started");
            old.runtime.shutdown().await;
        }
    });
}

fn check(method: &Method, status: StatusCode, content_type: Option<&[u8]>, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a 500 for {method}: {text}"
    );
    let is_error = status.is_client_error() || status.is_server_error() || status.is_redirection();
    if !is_error || *method == Method::HEAD {
        return;
    }
    assert!(
        content_type.is_some_and(|c| c.starts_with(b"application/json")),
        "{status} for {method} without a JSON content type ({:?}): {text:?}",
        content_type.map(String::from_utf8_lossy)
    );
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("{status} for {method} with a body that is not JSON ({e}): {text:?}")
    });
    assert!(
        v.get("error").is_some_and(|e| e.is_string())
            && v.get("message").is_some_and(|e| e.is_string())
            && v.get("leader").is_some_and(|e| e.is_u64()),
        "{status} for {method} without the error fields: {text}"
    );
}
