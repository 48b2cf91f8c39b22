//! # rudder-transport: Raft messages between peers over TCP
//!
//! The core (`rudder-raft`) hands out messages in each `Ready` and takes
//! messages with `step`; this crate carries them between nodes, on Tokio.
//!
//! - **Frames.** A big-endian `u32` length, then a prost-encoded
//!   [`frame::Frame`]; frames above `max_frame_bytes` are refused on their
//!   length alone ([`FrameCodec`]).
//! - **Handshake.** The dialer sends its cluster ID, its node ID and the ID
//!   it means to reach; the acceptor refuses (and logs) another cluster,
//!   another target or an unknown peer.
//! - **Sending.** [`Transport::send`] never waits: each peer has a bounded
//!   queue (full: the message is dropped and the peer reported
//!   [`TransportEvent::Unreachable`]) and one outbound connection, dialled
//!   when there is something to send and redialled with exponential
//!   backoff. Everything queued leaves in one frame, in one write.
//! - **Snapshots.** A `MsgSnap` is streamed on a connection of its own in
//!   chunks, reassembled by the receiver into the original message, and
//!   acknowledged; the sender reports [`TransportEvent::Snapshot`] with
//!   `Finish` or `Failure`.
//! - **Faults.** A malformed, oversize or misplaced frame closes that
//!   connection, logged with the peer and the reason; nothing a peer sends
//!   can panic the process.
//!
//! The application runs three things side by side: its Ready loop calls
//! [`Transport::send`]; a task steps what comes out of the [`Incoming`]
//! receiver; and the [`Events`] are passed to `report_unreachable` and
//! `report_snapshot`.
//!
//! ```
//! use rudder_raft::{Message, MessageType};
//! use rudder_transport::{Transport, TransportConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let any_port = "127.0.0.1:0".parse()?;
//! let (a, _a_in, _a_events) = Transport::start(TransportConfig::new(1, 7, any_port)).await?;
//! let (b, mut b_in, _b_events) = Transport::start(TransportConfig::new(2, 7, any_port)).await?;
//! a.add_peer(2, b.local_addr());
//! b.add_peer(1, a.local_addr());
//!
//! a.send([Message::new(MessageType::MsgHeartbeat, 1, 2)]);
//! let m = b_in.recv().await.expect("open");
//! assert_eq!((m.kind(), m.from, m.to), (Some(MessageType::MsgHeartbeat), 1, 2));
//!
//! a.shutdown().await;
//! b.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Map
//!
//! - `transport`: [`Transport`], [`TransportEvent`], the shared state.
//! - `config`: [`TransportConfig`]. `error`: [`TransportError`],
//!   [`ConfigError`].
//! - [`frame`]: the protocol's messages. `codec`: [`FrameCodec`].
//! - `handshake`: the `Hello` checks and the dialer's side. `conn`: one
//!   connection, frames both ways.
//! - `peer`: a peer's queue and writer task; `batch`: coalescing;
//!   `backoff`: the waits between dials.
//! - `inbound`: the accept loop and the reader of each connection.
//! - `snapshot`: streaming a snapshot, and reassembling one.

#![warn(missing_docs)]

mod backoff;
mod batch;
mod codec;
mod config;
mod conn;
mod error;
pub mod frame;
mod handshake;
mod inbound;
mod peer;
mod snapshot;
mod transport;

pub use codec::FrameCodec;
pub use config::TransportConfig;
pub use error::{ConfigError, TransportError};
pub use transport::{Events, Incoming, Transport, TransportEvent};
