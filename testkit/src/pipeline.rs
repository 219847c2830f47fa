//! The OpenTelemetry side of the tests: providers wired to an exporter, and the
//! `tracing` and `log` bridges used without touching process-wide state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use djehouty::{ExporterBuilder, Format};
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_appender_log::OpenTelemetryLogBridge;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::{Map, Value};
use tracing_subscriber::prelude::*;

/// The resource every test provider carries.
pub fn test_resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("djehouty-tests")
        .with_attribute(KeyValue::new("host.name", "test-host"))
        .with_attribute(KeyValue::new("deployment.environment.name", "ci"))
        .with_attribute(KeyValue::new("service.instance.id", 7_i64))
        .build()
}

/// A provider with the batch processor (the production set-up) around `exporter`.
pub fn batch_provider<F: Format>(builder: ExporterBuilder<F>) -> SdkLoggerProvider {
    let exporter = builder.build().expect("build the exporter");
    let processor = BatchLogProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(65_536)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_millis(100))
                .build(),
        )
        .build();
    SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(processor)
        .build()
}

/// A provider with djehouty's direct processor around `exporter`.
pub fn direct_provider<F: Format>(builder: ExporterBuilder<F>) -> SdkLoggerProvider {
    let exporter = builder.build().expect("build the exporter");
    SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build()
}

/// A provider with djehouty's direct processor around `exporter` (no
/// resource), and the exporter's counters.
pub fn direct_provider_with_counters<F: Format>(
    exporter: djehouty::Exporter<F>,
) -> (SdkLoggerProvider, djehouty::Counters) {
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    (provider, counters)
}

/// As [`direct_provider_with_counters`], without backpressure: a record
/// that finds no room is dropped at once.
pub fn lossy_direct_provider_with_counters<F: Format>(
    exporter: djehouty::Exporter<F>,
) -> (SdkLoggerProvider, djehouty::Counters) {
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(djehouty::DirectProcessor::new(exporter).without_backpressure())
        .build();
    (provider, counters)
}

/// Ships the three records of [`log_the_three_records`] through a provider
/// that `make` builds around a GELF exporter to a fresh receiver (with an
/// extra field), and checks every field of what arrived.
pub fn the_three_records_arrive_through(
    make: impl FnOnce(djehouty::GelfExporterBuilder) -> SdkLoggerProvider,
) {
    use crate::{assert_graylog_accepts, Framing, Receiver};
    let receiver = Receiver::tcp(Framing::Nul);
    let provider = make(
        djehouty::GelfExporter::builder()
            .with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
            .with_extra("X-OVH-TOKEN", "token-1"),
    );
    let logged = log_the_three_records(&provider);
    provider.shutdown().expect("shutdown");
    let frames: Vec<_> = receiver
        .wait_frames(3, Duration::from_secs(20))
        .iter()
        .map(|frame| assert_graylog_accepts(frame))
        .collect();
    receiver.assert_no_partial();
    assert_the_three_records(&frames, &logged);
}

/// A provider with the simple processor (one export per record).
pub fn simple_provider<F: Format>(builder: ExporterBuilder<F>) -> SdkLoggerProvider {
    let exporter = builder.build().expect("build the exporter");
    SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_simple_exporter(exporter)
        .build()
}

/// Runs `f` with the tracing bridge as this thread's subscriber.
pub fn with_tracing<R>(provider: &SdkLoggerProvider, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(provider));
    tracing::subscriber::with_default(subscriber, f)
}

/// Runs `f` inside an OpenTelemetry span; returns the span's trace and span ids.
pub fn in_span<R>(f: impl FnOnce() -> R) -> (R, String, String) {
    use opentelemetry::trace::TraceContextExt as _;
    let tracer_provider = SdkTracerProvider::builder().build();
    let tracer = tracer_provider.tracer("tests");
    tracer.in_span("test-span", |cx| {
        let span = cx.span();
        let sc = span.span_context();
        let ids = (sc.trace_id().to_string(), sc.span_id().to_string());
        (f(), ids.0, ids.1)
    })
}

/// Sends one record through the `log` bridge, without installing a global logger.
pub fn log_through_bridge(
    provider: &SdkLoggerProvider,
    level: log::Level,
    target: &str,
    kvs: &[(&str, log::kv::Value<'_>)],
    message: std::fmt::Arguments<'_>,
) {
    use log::Log as _;
    let bridge = OpenTelemetryLogBridge::new(provider);
    let record = log::Record::builder()
        .level(level)
        .target(target)
        .key_values(&kvs)
        .args(message)
        .build();
    bridge.log(&record);
}

/// Seconds since the epoch, now.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Asserts that a GELF object holds `key` with `expected`.
pub fn assert_field(frame: &Map<String, Value>, key: &str, expected: Value) {
    assert_eq!(
        frame.get(key),
        Some(&expected),
        "field {key:?} in {}",
        Value::Object(frame.clone())
    );
}

/// Asserts the fields every test record carries from the resource.
pub fn assert_resource_fields(frame: &Map<String, Value>) {
    assert_field(frame, "host", Value::from("test-host"));
    assert_field(frame, "_service_name", Value::from("djehouty-tests"));
    assert_field(frame, "_host_name", Value::from("test-host"));
    assert_field(frame, "_deployment_environment_name", Value::from("ci"));
    assert_field(frame, "_service_instance_id", Value::from(7));
}

/// Finds the frame whose `short_message` is `message`.
pub fn by_message<'a>(frames: &'a [Map<String, Value>], message: &str) -> &'a Map<String, Value> {
    frames
        .iter()
        .find(|f| f.get("short_message").and_then(Value::as_str) == Some(message))
        .unwrap_or_else(|| panic!("no frame with short_message {message:?} in {frames:#?}"))
}

/// What [`log_the_three_records`] logged, for [`assert_the_three_records`].
pub struct Logged {
    /// Seconds since the epoch before the first record.
    pub before: f64,
    /// Seconds since the epoch after the last record.
    pub after: f64,
    /// The trace id of the span the first record was logged in.
    pub trace_id: String,
    /// Its span id.
    pub span_id: String,
}

/// Logs, through `tracing`, the three records the transport tests check field
/// by field: an error with typed attributes inside a span, a multi-line record
/// with reserved keys, and a record whose attribute tries to pass for the
/// static extra `X-OVH-TOKEN` (the exporter must have it set to `token-1`).
pub fn log_the_three_records(provider: &SdkLoggerProvider) -> Logged {
    let before = now_secs();
    let ((), trace_id, span_id) = in_span(|| {
        with_tracing(provider, || {
            tracing::error!(
                name: "db.failure",
                target: "app::db",
                user = "alice",
                rows = 42_i64,
                ratio = 0.25,
                cached = true,
                big = u64::MAX,
                "query failed: {}",
                "timeout"
            );
        })
    });
    with_tracing(provider, || {
        tracing::info!(id = "abc", source = "cli", "multi\nline body");
        tracing::debug!(key = "X-OVH-TOKEN", "no override");
    });
    Logged {
        before,
        after: now_secs(),
        trace_id,
        span_id,
    }
}

/// Checks every field of the records [`log_the_three_records`] logged.
pub fn assert_the_three_records(frames: &[Map<String, Value>], logged: &Logged) {
    assert_eq!(frames.len(), 3, "{frames:#?}");
    let f = by_message(frames, "query failed: timeout");
    assert_resource_fields(f);
    assert_field(f, "version", "1.1".into());
    assert_field(f, "level", 3.into());
    assert_field(f, "_user", "alice".into());
    assert_field(f, "_rows", 42.into());
    assert_field(f, "_ratio", 0.25.into());
    assert_field(f, "_cached", "true".into());
    assert_field(f, "_big", u64::MAX.to_string().into());
    assert_field(f, "_target", "app::db".into());
    assert_field(f, "_event_name", "db.failure".into());
    // `ERROR` only names level 3: left out by default.
    assert!(!f.contains_key("_severity_text"), "{f:?}");
    assert_field(f, "_trace_id", logged.trace_id.as_str().into());
    assert_field(f, "_span_id", logged.span_id.as_str().into());
    assert_field(f, "_trace_flags", 1.into());
    assert_field(f, "_X-OVH-TOKEN", "token-1".into());
    assert!(!f.contains_key("full_message"));
    let ts = f["timestamp"].as_f64().expect("numeric timestamp");
    assert!(
        ts >= logged.before - 1.0 && ts <= logged.after + 1.0,
        "{ts} not in [{}, {}]",
        logged.before,
        logged.after
    );

    let f = by_message(frames, "multi");
    assert_field(f, "full_message", "multi\nline body".into());
    assert_field(f, "level", 6.into());
    assert_field(f, "_id_", "abc".into());
    assert_field(f, "_source_", "cli".into());
    assert!(!f.contains_key("_trace_id"), "no span, no trace id");
    // tracing's default event name ("event tests/...:NN") is not sent.
    assert!(!f.contains_key("_event_name"));

    let f = by_message(frames, "no override");
    assert_field(f, "level", 7.into());
    assert_field(f, "_key", "X-OVH-TOKEN".into());
    assert_field(f, "_X-OVH-TOKEN", "token-1".into());
}

/// Waits (at most 20 s) until `done` holds for the exporter's counters, or
/// panics with what they show.
pub fn wait_stats(
    counters: &djehouty::Counters,
    what: &str,
    done: impl Fn(&djehouty::Stats) -> bool,
) -> djehouty::Stats {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = counters.snapshot();
        if done(&stats) {
            return stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
