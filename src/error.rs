//! The crate's error type.
//!
//! Every variant says what went wrong and, where it helps, what to do about it.
//! Configuration errors come from the builders' `build()`; transport errors are
//! reported by the exporter to the OpenTelemetry SDK (as
//! [`OTelSdkError::InternalFailure`](opentelemetry_sdk::error::OTelSdkError)
//! carrying this error's message).

use std::path::PathBuf;
use std::time::Duration;

/// Errors returned by djehouty.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No endpoint was given to the builder and the environment variable is unset.
    #[error(
        "no endpoint configured: call `.with_endpoint(\"tls://host:port\")` on the builder \
         or set the {env_var} environment variable"
    )]
    MissingEndpoint {
        /// The environment variable that was consulted.
        env_var: &'static str,
    },

    /// The endpoint could not be parsed.
    #[error(
        "invalid endpoint {endpoint:?}: {reason} (expected `tcp://host:port`, `tls://host:port`, \
         `udp://host:port` or `http(s)://host[:port][/path][?query]`)"
    )]
    InvalidEndpoint {
        /// The endpoint as given, its credentials, query values and
        /// fragment hidden.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The CA file could not be read.
    #[error("cannot read CA certificate file {path:?}: {source}")]
    CaFileRead {
        /// The file's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The CA file holds no usable PEM certificate.
    #[error(
        "CA certificate file {path:?} holds no usable PEM certificate ({detail}); \
         give a file with one or more `-----BEGIN CERTIFICATE-----` blocks"
    )]
    CaFileInvalid {
        /// The file's path.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },

    /// TLS was requested but no trust anchor is configured.
    #[error(
        "TLS endpoint without any trusted root certificate: give a CA file \
         (`.with_ca_file(..)`, or OTEL_EXPORTER_GELF_CERTIFICATE / \
         OTEL_EXPORTER_LTSV_CERTIFICATE), or keep the built-in roots \
         (`.with_builtin_roots(true)`, the default) and build with a cargo feature that \
         brings them: `webpki-roots` (on by default) or `native-roots` (the system's \
         CA bundle, which must be installed: `ca-certificates` on Debian)"
    )]
    NoTrustAnchors,

    /// The client certificate or its private key file could not be read.
    #[error("cannot read {path:?}, the client certificate or its private key: {source}")]
    ClientCertificateRead {
        /// The file's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The client certificate or its private key is unusable: no PEM
    /// certificate, no private key, or a key that does not match the certificate.
    #[error("client certificate file {path:?} is unusable: {detail}")]
    ClientCertificateInvalid {
        /// The file's path (the certificate's or the key's).
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },

    /// The TLS client configuration could not be built from the crypto
    /// provider: one installed as the process default that offers no cipher
    /// suite for TLS 1.2 or 1.3, or no key exchange group for its suites.
    #[error(
        "cannot build the TLS configuration from the crypto provider: {detail}; the \
         process-default rustls `CryptoProvider`, if one is installed, must offer cipher \
         suites for TLS 1.2 or 1.3 with matching key exchange groups"
    )]
    TlsConfig {
        /// What the TLS library found wrong.
        detail: String,
    },

    /// A `tls://` or `https://` endpoint has no crypto provider to use: no
    /// process-default rustls `CryptoProvider` is installed and neither the
    /// `aws-lc-rs` nor the `ring` feature is on.
    #[error(
        "{endpoint} needs a TLS crypto provider and none is available: switch on djehouty's \
         `aws-lc-rs` (default) or `ring` feature, or install a process-default provider with \
         `rustls::crypto::CryptoProvider::install_default` before `build()`"
    )]
    NoCryptoProvider {
        /// The endpoint.
        endpoint: String,
    },

    /// [`with_tls_config`](crate::ExporterBuilder::with_tls_config) was
    /// combined with options of the exporter's own TLS configuration, which
    /// would not apply.
    #[error(
        "`with_tls_config` brings its own rustls `ClientConfig`, so {} would not apply: drop \
         {}, and set trusted roots, client certificate or certificate verifier in that \
         `ClientConfig` instead",
        backquoted(options),
        if options.len() == 1 { "it" } else { "them" }
    )]
    TlsConfigConflict {
        /// The conflicting builder methods, such as `with_ca_file`.
        options: Vec<&'static str>,
    },

    /// The exporter's I/O runtime could not be started.
    #[error("cannot start the exporter's I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),

    /// Connecting to the endpoint failed: to each of its addresses, when its
    /// host name has several (the message then tells how each one failed).
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The endpoint's host name could not be resolved, and no earlier lookup
    /// had found its addresses (once one has, they are used while the
    /// resolver fails). A resolver that does not answer in time is a
    /// [`Step::Resolve`] timeout instead.
    #[error(
        "cannot resolve the host name {host:?} of {endpoint}: {source}; check the name's \
         spelling and that this machine's DNS resolver knows it, or give an IP address"
    )]
    Resolve {
        /// The endpoint.
        endpoint: String,
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },

    /// The TLS handshake failed; `failure` tells why (certificate not trusted,
    /// wrong name, expired, not a TLS server, client certificate missing, ...).
    ///
    /// Nothing is ever sent in plaintext instead.
    #[error("TLS handshake with {endpoint} failed: {failure} ({source})")]
    Handshake {
        /// The endpoint.
        endpoint: String,
        /// The cause, for programs to match on.
        failure: TlsFailure,
        /// The underlying error, with the TLS library's detail in its message.
        #[source]
        source: std::io::Error,
    },

    /// Writing to the endpoint failed.
    #[error("writing to {endpoint} failed: {source}")]
    Write {
        /// The endpoint.
        endpoint: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A network step did not complete in time.
    ///
    /// A TLS handshake to which the server never answered has the step
    /// [`Step::Handshake`], and its message says the port may be a plaintext
    /// one: a plaintext input reads the ClientHello as data and waits for
    /// more. A server that answered and then stalled has the step
    /// [`Step::HandshakeStalled`].
    #[error(
        "{step} with {endpoint} timed out after {timeout:?}{}",
        timeout_hint(*step)
    )]
    Timeout {
        /// The step that timed out.
        step: Step,
        /// The endpoint.
        endpoint: String,
        /// The time allowed.
        timeout: Duration,
    },

    /// An `http(s)://` endpoint answered with a status other than 2xx.
    ///
    /// After 5xx (but 501 and 505), 429 (too many requests) or 408 (request
    /// timeout) the records are kept and sent again after a backoff. After any
    /// other status (other 4xx; 501 "not implemented" and 505 "HTTP version
    /// not supported", which say what the receiver can never do; or 3xx:
    /// redirects are not followed) sending them again would be refused again,
    /// so they are dropped and counted in
    /// [`Stats::dropped_rejected`](crate::Stats::dropped_rejected), and this
    /// error is kept as [`Stats::last_error`](crate::Stats::last_error). The
    /// message says what to check.
    #[error(
        "{endpoint} answered HTTP {status}{}: {}",
        quoted_body(body),
        http_status_hint(*status)
    )]
    HttpStatus {
        /// The endpoint.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most about 200 bytes, lossy UTF-8),
        /// empty when there was none; for a redirect, where it points
        /// (`redirects to ...`, the query's values hidden).
        body: String,
    },

    /// The endpoint closed a connection soon after accepting it: records
    /// written on it may be lost.
    #[error(
        "{endpoint} closed the connection {after:?} after accepting it; records written on it \
         may be lost: check the receiver (a load balancer without a healthy backend, or an \
         input that refuses the format, does this)"
    )]
    PeerClosed {
        /// The endpoint.
        endpoint: String,
        /// How long the connection lived.
        after: Duration,
    },

    /// The exporter was shut down.
    #[error("the exporter is shut down")]
    ShutDown,

    /// A [`LogGuard`](crate::LogGuard)'s shutdown found records that were
    /// never delivered: dropped while the buffers were full (the endpoint
    /// unreachable or too slow), refused by the endpoint, or still waiting
    /// when the shutdown's time ran out. Also returned, with `records` 0,
    /// when the shutdown itself failed.
    #[error("{detail}")]
    Undelivered {
        /// How many records were lost.
        records: u64,
        /// The endpoint, how many were lost for each reason, the last
        /// delivery error and what may help.
        detail: String,
    },

    /// Installing djehouty as the `log` logger (`ExporterBuilder::install_log`,
    /// cargo feature `log`) found another logger already installed: a process
    /// has only one.
    #[error(
        "a `log` logger is already installed, and a process has only one: call `install_log` \
         once (a second call finds the first one's logger; keep its guard), before any other \
         logger is set (env_logger, tracing-subscriber's `init()` with its `tracing-log` \
         feature, ...), or combine both loggers yourself from `log_logger()`"
    )]
    LoggerAlreadySet,
}

/// Names as code, separated by commas: `a`, `b`.
fn backquoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The response body, quoted, as shown in [`Error::HttpStatus`]'s message.
fn quoted_body(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(" {body:?}")
    }
}

/// What an HTTP status means for the records and what to check.
pub(crate) fn http_status_hint(status: u16) -> &'static str {
    match status {
        400 => {
            "the receiver refused the request as malformed and the records were dropped; check \
             that the endpoint is a GELF HTTP input and, with `with_http_bulk(true)`, that the \
             input's \"Enable Bulk Receiving\" option is on"
        }
        401 | 403 => {
            "the receiver requires an authorization the request did not carry and the records \
             were dropped; send the header the input (\"Authorization Header Name\" and \
             \"Value\") or the proxy expects with `with_http_header`"
        }
        404 | 405 => {
            "nothing accepts GELF at this path and the records were dropped; check the \
             endpoint's port and path (Graylog's GELF HTTP input listens on `/gelf`)"
        }
        413 => {
            "the request is larger than the receiver accepts and the records were dropped; \
             raise the input's \"Max. HTTP chunk size\" (64 KiB by default in Graylog) or lower \
             `with_max_frame_size`"
        }
        415 => {
            "the receiver does not accept this content and the records were dropped; with \
             `with_http_gzip(true)`, check that it accepts gzip-encoded bodies"
        }
        300..=399 => {
            "redirects are not followed and the records were dropped; use the address the \
             endpoint redirects to as the endpoint"
        }
        501 => {
            "the receiver does not implement this request (a `POST` of GELF) and the records \
             were dropped; check that the endpoint is a GELF HTTP input and not another \
             service or a proxy that does not forward `POST`"
        }
        505 => {
            "the receiver does not support HTTP/1.1, the version this exporter speaks, and the \
             records were dropped; check that the endpoint is a GELF HTTP input, or the \
             proxy in front of it"
        }
        408 | 429 => {
            "the receiver asks to slow down; the records are kept and sent again after a delay"
        }
        500..=599 => {
            "the receiver is failing or overloaded; the records are kept and sent again after \
             a delay (check the receiver's health and logs)"
        }
        _ => "the records were dropped; check the receiver's configuration and logs",
    }
}

/// A step of talking to the endpoint that has a time limit; carried by
/// [`Error::Timeout`]. New steps may be added, so a `match` needs a
/// catch-all arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Resolving the endpoint's host name (DNS), within
    /// [`RESOLVE_TIMEOUT`](crate::config::RESOLVE_TIMEOUT).
    Resolve,
    /// Establishing the TCP connection (or, for UDP, the socket).
    Connect,
    /// The TLS handshake, to which the server never answered.
    Handshake,
    /// The TLS handshake, which the server answered and then stopped.
    HandshakeStalled,
    /// Writing records: no progress for the write timeout.
    Write,
    /// Sending an HTTP request and reading its answer.
    HttpRequest,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Resolve => "DNS resolution",
            Step::Connect => "connect",
            Step::Handshake => "TLS handshake",
            Step::HandshakeStalled => "TLS handshake (the server stopped answering)",
            Step::Write => "write",
            Step::HttpRequest => "HTTP request",
        })
    }
}

/// What to add to a timeout's message.
fn timeout_hint(step: Step) -> &'static str {
    match step {
        Step::Resolve => {
            ": the DNS resolver did not answer for the endpoint's host name; check that this \
             machine's DNS servers are reachable, or give an IP address"
        }
        Step::Handshake => {
            ": the server never answered the TLS ClientHello; it may be a plaintext port \
             (use the receiver's TLS port, or a `tcp://` endpoint if plaintext is intended)"
        }
        Step::Write => {
            ": the receiver neither took nor acknowledged more of what was written in that \
             time (overloaded, or no longer reading); what it did not acknowledge is written \
             again on a new connection. Check the receiver, or raise `with_write_timeout`"
        }
        Step::HttpRequest => {
            ": no answer came in that time (the connect, handshake over `https://` and \
             write timeouts together, and more for a large body; opening a connection is \
             not counted, its steps having their own limits); the records are kept and sent \
             again, twice if the receiver took them but answered late. Check the receiver, \
             or raise `with_write_timeout`"
        }
        _ => "",
    }
}

/// Why a TLS handshake failed; carried by [`Error::Handshake`].
///
/// Its `Display` says what happened and what to do. New causes may be added,
/// so a `match` needs a catch-all arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate does not lead to a trusted CA.
    UnknownIssuer,
    /// The server's certificate is not valid for the endpoint's host name or address.
    WrongHostName,
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotYetValid,
    /// The server's certificate is unusable for another reason: bad signature,
    /// not meant for a TLS server, malformed, unsupported algorithm, revoked.
    BadCertificate,
    /// The server answered with bytes that are not TLS: a plaintext port.
    NotTls,
    /// The server closed the connection without answering the ClientHello.
    ClosedWithoutAnswer,
    /// The server and this client share no TLS version, cipher suite or
    /// key exchange group (or the server refused the ClientHello for a
    /// reason it did not name, such as the server name sent).
    Incompatible,
    /// The server requires a client certificate and none is configured.
    ClientCertificateRequired,
    /// The server refused the client certificate that was presented.
    ClientCertificateRejected,
    /// The server accepts none of the signature algorithms the client
    /// certificate's key can use, so the certificate could not be sent.
    ClientCertificateUnusable,
    /// Any other handshake failure; the error's source has the details.
    Other,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsFailure::UnknownIssuer => {
                "the server's certificate is not signed by a trusted CA; trust the CA that \
                 issued it with `with_ca_file(..)` (or `OTEL_EXPORTER_GELF_CERTIFICATE` / \
                 `OTEL_EXPORTER_LTSV_CERTIFICATE`)"
            }
            TlsFailure::WrongHostName => {
                "the server's certificate is not valid for this host name; use a host name \
                 or address the certificate lists"
            }
            TlsFailure::Expired => {
                "the server's certificate has expired; the server must renew it (check this \
                 machine's clock too)"
            }
            TlsFailure::NotYetValid => {
                "the server's certificate is not valid yet; check the clocks of this machine \
                 and of the server"
            }
            TlsFailure::BadCertificate => {
                "the server's certificate is unusable: a bad signature (possibly issued by \
                 another CA of the same name as a trusted one), not meant for a TLS server, \
                 malformed or revoked; the server must present a valid certificate"
            }
            TlsFailure::NotTls => {
                "the server does not speak TLS (is this a plaintext port?); use the \
                 receiver's TLS port, or a `tcp://` endpoint if plaintext is intended"
            }
            TlsFailure::ClosedWithoutAnswer => {
                "the server closed the connection without answering the TLS ClientHello; it \
                 may be a plaintext port, or a proxy with no TLS service behind it"
            }
            TlsFailure::Incompatible => {
                "the server shares no TLS version, cipher suite or key exchange group with \
                 this client, which requires TLS 1.2 or 1.3 (in 1.2, an ECDHE key exchange \
                 with AES-GCM or ChaCha20-Poly1305); or it refused the server name sent (none \
                 is sent for an IP address)"
            }
            TlsFailure::ClientCertificateRequired => {
                "the server requires a client certificate; configure one with \
                 `with_client_certificate(cert, key)`"
            }
            TlsFailure::ClientCertificateRejected => {
                "the server refused our client certificate; check that it is issued by a CA \
                 the server trusts, meant for client authentication and still valid"
            }
            TlsFailure::ClientCertificateUnusable => {
                "the server accepts no signature algorithm our client certificate's key can \
                 use (an ECDSA or Ed25519 key where it takes RSA only, say), so none could be \
                 sent; use a certificate whose key is of a type the server accepts"
            }
            TlsFailure::Other => "the handshake failed",
        })
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
