//! Trust anchors and the client certificate: CA files, the built-in roots,
//! and the client's chain and key, read from PEM files whose content is never
//! quoted in an error.

use std::path::Path;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};

use crate::error::{Error, Result};

/// Reads one CA file into `roots`. A bundle (a system's, a company's) may
/// hold a certificate the verifier cannot use: it is skipped, and said; the
/// file is refused when none is usable, or when it is not valid PEM.
pub(super) fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<()> {
    let pem = std::fs::read(path).map_err(|source| Error::CaFileRead {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |detail: String| Error::CaFileInvalid {
        path: path.to_path_buf(),
        detail,
    };
    let (mut added, mut skipped) = (0_u64, 0_u64);
    let mut first_skipped = None;
    for (index, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| invalid(e.to_string()))?;
        match roots.add(cert) {
            Ok(()) => added += 1,
            Err(error) => {
                skipped += 1;
                first_skipped.get_or_insert(format!("certificate {}: {error}", index + 1));
            }
        }
    }
    match first_skipped {
        None if added == 0 => Err(invalid("no certificate found".to_string())),
        Some(first) if added == 0 => Err(invalid(format!(
            "none of its {skipped} certificate(s) is usable; {first}"
        ))),
        Some(first) => {
            crate::warnings::warn_at_build!(
                name: "djehouty.CaCertificatesSkipped",
                path = path.display().to_string(),
                skipped = skipped,
                added = added,
                first = first.as_str(),
                message = "the CA file holds certificates the verifier cannot use: they are \
                           skipped, the others trusted"
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// Loads the client certificate chain and its private key, and checks that
/// they belong together.
pub(super) fn load_client_certificate(
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
                "this private key does not belong to the first certificate in \
                 {cert_path:?}; give the key the certificate was issued for, or, if the \
                 file holds a chain, put the client's own certificate first (then its \
                 issuers)"
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
pub(super) fn add_builtin_roots(roots: &mut RootCertStore) {
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let native = rustls_native_certs::load_native_certs();
        if let Some(error) = native.errors.first() {
            // Said, not refused: other roots or a CA file may do.
            crate::warnings::warn_at_build!(
                name: "djehouty.NativeRootsUnreadable",
                errors = native.errors.len() as u64,
                first = error.to_string(),
                message = "some of the system's CA certificates could not be loaded \
                           (feature `native-roots`): is the system's CA bundle installed?"
            );
        }
        roots.add_parsable_certificates(native.certs);
    }
}
