//! The one-call set-up for `log` (`install_log`): `log` records arrive with
//! their key-values, the exporter's own diagnostics and records below the
//! level are not shipped, and a second installation is refused. Alone in its
//! test binary: the `log` logger is process-wide.

use djehouty_testkit as support;

use std::time::Duration;

use djehouty::GelfExporter;
use serde_json::{Map, Value};
use support::pipeline::{assert_field, by_message};
use support::{assert_graylog_accepts, Framing, Receiver};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn log_records_arrive_and_diagnostics_stay_home() {
    let receiver = Receiver::tcp(Framing::Nul);
    let builder =
        || GelfExporter::builder().with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()));
    let guard = builder().install_log(log::LevelFilter::Info).unwrap();

    log::info!(user = "alice", attempts = 3; "login succeeded");
    log::warn!(target: "opentelemetry_sdk", "an SDK diagnostic");
    log::warn!(target: "djehouty::x", "an exporter diagnostic");
    log::info!(target: "rustls::client", "a transport diagnostic");
    log::debug!("below the level");
    // Last: once it arrived, so did everything logged before it.
    log::error!(target: "app::disk", "disk {}% full", 91);

    let second = builder().install_log(log::LevelFilter::Info);
    assert!(
        matches!(second, Err(djehouty::Error::LoggerAlreadySet)),
        "{second:?}"
    );
    // Refused before anything is built (no pipeline started and stopped):
    // an endpoint that would not build is not even read.
    let third = GelfExporter::builder()
        .with_endpoint("no-such-scheme://127.0.0.1:1")
        .install_log(log::LevelFilter::Info);
    assert!(
        matches!(third, Err(djehouty::Error::LoggerAlreadySet)),
        "{third:?}"
    );
    guard.shutdown().unwrap();

    let frames: Vec<Map<String, Value>> = receiver
        .wait_frames(2, WAIT)
        .iter()
        .map(|f| assert_graylog_accepts(f))
        .collect();
    let messages: Vec<_> = frames
        .iter()
        .map(|f| f["short_message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(messages, ["login succeeded", "disk 91% full"]);
    let f = by_message(&frames, "login succeeded");
    assert_field(f, "level", 6.into());
    assert_field(f, "_user", "alice".into());
    assert_field(f, "_attempts", 3.into());
    assert_field(f, "_target", "setup_log".into());
    let f = by_message(&frames, "disk 91% full");
    assert_field(f, "level", 3.into());
    assert_field(f, "_target", "app::disk".into());
}

/// Set in the child process of
/// `a_record_from_a_late_thread_local_destructor_is_counted_not_fatal`.
const CHILD: &str = "DJEHOUTY_SETUP_LOG_CHILD";

/// A record logged from a thread-local destructor that runs after
/// OpenTelemetry's context was destroyed (which the SDK asks for every
/// record, and would panic, aborting the process) is dropped and counted.
#[test]
fn a_record_from_a_late_thread_local_destructor_is_counted_not_fatal() {
    const NAME: &str = "a_record_from_a_late_thread_local_destructor_is_counted_not_fatal";
    if std::env::var_os(CHILD).is_some() {
        let receiver = Receiver::tcp(Framing::Nul);
        let guard = GelfExporter::builder()
            .with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
            .install_log(log::LevelFilter::Info)
            .unwrap();
        let counters = guard.counters();
        support::call_late_at_thread_exit(
            || log::warn!("from a late destructor"),
            || log::info!("from the thread"),
        );
        let frames = receiver.wait_frames(1, WAIT);
        let frame = assert_graylog_accepts(&frames[0]);
        assert_eq!(frame["short_message"], "from the thread");
        let _ = guard.shutdown();
        println!(
            "dropped_at_shutdown={}",
            counters.snapshot().dropped_at_shutdown
        );
        return;
    }
    // A panic in a destructor aborts the process: only a child shows it.
    let output = support::rerun_in_child(NAME, CHILD);
    support::child_stderr_lines(&output, "");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("dropped_at_shutdown=1"), "{stdout}");
}
