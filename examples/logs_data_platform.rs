//! Ships `tracing` logs to an OVHcloud Logs Data Platform stream.
//!
//! Copy your cluster's address from the LDP "About" page and the stream's write
//! token from its settings:
//!
//! ```sh
//! LDP_ENDPOINT=gra1.logs.ovh.com LDP_TOKEN=xxxxxxxx-xxxx-... \
//!     cargo run --example logs_data_platform
//! ```
//!
//! `LDP_ENDPOINT` is the cluster's host (the GELF TLS port 12202 is then used)
//! or a whole endpoint such as `tls://gra1.logs.ovh.com:12202`.

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let (Some(cluster), Some(token)) = (var("LDP_ENDPOINT"), var("LDP_TOKEN")) else {
        eprintln!(
            "set LDP_ENDPOINT (your cluster, e.g. gra1.logs.ovh.com) and LDP_TOKEN \
             (your stream's write token) to run this example"
        );
        std::process::exit(2);
    };

    // The LDP profile: TLS on LDP's GELF port, the token as `_X-OVH-TOKEN` on
    // every record (no record attribute can override it), and typed field names
    // (`latency_ms_double`, `attempt_long`, `cached_bool`) so LDP keeps the types.
    let exporter = djehouty::GelfExporter::builder()
        .for_logs_data_platform(cluster, token)
        .build()?;
    let provider = SdkLoggerProvider::builder()
        .with_resource(Resource::builder().with_service_name("ldp-example").build())
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    let otel_filter = EnvFilter::new("info")
        .add_directive("opentelemetry=off".parse()?)
        .add_directive("djehouty=off".parse()?);
    tracing_subscriber::registry()
        .with(OpenTelemetryTracingBridge::new(&provider).with_filter(otel_filter))
        .init();

    tracing::info!(
        user = "alice",
        latency_ms = 12.5,
        attempt = 2,
        cached = false,
        "hello from djehouty"
    );
    provider.shutdown()?;
    println!("sent; look for service_name:ldp-example in your stream");
    Ok(())
}
