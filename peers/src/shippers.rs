//! The shippers measured, each driven with the same records to the same sink.
//!
//! A record: a ~60-character message and five fields of mixed types
//! (`method`: string, `status`: i64, `duration_ms`: f64, `cache_hit`: bool,
//! `user`: string), logged with `tracing::info!` or, for the `log`-based
//! gelf_logger, `log::info!` with the same fields as key-values.

use std::fmt;
use std::io::{BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfig, BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider,
};
use rustls::{ClientConnection, StreamOwned};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::measure::{now_ns, thread_cpu_seconds};
use crate::sink::Sink;
use djehouty_testkit::{TestPki, TlsVersions};

/// Records between two updates of the progress counter.
const PROGRESS_EVERY: usize = 1024;
/// Longest wait for a shipper's first connection.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// Shutdown budget given to the OpenTelemetry providers.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(60);

/// What every row needs.
pub struct Ctx {
    pub records: usize,
    pub sink: Arc<Mutex<Sink>>,
    pub pki: Arc<TestPki>,
    /// Frames pre-encoded once, written in turn by the limit rows.
    pub pool: Arc<Vec<Vec<u8>>>,
    /// The batch processor settings of the djehouty and SDK-only rows.
    pub batch: BatchSettings,
    /// djehouty's retry buffer size, when not its default.
    pub buffer_bytes: Option<usize>,
    /// Records logged so far in the current row (for the stall watchdog).
    pub progress: Arc<AtomicU64>,
}

/// The batch processor settings used for the OpenTelemetry rows.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    pub queue: usize,
    pub batch: usize,
    pub delay: Duration,
}

impl BatchSettings {
    pub fn config(&self) -> BatchConfig {
        opentelemetry_sdk::logs::BatchConfigBuilder::default()
            .with_max_queue_size(self.queue)
            .with_max_export_batch_size(self.batch)
            .with_scheduled_delay(self.delay)
            .build()
    }
}

/// What the shipper's side of a row measured.
#[derive(Debug, Default)]
pub struct Run {
    pub sent: u64,
    /// When the first record was logged (ns since the Unix epoch).
    pub start_ns: u64,
    /// Time spent in the logging calls themselves.
    pub loop_time: Duration,
    /// CPU time of the application's thread during those calls.
    pub app_cpu: Option<f64>,
    /// For rows without a sink: when the last record was handled, and how
    /// many were.
    pub end_ns: Option<u64>,
    pub handled: Option<u64>,
    pub notes: Vec<String>,
}

// ---------------------------------------------------------------------------
// Records

/// A user name, formatted without allocating.
struct User(usize);

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user-{:05}", self.0 % 10_000)
    }
}

#[inline(never)]
fn emit_tracing(i: usize) {
    tracing::info!(
        method = "POST",
        status = 200 + (i % 3) as i64,
        duration_ms = 12.5 + (i % 100) as f64 / 8.0,
        cache_hit = i.is_multiple_of(2),
        user = %User(i),
        "order {:06} accepted for customer 4821 after payment check",
        i
    );
}

#[inline(never)]
fn emit_log(i: usize) {
    log::info!(
        method = "POST",
        status = 200 + (i % 3) as i64,
        duration_ms = 12.5 + (i % 100) as f64 / 8.0,
        cache_hit = i.is_multiple_of(2),
        user:% = User(i);
        "order {:06} accepted for customer 4821 after payment check",
        i
    );
}

/// Logs `records` records through `subscriber` (this thread only).
fn drive_tracing<S>(ctx: &Ctx, subscriber: S, run: &mut Run)
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    let progress = &ctx.progress;
    let records = ctx.records;
    tracing::subscriber::with_default(subscriber, || {
        let cpu = thread_cpu_seconds();
        run.start_ns = now_ns();
        let started = Instant::now();
        for i in 0..records {
            emit_tracing(i);
            if i % PROGRESS_EVERY == 0 {
                progress.store(i as u64, Ordering::Relaxed);
            }
        }
        run.loop_time = started.elapsed();
        run.app_cpu = cpu.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
    });
    run.sent = records as u64;
}

/// The README's subscriber: the bridge, with the SDK's and the exporter's own
/// diagnostics kept out.
fn bridge(provider: &SdkLoggerProvider) -> impl tracing::Subscriber + Send + Sync + 'static {
    let filter = EnvFilter::new("info")
        .add_directive("opentelemetry=off".parse().expect("a valid directive"))
        .add_directive("djehouty=off".parse().expect("a valid directive"));
    Registry::default().with(OpenTelemetryTracingBridge::new(provider).with_filter(filter))
}

fn wait_for_connection(ctx: &Ctx, finished: impl Fn() -> bool) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let (connections, _) = ctx
            .sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()?;
        if connections > 0 {
            return Ok(());
        }
        if finished() {
            return Err("the shipper gave up connecting".to_string());
        }
        if started.elapsed() > CONNECT_LIMIT {
            return Err(format!(
                "no connection reached the sink within {CONNECT_LIMIT:?}"
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// The limit: pre-encoded frames, plain buffered writes

/// Writes `records` frames from the pool over TCP or TLS with a 64 KiB
/// buffer, then closes cleanly.
pub fn limit(ctx: &Ctx, port: u16, tls: bool) -> Result<Run, String> {
    let mut run = Run::default();
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let cpu = thread_cpu_seconds();
    run.start_ns = now_ns();
    let started = Instant::now();
    if tls {
        let conn = ClientConnection::new(ctx.pki.client_config(TlsVersions::Both), server_name())
            .map_err(|e| format!("TLS client: {e}"))?;
        let mut stream = StreamOwned::new(conn, tcp);
        write_pool(ctx, &mut stream)?;
        stream.conn.send_close_notify();
        stream.flush().map_err(|e| format!("close_notify: {e}"))?;
        close_after_peer(&mut stream.sock);
    } else {
        let mut stream = tcp;
        write_pool(ctx, &mut stream)?;
        close_after_peer(&mut stream);
    }
    run.loop_time = started.elapsed();
    run.app_cpu = cpu.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
    run.sent = ctx.records as u64;
    Ok(run)
}

/// Shuts our side down, then reads until the peer closes too (at most 10 s):
/// closing a socket with unread bytes would reset the connection.
fn close_after_peer(stream: &mut TcpStream) {
    use std::io::Read;
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut scratch = [0u8; 4096];
    while matches!(stream.read(&mut scratch), Ok(n) if n > 0) {}
}

fn write_pool(ctx: &Ctx, stream: &mut impl Write) -> Result<(), String> {
    let mut writer = BufWriter::with_capacity(64 * 1024, stream);
    let pool = &ctx.pool;
    for i in 0..ctx.records {
        writer
            .write_all(&pool[i % pool.len()])
            .map_err(|e| format!("write: {e}"))?;
        if i % PROGRESS_EVERY == 0 {
            ctx.progress.store(i as u64, Ordering::Relaxed);
        }
    }
    writer.flush().map_err(|e| format!("write: {e}"))
}

/// djehouty's own GELF frames for the first `count` records, captured once
/// from a local listener: the limit rows' pool.
pub fn capture_pool(count: usize) -> Result<Vec<Vec<u8>>, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("capture: cannot listen: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("capture: {e}"))?
        .port();
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("capture: {e}"))?;
    let reader = thread::spawn(move || -> Result<Vec<u8>, String> {
        use std::io::Read;
        // Bounded: if djehouty never connects, say so rather than hang.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(
                            "capture: djehouty never connected (were the records filtered out?)"
                                .to_string(),
                        );
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("capture: {e}")),
            }
        };
        stream
            .set_nonblocking(false)
            .map_err(|e| format!("capture: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("capture: {e}"))?;
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| format!("capture: {e}"))?;
        Ok(bytes)
    });
    let exporter = djehouty::GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{port}"))
        .build()
        .map_err(|e| format!("capture: {e}"))?;
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    tracing::subscriber::with_default(bridge(&provider), || {
        for i in 0..count {
            emit_tracing(i);
        }
    });
    provider
        .shutdown()
        .map_err(|e| format!("capture: shutdown: {e}"))?;
    let bytes = reader
        .join()
        .map_err(|_| "capture: the reader panicked".to_string())??;
    let frames: Vec<Vec<u8>> = bytes
        .split_inclusive(|&b| b == 0)
        .map(<[u8]>::to_vec)
        .collect();
    if frames.len() != count {
        return Err(format!(
            "capture: expected {count} frames from djehouty, got {}",
            frames.len()
        ));
    }
    Ok(frames)
}

// ---------------------------------------------------------------------------
// djehouty, and the SDK alone

/// Which of djehouty's processors a row uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Processor {
    Batch,
    /// The direct processor as set up by default (a logging call waits a
    /// bounded time for room while the endpoint is healthy).
    Direct,
    /// The direct processor with `without_backpressure()`: a record that
    /// finds the staging area full is dropped, counted.
    DirectNoWait,
}

/// `tracing::info!` → bridge → SDK → `djehouty::BatchProcessor` → djehouty.
pub fn djehouty<F: djehouty::Format>(ctx: &Ctx, port: u16, tls: bool) -> Result<Run, String> {
    djehouty_with::<F>(ctx, port, tls, Processor::Batch)
}

/// `tracing::info!` → bridge → SDK → `djehouty::DirectProcessor` → djehouty.
pub fn djehouty_direct<F: djehouty::Format>(
    ctx: &Ctx,
    port: u16,
    tls: bool,
) -> Result<Run, String> {
    djehouty_with::<F>(ctx, port, tls, Processor::Direct)
}

/// The same, told never to wait: the opt-in for latency-critical paths.
pub fn djehouty_without_backpressure<F: djehouty::Format>(
    ctx: &Ctx,
    port: u16,
    tls: bool,
) -> Result<Run, String> {
    djehouty_with::<F>(ctx, port, tls, Processor::DirectNoWait)
}

fn djehouty_with<F: djehouty::Format>(
    ctx: &Ctx,
    port: u16,
    tls: bool,
    processor: Processor,
) -> Result<Run, String> {
    let mut run = Run::default();
    let mut builder = djehouty::Exporter::<F>::builder();
    if tls {
        builder = builder
            .with_endpoint(format!("tls://127.0.0.1:{port}"))
            .with_ca_file(&ctx.pki.ca_pem);
    } else {
        builder = builder.with_endpoint(format!("tcp://127.0.0.1:{port}"));
    }
    if let Some(bytes) = ctx.buffer_bytes {
        builder = builder.with_buffer_size(bytes);
    }
    let exporter = builder.build().map_err(|e| format!("build: {e}"))?;
    let counters = exporter.counters();
    let provider = match processor {
        Processor::Direct => SdkLoggerProvider::builder()
            .with_log_processor(djehouty::DirectProcessor::new(exporter))
            .build(),
        Processor::DirectNoWait => SdkLoggerProvider::builder()
            .with_log_processor(djehouty::DirectProcessor::new(exporter).without_backpressure())
            .build(),
        Processor::Batch => SdkLoggerProvider::builder()
            .with_log_processor(djehouty::BatchProcessor::with_config(
                exporter,
                ctx.batch.config(),
            ))
            .build(),
    };
    drive_tracing(ctx, bridge(&provider), &mut run);
    if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_LIMIT) {
        run.notes.push(format!("shutdown: {e}"));
    }
    let stats = counters.snapshot();
    let reached = stats.exported + stats.dropped();
    if reached < run.sent {
        let what = if processor != Processor::Batch {
            "record(s) never reached the exporter"
        } else {
            "record(s) dropped by the SDK's queue"
        };
        run.notes.push(format!("{} {what}", run.sent - reached));
    }
    if stats.dropped() > 0 {
        run.notes.push(format!(
            "the exporter dropped {} record(s)",
            stats.dropped()
        ));
    }
    if stats.reconnects > 0 || stats.failures > 0 {
        run.notes.push(format!(
            "{} reconnect(s), {} failure(s), last error: {:?}",
            stats.reconnects,
            stats.failures,
            stats.last_error.map(|e| e.to_string())
        ));
    }
    Ok(run)
}

/// A `LogExporter` that counts its batches' records and drops them.
#[derive(Debug, Default)]
struct NoopExporter {
    records: Arc<AtomicU64>,
}

impl LogExporter for NoopExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.records
            .fetch_add(batch.iter().count() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A processor that only counts: what logging costs before any processor
/// work (`tracing`, the bridge, the SDK's logger).
#[derive(Debug, Default)]
struct CountingProcessor {
    records: Arc<AtomicU64>,
}

impl opentelemetry_sdk::logs::LogProcessor for CountingProcessor {
    fn emit(
        &self,
        _record: &mut opentelemetry_sdk::logs::SdkLogRecord,
        _scope: &opentelemetry::InstrumentationScope,
    ) {
        self.records.fetch_add(1, Ordering::Relaxed);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The pipeline up to the processor, which does nothing: the cost of logging
/// before any processor, the baseline of the direct processor's rows.
pub fn sdk_bare(ctx: &Ctx) -> Result<Run, String> {
    let mut run = Run::default();
    let processor = CountingProcessor::default();
    let records = Arc::clone(&processor.records);
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    drive_tracing(ctx, bridge(&provider), &mut run);
    let _ = provider.shutdown_with_timeout(SHUTDOWN_LIMIT);
    run.end_ns = Some(now_ns());
    run.handled = Some(records.load(Ordering::Relaxed));
    Ok(run)
}

/// The same pipeline with an exporter that does nothing: the SDK's own cost.
pub fn sdk_only(ctx: &Ctx) -> Result<Run, String> {
    let mut run = Run::default();
    let exporter = NoopExporter::default();
    let records = Arc::clone(&exporter.records);
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(
            BatchLogProcessor::builder(exporter)
                .with_batch_config(ctx.batch.config())
                .build(),
        )
        .build();
    drive_tracing(ctx, bridge(&provider), &mut run);
    if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_LIMIT) {
        run.notes.push(format!("shutdown: {e}"));
    }
    run.end_ns = Some(now_ns());
    let handled = records.load(Ordering::Relaxed);
    if handled < run.sent {
        run.notes.push(format!(
            "the SDK's queue dropped {} record(s)",
            run.sent - handled
        ));
    }
    run.handled = Some(handled);
    Ok(run)
}

// ---------------------------------------------------------------------------
// tracing-gelf

/// tracing-gelf's layer, its connection future on a one-worker tokio runtime.
pub fn tracing_gelf(ctx: &Ctx, port: u16, tls: bool) -> Result<Run, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tracing-gelf")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let (layer, connection) = if tls {
        let (layer, mut handle) = tracing_gelf::Logger::builder()
            .connect_tls(
                address,
                server_name(),
                ctx.pki.client_config(TlsVersions::Both),
            )
            .map_err(|e| format!("tracing-gelf: {e}"))?;
        (layer, runtime.spawn(async move { handle.connect().await }))
    } else {
        let (layer, mut handle) = tracing_gelf::Logger::builder()
            .connect_tcp(address)
            .map_err(|e| format!("tracing-gelf: {e}"))?;
        (layer, runtime.spawn(async move { handle.connect().await }))
    };
    // Its connection starts in the background and records logged before it is
    // up would only fill (and overflow) its channel: wait for it.
    wait_for_connection(ctx, || connection.is_finished())?;
    let mut run = Run::default();
    // Dropping the subscriber at the end closes the layer's channel, which
    // ends the connection future once everything queued is written.
    drive_tracing(ctx, Registry::default().with(layer), &mut run);
    let outcome = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), connection).await });
    match outcome {
        Ok(Ok(errors)) if errors.0.is_empty() => {}
        Ok(Ok(errors)) => run.notes.push(format!("connection errors: {:?}", errors.0)),
        Ok(Err(e)) => run.notes.push(format!("connection task failed: {e}")),
        Err(_) => run
            .notes
            .push("its connection did not finish within 120 s".to_string()),
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(run)
}

// ---------------------------------------------------------------------------
// gelf_logger

/// The process-wide `log` logger: installed once, it forwards to the
/// gelf_logger of the current row.
struct Switch;

static CURRENT: RwLock<Option<gelf_logger::GelfLogger>> = RwLock::new(None);
static GELF_LOGGER_ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Switch {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let current = CURRENT.read().unwrap_or_else(|p| p.into_inner());
        current.as_ref().is_some_and(|l| l.enabled(metadata))
    }

    fn log(&self, record: &log::Record<'_>) {
        let current = CURRENT.read().unwrap_or_else(|p| p.into_inner());
        if let Some(logger) = current.as_ref() {
            logger.log(record);
        }
    }

    fn flush(&self) {
        let current = CURRENT.read().unwrap_or_else(|p| p.into_inner());
        if let Some(logger) = current.as_ref() {
            logger.flush();
        }
    }
}

fn gelf_logger_error(error: gelf_logger::Error) {
    let mut errors = GELF_LOGGER_ERRORS.lock().unwrap_or_else(|p| p.into_inner());
    if errors.len() < 5 {
        errors.push(error.to_string());
    }
}

/// OVH's gelf_logger (a `log` logger; a background thread writes, over
/// native-tls for TLS), driven with `log::info!` and key-values.
pub fn gelf_logger(ctx: &Ctx, port: u16, tls: bool) -> Result<Run, String> {
    static INSTALL: Once = Once::new();
    let mut installed = Ok(());
    INSTALL.call_once(|| {
        installed = log::set_boxed_logger(Box::new(Switch)).map_err(|e| e.to_string());
        log::set_max_level(log::LevelFilter::Info);
    });
    installed.map_err(|e| format!("cannot install the log logger: {e}"))?;
    GELF_LOGGER_ERRORS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();

    let logger = gelf_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .hostname("127.0.0.1".to_string())
        .port(port)
        .tls(tls)
        .null_character(true)
        .connect_timeout(Some(CONNECT_LIMIT))
        .write_timeout(Some(Duration::from_secs(30)))
        .background_error_handler(Some(gelf_logger_error))
        .build()
        .map_err(|e| format!("gelf_logger: {e}"))?;
    *CURRENT.write().unwrap_or_else(|p| p.into_inner()) = Some(logger);

    let cpu = thread_cpu_seconds();
    let mut run = Run {
        start_ns: now_ns(),
        ..Run::default()
    };
    let started = Instant::now();
    let mut sent = 0;
    for i in 0..ctx.records {
        emit_log(i);
        sent += 1;
        if i % PROGRESS_EVERY == 0 {
            ctx.progress.store(i as u64, Ordering::Relaxed);
            // It retries the connection for every record: stop early when it fails.
            let failing = !GELF_LOGGER_ERRORS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if failing {
                break;
            }
        }
    }
    run.loop_time = started.elapsed();
    run.app_cpu = cpu.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
    run.sent = sent;
    // Dropping it flushes (waits for its thread to write everything queued),
    // then its thread ends and closes the connection.
    let logger = CURRENT.write().unwrap_or_else(|p| p.into_inner()).take();
    drop(logger);
    let errors = GELF_LOGGER_ERRORS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if !errors.is_empty() {
        return Err(format!(
            "gave up after {sent} record(s): {}",
            errors.join("; ")
        ));
    }
    Ok(run)
}

/// The name every TLS client checks the sink's certificate against.
fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
}
