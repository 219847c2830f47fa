//! Warnings raised while an exporter is built reach the application's
//! subscriber even when it is installed after `build()`, as the one-call
//! set-ups have it: they are kept, and told with the first records. In a
//! test binary of its own because it installs the global subscriber.

use djehouty_testkit as support;

use std::time::{Duration, Instant};

use djehouty::GelfExporter;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use support::diagnostics::{Capture, Diagnostic};
use support::pipeline::direct_provider;
use support::{Framing, Receiver};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(10);

/// A `tcp://` exporter given a CA file, which it ignores, warning
/// `djehouty.CaFileIgnored` at `build()`.
fn warned_builder(receiver: &Receiver, ca_file: &std::path::Path) -> djehouty::GelfExporterBuilder {
    GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
        .with_ca_file(ca_file)
}

/// A CA file (its content unread: a `tcp://` exporter ignores it), in a
/// directory that lasts as long as the guard returned with it.
fn a_ca_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, "unused").expect("write");
    (dir, ca_file)
}

/// A child that ended well wrote `djehouty.CaFileIgnored` once to stderr,
/// as a warning raised while building the exporter.
fn assert_the_ca_warning_on_stderr(output: &std::process::Output) {
    let lines = support::child_stderr_lines(
        output,
        "djehouty: warning raised while building the exporter",
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("djehouty.CaFileIgnored"), "{lines:?}");
}

fn log_one(provider: &opentelemetry_sdk::logs::SdkLoggerProvider, body: &str) {
    let logger = provider.logger("build-warnings");
    let mut record = logger.create_log_record();
    record.set_body(body.to_string().into());
    logger.emit(record);
}

/// Waits until `capture` holds an event named `name`.
fn wait_for(capture: &Capture, name: &str) -> Vec<Diagnostic> {
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
    let (_dir, ca_file) = a_ca_file();
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
    assert_eq!(
        told[0].field("warning"),
        "djehouty.CaFileIgnored",
        "{told:?}"
    );
    assert!(
        told[0].field("details").contains("tcp://127.0.0.1:"),
        "{told:?}"
    );
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

/// Set in the child process of `a_warning_at_build_nobody_hears_goes_to_stderr`.
const CHILD: &str = "DJEHOUTY_BUILD_WARNINGS_CHILD";

/// With no subscriber at all, even when the first records go out (an
/// application that logs through `log` alone), a kept warning is written to
/// stderr rather than lost.
#[test]
fn a_warning_at_build_nobody_hears_goes_to_stderr() {
    const NAME: &str = "a_warning_at_build_nobody_hears_goes_to_stderr";
    if std::env::var_os(CHILD).is_some() {
        let (_dir, ca_file) = a_ca_file();
        let receiver = Receiver::tcp(Framing::Nul);
        let provider = direct_provider(warned_builder(&receiver, &ca_file));
        log_one(&provider, "first");
        receiver.wait_frames(1, WAIT);
        provider.shutdown().expect("shutdown");
        return;
    }
    // Only a child's stderr shows it.
    let output = support::rerun_in_child(NAME, CHILD);
    assert_the_ca_warning_on_stderr(&output);
}

/// Set in the child process of `a_failed_builds_warnings_are_told_with_its_error`.
const FAILED_CHILD: &str = "DJEHOUTY_BUILD_WARNINGS_FAILED_CHILD";

/// A build that fails after a warning tells it then (no records will): the
/// warning may explain the error.
#[test]
fn a_failed_builds_warnings_are_told_with_its_error() {
    const NAME: &str = "a_failed_builds_warnings_are_told_with_its_error";
    if std::env::var_os(FAILED_CHILD).is_some() {
        let (_dir, ca_file) = a_ca_file();
        let receiver = Receiver::tcp(Framing::Nul);
        // Warned of the CA file, then refused for the frame size.
        let built = warned_builder(&receiver, &ca_file)
            .with_max_frame_size(10)
            .build();
        assert!(built.is_err(), "the build was to fail");
        return;
    }
    let output = support::rerun_in_child(NAME, FAILED_CHILD);
    assert_the_ca_warning_on_stderr(&output);
}
