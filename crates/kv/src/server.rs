//! One member of a cluster as a process: durable storage in its data
//! directory, the TCP transport to its peers, the runtime, and the HTTP
//! API — started together and stopped together.

use crate::store::KvStore;
use crate::{api, preflight};
use anyhow::{bail, Context};
use rudder_node::runtime::{
    Inbox, Members, Network, NetworkEvent, PeerInfo, Runtime, RuntimeConfig,
};
use rudder_raft::Message;
use rudder_storage::fs::{FileSystem, OsFs};
use rudder_storage::{DiskStorage, Options};
use rudder_transport::{Transport, TransportConfig, TransportEvent};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// `rudder serve`: one member of a cluster.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// This member's ID (a positive number, unique in the cluster).
    #[arg(long)]
    pub id: u64,
    /// Where to listen for peers.
    #[arg(long, default_value = "127.0.0.1:2380")]
    pub raft_addr: String,
    /// Where to listen for clients (HTTP).
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub http_addr: String,
    /// The founding members, `ID=RAFT_ADDR[/HTTP_ADDR]`, comma-separated,
    /// this one included (a missing HTTP address is the Raft address with
    /// the port one lower, as in 2380 → 2379). With `--join`: members of
    /// the running cluster to reach.
    #[arg(long, value_delimiter = ',', required = true)]
    pub peers: Vec<String>,
    /// Join a running cluster (a member must add this one first, with
    /// `POST /v1/members`) instead of founding one.
    #[arg(long)]
    pub join: bool,
    /// Where this member keeps its log and snapshots.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// The cluster's ID: peers of another cluster are refused.
    #[arg(long, default_value_t = 1)]
    pub cluster_id: u64,
    /// Milliseconds per Raft tick (election timeout: 10 ticks).
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
    /// Take a snapshot once every this many entries applied (each member at
    /// its own phase of the interval, so they do not all pause together).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot, for slow followers.
    #[arg(long, default_value_t = 5_000)]
    pub keep_entries: u64,
    /// The largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
}

/// Runs `rudder serve` until Ctrl-C.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServerConfig::from_args(&args)?;
    let server = Server::start(config).await?;
    info!(
        id = args.id,
        http = %server.http_addr(),
        raft = %server.raft_addr(),
        "serving; Ctrl-C stops"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    info!("stopping");
    server.shutdown().await;
    Ok(())
}

/// Parses `ID=RAFT_ADDR[/HTTP_ADDR]`.
pub fn parse_peer(spec: &str) -> anyhow::Result<(u64, PeerInfo)> {
    let (id, addrs) = spec
        .split_once('=')
        .with_context(|| format!("peer {spec:?}: expected ID=RAFT_ADDR[/HTTP_ADDR]"))?;
    let id: u64 = id
        .trim()
        .parse()
        .with_context(|| format!("peer {spec:?}: bad ID"))?;
    if id == 0 {
        bail!("peer {spec:?}: IDs start at 1");
    }
    let (raft, http) = match addrs.split_once('/') {
        Some((raft, http)) => (raft.trim().to_owned(), http.trim().to_owned()),
        None => {
            let raft = addrs.trim().to_owned();
            let (host, port) = raft
                .rsplit_once(':')
                .with_context(|| format!("peer {spec:?}: address without a port"))?;
            let port: u16 = port
                .parse()
                .with_context(|| format!("peer {spec:?}: bad port"))?;
            let http_port = port
                .checked_sub(1)
                .with_context(|| format!("peer {spec:?}: no port below {port} for HTTP"))?;
            (raft.clone(), format!("{host}:{http_port}"))
        }
    };
    Ok((
        id,
        PeerInfo {
            raft_addr: raft,
            http_addr: http,
            replicated: false,
        },
    ))
}

/// How many connections may wait to be accepted. The default (128)
/// overflows when a few hundred clients connect at once, as a load test's
/// do: the kernel then drops their handshakes, and each waits a second
/// for its retry. The kernel caps it at `net.core.somaxconn`.
const HTTP_BACKLOG: u32 = 1024;

/// Listens for clients on `addr`, with room for [`HTTP_BACKLOG`]
/// connections waiting.
fn listen_http(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted member can take its port
    // back while old connections linger in TIME_WAIT. (Not on Windows,
    // where it would let another process take the port over.)
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(HTTP_BACKLOG)
}

/// Resolves `host:port` to one socket address.
fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr:?}"))?
        .next()
        .with_context(|| format!("{addr:?} resolves to no address"))
}

/// Everything a member needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This member's ID.
    pub id: u64,
    /// The cluster's ID.
    pub cluster_id: u64,
    /// Where to listen for peers (port 0: any free port).
    pub raft_listen: SocketAddr,
    /// Where to listen for clients.
    pub http_listen: SocketAddr,
    /// The founding members (or, joining, the members to reach).
    pub peers: Members,
    /// Join a running cluster instead of founding one.
    pub join: bool,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The runtime's timing and snapshot settings.
    pub tick: Duration,
    /// See [`ServeArgs::snapshot_every`].
    pub snapshot_every: u64,
    /// See [`ServeArgs::keep_entries`].
    pub keep_entries: u64,
    /// See [`ServeArgs::max_body`].
    pub max_body: usize,
}

impl ServerConfig {
    /// The configuration `rudder serve` was given.
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
        if args.id == 0 {
            bail!("--id: IDs start at 1");
        }
        let mut peers = Members::new();
        for spec in &args.peers {
            let (id, mut info) = parse_peer(spec)?;
            // Resolved once, here: the node's loop never waits for DNS.
            info.raft_addr = resolve(&info.raft_addr)
                .with_context(|| format!("--peers {spec}"))?
                .to_string();
            if peers.insert(id, info).is_some() {
                bail!("--peers names {id} twice");
            }
        }
        if !args.join && !peers.contains_key(&args.id) {
            bail!(
                "--peers must include this member ({}) when founding a cluster",
                args.id
            );
        }
        Ok(ServerConfig {
            id: args.id,
            cluster_id: args.cluster_id,
            raft_listen: resolve(&args.raft_addr).context("--raft-addr")?,
            http_listen: resolve(&args.http_addr).context("--http-addr")?,
            peers,
            join: args.join,
            data_dir: args.data_dir.clone(),
            tick: Duration::from_millis(args.tick_ms.max(1)),
            snapshot_every: args.snapshot_every,
            keep_entries: args.keep_entries,
            max_body: args.max_body,
        })
    }
}

/// The transport as the runtime's [`Network`].
struct TransportNetwork(Arc<Transport>);

impl Network for TransportNetwork {
    fn send(&self, msgs: Vec<Message>) {
        self.0.send(msgs);
    }

    /// Addresses arrive resolved (the command line's and the API's are
    /// resolved where they come in): no DNS on the node's loop.
    fn add_peer(&self, id: u64, info: &PeerInfo) {
        match info.raft_addr.parse::<SocketAddr>() {
            Ok(addr) => self.0.add_peer(id, addr),
            Err(e) => {
                warn!(peer = id, addr = %info.raft_addr, "a member's Raft address is not an IP address and port: {e}")
            }
        }
    }

    fn remove_peer(&self, id: u64) {
        self.0.remove_peer(id);
    }
}

/// A running member.
pub struct Server {
    runtime: Runtime<KvStore>,
    transport: Arc<Transport>,
    http_addr: SocketAddr,
    http_stop: Option<oneshot::Sender<()>>,
    http: JoinHandle<()>,
}

impl Server {
    /// Opens the storage, starts the transport, the runtime and the HTTP
    /// server.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        let fs: Arc<dyn FileSystem> = Arc::new(OsFs);
        let storage = DiskStorage::open(fs, &config.data_dir, Options::default())
            .with_context(|| format!("opening the storage in {}", config.data_dir.display()))?;
        let fresh = rudder_node::runtime::is_fresh(&storage)
            .with_context(|| format!("reading the storage in {}", config.data_dir.display()))?;
        // Both ports first: a member whose port is taken (by another
        // cluster, say) says so, before it asks whoever answers there.
        let listener = listen_http(config.http_listen)
            .with_context(|| format!("listening for HTTP on {}", config.http_listen))?;
        let (transport, incoming, mut events) = Transport::start(TransportConfig::new(
            config.id,
            config.cluster_id,
            config.raft_listen,
        ))
        .await
        .context("starting the transport")?;
        let transport = Arc::new(transport);
        let peers = if fresh {
            match preflight::check(config.id, config.cluster_id, &config.peers, config.join).await {
                Ok(peers) => peers,
                Err(refused) => {
                    transport.shutdown().await;
                    return Err(refused);
                }
            }
        } else {
            config.peers.clone()
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let e = match e {
                    TransportEvent::Unreachable(peer) => NetworkEvent::Unreachable(peer),
                    TransportEvent::Snapshot { to, status } => {
                        NetworkEvent::Snapshot { to, status }
                    }
                };
                if events_tx.send(e).is_err() {
                    break;
                }
            }
        });
        let mut rc = RuntimeConfig::new(config.id);
        rc.tick = config.tick;
        rc.snapshot_every = config.snapshot_every;
        rc.keep_entries = config.keep_entries;
        rc.peers = peers;
        rc.bootstrap = !config.join;
        let runtime = Runtime::start(
            rc,
            storage,
            KvStore::default(),
            TransportNetwork(Arc::clone(&transport)),
            Inbox {
                messages: incoming,
                events: events_rx,
            },
        )
        .context("starting the node")?;
        let http_addr = listener.local_addr().context("the HTTP address")?;
        let counted = Arc::clone(&transport);
        let app = api::router(
            runtime.clone(),
            config.cluster_id,
            Arc::new(move || counted.dropped_by_type()),
            config.max_body,
        );
        let (http_stop, stopped) = oneshot::channel::<()>();
        let http = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                warn!("the HTTP server failed: {e}");
            }
        });
        Ok(Server {
            runtime,
            transport,
            http_addr,
            http_stop: Some(http_stop),
            http,
        })
    }

    /// Where clients reach this member.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where peers reach this member.
    pub fn raft_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// The runtime, to look inside (tests, the demo).
    pub fn runtime(&self) -> &Runtime<KvStore> {
        &self.runtime
    }

    /// Stops serving clients, then the node, then the transport.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
        // Requests in flight end with Shutdown once the runtime stops.
        self.runtime.shutdown().await;
        let _ = (&mut self.http).await;
        self.transport.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_http_listener_holds_hundreds_of_connections_not_yet_accepted() {
        // The kernel caps the queue at somaxconn (4096 by default since
        // Linux 5.4); at 128 or less there is nothing to tell apart.
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        if cap <= 128 {
            eprintln!("net.core.somaxconn is {cap}: the backlog cannot be seen here");
            return;
        }
        let n = cap.min(300);
        let listener = listen_http("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: each connection completes only if the queue
        // has room (the default of 128 has none for the 130th). The
        // timeout only bounds a failing run.
        let waiting: Vec<_> = (0..n)
            .map(|i| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connection {i} of {n} was not queued: {e}"))
            })
            .collect();
        assert_eq!(waiting.len(), n);
    }

    #[test]
    fn peers_parse_with_and_without_http_addresses() {
        let (id, info) = parse_peer("2=127.0.0.1:3380").unwrap();
        assert_eq!(
            (id, info.raft_addr.as_str(), info.http_addr.as_str()),
            (2, "127.0.0.1:3380", "127.0.0.1:3379")
        );
        let (_, info) = parse_peer("3=10.0.0.1:7000/10.0.0.1:80").unwrap();
        assert_eq!(info.http_addr, "10.0.0.1:80");
        for bad in [
            "",
            "x=1:2",
            "0=127.0.0.1:1",
            "1",
            "1=host",
            "1=host:0",
            "1=host:port",
        ] {
            assert!(parse_peer(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
