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
use opentelemetry_sdk::logs::SdkLoggerProvider;
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

/// Logs `n` records of `body_bytes` bytes through `provider`, with a
/// subscriber for this thread that records every event; returns them.
fn heard_while_logging(provider: &SdkLoggerProvider, n: usize, body_bytes: usize) -> Vec<String> {
    let heard = Heard::default();
    let subscriber = tracing_subscriber::registry().with(heard.clone());
    let logger = provider.logger("logging-call");
    let body = "x".repeat(body_bytes);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            let mut record = logger.create_log_record();
            record.set_body(body.clone().into());
            record.add_attribute("i", i as i64);
            logger.emit(record);
        }
    });
    let heard = heard.0.lock().unwrap_or_else(|p| p.into_inner());
    heard.clone()
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
    let heard = Heard::default();
    let subscriber = tracing_subscriber::registry().with(heard.clone());
    tracing::subscriber::with_default(subscriber, || {
        opentelemetry::otel_warn!(name: "logging_call.Probe");
    });
    let heard = heard.0.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(heard[0].contains("logging_call.Probe"), "{heard:?}");
}

/// An endpoint down: the stage fills, a logging call waits for room until
/// its bound, later calls drop their records at once; and records too large
/// for a frame are cut. None of it is said on the logging thread, though the
/// exporter reports all of it.
#[test]
fn an_outage_and_cut_records_say_nothing_on_the_logging_thread() {
    for lossy in [false, true] {
        let exporter = GelfExporter::builder()
            .with_endpoint(format!("tcp://{}", unused_port()))
            .with_buffer_size(256 * 1024)
            .with_max_frame_size(4 * 1024)
            .with_connect_timeout(Duration::from_millis(200))
            .build()
            .expect("build");
        let counters = exporter.counters();
        let provider = provider(exporter, lossy);
        // 2,000 records of 8 KiB: each cut to 4 KiB, and 8 MB in all, far
        // past the retry buffer and the stage.
        let heard = heard_while_logging(&provider, 2_000, 8 * 1024);
        let stats = counters.snapshot();
        assert!(stats.truncated >= 2_000, "lossy {lossy}: {stats:?}");
        assert!(stats.dropped() > 0, "lossy {lossy}: {stats:?}");
        assert_silent(&heard, &format!("lossy {lossy}"));
        let _ = provider.shutdown_with_timeout(Duration::from_millis(200));
    }
}

/// A healthy endpoint: the records arrive, and the logging calls said
/// nothing.
#[test]
fn delivery_says_nothing_on_the_logging_thread() {
    let receiver = Receiver::tcp(Framing::Nul);
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
        .build()
        .expect("build");
    let provider = provider(exporter, false);
    let heard = heard_while_logging(&provider, 1_000, 100);
    provider.force_flush().expect("flush");
    assert_eq!(receiver.wait_frames(1_000, WAIT).len(), 1_000);
    assert_silent(&heard, "healthy");
    provider.shutdown().expect("shutdown");
}
