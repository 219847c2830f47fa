//! GELF over UDP: one datagram per message, or GELF chunks.
//!
//! The payloads handed to [`UdpLink::send`] are complete GELF messages, already
//! compressed (or not) by the export loop, which also keeps each one within
//! [`max_message_bytes`](crate::encode::chunk::max_message_bytes): this transport only cuts them into datagrams.
//!
//! A message that fits in one datagram (`chunk_size` bytes) is sent as is.
//! A larger one is sent as GELF chunks, each a datagram of at most
//! `chunk_size` bytes:
//!
//! | bytes | content |
//! |---|---|
//! | 0–1 | magic `0x1e 0x0f` |
//! | 2–9 | message id, the same in every chunk of a message, unique per message |
//! | 10 | sequence number, from 0 |
//! | 11 | sequence count, at most 128 |
//! | 12– | the next slice of the message |
//!
//! UDP gives no delivery guarantee: a datagram can be lost, and a receiver
//! discards a message when one of its chunks is. The socket is connected, so
//! an ICMP "port unreachable" from the endpoint surfaces as an error on a later
//! send: that send's message is put back in the retry buffer and sent again
//! after a backoff delay, on a new socket (the host is resolved again, as
//! [`dns`](super::dns) says), connected to the host's next address. That
//! socket's first message counts as sent only once [`FIRST_SEND_WAIT`]
//! passed without an error, so a port that stays closed loses only the
//! first record sent to it after a failure (the exporter's first socket
//! does not wait: what it sends within a round trip of a closed port is
//! lost); on a socket in use, the message whose datagram drew the error is
//! lost.
//! Only a send without an error [`PROOF_AFTER`] or more after the socket's
//! first says delivery works, and starts the count of failures over.
//! Every [`RECHECK_EVERY`] the host is looked up again in the background,
//! and a socket whose address two answers in a row lacked is replaced.

use std::future::Future as _;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::config::{Endpoint, Timeouts, UdpOptions};
use crate::encode::chunk::{chunk_count, write_chunk, MessageIds, CHUNK_HEADER_BYTES};
use crate::error::{Error, Result};
use crate::frames::FrameRun;
use crate::stats::Counters;
use crate::transport::backoff::Backoff;
use crate::transport::connect::{connecting, interleave};
use crate::transport::dns::Resolver;
use crate::transport::write_error;

/// How long after a socket's first datagram went out a send without an
/// error proves that the endpoint takes datagrams: the ICMP error the first
/// one drew, which surfaces on a later send, is back by then from any
/// endpoint within a round trip of this.
const PROOF_AFTER: Duration = Duration::from_secs(1);

/// How long the first message on a socket opened after a failure waits for
/// the ICMP error it may draw before it counts as sent: long enough for a
/// round trip on a LAN or across a region. Only then: the endpoint counts
/// as failing, so no caller waits for that send (at start, a flush or a
/// simple processor's export would).
const FIRST_SEND_WAIT: Duration = Duration::from_millis(200);

/// How often a socket's address is checked against the host name's
/// current addresses (a lookup in the background, with the resolver's
/// limits). A name that moved (a failover, a replaced load balancer) is
/// followed within about twice this: the old address may swallow datagrams
/// without any ICMP error, so no send would ever fail and call for a new
/// socket.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// The UDP "connection": a connected socket, replaced after a failure, or
/// when the host name no longer points at its address.
pub(crate) struct UdpLink {
    endpoint: Endpoint,
    chunk_size: usize,
    timeouts: Timeouts,
    counters: Counters,
    socket: Option<UdpSocket>,
    ids: MessageIds,
    /// One chunk being assembled, reused.
    datagram: Vec<u8>,
    backoff: Backoff,
    /// The endpoint's addresses, the last good ones kept.
    resolver: Resolver,
    /// Messages skipped as too large since the last `take_rejected`.
    rejected: Option<super::Rejected>,
    /// The addresses whose socket's send failed since delivery last worked:
    /// a new socket tries the host's other addresses first (resolved again,
    /// in whatever order), so that an address that refuses (the IPv6
    /// address of a receiver listening on IPv4 only, say: a UDP socket
    /// connects to it all the same) does not hold delivery for good.
    refused: Refused,
    /// The socket's first message is still to be checked for an ICMP
    /// error (see [`FIRST_SEND_WAIT`]): the socket was opened after a
    /// failure.
    first_unchecked: bool,
    /// A failure came since the current socket (if any) was opened.
    failed_since_open: bool,
    /// When the socket's first datagram went out: the ICMP error a send
    /// draws surfaces on a later one, so only a send without an error at
    /// least [`PROOF_AFTER`] later says delivery works.
    first_sent: Option<Instant>,
    /// Whether the last send proved that delivery works (see
    /// [`first_sent`](UdpLink::first_sent)).
    proven: bool,
    /// When the host was last looked up again for the socket (or the
    /// socket opened): see [`RECHECK_EVERY`].
    checked_at: Instant,
    /// That lookup, while it runs or until its answer is read.
    recheck: Option<tokio::task::JoinHandle<Result<Vec<SocketAddr>>>>,
    /// The last answer lacked the socket's address.
    lacked_once: bool,
    /// [`RECHECK_EVERY`], shorter in tests.
    recheck_every: Duration,
}

impl UdpLink {
    pub(crate) fn new(
        endpoint: Endpoint,
        options: UdpOptions,
        timeouts: Timeouts,
        counters: Counters,
    ) -> UdpLink {
        UdpLink {
            endpoint,
            chunk_size: options.chunk_bytes,
            timeouts,
            counters,
            socket: None,
            ids: MessageIds::new(),
            datagram: Vec::new(),
            backoff: Backoff::default(),
            resolver: Resolver::default(),
            rejected: None,
            refused: Refused::default(),
            first_sent: None,
            first_unchecked: false,
            failed_since_open: false,
            proven: false,
            checked_at: Instant::now(),
            recheck: None,
            lacked_once: false,
            recheck_every: RECHECK_EVERY,
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

    /// Makes sure there is a socket: after a failure, waits out the backoff
    /// delay, resolves the host again and connects a new socket to it.
    /// Every [`RECHECK_EVERY`], looks the host up again in the background,
    /// and replaces a socket whose address two answers in a row lacked.
    pub(crate) async fn ready(&mut self) -> Result<()> {
        let mut looked_up = None;
        if self.socket.is_some() {
            let Some(addresses) = self.recheck() else {
                return Ok(());
            };
            // A name answering a changing subset of its addresses may leave
            // the socket's out once: only twice in a row says it moved.
            let peer = self
                .socket
                .as_ref()
                .and_then(|socket| socket.peer_addr().ok());
            let lacking = peer.is_some_and(|peer| !addresses.contains(&peer));
            let moved = lacking && std::mem::replace(&mut self.lacked_once, lacking);
            self.lacked_once = lacking && !moved;
            if !moved {
                return Ok(());
            }
            opentelemetry::otel_debug!(
                name: "djehouty.UdpAddressMoved",
                endpoint = self.endpoint.to_string()
            );
            self.socket = None;
            looked_up = Some(Ok(addresses));
        }
        self.backoff.wait().await;
        let limit = self.timeouts.connect;
        let addresses = match looked_up {
            Some(addresses) => addresses,
            None => self.resolver.addresses(&self.endpoint).await,
        };
        let opened = match addresses {
            Ok(addresses) => {
                let addresses = self.refused.last(interleave(addresses));
                connecting(&self.endpoint, limit, open(addresses)).await
            }
            Err(error) => Err(error),
        };
        match opened {
            Ok(socket) => {
                self.socket = Some(socket);
                self.checked_at = Instant::now();
                self.recheck = None;
                self.lacked_once = false;
                self.first_sent = None;
                self.first_unchecked = std::mem::take(&mut self.failed_since_open);
                self.backoff.went_through();
                self.counters.add_connection();
                Ok(())
            }
            Err(error) => {
                self.note_failure();
                Err(error)
            }
        }
    }

    /// The answer of the last background lookup of the host, once it
    /// came (a failed one says nothing of the name: `None`); starts the
    /// next one every [`RECHECK_EVERY`]. Never waits: a slow name server
    /// holds up no send.
    fn recheck(&mut self) -> Option<Vec<SocketAddr>> {
        match self.recheck.take() {
            Some(mut lookup) => {
                // Polled once, without waiting: the answer if it came.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match std::pin::Pin::new(&mut lookup).poll(&mut cx) {
                    std::task::Poll::Ready(answer) => answer.ok()?.ok(),
                    std::task::Poll::Pending => {
                        self.recheck = Some(lookup);
                        None
                    }
                }
            }
            None => {
                if self.checked_at.elapsed() >= self.recheck_every {
                    self.checked_at = Instant::now();
                    let (resolver, endpoint) = (self.resolver.clone(), self.endpoint.clone());
                    self.recheck =
                        Some(tokio::spawn(
                            async move { resolver.addresses(&endpoint).await },
                        ));
                }
                None
            }
        }
    }

    /// Sends messages (each frame one whole payload). Returns
    /// how many, from the front, were handed to the kernel whole, and the
    /// error that stopped the rest. A message cut off by an error counts as
    /// not sent: it is sent again, whole, under a new message id.
    pub(crate) async fn send(&mut self, frames: FrameRun<'_>) -> (usize, Result<()>) {
        let Some(socket) = self.socket.as_ref() else {
            return (0, Err(Error::ShutDown));
        };
        // Whether a datagram went out (not every message was skipped).
        let mut went_out = false;
        for (sent, payload) in frames.iter().enumerate() {
            let len = payload.len();
            let result = send_message(
                socket,
                payload,
                self.chunk_size,
                self.timeouts.write,
                &mut self.ids,
                &mut self.datagram,
            )
            .await;
            let result = match result {
                // A new socket's first message: an ICMP error it drew is
                // back within the wait, and then it was not delivered.
                Ok(()) if self.first_unchecked => {
                    self.first_unchecked = false;
                    tokio::time::sleep(FIRST_SEND_WAIT).await;
                    match socket.take_error() {
                        Ok(None) => Ok(()),
                        Ok(Some(error)) | Err(error) => Err(SendError::Io(error)),
                    }
                }
                other => other,
            };
            match result {
                Ok(()) => went_out = true,
                Err(SendError::TooLarge(chunks)) => {
                    // The export loop keeps messages within 128 chunks; only
                    // static fields larger than that could get here. Sending
                    // it again would never work: skip it, loudly.
                    let error = Error::Write {
                        endpoint: self.endpoint.to_string(),
                        source: io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "a GELF message of {len} bytes needs {chunks} UDP chunks, more \
                                 than the 128 receivers accept, and was dropped; raise \
                                 `with_udp_chunk_size` or shorten the static fields"
                            ),
                        ),
                    };
                    opentelemetry::otel_warn!(
                        name: "djehouty.UdpMessageTooLarge",
                        error = error.to_string()
                    );
                    // Done with, but dropped: counted as rejected, not exported.
                    let records = self.rejected.as_ref().map_or(0, |r| r.records) + 1;
                    self.rejected = Some(super::Rejected { records, error });
                }
                Err(SendError::Io(source)) => {
                    let socket = self.socket.take();
                    if let Some(address) = socket.and_then(|socket| socket.peer_addr().ok()) {
                        self.refused.note(address);
                    }
                    self.note_failure();
                    let error = write_error(&self.endpoint, source, self.timeouts.write);
                    return (sent, Err(error));
                }
            }
        }
        // A send that went out says nothing of the endpoint: an ICMP "port
        // unreachable" it drew surfaces on a later send, once it is back (a
        // round trip). Only a send without an error well after the first
        // proves delivery; only then does the count of failures start over,
        // so that a closed port is retried ever more slowly, as a refused
        // TCP connection is. One that sent nothing (its messages all
        // skipped) says nothing at all.
        self.proven = went_out
            && self
                .first_sent
                .is_some_and(|at| at.elapsed() >= PROOF_AFTER);
        if self.proven {
            self.backoff.reset();
            self.refused = Refused::default();
        }
        if went_out && self.first_sent.is_none() {
            self.first_sent = Some(Instant::now());
        }
        (frames.len(), Ok(()))
    }

    /// Whether the last send, which went without an error, proved that
    /// the endpoint takes datagrams: it went out [`PROOF_AFTER`] or more
    /// after the socket's first, with no ICMP error surfacing.
    pub(crate) fn proven(&self) -> bool {
        self.proven
    }

    /// Messages skipped as too large by the last `send`, to count as dropped.
    pub(crate) fn take_rejected(&mut self) -> Option<super::Rejected> {
        self.rejected.take()
    }

    /// Forgets the socket; UDP has nothing to flush or close.
    pub(crate) fn close(&mut self) {
        self.socket = None;
    }

    fn note_failure(&mut self) {
        self.backoff.failed();
        self.failed_since_open = true;
    }
}

/// Why a message was not sent.
enum SendError {
    /// It would need this many chunks, more than [`MAX_CHUNKS`](crate::encode::chunk::MAX_CHUNKS).
    TooLarge(usize),
    /// The socket failed (or timed out).
    Io(io::Error),
}

/// Sends one message, unchunked or in chunks.
async fn send_message(
    socket: &UdpSocket,
    payload: &[u8],
    chunk_size: usize,
    limit: Duration,
    ids: &mut MessageIds,
    datagram: &mut Vec<u8>,
) -> std::result::Result<(), SendError> {
    let count = match chunk_count(payload.len(), chunk_size) {
        Some(count) => count,
        None => {
            let per_chunk = chunk_size.saturating_sub(CHUNK_HEADER_BYTES).max(1);
            return Err(SendError::TooLarge(payload.len().div_ceil(per_chunk)));
        }
    };
    if count == 0 {
        return send_datagram(socket, payload, limit)
            .await
            .map_err(SendError::Io);
    }
    let id = ids.next_id();
    // `chunk_count` keeps `count` within 128, so it fits a byte.
    let count_byte = u8::try_from(count).unwrap_or(u8::MAX);
    let per_chunk = chunk_size - CHUNK_HEADER_BYTES;
    for (seq, part) in payload.chunks(per_chunk).enumerate() {
        let seq = u8::try_from(seq).unwrap_or(u8::MAX);
        write_chunk(datagram, id, seq, count_byte, part);
        send_datagram(socket, datagram, limit)
            .await
            .map_err(SendError::Io)?;
    }
    Ok(())
}

async fn send_datagram(socket: &UdpSocket, datagram: &[u8], limit: Duration) -> io::Result<()> {
    match tokio::time::timeout(limit, socket.send(datagram)).await {
        Ok(Ok(n)) if n == datagram.len() => Ok(()),
        Ok(Ok(n)) => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!(
                "only {n} of {} bytes of a datagram were sent",
                datagram.len()
            ),
        )),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// The most refused addresses [`UdpLink`] remembers (a host has rarely
/// more).
const MAX_REFUSED: usize = 16;

/// Addresses whose sends failed, the latest last, at most [`MAX_REFUSED`]
/// (the least lately refused forgotten first).
#[derive(Debug, Default)]
struct Refused(Vec<SocketAddr>);

impl Refused {
    /// Notes that `address` refused, as the latest.
    fn note(&mut self, address: SocketAddr) {
        self.0.retain(|&refused| refused != address);
        if self.0.len() == MAX_REFUSED {
            self.0.remove(0);
        }
        self.0.push(address);
    }

    /// `addresses` with those that refused moved last: the others first, in
    /// their order, then the refused ones, the least lately refused first.
    fn last(&self, mut addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
        // A stable sort: the order among those not refused is kept.
        addresses.sort_by_key(|address| {
            (self.0.iter())
                .position(|refused| refused == address)
                .map_or(0, |at| at + 1)
        });
        addresses
    }
}

/// Connects a socket to the first of `addresses` that takes one (IPv4 or
/// IPv6), in their order.
async fn open(addresses: Vec<SocketAddr>) -> io::Result<UdpSocket> {
    let mut last_error = None;
    for addr in addresses {
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(socket) => socket,
            Err(error) => {
                last_error = Some(error);
                continue;
            }
        };
        match socket.connect(addr).await {
            Ok(()) => return Ok(socket),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "the host name resolved to no address",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use crate::encode::chunk::{max_message_bytes, CHUNK_MAGIC};

    fn link(port: u16, chunk_bytes: usize) -> UdpLink {
        let endpoint = Endpoint::parse(&format!("udp://127.0.0.1:{port}")).unwrap();
        let timeouts = Timeouts::all(Duration::from_secs(1));
        let options = UdpOptions {
            chunk_bytes,
            compression: Compression::None,
        };
        UdpLink::new(endpoint, options, timeouts, Counters::default())
    }

    #[tokio::test]
    async fn sends_whole_and_chunked_messages() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut link = link(receiver.local_addr().unwrap().port(), 512);
        link.ready().await.unwrap();
        let small = b"{\"short\":1}".to_vec();
        let big: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let data = [small.clone(), big.clone()].concat();
        let (sent, result) = link
            .send(FrameRun::new(&data, &[small.len(), big.len()]))
            .await;
        assert_eq!(sent, 2);
        result.unwrap();

        let mut buf = [0u8; 2048];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &small[..]);
        let mut reassembled = Vec::new();
        let mut id = None;
        for expected_seq in 0..4u8 {
            let n = receiver.recv(&mut buf).unwrap();
            assert!(n <= 512);
            assert_eq!(buf[..2], CHUNK_MAGIC);
            let this_id = &buf[2..10];
            assert_eq!(*id.get_or_insert(this_id.to_vec()), this_id);
            assert_eq!((buf[10], buf[11]), (expected_seq, 4));
            reassembled.extend_from_slice(&buf[12..n]);
        }
        assert_eq!(reassembled, big);
    }

    #[tokio::test]
    async fn a_refused_port_fails_the_frame_and_backs_off() {
        // A port nobody listens on: the kernel answers with ICMP "port
        // unreachable", which a later send on the connected socket reports.
        let port = djehouty_testkit::unused_port().port();
        let mut link = link(port, 8192);
        link.ready().await.unwrap();
        assert!(!link.first_unchecked, "at start, no send waits");
        let mut failed = None;
        for _ in 0..50 {
            link.ready().await.unwrap();
            let (sent, result) = link.send(FrameRun::new(b"{}{}", &[2, 2])).await;
            if let Err(error) = result {
                failed = Some((sent, error));
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (sent, error) = failed.expect("a send to a closed port fails");
        assert!(sent < 2);
        assert!(matches!(error, Error::Write { .. }), "{error}");
        assert!(link.socket.is_none());
        assert!(link.backoff.is_waiting());
        // After the failure, the next socket's first message waits for its
        // own error: it is kept, not counted as sent.
        link.skip_backoff();
        link.ready().await.unwrap();
        assert!(link.first_unchecked);
        let (sent, result) = link.send(FrameRun::new(b"{}{}", &[2, 2])).await;
        assert_eq!(sent, 0);
        assert!(result.is_err());
    }

    /// Addresses that refuse (ICMP "port unreachable") are left for the
    /// others after a failed send: a host whose first address has no
    /// receiver (an IPv6 one, with the receiver on IPv4 only) is reached on
    /// another, rather than never, whatever order the name server answers
    /// in. Here the first address always refuses, and the answers put the
    /// second refusing one where trying "the next one" would pick it.
    #[tokio::test]
    async fn addresses_that_refuse_are_left_for_the_others() {
        let (closed, other_closed) = (
            djehouty_testkit::unused_port(),
            djehouty_testkit::unused_port(),
        );
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let live = receiver.local_addr().unwrap();
        assert!(live != closed && live != other_closed);
        let mut link = link(closed.port(), 8192);
        // A host name, which the resolver answers with all three addresses.
        link.endpoint = Endpoint::parse("udp://receiver.test:12201").unwrap();
        let (resolver, _) =
            crate::transport::dns::scripted::resolver(Duration::from_secs(1), move |call| {
                let addresses = match call % 3 {
                    2 => vec![closed, live, other_closed],
                    _ => vec![closed, other_closed, live],
                };
                crate::transport::dns::scripted::after(Duration::ZERO, Ok(addresses))
            });
        link.resolver = resolver;
        let mut buf = [0u8; 64];
        let arrived = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                link.ready().await.unwrap();
                let _ = link.send(FrameRun::new(b"{}", &[2])).await;
                if let Ok(n) = receiver.recv(&mut buf) {
                    break n;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the live address is tried");
        assert_eq!(&buf[..arrived], b"{}");
    }

    /// A host name that moves to another address is followed, although
    /// the old one swallows datagrams without an error: the host is looked
    /// up again in the background every `recheck_every`, and the socket
    /// replaced once two answers in a row lacked its address (one may
    /// leave it out, from a name answering a changing subset).
    #[tokio::test]
    async fn a_host_name_that_moves_is_followed() {
        let old = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let new = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for socket in [&old, &new] {
            socket.set_nonblocking(true).unwrap();
        }
        let (old_at, new_at) = (old.local_addr().unwrap(), new.local_addr().unwrap());
        let mut link = link(old_at.port(), 8192);
        link.endpoint = Endpoint::parse("udp://receiver.test:12201").unwrap();
        // The first two lookups answer the old address, the rest the new one.
        let (resolver, lookups) =
            crate::transport::dns::scripted::resolver(Duration::from_secs(1), move |call| {
                let at = if call < 2 { old_at } else { new_at };
                crate::transport::dns::scripted::after(Duration::ZERO, Ok(vec![at]))
            });
        link.resolver = resolver;
        link.recheck_every = Duration::MAX;
        let send = async |link: &mut UdpLink, frame: &[u8]| {
            link.ready().await.unwrap();
            let (sent, result) = link.send(FrameRun::new(frame, &[frame.len()])).await;
            result.unwrap();
            assert_eq!(sent, 1);
        };
        // Until the lookup started by the last send has answered.
        let answered = async |link: &UdpLink| {
            tokio::time::timeout(Duration::from_secs(10), async {
                while !link
                    .recheck
                    .as_ref()
                    .is_some_and(|lookup| lookup.is_finished())
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .expect("the lookup answers");
        };
        let lookups = || lookups.load(std::sync::atomic::Ordering::SeqCst);
        send(&mut link, b"{1}").await;
        // Within the period: no lookup.
        send(&mut link, b"{2}").await;
        assert_eq!(lookups(), 1);
        // From now on, one lookup at a time, started at a send and read
        // at the next one after it answered.
        link.recheck_every = Duration::ZERO;
        send(&mut link, b"{3}").await;
        answered(&link).await;
        // The name still has the old address.
        send(&mut link, b"{4}").await;
        send(&mut link, b"{5}").await;
        answered(&link).await;
        // It lacks it once: the socket stays.
        send(&mut link, b"{6}").await;
        send(&mut link, b"{7}").await;
        answered(&link).await;
        // Twice in a row: the socket moves, at once.
        send(&mut link, b"{8}").await;
        assert_eq!(lookups(), 4);
        let mut buf = [0u8; 64];
        let mut received = |socket: &std::net::UdpSocket| {
            let mut got = Vec::new();
            while let Ok(n) = socket.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            got
        };
        assert_eq!(
            received(&old),
            ["{1}", "{2}", "{3}", "{4}", "{5}", "{6}", "{7}"]
        );
        assert_eq!(received(&new), ["{8}"]);
    }

    /// Refused addresses go last, the least lately refused first, and the
    /// oldest is forgotten beyond [`MAX_REFUSED`].
    #[test]
    fn refused_addresses_go_last_and_the_oldest_is_forgotten() {
        let at = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut refused = Refused::default();
        refused.note(at(1));
        refused.note(at(2));
        refused.note(at(1));
        let all = || (1..=4).map(at).collect::<Vec<_>>();
        assert_eq!(refused.last(all()), [at(3), at(4), at(2), at(1)]);
        for port in 10..10 + MAX_REFUSED as u16 - 2 {
            refused.note(at(port));
        }
        // `2` is now the least lately refused, `1` the next: one more, and
        // `2` is forgotten.
        assert_eq!(refused.last(all())[..2], [at(3), at(4)]);
        refused.note(at(100));
        assert_eq!(refused.0.len(), MAX_REFUSED);
        assert_eq!(refused.last(all()), [at(2), at(3), at(4), at(1)]);
    }

    /// Refused addresses are forgotten, and the endpoint is proven to take
    /// datagrams, once delivery works again: a send without an error
    /// [`PROOF_AFTER`] after the socket's first (which says nothing, as an
    /// ICMP error it draws surfaces on a later send, once it is back).
    #[tokio::test]
    async fn delivery_that_works_forgets_refused_addresses() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut link = link(receiver.local_addr().unwrap().port(), 8192);
        link.refused
            .note(SocketAddr::from((Ipv4Addr::LOCALHOST, 9)));
        link.ready().await.unwrap();
        link.send(FrameRun::new(b"{}", &[2])).await.1.unwrap();
        assert_eq!(link.refused.0.len(), 1, "one send proves nothing");
        assert!(!link.proven(), "nor does it prove the endpoint healthy");
        link.send(FrameRun::new(b"{}", &[2])).await.1.unwrap();
        assert_eq!(link.refused.0.len(), 1, "nor does one right after it");
        assert!(!link.proven(), "its ICMP error may not be back yet");
        // Aged, rather than waited for.
        link.first_sent = link.first_sent.and_then(|at| at.checked_sub(PROOF_AFTER));
        link.send(FrameRun::new(b"{}", &[2])).await.1.unwrap();
        assert!(link.refused.0.is_empty());
        assert!(link.proven());
    }

    #[tokio::test]
    async fn oversized_messages_are_skipped_not_retried() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut link = link(receiver.local_addr().unwrap().port(), 512);
        link.ready().await.unwrap();
        let huge = vec![b'x'; max_message_bytes(512) + 1];
        let (sent, result) = link.send(FrameRun::new(&huge, &[huge.len()])).await;
        assert_eq!(sent, 1, "done with: not to be sent again");
        result.unwrap();
        // Reported to the delivery task as dropped, not exported.
        let rejected = link.take_rejected().expect("a rejected message");
        assert_eq!(rejected.records, 1);
        let error = rejected.error.to_string();
        assert!(error.contains("with_udp_chunk_size"), "{error}");
        assert!(link.take_rejected().is_none());
        // Nothing went out: that send proves nothing, and the next one is
        // the socket's first.
        assert!(!link.proven());
        assert!(link.first_sent.is_none());
        link.send(FrameRun::new(b"{}", &[2])).await.1.unwrap();
        assert!(!link.proven(), "a first send proves nothing");
        assert!(link.first_sent.is_some());
    }
}
