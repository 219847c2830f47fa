//! The SDK seam: [`Exporter`] implements OpenTelemetry's `LogExporter`.
//!
//! `export` encodes the whole batch on the calling thread into one reused buffer
//! and appends the frames to the retry buffer; the delivery task on the
//! exporter's own runtime writes them. While the endpoint is healthy, `export`
//! waits (within its time budget) until its records are written, so the SDK's
//! `force_flush` still means "handed to the network"; while it is failing,
//! `export` returns at once and the records wait in the buffer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::Resource;

use crate::config::{Config, Endpoint, ExporterBuilder, Framing};
use crate::delivery::{self, Shared};
use crate::encode::{Format, Gelf, Ltsv, PackScratch, Packing};
use crate::error::Result;
use crate::mapping::Mapper;
use crate::runtime::IoRuntime;
use crate::stats::Counters;
use crate::transport::Transport;

/// Buffers larger than this are not kept between exports.
const KEEP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// The encoding buffer reused between exports: frames back to back, and their lengths.
#[derive(Default)]
struct Scratch {
    data: Vec<u8>,
    lens: Vec<usize>,
    pack: PackScratch,
}

/// An OpenTelemetry log exporter writing GELF ([`GelfExporter`]) or LTSV
/// ([`LtsvExporter`]) to a TCP or TLS endpoint (GELF also to UDP and HTTP(S)).
///
/// Register it with [`DirectProcessor`](crate::DirectProcessor) (recommended:
/// records encoded where they are logged, no record queue), with
/// [`BatchProcessor`](crate::BatchProcessor) (the SDK's batch processor), or
/// with any SDK processor:
///
/// ```no_run
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = djehouty::GelfExporter::builder()
///     .with_endpoint("tls://graylog.example.com:12202")
///     .build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(djehouty::DirectProcessor::new(exporter))
///     .build();
/// // ... install a bridge (opentelemetry-appender-tracing or -log), log ...
/// provider.shutdown().ok(); // flushes; dropping the provider is not enough
/// # Ok::<(), djehouty::Error>(())
/// ```
pub struct Exporter<F: Format> {
    mapper: Mapper,
    framing: Framing,
    packing: Packing,
    endpoint: Endpoint,
    export_timeout: Duration,
    write_timeout: Duration,
    scratch: Mutex<Scratch>,
    shared: Arc<Shared>,
    counters: Counters,
    runtime: IoRuntime,
    shut_down: AtomicBool,
    _format: PhantomData<fn() -> F>,
}

/// Exports OpenTelemetry log records as GELF 1.1.
pub type GelfExporter = Exporter<Gelf>;
/// Exports OpenTelemetry log records as LTSV.
pub type LtsvExporter = Exporter<Ltsv>;
/// Builds a [`GelfExporter`].
pub type GelfExporterBuilder = ExporterBuilder<Gelf>;
/// Builds an [`LtsvExporter`].
pub type LtsvExporterBuilder = ExporterBuilder<Ltsv>;

impl<F: Format> Exporter<F> {
    /// Starts a builder.
    ///
    /// ```no_run
    /// let exporter = djehouty::LtsvExporter::builder()
    ///     .with_endpoint("tcp://127.0.0.1:5555")
    ///     .build()?;
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn builder() -> ExporterBuilder<F> {
        ExporterBuilder::default()
    }

    pub(crate) fn new(config: Config) -> Result<Exporter<F>> {
        let counters = Counters::default();
        let transport = Transport::new(&config, counters.clone())?;
        let runtime = IoRuntime::start()?;
        let shared = Shared::new(
            config.buffer_bytes,
            counters.clone(),
            config.endpoint.to_string(),
        );
        runtime
            .handle()
            .spawn(delivery::run(Arc::clone(&shared), transport));
        let mut mapper = Mapper::new(&config.mapping);
        mapper.pre_encode(F::encode_field);
        Ok(Exporter {
            mapper,
            framing: config.framing,
            packing: config.packing(),
            endpoint: config.endpoint,
            export_timeout: config.timeouts.export,
            write_timeout: config.timeouts.write,
            scratch: Mutex::new(Scratch::default()),
            shared,
            counters,
            runtime,
            shut_down: AtomicBool::new(false),
            _format: PhantomData,
        })
    }

    /// The endpoint records are sent to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A handle on this exporter's counters (records exported, dropped and why,
    /// reconnects, bytes waiting in the retry buffer). Take it before handing
    /// the exporter to the SDK.
    ///
    /// ```no_run
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tcp://127.0.0.1:12201")
    ///     .build()?;
    /// let counters = exporter.counters();
    /// assert_eq!(counters.snapshot().exported, 0);
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// The most bytes one encoded record takes in the retry buffer.
    pub(crate) fn max_record_bytes(&self) -> usize {
        self.packing.max_record_bytes()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Encodes `batch` exactly as [`export`](LogExporter::export) would send
    /// it, and appends the bytes to `out` without sending anything: each
    /// record mapped, encoded and framed (with its delimiter for `tcp://` and
    /// `tls://` endpoints; for `udp://`, one compressed message per record,
    /// back to back without lengths, so pass one record at a time to tell
    /// them apart). Returns how many records had to be cut to fit the frame
    /// limit.
    ///
    /// Useful to see the wire form of records, to measure the encoder alone,
    /// or to hand frames to a transport of your own.
    ///
    /// ```
    /// use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    /// use opentelemetry::InstrumentationScope;
    /// use opentelemetry_sdk::logs::{LogBatch, SdkLoggerProvider};
    ///
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tcp://127.0.0.1:12201") // nothing is sent
    ///     .with_host("web-1")
    ///     .build()?;
    /// let provider = SdkLoggerProvider::builder().build();
    /// let mut record = provider.logger("app").create_log_record();
    /// record.set_body("user logged in".into());
    /// record.add_attribute("user.id", 42);
    /// let scope = InstrumentationScope::builder("app").build();
    ///
    /// let mut frames = Vec::new();
    /// exporter.encode_batch(&LogBatch::new(&[(&record, &scope)]), &mut frames);
    /// assert_eq!(frames.pop(), Some(0)); // GELF over TCP: NUL-delimited
    /// let gelf: serde_json::Value = serde_json::from_slice(&frames)?;
    /// assert_eq!(gelf["short_message"], "user logged in");
    /// assert_eq!(gelf["_user_id"], 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode_batch(&self, batch: &LogBatch<'_>, out: &mut Vec<u8>) -> usize {
        let mut pack = PackScratch::default();
        self.encode_into(batch, out, None, &mut pack) as usize
    }

    /// Encodes a batch into `data`, pushing each frame's length to `lens`;
    /// returns how many records were cut.
    fn encode_into(
        &self,
        batch: &LogBatch<'_>,
        data: &mut Vec<u8>,
        mut lens: Option<&mut Vec<usize>>,
        pack: &mut PackScratch,
    ) -> u64 {
        let mut truncated = 0;
        for (record, scope) in batch.iter() {
            let mapped = self.mapper.map(record, scope);
            let start = data.len();
            if self.packing.pack::<F>(mapped, data, pack) {
                truncated += 1;
            }
            if let Some(lens) = lens.as_deref_mut() {
                lens.push(data.len() - start);
            }
        }
        truncated
    }

    /// Maps and packs one record into `out`; returns whether it was cut.
    pub(crate) fn encode_record(
        &self,
        record: &opentelemetry_sdk::logs::SdkLogRecord,
        scope: &opentelemetry::InstrumentationScope,
        out: &mut Vec<u8>,
        pack: &mut PackScratch,
    ) -> bool {
        let mapped = self.mapper.map(record, scope);
        self.packing.pack::<F>(mapped, out, pack)
    }

    /// The exporter's I/O runtime.
    pub(crate) fn io(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// The time an export may wait for room and for delivery.
    pub(crate) fn export_timeout(&self) -> Duration {
        self.export_timeout
    }

    /// How long a write may make no progress before the connection is
    /// replaced.
    pub(crate) fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    fn take_scratch(&self) -> Scratch {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let mut scratch = std::mem::take(&mut *guard);
        scratch.data.clear();
        scratch.lens.clear();
        scratch
    }

    fn return_scratch(&self, scratch: Scratch) {
        if scratch.data.capacity() <= KEEP_BUFFER_BYTES {
            *self.scratch.lock().unwrap_or_else(|p| p.into_inner()) = scratch;
        }
    }
}

impl<F: Format> ExporterBuilder<F> {
    /// Validates the configuration, loads the CA files and starts the exporter's
    /// I/O thread. No connection is made until the first export.
    ///
    /// # Errors
    ///
    /// A missing or malformed endpoint, an unreadable or empty CA file, a TLS
    /// endpoint without any trusted root, an unusable client certificate or key,
    /// a setting that does not apply to the endpoint (a TLS-only setting on a
    /// `tcp://` endpoint, a UDP or HTTP setting elsewhere, a framing for a
    /// `udp://` or `http(s)://` endpoint), or a runtime that cannot start.
    pub fn build(self) -> Result<Exporter<F>> {
        let config = self.resolve(|name| std::env::var(name).ok())?;
        Exporter::new(config)
    }
}

impl<F: Format> LogExporter for Exporter<F> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if self.shared.past_deadline() {
            // A shutdown's time is up: encoding these would only delay it.
            self.shared.drop_in_shutdown(batch.iter().count() as u64);
            return Ok(());
        }
        // Whatever the encoding or the buffer might log is never exported again.
        let suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
        let mut scratch = self.take_scratch();
        let Scratch { data, lens, pack } = &mut scratch;
        let truncated = self.encode_into(&batch, data, Some(lens), pack);
        if truncated > 0 {
            self.counters.add_truncated(truncated);
        }
        drop(suppressed);
        if scratch.lens.is_empty() {
            self.return_scratch(scratch);
            return Ok(());
        }
        // Buffer and wait on our runtime (the caller may have none): the
        // JoinHandle is runtime-agnostic. While the endpoint is healthy the
        // export waits for room in the buffer, then for its records to be
        // written, within its budget; records not written in time stay
        // buffered, so this export is not a failure either way.
        let shared = Arc::clone(&self.shared);
        let budget = self.shared.within_deadline(self.export_timeout);
        let now = std::time::Instant::now();
        let until = now
            .checked_add(budget)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        let task = self.runtime.handle().spawn(async move {
            let taken = std::sync::atomic::AtomicUsize::new(0);
            if let Some(target) = shared
                .push(&mut scratch.data, &scratch.lens, until, usize::MAX, &taken)
                .await
            {
                let left = until.saturating_duration_since(std::time::Instant::now());
                let _ = tokio::time::timeout(left, shared.wait(target)).await;
            }
            scratch
        });
        if let Ok(scratch) = task.await {
            self.return_scratch(scratch);
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
        let budget = self.shared.within_deadline(timeout);
        self.shared.close();
        let shared = Arc::clone(&self.shared);
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(1);
        self.runtime.handle().spawn(async move {
            if tokio::time::timeout(budget, shared.stopped()).await.is_ok() {
                let _ = done_tx.send(());
            }
        });
        // A plain blocking wait: our runtime does the work, so this never needs
        // the caller's runtime (which may be the single thread we block).
        let _ = done_rx.recv_timeout(budget.saturating_add(Duration::from_millis(50)));
        self.runtime.shutdown();
        let left = self.shared.finish_shutdown();
        if left.records() == 0 {
            return Ok(());
        }
        let mut parts = Vec::new();
        if left.buffered > 0 {
            parts.push(format!(
                "{} ({} bytes) still waiting when time ran out",
                left.buffered, left.bytes
            ));
        }
        if left.dropped > 0 {
            parts.push(format!(
                "{} dropped during the shutdown (retry buffer full, or arriving after \
                 its deadline)",
                left.dropped
            ));
        }
        let cause = match &left.last_error {
            Some(error) => format!("last error: {error}"),
            None => "the endpoint was reachable but did not take them in time".to_string(),
        };
        let message = format!(
            "{} record(s) were not delivered to {} in the {:?} the shutdown left for it: {} \
             ({cause}); a longer timeout or a larger retry buffer may help",
            left.records(),
            self.endpoint,
            budget,
            parts.join(", ")
        );
        opentelemetry::otel_warn!(name: "djehouty.UndeliveredAtShutdown", message = message.clone());
        self.shared.set_shutdown_error(message.clone());
        Err(OTelSdkError::InternalFailure(message))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.mapper.set_resource(resource);
    }
}

impl<F: Format> Drop for Exporter<F> {
    fn drop(&mut self) {
        self.runtime.shutdown();
    }
}

impl<F: Format> fmt::Debug for Exporter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("format", &F::NAME)
            .field("endpoint", &self.endpoint.to_string())
            .field("framing", &self.framing)
            .field("host", &self.mapper.host())
            .field("shut_down", &self.shut_down.load(Ordering::Relaxed))
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}
