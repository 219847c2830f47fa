//! Configuration: the exporter builder, endpoint parsing and environment variables.
//!
//! Settings given to the builder win over environment variables; environment
//! variables win over the defaults. The variables follow the naming of the OTLP
//! exporter's (`OTEL_EXPORTER_OTLP_ENDPOINT`, `..._CERTIFICATE`, `..._TIMEOUT`):
//!
//! | variable | meaning |
//! |---|---|
//! | `OTEL_EXPORTER_GELF_ENDPOINT` / `OTEL_EXPORTER_LTSV_ENDPOINT` | `tcp://`, `tls://`, `udp://` or `http(s)://` endpoint |
//! | `OTEL_EXPORTER_GELF_CERTIFICATE` / `OTEL_EXPORTER_LTSV_CERTIFICATE` | path of a PEM CA file to trust |
//! | `OTEL_EXPORTER_GELF_TIMEOUT` / `OTEL_EXPORTER_LTSV_TIMEOUT` | time budget of one export, in milliseconds |

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use opentelemetry::Value;

use crate::encode::chunk::max_message_bytes;
use crate::encode::Format;
use crate::encode::Packing;
pub use crate::encode::{Compression, Framing};
use crate::error::{Error, Result};
use crate::mapping::{MappingOptions, TypeSuffixes};
pub use crate::mapping::{DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_FRAME_BYTES};

/// Default time one export waits for its records to be written while the endpoint
/// is healthy. It stays under the 5 s the SDK waits on `force_flush`; records not
/// written by then stay in the retry buffer.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(4);
/// Default time allowed to establish the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time a write may make no progress before the connection is replaced.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default largest frame over `http(s)://`: Graylog's GELF HTTP input refuses
/// larger bodies by default ("Max. HTTP chunk size", 64 KiB).
pub const DEFAULT_HTTP_MAX_FRAME_BYTES: usize = 64 * 1024;
/// The longest timeout a builder accepts (one day): anything longer is a mistake.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Default size of the retry buffer, in bytes of encoded records.
pub const DEFAULT_BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Default size of one GELF UDP datagram (a chunk, its 12-byte header included).
pub const DEFAULT_UDP_CHUNK_BYTES: usize = 8192;
/// Smallest UDP chunk size accepted by the builder.
pub const MIN_UDP_CHUNK_BYTES: usize = 512;
/// Largest UDP chunk size accepted by the builder: the largest UDP payload over IPv4.
pub const MAX_UDP_CHUNK_BYTES: usize = 65_507;

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
    fn new(
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

/// The transport of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// Plain TCP (`tcp://`).
    Tcp,
    /// TLS over TCP (`tls://`), certificate and host name verified.
    Tls,
    /// GELF over UDP (`udp://`), chunked and compressed.
    Udp,
    /// GELF over HTTP (`http://host:port/path`, path `/gelf` by default).
    Http,
    /// GELF over HTTPS (`https://host:port/path`), verified like `tls://`.
    Https,
}

impl Scheme {
    /// The scheme as written in an endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
            Scheme::Udp => "udp",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// Whether the transport runs over TLS (and needs trust anchors).
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Tls | Scheme::Https)
    }
}

/// A parsed endpoint: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// Parses `tcp://host:port`, `tls://host:port`, `udp://host:port`,
    /// `http://host:port[/path]` or `https://host:port[/path]` (the path defaults
    /// to `/gelf`, Graylog's). The host is a DNS name, an IPv4 address or a
    /// bracketed IPv6 address (`tls://[::1]:12202`).
    ///
    /// ```
    /// use djehouty::{Endpoint, Scheme};
    /// let ep = Endpoint::parse("tls://[::1]:12202")?;
    /// assert_eq!(ep.scheme(), Scheme::Tls);
    /// assert_eq!(ep.host(), "::1");
    /// assert_eq!(ep.port(), 12202);
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn parse(input: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            endpoint: input.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = input.trim();
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            "udp" => Scheme::Udp,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("unknown scheme")),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let path = match scheme {
            Scheme::Http | Scheme::Https => {
                if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace()) {
                    return Err(invalid(
                        "the path may not hold a query, a fragment or spaces",
                    ));
                }
                if path.is_empty() || path == "/" {
                    "/gelf".to_string()
                } else {
                    path.to_string()
                }
            }
            _ if path.is_empty() || path == "/" => String::new(),
            _ => return Err(invalid("only http(s) endpoints have a path")),
        };
        if authority.contains(['?', '#', '@']) {
            return Err(invalid("an endpoint has no query or user part"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unclosed `[` in IPv6 address"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("not an IPv6 address between `[` and `]`"));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| invalid("missing port"))?;
            (host, port)
        } else {
            let (host, port) = authority
                .rsplit_once(':')
                .ok_or_else(|| invalid("missing port"))?;
            if host.contains(':') {
                return Err(invalid("an IPv6 address must be written in brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port is not a number between 1 and 65535"))?;
        if port == 0 {
            return Err(invalid("the port is not a number between 1 and 65535"));
        }
        Ok(Endpoint {
            scheme,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The path of an `http(s)://` endpoint (`/gelf` by default); empty for the
    /// other schemes.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
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

/// TLS trust settings.
#[derive(Debug, Clone)]
pub(crate) struct TlsOptions {
    pub(crate) ca_files: Vec<PathBuf>,
    pub(crate) builtin_roots: bool,
    /// PEM files of the client certificate chain and of its private key.
    pub(crate) client_certificate: Option<(PathBuf, PathBuf)>,
    /// Certificates and host names are not checked (tests only).
    pub(crate) dangerous_accept_invalid_certificates: bool,
}

impl TlsOptions {
    /// Gathers the TLS settings; those that only make sense with TLS are refused
    /// for a `tcp://` endpoint rather than silently ignored.
    fn new(
        endpoint: &Endpoint,
        ca_files: Vec<PathBuf>,
        builtin_roots: bool,
        client_certificate: Option<(PathBuf, PathBuf)>,
        dangerous_accept_invalid_certificates: bool,
    ) -> Result<TlsOptions> {
        if !endpoint.scheme().is_tls() {
            if client_certificate.is_some() {
                return Err(Error::InvalidConfig(format!(
                    "a client certificate is configured but {endpoint} is not encrypted: \
                     use a `tls://` or `https://` endpoint, or drop `with_client_certificate`"
                )));
            }
            if dangerous_accept_invalid_certificates {
                return Err(Error::InvalidConfig(format!(
                    "`dangerous_accept_invalid_certificates` is set but {endpoint} is not \
                     encrypted, so it has no certificates: drop it"
                )));
            }
        }
        Ok(TlsOptions {
            ca_files,
            builtin_roots,
            client_certificate,
            dangerous_accept_invalid_certificates,
        })
    }
}

/// Refuses a framing chosen with `with_framing` for an endpoint that has no
/// stream to delimit, rather than silently ignore it. Only an explicit choice
/// is refused: the default framing (and the one the LDP profile picks a port
/// by) is not. No environment variable sets the framing.
fn check_framing(endpoint: &Endpoint, framing: Option<Framing>) -> Result<()> {
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
fn check_messages<F: Format>(endpoint: &Endpoint) -> Result<()> {
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
const MANAGED_HEADERS: [&str; 6] = [
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
];

/// Checks the headers of `with_http_header`: valid, not managed by the
/// transport, and for an `http(s)://` endpoint only.
fn http_headers(
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
        .map(|(name, value)| {
            let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                Error::InvalidConfig(format!(
                    "`with_http_header`: {name:?} is not a valid HTTP header name (letters, \
                     digits and `!#$%&'*+-.^_`|~` only)"
                ))
            })?;
            if MANAGED_HEADERS.contains(&header.as_str()) {
                return Err(Error::InvalidConfig(format!(
                    "`with_http_header`: {header} is set by the exporter itself and cannot be \
                     overridden"
                )));
            }
            let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
                Error::InvalidConfig(format!(
                    "`with_http_header`: the value of {header} is not a valid HTTP header \
                     value (visible ASCII and spaces only; the value is not shown)"
                ))
            })?;
            value.set_sensitive(true);
            Ok((header, value))
        })
        .collect()
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
    fn checked(self, endpoint: &Endpoint) -> Result<HttpOptions> {
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

/// Everything the exporter needs, resolved from the builder and the environment.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) endpoint: Endpoint,
    pub(crate) framing: Framing,
    pub(crate) timeouts: Timeouts,
    pub(crate) buffer_bytes: usize,
    pub(crate) tls: TlsOptions,
    pub(crate) mapping: MappingOptions,
    pub(crate) http: HttpOptions,
    /// Added to every HTTP request; values marked sensitive.
    pub(crate) http_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) udp: UdpOptions,
}

impl Config {
    /// What each record becomes for the retry buffer, from the endpoint's
    /// scheme.
    pub(crate) fn packing(&self) -> Packing {
        let max_frame = self.mapping.max_frame_bytes;
        match self.endpoint.scheme() {
            Scheme::Udp => Packing::Datagram {
                compression: self.udp.compression,
                max_plain: max_frame,
                // Never more than the retry buffer holds either.
                max_packed: max_message_bytes(self.udp.chunk_bytes).min(self.buffer_bytes),
            },
            _ => Packing::Framed {
                framing: self.framing,
                max_frame,
            },
        }
    }
}

/// Builds a [`GelfExporter`](crate::GelfExporter) or an [`LtsvExporter`](crate::LtsvExporter).
///
/// Obtain one with [`GelfExporter::builder()`](crate::GelfExporter::builder) or
/// [`LtsvExporter::builder()`](crate::LtsvExporter::builder).
///
/// ```no_run
/// let exporter = djehouty::GelfExporter::builder()
///     .with_endpoint("tls://graylog.example.com:12202")
///     .with_extra("environment", "production")
///     .build()?;
/// # Ok::<(), djehouty::Error>(())
/// ```
pub struct ExporterBuilder<F: Format> {
    endpoint: Option<String>,
    ldp_cluster: Option<String>,
    ca_files: Vec<PathBuf>,
    builtin_roots: bool,
    client_certificate: Option<(PathBuf, PathBuf)>,
    dangerous_accept_invalid_certificates: bool,
    framing: Option<Framing>,
    export_timeout: Option<Duration>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    write_timeout: Duration,
    buffer_bytes: usize,
    max_frame_set: bool,
    http: HttpOptions,
    http_headers: Vec<(String, String)>,
    udp_chunk_bytes: Option<usize>,
    compression: Option<Compression>,
    mapping: MappingOptions,
    _format: PhantomData<F>,
}

impl<F: Format> fmt::Debug for ExporterBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterBuilder")
            .field("format", &F::NAME)
            .field("endpoint", &self.endpoint)
            .field("ca_files", &self.ca_files)
            .field("builtin_roots", &self.builtin_roots)
            .field("client_certificate", &self.client_certificate)
            .field(
                "dangerous_accept_invalid_certificates",
                &self.dangerous_accept_invalid_certificates,
            )
            .field("framing", &self.framing)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("http", &self.http)
            .field(
                "http_headers (values hidden)",
                &self
                    .http_headers
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("udp_chunk_bytes", &self.udp_chunk_bytes)
            .field("compression", &self.compression)
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

impl<F: Format> Default for ExporterBuilder<F> {
    fn default() -> Self {
        ExporterBuilder {
            endpoint: None,
            ldp_cluster: None,
            ca_files: Vec::new(),
            builtin_roots: true,
            client_certificate: None,
            dangerous_accept_invalid_certificates: false,
            framing: None,
            export_timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            max_frame_set: false,
            http: HttpOptions::default(),
            http_headers: Vec::new(),
            udp_chunk_bytes: None,
            compression: None,
            mapping: MappingOptions::default(),
            _format: PhantomData,
        }
    }
}

impl<F: Format> ExporterBuilder<F> {
    /// Sets the endpoint: `tcp://host:port`, `tls://host:port`, `udp://host:port`
    /// (GELF only) or `http(s)://host:port/path` (GELF only).
    ///
    /// Without it, the `OTEL_EXPORTER_GELF_ENDPOINT` (or `OTEL_EXPORTER_LTSV_ENDPOINT`)
    /// environment variable is read; `build()` fails if neither is set.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Trusts the CA certificate(s) of this PEM file for TLS endpoints, in addition
    /// to the built-in roots (see [`with_builtin_roots`](Self::with_builtin_roots)).
    /// May be called several times.
    ///
    /// Without it, `OTEL_EXPORTER_GELF_CERTIFICATE` (or `..._LTSV_...`) is read.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Whether the built-in root certificates are trusted (default: `true`).
    ///
    /// The built-in roots are Mozilla's (cargo feature `webpki-roots`, on by default)
    /// and/or the operating system's store (cargo feature `native-roots`). Pass
    /// `false` to trust only the CA files given with [`with_ca_file`](Self::with_ca_file).
    pub fn with_builtin_roots(mut self, enabled: bool) -> Self {
        self.builtin_roots = enabled;
        self
    }

    /// Presents a client certificate to TLS endpoints that ask for one (mutual
    /// TLS). `cert_pem` holds the certificate chain, leaf first; `key_pem` its
    /// unencrypted private key (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1
    /// `BEGIN RSA PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY`).
    ///
    /// Both files are read by `build()`, which fails, naming the file, if one is
    /// unreadable, holds no certificate or no key, or if the key does not match
    /// the certificate. Only for `tls://` and `https://` endpoints: with others,
    /// `build()` fails rather than send without the authentication asked for.
    ///
    /// ```no_run
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tls://graylog.example.com:12202")
    ///     .with_client_certificate("client.pem", "client.key")
    ///     .build()?;
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn with_client_certificate(
        mut self,
        cert_pem: impl Into<PathBuf>,
        key_pem: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// **Dangerous, for tests only: never use it in production.** Accepts any
    /// server certificate — self-signed, from an unknown CA, expired, or for
    /// another host — so anyone on the network path can impersonate the server
    /// and read every record, tokens included.
    ///
    /// The connection is still encrypted, the handshake signatures are still
    /// checked, and there is still no fallback to plaintext. `build()` emits a
    /// warning (`djehouty.DangerousAcceptInvalidCertificates`) through the
    /// OpenTelemetry internal logs, and the setting shows in the builder's `Debug`
    /// output. No environment variable can turn it on. Only for `tls://` and
    /// `https://` endpoints: with others, `build()` fails. Prefer
    /// [`with_ca_file`](Self::with_ca_file) with the test server's CA.
    pub fn dangerous_accept_invalid_certificates(mut self) -> Self {
        self.dangerous_accept_invalid_certificates = true;
        self
    }

    /// Sets up everything OVHcloud Logs Data Platform needs, in one call:
    ///
    /// * the endpoint `tls://<cluster>:<port>` with LDP's port for the format
    ///   and framing: GELF 12202; LTSV 12201 (line framing, the default) or
    ///   12200 (NUL framing). `cluster` is the host from the stream's "About"
    ///   page (`gra1.logs.ovh.com`), or a whole endpoint to use as is.
    ///   [`with_endpoint`](Self::with_endpoint) still wins if also called;
    /// * the stream token as the static field `X-OVH-TOKEN` (`_X-OVH-TOKEN` in
    ///   GELF), which no record can override and `Debug` never shows;
    /// * LDP's typed-field suffixes ([`TypeSuffixes::default`]: `_long`,
    ///   `_double`, `_bool`), so typed attributes stay typed in LDP, unless
    ///   [`with_type_suffixes`](Self::with_type_suffixes) chose others.
    ///
    /// No `source` field is ever sent (LDP, like Graylog, would replace it), and
    /// dots in names become `_` (LDP's convention) unless told otherwise.
    ///
    /// ```
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .for_logs_data_platform("gra1.logs.ovh.com", "my-stream-token")
    ///     .build()?;
    /// assert_eq!(exporter.endpoint().to_string(), "tls://gra1.logs.ovh.com:12202");
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    ///
    /// [`TypeSuffixes::default`]: crate::TypeSuffixes
    pub fn for_logs_data_platform(
        mut self,
        cluster: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        self.ldp_cluster = Some(cluster.into());
        self.mapping
            .extras
            .push(("X-OVH-TOKEN".to_string(), Value::from(token.into())));
        if self.mapping.type_suffixes.is_none() {
            self.mapping.type_suffixes = Some(TypeSuffixes::default());
        }
        self
    }

    /// Adds the type of each typed value to its field's name, as Logs Data
    /// Platform reads it: an integer attribute `retries` is sent as
    /// `retries_long`, a double `ratio` as `ratio_double`, a boolean `cached`
    /// as `cached_bool` (with the text `"true"`/`"false"`). Off by default; the
    /// [LDP profile](Self::for_logs_data_platform) turns it on.
    ///
    /// ```
    /// use djehouty::TypeSuffixes;
    /// let builder = djehouty::GelfExporter::builder()
    ///     .with_type_suffixes(TypeSuffixes { long: "_int".into(), ..Default::default() });
    /// ```
    pub fn with_type_suffixes(mut self, suffixes: TypeSuffixes) -> Self {
        self.mapping.type_suffixes = Some(suffixes);
        self
    }

    /// Adds a static field sent with every record, such as a routing token
    /// (`with_extra("X-OVH-TOKEN", token)`). Static fields win over record and
    /// resource attributes of the same name, so no record can override them.
    /// Their values never appear in `Debug` output.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.mapping.extras.push((key.into(), value.into()));
        self
    }

    /// Sets the `host` of every record. By default it is the resource's
    /// `host.name`, else the machine's host name.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.mapping.host = Some(host.into());
        self
    }

    /// Sets how records are delimited on the stream (default: [`Framing::Nul`] for
    /// GELF, [`Framing::Newline`] for LTSV). Only for the stream endpoints
    /// `tcp://` and `tls://`: a `udp://` datagram or an `http(s)://` request
    /// carries its own boundaries, so with those `build()` fails rather than
    /// ignore the setting.
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = Some(framing);
        self
    }

    /// Whether dots in field names are replaced by underscores (default: `true`).
    ///
    /// OpenTelemetry names such as `service.name` become `service_name`. Search
    /// backends reject a record holding `service` when another held `service.name`,
    /// and Logs Data Platform rewrites dots anyway; keep dots only if your receiver
    /// is known to handle them.
    pub fn with_dots_replaced(mut self, replace: bool) -> Self {
        self.mapping.replace_dots = replace;
        self
    }

    /// Sets the largest frame the receiver accepts, in bytes (default 2 MiB,
    /// Graylog's TCP input default; 64 KiB for `http(s)://`, the default body
    /// limit of Graylog's GELF HTTP input). A larger record is truncated
    /// (message first) and marked, never dropped.
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.mapping.max_frame_bytes = bytes;
        self.max_frame_set = true;
        self
    }

    /// Sets the cap on one additional field's text (default 32,000 bytes, under the
    /// 32,766 bytes Graylog can index). Longer values are truncated and marked.
    pub fn with_max_field_size(mut self, bytes: usize) -> Self {
        self.mapping.max_field_bytes = bytes;
        self
    }

    /// Sets how long one export waits for its records to be written while the
    /// endpoint is healthy (default 4 s; env `OTEL_EXPORTER_GELF_TIMEOUT` or
    /// `OTEL_EXPORTER_LTSV_TIMEOUT` in milliseconds). An export never fails for
    /// lack of time: records not yet written stay in the retry buffer, and an
    /// export made while the endpoint is failing returns at once.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// Sets the time allowed to establish the TCP connection (default 2 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the time allowed for the TLS handshake (default 2 s).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets how long a write may make no progress (a receiver that stopped
    /// reading) before the connection is dropped and its records go back to the
    /// retry buffer (default 3 s).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets the size of the retry buffer, in bytes of encoded records (default
    /// 16 MiB). Records wait there while the endpoint is unreachable or slow,
    /// and are delivered in order once it is back; when it is full, the oldest
    /// records are dropped and counted ([`Stats::dropped_buffer_full`]). It must
    /// hold at least one frame of the maximum size. With
    /// [`DirectProcessor`](crate::DirectProcessor), its staging area is a
    /// quarter of this size (at least two frames of the maximum size, and
    /// 64 KiB).
    ///
    /// [`Stats::dropped_buffer_full`]: crate::Stats::dropped_buffer_full
    ///
    /// ```
    /// let builder = djehouty::GelfExporter::builder().with_buffer_size(64 * 1024 * 1024);
    /// ```
    pub fn with_buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Over `http(s)://`, sends one request per batch of records (the records
    /// waiting in the retry buffer, up to about 256 KiB of messages), one GELF
    /// message per line, instead of one request per record (default: `false`).
    ///
    /// Graylog's GELF HTTP input accepts this only when its "Enable Bulk
    /// Receiving" option is on; otherwise it refuses the request (HTTP 400)
    /// and the batch's records are dropped and counted
    /// ([`Stats::dropped_rejected`]). A receiver that answers a bulk request
    /// with 413 (too large; Graylog's "Max. HTTP chunk size" is 64 KiB by
    /// default) gets requests of at most half that size from then on, down to
    /// one record per request; after 16 full requests accepted in a row, the
    /// size doubles again, so a limit since raised is used again. Only for
    /// `http(s)://` endpoints: with others, `build()` fails.
    ///
    /// [`Stats::dropped_rejected`]: crate::Stats::dropped_rejected
    ///
    /// ```no_run
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .with_endpoint("https://graylog.example.com:12201/gelf")
    ///     .with_http_bulk(true)
    ///     .with_http_gzip(true)
    ///     .build()?;
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn with_http_bulk(mut self, enabled: bool) -> Self {
        self.http.bulk = enabled;
        self
    }

    /// Over `http(s)://`, compresses request bodies with gzip
    /// (`Content-Encoding: gzip`), which Graylog's GELF HTTP input decodes
    /// (default: `false`). It saves bandwidth at some CPU cost on the
    /// exporter's I/O thread. Only for `http(s)://` endpoints: with others,
    /// `build()` fails.
    pub fn with_http_gzip(mut self, enabled: bool) -> Self {
        self.http.gzip = enabled;
        self
    }

    /// Over `http(s)://`, adds a header to every request (repeatable), e.g.
    /// the authorization header that a Graylog HTTP input (or a proxy in
    /// front of it) is set to require. Values are kept out of `Debug` output
    /// and marked sensitive. The headers the transport sets itself
    /// (`Content-Type`, `Content-Encoding`, `Content-Length`,
    /// `Transfer-Encoding`, `Host`, `Connection`) cannot be set. Only for
    /// `http(s)://` endpoints: with others, or with a name or value that is
    /// not a valid header, `build()` fails.
    ///
    /// ```
    /// let builder = djehouty::GelfExporter::builder()
    ///     .with_endpoint("https://graylog.example.com:12201/gelf")
    ///     .with_http_header("Authorization", "Bearer s3cr3t");
    /// ```
    pub fn with_http_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.http_headers.push((name.into(), value.into()));
        self
    }

    /// Sets the size of one datagram for GELF over UDP, chunk header included
    /// (default 8,192 bytes; from 512 to 65,507). A message larger than one
    /// datagram is sent as GELF chunks, at most 128 of them; a record that
    /// would need more, even compressed, is truncated (message first) and
    /// marked, never dropped. Across the internet, use the path's MTU minus
    /// the IP and UDP headers — `1420` suits most paths — so that no datagram
    /// is fragmented. Only for `udp://` endpoints: with others, `build()` fails.
    ///
    /// ```
    /// let builder = djehouty::GelfExporter::builder()
    ///     .with_endpoint("udp://graylog.example.com:12201")
    ///     .with_udp_chunk_size(1420);
    /// ```
    pub fn with_udp_chunk_size(mut self, bytes: usize) -> Self {
        self.udp_chunk_bytes = Some(bytes);
        self
    }

    /// Sets how GELF messages sent over UDP are compressed (default
    /// [`Compression::Gzip`]). Only for `udp://` endpoints: with others,
    /// `build()` fails.
    ///
    /// ```
    /// use djehouty::Compression;
    /// let builder = djehouty::GelfExporter::builder()
    ///     .with_endpoint("udp://graylog.example.com:12201")
    ///     .with_compression(Compression::Zlib);
    /// ```
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Resolves the settings against an environment lookup.
    pub(crate) fn resolve(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let framing = self.framing.unwrap_or(F::DEFAULT_FRAMING);
        let ldp_endpoint = self.ldp_cluster.map(|cluster| {
            let cluster = cluster.trim();
            if cluster.contains("://") {
                cluster.to_string()
            } else {
                format!("tls://{cluster}:{}", F::ldp_port(framing))
            }
        });
        let endpoint = match self.endpoint.or(ldp_endpoint) {
            Some(endpoint) => endpoint,
            None => env(F::ENV_ENDPOINT)
                .filter(|v| !v.trim().is_empty())
                .ok_or(Error::MissingEndpoint {
                    env_var: F::ENV_ENDPOINT,
                })?,
        };
        let endpoint = Endpoint::parse(&endpoint)?;
        check_framing(&endpoint, self.framing)?;
        if !endpoint.scheme().is_tls() && !self.ca_files.is_empty() {
            // Not refused (one builder set-up may serve several endpoints), but
            // `http://` with a CA file is often a typo for `https://`: say so.
            opentelemetry::otel_warn!(
                name: "djehouty.CaFileIgnored",
                endpoint = endpoint.to_string(),
                message = "a CA file is configured but the endpoint is not encrypted; \
                           use tls:// or https:// if encryption was meant"
            );
        }
        if matches!(endpoint.scheme(), Scheme::Http | Scheme::Https) && !self.max_frame_set {
            self.mapping.max_frame_bytes = DEFAULT_HTTP_MAX_FRAME_BYTES;
        }
        let mut ca_files = self.ca_files;
        if ca_files.is_empty() {
            if let Some(path) = env(F::ENV_CERTIFICATE).filter(|v| !v.trim().is_empty()) {
                ca_files.push(PathBuf::from(path));
            }
        }
        let export = match self.export_timeout {
            Some(timeout) => timeout,
            None => match env(F::ENV_TIMEOUT) {
                Some(ms) => ms
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| {
                        Error::InvalidConfig(format!(
                            "{} must be a whole number of milliseconds, got {ms:?}",
                            F::ENV_TIMEOUT
                        ))
                    })?,
                None => DEFAULT_EXPORT_TIMEOUT,
            },
        };
        let timeouts = Timeouts {
            export,
            connect: self.connect_timeout,
            handshake: self.handshake_timeout,
            write: self.write_timeout,
        };
        for (name, value) in [
            ("export timeout", timeouts.export),
            ("connect timeout", timeouts.connect),
            ("handshake timeout", timeouts.handshake),
            ("write timeout", timeouts.write),
        ] {
            if value.is_zero() {
                return Err(Error::InvalidConfig(format!("the {name} must not be zero")));
            }
            if value > MAX_TIMEOUT {
                return Err(Error::InvalidConfig(format!(
                    "the {name} of {value:?} is longer than the {MAX_TIMEOUT:?} allowed"
                )));
            }
        }
        if self.mapping.max_frame_bytes < 1024 {
            return Err(Error::InvalidConfig(
                "the maximum frame size must be at least 1024 bytes".to_string(),
            ));
        }
        if self.buffer_bytes < self.mapping.max_frame_bytes {
            return Err(Error::InvalidConfig(format!(
                "the retry buffer ({} bytes) must hold at least one frame of the maximum \
                 size ({} bytes): raise `with_buffer_size` or lower `with_max_frame_size`",
                self.buffer_bytes, self.mapping.max_frame_bytes
            )));
        }
        if self.mapping.max_field_bytes < 64 {
            return Err(Error::InvalidConfig(
                "the maximum field size must be at least 64 bytes".to_string(),
            ));
        }
        let tls = TlsOptions::new(
            &endpoint,
            ca_files,
            self.builtin_roots,
            self.client_certificate,
            self.dangerous_accept_invalid_certificates,
        )?;
        let udp = UdpOptions::new(&endpoint, self.udp_chunk_bytes, self.compression)?;
        let http = self.http.checked(&endpoint)?;
        let http_headers = http_headers(&endpoint, self.http_headers)?;
        check_messages::<F>(&endpoint)?;
        Ok(Config {
            endpoint,
            framing,
            timeouts,
            buffer_bytes: self.buffer_bytes,
            tls,
            http,
            http_headers,
            mapping: self.mapping,
            udp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{Gelf, Ltsv};

    #[test]
    fn parses_endpoints() {
        let ep = Endpoint::parse("tcp://graylog.example.com:12201").unwrap();
        assert_eq!(
            (ep.scheme(), ep.host(), ep.port()),
            (Scheme::Tcp, "graylog.example.com", 12201)
        );
        let ep = Endpoint::parse("TLS://127.0.0.1:12202/").unwrap();
        assert_eq!((ep.scheme(), ep.host()), (Scheme::Tls, "127.0.0.1"));
        let ep = Endpoint::parse("tls://[::1]:1").unwrap();
        assert_eq!(ep.host(), "::1");
        assert_eq!(ep.to_string(), "tls://[::1]:1");
        let ep = Endpoint::parse("udp://graylog:12201").unwrap();
        assert_eq!((ep.scheme(), ep.path()), (Scheme::Udp, ""));
        let ep = Endpoint::parse("https://graylog:443").unwrap();
        assert_eq!((ep.scheme(), ep.path()), (Scheme::Https, "/gelf"));
        assert_eq!(ep.to_string(), "https://graylog:443/gelf");
        let ep = Endpoint::parse("http://[::1]:8080/ingest/gelf").unwrap();
        assert_eq!((ep.host(), ep.path()), ("::1", "/ingest/gelf"));
    }

    #[test]
    fn http_frames_default_to_graylogs_http_body_limit() {
        let env = |_: &str| None;
        let http = ExporterBuilder::<Gelf>::default()
            .with_endpoint("http://h:1")
            .resolve(env)
            .unwrap();
        assert_eq!(http.mapping.max_frame_bytes, DEFAULT_HTTP_MAX_FRAME_BYTES);
        let chosen = ExporterBuilder::<Gelf>::default()
            .with_endpoint("https://h:1")
            .with_max_frame_size(1 << 20)
            .resolve(env)
            .unwrap();
        assert_eq!(chosen.mapping.max_frame_bytes, 1 << 20);
        let tcp = ExporterBuilder::<Gelf>::default()
            .with_endpoint("tcp://h:1")
            .resolve(env)
            .unwrap();
        assert_eq!(tcp.mapping.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES);
    }

    #[test]
    fn timeouts_must_be_positive_and_at_most_a_day() {
        let env = |_: &str| None;
        let base = || ExporterBuilder::<Gelf>::default().with_endpoint("tls://h:1");
        for builder in [
            base().with_handshake_timeout(Duration::ZERO),
            base().with_handshake_timeout(Duration::MAX),
            base().with_write_timeout(MAX_TIMEOUT + Duration::from_secs(1)),
            base().with_timeout(Duration::MAX),
        ] {
            let error = builder.resolve(env).unwrap_err();
            assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
        }
        assert!(base()
            .with_connect_timeout(MAX_TIMEOUT)
            .resolve(env)
            .is_ok());
    }

    #[test]
    fn rejects_malformed_endpoints() {
        for bad in [
            "",
            "graylog:12201",
            "ftp://h:1",
            "tcp://h",
            "tcp://:1",
            "tcp://h:0",
            "tcp://h:65536",
            "tcp://h:x",
            "tcp://::1:5",
            "tcp://[::1:5",
            "tcp://[nothex]:5",
            "tcp://h:1/path",
            "tcp://u@h:1",
            "udp://h:1/x",
            "http://h:1/gelf?x=1",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidEndpoint { .. }),
                "{bad:?} gave {err}"
            );
            assert!(err.to_string().contains("tcp://host:port"), "{err}");
        }
    }

    #[test]
    fn environment_is_read_when_the_builder_is_silent() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_GELF_ENDPOINT" => Some("tls://logs.example.com:12202".to_string()),
            "OTEL_EXPORTER_GELF_CERTIFICATE" => Some("/etc/ca.pem".to_string()),
            "OTEL_EXPORTER_GELF_TIMEOUT" => Some("1500".to_string()),
            _ => None,
        };
        let config = ExporterBuilder::<Gelf>::default().resolve(env).unwrap();
        assert_eq!(config.endpoint.host(), "logs.example.com");
        assert_eq!(config.tls.ca_files, vec![PathBuf::from("/etc/ca.pem")]);
        assert_eq!(config.timeouts.export, Duration::from_millis(1500));
        assert_eq!(config.framing, Framing::Nul);

        // The builder's own settings win.
        let config = ExporterBuilder::<Gelf>::default()
            .with_endpoint("tls://other:1")
            .with_ca_file("mine.pem")
            .with_timeout(Duration::from_secs(1))
            .resolve(env)
            .unwrap();
        assert_eq!(config.endpoint.host(), "other");
        assert_eq!(config.tls.ca_files, vec![PathBuf::from("mine.pem")]);
        assert_eq!(config.timeouts.export, Duration::from_secs(1));

        // LTSV reads its own variables and defaults to newline framing.
        let env =
            |name: &str| (name == "OTEL_EXPORTER_LTSV_ENDPOINT").then(|| "tcp://l:2".to_string());
        let config = ExporterBuilder::<Ltsv>::default().resolve(env).unwrap();
        assert_eq!(config.endpoint.host(), "l");
        assert_eq!(config.framing, Framing::Newline);
    }

    #[test]
    fn missing_endpoint_names_the_variable() {
        let err = ExporterBuilder::<Gelf>::default()
            .resolve(|_| None)
            .unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_GELF_ENDPOINT"),
            "{err}"
        );
        let err = ExporterBuilder::<Ltsv>::default()
            .resolve(|_| None)
            .unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_LTSV_ENDPOINT"),
            "{err}"
        );
    }

    #[test]
    fn http_headers_are_checked_and_their_values_hidden() {
        let env = |_: &str| None;
        let config = ExporterBuilder::<Gelf>::default()
            .with_endpoint("https://h:1/gelf")
            .with_http_header("Authorization", "Bearer s3cr3t")
            .with_http_header(" X-Tenant ", " blue ")
            .resolve(env)
            .unwrap();
        let headers: Vec<(&str, &[u8])> = config
            .http_headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        assert_eq!(
            headers,
            [
                ("authorization", b"Bearer s3cr3t".as_slice()),
                ("x-tenant", b"blue".as_slice())
            ]
        );
        assert!(config.http_headers.iter().all(|(_, v)| v.is_sensitive()));
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let builder = ExporterBuilder::<Gelf>::default()
            .with_endpoint("https://h:1/gelf")
            .with_http_header("Authorization", "Bearer s3cr3t");
        assert!(!format!("{builder:?}").contains("s3cr3t"));

        let refused = |endpoint: &str, name: &str, value: &str| {
            ExporterBuilder::<Gelf>::default()
                .with_endpoint(endpoint)
                .with_http_header(name, value)
                .resolve(env)
                .unwrap_err()
                .to_string()
        };
        let text = refused("tls://h:1", "Authorization", "x");
        assert!(text.contains("not an `http://` or `https://`"), "{text}");
        let text = refused("http://h:1", "Bad Name", "x");
        assert!(text.contains("not a valid HTTP header name"), "{text}");
        let text = refused("http://h:1", "X-Key", "line\nbreak s3cr3t");
        assert!(text.contains("not a valid HTTP header value"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let text = refused("http://h:1", "Content-Type", "text/plain");
        assert!(text.contains("set by the exporter itself"), "{text}");
    }

    #[test]
    fn explicit_framing_is_refused_without_a_stream() {
        let env = |_: &str| None;
        for endpoint in ["udp://h:1", "http://h:1/gelf", "https://h:1"] {
            for framing in [Framing::Nul, Framing::Newline] {
                let error = ExporterBuilder::<Gelf>::default()
                    .with_endpoint(endpoint)
                    .with_framing(framing)
                    .resolve(env)
                    .unwrap_err();
                assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
                let text = error.to_string();
                assert!(text.contains("with_framing"), "{text}");
                assert!(text.contains(endpoint.split("://").next().unwrap_or_default()));
                assert!(text.contains("tcp://") && text.contains("tls://"), "{text}");
            }
        }
        // An endpoint from the environment is checked the same way.
        let udp_env =
            |name: &str| (name == "OTEL_EXPORTER_GELF_ENDPOINT").then(|| "udp://h:1".to_string());
        let error = ExporterBuilder::<Gelf>::default()
            .with_framing(Framing::Nul)
            .resolve(udp_env)
            .unwrap_err();
        assert!(error.to_string().contains("with_framing"), "{error}");
        // So is a whole endpoint given to the LDP profile.
        let error = ExporterBuilder::<Gelf>::default()
            .for_logs_data_platform("https://ldp.example.com:443/gelf", "token")
            .with_framing(Framing::Nul)
            .resolve(env)
            .unwrap_err();
        assert!(error.to_string().contains("with_framing"), "{error}");
    }

    #[test]
    fn framing_is_accepted_where_it_applies_and_defaults_never_refused() {
        let env = |_: &str| None;
        for endpoint in ["tcp://h:1", "tls://h:1"] {
            let config = ExporterBuilder::<Gelf>::default()
                .with_endpoint(endpoint)
                .with_framing(Framing::Newline)
                .resolve(env)
                .unwrap();
            assert_eq!(config.framing, Framing::Newline);
        }
        // Without `with_framing`, datagram and HTTP endpoints build with the
        // format's default, the LDP profile included.
        for endpoint in ["udp://h:1", "http://h:1", "https://h:1/gelf"] {
            let config = ExporterBuilder::<Gelf>::default()
                .with_endpoint(endpoint)
                .resolve(env)
                .unwrap();
            assert_eq!(config.framing, Framing::Nul);
            let config = ExporterBuilder::<Gelf>::default()
                .for_logs_data_platform(endpoint, "token")
                .resolve(env)
                .unwrap();
            assert_eq!(
                config.endpoint.to_string().split("://").next(),
                endpoint.split("://").next()
            );
        }
        // The LDP profile with an explicit framing over its default TLS endpoint.
        let config = ExporterBuilder::<Ltsv>::default()
            .for_logs_data_platform("gra1.logs.ovh.com", "token")
            .with_framing(Framing::Nul)
            .resolve(env)
            .unwrap();
        assert_eq!(config.endpoint.port(), 12200);
        assert_eq!(config.framing, Framing::Nul);
    }

    #[test]
    fn bad_timeout_variable_is_an_error() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_GELF_ENDPOINT" => Some("tcp://h:1".to_string()),
            "OTEL_EXPORTER_GELF_TIMEOUT" => Some("soon".to_string()),
            _ => None,
        };
        let err = ExporterBuilder::<Gelf>::default().resolve(env).unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_GELF_TIMEOUT"),
            "{err}"
        );
    }
}
