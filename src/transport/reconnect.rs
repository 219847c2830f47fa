//! The persistent link to the endpoint: one connection reused across batches,
//! checked before reuse, re-established with exponential backoff and jitter, and
//! one retry of a batch whose write failed.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Endpoint, Scheme, Timeouts};
use crate::error::{Error, Result};
use crate::transport::tls::TlsSettings;
use crate::transport::{tcp, Connection};

/// First delay after a failed connection attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest delay between connection attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Connection state, owned by the exporter's I/O runtime.
pub(crate) struct Link {
    endpoint: Endpoint,
    tls: Option<TlsSettings>,
    timeouts: Timeouts,
    conn: Option<Connection>,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// No connection attempt before this instant.
    next_attempt: Option<Instant>,
}

impl Link {
    pub(crate) fn new(endpoint: Endpoint, tls: Option<TlsSettings>, timeouts: Timeouts) -> Link {
        Link {
            endpoint,
            tls,
            timeouts,
            conn: None,
            failures: 0,
            next_attempt: None,
        }
    }

    /// Writes `data` within the export budget. On failure the connection is
    /// replaced and the data written once more before the error is returned.
    pub(crate) async fn send(&mut self, data: &[u8]) -> Result<()> {
        let deadline = Instant::now() + self.timeouts.export;
        if self.conn.as_mut().is_some_and(Connection::peer_closed) {
            opentelemetry::otel_debug!(
                name: "djehouty.PeerClosedIdleConnection",
                endpoint = self.endpoint.to_string()
            );
            self.conn = None;
        }
        match self.attempt(data, deadline).await {
            Ok(()) => Ok(()),
            Err(first) => {
                self.conn = None;
                if Instant::now() >= deadline {
                    return Err(first);
                }
                opentelemetry::otel_debug!(
                    name: "djehouty.Retry",
                    endpoint = self.endpoint.to_string(),
                    error = first.to_string()
                );
                let result = self.attempt(data, deadline).await;
                if result.is_err() {
                    self.conn = None;
                }
                result
            }
        }
    }

    async fn attempt(&mut self, data: &[u8], deadline: Instant) -> Result<()> {
        if self.conn.is_none() {
            self.conn = Some(self.connect(deadline).await?);
        }
        let limit = remaining(deadline).min(self.timeouts.write);
        let endpoint = &self.endpoint;
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::ShutDown);
        };
        match tokio::time::timeout(limit, conn.write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Write {
                endpoint: endpoint.to_string(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                step: "write",
                endpoint: endpoint.to_string(),
                timeout: limit,
            }),
        }
    }

    /// Connects (and shakes hands), waiting out the backoff delay if it ends
    /// before the deadline.
    async fn connect(&mut self, deadline: Instant) -> Result<Connection> {
        if let Some(at) = self.next_attempt {
            if at > deadline {
                return Err(Error::Timeout {
                    step: "connect (waiting for the backoff delay)",
                    endpoint: self.endpoint.to_string(),
                    timeout: self.timeouts.export,
                });
            }
            tokio::time::sleep_until(at).await;
        }
        match self.open(deadline).await {
            Ok(conn) => {
                self.failures = 0;
                self.next_attempt = None;
                Ok(conn)
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                self.next_attempt = Some(Instant::now() + backoff(self.failures));
                Err(error)
            }
        }
    }

    async fn open(&self, deadline: Instant) -> Result<Connection> {
        let limit = remaining(deadline).min(self.timeouts.connect);
        let tcp = tcp::connect(&self.endpoint, limit).await?;
        match (self.endpoint.scheme(), &self.tls) {
            (Scheme::Tcp, _) => Ok(Connection::new(Box::new(tcp))),
            (Scheme::Tls, Some(tls)) => {
                let limit = remaining(deadline).min(self.timeouts.handshake);
                let stream = tls.handshake(&self.endpoint, tcp, limit).await?;
                Ok(Connection::new(Box::new(stream)))
            }
            // `Exporter::new` always builds TLS settings for a TLS endpoint;
            // refuse rather than fall back to plaintext.
            (Scheme::Tls, None) => Err(Error::NoTrustAnchors),
        }
    }

    /// Closes the connection cleanly, within `limit`.
    pub(crate) async fn close(&mut self, limit: Duration) {
        if let Some(conn) = self.conn.take() {
            conn.close(limit).await;
        }
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Exponential backoff with "equal jitter": half fixed, half random.
fn backoff(failures: u32) -> Duration {
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
