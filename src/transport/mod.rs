//! Transports: frames to the endpoint.
//!
//! [`Transport`] is what the delivery task drives: make ready, send frames,
//! close. Stream transports (TCP, TLS) write frames back to back over one
//! persistent connection:
//!
//! * [`connect`]: resolving ([`dns`]), TCP to each of the host's addresses
//!   in turn, and the TLS handshake, each with a timeout (the HTTP client
//!   connects through it too);
//! * [`tls`]: the rustls client configuration (trust anchors, CA files) and the handshake;
//! * [`reconnect`]: the persistent link, its liveness check, the write timeout,
//!   reconnection after the [`backoff`] every transport shares.
//!
//! [`udp`] sends each GELF message (compressed by the export loop) as one
//! datagram or as GELF chunks, with no delivery guarantee.
//!
//! [`http`] posts GELF messages to an `http(s)://` endpoint instead, and learns
//! from each answer whether they were delivered, should be sent again, or were
//! refused for good ([`Transport::take_rejected`]).

pub(crate) mod acked;
pub(crate) mod backoff;
pub(crate) mod connect;
pub(crate) mod dns;
pub(crate) mod http;
#[cfg(djehouty_measure)]
pub(crate) mod measure;
pub(crate) mod reconnect;
pub(crate) mod tls;
pub(crate) mod udp;

use acked::Ledger;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::config::{Config, Endpoint, Scheme};
use crate::error::{Error, Result, Step};
use crate::frames::FrameRun;
use crate::stats::Counters;

/// The way to the endpoint, chosen by the endpoint's scheme.
pub(crate) enum Transport {
    /// TCP or TLS: one persistent connection, frames back to back.
    Stream(reconnect::Link),
    /// HTTP or HTTPS: GELF messages posted over keep-alive connections, each
    /// request acknowledged.
    Http(Box<http::HttpLink>),
    /// UDP (GELF only): each message one datagram, or GELF chunks.
    Udp(udp::UdpLink),
}

/// A write that failed: one that made no progress for `limit` (an
/// `io::ErrorKind::TimedOut`) is a write timeout, any other an I/O error,
/// both naming the endpoint.
pub(crate) fn write_error(endpoint: &Endpoint, source: io::Error, limit: Duration) -> Error {
    let endpoint = endpoint.to_string();
    if source.kind() == io::ErrorKind::TimedOut {
        Error::Timeout {
            step: Step::Write,
            endpoint,
            timeout: limit,
        }
    } else {
        Error::Write { endpoint, source }
    }
}

/// Records done with but dropped rather than delivered: refused for good by
/// an HTTP endpoint (a 4xx, 501 or 505 answer), or too large for UDP's 128
/// chunks.
#[derive(Debug)]
pub(crate) struct Rejected {
    /// How many of the frames a [`Transport::send`] reported done were refused.
    pub(crate) records: usize,
    /// The last refusal.
    pub(crate) error: Error,
}

impl Transport {
    /// Builds the transport for `config`'s endpoint.
    pub(crate) fn new(config: &Config, counters: Counters) -> Result<Transport> {
        let endpoint = &config.endpoint;
        match endpoint.scheme() {
            Scheme::Tcp => Ok(Transport::Stream(reconnect::Link::new(
                endpoint.clone(),
                None,
                config.timeouts,
                counters,
            ))),
            Scheme::Tls => {
                let tls = tls::TlsSettings::new(endpoint, &config.tls)?;
                Ok(Transport::Stream(reconnect::Link::new(
                    endpoint.clone(),
                    Some(tls),
                    config.timeouts,
                    counters,
                )))
            }
            Scheme::Http | Scheme::Https => {
                let link = http::HttpLink::new(config, counters)?;
                Ok(Transport::Http(Box::new(link)))
            }
            Scheme::Udp => Ok(Transport::Udp(udp::UdpLink::new(
                endpoint.clone(),
                config.udp,
                config.timeouts,
                counters,
            ))),
        }
    }

    /// Lets the next attempt go at once, whatever the backoff (a shutdown's
    /// last attempts).
    pub(crate) fn skip_backoff(&mut self) {
        match self {
            Transport::Stream(link) => link.skip_backoff(),
            Transport::Http(link) => link.skip_backoff(),
            Transport::Udp(link) => link.skip_backoff(),
        }
    }

    /// Sleeps out the backoff delay after a failed attempt, if any: what
    /// [`ready`](Transport::ready) waits for before its attempt.
    pub(crate) async fn wait_backoff(&self) {
        match self {
            Transport::Stream(link) => link.wait_backoff().await,
            Transport::Http(link) => link.wait_backoff().await,
            Transport::Udp(link) => link.wait_backoff().await,
        }
    }

    /// Makes sure the next [`send`](Transport::send) can go ahead: a live
    /// connection, after the backoff delay if the last attempt failed.
    pub(crate) async fn ready(&mut self) -> Result<()> {
        match self {
            Transport::Stream(link) => link.ready().await,
            Transport::Http(link) => link.ready().await,
            Transport::Udp(link) => link.ready().await,
        }
    }

    /// Sends frames (each ends with its delimiter).
    /// Returns how many frames, from the front, were sent whole (over TCP and
    /// TLS: written, delivered once acknowledged; over HTTP: answered, and
    /// possibly refused for good, see [`take_rejected`](Transport::take_rejected))
    /// and the error that stopped the rest, if any. The frames not sent are
    /// sent again later, whole. Over HTTP, a send may also stop early
    /// without an error, to report what was answered so far.
    pub(crate) async fn send(&mut self, frames: FrameRun<'_>) -> (usize, Result<()>) {
        match self {
            Transport::Stream(link) => {
                let (written, result) = link.write(frames.data()).await;
                // Only whole frames count; a frame cut by the failure is
                // written again, whole, on the next connection.
                (frames.whole_in(written), result)
            }
            Transport::Http(link) => link.send(frames).await,
            Transport::Udp(link) => link.send(frames).await,
        }
    }

    /// Whether the last [`send`](Transport::send), which went without an
    /// error, proved that the endpoint takes records: an HTTP answer does,
    /// a UDP send only a while after its socket's first (an ICMP error a
    /// send draws surfaces on a later one, once back), a write to a TCP
    /// connection never (the
    /// kernel takes it whatever the peer does: its acknowledgements prove
    /// it, see [`acknowledged`](Transport::acknowledged)).
    pub(crate) fn send_proves_delivery(&self) -> bool {
        match self {
            Transport::Stream(_) => false,
            Transport::Http(_) => true,
            Transport::Udp(link) => link.proven(),
        }
    }

    /// Where the next [`send`](Transport::send) starts on its connection
    /// (the connection's number, and the plaintext bytes written on it),
    /// for transports whose frames are delivered only once the peer's TCP
    /// acknowledged them; `None` for the others (HTTP answers each request,
    /// UDP acknowledges nothing), whose sent frames are done with at once.
    pub(crate) fn position(&self) -> Option<(u64, u64)> {
        match self {
            Transport::Stream(link) => Some(link.position()),
            Transport::Http(_) | Transport::Udp(_) => None,
        }
    }

    /// How many frames, from the front, the send under way (or the last)
    /// is done with so far: read when a send is cut short (its future
    /// dropped at a shutdown that gave up), for HTTP, whose requests
    /// answered are done with for good. None for the others: TCP and TLS
    /// tell by [`acknowledged`](Transport::acknowledged), and what a UDP
    /// send cut short handed the kernel is not known to have gone out.
    pub(crate) fn done_so_far(&self) -> usize {
        match self {
            Transport::Http(link) => link.done_so_far(),
            Transport::Stream(_) | Transport::Udp(_) => 0,
        }
    }

    /// Whether a connection was dropped whose final word waits: see
    /// [`reconnect::Link::dropped_one`].
    pub(crate) fn dropped_one(&self) -> bool {
        match self {
            Transport::Stream(link) => link.dropped_one(),
            Transport::Http(_) | Transport::Udp(_) => false,
        }
    }

    /// How far the peer's TCP acknowledged: see [`reconnect::Link::acknowledged`].
    pub(crate) fn acknowledged(&mut self) -> Option<reconnect::Acked> {
        match self {
            Transport::Stream(link) => link.acknowledged(),
            Transport::Http(_) | Transport::Udp(_) => None,
        }
    }

    /// Checks a connection that has written bytes not all acknowledged (when
    /// idle, and before each write): see [`reconnect::Link::check`].
    pub(crate) fn check(&mut self) -> Result<()> {
        match self {
            Transport::Stream(link) => link.check(),
            Transport::Http(_) | Transport::Udp(_) => Ok(()),
        }
    }

    /// How many of the frames the last [`send`](Transport::send) reported done
    /// were refused for good rather than delivered, with the last refusal.
    pub(crate) fn take_rejected(&mut self) -> Option<Rejected> {
        match self {
            Transport::Stream(_) => None,
            Transport::Udp(link) => link.take_rejected(),
            Transport::Http(link) => link.take_rejected(),
        }
    }

    /// Makes a TCP or TLS connection reset when dropped if its peer has not
    /// acknowledged all that was written: see
    /// [`Connection::reset_if_unacknowledged`].
    pub(crate) fn reset_if_unacknowledged(&mut self) {
        if let Transport::Stream(link) = self {
            link.reset_if_unacknowledged();
        }
    }

    /// Closes cleanly, within `limit`.
    pub(crate) async fn close(&mut self, limit: Duration) {
        match self {
            Transport::Stream(link) => link.close(limit).await,
            Transport::Http(link) => link.close(limit).await,
            Transport::Udp(link) => link.close(),
        }
    }
}

/// A byte stream to the endpoint: plain TCP or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// An established connection, and the ledger of what its peer acknowledged.
pub(crate) struct Connection {
    stream: Box<dyn Stream>,
    ledger: Ledger,
}

impl Connection {
    pub(crate) fn new(stream: Box<dyn Stream>, ledger: Ledger) -> Connection {
        Connection { stream, ledger }
    }

    /// What the peer acknowledged of what was written.
    pub(crate) fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// Writes some of `data`, returning how many bytes were accepted; a
    /// stream that accepts nothing is an error.
    pub(crate) async fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.stream.write(data).await? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            n => Ok(n),
        }
    }

    /// Pushes buffered bytes (TLS records) to the socket.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }

    /// Tells, without waiting, whether the peer has closed or reset the connection.
    ///
    /// A write to a connection the peer already closed usually succeeds (the
    /// kernel accepts the bytes) and the data is lost; checking before reuse
    /// catches a receiver that restarted or closed an idle connection. Anything
    /// the peer sent (TLS session tickets, say) is read and discarded.
    pub(crate) fn peer_closed(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut scratch = [0u8; 1024];
        // Bounded: a peer that streams data at us cannot keep us here.
        for _ in 0..64 {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
                Poll::Pending => return false,
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return true,
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return true,
            }
        }
        false
    }

    /// Makes the connection reset when dropped, rather than closed, if its
    /// peer has not acknowledged all that was written (asked of the kernel
    /// now): for a connection given up whose frames are written again
    /// elsewhere, or reported undelivered by a shutdown, which the kernel
    /// must not go on sending. Returns whether it will.
    pub(crate) fn reset_if_unacknowledged(&mut self) -> bool {
        let waiting = self.ledger.acknowledged() < self.ledger.written();
        if waiting {
            self.ledger.reset_on_close();
        }
        waiting
    }

    /// Closes cleanly: TLS close_notify, then the write side, then reads until the
    /// peer closes (bounded), so the kernel never answers unread data with a reset
    /// that could make the receiver discard frames. One whose peer has not
    /// acknowledged all that was written (a shutdown whose time ran out) is
    /// reset instead.
    pub(crate) async fn close(mut self, limit: Duration) {
        if self.reset_if_unacknowledged() {
            return;
        }
        let _ = tokio::time::timeout(limit, async {
            if self.stream.shutdown().await.is_err() {
                return;
            }
            let mut scratch = [0u8; 1024];
            loop {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
    }
}
