//! Connecting: resolving the host ([`dns`](super::dns)), TCP and the TLS
//! handshake where the endpoint asks for it, each bounded in time. One path
//! for the stream transports and the HTTP client.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::acked::{Meter, MeteredTcp};
use super::dns::Resolver;
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
    resolver: &Resolver,
) -> Result<(Box<dyn Stream>, Arc<Meter>)> {
    if tls.is_none() && endpoint.scheme().is_tls() {
        return Err(Error::NoTrustAnchors);
    }
    let addresses = resolver.addresses(endpoint).await?;
    let attempt = TcpStream::connect(&addresses[..]);
    let tcp = connecting(endpoint, timeouts.connect, attempt).await?;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use djehouty_testkit::{Framing, Receiver};
    use tokio::io::AsyncWriteExt as _;

    use super::*;
    use crate::transport::dns::scripted::{after, resolver};

    const SECOND: Duration = Duration::from_secs(1);

    fn timeouts(connect: Duration) -> Timeouts {
        Timeouts {
            export: SECOND,
            connect,
            handshake: SECOND,
            write: SECOND,
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint::parse("tcp://receiver.example:12201").expect("endpoint")
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
