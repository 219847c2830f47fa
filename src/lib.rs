//! # djehouty
//!
//! An [OpenTelemetry](https://opentelemetry.io) logs exporter for Graylog-compatible
//! platforms: it maps each log record, its instrumentation scope and the provider's
//! resource onto [GELF 1.1](https://go2docs.graylog.org/current/getting_in_log_data/gelf.html)
//! or [LTSV](http://ltsv.org) and writes them over TCP or TLS (GELF also over UDP
//! and HTTP(S)) to Graylog, OVHcloud
//! Logs Data Platform, rsyslog or anything that speaks these formats.
//!
//! ```no_run
//! use opentelemetry_sdk::logs::SdkLoggerProvider;
//! use opentelemetry_sdk::Resource;
//!
//! let exporter = djehouty::GelfExporter::builder()
//!     .with_endpoint("tls://graylog.example.com:12202")
//!     .with_extra("environment", "production")
//!     .build()?;
//! let provider = SdkLoggerProvider::builder()
//!     .with_resource(Resource::builder().with_service_name("checkout").build())
//!     .with_log_processor(djehouty::DirectProcessor::new(exporter))
//!     .build();
//! // Install `opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge`
//! // (or the `log` bridge), log as usual, and at exit:
//! provider.shutdown().ok();
//! # Ok::<(), djehouty::Error>(())
//! ```
//!
//! The layout follows the data: [`config`] (builder, endpoint, environment) →
//! mapping (record → named, typed fields) → [`gelf`](Gelf) / [`ltsv`](Ltsv)
//! encoders → [`Exporter`] (the SDK seam and its own I/O runtime), fed by
//! [`DirectProcessor`] (records encoded on the logging thread; with
//! [`with_backpressure`](DirectProcessor::with_backpressure), a full buffer
//! makes the logging call wait, bounded, rather than drop) or
//! [`BatchProcessor`] (the SDK's batch processor) → the retry buffer and its
//! delivery task → transport (TCP, TLS, UDP, HTTP; reconnection), with
//! [`Counters`] to watch it all.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod config;
mod delivery;
mod encode;
mod error;
mod exporter;
mod frames;
#[cfg(test)]
mod fuzz;
mod json;
mod mapping;
mod pipeline;
mod processor;
mod runtime;
mod stats;
mod swar;
mod transport;

pub use config::{Compression, Endpoint, ExporterBuilder, Framing, Scheme};
pub use encode::{Format, Gelf, Ltsv};
pub use error::{Error, Result, TlsFailure};
pub use exporter::{
    Exporter, GelfExporter, GelfExporterBuilder, LtsvExporter, LtsvExporterBuilder,
};
pub use mapping::TypeSuffixes;
pub use processor::{
    BatchProcessor, DirectProcessor, RECOMMENDED_MAX_EXPORT_BATCH_SIZE, RECOMMENDED_MAX_QUEUE_SIZE,
    RECOMMENDED_SCHEDULED_DELAY,
};
pub use stats::{Counters, Stats};
