//! The one-call set-up for `tracing` (`tracing_layer`) and its `LogGuard`,
//! against the in-process receiver: fields arrive, the exporter's own
//! diagnostics are not shipped but still reach the other layers, dropping
//! the guard delivers what was logged (from a plain thread and from inside
//! tokio runtimes), and an unreachable endpoint delays it only within the
//! bound and costs one line on stderr. Each test scopes its subscriber to its
//! own thread.

use djehouty_testkit as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use djehouty::{GelfExporter, LogGuard};
use serde_json::{Map, Value};
use support::pipeline::{assert_field, by_message};
use support::{assert_graylog_accepts, Framing, Receiver};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(10);
/// What a drop may take beyond the guard's bound: the SDK's own steps and a
/// busy machine.
const SLACK: Duration = Duration::from_secs(2);

fn parse_all(frames: &[Vec<u8>]) -> Vec<Map<String, Value>> {
    frames.iter().map(|f| assert_graylog_accepts(f)).collect()
}

fn endpoint(port: u16) -> djehouty::GelfExporterBuilder {
    GelfExporter::builder().with_endpoint(format!("tcp://127.0.0.1:{port}"))
}

/// A port nothing listens on: connections are refused.
fn closed_port() -> u16 {
    support::unused_port().port()
}

/// A layer that records the target of every event it sees.
#[derive(Clone, Default)]
struct Targets(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Targets {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        self.0
            .lock()
            .unwrap()
            .push(event.metadata().target().to_string());
    }
}

#[test]
fn events_arrive_with_their_fields_and_diagnostics_stay_home() {
    let receiver = Receiver::tcp(Framing::Nul);
    let (layer, guard) = endpoint(receiver.port())
        .with_default_service_name("setup-tests")
        .tracing_layer()
        .unwrap();
    let seen = Targets::default();
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(seen.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(user = "alice", items = 3, ratio = 0.5, "cart updated");
        tracing::warn!(target: "opentelemetry_sdk", name = "sdk", "an SDK diagnostic");
        tracing::warn!(target: "djehouty::x", "an exporter diagnostic");
        tracing::debug!(target: "hyper_util::client", "a transport diagnostic");
        // Last: once it arrived, so did everything logged before it.
        tracing::error!(target: "shop::payment", "payment failed");
    });
    guard.shutdown().unwrap();

    let frames = parse_all(&receiver.wait_frames(2, WAIT));
    let messages: Vec<_> = frames
        .iter()
        .map(|f| f["short_message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(messages, ["cart updated", "payment failed"]);
    let f = by_message(&frames, "cart updated");
    assert_field(f, "_user", "alice".into());
    assert_field(f, "_items", 3.into());
    assert_field(f, "_ratio", 0.5.into());
    assert_field(f, "level", 6.into());
    assert_field(f, "_target", "setup_tracing".into());
    assert_field(f, "_service_name", "setup-tests".into());
    let f = by_message(&frames, "payment failed");
    assert_field(f, "level", 3.into());
    assert_field(f, "_target", "shop::payment".into());

    // The other layers still see the diagnostics.
    let seen = seen.0.lock().unwrap().clone();
    for target in ["opentelemetry_sdk", "djehouty::x", "hyper_util::client"] {
        assert!(seen.iter().any(|t| t == target), "{target} in {seen:?}");
    }
}

/// Logs `n` events through a fresh layer and hands back the guard.
fn log_events(port: u16, n: usize) -> LogGuard {
    let (layer, guard) = endpoint(port).tracing_layer().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for seq in 0..n {
            tracing::info!(seq, "event {seq}");
        }
    });
    guard
}

/// Where a guard is dropped.
#[derive(Debug, Clone, Copy)]
enum Place {
    Thread,
    CurrentThreadRuntime,
    MultiThreadRuntime,
}

/// Runs `f` as `main` would, as `#[tokio::main(flavor = "current_thread")]`
/// would, or as `#[tokio::main]` would.
fn run_in<R>(place: Place, f: impl FnOnce() -> R) -> R {
    let runtime = match place {
        Place::Thread => return f(),
        Place::CurrentThreadRuntime => tokio::runtime::Builder::new_current_thread(),
        Place::MultiThreadRuntime => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()
    .unwrap();
    runtime.block_on(async move { f() })
}

fn dropping_the_guard_delivers(place: Place) {
    const N: usize = 200;
    let receiver = Receiver::tcp(Framing::Nul);
    let counters = run_in(place, || {
        let guard = log_events(receiver.port(), N);
        let counters = guard.counters();
        drop(guard);
        counters
    });
    // Delivered before the drop returned: acknowledged by the receiver.
    let stats = counters.snapshot();
    assert_eq!(
        (stats.exported, stats.dropped()),
        (N as u64, 0),
        "{place:?}"
    );
    let frames = parse_all(&receiver.wait_frames(N, WAIT));
    assert_eq!(frames.len(), N, "{place:?}");
    for (seq, f) in frames.iter().enumerate() {
        assert_field(f, "_seq", seq.into());
    }
}

#[test]
fn dropping_the_guard_delivers_from_a_thread() {
    dropping_the_guard_delivers(Place::Thread);
}

#[test]
fn dropping_the_guard_delivers_in_a_current_thread_runtime() {
    dropping_the_guard_delivers(Place::CurrentThreadRuntime);
}

#[test]
fn dropping_the_guard_delivers_in_a_multi_thread_runtime() {
    dropping_the_guard_delivers(Place::MultiThreadRuntime);
}

fn unreachable_endpoint_bounds_the_drop(place: Place) {
    let port = closed_port();
    let elapsed = run_in(place, || {
        let guard = log_events(port, 3);
        let start = Instant::now();
        drop(guard);
        start.elapsed()
    });
    assert!(
        elapsed <= LogGuard::SHUTDOWN_TIMEOUT + SLACK,
        "{place:?}: the drop took {elapsed:?}"
    );
}

#[test]
fn unreachable_endpoint_bounds_the_drop_from_a_thread() {
    unreachable_endpoint_bounds_the_drop(Place::Thread);
}

#[test]
fn unreachable_endpoint_bounds_the_drop_in_a_current_thread_runtime() {
    unreachable_endpoint_bounds_the_drop(Place::CurrentThreadRuntime);
}

#[test]
fn unreachable_endpoint_bounds_the_drop_in_a_multi_thread_runtime() {
    unreachable_endpoint_bounds_the_drop(Place::MultiThreadRuntime);
}

#[test]
fn shutdown_reports_what_an_unreachable_endpoint_did_not_get() {
    let guard = log_events(closed_port(), 3);
    let start = Instant::now();
    let error = guard.shutdown().unwrap_err();
    assert!(start.elapsed() <= LogGuard::SHUTDOWN_TIMEOUT + SLACK);
    let djehouty::Error::Undelivered { records, detail } = &error else {
        panic!("expected Undelivered, got {error:?}");
    };
    assert_eq!(*records, 3, "{detail}");
    let message = error.to_string();
    assert!(
        message.starts_with("3 record(s) were not delivered to tcp://127.0.0.1:"),
        "{message}"
    );
    assert!(message.contains("last error: cannot connect"), "{message}");
}

/// A provider shut down through `provider()` gave its report there: the
/// guard does not give it again (what it could not deliver, what it
/// dropped for want of room), but still tells the records dropped before
/// it, which that report leaves out.
#[test]
fn a_shutdown_through_the_provider_is_reported_once() {
    let guard = log_events(closed_port(), 3);
    let first = guard
        .provider()
        .shutdown_with_timeout(Duration::from_millis(500));
    assert!(first.is_err(), "{first:?}");
    let again = guard.shutdown();
    assert!(again.is_ok(), "{again:?}");

    // A retry buffer too small for what was logged: records dropped
    // before the shutdown.
    let (layer, guard) = endpoint(closed_port())
        .with_buffer_size(16 * 1024)
        .with_max_frame_size(4 * 1024)
        .tracing_layer()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    let filler = "x".repeat(1000);
    tracing::subscriber::with_default(subscriber, || {
        for seq in 0..2_000 {
            tracing::info!(seq, filler = filler.as_str(), "event {seq}");
        }
    });
    let counters = guard.counters();
    let report = guard
        .provider()
        .shutdown_with_timeout(Duration::from_millis(500));
    // That shutdown's report counts what it could not deliver: those still
    // waiting and those dropped on their way in, both dropped at shutdown,
    // and those dropped for want of room while it went on, which are the
    // rest. The guard tells the other drops for want of room.
    let report = format!("{report:?}");
    let reported: u64 = report
        .split(" record(s) were not delivered")
        .next()
        .and_then(|head| head.rsplit(['"', ' ']).next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count in {report}"));
    let stats = counters.snapshot();
    let full = stats.dropped_buffer_full;
    let told_full = reported - stats.dropped_at_shutdown;
    assert!(full > told_full, "nothing dropped for want of room before");
    let error = guard.shutdown().expect_err("the drops before the shutdown");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "{} record(s) were not delivered",
            full - told_full
        )) && text.contains("buffers were full")
            && !text.contains("not delivered by the shutdown"),
        "{text} (after: {report})"
    );
}

#[test]
fn span_fields_arrive_with_the_span_attributes_feature_only() {
    let receiver = Receiver::tcp(Framing::Nul);
    let (layer, guard) = endpoint(receiver.port()).tracing_layer().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("checkout", order = 1234);
        let _entered = span.enter();
        tracing::info!(step = "pay", "inside a span");
    });
    guard.shutdown().unwrap();

    let frames = parse_all(&receiver.wait_frames(1, WAIT));
    let f = by_message(&frames, "inside a span");
    assert_field(f, "_step", "pay".into());
    if cfg!(feature = "tracing-span-attributes") {
        assert_field(f, "_order", 1234.into());
    } else {
        assert!(!f.contains_key("_order"), "{f:?}");
    }
}

/// Set in the child process of `a_lossy_drop_writes_one_line_to_stderr`.
const CHILD: &str = "DJEHOUTY_SETUP_TRACING_CHILD";

#[test]
fn a_lossy_drop_writes_one_line_to_stderr() {
    const NAME: &str = "a_lossy_drop_writes_one_line_to_stderr";
    if std::env::var_os(CHILD).is_some() {
        // A drop that delivered everything, then one that could not.
        let receiver = Receiver::tcp(Framing::Nul);
        drop(log_events(receiver.port(), 2));
        receiver.wait_frames(2, WAIT);
        drop(log_events(closed_port(), 3));
        return;
    }
    // The guard writes to the process's stderr, which only a child's output
    // shows.
    let output = support::rerun_in_child(NAME, CHILD);
    let lines = support::child_stderr_lines(&output, "djehouty:");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("djehouty: 3 record(s) were not delivered to tcp://127.0.0.1:"),
        "{lines:?}"
    );
}

/// An event from a thread-local destructor that runs after OpenTelemetry's
/// context was destroyed (which the SDK asks for every record, and would
/// panic, aborting the process) is dropped and counted; its call site, seen
/// before and after on live threads, still ships.
#[test]
fn an_event_from_a_late_thread_local_destructor_is_counted_not_fatal() {
    const NAME: &str = "an_event_from_a_late_thread_local_destructor_is_counted_not_fatal";
    if std::env::var_os(CHILD).is_some() {
        let receiver = Receiver::tcp(Framing::Nul);
        let (layer, guard) = endpoint(receiver.port()).tracing_layer().unwrap();
        // Global: a destructor runs outside any scoped subscriber.
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();
        let counters = guard.counters();
        fn late() {
            tracing::warn!("from the late call site");
        }
        // Its call site seen on a live thread first, as most are: what a
        // filter decides for it is kept.
        late();
        support::call_late_at_thread_exit(late, || tracing::info!("from the thread"));
        // And still shipped from a live thread after.
        late();
        let frames = parse_all(&receiver.wait_frames(3, WAIT));
        by_message(&frames, "from the thread");
        let late_ones = (frames.iter())
            .filter(|f| f["short_message"] == "from the late call site")
            .count();
        assert_eq!(late_ones, 2, "{frames:?}");
        let _ = guard.shutdown();
        println!(
            "dropped_at_shutdown={}",
            counters.snapshot().dropped_at_shutdown
        );
        return;
    }
    let output = support::rerun_in_child(NAME, CHILD);
    support::child_stderr_lines(&output, "");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("dropped_at_shutdown=1"), "{stdout}");
}
