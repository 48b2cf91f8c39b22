//! A fault-injecting TCP proxy in front of each member's Raft port.
//!
//! Every member is told its peers' proxy addresses instead of their own,
//! so every connection from member `a` to member `b` passes through `b`'s
//! proxy. The proxy reads the dialer's first frame (the transport's
//! `Hello`) to learn `a`, so one proxy per member can cut any set of
//! directed links: a partition is a set of blocked `(from, to)` pairs in
//! [`Links`].
//!
//! A blocked link behaves like a network that drops packets, not like one
//! that refuses connections: bytes already flowing stop being forwarded and
//! are read and thrown away, and a new connection is accepted but never
//! answered, so the dialer's handshake times out. When the link heals, its
//! black-holed connections are closed (a stream that lost bytes mid-frame
//! cannot resume) and the next dial goes through.

use bytes::BytesMut;
use rudder_transport::frame::Body;
use rudder_transport::FrameCodec;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;

/// The largest first frame the proxy reads to find the dialer (a `Hello`
/// is a few bytes).
const HELLO_LIMIT: usize = 1024;

/// Which directed links between members are cut; shared by every proxy.
#[derive(Clone, Debug)]
pub struct Links {
    blocked: Arc<Mutex<BTreeSet<(u64, u64)>>>,
    changed: watch::Sender<u64>,
}

impl Default for Links {
    fn default() -> Links {
        Links {
            blocked: Arc::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<(u64, u64)>> {
        self.blocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the links both ways between every member of `a` and every
    /// member of `b`.
    pub fn cut(&self, a: &[u64], b: &[u64]) {
        {
            let mut blocked = self.lock();
            for &x in a {
                for &y in b {
                    if x != y {
                        blocked.insert((x, y));
                        blocked.insert((y, x));
                    }
                }
            }
        }
        self.changed.send_modify(|g| *g += 1);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().clear();
        self.changed.send_modify(|g| *g += 1);
    }

    /// Whether messages from `from` to `to` are dropped.
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.lock().contains(&(from, to))
    }

    /// Waits until the link from `from` to `to` is cut (`cut: true`) or
    /// whole (`cut: false`).
    async fn until(&self, from: u64, to: u64, cut: bool) {
        let mut rx = self.changed.subscribe();
        while self.is_cut(from, to) != cut {
            if rx.changed().await.is_err() {
                // Links never goes away while a proxy holds it.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// A running proxy for member `to`: accepts on its own address and
/// forwards to the member's real Raft address.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy listening on `listen` for connections meant for
    /// member `to`, which listens on `target`.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        to: u64,
        links: Links,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                tokio::spawn(serve(inbound, target, to, links.clone()));
            }
        });
        Ok(Proxy { addr, task })
    }

    /// Where peers dial this member.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: find the dialer, then forward until the link is cut.
async fn serve(mut inbound: TcpStream, target: SocketAddr, to: u64, links: Links) {
    let Some((from, hello)) = read_hello(&mut inbound).await else {
        return;
    };
    if links.is_cut(from, to) {
        black_hole(inbound, &links, from, to).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    if outbound.write_all(&hello).await.is_err() {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        () = links.until(from, to, true) => {
            drop(outbound);
            black_hole(inbound, &links, from, to).await;
        }
    }
}

/// Reads the dialer's first frame: its member ID and the frame's bytes, to
/// pass on unchanged. `None` if the dialer sent something else or left.
async fn read_hello(inbound: &mut TcpStream) -> Option<(u64, BytesMut)> {
    let mut raw = BytesMut::with_capacity(64);
    loop {
        if inbound.read_buf(&mut raw).await.ok()? == 0 {
            return None;
        }
        let mut scratch = raw.clone();
        match FrameCodec::new(HELLO_LIMIT).decode(&mut scratch) {
            Ok(Some(Body::Hello(hello))) => return Some((hello.from, raw)),
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if raw.len() > HELLO_LIMIT => return None,
            Ok(None) => {}
        }
    }
}

/// Reads and drops what the dialer sends while the link stays cut; closes
/// the connection when it heals.
async fn black_hole(mut inbound: TcpStream, links: &Links, from: u64, to: u64) {
    let mut sink = vec![0u8; 64 * 1024];
    let drain = async { while matches!(inbound.read(&mut sink).await, Ok(n) if n > 0) {} };
    tokio::select! {
        () = drain => {}
        () = links.until(from, to, false) => {}
    }
}
