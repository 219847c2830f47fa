//! # djehouty
//!
//! An [OpenTelemetry](https://opentelemetry.io) logs exporter for Graylog-compatible
//! platforms: it maps each log record, its instrumentation scope and the provider's
//! resource onto [GELF 1.1](https://go2docs.graylog.org/current/getting_in_log_data/gelf.html)
//! or [LTSV](http://ltsv.org) and writes them over TCP or TLS (GELF also over UDP
//! and HTTP(S)) to Graylog, OVHcloud
//! Logs Data Platform, rsyslog or anything that speaks these formats.
//!
//! With the cargo feature `tracing`, one call builds the exporter, its
//! processor, the OpenTelemetry provider and the `tracing` layer that feeds
//! it; the [`LogGuard`] delivers what is still buffered when dropped:
//!
//! ```no_run
//! # #[cfg(feature = "tracing")] {
//! use tracing_subscriber::prelude::*;
//!
//! let (layer, _guard) = djehouty::GelfExporter::builder()
//!     .with_endpoint("tls://graylog.example.com:12202")
//!     .with_default_service_name("checkout") // OTEL_SERVICE_NAME wins
//!     .with_extra("environment", "production")
//!     .tracing_layer()?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::filter::LevelFilter::INFO)
//!     .with(layer)
//!     .with(tracing_subscriber::fmt::layer())
//!     .init();
//! tracing::info!(user = "alice", "cart updated");
//! # }
//! # Ok::<(), djehouty::Error>(())
//! ```
//!
//! With the feature `log`, `install_log(level)` installs the `log` logger
//! instead. [`build_provider`](ExporterBuilder::build_provider) stops at the
//! provider, for another bridge; [`build`](ExporterBuilder::build) at the
//! exporter, for a pipeline built by hand:
//!
//! ```no_run
//! use opentelemetry_sdk::logs::SdkLoggerProvider;
//! use opentelemetry_sdk::Resource;
//!
//! let exporter = djehouty::GelfExporter::builder()
//!     .with_endpoint("tls://graylog.example.com:12202")
//!     .build()?;
//! let provider = SdkLoggerProvider::builder()
//!     .with_resource(Resource::builder().build())
//!     .with_log_processor(djehouty::DirectProcessor::new(exporter))
//!     .build();
//! // Attach a bridge (opentelemetry-appender-tracing or -log), log, and at exit:
//! provider.shutdown().ok();
//! # Ok::<(), djehouty::Error>(())
//! ```
//!
//! The layout follows the data: [`config`] (builder, endpoint, environment)
//! → mapping (record → named, typed fields) → encode ([`Gelf`], [`Ltsv`],
//! framing, compression, chunking) → delivery (the retry buffer and its
//! task) → transport (TCP, TLS, UDP, HTTP; one connect, one backoff). The
//! [`Exporter`] (the SDK seam) and the processors, [`DirectProcessor`]
//! (records encoded on the logging thread, which waits, bounded, for room
//! while the endpoint is healthy) and [`BatchProcessor`] (the SDK's batch
//! processor), drive one pipeline; [`Counters`] watch it all. The one-call
//! set-ups and their [`LogGuard`] wire it to the OpenTelemetry SDK and to
//! `tracing` or `log`.
//!
//! ## Cargo features
#![doc = document_features::document_features!()]
// One `ioctl` (transport/acked.rs) is the only unsafe code, allowed there alone.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod config;
mod delivery;
mod encode;
mod error;
mod exporter;
mod frames;
mod json;
mod mapping;
mod memo;
#[cfg(feature = "metrics")]
mod metrics;
mod pipeline;
mod processor;
mod runtime;
mod setup;
mod stats;
mod swar;
mod transport;
mod warnings;

pub use config::{Compression, Endpoint, ExporterBuilder, Framing, Scheme};
pub use encode::{Format, Gelf, Ltsv};
pub use error::{Error, Result, Step, TlsFailure};
pub use exporter::{
    Exporter, GelfExporter, GelfExporterBuilder, LtsvExporter, LtsvExporterBuilder,
};
pub use mapping::TypeSuffixes;
pub use processor::{
    BatchProcessor, DirectProcessor, RECOMMENDED_MAX_EXPORT_BATCH_SIZE, RECOMMENDED_MAX_QUEUE_SIZE,
    RECOMMENDED_SCHEDULED_DELAY,
};
pub use setup::LogGuard;
pub use stats::{Counters, Stats};

/// The README's examples, compiled as doctests so that they work as copied
/// (they use `tracing_layer`: with the `tracing` feature).
#[cfg(all(doctest, feature = "tracing"))]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
