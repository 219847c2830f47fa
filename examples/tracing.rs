//! Logs from `tracing`, shipped as GELF to the endpoint named by the
//! environment and printed on the console.
//!
//! ```sh
//! # against the Graylog of docker-compose.yml (see docker/README.md):
//! OTEL_EXPORTER_GELF_ENDPOINT=tls://localhost:12202 \
//! OTEL_EXPORTER_GELF_CERTIFICATE=docker/certs/ca.pem \
//!     cargo run --example tracing
//! ```
//!
//! `RUST_LOG` chooses what is logged (default `info`). `OTEL_SERVICE_NAME` or
//! `OTEL_RESOURCE_ATTRIBUTES` name the service; without them it is
//! `tracing-example`.

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Endpoint and CA come from OTEL_EXPORTER_GELF_ENDPOINT / _CERTIFICATE.
    let exporter = djehouty::GelfExporter::builder().build()?;
    println!("shipping to {}", exporter.endpoint());
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource("tracing-example"))
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();

    // RUST_LOG chooses what is logged, `info` by default.
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The exported logs leave out the SDK's and the exporter's own
    // diagnostics; the console shows them, warnings about delivery included.
    let export_filter = filter()
        .add_directive("opentelemetry=off".parse()?)
        .add_directive("djehouty=off".parse()?);
    tracing_subscriber::registry()
        .with(OpenTelemetryTracingBridge::new(&provider).with_filter(export_filter))
        .with(tracing_subscriber::fmt::layer().with_filter(filter()))
        .init();

    tracing::info!(user = "alice", items = 3, "cart updated");
    tracing::warn!(name: "cache.miss", target: "shop::cache", key = "sku-42", "cache miss");
    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out");
    tracing::error!(error = &err as &dyn std::error::Error, "order failed");

    // The bridge keeps a clone of the provider: shut it down explicitly, which
    // writes what is still buffered (or says what could not be delivered).
    provider.shutdown()?;
    Ok(())
}

/// The resource the SDK detects from the environment (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`), with `fallback` as the service name only when
/// no variable names the service: the variables always win.
fn resource(fallback: &'static str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected.iter().any(|(key, value)| {
        key.as_str() == "service.name" && !value.as_str().starts_with("unknown_service")
    });
    if named {
        detected
    } else {
        Resource::builder().with_service_name(fallback).build()
    }
}
