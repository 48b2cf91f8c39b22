//! Transports on 127.0.0.1 with port 0, and a raw peer that speaks the
//! protocol by hand (to misbehave, or to watch the frames).

#![allow(dead_code)] // each test binary uses its own part

pub mod logs;

use bytes::{Bytes, BytesMut};
use rudder_raft::{Message, MessageType};
use rudder_transport::frame::{Body, Hello, HelloAck, PROTOCOL_VERSION};
use rudder_transport::{Events, FrameCodec, Incoming, Transport, TransportConfig, TransportEvent};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::codec::{Decoder, Encoder};

/// The cluster every test node is in.
pub const CLUSTER: u64 = 7;

/// How long any wait may take before the test fails as hung. A failure
/// guard only: nothing waits for it to pass.
pub const GUARD: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes longer than [`GUARD`].
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .expect("hung: no progress within the guard time")
}

/// A started transport with its two receivers.
pub struct Node {
    pub transport: Transport,
    pub incoming: Incoming,
    pub events: Events,
}

impl Node {
    /// The next message received, or the test fails.
    pub async fn recv(&mut self) -> Message {
        within(self.incoming.recv()).await.expect("incoming closed")
    }

    /// The next event, or the test fails.
    pub async fn event(&mut self) -> TransportEvent {
        within(self.events.recv()).await.expect("events closed")
    }

    pub fn addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }
}

/// A config for node `id` in [`CLUSTER`] on any free port, with short
/// backoff so reconnection tests are quick.
pub fn config(id: u64) -> TransportConfig {
    TransportConfig {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        ..TransportConfig::new(id, CLUSTER, "127.0.0.1:0".parse().unwrap())
    }
}

pub async fn start(config: TransportConfig) -> Node {
    let (transport, incoming, events) = Transport::start(config).await.expect("start");
    Node {
        transport,
        incoming,
        events,
    }
}

/// Nodes 1..=n, each a peer of every other.
pub async fn cluster(n: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        nodes.push(start(config(id)).await);
    }
    for a in 0..nodes.len() {
        for b in 0..nodes.len() {
            if a != b {
                let addr = nodes[b].addr();
                nodes[a].transport.add_peer(b as u64 + 1, addr);
            }
        }
    }
    nodes
}

/// An append from `from` to `to`; `index` tells messages apart.
pub fn msg(from: u64, to: u64, index: u64) -> Message {
    let mut m = Message::new(MessageType::MsgApp, from, to);
    m.index = index;
    m
}

/// A port that is bound but not listening, so dials to it are refused,
/// held until the socket is dropped (then a transport can take it).
pub fn reserved_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

pub fn hello(from: u64, to: u64) -> Hello {
    Hello {
        cluster_id: CLUSTER,
        from,
        to,
        version: PROTOCOL_VERSION,
    }
}

/// One end of a connection driven by hand.
pub struct RawConn {
    stream: TcpStream,
    codec: FrameCodec,
    buf: BytesMut,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        RawConn::new(within(TcpStream::connect(addr)).await.expect("connect"))
    }

    fn new(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            codec: FrameCodec::new(64 << 20),
            buf: BytesMut::new(),
        }
    }

    /// Connects as peer `from` to node `to` and expects to be taken.
    pub async fn admitted(addr: SocketAddr, from: u64, to: u64) -> RawConn {
        let mut conn = RawConn::connect(addr).await;
        conn.send(Body::Hello(hello(from, to))).await;
        match conn.recv().await {
            Some(Body::HelloAck(_)) => conn,
            other => panic!("expected HelloAck, got {other:?}"),
        }
    }

    pub async fn send(&mut self, body: Body) {
        let mut wire = BytesMut::new();
        self.codec.encode(body, &mut wire).unwrap();
        self.send_raw(&wire).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        within(self.stream.write_all(bytes)).await.expect("write");
    }

    /// The next frame; `None` once the other side closed (or reset) the
    /// connection.
    pub async fn recv(&mut self) -> Option<Body> {
        loop {
            if let Some(body) = self.codec.decode(&mut self.buf).expect("valid frame") {
                return Some(body);
            }
            match within(self.stream.read_buf(&mut self.buf)).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Waits until the other side closes the connection, skipping frames.
    pub async fn closed(&mut self) {
        while self.recv().await.is_some() {}
    }
}

/// A listener standing in for a peer: it accepts the transport's
/// connections and acknowledges their handshakes.
pub struct RawPeer {
    listener: TcpListener,
}

impl RawPeer {
    pub async fn bind() -> RawPeer {
        RawPeer {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// The next connection, its `Hello` read and acknowledged.
    pub async fn accept(&self) -> (RawConn, Hello) {
        let (stream, _) = within(self.listener.accept()).await.expect("accept");
        let mut conn = RawConn::new(stream);
        let hello = match conn.recv().await {
            Some(Body::Hello(hello)) => hello,
            other => panic!("expected Hello, got {other:?}"),
        };
        conn.send(Body::HelloAck(HelloAck {})).await;
        (conn, hello)
    }
}

/// `n` bytes that are not all alike, so a misplaced chunk shows.
pub fn pattern(n: usize) -> Bytes {
    (0..n)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}
