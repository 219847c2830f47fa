//! TLS through rustls: the client configuration and the handshake.
//!
//! Certificates and host names are verified: the trust anchors are the built-in
//! roots (Mozilla's with the `webpki-roots` feature, the system's with
//! `native-roots`) plus any CA file given. The only way around verification is
//! the builder's `dangerous_accept_invalid_certificates()`, meant for tests. TLS
//! 1.2 and 1.3 are offered. There is never a fallback to plaintext.
//!
//! The crypto provider is the process-default rustls `CryptoProvider` when one
//! is installed (this crate never installs one), else that of the `aws-lc-rs`
//! feature, else that of `ring`; with none, building fails with
//! [`Error::NoCryptoProvider`]. A configuration brought with `with_tls_config`
//! replaces all of the above and is used as is, but for two things: over
//! `https://` the ALPN protocol offered is `http/1.1` (the HTTP client speaks
//! nothing else), and its client certificate resolver is watched so that
//! handshake failures are named alike.
//!
//! A failed handshake is reported as [`Error::Handshake`] with a [`TlsFailure`]
//! naming the cause; one the server never answered is a timeout whose message
//! points at a plaintext port.
//!
//! With TLS 1.3, a server that asked for a client certificate sends its verdict
//! on it only after the client considers the handshake done. When the server
//! asked, [`TlsSettings::handshake`] therefore waits briefly for that verdict
//! (session tickets or an alert), so that a refused certificate is reported as
//! such instead of records being written into a connection the server is
//! closing.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::acked::MeteredTcp;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, InconsistentKeys,
    InvalidMessage, ProtocolVersion, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{Endpoint, Scheme, TlsOptions};
use crate::error::{Error, Result, Step, TlsFailure};

/// Longest wait, after a TLS 1.3 handshake in which the server asked for a
/// client certificate, for the server to accept (session tickets) or refuse (an
/// alert) it. It comes one round trip after our last handshake message.
const CLIENT_AUTH_VERDICT_WAIT: Duration = Duration::from_secs(1);

/// What a TLS connection needs: the connector and the name to verify.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    client_auth: Arc<ClientAuth>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.client_auth.has_certs())
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Builds the client configuration — the exporter's own (trust anchors,
    /// client certificate, crypto provider) or a copy of the user's — and
    /// checks the server name.
    pub(crate) fn new(endpoint: &Endpoint, options: &TlsOptions) -> Result<TlsSettings> {
        let server_name = ServerName::try_from(endpoint.host().to_string()).map_err(|_| {
            Error::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                reason: "the host is neither a valid DNS name nor an IP address".to_string(),
            }
        })?;
        let (mut config, client_auth) = match &options.client_config {
            Some(theirs) => {
                // A copy whose client certificate resolver is watched, so that
                // handshake failures are named as with our own configuration.
                let mut config = ClientConfig::clone(theirs);
                let client_auth = Arc::new(ClientAuth::new(Presenter::Theirs(Arc::clone(
                    &config.client_auth_cert_resolver,
                ))));
                config.client_auth_cert_resolver = Arc::clone(&client_auth) as _;
                (config, client_auth)
            }
            None => own_config(endpoint, options)?,
        };
        if endpoint.scheme() == Scheme::Https {
            // The HTTP client speaks HTTP/1.1 only: a server must not pick h2.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            client_auth,
        })
    }

    /// Runs the handshake over an established TCP connection, within `limit`.
    ///
    /// Errors are [`Error::Handshake`] with the cause, or [`Error::Timeout`] whose
    /// step tells whether the server answered at all.
    pub(crate) async fn handshake(
        &self,
        endpoint: &Endpoint,
        tcp: MeteredTcp,
        limit: Duration,
    ) -> Result<TlsStream<WatchedTcp>> {
        let now = Instant::now();
        // Builders cap timeouts at a day; stay safe with any value anyway.
        let deadline = now
            .checked_add(limit)
            .unwrap_or(now + Duration::from_secs(86_400));
        let (requests_before, presented_before) = self.client_auth.counts();
        let heard = Arc::new(AtomicBool::new(false));
        let connect = self.connector.connect(
            self.server_name.clone(),
            WatchedTcp {
                tcp,
                heard: Arc::clone(&heard),
            },
        );
        let outcome = tokio::time::timeout_at(deadline, connect).await;
        let heard = heard.load(Ordering::Relaxed);
        // Handshakes over one `TlsSettings` run one at a time (one link). Were two
        // to overlap, the worst would be a needless verdict wait, or a refusal
        // blamed on the client certificate when the other handshake was asked
        // for it.
        let (requests, presented) = self.client_auth.counts();
        let auth = match (requests != requests_before, presented != presented_before) {
            (false, _) => ClientAuthSeen::NotAsked,
            (true, false) => ClientAuthSeen::AskedNoneSent,
            (true, true) => ClientAuthSeen::AskedSent,
        };
        let mut stream = match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(handshake_error(endpoint, source, heard, auth)),
            Err(_) => {
                return Err(Error::Timeout {
                    step: if heard {
                        Step::HandshakeStalled
                    } else {
                        Step::Handshake
                    },
                    endpoint: endpoint.to_string(),
                    timeout: limit,
                });
            }
        };
        let tls13 = stream.get_ref().1.protocol_version() == Some(ProtocolVersion::TLSv1_3);
        if tls13 && auth != ClientAuthSeen::NotAsked {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(CLIENT_AUTH_VERDICT_WAIT);
            if let Some(source) = client_auth_verdict(&mut stream, wait).await {
                return Err(handshake_error(endpoint, source, true, auth));
            }
        }
        Ok(stream)
    }
}

/// The exporter's own client configuration: the trust anchors, the client
/// certificate and the crypto provider of [`crypto_provider`].
fn own_config(
    endpoint: &Endpoint,
    options: &TlsOptions,
) -> Result<(ClientConfig, Arc<ClientAuth>)> {
    let provider = crypto_provider(endpoint)?;
    let mut roots = RootCertStore::empty();
    if options.builtin_roots {
        add_builtin_roots(&mut roots);
    }
    for path in &options.ca_files {
        add_ca_file(&mut roots, path)?;
    }
    let key = match &options.client_certificate {
        Some((cert, key)) => Some(Arc::new(load_client_certificate(cert, key, &provider)?)),
        None => None,
    };
    let client_auth = Arc::new(ClientAuth::new(Presenter::Own(key)));
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::TlsConfig {
            detail: e.to_string(),
        })?;
    let builder = if options.dangerous_accept_invalid_certificates {
        opentelemetry::otel_warn!(
            name: "djehouty.DangerousAcceptInvalidCertificates",
            endpoint = endpoint.to_string(),
            message = "server certificates and host names are NOT verified \
                       (dangerous_accept_invalid_certificates): anyone on the network \
                       path can impersonate the server; for tests only, never in production"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        if roots.is_empty() {
            return Err(Error::NoTrustAnchors);
        }
        builder.with_root_certificates(roots)
    };
    let config = builder.with_client_cert_resolver(Arc::clone(&client_auth) as _);
    Ok((config, client_auth))
}

/// The crypto provider of the exporter's own configuration: the process
/// default when one is installed (never installed here), else that of the
/// feature switched on, aws-lc-rs first.
fn crypto_provider(endpoint: &Endpoint) -> Result<Arc<CryptoProvider>> {
    choose_provider(CryptoProvider::get_default(), compiled_provider, endpoint)
}

fn choose_provider(
    process_default: Option<&Arc<CryptoProvider>>,
    compiled: impl FnOnce() -> Option<CryptoProvider>,
    endpoint: &Endpoint,
) -> Result<Arc<CryptoProvider>> {
    match process_default {
        Some(provider) => Ok(Arc::clone(provider)),
        None => compiled()
            .map(Arc::new)
            .ok_or_else(|| Error::NoCryptoProvider {
                endpoint: endpoint.to_string(),
            }),
    }
}

/// The provider of the crate feature switched on, if any.
pub(crate) fn compiled_provider() -> Option<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = Some(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = Some(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    let provider = None;
    provider
}

/// Reads one CA file into `roots`.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<()> {
    let pem = std::fs::read(path).map_err(|source| Error::CaFileRead {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |detail: String| Error::CaFileInvalid {
        path: path.to_path_buf(),
        detail,
    };
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| invalid(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("unusable certificate: {e}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(invalid("no certificate found".to_string()));
    }
    Ok(())
}

/// Loads the client certificate chain and its private key, and checks that
/// they belong together.
fn load_client_certificate(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| Error::ClientCertificateRead {
            path: path.to_path_buf(),
            source,
        })
    };
    let invalid = |path: &Path, detail: String| Error::ClientCertificateInvalid {
        path: path.to_path_buf(),
        detail,
    };

    let cert_pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert_path, format!("malformed PEM ({})", pem_problem(&e))))?;
    if chain.is_empty() {
        return Err(invalid(
            cert_path,
            "no PEM certificate found; give the client certificate's \
             `-----BEGIN CERTIFICATE-----` block(s), leaf first"
                .to_string(),
        ));
    }

    let key_pem = read(key_path)?;
    // The key file's content never goes into a message: only the kind of problem.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(
            key_path,
            "no private key found; give an unencrypted PEM key (`BEGIN PRIVATE KEY`, \
             `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`); encrypted keys are \
             not supported"
                .to_string(),
        ),
        other => invalid(key_path, format!("malformed PEM ({})", pem_problem(&other))),
    })?;

    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => invalid(
            key_path,
            format!(
                "this private key does not belong to the certificate in {cert_path:?}; \
                 give the key the certificate was issued for"
            ),
        ),
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => invalid(
            cert_path,
            format!("the first certificate (the leaf) cannot be parsed: {e}"),
        ),
        other => invalid(
            key_path,
            format!("the private key cannot be used (unsupported type or malformed): {other}"),
        ),
    })
}

/// What went wrong with a PEM file, without quoting its content.
fn pem_problem(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "invalid base64",
        pem::Error::Io(_) => "read error",
        pem::Error::NoItemsFound => "no item of the expected kind",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "unreadable PEM",
    }
}

#[allow(unused_variables)]
fn add_builtin_roots(roots: &mut RootCertStore) {
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
}

/// Presents the client certificate, if any, and counts the server's requests
/// for one and the certificates presented, so that a failed handshake can tell
/// whether one was asked for and sent.
#[derive(Debug)]
struct ClientAuth {
    presenter: Presenter,
    requests: AtomicU64,
    presented: AtomicU64,
}

/// Where the client certificate comes from.
#[derive(Debug)]
enum Presenter {
    /// The exporter's own configuration: this one, or none.
    Own(Option<Arc<CertifiedKey>>),
    /// The resolver of the user's configuration.
    Theirs(Arc<dyn ResolvesClientCert>),
}

impl ClientAuth {
    fn new(presenter: Presenter) -> ClientAuth {
        ClientAuth {
            presenter,
            requests: AtomicU64::new(0),
            presented: AtomicU64::new(0),
        }
    }

    /// The requests so far, and the certificates presented to them.
    fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.presented.load(Ordering::Relaxed),
        )
    }
}

impl ResolvesClientCert for ClientAuth {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let key = match &self.presenter {
            Presenter::Own(key) => key.clone(),
            Presenter::Theirs(resolver) => resolver.resolve(root_hint_subjects, sigschemes),
        };
        if key.is_some() {
            self.presented.fetch_add(1, Ordering::Relaxed);
        }
        key
    }

    fn only_raw_public_keys(&self) -> bool {
        match &self.presenter {
            Presenter::Own(_) => false,
            Presenter::Theirs(resolver) => resolver.only_raw_public_keys(),
        }
    }

    fn has_certs(&self) -> bool {
        match &self.presenter {
            Presenter::Own(key) => key.is_some(),
            Presenter::Theirs(resolver) => resolver.has_certs(),
        }
    }
}

/// Whether the server asked for a client certificate during a handshake, and
/// whether one was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuthSeen {
    NotAsked,
    AskedNoneSent,
    AskedSent,
}

/// Waits up to `wait` for a TLS 1.3 server's verdict on the client
/// certificate: `None` once it accepted (session tickets, data) or stayed
/// silent, the error once it refused (an alert) or closed the connection.
async fn client_auth_verdict(
    stream: &mut TlsStream<WatchedTcp>,
    wait: Duration,
) -> Option<io::Error> {
    let mut scratch = [0u8; 512];
    let verdict = std::future::poll_fn(|cx| {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Some(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection right after the handshake",
            ))),
            Poll::Ready(Ok(())) => Poll::Ready(None),
            Poll::Ready(Err(error)) => Poll::Ready(Some(error)),
            Poll::Pending if stream.get_ref().1.tls13_tickets_received() > 0 => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    });
    tokio::time::timeout(wait, verdict).await.unwrap_or(None)
}

/// The error for a failed handshake, its cause named.
fn handshake_error(
    endpoint: &Endpoint,
    source: io::Error,
    heard: bool,
    auth: ClientAuthSeen,
) -> Error {
    Error::Handshake {
        endpoint: endpoint.to_string(),
        failure: classify(&source, heard, auth),
        source,
    }
}

/// Names the cause of a failed handshake. `heard`: whether the server sent
/// anything at all.
fn classify(error: &io::Error, heard: bool, auth: ClientAuthSeen) -> TlsFailure {
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return classify_rustls(tls, auth);
    }
    let closed = matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    );
    match (closed, heard, auth) {
        (true, false, _) => TlsFailure::ClosedWithoutAnswer,
        (true, true, ClientAuthSeen::AskedNoneSent) => TlsFailure::ClientCertificateRequired,
        (true, true, ClientAuthSeen::AskedSent) => TlsFailure::ClientCertificateRejected,
        _ => TlsFailure::Other,
    }
}

fn classify_rustls(error: &rustls::Error, auth: ClientAuthSeen) -> TlsFailure {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongHostName
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::NotYetValid
            }
            _ => TlsFailure::BadCertificate,
        },
        // A record header that is not TLS: text, JSON, an HTTP response...
        rustls::Error::InvalidMessage(
            InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
        ) => TlsFailure::NotTls,
        rustls::Error::PeerIncompatible(_) => TlsFailure::Incompatible,
        rustls::Error::AlertReceived(alert) => classify_alert(*alert, auth),
        _ => TlsFailure::Other,
    }
}

fn classify_alert(alert: AlertDescription, auth: ClientAuthSeen) -> TlsFailure {
    use AlertDescription as A;
    // Alerts a server sends when it refuses the handshake; when it had asked
    // for a client certificate, that certificate (or its absence) is the cause.
    let refusal = matches!(
        alert,
        A::HandshakeFailure
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::DecryptError
    );
    match (alert, auth) {
        (A::ProtocolVersion | A::InsufficientSecurity, _) => TlsFailure::Incompatible,
        (A::CertificateRequired, ClientAuthSeen::AskedSent) => {
            TlsFailure::ClientCertificateRejected
        }
        (A::CertificateRequired, _) => TlsFailure::ClientCertificateRequired,
        (_, ClientAuthSeen::AskedNoneSent) if refusal => TlsFailure::ClientCertificateRequired,
        (_, ClientAuthSeen::AskedSent) if refusal => TlsFailure::ClientCertificateRejected,
        _ => TlsFailure::Other,
    }
}

/// The verifier of `dangerous_accept_invalid_certificates()`: any certificate,
/// for any name, is accepted; the handshake signatures are still verified, so
/// the peer must hold the private key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TCP stream under TLS; remembers whether the server ever sent a byte, to
/// tell a server that never answered the ClientHello from one that did.
#[derive(Debug)]
pub(crate) struct WatchedTcp {
    tcp: MeteredTcp,
    heard: Arc<AtomicBool>,
}

impl AsyncRead for WatchedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if buf.filled().len() > before && !this.heard.load(Ordering::Relaxed) {
            this.heard.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for WatchedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let env = |name: &str| {
            (name == "OTEL_EXPORTER_GELF_CERTIFICATE").then(|| "/etc/ca.pem".to_string())
        };
        let config = crate::config::ExporterBuilder::<crate::encode::Gelf>::default()
            .with_endpoint("tls://h:1")
            .with_tls_config(Arc::new(theirs))
            .resolve(env)
            .unwrap();
        assert!(config.tls.client_config.is_some());
        assert!(config.tls.ca_files.is_empty());
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
                TlsFailure::Other,
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
            let chosen =
                choose_provider(Some(&installed), compiled_provider, &endpoint("tls://h:1"))
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
            assert_eq!(settings.client_auth.counts(), (1, 0));
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
}
