//! TLS: verified connections over TLS 1.2 and 1.3 to a DNS name, an IPv4 and an
//! IPv6 address; refusals (unknown CA, wrong name, plaintext server) that name
//! their cause and deliver nothing; configuration errors from `build()`.

mod support;

use std::time::Duration;

use djehouty::{Error, GelfExporter};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _};
use rustls::ProtocolVersion;
use support::pipeline::*;
use support::{assert_graylog_accepts, Framing, Receiver, TestPki, TlsVersions};

const WAIT: Duration = Duration::from_secs(10);

fn tls_builder(pki: &TestPki, host: &str, port: u16) -> djehouty::GelfExporterBuilder {
    GelfExporter::builder()
        .with_endpoint(format!("tls://{host}:{port}"))
        .with_ca_file(&pki.ca_pem)
}

fn ship_one(builder: djehouty::GelfExporterBuilder, message: &str) {
    let provider = batch_provider(builder);
    with_tracing(&provider, || tracing::info!(secret_sauce = 1, "{message}"));
    provider.shutdown().expect("shutdown");
}

#[test]
fn tls12_and_tls13_with_a_dns_name() {
    let pki = TestPki::generate();
    for (versions, expected) in [
        (TlsVersions::Tls12, ProtocolVersion::TLSv1_2),
        (TlsVersions::Tls13, ProtocolVersion::TLSv1_3),
    ] {
        let receiver = Receiver::tls(Framing::Nul, &pki, versions);
        ship_one(tls_builder(&pki, "localhost", receiver.port()), "over tls");
        let frames = receiver.wait_frames(1, WAIT);
        let f = assert_graylog_accepts(&frames[0]);
        assert_field(&f, "short_message", "over tls".into());
        assert_field(&f, "_secret_sauce", 1.into());
        assert_eq!(receiver.tls_versions(), vec![expected]);
        assert_eq!(receiver.server_names(), vec![Some("localhost".to_string())]);
        // Closed with close_notify, nothing left half-read.
        receiver.wait_closed(1, WAIT);
        assert_eq!(receiver.errors(), Vec::<String>::new());
        receiver.assert_no_partial();
    }
}

#[test]
fn tls_to_ip_addresses() {
    let pki = TestPki::generate();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    ship_one(tls_builder(&pki, "127.0.0.1", receiver.port()), "to ipv4");
    assert_graylog_accepts(&receiver.wait_frames(1, WAIT)[0]);
    assert_eq!(
        receiver.server_names(),
        vec![None],
        "no SNI for an IP address"
    );

    let receiver = Receiver::ipv6_tls(Framing::Nul, &pki, TlsVersions::Both)
        .expect("this machine has no IPv6 loopback ([::1]); the IPv6 test needs one");
    ship_one(tls_builder(&pki, "[::1]", receiver.port()), "to ipv6");
    let f = assert_graylog_accepts(&receiver.wait_frames(1, WAIT)[0]);
    assert_field(&f, "short_message", "to ipv6".into());
}

/// Exports one record directly and returns the exporter's error text.
fn export_error(builder: djehouty::GelfExporterBuilder) -> String {
    let exporter = builder
        .with_timeout(Duration::from_secs(2))
        .build()
        .expect("build");
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
    let logger = provider.logger("t");
    let mut rec = logger.create_log_record();
    rec.set_body(AnyValue::from("must not arrive"));
    let scope = opentelemetry::InstrumentationScope::builder("t").build();
    let data = [(&rec, &scope)];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = rt.block_on(exporter.export(LogBatch::new(&data)));
    exporter.shutdown().ok();
    format!("{:?}", result.expect_err("the export must fail"))
}

#[test]
fn unknown_ca_is_refused() {
    let pki = TestPki::generate();
    let other = TestPki::generate_other();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let error = export_error(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_ca_file(&other.ca_pem),
    );
    assert!(error.contains("TLS handshake"), "{error}");
    // rustls names the cause: the chain does not lead to a trusted CA.
    assert!(error.contains("invalid peer certificate"), "{error}");
    assert!(receiver.frames().is_empty());
}

#[test]
fn wrong_host_name_is_refused() {
    let pki = TestPki::generate();
    // The certificate is for localhost, 127.0.0.1 and ::1 — not 127.0.0.2.
    let receiver = Receiver::bind(
        "127.0.0.2:0".parse().unwrap(),
        Framing::Nul,
        Some(pki.server_config(TlsVersions::Both)),
    )
    .expect("bind 127.0.0.2");
    let error = export_error(tls_builder(&pki, "127.0.0.2", receiver.port()));
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(error.contains("not valid for name"), "{error}");
    assert!(receiver.frames().is_empty());
}

#[test]
fn plaintext_server_on_a_tls_endpoint_is_refused() {
    let pki = TestPki::generate();
    let receiver = Receiver::tcp(Framing::Nul);
    let error = export_error(tls_builder(&pki, "localhost", receiver.port()));
    assert!(
        error.contains("TLS handshake") && error.contains("timed out"),
        "{error}"
    );
    // No plaintext fallback: the only bytes sent were TLS ClientHellos, which
    // never contain our message.
    for frame in receiver.frames().iter().chain(receiver.partial().iter()) {
        assert!(
            !String::from_utf8_lossy(frame).contains("must not arrive"),
            "plaintext leaked"
        );
    }
}

#[test]
fn configuration_errors_come_from_build() {
    let missing = GelfExporter::builder()
        .with_endpoint("tls://localhost:1")
        .with_ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert!(matches!(missing, Error::CaFileRead { .. }), "{missing}");
    assert!(missing.to_string().contains("/nonexistent/ca.pem"));

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let invalid = GelfExporter::builder()
        .with_endpoint("tls://localhost:1")
        .with_ca_file(&garbage)
        .build()
        .unwrap_err();
    assert!(matches!(invalid, Error::CaFileInvalid { .. }), "{invalid}");

    let no_roots = GelfExporter::builder()
        .with_endpoint("tls://localhost:1")
        .with_builtin_roots(false)
        .build()
        .unwrap_err();
    assert!(matches!(no_roots, Error::NoTrustAnchors), "{no_roots}");

    let bad_name = GelfExporter::builder()
        .with_endpoint("tls://bad_name!:1")
        .build()
        .unwrap_err();
    assert!(
        matches!(bad_name, Error::InvalidEndpoint { .. }),
        "{bad_name}"
    );
}

#[test]
fn builtin_roots_can_be_replaced_by_the_ca_file_alone() {
    let pki = TestPki::generate();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    ship_one(
        tls_builder(&pki, "localhost", receiver.port()).with_builtin_roots(false),
        "private CA only",
    );
    assert_graylog_accepts(&receiver.wait_frames(1, WAIT)[0]);
}

#[test]
fn debug_output_never_shows_extras_values() {
    let builder = GelfExporter::builder()
        .with_endpoint("tcp://127.0.0.1:1")
        .with_extra("X-OVH-TOKEN", "very-secret-token");
    assert!(!format!("{builder:?}").contains("very-secret-token"));
    let exporter = builder.build().unwrap();
    let debug = format!("{exporter:?}");
    assert!(!debug.contains("very-secret-token"), "{debug}");
    assert!(debug.contains("tcp://127.0.0.1:1"), "{debug}");
}
