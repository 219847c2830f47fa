//! The SDK seam: [`Exporter`] implements OpenTelemetry's `LogExporter`.
//!
//! `export` encodes the whole batch on the calling thread into one reused buffer,
//! hands it to the exporter's own I/O runtime, and returns `Ok` only once the bytes
//! are written to the socket.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::Resource;

use crate::config::{Config, Endpoint, ExporterBuilder, Framing, Scheme};
use crate::error::Result;
use crate::format::{encode_framed, Format, Gelf, Ltsv};
use crate::mapping::Mapper;
use crate::runtime::IoRuntime;
use crate::transport::reconnect::Link;
use crate::transport::tls::TlsSettings;

/// Buffers larger than this are not kept between exports.
const KEEP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// An OpenTelemetry log exporter writing GELF ([`GelfExporter`]) or LTSV
/// ([`LtsvExporter`]) to a TCP or TLS endpoint.
///
/// Register it with the SDK's batch processor:
///
/// ```no_run
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = djehouty::GelfExporter::builder()
///     .with_endpoint("tls://graylog.example.com:12202")
///     .build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_batch_exporter(exporter)
///     .build();
/// // ... install a bridge (opentelemetry-appender-tracing or -log), log ...
/// provider.shutdown().ok(); // flushes; dropping the provider is not enough
/// # Ok::<(), djehouty::Error>(())
/// ```
pub struct Exporter<F: Format> {
    mapper: Mapper,
    framing: Framing,
    max_frame_bytes: usize,
    endpoint: Endpoint,
    export_timeout: Duration,
    buffer: Mutex<Vec<u8>>,
    link: Arc<tokio::sync::Mutex<Link>>,
    runtime: IoRuntime,
    shut_down: AtomicBool,
    failed_exports: AtomicU64,
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
        let tls = match config.endpoint.scheme() {
            Scheme::Tls => Some(TlsSettings::new(&config.endpoint, &config.tls)?),
            Scheme::Tcp => None,
        };
        let runtime = IoRuntime::start()?;
        let link = Link::new(config.endpoint.clone(), tls, config.timeouts);
        Ok(Exporter {
            mapper: Mapper::new(&config.mapping),
            framing: config.framing,
            max_frame_bytes: config.mapping.max_frame_bytes,
            endpoint: config.endpoint,
            export_timeout: config.timeouts.export,
            buffer: Mutex::new(Vec::new()),
            link: Arc::new(tokio::sync::Mutex::new(link)),
            runtime,
            shut_down: AtomicBool::new(false),
            failed_exports: AtomicU64::new(0),
            _format: PhantomData,
        })
    }

    /// The endpoint records are sent to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn take_buffer(&self) -> Vec<u8> {
        let mut guard = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let mut buffer = std::mem::take(&mut *guard);
        buffer.clear();
        buffer
    }

    fn return_buffer(&self, buffer: Vec<u8>) {
        if buffer.capacity() <= KEEP_BUFFER_BYTES {
            *self.buffer.lock().unwrap_or_else(|p| p.into_inner()) = buffer;
        }
    }

    fn report(&self, result: &Result<()>) {
        match result {
            Ok(()) => {
                let failed = self.failed_exports.swap(0, Ordering::Relaxed);
                if failed > 0 {
                    opentelemetry::otel_info!(
                        name: "djehouty.ExportRecovered",
                        endpoint = self.endpoint.to_string(),
                        failed_exports = failed
                    );
                }
            }
            Err(error) => {
                // First failure of a run, then a count when it recovers.
                if self.failed_exports.fetch_add(1, Ordering::Relaxed) == 0 {
                    opentelemetry::otel_warn!(
                        name: "djehouty.ExportFailed",
                        endpoint = self.endpoint.to_string(),
                        error = error.to_string()
                    );
                }
            }
        }
    }
}

impl<F: Format> LogExporter for Exporter<F> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let mut buffer = self.take_buffer();
        for (record, scope) in batch.iter() {
            let mapped = self.mapper.map(record, scope);
            encode_framed::<F>(mapped, self.framing, self.max_frame_bytes, &mut buffer);
        }
        if buffer.is_empty() {
            self.return_buffer(buffer);
            return Ok(());
        }
        let link = Arc::clone(&self.link);
        // The link enforces the budget step by step; this outer bound also covers
        // waiting for the link while a shutdown holds it.
        let budget = self.export_timeout + Duration::from_millis(250);
        let task = self.runtime.handle().spawn(async move {
            let result = match tokio::time::timeout(budget, link.lock()).await {
                Ok(mut link) => link.send(&buffer).await,
                Err(_) => Err(crate::Error::ShutDown),
            };
            (result, buffer)
        });
        match task.await {
            Ok((result, buffer)) => {
                self.return_buffer(buffer);
                self.report(&result);
                result.map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
            }
            Err(join) => Err(OTelSdkError::InternalFailure(format!(
                "the exporter's I/O task did not complete: {join}"
            ))),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let link = Arc::clone(&self.link);
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(1);
        self.runtime.handle().spawn(async move {
            if let Ok(mut link) = tokio::time::timeout(timeout, link.lock()).await {
                link.close(timeout).await;
            }
            let _ = done_tx.send(());
        });
        // A plain blocking wait: our runtime does the work, so this never needs
        // the caller's runtime (which may be the single thread we block).
        let result = match done_rx.recv_timeout(timeout + Duration::from_millis(100)) {
            Ok(()) => Ok(()),
            Err(_) => Err(OTelSdkError::Timeout(timeout)),
        };
        self.runtime.shutdown();
        result
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
            .finish_non_exhaustive()
    }
}
