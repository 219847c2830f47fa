//! [`LogGuard`]: owns the provider of a one-call set-up, shuts it down when
//! dropped and says what was lost.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::SdkLoggerProvider;

use crate::config::Endpoint;
use crate::error::{Error, Result};
use crate::stats::Counters;

/// Owns the `SdkLoggerProvider` of a one-call set-up
/// ([`build_provider`](crate::ExporterBuilder::build_provider),
/// `tracing_layer`, `install_log`): keep it alive as long as the application
/// logs, typically as `let _guard = ...` in `main` (not `let _ = ...`, which
/// drops it at once).
///
/// Dropping it flushes and shuts the provider down, waiting at most
/// [`SHUTDOWN_TIMEOUT`](Self::SHUTDOWN_TIMEOUT), from any thread, inside a
/// tokio runtime too (the exporter runs its I/O on a runtime of its own).
/// If records were not delivered, it writes one line to stderr saying how
/// many and why; [`shutdown`](Self::shutdown) returns that report instead.
/// A guard that is never dropped (leaked, in a `static`, or the process
/// ended by `std::process::exit`) does neither: what is still buffered is
/// lost.
///
/// Left unused, it is a warning (dropped at once, it would shut the
/// pipeline down before the first record):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn main() -> djehouty::Result<()> {
///     djehouty::GelfExporter::builder()
///         .with_endpoint("tcp://127.0.0.1:12201")
///         .build_provider()?;
///     Ok(())
/// }
/// ```
#[must_use = "dropping the guard shuts the logs pipeline down at once: keep it, \
              as `let _guard = ...`"]
pub struct LogGuard {
    provider: SdkLoggerProvider,
    counters: Counters,
    endpoint: Endpoint,
    /// Shut down already: dropping it has nothing left to do.
    done: bool,
}

impl LogGuard {
    /// The longest a shutdown waits for the records still buffered to be
    /// delivered (5 s); what is left then is lost and reported.
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

    pub(super) fn new(provider: SdkLoggerProvider, counters: Counters, endpoint: Endpoint) -> Self {
        LogGuard {
            provider,
            counters,
            endpoint,
            done: false,
        }
    }

    /// The provider, to attach another bridge or take a logger from. Shut
    /// it down through the guard, whose report would otherwise be lost.
    pub fn provider(&self) -> &SdkLoggerProvider {
        &self.provider
    }

    /// A handle on the exporter's counters, for health checks and metrics:
    /// what was exported, dropped and why, and what waits in the retry
    /// buffer.
    ///
    /// ```no_run
    /// let guard = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tcp://127.0.0.1:12201")
    ///     .build_provider()?;
    /// let counters = guard.counters();
    /// // ... from a health check:
    /// let healthy = counters.snapshot().buffered_records < 10_000;
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// The endpoint records are sent to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Flushes and shuts the provider down, waiting at most
    /// [`SHUTDOWN_TIMEOUT`](Self::SHUTDOWN_TIMEOUT), and returns the report
    /// rather than write it to stderr (the exporter's
    /// `djehouty.UndeliveredAtShutdown` warning still goes to whoever
    /// listens to its diagnostics).
    ///
    /// # Errors
    ///
    /// [`Error::Undelivered`] when records logged through this guard's
    /// provider were lost (dropped on the way, refused, or still waiting
    /// when time ran out), or when the shutdown failed. After a shutdown
    /// through [`provider()`](Self::provider), which reported its own
    /// losses, only those it did not: records dropped before it, refused
    /// by the endpoint, or logged as their thread ended.
    pub fn shutdown(mut self) -> Result<()> {
        self.done = true;
        self.finish()
    }

    fn finish(&self) -> Result<()> {
        let result = self.provider.shutdown_with_timeout(Self::SHUTDOWN_TIMEOUT);
        let mut stats = self.counters.snapshot();
        if let Err(OTelSdkError::AlreadyShutdown) = result {
            // Shut down through `provider()` already: the caller had that
            // shutdown's report of what it dropped, not to be given twice
            // (what it could not deliver, and what it dropped for want of
            // room meanwhile); the records dropped otherwise are told here
            // (before it, refused, or logged as their thread ended).
            stats.dropped_buffer_full =
                (stats.dropped_buffer_full).saturating_sub(self.counters.buffer_full_told());
            stats.dropped_at_shutdown =
                (stats.dropped_at_shutdown).saturating_sub(self.counters.dropped_by_shutdown());
        }
        let records = stats.dropped();
        if records == 0 {
            return match result {
                Ok(()) | Err(OTelSdkError::AlreadyShutdown) => Ok(()),
                Err(error) => Err(Error::Undelivered {
                    records: 0,
                    detail: format!(
                        "shutting down the logs pipeline to {} failed: {error}",
                        self.endpoint
                    ),
                }),
            };
        }
        let mut detail = format!(
            "{records} record(s) were not delivered to {}:",
            self.endpoint
        );
        let reasons = [
            (
                stats.dropped_buffer_full,
                "dropped when the buffers were full (the endpoint unreachable or too slow)"
                    .to_string(),
            ),
            (
                stats.dropped_rejected,
                "refused by the endpoint (or too large for UDP)".to_string(),
            ),
            (
                stats.dropped_at_shutdown,
                format!(
                    "not delivered by the shutdown (still waiting when its {:?} ran out, \
                     logged after it began, or logged as their thread ended)",
                    Self::SHUTDOWN_TIMEOUT
                ),
            ),
        ];
        let mut separator = " ";
        for (count, reason) in reasons {
            if count > 0 {
                let _ = write!(detail, "{separator}{count} {reason}");
                separator = ", ";
            }
        }
        match &stats.last_error {
            Some(error) => {
                let _ = write!(detail, " (last error: {error})");
            }
            None => detail.push_str(" (no delivery error was seen)"),
        }
        Err(Error::Undelivered { records, detail })
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Err(error) = self.finish() {
            // One line; a closed stderr is no reason to panic in a destructor.
            let _ = writeln!(std::io::stderr().lock(), "djehouty: {error}");
        }
    }
}

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogGuard")
            .field("endpoint", &self.endpoint)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::GelfExporter;

    /// After a shutdown through `provider()`, the guard tells what that
    /// shutdown's report did not, and nothing it did: records dropped for
    /// want of room before it, or logged as their thread ended, but not
    /// those it dropped (undelivered, or for want of room meanwhile).
    #[test]
    fn after_the_providers_own_shutdown_the_guard_tells_only_the_rest() {
        let guard = GelfExporter::builder()
            .with_endpoint("tcp://127.0.0.1:9")
            .build_provider()
            .expect("build");
        guard
            .provider()
            .shutdown()
            .expect("nothing logged, nothing lost");
        let counters = guard.counters();
        // Before it: three for want of room, one as its thread ended.
        counters.add_dropped_buffer_full(3);
        counters.add_dropped_at_thread_end(1);
        // What its report told: two for want of room, five undelivered.
        counters.add_dropped_buffer_full(2);
        counters.add_buffer_full_told(2);
        counters.add_dropped_at_shutdown(5);
        match guard.shutdown() {
            Err(Error::Undelivered { records, detail }) => {
                assert_eq!(records, 4, "{detail}");
                assert!(
                    detail.contains("3 dropped when the buffers were full"),
                    "{detail}"
                );
                assert!(
                    detail.contains("1 not delivered by the shutdown"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
