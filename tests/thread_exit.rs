//! A provider dropped at a thread's exit, in a thread-local destructor that
//! runs after OpenTelemetry's context is gone: its shutdown must neither
//! panic (a panic there aborts the process) nor log into an OpenTelemetry
//! logger, which would ask that context. Alone in its binary: it sets the
//! process's global `tracing` subscriber.

use djehouty_testkit as support;

use std::cell::RefCell;
use std::thread;
use std::time::Duration;

use djehouty::GelfExporter;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use support::pipeline::*;
use support::{assert_graylog_accepts, Framing, Receiver};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

const WAIT: Duration = Duration::from_secs(20);

thread_local! {
    static PROVIDER: RefCell<Option<SdkLoggerProvider>> = const { RefCell::new(None) };
}

/// Logs `body` with `provider` on a new thread, whose exit drops the
/// provider's last reference after OpenTelemetry's context is gone.
fn log_then_drop_at_exit(provider: SdkLoggerProvider, body: &'static str) {
    thread::spawn(move || {
        // The provider's slot first, then OpenTelemetry's context (with the
        // record): destroyed in the reverse order, the context first.
        let logger = provider.logger("thread-exit");
        PROVIDER.with(|slot| *slot.borrow_mut() = Some(provider));
        let mut record = logger.create_log_record();
        record.set_body(body.into());
        logger.emit(record);
    })
    .join()
    .expect("the thread ended without a panic");
}

/// The shutdown delivers what was logged.
#[test]
fn a_shutdown_at_thread_exit_delivers_what_was_logged() {
    let receiver = Receiver::tcp(Framing::Nul);
    let endpoint = format!("tcp://127.0.0.1:{}", receiver.port());
    log_then_drop_at_exit(
        direct_provider(GelfExporter::builder().with_endpoint(endpoint)),
        "before the thread ended",
    );
    let frames = receiver.wait_frames(1, WAIT);
    let frame = assert_graylog_accepts(&frames[0]);
    assert_eq!(frame["short_message"], "before the thread ended");
}

/// With `tracing` events going to an OpenTelemetry logger (the
/// `opentelemetry` crates' own left out, as their docs advise), the
/// shutdown's report of what it could not deliver is not logged there:
/// that logger would ask the dead context, and abort the process.
#[test]
fn a_shutdown_at_thread_exit_logs_nothing_into_a_dead_context() {
    let other = SdkLoggerProvider::builder().build();
    let bridge = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&other)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            !meta.target().starts_with("opentelemetry")
        }));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(bridge))
        .expect("the binary's only global subscriber");
    let port = support::unused_port().port();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{port}"))
        .build()
        .expect("build");
    let (provider, counters) = direct_provider_with_counters(exporter);
    log_then_drop_at_exit(provider, "never delivered");
    let stats = counters.snapshot();
    assert_eq!(stats.dropped_at_shutdown, 1, "{stats:?}");
}
