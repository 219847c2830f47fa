//! Throughput of the exporters' encode-and-write path.
//!
//! Each benchmark hands one batch of 512 log records to
//! [`LogExporter::export`] on a [`GelfExporter`](djehouty::GelfExporter) or an
//! [`LtsvExporter`](djehouty::LtsvExporter) and waits until the exporter reports
//! the bytes written. The exporter talks plain TCP to a local discard sink that
//! reads everything and throws it away, so a measurement covers mapping the
//! record, its scope and the resource; encoding (GELF 1.1 JSON with a NUL
//! delimiter, or LTSV lines); the hand-off to the exporter's I/O runtime; and
//! the loopback socket write. It does not include the SDK's batch processor.
//!
//! Two record shapes are measured for each format:
//!
//! * `small`: a ~60-character body, severity `INFO`, a target, an observed
//!   timestamp and five attributes (string, i64, f64, bool, string), from a
//!   scope with a name and a version;
//! * `large`: a 2 KB multi-line body, 30 attributes (among them a nested map
//!   and a list) and a 4 KB `exception.stacktrace`.
//!
//! `gelf/tracing` is `small` as `tracing`'s bridge makes it: the fields named
//! as `tracing` fields are, its default event name (`event <file>:<line>`),
//! and its scope, which has neither name nor version (so that the fields a
//! scope gives a record, which the encoder copies from the record before,
//! are fewer).
//!
//! `gelf/ldp_small` and `gelf/ldp_large` repeat the GELF shapes with the Logs
//! Data Platform profile (the token field and typed field names), to show what
//! the profile costs over plain GELF.
//!
//! Each shape is measured twice: `gelf/small` is the whole export path above;
//! `gelf_encode/small` is the encoder alone ([`Exporter::encode_batch`]:
//! mapping, encoding and framing into a reused buffer on the benchmark's
//! thread, nothing sent), the figure to compare formats and profiles by, as
//! it leaves out the socket and the thread hand-off and their noise.
//!
//! A filter in plain text (`cargo bench --bench encoders -- gelf_encode/small`)
//! also skips the set-up of the benchmarks it leaves out, so that a profile
//! of one benchmark holds its own work only.
//!
//! Before them, `ldp_overhead` prints what the LDP profile costs over plain
//! GELF for each shape, from batches encoded in alternation by both
//! exporters (a paired measurement, steadier than two benchmarks run one
//! after the other on a shared machine).
//!
//! Criterion reports the time per batch and, through `Throughput::Elements`,
//! records per second. Before each benchmark the encoded size per record is
//! printed to stderr, measured from the sink's byte counter after one warm-up
//! batch; after each `*_encode` benchmark, the heap allocations per record of
//! the encoder alone (one more batch, counted by this binary's allocator,
//! which adds a relaxed atomic increment to every allocation of every
//! benchmark).
//!
//! Run with:
//!
//! ```text
//! cargo bench --bench encoders
//! ```
//!
//! `cargo test --benches` runs every benchmark once, as a smoke test.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::io::Read;
use std::net::TcpListener;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use djehouty::{Exporter, Format, Gelf, Ltsv};
use djehouty_testkit::alloc::{allocations, CountingAlloc};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::{InstrumentationScope, Key, KeyValue};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::Resource;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Records per exported batch.
const BATCH: usize = 512;

// ---------------------------------------------------------------------------
// Executor

/// Wakes the thread blocked in [`block_on`].
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `future` to completion on the current thread.
///
/// `export` awaits a task running on the exporter's own tokio runtime, which
/// wakes us from another thread when the write is done; between polls this
/// thread parks. A spurious unpark only costs one extra poll.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

// ---------------------------------------------------------------------------
// Discard sink

/// A TCP listener that reads and discards everything sent to it.
struct Sink {
    port: u16,
    received: Arc<AtomicU64>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the discard sink");
        let port = listener.local_addr().expect("sink address").port();
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        thread::Builder::new()
            .name("discard-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let counter = Arc::clone(&counter);
                    thread::Builder::new()
                        .name("discard-read".into())
                        .spawn(move || {
                            let mut buf = vec![0u8; 64 * 1024];
                            while let Ok(n) = stream.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                counter.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        })
                        .expect("spawn a sink reader");
                }
            })
            .expect("spawn the sink acceptor");
        Sink { port, received }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The byte count once it has stopped moving: `export` returns when the
    /// bytes are in the socket, not when the sink has read them.
    fn settled(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = self.received();
        let mut steady = 0;
        while steady < 3 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
            let now = self.received();
            if now == last {
                steady += 1;
            } else {
                steady = 0;
                last = now;
            }
        }
        last
    }
}

// ---------------------------------------------------------------------------
// Records

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("bench")
        .with_attribute(KeyValue::new("host.name", "bench-host"))
        .with_attribute(KeyValue::new("service.version", "1.4.2"))
        .with_attribute(KeyValue::new("deployment.environment.name", "production"))
        .with_attribute(KeyValue::new(
            "service.instance.id",
            "6f1c2a9e-3b7d-4e0a-9c51-2d8f4b7a0e13",
        ))
        .build()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("bench")
        .with_version("0.1.0")
        .build()
}

/// The scope of `tracing`'s bridge: no name, no version.
fn tracing_scope() -> InstrumentationScope {
    InstrumentationScope::builder("").build()
}

/// A fresh record with the fields every shape shares.
fn base_record(provider: &SdkLoggerProvider) -> SdkLogRecord {
    let logger = provider.logger("bench");
    let mut rec = logger.create_log_record();
    rec.set_severity_number(Severity::Info);
    rec.set_severity_text("INFO");
    rec.set_target("bench::module");
    rec.set_observed_timestamp(SystemTime::now());
    rec
}

/// The `i`-th small record: a one-line message and five attributes.
fn small_record(provider: &SdkLoggerProvider, i: usize) -> SdkLogRecord {
    let names = [
        "http.request.method",
        "http.response.status_code",
        "duration_ms",
        "cache.hit",
        "user.id",
    ];
    small_with(base_record(provider), i, names)
}

/// The `i`-th small record as `tracing`'s bridge makes it from
/// `tracing::info!(method = "POST", status, duration_ms, cache_hit, user_id, "order …")`.
fn tracing_record(provider: &SdkLoggerProvider, i: usize) -> SdkLogRecord {
    let mut rec = base_record(provider);
    rec.set_event_name("event src/orders.rs:42");
    small_with(
        rec,
        i,
        ["method", "status", "duration_ms", "cache_hit", "user_id"],
    )
}

/// `rec` with the `i`-th small record's message, and its five attributes
/// (string, i64, f64, bool, string) under `names`.
fn small_with(mut rec: SdkLogRecord, i: usize, names: [&'static str; 5]) -> SdkLogRecord {
    let [method, status, duration, hit, user] = names;
    rec.set_body(AnyValue::from(format!(
        "order {i:06} accepted for customer 4821 after payment check"
    )));
    rec.add_attribute(method, "POST");
    rec.add_attribute(status, 200 + (i % 3) as i64);
    rec.add_attribute(duration, 12.5 + (i % 100) as f64 / 8.0);
    rec.add_attribute(hit, i % 2 == 0);
    rec.add_attribute(user, format!("user-{:05}", i % 10_000));
    rec
}

/// Repeats numbered `line`s, each ending in a newline, until `bytes` is reached.
fn filler(bytes: usize, line: impl Fn(usize) -> String) -> String {
    let mut text = String::with_capacity(bytes + 128);
    let mut n = 0;
    while text.len() < bytes {
        text.push_str(&line(n));
        text.push('\n');
        n += 1;
    }
    text.truncate(bytes);
    text
}

/// The `i`-th large record: a 2 KB multi-line body, 30 attributes (including a
/// nested map and a list) and a 4 KB stack trace.
fn large_record(provider: &SdkLoggerProvider, i: usize) -> SdkLogRecord {
    let mut rec = base_record(provider);
    rec.set_severity_number(Severity::Error);
    rec.set_severity_text("ERROR");
    rec.set_body(AnyValue::from(filler(2048, |n| {
        format!("request {i:06} step {n:02}: upstream replied 503, retrying with backoff {n}00ms")
    })));

    let mut attributes: Vec<(Key, AnyValue)> = vec![
        ("http.request.method".into(), "POST".into()),
        ("http.route".into(), "/api/v2/orders/{id}/items".into()),
        ("http.response.status_code".into(), AnyValue::Int(503)),
        (
            "url.full".into(),
            format!("https://shop.example.com/api/v2/orders/{i}/items?expand=lines").into(),
        ),
        ("server.address".into(), "orders.internal".into()),
        ("server.port".into(), AnyValue::Int(8443)),
        ("client.address".into(), "10.20.31.44".into()),
        (
            "user_agent.original".into(),
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
        ),
        ("network.protocol.version".into(), "1.1".into()),
        ("retry.count".into(), AnyValue::Int((i % 5) as i64)),
        (
            "retry.backoff_ms".into(),
            AnyValue::Double(250.0 * (1 + i % 4) as f64),
        ),
        ("db.system.name".into(), "postgresql".into()),
        ("db.operation.name".into(), "SELECT".into()),
        (
            "db.query.text".into(),
            "SELECT id, sku, qty, price FROM order_lines WHERE order_id = $1 ORDER BY id".into(),
        ),
        ("db.rows".into(), AnyValue::Int(42)),
        ("tenant.id".into(), format!("tenant-{:03}", i % 128).into()),
        ("order.id".into(), AnyValue::Int(1_000_000 + i as i64)),
        ("order.total".into(), AnyValue::Double(1234.56 + i as f64)),
        ("order.currency".into(), "EUR".into()),
        ("feature.new_checkout".into(), AnyValue::Boolean(true)),
        ("feature.fraud_check".into(), AnyValue::Boolean(i % 3 == 0)),
        ("thread.name".into(), "tokio-runtime-worker".into()),
        ("thread.id".into(), AnyValue::Int(17)),
        (
            "code.function.name".into(),
            "bench::module::handle_order".into(),
        ),
        ("code.file.path".into(), "src/orders/handler.rs".into()),
        ("code.line.number".into(), AnyValue::Int(218)),
        ("exception.type".into(), "UpstreamUnavailable".into()),
        (
            "exception.message".into(),
            "upstream orders.internal:8443 returned 503 Service Unavailable".into(),
        ),
    ];
    let upstream: HashMap<Key, AnyValue> = [
        ("name", AnyValue::from("inventory")),
        ("region", AnyValue::from("eu-west-3")),
        ("latency_ms", AnyValue::Double(87.25)),
        ("healthy", AnyValue::Boolean(false)),
    ]
    .into_iter()
    .map(|(k, v)| (Key::from(k), v))
    .collect();
    attributes.push(("upstream".into(), AnyValue::Map(Box::new(upstream))));
    attributes.push((
        "order.skus".into(),
        AnyValue::ListAny(Box::new(
            ["SKU-0017", "SKU-2231", "SKU-0940", "SKU-7712", "SKU-3305"]
                .into_iter()
                .map(AnyValue::from)
                .collect(),
        )),
    ));
    assert_eq!(attributes.len(), 30);
    rec.add_attributes(attributes);

    rec.add_attribute(
        "exception.stacktrace",
        filler(4096, |n| {
            format!(
                "   {n:2}: bench::module::layer_{n:02}::call\n{:13}at src/orders/layer_{n:02}.rs:{}:9",
                "",
                100 + n
            )
        }),
    );
    rec
}

// ---------------------------------------------------------------------------
// Benchmarks

/// Plain, or with the Logs Data Platform profile (token and typed names).
#[derive(Clone, Copy, PartialEq)]
enum Profile {
    Plain,
    Ldp,
}

fn exporter<F: Format>(sink: &Sink, profile: Profile) -> Exporter<F> {
    let endpoint = format!("tcp://127.0.0.1:{}", sink.port);
    let builder = match profile {
        Profile::Plain => Exporter::<F>::builder().with_endpoint(endpoint),
        Profile::Ldp => Exporter::<F>::builder()
            .for_logs_data_platform(endpoint, "0bd5e9a6-1111-2222-3333-444455556666"),
    };
    let mut exporter = builder.build().expect("build the exporter");
    LogExporter::set_resource(&mut exporter, &resource());
    exporter
}

fn export_batch<F: Format>(
    exporter: &Exporter<F>,
    data: &[(&SdkLogRecord, &InstrumentationScope)],
) {
    block_on(exporter.export(LogBatch::new(data))).expect("export to the discard sink");
}

/// A kind of record to measure: its name, how to make the `i`-th, and the
/// scope it is logged in.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    make: fn(&SdkLoggerProvider, usize) -> SdkLogRecord,
    scope: fn() -> InstrumentationScope,
}

const SMALL: Shape = Shape {
    name: "small",
    make: small_record,
    scope,
};
const LARGE: Shape = Shape {
    name: "large",
    make: large_record,
    scope,
};
const TRACING: Shape = Shape {
    name: "tracing",
    make: tracing_record,
    scope: tracing_scope,
};

fn bench_shape<F: Format>(c: &mut Criterion, format: &str, shape: Shape, profile: Profile) {
    let Shape {
        name: shape,
        make,
        scope,
    } = shape;
    if !wanted(&format!("{format}/{shape}")) && !wanted(&format!("{format}_encode/{shape}")) {
        return;
    }
    let sink = Sink::start();
    let exporter = exporter::<F>(&sink, profile);
    let provider = SdkLoggerProvider::builder().build();
    let scope = scope();
    let records: Vec<SdkLogRecord> = (0..BATCH).map(|i| make(&provider, i)).collect();
    let data: Vec<(&SdkLogRecord, &InstrumentationScope)> =
        records.iter().map(|record| (record, &scope)).collect();

    let before = sink.received();
    export_batch(&exporter, &data);
    let bytes = sink.settled() - before;
    eprintln!(
        "{format}/{shape}: {} bytes/record ({bytes} bytes per batch of {BATCH})",
        bytes / BATCH as u64
    );

    let mut group = c.benchmark_group(format);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(shape, |b| {
        b.iter(|| export_batch(&exporter, black_box(&data)));
    });
    group.finish();

    // The encoder alone, on this thread: mapping, encoding and framing into
    // a reused buffer, nothing sent.
    let mut out = Vec::with_capacity(2 * bytes as usize);
    let mut group = c.benchmark_group(format!("{format}_encode"));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(shape, |b| {
        b.iter(|| {
            out.clear();
            exporter.encode_batch(black_box(&LogBatch::new(&data)), &mut out);
            black_box(out.len())
        });
    });
    group.finish();
    // Warm (keys cached, buffer grown): what every later batch allocates. The
    // exporter's own threads are idle meanwhile (nothing is sent).
    out.clear();
    let before = allocations();
    exporter.encode_batch(&LogBatch::new(&data), &mut out);
    let allocations = allocations() - before;
    eprintln!(
        "{format}_encode/{shape}: {:.2} allocations/record ({allocations} per batch of {BATCH})",
        allocations as f64 / BATCH as f64
    );

    exporter.shutdown().expect("shut the exporter down");
    let _ = provider.shutdown();
}

/// What the Logs Data Platform profile costs over plain GELF, encoder alone:
/// the same batch encoded by a plain and an LDP exporter in alternation, so
/// that both see the same machine (on a shared machine, benchmarks run one
/// after the other can differ by more than the effect measured). Prints the
/// median of the per-round time ratios.
fn ldp_overhead(shape: &str, make: fn(&SdkLoggerProvider, usize) -> SdkLogRecord) {
    const ROUNDS: usize = 301;
    if !wanted(&format!("gelf_encode/ldp_{shape}")) {
        return;
    }
    let sink = Sink::start();
    let plain = exporter::<Gelf>(&sink, Profile::Plain);
    let ldp = exporter::<Gelf>(&sink, Profile::Ldp);
    let provider = SdkLoggerProvider::builder().build();
    let scope = scope();
    let records: Vec<SdkLogRecord> = (0..BATCH).map(|i| make(&provider, i)).collect();
    let data: Vec<(&SdkLogRecord, &InstrumentationScope)> =
        records.iter().map(|record| (record, &scope)).collect();
    let mut out = Vec::new();
    let mut time = |exporter: &Exporter<Gelf>| {
        out.clear();
        let start = Instant::now();
        exporter.encode_batch(black_box(&LogBatch::new(&data)), &mut out);
        black_box(out.len());
        start.elapsed().as_secs_f64()
    };
    for _ in 0..10 {
        time(&plain);
        time(&ldp);
    }
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|round| {
            // Alternate which goes first, so that neither always runs warm.
            let (p, l) = if round % 2 == 0 {
                let p = time(&plain);
                (p, time(&ldp))
            } else {
                let l = time(&ldp);
                (time(&plain), l)
            };
            l / p
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ROUNDS / 2];
    eprintln!(
        "gelf_encode/ldp_{shape} over gelf_encode/{shape}: {:+.1}% time per record \
         (median of {ROUNDS} paired rounds; quartiles {:+.1}% .. {:+.1}%)",
        (median - 1.0) * 100.0,
        (ratios[ROUNDS / 4] - 1.0) * 100.0,
        (ratios[3 * ROUNDS / 4] - 1.0) * 100.0,
    );
    plain.shutdown().expect("shut the exporter down");
    ldp.shutdown().expect("shut the exporter down");
    let _ = provider.shutdown();
}

/// Whether the benchmark `id` may be run: criterion's filter, when one is
/// given in plain text, is in it. Benchmarks the filter leaves out are then
/// not even set up, so that a profile of one benchmark holds its work alone.
/// (The filter is a regular expression: one with special characters leaves
/// out nothing here, and criterion still applies it.)
fn wanted(id: &str) -> bool {
    // Options criterion takes a non-numeric value after.
    const WITH_TEXT: [&str; 11] = [
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--baseline-lenient",
        "--load-baseline",
        "--color",
        "-c",
        "--format",
        "--output-format",
        "--plotting-backend",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().enumerate().find(|(i, arg)| {
        !arg.starts_with('-')
            && arg.parse::<f64>().is_err()
            && (*i == 0 || !WITH_TEXT.contains(&args[i - 1].as_str()))
    });
    match filter {
        Some((_, filter))
            if filter
                .chars()
                .all(|c| c.is_alphanumeric() || "_/-".contains(c)) =>
        {
            id.contains(filter.as_str())
        }
        _ => true,
    }
}

fn gelf(c: &mut Criterion) {
    // Only under `cargo bench`, not in `cargo test --benches`'s smoke run.
    if std::env::args().any(|arg| arg == "--bench") {
        ldp_overhead("small", small_record);
        ldp_overhead("large", large_record);
    }
    bench_shape::<Gelf>(c, "gelf", SMALL, Profile::Plain);
    bench_shape::<Gelf>(c, "gelf", LARGE, Profile::Plain);
    let ldp_small = Shape {
        name: "ldp_small",
        ..SMALL
    };
    let ldp_large = Shape {
        name: "ldp_large",
        ..LARGE
    };
    bench_shape::<Gelf>(c, "gelf", ldp_small, Profile::Ldp);
    bench_shape::<Gelf>(c, "gelf", ldp_large, Profile::Ldp);
    bench_shape::<Gelf>(c, "gelf", TRACING, Profile::Plain);
}

fn ltsv(c: &mut Criterion) {
    bench_shape::<Ltsv>(c, "ltsv", SMALL, Profile::Plain);
    bench_shape::<Ltsv>(c, "ltsv", LARGE, Profile::Plain);
}

criterion_group! {
    name = encoders;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = gelf, ltsv
}
criterion_main!(encoders);
