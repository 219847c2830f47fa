//! Logs from the `log` crate (with key-values), shipped as GELF or LTSV and
//! printed on the console.
//!
//! ```sh
//! OTEL_EXPORTER_GELF_ENDPOINT=tcp://127.0.0.1:12201 cargo run --example log --features log
//! # or LTSV, to a raw TCP input:
//! OTEL_EXPORTER_LTSV_ENDPOINT=tcp://127.0.0.1:5555 cargo run --example log --features log -- ltsv
//! ```
//!
//! `RUST_LOG` chooses what is logged (default `info`): a level for `log`
//! records (`debug`, `warn`, ...), and `tracing-subscriber` directives for the
//! SDK's and the exporter's own diagnostics, which are `tracing` events.
//! `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name the service; without
//! them it is `log-example`.
//!
//! An application that needs no console output installs the logger with
//! `.install_log(level)?` instead of `log_logger()` and the `Tee`.

use log::{LevelFilter, Log, Metadata, Record};
use tracing_subscriber::EnvFilter;

fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The SDK and the exporter report through `tracing` (a delivery failure,
    // records dropped): print those on the console. `set_global_default`
    // rather than `init()`, which would also take the `log` logger when
    // tracing-subscriber's `tracing-log` feature is on.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let console = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .finish();
    tracing::subscriber::set_global_default(console)?;

    // Endpoint and CA come from OTEL_EXPORTER_{GELF,LTSV}_ENDPOINT / _CERTIFICATE.
    let ltsv = std::env::args().nth(1).as_deref() == Some("ltsv");
    let (otel, guard): (Box<dyn Log>, _) = if ltsv {
        let (logger, guard) = djehouty::LtsvExporter::builder()
            .with_default_service_name("log-example")
            .log_logger()?;
        (Box::new(logger), guard)
    } else {
        let (logger, guard) = djehouty::GelfExporter::builder()
            .with_default_service_name("log-example")
            .log_logger()?;
        (Box::new(logger), guard)
    };

    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(LevelFilter::Info);
    log::set_boxed_logger(Box::new(Tee { otel }))?;
    log::set_max_level(level);

    log::info!(user = "alice", attempts = 3; "login succeeded");
    log::warn!(target: "app::disk", mount = "/var"; "disk {}% full", 91);
    log::error!("could not reach {}", "db-1");

    // Dropping the guard would do as well, printing what was lost; shutdown
    // returns it.
    guard.shutdown()?;
    println!("sent 3 records");
    Ok(())
}

/// A `log` logger that prints each record on stderr and hands it to
/// djehouty's. (`log` takes a single logger: a crate such as `env_logger`
/// cannot run beside it without a wrapper like this one.)
struct Tee {
    otel: Box<dyn Log>,
}

impl Log for Tee {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        eprintln!(
            "{:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
        // djehouty's logger leaves out the SDK's and its own diagnostics.
        self.otel.log(record);
    }

    fn flush(&self) {
        self.otel.flush();
    }
}
