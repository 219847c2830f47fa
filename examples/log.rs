//! Logs from the `log` crate (with key-values) shipped as LTSV or GELF.
//!
//! ```sh
//! OTEL_EXPORTER_GELF_ENDPOINT=tcp://127.0.0.1:12201 cargo run --example log
//! # or LTSV, to a raw TCP input:
//! OTEL_EXPORTER_LTSV_ENDPOINT=tcp://127.0.0.1:5555 cargo run --example log -- ltsv
//! ```

use opentelemetry_appender_log::OpenTelemetryLogBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;

fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let ltsv = std::env::args().nth(1).as_deref() == Some("ltsv");
    let builder = SdkLoggerProvider::builder()
        .with_resource(Resource::builder().with_service_name("log-example").build());
    let provider = if ltsv {
        builder
            .with_log_processor(djehouty::DirectProcessor::new(
                djehouty::LtsvExporter::builder().build()?,
            ))
            .build()
    } else {
        builder
            .with_log_processor(djehouty::DirectProcessor::new(
                djehouty::GelfExporter::builder().build()?,
            ))
            .build()
    };

    log::set_boxed_logger(Box::new(OpenTelemetryLogBridge::new(&provider)))?;
    log::set_max_level(log::LevelFilter::Info);

    log::info!(user = "alice", attempts = 3; "login succeeded");
    log::warn!(target: "app::disk", mount = "/var"; "disk {}% full", 91);
    log::error!("could not reach {}", "db-1");

    provider.shutdown()?;
    println!("sent 3 records");
    Ok(())
}
