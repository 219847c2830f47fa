//! A throw-away PKI and the TLS plumbing built on it.
//!
//! [`TestPki::generate`] creates, with `rcgen`, a certificate authority and a
//! separate server certificate signed by it:
//!
//! - CA: `CA:TRUE` with unconstrained path length, key usages `keyCertSign`,
//!   `cRLSign` and `digitalSignature`;
//! - leaf: `CA:FALSE`, extended key usage `serverAuth`, key usage
//!   `digitalSignature`, subject alternative names `DNS:localhost`,
//!   `IP:127.0.0.1` and `IP:::1`.
//!
//! It also issues a client certificate for mutual TLS: `CA:FALSE`, extended key
//! usage `clientAuth`, key usage `digitalSignature`, subject alternative name
//! `DNS:djehouty-test-client`.
//!
//! All use ECDSA P-256 keys. The CA certificate, the leaf certificate and the
//! leaf's private key (unencrypted PKCS#8, `BEGIN PRIVATE KEY`, which GnuTLS
//! and so rsyslog's `gtls` driver read as is), and the client certificate and
//! key, are written as PEM files into a private temporary directory that lives
//! as long as the [`TestPki`].
//!
//! [`TestPki::generate_expired`] gives a PKI whose server certificate expired
//! (the CA is still valid).
//!
//! The module also builds rustls server and client configurations from a
//! [`TestPki`] (with the crypto provider of [`provider`]) and offers [`TlsClient`], a
//! minimal blocking TLS client that closes connections cleanly.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, ServerConfig};

/// Timeout applied to every socket operation of [`TlsClient`] and to its
/// closing handshake.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A CA, a server certificate and a client certificate signed by it, in
/// memory and as PEM files.
pub struct TestPki {
    /// Directory holding the PEM files; removed when the `TestPki` is dropped.
    pub dir: tempfile::TempDir,
    /// Absolute path of the CA certificate (PEM).
    pub ca_pem: PathBuf,
    /// Absolute path of the server (leaf) certificate (PEM, leaf only).
    pub cert_pem: PathBuf,
    /// Absolute path of the leaf's private key (PKCS#8 PEM, unencrypted).
    pub key_pem: PathBuf,
    /// The CA certificate, DER.
    pub ca_der: CertificateDer<'static>,
    /// The chain a server presents: the leaf only.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
    /// Absolute path of the client certificate (PEM, leaf only).
    pub client_cert_pem: PathBuf,
    /// Absolute path of the client certificate's private key (PKCS#8 PEM).
    pub client_key_pem: PathBuf,
}

/// Validity of a generated certificate.
#[derive(Clone, Copy)]
struct Validity {
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
}

impl Validity {
    const CURRENT: Validity = Validity {
        not_before: (2020, 1, 1),
        not_after: (2099, 12, 31),
    };
    const EXPIRED: Validity = Validity {
        not_before: (2020, 1, 1),
        not_after: (2021, 1, 1),
    };
    const NOT_YET_VALID: Validity = Validity {
        not_before: (2090, 1, 1),
        not_after: (2099, 12, 31),
    };

    fn apply(self, params: &mut CertificateParams) {
        let (y, m, d) = self.not_before;
        params.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = self.not_after;
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
}

/// Which TLS protocol versions a configuration allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
    /// TLS 1.2 and TLS 1.3.
    Both,
}

impl TlsVersions {
    /// The rustls protocol versions this value stands for.
    pub fn rustls_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        match self {
            TlsVersions::Tls12 => &TLS12,
            TlsVersions::Tls13 => &TLS13,
            TlsVersions::Both => &BOTH,
        }
    }
}

/// The crypto provider used by every configuration built here: that of the
/// feature switched on (aws-lc-rs when both are), else the process default.
///
/// Panics when there is neither: a test set-up error.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let compiled = Some(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let compiled = Some(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    let compiled: Option<rustls::crypto::CryptoProvider> = None;
    match (compiled, rustls::crypto::CryptoProvider::get_default()) {
        (Some(provider), _) => Arc::new(provider),
        (None, Some(provider)) => Arc::clone(provider),
        (None, None) => panic!(
            "djehouty-testkit has no crypto provider: switch on its `aws-lc-rs` or `ring` \
             feature (djehouty's features of the same names do), or install a process default"
        ),
    }
}

impl TestPki {
    /// Generates a fresh CA and server certificate and writes the PEM files.
    ///
    /// Every call yields an unrelated PKI, so a second call gives a "wrong
    /// CA" for negative tests. Its CA has the same name, though, so a client
    /// trusting one sees a bad signature on the other's certificates;
    /// [`TestPki::generate_other`] gives a CA of another name (an unknown issuer).
    pub fn generate() -> TestPki {
        TestPki::generate_with(Validity::CURRENT, "djehouty test CA")
    }

    /// A PKI whose server certificate expired on 2021-01-01 (the CA and the
    /// client certificate are valid).
    pub fn generate_expired() -> TestPki {
        TestPki::generate_with(Validity::EXPIRED, "djehouty test CA")
    }

    /// A PKI whose server certificate becomes valid only on 2090-01-01 (the
    /// CA and the client certificate are valid).
    pub fn generate_not_yet_valid() -> TestPki {
        TestPki::generate_with(Validity::NOT_YET_VALID, "djehouty test CA")
    }

    fn generate_with(server_validity: Validity, ca_name: &str) -> TestPki {
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "djehouty tests");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Validity::CURRENT.apply(&mut ca_params);
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("generate the server key");
        let mut leaf_params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .expect("server certificate params");
        leaf_params.distinguished_name = rcgen::DistinguishedName::new();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.use_authority_key_identifier_extension = true;
        server_validity.apply(&mut leaf_params);
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("sign the server certificate");

        let client_key = KeyPair::generate().expect("generate the client key");
        let mut client_params = CertificateParams::new(vec!["djehouty-test-client".to_string()])
            .expect("client certificate params");
        client_params.distinguished_name = rcgen::DistinguishedName::new();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "djehouty-test-client");
        client_params.is_ca = IsCa::ExplicitNoCa;
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.use_authority_key_identifier_extension = true;
        Validity::CURRENT.apply(&mut client_params);
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .expect("sign the client certificate");

        let dir = tempfile::Builder::new()
            .prefix("djehouty-pki-")
            .tempdir()
            .expect("create a temporary directory for the PKI");
        let base = dir
            .path()
            .canonicalize()
            .expect("canonicalize the PKI directory");
        let ca_pem = base.join("ca.pem");
        let cert_pem = base.join("cert.pem");
        let key_pem = base.join("key.pem");
        fs::write(&ca_pem, ca_cert.pem()).expect("write ca.pem");
        fs::write(&cert_pem, leaf_cert.pem()).expect("write cert.pem");
        fs::write(&key_pem, leaf_key.serialize_pem()).expect("write key.pem");
        let client_cert_pem = base.join("client.pem");
        let client_key_pem = base.join("client-key.pem");
        fs::write(&client_cert_pem, client_cert.pem()).expect("write client.pem");
        fs::write(&client_key_pem, client_key.serialize_pem()).expect("write client-key.pem");

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        TestPki {
            dir,
            ca_pem,
            cert_pem,
            key_pem,
            ca_der: ca_cert.der().clone(),
            cert_chain: vec![leaf_cert.der().clone()],
            key,
            client_cert_pem,
            client_key_pem,
        }
    }

    /// Another, unrelated PKI whose CA has another name: clients trusting it
    /// reject servers of `self` as issued by an unknown CA, and servers
    /// trusting `self` reject its client certificate likewise.
    pub fn generate_other() -> TestPki {
        TestPki::generate_with(Validity::CURRENT, "djehouty other test CA")
    }

    /// A root store holding only this PKI's CA.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("add the test CA to a root store");
        roots
    }

    /// A rustls server configuration presenting this PKI's server certificate,
    /// limited to `versions`, without client authentication.
    pub fn server_config(&self, versions: TlsVersions) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions.rustls_versions())
            .expect("protocol versions supported by the provider")
            .with_no_client_auth()
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .expect("server certificate and key match");
        Arc::new(config)
    }

    /// Like [`TestPki::server_config`], but every client must present a
    /// certificate issued by this PKI's CA (mutual TLS).
    pub fn server_config_mtls(&self, versions: TlsVersions) -> Arc<ServerConfig> {
        self.mtls_config(versions, provider())
    }

    /// Like [`TestPki::server_config_mtls`], but the server accepts only RSA
    /// signatures from clients, as a server whose policy (or whose TLS
    /// library) lists no other: this PKI's client key, ECDSA, can make none.
    pub fn server_config_mtls_rsa_only(&self, versions: TlsVersions) -> Arc<ServerConfig> {
        let mut rsa_only = (*provider()).clone();
        let mapping: Vec<_> = (rsa_only.signature_verification_algorithms.mapping.iter())
            .filter(|(scheme, _)| {
                let name = format!("{scheme:?}");
                name.starts_with("RSA_PKCS1") || name.starts_with("RSA_PSS")
            })
            .copied()
            .collect();
        assert!(!mapping.is_empty(), "the provider verifies RSA signatures");
        let all: Vec<_> = mapping
            .iter()
            .flat_map(|(_, algs)| algs.iter().copied())
            .collect();
        // The provider's tables are `'static`: leaked, once per server set up.
        rsa_only.signature_verification_algorithms = rustls::crypto::WebPkiSupportedAlgorithms {
            all: Vec::leak(all),
            mapping: Vec::leak(mapping),
        };
        self.mtls_config(versions, Arc::new(rsa_only))
    }

    /// A mutual TLS server configuration whose client certificates are
    /// verified with the algorithms of `verifying`.
    fn mtls_config(
        &self,
        versions: TlsVersions,
        verifying: Arc<rustls::crypto::CryptoProvider>,
    ) -> Arc<ServerConfig> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.root_store()), verifying)
                .build()
                .expect("a client verifier for the test CA");
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions.rustls_versions())
            .expect("protocol versions supported by the provider")
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .expect("server certificate and key match");
        Arc::new(config)
    }

    /// A server configuration presenting this PKI's server certificate while
    /// signing the handshake with `other`'s server key: a peer that shows a
    /// certificate it does not own. Clients must refuse it even when they
    /// accept any certificate.
    pub fn server_config_with_wrong_key(
        &self,
        other: &TestPki,
        versions: TlsVersions,
    ) -> Arc<ServerConfig> {
        #[derive(Debug)]
        struct Fixed(Arc<CertifiedKey>);
        impl ResolvesServerCert for Fixed {
            fn resolve(
                &self,
                _hello: rustls::server::ClientHello<'_>,
            ) -> Option<Arc<CertifiedKey>> {
                Some(Arc::clone(&self.0))
            }
        }
        let key = provider()
            .key_provider
            .load_private_key(other.key.clone_key())
            .expect("load the other server key");
        // `CertifiedKey::new` does not check that the key matches.
        let certified = CertifiedKey::new(self.cert_chain.clone(), key);
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions.rustls_versions())
            .expect("protocol versions supported by the provider")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
        Arc::new(config)
    }

    /// A rustls client configuration trusting only this PKI's CA, limited to
    /// `versions`.
    pub fn client_config(&self, versions: TlsVersions) -> Arc<ClientConfig> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions.rustls_versions())
            .expect("protocol versions supported by the provider")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// A minimal blocking TLS client over a loopback TCP connection.
///
/// Every socket operation is bounded by a 10 s timeout. [`TlsClient::close`]
/// sends `close_notify`, half-closes the socket and reads until the server
/// closes, so that no data is lost to a TCP reset.
pub struct TlsClient {
    conn: ClientConnection,
    sock: TcpStream,
}

impl TlsClient {
    /// Connects to `addr`, verifying the server as `server_name` (a DNS name
    /// or an IP address literal), and completes the handshake.
    pub fn connect(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsClient> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        sock.set_nodelay(true)?;
        let mut client = TlsClient { conn, sock };
        while client.conn.is_handshaking() {
            client.conn.complete_io(&mut client.sock)?;
        }
        Ok(client)
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The underlying rustls connection.
    pub fn connection(&self) -> &ClientConnection {
        &self.conn
    }

    /// Encrypts and sends all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        // rustls buffers a bounded amount of plaintext: write in rounds and
        // push the records out after each one.
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest)?;
            rest = &rest[n..];
            if n == 0 && !self.conn.wants_write() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS connection accepts no more data",
                ));
            }
            while self.conn.wants_write() {
                self.conn.write_tls(&mut self.sock)?;
            }
        }
        Ok(())
    }

    /// Sends `close_notify`, half-closes the TCP connection and reads until
    /// the server closes its side (at most 10 s). A server that closes
    /// without its own `close_notify` (rsyslog does) is not an error.
    pub fn close(mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        self.sock.flush()?;
        // Some servers reset instead of answering the half-close; that is
        // their way of closing and is fine once our data is out.
        let _ = self.sock.shutdown(Shutdown::Write);
        drain_until_eof(&mut self.sock, Instant::now() + IO_TIMEOUT)
    }
}

/// Reads and discards until EOF, a connection reset, or `deadline`.
fn drain_until_eof(sock: &mut TcpStream, deadline: Instant) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer did not close the connection in time",
            ));
        }
        sock.set_read_timeout(Some(left))?;
        match sock.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Sends `bytes` over a plain TCP connection to `addr`, half-closes it and
/// waits (at most 10 s) for the server to close its side.
pub fn send_plain(addr: SocketAddr, bytes: &[u8]) -> io::Result<()> {
    let mut sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    sock.write_all(bytes)?;
    sock.shutdown(Shutdown::Write)?;
    drain_until_eof(&mut sock, Instant::now() + IO_TIMEOUT)
}

/// Connects with TLS (`server_name` checked against the certificate), sends
/// `bytes`, closes cleanly and returns the negotiated protocol version.
pub fn send_tls(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
    bytes: &[u8],
) -> io::Result<ProtocolVersion> {
    let mut client = TlsClient::connect(addr, server_name, config)?;
    let version = client
        .protocol_version()
        .expect("a finished handshake has a protocol version");
    client.send(bytes)?;
    client.close()?;
    Ok(version)
}
