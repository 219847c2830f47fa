//! `with_tls_config`: records arrive over `tls://` and `https://` with a rustls
//! `ClientConfig` of the user's (mutual TLS included), its handshake failures
//! are named as with the exporter's own configuration, and `build()` refuses
//! it together with the exporter's own TLS options or a plaintext endpoint.

use djehouty_testkit as support;

use std::sync::Arc;
use std::time::Duration;

use djehouty::{Error, GelfExporter, TlsFailure};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use support::http::{accept_all, HttpServer};
use support::pipeline::*;
use support::{assert_graylog_accepts, Framing, Receiver, TestPki, TlsVersions};

const WAIT: Duration = Duration::from_secs(10);

/// A configuration of the application's: trusts `pki`'s CA only.
fn their_config(pki: &TestPki) -> Arc<ClientConfig> {
    pki.client_config(TlsVersions::Both)
}

fn ship(builder: djehouty::GelfExporterBuilder, messages: &[&str]) {
    let provider = batch_provider(builder);
    with_tracing(&provider, || {
        for message in messages {
            tracing::info!("{message}");
        }
    });
    provider.shutdown().expect("shutdown");
}

#[test]
fn records_arrive_over_tls_with_the_users_config() {
    let pki = TestPki::generate();
    for versions in [TlsVersions::Tls12, TlsVersions::Tls13] {
        let receiver = Receiver::tls(Framing::Nul, &pki, versions);
        ship(
            GelfExporter::builder()
                .with_endpoint(format!("tls://localhost:{}", receiver.port()))
                .with_tls_config(their_config(&pki)),
            &["their config", "still theirs"],
        );
        let frames = receiver.wait_frames(2, WAIT);
        let first = assert_graylog_accepts(&frames[0]);
        assert_eq!(first["short_message"], "their config");
        assert_eq!(receiver.server_names(), vec![Some("localhost".to_string())]);
        receiver.wait_closed(1, WAIT);
        assert_eq!(receiver.errors(), Vec::<String>::new());
    }
}

#[test]
fn records_arrive_over_https_with_the_users_config_offering_h2() {
    let pki = TestPki::generate();
    // A server that speaks HTTP/1.1 only and says so: rustls refuses a client
    // whose ALPN list lacks `http/1.1`.
    let mut server_config = rustls::ServerConfig::clone(&pki.server_config(TlsVersions::Both));
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server = HttpServer::bind(
        "127.0.0.1:0".parse().expect("address"),
        Some(Arc::new(server_config)),
        accept_all(),
    )
    .expect("start the HTTPS server");
    // An application's config for an HTTP/2 client; the exporter speaks
    // HTTP/1.1 only and offers just that.
    let mut config = ClientConfig::clone(&their_config(&pki));
    config.alpn_protocols = vec![b"h2".to_vec()];
    ship(
        GelfExporter::builder()
            .with_endpoint(server.url("/gelf"))
            .with_tls_config(Arc::new(config)),
        &["over https"],
    );
    let messages = server.wait_accepted(1, WAIT);
    let message = assert_graylog_accepts(&messages[0]);
    assert_eq!(message["short_message"], "over https");
}

#[test]
fn mutual_tls_with_the_users_client_certificate() {
    let pki = TestPki::generate();
    let chain = CertificateDer::pem_file_iter(&pki.client_cert_pem)
        .expect("read the client certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse the client certificate");
    let key = PrivateKeyDer::from_pem_file(&pki.client_key_pem).expect("read the client key");
    let config = ClientConfig::builder_with_provider(support::certs::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(pki.root_store())
        .with_client_auth_cert(chain, key)
        .expect("client certificate and key match");
    let receiver = Receiver::bind(
        "127.0.0.1:0".parse().expect("address"),
        Framing::Nul,
        Some(pki.server_config_mtls(TlsVersions::Both)),
    )
    .expect("bind 127.0.0.1");
    ship(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_tls_config(Arc::new(config)),
        &["with their client certificate"],
    );
    assert_graylog_accepts(&receiver.wait_frames(1, WAIT)[0]);

    let server = HttpServer::https(&pki, true, accept_all());
    let chain = CertificateDer::pem_file_iter(&pki.client_cert_pem)
        .expect("read the client certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse the client certificate");
    let key = PrivateKeyDer::from_pem_file(&pki.client_key_pem).expect("read the client key");
    let config = ClientConfig::builder_with_provider(support::certs::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(pki.root_store())
        .with_client_auth_cert(chain, key)
        .expect("client certificate and key match");
    ship(
        GelfExporter::builder()
            .with_endpoint(server.url("/gelf"))
            .with_tls_config(Arc::new(config)),
        &["over https with their client certificate"],
    );
    server.wait_accepted(1, WAIT);
    assert!(server.requests().iter().all(|r| r.client_certificate));
}

#[test]
fn handshake_failures_are_named_with_the_users_config() {
    let pki = TestPki::generate();
    let other = TestPki::generate_other();

    // Their config trusts another CA: the server's certificate is unknown.
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let error = last_error(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_tls_config(their_config(&other)),
    );
    assert!(
        matches!(
            *error,
            Error::Handshake {
                failure: TlsFailure::UnknownIssuer,
                ..
            }
        ),
        "{error}"
    );

    // The server wants a client certificate their config does not have: the
    // watched resolver lets the refusal be named.
    let receiver = Receiver::bind(
        "127.0.0.1:0".parse().expect("address"),
        Framing::Nul,
        Some(pki.server_config_mtls(TlsVersions::Tls13)),
    )
    .expect("bind 127.0.0.1");
    let error = last_error(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_tls_config(their_config(&pki)),
    );
    assert!(
        matches!(
            *error,
            Error::Handshake {
                failure: TlsFailure::ClientCertificateRequired,
                ..
            }
        ),
        "{error}"
    );
    assert!(receiver.frames().is_empty());
}

/// Ships one record that cannot be delivered and returns the error the
/// exporter's counters keep.
fn last_error(builder: djehouty::GelfExporterBuilder) -> Arc<Error> {
    let (provider, counters) = direct_provider_with_counters(builder.build().expect("build"));
    with_tracing(&provider, || tracing::info!("must not arrive"));
    let deadline = std::time::Instant::now() + WAIT;
    let mut stats = counters.snapshot();
    while stats.last_error.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        stats = counters.snapshot();
    }
    let _ = provider.shutdown_with_timeout(Duration::from_millis(200));
    stats.last_error.expect("the delivery must fail")
}

#[test]
fn build_refuses_the_users_config_with_the_exporters_own_tls_options() {
    let pki = TestPki::generate();
    let base = || {
        GelfExporter::builder()
            .with_endpoint("tls://localhost:12202")
            .with_tls_config(their_config(&pki))
    };
    let cases: [(djehouty::GelfExporterBuilder, &[&str]); 5] = [
        (base().with_ca_file(&pki.ca_pem), &["with_ca_file"]),
        (base().with_builtin_roots(false), &["with_builtin_roots"]),
        (
            base().with_client_certificate(&pki.client_cert_pem, &pki.client_key_pem),
            &["with_client_certificate"],
        ),
        (
            base().dangerous_accept_invalid_certificates(),
            &["dangerous_accept_invalid_certificates"],
        ),
        (
            base()
                .with_ca_file(&pki.ca_pem)
                .dangerous_accept_invalid_certificates(),
            &["with_ca_file", "dangerous_accept_invalid_certificates"],
        ),
    ];
    for (builder, expected) in cases {
        let error = builder.build().expect_err("conflicting TLS options");
        match &error {
            Error::TlsConfigConflict { options } => assert_eq!(options, expected),
            other => panic!("expected TlsConfigConflict, got {other:?}"),
        }
        let text = error.to_string();
        assert!(text.contains("with_tls_config"), "{text}");
        for option in expected {
            assert!(text.contains(&format!("`{option}`")), "{option}: {text}");
        }
        assert!(text.contains("drop"), "{text}");
    }
    // The same options are refused over https:// too.
    let error = GelfExporter::builder()
        .with_endpoint("https://localhost:12201/gelf")
        .with_tls_config(their_config(&pki))
        .with_ca_file(&pki.ca_pem)
        .build()
        .expect_err("conflicting TLS options");
    assert!(
        matches!(error, Error::TlsConfigConflict { .. }),
        "{error:?}"
    );
}

#[test]
fn build_refuses_the_users_config_for_a_plaintext_endpoint() {
    let pki = TestPki::generate();
    for endpoint in ["tcp://localhost:12201", "http://localhost:12201/gelf"] {
        let error = GelfExporter::builder()
            .with_endpoint(endpoint)
            .with_tls_config(their_config(&pki))
            .build()
            .expect_err("a TLS config for a plaintext endpoint");
        assert!(matches!(error, Error::InvalidConfig(_)), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("with_tls_config"), "{text}");
        assert!(text.contains("not encrypted"), "{text}");
    }
}
