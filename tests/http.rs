//! GELF over HTTP and HTTPS against the in-process HTTP server
//! (`support::http`): every field of records sent through `tracing`, one
//! request per message and bulk, gzip, HTTPS with the test CA and with mutual
//! TLS, named TLS failures, retries after 5xx, refusals (4xx, 501, 505)
//! dropped and counted, a receiver's body limit learnt from 413 and unlearnt
//! once it is raised, the endpoint down at start, an answer that comes too
//! late (at least once), an answer whose body never ends (its status still
//! decides), LTSV refused, and an endpoint's query sent with every request
//! but never shown.

use djehouty_testkit as support;

use std::net::SocketAddr;
use std::time::Duration;

use djehouty::{Counters, Error, GelfExporter, GelfExporterBuilder, Stats, TlsFailure};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use serde_json::{Map, Value};
use support::http::{
    accept_all, fail_first, refuse_containing, script, HttpServer, Recorded, Reply, Script,
};
use support::pipeline::*;
use support::{assert_graylog_accepts, TestPki};

const WAIT: Duration = Duration::from_secs(20);

/// A provider with djehouty's batch processor around `builder`'s exporter,
/// and the exporter's counters.
fn start(builder: GelfExporterBuilder) -> (SdkLoggerProvider, Counters) {
    let exporter = builder.build().expect("build the exporter");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    (provider, counters)
}

fn builder(server: &HttpServer) -> GelfExporterBuilder {
    GelfExporter::builder().with_endpoint(server.url("/gelf"))
}

fn parse_all(messages: &[Vec<u8>]) -> Vec<Map<String, Value>> {
    messages.iter().map(|m| assert_graylog_accepts(m)).collect()
}

fn seqs(messages: &[Vec<u8>]) -> Vec<u64> {
    parse_all(messages)
        .iter()
        .map(|f| {
            f.get("_seq")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("no _seq in {f:?}"))
        })
        .collect()
}

/// Logs records numbered `0..n` (field `seq`) through `tracing`.
fn log_numbered(provider: &SdkLoggerProvider, n: u64, padding: usize) {
    let pad = "x".repeat(padding);
    with_tracing(provider, || {
        for seq in 0..n {
            tracing::info!(seq, pad = pad.as_str(), "record {seq}");
        }
    });
}

/// Checks what every request carries.
fn assert_request_shape(request: &Recorded, gzip: bool) {
    assert_eq!(request.method, "POST", "{request:?}");
    assert_eq!(request.path, "/gelf", "{request:?}");
    assert_eq!(
        request.header("content-type"),
        Some("application/json"),
        "{request:?}"
    );
    assert_eq!(
        request.header("content-encoding"),
        gzip.then_some("gzip"),
        "{request:?}"
    );
    assert!(request.header("host").is_some(), "{request:?}");
    assert!(
        !request.body.contains(&0),
        "no NUL delimiter in an HTTP body: {request:?}"
    );
}

#[test]
fn tracing_records_arrive_with_every_field_one_request_each() {
    let server = HttpServer::http(accept_all());
    let (provider, counters) = start(builder(&server).with_extra("X-OVH-TOKEN", "token-1"));
    let logged = log_the_three_records(&provider);
    provider.shutdown().expect("shutdown");

    let requests = server.wait_requests(3, WAIT);
    assert_eq!(requests.len(), 3, "one request per record");
    for request in &requests {
        assert_request_shape(request, false);
        assert_eq!(request.status, 202);
        assert_eq!(request.messages().len(), 1);
        assert!(
            !request.body.ends_with(b"\n"),
            "a single message is sent as is: {request:?}"
        );
    }
    assert_eq!(server.connections(), 1, "one kept-alive connection");
    let frames = parse_all(&server.accepted());

    assert_the_three_records(&frames, &logged);

    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (3, 0), "{stats:?}");
    assert_eq!((stats.connections, stats.failures), (1, 0), "{stats:?}");
}

#[test]
fn bulk_mode_sends_one_request_per_batch() {
    let server = HttpServer::http(accept_all());
    let (provider, counters) = start(builder(&server).with_http_bulk(true));
    const N: u64 = 300;
    log_numbered(&provider, N, 0);
    provider.shutdown().expect("shutdown");

    let messages = server.wait_accepted(N as usize, WAIT);
    assert_eq!(seqs(&messages), (0..N).collect::<Vec<_>>(), "all, in order");
    let requests = server.requests();
    assert!(
        requests.len() <= 10,
        "{} requests for {N} records",
        requests.len()
    );
    for request in &requests {
        assert_request_shape(request, false);
        assert!(request.body.ends_with(b"\n"), "{request:?}");
    }
    assert!(
        requests.iter().any(|r| r.messages().len() > 1),
        "bulk requests hold several messages"
    );
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (N, 0), "{stats:?}");
}

#[test]
fn gzip_bodies_per_message_and_in_bulk() {
    for bulk in [false, true] {
        let server = HttpServer::http(accept_all());
        let (provider, counters) =
            start(builder(&server).with_http_gzip(true).with_http_bulk(bulk));
        const N: u64 = 40;
        log_numbered(&provider, N, 300);
        provider.shutdown().expect("shutdown");

        let messages = server.wait_accepted(N as usize, WAIT);
        assert_eq!(seqs(&messages), (0..N).collect::<Vec<_>>(), "bulk {bulk}");
        let requests = server.requests();
        if !bulk {
            assert_eq!(requests.len(), N as usize);
        }
        for request in &requests {
            assert_request_shape(request, true);
            assert!(
                request.wire_bytes < request.body.len(),
                "compressed: {} bytes on the wire for {}",
                request.wire_bytes,
                request.body.len()
            );
        }
        assert_eq!(counters.snapshot().exported, N);
    }
}

#[test]
fn https_with_the_test_ca() {
    let pki = TestPki::generate();
    let server = HttpServer::https(&pki, false, accept_all());
    let (provider, counters) = start(
        builder(&server)
            .with_ca_file(&pki.ca_pem)
            .with_builtin_roots(false),
    );
    const N: u64 = 20;
    log_numbered(&provider, N, 0);
    provider.shutdown().expect("shutdown");

    let messages = server.wait_accepted(N as usize, WAIT);
    assert_eq!(seqs(&messages), (0..N).collect::<Vec<_>>());
    for request in server.requests() {
        assert_request_shape(&request, false);
        assert!(!request.client_certificate);
    }
    assert_eq!(server.connections(), 1, "one kept-alive TLS connection");
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.connections), (N, 1), "{stats:?}");
}

#[test]
fn https_with_mutual_tls() {
    let pki = TestPki::generate();
    let server = HttpServer::https(&pki, true, accept_all());
    let (provider, counters) = start(
        builder(&server)
            .with_ca_file(&pki.ca_pem)
            .with_builtin_roots(false)
            .with_client_certificate(&pki.client_cert_pem, &pki.client_key_pem),
    );
    log_numbered(&provider, 5, 0);
    provider.shutdown().expect("shutdown");

    let messages = server.wait_accepted(5, WAIT);
    assert_eq!(seqs(&messages), vec![0, 1, 2, 3, 4]);
    assert!(server.requests().iter().all(|r| r.client_certificate));
    assert_eq!(counters.snapshot().exported, 5);
}

/// The refused handshake's cause, from the counters' last error.
fn tls_failure(stats: &Stats) -> Option<TlsFailure> {
    match stats.last_error.as_deref() {
        Some(Error::Handshake { failure, .. }) => Some(*failure),
        _ => None,
    }
}

#[test]
fn https_names_tls_failures_like_tls() {
    let pki = TestPki::generate();
    let other = TestPki::generate_other();

    // A server whose certificate comes from a CA we do not trust.
    let server = HttpServer::https(&pki, false, accept_all());
    let (provider, counters) = start(
        builder(&server)
            .with_ca_file(&other.ca_pem)
            .with_builtin_roots(false),
    );
    log_numbered(&provider, 1, 0);
    let stats = wait_stats(&counters, "a refused handshake", |s| s.failures >= 1);
    assert_eq!(
        tls_failure(&stats),
        Some(TlsFailure::UnknownIssuer),
        "{stats:?}"
    );
    let text = stats
        .last_error
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(text.contains("with_ca_file"), "{text}");
    assert!(provider
        .shutdown_with_timeout(Duration::from_millis(300))
        .is_err());
    assert!(
        server.requests().is_empty(),
        "nothing sent without verified TLS"
    );

    // A server that requires a client certificate we do not have.
    let server = HttpServer::https(&pki, true, accept_all());
    let (provider, counters) = start(
        builder(&server)
            .with_ca_file(&pki.ca_pem)
            .with_builtin_roots(false),
    );
    log_numbered(&provider, 1, 0);
    let stats = wait_stats(&counters, "a refused handshake", |s| s.failures >= 1);
    assert_eq!(
        tls_failure(&stats),
        Some(TlsFailure::ClientCertificateRequired),
        "{stats:?}"
    );
    assert!(provider
        .shutdown_with_timeout(Duration::from_millis(300))
        .is_err());
    assert!(server.requests().is_empty());
}

#[test]
fn server_errors_are_retried_in_order_none_lost() {
    for bulk in [false, true] {
        let server = HttpServer::http(fail_first(3, 503));
        let (provider, counters) = start(builder(&server).with_http_bulk(bulk));
        const N: u64 = 50;
        log_numbered(&provider, N, 0);
        server.wait_accepted(N as usize, WAIT);
        provider.shutdown().expect("shutdown");
        // Everything the server took, the shutdown's last sends included.
        let messages = server.accepted();

        assert_eq!(
            seqs(&messages),
            (0..N).collect::<Vec<_>>(),
            "bulk {bulk}: every record, in order, once"
        );
        let requests = server.requests();
        assert_eq!(
            requests.iter().filter(|r| r.status == 503).count(),
            3,
            "{requests:?}"
        );
        // The refused requests were sent again, from the first unacknowledged record.
        assert_eq!(seqs(&requests[0].messages())[0], 0);
        assert_eq!(seqs(&requests[3].messages())[0], 0);
        let stats = counters.snapshot();
        assert_eq!(stats.failures, 3, "{stats:?}");
        assert_eq!((stats.exported, stats.dropped()), (N, 0), "{stats:?}");
        match stats.last_error.as_deref() {
            Some(Error::HttpStatus { status: 503, .. }) => {}
            other => panic!("last error {other:?}"),
        }
    }
}

/// Three records, the middle one refused by the receiver with `status` and
/// `body`: it is dropped, counted and reported, not sent again; the others
/// arrive; the shutdown does not count it as undelivered.
fn assert_refusal_dropped(status: u16, body: &str) {
    let server = HttpServer::http(refuse_containing("poison", status, body));
    let (provider, counters) = start(builder(&server));
    with_tracing(&provider, || {
        tracing::info!(seq = 0_u64, "ok before");
        tracing::info!(seq = 1_u64, "poison");
        tracing::info!(seq = 2_u64, "ok after");
    });
    provider
        .shutdown()
        .expect("shutdown: a refusal is not an undelivered record");

    let messages = server.wait_accepted(2, WAIT);
    assert_eq!(seqs(&messages), vec![0, 2], "{status}");
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        3,
        "{status}: the refused record is not sent again: {requests:?}"
    );
    assert_eq!(requests[1].status, status);
    let stats = counters.snapshot();
    assert_eq!(stats.exported, 2, "{stats:?}");
    assert_eq!(stats.dropped_rejected, 1, "{stats:?}");
    assert_eq!(stats.dropped(), 1, "{stats:?}");
    assert_eq!(stats.failures, 0, "a refusal is not a failure: {stats:?}");
    let error = stats.last_error.expect("the refusal is kept");
    match &*error {
        Error::HttpStatus {
            status: kept,
            body: kept_body,
            ..
        } => {
            assert_eq!(*kept, status);
            assert_eq!(kept_body, body);
        }
        other => panic!("last error {other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains(&format!("HTTP {status}")), "{text}");
    assert!(text.contains(body), "{text}");
    assert!(text.contains("dropped"), "{text}");
}

#[test]
fn refusals_are_dropped_counted_and_not_retried() {
    assert_refusal_dropped(400, "field _poison rejected by the input");
}

#[test]
fn permanent_server_errors_are_dropped_counted_and_not_retried() {
    // 501 (not implemented) and 505 (HTTP version not supported) would be
    // answered again: refusals, like 400, not failures to retry.
    for status in [501, 505] {
        assert_refusal_dropped(status, "not here");
    }
}

#[test]
fn bulk_learns_the_receivers_body_limit_from_413() {
    const LIMIT: usize = 4_000;
    let server = HttpServer::http(script(|_, request| {
        if request.body.len() > LIMIT {
            Reply::status(413).with_body("Request Entity Too Large")
        } else {
            Reply::status(202)
        }
    }));
    let (provider, counters) = start(builder(&server).with_http_bulk(true));
    const N: u64 = 100;
    log_numbered(&provider, N, 300);
    provider.shutdown().expect("shutdown");

    let messages = server.wait_accepted(N as usize, WAIT);
    assert_eq!(seqs(&messages), (0..N).collect::<Vec<_>>());
    let requests = server.requests();
    let refused = requests.iter().filter(|r| r.status == 413).count();
    assert!(refused >= 1, "the first bulk was too large");
    assert!(
        refused <= 10,
        "the limit is learnt, not hit every time: {refused}"
    );
    assert!(requests
        .iter()
        .any(|r| r.accepted() && r.messages().len() > 1));
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (N, 0), "{stats:?}");
}

/// Full bulks accepted in a row before a limit learnt from 413 doubles
/// (`BULK_GROW_AFTER` in the HTTP transport).
const BULK_GROW_AFTER: usize = 16;

#[test]
fn bulk_limit_learnt_from_413_grows_back_once_the_receiver_takes_more() {
    const LIMIT: usize = 4_000;
    // The receiver refuses bodies over LIMIT in its first requests (enough
    // to learn the limit from bulks of up to a MiB, halved at each
    // refusal), then its limit is raised.
    const STRICT: usize = 20;
    let server = HttpServer::http(script(|index, request| {
        if index < STRICT && request.body.len() > LIMIT {
            Reply::status(413).with_body("Request Entity Too Large")
        } else {
            Reply::status(202)
        }
    }));
    let (provider, counters) = start(builder(&server).with_http_bulk(true));
    const N: u64 = 1_500;
    log_numbered(&provider, N, 300);
    provider.shutdown().expect("shutdown");

    let messages = server.wait_accepted(N as usize, WAIT);
    assert_eq!(seqs(&messages), (0..N).collect::<Vec<_>>(), "all, in order");
    let requests = server.requests();
    let sizes: Vec<(u16, usize)> = requests.iter().map(|r| (r.status, r.body.len())).collect();
    let last_refused = requests
        .iter()
        .rposition(|r| r.status == 413)
        .expect("the first bulks were too large");
    assert!(last_refused < STRICT, "{sizes:?}");
    // The limit learnt: half the last refused body (over LIMIT), each frame
    // being much smaller.
    let learnt = requests[last_refused].body.len() / 2;
    let after = &requests[last_refused + 1..];
    assert!(after.iter().all(Recorded::accepted), "{sizes:?}");

    // Kept for BULK_GROW_AFTER requests, then doubled, then doubled again:
    // it grows back gradually, not at once.
    assert!(after.len() > BULK_GROW_AFTER, "{sizes:?}");
    assert!(
        after[..BULK_GROW_AFTER]
            .iter()
            .all(|r| r.body.len() <= learnt),
        "the learnt limit holds for {BULK_GROW_AFTER} bulks: {sizes:?}"
    );
    let beyond_twice = after
        .iter()
        .position(|r| r.body.len() > 2 * learnt)
        .unwrap_or_else(|| panic!("the limit grows back past twice {learnt}: {sizes:?}"));
    let doubled = after[..beyond_twice]
        .iter()
        .filter(|r| r.body.len() > learnt)
        .count();
    assert!(
        doubled >= BULK_GROW_AFTER,
        "{BULK_GROW_AFTER} bulks at twice the learnt limit first: {sizes:?}"
    );
    // Past the receiver's old limit, with more records per request.
    assert!(after[beyond_twice].body.len() > LIMIT, "{sizes:?}");
    let records = |requests: &[Recorded]| requests.iter().map(|r| r.messages().len()).max();
    assert!(
        records(&after[beyond_twice..]) > records(&after[..BULK_GROW_AFTER]),
        "more records per request once grown: {sizes:?}"
    );
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (N, 0), "{stats:?}");
}

/// A loopback port nothing listens on, that no other test can take before
/// it is bound (see `support::unused_port`).
fn free_port() -> SocketAddr {
    support::unused_port()
}

#[test]
fn endpoint_down_at_start_then_up_delivers_everything_in_order() {
    let addr = free_port();
    let (provider, counters) =
        start(GelfExporter::builder().with_endpoint(format!("http://{addr}/gelf")));
    const N: u64 = 100;
    log_numbered(&provider, N, 0);
    let stats = wait_stats(&counters, "failed connections", |s| s.failures >= 2);
    assert_eq!(stats.exported, 0);
    assert!(
        matches!(stats.last_error.as_deref(), Some(Error::Connect { .. })),
        "{stats:?}"
    );
    let server = HttpServer::bind(addr, None, accept_all()).expect("bind the server late");
    let messages = server.wait_accepted(N as usize, WAIT);
    provider.shutdown().expect("shutdown");
    assert_eq!(seqs(&messages), (0..N).collect::<Vec<_>>());
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (N, 0), "{stats:?}");
    assert_eq!(stats.buffered_records, 0);
}

#[test]
fn an_answer_that_comes_too_late_means_the_record_is_sent_again() {
    // The first request is answered after the exporter gave up on it.
    let server = HttpServer::http(script(|index, _| {
        let reply = Reply::status(202);
        if index == 0 {
            reply.after(Duration::from_millis(1500))
        } else {
            reply
        }
    }));
    let (provider, counters) = start(
        builder(&server)
            .with_connect_timeout(Duration::from_millis(300))
            .with_write_timeout(Duration::from_millis(300)),
    );
    log_numbered(&provider, 3, 0);
    server.wait_accepted(4, WAIT);
    provider.shutdown().expect("shutdown");
    let messages = server.accepted();
    // At least once: the receiver got record 0 twice, and lost nothing.
    assert_eq!(seqs(&messages), vec![0, 0, 1, 2]);
    let stats = counters.snapshot();
    assert_eq!(stats.exported, 3, "{stats:?}");
    assert!(stats.failures >= 1, "{stats:?}");
    match stats.last_error.as_deref() {
        Some(error @ Error::Timeout { step, .. }) => {
            assert_eq!(*step, djehouty::Step::HttpRequest);
            // What to expect and what to do.
            let text = error.to_string();
            assert!(
                text.contains("sent again") && text.contains("with_write_timeout"),
                "{text}"
            );
        }
        other => panic!("last error {other:?}"),
    }
}

/// A receiver that answers each request `202` with a body it never
/// finishes (10 bytes announced, 5 sent), then keeps the connection open
/// without a word: the bodies of the requests it got, in order.
struct EndlessBodies {
    addr: SocketAddr,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl EndlessBodies {
    fn start() -> EndlessBodies {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(WAIT));
                    let mut reader = BufReader::new(&stream);
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end().to_ascii_lowercase();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(value) = line.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(body);
                    let mut stream = &stream;
                    let _ = stream
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 10\r\n\r\nhello");
                    // Silent until the client gives up on the body.
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest);
                });
            }
        });
        EndlessBodies { addr, bodies }
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// An answer whose status came but whose body never ends is still an
/// answer: the records count as exported, none is sent again, and the next
/// request goes out on a new connection.
#[test]
fn a_status_whose_body_never_ends_still_decides() {
    let receiver = EndlessBodies::start();
    let (provider, counters) = start(
        GelfExporter::builder()
            .with_endpoint(format!("http://{}/gelf", receiver.addr))
            .with_connect_timeout(Duration::from_millis(300))
            .with_write_timeout(Duration::from_millis(300)),
    );
    log_numbered(&provider, 3, 0);
    let stats = wait_stats(&counters, "three records exported", |s| s.exported >= 3);
    provider.shutdown().expect("shutdown");
    assert_eq!((stats.exported, stats.failures), (3, 0), "{stats:?}");
    assert_eq!(seqs(&receiver.bodies()), vec![0, 1, 2], "each sent once");
}

#[test]
fn ltsv_over_http_and_http_options_elsewhere_are_refused_at_build() {
    for endpoint in ["http://127.0.0.1:1/gelf", "https://localhost:1/gelf"] {
        let error = djehouty::LtsvExporter::builder()
            .with_endpoint(endpoint)
            .build()
            .expect_err("LTSV over HTTP");
        assert!(
            error.to_string().contains("HTTP carries GELF only"),
            "{error}"
        );
    }
    for (bulk, gzip, method) in [
        (true, false, "with_http_bulk"),
        (false, true, "with_http_gzip"),
    ] {
        let error = GelfExporter::builder()
            .with_endpoint("tcp://127.0.0.1:1")
            .with_http_bulk(bulk)
            .with_http_gzip(gzip)
            .build()
            .expect_err("HTTP options on a TCP endpoint");
        assert!(error.to_string().contains(method), "{error}");
    }
}

#[test]
fn an_explicit_framing_is_refused_for_http_at_build() {
    // A request carries its own boundaries: a framing would be ignored.
    for endpoint in ["http://127.0.0.1:1/gelf", "https://localhost:1/gelf"] {
        let error = GelfExporter::builder()
            .with_endpoint(endpoint)
            .with_framing(djehouty::Framing::Newline)
            .build()
            .expect_err("a framing over HTTP");
        assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
        assert!(error.to_string().contains("with_framing"), "{error}");
    }
}

#[test]
fn direct_processor_delivers_in_order_in_bulk() {
    let server = HttpServer::http(accept_all());
    let exporter = builder(&server)
        .with_http_bulk(true)
        .build()
        .expect("build the exporter");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    log_numbered(&provider, 2_000, 100);
    provider.shutdown().expect("shutdown");
    let messages = server.wait_accepted(2_000, WAIT);
    assert_eq!(seqs(&messages), (0..2_000).collect::<Vec<_>>());
    assert!(
        server.requests().len() < 2_000,
        "bulk requests carry several records"
    );
    assert_eq!(counters.snapshot().exported, 2_000);
}

/// A redirect is not followed: its records are dropped, counted, and the
/// error says where it points, the query's values hidden.
#[test]
fn a_redirect_is_refused_and_says_where_it_points() {
    // Where it points: a loopback server that takes anything, and must
    // get nothing.
    let target = HttpServer::http(accept_all());
    let location = format!("http://127.0.0.1:{}/gelf?token=S3cret", target.port());
    let server = HttpServer::http(script(move |_, _| {
        Reply::status(301)
            .with_header("Location", &location)
            .with_body("<html>moved</html>")
    }));
    let error = refusal(&server, 2);
    let shown = format!(
        "redirects to http://127.0.0.1:{}/gelf?token=***",
        target.port()
    );
    assert!(
        error.contains("HTTP 301") && error.contains(&shown),
        "{error}"
    );
    assert!(!error.contains("S3cret"), "{error}");
    assert_eq!(target.requests().len(), 0, "the redirect was followed");
    // However long, it is shown cut, as a body would be.
    let server = HttpServer::http(script(|_, _| {
        let far = format!("http://127.0.0.1:9/{}", "a".repeat(20_000));
        Reply::status(302).with_header("Location", &far)
    }));
    let error = refusal(&server, 1);
    assert!(
        error.contains("redirects to http://127.0.0.1:9/aaa"),
        "{error}"
    );
    assert!(error.len() < 1_000, "{} bytes", error.len());
}

/// A receiver that wants `Authorization: Bearer s3cr3t`, as a Graylog HTTP
/// input set to require an authorization header does.
fn requires_authorization() -> Script {
    script(|_, request| {
        if request.header("authorization") == Some("Bearer s3cr3t") {
            Reply::status(202)
        } else {
            Reply::status(401).with_body("Unauthorized")
        }
    })
}

#[test]
fn configured_headers_are_sent_with_every_request() {
    let server = HttpServer::http(requires_authorization());
    let (provider, counters) = start(
        builder(&server)
            .with_http_header("Authorization", "Bearer s3cr3t")
            .with_http_header("X-Tenant", "blue"),
    );
    log_numbered(&provider, 20, 0);
    provider.shutdown().expect("shutdown");
    let messages = server.wait_accepted(20, WAIT);
    assert_eq!(seqs(&messages), (0..20).collect::<Vec<_>>());
    for request in server.requests() {
        assert_eq!(request.header("x-tenant"), Some("blue"), "{request:?}");
        assert_request_shape(&request, false);
        let agents: Vec<_> = request
            .headers
            .iter()
            .filter(|(name, _)| name == "user-agent")
            .collect();
        assert_eq!(agents.len(), 1, "{request:?}");
        assert!(agents[0].1.starts_with("djehouty/"), "{request:?}");
    }
    assert_eq!(counters.snapshot().dropped_rejected, 0);
}

/// A `User-Agent` the user sets replaces the exporter's: one is sent.
#[test]
fn a_user_agent_set_replaces_the_default() {
    let server = HttpServer::http(accept_all());
    let (provider, _) = start(builder(&server).with_http_header("User-Agent", "billing/2.1"));
    log_numbered(&provider, 3, 0);
    provider.shutdown().expect("shutdown");
    server.wait_accepted(3, WAIT);
    for request in server.requests() {
        let agents: Vec<_> = request
            .headers
            .iter()
            .filter(|(name, _)| name == "user-agent")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(agents, ["billing/2.1"], "{request:?}");
    }
}

/// Logs `n` records to `server`, which refuses them all; returns the
/// error kept for them, once each was dropped and counted as refused.
fn refusal(server: &HttpServer, n: u64) -> String {
    let (provider, counters) = start(builder(server));
    log_numbered(&provider, n, 0);
    provider
        .shutdown()
        .expect("shutdown: refusals are not undelivered records");
    server.wait_requests(n as usize, WAIT);
    let stats = counters.snapshot();
    assert_eq!(
        (stats.exported, stats.dropped_rejected),
        (0, n),
        "{stats:?}"
    );
    stats.last_error.expect("the refusal is kept").to_string()
}

#[test]
fn a_missing_authorization_is_reported_with_what_to_do() {
    let server = HttpServer::http(requires_authorization());
    let error = refusal(&server, 3);
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(error.contains("with_http_header"), "{error}");
}

#[test]
fn the_query_of_the_endpoint_is_sent_but_never_shown() {
    let server = HttpServer::http(refuse_containing("poison", 400, "refused"));
    let url = server.url("/gelf?x=1&token=S3cret-token");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let exporter = GelfExporter::builder()
        .with_endpoint(&url)
        .build()
        .expect("build the exporter");
    let shown = format!("{} {:?}", exporter.endpoint(), exporter.endpoint());
    assert!(!shown.contains("S3cret"), "{shown}");
    assert!(shown.contains("/gelf?x=***&token=***"), "{shown}");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    with_tracing(&provider, || {
        tracing::info!(seq = 0_u64, "ok before");
        tracing::info!(seq = 1_u64, "poison");
        tracing::info!(seq = 2_u64, "ok after");
    });
    provider.shutdown().expect("shutdown");

    let messages = server.wait_accepted(2, WAIT);
    assert_eq!(seqs(&messages), vec![0, 2]);
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for request in &requests {
        assert_eq!(request.path, "/gelf?x=1&token=S3cret-token", "{request:?}");
        let host = server.addr().to_string();
        assert_eq!(request.header("host"), Some(host.as_str()), "{request:?}");
    }
    // The refusal's error names the endpoint, its query hidden.
    let error = counters.snapshot().last_error.expect("the refusal is kept");
    let text = format!("{error} {error:?}");
    assert!(
        matches!(*error, Error::HttpStatus { status: 400, .. }),
        "{text}"
    );
    assert!(!text.contains("S3cret"), "{text}");
    assert!(text.contains("token=***"), "{text}");
}

/// A shutdown that runs out of time while requests, one per message, are
/// still being answered counts those answered as exported, not dropped:
/// the link reports what it did every slice of time, and a send cut short
/// what was answered within its slice.
#[test]
fn a_shutdown_cut_short_counts_the_records_already_answered_as_exported() {
    // About twenty answers a slice (100 ms), more than the time allows.
    const N: u64 = 1000;
    let server = HttpServer::http(script(|_, _| {
        Reply::status(202).after(Duration::from_millis(5))
    }));
    let (provider, counters) = start(builder(&server));
    log_numbered(&provider, N, 0);
    let _ = provider.shutdown_with_timeout(Duration::from_millis(1500));
    let stats = counters.snapshot();
    let answered = server.accepted().len() as u64;
    assert!(stats.exported > 0, "{stats:?}");
    assert_eq!(stats.exported + stats.dropped_at_shutdown, N, "{stats:?}");
    // The server counts the request whose answer the shutdown cut off.
    assert!(
        answered >= stats.exported && answered - stats.exported <= 1,
        "{answered} answered, {stats:?}"
    );
}
