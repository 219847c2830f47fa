//! An application using rustls with its default provider adds the exporter:
//! the exporter installs no process-default `CryptoProvider`, so the
//! application's `rustls::ClientConfig::builder()` still works (it does not
//! panic for want of an unambiguous provider), and records arrive over TLS
//! before and after the application's provider is installed.
//!
//! A test binary of its own: the process-default provider is global.

use djehouty_testkit as support;

use std::sync::Arc;
use std::time::Duration;

use djehouty::GelfExporter;
use rustls::crypto::CryptoProvider;
use support::pipeline::*;
use support::{assert_graylog_accepts, Framing, Receiver, TestPki, TlsVersions};

const WAIT: Duration = Duration::from_secs(10);

fn ship(builder: djehouty::GelfExporterBuilder, message: &str) {
    let provider = batch_provider(builder);
    with_tracing(&provider, || tracing::info!("{message}"));
    provider.shutdown().expect("shutdown");
}

#[test]
fn an_application_with_rustls_defaults_keeps_working() {
    assert!(
        CryptoProvider::get_default().is_none(),
        "nothing may have installed a process-default provider yet"
    );
    let pki = TestPki::generate();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let exporter = || {
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_ca_file(&pki.ca_pem)
    };

    // The exporter first: it uses its feature's provider and installs none.
    ship(exporter(), "before the application's rustls");
    receiver.wait_frames(1, WAIT);
    assert!(
        CryptoProvider::get_default().is_none(),
        "the exporter installed a process-default provider"
    );

    // With both provider features compiled in, rustls cannot pick one by
    // itself: an application then installs its choice, as rustls documents.
    // With one (the default features), rustls picks it.
    #[cfg(all(feature = "aws-lc-rs", feature = "ring"))]
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("the first process-default provider");

    // The application's own rustls code, as reqwest or tonic have it.
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(pki.root_store())
        .with_no_client_auth();
    let installed = CryptoProvider::get_default().expect("rustls installed its default");

    // The exporter now takes the process default, with its own config or the
    // application's.
    ship(exporter(), "after the application's rustls");
    ship(
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_tls_config(Arc::new(config)),
        "with the application's config",
    );
    let frames = receiver.wait_frames(3, WAIT);
    let messages: Vec<_> = frames
        .iter()
        .map(|frame| assert_graylog_accepts(frame)["short_message"].clone())
        .collect();
    assert_eq!(
        messages,
        [
            "before the application's rustls",
            "after the application's rustls",
            "with the application's config"
        ]
    );
    assert!(Arc::ptr_eq(
        installed,
        CryptoProvider::get_default().expect("still installed")
    ));
    assert_eq!(receiver.errors(), Vec::<String>::new());
}
