//! The `tracing` set-up: the appender's bridge as a `tracing-subscriber`
//! layer, without the exporter's own diagnostics.

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::{is_self_diagnostic, otel_context_alive, LogGuard};
use crate::config::ExporterBuilder;
use crate::encode::Format;
use crate::error::Result;
use crate::stats::Counters;

/// The appender's bridge, except for an event logged as its thread ends,
/// once OpenTelemetry's context there is gone (see [`otel_context_alive`]):
/// counted rather than handed to the SDK, which would panic. Checked in
/// `on_event`, once per event: a filter's verdict is kept per call site.
struct UntilThreadEnd<L> {
    bridge: L,
    counters: Counters,
}

impl<S: Subscriber, L: Layer<S>> Layer<S> for UntilThreadEnd<L> {
    fn on_layer(&mut self, subscriber: &mut S) {
        self.bridge.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.bridge.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.bridge.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.bridge.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.bridge.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.bridge.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.bridge.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if otel_context_alive() {
            self.bridge.on_event(event, ctx);
        } else {
            self.counters.add_dropped_at_thread_end(1);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.bridge.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.bridge.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.bridge.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.bridge.on_id_change(old, new, ctx);
    }
}

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
        let layer = UntilThreadEnd {
            bridge: bridge.build(),
            counters: guard.counters(),
        }
        .with_filter(filter_fn(|metadata| !is_self_diagnostic(metadata.target())));
        Ok((layer, guard))
    }
}
