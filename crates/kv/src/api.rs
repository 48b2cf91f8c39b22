//! The HTTP API: JSON over HTTP/1.1.
//!
//! | method and path | what |
//! |---|---|
//! | `PUT /v1/kv/{key}` | set (body = value); `?prev_value=` compare-and-set |
//! | `GET /v1/kv/{key}` | read; `?consistency=linearizable` (default), `lease`, `stale` |
//! | `DELETE /v1/kv/{key}` | delete |
//! | `GET /v1/kv?prefix=&after=&limit=` | list keys in order, a page at a time |
//! | `GET /v1/cluster` | members (with `replicated`: the log reached them), leader, term, indexes, followers' progress |
//! | `POST /v1/members` | add `{id, raft_addr, http_addr, learner}` |
//! | `POST /v1/members/{id}/promote` | learner to voter |
//! | `DELETE /v1/members/{id}` | remove |
//! | `POST /v1/leader/transfer` | `{to}` |
//! | `GET /healthz`, `GET /metrics` | liveness; Prometheus text |
//!
//! Writes (and `lease` reads) must reach the leader: a follower answers
//! them with `307 Temporary Redirect` to the same path and query at the
//! leader's HTTP address, so clients follow one hop and no request is
//! proxied through a node that might be partitioned; with no leader known,
//! `503`. Linearizable reads are served by any member through ReadIndex.
//! Errors are `{"error", "message", "leader"}` with a fitting status.

use crate::store::{Command, KvStore, Reply};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rudder_node::runtime::{PeerInfo, RequestError, Runtime};
use rudder_raft::{DropReason, MessageType, StateRole};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// The most items one listing returns.
pub const MAX_LIST_LIMIT: usize = 10_000;

type Rt = Runtime<KvStore>;

/// The runtime as the handlers hold it: one reference count to bump per
/// request, where cloning a `Runtime` bumps one per channel and lock in it.
type SharedRt = Arc<Rt>;

/// Counts of messages the network dropped, by type (for `/metrics`).
pub type DroppedByType = Arc<dyn Fn() -> Vec<(MessageType, u64)> + Send + Sync>;

/// What the handlers share: the runtime, the cluster's ID, and the
/// network's drop counts.
#[derive(Clone)]
struct AppState {
    rt: SharedRt,
    cluster_id: ClusterId,
    dropped: DroppedByType,
}

/// The cluster's ID, as `GET /v1/cluster` tells it (a member on empty
/// storage trusts only its own cluster's views).
#[derive(Clone, Copy)]
struct ClusterId(u64);

impl FromRef<AppState> for ClusterId {
    fn from_ref(state: &AppState) -> ClusterId {
        state.cluster_id
    }
}

impl FromRef<AppState> for SharedRt {
    fn from_ref(state: &AppState) -> SharedRt {
        state.rt.clone()
    }
}

/// The API's routes over `runtime`, a member of cluster `cluster_id`,
/// refusing bodies over `max_body` bytes; `dropped` reports the network's
/// dropped messages by type.
pub fn router(runtime: Rt, cluster_id: u64, dropped: DroppedByType, max_body: usize) -> Router {
    Router::new()
        .route("/v1/kv", get(list))
        .route(
            "/v1/kv/{*key}",
            get(get_key).put(put_key).delete(delete_key),
        )
        .route("/v1/cluster", get(cluster))
        .route("/v1/members", post(add_member))
        .route("/v1/members/{id}/promote", post(promote_member))
        .route("/v1/members/{id}", axum::routing::delete(remove_member))
        .route("/v1/leader/transfer", post(transfer))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint".into())
        })
        // After the routes: it applies to those added before it. (axum
        // still sets the `Allow` header.)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method".into(),
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(AppState {
            rt: Arc::new(runtime),
            cluster_id: ClusterId(cluster_id),
            dropped,
        })
}

/// A failed request, as the JSON body and status it answers with.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    leader: u64,
    location: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            code,
            message,
            leader: 0,
            location: None,
        }
    }

    fn bad_request(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            Json(json!({ "error": self.code, "message": self.message, "leader": self.leader }));
        let mut response = (self.status, body).into_response();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// The answer for a request only the leader serves, made on this node:
/// a redirect to the leader, or 503 with no leader known.
fn to_leader(rt: &Rt, leader: u64, uri: &OriginalUri) -> ApiError {
    let info = rt.members().get(&leader).cloned();
    match (leader, info) {
        (0, _) | (_, None) => ApiError {
            leader,
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                "no leader is known; retry shortly".into(),
            )
        },
        (l, Some(PeerInfo { http_addr, .. })) => {
            let path = uri.0.path_and_query().map_or("/", |p| p.as_str());
            ApiError {
                leader: l,
                location: Some(format!("http://{http_addr}{path}")),
                ..ApiError::new(
                    StatusCode::TEMPORARY_REDIRECT,
                    "not_leader",
                    format!("member {l} leads; the request goes there"),
                )
            }
        }
    }
}

/// What a runtime error means for the client.
fn request_error(rt: &Rt, e: RequestError, uri: &OriginalUri) -> ApiError {
    match e {
        RequestError::NotLeader { leader } => to_leader(rt, leader, uri),
        RequestError::Dropped(reason) => {
            // (A change behind another pending one is not dropped: the
            // runtime makes it wait its turn.)
            let status = match reason {
                DropReason::InvalidConfChange => StatusCode::BAD_REQUEST,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError::new(status, "dropped", format!("refused: {reason}"))
        }
        RequestError::Unknown => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome_unknown",
            "the write may or may not have been applied".into(),
        ),
        RequestError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "no answer in time; a write may still be applied".into(),
        ),
        RequestError::Refused(why) => ApiError::new(StatusCode::BAD_REQUEST, "refused", why),
        RequestError::Shutdown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the member is stopping".into(),
        ),
    }
}

/// Checks a key: not empty, at most [`MAX_KEY_BYTES`], no control
/// characters.
fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(format!(
            "the key is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "the key holds control characters".into(),
        ));
    }
    Ok(())
}

/// The key from the path (a JSON 400 if it does not decode, say to
/// invalid UTF-8), checked with [`check_key`].
fn key_of(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(key) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    check_key(&key)?;
    Ok(key)
}

/// A leader-only request on a follower goes to the leader.
fn require_leader(rt: &Rt, uri: &OriginalUri) -> Result<(), ApiError> {
    let l = *rt.leader().borrow();
    if l.role == Some(StateRole::Leader) {
        Ok(())
    } else {
        Err(to_leader(rt, l.leader, uri))
    }
}

/// A body the size limit or the connection cut short.
fn body(b: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let b = b.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the body is over the size limit".into(),
            )
        } else {
            ApiError::bad_request(format!("cannot read the body: {r}"))
        }
    })?;
    String::from_utf8(b.to_vec())
        .map_err(|_| ApiError::bad_request("the value is not UTF-8 text".into()))
}

#[derive(Deserialize)]
struct PutQuery {
    prev_value: Option<String>,
}

/// A read's answer, borrowed from the state it is read from: serialized
/// under the read lock, with no copy of the key or value.
#[derive(Serialize)]
struct ReadAnswer<'a> {
    key: &'a str,
    value: &'a str,
    index: u64,
}

#[derive(Serialize)]
struct WriteAnswer {
    key: String,
    prev_value: Option<String>,
    index: u64,
}

async fn write(
    rt: &Rt,
    uri: &OriginalUri,
    key: String,
    command: Command,
) -> Result<Json<WriteAnswer>, ApiError> {
    require_leader(rt, uri)?;
    match rt.propose(command.encode()).await {
        Ok(Reply::Done { index, prev_value }) => Ok(Json(WriteAnswer {
            key,
            prev_value,
            index,
        })),
        Ok(Reply::CompareFailed { actual }) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "compare_failed",
            match actual {
                Some(v) => format!("the key holds {v:?}"),
                None => "the key is missing".into(),
            },
        )),
        Ok(Reply::Invalid) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "invalid_command",
            "the command was not understood when applied".into(),
        )),
        Err(e) => Err(request_error(rt, e, uri)),
    }
}

async fn put_key(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    key: Result<Path<String>, PathRejection>,
    q: Result<Query<PutQuery>, QueryRejection>,
    value: Result<Bytes, BytesRejection>,
) -> Result<Json<WriteAnswer>, ApiError> {
    let key = key_of(key)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let value = body(value)?;
    let command = Command::Put {
        key: key.clone(),
        value,
        prev_value: q.prev_value,
    };
    write(&rt, &uri, key, command).await
}

async fn delete_key(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<WriteAnswer>, ApiError> {
    let key = key_of(key)?;
    write(&rt, &uri, key.clone(), Command::Delete { key }).await
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Linearizable: after a ReadIndex round (any member).
    #[default]
    Linearizable,
    /// The leader's own state, trusting its lease (check-quorum makes a
    /// leader that lost its quorum step down within an election timeout;
    /// safe while clocks run at about the same rate).
    Lease,
    /// Whatever this member has applied: may be behind.
    Stale,
}

#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    consistency: Consistency,
}

/// Waits until a read of `consistency` may be served here.
async fn read_gate(rt: &Rt, uri: &OriginalUri, consistency: Consistency) -> Result<(), ApiError> {
    match consistency {
        Consistency::Linearizable => rt
            .read_barrier()
            .await
            .map(|_| ())
            .map_err(|e| request_error(rt, e, uri)),
        Consistency::Lease => {
            require_leader(rt, uri)?;
            if rt.leader().borrow().caught_up {
                Ok(())
            } else {
                // A new leader has not applied what its predecessors
                // acknowledged yet: its state could be stale.
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "leader_catching_up",
                    "the leader is new and still applying; retry shortly".into(),
                ))
            }
        }
        Consistency::Stale => Ok(()),
    }
}

async fn get_key(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    key: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = key_of(key)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    read_gate(&rt, &uri, q.consistency).await?;
    let index = *rt.applied().borrow();
    let state = rt.state().read().unwrap_or_else(|e| e.into_inner());
    match state.get(&key) {
        Some(value) => Ok(Json(ReadAnswer {
            key: &key,
            value,
            index,
        })
        .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no key {key:?}"),
        )),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    /// Only keys after this one: the last key of the previous page.
    after: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    consistency: Consistency,
}

async fn list(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIST_LIMIT}"
        )));
    }
    read_gate(&rt, &uri, q.consistency).await?;
    let state = rt.state().read().unwrap_or_else(|e| e.into_inner());
    let (items, more) = state.scan(&q.prefix, q.after.as_deref(), limit);
    let items: Vec<_> = items
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    Ok(Json(json!({ "items": items, "more": more })).into_response())
}

async fn cluster(
    State(rt): State<SharedRt>,
    State(ClusterId(cluster_id)): State<ClusterId>,
    uri: OriginalUri,
) -> Result<Response, ApiError> {
    let status = rt.status().await.map_err(|e| request_error(&rt, e, &uri))?;
    let members = rt.members();
    let voters = status.config.voters.ids();
    let learners = &status.config.learners;
    let member_list: Vec<_> = voters
        .iter()
        .chain(learners.iter())
        .map(|id| {
            let info = members.get(id).cloned().unwrap_or_default();
            let role = if learners.contains(id) { "learner" } else { "voter" };
            json!({ "id": id, "raft_addr": info.raft_addr, "http_addr": info.http_addr, "role": role, "replicated": info.replicated })
        })
        .collect();
    let progress: Vec<_> = status
        .progress
        .iter()
        .map(|(id, p)| {
            json!({ "id": id, "match": p.matched, "next": p.next_idx, "state": format!("{:?}", p.state).to_lowercase() })
        })
        .collect();
    Ok(Json(json!({
        "cluster_id": cluster_id,
        "id": rt.id(),
        "leader": status.basic.soft_state.leader_id,
        "role": format!("{:?}", status.basic.soft_state.raft_state).to_lowercase(),
        "term": status.basic.hard_state.term,
        "commit": status.basic.hard_state.commit,
        "applied": *rt.applied().borrow(),
        "members": member_list,
        "progress": progress,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct NewMember {
    id: u64,
    raft_addr: String,
    http_addr: String,
    #[serde(default)]
    learner: bool,
}

/// Whether `addr` ends in `:port` after a host, and holds nothing that
/// cannot go in a URL's authority.
fn has_port(addr: &str) -> bool {
    let clean = !addr.is_empty()
        && addr
            .chars()
            .all(|c| c.is_ascii_graphic() && !"/?#@".contains(c));
    clean
        && addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        })
}

/// A JSON body that does not parse, with the status axum found fitting
/// (400, 413, 415, 422), in our error format.
fn json_rejection(r: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError::new(r.status(), "bad_request", r.body_text())
}

fn membership(cs: rudder_raft::ConfState) -> Response {
    Json(json!({ "voters": cs.voters, "learners": cs.learners })).into_response()
}

async fn add_member(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    m: Result<Json<NewMember>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(m) = m.map_err(json_rejection)?;
    if m.id == 0 {
        return Err(ApiError::bad_request("member IDs start at 1".into()));
    }
    if !has_port(&m.http_addr) {
        return Err(ApiError::bad_request(format!(
            "http_addr {:?} is not host:port",
            m.http_addr
        )));
    }
    require_leader(&rt, &uri)?;
    // Resolved here, once, so no member's loop ever waits for DNS.
    let raft_addr = match tokio::net::lookup_host(&m.raft_addr)
        .await
        .map(|mut a| a.next())
    {
        Ok(Some(addr)) => addr.to_string(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "raft_addr {:?} does not resolve to host:port",
                m.raft_addr
            )))
        }
    };
    let info = PeerInfo {
        raft_addr,
        http_addr: m.http_addr,
        replicated: false,
    };
    let cs = rt
        .add_member(m.id, &info, m.learner)
        .await
        .map_err(|e| request_error(&rt, e, &uri))?;
    Ok(membership(cs))
}

/// A member ID from the path, or a JSON 400.
fn member_id(
    p: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<u64, ApiError> {
    p.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

async fn promote_member(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let id = member_id(id)?;
    require_leader(&rt, &uri)?;
    let status = rt.status().await.map_err(|e| request_error(&rt, e, &uri))?;
    if !status.config.learners.contains(&id) {
        return Err(ApiError::bad_request(format!(
            "member {id} is not a learner"
        )));
    }
    let cs = rt
        .promote_member(id)
        .await
        .map_err(|e| request_error(&rt, e, &uri))?;
    Ok(membership(cs))
}

async fn remove_member(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let id = member_id(id)?;
    require_leader(&rt, &uri)?;
    let cs = rt
        .remove_member(id)
        .await
        .map_err(|e| request_error(&rt, e, &uri))?;
    Ok(membership(cs))
}

#[derive(Deserialize)]
struct Transfer {
    to: u64,
}

async fn transfer(
    State(rt): State<SharedRt>,
    uri: OriginalUri,
    t: Result<Json<Transfer>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(t) = t.map_err(json_rejection)?;
    rt.transfer_leadership(t.to)
        .await
        .map_err(|e| request_error(&rt, e, &uri))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "transferring_to": t.to })),
    )
        .into_response())
}

async fn healthz(State(rt): State<SharedRt>) -> Response {
    let l = *rt.leader().borrow();
    let ok = rt.is_running();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ok": ok, "id": rt.id(), "leader": l.leader })),
    )
        .into_response()
}

async fn metrics(State(AppState { rt, dropped, .. }): State<AppState>) -> Response {
    let m = rt.metrics();
    let l = *rt.leader().borrow();
    let commit = rt.status().await.map_or(0, |s| s.basic.hard_state.commit);
    let leads = u64::from(l.role == Some(StateRole::Leader));
    let (gauge, counter) = ("gauge", "counter");
    let single: [(&str, &str, &str, u64); 12] = [
        ("rudder_term", "The current term.", gauge, l.term),
        ("rudder_is_leader", "1 if this member leads.", gauge, leads),
        (
            "rudder_commit_index",
            "The highest index known committed.",
            gauge,
            commit,
        ),
        (
            "rudder_applied_index",
            "The last index applied.",
            gauge,
            *rt.applied().borrow(),
        ),
        (
            "rudder_proposals_total",
            "Proposals made here.",
            counter,
            m.proposals.load(Relaxed),
        ),
        (
            "rudder_proposals_applied_total",
            "Proposals applied and answered.",
            counter,
            m.proposals_applied.load(Relaxed),
        ),
        (
            "rudder_proposals_failed_total",
            "Proposals that failed.",
            counter,
            m.proposals_failed.load(Relaxed),
        ),
        (
            "rudder_leader_changes_total",
            "Times the known leader changed.",
            counter,
            m.leader_changes.load(Relaxed),
        ),
        (
            "rudder_reads_total",
            "Linearizable reads answered.",
            counter,
            m.reads.load(Relaxed),
        ),
        (
            "rudder_read_rounds_total",
            "ReadIndex rounds.",
            counter,
            m.read_rounds.load(Relaxed),
        ),
        (
            "rudder_snapshots_total",
            "Snapshots taken.",
            counter,
            m.snapshots.load(Relaxed),
        ),
        (
            "rudder_peer_unreachable_total",
            "Times a peer was reported unreachable.",
            counter,
            m.unreachable.load(Relaxed),
        ),
    ];
    let mut out = String::new();
    for (name, help, kind, value) in single {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let by_type = [
        (
            "rudder_messages_sent_total",
            "Messages sent, by type.",
            m.sent(),
        ),
        (
            "rudder_messages_dropped_total",
            "Messages dropped before sending, by type.",
            dropped(),
        ),
    ];
    for (name, help, counts) in by_type {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (t, n) in counts {
            let _ = writeln!(out, "{name}{{type=\"{t:?}\"}} {n}");
        }
    }
    let h = m.fsync_histogram();
    let name = "rudder_fsync_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time to save a Ready durably.\n# TYPE {name} histogram"
    );
    for le in [
        100u64, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    ] {
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {}",
            le as f64 / 1e6,
            h.count_between(0, le)
        );
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {n}\n{name}_sum {sum}\n{name}_count {n}",
        n = h.len()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
