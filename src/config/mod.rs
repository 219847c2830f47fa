//! Configuration: the exporter builder, endpoint parsing and environment variables.
//!
//! Settings given to the builder win over environment variables; environment
//! variables win over the defaults. The variables follow the naming of the OTLP
//! exporter's (`OTEL_EXPORTER_OTLP_ENDPOINT`, `..._HEADERS`, ...), with `GELF`
//! or `LTSV` in place of `OTLP`: `OTEL_EXPORTER_GELF_ENDPOINT` for a
//! [`GelfExporter`](crate::GelfExporter), `OTEL_EXPORTER_LTSV_ENDPOINT` for an
//! [`LtsvExporter`](crate::LtsvExporter).
//!
//! | `OTEL_EXPORTER_GELF_...` | meaning | builder method |
//! |---|---|---|
//! | `ENDPOINT` | `tcp://`, `tls://`, `udp://` or `http(s)://` endpoint | [`with_endpoint`](ExporterBuilder::with_endpoint) |
//! | `CERTIFICATE` | path of a PEM CA file to trust | [`with_ca_file`](ExporterBuilder::with_ca_file) |
//! | `CLIENT_CERTIFICATE`, `CLIENT_KEY` | paths of the PEM client certificate chain and its key (both or neither) | [`with_client_certificate`](ExporterBuilder::with_client_certificate) |
//! | `HEADERS` | `http(s)://` request headers, `name=value,name2=value2` (percent-decoded, as OTLP's) | [`with_http_header`](ExporterBuilder::with_http_header) |
//! | `COMPRESSION` | `gzip` or `none` over `http(s)://`; `gzip`, `zlib` or `none` over `udp://` | [`with_http_gzip`](ExporterBuilder::with_http_gzip), [`with_compression`](ExporterBuilder::with_compression) |
//! | `TIMEOUT` | time budget of one export, in milliseconds | [`with_timeout`](ExporterBuilder::with_timeout) |
//! | `STATIC_FIELDS` | fields sent with every record, `key=value,key2=value2` (percent-decoded) | [`with_extra`](ExporterBuilder::with_extra) |
//! | `LDP_TOKEN` | the Logs Data Platform stream token, sent as `X-OVH-TOKEN`, with LDP's typed names | [`for_logs_data_platform`](ExporterBuilder::for_logs_data_platform) |
//! | `REDUNDANT_FIELDS` | `true` to send the fields left out by default | [`with_redundant_fields`](ExporterBuilder::with_redundant_fields) |
//!
//! A blank variable counts as unset. A variable the endpoint cannot use (headers
//! for `tcp://`, say) makes `build()` fail, naming it, except `CERTIFICATE`
//! with a plaintext endpoint, which draws a warning, and `COMPRESSION=none`
//! with a stream, which never compresses; no error shows a header's, a static
//! field's or the token's value.

mod builder;
mod endpoint;
mod env;
mod options;
mod resolve;

use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};

use crate::encode::chunk::max_message_bytes;
use crate::encode::Packing;
use crate::mapping::MappingOptions;

pub use crate::encode::{Compression, Framing};
pub use crate::mapping::{
    DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_FRAME_BYTES, MIN_FIELD_BYTES, MIN_FRAME_BYTES,
};
pub use builder::ExporterBuilder;
pub(crate) use endpoint::redacted;
pub use endpoint::{Endpoint, Scheme};
pub(crate) use options::{HttpOptions, Timeouts, TlsOptions, UdpOptions};

/// Default time one export waits for its records to be written while the endpoint
/// is healthy. It stays under the 5 s the SDK waits on `force_flush`; records not
/// written by then stay in the retry buffer.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(4);
/// The time a connection attempt waits for the endpoint's host name to be
/// resolved. A lookup still running then is not abandoned: its answer serves
/// the next attempt, and meanwhile the addresses last resolved are used, if
/// any.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection attempt to one of the host's addresses runs alone
/// before the attempt to the next address starts alongside it (RFC 8305's
/// recommended "Connection Attempt Delay").
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::encode::{Gelf, Ltsv};
    use crate::error::Error;

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
        for (builder, source) in [
            (
                base().with_handshake_timeout(Duration::ZERO),
                "with_handshake_timeout",
            ),
            (
                base().with_handshake_timeout(Duration::MAX),
                "with_handshake_timeout",
            ),
            (
                base().with_write_timeout(MAX_TIMEOUT + Duration::from_secs(1)),
                "with_write_timeout",
            ),
            (base().with_timeout(Duration::MAX), "with_timeout"),
        ] {
            let error = builder.resolve(env).unwrap_err();
            assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
            assert!(error.to_string().contains(source), "{error}");
        }
        assert!(base()
            .with_connect_timeout(MAX_TIMEOUT)
            .resolve(env)
            .is_ok());
        // From the environment: the variable is named.
        for value in ["0", "86400001"] {
            let env =
                |name: &str| (name == "OTEL_EXPORTER_GELF_TIMEOUT").then(|| value.to_string());
            let error = base().resolve(env).unwrap_err().to_string();
            assert!(error.contains("OTEL_EXPORTER_GELF_TIMEOUT"), "{error}");
            assert!(error.contains("86400000 milliseconds"), "{error}");
        }
    }

    /// With the application's own TLS configuration, the client certificate
    /// variables are ignored, even when only one of the pair is set (which
    /// is refused otherwise).
    #[test]
    fn the_users_tls_config_ignores_a_half_set_client_certificate_pair() {
        let config =
            rustls::ClientConfig::builder_with_provider(djehouty_testkit::certs::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
        let env = |name: &str| {
            (name == "OTEL_EXPORTER_GELF_CLIENT_CERTIFICATE").then(|| "/no/cert.pem".to_string())
        };
        let base = || ExporterBuilder::<Gelf>::default().with_endpoint("tls://h:1");
        let error = base().resolve(env).unwrap_err();
        assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
        let resolved = base()
            .with_tls_config(std::sync::Arc::new(config))
            .resolve(env);
        assert!(resolved.is_ok(), "{:?}", resolved.err());
    }

    /// TLS settings made in code serve the deployments whose endpoint, from
    /// the environment, uses TLS: one with a plaintext endpoint ignores them
    /// (with a warning) rather than fail. With the endpoint in code too, the
    /// code contradicts itself: refused.
    #[test]
    fn tls_settings_in_code_give_way_to_a_plaintext_endpoint_from_the_environment() {
        let config = || {
            std::sync::Arc::new(
                rustls::ClientConfig::builder_with_provider(djehouty_testkit::certs::provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        };
        type Setting = fn(ExporterBuilder<Gelf>) -> ExporterBuilder<Gelf>;
        let settings: [(&str, Setting); 2] = [
            ("with_client_certificate", |b| {
                b.with_client_certificate("/no/cert.pem", "/no/key.pem")
            }),
            ("dangerous_accept_invalid_certificates", |b| {
                b.dangerous_accept_invalid_certificates()
            }),
        ];
        for endpoint in ["tcp://h:1", "http://h:1/gelf"] {
            let env = |name: &str| (name == "OTEL_EXPORTER_GELF_ENDPOINT").then(|| endpoint.into());
            let resolved = ExporterBuilder::<Gelf>::default()
                .with_tls_config(config())
                .resolve(env)
                .unwrap();
            assert!(resolved.tls.client_config.is_none(), "{endpoint}");
            let error = ExporterBuilder::<Gelf>::default()
                .with_endpoint(endpoint)
                .with_tls_config(config())
                .resolve(|_: &str| None)
                .unwrap_err();
            assert!(error.to_string().contains("with_tls_config"), "{error}");
            for (name, set) in settings {
                let resolved = set(ExporterBuilder::<Gelf>::default())
                    .resolve(env)
                    .unwrap();
                assert!(resolved.tls.client_certificate.is_none(), "{name}");
                assert!(
                    !resolved.tls.dangerous_accept_invalid_certificates,
                    "{name}"
                );
                let code = set(ExporterBuilder::<Gelf>::default().with_endpoint(endpoint));
                let error = code.resolve(|_: &str| None).unwrap_err();
                assert!(error.to_string().contains(name), "{error}");
            }
        }
        // A contradiction within the code is refused whatever the endpoint.
        let env =
            |name: &str| (name == "OTEL_EXPORTER_GELF_ENDPOINT").then(|| "tcp://h:1".to_string());
        let error = ExporterBuilder::<Gelf>::default()
            .with_tls_config(config())
            .with_ca_file("/no/ca.pem")
            .resolve(env)
            .unwrap_err();
        assert!(matches!(error, Error::TlsConfigConflict { .. }), "{error}");
        // A half-set client certificate pair is judged as without
        // `with_tls_config`, which this endpoint ignores: refused.
        let half_set = |name: &str| match name {
            "OTEL_EXPORTER_GELF_ENDPOINT" => Some("tcp://h:1".to_string()),
            "OTEL_EXPORTER_GELF_CLIENT_KEY" => Some("/no/key.pem".to_string()),
            _ => None,
        };
        let error = ExporterBuilder::<Gelf>::default()
            .with_tls_config(config())
            .resolve(half_set)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("OTEL_EXPORTER_GELF_CLIENT_CERTIFICATE"),
            "{error}"
        );
    }

    /// What `with_tls_config` ignores is said, and only that: beside a
    /// plaintext endpoint from the environment, the settings made in code.
    #[cfg(feature = "internal-logs")]
    #[test]
    fn ignored_tls_settings_draw_one_warning_naming_them() {
        let config = std::sync::Arc::new(
            rustls::ClientConfig::builder_with_provider(djehouty_testkit::certs::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        );
        let builder = || ExporterBuilder::<Gelf>::default().with_tls_config(config.clone());
        let plaintext = [("OTEL_EXPORTER_GELF_ENDPOINT", "tcp://h:1")];
        assert_eq!(
            warnings(builder, &plaintext),
            ["djehouty.TlsSettingsIgnored"]
        );
        let tls = [("OTEL_EXPORTER_GELF_ENDPOINT", "tls://h:1")];
        assert_eq!(warnings(builder, &tls), Vec::<String>::new());
        let half_set = [tls[0], ("OTEL_EXPORTER_GELF_CLIENT_KEY", "/no/key.pem")];
        assert_eq!(
            warnings(builder, &half_set),
            ["djehouty.ClientCertificateVariableIgnored"]
        );
    }

    /// A blank Logs Data Platform token would have every record dropped by
    /// LDP, unseen: refused. One read from a file loses its line end.
    #[test]
    fn a_logs_data_platform_token_is_trimmed_and_never_blank() {
        let env = |_: &str| None;
        for token in ["", "  ", "\n"] {
            let error = ExporterBuilder::<Gelf>::default()
                .for_logs_data_platform("gra1.logs.ovh.com", token)
                .resolve(env)
                .unwrap_err();
            assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
            assert!(
                error.to_string().contains("OTEL_EXPORTER_GELF_LDP_TOKEN"),
                "{error}"
            );
        }
        let tokens = |config: Config| -> Vec<String> {
            config
                .mapping
                .extras
                .iter()
                .filter(|(key, _)| key == "X-OVH-TOKEN")
                .map(|(_, value)| value.as_str().into_owned())
                .collect()
        };
        let config = ExporterBuilder::<Gelf>::default()
            .for_logs_data_platform("gra1.logs.ovh.com", " tok-1\n")
            .resolve(env)
            .unwrap();
        assert_eq!(tokens(config), ["tok-1"]);
        // A blank one from the code gives way to the variable's.
        let env =
            |name: &str| (name == "OTEL_EXPORTER_GELF_LDP_TOKEN").then(|| "tok-2".to_string());
        let config = ExporterBuilder::<Gelf>::default()
            .for_logs_data_platform("gra1.logs.ovh.com", "")
            .resolve(env)
            .unwrap();
        assert_eq!(tokens(config), ["tok-2"]);
        // A blank token given again, not blank, keeps its last value.
        let config = ExporterBuilder::<Gelf>::default()
            .for_logs_data_platform("gra1.logs.ovh.com", "")
            .with_extra("X-OVH-TOKEN", "tok-3")
            .resolve(|_: &str| None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tokens(config).last().map(String::as_str), Some("tok-3"));
        // A cluster that makes no endpoint: the error says where it came from.
        let error = ExporterBuilder::<Gelf>::default()
            .for_logs_data_platform("gra1.logs.ovh.com:99999", "tok-1")
            .resolve(|_: &str| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("for_logs_data_platform"), "{error}");
    }

    #[test]
    fn redundant_fields_from_the_builder_else_the_environment() {
        let env = |value: &'static str| {
            move |name: &str| match name {
                "OTEL_EXPORTER_LTSV_ENDPOINT" => Some("tcp://h:1".to_string()),
                "OTEL_EXPORTER_LTSV_REDUNDANT_FIELDS" => Some(value.to_string()),
                _ => None,
            }
        };
        let resolve = |builder: ExporterBuilder<Ltsv>, value| {
            builder
                .resolve(env(value))
                .map(|c| c.mapping.redundant_fields)
        };
        assert!(!resolve(ExporterBuilder::default(), "").unwrap());
        assert!(resolve(ExporterBuilder::default(), " TRUE ").unwrap());
        assert!(!resolve(ExporterBuilder::default(), "false").unwrap());
        assert!(!resolve(
            ExporterBuilder::default().with_redundant_fields(false),
            "true"
        )
        .unwrap());
        assert!(resolve(
            ExporterBuilder::default().with_redundant_fields(true),
            "false"
        )
        .unwrap());
        let error = resolve(ExporterBuilder::default(), "yes").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("OTEL_EXPORTER_LTSV_REDUNDANT_FIELDS")
                && error.to_string().contains("`true` or `false`"),
            "{error}"
        );
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

    /// An endpoint from the environment that does not parse names the
    /// variable; one set in code does not.
    #[test]
    fn an_invalid_endpoint_from_the_environment_names_the_variable() {
        let env = |name: &str| {
            (name == "OTEL_EXPORTER_GELF_ENDPOINT").then(|| "graylog:12201".to_string())
        };
        let err = ExporterBuilder::<Gelf>::default()
            .resolve(env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing scheme") && err.contains("set by OTEL_EXPORTER_GELF_ENDPOINT"),
            "{err}"
        );
        let err = ExporterBuilder::<Gelf>::default()
            .with_endpoint("graylog:12201")
            .resolve(env)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("OTEL_EXPORTER_GELF_ENDPOINT"), "{err}");
    }

    #[test]
    fn http_headers_are_checked_and_their_values_hidden() {
        let env = |_: &str| None;
        let config = ExporterBuilder::<Gelf>::default()
            .with_endpoint("https://h:1/gelf")
            .with_http_header("Authorization", "Bearer old")
            .with_http_header(" X-Tenant ", " blue ")
            // A name given again, in any case: the last value.
            .with_http_header("authorization", "Bearer s3cr3t")
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
                ("x-tenant", b"blue".as_slice()),
                ("authorization", b"Bearer s3cr3t".as_slice())
            ]
        );
        assert!(config.http_headers.iter().all(|(_, v)| v.is_sensitive()));
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let builder = ExporterBuilder::<Gelf>::default()
            .with_endpoint("https://h:1/gelf")
            .with_http_header("Authorization", "Bearer s3cr3t");
        assert!(!format!("{builder:?}").contains("s3cr3t"));
        // Nor a name that holds its value, before `build()` refuses it.
        let builder = ExporterBuilder::<Gelf>::default()
            .with_endpoint("https://h:1/gelf")
            .with_http_header("Authorization: Bearer s3cr3t", "x")
            .with_http_header(" X-Tenant ", "blue");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("\"X-Tenant\""),
            "{shown}"
        );
        // The endpoint as given, before `build()` checks it: its password
        // and its query's values hidden.
        for endpoint in [
            "https://user:pa55@h:1/gelf",
            "https://h:1/gelf?token=pa55",
            // An `@` in a query value: no part of the value either.
            "https://h:1/gelf?token=abc@pa55",
        ] {
            let builder = ExporterBuilder::<Gelf>::default().with_endpoint(endpoint);
            let shown = format!("{builder:?}");
            assert!(shown.contains("h:1") && !shown.contains("pa55"), "{shown}");
        }

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
        assert!(
            text.contains(
                "`with_http_header` (header 1): the name is not a valid HTTP header name"
            ),
            "{text}"
        );
        // A header written whole as its name: the name holds the secret.
        let text = refused("http://h:1", "Authorization: Bearer s3cr3t", "");
        assert!(text.contains("give the name and the value apart"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let text = refused("http://h:1", "X-Key", "line\nbreak s3cr3t");
        assert!(text.contains("not a valid HTTP header value"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let text = refused("http://h:1", "Content-Type", "text/plain");
        assert!(text.contains("set by the exporter itself"), "{text}");
        // A token read from an unset variable.
        let text = refused("http://h:1", "Authorization", " ");
        assert!(
            text.contains("the value of authorization is empty"),
            "{text}"
        );
        // The same, after its scheme.
        for value in ["Bearer ", " basic", "TOKEN"] {
            let text = refused("http://h:1", "Authorization", value);
            assert!(
                text.contains("the value of authorization is `")
                    && text.contains("and nothing else"),
                "{value}: {text}"
            );
        }
        let text = refused("http://h:1", "Proxy-Authorization", "Bearer");
        assert!(text.contains("and nothing else"), "{text}");
        // A token alone is one.
        for (name, value) in [("Authorization", "s3cr3t"), ("X-Scheme", "Bearer")] {
            let built = ExporterBuilder::<Gelf>::default()
                .with_endpoint("http://h:1")
                .with_http_header(name, value)
                .resolve(env);
            assert!(built.is_ok(), "{name}: {value}");
        }
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
    fn the_ldp_profile_picks_ldps_port_for_each_format_and_framing() {
        let env = |_: &str| None;
        let port = |config: Config| config.endpoint.port();
        let gelf = || ExporterBuilder::<Gelf>::default().for_logs_data_platform("gra1", "t");
        let ltsv = || ExporterBuilder::<Ltsv>::default().for_logs_data_platform("gra1", "t");
        assert_eq!(port(gelf().resolve(env).unwrap()), 12202);
        assert_eq!(port(ltsv().resolve(env).unwrap()), 12201);
        let nul = ltsv().with_framing(Framing::Nul).resolve(env).unwrap();
        assert_eq!(port(nul), 12200);
        // A host with its port, or a whole endpoint, is used as given.
        for cluster in ["gra1.logs.ovh.com:12202", "tls://gra1.logs.ovh.com:12202"] {
            let config = ExporterBuilder::<Gelf>::default()
                .for_logs_data_platform(cluster, "t")
                .resolve(env)
                .unwrap();
            assert_eq!(config.endpoint.to_string(), "tls://gra1.logs.ovh.com:12202");
        }
    }

    /// The names of the warnings `resolve` emits for `builder` in `env`
    /// (caught on this thread only).
    #[cfg(feature = "internal-logs")]
    fn warnings(builder: impl Fn() -> ExporterBuilder<Gelf>, env: &[(&str, &str)]) -> Vec<String> {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
        struct Names(Arc<Mutex<Vec<String>>>);
        struct Name(Option<String>);
        impl tracing::field::Visit for Name {
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "name" {
                    self.0 = Some(value.to_string());
                }
            }
        }
        impl<S: tracing::Subscriber> Layer<S> for Names {
            fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
                let mut name = Name(None);
                event.record(&mut name);
                let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
                names.extend(name.0);
            }
        }
        let names = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Names(Arc::clone(&names)));
        tracing::subscriber::with_default(subscriber, || {
            let lookup = |name: &str| {
                env.iter()
                    .find(|(set, _)| *set == name)
                    .map(|(_, value)| value.to_string())
            };
            // The first resolve registers the warnings' call sites. A test
            // on another thread, without a subscriber, may be registering
            // one too, and leave it marked as of interest to no one: asked
            // again with this subscriber counted in, the second resolve's
            // warnings all reach it.
            let _ = builder().resolve(lookup);
            tracing::callsite::rebuild_interest_cache();
            names.lock().unwrap_or_else(|p| p.into_inner()).clear();
            builder().resolve(lookup).expect("resolves");
        });
        let names = names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        names
    }

    /// A credential going to a plaintext endpoint draws a warning; over
    /// TLS, none.
    #[cfg(feature = "internal-logs")]
    #[test]
    fn a_credential_over_plaintext_draws_a_warning() {
        let with_header = |endpoint: &'static str| {
            move || {
                ExporterBuilder::<Gelf>::default()
                    .with_endpoint(endpoint)
                    .with_http_header("Authorization", "Bearer s3cr3t")
            }
        };
        let warned = |names: Vec<String>| names.iter().any(|n| n == "djehouty.SecretOverPlaintext");
        assert!(warned(warnings(with_header("http://h:1/gelf"), &[])));
        assert!(!warned(warnings(with_header("https://h:1/gelf"), &[])));
        let headers = [(
            "OTEL_EXPORTER_GELF_HEADERS",
            "authorization=Bearer%20s3cr3t",
        )];
        let http = || ExporterBuilder::<Gelf>::default().with_endpoint("http://h:1/gelf");
        assert!(warned(warnings(http, &headers)));
        let token = |endpoint: &'static str| {
            move || {
                ExporterBuilder::<Gelf>::default()
                    .with_endpoint(endpoint)
                    .with_extra("X-OVH-TOKEN", "t0ken")
            }
        };
        assert!(warned(warnings(token("tcp://h:1"), &[])));
        assert!(warned(warnings(token("udp://h:1"), &[])));
        assert!(!warned(warnings(token("tls://h:1"), &[])));
        assert!(!warned(warnings(http, &[])));
        // A relay on this machine is no one else's to read.
        for local in ["tcp://127.0.0.1:1", "tcp://localhost:1", "tcp://[::1]:1"] {
            assert!(!warned(warnings(token(local), &[])), "{local}");
        }
        assert!(!warned(warnings(
            with_header("http://127.0.0.1:1/gelf"),
            &[]
        )));
        // A header of another name that carries a credential, and one that
        // does not.
        let custom = |name: &'static str| {
            move || {
                ExporterBuilder::<Gelf>::default()
                    .with_endpoint("http://h:1/gelf")
                    .with_http_header(name, "s3cr3t")
            }
        };
        for name in [
            "Proxy-Authorization",
            "X-API-Key",
            "X-Auth-Token",
            "X-Graylog-Auth",
            "Cookie",
            "appKey",
        ] {
            assert!(warned(warnings(custom(name), &[])), "{name}");
        }
        for name in [
            "X-Request-Source",
            "Idempotency-Key",
            "Sec-WebSocket-Key",
            "X-Request-Id",
            "Keep-Alive",
        ] {
            assert!(!warned(warnings(custom(name), &[])), "{name}");
        }
        // Whatever its name, a value with an authorization scheme.
        let schemed = || {
            ExporterBuilder::<Gelf>::default()
                .with_endpoint("http://h:1/gelf")
                .with_http_header("X-Graylog-Input", "Bearer s3cr3t")
        };
        assert!(warned(warnings(schemed, &[])));
        // A token in the query.
        let query = |endpoint: &'static str| {
            move || ExporterBuilder::<Gelf>::default().with_endpoint(endpoint)
        };
        assert!(warned(warnings(
            query("http://h:1/gelf?tenant=a&access_token=t"),
            &[]
        )));
        assert!(!warned(warnings(query("http://h:1/gelf?tenant=a"), &[])));
        assert!(!warned(warnings(
            query("http://h:1/gelf?idempotency_key=1"),
            &[]
        )));
        // A part without a name is not judged (nor shown).
        assert!(!warned(warnings(
            query("http://h:1/gelf?secret-9f8e7d"),
            &[]
        )));
    }

    /// A CA file with an endpoint that has no TLS is not refused but draws
    /// a warning, whether the builder or the variable gives it; so does
    /// `with_builtin_roots`.
    #[cfg(feature = "internal-logs")]
    #[test]
    fn a_ca_file_beside_a_plaintext_endpoint_draws_a_warning() {
        let tcp = || ExporterBuilder::<Gelf>::default().with_endpoint("tcp://h:1");
        let variable = [("OTEL_EXPORTER_GELF_CERTIFICATE", "/etc/ca.pem")];
        let in_code = warnings(|| tcp().with_ca_file("/etc/ca.pem"), &[]);
        let from_env = warnings(tcp, &variable);
        let roots = warnings(|| tcp().with_builtin_roots(false), &[]);
        for names in [in_code, from_env, roots] {
            assert!(
                names.iter().any(|n| n == "djehouty.CaFileIgnored"),
                "{names:?}"
            );
        }
        assert_eq!(warnings(tcp, &[]), Vec::<String>::new());
    }

    /// A handshake timeout with an endpoint that has no handshake draws a
    /// warning; with `tls://` and `https://`, which use it, none.
    #[cfg(feature = "internal-logs")]
    #[test]
    fn a_handshake_timeout_beside_a_plaintext_endpoint_draws_a_warning() {
        let with = |endpoint: &'static str| {
            move || {
                ExporterBuilder::<Gelf>::default()
                    .with_endpoint(endpoint)
                    .with_handshake_timeout(Duration::from_secs(5))
            }
        };
        for plaintext in ["tcp://h:1", "udp://h:1", "http://h:1/gelf"] {
            assert_eq!(
                warnings(with(plaintext), &[]),
                ["djehouty.HandshakeTimeoutIgnored"],
                "{plaintext}"
            );
        }
        for encrypted in ["tls://h:1", "https://h:1/gelf"] {
            assert_eq!(
                warnings(with(encrypted), &[]),
                Vec::<String>::new(),
                "{encrypted}"
            );
        }
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

    #[test]
    fn a_blank_timeout_variable_counts_as_unset() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_GELF_ENDPOINT" => Some("tcp://h:1".to_string()),
            "OTEL_EXPORTER_GELF_TIMEOUT" => Some(" ".to_string()),
            _ => None,
        };
        let config = ExporterBuilder::<Gelf>::default().resolve(env).unwrap();
        assert_eq!(config.timeouts.export, Duration::from_secs(4));
    }
}
