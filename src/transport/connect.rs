//! Connecting: resolving the host ([`dns`](super::dns)), TCP and the TLS
//! handshake where the endpoint asks for it, each bounded in time. One path
//! for the stream transports and the HTTP client.
//!
//! A host name with several addresses is connected to "Happy Eyeballs" style
//! (RFC 8305): the addresses are tried in the resolver's order with the two
//! families interleaved ([`interleave`]); the next attempt starts when the
//! previous one failed, or [`CONNECTION_ATTEMPT_DELAY`] after it started if
//! it is still pending; each attempt has the whole connect timeout; the first
//! to connect wins and the others are dropped. So a dead address (an IPv6
//! `localhost` the receiver does not listen on, a host that drops SYNs)
//! delays the connection by that delay, not by the connect timeout, and
//! never keeps it from the addresses that work.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::acked::{Meter, MeteredTcp};
use super::dns::Resolver;
use super::tls::TlsSettings;
use super::Stream;
use crate::config::{Endpoint, Timeouts, CONNECTION_ATTEMPT_DELAY};
use crate::error::{Error, Result, Step};

/// Connects to the endpoint (see the module docs) and, with `tls`, shakes
/// hands. A TLS endpoint without TLS settings is refused rather than spoken
/// to in plaintext. Returns the stream and the meter of the socket under it
/// (see [`acked`](super::acked)).
pub(crate) async fn connect(
    endpoint: &Endpoint,
    tls: Option<&TlsSettings>,
    timeouts: Timeouts,
    resolver: &Resolver,
) -> Result<(Box<dyn Stream>, Arc<Meter>)> {
    if tls.is_none() && endpoint.scheme().is_tls() {
        return Err(Error::NoTrustAnchors);
    }
    let addresses = resolver.addresses(endpoint).await?;
    let tcp = first_to_connect(
        endpoint,
        addresses,
        timeouts.connect,
        CONNECTION_ATTEMPT_DELAY,
    )
    .await?;
    // Batches are written whole; don't hold their tail back.
    let _ = tcp.set_nodelay(true);
    #[cfg(djehouty_measure)]
    if let Some(bytes) = super::measure::send_buffer() {
        let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(bytes);
    }
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

/// Orders addresses for connection attempts (RFC 8305, section 4): the
/// resolver's order within each family, the families taking turns, starting
/// with the family of the resolver's first address. Duplicates are dropped.
pub(crate) fn interleave(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addresses.len());
    for address in addresses {
        if !unique.contains(&address) {
            unique.push(address);
        }
    }
    let Some(first) = unique.first() else {
        return unique;
    };
    let first_v6 = first.is_ipv6();
    let (leading, other): (Vec<_>, Vec<_>) =
        unique.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut ordered = Vec::with_capacity(leading.len() + other.len());
    let (mut leading, mut other) = (leading.into_iter(), other.into_iter());
    loop {
        match (leading.next(), other.next()) {
            (None, None) => break,
            (one, another) => ordered.extend(one.into_iter().chain(another)),
        }
    }
    ordered
}

/// How one attempt failed.
enum Failed {
    Error(io::Error),
    TimedOut,
}

/// Connects to the first of `addresses` (in [`interleave`]d order) that
/// answers, each attempt within `limit`, the next one starting when the
/// previous one failed or after `delay`.
async fn first_to_connect(
    endpoint: &Endpoint,
    addresses: Vec<SocketAddr>,
    limit: Duration,
    delay: Duration,
) -> Result<TcpStream> {
    let mut waiting = interleave(addresses).into_iter();
    let mut attempts = JoinSet::new();
    let mut failures: Vec<(SocketAddr, Failed)> = Vec::new();
    let mut next_at = Instant::now();
    loop {
        if attempts.is_empty() || Instant::now() >= next_at {
            if let Some(address) = waiting.next() {
                attempts.spawn(async move {
                    let outcome =
                        match tokio::time::timeout(limit, TcpStream::connect(address)).await {
                            Ok(Ok(tcp)) => Ok(tcp),
                            Ok(Err(error)) => Err(Failed::Error(error)),
                            Err(_) => Err(Failed::TimedOut),
                        };
                    (address, outcome)
                });
                next_at = Instant::now() + delay;
            } else if attempts.is_empty() {
                return Err(all_failed(endpoint, failures, limit));
            }
        }
        let more = waiting.len() > 0;
        tokio::select! {
            joined = attempts.join_next() => match joined {
                // The attempts still running are dropped with the set.
                Some(Ok((_, Ok(tcp)))) => return Ok(tcp),
                Some(Ok((address, Err(failed)))) => {
                    failures.push((address, failed));
                    next_at = Instant::now();
                }
                // An attempt's task never panics, and is only cancelled
                // with the set.
                Some(Err(_)) | None => next_at = Instant::now(),
            },
            () = tokio::time::sleep_until(next_at), if more => {}
        }
    }
}

/// The error of a connection whose every attempt failed: with one address,
/// its own; with several, a timeout if each timed out, else a connect error
/// that tells how each address failed.
fn all_failed(
    endpoint: &Endpoint,
    mut failures: Vec<(SocketAddr, Failed)>,
    limit: Duration,
) -> Error {
    let timeout = Error::Timeout {
        step: Step::Connect,
        endpoint: endpoint.to_string(),
        timeout: limit,
    };
    let connect = |source| Error::Connect {
        endpoint: endpoint.to_string(),
        source,
    };
    if failures.is_empty() {
        let source = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
        return connect(source);
    }
    if failures.len() == 1 {
        return match failures.pop() {
            Some((_, Failed::Error(source))) => connect(source),
            _ => timeout,
        };
    }
    let kind = failures.iter().find_map(|(_, failed)| match failed {
        Failed::Error(error) => Some(error.kind()),
        Failed::TimedOut => None,
    });
    let Some(kind) = kind else {
        return timeout;
    };
    let each: Vec<String> = failures
        .iter()
        .map(|(address, failed)| match failed {
            Failed::Error(error) => format!("{address}: {error}"),
            Failed::TimedOut => format!("{address}: timed out after {limit:?}"),
        })
        .collect();
    let message = format!(
        "each of its {} addresses failed ({})",
        failures.len(),
        each.join("; ")
    );
    connect(io::Error::new(kind, message))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Instant as Clock;

    use djehouty_testkit::{Framing, Receiver};
    use tokio::io::AsyncWriteExt as _;

    use super::*;
    use crate::transport::dns::scripted::{after, resolver};

    const SECOND: Duration = Duration::from_secs(1);

    fn timeouts(connect: Duration) -> Timeouts {
        Timeouts {
            connect,
            ..Timeouts::all(SECOND)
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint::parse("tcp://receiver.example:12201").expect("endpoint")
    }

    fn address(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    /// A loopback address nothing listens on: connecting to it is refused.
    fn refused() -> SocketAddr {
        let addr = djehouty_testkit::unused_port();
        let error = std::net::TcpStream::connect(addr).expect_err("nothing listens");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
        addr
    }

    /// A loopback address whose connections hang, as a host that drops
    /// SYNs: a listener whose accept queue is full (Linux then drops new
    /// SYNs). Keep the returned sockets while the address is used.
    #[cfg(target_os = "linux")]
    fn unanswered() -> (SocketAddr, socket2::Socket, Vec<std::net::TcpStream>) {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        listener.bind(&address("127.0.0.1:0").into()).expect("bind");
        listener.listen(0).expect("listen");
        let addr = listener
            .local_addr()
            .expect("address")
            .as_socket()
            .expect("an IP address");
        let mut queued = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(tcp) => queued.push(tcp),
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    return (addr, listener, queued)
                }
                Err(error) => panic!("filling the accept queue of {addr}: {error}"),
            }
        }
        panic!("the accept queue of {addr} never filled: connections to it do not hang");
    }

    /// Writes one frame on a connection and checks that it arrives.
    async fn deliver(stream: &mut Box<dyn Stream>, receiver: &Receiver, frames: usize) {
        stream
            .write_all(b"{\"short_message\":\"hi\"}\0")
            .await
            .expect("write");
        stream.flush().await.expect("flush");
        let got = receiver.wait_frames(frames, 10 * SECOND);
        assert_eq!(got.len(), frames);
    }

    #[test]
    fn families_take_turns_from_the_first_ones() {
        let [a, b, c] = ["127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"].map(address);
        let [x, y] = ["[::1]:1", "[::2]:1"].map(address);
        assert_eq!(interleave(vec![x, y, a, b, c]), vec![x, a, y, b, c]);
        assert_eq!(interleave(vec![a, b, c, x, y]), vec![a, x, b, y, c]);
        assert_eq!(interleave(vec![a, x, x, b, a]), vec![a, x, b]);
        assert_eq!(interleave(vec![y, x]), vec![y, x]);
        assert_eq!(interleave(Vec::new()), Vec::<SocketAddr>::new());
    }

    /// The first address hangs: the second is tried alongside after the
    /// attempt delay, and the records arrive long before the first
    /// attempt's connect timeout.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_dead_first_address_does_not_hold_up_the_live_one() {
        let (dead, _listener, _queued) = unanswered();
        let receiver = Receiver::tcp(Framing::Nul);
        let live = receiver.addr();
        let (resolver, _) = resolver(SECOND, move |_| after(Duration::ZERO, Ok(vec![dead, live])));
        let limit = 20 * SECOND;
        let started = Clock::now();
        let (mut stream, _) = connect(&endpoint(), None, timeouts(limit), &resolver)
            .await
            .expect("connected to the live address");
        let took = started.elapsed();
        // A safety bound, well under the dead attempt's timeout.
        assert!(took < limit / 4, "connected after {took:?}");
        assert!(
            took >= CONNECTION_ATTEMPT_DELAY,
            "the live address waited its turn: {took:?}"
        );
        deliver(&mut stream, &receiver, 1).await;
    }

    /// A refused address is left at once for the next, whatever the delay.
    #[tokio::test]
    async fn a_refused_first_address_is_left_at_once() {
        let receiver = Receiver::tcp(Framing::Nul);
        let addresses = vec![refused(), receiver.addr()];
        let long = 60 * SECOND;
        let started = Clock::now();
        let tcp = first_to_connect(&endpoint(), addresses, long, long)
            .await
            .expect("connected to the live address");
        let took = started.elapsed();
        assert!(took < long / 4, "connected after {took:?}");
        assert_eq!(tcp.peer_addr().expect("peer"), receiver.addr());
    }

    /// Every address failing: the error tells how each one did.
    #[tokio::test]
    async fn every_address_failing_is_told_address_by_address() {
        let (one, two) = (refused(), refused());
        let error = first_to_connect(&endpoint(), vec![one, two], SECOND, SECOND)
            .await
            .expect_err("nothing listens");
        let Error::Connect { ref source, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        let message = error.to_string();
        for part in [
            "receiver.example",
            "each of its 2 addresses failed",
            &one.to_string(),
            &two.to_string(),
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
        // One address: its own error, as before.
        let error = first_to_connect(&endpoint(), vec![one], SECOND, SECOND)
            .await
            .expect_err("nothing listens");
        let Error::Connect { ref source, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// A hanging address and a refused one: the message tells both.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_timed_out_address_is_told_among_the_others() {
        let (dead, _listener, _queued) = unanswered();
        let closed = refused();
        let limit = Duration::from_millis(300);
        let error = first_to_connect(&endpoint(), vec![dead, closed], limit, SECOND)
            .await
            .expect_err("nothing answers");
        let message = error.to_string();
        assert!(matches!(error, Error::Connect { .. }), "{error:?}");
        for part in [
            format!("{dead}: timed out after {limit:?}"),
            format!("{closed}: "),
        ] {
            assert!(message.contains(&part), "{part:?} not in {message}");
        }
        // Every one timing out is a connect timeout.
        let error = first_to_connect(&endpoint(), vec![dead, dead], limit, SECOND)
            .await
            .expect_err("nothing answers");
        assert!(
            matches!(
                error,
                Error::Timeout {
                    step: Step::Connect,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    /// The resolver fails after answering once: the connection is made to
    /// the addresses it last gave, and the records still arrive.
    #[tokio::test]
    async fn a_failing_resolver_still_connects_to_the_last_addresses() {
        let receiver = Receiver::tcp(Framing::Nul);
        let live = receiver.addr();
        let (resolver, calls) = resolver(SECOND, move |n| {
            let answer = match n {
                0 => Ok(vec![live]),
                _ => Err(io::Error::other("SERVFAIL")),
            };
            after(Duration::ZERO, answer)
        });
        for frames in 1..=3 {
            let (mut stream, _) = connect(&endpoint(), None, timeouts(5 * SECOND), &resolver)
                .await
                .expect("connected");
            deliver(&mut stream, &receiver, frames).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(receiver.connections(), 3);
    }
}
