//! The exporter's counters as a health check: delivery is healthy while
//! records leave the retry buffer and nothing is dropped. A service would
//! answer its `/health` endpoint from the same figures, or publish them as
//! OpenTelemetry metrics with `with_meter_provider` (feature `metrics`).
//!
//! ```sh
//! OTEL_EXPORTER_GELF_ENDPOINT=tcp://127.0.0.1:12201 \
//!     cargo run --example health --features tracing
//! ```
//!
//! Run it with no receiver listening to see the check turn unhealthy, with
//! the reason.

use std::time::Duration;

use djehouty::Stats;
use tracing_subscriber::prelude::*;

/// Healthy unless records were dropped, or delivery failed since the last
/// check and records are still waiting.
fn health(before: &Stats, now: &Stats) -> Result<(), String> {
    if now.dropped() > before.dropped() {
        return Err(format!(
            "{} record(s) dropped",
            now.dropped() - before.dropped()
        ));
    }
    if now.failures > before.failures && now.buffered_records > 0 {
        let reason = now
            .last_error
            .as_ref()
            .map_or_else(|| "unknown".to_string(), |e| e.to_string());
        return Err(format!(
            "{} record(s) waiting; last error: {reason}",
            now.buffered_records
        ));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = djehouty::GelfExporter::builder()
        .with_default_service_name("health-example")
        .tracing_layer()?;
    tracing_subscriber::registry()
        .with(layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();

    let counters = guard.counters();
    let mut before = counters.snapshot();
    for round in 0..3 {
        for i in 0..50 {
            tracing::info!(round, i, "work done");
        }
        std::thread::sleep(Duration::from_secs(1));
        let now = counters.snapshot();
        match health(&before, &now) {
            Ok(()) => println!("healthy: {} exported", now.exported),
            Err(reason) => println!("unhealthy: {reason}"),
        }
        before = now;
    }
    drop(guard); // flushes, bounded, and says on stderr what could not be delivered
    Ok(())
}
