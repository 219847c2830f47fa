//! The `tracing` set-up: the appender's bridge as a `tracing-subscriber`
//! layer, without the exporter's own diagnostics.

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::{is_self_diagnostic, otel_context_alive, LogGuard};
use crate::config::ExporterBuilder;
use crate::encode::Format;
use crate::error::Result;

impl<F: Format> ExporterBuilder<F> {
    /// Builds the whole pipeline for `tracing` (cargo feature `tracing`): a
    /// `tracing-subscriber` layer that ships every event it sees, and the
    /// [`LogGuard`] that delivers what is still buffered when dropped.
    ///
    /// ```no_run
    /// use tracing_subscriber::prelude::*;
    ///
    /// let (layer, _guard) = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tls://graylog.example.com:12202") // or OTEL_EXPORTER_GELF_ENDPOINT
    ///     .with_default_service_name("checkout")            // OTEL_SERVICE_NAME wins
    ///     .tracing_layer()?;
    /// tracing_subscriber::registry()
    ///     .with(tracing_subscriber::filter::LevelFilter::INFO) // what is logged, for all layers
    ///     .with(layer)
    ///     .with(tracing_subscriber::fmt::layer())
    ///     .init();
    /// tracing::info!(user = "alice", items = 3, "cart updated");
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    ///
    /// It is [`build_provider`](Self::build_provider) with
    /// `opentelemetry_appender_tracing`'s bridge on the provider. The layer
    /// ships what the subscriber's filters let through (give it a level, as
    /// above, or an `EnvFilter`, or put one on this layer alone with
    /// `.with_filter(..)`), except the events of the exporter itself, of the
    /// OpenTelemetry crates and of the network stack it uses (targets
    /// `djehouty`, `opentelemetry*`, `hyper`, `hyper_util`, `h2`, `rustls`,
    /// `rustls_native_certs`, `tokio_rustls`): shipping those could loop (a failing export would log
    /// a failure, shipped in turn). Your other layers still see them: a
    /// `fmt` layer prints the warnings about delivery.
    ///
    /// An event becomes a record with its message, level, target and fields.
    /// More, from the appender:
    ///
    /// - **Fields of the enclosing `tracing` spans**: cargo feature
    ///   `tracing-span-attributes` of this crate (the appender's
    ///   experimental `experimental_span_attributes`, turned on for all
    ///   fields).
    /// - **File, line and module**: feature `experimental_metadata_attributes`
    ///   of `opentelemetry-appender-tracing`, in your own `Cargo.toml`
    ///   (`code.filepath`, `code.lineno`, `code.namespace`, sent as
    ///   `_code_filepath`, ...).
    /// - **Trace and span ids** (`_trace_id`, `_span_id`): a record carries
    ///   those of the active OpenTelemetry span. `tracing` spans are not
    ///   OpenTelemetry spans: that takes the `tracing-opentelemetry` layer
    ///   and an OpenTelemetry tracer provider beside this one.
    ///
    /// # Errors
    ///
    /// Those of [`build_provider`](Self::build_provider).
    pub fn tracing_layer<S>(self) -> Result<(impl Layer<S> + Send + Sync, LogGuard)>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let guard = self.build_provider()?;
        let bridge = OpenTelemetryTracingBridge::builder(guard.provider());
        #[cfg(feature = "tracing-span-attributes")]
        let bridge = bridge.with_tracing_span_attributes(
            opentelemetry_appender_tracing::layer::TracingSpanAttributes::all(),
        );
        let counters = guard.counters();
        let layer = bridge.build().with_filter(filter_fn(move |metadata| {
            if is_self_diagnostic(metadata.target()) {
                return false;
            }
            if otel_context_alive() {
                return true;
            }
            // Its thread is ending: the SDK cannot take the event.
            if metadata.is_event() {
                counters.add_dropped_at_shutdown(1);
            }
            false
        }));
        Ok((layer, guard))
    }
}
