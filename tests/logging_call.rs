//! The application's logging call emits no diagnostics of its own: whatever
//! the exporter has to say (an outage, records dropped, a record cut) it says
//! on its I/O threads, which run with telemetry suppressed, never on the
//! thread that logs. So the direct processor needs no suppression scope
//! around each record, and nothing it says can come back into it.
//!
//! A subscriber set for this thread alone records every event emitted on it
//! while records are logged through the direct processor in the situations
//! that have something to report. Needs `internal-logs`, without which the
//! exporter emits no diagnostics at all.

use djehouty_testkit as support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use djehouty::{DirectProcessor, GelfExporter};
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use support::{unused_port, Framing, Receiver};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(20);

/// The targets and names of the events emitted on the thread it is set for.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Heard {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut heard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        heard.push(format!("{} {}", meta.target(), meta.name()));
    }
}

/// The events emitted on this thread while `f` runs, heard by a
/// subscriber set for this thread alone.
fn heard_while(f: impl FnOnce()) -> Vec<String> {
    let heard = Heard::default();
    let subscriber = tracing_subscriber::registry().with(heard.clone());
    tracing::subscriber::with_default(subscriber, f);
    let heard = heard.0.lock().unwrap_or_else(|p| p.into_inner());
    heard.clone()
}

/// Logs `n` records of `body_bytes` bytes through `logger`; returns the
/// events emitted on this thread meanwhile.
fn heard_while_logging(logger: &SdkLogger, n: usize, body_bytes: usize) -> Vec<String> {
    let body = "x".repeat(body_bytes);
    heard_while(|| {
        for i in 0..n {
            let mut record = logger.create_log_record();
            record.set_body(body.clone().into());
            record.add_attribute("i", i as i64);
            logger.emit(record);
        }
    })
}

/// Fails, showing the first few, if anything was heard.
fn assert_silent(heard: &[String], case: &str) {
    let first = &heard[..heard.len().min(5)];
    assert!(
        heard.is_empty(),
        "{case}: {} events, the first {first:?}",
        heard.len()
    );
}

fn provider(exporter: djehouty::Exporter<djehouty::Gelf>, lossy: bool) -> SdkLoggerProvider {
    let processor = DirectProcessor::new(exporter);
    let processor = if lossy {
        processor.without_backpressure()
    } else {
        processor.with_backpressure(Duration::from_millis(20))
    };
    SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build()
}

/// The recorder hears what this thread emits: the check below can fail.
#[test]
fn the_recorder_hears_this_threads_diagnostics() {
    let heard = heard_while(|| {
        opentelemetry::otel_warn!(name: "logging_call.Probe");
    });
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(heard[0].contains("logging_call.Probe"), "{heard:?}");
}

/// Logs through a direct processor, with and without backpressure, into
/// the endpoint `endpoint` gives (and keeps open for the run): 10,000
/// records of 8 KiB, each cut to the 4 KiB frame limit, 40 MB in all, far
/// past the kernel's buffers, the retry buffer and the stage; then, after
/// the shutdown, ten more. Returns the counters of each run and requires
/// that nothing was said on the logging thread.
fn logged_silently<T>(endpoint: impl Fn() -> (String, T)) -> Vec<djehouty::Stats> {
    let mut runs = Vec::new();
    for lossy in [false, true] {
        let (endpoint, _open) = endpoint();
        let exporter = GelfExporter::builder()
            .with_endpoint(endpoint)
            .with_buffer_size(256 * 1024)
            .with_max_frame_size(4 * 1024)
            .with_connect_timeout(Duration::from_millis(200))
            .with_write_timeout(Duration::from_secs(30))
            .build()
            .expect("build");
        let counters = exporter.counters();
        let provider = provider(exporter, lossy);
        // Taken before the shutdown, after which the provider hands out
        // loggers that call no processor.
        let logger = provider.logger("logging-call");
        let mut heard = heard_while_logging(&logger, 10_000, 8 * 1024);
        let _ = provider.shutdown_with_timeout(Duration::from_millis(200));
        let at_shutdown = counters.snapshot().dropped_at_shutdown;
        // The stage is closed: these are dropped in the logging call.
        heard.extend(heard_while_logging(&logger, 10, 100));
        assert_silent(&heard, &format!("lossy {lossy}"));
        let stats = counters.snapshot();
        assert!(stats.truncated >= 10_000, "lossy {lossy}: {stats:?}");
        assert_eq!(stats.dropped_at_shutdown, at_shutdown + 10, "lossy {lossy}");
        runs.push(stats);
    }
    runs
}

/// An endpoint down: the records are dropped from the retry buffer, and
/// those cut are counted; nothing is said on the logging thread, though
/// the exporter reports the outage and the drops on its I/O threads.
#[test]
fn an_outage_says_nothing_on_the_logging_thread() {
    for stats in logged_silently(|| (format!("tcp://{}", unused_port()), ())) {
        assert!(stats.dropped() > 0, "{stats:?}");
    }
}

/// An endpoint that accepts and never reads: it stays healthy, so the
/// retry buffer waits for room and the stage fills. A logging call then
/// waits for room until its bound (with backpressure) and the next ones
/// drop their records at once; nothing is said on the logging thread.
#[test]
fn a_stalled_endpoint_says_nothing_on_the_logging_thread() {
    let stalled = || {
        // Bound and never accepted: the kernel completes the handshake and
        // takes bytes until its buffers are full.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        (format!("tcp://{address}"), listener)
    };
    for stats in logged_silently(stalled) {
        assert!(stats.dropped_buffer_full > 0, "{stats:?}");
    }
}

/// A healthy endpoint: the records arrive, and the logging calls said
/// nothing.
#[test]
fn delivery_says_nothing_on_the_logging_thread() {
    let receiver = Receiver::tcp(Framing::Nul);
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{}", receiver.addr()))
        .build()
        .expect("build");
    let provider = provider(exporter, false);
    let heard = heard_while_logging(&provider.logger("logging-call"), 1_000, 100);
    provider.force_flush().expect("flush");
    assert_eq!(receiver.wait_frames(1_000, WAIT).len(), 1_000);
    assert_silent(&heard, "healthy");
    provider.shutdown().expect("shutdown");
}
