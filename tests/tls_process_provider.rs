//! The exporter uses the process-default `CryptoProvider` when one is
//! installed: restricted to one cipher suite, that is the suite the receiver
//! negotiates, where the exporter's own choice would have been another.
//!
//! A test binary of its own: the process-default provider is global.

use djehouty_testkit as support;

use std::time::Duration;

use djehouty::GelfExporter;
use rustls::crypto::CryptoProvider;
use rustls::CipherSuite;
use support::pipeline::*;
use support::{assert_graylog_accepts, Framing, Receiver, TestPki, TlsVersions};

const WAIT: Duration = Duration::from_secs(10);
const ONLY: CipherSuite = CipherSuite::TLS13_AES_128_GCM_SHA256;

fn ship(builder: djehouty::GelfExporterBuilder, message: &str) {
    let provider = batch_provider(builder);
    with_tracing(&provider, || tracing::info!("{message}"));
    provider.shutdown().expect("shutdown");
}

#[test]
fn the_process_default_provider_is_used() {
    let pki = TestPki::generate();
    // The receiver offers every suite of the full provider, TLS 1.2 and 1.3,
    // and follows the client's preference.
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let exporter = || {
        GelfExporter::builder()
            .with_endpoint(format!("tls://localhost:{}", receiver.port()))
            .with_ca_file(&pki.ca_pem)
    };

    // Without a process default: the feature's provider, which prefers another suite.
    assert!(CryptoProvider::get_default().is_none());
    ship(exporter(), "feature provider");
    receiver.wait_frames(1, WAIT);
    let first = receiver.cipher_suites();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_ne!(first[0], ONLY, "the control must tell the providers apart");

    let mut restricted = CryptoProvider::clone(&support::certs::provider());
    restricted
        .cipher_suites
        .retain(|suite| suite.suite() == ONLY);
    assert_eq!(restricted.cipher_suites.len(), 1);
    restricted
        .install_default()
        .expect("the first process-default provider");

    ship(exporter(), "process default");
    let frames = receiver.wait_frames(2, WAIT);
    assert_eq!(
        assert_graylog_accepts(&frames[1])["short_message"],
        "process default"
    );
    assert_eq!(receiver.cipher_suites(), vec![first[0], ONLY]);
    assert_eq!(receiver.errors(), Vec::<String>::new());
}
