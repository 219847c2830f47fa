//! Resolution: the builder's settings, then the environment, then the
//! defaults, checked together into one [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use super::env::{is_blank_ldp_token, Env, LDP_TOKEN_FIELD};
use super::options::{check_framing, check_messages, http_headers, TlsChoices, AUTH_SCHEMES};
use super::{
    Config, Endpoint, ExporterBuilder, Framing, Scheme, Timeouts, TlsOptions, UdpOptions,
    DEFAULT_EXPORT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HTTP_MAX_FRAME_BYTES, MAX_TIMEOUT,
    MIN_FIELD_BYTES, MIN_FRAME_BYTES,
};
use crate::encode::Format;
use crate::error::{Error, Result};
use hyper::header::{HeaderName, HeaderValue};

impl<F: Format> ExporterBuilder<F> {
    /// Resolves the settings against an environment lookup.
    pub(crate) fn resolve(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let framing = self.framing.unwrap_or(F::DEFAULT_FRAMING);
        let endpoint = self.endpoint(framing, &env)?;
        let vars = Env::new::<F>(&env);
        self.apply_environment(&endpoint, &vars)?;
        // The last value of the token is the one sent.
        let token = (self.mapping.extras.iter().rev()).find(|(key, _)| key == LDP_TOKEN_FIELD);
        if token.is_some_and(|(key, value)| is_blank_ldp_token(key, value)) {
            return Err(Error::InvalidConfig(format!(
                "the Logs Data Platform token is blank: LDP would drop every record; pass the \
                 stream's write token to `for_logs_data_platform`, or set {}LDP_TOKEN",
                F::ENV_PREFIX
            )));
        }
        check_framing(&endpoint, self.framing)?;
        let env_ca_file = vars.get("CERTIFICATE").map(|(_, path)| PathBuf::from(path));
        let trust_set =
            !self.ca_files.is_empty() || env_ca_file.is_some() || self.builtin_roots.is_some();
        if !endpoint.scheme().is_tls() && trust_set {
            // Not refused (one builder set-up may serve several endpoints), but
            // `http://` with a CA file is often a typo for `https://`: say so.
            crate::warnings::warn_at_build!(
                name: "djehouty.CaFileIgnored",
                endpoint = endpoint.to_string(),
                message = "the roots to trust (a CA file, `with_builtin_roots`) are \
                           configured but the endpoint is not encrypted; use tls:// or \
                           https:// if encryption was meant"
            );
        }
        if !endpoint.scheme().is_tls() && self.handshake_timeout.is_some() {
            // Like the roots above: harmless, and perhaps a typo of the scheme.
            crate::warnings::warn_at_build!(
                name: "djehouty.HandshakeTimeoutIgnored",
                endpoint = endpoint.to_string(),
                message = "`with_handshake_timeout` is set but the endpoint is not encrypted, \
                           so there is no handshake; use tls:// or https:// if encryption was \
                           meant, or drop it"
            );
        }
        if matches!(endpoint.scheme(), Scheme::Http | Scheme::Https) && !self.max_frame_set {
            self.mapping.max_frame_bytes = DEFAULT_HTTP_MAX_FRAME_BYTES;
        }
        let env_client_certificate = match self.client_certificate {
            None => match vars.client_certificate() {
                // With `with_tls_config` the variables are ignored, with a
                // warning, even when only one of the pair is set. (Not with
                // a plaintext endpoint, where `with_tls_config` itself is
                // ignored or refused, and the pair is judged as without it.)
                Err(error) if self.tls_config.is_some() && endpoint.scheme().is_tls() => {
                    crate::warnings::warn_at_build!(
                        name: "djehouty.ClientCertificateVariableIgnored",
                        endpoint = endpoint.to_string(),
                        message = "the client certificate variables are ignored: the TLS \
                                   configuration given with `with_tls_config` applies as is",
                        error = error.to_string()
                    );
                    None
                }
                other => other?,
            },
            Some(_) => None,
        };
        let timeouts = self.timeouts(&env)?;
        self.mapping.redundant_fields = self.redundant_fields.unwrap_or(false);
        self.check_sizes()?;
        let tls = TlsOptions::new(
            &endpoint,
            TlsChoices {
                ca_files: std::mem::take(&mut self.ca_files),
                env_ca_file,
                builtin_roots: self.builtin_roots,
                client_certificate: self.client_certificate,
                env_client_certificate,
                dangerous_accept_invalid_certificates: self.dangerous_accept_invalid_certificates,
                client_config: self.tls_config,
                endpoint_from_env: self.endpoint.is_none() && self.ldp_cluster.is_none(),
            },
        )?;
        let udp = UdpOptions::new(&endpoint, self.udp_chunk_bytes, self.compression)?;
        let http = self.http.checked(&endpoint)?;
        let http_headers = http_headers(&endpoint, self.http_headers)?;
        check_messages::<F>(&endpoint)?;
        warn_if_credentials_unencrypted(&endpoint, &http_headers, &self.mapping.extras);
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

    /// The endpoint: the one set, else the LDP cluster's input for this
    /// format and framing, else the environment's.
    fn endpoint(&self, framing: Framing, env: impl Fn(&str) -> Option<String>) -> Result<Endpoint> {
        let ldp_endpoint = match self.ldp_cluster.as_deref() {
            Some(cluster) => Some(ldp_endpoint(cluster, (F::CODEC.ldp_port)(framing))?),
            None => None,
        };
        if let Some(endpoint) = &self.endpoint {
            return Endpoint::parse(endpoint);
        }
        if let Some(endpoint) = ldp_endpoint {
            return parse_from(
                &endpoint,
                "made from the cluster given to `for_logs_data_platform`, a host such as \
                 `gra1.logs.ovh.com`, with its port or without",
            );
        }
        let endpoint = env(F::ENV_ENDPOINT)
            .filter(|v| !v.trim().is_empty())
            .ok_or(Error::MissingEndpoint {
                env_var: F::ENV_ENDPOINT,
            })?;
        parse_from(&endpoint, &format!("set by {}", F::ENV_ENDPOINT))
    }

    /// The time limits, the export's from the environment when not set, each
    /// above zero and at most [`MAX_TIMEOUT`].
    fn timeouts(&self, env: impl Fn(&str) -> Option<String>) -> Result<Timeouts> {
        let from_env = self.export_timeout.is_none();
        let export = match self.export_timeout {
            Some(timeout) => timeout,
            // A blank variable counts as unset, as every other one does.
            None => match env(F::ENV_TIMEOUT).filter(|v| !v.trim().is_empty()) {
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
            handshake: self.handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            write: self.write_timeout,
        };
        // Each named by where it was set: the variable, or the builder's
        // method.
        let export_source = if from_env {
            F::ENV_TIMEOUT
        } else {
            "`with_timeout`"
        };
        for (name, source, value) in [
            ("export timeout", export_source, timeouts.export),
            (
                "connect timeout",
                "`with_connect_timeout`",
                timeouts.connect,
            ),
            (
                "handshake timeout",
                "`with_handshake_timeout`",
                timeouts.handshake,
            ),
            ("write timeout", "`with_write_timeout`", timeouts.write),
        ] {
            // The variable is in milliseconds, the builder's methods take a
            // `Duration`.
            let most = if source == F::ENV_TIMEOUT {
                format!("{} milliseconds", MAX_TIMEOUT.as_millis())
            } else {
                format!("{MAX_TIMEOUT:?}")
            };
            if value.is_zero() {
                return Err(Error::InvalidConfig(format!(
                    "the {name} ({source}) must not be zero: give it a length above zero \
                     and at most {most}"
                )));
            }
            if value > MAX_TIMEOUT {
                return Err(Error::InvalidConfig(format!(
                    "the {name} ({source}) of {value:?} is longer than the {most} allowed: \
                     shorten it"
                )));
            }
        }
        Ok(timeouts)
    }

    /// The frame, field and buffer sizes fit together.
    fn check_sizes(&self) -> Result<()> {
        if self.mapping.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(Error::InvalidConfig(format!(
                "`with_max_frame_size({})`: the maximum frame size must be at least \
                 {MIN_FRAME_BYTES} bytes",
                self.mapping.max_frame_bytes
            )));
        }
        if self.buffer_bytes < self.mapping.max_frame_bytes {
            return Err(Error::InvalidConfig(format!(
                "the retry buffer ({} bytes) must hold at least one frame of the maximum \
                 size ({} bytes): raise `with_buffer_size` or lower `with_max_frame_size`",
                self.buffer_bytes, self.mapping.max_frame_bytes
            )));
        }
        if self.mapping.max_field_bytes < MIN_FIELD_BYTES {
            return Err(Error::InvalidConfig(format!(
                "`with_max_field_size({})`: the maximum field size must be at least \
                 {MIN_FIELD_BYTES} bytes",
                self.mapping.max_field_bytes
            )));
        }
        Ok(())
    }
}

/// Warns when a credential (a header or query parameter that holds one, the
/// Logs Data Platform token) goes unencrypted, readable on the way: to a
/// plaintext endpoint that is not on this machine (a local relay is the
/// usual and safe reason for one). The warning names what holds the
/// credential, never its value.
fn warn_if_credentials_unencrypted(
    endpoint: &Endpoint,
    headers: &[(HeaderName, HeaderValue)],
    extras: &[(String, opentelemetry::Value)],
) {
    if endpoint.scheme().is_tls() || is_local(endpoint.host()) {
        return;
    }
    let headers = (headers.iter())
        .filter(|(name, value)| names_a_credential(name.as_str()) || has_a_scheme(value))
        .map(|(name, _)| format!("the header {name}"));
    // Only named parameters: a part without `=` may be the secret itself.
    let query = (endpoint.query().into_iter())
        .flat_map(|query| query.split('&'))
        .filter_map(|pair| pair.split_once('=').map(|(key, _)| key))
        .filter(|key| names_a_credential(key))
        .map(|key| format!("the query parameter {key}"));
    let token = (extras.iter())
        .any(|(key, _)| key == LDP_TOKEN_FIELD)
        .then(|| "the Logs Data Platform token".to_string());
    let mut secrets: Vec<String> = Vec::new();
    for secret in headers.chain(query).chain(token) {
        if !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    if secrets.is_empty() {
        return;
    }
    crate::warnings::warn_at_build!(
        name: "djehouty.SecretOverPlaintext",
        endpoint = endpoint.to_string(),
        secret = secrets.join(", "),
        message = "a credential goes unencrypted to a plaintext endpoint off this machine, \
                   readable on the way: use tls:// or https:// unless the network is trusted"
    );
}

/// Whether a header or query parameter of this name carries a credential:
/// `Authorization`, `Proxy-Authorization`, or a name that says so
/// (`X-API-Key`, `X-Auth-Token`, `X-Graylog-Auth`, `Cookie`, `access_token`,
/// `appKey`: receivers such as Graylog let the authorization header's name
/// be chosen). Names of keys that are not secrets (`Idempotency-Key`,
/// `X-Routing-Key`, `Sec-WebSocket-Key`) are not.
fn names_a_credential(name: &str) -> bool {
    const WORDS: [&str; 13] = [
        "authorization",
        "authentication",
        "token",
        "apikey",
        "api-key",
        "secret",
        "password",
        "passwd",
        "credential",
        "cookie",
        "session",
        "signature",
        "jwt",
    ];
    const NOT_SECRET_KEYS: [&str; 5] = [
        "idempotency-key",
        "routing-key",
        "partition-key",
        "websocket-key",
        "cache-key",
    ];
    // One spelling for the comparisons: `api_key` as `api-key`.
    let name = name.to_ascii_lowercase().replace('_', "-");
    WORDS.iter().any(|word| name.contains(word))
        || matches!(name.as_str(), "pwd" | "pass" | "sig" | "code")
        || name == "auth"
        || name.ends_with("-auth")
        || name.ends_with("key") && !NOT_SECRET_KEYS.iter().any(|key| name.ends_with(key))
}

/// Whether a header value starts with an authorization scheme (one of
/// [`AUTH_SCHEMES`], or a vendor's for API keys) and a space, whatever the
/// header's name.
fn has_a_scheme(value: &HeaderValue) -> bool {
    const VENDOR_SCHEMES: [&str; 3] = ["apikey", "splunk", "ssws"];
    let value = value.as_bytes();
    let Some(end) = value.iter().position(|b| *b == b' ') else {
        return false;
    };
    (AUTH_SCHEMES.iter().chain(&VENDOR_SCHEMES))
        .any(|s| value[..end].eq_ignore_ascii_case(s.as_bytes()))
}

/// Whether `host` is this machine: `localhost` or a loopback address.
fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The endpoint of the Logs Data Platform cluster given: a host, to which
/// the format's port is added; a host and port; or a whole endpoint, used
/// as given. A trailing `/` or `:` is dropped. A cluster shaped like a
/// stream token (a UUID) is refused, naming neither argument: swapped
/// arguments would otherwise show the token as the endpoint's host in
/// every error and warning.
fn ldp_endpoint(cluster: &str, port: u16) -> Result<String> {
    let cluster = cluster.trim();
    if cluster.contains("://") {
        return Ok(cluster.to_string());
    }
    let cluster = cluster.strip_suffix('/').unwrap_or(cluster);
    let cluster = cluster.strip_suffix(':').unwrap_or(cluster);
    if is_uuid(cluster) {
        return Err(Error::InvalidConfig(
            "the cluster given to `for_logs_data_platform` looks like a stream token: are the \
             arguments swapped? The cluster's host (`gra1.logs.ovh.com`) comes first, the \
             token second"
                .to_string(),
        ));
    }
    // A port given with the host is kept, as a whole endpoint is.
    let has_port = cluster
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    Ok(if has_port {
        format!("tls://{cluster}")
    } else {
        format!("tls://{cluster}:{port}")
    })
}

/// Whether `text` has a UUID's shape (8-4-4-4-12 hexadecimal digits), as
/// Logs Data Platform's tokens do.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The endpoint parsed from `endpoint`, an error saying `whence` it came.
fn parse_from(endpoint: &str, whence: &str) -> Result<Endpoint> {
    Endpoint::parse(endpoint).map_err(|error| match error {
        Error::InvalidEndpoint { endpoint, reason } => Error::InvalidEndpoint {
            endpoint,
            reason: format!("{reason} ({whence})"),
        },
        other => other,
    })
}
