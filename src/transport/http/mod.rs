//! GELF over HTTP and HTTPS.
//!
//! Each GELF message is `POST`ed to the endpoint's path (`/gelf` by default,
//! where Graylog's GELF HTTP input listens) and query, if any, with
//! `Content-Type: application/json`: by default one request per message, the
//! frame without its delimiter, one request at a time (so at most one
//! message per round trip). With `with_http_bulk(true)`, one request carries a batch of
//! messages (at most [`BULK_MAX_BYTES`]), one per line, which Graylog's GELF
//! HTTP input accepts when its "Enable Bulk Receiving" option is on. With
//! `with_http_gzip(true)` bodies are gzip-compressed (`Content-Encoding: gzip`).
//!
//! **The client** is hyper's HTTP/1.1, through hyper-util's pooled client: a
//! maintained implementation that keeps connections alive and reuses them, on
//! the exporter's own runtime (the delivery task already runs there). It is
//! given a connector of ours that opens connections with the very code of
//! `tcp://` and `tls://` ([`connect`](crate::transport::connect::connect), [`TlsSettings::handshake`]). So an
//! `https://` endpoint gets exactly the TLS configuration of `tls://` — CA
//! files, built-in roots, client certificate (mutual TLS), the dangerous
//! opt-out — within the same connect and handshake timeouts, and a refused
//! handshake is the same [`Error::Handshake`] naming its
//! [`TlsFailure`](crate::TlsFailure). A ready-made client such as reqwest could
//! take our rustls configuration too, but would report TLS failures through its
//! own error type, losing the named causes (and the TLS 1.3 client-certificate
//! verdict), and would bring more dependencies for features the exporter does
//! not use (redirects, cookies, proxies).
//!
//! **Answers decide.** A request, to the end of the answer, has the connect
//! (and handshake) timeout plus the write timeout, not counting the time a
//! new connection takes to open (at most one opening's limits): its lookup,
//! connect and handshake each have their own limit, and fail with their
//! own names.
//!
//! * 2xx (Graylog answers `202 Accepted`): the messages are delivered.
//! * A connection error, a timeout, a 5xx (but 501 and 505), 429 or 408
//!   answer: the messages not acknowledged go back to the front of the retry
//!   buffer and are sent again, in order, after a backoff — the exponential
//!   backoff with jitter of reconnections, or the server's `Retry-After` (in
//!   seconds or as a date, at most [`RETRY_AFTER_CAP`]) when longer — reset by the next
//!   answer that is not to be retried.
//! * Any other status (4xx; 501 and 505, which say the receiver cannot take
//!   such a request at all; or 3xx: redirects are not followed): sending the
//!   messages again would be refused again, so they are dropped, counted in
//!   `Stats::dropped_rejected`, and reported as [`Error::HttpStatus`] with the
//!   status and the start of the response body; the next messages go on. A
//!   413 (too large) to a bulk request of several messages is the exception:
//!   from then on bulks are at most half that body's size, and the same
//!   messages are sent again, so a receiver's body limit is learnt in a few
//!   requests. The limit is not kept for ever, as the receiver's may be
//!   raised: after [`BULK_GROW_AFTER`] accepted bulks in a row that were
//!   filled to it, it doubles, up to [`BULK_MAX_BYTES`]. Against a receiver
//!   whose limit stays, that costs one 413 (and the bulk sent again) every
//!   [`BULK_GROW_AFTER`] full bulks.
//!
//! **At least once.** Unlike TCP, HTTP acknowledges each request, so a
//! message counts as exported only once its answer came back (told to the
//! delivery task after the first answer past each [`SEND_SLICE`], and read
//! from the link when a shutdown that gave up cuts a send short, so that
//! the answered ones count as exported). A request whose
//! answer is lost (the connection broke, or the answer came too late) is sent
//! again: the receiver may get such messages twice, but none is lost to a
//! failed request (the retry buffer's limits still apply).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

mod body;
mod connector;
mod status;

use crate::config::{redacted, Config, Endpoint, HttpOptions, RESOLVE_TIMEOUT};
use crate::error::{Error, Result, Step};
use crate::frames::FrameRun;
use crate::stats::Counters;
use crate::transport::backoff::Backoff;
use crate::transport::dns::Resolver;
use crate::transport::tls::TlsSettings;
use crate::transport::Rejected;
use connector::{Connector, Opening};

/// Largest body of a bulk request, before compression: as much as the
/// delivery task hands over at once (its chunk; a larger limit would never
/// be reached), within what HTTP servers accept once their limit is raised
/// for bulk.
pub(crate) const BULK_MAX_BYTES: usize = 1024 * 1024;
/// How many accepted bulks in a row, each filled to the limit learnt from a
/// 413 (more messages were waiting than fitted), double that limit, up to
/// [`BULK_MAX_BYTES`]: it grows back gradually once the receiver takes larger
/// bodies again. Only full bulks count, as only they tell that a larger one
/// would have been sent; a smaller one neither counts nor resets the count.
pub(crate) const BULK_GROW_AFTER: u32 = 16;
/// The slowest transfer rate a request is given time for, in bytes per second.
const MIN_BYTES_PER_SEC: u64 = 64 * 1024;
/// Longest wait a `Retry-After` header can impose.
pub(crate) const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);
/// How much of a refusal's body [`Error::HttpStatus`] keeps.
const ERROR_BODY_BYTES: usize = 200;
/// How much of an answer's body is read; a longer one is abandoned with its
/// connection.
const RESPONSE_BODY_LIMIT: usize = 64 * 1024;
/// Longest wait for an answer's body once its status came: the status is
/// the verdict, the body only an error's text (and what lets the connection
/// be used again), so a body that never ends costs the connection, not the
/// records a retry would send twice.
const RESPONSE_BODY_WAIT: Duration = Duration::from_secs(1);
/// An idle connection is closed after this long, before a server (Graylog:
/// 60 s) or a proxy closes it under a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a send goes on before it reports the requests answered so
/// far, when more are to go: so that a flush or a shutdown learns of
/// records delivered while many requests (one per message, without bulk)
/// are still to be sent, rather than after the whole chunk.
const SEND_SLICE: Duration = Duration::from_millis(100);

/// The least a request waits again once granted the time a connection
/// took to open, so that a connection still opening is not polled in a
/// loop.
const OPENING_SLICE: Duration = Duration::from_millis(10);

/// At most one warning about refused records per this period; the others are
/// summed up in the next warning.
const REJECTION_WARN_EVERY: Duration = Duration::from_secs(60);

/// The HTTP client of one endpoint, owned by the delivery task.
pub(crate) struct HttpLink {
    endpoint: Endpoint,
    uri: Uri,
    /// `None` once closed.
    client: Option<Client<Connector, Full<Bytes>>>,
    /// The last connection failure, as the connector saw it.
    connect_error: Arc<Mutex<Option<Error>>>,
    options: HttpOptions,
    /// Added to every request (`with_http_header`).
    headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    /// Time allowed to one request, but what opening a connection takes.
    request_timeout: Duration,
    /// The time the connector spends opening connections.
    opening: Opening,
    /// The most a request is granted for that: one opening's limits (a
    /// connection the client's pool opens in the background, for a
    /// request that then took an idle one, counts too).
    max_opening: Duration,
    /// When the next request may go after failed ones.
    backoff: Backoff,
    /// Largest bulk body; halved by 413 answers, doubled back after
    /// [`BULK_GROW_AFTER`] full bulks accepted in a row.
    bulk_limit: usize,
    /// Bulks filled to `bulk_limit` accepted since it last changed.
    full_bulks_accepted: u32,
    /// What the last `send` refused.
    rejected: Option<Rejected>,
    /// Frames, from the front, the send under way (or the last) is done
    /// with so far: see [`done_so_far`](Self::done_so_far).
    done: usize,
    /// When refused records were last warned about, and how many were refused
    /// since.
    warned_at: Option<Instant>,
    unwarned: u64,
}

/// What one request came to.
enum Answer {
    /// 2xx.
    Accepted,
    /// Refused for good, with the status.
    Refused(Error, u16),
    /// To be sent again, after at least the server's `Retry-After`, if any.
    Failed(Error, Option<Duration>),
}

impl HttpLink {
    /// Prepares the client (and, for `https://`, the TLS configuration: CA
    /// files and client certificate are read here). Connects on first use.
    pub(crate) fn new(config: &Config, counters: Counters) -> Result<HttpLink> {
        HttpLink::with_resolver(config, counters, Resolver::default())
    }

    /// [`new`](Self::new), looking the host up with `resolver`.
    fn with_resolver(config: &Config, counters: Counters, resolver: Resolver) -> Result<HttpLink> {
        let endpoint = config.endpoint.clone();
        let tls = if endpoint.scheme().is_tls() {
            Some(TlsSettings::new(&endpoint, &config.tls)?)
        } else {
            None
        };
        // Path and query as written: `Display` hides the query's values.
        let uri = endpoint.http_uri()?;
        let timeouts = config.timeouts;
        let mut request_timeout = timeouts.connect.saturating_add(timeouts.write);
        let mut max_opening = RESOLVE_TIMEOUT.saturating_add(timeouts.connect);
        if tls.is_some() {
            request_timeout = request_timeout.saturating_add(timeouts.handshake);
            max_opening = max_opening.saturating_add(timeouts.handshake);
        }
        let connect_error = Arc::new(Mutex::new(None));
        let opening = Opening::default();
        let connector = Connector {
            endpoint: endpoint.clone(),
            tls,
            timeouts,
            counters,
            resolver,
            error: Arc::clone(&connect_error),
            opening: opening.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(HttpLink {
            endpoint,
            uri,
            client: Some(client),
            connect_error,
            options: config.http,
            headers: config.http_headers.clone(),
            request_timeout,
            opening,
            max_opening,
            backoff: Backoff::default(),
            bulk_limit: BULK_MAX_BYTES,
            full_bulks_accepted: 0,
            rejected: None,
            done: 0,
            warned_at: None,
            unwarned: 0,
        })
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

    /// Waits out the backoff after a failed request. Connections are opened
    /// (and replaced) by the client as requests need them.
    pub(crate) async fn ready(&mut self) -> Result<()> {
        self.backoff.wait().await;
        self.backoff.went_through();
        if self.client.is_none() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// Posts the frames, one request per message or per
    /// bulk, in order. Returns how many frames, from the front, are done with
    /// (acknowledged, or refused for good: see
    /// [`take_rejected`](HttpLink::take_rejected)), and the error that stopped
    /// the rest, if any. Without an error, it may stop early, after
    /// [`SEND_SLICE`]: the caller sends the rest again.
    pub(crate) async fn send(&mut self, frames: FrameRun<'_>) -> (usize, Result<()>) {
        let started = std::time::Instant::now();
        self.done = 0;
        let mut rest = frames;
        while !rest.is_empty() {
            if self.done > 0 && started.elapsed() >= SEND_SLICE {
                return (self.done, Ok(()));
            }
            let count = if self.options.bulk {
                rest.take_within(self.bulk_limit)
            } else {
                1
            };
            let (group, after) = rest.split_at(count);
            let bytes = group.data().len();
            // The limit, not the messages waiting, cut this bulk.
            let full = self.options.bulk && !after.is_empty();
            match self.post(group).await {
                Answer::Accepted => {
                    self.answered();
                    if full {
                        self.full_bulk_accepted();
                    }
                }
                Answer::Refused(_, 413) if count > 1 => {
                    // Too large for the receiver: smaller bulks from now on,
                    // and these messages again.
                    self.answered();
                    self.bulk_limit = (bytes / 2).max(1);
                    self.full_bulks_accepted = 0;
                    opentelemetry::otel_debug!(
                        name: "djehouty.HttpBulkTooLarge",
                        bulk_limit = self.bulk_limit as u64
                    );
                    continue;
                }
                Answer::Refused(error, _) => {
                    self.answered();
                    self.refuse(count, error);
                }
                Answer::Failed(error, retry_after) => {
                    self.failed(retry_after);
                    return (self.done, Err(error));
                }
            }
            self.done += count;
            rest = after;
        }
        (self.done, Ok(()))
    }

    /// How many frames, from the front, the send under way (or the last)
    /// had answers for (accepted, or refused for good): those of a send cut
    /// short, its future dropped, are done with all the same.
    pub(crate) fn done_so_far(&self) -> usize {
        self.done
    }

    /// How many of the frames the last [`send`](HttpLink::send) reported done
    /// were refused for good, with the last refusal.
    pub(crate) fn take_rejected(&mut self) -> Option<Rejected> {
        self.rejected.take()
    }

    /// Closes the idle connections. Every request has had its answer by now,
    /// so there is nothing to wait for.
    pub(crate) async fn close(&mut self, _limit: Duration) {
        self.client = None;
        tokio::task::yield_now().await;
    }

    /// Sends one request with these frames and reads its answer.
    async fn post(&mut self, frames: FrameRun<'_>) -> Answer {
        let body = match body::body(frames, self.options) {
            Ok(body) => body,
            Err(source) => return Answer::Failed(self.write_error(source), None),
        };
        // A connection error left by an earlier request is not this one's.
        self.connect_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // The whole exchange is timed: the connect, handshake and write
        // timeouts, plus the body's time at a slow but working rate, so a
        // large body on a slow link still gets through.
        let limit = self
            .request_timeout
            .saturating_add(Duration::from_secs(body.len() as u64 / MIN_BYTES_PER_SEC));
        let Some(client) = self.client.as_ref() else {
            return Answer::Failed(Error::ShutDown, None);
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.options.gzip {
            request = request.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        // The user's `User-Agent`, if any, replaces the default: the header
        // is sent once.
        if let Some(headers) = request.headers_mut() {
            headers
                .entry(USER_AGENT)
                .or_insert(HeaderValue::from_static(USER_AGENT_VALUE));
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(error) => return Answer::Failed(self.write_error(io::Error::other(error)), None),
        };
        // The clock stops while a connection opens, up to one opening's
        // limits: when the time is up, what opening took is granted, again
        // and again while it goes on (at least a slice at a time).
        self.opening.restart();
        let started = Instant::now();
        let mut exchange = std::pin::pin!(client.request(request));
        let mut granted = Duration::ZERO;
        let response = loop {
            let mut left = limit
                .saturating_add(granted)
                .saturating_sub(started.elapsed());
            if !granted.is_zero() {
                left = left.max(OPENING_SLICE);
            }
            match tokio::time::timeout(left, exchange.as_mut()).await {
                Ok(Ok(response)) => break response,
                Ok(Err(error)) => return Answer::Failed(self.request_error(error), None),
                Err(_) => {
                    let opening = self.opening.spent().min(self.max_opening);
                    if opening > granted {
                        granted = opening;
                        continue;
                    }
                    let error = Error::Timeout {
                        step: Step::HttpRequest,
                        endpoint: self.endpoint.to_string(),
                        timeout: limit.saturating_add(granted),
                    };
                    return Answer::Failed(error, None);
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = status::retry_after(response.headers());
        // Where a redirect points, shown instead of its body (which says
        // little), its query values hidden.
        let redirect = (300..400)
            .contains(&status)
            .then(|| response.headers().get(LOCATION)?.to_str().ok())
            .flatten()
            .map(|to| {
                // Hidden first, then cut: a cut could split what hides.
                let shown = format!("redirects to {}", redacted(to.trim()));
                snippet(shown.as_bytes(), shown.len() > ERROR_BODY_BYTES)
            });
        // Past the wait, the rest of the body is dropped, and the
        // connection with it.
        let mut head = Vec::new();
        let cut = tokio::time::timeout(
            RESPONSE_BODY_WAIT,
            read_head(response.into_body(), &mut head),
        )
        .await
        .unwrap_or(true);
        if (200..300).contains(&status) {
            return Answer::Accepted;
        }
        let error = Error::HttpStatus {
            endpoint: self.endpoint.to_string(),
            status,
            body: redirect.unwrap_or_else(|| snippet(&head, cut)),
        };
        if status::is_retried(status) {
            Answer::Failed(error, retry_after)
        } else {
            Answer::Refused(error, status)
        }
    }

    /// The endpoint answered: no backoff before the next request.
    fn answered(&mut self) {
        self.backoff.reset();
    }

    /// A bulk filled to the limit was accepted: after [`BULK_GROW_AFTER`] in
    /// a row, the limit doubles (up to [`BULK_MAX_BYTES`]), so that a limit
    /// learnt from a 413 grows back once the receiver takes more.
    fn full_bulk_accepted(&mut self) {
        if self.bulk_limit >= BULK_MAX_BYTES {
            return;
        }
        self.full_bulks_accepted += 1;
        if self.full_bulks_accepted >= BULK_GROW_AFTER {
            self.full_bulks_accepted = 0;
            self.bulk_limit = self.bulk_limit.saturating_mul(2).min(BULK_MAX_BYTES);
            opentelemetry::otel_debug!(
                name: "djehouty.HttpBulkLimitRaised",
                bulk_limit = self.bulk_limit as u64
            );
        }
    }

    /// A request failed: the next one waits a backoff, or what the server asked.
    fn failed(&mut self, retry_after: Option<Duration>) {
        let asked = retry_after.map_or(Duration::ZERO, |d| d.min(RETRY_AFTER_CAP));
        self.backoff.failed_at_least(asked);
    }

    /// Notes records refused for good, and warns about them (at most once a
    /// minute, with the count since the last warning).
    fn refuse(&mut self, records: usize, error: Error) {
        self.unwarned += records as u64;
        let now = Instant::now();
        if self
            .warned_at
            .is_none_or(|at| now.duration_since(at) >= REJECTION_WARN_EVERY)
        {
            opentelemetry::otel_warn!(
                name: "djehouty.RecordsRejected",
                endpoint = self.endpoint.to_string(),
                error = error.to_string(),
                dropped_records = self.unwarned,
                message = "the endpoint refused records for good: they are dropped, not \
                           retried, and counted in dropped_rejected"
            );
            self.warned_at = Some(now);
            self.unwarned = 0;
        }
        match &mut self.rejected {
            Some(rejected) => {
                rejected.records += records;
                rejected.error = error;
            }
            None => self.rejected = Some(Rejected { records, error }),
        }
    }

    /// The error of a request that got no answer.
    fn request_error(&self, error: hyper_util::client::legacy::Error) -> Error {
        if error.is_connect() {
            let seen = self
                .connect_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(error) = seen {
                return error;
            }
            return Error::Connect {
                endpoint: self.endpoint.to_string(),
                source: io::Error::other(error_chain(&error)),
            };
        }
        self.write_error(io::Error::other(error_chain(&error)))
    }

    fn write_error(&self, source: io::Error) -> Error {
        Error::Write {
            endpoint: self.endpoint.to_string(),
            source,
        }
    }
}

/// The `User-Agent` of every request.
const USER_AGENT_VALUE: &str = concat!("djehouty/", env!("CARGO_PKG_VERSION"));

/// Reads an answer's body (at most [`RESPONSE_BODY_LIMIT`] bytes of it),
/// keeping its first bytes in `head`; returns whether there was more.
/// Reading it to the end lets the connection serve the next request.
async fn read_head(mut body: Incoming, head: &mut Vec<u8>) -> bool {
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            total += data.len();
            let room = ERROR_BODY_BYTES.saturating_sub(head.len());
            head.extend_from_slice(&data[..data.len().min(room)]);
            if total > RESPONSE_BODY_LIMIT {
                break;
            }
        }
    }
    total > head.len()
}

/// The start of a body as text: at most [`ERROR_BODY_BYTES`], cut on a
/// character boundary, `...` appended when cut.
fn snippet(head: &[u8], cut: bool) -> String {
    let head = &head[..head.len().min(ERROR_BODY_BYTES)];
    let mut text = match std::str::from_utf8(head) {
        Ok(text) => text.to_string(),
        // A character cut at the end: keep what comes before it.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(head).into_owned(),
    };
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    if cut {
        text.push_str("...");
    }
    text.trim_start().to_string()
}

/// An error and its causes, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many frames of these lengths go into one bulk of `limit` bytes.
    fn bulk_count(lens: &[usize], limit: usize) -> usize {
        crate::frames::take_within(lens, limit).1
    }

    #[test]
    fn bulks_respect_the_limit_but_hold_at_least_one_message() {
        assert_eq!(bulk_count(&[10, 10, 10], 25), 2);
        assert_eq!(bulk_count(&[10, 10, 10], 30), 3);
        assert_eq!(bulk_count(&[100, 10], 25), 1);
        assert_eq!(bulk_count(&[10, 10], 1), 1);
    }

    #[test]
    fn a_learnt_bulk_limit_doubles_after_full_bulks_up_to_the_maximum() {
        use crate::config::ExporterBuilder;
        use crate::encode::Gelf;
        let config = ExporterBuilder::<Gelf>::default()
            .with_endpoint("http://localhost:8080/gelf")
            .with_http_bulk(true)
            .resolve(|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut link =
            HttpLink::new(&config, Counters::default()).unwrap_or_else(|e| panic!("{e}"));
        link.bulk_limit = 3_000;
        for _ in 1..BULK_GROW_AFTER {
            link.full_bulk_accepted();
        }
        assert_eq!(link.bulk_limit, 3_000, "not before {BULK_GROW_AFTER} bulks");
        link.full_bulk_accepted();
        assert_eq!(link.bulk_limit, 6_000);
        link.bulk_limit = BULK_MAX_BYTES - 1;
        for _ in 0..BULK_GROW_AFTER {
            link.full_bulk_accepted();
        }
        assert_eq!(link.bulk_limit, BULK_MAX_BYTES, "capped");
        for _ in 0..BULK_GROW_AFTER {
            link.full_bulk_accepted();
        }
        assert_eq!(link.bulk_limit, BULK_MAX_BYTES);
    }

    #[test]
    fn snippets_are_short_and_cut_on_characters() {
        assert_eq!(snippet(b"  bad request\n", false), "bad request");
        assert_eq!(snippet(b"", false), "");
        // 1 + 2 × 150 bytes: the 200-byte cut falls inside a character.
        let long = format!("a{}", "é".repeat(150));
        let text = snippet(long.as_bytes(), true);
        assert!(text.ends_with("..."), "{text}");
        assert!(text.len() <= ERROR_BODY_BYTES + 3, "{}", text.len());
        assert!(!text.contains('\u{FFFD}'), "{text}");
    }

    #[test]
    fn http_endpoints_come_from_the_environment_too() {
        use crate::config::{ExporterBuilder, Scheme};
        use crate::encode::Gelf;
        let env = |name: &str| {
            (name == "OTEL_EXPORTER_GELF_ENDPOINT")
                .then(|| "http://[::1]:8080/ingest?tenant=blue".to_string())
        };
        let config = ExporterBuilder::<Gelf>::default()
            .with_http_gzip(true)
            .resolve(env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.endpoint.scheme(), Scheme::Http);
        assert!(config.http.gzip && !config.http.bulk);
        let link = HttpLink::new(&config, Counters::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(link.uri.to_string(), "http://[::1]:8080/ingest?tenant=blue");
        assert_eq!(
            link.request_timeout,
            config.timeouts.connect + config.timeouts.write
        );
    }

    /// Opening a connection is left out of a request's time: a host whose
    /// lookup takes longer than the whole request is allowed gets its
    /// request all the same, within the lookup's own limit.
    #[tokio::test]
    async fn a_slow_lookup_is_left_out_of_the_requests_time() {
        use crate::config::ExporterBuilder;
        use crate::encode::Gelf;
        use crate::transport::dns::scripted;
        use djehouty_testkit::http::{accept_all, HttpServer};
        let server = HttpServer::http(accept_all());
        let step = Duration::from_millis(200);
        let config = ExporterBuilder::<Gelf>::default()
            .with_endpoint(format!("http://receiver.test:{}/gelf", server.port()))
            .with_connect_timeout(step)
            .with_write_timeout(step)
            .resolve(|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let address = server.addr();
        // Three times the request's 400 ms, within the lookup's 2 s.
        let (resolver, lookups) = scripted::resolver(Duration::from_secs(2), move |_| {
            scripted::after(Duration::from_millis(1200), Ok(vec![address]))
        });
        let mut link = HttpLink::with_resolver(&config, Counters::default(), resolver)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(link.request_timeout, 2 * step);
        let frame = b"{\"version\":\"1.1\",\"host\":\"h\",\"short_message\":\"m\"}\0";
        let lens = [frame.len()];
        match link.post(FrameRun::new(frame, &lens)).await {
            Answer::Accepted => {}
            Answer::Refused(error, _) | Answer::Failed(error, _) => panic!("{error}"),
        }
        assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(server.accepted().len(), 1);
    }

    #[test]
    fn refusals_say_what_to_check() {
        let error = |status, body: &str| {
            Error::HttpStatus {
                endpoint: "http://graylog:12201/gelf".to_string(),
                status,
                body: body.to_string(),
            }
            .to_string()
        };
        let text = error(400, "Invalid GELF");
        assert!(text.contains("HTTP 400"), "{text}");
        assert!(text.contains("\"Invalid GELF\""), "{text}");
        assert!(text.contains("Bulk Receiving"), "{text}");
        assert!(text.contains("dropped"), "{text}");
        assert!(error(413, "").contains("Max. HTTP chunk size"));
        assert!(error(404, "").contains("/gelf"));
        assert!(error(503, "").contains("sent again"));
        assert!(error(501, "").contains("dropped"));
        assert!(error(505, "").contains("HTTP/1.1"));
        assert!(!error(503, "").contains("\"\""));
    }
}
