//! The persistent link to the endpoint: one connection reused for every write,
//! checked before each use, replaced when it fails, stalls or is closed by the
//! peer, and re-established with exponential backoff and jitter. It tells
//! where each write lands on its connection and how far the peer's TCP
//! acknowledged it ([`Acked`]), so that delivery counts a frame only once
//! acknowledged and writes again, on the next connection, what was not.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Endpoint, Timeouts};
use crate::error::{Error, Result};
use crate::stats::Counters;
use crate::transport::acked::{Ledger, GATHER_BYTES};
use crate::transport::backoff::Backoff;
use crate::transport::connect::connect;
use crate::transport::dns::Resolver;
use crate::transport::tls::TlsSettings;
use crate::transport::{write_error, Connection};
/// The most plaintext one TLS write carries: one TLS record's worth, so that
/// each write is one record and the peer's acknowledgement of a record tells
/// exactly which bytes it holds. (The socket gathers the records of
/// several writes: see [`acked`](super::acked).)
const TLS_WRITE_BYTES: usize = 16 * 1024;

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
    /// The endpoint's addresses, the last good ones kept.
    resolver: Resolver,
    conn: Option<(Connection, Instant)>,
    backoff: Backoff,
    /// Connections opened so far: the current one's number.
    number: u64,
    /// What the peer acknowledged of a connection dropped since the last
    /// [`acknowledged`](Link::acknowledged), still to be told.
    dropped: Option<Acked>,
    /// When the peer's TCP last acknowledged more (counted in the socket's
    /// bytes, so part of a TLS record counts), or bytes began to wait for
    /// its acknowledgement (a write with none waiting, a new connection):
    /// writes into the kernel's send buffer are no news of the peer.
    progress_at: Instant,
}

/// How far the peer acknowledged the plaintext written on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acked {
    /// The connection's number.
    pub(crate) conn: u64,
    /// Plaintext bytes acknowledged, from the connection's start.
    pub(crate) through: u64,
    /// The connection is still open: more may be acknowledged later.
    pub(crate) open: bool,
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
            resolver: Resolver::default(),
            conn: None,
            backoff: Backoff::default(),
            number: 0,
            dropped: None,
            progress_at: Instant::now(),
        }
    }

    /// Lets the next attempt go at once, whatever the backoff: a shutdown's
    /// last attempts do not sleep it out.
    pub(crate) fn skip_backoff(&mut self) {
        self.backoff.went_through();
    }

    /// Sleeps out the backoff delay after a failed attempt, if any.
    pub(crate) async fn wait_backoff(&self) {
        self.backoff.wait().await;
    }

    /// Drops the connection if its peer closed it, an error if it closed
    /// soon after it opened ([`drop_closed`](Link::drop_closed)): what it
    /// acknowledged is then told by [`acknowledged`](Link::acknowledged)
    /// at once, not after the next connection, which may take its whole
    /// timeouts to open.
    fn drop_if_closed(&mut self) -> Result<()> {
        let closed = self
            .conn
            .as_mut()
            .is_some_and(|(conn, _)| conn.peer_closed());
        if closed {
            self.drop_closed()
        } else {
            Ok(())
        }
    }

    /// Makes sure there is a connection: with none, waits out the backoff
    /// delay and connects (and shakes hands). One its peer closed is the
    /// caller's to drop first ([`check`](Link::check)), so that what its
    /// peer acknowledged is settled before this waits.
    pub(crate) async fn ready(&mut self) -> Result<()> {
        if self.conn.is_some() {
            return Ok(());
        }
        self.backoff.wait().await;
        match connect(
            &self.endpoint,
            self.tls.as_ref(),
            self.timeouts,
            &self.resolver,
        )
        .await
        {
            Ok((stream, meter)) => {
                let ledger = Ledger::new(meter, self.tls.is_some());
                self.conn = Some((Connection::new(stream, ledger), Instant::now()));
                self.number += 1;
                self.progress_at = Instant::now();
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

    /// Where the next write starts: the connection's number and the
    /// plaintext bytes written on it so far.
    pub(crate) fn position(&self) -> (u64, u64) {
        let written = self
            .conn
            .as_ref()
            .map_or(0, |(conn, _)| conn.ledger.written());
        (self.number, written)
    }

    /// Whether a connection was dropped since the last
    /// [`acknowledged`](Link::acknowledged): its final word waits.
    pub(crate) fn dropped_one(&self) -> bool {
        self.dropped.is_some()
    }

    /// How far the peer acknowledged: first that of a connection dropped
    /// since the last call (final), else that of the current one, asked of
    /// the kernel now. `None` without a connection.
    pub(crate) fn acknowledged(&mut self) -> Option<Acked> {
        if let Some(dropped) = self.dropped.take() {
            return Some(dropped);
        }
        let (through, _) = self.ask_peer()?;
        Some(Acked {
            conn: self.number,
            through,
            open: true,
        })
    }

    /// Asks the kernel how far the current connection's peer acknowledged:
    /// the plaintext acknowledged, and whether the peer's TCP took more
    /// since the last question (counted in socket bytes, so part of a TLS
    /// record counts), which restarts the stall clock. `None` without a
    /// connection.
    fn ask_peer(&mut self) -> Option<(u64, bool)> {
        let (conn, _) = self.conn.as_mut()?;
        let before = conn.ledger.socket_acked();
        let through = conn.ledger().acknowledged();
        let news = conn.ledger.socket_acked() > before;
        if news {
            self.progress_at = Instant::now();
        }
        Some((through, news))
    }

    /// Checks a connection with written bytes not all acknowledged (when
    /// idle, and before each write): one the peer closed is dropped (what it did not acknowledge is then
    /// told by [`acknowledged`](Link::acknowledged), to be written again),
    /// an error if it closed soon after it opened ([`drop_closed`](Link::drop_closed)),
    /// and so is one whose peer acknowledged nothing more for the write
    /// timeout (a receiver that stopped reading), which is an error.
    pub(crate) fn check(&mut self) -> Result<()> {
        self.drop_if_closed()?;
        let Some((conn, _)) = self.conn.as_mut() else {
            return Ok(());
        };
        let waiting = conn.ledger.acked() < conn.ledger.written();
        if waiting && self.progress_at.elapsed() >= self.timeouts.write {
            // What the kernel was last asked may be a poll old: a peer that
            // acknowledged since is not stalled.
            if let Some((_, true)) = self.ask_peer() {
                return Ok(());
            }
            self.drop_connection();
            let source = std::io::ErrorKind::TimedOut.into();
            return Err(write_error(&self.endpoint, source, self.timeouts.write));
        }
        Ok(())
    }

    /// Writes `data` to the connection [`ready`](Link::ready) made sure of,
    /// then flushes it. Returns how many bytes the connection took, and the
    /// error that stopped the write early, if any: a write that makes no
    /// progress for the write timeout fails, and a failed connection is
    /// dropped. What it took is delivered only once the peer acknowledges
    /// it ([`acknowledged`](Link::acknowledged)); what it did not is written
    /// again on the next connection.
    pub(crate) async fn write(&mut self, data: &[u8]) -> (usize, Result<()>) {
        let Some((conn, _)) = self.conn.as_mut() else {
            return (0, Err(Error::ShutDown));
        };
        // With bytes already waiting, the peer's silence goes on counting
        // (`check`): a peer that stopped reading is not made to look alive
        // by records that keep coming.
        let none_waiting = conn.ledger.acked() >= conn.ledger.written();
        let limit = self.timeouts.write;
        // Over TLS, one record a write (see `TLS_WRITE_BYTES`).
        let most = if self.tls.is_some() {
            TLS_WRITE_BYTES
        } else {
            usize::MAX
        };
        let mut written = 0;
        let mut result = Ok(());
        while written < data.len() {
            let piece = &data[written..data.len().min(written.saturating_add(most))];
            let step = async {
                let n = conn.write(piece).await?;
                // Counted as soon as taken: the flush below may fail or
                // time out after the piece is on its way.
                written += n;
                conn.ledger().wrote(n);
                // Gathered records go out as they pile up, each batch with
                // its own time limit, not the whole chunk within one.
                if conn.ledger.gathered() > GATHER_BYTES as u64 {
                    conn.flush().await?;
                }
                Ok::<(), std::io::Error>(())
            };
            match tokio::time::timeout(limit, step).await {
                Ok(Ok(())) => {}
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
        // Out to the kernel: under TLS, the records gathered below.
        if result.is_ok() {
            result = match tokio::time::timeout(limit, conn.flush()).await {
                Ok(flushed) => flushed,
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            };
        }
        if none_waiting {
            self.progress_at = Instant::now();
        }
        match result {
            Ok(()) => (written, Ok(())),
            Err(source) => {
                self.drop_connection();
                (written, Err(write_error(&self.endpoint, source, limit)))
            }
        }
    }

    /// Forgets a connection that failed, choosing when to try the next one,
    /// and keeps what its peer acknowledged (asked of the kernel one last
    /// time, which it still answers after a reset) for
    /// [`acknowledged`](Link::acknowledged).
    fn drop_connection(&mut self) {
        if let Some((mut conn, opened)) = self.conn.take() {
            let through = conn.ledger().acknowledged();
            if through < conn.ledger.written() {
                // What waits unacknowledged is written again elsewhere: the
                // kernel must not go on sending it (a reset, not a close).
                conn.ledger.reset_on_close();
            }
            self.dropped = Some(Acked {
                conn: self.number,
                through,
                open: false,
            });
            if opened.elapsed() >= STABLE_AFTER {
                self.backoff.reset();
            } else {
                self.backoff.failed();
            }
        }
    }

    /// Drops the connection its peer closed. One closed soon after it
    /// opened is a failure (reported, with backoff: an endpoint that
    /// accepts and closes every connection); an old one (an idle timeout, a
    /// restart) is simply replaced.
    fn drop_closed(&mut self) -> Result<()> {
        let after = self.conn.as_ref().map(|(_, opened)| opened.elapsed());
        opentelemetry::otel_debug!(
            name: "djehouty.PeerClosedConnection",
            endpoint = self.endpoint.to_string()
        );
        self.drop_connection();
        match after {
            Some(after) if after < STABLE_AFTER => Err(Error::PeerClosed {
                endpoint: self.endpoint.to_string(),
                after,
            }),
            _ => Ok(()),
        }
    }

    /// Makes the connection, if any, reset when dropped if its peer has not
    /// acknowledged all that was written (see
    /// [`Connection::reset_if_unacknowledged`]).
    pub(crate) fn reset_if_unacknowledged(&mut self) {
        if let Some((conn, _)) = self.conn.as_mut() {
            conn.reset_if_unacknowledged();
        }
    }

    /// Closes the connection cleanly, within `limit`.
    pub(crate) async fn close(&mut self, limit: Duration) {
        if let Some((conn, _)) = self.conn.take() {
            conn.close(limit).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Step;

    fn link(addr: std::net::SocketAddr) -> Link {
        let endpoint = Endpoint::parse(&format!("tcp://{addr}")).unwrap();
        let timeouts = Timeouts::all(Duration::from_secs(1));
        Link::new(endpoint, None, timeouts, Counters::default())
    }

    /// Checks `link` with `check` until its connection is gone (the peer's
    /// close seen), at most a few seconds; returns what the check that
    /// dropped it said.
    async fn until_dropped(link: &mut Link, check: fn(&mut Link) -> Result<()>) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let checked = check(link);
            if link.conn.is_none() {
                return checked;
            }
            assert!(Instant::now() < until, "the peer's close was never seen");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A connection the peer closes as soon as it opened is a failure when
    /// an idle check finds it, as when the next write's `ready` does: an
    /// endpoint that accepts and closes every connection must not look
    /// healthy to a service that logs a burst and then goes quiet.
    #[tokio::test]
    async fn a_connection_closed_young_is_a_failure_when_checked() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link(listener.local_addr().unwrap());
        link.ready().await.unwrap();
        drop(listener.accept().unwrap());
        let error = until_dropped(&mut link, Link::check).await.unwrap_err();
        assert!(matches!(error, Error::PeerClosed { .. }), "{error}");
        // What it wrote (nothing) is told, as for any connection dropped.
        assert!(link.dropped_one());
    }

    /// A peer that stops acknowledging (a receiver that stopped reading,
    /// its window full) while records keep coming is found stalled after
    /// the write timeout: writes into the kernel's send buffer are no news
    /// of the peer.
    #[tokio::test]
    async fn a_peer_that_stops_acknowledging_is_stalled_though_writes_go_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&listener)
            .set_recv_buffer_size(2048)
            .unwrap();
        let endpoint = Endpoint::parse(&format!("tcp://{}", listener.local_addr().unwrap()));
        let timeouts = Timeouts::all(Duration::from_millis(300));
        let mut link = Link::new(endpoint.unwrap(), None, timeouts, Counters::default());
        link.ready().await.unwrap();
        // Never read: its window fills, then nothing more is acknowledged.
        let _accepted = listener.accept().unwrap();
        let (written, result) = link.write(&[b'x'; 8 * 1024]).await;
        assert_eq!((written, result.is_ok()), (8 * 1024, true));
        let until = Instant::now() + Duration::from_secs(5);
        let error = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (written, result) = link.write(&[b'y'; 100]).await;
            assert_eq!((written, result.is_ok()), (100, true));
            link.acknowledged();
            if let Err(error) = link.check() {
                break error;
            }
            assert!(Instant::now() < until, "the stall was never seen");
        };
        assert!(
            matches!(
                error,
                Error::Timeout {
                    step: Step::Write,
                    ..
                }
            ),
            "{error}"
        );
        assert!(link.dropped_one());
    }

    /// One the peer closes after it lived past [`STABLE_AFTER`] (an idle
    /// timeout, a restart) is simply replaced.
    #[tokio::test]
    async fn an_old_connection_closed_is_no_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link(listener.local_addr().unwrap());
        link.ready().await.unwrap();
        let (accepted, _) = listener.accept().unwrap();
        // Aged, rather than waited for.
        if let Some((_, opened)) = link.conn.as_mut() {
            *opened -= STABLE_AFTER;
        }
        drop(accepted);
        until_dropped(&mut link, Link::check).await.unwrap();
    }

    /// A connection its peer closed is dropped at once, and what its peer
    /// acknowledged is told then, without waiting for the next connection
    /// (which may take its whole timeouts to open).
    #[tokio::test]
    async fn a_closed_connection_tells_its_final_word_before_any_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link(listener.local_addr().unwrap());
        link.ready().await.unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        let (written, result) = link.write(b"frame\0").await;
        assert_eq!((written, result.is_ok()), (6, true));
        let mut read = [0; 6];
        std::io::Read::read_exact(&mut accepted, &mut read).unwrap();
        if let Some((_, opened)) = link.conn.as_mut() {
            *opened -= STABLE_AFTER;
        }
        drop(accepted);
        drop(listener);
        until_dropped(&mut link, Link::drop_if_closed)
            .await
            .unwrap();
        assert_eq!(link.number, 1, "no other connection was tried");
        let last = link.acknowledged().expect("the final word");
        assert_eq!((last.conn, last.through, last.open), (1, 6, false));
        assert!(link.acknowledged().is_none(), "told once");
    }
}
