//! The HTTP client's connector: connections opened with the exporter's own
//! connect and TLS code, so that `https://` gets exactly `tls://`'s
//! configuration, timeouts and named failures.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
    /// The time spent opening connections, shared with the link.
    pub(super) opening: Opening,
}

/// The time the connector spends opening connections (looking the host
/// up, connecting, the TLS handshake), which the link leaves out of a
/// request's own time: each of those steps has a limit of its own, and a
/// lookup's (`RESOLVE_TIMEOUT`) is none of the request's timeouts.
#[derive(Clone, Default)]
pub(super) struct Opening(Arc<Mutex<OpeningTime>>);

#[derive(Default)]
struct OpeningTime {
    /// Connections being opened.
    open: usize,
    /// Since when some connection has been, if one is.
    since: Option<Instant>,
    /// The time spent opening since the last `restart`, but from `since`.
    spent: Duration,
}

impl Opening {
    fn lock(&self) -> MutexGuard<'_, OpeningTime> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts from now on: the time spent so far is forgotten.
    pub(super) fn restart(&self) {
        let mut time = self.lock();
        time.spent = Duration::ZERO;
        if time.since.is_some() {
            time.since = Some(Instant::now());
        }
    }

    /// The time spent opening connections since the last
    /// [`restart`](Self::restart), a connection being opened included.
    pub(super) fn spent(&self) -> Duration {
        let time = self.lock();
        time.spent + time.since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Counts the time until the guard returned is dropped: the connection
    /// opened, failed or was given up.
    fn begin(&self) -> OpeningGuard {
        let mut time = self.lock();
        time.open += 1;
        if time.since.is_none() {
            time.since = Some(Instant::now());
        }
        OpeningGuard(self.clone())
    }
}

/// See [`Opening::begin`].
struct OpeningGuard(Opening);

impl Drop for OpeningGuard {
    fn drop(&mut self) {
        let mut time = self.0.lock();
        time.open = time.open.saturating_sub(1);
        if time.open == 0 {
            if let Some(since) = time.since.take() {
                time.spent += since.elapsed();
            }
        }
    }
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
            let opening = connector.opening.begin();
            let opened = connector.open().await;
            drop(opening);
            match opened {
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
