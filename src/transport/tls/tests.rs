use super::failure::classify;
use super::*;
use crate::error::TlsFailure;
use rustls::{AlertDescription, CertificateError, InvalidMessage};

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
#[test]
fn a_users_tls_config_replaces_the_ca_variable_and_the_defaults() {
    use std::sync::Arc;
    let provider = compiled_provider().unwrap();
    let theirs = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    // The certificate variables too are the exporter's own settings.
    let env = |name: &str| match name {
        "OTEL_EXPORTER_GELF_CERTIFICATE" => Some("/etc/ca.pem".to_string()),
        "OTEL_EXPORTER_GELF_CLIENT_CERTIFICATE" => Some("/etc/client.pem".to_string()),
        "OTEL_EXPORTER_GELF_CLIENT_KEY" => Some("/etc/client.key".to_string()),
        _ => None,
    };
    let config = crate::config::ExporterBuilder::<crate::encode::Gelf>::default()
        .with_endpoint("tls://h:1")
        .with_tls_config(Arc::new(theirs))
        .resolve(env)
        .unwrap();
    assert!(config.tls.client_config.is_some());
    assert!(config.tls.ca_files.is_empty());
    assert!(config.tls.client_certificate.is_none());
}

fn wrap(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

#[test]
fn certificate_problems_are_named() {
    let cases = [
        (CertificateError::UnknownIssuer, TlsFailure::UnknownIssuer),
        (CertificateError::NotValidForName, TlsFailure::WrongHostName),
        (
            CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("example.com").unwrap_or_else(|_| {
                    ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
                }),
                presented: vec!["localhost".to_string()],
            },
            TlsFailure::WrongHostName,
        ),
        (CertificateError::Expired, TlsFailure::Expired),
        (
            CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(Duration::from_secs(2)),
                not_after: UnixTime::since_unix_epoch(Duration::from_secs(1)),
            },
            TlsFailure::Expired,
        ),
        (CertificateError::NotValidYet, TlsFailure::NotYetValid),
        (CertificateError::BadSignature, TlsFailure::BadCertificate),
        (CertificateError::Revoked, TlsFailure::BadCertificate),
    ];
    for (cert, expected) in cases {
        let error = wrap(rustls::Error::InvalidCertificate(cert.clone()));
        assert_eq!(
            classify(&error, true, ClientAuthSeen::NotAsked),
            expected,
            "{cert:?}"
        );
    }
}

#[test]
fn plaintext_answers_and_silent_closes_are_named() {
    for message in [
        InvalidMessage::InvalidContentType,
        InvalidMessage::UnknownProtocolVersion,
    ] {
        let error = wrap(rustls::Error::InvalidMessage(message));
        assert_eq!(
            classify(&error, true, ClientAuthSeen::NotAsked),
            TlsFailure::NotTls
        );
    }
    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
    assert_eq!(
        classify(&eof, false, ClientAuthSeen::NotAsked),
        TlsFailure::ClosedWithoutAnswer
    );
    assert_eq!(
        classify(&eof, true, ClientAuthSeen::NotAsked),
        TlsFailure::Other
    );
    let reset = io::Error::from(io::ErrorKind::ConnectionReset);
    assert_eq!(
        classify(&reset, false, ClientAuthSeen::NotAsked),
        TlsFailure::ClosedWithoutAnswer
    );
}

#[test]
fn client_certificate_verdicts_are_named() {
    let alert = |a| wrap(rustls::Error::AlertReceived(a));
    let cases = [
        (
            AlertDescription::CertificateRequired,
            ClientAuthSeen::AskedNoneSent,
            TlsFailure::ClientCertificateRequired,
        ),
        (
            AlertDescription::CertificateRequired,
            ClientAuthSeen::NotAsked,
            TlsFailure::ClientCertificateRequired,
        ),
        (
            AlertDescription::HandshakeFailure,
            ClientAuthSeen::AskedNoneSent,
            TlsFailure::ClientCertificateRequired,
        ),
        (
            AlertDescription::UnknownCA,
            ClientAuthSeen::AskedSent,
            TlsFailure::ClientCertificateRejected,
        ),
        (
            AlertDescription::BadCertificate,
            ClientAuthSeen::AskedSent,
            TlsFailure::ClientCertificateRejected,
        ),
        (
            AlertDescription::HandshakeFailure,
            ClientAuthSeen::NotAsked,
            TlsFailure::Incompatible,
        ),
        (
            AlertDescription::CertificateRequired,
            ClientAuthSeen::AskedUnusable,
            TlsFailure::ClientCertificateUnusable,
        ),
        (
            AlertDescription::HandshakeFailure,
            ClientAuthSeen::AskedUnusable,
            TlsFailure::ClientCertificateUnusable,
        ),
        (
            AlertDescription::ProtocolVersion,
            ClientAuthSeen::NotAsked,
            TlsFailure::Incompatible,
        ),
    ];
    for (a, auth, expected) in cases {
        assert_eq!(classify(&alert(a), true, auth), expected, "{a:?} {auth:?}");
    }
    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "closed");
    assert_eq!(
        classify(&eof, true, ClientAuthSeen::AskedNoneSent),
        TlsFailure::ClientCertificateRequired
    );
    // rustls's own verdict when a TLS 1.3 request lists no scheme the
    // client's key can sign with; other incompatibilities stay named so.
    let peer = |why| wrap(rustls::Error::PeerIncompatible(why));
    assert_eq!(
        classify(
            &peer(rustls::PeerIncompatible::NoCertificateRequestSignatureSchemesInCommon),
            true,
            ClientAuthSeen::NotAsked
        ),
        TlsFailure::ClientCertificateUnusable
    );
    assert_eq!(
        classify(
            &peer(rustls::PeerIncompatible::NoKxGroupsInCommon),
            true,
            ClientAuthSeen::NotAsked
        ),
        TlsFailure::Incompatible
    );
}

#[test]
fn every_failure_says_what_to_do() {
    // Each cause, and the advice its message must carry.
    for (failure, advice) in [
        (TlsFailure::UnknownIssuer, "with_ca_file"),
        (
            TlsFailure::WrongHostName,
            "host name or address the certificate lists",
        ),
        (TlsFailure::Expired, "must renew it"),
        (TlsFailure::NotYetValid, "check the clocks"),
        (
            TlsFailure::BadCertificate,
            "must present a valid certificate",
        ),
        (TlsFailure::NotTls, "use the receiver's TLS port"),
        (TlsFailure::ClosedWithoutAnswer, "may be a plaintext port"),
        (TlsFailure::Incompatible, "requires TLS 1.2 or 1.3"),
        (
            TlsFailure::ClientCertificateRequired,
            "with_client_certificate(cert, key)",
        ),
        (
            TlsFailure::ClientCertificateRejected,
            "issued by a CA the server trusts",
        ),
        (
            TlsFailure::ClientCertificateUnusable,
            "a certificate whose key is of a type the server accepts",
        ),
    ] {
        let text = failure.to_string();
        assert!(text.contains(advice), "{failure:?}: {text}");
    }
}

fn endpoint(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn without_any_provider_the_error_says_what_to_do() {
    let error = choose_provider(None, || None, &endpoint("tls://h:1"))
        .err()
        .unwrap_or_else(|| panic!("a provider out of nowhere"));
    assert!(matches!(error, Error::NoCryptoProvider { .. }), "{error}");
    let text = error.to_string();
    for advice in ["tls://h:1", "`aws-lc-rs`", "`ring`", "install_default"] {
        assert!(text.contains(advice), "{advice}: {text}");
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
#[test]
fn without_provider_features_build_refuses_tls_only() {
    for text in ["tls://h:1", "https://h:1/gelf"] {
        let error = crate::GelfExporter::builder()
            .with_endpoint(text)
            .build()
            .err()
            .unwrap_or_else(|| panic!("{text} built without a crypto provider"));
        assert!(matches!(error, Error::NoCryptoProvider { .. }), "{error}");
    }
    for text in ["tcp://h:1", "http://h:1/gelf"] {
        if let Err(error) = crate::GelfExporter::builder().with_endpoint(text).build() {
            panic!("{text} needs no crypto provider: {error}");
        }
    }
    assert!(CryptoProvider::get_default().is_none(), "none installed");
}

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
mod with_a_provider {
    use super::*;

    /// The exporter's own TLS settings, at their defaults.
    fn own_options() -> TlsOptions {
        TlsOptions {
            ca_files: Vec::new(),
            builtin_roots: true,
            client_certificate: None,
            dangerous_accept_invalid_certificates: false,
            client_config: None,
        }
    }

    fn compiled() -> Arc<CryptoProvider> {
        Arc::new(compiled_provider().unwrap_or_else(|| panic!("a provider feature is on")))
    }

    #[test]
    fn the_process_default_wins_over_the_feature() {
        let installed = compiled();
        let chosen = choose_provider(Some(&installed), compiled_provider, &endpoint("tls://h:1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&chosen, &installed));
        let chosen = choose_provider(None, compiled_provider, &endpoint("tls://h:1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(&chosen, &installed));
    }

    fn alpn(endpoint_text: &str, options: &TlsOptions) -> Vec<Vec<u8>> {
        TlsSettings::new(&endpoint(endpoint_text), options)
            .unwrap_or_else(|e| panic!("{e}"))
            .connector
            .config()
            .alpn_protocols
            .clone()
    }

    #[test]
    fn https_offers_http_1_1_only_whatever_the_config() {
        let mut theirs = ClientConfig::builder_with_provider(compiled())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        theirs.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let theirs = TlsOptions {
            client_config: Some(Arc::new(theirs)),
            ..own_options()
        };
        let mut own = own_options();
        own.dangerous_accept_invalid_certificates = true;
        for options in [&own, &theirs] {
            assert_eq!(alpn("https://h:1/gelf", options), [b"http/1.1".to_vec()]);
        }
        // Over tls://, the user's ALPN list as is, and none of our own.
        assert_eq!(
            alpn("tls://h:1", &theirs),
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(alpn("tls://h:1", &own).is_empty());
    }

    #[test]
    fn the_users_client_certificate_resolver_is_watched_not_replaced() {
        #[derive(Debug)]
        struct Counting(AtomicU64);
        impl ResolvesClientCert for Counting {
            fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
                self.0.fetch_add(1, Ordering::Relaxed);
                None
            }
            fn has_certs(&self) -> bool {
                true
            }
        }
        let resolver = Arc::new(Counting(AtomicU64::new(0)));
        let theirs = ClientConfig::builder_with_provider(compiled())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(RootCertStore::empty())
            .with_client_cert_resolver(Arc::clone(&resolver) as _);
        let settings = TlsSettings::new(
            &endpoint("tls://h:1"),
            &TlsOptions {
                client_config: Some(Arc::new(theirs)),
                ..own_options()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let watched = &settings.connector.config().client_auth_cert_resolver;
        assert!(watched.has_certs());
        assert!(watched.resolve(&[], &[]).is_none());
        assert_eq!(resolver.0.load(Ordering::Relaxed), 1);
        let counts = settings.client_auth.counts();
        assert_eq!((counts.requests, counts.presented), (1, 0));
    }
}

#[test]
fn handshake_error_display_names_endpoint_cause_and_detail() {
    let endpoint = Endpoint::parse("tls://localhost:12202").unwrap_or_else(|e| panic!("{e}"));
    let error = handshake_error(
        &endpoint,
        wrap(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )),
        true,
        ClientAuthSeen::NotAsked,
    );
    assert!(matches!(
        error,
        Error::Handshake {
            failure: TlsFailure::UnknownIssuer,
            ..
        }
    ));
    let text = error.to_string();
    assert!(text.contains("tls://localhost:12202"), "{text}");
    assert!(text.contains("not signed by a trusted CA"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
}

/// A TLS 1.3 server that accepts the client certificate says so with its
/// session tickets: the handshake returns on them, without waiting for a
/// verdict. The wait is made a minute here, so that waiting would show
/// (the handshake would outlast the 30 s bound); it takes milliseconds.
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
#[test]
fn an_accepted_client_certificate_costs_no_verdict_wait() {
    use djehouty_testkit::{Framing, Receiver, TestPki, TlsVersions};
    let pki = TestPki::generate();
    let receiver = Receiver::bind(
        "127.0.0.1:0".parse().unwrap(),
        Framing::Nul,
        Some(pki.server_config_mtls(TlsVersions::Tls13)),
    )
    .expect("bind 127.0.0.1");
    let config = crate::config::ExporterBuilder::<crate::encode::Gelf>::default()
        .with_endpoint(format!("tls://localhost:{}", receiver.port()))
        .with_ca_file(&pki.ca_pem)
        .with_client_certificate(&pki.client_cert_pem, &pki.client_key_pem)
        .resolve(|_| None)
        .unwrap();
    let mut settings = TlsSettings::new(&config.endpoint, &config.tls).unwrap();
    settings.verdict_wait = Duration::from_secs(60);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shaken = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", receiver.port()))
            .await
            .expect("connect");
        let handshake = settings.handshake(
            &config.endpoint,
            MeteredTcp::new(tcp),
            Duration::from_secs(120),
        );
        tokio::time::timeout(Duration::from_secs(30), handshake).await
    });
    let stream = shaken.expect("no wait for a verdict").expect("handshake");
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
}
