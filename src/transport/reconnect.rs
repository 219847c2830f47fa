//! The persistent link to the endpoint: one connection reused for every write,
//! checked before each use, replaced when it fails, stalls or is closed by the
//! peer, and re-established with exponential backoff and jitter.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Endpoint, Timeouts};
use crate::error::{Error, Result};
use crate::stats::Counters;
use crate::transport::backoff::Backoff;
use crate::transport::connect::connect;
use crate::transport::tls::TlsSettings;
use crate::transport::{write_error, Connection};
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
    backoff: Backoff,
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
            backoff: Backoff::default(),
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
        self.backoff.wait().await;
        match connect(&self.endpoint, self.tls.as_ref(), self.timeouts).await {
            Ok(stream) => {
                self.conn = Some((Connection::new(stream), Instant::now()));
                self.backoff.went_through();
                self.counters.add_connection();
                Ok(())
            }
            Err(error) => {
                self.backoff.failed();
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
                (written, Err(write_error(&self.endpoint, source, limit)))
            }
        }
    }

    /// Forgets a connection that failed, choosing when to try the next one.
    fn drop_connection(&mut self) {
        if let Some((_, opened)) = self.conn.take() {
            if opened.elapsed() >= STABLE_AFTER {
                self.backoff.reset();
            } else {
                self.backoff.failed();
            }
        }
    }

    /// Closes the connection cleanly, within `limit`.
    pub(crate) async fn close(&mut self, limit: Duration) {
        if let Some((conn, _)) = self.conn.take() {
            conn.close(limit).await;
        }
    }
}
