//! TLS through rustls: the client configuration and the handshake.
//!
//! Certificates and host names are always verified: the trust anchors are the
//! built-in roots (Mozilla's with the `webpki-roots` feature, the system's with
//! `native-roots`) plus any CA file given. TLS 1.2 and 1.3 are offered. There is
//! no fallback to plaintext.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{Endpoint, TlsOptions};
use crate::error::{Error, Result};

/// What a TLS connection needs: the connector and the name to verify.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Builds the client configuration: loads the trust anchors and checks the
    /// server name.
    pub(crate) fn new(endpoint: &Endpoint, options: &TlsOptions) -> Result<TlsSettings> {
        let server_name = ServerName::try_from(endpoint.host().to_string()).map_err(|_| {
            Error::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                reason: "the host is neither a valid DNS name nor an IP address".to_string(),
            }
        })?;
        let mut roots = RootCertStore::empty();
        if options.builtin_roots {
            add_builtin_roots(&mut roots);
        }
        for path in &options.ca_files {
            let pem = std::fs::read(path).map_err(|source| Error::CaFileRead {
                path: path.clone(),
                source,
            })?;
            let invalid = |detail: String| Error::CaFileInvalid {
                path: path.clone(),
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
        }
        if roots.is_empty() {
            return Err(Error::NoTrustAnchors);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the handshake over an established TCP connection, within `limit`.
    pub(crate) async fn handshake(
        &self,
        endpoint: &Endpoint,
        tcp: TcpStream,
        limit: Duration,
    ) -> Result<TlsStream<TcpStream>> {
        tokio::time::timeout(limit, self.connector.connect(self.server_name.clone(), tcp))
            .await
            .map_err(|_| Error::Timeout {
                step: "TLS handshake",
                endpoint: endpoint.to_string(),
                timeout: limit,
            })?
            .map_err(|source| Error::Handshake {
                endpoint: endpoint.to_string(),
                source,
            })
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
