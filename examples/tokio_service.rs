//! An async service on `#[tokio::main]`: tasks log through `tracing` while
//! the exporter ships GELF from its own I/O thread, so an unreachable
//! Graylog never blocks the runtime's workers (a slow one may hold a logging
//! call up to `DirectProcessor::DEFAULT_MAX_WAIT`, the backpressure that
//! keeps its records).
//!
//! ```sh
//! OTEL_EXPORTER_GELF_ENDPOINT=tcp://127.0.0.1:12201 \
//!     cargo run --example tokio_service --features tracing
//! ```
//!
//! `RUST_LOG` chooses what is logged (default `info`); `OTEL_SERVICE_NAME`
//! names the service (default `orders`).

use std::time::Duration;

use tracing::Instrument;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = djehouty::GelfExporter::builder()
        .with_default_service_name("orders")
        .tracing_layer()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .with(tracing_subscriber::fmt::layer())
        .init();

    let workers: Vec<_> = (0..4)
        .map(|worker| {
            tokio::spawn(
                async move {
                    for order in 0..5 {
                        tracing::info!(order, "order accepted");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                .instrument(tracing::info_span!("worker", worker)),
            )
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    tracing::info!("all orders handled");

    // Within the runtime too, the guard's shutdown is bounded
    // (`LogGuard::SHUTDOWN_TIMEOUT`); it returns what could not be delivered.
    if let Err(error) = guard.shutdown() {
        eprintln!("logs lost: {error}");
    }
    Ok(())
}
