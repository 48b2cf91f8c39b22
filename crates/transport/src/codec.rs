//! Framing: a big-endian `u32` length, then that many bytes of a
//! prost-encoded [`Frame`], with a size limit on both sides.
//!
//! The limit is checked on the length prefix, before any of the body is
//! buffered, so a peer cannot make the receiver hold more than one frame
//! of at most the limit. A connection starts with a small limit for the
//! handshake (an unknown dialer gets no large buffers) and raises it to
//! the configured one once the peer is known.

use crate::error::TransportError;
use crate::frame::{Body, Frame};
use bytes::{Buf, BufMut, BytesMut};
use prost::Message as _;
use tokio_util::codec::{Decoder, Encoder};

/// The size of the length prefix.
const PREFIX: usize = 4;

/// The most the decoder reserves ahead of the bytes that have arrived, so
/// a large announced frame grows the buffer as it comes rather than at once.
const MAX_RESERVE: usize = 1 << 20;

/// Encodes and decodes length-prefixed [`Frame`]s, yielding their [`Body`].
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_frame_bytes: usize,
}

impl FrameCodec {
    /// A codec for frames of at most `max_frame_bytes` (the prefix not
    /// counted).
    pub fn new(max_frame_bytes: usize) -> FrameCodec {
        FrameCodec { max_frame_bytes }
    }

    /// Changes the limit (after the handshake).
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }

    /// The limit in force.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }
}

impl Decoder for FrameCodec {
    type Item = Body;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Body>, TransportError> {
        let Some(prefix) = src.get(..PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame_bytes {
            return Err(TransportError::FrameTooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        let missing = (PREFIX + len).saturating_sub(src.len());
        if missing > 0 {
            src.reserve(missing.min(MAX_RESERVE));
            return Ok(None);
        }
        src.advance(PREFIX);
        let frame = Frame::decode(src.split_to(len).freeze())?;
        frame.body.map(Some).ok_or(TransportError::EmptyFrame)
    }
}

impl Encoder<Body> for FrameCodec {
    type Error = TransportError;

    fn encode(&mut self, body: Body, dst: &mut BytesMut) -> Result<(), TransportError> {
        let frame = Frame { body: Some(body) };
        let len = frame.encoded_len();
        if len > self.max_frame_bytes {
            return Err(TransportError::FrameTooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        dst.reserve(PREFIX + len);
        // `len` fits: the limit is at most `u32::MAX` (checked by the config).
        dst.put_u32(len as u32);
        frame.encode(dst)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Hello, MessageBatch, PROTOCOL_VERSION};
    use rudder_raft::{Message, MessageType};

    fn hello() -> Body {
        Body::Hello(Hello {
            cluster_id: 1,
            from: 2,
            to: 3,
            version: PROTOCOL_VERSION,
        })
    }

    #[test]
    fn decodes_what_it_encodes_even_byte_by_byte() {
        let mut codec = FrameCodec::new(1024);
        let mut wire = BytesMut::new();
        codec.encode(hello(), &mut wire).unwrap();
        let batch = Body::Messages(MessageBatch {
            messages: vec![Message::new(MessageType::MsgApp, 2, 3); 3],
        });
        codec.encode(batch.clone(), &mut wire).unwrap();

        let mut src = BytesMut::new();
        let mut out = Vec::new();
        for byte in wire {
            src.put_u8(byte);
            if let Some(body) = codec.decode(&mut src).unwrap() {
                out.push(body);
            }
        }
        assert_eq!(out, vec![hello(), batch]);
        assert!(src.is_empty());
    }

    #[test]
    fn refuses_an_oversize_prefix_before_the_body() {
        let mut codec = FrameCodec::new(100);
        let mut src = BytesMut::from(&101u32.to_be_bytes()[..]);
        match codec.decode(&mut src) {
            Err(TransportError::FrameTooLarge { len: 101, max: 100 }) => {}
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn refuses_to_encode_an_oversize_frame() {
        let mut codec = FrameCodec::new(10);
        let mut m = Message::new(MessageType::MsgApp, 1, 2);
        m.context = vec![0u8; 64].into();
        let mut dst = BytesMut::new();
        let err = codec
            .encode(Body::Messages(MessageBatch { messages: vec![m] }), &mut dst)
            .unwrap_err();
        assert!(
            matches!(err, TransportError::FrameTooLarge { max: 10, .. }),
            "{err:?}"
        );
        assert!(dst.is_empty());
    }

    #[test]
    fn malformed_and_empty_bodies_are_errors() {
        let mut codec = FrameCodec::new(100);
        // Field 1, wire type 2 (length-delimited), length 200: runs past the end.
        let mut src = BytesMut::from(&[0, 0, 0, 3, 0x0a, 0xc8, 0x01][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(TransportError::Malformed(_))
        ));
        let mut src = BytesMut::from(&[0, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(TransportError::EmptyFrame)
        ));
    }

    #[test]
    fn waits_for_a_whole_frame() {
        let mut codec = FrameCodec::new(100);
        let mut src = BytesMut::from(&[0, 0, 0, 5, 1, 2][..]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert_eq!(src.len(), 6, "nothing consumed");
    }
}
