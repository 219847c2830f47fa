//! What the peer's TCP acknowledged.
//!
//! Bytes a write handed to the kernel are not delivered: when the receiver
//! dies, whatever still sits in the sender's send queue (megabytes on a fast
//! link) is gone. The kernel knows how much of what was written the peer's
//! TCP has acknowledged: on Linux, `ioctl(SIOCOUTQ)` gives the bytes written
//! but not yet acknowledged, and stays readable after the connection failed,
//! even after a reset. So the socket under the connection (under TLS, when
//! there is TLS) counts the bytes written to it, and bytes acknowledged are
//! those minus the send queue.
//!
//! No maintained crate offers `SIOCOUTQ` without `unsafe`, so the one
//! `ioctl` is written here. Elsewhere than on Linux nothing is known, and
//! every byte handed to the kernel counts as acknowledged.
//!
//! Under TLS, the socket also gathers the records of several writes before
//! handing them to the kernel ([`MeteredTcp`]): each write carries one
//! record, whose end the [`Ledger`] notes, and the records go out together
//! at the next flush, in one system call rather than one each.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Most bytes a [`MeteredTcp`] gathers before handing them to the kernel.
pub(crate) const GATHER_BYTES: usize = 64 * 1024;

/// The bytes written to one socket, and where to ask what was acknowledged.
#[derive(Debug)]
pub(crate) struct Meter {
    /// Bytes handed to the kernel.
    written: AtomicU64,
    /// Bytes taken from the layer above: those written and those gathered.
    taken: AtomicU64,
    /// Writes are gathered until a flush (set once the TLS handshake is over).
    gather: AtomicBool,
    /// The socket is to be reset, not closed, when dropped.
    reset: AtomicBool,
    /// The socket is closed: its descriptor is no longer to be asked.
    closed: AtomicBool,
    /// The kernel refused to tell this open socket's send queue (a sandbox
    /// filtering `ioctl`, a socket type without it): every byte written
    /// counts as acknowledged, as where the platform does not tell.
    #[cfg(target_os = "linux")]
    untold: AtomicBool,
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
}

impl Meter {
    /// Bytes written to the socket so far, handshakes included.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Bytes taken so far: those written, and those gathered for the next
    /// flush. The stream's offset after the last write above it.
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Bytes gathered and not yet handed to the kernel.
    pub(crate) fn gathered(&self) -> u64 {
        self.taken().saturating_sub(self.written())
    }

    /// Has the socket reset rather than closed when dropped, so that the
    /// kernel sends nothing more of what waits in its send queue: frames
    /// written again on another connection never arrive twice.
    pub(crate) fn reset_on_close(&self) {
        self.reset.store(true, Ordering::Relaxed);
    }

    /// Bytes written to the socket and acknowledged by the peer's TCP, or,
    /// on Linux, `None` when the socket is closed (nothing new to learn).
    /// Where the platform does not tell, every byte handed to the kernel
    /// counts (not those still gathered: they never left the process).
    ///
    /// Only the owner of the socket may ask, while the socket is open: a
    /// closed descriptor's number may be another file's by then.
    pub(crate) fn acknowledged(&self) -> Option<u64> {
        let written = self.written();
        #[cfg(djehouty_measure)]
        if super::measure::no_acks() {
            return Some(written);
        }
        #[cfg(target_os = "linux")]
        {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if self.untold.load(Ordering::Relaxed) {
                return Some(written);
            }
            match send_queue(self.fd) {
                Ok(queued) => Some(written.saturating_sub(queued)),
                // Asked again, it would refuse again, and nothing would
                // ever count as delivered: frames written again and again.
                Err(error) => {
                    self.untold.store(true, Ordering::Relaxed);
                    opentelemetry::otel_warn!(
                        name: "djehouty.AcknowledgementsUnknown",
                        message = "the kernel does not tell what the receiver's TCP \
                                   acknowledged on this connection (SIOCOUTQ refused): \
                                   records count as exported once written, and a \
                                   receiver that dies may take some with it",
                        error = error.to_string()
                    );
                    Some(written)
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Some(written)
        }
    }
}

/// The bytes written but not yet acknowledged by the peer (`SIOCOUTQ`, the
/// same request as `TIOCOUTQ`), or why the kernel would not say.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn send_queue(fd: std::os::fd::RawFd) -> io::Result<u64> {
    let mut queued: libc::c_int = 0;
    // SAFETY: `fd` is the open socket of a `MeteredTcp` its caller owns (see
    // `Meter::acknowledged`), and TIOCOUTQ writes one `c_int` through the
    // pointer, which points to a live, aligned `c_int`.
    let done = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued as *mut libc::c_int) };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(queued).unwrap_or(0))
}

/// A TCP stream that counts the bytes it hands to the kernel; the TLS
/// stream, when there is one, sits on top of it. Once told to gather, it
/// keeps what is written until a flush, handing it to the kernel before a
/// write that would take more than [`GATHER_BYTES`] waiting.
#[derive(Debug)]
pub(crate) struct MeteredTcp {
    tcp: TcpStream,
    meter: Arc<Meter>,
    /// Gathered bytes, of which the first `sent` are written already.
    gathered: Vec<u8>,
    sent: usize,
}

impl MeteredTcp {
    /// Counts what is written to `tcp` from now on.
    pub(crate) fn new(tcp: TcpStream) -> MeteredTcp {
        #[cfg(target_os = "linux")]
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
        MeteredTcp {
            tcp,
            meter: Arc::new(Meter {
                written: AtomicU64::new(0),
                taken: AtomicU64::new(0),
                gather: AtomicBool::new(false),
                reset: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                #[cfg(target_os = "linux")]
                untold: AtomicBool::new(false),
                #[cfg(target_os = "linux")]
                fd,
            }),
            gathered: Vec::new(),
            sent: 0,
        }
    }

    /// The counter, for the owner of the connection.
    pub(crate) fn meter(&self) -> Arc<Meter> {
        Arc::clone(&self.meter)
    }

    fn count(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled {
            self.meter.written.fetch_add(*n as u64, Ordering::Relaxed);
            self.meter.taken.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }

    /// Whether writes are gathered.
    fn gathers(&self) -> bool {
        self.meter.gather.load(Ordering::Relaxed)
    }

    /// Before `len` more bytes are gathered: hands what is gathered to the
    /// kernel when they would not fit, as far as it takes them now. Never
    /// pending: a write above always takes its whole TLS record, so that the
    /// socket's offset after it ends that record (a flush, bounded in time,
    /// follows every write of the link).
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if self.gathered.len() - self.sent + len <= GATHER_BYTES {
            return Poll::Ready(Ok(()));
        }
        match self.poll_drain(cx) {
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Hands every gathered byte to the kernel.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.gathered.len() {
            let n = match Pin::new(&mut self.tcp).poll_write(cx, &self.gathered[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            };
            self.sent += n;
            self.meter.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.gathered.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Gathers `bufs`, which fit.
    fn gather<'b>(&mut self, bufs: impl IntoIterator<Item = &'b [u8]>) -> usize {
        let mut len = 0;
        for buf in bufs {
            self.gathered.extend_from_slice(buf);
            len += buf.len();
        }
        self.meter.taken.fetch_add(len as u64, Ordering::Relaxed);
        len
    }
}

impl Drop for MeteredTcp {
    fn drop(&mut self) {
        self.meter.closed.store(true, Ordering::Release);
        if self.meter.reset.load(Ordering::Relaxed) {
            // A zero linger never blocks: the close sends a reset at once.
            let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

impl AsyncRead for MeteredTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for MeteredTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.gathers() {
            return match this.poll_room(cx, buf.len()) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(this.gather([buf]))),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            };
        }
        let polled = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.count(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.gathers() {
            let len = bufs.iter().map(|buf| buf.len()).sum();
            return match this.poll_room(cx, len) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(this.gather(bufs.iter().map(|buf| &**buf)))),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            };
        }
        let polled = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.count(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_shutdown(cx),
            other => other,
        }
    }
}

/// How much of the plaintext written on one connection the peer's TCP
/// acknowledged. Over TCP the plaintext is the socket's bytes. Over TLS each
/// write carries one record, which the socket has taken when the write
/// returns, so the socket's offset then ends that record: a write's
/// plaintext is acknowledged once the socket's bytes up to that offset are,
/// and a frame in a record only partly acknowledged is not, since the
/// receiver cannot decrypt that record.
#[derive(Debug)]
pub(crate) struct Ledger {
    meter: Arc<Meter>,
    tls: bool,
    /// Socket bytes written before the first plaintext byte (TCP: none).
    base: u64,
    /// Plaintext bytes written.
    written: u64,
    /// Plaintext bytes known acknowledged.
    acked: u64,
    /// TLS: the plaintext end and the socket's count after each write not
    /// yet known acknowledged, oldest first.
    steps: std::collections::VecDeque<(u64, u64)>,
    /// The socket's bytes acknowledged when the kernel was last asked.
    socket: u64,
}

impl Ledger {
    /// A ledger of what is written from now on over the socket of `meter`,
    /// under TLS or not.
    pub(crate) fn new(meter: Arc<Meter>, tls: bool) -> Ledger {
        // Under TLS, one record a write: gathered, then written together.
        meter.gather.store(tls, Ordering::Relaxed);
        Ledger {
            base: meter.written(),
            meter,
            tls,
            written: 0,
            acked: 0,
            steps: std::collections::VecDeque::new(),
            socket: 0,
        }
    }

    /// Notes `n` more plaintext bytes written; under TLS, one write's
    /// worth, whose record the socket has taken.
    pub(crate) fn wrote(&mut self, n: usize) {
        self.written += n as u64;
        if self.tls {
            self.steps.push_back((self.written, self.meter.taken()));
        }
    }

    /// Plaintext bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Plaintext bytes acknowledged when the kernel was last asked.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// The socket's bytes its peer acknowledged when the kernel was last
    /// asked, TLS framing included: news of the peer as soon as its TCP
    /// takes anything, where the plaintext acknowledged moves a whole TLS
    /// record at a time.
    pub(crate) fn socket_acked(&self) -> u64 {
        self.socket
    }

    /// Bytes the socket gathered and did not hand to the kernel yet.
    pub(crate) fn gathered(&self) -> u64 {
        self.meter.gathered()
    }

    /// See [`Meter::reset_on_close`].
    pub(crate) fn reset_on_close(&self) {
        self.meter.reset_on_close();
    }

    /// Plaintext bytes acknowledged by the peer's TCP, asked of the kernel
    /// now. Where the kernel does not tell, every byte handed to it counts.
    pub(crate) fn acknowledged(&mut self) -> u64 {
        let socket = self.meter.acknowledged();
        self.advance(socket)
    }

    /// Plaintext bytes acknowledged, given the socket's bytes acknowledged
    /// (`None`: unknown).
    fn advance(&mut self, socket: Option<u64>) -> u64 {
        if let Some(socket) = socket {
            self.socket = self.socket.max(socket);
        }
        match socket {
            // A question the kernel did not answer (a closed socket) tells
            // nothing new.
            None => {}
            Some(socket) if !self.tls => {
                self.acked = socket.saturating_sub(self.base).min(self.written);
            }
            Some(socket) => {
                while let Some(&(plain, end)) = self.steps.front() {
                    if end > socket {
                        break;
                    }
                    self.acked = plain;
                    self.steps.pop_front();
                }
            }
        }
        self.acked
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt as _;

    /// The kernel tells what the peer acknowledged, and still does after the
    /// peer reset the connection: what a receiver that dies never
    /// acknowledged can be written again.
    #[tokio::test]
    async fn acknowledged_bytes_survive_the_peers_reset() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (peer, _) = listener.accept().expect("accept");
        let mut tcp = MeteredTcp::new(tcp);
        let meter = tcp.meter();
        // The peer never reads: its window fills, and the rest of what is
        // written waits, unacknowledged, in this side's send queue.
        let block = vec![b'x'; 64 * 1024];
        let mut written = 0u64;
        while written < 64 * 1024 * 1024 {
            match tokio::time::timeout(Duration::from_millis(200), tcp.write(&block)).await {
                Ok(Ok(n)) => written += n as u64,
                Ok(Err(error)) => panic!("write: {error}"),
                Err(_) => break,
            }
        }
        assert_eq!(meter.written(), written);
        // What the peer's TCP acknowledged is what its kernel holds unread,
        // as the peer sees it (asked again while a window probe may still
        // be on its way).
        let mut buf = vec![0; 8 * 1024 * 1024];
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let (acked, held) = loop {
            let acked = meter.acknowledged().expect("SIOCOUTQ on Linux");
            let held = peer.peek(&mut buf).expect("peek") as u64;
            if acked == held || std::time::Instant::now() > deadline {
                break (acked, held);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(acked, held, "acknowledged against held, of {written}");
        assert!(acked > 0 && acked < written, "{acked} of {written}");
        // The peer dies with unread data: its kernel answers with a reset.
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(peer);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = meter.acknowledged().expect("SIOCOUTQ after the reset");
        // (A window probe may have been acknowledged meanwhile.)
        assert!(
            after >= acked && after < written,
            "{after} acknowledged after the reset, {acked} before, of {written}"
        );
        // The connection is dead indeed.
        let failed = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                if let Err(error) = tcp.write(&block).await {
                    return error;
                }
            }
        })
        .await
        .expect("a write fails after the reset");
        assert!(
            matches!(
                failed.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{failed}"
        );
    }

    /// Once told to gather, the socket keeps writes until a flush, or until
    /// the next would take more than 64 KiB waiting; vectored writes alike.
    /// Every byte arrives, in order.
    #[tokio::test]
    async fn writes_are_gathered_up_to_64_kib_until_a_flush() {
        use std::io::Read as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (mut peer, _) = listener.accept().expect("accept");
        let mut tcp = MeteredTcp::new(tcp);
        let meter = tcp.meter();
        // Written straight through before gathering starts (a handshake).
        assert_eq!(tcp.write(b"hello").await.expect("write"), 5);
        assert_eq!((meter.written(), meter.taken()), (5, 5));
        meter.gather.store(true, Ordering::Relaxed);
        let mut sent = b"hello".to_vec();
        // Sixteen writes of 4 KiB fill the 64 KiB exactly: none reaches the
        // kernel.
        for i in 0..16u8 {
            let block = vec![b'a' + i; 4096];
            assert_eq!(tcp.write(&block).await.expect("write"), 4096);
            sent.extend_from_slice(&block);
        }
        assert_eq!(meter.written(), 5);
        assert_eq!(meter.gathered(), 64 * 1024);
        // One byte more would not fit: what waits goes first.
        let slices = [io::IoSlice::new(b"x"), io::IoSlice::new(b"yz")];
        assert_eq!(tcp.write_vectored(&slices).await.expect("write"), 3);
        sent.extend_from_slice(b"xyz");
        assert_eq!(meter.written(), 5 + 64 * 1024);
        assert_eq!((meter.gathered(), meter.taken()), (3, 8 + 64 * 1024));
        tcp.flush().await.expect("flush");
        assert_eq!((meter.written(), meter.gathered()), (8 + 64 * 1024, 0));
        tcp.shutdown().await.expect("shutdown");
        let mut received = Vec::new();
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        peer.read_to_end(&mut received).expect("read");
        assert!(
            received == sent,
            "{} bytes of {}",
            received.len(),
            sent.len()
        );
    }

    /// Under TLS, a write's plaintext counts as acknowledged once the socket
    /// bytes up to the end of its records are; over TCP, byte for byte.
    #[test]
    fn a_ledger_maps_plaintext_to_acknowledged_socket_bytes() {
        let meter = Arc::new(Meter {
            written: AtomicU64::new(300),
            taken: AtomicU64::new(300),
            gather: AtomicBool::new(false),
            reset: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            untold: AtomicBool::new(false),
            fd: -1,
        });
        // 300 bytes of handshake first.
        let mut tls = Ledger::new(Arc::clone(&meter), true);
        // Two writes of 100 and 50 plaintext bytes: one record each, 122 and
        // 72 bytes on the socket.
        meter.taken.store(422, Ordering::Relaxed);
        tls.wrote(100);
        meter.taken.store(494, Ordering::Relaxed);
        tls.wrote(50);
        assert_eq!(tls.written(), 150);
        let acked: Vec<(u64, u64)> = [300, 421, 422, 493, 494, 494]
            .into_iter()
            .map(|socket| (tls.advance(Some(socket)), tls.socket_acked()))
            .collect();
        // A record partly acknowledged holds nothing acknowledged; the
        // socket's count, news of the peer, moves with it all the same.
        assert_eq!(
            acked,
            [
                (0, 300),
                (0, 421),
                (100, 422),
                (100, 493),
                (150, 494),
                (150, 494)
            ]
        );

        meter.written.store(494, Ordering::Relaxed);
        let mut tcp = Ledger::new(Arc::clone(&meter), false);
        meter.written.store(594, Ordering::Relaxed);
        tcp.wrote(100);
        assert_eq!(tcp.advance(Some(494)), 0);
        assert_eq!(tcp.advance(Some(537)), 43);
        assert_eq!(tcp.advance(Some(594)), 100);

        // A question the kernel does not answer tells nothing new.
        assert_eq!(tcp.advance(None), 100);
    }

    /// A descriptor the kernel will not tell the send queue of counts every
    /// byte written as acknowledged, from the first refusal on: asked again
    /// and again, it would never count anything delivered. A closed socket
    /// is not asked, and tells nothing new.
    #[test]
    fn a_refused_question_counts_what_was_written() {
        use std::os::fd::AsRawFd as _;
        // Not a socket: TIOCOUTQ is refused.
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        let meter = Arc::new(Meter {
            written: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            gather: AtomicBool::new(false),
            reset: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            untold: AtomicBool::new(false),
            fd: file.as_raw_fd(),
        });
        let mut ledger = Ledger::new(Arc::clone(&meter), false);
        meter.written.store(10, Ordering::Relaxed);
        ledger.wrote(10);
        assert_eq!(ledger.acknowledged(), 10);
        assert!(meter.untold.load(Ordering::Relaxed));
        meter.written.store(25, Ordering::Relaxed);
        ledger.wrote(15);
        assert_eq!(ledger.acknowledged(), 25);
        meter.closed.store(true, Ordering::Release);
        meter.written.store(40, Ordering::Relaxed);
        ledger.wrote(15);
        assert_eq!(ledger.acknowledged(), 25, "closed: not asked");
    }
}
