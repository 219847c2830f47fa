//! An in-process TCP or TLS receiver that records every frame it is sent.
//!
//! [`Receiver`] listens on a loopback address with an ephemeral port, accepts
//! any number of connections (each served by its own thread) and splits every
//! connection's byte stream on a one-byte delimiter ([`Framing`]): each
//! delimiter byte ends exactly one frame, so two delimiters in a row record an
//! empty frame. Frames are kept verbatim, without the delimiter, together with
//! the number of the connection they came on.
//!
//! Bytes left without a delimiter when a connection ends are not frames: they
//! are recorded separately as *partial* data ([`Receiver::partial`],
//! [`Receiver::assert_no_partial`]).
//!
//! With TLS ([`Receiver::tls`]) the receiver uses rustls, reads until the
//! client's `close_notify` (answering with its own) or until EOF, and records
//! the negotiated protocol version, cipher suite and SNI name of each
//! connection. A
//! connection that ends without `close_notify`, a failed handshake or an I/O
//! error is recorded in [`Receiver::errors`].
//!
//! All threads poll a stop flag, so dropping the `Receiver` stops listening,
//! closes every connection and joins its threads within a fraction of a
//! second. Just before closing, each connection peeks (`MSG_PEEK`) at what its
//! kernel still holds unread and records it as *held* frames
//! ([`Receiver::kill_measured`]): a crashing server loses exactly those, so a
//! test can bound the loss without asking the exporter.
//! [`Receiver::pause_reading`] stops reading so that a backlog builds up.
//!
//! A *resetting* receiver ([`Receiver::bind_resetting`], Linux) resets each
//! connection once it has taken a set number of bytes off its socket: it
//! first keeps any further segment out of its kernel (a socket filter that
//! drops them before TCP acknowledges them), takes what its kernel holds
//! unread as *held* frames, has TCP acknowledge them, then closes with a TCP
//! reset ([`Receiver::resets`]), while it goes on accepting. The frames held
//! at a reset are thus exactly those the sender was told arrived and that
//! were lost.
//!
//! Waits ([`Receiver::wait_frames`] and friends) are bounded and panic
//! with a description of what did arrive.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{CipherSuite, ProtocolVersion, ServerConfig, ServerConnection};

use super::certs::{TestPki, TlsVersions};
use super::{show_bytes, wait_for};

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// The byte that ends each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Frames end with a NUL byte (GELF over TCP).
    Nul,
    /// Frames end with a line feed (LTSV lines).
    Newline,
}

impl Framing {
    /// The delimiter byte.
    pub fn delimiter(self) -> u8 {
        match self {
            Framing::Nul => 0,
            Framing::Newline => b'\n',
        }
    }
}

/// One frame, or one piece of partial data, and where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Number of the connection, counting accepted connections from 0.
    pub connection: usize,
    /// The bytes, without the delimiter.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} ({} bytes) {}",
            self.connection,
            self.bytes.len(),
            show_bytes(&self.bytes)
        )
    }
}

/// What the receiver has seen so far.
#[derive(Default)]
struct State {
    frames: Vec<Frame>,
    partial: Vec<Frame>,
    accepted: usize,
    closed: usize,
    errors: Vec<String>,
    /// Negotiated TLS version per connection number (TLS receivers only).
    tls_versions: HashMap<usize, ProtocolVersion>,
    /// Negotiated cipher suite per connection number (TLS receivers only).
    cipher_suites: HashMap<usize, CipherSuite>,
    /// SNI name per connection number (TLS receivers only).
    server_names: HashMap<usize, Option<String>>,
    /// Clones of the open sockets, to close them from the server side.
    open: HashMap<usize, TcpStream>,
    /// Complete frames the kernel held unread when their connection closed.
    held: Vec<Frame>,
    /// Bytes of an incomplete frame held (read or unread) at the close.
    held_partial: Vec<Frame>,
    /// TLS bytes held unread that did not form a complete TLS record.
    held_undecoded: usize,
    /// Connections reset by a resetting receiver, in the order of the resets.
    resets: Vec<Reset>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    paused: AtomicBool,
    /// Connection threads that may still read (not parked by a pause).
    reading: AtomicUsize,
    /// When connections reset (a resetting receiver).
    resetting: Option<Resetting>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not hide what was received.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
}

/// A connection thread's place among the [`Shared::reading`] ones, given up
/// once it stops reading for a pause, or when it ends.
struct Reading<'a> {
    shared: &'a Shared,
    parked: bool,
}

impl<'a> Reading<'a> {
    fn start(shared: &'a Shared) -> Reading<'a> {
        shared.reading.fetch_add(1, Ordering::SeqCst);
        Reading {
            shared,
            parked: false,
        }
    }

    /// Whether reading is paused; the first time, the thread counts as parked.
    fn paused(&mut self) -> bool {
        let paused = self.shared.paused();
        if paused && !self.parked {
            self.parked = true;
            self.shared.reading.fetch_sub(1, Ordering::SeqCst);
        }
        paused
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if !self.parked {
            self.shared.reading.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What a killed receiver had: the frames it read, and what its kernel still
/// held unread when it closed its connections.
#[derive(Debug)]
pub struct Killed {
    /// Frames read, in arrival order.
    pub frames: Vec<Vec<u8>>,
    /// Complete frames held unread in the kernel (or half read) at the close.
    pub held: Vec<Vec<u8>>,
    /// Incomplete frames held at the close, one per connection at most.
    pub held_partial: Vec<Vec<u8>>,
    /// TLS bytes held that did not form a complete record (frames unknown).
    pub held_undecoded: usize,
}

/// When each connection of a resetting receiver resets
/// ([`Receiver::bind_resetting`]).
#[derive(Clone, Copy, Debug)]
pub struct Resetting {
    /// Bytes a connection takes off its socket before it resets (TLS:
    /// ciphertext, up to the end of the record that reaches it).
    pub every_bytes: usize,
    /// The youngest a connection resets: one that took its bytes sooner
    /// reads nothing more until then, so its kernel fills up. (An exporter
    /// may count a connection that dies young as a failure and back off.)
    pub not_before: Duration,
    /// Each connection's receive buffer (`SO_RCVBUF`), which bounds what it
    /// holds at its reset; `None`: the kernel's, grown as it sees fit.
    pub receive_buffer: Option<usize>,
}

/// One connection reset by a resetting receiver.
#[derive(Clone, Debug)]
pub struct Reset {
    /// Number of the connection.
    pub connection: usize,
    /// Bytes taken off the socket before the reset (TLS: ciphertext).
    pub taken: usize,
    /// Complete frames the kernel held unread (or half read) at the reset:
    /// acknowledged by TCP before it, and lost with the connection.
    pub held: Vec<Vec<u8>>,
    /// Bytes of a frame held only in part: its end never reached the kernel.
    pub held_partial: usize,
    /// TLS bytes held that did not form a complete record.
    pub undecoded: usize,
}

/// A loopback receiver recording delimited frames; see the module docs.
pub struct Receiver {
    addr: SocketAddr,
    framing: Framing,
    tls: bool,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// A plain TCP receiver on `127.0.0.1` (ephemeral port).
    pub fn tcp(framing: Framing) -> Receiver {
        Receiver::bind(loopback_v4(), framing, None)
            .unwrap_or_else(|e| panic!("bind a TCP receiver on 127.0.0.1: {e}"))
    }

    /// A TLS receiver on `127.0.0.1` presenting `pki`'s server certificate
    /// and accepting only `versions`.
    pub fn tls(framing: Framing, pki: &TestPki, versions: TlsVersions) -> Receiver {
        Receiver::bind(loopback_v4(), framing, Some(pki.server_config(versions)))
            .unwrap_or_else(|e| panic!("bind a TLS receiver on 127.0.0.1: {e}"))
    }

    /// A plain TCP receiver on `[::1]`; fails if the machine has no IPv6
    /// loopback, leaving the decision to the caller.
    pub fn ipv6_tcp(framing: Framing) -> io::Result<Receiver> {
        Receiver::bind(loopback_v6(), framing, None)
    }

    /// A TLS receiver on `[::1]`; fails if the machine has no IPv6 loopback.
    pub fn ipv6_tls(
        framing: Framing,
        pki: &TestPki,
        versions: TlsVersions,
    ) -> io::Result<Receiver> {
        Receiver::bind(loopback_v6(), framing, Some(pki.server_config(versions)))
    }

    /// A receiver on `addr`, which must be a loopback address (port 0 picks
    /// a free port; a fixed port allows "restarting" a receiver on the port
    /// of a dropped one). With `tls`, connections are served with rustls.
    pub fn bind(
        addr: SocketAddr,
        framing: Framing,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<Receiver> {
        Receiver::start(addr, framing, tls, None)
    }

    /// A receiver on `addr`, like [`bind`](Receiver::bind), that resets each
    /// connection as `resetting` says (see the module docs); what its kernel
    /// held at each reset is told by [`resets`](Receiver::resets). Linux
    /// only: elsewhere it fails, naming what is missing.
    pub fn bind_resetting(
        addr: SocketAddr,
        framing: Framing,
        tls: Option<Arc<ServerConfig>>,
        resetting: Resetting,
    ) -> io::Result<Receiver> {
        if !cfg!(target_os = "linux") {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a resetting receiver needs Linux (a socket filter keeps segments out \
                 between its measurement and its reset)",
            ));
        }
        assert!(resetting.every_bytes > 0, "reset after at least one byte");
        Receiver::start(addr, framing, tls, Some(resetting))
    }

    fn start(
        addr: SocketAddr,
        framing: Framing,
        tls: Option<Arc<ServerConfig>>,
        resetting: Option<Resetting>,
    ) -> io::Result<Receiver> {
        assert!(
            addr.ip().is_loopback(),
            "test receivers listen on loopback addresses only, not {addr}"
        );
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        // Accepted connections inherit it.
        if let Some(size) = resetting.and_then(|r| r.receive_buffer) {
            socket2::SockRef::from(&listener).set_recv_buffer_size(size)?;
        }
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            reading: AtomicUsize::new(0),
            resetting,
        });
        let is_tls = tls.is_some();
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("receiver-{}", addr.port()))
                .spawn(move || accept_loop(listener, framing, tls, shared))?
        };
        Ok(Receiver {
            addr,
            framing,
            tls: is_tls,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the receiver listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The framing this receiver splits on.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether connections are served with TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The frames received so far, in arrival order, without delimiters.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        self.shared
            .lock()
            .frames
            .iter()
            .map(|f| f.bytes.clone())
            .collect()
    }

    /// The frames received so far with their connection numbers.
    pub fn received(&self) -> Vec<Frame> {
        self.shared.lock().frames.clone()
    }

    /// Trailing bytes that were left without a delimiter when their
    /// connection ended, one entry per such connection.
    pub fn partial(&self) -> Vec<Vec<u8>> {
        self.shared
            .lock()
            .partial
            .iter()
            .map(|f| f.bytes.clone())
            .collect()
    }

    /// Panics if any connection ended with bytes after its last delimiter.
    pub fn assert_no_partial(&self) {
        let state = self.shared.lock();
        assert!(
            state.partial.is_empty(),
            "receiver on {}: connections ended with undelimited trailing bytes: {:?}",
            self.addr,
            state.partial
        );
    }

    /// The number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().accepted
    }

    /// The number of connections that have ended so far.
    pub fn closed_connections(&self) -> usize {
        self.shared.lock().closed
    }

    /// The connections a resetting receiver reset so far, with what their
    /// kernel held at the reset.
    pub fn resets(&self) -> Vec<Reset> {
        self.shared.lock().resets.clone()
    }

    /// Failed handshakes, connections closed without `close_notify` and I/O
    /// errors, one message each, prefixed with the connection number.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// The negotiated TLS version of each connection whose handshake
    /// finished, in connection order.
    pub fn tls_versions(&self) -> Vec<ProtocolVersion> {
        let state = self.shared.lock();
        let mut versions: Vec<_> = state.tls_versions.iter().map(|(c, v)| (*c, *v)).collect();
        versions.sort_by_key(|(c, _)| *c);
        versions.into_iter().map(|(_, v)| v).collect()
    }

    /// The negotiated cipher suite of each connection whose handshake
    /// finished, in connection order.
    pub fn cipher_suites(&self) -> Vec<CipherSuite> {
        let state = self.shared.lock();
        let mut suites: Vec<_> = state.cipher_suites.iter().map(|(c, s)| (*c, *s)).collect();
        suites.sort_by_key(|(c, _)| *c);
        suites.into_iter().map(|(_, s)| s).collect()
    }

    /// The SNI name sent by each connection whose handshake finished
    /// (`None`: no SNI, as when connecting to an IP address), in connection
    /// order.
    pub fn server_names(&self) -> Vec<Option<String>> {
        let state = self.shared.lock();
        let mut names: Vec<_> = state
            .server_names
            .iter()
            .map(|(c, n)| (*c, n.clone()))
            .collect();
        names.sort_by_key(|(c, _)| *c);
        names.into_iter().map(|(_, n)| n).collect()
    }

    /// Waits until at least `n` frames have arrived and returns all frames
    /// received by then. Panics after `timeout`, listing what did arrive.
    pub fn wait_frames(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let state = self.wait_until(timeout, |s| s.frames.len() >= n, || format!("{n} frame(s)"));
        state.frames.iter().map(|f| f.bytes.clone()).collect()
    }

    /// Waits until at least `n` connections have been accepted.
    pub fn wait_connections(&self, n: usize, timeout: Duration) {
        drop(self.wait_until(
            timeout,
            |s| s.accepted >= n,
            || format!("{n} accepted connection(s)"),
        ));
    }

    /// Waits until at least `n` connections have ended.
    pub fn wait_closed(&self, n: usize, timeout: Duration) {
        drop(self.wait_until(
            timeout,
            |s| s.closed >= n,
            || format!("{n} closed connection(s)"),
        ));
    }

    /// Stops the receiver as a crashing server would (stops listening, closes
    /// every connection), waits for its threads, and returns every frame it
    /// received. The port can then be bound again to "restart" it.
    pub fn kill(self) -> Vec<Vec<u8>> {
        let shared = Arc::clone(&self.shared);
        drop(self);
        let state = shared.lock();
        state.frames.iter().map(|f| f.bytes.clone()).collect()
    }

    /// Like [`kill`](Receiver::kill), and also returns what the kernel held
    /// unread on each connection at the moment it was closed. The caller must
    /// make sure the sender is idle, or bytes may arrive between the peek and
    /// the close.
    pub fn kill_measured(self) -> Killed {
        let shared = Arc::clone(&self.shared);
        drop(self);
        let state = shared.lock();
        let bytes = |frames: &[Frame]| frames.iter().map(|f| f.bytes.clone()).collect();
        Killed {
            frames: bytes(&state.frames),
            held: bytes(&state.held),
            held_partial: bytes(&state.held_partial),
            held_undecoded: state.held_undecoded,
        }
    }

    /// Stops reading on every connection (accepting goes on), so that what is
    /// sent from now on stays in the kernel's buffers. Returns once no
    /// connection thread is inside a read any more (at most a few polls).
    pub fn pause_reading(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.reading.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "a connection thread still reads 5 s after the pause"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Closes every open connection from the server side (both directions),
    /// as a crashing or restarting server would. The listener keeps
    /// accepting new connections.
    pub fn drop_connections(&self) {
        let state = self.shared.lock();
        for sock in state.open.values() {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }

    fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
        what: impl Fn() -> String,
    ) -> MutexGuard<'_, State> {
        wait_for(
            &self.shared.state,
            &self.shared.changed,
            timeout,
            done,
            |state| {
                format!(
                    "receiver on {}: timed out after {:?} waiting for {}\n{}",
                    self.addr,
                    timeout,
                    what(),
                    describe(state)
                )
            },
        )
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Each connection thread peeks at what is held and closes its socket
        // itself; a thread stuck in a write is unblocked after a while.
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            let state = self.shared.lock();
            if state.closed == state.accepted {
                break;
            }
            drop(state);
            thread::sleep(Duration::from_millis(2));
        }
        self.drop_connections();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn loopback_v4() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn loopback_v6() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
}

/// A readable summary of everything received, for panic messages.
fn describe(state: &State) -> String {
    let mut out = format!(
        "connections accepted: {}, closed: {}\nframes received: {}\n",
        state.accepted,
        state.closed,
        state.frames.len()
    );
    for frame in &state.frames {
        out.push_str(&format!("  {frame:?}\n"));
    }
    if !state.partial.is_empty() {
        out.push_str("partial data at connection end:\n");
        for frame in &state.partial {
            out.push_str(&format!("  {frame:?}\n"));
        }
    }
    if !state.errors.is_empty() {
        out.push_str("errors:\n");
        for error in &state.errors {
            out.push_str(&format!("  {error}\n"));
        }
    }
    out
}

fn accept_loop(
    listener: TcpListener,
    framing: Framing,
    tls: Option<Arc<ServerConfig>>,
    shared: Arc<Shared>,
) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopping() {
        match listener.accept() {
            Ok((sock, _peer)) => {
                let id = {
                    let mut state = shared.lock();
                    let id = state.accepted;
                    state.accepted += 1;
                    if let Ok(clone) = sock.try_clone() {
                        state.open.insert(id, clone);
                    }
                    id
                };
                shared.changed.notify_all();
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                let spawned = thread::Builder::new()
                    .name(format!("receiver-conn-{id}"))
                    .spawn(move || serve(id, sock, framing, tls, &shared));
                match spawned {
                    Ok(handle) => workers.push(handle),
                    Err(e) => panic!("spawn a receiver connection thread: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                shared.update(|s| s.errors.push(format!("accept: {e}")));
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
    drop(listener);
    for worker in workers {
        let _ = worker.join();
    }
}

/// Splits a byte stream into frames and publishes them.
struct Splitter<'a> {
    id: usize,
    delimiter: u8,
    pending: Vec<u8>,
    shared: &'a Shared,
}

impl Splitter<'_> {
    fn feed(&mut self, mut chunk: &[u8]) {
        let mut complete = Vec::new();
        while let Some(pos) = chunk.iter().position(|b| *b == self.delimiter) {
            self.pending.extend_from_slice(&chunk[..pos]);
            complete.push(Frame {
                connection: self.id,
                bytes: std::mem::take(&mut self.pending),
            });
            chunk = &chunk[pos + 1..];
        }
        self.pending.extend_from_slice(chunk);
        if !complete.is_empty() {
            self.shared.update(|s| s.frames.extend(complete));
        }
    }

    /// Records `unread` (what the kernel held), after the bytes already read
    /// without a delimiter, as held frames rather than received ones.
    /// Returns the complete frames, and the length of the incomplete one.
    fn hold(&mut self, unread: &[u8]) -> (Vec<Vec<u8>>, usize) {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(unread);
        let mut pieces: Vec<&[u8]> = bytes.split(|b| *b == self.delimiter).collect();
        let tail = pieces.pop().unwrap_or_default();
        let id = self.id;
        let frames: Vec<Frame> = pieces
            .into_iter()
            .map(|p| Frame {
                connection: id,
                bytes: p.to_vec(),
            })
            .collect();
        let tail = tail.to_vec();
        let held = frames.iter().map(|f| f.bytes.clone()).collect();
        let partial = tail.len();
        self.shared.update(|s| {
            s.held.extend(frames);
            if !tail.is_empty() {
                s.held_partial.push(Frame {
                    connection: id,
                    bytes: tail,
                });
            }
        });
        (held, partial)
    }

    fn finish(self) {
        let Splitter {
            id,
            pending,
            shared,
            ..
        } = self;
        shared.update(|s| {
            if !pending.is_empty() {
                s.partial.push(Frame {
                    connection: id,
                    bytes: pending,
                });
            }
            s.closed += 1;
            s.open.remove(&id);
        });
    }
}

fn serve(
    id: usize,
    mut sock: TcpStream,
    framing: Framing,
    tls: Option<Arc<ServerConfig>>,
    shared: &Shared,
) {
    let mut splitter = Splitter {
        id,
        delimiter: framing.delimiter(),
        pending: Vec::new(),
        shared,
    };
    let mut reading = Reading::start(shared);
    let mut quota = shared.resetting.map(|resetting| Quota {
        resetting,
        opened: Instant::now(),
        taken: 0,
    });
    let setup = sock
        .set_nonblocking(false)
        .and_then(|()| sock.set_read_timeout(Some(POLL)))
        .and_then(|()| sock.set_write_timeout(Some(Duration::from_secs(5))));
    let outcome = match setup {
        Err(e) => Err(format!("socket setup: {e}")),
        Ok(()) => match tls {
            None => serve_plain(&mut sock, &mut splitter, shared, &mut reading, &mut quota),
            Some(config) => serve_tls(
                id,
                &mut sock,
                config,
                &mut splitter,
                shared,
                &mut reading,
                &mut quota,
            ),
        },
    };
    match outcome {
        Ok(Ended::Reset) => {
            // The last descriptor closed with a zero linger sends a reset.
            let linger = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
            shared.update(|s| {
                if let Err(e) = linger {
                    s.errors.push(format!("connection #{id}: SO_LINGER: {e}"));
                }
                s.open.remove(&id);
            });
            drop(sock);
        }
        Ok(Ended::Closed) => {
            let _ = sock.shutdown(Shutdown::Both);
        }
        Err(e) => {
            shared.update(|s| s.errors.push(format!("connection #{id}: {e}")));
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
    splitter.finish();
}

/// How a connection's service ended without an error.
enum Ended {
    /// The peer closed, or the receiver stopped.
    Closed,
    /// It is to be reset (a resetting receiver): what it held is measured.
    Reset,
}

/// What one connection of a resetting receiver took, and when it opened.
struct Quota {
    resetting: Resetting,
    opened: Instant,
    /// Bytes taken off the socket so far.
    taken: usize,
}

impl Quota {
    /// Whether the connection has taken its bytes (it reads no more).
    fn full(&self) -> bool {
        self.taken >= self.resetting.every_bytes
    }

    /// Whether it is time to reset: its bytes taken, and old enough.
    fn due(&self) -> bool {
        self.full() && self.opened.elapsed() >= self.resetting.not_before
    }

    /// The most bytes the next read may take.
    fn room(&self, buf: usize) -> usize {
        buf.min(self.resetting.every_bytes.saturating_sub(self.taken))
    }
}

/// Notes the reset of connection `id` and what its kernel held.
fn note_reset(
    shared: &Shared,
    id: usize,
    taken: usize,
    (held, held_partial): (Vec<Vec<u8>>, usize),
    undecoded: usize,
) {
    shared.update(|s| {
        s.resets.push(Reset {
            connection: id,
            taken,
            held,
            held_partial,
            undecoded,
        })
    });
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn serve_plain(
    sock: &mut TcpStream,
    splitter: &mut Splitter<'_>,
    shared: &Shared,
    reading: &mut Reading<'_>,
    quota: &mut Option<Quota>,
) -> Result<Ended, String> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.stopping() {
            splitter.hold(&peek_unread(sock));
            return Ok(Ended::Closed);
        }
        if let Some(quota) = quota.as_ref().filter(|q| q.full()) {
            if quota.due() {
                let held = splitter.hold(&seal(sock)?);
                note_reset(shared, splitter.id, quota.taken, held, 0);
                return Ok(Ended::Reset);
            }
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        if reading.paused() {
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        let most = quota.as_ref().map_or(buf.len(), |q| q.room(buf.len()));
        match sock.read(&mut buf[..most]) {
            Ok(0) => return Ok(Ended::Closed),
            Ok(n) => {
                if let Some(quota) = quota.as_mut() {
                    quota.taken += n;
                }
                splitter.feed(&buf[..n])
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

fn serve_tls(
    id: usize,
    sock: &mut TcpStream,
    config: Arc<ServerConfig>,
    splitter: &mut Splitter<'_>,
    shared: &Shared,
    reading: &mut Reading<'_>,
    quota: &mut Option<Quota>,
) -> Result<Ended, String> {
    let mut conn = ServerConnection::new(config).map_err(|e| format!("TLS setup: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    // TLS records are taken off the socket whole (header, then the rest), so
    // that what a pause leaves in the kernel starts at a record boundary and
    // a kill can still decrypt it.
    let mut record: Vec<u8> = Vec::new();
    let mut recorded = false;
    loop {
        while conn.wants_write() {
            conn.write_tls(sock)
                .map_err(|e| format!("TLS write: {e}"))?;
        }
        if shared.stopping() {
            // The part of a record already taken is held too.
            let mut unread = std::mem::take(&mut record);
            unread.extend(peek_unread(sock));
            hold_tls(&mut conn, &unread, splitter, shared);
            return Ok(Ended::Closed);
        }
        // Reset between two records, so that what is held starts with one.
        if let Some(quota) = quota.as_ref().filter(|q| q.full() && record.is_empty()) {
            if quota.due() {
                let unread = seal(sock)?;
                let (held, undecoded) = hold_tls(&mut conn, &unread, splitter, shared);
                note_reset(shared, id, quota.taken, held, undecoded);
                return Ok(Ended::Reset);
            }
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        if record.is_empty() && reading.paused() {
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        let missing = tls_record_len(&record).unwrap_or(TLS_HEADER) - record.len();
        if buf.len() < missing {
            buf.resize(missing, 0);
        }
        let eof = match sock.read(&mut buf[..missing]) {
            Ok(0) => true,
            Ok(n) => {
                if let Some(quota) = quota.as_mut() {
                    quota.taken += n;
                }
                record.extend_from_slice(&buf[..n]);
                if tls_record_len(&record) != Some(record.len()) {
                    continue;
                }
                let mut input = &record[..];
                while !input.is_empty() {
                    conn.read_tls(&mut input)
                        .map_err(|e| format!("TLS read: {e}"))?;
                }
                record.clear();
                false
            }
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        if let Err(e) = conn.process_new_packets() {
            // Let the client know why, if it still listens.
            while conn.wants_write() {
                if conn.write_tls(sock).is_err() {
                    break;
                }
            }
            return Err(format!("TLS: {e}"));
        }
        if !recorded && !conn.is_handshaking() {
            recorded = true;
            let version = conn.protocol_version();
            let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
            let name = conn.server_name().map(str::to_string);
            shared.update(|s| {
                if let Some(v) = version {
                    s.tls_versions.insert(id, v);
                }
                if let Some(suite) = suite {
                    s.cipher_suites.insert(id, suite);
                }
                s.server_names.insert(id, name);
            });
        }
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => {
                    // close_notify: answer it and close.
                    conn.send_close_notify();
                    while conn.wants_write() {
                        conn.write_tls(sock)
                            .map_err(|e| format!("TLS write: {e}"))?;
                    }
                    sock.flush().map_err(|e| format!("flush: {e}"))?;
                    return Ok(Ended::Closed);
                }
                Ok(n) => splitter.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(unclean_eof(&conn));
                }
                Err(e) => return Err(format!("TLS read: {e}")),
            }
        }
        if eof {
            return Err(unclean_eof(&conn));
        }
    }
}

/// Everything the kernel holds unread on `sock`, left in place (`MSG_PEEK`);
/// nothing if it cannot tell.
fn peek_unread(sock: &TcpStream) -> Vec<u8> {
    peek_all(sock).unwrap_or_default()
}

/// Everything the kernel holds unread on `sock`, left in place (`MSG_PEEK`).
fn peek_all(sock: &TcpStream) -> io::Result<Vec<u8>> {
    sock.set_nonblocking(true)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match sock.peek(&mut buf) {
            // A full buffer may mean more is held: look again with more room.
            Ok(n) if n == buf.len() => buf.resize(buf.len() * 2, 0),
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}

/// Keeps every segment that arrives from now on out of the socket: a socket
/// filter drops it before TCP sees it, so it is never acknowledged (the
/// sender still has it, to send again). Then takes what the kernel holds
/// unread, which nothing can add to any more, and has TCP acknowledge it
/// all at once rather than after its delayed-ACK timer: a reset while an
/// acknowledgement is pending leaves the sender no way to know what arrived
/// (it writes those bytes again), and the frames it held are then exactly
/// those it acknowledged and lost.
#[cfg(target_os = "linux")]
fn seal(sock: &TcpStream) -> Result<Vec<u8>, String> {
    // Classic BPF `ret #0`: keep no byte of any packet.
    const DROP_ALL: u16 = 0x06; // BPF_RET | BPF_K
    let sock2 = socket2::SockRef::from(sock);
    sock2
        .attach_filter(&[socket2::SockFilter::new(DROP_ALL, 0, 0, 0)])
        .map_err(|e| format!("attach a socket filter: {e}"))?;
    // A segment that passed before the filter was attached is queued within
    // microseconds, or waits in the socket's backlog until a call on the
    // socket releases it: each read below lets it in, the last finds none.
    thread::sleep(Duration::from_millis(5));
    let unread = read_all(sock).map_err(|e| format!("read what is held: {e}"))?;
    // With the receive queue empty, this sends the pending acknowledgement.
    sock2
        .set_tcp_quickack(true)
        .map_err(|e| format!("TCP_QUICKACK: {e}"))?;
    Ok(unread)
}

/// Reads everything the kernel holds unread on `sock`, without waiting.
#[cfg(target_os = "linux")]
fn read_all(mut sock: &TcpStream) -> io::Result<Vec<u8>> {
    sock.set_nonblocking(true)?;
    let mut unread = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return Ok(unread),
            Ok(n) => unread.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(unread),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn seal(_sock: &TcpStream) -> Result<Vec<u8>, String> {
    Err("a resetting receiver needs Linux".to_string())
}

/// Decrypts the complete TLS records in `unread` and records their plaintext
/// as held frames; the bytes of a trailing incomplete record are counted.
/// Returns what [`Splitter::hold`] does, and those bytes.
/// Bytes of a TLS record's header: type (1), version (2), length (2).
const TLS_HEADER: usize = 5;

/// The whole length of the TLS record `bytes` start with, header included,
/// once its header is there.
fn tls_record_len(bytes: &[u8]) -> Option<usize> {
    let len = bytes.get(3..TLS_HEADER)?;
    Some(TLS_HEADER + usize::from(u16::from_be_bytes([len[0], len[1]])))
}

fn hold_tls(
    conn: &mut ServerConnection,
    unread: &[u8],
    splitter: &mut Splitter<'_>,
    shared: &Shared,
) -> ((Vec<Vec<u8>>, usize), usize) {
    let mut complete = 0;
    while let Some(len) = tls_record_len(&unread[complete..]) {
        if unread.len() < complete + len {
            break;
        }
        complete += len;
    }
    let undecoded = unread.len() - complete;
    let mut input = &unread[..complete];
    let mut plain = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !input.is_empty() {
        if conn.read_tls(&mut input).is_err() || conn.process_new_packets().is_err() {
            break;
        }
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => plain.extend_from_slice(&buf[..n]),
            }
        }
    }
    let held = splitter.hold(&plain);
    if undecoded > 0 {
        shared.update(|s| s.held_undecoded += undecoded);
    }
    (held, undecoded)
}

fn unclean_eof(conn: &ServerConnection) -> String {
    if conn.is_handshaking() {
        "TCP connection closed during the TLS handshake".to_string()
    } else {
        "TCP connection closed without TLS close_notify".to_string()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// What a sealed socket's kernel holds is final: bytes sent after the
    /// seal never reach it, so a reset cannot lose more than was measured.
    #[test]
    fn a_sealed_socket_takes_nothing_more() {
        let listener = TcpListener::bind(loopback_v4()).expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        client.write_all(b"before\0").expect("write");
        thread::sleep(Duration::from_millis(50));
        assert_eq!(seal(&server).expect("seal"), b"before\0");
        client.write_all(b"after\0").expect("write after the seal");
        thread::sleep(Duration::from_millis(100));
        assert_eq!(peek_all(&server).expect("peek"), b"");
        // Nor did TCP acknowledge it: once the filter is gone, the sender's
        // retransmission (200 ms and later) brings it.
        socket2::SockRef::from(&server)
            .detach_filter()
            .expect("detach");
        let deadline = Instant::now() + Duration::from_secs(5);
        while peek_all(&server).expect("peek") != b"after\0" {
            assert!(Instant::now() < deadline, "the retransmission never came");
            thread::sleep(Duration::from_millis(20));
        }
    }
}
