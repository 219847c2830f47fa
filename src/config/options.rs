//! The resolved settings of each transport, and the checks that refuse a
//! setting for an endpoint it does not apply to rather than ignore it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};

use super::env::EnvClientCertificate;
use super::{
    Compression, Endpoint, Framing, Scheme, DEFAULT_UDP_CHUNK_BYTES, MAX_UDP_CHUNK_BYTES,
    MIN_UDP_CHUNK_BYTES,
};
use crate::encode::Format;
use crate::error::{Error, Result};

/// GELF over UDP settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpOptions {
    /// Bytes of one datagram, chunk header included.
    pub(crate) chunk_bytes: usize,
    pub(crate) compression: Compression,
}

impl UdpOptions {
    /// Validates the UDP settings; they are refused for other endpoints rather
    /// than silently ignored.
    pub(super) fn new(
        endpoint: &Endpoint,
        chunk_bytes: Option<usize>,
        compression: Option<Compression>,
    ) -> Result<UdpOptions> {
        if endpoint.scheme() != Scheme::Udp {
            if chunk_bytes.is_some() {
                return Err(Error::InvalidConfig(format!(
                    "a UDP chunk size is set but {endpoint} is not a `udp://` endpoint: \
                     drop `with_udp_chunk_size`"
                )));
            }
            if compression.is_some() {
                return Err(Error::InvalidConfig(format!(
                    "`with_compression` applies to `udp://` endpoints only and {endpoint} is \
                     not one: drop `with_compression`"
                )));
            }
        }
        let chunk_bytes = chunk_bytes.unwrap_or(DEFAULT_UDP_CHUNK_BYTES);
        if !(MIN_UDP_CHUNK_BYTES..=MAX_UDP_CHUNK_BYTES).contains(&chunk_bytes) {
            return Err(Error::InvalidConfig(format!(
                "the UDP chunk size must be between {MIN_UDP_CHUNK_BYTES} and \
                 {MAX_UDP_CHUNK_BYTES} bytes, got {chunk_bytes}: use the path's MTU minus the \
                 IP and UDP headers (1420 suits most WAN paths), or the default {DEFAULT_UDP_CHUNK_BYTES}"
            )));
        }
        Ok(UdpOptions {
            chunk_bytes,
            compression: compression.unwrap_or_default(),
        })
    }
}

/// Network time limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) export: Duration,
    pub(crate) connect: Duration,
    pub(crate) handshake: Duration,
    pub(crate) write: Duration,
}

#[cfg(test)]
impl Timeouts {
    /// Every limit `limit`: for tests that do not care which is which.
    pub(crate) fn all(limit: Duration) -> Timeouts {
        Timeouts {
            export: limit,
            connect: limit,
            handshake: limit,
            write: limit,
        }
    }
}

/// TLS trust settings.
#[derive(Debug, Clone)]
pub(crate) struct TlsOptions {
    pub(crate) ca_files: Vec<PathBuf>,
    pub(crate) builtin_roots: bool,
    /// PEM files of the client certificate chain and of its private key.
    pub(crate) client_certificate: Option<(PathBuf, PathBuf)>,
    /// Certificates and host names are not checked (tests only).
    pub(crate) dangerous_accept_invalid_certificates: bool,
    /// The user's own configuration (`with_tls_config`); the settings above
    /// are then at their defaults and unused.
    pub(crate) client_config: Option<Arc<rustls::ClientConfig>>,
}

/// The TLS settings as the builder holds them, before they are checked.
pub(super) struct TlsChoices {
    pub(super) ca_files: Vec<PathBuf>,
    /// A CA file from the environment, used when no `with_ca_file` is given.
    pub(super) env_ca_file: Option<PathBuf>,
    /// `None`: `with_builtin_roots` was not called.
    pub(super) builtin_roots: Option<bool>,
    pub(super) client_certificate: Option<(PathBuf, PathBuf)>,
    /// A client certificate from the environment, used when no
    /// `with_client_certificate` is given.
    pub(super) env_client_certificate: Option<EnvClientCertificate>,
    pub(super) dangerous_accept_invalid_certificates: bool,
    pub(super) client_config: Option<Arc<rustls::ClientConfig>>,
    /// Whether the endpoint comes from the environment rather than the
    /// code: TLS settings made in code then serve the deployments that use
    /// TLS, and are ignored, with a warning, by one that does not.
    pub(super) endpoint_from_env: bool,
}

impl TlsChoices {
    /// Drops the TLS settings made in code, with a warning naming them: the
    /// plaintext endpoint comes from the environment, so one set-up may
    /// serve a deployment without TLS (a local receiver) and others with.
    fn ignore_code_settings(&mut self, endpoint: &Endpoint) {
        let ignored: Vec<&'static str> = [
            (
                self.client_certificate.take().is_some(),
                "with_client_certificate",
            ),
            (
                std::mem::take(&mut self.dangerous_accept_invalid_certificates),
                "dangerous_accept_invalid_certificates",
            ),
            (self.client_config.take().is_some(), "with_tls_config"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if !ignored.is_empty() {
            crate::warnings::warn_at_build!(
                name: "djehouty.TlsSettingsIgnored",
                endpoint = endpoint.to_string(),
                ignored = ignored.join(", "),
                message = "TLS settings made in code are ignored: the endpoint from the \
                           environment is not encrypted; use tls:// or https:// if \
                           encryption was meant"
            );
        }
    }
}

impl TlsOptions {
    /// Gathers the TLS settings; those that only make sense with TLS are refused
    /// for a `tcp://` endpoint, and the exporter's own TLS options together
    /// with `with_tls_config`, rather than silently ignored. Those made in
    /// code are ignored, with a warning, when the plaintext endpoint comes
    /// from the environment: one set-up may serve several deployments.
    pub(super) fn new(endpoint: &Endpoint, mut choices: TlsChoices) -> Result<TlsOptions> {
        // A contradiction in the code, whatever the endpoint.
        if choices.client_config.is_some() {
            let conflicts: Vec<&'static str> = [
                (!choices.ca_files.is_empty(), "with_ca_file"),
                (choices.builtin_roots.is_some(), "with_builtin_roots"),
                (
                    choices.client_certificate.is_some(),
                    "with_client_certificate",
                ),
                (
                    choices.dangerous_accept_invalid_certificates,
                    "dangerous_accept_invalid_certificates",
                ),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            if !conflicts.is_empty() {
                return Err(Error::TlsConfigConflict { options: conflicts });
            }
        }
        if !endpoint.scheme().is_tls() && choices.endpoint_from_env {
            choices.ignore_code_settings(endpoint);
        }
        if !endpoint.scheme().is_tls() {
            if choices.client_certificate.is_some() {
                return Err(Error::InvalidConfig(format!(
                    "a client certificate is configured but {endpoint} is not encrypted: \
                     use a `tls://` or `https://` endpoint, or drop `with_client_certificate`"
                )));
            }
            if let Some(env) = &choices.env_client_certificate {
                return Err(Error::InvalidConfig(format!(
                    "{} is set but {endpoint} is not encrypted: use a `tls://` or `https://` \
                     endpoint, or unset it and its key's variable",
                    env.variable
                )));
            }
            if choices.dangerous_accept_invalid_certificates {
                return Err(Error::InvalidConfig(format!(
                    "`dangerous_accept_invalid_certificates` is set but {endpoint} is not \
                     encrypted, so it has no certificates: drop it"
                )));
            }
            if choices.client_config.is_some() {
                return Err(Error::InvalidConfig(format!(
                    "a TLS configuration is given with `with_tls_config` but {endpoint} is not \
                     encrypted: use a `tls://` or `https://` endpoint, or drop `with_tls_config`"
                )));
            }
        }
        if let Some(client_config) = choices.client_config {
            if let Some(env) = &choices.env_client_certificate {
                crate::warnings::warn_at_build!(
                    name: "djehouty.ClientCertificateVariableIgnored",
                    endpoint = endpoint.to_string(),
                    variable = env.variable.clone(),
                    message = "the client certificate of the environment is ignored: the TLS \
                               configuration given with `with_tls_config` applies as is"
                );
            }
            if choices.env_ca_file.is_some() {
                crate::warnings::warn_at_build!(
                    name: "djehouty.CertificateVariableIgnored",
                    endpoint = endpoint.to_string(),
                    message = "the CA file of the CERTIFICATE environment variable is ignored: \
                               the TLS configuration given with `with_tls_config` applies as is"
                );
            }
            return Ok(TlsOptions {
                ca_files: Vec::new(),
                builtin_roots: true,
                client_certificate: None,
                dangerous_accept_invalid_certificates: false,
                client_config: Some(client_config),
            });
        }
        let mut ca_files = choices.ca_files;
        if ca_files.is_empty() {
            ca_files.extend(choices.env_ca_file);
        }
        let from_env = choices.env_client_certificate.take();
        Ok(TlsOptions {
            ca_files,
            builtin_roots: choices.builtin_roots.unwrap_or(true),
            client_certificate: choices
                .client_certificate
                .or_else(|| from_env.map(|env| (env.cert, env.key))),
            dangerous_accept_invalid_certificates: choices.dangerous_accept_invalid_certificates,
            client_config: None,
        })
    }
}

/// Refuses a framing chosen with `with_framing` for an endpoint that has no
/// stream to delimit, rather than silently ignore it. Only an explicit choice
/// is refused: the default framing (and the one the LDP profile picks a port
/// by) is not. No environment variable sets the framing.
pub(super) fn check_framing(endpoint: &Endpoint, framing: Option<Framing>) -> Result<()> {
    match (endpoint.scheme(), framing) {
        (Scheme::Udp | Scheme::Http | Scheme::Https, Some(framing)) => {
            Err(Error::InvalidConfig(format!(
                "`with_framing(Framing::{framing:?})` applies to the stream endpoints \
                 `tcp://` and `tls://` only, and {endpoint} is not one (each datagram or \
                 request carries its own boundaries): drop `with_framing`"
            )))
        }
        _ => Ok(()),
    }
}

/// Refuses an endpoint whose transport carries self-delimited messages (UDP,
/// HTTP) for a format that has no such receivers.
pub(super) fn check_messages<F: Format>(endpoint: &Endpoint) -> Result<()> {
    let transport = match endpoint.scheme() {
        Scheme::Udp => "UDP",
        Scheme::Http | Scheme::Https => "HTTP",
        Scheme::Tcp | Scheme::Tls => return Ok(()),
    };
    if F::MESSAGES {
        return Ok(());
    }
    Err(Error::InvalidConfig(format!(
        "{transport} carries GELF only: {endpoint} cannot receive {}; use the GELF \
         exporter, or a `tcp://` or `tls://` endpoint for {}",
        F::NAME,
        F::NAME
    )))
}

/// Headers `with_http_header` may not set: the transport sets them itself.
pub(super) const MANAGED_HEADERS: [&str; 6] = [
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
];

/// Checks the headers of `with_http_header`: valid, not managed by the
/// transport, and for an `http(s)://` endpoint only.
pub(super) fn http_headers(
    endpoint: &Endpoint,
    headers: Vec<(String, String)>,
) -> Result<Vec<(HeaderName, HeaderValue)>> {
    if headers.is_empty() {
        return Ok(Vec::new());
    }
    if !matches!(endpoint.scheme(), Scheme::Http | Scheme::Https) {
        return Err(Error::InvalidConfig(format!(
            "`with_http_header` is set but {endpoint} is not an `http://` or `https://` \
             endpoint: drop it"
        )));
    }
    headers
        .into_iter()
        .enumerate()
        .map(|(index, (name, value))| {
            check_header(&name, &value).map_err(|problem| {
                problem.error(
                    &format!("`with_http_header` (header {})", index + 1),
                    "give the name and the value apart, as in \
                     `with_http_header(\"Authorization\", \"Bearer ...\")`",
                )
            })
        })
        .collect()
}

/// Why a header cannot be sent.
#[derive(Debug)]
pub(super) enum HeaderProblem {
    /// The name is not a valid header name.
    Name {
        /// It holds a `:`, as `name: value` written whole would.
        colon: bool,
    },
    /// The transport sets this header itself.
    Managed(HeaderName),
    /// The value is not a valid header value.
    Value(HeaderName),
    /// The value is blank: a receiver that needs the header would refuse
    /// every request (e.g. a token read from an unset variable).
    Blank(HeaderName),
    /// An `Authorization` value that is only its scheme (`Bearer`, with the
    /// token read from an unset variable): refused for the same reason.
    SchemeOnly(HeaderName, String),
}

impl HeaderProblem {
    /// The error for a header given by `source`; `how` says how to write
    /// one there. Neither the value nor an invalid name is shown: a name
    /// written as `Authorization: Basic ...` holds the secret.
    pub(super) fn error(&self, source: &str, how: &str) -> Error {
        Error::InvalidConfig(match self {
            HeaderProblem::Name { colon } => format!(
                "{source}: the name is not a valid HTTP header name (letters, digits and \
                 `!#$%&'*+-.^_`|~` only; it is not shown, in case it holds a secret){}",
                if *colon {
                    format!("; it holds a `:`: {how}")
                } else {
                    String::new()
                }
            ),
            HeaderProblem::Managed(header) => {
                format!("{source}: {header} is set by the exporter itself and cannot be overridden")
            }
            HeaderProblem::Value(header) => format!(
                "{source}: the value of {header} is not a valid HTTP header value (visible \
                 ASCII and spaces only; the value is not shown)"
            ),
            HeaderProblem::Blank(header) => format!(
                "{source}: the value of {header} is empty: give one (a token read from an \
                 unset variable?), or leave the header out"
            ),
            HeaderProblem::SchemeOnly(header, scheme) => format!(
                "{source}: the value of {header} is `{scheme}` and nothing else: give its \
                 credentials after it (a token read from an unset variable?), or leave the \
                 header out"
            ),
        })
    }
}

/// Whether two header names are the same (HTTP's names ignore case; the
/// spaces around a name are dropped when it is checked).
pub(super) fn same_header_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// One header as given, trimmed: valid, not one the transport sets, and not
/// blank; its value marked sensitive.
pub(super) fn check_header(
    name: &str,
    value: &str,
) -> std::result::Result<(HeaderName, HeaderValue), HeaderProblem> {
    let header =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| HeaderProblem::Name {
            colon: name.contains(':'),
        })?;
    if MANAGED_HEADERS.contains(&header.as_str()) {
        return Err(HeaderProblem::Managed(header));
    }
    if value.trim().is_empty() {
        return Err(HeaderProblem::Blank(header));
    }
    if let Some(scheme) = scheme_only(&header, value.trim()) {
        return Err(HeaderProblem::SchemeOnly(header, scheme.to_string()));
    }
    let mut value =
        HeaderValue::from_str(value.trim()).map_err(|_| HeaderProblem::Value(header.clone()))?;
    value.set_sensitive(true);
    Ok((header, value))
}

/// The authentication schemes a credentials header names first (RFC 9110,
/// section 11; the IANA registry's usual ones, and `Token`, common for API
/// keys); lower case.
pub(super) const AUTH_SCHEMES: [&str; 5] = ["basic", "bearer", "digest", "negotiate", "token"];

/// The scheme an `Authorization` or `Proxy-Authorization` value (trimmed)
/// consists of alone, if it does: one of [`AUTH_SCHEMES`], any case. Any
/// other single word may be a token on its own, which some receivers take.
fn scheme_only<'v>(header: &HeaderName, value: &'v str) -> Option<&'v str> {
    let credentials = matches!(header.as_str(), "authorization" | "proxy-authorization");
    (credentials && AUTH_SCHEMES.iter().any(|s| value.eq_ignore_ascii_case(s))).then_some(value)
}

/// GELF over HTTP(S) settings.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HttpOptions {
    /// One request per batch of records, one message per line.
    pub(crate) bulk: bool,
    /// Request bodies are gzip-compressed.
    pub(crate) gzip: bool,
}

impl HttpOptions {
    /// The settings, refused for other endpoints rather than silently ignored.
    pub(super) fn checked(self, endpoint: &Endpoint) -> Result<HttpOptions> {
        let http = matches!(endpoint.scheme(), Scheme::Http | Scheme::Https);
        if !http && (self.bulk || self.gzip) {
            let method = if self.bulk {
                "with_http_bulk"
            } else {
                "with_http_gzip"
            };
            return Err(Error::InvalidConfig(format!(
                "`{method}(true)` is set but {endpoint} is not an `http://` or `https://` \
                 endpoint: drop it"
            )));
        }
        Ok(self)
    }
}
