//! Transports: bytes to the endpoint over one persistent connection.
//!
//! * [`tcp`]: connecting with a timeout;
//! * [`tls`]: the rustls client configuration (trust anchors, CA files) and the handshake;
//! * [`reconnect`]: the persistent link, its liveness check, the write timeout,
//!   reconnection with backoff.

pub(crate) mod reconnect;
pub(crate) mod tcp;
pub(crate) mod tls;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A byte stream to the endpoint: plain TCP or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// An established connection.
pub(crate) struct Connection {
    stream: Box<dyn Stream>,
}

impl Connection {
    pub(crate) fn new(stream: Box<dyn Stream>) -> Connection {
        Connection { stream }
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

    /// Closes cleanly: TLS close_notify, then the write side, then reads until the
    /// peer closes (bounded), so the kernel never answers unread data with a reset
    /// that could make the receiver discard frames.
    pub(crate) async fn close(mut self, limit: Duration) {
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
