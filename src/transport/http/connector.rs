//! The HTTP client's connector: connections opened with the exporter's own
//! connect and TLS code, so that `https://` gets exactly `tls://`'s
//! configuration, timeouts and named failures.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

use crate::config::{Endpoint, Timeouts};
use crate::error::{Error, Result};
use crate::stats::Counters;
use crate::transport::connect::connect;
use crate::transport::dns::Resolver;
use crate::transport::tls::TlsSettings;
use crate::transport::Stream;

/// Opens the client's connections with the exporter's own TCP and TLS code.
#[derive(Clone)]
pub(super) struct Connector {
    pub(super) endpoint: Endpoint,
    pub(super) tls: Option<TlsSettings>,
    pub(super) timeouts: Timeouts,
    pub(super) counters: Counters,
    /// The endpoint's addresses, shared by the clones (one per connection).
    pub(super) resolver: Resolver,
    /// Where a failure is left, whole, for [`HttpLink::request_error`](super::HttpLink::request_error): the
    /// client only passes on its message.
    pub(super) error: Arc<Mutex<Option<Error>>>,
}

impl Connector {
    async fn open(&self) -> Result<Box<dyn Stream>> {
        let (stream, _) = connect(
            &self.endpoint,
            self.tls.as_ref(),
            self.timeouts,
            &self.resolver,
        )
        .await?;
        Ok(stream)
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Box<dyn Stream>>;
    type Error = ConnectFailed;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectFailed>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectFailed>> {
        Poll::Ready(Ok(()))
    }

    /// Connects to the endpoint (the client only ever asks for it).
    fn call(&mut self, _uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move {
            match connector.open().await {
                Ok(stream) => {
                    connector.counters.add_connection();
                    Ok(TokioIo::new(stream))
                }
                Err(error) => {
                    let failed = ConnectFailed(error.to_string());
                    *connector.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                    Err(failed)
                }
            }
        })
    }
}

impl Connection for Box<dyn Stream> {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// A failed connection, as the client reports it (the whole error is kept by
/// the connector).
#[derive(Debug)]
pub(super) struct ConnectFailed(pub(super) String);

impl std::fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectFailed {}
