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
//! A failed handshake is reported as [`Error::Handshake`] with a [`TlsFailure`](crate::TlsFailure)
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
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

mod certificates;
mod failure;

use super::acked::MeteredTcp;
use certificates::{add_builtin_roots, add_ca_file, load_client_certificate};
use failure::{handshake_error, ClientAuthSeen};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{Endpoint, Scheme, TlsOptions};
use crate::error::{Error, Result, Step};

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
    /// The longest wait for a TLS 1.3 server's verdict on the client
    /// certificate ([`CLIENT_AUTH_VERDICT_WAIT`]; longer in a test, where
    /// a wait that should not happen must show).
    verdict_wait: Duration,
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
            verdict_wait: CLIENT_AUTH_VERDICT_WAIT,
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
        let before = self.client_auth.counts();
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
        let after = self.client_auth.counts();
        let auth = if after.requests == before.requests {
            ClientAuthSeen::NotAsked
        } else if after.presented != before.presented {
            ClientAuthSeen::AskedSent
        } else if after.unusable != before.unusable {
            ClientAuthSeen::AskedUnusable
        } else {
            ClientAuthSeen::AskedNoneSent
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
                .min(self.verdict_wait);
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
        crate::warnings::warn_at_build!(
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

/// Presents the client certificate, if any, and counts the server's requests
/// for one and the certificates presented, so that a failed handshake can tell
/// whether one was asked for and sent.
#[derive(Debug)]
struct ClientAuth {
    presenter: Presenter,
    requests: AtomicU64,
    presented: AtomicU64,
    /// Certificates whose key can make none of the signatures the server
    /// accepts: rustls then sends none.
    unusable: AtomicU64,
}

/// What [`ClientAuth`] counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientAuthCounts {
    requests: u64,
    presented: u64,
    unusable: u64,
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
            unusable: AtomicU64::new(0),
        }
    }

    /// The requests so far, and the certificates presented to them or
    /// found unusable.
    fn counts(&self) -> ClientAuthCounts {
        ClientAuthCounts {
            requests: self.requests.load(Ordering::Relaxed),
            presented: self.presented.load(Ordering::Relaxed),
            unusable: self.unusable.load(Ordering::Relaxed),
        }
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
        // rustls sends an empty certificate message when the key can make
        // none of the signatures the server lists: the same check as its own.
        match &key {
            Some(key) if key.key.choose_scheme(sigschemes).is_some() => {
                self.presented.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                self.unusable.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
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
mod tests;
