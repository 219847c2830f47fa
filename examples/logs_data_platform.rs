//! Ships `tracing` logs to an OVHcloud Logs Data Platform stream.
//!
//! Copy the GELF TLS address of your cluster from the LDP "About" page and the
//! stream's write token from its settings:
//!
//! ```sh
//! LDP_ENDPOINT=tls://gra1.logs.ovh.com:12202 LDP_TOKEN=xxxxxxxx-xxxx-... \
//!     cargo run --example logs_data_platform
//! ```

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (Ok(endpoint), Ok(token)) = (std::env::var("LDP_ENDPOINT"), std::env::var("LDP_TOKEN"))
    else {
        eprintln!(
            "set LDP_ENDPOINT (e.g. tls://gra1.logs.ovh.com:12202) and LDP_TOKEN \
             (your stream's write token) to run this example"
        );
        std::process::exit(2);
    };

    // LDP routes each record to a stream by the `X-OVH-TOKEN` field; as a static
    // extra it is on every record and no record attribute can override it.
    let exporter = djehouty::GelfExporter::builder()
        .with_endpoint(endpoint)
        .with_extra("X-OVH-TOKEN", token)
        .build()?;
    let provider = SdkLoggerProvider::builder()
        .with_resource(Resource::builder().with_service_name("ldp-example").build())
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    let otel_filter = EnvFilter::new("info")
        .add_directive("opentelemetry=off".parse()?)
        .add_directive("djehouty=off".parse()?);
    tracing_subscriber::registry()
        .with(OpenTelemetryTracingBridge::new(&provider).with_filter(otel_filter))
        .init();

    tracing::info!(user = "alice", latency_ms = 12.5, "hello from djehouty");
    provider.shutdown()?;
    println!("sent; look for service_name:ldp-example in your stream");
    Ok(())
}
