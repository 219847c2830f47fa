//! Self-observability: the exporter's [`Counters`] published as OpenTelemetry
//! metrics (cargo feature `metrics`), read from the counters each time the
//! user's `MeterProvider` collects, so logging pays nothing for them.
//!
//! The names and values are listed on
//! [`with_meter_provider`](crate::ExporterBuilder::with_meter_provider).

use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use crate::config::Endpoint;
use crate::stats::{Counters, Stats};

/// Instance numbers of `otel.component.name`, unique within the process.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// Reads one value out of a snapshot.
type Read = fn(&Stats) -> u64;

/// An instrument read from the counters: name, unit, description, value.
type Reading = (&'static str, &'static str, &'static str, Read);

/// The reasons a record is dropped, as `error.type` values, with their counts.
const DROP_REASONS: [(&str, Read); 3] = [
    ("buffer_full", |s| s.dropped_buffer_full),
    ("shutdown", |s| s.dropped_at_shutdown),
    ("rejected", |s| s.dropped_rejected),
];

/// Registers the instruments on `meter`, each reading `counters` when
/// collected. They live as long as the meter provider.
pub(crate) fn register(meter: &Meter, counters: &Counters, format: &str, endpoint: &Endpoint) {
    // The public type's name, as the conventions ask of components they do not name.
    let kind = if format == "GELF" {
        "djehouty::GelfExporter"
    } else {
        "djehouty::LtsvExporter"
    };
    let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
    let attributes = vec![
        KeyValue::new("otel.component.name", format!("{kind}/{instance}")),
        KeyValue::new("otel.component.type", kind),
        KeyValue::new("server.address", endpoint.host().to_string()),
        KeyValue::new("server.port", i64::from(endpoint.port())),
    ];

    let (c, base) = (counters.clone(), attributes.clone());
    let dropped: Vec<(Vec<KeyValue>, Read)> = DROP_REASONS
        .iter()
        .map(|(reason, count)| {
            let mut with_reason = base.clone();
            with_reason.push(KeyValue::new("error.type", *reason));
            (with_reason, *count)
        })
        .collect();
    meter
        .u64_observable_counter("otel.sdk.exporter.log.exported")
        .with_unit("{log_record}")
        .with_description(
            "Log records whose export finished: delivered, or dropped for the error.type given",
        )
        .with_callback(move |observer| {
            let stats = c.snapshot();
            observer.observe(stats.exported, &base);
            for (attributes, count) in &dropped {
                observer.observe(count(&stats), attributes);
            }
        })
        .build();

    let gauges: [Reading; 3] = [
        (
            "otel.sdk.exporter.log.inflight",
            "{log_record}",
            "Log records waiting in the retry buffer, written or not",
            |s| s.buffered_records,
        ),
        (
            "djehouty.exporter.buffer.usage",
            "By",
            "Bytes waiting in the retry buffer",
            |s| s.buffered_bytes,
        ),
        (
            "djehouty.exporter.log.unacknowledged",
            "{log_record}",
            "Log records written that the receiver's TCP has not acknowledged yet",
            |s| s.unacknowledged_records,
        ),
    ];
    for (name, unit, description, value) in gauges {
        let (c, attributes) = (counters.clone(), attributes.clone());
        meter
            .i64_observable_up_down_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |observer| {
                let value = i64::try_from(value(&c.snapshot())).unwrap_or(i64::MAX);
                observer.observe(value, &attributes);
            })
            .build();
    }

    let totals: [Reading; 3] = [
        (
            "djehouty.exporter.log.truncated",
            "{log_record}",
            "Log records cut to fit the frame limit",
            |s| s.truncated,
        ),
        (
            "djehouty.exporter.connections",
            "{connection}",
            "Connections established",
            |s| s.connections,
        ),
        (
            "djehouty.exporter.failures",
            "{failure}",
            "Failed connection attempts, handshakes, writes and requests",
            |s| s.failures,
        ),
    ];
    for (name, unit, description, value) in totals {
        let (c, attributes) = (counters.clone(), attributes.clone());
        meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |observer| observer.observe(value(&c.snapshot()), &attributes))
            .build();
    }
}
