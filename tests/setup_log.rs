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
