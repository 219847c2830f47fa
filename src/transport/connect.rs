//! Connecting: resolving the host, TCP, and the TLS handshake where the
//! endpoint asks for it, each bounded in time. One path for the stream
//! transports and the HTTP client.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::acked::{Meter, MeteredTcp};
use super::tls::TlsSettings;
use super::Stream;
use crate::config::{Endpoint, Timeouts};
use crate::error::{Error, Result, Step};

/// Connects to the endpoint (every resolved address in turn) and, with
/// `tls`, shakes hands. A TLS endpoint without TLS settings is refused
/// rather than spoken to in plaintext. Returns the stream and the meter of
/// the socket under it (see [`acked`](super::acked)).
pub(crate) async fn connect(
    endpoint: &Endpoint,
    tls: Option<&TlsSettings>,
    timeouts: Timeouts,
) -> Result<(Box<dyn Stream>, Arc<Meter>)> {
    if tls.is_none() && endpoint.scheme().is_tls() {
        return Err(Error::NoTrustAnchors);
    }
    let addr = (endpoint.host(), endpoint.port());
    let tcp = connecting(endpoint, timeouts.connect, TcpStream::connect(addr)).await?;
    // Batches are written whole; don't hold their tail back.
    let _ = tcp.set_nodelay(true);
    let tcp = MeteredTcp::new(tcp);
    let meter = tcp.meter();
    match tls {
        None => Ok((Box::new(tcp), meter)),
        Some(tls) => Ok((
            Box::new(tls.handshake(endpoint, tcp, timeouts.handshake).await?),
            meter,
        )),
    }
}

/// Runs a connection `attempt` within `limit`: running out of time is a
/// connect timeout, an I/O error a connect error, both naming the endpoint.
pub(crate) async fn connecting<T>(
    endpoint: &Endpoint,
    limit: Duration,
    attempt: impl Future<Output = io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::Connect {
            endpoint: endpoint.to_string(),
            source,
        }),
        Err(_) => Err(Error::Timeout {
            step: Step::Connect,
            endpoint: endpoint.to_string(),
            timeout: limit,
        }),
    }
}
