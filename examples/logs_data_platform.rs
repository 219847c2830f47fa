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
//! or a whole endpoint such as `tls://gra1.logs.ovh.com:12202`. `RUST_LOG`
//! chooses what is logged (default `info`); `OTEL_SERVICE_NAME` names the
//! service (default `ldp-example`).

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
    let resource = resource("ldp-example");
    let service = resource
        .iter()
        .find(|(key, _)| key.as_str() == "service.name")
        .map(|(_, name)| name.as_str().into_owned())
        .unwrap_or_default();
    let provider = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();

    // RUST_LOG chooses what is logged, `info` by default. The stream gets the
    // application's records only; the console also shows the SDK's and the
    // exporter's own diagnostics (an unreachable cluster, a TLS failure).
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let export_filter = filter()
        .add_directive("opentelemetry=off".parse()?)
        .add_directive("djehouty=off".parse()?);
    tracing_subscriber::registry()
        .with(OpenTelemetryTracingBridge::new(&provider).with_filter(export_filter))
        .with(tracing_subscriber::fmt::layer().with_filter(filter()))
        .init();

    tracing::info!(
        user = "alice",
        latency_ms = 12.5,
        attempt = 2,
        cached = false,
        "hello from djehouty"
    );
    provider.shutdown()?;
    println!("sent; look for service_name:{service} in your stream");
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
