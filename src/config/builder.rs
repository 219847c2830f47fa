//! The exporter builder: what a user sets, before the environment and the
//! defaults are applied.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderName;
use opentelemetry::Value;

use super::endpoint::{redacted, Endpoint};
use super::env::LDP_TOKEN_FIELD;
use super::options::same_header_name;
use super::{
    Compression, Framing, HttpOptions, DEFAULT_BUFFER_BYTES, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
};
use crate::encode::Format;
use crate::mapping::{MappingOptions, TypeSuffixes};

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
    pub(super) endpoint: Option<String>,
    pub(super) ldp_cluster: Option<String>,
    pub(super) ca_files: Vec<PathBuf>,
    /// `None` until `with_builtin_roots` is called (the roots are then on).
    pub(super) builtin_roots: Option<bool>,
    pub(super) client_certificate: Option<(PathBuf, PathBuf)>,
    pub(super) dangerous_accept_invalid_certificates: bool,
    pub(super) tls_config: Option<Arc<rustls::ClientConfig>>,
    pub(super) framing: Option<Framing>,
    pub(super) export_timeout: Option<Duration>,
    pub(super) connect_timeout: Duration,
    /// `None` until `with_handshake_timeout` is called.
    pub(super) handshake_timeout: Option<Duration>,
    pub(super) write_timeout: Duration,
    pub(super) buffer_bytes: usize,
    pub(super) max_frame_set: bool,
    pub(super) http: HttpOptions,
    pub(super) http_gzip_set: bool,
    pub(super) http_headers: Vec<(String, String)>,
    pub(super) udp_chunk_bytes: Option<usize>,
    pub(super) compression: Option<Compression>,
    pub(super) mapping: MappingOptions,
    pub(super) redundant_fields: Option<bool>,
    #[cfg(feature = "metrics")]
    pub(crate) meter: Option<opentelemetry::metrics::Meter>,
    /// `service.name` when no variable names the service (src/setup/).
    pub(crate) default_service_name: Option<String>,
    pub(super) _format: PhantomData<F>,
}

impl<F: Format> fmt::Debug for ExporterBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterBuilder")
            .field("format", &F::NAME)
            // As given, it may hold a password or a token in its query:
            // shown as the endpoint parsed shows itself (its query's values
            // hidden), or, refused, as its error does.
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(|endpoint| {
                    Endpoint::parse(endpoint).map_or_else(|_| redacted(endpoint), |e| e.to_string())
                }),
            )
            .field("ca_files", &self.ca_files)
            .field("builtin_roots", &self.builtin_roots)
            .field("client_certificate", &self.client_certificate)
            .field(
                "dangerous_accept_invalid_certificates",
                &self.dangerous_accept_invalid_certificates,
            )
            .field(
                "tls_config (own rustls ClientConfig)",
                &self.tls_config.is_some(),
            )
            .field("framing", &self.framing)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("http", &self.http)
            .field(
                "http_headers (values hidden)",
                &self
                    .http_headers
                    .iter()
                    // An invalid name is not shown: written as
                    // `Authorization: Basic ...`, it holds the secret.
                    .map(
                        |(name, _)| match HeaderName::from_bytes(name.trim().as_bytes()) {
                            Ok(_) => name.trim(),
                            Err(_) => "(an invalid name, not shown)",
                        },
                    )
                    .collect::<Vec<_>>(),
            )
            .field("udp_chunk_bytes", &self.udp_chunk_bytes)
            .field("compression", &self.compression)
            .field("mapping", &self.mapping)
            .field("redundant_fields", &self.redundant_fields)
            .finish_non_exhaustive()
    }
}

impl<F: Format> Default for ExporterBuilder<F> {
    fn default() -> Self {
        ExporterBuilder {
            endpoint: None,
            ldp_cluster: None,
            ca_files: Vec::new(),
            builtin_roots: None,
            client_certificate: None,
            dangerous_accept_invalid_certificates: false,
            tls_config: None,
            framing: None,
            export_timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: None,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            max_frame_set: false,
            http: HttpOptions::default(),
            http_gzip_set: false,
            http_headers: Vec::new(),
            udp_chunk_bytes: None,
            compression: None,
            mapping: MappingOptions::default(),
            redundant_fields: None,
            #[cfg(feature = "metrics")]
            meter: None,
            default_service_name: None,
            _format: PhantomData,
        }
    }
}

impl<F: Format> ExporterBuilder<F> {
    /// Sets the endpoint: `tcp://host:port`, `tls://host:port`, `udp://host:port`
    /// (GELF only) or `http(s)://host[:port][/path][?query]` (GELF only; port
    /// 80 or 443 and path `/gelf` by default).
    ///
    /// Without it, the `OTEL_EXPORTER_GELF_ENDPOINT` (or `OTEL_EXPORTER_LTSV_ENDPOINT`)
    /// environment variable is read; `build()` fails if neither is set.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Trusts the CA certificate(s) of this PEM file for TLS endpoints, in addition
    /// to the built-in roots (see [`with_builtin_roots`](Self::with_builtin_roots)).
    /// May be called several times. With a plaintext endpoint it is ignored,
    /// with a warning (`djehouty.CaFileIgnored`).
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
    /// With a plaintext endpoint it is ignored, with a warning
    /// (`djehouty.CaFileIgnored`), as a CA file is.
    pub fn with_builtin_roots(mut self, enabled: bool) -> Self {
        self.builtin_roots = Some(enabled);
        self
    }

    /// Presents a client certificate to TLS endpoints that ask for one (mutual
    /// TLS). `cert_pem` holds the certificate chain, leaf first; `key_pem` its
    /// unencrypted private key (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1
    /// `BEGIN RSA PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY`).
    ///
    /// Both files are read by `build()` (unless ignored, see below), which
    /// fails, naming the file, if one is
    /// unreadable, holds no certificate or no key, or if the key does not match
    /// the certificate. Only for `tls://` and `https://` endpoints: with others,
    /// `build()` fails rather than send without the authentication asked for,
    /// unless the endpoint comes from the environment, which chose plaintext:
    /// the certificate is then ignored, with a warning.
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
    /// `https://` endpoints: with others, `build()` fails (one from the
    /// environment has it ignored, with a warning). Prefer
    /// [`with_ca_file`](Self::with_ca_file) with the test server's CA.
    pub fn dangerous_accept_invalid_certificates(mut self) -> Self {
        self.dangerous_accept_invalid_certificates = true;
        self
    }

    /// Uses this rustls client configuration for `tls://` and `https://`
    /// endpoints instead of building one: its trusted roots, certificate
    /// verifier, client certificate, protocol versions and crypto provider
    /// apply as they are.
    ///
    /// The exporter's own TLS options then cannot apply, so `build()` fails
    /// with [`Error::TlsConfigConflict`](crate::Error::TlsConfigConflict),
    /// naming them, if any of [`with_ca_file`](Self::with_ca_file),
    /// [`with_builtin_roots`](Self::with_builtin_roots),
    /// [`with_client_certificate`](Self::with_client_certificate) or
    /// [`dangerous_accept_invalid_certificates`](Self::dangerous_accept_invalid_certificates)
    /// is also called; a CA file from `OTEL_EXPORTER_GELF_CERTIFICATE` (or
    /// `..._LTSV_...`) is ignored, with a warning through the OpenTelemetry
    /// internal logs. With any other endpoint `build()` fails rather than send
    /// in plaintext, unless the endpoint comes from the environment
    /// (`OTEL_EXPORTER_GELF_ENDPOINT` or `..._LTSV_...`), which chose
    /// plaintext (a local receiver,
    /// say): the configuration is then ignored, with a warning, so that one
    /// set-up serves every deployment.
    ///
    /// Over `https://` the exporter offers the ALPN protocol `http/1.1` only
    /// (the one it speaks) whatever the configuration lists; over `tls://` the
    /// configuration's ALPN protocols, if any, are offered as they are. Handshake
    /// failures are reported as with the exporter's own configuration
    /// ([`Error::Handshake`](crate::Error::Handshake)).
    ///
    /// ```no_run
    /// # fn application_roots() -> rustls::RootCertStore { rustls::RootCertStore::empty() }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    ///
    /// // The application's configuration, as its other TLS clients have it.
    /// let config = rustls::ClientConfig::builder()
    ///     .with_root_certificates(application_roots())
    ///     .with_no_client_auth();
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tls://graylog.example.com:12202")
    ///     .with_tls_config(Arc::new(config))
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Sets up everything OVHcloud Logs Data Platform needs, in one call:
    ///
    /// * the endpoint `tls://<cluster>:<port>` with LDP's port for the format
    ///   and framing: GELF 12202; LTSV 12201 (line framing, the default) or
    ///   12200 (NUL framing). `cluster` is the host from the stream's "About"
    ///   page (`gra1.logs.ovh.com`), or a host and port
    ///   (`gra1.logs.ovh.com:12202`) or a whole endpoint to use as is (a
    ///   trailing `/` or `:` after a host is dropped; [`build`](Self::build)
    ///   refuses a cluster shaped like a token, as swapped arguments would
    ///   be, without showing it).
    ///   [`with_endpoint`](Self::with_endpoint) still wins if also called;
    /// * the stream token as the static field `X-OVH-TOKEN` (`_X-OVH-TOKEN` in
    ///   GELF), which no record can override and `Debug` never shows. Spaces
    ///   and line ends around it are dropped; a blank one gives way to
    ///   `OTEL_EXPORTER_GELF_LDP_TOKEN` (`..._LTSV_...`), and
    ///   [`build`](Self::build) refuses one still blank, which LDP would drop
    ///   every record for;
    /// * LDP's typed-field suffixes ([`TypeSuffixes::default`]: `_long`,
    ///   `_double`, `_bool`), so typed attributes stay typed in LDP, unless
    ///   [`with_type_suffixes`](Self::with_type_suffixes) chose others.
    ///
    /// No `source` field is ever sent (LDP, like Graylog, would replace it), and
    /// dots in names become `_` (LDP's convention) unless told otherwise.
    ///
    /// ```
    /// # // Public roots and a crypto provider: without them `build()` says so.
    /// # #[cfg(all(feature = "webpki-roots", any(feature = "aws-lc-rs", feature = "ring")))]
    /// # {
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .for_logs_data_platform("gra1.logs.ovh.com", "my-stream-token")
    ///     .build()?;
    /// assert_eq!(exporter.endpoint().to_string(), "tls://gra1.logs.ovh.com:12202");
    /// # }
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
        // Read from a file or a variable, a token may end with a line end.
        let token = token.into().trim().to_string();
        self.mapping
            .extras
            .push((LDP_TOKEN_FIELD.to_string(), Value::from(token)));
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
    /// resource attributes of the same name, so no record can override them;
    /// a key given again keeps its last value. Their values never appear in
    /// `Debug` output. They are sent whole,
    /// never cut: [`build`](Self::build) refuses a value longer than the
    /// field limit ([`with_max_field_size`](Self::with_max_field_size)), and
    /// static fields that would leave a record less than half the maximum
    /// frame size.
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

    /// Whether every record also carries what another of its fields already
    /// says, or what is the same for the whole process (default: `false`; env
    /// `OTEL_EXPORTER_GELF_REDUNDANT_FIELDS` or
    /// `OTEL_EXPORTER_LTSV_REDUNDANT_FIELDS`, `true` or `false`):
    ///
    /// * the resource's `telemetry.sdk.name`, `telemetry.sdk.language` and
    ///   `telemetry.sdk.version`, set by the OpenTelemetry SDK, and the
    ///   `service.name` it falls back to (`unknown_service:<executable>`) when
    ///   the application names no service;
    /// * a severity text that only names the level sent (`INFO` at level 6;
    ///   `TRACE`, sent at level 7 like `DEBUG`, is always kept);
    /// * a scope name equal to the target.
    ///
    /// Left out, they make frames about a third smaller. Resource attributes
    /// the application set (service name, version, environment, ...) are
    /// always sent.
    pub fn with_redundant_fields(mut self, enabled: bool) -> Self {
        self.redundant_fields = Some(enabled);
        self
    }

    /// Sets the largest frame the receiver accepts, in bytes (default
    /// [`DEFAULT_MAX_FRAME_BYTES`](crate::config::DEFAULT_MAX_FRAME_BYTES), Graylog's TCP input default;
    /// [`DEFAULT_HTTP_MAX_FRAME_BYTES`](crate::config::DEFAULT_HTTP_MAX_FRAME_BYTES) for `http(s)://`, the default body
    /// limit of Graylog's GELF HTTP input; at least
    /// [`MIN_FRAME_BYTES`](crate::config::MIN_FRAME_BYTES)). A larger record
    /// is truncated (message first) and marked, never dropped.
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.mapping.max_frame_bytes = bytes;
        self.max_frame_set = true;
        self
    }

    /// Sets the cap on one additional field's text (default
    /// [`DEFAULT_MAX_FIELD_BYTES`](crate::config::DEFAULT_MAX_FIELD_BYTES), under the 32,766 bytes Graylog can
    /// index; at least [`MIN_FIELD_BYTES`](crate::config::MIN_FIELD_BYTES)).
    /// Longer values are truncated and marked.
    pub fn with_max_field_size(mut self, bytes: usize) -> Self {
        self.mapping.max_field_bytes = bytes;
        self
    }

    /// Sets how long one export waits for its records to be written while the
    /// endpoint is healthy (default [`DEFAULT_EXPORT_TIMEOUT`](crate::config::DEFAULT_EXPORT_TIMEOUT); env
    /// `OTEL_EXPORTER_GELF_TIMEOUT` or
    /// `OTEL_EXPORTER_LTSV_TIMEOUT` in milliseconds). An export never fails for
    /// lack of time: records not yet written stay in the retry buffer, and an
    /// export made while the endpoint is failing returns at once.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// Sets the time allowed to establish the TCP connection (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]). Each of the host's addresses gets this
    /// time, the next one being tried alongside after
    /// [`CONNECTION_ATTEMPT_DELAY`](crate::config::CONNECTION_ATTEMPT_DELAY);
    /// resolving the host name has its own limit,
    /// [`RESOLVE_TIMEOUT`](crate::config::RESOLVE_TIMEOUT).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the time allowed for the TLS handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::config::DEFAULT_HANDSHAKE_TIMEOUT)).
    /// Only `tls://` and `https://` have one: with another endpoint the
    /// setting is unused, which the warning `djehouty.HandshakeTimeoutIgnored`
    /// says at build.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// Sets how long a write may make no progress (a receiver that stopped
    /// reading) before the connection is dropped and its records go back to the
    /// retry buffer (default [`DEFAULT_WRITE_TIMEOUT`]).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets the size of the retry buffer, in bytes of encoded records (default
    /// [`DEFAULT_BUFFER_BYTES`]). Records wait there while the endpoint is
    /// unreachable or slow,
    /// and are delivered in order once it is back; when it is full, the oldest
    /// records are dropped and counted ([`Stats::dropped_buffer_full`]). It must
    /// hold at least one frame of the maximum size. With
    /// [`DirectProcessor`](crate::DirectProcessor), its staging area is a
    /// quarter of this size, or two of the largest records if more (see
    /// [`DirectProcessor`'s memory bound](crate::DirectProcessor#memory)).
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
    /// waiting in the retry buffer, as many as the exporter writes in one go:
    /// up to a mebibyte), one GELF message per line, instead of one request
    /// per record (default: `false`).
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
        self.http_gzip_set = true;
        self
    }

    /// Over `http(s)://`, adds a header to every request (repeatable; a name
    /// given again, in any case, replaces the earlier value), e.g.
    /// the authorization header that a Graylog HTTP input (or a proxy in
    /// front of it) is set to require. Values are kept out of `Debug` output
    /// and marked sensitive. The headers the transport sets itself
    /// (`Content-Type`, `Content-Encoding`, `Content-Length`,
    /// `Transfer-Encoding`, `Host`, `Connection`) cannot be set; a
    /// `User-Agent` replaces the exporter's (`djehouty/<version>`). Only for
    /// `http(s)://` endpoints: with others, or with a name or value that is
    /// not a valid header, or a blank value or an `Authorization` that is
    /// only its scheme (`Bearer ` with a token read from an unset
    /// variable), `build()` fails.
    ///
    /// ```
    /// let builder = djehouty::GelfExporter::builder()
    ///     .with_endpoint("https://graylog.example.com:12201/gelf")
    ///     .with_http_header("Authorization", "Bearer s3cr3t");
    /// ```
    pub fn with_http_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.http_headers
            .retain(|(set, _)| !same_header_name(set, &name));
        self.http_headers.push((name, value.into()));
        self
    }

    /// Sets the size of one datagram for GELF over UDP, chunk header included
    /// (default 8,192 bytes; from 512 to 65,507). A message larger than one
    /// datagram is sent as GELF chunks, at most 128 of them; a record that
    /// would need more, even compressed, is truncated (message first) and
    /// marked, not dropped (unless its static fields alone need more than
    /// 128 chunks). Across the internet, use the path's MTU minus
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

    /// Publishes the exporter's counters as OpenTelemetry metrics through
    /// `provider` (cargo feature `metrics`), under the instrumentation scope
    /// `djehouty`. They are read from the counters each time the provider
    /// collects, so logging pays nothing for them. [`Stats`](crate::Stats)
    /// stays available either way.
    ///
    /// Where the semantic conventions name an SDK exporter's metric, that
    /// name is used; the rest are djehouty's own:
    ///
    /// | metric | instrument, unit | value |
    /// |---|---|---|
    /// | `otel.sdk.exporter.log.exported` | counter, `{log_record}` | records delivered; with `error.type` = `buffer_full`, `shutdown` or `rejected`, records dropped for that reason ([`Stats::dropped_buffer_full`](crate::Stats::dropped_buffer_full), ...) |
    /// | `otel.sdk.exporter.log.inflight` | up-down counter, `{log_record}` | records waiting in the retry buffer, unacknowledged ones included |
    /// | `djehouty.exporter.buffer.usage` | up-down counter, `By` | bytes waiting in the retry buffer |
    /// | `djehouty.exporter.log.unacknowledged` | up-down counter, `{log_record}` | records written that the receiver's TCP has not acknowledged yet |
    /// | `djehouty.exporter.log.truncated` | counter, `{log_record}` | records cut to fit the frame limit |
    /// | `djehouty.exporter.connections` | counter, `{connection}` | connections established |
    /// | `djehouty.exporter.failures` | counter, `{failure}` | failed connection attempts, handshakes, writes and requests |
    ///
    /// Every point carries `otel.component.type` (`djehouty::GelfExporter` or
    /// `djehouty::LtsvExporter`), `otel.component.name` (the type and an
    /// instance number: `djehouty::GelfExporter/0`), `server.address` and
    /// `server.port`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), djehouty::Error> {
    /// let meter_provider = opentelemetry::global::meter_provider();
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tls://graylog.example.com:12202")
    ///     .with_meter_provider(&*meter_provider)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn with_meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: opentelemetry::metrics::MeterProvider + ?Sized,
    {
        let scope = opentelemetry::InstrumentationScope::builder("djehouty")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        self.meter = Some(provider.meter_with_scope(scope));
        self
    }
}
