//! The handshake: the dialer says who it is and whom it wants; the acceptor
//! takes the connection only from a known peer of its own cluster.

use crate::config::TransportConfig;
use crate::conn::Connection;
use crate::error::TransportError;
use crate::frame::{Body, Hello, PROTOCOL_VERSION};
use std::net::SocketAddr;
use thiserror::Error;
use tokio::net::TcpStream;

/// The frame limit until the handshake is done: a `Hello` or a refusal is
/// tiny, so an unknown dialer gets no large buffers.
pub(crate) const HANDSHAKE_FRAME_BYTES: usize = 1024;

/// Why the acceptor refuses a [`Hello`]; the text goes back to the dialer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The dialer speaks another protocol version.
    #[error("protocol version {theirs}, this node speaks {ours}")]
    Version { theirs: u32, ours: u32 },
    /// The dialer belongs to another cluster.
    #[error("cluster {theirs}, this node is in cluster {ours}")]
    Cluster { theirs: u64, ours: u64 },
    /// The dialer meant to reach another node (an address reused by
    /// another member, or a stale peer list).
    #[error("meant for node {to}, this is node {ours}")]
    WrongNode { to: u64, ours: u64 },
    /// The dialer is not among this node's peers.
    #[error("node {from} is not a known peer")]
    UnknownPeer { from: u64 },
}

/// Checks everything in `hello` but whether its sender is a known peer
/// (which the caller looks up in its peer table).
pub(crate) fn check_hello(hello: &Hello, config: &TransportConfig) -> Result<(), Refusal> {
    if hello.version != PROTOCOL_VERSION {
        return Err(Refusal::Version {
            theirs: hello.version,
            ours: PROTOCOL_VERSION,
        });
    }
    if hello.cluster_id != config.cluster_id {
        return Err(Refusal::Cluster {
            theirs: hello.cluster_id,
            ours: config.cluster_id,
        });
    }
    if hello.to != config.id {
        return Err(Refusal::WrongNode {
            to: hello.to,
            ours: config.id,
        });
    }
    Ok(())
}

/// Dials `addr` and says `hello`; the connection is returned once the
/// acceptor took it, with the configured frame limit. Bounded by
/// `connect_timeout` in all.
pub(crate) async fn dial(
    addr: SocketAddr,
    hello: Hello,
    config: &TransportConfig,
) -> Result<Connection, TransportError> {
    let handshake = async {
        let stream = TcpStream::connect(addr).await?;
        let mut conn = Connection::new(stream, HANDSHAKE_FRAME_BYTES, config.io_timeout);
        conn.send(Body::Hello(hello)).await?;
        match conn.recv().await? {
            Some(Body::HelloAck(_)) => {
                conn.set_max_frame_bytes(config.max_frame_bytes);
                Ok(conn)
            }
            Some(Body::Refused(refused)) => Err(TransportError::Refused {
                reason: refused.reason,
            }),
            Some(other) => Err(TransportError::UnexpectedFrame {
                got: other.name(),
                expected: "HelloAck or Refused",
            }),
            None => Err(TransportError::Closed),
        }
    };
    tokio::time::timeout(config.connect_timeout, handshake)
        .await
        .unwrap_or(Err(TransportError::Timeout("the connection and handshake")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TransportConfig {
        TransportConfig::new(2, 7, "127.0.0.1:0".parse().unwrap())
    }

    fn hello() -> Hello {
        Hello {
            cluster_id: 7,
            from: 1,
            to: 2,
            version: PROTOCOL_VERSION,
        }
    }

    #[test]
    fn accepts_a_hello_for_this_node_in_this_cluster() {
        assert_eq!(check_hello(&hello(), &config()), Ok(()));
    }

    #[test]
    fn refuses_another_cluster_node_or_version() {
        let c = config();
        let h = Hello {
            cluster_id: 8,
            ..hello()
        };
        assert_eq!(
            check_hello(&h, &c),
            Err(Refusal::Cluster { theirs: 8, ours: 7 })
        );
        let h = Hello { to: 3, ..hello() };
        assert_eq!(
            check_hello(&h, &c),
            Err(Refusal::WrongNode { to: 3, ours: 2 })
        );
        let h = Hello {
            version: 99,
            ..hello()
        };
        assert_eq!(
            check_hello(&h, &c),
            Err(Refusal::Version {
                theirs: 99,
                ours: PROTOCOL_VERSION
            })
        );
    }
}
