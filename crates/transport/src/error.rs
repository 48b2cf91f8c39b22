//! The errors of the transport: starting it, and what can go wrong on one
//! connection.
//!
//! Only [`Transport::start`](crate::Transport::start) returns an error to
//! the caller. Everything else happens on a connection, and ends only that
//! connection: it is logged with the peer and the reason, and shows up as a
//! [`TransportEvent`](crate::TransportEvent) when messages were lost.

use std::io;
use std::net::SocketAddr;
use thiserror::Error;

/// A [`TransportConfig`](crate::TransportConfig) that cannot work.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Raft reserves ID 0 for "none"; neither this node nor a peer may use it.
    #[error("node ID 0 is reserved for \"none\"")]
    ZeroId,
    /// A queue of no messages would refuse everything.
    #[error("queue_capacity must be at least 1")]
    ZeroQueueCapacity,
    /// Snapshots would be cut into empty chunks.
    #[error("snapshot_chunk_bytes must be at least 1")]
    ZeroChunk,
    /// The length prefix is a `u32`.
    #[error("max_frame_bytes is {0}; the length prefix allows at most 4294967295")]
    FrameLimitTooLarge(usize),
    /// A snapshot chunk, with its framing, would not fit in a frame.
    #[error("a snapshot chunk of {chunk} bytes needs frames of {needed} bytes; max_frame_bytes is {max}")]
    ChunkExceedsFrame {
        /// The configured chunk size.
        chunk: usize,
        /// The frame size such a chunk needs.
        needed: usize,
        /// The configured frame limit.
        max: usize,
    },
    /// Backoff must start above zero (or a down peer is dialled in a hot
    /// loop) and not above its own maximum.
    #[error("backoff must satisfy 0 < backoff_min <= backoff_max")]
    Backoff,
    /// A zero timeout fails every dial or write at once.
    #[error("connect_timeout and io_timeout must be above zero")]
    ZeroTimeout,
}

/// Why the transport could not start, or why one connection ended.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration is refused; see [`ConfigError`].
    #[error("invalid transport config: {0}")]
    Config(#[from] ConfigError),
    /// [`Transport::start`](crate::Transport::start) was not run within a
    /// Tokio runtime.
    #[error("the transport must be started within a Tokio runtime")]
    NoRuntime,
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Reading, writing or connecting failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// A frame's length prefix (received) or encoding (to send) is above
    /// the limit; a received one is refused before its body is read.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit in force on that connection.
        max: usize,
    },
    /// A frame's body is not a valid [`Frame`](crate::frame::Frame).
    #[error("malformed frame: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A frame that decodes but carries no body.
    #[error("malformed frame: no body")]
    EmptyFrame,
    /// The buffer could not take an encoded frame (cannot happen with the
    /// growable buffers the transport uses; kept typed rather than a panic).
    #[error("cannot encode frame: {0}")]
    Encode(#[from] prost::EncodeError),
    /// A frame that is valid but not allowed at this point of the protocol.
    #[error("unexpected {got} frame, expected {expected}")]
    UnexpectedFrame {
        /// What arrived.
        got: &'static str,
        /// What the protocol allows here.
        expected: &'static str,
    },
    /// A snapshot header without a `MsgSnap` in it.
    #[error("snapshot header without a MsgSnap")]
    NotASnapshot,
    /// The snapshot's chunks add up to more than its header announced.
    #[error("snapshot chunks carry {received} bytes; the header announced {declared}")]
    SnapshotOverrun {
        /// The size the header announced.
        declared: u64,
        /// The bytes received so far, the last chunk included.
        received: u64,
    },
    /// The peer refused the handshake and said why.
    #[error("peer refused the handshake: {reason}")]
    Refused {
        /// The peer's reason.
        reason: String,
    },
    /// The peer closed the connection before the exchange was complete.
    #[error("connection closed by the peer")]
    Closed,
    /// A step took longer than its timeout.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}
