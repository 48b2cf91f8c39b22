//! Coalescing: the messages queued for a peer, gathered into one frame no
//! larger than the frame limit.

use crate::frame::{field_len, frame_len, Body, MessageBatch};
use prost::Message as _;
use rudder_raft::Message;

/// Messages gathered for one [`MessageBatch`] frame, with its encoded size
/// kept as they come, so the frame never exceeds the limit.
#[derive(Debug)]
pub(crate) struct Batch {
    messages: Vec<Message>,
    /// The encoded length of the `MessageBatch` so far.
    body_len: usize,
    max_frame_bytes: usize,
}

impl Batch {
    /// An empty batch for frames of at most `max_frame_bytes`.
    pub(crate) fn new(max_frame_bytes: usize) -> Batch {
        Batch {
            messages: Vec::new(),
            body_len: 0,
            max_frame_bytes,
        }
    }

    /// Adds `m` if the frame stays within the limit, or hands it back (to
    /// start the next batch; handed back by an empty batch, `m` alone is
    /// too large to send).
    #[must_use = "a message handed back was not added"]
    pub(crate) fn push(&mut self, m: Message) -> Option<Message> {
        let body_len = self.body_len + field_len(m.encoded_len());
        if frame_len(body_len) > self.max_frame_bytes {
            return Some(m);
        }
        self.body_len = body_len;
        self.messages.push(m);
        None
    }

    /// How many messages the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// The frame body to send.
    pub(crate) fn into_body(self) -> Body {
        Body::Messages(MessageBatch {
            messages: self.messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use bytes::Bytes;
    use rudder_raft::MessageType;

    fn app(payload: usize) -> Message {
        let mut m = Message::new(MessageType::MsgApp, 1, 2);
        m.context = Bytes::from(vec![9u8; payload]);
        m
    }

    #[test]
    fn fills_up_to_the_limit_and_no_further() {
        let max = 1000;
        let mut batch = Batch::new(max);
        let mut refused = None;
        for i in 0..100 {
            if let Some(m) = batch.push(app(i % 40)) {
                refused = Some(m);
                break;
            }
        }
        let refused = refused.expect("a 1000-byte frame cannot take 100 messages");
        let Body::Messages(body) = batch.into_body() else {
            panic!("a batch is a Messages frame");
        };
        let body_len = body.encoded_len();
        let frame = Frame {
            body: Some(Body::Messages(body)),
        };
        assert_eq!(frame.encoded_len(), frame_len(body_len));
        assert!(frame_len(body_len) <= max);
        // The refused message would have overflowed it.
        assert!(frame_len(body_len + field_len(refused.encoded_len())) > max);
    }

    #[test]
    fn an_empty_batch_refuses_a_message_too_large_for_any_frame() {
        let mut batch = Batch::new(100);
        assert!(batch.push(app(200)).is_some());
        assert_eq!(batch.len(), 0);
        assert!(batch.push(app(10)).is_none());
    }
}
