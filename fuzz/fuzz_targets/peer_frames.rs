//! Fuzzes what a peer can put on a Raft connection: arbitrary bytes.
//!
//! The first input byte picks a mode, the rest is the peer's bytes:
//!
//! - **decode** (`mode % 4` is 0 or 1): the bytes go to
//!   [`FrameCodec`] as a tokio-util `Decoder`, once whole and once in
//!   fuzzer-sized pieces (as TCP may deliver them), with the handshake's
//!   small limit or a large one; and straight to prost as a
//!   [`Frame`] and as a Raft [`Message`].
//! - **wire** (2): the bytes are written to a real [`Transport`] running
//!   in this process, over loopback TCP, as a dialer that opens with them
//!   (so they meet the handshake first).
//! - **admitted** (3): the same, after a valid `Hello` from a known
//!   peer, so the bytes reach the reader of an admitted connection
//!   (message batches, snapshot headers and chunks).
//!
//! Checks: nothing panics (decoding errors are fine; libFuzzer turns a
//! panic, also one on a transport task, into a crash); the codec gives the
//! same frames whether the bytes come whole or in pieces, and stops at
//! the same error; a decoded frame re-encodes to one that decodes to the
//! same frame; the transport closes a connection once the
//! dialer has sent everything and shut its side (no hang), and hands on
//! only messages from the connection's peer to this node.

#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use rudder_raft::Message;
use rudder_transport::frame::{Body, Frame, Hello, PROTOCOL_VERSION};
use rudder_transport::{FrameCodec, Incoming, Transport, TransportConfig};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// The limit the transport applies before the handshake is done.
const HANDSHAKE_LIMIT: usize = 1024;
/// A limit large enough for anything a fuzz input holds.
const LARGE_LIMIT: usize = 1 << 20;

/// This node (the acceptor), its cluster, and the peer it knows.
const ME: u64 = 1;
const CLUSTER: u64 = 7;
const PEER: u64 = 2;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 | 1 => decode(mode, bytes),
        2 => wire(bytes, false),
        _ => wire(bytes, true),
    }
});

/// What a codec made of a byte stream: the frames, then the error that
/// stopped it (if one did), and how many bytes were left undecoded.
#[derive(Debug, PartialEq)]
struct Decoded {
    bodies: Vec<Body>,
    error: Option<String>,
    left: usize,
}

/// Feeds `bytes` to a codec of `limit` in pieces of `piece` bytes (0: all
/// at once), decoding after each piece as a `FramedRead` would.
fn run_codec(bytes: &[u8], limit: usize, piece: usize) -> Decoded {
    let mut codec = FrameCodec::new(limit);
    let mut src = BytesMut::new();
    let mut out = Decoded {
        bodies: Vec::new(),
        error: None,
        left: 0,
    };
    let piece = if piece == 0 {
        bytes.len().max(1)
    } else {
        piece
    };
    'feed: for chunk in bytes.chunks(piece) {
        src.put_slice(chunk);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(body)) => out.bodies.push(body),
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e.to_string());
                    break 'feed;
                }
            }
        }
    }
    out.left = src.len();
    out
}

fn decode(mode: u8, bytes: &[u8]) {
    let limit = if mode & 0x10 != 0 {
        HANDSHAKE_LIMIT
    } else {
        LARGE_LIMIT
    };
    let piece = usize::from(mode >> 5); // 0 (whole) to 7 bytes at a time
    let whole = run_codec(bytes, limit, 0);
    let pieces = run_codec(bytes, limit, piece);
    // Frames and errors agree; what is left over may differ only when an
    // error stopped both, one of them before the rest had arrived.
    assert_eq!(whole.bodies, pieces.bodies, "pieces of {piece} bytes");
    assert_eq!(whole.error, pieces.error, "pieces of {piece} bytes");
    if whole.error.is_none() {
        assert_eq!(whole.left, pieces.left);
    }

    // Every frame decoded re-encodes to bytes that decode to it again.
    let mut codec = FrameCodec::new(LARGE_LIMIT * 4);
    for body in &whole.bodies {
        let mut wire = BytesMut::new();
        codec
            .encode(body.clone(), &mut wire)
            .expect("a decoded frame re-encodes");
        let again = codec
            .decode(&mut wire)
            .expect("a re-encoded frame decodes")
            .expect("a re-encoded frame is whole");
        assert_eq!(&again, body);
        assert!(wire.is_empty());
    }

    // prost directly: a frame without the length prefix, and a bare Raft
    // message as a batch would carry it.
    if let Ok(frame) = Frame::decode(bytes) {
        let again = Frame::decode(frame.encode_to_vec().as_slice()).expect("re-encoded frame");
        assert_eq!(again, frame);
    }
    if let Ok(m) = Message::decode(bytes) {
        let _ = m.kind();
        let again = Message::decode(m.encode_to_vec().as_slice()).expect("re-encoded message");
        assert_eq!(again, m);
    }
}

/// The transport under test, on a runtime of its own, kept for every run.
struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    _transport: Transport,
    /// Messages the transport handed on, drained by a task.
    received: std::sync::Arc<Mutex<Vec<Message>>>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let received = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (transport, addr) = rt.block_on(async {
            let mut config = TransportConfig::new(ME, CLUSTER, "127.0.0.1:0".parse().unwrap());
            // Known, so its Hello is admitted; never dialled (nothing is sent).
            config.peers.insert(PEER, "127.0.0.1:9".parse().unwrap());
            config.connect_timeout = Duration::from_secs(2);
            config.io_timeout = Duration::from_secs(2);
            let (transport, incoming, _events) =
                Transport::start(config).await.expect("transport starts");
            tokio::spawn(drain(incoming, received.clone()));
            let addr = transport.local_addr();
            (transport, addr)
        });
        Server {
            rt,
            addr,
            _transport: transport,
            received,
        }
    })
}

async fn drain(mut incoming: Incoming, into: std::sync::Arc<Mutex<Vec<Message>>>) {
    while let Some(m) = incoming.recv().await {
        into.lock().unwrap().push(m);
    }
}

/// Dials the transport, sends `bytes` (after a valid `Hello` if `admitted`),
/// shuts the sending side, and reads until the transport closes.
fn wire(bytes: &[u8], admitted: bool) {
    let s = server();
    let mut out = BytesMut::new();
    if admitted {
        let hello = Body::Hello(Hello {
            cluster_id: CLUSTER,
            from: PEER,
            to: ME,
            version: PROTOCOL_VERSION,
        });
        FrameCodec::new(HANDSHAKE_LIMIT)
            .encode(hello, &mut out)
            .expect("a Hello encodes");
    }
    out.put_slice(bytes);
    s.rt.block_on(async {
        let mut conn = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect to the transport");
        // The transport may close early (a bad frame): a failed write is fine.
        let _ = conn.write_all(&out).await;
        let _ = conn.shutdown().await;
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut sink)).await;
        assert!(
            read.is_ok(),
            "the transport kept a connection open after the dialer finished"
        );
        // Let the transport's tasks hand on what they read.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    });
    for m in s.received.lock().unwrap().drain(..) {
        assert_eq!(
            (m.from, m.to),
            (PEER, ME),
            "a message not from the connection's peer was handed on"
        );
    }
}
