//! TLS: verified connections over TLS 1.2 and 1.3 to a DNS name, an IPv4 and an
//! IPv6 address; refusals (unknown CA, wrong name, expired certificate,
//! plaintext server, silent or answering, client certificate required or
//! refused) that name their cause and deliver nothing; mutual TLS; the
//! dangerous opt-out for tests; configuration errors from `build()`.

use djehouty_testkit as support;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use djehouty::{Error, GelfExporter};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _};
use rustls::ProtocolVersion;
use support::pipeline::*;
use support::{assert_graylog_accepts, Framing, Receiver, TestPki, TlsVersions};
use tracing_subscriber::prelude::*;

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
    let counters = exporter.counters();
    // A failed delivery is not an export error (the record waits in the retry
    // buffer); the export returns once the attempt failed, and the counters
    // keep the error.
    rt.block_on(exporter.export(LogBatch::new(&data)))
        .expect("export buffers the record");
    let deadline = std::time::Instant::now() + WAIT;
    let mut stats = counters.snapshot();
    while stats.last_error.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        stats = counters.snapshot();
    }
    exporter
        .shutdown_with_timeout(Duration::from_millis(200))
        .expect_err("the record cannot have been delivered");
    let error = stats.last_error.expect("the delivery must fail");
    format!("{error}\n{error:?}")
}

/// Asserts that `error` (as returned by [`export_error`]) is a refused TLS
/// handshake whose cause is `failure` (the `TlsFailure` variant, as `Debug`
/// shows it) and whose text holds every one of `words`.
fn assert_refused(error: &str, failure: &str, words: &[&str]) {
    assert!(error.contains("TLS handshake with"), "{error}");
    assert!(
        error.contains(&format!("failure: {failure},")),
        "expected the cause {failure}: {error}"
    );
    for word in words {
        assert!(error.contains(word), "{word:?} missing from: {error}");
    }
}

/// Asserts that the record never reached the receiver: a TLS receiver got no
/// frame at all; a plaintext one got only TLS handshake bytes (no fallback to
/// plaintext), which never contain the record.
fn assert_nothing_arrived(receiver: &Receiver) {
    if receiver.is_tls() {
        assert_eq!(receiver.frames(), Vec::<Vec<u8>>::new());
    }
    for bytes in receiver.frames().iter().chain(receiver.partial().iter()) {
        assert!(
            !String::from_utf8_lossy(bytes).contains("must not arrive"),
            "plaintext leaked"
        );
    }
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
    assert_refused(
        &error,
        "UnknownIssuer",
        &[
            "not signed by a trusted CA",
            "with_ca_file",
            "UnknownIssuer",
        ],
    );
    assert_nothing_arrived(&receiver);
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
    assert_refused(
        &error,
        "WrongHostName",
        &["not valid for this host name", "not valid for name"],
    );
    assert_nothing_arrived(&receiver);
}

#[test]
fn expired_server_certificate_is_refused() {
    let pki = TestPki::generate_expired();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let error = export_error(tls_builder(&pki, "localhost", receiver.port()));
    assert_refused(&error, "Expired", &["certificate has expired", "renew"]);
    assert_nothing_arrived(&receiver);
}

#[test]
fn not_yet_valid_server_certificate_is_refused() {
    let pki = TestPki::generate_not_yet_valid();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let error = export_error(tls_builder(&pki, "localhost", receiver.port()));
    assert_refused(
        &error,
        "NotYetValid",
        &["not valid yet", "check the clocks"],
    );
    assert_nothing_arrived(&receiver);
}

#[test]
fn server_closing_without_answering_the_hello_is_named() {
    let pki = TestPki::generate();
    // Reads the ClientHello, answers nothing and closes.
    let server = PlaintextAnswerer::start(b"", true);
    let error = export_error(tls_builder(&pki, "localhost", server.port()));
    assert_refused(
        &error,
        "ClosedWithoutAnswer",
        &["closed the connection without answering", "plaintext port"],
    );
    assert!(server.connections() >= 1);
}

/// What an OpenSSL or Java server answers a ClientHello it shares no
/// cipher suite or group with: a fatal `handshake_failure` alert record.
#[test]
fn a_server_sharing_nothing_with_the_hello_is_named_incompatible() {
    let pki = TestPki::generate();
    // Alert record (21), TLS 1.2, 2 bytes: fatal (2), handshake_failure (40).
    let server = PlaintextAnswerer::start(b"\x15\x03\x03\x00\x02\x02\x28", true);
    let error = export_error(tls_builder(&pki, "localhost", server.port()));
    assert_refused(
        &error,
        "Incompatible",
        &["shares no TLS version, cipher suite or key exchange group"],
    );
    assert!(server.connections() >= 1);
}

#[test]
fn silent_plaintext_server_times_out_with_a_hint() {
    let pki = TestPki::generate();
    // A plaintext GELF input reads the ClientHello as data and waits for more.
    let receiver = Receiver::tcp(Framing::Nul);
    let error = export_error(
        tls_builder(&pki, "localhost", receiver.port())
            .with_handshake_timeout(Duration::from_millis(500)),
    );
    // Still a timeout of the handshake step, now saying what it likely means.
    assert!(error.contains("Timeout {"), "{error}");
    assert!(error.contains("step: Handshake,"), "{error}");
    assert!(error.contains("timed out after 500ms"), "{error}");
    assert!(
        error.contains("never answered the TLS ClientHello"),
        "{error}"
    );
    assert!(error.contains("plaintext port"), "{error}");
    assert_nothing_arrived(&receiver);
}

#[test]
fn plaintext_server_answering_garbage_is_refused() {
    let pki = TestPki::generate();
    let server = PlaintextAnswerer::start(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        true,
    );
    let error = export_error(tls_builder(&pki, "localhost", server.port()));
    assert_refused(
        &error,
        "NotTls",
        &["does not speak TLS", "plaintext port", "tcp://"],
    );
    assert!(server.connections() >= 1);
    for received in server.received() {
        assert!(
            !String::from_utf8_lossy(&received).contains("must not arrive"),
            "plaintext leaked"
        );
    }
}

#[test]
fn server_stalling_mid_handshake_times_out_without_the_plaintext_hint() {
    let pki = TestPki::generate();
    // The first byte of a TLS handshake record, and then nothing.
    let server = PlaintextAnswerer::start(b"\x16", false);
    let error = export_error(
        tls_builder(&pki, "localhost", server.port())
            .with_handshake_timeout(Duration::from_millis(500)),
    );
    assert!(error.contains("Timeout {"), "{error}");
    assert!(error.contains("step: HandshakeStalled,"), "{error}");
    assert!(!error.contains("never answered"), "{error}");
}

#[test]
fn server_requiring_a_client_certificate_is_named() {
    let pki = TestPki::generate();
    // TLS 1.2 refuses within the handshake; TLS 1.3 only after the client's
    // last handshake message, which the exporter waits for.
    for versions in [TlsVersions::Tls12, TlsVersions::Tls13] {
        let receiver = mtls_receiver(&pki, versions);
        let error = export_error(tls_builder(&pki, "localhost", receiver.port()));
        assert_refused(
            &error,
            "ClientCertificateRequired",
            &[
                "requires a client certificate",
                "with_client_certificate",
                "CertificateRequired",
            ],
        );
        assert_nothing_arrived(&receiver);
    }
}

/// What `build()` says of a TLS endpoint trusting `ca_file`.
fn ca_file_error(ca_file: impl Into<std::path::PathBuf>) -> Error {
    GelfExporter::builder()
        .with_endpoint("tls://localhost:1")
        .with_ca_file(ca_file)
        .build()
        .unwrap_err()
}

#[test]
fn configuration_errors_come_from_build() {
    let missing = ca_file_error("/nonexistent/ca.pem");
    assert!(matches!(missing, Error::CaFileRead { .. }), "{missing}");
    assert!(missing.to_string().contains("/nonexistent/ca.pem"));

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let invalid = ca_file_error(&garbage);
    assert!(matches!(invalid, Error::CaFileInvalid { .. }), "{invalid}");

    let no_roots = GelfExporter::builder()
        .with_endpoint("tls://localhost:1")
        .with_builtin_roots(false)
        .build()
        .unwrap_err();
    assert!(matches!(no_roots, Error::NoTrustAnchors), "{no_roots}");
    // What to do, whichever the cause: a CA file, or the roots' features.
    let advice = no_roots.to_string();
    for named in [
        "with_ca_file",
        "OTEL_EXPORTER_GELF_CERTIFICATE",
        "webpki-roots",
        "native-roots",
    ] {
        assert!(advice.contains(named), "{advice}");
    }

    let bad_name = GelfExporter::builder()
        .with_endpoint("tls://bad_name!:1")
        .build()
        .unwrap_err();
    assert!(
        matches!(bad_name, Error::InvalidEndpoint { .. }),
        "{bad_name}"
    );
}

/// A CA bundle holding a certificate the verifier cannot use (here, one
/// that is not DER at all) is not refused: the others are trusted.
#[test]
fn a_ca_bundle_with_an_unusable_certificate_still_trusts_the_others() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    let ca = std::fs::read_to_string(&pki.ca_pem).unwrap();
    // "not a certificate", base64: a PEM block whose content no verifier takes.
    let unusable =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    std::fs::write(&bundle, format!("{unusable}{ca}")).unwrap();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    ship_one(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_ca_file(&bundle)
            .with_builtin_roots(false),
        "bundle",
    );
    assert_graylog_accepts(&receiver.wait_frames(1, WAIT)[0]);
    // Only unusable ones: refused, saying which.
    std::fs::write(&bundle, unusable).unwrap();
    let error = ca_file_error(&bundle);
    assert!(matches!(error, Error::CaFileInvalid { .. }), "{error}");
    assert!(error.to_string().contains("certificate 1"), "{error}");
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

#[test]
fn mutual_tls_delivers_with_the_client_certificate() {
    let pki = TestPki::generate();
    for versions in [TlsVersions::Tls12, TlsVersions::Tls13] {
        let receiver = mtls_receiver(&pki, versions);
        ship_one(
            tls_builder(&pki, "localhost", receiver.port())
                .with_client_certificate(&pki.client_cert_pem, &pki.client_key_pem),
            "with a client certificate",
        );
        let f = assert_graylog_accepts(&receiver.wait_frames(1, WAIT)[0]);
        assert_field(&f, "short_message", "with a client certificate".into());
        receiver.wait_closed(1, WAIT);
        assert_eq!(receiver.errors(), Vec::<String>::new());
        // That an accepted certificate costs no wait (the server's session
        // tickets are its verdict) is the unit test
        // `an_accepted_client_certificate_costs_no_verdict_wait`.
    }
}

#[test]
fn client_certificate_from_an_untrusted_ca_is_named() {
    let pki = TestPki::generate();
    let other = TestPki::generate_other();
    for versions in [TlsVersions::Tls12, TlsVersions::Tls13] {
        let receiver = mtls_receiver(&pki, versions);
        let error = export_error(
            tls_builder(&pki, "localhost", receiver.port())
                .with_client_certificate(&other.client_cert_pem, &other.client_key_pem),
        );
        assert_refused(
            &error,
            "ClientCertificateRejected",
            &["refused our client certificate", "UnknownCA"],
        );
        assert_nothing_arrived(&receiver);
    }
}

/// A server that accepts no signature the client key can make (RSA only,
/// here, for an ECDSA key): rustls sends no certificate, and the failure
/// says so rather than blame the certificate or ask for one.
#[test]
fn a_client_key_the_server_takes_no_signature_of_is_named() {
    let pki = TestPki::generate();
    for versions in [TlsVersions::Tls12, TlsVersions::Tls13] {
        let receiver = Receiver::bind(
            "127.0.0.1:0".parse().unwrap(),
            Framing::Nul,
            Some(pki.server_config_mtls_rsa_only(versions)),
        )
        .expect("bind 127.0.0.1");
        let error = export_error(
            tls_builder(&pki, "localhost", receiver.port())
                .with_client_certificate(&pki.client_cert_pem, &pki.client_key_pem),
        );
        assert_refused(
            &error,
            "ClientCertificateUnusable",
            &["accepts no signature algorithm our client certificate's key can use"],
        );
        assert_nothing_arrived(&receiver);
    }
}

#[test]
fn client_certificate_file_errors_come_from_build() {
    let pki = TestPki::generate();
    let other = TestPki::generate_other();
    let build = |cert: &Path, key: &Path| {
        GelfExporter::builder()
            .with_endpoint("tls://localhost:1")
            .with_ca_file(&pki.ca_pem)
            .with_client_certificate(cert, key)
            .build()
            .expect_err("build must refuse")
    };

    let missing = Path::new("/nonexistent/client.pem");
    let error = build(missing, &pki.client_key_pem);
    assert!(
        matches!(&error, Error::ClientCertificateRead { path, .. } if path == missing),
        "{error}"
    );
    assert!(
        error.to_string().contains("/nonexistent/client.pem"),
        "{error}"
    );

    let missing_key = Path::new("/nonexistent/client-key.pem");
    let error = build(&pki.client_cert_pem, missing_key);
    assert!(
        matches!(&error, Error::ClientCertificateRead { path, .. } if path == missing_key),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let error = build(&garbage, &pki.client_key_pem);
    assert!(
        matches!(&error, Error::ClientCertificateInvalid { path, .. } if *path == garbage),
        "{error}"
    );
    assert!(error.to_string().contains("no PEM certificate"), "{error}");

    // The certificate given as the key: no private key in it.
    let error = build(&pki.client_cert_pem, &pki.client_cert_pem);
    assert!(
        matches!(&error, Error::ClientCertificateInvalid { path, .. } if *path == pki.client_cert_pem),
        "{error}"
    );
    assert!(error.to_string().contains("no private key"), "{error}");

    // Another certificate's key.
    let error = build(&pki.client_cert_pem, &other.client_key_pem);
    assert!(
        matches!(&error, Error::ClientCertificateInvalid { path, .. } if *path == other.client_key_pem),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("does not belong to the first certificate")
            && text.contains("put the client's own certificate first"),
        "{text}"
    );
    assert!(
        text.contains(&*pki.client_cert_pem.to_string_lossy()),
        "{text}"
    );
    // The key itself is never quoted.
    let key_pem = std::fs::read_to_string(&other.client_key_pem).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap_or_default();
    assert!(!text.contains(key_body), "{text}");

    // A client certificate on plaintext TCP is refused, not ignored.
    let error = GelfExporter::builder()
        .with_endpoint("tcp://localhost:1")
        .with_client_certificate(&pki.client_cert_pem, &pki.client_key_pem)
        .build()
        .expect_err("build must refuse");
    assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
    assert!(error.to_string().contains("tls://"), "{error}");
}

#[test]
fn dangerous_opt_out_accepts_invalid_certificates_and_warns() {
    let pki = TestPki::generate();
    let expired = TestPki::generate_expired();
    let unknown_ca = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let expired_cert = Receiver::tls(Framing::Nul, &expired, TlsVersions::Both);
    let wrong_name = Receiver::bind(
        "127.0.0.2:0".parse().unwrap(),
        Framing::Nul,
        Some(pki.server_config(TlsVersions::Both)),
    )
    .expect("bind 127.0.0.2");

    // Without the opt-out (and without the test CA), the server is refused.
    // (Another CA is given so that a build without built-in roots has one.)
    let other = TestPki::generate_other();
    let error = export_error(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", unknown_ca.port()))
            .with_ca_file(&other.ca_pem),
    );
    assert_refused(&error, "UnknownIssuer", &["not signed by a trusted CA"]);
    assert_nothing_arrived(&unknown_ca);

    for (receiver, host) in [
        (&unknown_ca, "localhost"),
        (&expired_cert, "localhost"),
        (&wrong_name, "127.0.0.2"),
    ] {
        // No CA file: nothing about the certificate is checked.
        let make = || {
            GelfExporter::builder()
                .with_endpoint(format!("tls://{host}:{}", receiver.port()))
                .dangerous_accept_invalid_certificates()
        };
        let builder = make();
        let debug = format!("{builder:?}");
        assert!(
            debug.contains("dangerous_accept_invalid_certificates: true"),
            "{debug}"
        );
        // One warning per build. tracing caches each callsite's interest for
        // the whole process, and other tests' thread-local subscribers may
        // briefly leave it at "never": a build whose warning went unseen is
        // tried again, a build with two warnings fails.
        let expected = usize::from(cfg!(feature = "internal-logs"));
        let count = |events: &[String]| {
            events
                .iter()
                .filter(|name| *name == "djehouty.DangerousAcceptInvalidCertificates")
                .count()
        };
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (exporter, events) = capture_events(|| make().build());
            drop(exporter);
            let warnings = count(&events);
            assert!(warnings <= 1, "at most one warning per build: {events:?}");
            seen.push(warnings);
            if warnings == expected {
                break;
            }
        }
        assert_eq!(
            seen.last(),
            Some(&expected),
            "one warning at build time: {seen:?}"
        );
        let provider = batch_provider(builder);
        with_tracing(&provider, || tracing::info!("accepted anyway"));
        provider.shutdown().expect("shutdown");
        let f = assert_graylog_accepts(&receiver.wait_frames(1, WAIT)[0]);
        assert_field(&f, "short_message", "accepted anyway".into());
    }

    // Off by default, and meaningless (so refused) on plaintext TCP.
    let debug = format!("{:?}", GelfExporter::builder());
    assert!(
        debug.contains("dangerous_accept_invalid_certificates: false"),
        "{debug}"
    );
    let error = GelfExporter::builder()
        .with_endpoint("tcp://localhost:1")
        .dangerous_accept_invalid_certificates()
        .build()
        .expect_err("build must refuse");
    assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
}

#[test]
fn dangerous_opt_out_still_checks_the_handshake_signature() {
    // The server shows the test PKI's certificate but does not hold its key:
    // accepting any certificate must not mean accepting any peer.
    let pki = TestPki::generate();
    let other = TestPki::generate_other();
    let receiver = Receiver::bind(
        "127.0.0.1:0".parse().unwrap(),
        Framing::Nul,
        Some(pki.server_config_with_wrong_key(&other, TlsVersions::Both)),
    )
    .expect("bind 127.0.0.1");
    let error = export_error(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .dangerous_accept_invalid_certificates(),
    );
    assert_refused(&error, "BadCertificate", &["BadSignature"]);
    assert_nothing_arrived(&receiver);
}

#[test]
fn tls_failure_messages_never_show_extras_values() {
    let pki = TestPki::generate();
    let other = TestPki::generate_other();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let error = export_error(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_ca_file(&other.ca_pem)
            .with_extra("X-OVH-TOKEN", "very-secret-token"),
    );
    assert_refused(&error, "UnknownIssuer", &[]);
    assert!(!error.contains("very-secret-token"), "{error}");
    assert_nothing_arrived(&receiver);
}

/// A receiver on 127.0.0.1 that requires a client certificate from `pki`'s CA.
fn mtls_receiver(pki: &TestPki, versions: TlsVersions) -> Receiver {
    Receiver::bind(
        "127.0.0.1:0".parse().unwrap(),
        Framing::Nul,
        Some(pki.server_config_mtls(versions)),
    )
    .expect("bind 127.0.0.1")
}

/// Runs `f` with a subscriber recording the name of every `tracing` event
/// emitted on this thread (the exporter's diagnostics among them).
fn capture_events<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    struct Names(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Names {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let name = event.metadata().name().to_string();
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(name);
        }
    }
    let names = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Names(Arc::clone(&names)));
    // Callsite interest is cached process-wide: other tests' thread-local
    // subscribers may have cached "never" for the warning; recompute it.
    let result = tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    let names = names.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (result, names)
}

/// A server on 127.0.0.1 that reads what a client sends first and answers
/// with fixed bytes — an HTTP error, as a web server on the wrong port would —
/// then half-closes the connection (or, with `close: false`, keeps it open
/// until the client closes it). Stops when dropped.
struct PlaintextAnswerer {
    port: u16,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PlaintextAnswerer {
    fn start(answer: &'static [u8], close: bool) -> PlaintextAnswerer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let received = Arc::clone(&received);
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((sock, _)) => {
                            let bytes = answer_once(sock, answer, close);
                            received
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(bytes);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        PlaintextAnswerer {
            port,
            stop,
            received,
            thread: Some(thread),
        }
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn connections(&self) -> usize {
        self.received().len()
    }

    /// What each connection sent, in order.
    fn received(&self) -> Vec<Vec<u8>> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for PlaintextAnswerer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads the client's first bytes, answers, half-closes if `close`, and reads
/// until the client closes (all bounded): no reset can swallow the answer.
fn answer_once(mut sock: TcpStream, answer: &[u8], close: bool) -> Vec<u8> {
    let limit = Some(Duration::from_secs(2));
    let mut received = Vec::new();
    if sock.set_nonblocking(false).is_err() || sock.set_read_timeout(limit).is_err() {
        return received;
    }
    let _ = sock.set_write_timeout(limit);
    let mut buf = [0u8; 4096];
    if let Ok(n) = sock.read(&mut buf) {
        received.extend_from_slice(&buf[..n]);
    }
    let _ = sock.write_all(answer);
    if close {
        let _ = sock.shutdown(Shutdown::Write);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    received
}

/// Every named handshake failure says what to do: each one's text holds the
/// specific advice for that cause.
#[test]
fn every_tls_failure_says_what_to_do() {
    use djehouty::TlsFailure;
    let hints: [(TlsFailure, &[&str]); 11] = [
        (
            TlsFailure::UnknownIssuer,
            &[
                "not signed by a trusted CA",
                "with_ca_file(..)",
                "OTEL_EXPORTER_GELF_CERTIFICATE",
                "OTEL_EXPORTER_LTSV_CERTIFICATE",
            ],
        ),
        (
            TlsFailure::WrongHostName,
            &["use a host name or address the certificate lists"],
        ),
        (
            TlsFailure::Expired,
            &["the server must renew it", "check this machine's clock"],
        ),
        (
            TlsFailure::NotYetValid,
            &["check the clocks of this machine and of the server"],
        ),
        (
            TlsFailure::BadCertificate,
            &["the server must present a valid certificate"],
        ),
        (
            TlsFailure::NotTls,
            &[
                "plaintext port",
                "use the receiver's TLS port",
                "a `tcp://` endpoint if plaintext is intended",
            ],
        ),
        (
            TlsFailure::ClosedWithoutAnswer,
            &[
                "may be a plaintext port",
                "a proxy with no TLS service behind it",
            ],
        ),
        (TlsFailure::Incompatible, &["requires TLS 1.2 or 1.3"]),
        (
            TlsFailure::ClientCertificateRequired,
            &["configure one with `with_client_certificate(cert, key)`"],
        ),
        (
            TlsFailure::ClientCertificateRejected,
            &[
                "issued by a CA the server trusts",
                "meant for client authentication",
            ],
        ),
        (
            TlsFailure::ClientCertificateUnusable,
            &["a certificate whose key is of a type the server accepts"],
        ),
    ];
    for (failure, words) in hints {
        let text = failure.to_string();
        for word in words {
            assert!(
                text.contains(word),
                "{failure:?}: {word:?} missing from {text:?}"
            );
        }
    }
}
