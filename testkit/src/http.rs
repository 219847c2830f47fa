//! An in-process HTTP/1.1 server, built on hyper, that records every request
//! and answers as a test scripts it.
//!
//! [`HttpServer`] listens on a loopback address (an ephemeral port, or a given
//! one to come up late on a port an exporter already targets), plain or with
//! TLS (tokio-rustls, with the test PKI of [`super::certs`], optionally
//! requiring a client certificate). It runs on its own thread and tokio
//! runtime, keeps connections alive, and stops — closing every connection —
//! when dropped.
//!
//! Each request is recorded ([`Recorded`]): method, path, headers, body
//! (gzip bodies decompressed), the size on the wire, whether the client showed
//! a certificate, and the status it was answered. A [`Script`] chooses each
//! answer from the request and its number: [`accept_all`] (`202 Accepted`, as
//! Graylog), [`fail_first`], [`refuse_containing`], or any closure. Bulk
//! bodies split into messages on newlines ([`Recorded::messages`]).
//!
//! Waits are bounded and panic with what did arrive.

use std::convert::Infallible;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::certs::{TestPki, TlsVersions};
use super::{show_bytes, wait_for};

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Its number, from 0, in the order the server read them.
    pub index: usize,
    /// The number, from 0, of the connection it came on.
    pub connection: usize,
    /// `POST`, ...
    pub method: String,
    /// The request's path (and query, if any).
    pub path: String,
    /// Every header, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body, decompressed when `Content-Encoding: gzip`.
    pub body: Vec<u8>,
    /// The size of the body as sent.
    pub wire_bytes: usize,
    /// Whether the client presented a TLS client certificate.
    pub client_certificate: bool,
    /// The status it was answered with.
    pub status: u16,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The GELF messages of the body: one, or one per non-empty line.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.body
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Whether the server answered 2xx.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// A reply with this status and no body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: String::new(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// The same reply with a body.
    pub fn with_body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }

    /// The same reply with a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same reply, sent only after `delay`.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Chooses the answer to each request (given its number and itself).
pub type Script = Arc<dyn Fn(usize, &Recorded) -> Reply + Send + Sync>;

/// Wraps a closure as a [`Script`].
pub fn script(f: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static) -> Script {
    Arc::new(f)
}

/// Answers every request `202 Accepted`, as Graylog's GELF HTTP input does.
pub fn accept_all() -> Script {
    script(|_, _| Reply::status(202))
}

/// Answers the first `n` requests with `status`, then `202`.
pub fn fail_first(n: usize, status: u16) -> Script {
    script(move |index, _| Reply::status(if index < n { status } else { 202 }))
}

/// Answers requests whose body contains `needle` with `status` and `body`, the
/// others with `202`.
pub fn refuse_containing(needle: &str, status: u16, body: &str) -> Script {
    let needle = needle.as_bytes().to_vec();
    let body = body.to_string();
    script(move |_, request| {
        let hit = request.body.windows(needle.len()).any(|w| w == needle);
        if hit {
            Reply::status(status).with_body(body.clone())
        } else {
            Reply::status(202)
        }
    })
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    connections: usize,
    errors: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    script: Script,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, error: String) {
        self.lock().errors.push(error);
        self.changed.notify_all();
    }
}

/// The server; stops when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// A plain HTTP server on 127.0.0.1 and a free port.
    pub fn http(script: Script) -> HttpServer {
        HttpServer::bind(loopback(), None, script).expect("start the HTTP server")
    }

    /// An HTTPS server presenting the PKI's `localhost` certificate (TLS 1.2
    /// and 1.3); with `mtls`, every client must present a certificate issued
    /// by the PKI's CA.
    pub fn https(pki: &TestPki, mtls: bool, script: Script) -> HttpServer {
        let config = if mtls {
            pki.server_config_mtls(TlsVersions::Both)
        } else {
            pki.server_config(TlsVersions::Both)
        };
        HttpServer::bind(loopback(), Some(config), script).expect("start the HTTPS server")
    }

    /// A server on `addr`, which must be a loopback address (port 0 picks a
    /// free port; a fixed one lets a server come up where an exporter already
    /// sends). With `tls`, connections are served over rustls.
    pub fn bind(
        addr: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
        script: Script,
    ) -> io::Result<HttpServer> {
        assert!(
            addr.ip().is_loopback(),
            "test servers listen on loopback addresses only, not {addr}"
        );
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            script,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let is_tls = tls.is_some();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("http-server-{}", addr.port()))
                .spawn(move || {
                    runtime.block_on(accept_loop(listener, tls, shared, stopped));
                    // Dropping the runtime ends every connection task.
                })?
        };
        Ok(HttpServer {
            addr,
            tls: is_tls,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The endpoint URL of `path` on this server, by IP address
    /// (`http://127.0.0.1:PORT/path`, or `https://localhost:PORT/path` over TLS,
    /// the name the test certificate holds).
    pub fn url(&self, path: &str) -> String {
        if self.tls {
            format!("https://localhost:{}{path}", self.port())
        } else {
            format!("http://{}{path}", self.addr)
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The messages of the requests answered 2xx, in order.
    pub fn accepted(&self) -> Vec<Vec<u8>> {
        accepted(&self.shared.lock())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// Failed handshakes, unreadable bodies, broken connections.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// Waits until `n` messages were accepted (answered 2xx); returns them all.
    pub fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let state = self.wait(
            timeout,
            |s| accepted(s).len() >= n,
            || format!("{n} accepted messages"),
        );
        accepted(&state)
    }

    /// Waits until `n` requests arrived; returns them all.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let state = self.wait(
            timeout,
            |s| s.requests.len() >= n,
            || format!("{n} requests"),
        );
        state.requests.clone()
    }

    fn wait(
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
                let shown: Vec<String> = state
                    .requests
                    .iter()
                    .map(|r| {
                        format!(
                            "#{} {} {}: {}",
                            r.index,
                            r.status,
                            r.path,
                            show_bytes(&r.body)
                        )
                    })
                    .collect();
                format!(
                    "timed out after {timeout:?} waiting for {}: {} request(s) on {} \
                 connection(s), errors {:?}:\n{}",
                    what(),
                    state.requests.len(),
                    state.connections,
                    state.errors,
                    shown.join("\n")
                )
            },
        )
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn accepted(state: &State) -> Vec<Vec<u8>> {
    state
        .requests
        .iter()
        .filter(|r| r.accepted())
        .flat_map(Recorded::messages)
        .collect()
}

async fn accept_loop(
    listener: std::net::TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return shared.error(format!("listen: {e}")),
    };
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let (tcp, _) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        shared.error(format!("accept: {e}"));
                        continue;
                    }
                };
                let connection = {
                    let mut state = shared.lock();
                    state.connections += 1;
                    state.connections - 1
                };
                shared.changed.notify_all();
                let shared = Arc::clone(&shared);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(TokioIo::new(tcp), shared, connection, false).await,
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(stream) => {
                                let client_certificate = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .is_some_and(|certs| !certs.is_empty());
                                serve(TokioIo::new(stream), shared, connection, client_certificate)
                                    .await
                            }
                            Err(e) => shared.error(format!("TLS handshake: {e}")),
                        },
                    }
                });
            }
        }
    }
}

async fn serve<I>(io: I, shared: Arc<Shared>, connection: usize, client_certificate: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |request| {
            handle(request, Arc::clone(&shared), connection, client_certificate)
        })
    };
    if let Err(e) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await
    {
        shared.error(format!("connection {connection}: {e}"));
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    connection: usize,
    client_certificate: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let gzip = headers
        .iter()
        .any(|(n, v)| n == "content-encoding" && v.eq_ignore_ascii_case("gzip"));
    let wire = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            shared.error(format!("read a body: {e}"));
            return Ok(answer(&Reply::status(400).with_body("unreadable body")));
        }
    };
    let body = if gzip {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&wire[..]).read_to_end(&mut out) {
            Ok(_) => out,
            Err(e) => {
                shared.error(format!("gunzip a body: {e}"));
                return Ok(answer(&Reply::status(400).with_body("bad gzip")));
            }
        }
    } else {
        wire.to_vec()
    };
    let reply = {
        let mut state = shared.lock();
        let mut recorded = Recorded {
            index: state.requests.len(),
            connection,
            method,
            path,
            headers,
            body,
            wire_bytes: wire.len(),
            client_certificate,
            status: 0,
        };
        let reply = (shared.script)(recorded.index, &recorded);
        recorded.status = reply.status;
        state.requests.push(recorded);
        reply
    };
    shared.changed.notify_all();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    Ok(answer(&reply))
}

fn answer(reply: &Reply) -> Response<Full<Bytes>> {
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response
        .body(Full::new(Bytes::from(reply.body.clone())))
        .expect("a valid scripted response")
}
