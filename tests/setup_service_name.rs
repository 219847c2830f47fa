//! The service name of a one-call set-up: the builder's default, which
//! `OTEL_RESOURCE_ATTRIBUTES` and then `OTEL_SERVICE_NAME` override. Alone in
//! its test binary: it sets process-wide environment variables.

use djehouty_testkit as support;

use std::time::Duration;

use djehouty::GelfExporter;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use serde_json::Value;
use support::{assert_graylog_accepts, Framing, Receiver};

const WAIT: Duration = Duration::from_secs(10);

/// The `_service_name` of a record shipped through `build_provider` with the
/// default service name `checkout`.
fn shipped_service_name() -> Value {
    let receiver = Receiver::tcp(Framing::Nul);
    let guard = GelfExporter::builder()
        .with_endpoint(format!("tcp://127.0.0.1:{}", receiver.port()))
        .with_default_service_name("checkout")
        .build_provider()
        .unwrap();
    let logger = guard.provider().logger("app");
    let mut record = logger.create_log_record();
    record.set_body("hello".into());
    logger.emit(record);
    guard.shutdown().unwrap();
    let frames = receiver.wait_frames(1, WAIT);
    assert_graylog_accepts(&frames[0])["_service_name"].clone()
}

#[test]
fn the_environment_wins_over_the_default_service_name() {
    const SERVICE: &str = "OTEL_SERVICE_NAME";
    const ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    std::env::remove_var(SERVICE);
    std::env::remove_var(ATTRIBUTES);
    assert_eq!(shipped_service_name(), "checkout");

    // Empty is unset, as for the SDK.
    std::env::set_var(SERVICE, "");
    std::env::set_var(ATTRIBUTES, "deployment.environment.name=ci");
    assert_eq!(shipped_service_name(), "checkout");

    std::env::set_var(ATTRIBUTES, "service.name=from-attributes");
    assert_eq!(shipped_service_name(), "from-attributes");

    // Percent-decoded, as the specification asks.
    std::env::set_var(ATTRIBUTES, "service.name=check%20out%2Ceu");
    assert_eq!(shipped_service_name(), "check out,eu");

    std::env::set_var(SERVICE, "from-variable");
    assert_eq!(shipped_service_name(), "from-variable");

    // A value that is not UTF-8 is refused by name, not taken as unset
    // (the default would then apply unseen), and not shown.
    #[cfg(unix)]
    for name in [SERVICE, ATTRIBUTES] {
        use std::os::unix::ffi::OsStrExt as _;
        let saved = std::env::var_os(name);
        std::env::set_var(name, std::ffi::OsStr::from_bytes(b"check\xffout"));
        let error = GelfExporter::builder()
            .with_endpoint("tcp://127.0.0.1:9")
            .with_default_service_name("checkout")
            .build_provider()
            .expect_err("refused");
        let text = error.to_string();
        assert!(text.contains(name) && text.contains("not UTF-8"), "{text}");
        assert!(!text.contains("check"), "{text}");
        match saved {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}
