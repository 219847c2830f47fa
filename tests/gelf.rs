//! GELF over plain TCP against the in-process receiver: every field of records
//! sent through `tracing` and `log`, the SDK processors, runtimes, framing,
//! oversized records and reconnection.

use djehouty_testkit as support;

use std::time::Duration;

use djehouty::GelfExporter;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use serde_json::{Map, Value};
use support::pipeline::*;
use support::{assert_graylog_accepts, Framing, Receiver};

const WAIT: Duration = Duration::from_secs(10);

fn parse_all(frames: &[Vec<u8>]) -> Vec<Map<String, Value>> {
    frames.iter().map(|f| assert_graylog_accepts(f)).collect()
}

fn builder(receiver: &Receiver) -> djehouty::GelfExporterBuilder {
    GelfExporter::builder().with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
}

#[test]
fn tracing_records_arrive_with_every_field() {
    the_three_records_arrive_through(batch_provider);
}

#[test]
fn log_records_arrive_with_every_field() {
    let receiver = Receiver::tcp(Framing::Nul);
    let provider = batch_provider(builder(&receiver));
    log_through_bridge(
        &provider,
        log::Level::Warn,
        "app::disk",
        &[
            ("mount", log::kv::Value::from("/var")),
            ("used_pct", log::kv::Value::from(91_u64)),
            ("load", log::kv::Value::from(1.5_f64)),
            ("degraded", log::kv::Value::from(false)),
        ],
        format_args!("disk {} full", "/var"),
    );
    let ((), trace_id, _) = in_span(|| {
        log_through_bridge(
            &provider,
            log::Level::Info,
            "app",
            &[],
            format_args!("inside a span"),
        )
    });
    provider.shutdown().expect("shutdown");

    let frames = parse_all(&receiver.wait_frames(2, WAIT));
    let f = by_message(&frames, "disk /var full");
    assert_resource_fields(f);
    assert_field(f, "level", 4.into());
    // `WARN` only names level 4: left out by default.
    assert!(!f.contains_key("_severity_text"), "{f:?}");
    assert_field(f, "_target", "app::disk".into());
    assert_field(f, "_mount", "/var".into());
    assert_field(f, "_used_pct", 91.into());
    assert_field(f, "_load", 1.5.into());
    assert_field(f, "_degraded", "false".into());
    let f = by_message(&frames, "inside a span");
    assert_field(f, "_trace_id", trace_id.into());
}

#[test]
fn many_records_none_lost_one_connection() {
    let receiver = Receiver::tcp(Framing::Nul);
    let provider = batch_provider(builder(&receiver));
    const N: usize = 5_000;
    with_tracing(&provider, || {
        for seq in 0..N {
            tracing::info!(seq, "record {seq}");
        }
    });
    provider.shutdown().expect("shutdown");
    let frames = parse_all(&receiver.wait_frames(N, WAIT));
    let mut seqs: Vec<i64> = frames.iter().map(|f| f["_seq"].as_i64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..N as i64).collect::<Vec<_>>());
    assert_eq!(receiver.connections(), 1, "one persistent connection");
    receiver.assert_no_partial();
}

#[test]
fn simple_processor_and_newline_framing() {
    let receiver = Receiver::tcp(Framing::Newline);
    let provider = simple_provider(builder(&receiver).with_framing(djehouty::Framing::Newline));
    with_tracing(&provider, || {
        tracing::info!(note = "tab\tand\nnewline", "first");
        tracing::info!("second");
    });
    // The simple processor exports synchronously: both are on the wire already.
    let frames = parse_all(&receiver.wait_frames(2, WAIT));
    assert_field(&frames[0], "_note", "tab\tand\nnewline".into());
    assert_field(&frames[1], "short_message", "second".into());
    provider.shutdown().expect("shutdown");
}

#[test]
fn works_inside_a_current_thread_runtime() {
    let receiver = Receiver::tcp(Framing::Nul);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let provider = batch_provider(builder(&receiver));
        with_tracing(&provider, || tracing::info!("from async main"));
        tokio::task::yield_now().await;
        // shutdown() blocks this runtime's only thread: the exporter must not need it.
        provider
            .shutdown()
            .expect("shutdown from a current_thread runtime");
        let provider = simple_provider(builder(&receiver));
        with_tracing(&provider, || tracing::info!("simple from async main"));
        provider.shutdown().expect("shutdown");
        drop(provider); // dropping inside async code must not panic
    });
    let frames = parse_all(&receiver.wait_frames(2, WAIT));
    by_message(&frames, "from async main");
    by_message(&frames, "simple from async main");
}

#[test]
fn works_inside_a_multi_thread_runtime() {
    let receiver = Receiver::tcp(Framing::Nul);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let provider = batch_provider(builder(&receiver));
        let p = provider.clone();
        tokio::spawn(async move { with_tracing(&p, || tracing::info!("from a task")) })
            .await
            .unwrap();
        provider.shutdown().expect("shutdown");
    });
    by_message(&parse_all(&receiver.wait_frames(1, WAIT)), "from a task");
}

#[test]
fn oversized_record_is_truncated_and_delivered() {
    let receiver = Receiver::tcp(Framing::Nul);
    let provider = batch_provider(builder(&receiver).with_max_frame_size(64 * 1024));
    let huge = "y".repeat(300_000);
    with_tracing(&provider, || {
        tracing::info!(huge_field = huge.as_str(), "{}", huge);
        tracing::info!("small one after");
    });
    provider.shutdown().expect("shutdown");
    let frames = receiver.wait_frames(2, WAIT);
    assert!(frames[0].len() < 64 * 1024, "{}", frames[0].len());
    let f = assert_graylog_accepts(&frames[0]);
    let short = f["short_message"].as_str().unwrap();
    assert!(short.starts_with("yyyy") && short.ends_with("[truncated]"));
    let field = f["_huge_field"].as_str().unwrap();
    assert!(field.ends_with("[truncated]") && field.len() <= 32_000);
    assert_field(
        &assert_graylog_accepts(&frames[1]),
        "short_message",
        "small one after".into(),
    );
}

#[test]
fn reconnects_after_the_receiver_closes_the_connection() {
    let receiver = Receiver::tcp(Framing::Nul);
    let provider = simple_provider(builder(&receiver));
    with_tracing(&provider, || tracing::info!("before"));
    receiver.wait_frames(1, WAIT);
    receiver.drop_connections();
    receiver.wait_closed(1, WAIT);
    std::thread::sleep(Duration::from_millis(50));
    with_tracing(&provider, || tracing::info!("after"));
    let frames = parse_all(&receiver.wait_frames(2, WAIT));
    by_message(&frames, "after");
    assert_eq!(receiver.connections(), 2);
    provider.shutdown().expect("shutdown");
}

#[test]
fn unreachable_endpoint_keeps_records_and_names_the_error() {
    // A port nothing listens on.
    let port = support::unused_port().port();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let counters = exporter.counters();
    let (capture, errors) = CaptureErrors::new(exporter);
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_simple_exporter(capture)
        .build();
    let started = std::time::Instant::now();
    let logger = provider.logger("t");
    let mut rec = logger.create_log_record();
    rec.set_body(AnyValue::from("kept"));
    rec.set_severity_number(Severity::Info);
    logger.emit(rec);
    // The export returns as soon as the connection is refused, without error:
    // the record waits in the retry buffer.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(errors.lock().unwrap().clone(), Vec::<String>::new());
    let stats = counters.snapshot();
    assert_eq!(
        (stats.exported, stats.buffered_records),
        (0, 1),
        "{stats:?}"
    );
    assert!(stats.failures >= 1, "{stats:?}");
    let error = stats.last_error.expect("the connection error is kept");
    assert!(
        matches!(*error, djehouty::Error::Connect { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("cannot connect to tcp://127.0.0.1:{port}")),
        "{error}"
    );
    // Nothing can deliver it: shutdown says so, with the count.
    let shutdown = provider
        .shutdown_with_timeout(Duration::from_millis(500))
        .expect_err("the record was not delivered");
    let text = shutdown.to_string();
    assert!(text.contains("1 record(s)"), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert_eq!(counters.snapshot().dropped_at_shutdown, 1);
}

#[test]
fn shutdown_is_idempotent_and_later_exports_are_refused() {
    use opentelemetry_sdk::logs::LogExporter as _;
    let receiver = Receiver::tcp(Framing::Nul);
    let exporter = builder(&receiver).build().unwrap();
    let counters = exporter.counters();
    exporter.shutdown().expect("first shutdown");
    exporter.shutdown().expect("second shutdown");
    let (capture, errors) = CaptureErrors::new(exporter);
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_simple_exporter(capture)
        .build();
    let logger = provider.logger("t");
    logger.emit(logger.create_log_record());
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("AlreadyShutdown"), "{}", errors[0]);
    // Refused, and counted.
    assert_eq!(counters.snapshot().dropped_at_shutdown, 1);
}

/// Wraps an exporter and records the errors its exports return (the simple
/// processor only logs them).
#[derive(Debug)]
struct CaptureErrors<E> {
    inner: E,
    errors: Errors,
}

type Errors = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl<E> CaptureErrors<E> {
    fn new(inner: E) -> (Self, Errors) {
        let errors = Errors::default();
        let capture = CaptureErrors {
            inner,
            errors: errors.clone(),
        };
        (capture, errors)
    }
}

impl<E: opentelemetry_sdk::logs::LogExporter> opentelemetry_sdk::logs::LogExporter
    for CaptureErrors<E>
{
    async fn export(
        &self,
        batch: opentelemetry_sdk::logs::LogBatch<'_>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            self.errors.lock().unwrap().push(format!("{e:?} {e}"));
        }
        result
    }
    fn shutdown_with_timeout(&self, t: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(t)
    }
    fn set_resource(&mut self, r: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(r)
    }
}

/// Logs, with the SDK's default resource (which adds `telemetry.sdk.*`, and
/// `unknown_service:<executable>` without `service`), an `INFO` and a `TRACE`
/// record through `tracing`, and a record whose scope is named like its
/// target; returns the three frames by message.
fn redundancy_frames(
    builder: djehouty::GelfExporterBuilder,
    receiver: &Receiver,
    service: Option<&str>,
) -> [Map<String, Value>; 3] {
    let exporter = builder.build().expect("build the exporter");
    let mut resource = opentelemetry_sdk::Resource::builder();
    if let Some(service) = service {
        resource = resource.with_service_name(service.to_string());
    }
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_resource(resource.build())
        .with_simple_exporter(exporter)
        .build();
    with_tracing(&provider, || {
        tracing::info!(target: "app", "an info record");
        tracing::trace!(target: "app", "a trace record");
    });
    let logger =
        provider.logger_with_scope(opentelemetry::InstrumentationScope::builder("app::db").build());
    let mut record = logger.create_log_record();
    record.set_target("app::db");
    record.set_severity_number(Severity::Error);
    record.set_severity_text("error");
    record.set_body(AnyValue::from("a scoped record"));
    logger.emit(record);
    provider.shutdown().expect("shutdown");
    let frames = parse_all(&receiver.wait_frames(3, WAIT));
    ["an info record", "a trace record", "a scoped record"].map(|m| by_message(&frames, m).clone())
}

#[test]
fn frames_leave_out_what_repeats_another_field_or_the_sdk() {
    let receiver = Receiver::tcp(Framing::Nul);
    let [info, trace, scoped] = redundancy_frames(builder(&receiver), &receiver, Some("lean-test"));
    for frame in [&info, &trace, &scoped] {
        for key in [
            "_telemetry_sdk_name",
            "_telemetry_sdk_language",
            "_telemetry_sdk_version",
        ] {
            assert!(!frame.contains_key(key), "{key} in {frame:?}");
        }
        assert_field(frame, "_service_name", "lean-test".into());
    }
    assert!(!info.contains_key("_severity_text"), "{info:?}");
    assert_field(&info, "level", 6.into());
    // Level 7 is also DEBUG's: TRACE says more, and is kept.
    assert_field(&trace, "_severity_text", "TRACE".into());
    assert_field(&trace, "level", 7.into());
    assert!(!scoped.contains_key("_severity_text"), "{scoped:?}");
    assert!(!scoped.contains_key("_otel_scope_name"), "{scoped:?}");
    assert_field(&scoped, "_target", "app::db".into());

    // The SDK's fallback name, when the application names no service.
    let receiver = Receiver::tcp(Framing::Nul);
    let frames = redundancy_frames(builder(&receiver), &receiver, None);
    for frame in &frames {
        assert!(!frame.contains_key("_service_name"), "{frame:?}");
    }
}

#[test]
fn redundant_fields_come_back_on_request() {
    let receiver = Receiver::tcp(Framing::Nul);
    let [info, trace, scoped] = redundancy_frames(
        builder(&receiver).with_redundant_fields(true),
        &receiver,
        None,
    );
    for frame in [&info, &trace, &scoped] {
        let service = frame["_service_name"].as_str().unwrap_or_default();
        assert!(service.starts_with("unknown_service"), "{frame:?}");
        assert_field(frame, "_telemetry_sdk_language", "rust".into());
        assert_field(frame, "_telemetry_sdk_name", "opentelemetry".into());
        assert!(frame.contains_key("_telemetry_sdk_version"), "{frame:?}");
    }
    assert_field(&info, "_severity_text", "INFO".into());
    assert_field(&trace, "_severity_text", "TRACE".into());
    assert_field(&scoped, "_severity_text", "error".into());
    assert_field(&scoped, "_otel_scope_name", "app::db".into());
}

/// Logs `count` records through `provider`, their bodies `what` and their
/// number.
fn emit_numbered(provider: &opentelemetry_sdk::logs::SdkLoggerProvider, what: &str, count: u64) {
    let logger = provider.logger("app");
    for i in 0..count {
        let mut record = logger.create_log_record();
        record.set_body(AnyValue::from(format!("{what} {i}")));
        logger.emit(record);
    }
}

/// A provider with a `BatchProcessor` whose SDK queue holds 8 records,
/// exporting to `receiver`, and the exporter's counters.
fn small_batch_queue(
    receiver: &Receiver,
) -> (
    djehouty::Counters,
    opentelemetry_sdk::logs::SdkLoggerProvider,
) {
    let exporter = builder(receiver).build().unwrap();
    let counters = exporter.counters();
    let config = opentelemetry_sdk::logs::BatchConfigBuilder::default()
        .with_max_queue_size(8)
        .with_max_export_batch_size(8)
        .build();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_log_processor(djehouty::BatchProcessor::with_config(exporter, config))
        .build();
    (counters, provider)
}

/// `BatchProcessor::force_flush` waits for acknowledgement, as
/// `DirectProcessor`'s does: once it returns, every record logged before
/// counts as exported; and while the endpoint refuses connections it fails
/// rather than report records still waiting in the retry buffer flushed.
#[test]
fn the_batch_processors_flush_waits_for_delivery_and_says_when_it_fails() {
    const RECORDS: u64 = 2_000;
    let emit = emit_numbered;
    let receiver = Receiver::tcp(Framing::Nul);
    let exporter = builder(&receiver).build().unwrap();
    let counters = exporter.counters();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    emit(&provider, "record", RECORDS);
    provider.force_flush().expect("a healthy endpoint flushes");
    assert_eq!(counters.snapshot().exported, RECORDS);
    assert_eq!(
        receiver.wait_frames(RECORDS as usize, WAIT).len() as u64,
        RECORDS
    );
    // Judged by the receiver: with it no longer reading, what the flush
    // waited for is in its kernel once the flush returns.
    receiver.pause_reading();
    emit(&provider, "paused", 50);
    provider.force_flush().expect("a healthy endpoint flushes");
    let killed = receiver.kill_measured();
    let paused = (killed.frames.iter().chain(&killed.held))
        .map(|frame| assert_graylog_accepts(frame))
        .filter(|frame| {
            frame["short_message"]
                .as_str()
                .is_some_and(|text| text.starts_with("paused "))
        })
        .count();
    assert_eq!(paused, 50, "{} held", killed.held.len());
    provider
        .shutdown()
        .expect("shutdown: nothing was left to deliver");

    let refused = support::unused_port();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{refused}"))
        .build()
        .unwrap();
    let counters = exporter.counters();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    emit(&provider, "record", 3);
    let error = provider
        .force_flush()
        .expect_err("nothing can be delivered");
    let text = error.to_string();
    assert!(text.contains("delivery is failing"), "{text}");
    assert_eq!(counters.snapshot().buffered_records, 3);
    let _ = provider.shutdown_with_timeout(Duration::from_millis(300));
}

/// The records the SDK's queue behind a `BatchProcessor` drops for want of
/// room are counted: with a queue of 8, a burst overflows it while the
/// SDK's thread waits for its exports' acknowledgements. A flush fails
/// naming them, the shutdown reports those dropped after it, and in the
/// end every record logged is either on the wire or counted as dropped,
/// one logged after the shutdown too.
#[test]
fn the_batch_queues_drops_are_counted_told_and_add_up() {
    const BURST: u64 = 5_000;
    let receiver = Receiver::tcp(Framing::Nul);
    let (counters, provider) = small_batch_queue(&receiver);
    emit_numbered(&provider, "first", BURST);
    let error = provider
        .force_flush()
        .expect_err("the queue overflowed")
        .to_string();
    assert!(error.contains("SDK's batch queue"), "{error}");
    let stats = counters.snapshot();
    assert!(stats.dropped_buffer_full > 0, "{stats:?}");
    assert_eq!(
        stats.exported + stats.dropped_buffer_full,
        BURST,
        "{stats:?}"
    );
    provider
        .force_flush()
        .expect("nothing was dropped since the last flush");

    emit_numbered(&provider, "second", BURST);
    let late = provider.logger("late");
    let error = provider
        .shutdown()
        .expect_err("the queue overflowed again")
        .to_string();
    assert!(error.contains("SDK's batch queue"), "{error}");
    let stats = counters.snapshot();
    assert!(stats.dropped_buffer_full > 0, "{stats:?}");
    assert_eq!(stats.dropped(), stats.dropped_buffer_full, "{stats:?}");
    assert_eq!(stats.exported + stats.dropped(), 2 * BURST, "{stats:?}");
    let arrived = receiver.wait_frames(stats.exported as usize, WAIT).len() as u64;
    assert_eq!(arrived, stats.exported);
    // Logged after the shutdown, through a logger taken before it.
    late.emit(late.create_log_record());
    let after = counters.snapshot();
    assert_eq!(after.dropped_at_shutdown, 1, "{after:?}");
    assert_eq!(after.dropped_buffer_full, stats.dropped_buffer_full);
}

/// A `BatchProcessor` shutdown that stops waiting before the SDK's thread
/// ends (here, given no time at all) still has the queue's drops counted,
/// by that thread as it ends: every record logged is, in the end,
/// exported or counted as dropped.
#[test]
fn the_batch_queues_drops_are_counted_after_a_shutdown_that_did_not_wait() {
    const BURST: u64 = 5_000;
    let receiver = Receiver::tcp(Framing::Nul);
    let (counters, provider) = small_batch_queue(&receiver);
    emit_numbered(&provider, "record", BURST);
    let _ = provider.shutdown_with_timeout(Duration::ZERO);
    let deadline = std::time::Instant::now() + WAIT;
    let mut stats = counters.snapshot();
    while stats.exported + stats.dropped() < BURST && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        stats = counters.snapshot();
    }
    assert!(stats.dropped_buffer_full > 0, "{stats:?}");
    assert_eq!(stats.exported + stats.dropped(), BURST, "{stats:?}");
}
