//! The command line's client commands: `put`, `get`, `del`, `members` and
//! `status`, each one request over the HTTP API ([`crate::api`]).
//!
//! A request goes to the endpoints in the order given: one that cannot be
//! reached, or that knows no leader, hands the request to the next. A
//! follower answers a write (or a lease read) with `307` to the leader,
//! which is followed here by hand, at most [`MAX_REDIRECTS`] hops, so that
//! a leader that cannot be reached also moves on to the next endpoint.
//! Reaching no server is an error, and so is any error answer: its message
//! is printed and the command exits non-zero.

use anyhow::{bail, Context};
use reqwest::{header, Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// The endpoints used when none are given: those of `rudder demo`.
pub const DEFAULT_ENDPOINTS: &str = "127.0.0.1:2379,127.0.0.1:3379,127.0.0.1:4379";
/// The most redirects one request follows before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// How long a command waits to connect to one endpoint before trying the
/// next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command waits for one answer (a write waits for a quorum).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The servers to talk to.
#[derive(clap::Args, Debug, Clone)]
pub struct EndpointArgs {
    /// Servers to contact, tried in order: comma-separated `host:port` or
    /// `http://host:port`.
    #[arg(long, value_delimiter = ',', value_parser = parse_endpoint, default_value = DEFAULT_ENDPOINTS)]
    pub endpoints: Vec<Url>,
}

/// `rudder put KEY VALUE`.
#[derive(clap::Args, Debug, Clone)]
pub struct PutArgs {
    /// The key to set.
    #[arg(value_parser = parse_key)]
    pub key: String,
    /// Its new value (UTF-8 text).
    pub value: String,
    /// Set only if the key holds exactly this value now (compare-and-set).
    #[arg(long)]
    pub prev_value: Option<String>,
    /// The servers to talk to.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `rudder get KEY`.
#[derive(clap::Args, Debug, Clone)]
pub struct GetArgs {
    /// The key to read.
    #[arg(value_parser = parse_key)]
    pub key: String,
    /// How fresh the value must be.
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// The servers to talk to.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `rudder del KEY`.
#[derive(clap::Args, Debug, Clone)]
pub struct DelArgs {
    /// The key to delete.
    #[arg(value_parser = parse_key)]
    pub key: String,
    /// The servers to talk to.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// How fresh a read must be: the API's `consistency` parameter.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// After a ReadIndex round: sees every write acknowledged before it.
    Linearizable,
    /// The leader's state, trusting its lease (no round to a quorum).
    Lease,
    /// Whatever the member asked has applied: may be behind.
    Stale,
}

impl Consistency {
    /// The value of the `consistency` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Stale => "stale",
        }
    }
}

/// Parses an endpoint, `host:port` or an `http://` URL with no path, into
/// the URL the API's paths are joined to.
pub fn parse_endpoint(spec: &str) -> anyhow::Result<Url> {
    let spec = spec.trim();
    if spec.is_empty() {
        bail!("an endpoint is empty");
    }
    let url = if spec.contains("://") {
        Url::parse(spec)
    } else {
        Url::parse(&format!("http://{spec}"))
    }
    .with_context(|| format!("{spec:?} is not host:port or an http:// URL"))?;
    if url.scheme() != "http" {
        bail!("{spec:?}: only http:// is spoken");
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("{spec:?} names no host");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        bail!("{spec:?}: an endpoint is a host and port, with no path");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("{spec:?}: an endpoint carries no user name or password");
    }
    Ok(url)
}

/// Checks a key given on the command line: the server refuses an empty
/// one, and it would name another path.
fn parse_key(key: &str) -> anyhow::Result<String> {
    if key.is_empty() {
        bail!("the key is empty");
    }
    Ok(key.to_owned())
}

/// The URL of `path` (segments, each percent-encoded as needed) with
/// `query` at `base`.
pub fn api_url(base: &Url, path: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        // An http URL always has path segments; `base` came from `parse_endpoint`.
        segments.clear().extend(path);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// An HTTP client for talking to a cluster: redirects are left to the
/// caller (the commands follow them, the load generator counts them),
/// proxies are never used, and each request gives up after `timeout`.
/// Up to `idle_per_host` connections per server are kept open for reuse.
pub fn http_client(timeout: Duration, idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .pool_max_idle_per_host(idle_per_host)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// An error answer of the API: `{"error", "message", "leader"}`, or, for a
/// body that is not one, the status and the body's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code, such as `not_found` or `no_leader`.
    pub code: String,
    /// The explanation for people.
    pub message: String,
}

impl ErrorReply {
    /// Reads an error answer from its status and body.
    pub fn parse(status: StatusCode, body: &[u8]) -> ErrorReply {
        #[derive(Deserialize)]
        struct Wire {
            error: String,
            #[serde(default)]
            message: String,
        }
        match serde_json::from_slice::<Wire>(body) {
            Ok(w) => ErrorReply {
                status,
                code: w.error,
                message: w.message,
            },
            Err(_) => ErrorReply {
                status,
                code: format!("http_{}", status.as_u16()),
                message: String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
            },
        }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{} ({})", self.code, self.status)
        } else {
            write!(f, "{} ({}, {})", self.message, self.code, self.status)
        }
    }
}

impl std::error::Error for ErrorReply {}

/// A complete answer: its status and body, and the URL that gave it.
#[derive(Debug)]
pub struct Answer {
    /// The final status (never a redirect).
    pub status: StatusCode,
    /// The body, read whole.
    pub body: bytes::Bytes,
    /// The URL that answered, after any redirects.
    pub url: Url,
}

impl Answer {
    /// The body as `T` for a success, or the [`ErrorReply`] it carries.
    pub fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        if !self.status.is_success() {
            return Err(ErrorReply::parse(self.status, &self.body).into());
        }
        serde_json::from_slice(&self.body)
            .with_context(|| format!("an unexpected answer from {}", self.url))
    }
}

/// One request to try at each endpoint: a method, a path and query, and a
/// body.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The path's segments, unencoded (`["v1", "kv", key]`).
    pub path: &'a [&'a str],
    /// The query's pairs, unencoded.
    pub query: &'a [(&'a str, &'a str)],
    /// The body, if any.
    pub body: Option<bytes::Bytes>,
}

impl<'a> Request<'a> {
    /// A request with no query and no body.
    pub fn new(method: Method, path: &'a [&'a str]) -> Request<'a> {
        Request {
            method,
            path,
            query: &[],
            body: None,
        }
    }
}

/// Why one endpoint could not answer, so the next one is tried.
enum Skip {
    /// It, or the leader it pointed to, could not be reached: why.
    Unreachable(String),
    /// It knows no leader.
    NoLeader(ErrorReply),
}

/// The error when no endpoint could be reached: each one with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// Each endpoint tried, with why it could not be reached.
    pub reasons: Vec<(String, String)>,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no server could be reached (")?;
        for (i, (endpoint, reason)) in self.reasons.iter().enumerate() {
            let sep = if i > 0 { "; " } else { "" };
            write!(f, "{sep}{endpoint}: {reason}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for Unreachable {}

/// An endpoint as people write it: the URL without the final slash.
pub fn endpoint_name(url: &Url) -> &str {
    url.as_str().trim_end_matches('/')
}

/// Why a request got no answer, in a few words: its innermost cause.
pub fn failure_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// Sends `request` to `endpoints` in order until one answers (see the
/// module's documentation), and returns that answer, success or not.
/// With every endpoint skipped, the error is a server's [`ErrorReply`]
/// saying it knows no leader, or else [`Unreachable`].
pub async fn send(
    http: &reqwest::Client,
    endpoints: &[Url],
    request: &Request<'_>,
) -> anyhow::Result<Answer> {
    let mut reasons = Vec::new();
    let mut no_leader = None;
    for endpoint in endpoints {
        let url = api_url(endpoint, request.path, request.query);
        match send_to(http, url, request).await? {
            Ok(answer) => return Ok(answer),
            Err(Skip::Unreachable(why)) => reasons.push((endpoint_name(endpoint).to_owned(), why)),
            Err(Skip::NoLeader(reply)) => no_leader = no_leader.or(Some(reply)),
        }
    }
    match no_leader {
        Some(reply) => Err(reply.into()),
        None => Err(Unreachable { reasons }.into()),
    }
}

/// Sends `request` to `url`, following redirects. The outer error ends
/// the whole attempt (the request may have been acted on); the inner one
/// moves on to the next endpoint (it certainly was not).
async fn send_to(
    http: &reqwest::Client,
    mut url: Url,
    request: &Request<'_>,
) -> anyhow::Result<Result<Answer, Skip>> {
    let method = &request.method;
    for hop in 0..=MAX_REDIRECTS {
        let mut builder = http.request(method.clone(), url.clone());
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() && hop == 0 => {
                return Ok(Err(Skip::Unreachable(failure_reason(&e))))
            }
            Err(e) if e.is_connect() => {
                let why = format!("redirected to {url}, unreachable: {}", failure_reason(&e));
                return Ok(Err(Skip::Unreachable(why)));
            }
            Err(e) => bail!("{method} {url}: {}", failure_reason(&e)),
        };
        let status = response.status();
        if matches!(
            status,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        ) {
            url = redirect_target(&url, response.headers())?;
            continue;
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => bail!("{method} {url}: reading the answer: {}", failure_reason(&e)),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let reply = ErrorReply::parse(status, &body);
            if reply.code == "no_leader" {
                return Ok(Err(Skip::NoLeader(reply)));
            }
        }
        return Ok(Ok(Answer { status, body, url }));
    }
    bail!("{method} {url}: more than {MAX_REDIRECTS} redirects")
}

/// Where a redirect from `from` points: its `Location`, an http URL.
fn redirect_target(from: &Url, headers: &header::HeaderMap) -> anyhow::Result<Url> {
    let location = headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .with_context(|| format!("{from} redirected without a location"))?;
    let to = from
        .join(location)
        .with_context(|| format!("{from} redirected to {location:?}, not a URL"))?;
    if to.scheme() != "http" {
        bail!("{from} redirected to {to}, not an http:// URL");
    }
    Ok(to)
}

/// What a write answers: `PUT` and `DELETE` of a key.
#[derive(Deserialize, Debug)]
struct WriteResult {
    prev_value: Option<String>,
    index: u64,
}

/// What a read answers.
#[derive(Deserialize, Debug)]
struct ReadResult {
    value: String,
}

/// `GET /v1/cluster`: one member's view of the cluster.
#[derive(Deserialize, Debug, Clone)]
pub struct ClusterView {
    /// Its cluster's ID (0 from a server that does not say, whose view a
    /// member on empty storage then ignores).
    #[serde(default)]
    pub cluster_id: u64,
    /// The member that answered.
    pub id: u64,
    /// The leader it knows, 0 for none.
    pub leader: u64,
    /// Its role: `leader`, `follower`, `candidate`, …
    #[serde(default)]
    pub role: String,
    /// Its term.
    pub term: u64,
    /// Its commit index.
    pub commit: u64,
    /// The last index it applied.
    pub applied: u64,
    /// The members, voters then learners.
    pub members: Vec<MemberView>,
    /// Each member's replication progress, known only on the leader.
    #[serde(default)]
    pub progress: Vec<ProgressView>,
}

/// A member in [`ClusterView`].
#[derive(Deserialize, Debug, Clone)]
pub struct MemberView {
    /// Its ID.
    pub id: u64,
    /// Where its peers reach it.
    pub raft_addr: String,
    /// Where clients reach it.
    pub http_addr: String,
    /// `voter` or `learner`.
    pub role: String,
    /// A leader has seen it hold the log (so an empty data directory under
    /// its ID means lost data).
    #[serde(default)]
    pub replicated: bool,
}

/// A member's replication progress in [`ClusterView`].
#[derive(Deserialize, Debug, Clone)]
pub struct ProgressView {
    /// The member.
    pub id: u64,
    /// The highest index it is known to hold.
    #[serde(rename = "match")]
    pub matched: u64,
    /// The next index the leader sends it.
    pub next: u64,
    /// `probe`, `replicate` or `snapshot`.
    pub state: String,
}

impl ClusterView {
    /// The leader's HTTP endpoint, if a leader is known and listed.
    pub fn leader_endpoint(&self) -> Option<anyhow::Result<Url>> {
        let leader = self
            .members
            .iter()
            .find(|m| m.id == self.leader && self.leader != 0)?;
        Some(
            parse_endpoint(&leader.http_addr)
                .with_context(|| format!("the leader's (member {}) HTTP address", leader.id)),
        )
    }
}

const CLUSTER_PATH: &[&str] = &["v1", "cluster"];

/// The cluster as the first endpoint that answers sees it.
pub async fn cluster_view(
    http: &reqwest::Client,
    endpoints: &[Url],
) -> anyhow::Result<ClusterView> {
    send(http, endpoints, &Request::new(Method::GET, CLUSTER_PATH))
        .await?
        .json()
        .context("reading the cluster's status")
}

/// The client for one command.
fn command_client() -> anyhow::Result<reqwest::Client> {
    http_client(REQUEST_TIMEOUT, 1)
}

/// `rudder put`: sets a key and prints the index of the write.
pub async fn put(args: PutArgs) -> anyhow::Result<()> {
    let http = command_client()?;
    let query: Vec<(&str, &str)> = args
        .prev_value
        .iter()
        .map(|p| ("prev_value", p.as_str()))
        .collect();
    let request = Request {
        method: Method::PUT,
        path: &["v1", "kv", &args.key],
        query: &query,
        body: Some(args.value.into()),
    };
    let written: WriteResult = send(&http, &args.endpoints.endpoints, &request)
        .await
        .and_then(|a| a.json())
        .with_context(|| format!("put {:?}", args.key))?;
    let what = if written.prev_value.is_some() {
        "replaced"
    } else {
        "created"
    };
    println!("OK: {what} at index {}", written.index);
    Ok(())
}

/// `rudder get`: prints the key's value.
pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let http = command_client()?;
    let path = ["v1", "kv", &args.key];
    let request = Request {
        query: &[("consistency", args.consistency.as_str())],
        ..Request::new(Method::GET, &path)
    };
    let read: ReadResult = send(&http, &args.endpoints.endpoints, &request)
        .await
        .and_then(|a| a.json())
        .with_context(|| format!("get {:?}", args.key))?;
    println!("{}", read.value);
    Ok(())
}

/// `rudder del`: deletes a key and says whether it was there.
pub async fn del(args: DelArgs) -> anyhow::Result<()> {
    let http = command_client()?;
    let path = ["v1", "kv", &args.key];
    let request = Request::new(Method::DELETE, &path);
    let written: WriteResult = send(&http, &args.endpoints.endpoints, &request)
        .await
        .and_then(|a| a.json())
        .with_context(|| format!("del {:?}", args.key))?;
    match written.prev_value {
        Some(_) => println!("OK: deleted at index {}", written.index),
        None => println!("OK: there was no such key (index {})", written.index),
    }
    Ok(())
}

/// `rudder members`: the members, as the first endpoint that answers knows
/// them.
pub async fn members(args: EndpointArgs) -> anyhow::Result<()> {
    let http = command_client()?;
    let view = cluster_view(&http, &args.endpoints).await?;
    print!("{}", members_table(&view));
    Ok(())
}

/// The members of `view`, one line each: whether the log has reached
/// each (`REPLICATED`), the leader marked.
fn members_table(view: &ClusterView) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "ROLE".into(),
        "HTTP".into(),
        "RAFT".into(),
        "REPLICATED".into(),
        String::new(),
    ]];
    for m in &view.members {
        let leads = if m.id == view.leader { "leader" } else { "" };
        let replicated = if m.replicated { "yes" } else { "not yet" };
        rows.push([
            m.id.to_string(),
            m.role.clone(),
            m.http_addr.clone(),
            m.raft_addr.clone(),
            replicated.into(),
            leads.into(),
        ]);
    }
    table(&rows)
}

/// `rudder status`: each endpoint's view (ID, role, leader, term, indexes),
/// then the leader's view of its followers' progress. An error only when
/// no endpoint answers.
pub async fn status(args: EndpointArgs) -> anyhow::Result<()> {
    let http = command_client()?;
    let mut rows = vec![[
        "ENDPOINT", "ID", "ROLE", "LEADER", "TERM", "COMMIT", "APPLIED",
    ]
    .map(String::from)
    .to_vec()];
    let mut leader_view = None;
    let mut answered = 0;
    for endpoint in &args.endpoints {
        match cluster_view(&http, std::slice::from_ref(endpoint)).await {
            Ok(view) => {
                answered += 1;
                rows.push(vec![
                    endpoint_name(endpoint).to_owned(),
                    view.id.to_string(),
                    view.role.clone(),
                    view.leader.to_string(),
                    view.term.to_string(),
                    view.commit.to_string(),
                    view.applied.to_string(),
                ]);
                if view.id == view.leader && !view.progress.is_empty() {
                    leader_view = Some(view);
                }
            }
            Err(e) => {
                let why = match e.downcast_ref::<Unreachable>() {
                    Some(Unreachable { reasons }) if reasons.len() == 1 => reasons[0].1.clone(),
                    _ => format!("{e:#}"),
                };
                rows.push(vec![
                    endpoint_name(endpoint).to_owned(),
                    format!("unreachable: {why}"),
                ]);
            }
        }
    }
    print!("{}", table(&rows));
    if answered == 0 {
        bail!("no endpoint answered");
    }
    if let Some(view) = leader_view {
        println!("\nreplication, as leader {} sees it:", view.id);
        let mut rows = vec![["ID", "MATCH", "NEXT", "STATE"].map(String::from).to_vec()];
        for p in &view.progress {
            rows.push(vec![
                p.id.to_string(),
                p.matched.to_string(),
                p.next.to_string(),
                p.state.clone(),
            ]);
        }
        print!("{}", table(&rows));
    }
    Ok(())
}

/// Lays out rows in columns as wide as their widest cell (a row's last
/// cell is never padded, so a short row may carry a long remark).
fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        let row = row.as_ref();
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let row = row.as_ref();
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::StatusCode as AxStatus;
    use axum::response::IntoResponse;
    use axum::routing::put as put_route;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli<T: clap::Args> {
        #[command(flatten)]
        args: T,
    }

    fn parse<T: clap::Args>(argv: &[&str]) -> Result<T, clap::Error> {
        Cli::<T>::try_parse_from(std::iter::once("rudder").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    #[test]
    fn endpoints_are_host_port_or_http_urls() {
        assert_eq!(
            parse_endpoint("127.0.0.1:2379").unwrap().as_str(),
            "http://127.0.0.1:2379/"
        );
        assert_eq!(
            parse_endpoint("localhost:2379").unwrap().as_str(),
            "http://localhost:2379/"
        );
        assert_eq!(
            parse_endpoint(" http://10.0.0.1:80/ ").unwrap().as_str(),
            "http://10.0.0.1/"
        );
        assert_eq!(
            parse_endpoint("[::1]:2379").unwrap().as_str(),
            "http://[::1]:2379/"
        );
        for bad in [
            "",
            " ",
            "https://h:1",
            "http://h:1/v1",
            "h:1?x=1",
            "http://u:p@h:1",
            "h:99999",
            "ftp://h",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn endpoints_default_to_the_demo_and_split_on_commas() {
        let args: EndpointArgs = parse(&[]).unwrap();
        let got: Vec<String> = args.endpoints.iter().map(Url::to_string).collect();
        assert_eq!(
            got,
            [
                "http://127.0.0.1:2379/",
                "http://127.0.0.1:3379/",
                "http://127.0.0.1:4379/"
            ]
        );
        let args: EndpointArgs = parse(&["--endpoints", "a:1,http://b:2"]).unwrap();
        assert_eq!(args.endpoints.len(), 2);
        assert!(parse::<EndpointArgs>(&["--endpoints", "a:1,,b:2"]).is_err());
        assert!(parse::<EndpointArgs>(&["--endpoints", ""]).is_err());
    }

    #[test]
    fn commands_parse_their_arguments() {
        let put: PutArgs = parse(&["k", "v", "--prev-value", "old"]).unwrap();
        assert_eq!(
            (
                put.key.as_str(),
                put.value.as_str(),
                put.prev_value.as_deref()
            ),
            ("k", "v", Some("old"))
        );
        let get: GetArgs = parse(&["k"]).unwrap();
        assert_eq!(get.consistency, Consistency::Linearizable);
        let get: GetArgs = parse(&["k", "--consistency", "stale"]).unwrap();
        assert_eq!(get.consistency.as_str(), "stale");
        assert!(parse::<GetArgs>(&["k", "--consistency", "eventual"]).is_err());
        assert!(parse::<DelArgs>(&[""]).is_err());
        assert!(parse::<PutArgs>(&["k"]).is_err());
    }

    #[test]
    fn keys_and_queries_are_percent_encoded() {
        let base = parse_endpoint("h:1").unwrap();
        let url = api_url(&base, &["v1", "kv", "a/b c?"], &[("prev_value", "x&y=z")]);
        assert_eq!(
            url.as_str(),
            "http://h:1/v1/kv/a%2Fb%20c%3F?prev_value=x%26y%3Dz"
        );
    }

    #[test]
    fn error_answers_are_read_whatever_their_body() {
        let e = ErrorReply::parse(
            StatusCode::NOT_FOUND,
            br#"{"error":"not_found","message":"no key \"k\"","leader":0}"#,
        );
        assert_eq!(e.code, "not_found");
        assert_eq!(e.to_string(), r#"no key "k" (not_found, 404 Not Found)"#);
        let e = ErrorReply::parse(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("http_502", "upstream down")
        );
    }

    #[test]
    fn tables_align_columns() {
        let rows = [
            vec!["ID".to_owned(), "ADDR".into(), "X".into()],
            vec!["10".into(), "a".into(), "".into()],
            vec!["1", "a long remark"]
                .into_iter()
                .map(String::from)
                .collect(),
        ];
        assert_eq!(table(&rows), "ID  ADDR  X\n10  a\n1   a long remark\n");
    }

    #[test]
    fn the_members_table_says_which_members_the_log_reached_and_who_leads() {
        let view: ClusterView = serde_json::from_value(serde_json::json!({
            "id": 1, "leader": 2, "term": 3, "commit": 9, "applied": 9,
            "members": [
                { "id": 1, "raft_addr": "h:1", "http_addr": "h:2", "role": "voter", "replicated": true },
                { "id": 2, "raft_addr": "h:3", "http_addr": "h:4", "role": "learner" },
            ],
        }))
        .unwrap();
        let text = members_table(&view);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("REPLICATED"), "{text}");
        assert!(
            lines[1].contains("yes") && !lines[1].contains("leader"),
            "{text}"
        );
        assert!(
            lines[2].contains("not yet") && lines[2].ends_with("leader"),
            "{text}"
        );
    }

    /// An address where nothing listens.
    fn dead_endpoint() -> Url {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        parse_endpoint(&addr.to_string()).unwrap()
    }

    async fn serve(router: axum::Router) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = parse_endpoint(&listener.local_addr().unwrap().to_string()).unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    /// A leader that echoes a write's body and query as its previous
    /// value, a follower that redirects to it, and one that knows no
    /// leader.
    async fn fake_cluster() -> (Url, Url, Url) {
        let leader = serve(
            axum::Router::new().route(
                "/v1/kv/{*key}",
                put_route(|uri: axum::http::Uri, body: Bytes| async move {
                    let prev = format!(
                        "{}|{}",
                        String::from_utf8_lossy(&body),
                        uri.query().unwrap_or("")
                    );
                    axum::Json(serde_json::json!({ "key": "k", "prev_value": prev, "index": 7 }))
                })
                .delete(|| async {
                    (
                        AxStatus::NOT_FOUND,
                        r#"{"error":"not_found","message":"gone"}"#,
                    )
                        .into_response()
                }),
            ),
        )
        .await;
        let target = leader.clone();
        let follower = serve(axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let location = format!(
                "http://{}:{}{}",
                target.host_str().unwrap(),
                target.port().unwrap(),
                uri
            );
            async move {
                (
                    AxStatus::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, location)],
                )
                    .into_response()
            }
        }))
        .await;
        let lost = serve(axum::Router::new().fallback(|| async {
            (
                AxStatus::SERVICE_UNAVAILABLE,
                r#"{"error":"no_leader","message":"no leader is known"}"#,
            )
        }))
        .await;
        (leader, follower, lost)
    }

    #[tokio::test]
    async fn writes_skip_dead_and_leaderless_endpoints_and_follow_redirects() {
        let (_, follower, lost) = fake_cluster().await;
        let http = command_client().unwrap();
        let request = Request {
            method: Method::PUT,
            path: &["v1", "kv", "k"],
            query: &[("prev_value", "old")],
            body: Some("new".into()),
        };
        let answer = send(&http, &[dead_endpoint(), lost, follower], &request)
            .await
            .unwrap();
        let written: WriteResult = answer.json().unwrap();
        assert_eq!(
            (written.prev_value.as_deref(), written.index),
            (Some("new|prev_value=old"), 7)
        );
    }

    #[tokio::test]
    async fn error_answers_and_unreachable_clusters_are_errors() {
        let (leader, follower, lost) = fake_cluster().await;
        let http = command_client().unwrap();
        let answer = send(
            &http,
            &[follower],
            &Request::new(Method::DELETE, &["v1", "kv", "k"]),
        )
        .await
        .unwrap();
        let err = answer.json::<WriteResult>().unwrap_err();
        assert_eq!(err.downcast_ref::<ErrorReply>().unwrap().code, "not_found");
        let get = Request::new(Method::GET, &["v1", "kv", "k"]);
        let err = send(&http, &[dead_endpoint(), lost], &get)
            .await
            .unwrap_err();
        assert_eq!(err.downcast_ref::<ErrorReply>().unwrap().code, "no_leader");
        let dead = dead_endpoint();
        let err = send(&http, std::slice::from_ref(&dead), &get)
            .await
            .unwrap_err();
        let unreachable = err.downcast_ref::<Unreachable>().unwrap();
        assert_eq!(unreachable.reasons.len(), 1);
        assert_eq!(unreachable.reasons[0].0, endpoint_name(&dead));
        assert!(
            unreachable.reasons[0].1.contains("refused"),
            "{unreachable}"
        );
        // A leader that answers 405 to GET on a write-only route is still an answer.
        assert_eq!(
            send(&http, &[leader], &get).await.unwrap().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn redirect_loops_end() {
        let url = serve(
            axum::Router::new().fallback(|uri: axum::http::Uri| async move {
                (
                    AxStatus::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, uri.to_string())],
                )
                    .into_response()
            }),
        )
        .await;
        let http = command_client().unwrap();
        let err = send(
            &http,
            &[url],
            &Request::new(Method::PUT, &["v1", "kv", "k"]),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("more than 5 redirects"), "{err:#}");
    }
}
