//! Logs from `tracing` shipped as GELF to the endpoint named by the environment.
//!
//! ```sh
//! # against the Graylog of docker-compose.yml (see docker/README.md):
//! OTEL_EXPORTER_GELF_ENDPOINT=tls://localhost:12202 \
//! OTEL_EXPORTER_GELF_CERTIFICATE=docker/certs/ca.pem \
//!     cargo run --example tracing
//! ```

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
        .with_resource(
            Resource::builder()
                .with_service_name("tracing-example")
                .build(),
        )
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();

    // Records go to the exporter and to the console. The OpenTelemetry layer
    // ignores the SDK's and the exporter's own diagnostics.
    let otel_filter = EnvFilter::new("info")
        .add_directive("opentelemetry=off".parse()?)
        .add_directive("djehouty=off".parse()?);
    tracing_subscriber::registry()
        .with(OpenTelemetryTracingBridge::new(&provider).with_filter(otel_filter))
        .with(tracing_subscriber::fmt::layer().with_filter(EnvFilter::new("info")))
        .init();

    tracing::info!(user = "alice", items = 3, "cart updated");
    tracing::warn!(name: "cache.miss", target: "shop::cache", key = "sku-42", "cache miss");
    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out");
    tracing::error!(error = &err as &dyn std::error::Error, "order failed");

    // The bridge keeps a clone of the provider: shut it down explicitly.
    provider.shutdown()?;
    Ok(())
}
