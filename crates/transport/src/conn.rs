//! One TCP connection to a peer, speaking frames both ways, every write
//! bounded by a timeout.

use crate::codec::FrameCodec;
use crate::error::TransportError;
use crate::frame::Body;
use bytes::BytesMut;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{Encoder, FramedRead};

/// A connection: frames are read as they come and written one buffer at a
/// time, so a batch leaves in a single write.
pub(crate) struct Connection {
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    writer: OwnedWriteHalf,
    io_timeout: Duration,
}

impl Connection {
    /// Wraps `stream` with a frame limit of `max_frame_bytes` for both
    /// directions. Nagle's algorithm is turned off: the transport batches
    /// on its own, and a lone heartbeat must not wait for company.
    pub(crate) fn new(
        stream: TcpStream,
        max_frame_bytes: usize,
        io_timeout: Duration,
    ) -> Connection {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let (read, writer) = stream.into_split();
        Connection {
            reader: FramedRead::new(read, FrameCodec::new(max_frame_bytes)),
            writer,
            io_timeout,
        }
    }

    /// Changes the frame limit (raised once the handshake is done).
    pub(crate) fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.reader
            .decoder_mut()
            .set_max_frame_bytes(max_frame_bytes);
    }

    /// The next frame; `None` once the peer has closed the connection.
    /// Cancel-safe: a frame partly read stays buffered for the next call.
    pub(crate) async fn recv(&mut self) -> Result<Option<Body>, TransportError> {
        self.reader.next().await.transpose()
    }

    /// Encodes `body` and writes it in one write, within the I/O timeout.
    pub(crate) async fn send(&mut self, body: Body) -> Result<(), TransportError> {
        let mut buf = BytesMut::new();
        let mut codec = *self.reader.decoder();
        codec.encode(body, &mut buf)?;
        tokio::time::timeout(self.io_timeout, self.writer.write_all(&buf))
            .await
            .map_err(|_| TransportError::Timeout("a write to the peer"))??;
        Ok(())
    }
}
