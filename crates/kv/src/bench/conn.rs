//! One client's keep-alive HTTP/1.1 connection to one server.
//!
//! The load generator shares two cores with the cluster it measures, so
//! what it spends per request is taken from the servers. A connection owned
//! by one client needs no pool, no lock and no redirect policy: each request
//! is written on the connection and its answer read to the end, and after
//! an error the next request dials again.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// What came back for one request.
pub(super) struct Answer {
    /// The status.
    pub(super) status: StatusCode,
    /// The `Location` header, on a redirect.
    pub(super) location: Option<String>,
    /// The whole body.
    pub(super) body: Bytes,
}

/// A connection to one server, dialled on first use and after errors.
pub(super) struct Conn {
    /// `host:port`, to dial and for the `Host` header.
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Conn {
    /// A connection to `authority` (`host:port`) whose requests give up
    /// after `timeout`, dialling included.
    pub(super) fn new(authority: String, timeout: Duration) -> Conn {
        Conn {
            authority,
            sender: None,
            timeout,
        }
    }

    /// Sends one request and reads the answer to its end, or names the
    /// kind of failure (`timeout`, `connect`, `transport`).
    pub(super) async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Answer, String> {
        match tokio::time::timeout(self.timeout, self.exchange(method, path_and_query, body)).await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(kind)) => {
                self.sender = None;
                Err(kind.into())
            }
            Err(_) => {
                // The answer may still come on this connection: start afresh.
                self.sender = None;
                Err("timeout".into())
            }
        }
    }

    /// Dials the connection now, if it is not open, so that a request's
    /// latency need not include it; a failure is left for the first
    /// request to meet (and count).
    pub(super) async fn dial(&mut self) {
        if tokio::time::timeout(self.timeout, self.ready())
            .await
            .is_err()
        {
            self.sender = None;
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Answer, &'static str> {
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, &self.authority)
            .body(Full::new(body))
            .map_err(|_| "transport")?;
        let sender = self.ready().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| "transport")?;
        let status = response.status();
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "transport")?
            .to_bytes();
        Ok(Answer {
            status,
            location,
            body,
        })
    }

    /// The connection, ready for a request: dialled if there is none.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, &'static str> {
        if self.sender.as_ref().is_some_and(SendRequest::is_closed) {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = TcpStream::connect(&self.authority)
                .await
                .map_err(|_| "connect")?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| "connect")?;
            tokio::spawn(async move {
                // Ends when the connection closes; its error, if any, has
                // already failed the request that saw it.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or("connect")?;
        sender.ready().await.map_err(|_| "transport")?;
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_dial_opens_the_connection_before_any_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut conn = Conn::new(addr, Duration::from_secs(5));
        let (accepted, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), listener.accept()),
            conn.dial()
        );
        accepted.expect("dialled").unwrap();
        assert!(conn.sender.is_some(), "the connection is kept for requests");
    }

    #[tokio::test]
    async fn a_failed_dial_is_left_for_the_first_request_to_count() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener); // nothing listens there now
        let mut conn = Conn::new(addr, Duration::from_secs(5));
        conn.dial().await;
        assert!(conn.sender.is_none());
        let sent = conn.send(Method::GET, "/healthz", Bytes::new()).await;
        assert_eq!(sent.err().as_deref(), Some("connect"));
    }
}
