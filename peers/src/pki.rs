//! A throwaway certificate authority and server certificate, made at run time.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// The files the sink and the shippers read, in a temporary directory that
/// disappears with this value.
pub struct Pki {
    dir: tempfile::TempDir,
    ca_der: Vec<u8>,
}

impl Pki {
    /// A CA, and a server certificate it signed for `127.0.0.1` and
    /// `localhost`, written as `ca.pem`, `server.der` and `server.key.der`.
    pub fn generate() -> Result<Pki, String> {
        let fail = |what: &str, e: rcgen::Error| format!("cannot {what}: {e}");
        let ca_key = KeyPair::generate().map_err(|e| fail("generate the CA key", e))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("make the CA", e))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "peers bench CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| fail("self-sign the CA", e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(|e| fail("generate the server key", e))?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .map_err(|e| fail("make the server certificate", e))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .map_err(|e| fail("sign the server certificate", e))?;

        let dir = tempfile::Builder::new()
            .prefix("peers-bench-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let write = |name: &str, data: &[u8]| {
            fs::write(dir.path().join(name), data).map_err(|e| format!("cannot write {name}: {e}"))
        };
        write("ca.pem", ca_cert.pem().as_bytes())?;
        write("server.der", server_cert.der())?;
        write("server.key.der", &server_key.serialize_der())?;
        Ok(Pki {
            ca_der: ca_cert.der().to_vec(),
            dir,
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A rustls client configuration (ring, TLS 1.2 and 1.3) trusting only the CA.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .map_err(|e| format!("cannot trust the CA: {e}"))?;
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS versions: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// The name every TLS client checks the sink's certificate against.
pub fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
}
