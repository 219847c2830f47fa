//! The `log` set-up: the appender's bridge as the `log` logger, without the
//! exporter's own diagnostics.

use std::sync::atomic::{AtomicBool, Ordering};

use log::{LevelFilter, Log, Metadata, Record};
use opentelemetry_appender_log::OpenTelemetryLogBridge;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};

use super::{is_self_diagnostic, otel_context_alive, LogGuard};
use crate::config::ExporterBuilder;
use crate::encode::Format;
use crate::error::{Error, Result};
use crate::stats::Counters;

/// Whether `install_log` installed a logger in this process: a second call
/// is refused before it builds anything (a pipeline started only to be shut
/// down would tell its build warnings again).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The appender's bridge, minus the exporter's own diagnostics.
struct Bridge {
    bridge: OpenTelemetryLogBridge<SdkLoggerProvider, SdkLogger>,
    /// For `flush`, which the appender's bridge leaves empty.
    provider: SdkLoggerProvider,
    /// Where a record logged as its thread ends, too late, is counted.
    counters: Counters,
}

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !is_self_diagnostic(metadata.target())
            && otel_context_alive()
            && self.bridge.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if is_self_diagnostic(record.target()) {
            return;
        }
        if otel_context_alive() {
            self.bridge.log(record);
        } else {
            // Its thread is ending: the SDK cannot take it.
            self.counters.add_dropped_at_thread_end(1);
        }
    }

    fn flush(&self) {
        // Failures are the guard's to report, at shutdown.
        let _ = self.provider.force_flush();
    }
}

impl<F: Format> ExporterBuilder<F> {
    /// Builds the whole pipeline for the `log` crate (cargo feature `log`),
    /// installs it as the process's `log` logger with `max_level`, and
    /// returns the [`LogGuard`] that delivers what is still buffered when
    /// dropped.
    ///
    /// ```no_run
    /// let _guard = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tls://graylog.example.com:12202") // or OTEL_EXPORTER_GELF_ENDPOINT
    ///     .with_default_service_name("checkout")            // OTEL_SERVICE_NAME wins
    ///     .install_log(log::LevelFilter::Info)?;
    /// log::info!(user = "alice"; "cart updated");
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    ///
    /// Records of the exporter itself, of the OpenTelemetry crates and of
    /// the network stack it uses (targets `djehouty`, `opentelemetry*`,
    /// `hyper`, `hyper_util`, `h2`, `rustls`, `rustls_native_certs`,
    /// `tokio_rustls`) are not shipped, which could loop. Key-values become
    /// fields. File, line and module come with
    /// the feature `experimental_metadata_attributes` of
    /// `opentelemetry-appender-log`, in your own `Cargo.toml`.
    ///
    /// A process has one `log` logger: to print records as well, combine
    /// this one with yours from [`log_logger`](Self::log_logger).
    ///
    /// # Errors
    ///
    /// Those of [`build_provider`](Self::build_provider), and [`Error::LoggerAlreadySet`]
    /// when another logger is installed, or this one by an earlier call
    /// (then nothing is left running; an earlier call's logger stays, for
    /// as long as its guard lives).
    pub fn install_log(self, max_level: LevelFilter) -> Result<LogGuard> {
        if INSTALLED.load(Ordering::Acquire) {
            return Err(Error::LoggerAlreadySet);
        }
        let (logger, guard) = self.log_logger()?;
        log::set_boxed_logger(Box::new(logger)).map_err(|_| Error::LoggerAlreadySet)?;
        INSTALLED.store(true, Ordering::Release);
        log::set_max_level(max_level);
        Ok(guard)
    }

    /// Builds the whole pipeline for the `log` crate, as
    /// [`install_log`](Self::install_log) does, without installing it: the
    /// logger to combine with another (to print records too) and the
    /// [`LogGuard`].
    ///
    /// ```no_run
    /// let (logger, _guard) = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tcp://127.0.0.1:12201")
    ///     .log_logger()?;
    /// // e.g. in your own `log::Log` that also prints each record:
    /// use log::Log as _;
    /// logger.log(&log::Record::builder().args(format_args!("started")).build());
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`build_provider`](Self::build_provider).
    pub fn log_logger(self) -> Result<(impl Log, LogGuard)> {
        let guard = self.build_provider()?;
        let logger = Bridge {
            bridge: OpenTelemetryLogBridge::new(guard.provider()),
            provider: guard.provider().clone(),
            counters: guard.counters(),
        };
        Ok((logger, guard))
    }
}
