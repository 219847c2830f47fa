//! GELF over HTTPS to a Graylog "GELF HTTP" input with bulk receiving on:
//! batches of records in one request each, gzip-compressed, with the header
//! a proxy in front of Graylog may require.
//!
//! ```sh
//! OTEL_EXPORTER_GELF_ENDPOINT=https://graylog.example.com/gelf \
//! OTEL_EXPORTER_GELF_HEADERS="Authorization=Bearer%20my-token" \
//!     cargo run --example http --features tracing
//! ```
//!
//! Without a port, `https://` uses 443 (and `http://` 80); without a path,
//! `/gelf`. Graylog answers 202 to each request; a 4xx refusal is counted in
//! `Stats::dropped_rejected`, a 5xx retried.

use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = djehouty::GelfExporter::builder()
        // Or the endpoint in code; the environment's is used when this is absent.
        // .with_endpoint("https://graylog.example.com/gelf")
        // One request per batch: the input's "Enable Bulk Receiving" option
        // (Graylog 5.0 and later) must be on, or every request is refused
        // (400, not retried).
        .with_http_bulk(true)
        .with_http_gzip(true)
        .with_default_service_name("http-example")
        .tracing_layer()?;
    tracing_subscriber::registry()
        .with(layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .with(tracing_subscriber::fmt::layer())
        .init();

    for i in 0..100 {
        tracing::info!(request = i, path = "/checkout", "request served");
    }
    let stats = guard.counters().snapshot();
    println!(
        "so far: {} exported, {} waiting",
        stats.exported, stats.buffered_records
    );
    guard.shutdown()?;
    Ok(())
}
