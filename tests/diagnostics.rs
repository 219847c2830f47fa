//! The exporter's own diagnostics, as the OpenTelemetry internal logs carry
//! them: an outage reports its first failure and its first drop, counts the
//! rest, and sums them up when delivery recovers. In a test binary of their
//! own because they install a global subscriber, and they take turns.

use djehouty_testkit as support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use djehouty::GelfExporter;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use support::diagnostics::{Capture, Diagnostic};
use support::http::{script, HttpServer, Reply};
use support::pipeline::wait_stats;
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(20);

/// The one subscriber of this binary, installed by the first test to ask,
/// emptied for each: the tests take turns (the guard), since some of the
/// exporter's events do not name their endpoint.
fn capture() -> (MutexGuard<'static, ()>, Capture) {
    static TURN: Mutex<()> = Mutex::new(());
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let capture = CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        tracing_subscriber::registry().with(capture.clone()).init();
        capture
    });
    capture.clear();
    (turn, capture.clone())
}

fn log(provider: &SdkLoggerProvider, from: u64, to: u64) {
    let logger = provider.logger("diagnostics");
    for seq in from..to {
        let mut record = logger.create_log_record();
        record.set_body(format!("record {seq} {}", "x".repeat(200)).into());
        logger.emit(record);
    }
}

#[test]
fn an_outage_is_reported_once_and_summed_up_when_delivery_recovers() {
    let (_turn, capture) = capture();

    // The endpoint answers 503 while the outage lasts.
    let outage = Arc::new(AtomicBool::new(true));
    let server = {
        let outage = Arc::clone(&outage);
        HttpServer::http(script(move |_, _| {
            Reply::status(if outage.load(Ordering::SeqCst) {
                503
            } else {
                202
            })
        }))
    };
    let exporter = GelfExporter::builder()
        .with_endpoint(server.url("/gelf"))
        .with_max_frame_size(4 * 1024)
        .with_buffer_size(16 * 1024)
        .build()
        .expect("build the exporter");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();

    // The first export meets the outage (it returns once delivery failed);
    // the next ones overflow the buffer.
    // Each flush hands the SDK's queue over, then says delivery is failing.
    log(&provider, 0, 1);
    provider.force_flush().expect_err("the outage");
    wait_stats(&counters, "the first failure", |s| s.failures >= 1);
    const N: u64 = 300;
    log(&provider, 1, N);
    provider.force_flush().expect_err("the outage");
    wait_stats(&counters, "records dropped", |s| s.dropped_buffer_full > 0);
    // A few more failures, retried with backoff.
    wait_stats(&counters, "three failures", |s| s.failures >= 3);
    outage.store(false, Ordering::SeqCst);
    support::wait_until(WAIT, || {
        !capture.named("djehouty.DeliveryRecovered").is_empty()
    });
    assert!(
        !capture.named("djehouty.DeliveryRecovered").is_empty(),
        "no recovery report: {stats:?}",
        stats = counters.snapshot()
    );
    provider.shutdown().expect("shutdown");

    let stats = counters.snapshot();
    assert_eq!(stats.exported + stats.dropped_buffer_full, N, "{stats:?}");
    assert_eq!(server.accepted().len() as u64, stats.exported, "{stats:?}");

    let failed = capture.named("djehouty.DeliveryFailed");
    assert_eq!(failed.len(), 1, "one warning per outage: {failed:?}");
    assert_eq!(failed[0].level, tracing::Level::WARN);
    assert_eq!(failed[0].field("endpoint"), server.url("/gelf"));
    assert!(failed[0].field("error").contains("503"), "{failed:?}");

    let again: Vec<_> = capture
        .named("djehouty.DeliveryFailedAgain")
        .iter()
        .map(|d| (d.level, d.field("failures").to_string()))
        .collect();
    // The failures, counted by the server: its refusals.
    let refused = server.requests().iter().filter(|r| !r.accepted()).count() as u64;
    assert_eq!(stats.failures, refused, "{stats:?}");
    let expected: Vec<_> = (2..=refused)
        .map(|n| (tracing::Level::DEBUG, n.to_string()))
        .collect();
    assert_eq!(
        again, expected,
        "each later failure counted, at debug level"
    );

    let full = capture.named("djehouty.RetryBufferFull");
    assert_eq!(full.len(), 1, "one warning per outage: {full:?}");
    assert_eq!(full[0].level, tracing::Level::WARN);
    assert_eq!(full[0].field("endpoint"), server.url("/gelf"));

    let recovered = capture.named("djehouty.DeliveryRecovered");
    assert_eq!(recovered.len(), 1, "one report per recovery: {recovered:?}");
    let recovered = &recovered[0];
    assert_eq!(recovered.level, tracing::Level::INFO);
    assert_eq!(recovered.field("endpoint"), server.url("/gelf"));
    assert_eq!(recovered.field("failures"), stats.failures.to_string());
    assert_eq!(
        recovered.field("dropped_records"),
        stats.dropped_buffer_full.to_string()
    );
}

/// Over UDP a send that went out proves nothing: the ICMP error it draws
/// from a closed port shows on a later send. Records logged one at a time
/// to a closed port, each going out first on a new socket, are one outage:
/// reported once, its later failures counted, never "recovered" in between.
#[test]
fn a_closed_udp_port_is_one_outage_not_a_recovery_per_socket() {
    let (_turn, capture) = capture();
    // Below the ephemeral range: no other test's socket takes it meanwhile.
    let port = support::unused_port().port();
    let endpoint = format!("udp://127.0.0.1:{port}");
    let exporter = GelfExporter::builder()
        .with_endpoint(&endpoint)
        .build()
        .expect("build the exporter");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    // The first record goes out; each later one draws the error of the one
    // before, or, on a socket opened after a failure, its own; each failure
    // opens a new socket, after the backoff.
    for round in 0..4u64 {
        log(&provider, round, round + 1);
        wait_stats(&counters, "the record sent or failed", |s| {
            s.exported + s.failures > round
        });
    }
    let stats = counters.snapshot();
    assert!(stats.failures >= 3, "{stats:?}");
    assert!(stats.exported <= 1, "{stats:?}");
    let ours = |name: &str| -> Vec<Diagnostic> {
        let all = capture.named(name);
        all.into_iter()
            .filter(|d| d.field("endpoint") == endpoint)
            .collect()
    };
    assert_eq!(ours("djehouty.DeliveryRecovered").len(), 0, "{stats:?}");
    assert_eq!(ours("djehouty.DeliveryFailed").len(), 1, "{stats:?}");
    let _ = provider.shutdown();
}

/// A name for the service given to `build()`, which makes no provider, is
/// said to be unused, at build; `build_provider`, which uses it, says
/// nothing of it.
#[test]
fn a_default_service_name_given_to_build_is_said_unused() {
    let (_turn, capture) = capture();
    let builder = || {
        GelfExporter::builder()
            .with_endpoint(format!("tcp://{}", support::unused_port()))
            .with_default_service_name("checkout")
    };
    let exporter = builder().build().expect("build");
    let warned = capture.named("djehouty.DefaultServiceNameIgnored");
    assert_eq!(warned.len(), 1, "{warned:?}");
    drop(exporter);
    capture.clear();
    let guard = builder().build_provider().expect("build the provider");
    assert!(capture
        .named("djehouty.DefaultServiceNameIgnored")
        .is_empty());
    guard.shutdown().expect("nothing logged, nothing lost");
}
