//! Plain TCP: resolving and connecting, bounded in time.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::Endpoint;
use crate::error::{Error, Result};

/// Connects to the endpoint's host and port (every resolved address in turn),
/// within `limit`.
pub(crate) async fn connect(endpoint: &Endpoint, limit: Duration) -> Result<TcpStream> {
    let addr = (endpoint.host(), endpoint.port());
    let stream = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Timeout {
            step: "connect",
            endpoint: endpoint.to_string(),
            timeout: limit,
        })?
        .map_err(|source| Error::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?;
    // Batches are written whole; don't hold their tail back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
