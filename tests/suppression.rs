//! The exporter's own diagnostics never loop back into it: with the tracing
//! bridge installed as the global subscriber (no filter at all), the events the
//! exporter emits while reconnecting on its I/O threads are not exported.
//! Alone in its test binary because it installs a global subscriber.

use djehouty_testkit as support;

use std::time::Duration;

use djehouty::GelfExporter;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use serde_json::Value;
use support::diagnostics::Capture;
use support::pipeline::batch_provider;
use support::{assert_graylog_accepts, Framing, Receiver};
use tracing_subscriber::prelude::*;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn exporter_diagnostics_are_not_exported() {
    let receiver = Receiver::tcp(Framing::Nul);
    let provider = batch_provider(
        GelfExporter::builder().with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port())),
    );
    // Beside the bridge, a layer that sees the exporter's events: one must
    // have been emitted for the test to show anything.
    let diagnostics = Capture::default();
    tracing_subscriber::registry()
        .with(OpenTelemetryTracingBridge::new(&provider))
        .with(diagnostics.clone())
        .init();

    tracing::info!("app 1");
    provider.force_flush().expect("flush 1");
    receiver.wait_frames(1, WAIT);
    // The receiver closes the connection: the next export notices it on the
    // exporter's I/O thread and reports it there (a debug event) before
    // reconnecting.
    receiver.drop_connections();
    receiver.wait_closed(1, WAIT);
    std::thread::sleep(Duration::from_millis(50));
    tracing::info!("app 2");
    provider.force_flush().expect("flush 2");
    tracing::info!("app 3");
    provider.force_flush().expect("flush 3");
    provider.shutdown().expect("shutdown");

    if cfg!(feature = "internal-logs") {
        assert!(
            !diagnostics
                .named("djehouty.PeerClosedConnection")
                .is_empty(),
            "the exporter emitted no event while reconnecting"
        );
    }
    let frames: Vec<_> = receiver
        .wait_frames(3, WAIT)
        .iter()
        .map(|f| assert_graylog_accepts(f))
        .collect();
    let target = |f: &serde_json::Map<String, Value>| {
        f.get("_target")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let ours: Vec<_> = frames
        .iter()
        .filter(|f| target(f).starts_with("djehouty"))
        .collect();
    assert!(
        ours.is_empty(),
        "the exporter exported its own events: {ours:#?}"
    );
    let app: Vec<_> = frames
        .iter()
        .filter(|f| target(f) == "suppression")
        .map(|f| f["short_message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(app, ["app 1", "app 2", "app 3"]);
    assert_eq!(receiver.connections(), 2, "reconnected once");
}
