//! What a transport needs to know: who it is, where it listens, where its
//! peers are, and the limits it keeps.

use crate::error::ConfigError;
use crate::frame::chunk_frame_len;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The configuration of a [`Transport`](crate::Transport).
///
/// Build one with [`TransportConfig::new`] and change the fields you need;
/// [`Transport::start`](crate::Transport::start) checks it with
/// [`TransportConfig::validate`].
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's Raft ID (not 0).
    pub id: u64,
    /// The cluster's ID: a peer of another cluster is refused at the
    /// handshake, so two clusters on one network never mix messages.
    pub cluster_id: u64,
    /// Where to listen for peers; port 0 picks a free port (read it back
    /// with [`Transport::local_addr`](crate::Transport::local_addr)).
    pub listen: SocketAddr,
    /// The peers by Raft ID: where to dial them, and who may dial in. An
    /// entry for this node's own ID is ignored, so the whole membership can
    /// be passed. Changed at run time with
    /// [`Transport::add_peer`](crate::Transport::add_peer) and
    /// [`Transport::remove_peer`](crate::Transport::remove_peer).
    pub peers: HashMap<u64, SocketAddr>,
    /// How many messages may wait for one peer; past that, messages to it
    /// are dropped and reported unreachable, so sending never waits. Also
    /// the capacity of the channel received messages come out of.
    pub queue_capacity: usize,
    /// The largest frame sent or accepted (the 4-byte prefix not counted).
    /// A larger frame from a peer closes its connection; a single message
    /// too large to send is dropped and reported unreachable.
    pub max_frame_bytes: usize,
    /// The size of the pieces a snapshot's data is streamed in.
    pub snapshot_chunk_bytes: usize,
    /// The wait before redialling after the first failure; it doubles with
    /// each failure in a row.
    pub backoff_min: Duration,
    /// The longest wait between dials.
    pub backoff_max: Duration,
    /// The longest a dial and its handshake may take, on either side.
    pub connect_timeout: Duration,
    /// The longest one write (a batch, a snapshot chunk) or the wait for a
    /// snapshot's acknowledgement may take before the connection is given
    /// up, so a peer that stopped reading cannot hold a connection forever.
    pub io_timeout: Duration,
}

impl TransportConfig {
    /// A configuration with no peers and the default limits: queues of
    /// 4096 messages, 16 MiB frames, 1 MiB snapshot chunks, backoff from
    /// 100 ms to 5 s, 2 s to connect and 10 s per write.
    pub fn new(id: u64, cluster_id: u64, listen: SocketAddr) -> TransportConfig {
        TransportConfig {
            id,
            cluster_id,
            listen,
            peers: HashMap::new(),
            queue_capacity: 4096,
            max_frame_bytes: 16 << 20,
            snapshot_chunk_bytes: 1 << 20,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(10),
        }
    }

    /// Checks that the configuration can work: IDs not 0, room in queues
    /// and chunks, a chunk fitting a frame, sane backoff and timeouts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 || self.peers.contains_key(&0) {
            return Err(ConfigError::ZeroId);
        }
        if self.queue_capacity == 0 {
            return Err(ConfigError::ZeroQueueCapacity);
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError::ZeroChunk);
        }
        if u32::try_from(self.max_frame_bytes).is_err() {
            return Err(ConfigError::FrameLimitTooLarge(self.max_frame_bytes));
        }
        let needed = chunk_frame_len(self.snapshot_chunk_bytes);
        if needed > self.max_frame_bytes {
            return Err(ConfigError::ChunkExceedsFrame {
                chunk: self.snapshot_chunk_bytes,
                needed,
                max: self.max_frame_bytes,
            });
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err(ConfigError::Backoff);
        }
        if self.connect_timeout.is_zero() || self.io_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TransportConfig {
        TransportConfig::new(1, 7, "127.0.0.1:0".parse().unwrap())
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn refuses_what_cannot_work() {
        type Change = fn(&mut TransportConfig);
        let cases: [(Change, ConfigError); 7] = [
            (|c| c.id = 0, ConfigError::ZeroId),
            (|c| _ = c.peers.insert(0, c.listen), ConfigError::ZeroId),
            (|c| c.queue_capacity = 0, ConfigError::ZeroQueueCapacity),
            (|c| c.snapshot_chunk_bytes = 0, ConfigError::ZeroChunk),
            (|c| c.backoff_min = Duration::ZERO, ConfigError::Backoff),
            (
                |c| c.backoff_max = Duration::from_millis(1),
                ConfigError::Backoff,
            ),
            (|c| c.io_timeout = Duration::ZERO, ConfigError::ZeroTimeout),
        ];
        for (change, expected) in cases {
            let mut c = config();
            change(&mut c);
            assert_eq!(c.validate(), Err(expected));
        }
    }

    #[test]
    fn a_chunk_must_fit_a_frame_with_its_framing() {
        let mut c = config();
        c.max_frame_bytes = c.snapshot_chunk_bytes;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ChunkExceedsFrame { .. })
        ));
        c.max_frame_bytes = chunk_frame_len(c.snapshot_chunk_bytes);
        assert_eq!(c.validate(), Ok(()));
        c.max_frame_bytes = u32::MAX as usize + 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::FrameLimitTooLarge(_))
        ));
    }
}
