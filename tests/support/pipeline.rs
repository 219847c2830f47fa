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
