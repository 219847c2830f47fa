//! The persistent link to the endpoint: one connection reused for every write,
//! checked before each use, replaced when it fails, stalls or is closed by the
//! peer, and re-established with exponential backoff and jitter.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Endpoint, Timeouts};
use crate::error::{Error, Result};
use crate::stats::Counters;
use crate::transport::tls::TlsSettings;
use crate::transport::{tcp, Connection};

/// First delay after a failure.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest delay between connection attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// A connection that fails after living this long was healthy: the next
/// connection is attempted at once. One that fails sooner counts as another
/// failure in a row, so an endpoint that accepts and then drops connections
/// is retried ever more slowly rather than in a tight loop.
const STABLE_AFTER: Duration = Duration::from_secs(1);

/// Connection state, owned by the delivery task on the exporter's runtime.
pub(crate) struct Link {
    endpoint: Endpoint,
    tls: Option<TlsSettings>,
    timeouts: Timeouts,
    counters: Counters,
    conn: Option<(Connection, Instant)>,
    /// Consecutive failures.
    failures: u32,
    /// No connection attempt before this instant.
    next_attempt: Option<Instant>,
}

impl Link {
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: Option<TlsSettings>,
        timeouts: Timeouts,
        counters: Counters,
    ) -> Link {
        Link {
            endpoint,
            tls,
            timeouts,
            counters,
            conn: None,
            failures: 0,
            next_attempt: None,
        }
    }

    /// Makes sure there is a live connection: checks the current one, else waits
    /// out the backoff delay and connects (and shakes hands).
    pub(crate) async fn ready(&mut self) -> Result<()> {
        if let Some((conn, opened)) = self.conn.as_mut() {
            if !conn.peer_closed() {
                return Ok(());
            }
            let after = opened.elapsed();
            opentelemetry::otel_debug!(
                name: "djehouty.PeerClosedConnection",
                endpoint = self.endpoint.to_string()
            );
            self.drop_connection();
            // A connection closed soon after it opened is a failure (reported,
            // with backoff); an old one closed by the peer (idle timeout,
            // restart) is simply replaced.
            if after < STABLE_AFTER {
                return Err(Error::PeerClosed {
                    endpoint: self.endpoint.to_string(),
                    after,
                });
            }
        }
        if let Some(at) = self.next_attempt {
            tokio::time::sleep_until(at).await;
        }
        match self.open().await {
            Ok(conn) => {
                self.conn = Some((conn, Instant::now()));
                self.next_attempt = None;
                self.counters.add_connection();
                Ok(())
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                self.next_attempt = Some(Instant::now() + backoff(self.failures));
                Err(error)
            }
        }
    }

    /// Writes `data` to the connection [`ready`](Link::ready) made sure of.
    /// Returns how many bytes reached the socket, and the error that stopped
    /// the write early, if any: a write that makes no progress for the write
    /// timeout fails, and a failed connection is dropped. Each write is
    /// flushed before its bytes count, so bytes TLS had buffered but not yet
    /// sent when the connection failed are written again, not lost.
    pub(crate) async fn write(&mut self, data: &[u8]) -> (usize, Result<()>) {
        let Some((conn, _)) = self.conn.as_mut() else {
            return (0, Err(Error::ShutDown));
        };
        let limit = self.timeouts.write;
        let mut written = 0;
        let mut result = Ok(());
        while written < data.len() {
            let step = async {
                let n = conn.write(&data[written..]).await?;
                conn.flush().await?;
                Ok::<usize, std::io::Error>(n)
            };
            match tokio::time::timeout(limit, step).await {
                Ok(Ok(n)) => written += n,
                Ok(Err(source)) => {
                    result = Err(source);
                    break;
                }
                Err(_) => {
                    result = Err(std::io::ErrorKind::TimedOut.into());
                    break;
                }
            }
        }
        match result {
            Ok(()) => (written, Ok(())),
            Err(source) => {
                self.drop_connection();
                let endpoint = self.endpoint.to_string();
                let error = if source.kind() == std::io::ErrorKind::TimedOut {
                    Error::Timeout {
                        step: "write",
                        endpoint,
                        timeout: limit,
                    }
                } else {
                    Error::Write { endpoint, source }
                };
                (written, Err(error))
            }
        }
    }

    /// Forgets a connection that failed, choosing when to try the next one.
    fn drop_connection(&mut self) {
        if let Some((_, opened)) = self.conn.take() {
            if opened.elapsed() >= STABLE_AFTER {
                self.failures = 0;
                self.next_attempt = None;
            } else {
                self.failures = self.failures.saturating_add(1);
                self.next_attempt = Some(Instant::now() + backoff(self.failures));
            }
        }
    }

    async fn open(&self) -> Result<Connection> {
        let tcp = tcp::connect(&self.endpoint, self.timeouts.connect).await?;
        match &self.tls {
            None if !self.endpoint.scheme().is_tls() => Ok(Connection::new(Box::new(tcp))),
            Some(tls) => {
                let stream = tls
                    .handshake(&self.endpoint, tcp, self.timeouts.handshake)
                    .await?;
                Ok(Connection::new(Box::new(stream)))
            }
            // `Transport::new` always builds TLS settings for a TLS endpoint;
            // refuse rather than fall back to plaintext.
            None => Err(Error::NoTrustAnchors),
        }
    }

    /// Closes the connection cleanly, within `limit`.
    pub(crate) async fn close(&mut self, limit: Duration) {
        if let Some((conn, _)) = self.conn.take() {
            conn.close(limit).await;
        }
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random. Also
/// paces the HTTP transport's retries.
pub(crate) fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let full = BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_CAP);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for failures in 1..40 {
            let d = backoff(failures);
            let full = BACKOFF_BASE
                .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
                .min(BACKOFF_CAP);
            assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
        }
        assert!(backoff(40) <= BACKOFF_CAP);
    }
}
