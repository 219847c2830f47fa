//! The SDK seam: [`Exporter`] implements OpenTelemetry's `LogExporter` over
//! the [`Pipeline`], which does the work.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::Resource;

use crate::config::{Endpoint, ExporterBuilder};
use crate::encode::{Format, Gelf, Ltsv};
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::stats::Counters;

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
/// provider.shutdown().ok(); // flushes and reports; a drop would not report
/// # Ok::<(), djehouty::Error>(())
/// ```
pub struct Exporter<F: Format> {
    pipeline: Pipeline,
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

    /// The endpoint records are sent to.
    pub fn endpoint(&self) -> &Endpoint {
        self.pipeline.endpoint()
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
        self.pipeline.counters().clone()
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
        self.pipeline.encode_batch(batch, out) as usize
    }

    /// The pipeline, for a processor that watches it.
    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The pipeline, for a processor that drives it directly.
    pub(crate) fn into_pipeline(self) -> Pipeline {
        self.pipeline
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
    /// `udp://` or `http(s)://` endpoint), static fields that are longer than
    /// a field or take more than half the maximum frame size, or a runtime
    /// that cannot start.
    pub fn build(self) -> Result<Exporter<F>> {
        let named = self.default_service_name.is_some();
        self.build_with(|| {
            if named {
                crate::warnings::warn_at_build!(
                    name: "djehouty.DefaultServiceNameIgnored",
                    message = "`with_default_service_name` applies to `build_provider`, \
                               `tracing_layer`, `install_log` and `log_logger`, which make \
                               the provider; with `build()` the provider is yours: give it \
                               a resource with the service's name"
                );
            }
        })
        .map(|(exporter, ())| exporter)
    }

    /// [`build`](Self::build), after `first` (a set-up's other work, whose
    /// warnings are the build's too). Warnings raised meanwhile, when
    /// nothing listens yet (a one-call set-up builds before the
    /// application's subscriber exists), are told with the first records,
    /// or at once if the build fails.
    pub(crate) fn build_with<R>(self, first: impl FnOnce() -> R) -> Result<(Exporter<F>, R)> {
        let ((first, built), kept) = crate::warnings::keeping(|| (first(), self.build_now()));
        let exporter = match built {
            Ok(exporter) => exporter,
            Err(error) => {
                // No records will tell them: now, as they may explain the
                // error (a CA certificate skipped, then no root left).
                crate::warnings::tell(kept);
                return Err(error);
            }
        };
        exporter.pipeline.shared().keep_build_warnings(kept);
        Ok((exporter, first))
    }

    /// [`build`](Self::build), the warnings told or kept as they come.
    fn build_now(self) -> Result<Exporter<F>> {
        #[cfg(feature = "metrics")]
        let meter = self.meter.clone();
        // The first variable read whose value is not UTF-8, if any: refused
        // by name rather than taken as unset (a default would then apply
        // unseen) or read with its bytes replaced (a token or a header sent
        // altered).
        let not_utf8 = std::cell::RefCell::new(None);
        let resolved = self.resolve(|name| {
            let value = variable_text(std::env::var_os(name));
            value.unwrap_or_else(|()| {
                not_utf8
                    .borrow_mut()
                    .get_or_insert_with(|| name.to_string());
                None
            })
        });
        if let Some(name) = not_utf8.into_inner() {
            return Err(not_utf8_error(&name));
        }
        let config = resolved?;
        let pipeline = Pipeline::start::<F>(config)?;
        #[cfg(feature = "metrics")]
        if let Some(meter) = meter {
            crate::metrics::register(&meter, pipeline.counters(), F::NAME, pipeline.endpoint());
        }
        Ok(Exporter {
            pipeline,
            _format: PhantomData,
        })
    }
}

impl<F: Format> LogExporter for Exporter<F> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.pipeline.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.pipeline.shutdown(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.pipeline.set_resource(resource);
    }
}

impl<F: Format> fmt::Debug for Exporter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pipeline.fmt(f)
    }
}

/// An environment variable's value as text; one that is not UTF-8 is
/// refused by name, without its value.
pub(crate) fn variable(name: &str) -> Result<Option<String>> {
    variable_text(std::env::var_os(name)).map_err(|()| not_utf8_error(name))
}

/// The error for variable `name`, set to a value that is not UTF-8.
fn not_utf8_error(name: &str) -> Error {
    Error::InvalidConfig(format!(
        "{name} is set but its value is not UTF-8 text: write it in UTF-8, or unset it \
         (the value is not shown)"
    ))
}

/// An environment variable's value as text, `Err` when it is not UTF-8.
fn variable_text(value: Option<std::ffi::OsString>) -> std::result::Result<Option<String>, ()> {
    value
        .map(|value| value.into_string().map_err(|_| ()))
        .transpose()
}

#[cfg(all(test, unix))]
mod tests {
    use super::variable_text;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt as _;

    /// A value that is not UTF-8 is told apart from an unset variable.
    #[test]
    fn a_value_not_utf8_is_told_apart_from_unset() {
        assert_eq!(variable_text(None), Ok(None));
        assert_eq!(
            variable_text(Some(OsString::from("/etc/ca.pem"))),
            Ok(Some("/etc/ca.pem".to_string()))
        );
        assert_eq!(
            variable_text(Some(OsString::from_vec(b"/etc/ca-\xff.pem".to_vec()))),
            Err(())
        );
    }
}
