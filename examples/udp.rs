//! GELF over UDP, chunked and compressed: no connection to keep and nothing
//! to wait for, and nothing to tell whether a datagram arrived. Use it where
//! losing a record now and then is acceptable.
//!
//! ```sh
//! OTEL_EXPORTER_GELF_ENDPOINT=udp://127.0.0.1:12201 \
//!     cargo run --example udp --features tracing
//! ```
//!
//! Across the internet, datagrams of 1,420 bytes cross most paths whole;
//! larger messages go out as GELF chunks (at most 128 per message).

use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = djehouty::GelfExporter::builder()
        .with_udp_chunk_size(1420)
        .with_compression(djehouty::Compression::Gzip) // the default; Zlib and None too
        .with_default_service_name("udp-example")
        .tracing_layer()?;
    tracing_subscriber::registry()
        .with(layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();

    tracing::info!(sensor = "t1", celsius = 21.5, "reading");
    // A long text is chunked rather than cut.
    tracing::info!(dump = "x".repeat(10_000).as_str(), "a large record");
    guard.shutdown()?;
    Ok(())
}
