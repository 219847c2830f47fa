//! Why a handshake failed: the error, rustls's or the server's alert, and
//! what was seen of the client certificate, turned into a [`TlsFailure`].

use std::io;

use rustls::{AlertDescription, CertificateError, InvalidMessage, PeerIncompatible};

use crate::config::Endpoint;
use crate::error::{Error, TlsFailure};

/// Whether the server asked for a client certificate during a handshake, and
/// whether one was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuthSeen {
    NotAsked,
    AskedNoneSent,
    /// Asked, and the key of the one there could make none of the
    /// signatures the server accepts: none was sent.
    AskedUnusable,
    AskedSent,
}

/// The error for a failed handshake, its cause named.
pub(super) fn handshake_error(
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
pub(super) fn classify(error: &io::Error, heard: bool, auth: ClientAuthSeen) -> TlsFailure {
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
        (true, true, ClientAuthSeen::AskedUnusable) => TlsFailure::ClientCertificateUnusable,
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
        // The server asked for a client certificate signed in none of the
        // ways its key can sign (TLS 1.3, before any certificate is chosen).
        rustls::Error::PeerIncompatible(
            PeerIncompatible::NoCertificateRequestSignatureSchemesInCommon,
        ) => TlsFailure::ClientCertificateUnusable,
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
        // Before any request for a client certificate, the alert of a
        // server that found nothing it accepts in the ClientHello: OpenSSL
        // and Java servers send it for no shared cipher suite or group.
        (A::HandshakeFailure, ClientAuthSeen::NotAsked) => TlsFailure::Incompatible,
        (A::CertificateRequired, ClientAuthSeen::AskedSent) => {
            TlsFailure::ClientCertificateRejected
        }
        (A::CertificateRequired, ClientAuthSeen::AskedUnusable) => {
            TlsFailure::ClientCertificateUnusable
        }
        (A::CertificateRequired, _) => TlsFailure::ClientCertificateRequired,
        (_, ClientAuthSeen::AskedNoneSent) if refusal => TlsFailure::ClientCertificateRequired,
        (_, ClientAuthSeen::AskedSent) if refusal => TlsFailure::ClientCertificateRejected,
        (_, ClientAuthSeen::AskedUnusable) if refusal => TlsFailure::ClientCertificateUnusable,
        _ => TlsFailure::Other,
    }
}
