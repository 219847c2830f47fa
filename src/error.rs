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
        "invalid endpoint {endpoint:?}: {reason} (expected `tcp://host:port` or `tls://host:port`)"
    )]
    InvalidEndpoint {
        /// The endpoint as given.
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
        "TLS endpoint without any trusted root certificate: give a CA with `.with_ca_file(..)` \
         or keep the built-in roots enabled"
    )]
    NoTrustAnchors,

    /// The TLS client configuration could not be built.
    #[error("TLS configuration error: {0}")]
    TlsConfig(#[from] rustls::Error),

    /// The exporter's I/O runtime could not be started.
    #[error("cannot start the exporter's I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),

    /// Resolving or connecting to the endpoint failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The TLS handshake failed (certificate not trusted, wrong name, not a TLS server, ...).
    #[error("TLS handshake with {endpoint} failed: {source}")]
    Handshake {
        /// The endpoint.
        endpoint: String,
        /// The underlying error (wraps a `rustls::Error` when the peer was refused).
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
    #[error("{step} with {endpoint} timed out after {timeout:?}")]
    Timeout {
        /// The step that timed out: "connect", "TLS handshake" or "write".
        step: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The time allowed.
        timeout: Duration,
    },

    /// The exporter was shut down.
    #[error("the exporter is shut down")]
    ShutDown,
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
