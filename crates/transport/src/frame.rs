//! The wire protocol: what one frame between peers can carry.
//!
//! On the wire every frame is a big-endian `u32` length and then that many
//! bytes of a prost-encoded [`Frame`] (see [`FrameCodec`](crate::FrameCodec)).
//! A connection goes:
//!
//! 1. the dialer sends [`Hello`]; the acceptor answers [`HelloAck`], or
//!    [`Refused`] with a reason and closes;
//! 2. then the dialer sends either [`MessageBatch`]es (the peer's message
//!    connection) or, for one snapshot, a [`SnapshotHeader`] and its
//!    [`SnapshotChunk`]s, which the acceptor answers with [`SnapshotAck`]
//!    once it has handed the whole message on.
//!
//! The types are written with prost's derive, as in `rudder_raft::proto`,
//! so building needs no `protoc`.

use bytes::Bytes;
use rudder_raft::Message;

/// The protocol version a node speaks; a [`Hello`] with another is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// One frame: exactly one [`Body`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    /// What the frame carries; a frame without one is malformed.
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub body: Option<Body>,
}

/// The kinds of frame.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    /// The dialer introduces itself.
    #[prost(message, tag = "1")]
    Hello(Hello),
    /// The acceptor takes the connection.
    #[prost(message, tag = "2")]
    HelloAck(HelloAck),
    /// The acceptor refuses the connection, then closes it.
    #[prost(message, tag = "3")]
    Refused(Refused),
    /// Raft messages, in the order they were sent.
    #[prost(message, tag = "4")]
    Messages(MessageBatch),
    /// The start of a streamed snapshot.
    #[prost(message, tag = "5")]
    SnapshotHeader(SnapshotHeader),
    /// The next piece of the snapshot's data.
    #[prost(message, tag = "6")]
    SnapshotChunk(SnapshotChunk),
    /// The whole snapshot arrived and was handed on.
    #[prost(message, tag = "7")]
    SnapshotAck(SnapshotAck),
}

impl Body {
    /// The frame kind's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Hello(_) => "Hello",
            Body::HelloAck(_) => "HelloAck",
            Body::Refused(_) => "Refused",
            Body::Messages(_) => "Messages",
            Body::SnapshotHeader(_) => "SnapshotHeader",
            Body::SnapshotChunk(_) => "SnapshotChunk",
            Body::SnapshotAck(_) => "SnapshotAck",
        }
    }
}

/// The first frame of every connection, from the dialer.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Hello {
    /// The cluster the dialer belongs to; must be the acceptor's.
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    /// The dialer's node ID; must be a peer the acceptor knows.
    #[prost(uint64, tag = "2")]
    pub from: u64,
    /// The node ID the dialer means to reach; must be the acceptor's.
    #[prost(uint64, tag = "3")]
    pub to: u64,
    /// The dialer's [`PROTOCOL_VERSION`].
    #[prost(uint32, tag = "4")]
    pub version: u32,
}

/// The acceptor's yes to a [`Hello`].
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct HelloAck {}

/// The acceptor's no to a [`Hello`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Refused {
    /// Why, in words, for the dialer's log.
    #[prost(string, tag = "1")]
    pub reason: String,
}

/// Raft messages to the acceptor: everything that was queued for it when
/// the dialer wrote, up to the frame limit.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageBatch {
    /// The messages, oldest first.
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<Message>,
}

/// The start of a snapshot: its `MsgSnap` without the snapshot's data,
/// which follows in [`SnapshotChunk`]s.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotHeader {
    /// The `MsgSnap`, with `snapshot.data` empty.
    #[prost(message, optional, tag = "1")]
    pub message: Option<Message>,
    /// How many bytes of data the chunks carry in all.
    #[prost(uint64, tag = "2")]
    pub total_bytes: u64,
}

/// A piece of a snapshot's data, in order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotChunk {
    /// The bytes.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

/// The receiver has the whole snapshot and handed it on.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct SnapshotAck {}

/// The encoded length of a [`Frame`] whose body encodes to `body_len`
/// bytes: one key byte (every tag is below 16), the length, the body.
pub(crate) fn frame_len(body_len: usize) -> usize {
    field_len(body_len)
}

/// The encoded length of a length-delimited field with a tag below 16.
pub(crate) fn field_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

/// The encoded length of the frame of a [`SnapshotChunk`] of `chunk` bytes.
pub(crate) fn chunk_frame_len(chunk: usize) -> usize {
    frame_len(field_len(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use rudder_raft::MessageType;

    fn frame(body: Body) -> Frame {
        Frame { body: Some(body) }
    }

    #[test]
    fn frame_len_matches_prost() {
        for n in [0, 1, 127, 128, 16_383, 16_384, 1 << 20] {
            let chunk = frame(Body::SnapshotChunk(SnapshotChunk {
                data: Bytes::from(vec![7u8; n]),
            }));
            // prost leaves an empty bytes field out; chunks are never empty.
            if n > 0 {
                assert_eq!(chunk.encoded_len(), chunk_frame_len(n), "chunk of {n}");
            }
            let mut m = Message::new(MessageType::MsgApp, 1, 2);
            m.context = Bytes::from(vec![1u8; n]);
            let batch = MessageBatch {
                messages: vec![m.clone(), m],
            };
            let body_len = batch.encoded_len();
            assert_eq!(
                frame(Body::Messages(batch)).encoded_len(),
                frame_len(body_len)
            );
        }
    }

    #[test]
    fn every_body_round_trips() {
        let mut snap = Message::new(MessageType::MsgSnap, 1, 2);
        snap.term = 3;
        let bodies = [
            Body::Hello(Hello {
                cluster_id: 9,
                from: 1,
                to: 2,
                version: PROTOCOL_VERSION,
            }),
            Body::HelloAck(HelloAck {}),
            Body::Refused(Refused {
                reason: "no".into(),
            }),
            Body::Messages(MessageBatch {
                messages: vec![Message::new(MessageType::MsgHeartbeat, 1, 2)],
            }),
            Body::SnapshotHeader(SnapshotHeader {
                message: Some(snap),
                total_bytes: 10,
            }),
            Body::SnapshotChunk(SnapshotChunk {
                data: Bytes::from_static(b"abc"),
            }),
            Body::SnapshotAck(SnapshotAck {}),
        ];
        for body in bodies {
            let f = frame(body);
            assert_eq!(Frame::decode(f.encode_to_vec().as_slice()).unwrap(), f);
        }
    }
}
