//! Logs from `tracing`, shipped as GELF to the endpoint named by the
//! environment and printed on the console: the one-call set-up.
//!
//! ```sh
//! # against the Graylog of docker-compose.yml (see docker/README.md):
//! OTEL_EXPORTER_GELF_ENDPOINT=tls://localhost:12202 \
//! OTEL_EXPORTER_GELF_CERTIFICATE=docker/certs/ca.pem \
//!     cargo run --example tracing --features tracing
//! ```
//!
//! `RUST_LOG` chooses what is logged (default `info`). `OTEL_SERVICE_NAME` or
//! `OTEL_RESOURCE_ATTRIBUTES` name the service; without them it is
//! `tracing-example`.

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
    let (layer, guard) = djehouty::GelfExporter::builder()
        .with_default_service_name("tracing-example")
        .tracing_layer()?;
    // RUST_LOG chooses what is logged, `info` by default. The console also
    // shows the exporter's own warnings, which are never shipped.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .with(tracing_subscriber::fmt::layer())
        .init();
    println!("shipping to {}", guard.endpoint());

    tracing::info!(user = "alice", items = 3, "cart updated");
    tracing::warn!(name: "cache.miss", target: "shop::cache", key = "sku-42", "cache miss");
    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out");
    tracing::error!(error = &err as &dyn std::error::Error, "order failed");

    // Dropping the guard would do as well, printing what was lost; shutdown
    // returns it.
    guard.shutdown()?;
    Ok(())
}
