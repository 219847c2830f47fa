//! Warnings raised while an exporter is built reach the application's
//! subscriber even when it is installed after `build()`, as the one-call
//! set-ups have it: they are kept, and told with the first records. In a
//! test binary of its own because it installs the global subscriber.

use djehouty_testkit as support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use djehouty::GelfExporter;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use support::pipeline::direct_provider;
use support::{Framing, Receiver};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(10);

/// The fields of every event the exporter emits (target `djehouty`).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl Capture {
    /// The events named `name`.
    fn named(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let name = Some(name.to_string());
        all.iter()
            .filter(|fields| fields.get("name") == name.as_ref())
            .cloned()
            .collect()
    }
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "djehouty" {
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(fields.0);
        }
    }
}

/// A `tcp://` exporter given a CA file, which it ignores, warning
/// `djehouty.CaFileIgnored` at `build()`.
fn warned_builder(receiver: &Receiver, ca_file: &std::path::Path) -> djehouty::GelfExporterBuilder {
    GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
        .with_ca_file(ca_file)
}

fn log_one(provider: &opentelemetry_sdk::logs::SdkLoggerProvider, body: &str) {
    let logger = provider.logger("build-warnings");
    let mut record = logger.create_log_record();
    record.set_body(body.to_string().into());
    logger.emit(record);
}

/// Waits until `capture` holds an event named `name`.
fn wait_for(capture: &Capture, name: &str) -> Vec<BTreeMap<String, String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = capture.named(name);
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "no {name} event");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_warning_at_build_reaches_a_subscriber_installed_after_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, "unused").expect("write");
    let receiver = Receiver::tcp(Framing::Nul);

    // Built while nothing listens: kept.
    let provider = direct_provider(warned_builder(&receiver, &ca_file));
    let capture = Capture::default();
    tracing_subscriber::registry().with(capture.clone()).init();
    assert!(capture.named("djehouty.WarningAtBuild").is_empty());

    // Told with the first record, naming the warning and its fields.
    log_one(&provider, "first");
    receiver.wait_frames(1, WAIT);
    let told = wait_for(&capture, "djehouty.WarningAtBuild");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["warning"], "djehouty.CaFileIgnored", "{told:?}");
    assert!(told[0]["details"].contains("tcp://127.0.0.1:"), "{told:?}");
    log_one(&provider, "second");
    receiver.wait_frames(2, WAIT);
    provider.shutdown().expect("shutdown");
    assert_eq!(
        capture.named("djehouty.WarningAtBuild").len(),
        1,
        "told once"
    );

    // Built while the subscriber listens: told at once, and not again.
    let provider = direct_provider(warned_builder(&receiver, &ca_file));
    assert_eq!(capture.named("djehouty.CaFileIgnored").len(), 1);
    log_one(&provider, "third");
    receiver.wait_frames(3, WAIT);
    provider.shutdown().expect("shutdown");
    assert_eq!(capture.named("djehouty.WarningAtBuild").len(), 1);
}
