//! The environment: every setting a deployment changes without code, read
//! where the builder left it unset. The names follow the OTLP exporter's
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `..._CLIENT_KEY`, ...), with `GELF` or
//! `LTSV` in place of `OTLP`; the table is in the [`config`](super) module.

use std::path::PathBuf;

use opentelemetry::Value;
use percent_encoding::percent_decode_str;

use super::options::{check_header, same_header_name};
use super::{Compression, Endpoint, ExporterBuilder, Scheme};
use crate::encode::Format;
use crate::error::{Error, Result};
use crate::mapping::TypeSuffixes;

/// The name under which Logs Data Platform expects the stream token.
pub(super) const LDP_TOKEN_FIELD: &str = "X-OVH-TOKEN";

/// Whether a static field is the Logs Data Platform token, left blank (by
/// `env::var(..).unwrap_or_default()`, say): the variable fills it, and
/// `build()` refuses one still blank.
pub(super) fn is_blank_ldp_token(key: &str, value: &Value) -> bool {
    key == LDP_TOKEN_FIELD && value.as_str().trim().is_empty()
}

/// A client certificate from the environment, and the name of its
/// certificate variable (for errors and warnings).
pub(super) struct EnvClientCertificate {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) variable: String,
}

/// A format's variables (`OTEL_EXPORTER_GELF_*` or `OTEL_EXPORTER_LTSV_*`).
pub(super) struct Env<E> {
    prefix: &'static str,
    lookup: E,
}

impl<E: Fn(&str) -> Option<String>> Env<E> {
    pub(super) fn new<F: Format>(lookup: E) -> Env<E> {
        Env {
            prefix: F::ENV_PREFIX,
            lookup,
        }
    }

    /// The variable's whole name and its value, when set and not blank.
    pub(super) fn get(&self, suffix: &str) -> Option<(String, String)> {
        let name = format!("{}{suffix}", self.prefix);
        let value = (self.lookup)(&name)?.trim().to_string();
        (!value.is_empty()).then_some((name, value))
    }

    /// The client certificate's variables (both or neither), with the
    /// first one's name: resolved with the other TLS settings.
    pub(super) fn client_certificate(&self) -> Result<Option<EnvClientCertificate>> {
        let missing = |set: String, other: &str| {
            Error::InvalidConfig(format!(
                "{set} is set but {}{other} is not: a client certificate needs both its \
                 certificate chain and its key",
                self.prefix
            ))
        };
        match (self.get("CLIENT_CERTIFICATE"), self.get("CLIENT_KEY")) {
            (Some((variable, cert)), Some((_, key))) => Ok(Some(EnvClientCertificate {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
                variable,
            })),
            (Some((set, _)), None) => Err(missing(set, "CLIENT_KEY")),
            (None, Some((set, _))) => Err(missing(set, "CLIENT_CERTIFICATE")),
            (None, None) => Ok(None),
        }
    }

    /// A `true`/`false` variable.
    pub(super) fn flag(&self, suffix: &str) -> Result<Option<bool>> {
        let Some((name, value)) = self.get(suffix) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(Error::InvalidConfig(format!(
                "{name} must be `true` or `false`, got {value:?}"
            ))),
        }
    }
}

impl<F: Format> ExporterBuilder<F> {
    /// Fills, from the environment, what the builder left unset and
    /// `endpoint` can use (the CA file is resolved with the other TLS
    /// settings). A variable the endpoint cannot use is refused,
    /// named, rather than ignored.
    pub(super) fn apply_environment<E: Fn(&str) -> Option<String>>(
        &mut self,
        endpoint: &Endpoint,
        env: &Env<E>,
    ) -> Result<()> {
        if self.redundant_fields.is_none() {
            self.redundant_fields = env.flag("REDUNDANT_FIELDS")?;
        }
        let http = matches!(endpoint.scheme(), Scheme::Http | Scheme::Https);
        if let Some((name, value)) = env.get("HEADERS") {
            if !http {
                return Err(not_for(&name, endpoint, "`http://` and `https://`"));
            }
            let from_code = self.http_headers.len();
            for (entry, key, value) in key_values(&name, &value)? {
                // One set in code wins, unchecked: the variable's value
                // (from a set shared between services, say) is not used.
                if (self.http_headers[..from_code].iter())
                    .any(|(set, _)| same_header_name(set, &key))
                {
                    continue;
                }
                // Of the variable's entries of one name, the last.
                self.http_headers
                    .retain(|(set, _)| !same_header_name(set, &key));
                // Checked here so that an error names the variable.
                check_header(&key, &value).map_err(|problem| {
                    problem.error(
                        &format!("{name}: entry {entry}"),
                        "write `name=value` entries, as in `Authorization=Bearer%20...`",
                    )
                })?;
                self.http_headers.push((key, value));
            }
        }
        if let Some((name, value)) = env.get("COMPRESSION") {
            let value = value.to_ascii_lowercase();
            match (endpoint.scheme(), value.as_str()) {
                (Scheme::Http | Scheme::Https, "gzip" | "none") => {
                    if !self.http_gzip_set {
                        self.http.gzip = value == "gzip";
                    }
                }
                (Scheme::Udp, "gzip" | "zlib" | "none") => {
                    if self.compression.is_none() {
                        self.compression = Some(match value.as_str() {
                            "gzip" => Compression::Gzip,
                            "zlib" => Compression::Zlib,
                            _ => Compression::None,
                        });
                    }
                }
                (Scheme::Udp, _) => {
                    return Err(Error::InvalidConfig(format!(
                        "{name} must be `gzip`, `zlib` or `none` for a `udp://` endpoint, \
                         got {value:?}"
                    )))
                }
                (Scheme::Http | Scheme::Https, _) => {
                    return Err(Error::InvalidConfig(format!(
                        "{name} must be `gzip` or `none` for an `http(s)://` endpoint, got \
                         {value:?}"
                    )))
                }
                // What a stream endpoint does anyway: a shared set of
                // variables may say so.
                (Scheme::Tcp | Scheme::Tls, "none") => {}
                _ => {
                    return Err(not_for(
                        &name,
                        endpoint,
                        "`udp://`, `http://` and `https://` (stream endpoints are not compressed)",
                    ))
                }
            }
        }
        // The environment's static fields go before the builder's, so that
        // of two names the mapping makes alike (`a.b` and `a_b`), the
        // builder's, last, wins there too.
        let mut from_env = 0;
        if let Some((name, value)) = env.get("STATIC_FIELDS") {
            for (_, key, value) in key_values(&name, &value)? {
                // Of the variable's entries of one key, the last, as with
                // `with_extra`.
                let earlier = self.mapping.extras[..from_env]
                    .iter_mut()
                    .find(|(set, _)| *set == key);
                match earlier {
                    Some((_, kept)) => *kept = Value::from(value),
                    None => from_env += self.add_extra_if_unset(from_env, key, value),
                }
            }
        }
        if let Some((_, token)) = env.get("LDP_TOKEN") {
            // The variable's token replaces a blank one from the code
            // (`env::var(..).unwrap_or_default()`, say) and one in
            // `STATIC_FIELDS` (the first `from_env` fields): of the
            // environment's two ways, the one made for it wins.
            let replaced = (self.mapping.extras.iter_mut().enumerate())
                .find(|(at, (key, value))| {
                    is_blank_ldp_token(key, value) || (*at < from_env && key == LDP_TOKEN_FIELD)
                })
                .map(|(_, field)| field);
            match replaced {
                Some((_, value)) => *value = Value::from(token),
                None => {
                    self.add_extra_if_unset(from_env, LDP_TOKEN_FIELD.to_string(), token);
                }
            }
            if self.mapping.type_suffixes.is_none() {
                self.mapping.type_suffixes = Some(TypeSuffixes::default());
            }
        }
        Ok(())
    }

    /// A static field from the environment, put at `at` (before the
    /// builder's); the builder's of the same name wins. Returns how many
    /// fields were added (0 or 1).
    fn add_extra_if_unset(&mut self, at: usize, key: String, value: String) -> usize {
        if self.mapping.extras.iter().any(|(set, _)| *set == key) {
            return 0;
        }
        self.mapping.extras.insert(at, (key, Value::from(value)));
        1
    }
}

/// A variable set for an endpoint that cannot use it.
fn not_for(name: &str, endpoint: &Endpoint, schemes: &str) -> Error {
    Error::InvalidConfig(format!(
        "{name} is set but applies to {schemes} endpoints only, and {endpoint} is not one: \
         unset it"
    ))
}

/// Parses `key=value,key2=value2` as the OTLP exporter's header variable is
/// written: entries separated by commas, each key and value trimmed and
/// percent-decoded (so `%2C` is a comma in a value); each with its entry's
/// number, from 1. Values are never shown in errors, since they often hold
/// secrets.
pub(super) fn key_values(name: &str, text: &str) -> Result<Vec<(usize, String, String)>> {
    let mut pairs = Vec::new();
    for (index, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let decode = |part: &str| {
            percent_decode_str(part.trim())
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| {
                    Error::InvalidConfig(format!(
                        "{name}: entry {} does not decode to UTF-8 text (its value is not \
                         shown)",
                        index + 1
                    ))
                })
        };
        let Some((key, value)) = entry.split_once('=') else {
            return Err(Error::InvalidConfig(format!(
                "{name}: entry {} has no `=`: write `key=value,key2=value2` (the value is \
                 not shown)",
                index + 1
            )));
        };
        let key = decode(key)?;
        if key.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "{name}: entry {} has an empty key: write `key=value,key2=value2`",
                index + 1
            )));
        }
        pairs.push((index + 1, key, decode(value)?));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::encode::{Gelf, Ltsv};

    /// Resolves `builder` against an environment holding `vars`.
    fn resolve<F: Format>(builder: ExporterBuilder<F>, vars: &[(&str, &str)]) -> Result<Config> {
        builder.resolve(|name: &str| {
            vars.iter()
                .find(|(set, _)| *set == name)
                .map(|(_, value)| value.to_string())
        })
    }

    fn headers(config: &Config) -> Vec<(&str, &[u8])> {
        config
            .http_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect()
    }

    fn extra<'c>(config: &'c Config, key: &str) -> Option<&'c Value> {
        config
            .mapping
            .extras
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn every_variable_fills_what_the_builder_left_unset() {
        let config = resolve(
            ExporterBuilder::<Gelf>::default(),
            &[
                (
                    "OTEL_EXPORTER_GELF_ENDPOINT",
                    "https://graylog.example.com/gelf",
                ),
                (
                    "OTEL_EXPORTER_GELF_HEADERS",
                    // A name given again, in any case: the last value.
                    "authorization=Bearer%20old,X-Team=core,Authorization=Bearer%20s3cr3t",
                ),
                ("OTEL_EXPORTER_GELF_COMPRESSION", "GZIP"),
                (
                    "OTEL_EXPORTER_GELF_STATIC_FIELDS",
                    "environment=staging,region=eu%2Cwest,environment=prod",
                ),
                ("OTEL_EXPORTER_GELF_LDP_TOKEN", "tok-1"),
                ("OTEL_EXPORTER_GELF_REDUNDANT_FIELDS", "true"),
            ],
        )
        .unwrap();
        let headers = headers(&config);
        assert_eq!(
            headers,
            [
                ("x-team", b"core".as_slice()),
                ("authorization", b"Bearer s3cr3t".as_slice())
            ]
        );
        assert!(config.http_headers.iter().all(|(_, v)| v.is_sensitive()));
        assert!(config.http.gzip);
        assert_eq!(
            (config.mapping.extras.iter())
                .filter(|(key, _)| key == "environment")
                .count(),
            1
        );
        assert_eq!(extra(&config, "environment"), Some(&Value::from("prod")));
        assert_eq!(extra(&config, "region"), Some(&Value::from("eu,west")));
        assert_eq!(extra(&config, LDP_TOKEN_FIELD), Some(&Value::from("tok-1")));
        assert!(
            config.mapping.type_suffixes.is_some(),
            "the LDP token brings typed names"
        );
        assert!(config.mapping.redundant_fields);

        let config = resolve(
            ExporterBuilder::<Gelf>::default(),
            &[
                ("OTEL_EXPORTER_GELF_ENDPOINT", "udp://127.0.0.1:12201"),
                ("OTEL_EXPORTER_GELF_COMPRESSION", "zlib"),
            ],
        )
        .unwrap();
        assert_eq!(config.udp.compression, Compression::Zlib);
    }

    #[test]
    fn the_builders_settings_win() {
        let config = resolve(
            ExporterBuilder::<Gelf>::default()
                .with_endpoint("https://h/gelf")
                .with_http_header("authorization", "mine")
                .with_http_gzip(false)
                .with_extra("environment", "staging")
                .with_redundant_fields(false),
            &[
                (
                    "OTEL_EXPORTER_GELF_HEADERS",
                    "Authorization=theirs,X-Other=1",
                ),
                ("OTEL_EXPORTER_GELF_COMPRESSION", "gzip"),
                (
                    "OTEL_EXPORTER_GELF_STATIC_FIELDS",
                    "environment=prod,team=core",
                ),
                ("OTEL_EXPORTER_GELF_REDUNDANT_FIELDS", "true"),
            ],
        )
        .unwrap();
        let headers = headers(&config);
        assert_eq!(
            headers,
            [
                ("authorization", b"mine".as_slice()),
                ("x-other", b"1".as_slice())
            ]
        );
        assert!(!config.http.gzip);
        assert_eq!(extra(&config, "environment"), Some(&Value::from("staging")));
        // An entry of a header set in code is not used, so not judged.
        for entry in [
            "Authorization=Bearer%20",
            "Authorization=",
            "authorization=a%0Ab",
        ] {
            let built = resolve(
                ExporterBuilder::<Gelf>::default()
                    .with_endpoint("https://h/gelf")
                    .with_http_header("Authorization", "Bearer mine"),
                &[("OTEL_EXPORTER_GELF_HEADERS", entry)],
            );
            assert!(built.is_ok(), "{entry}");
        }
        // Names the mapping makes alike: the builder's value is the one sent.
        let config = resolve(
            ExporterBuilder::<Gelf>::default()
                .with_endpoint("tcp://h:1")
                .with_extra("deployment.environment", "prod"),
            &[(
                "OTEL_EXPORTER_GELF_STATIC_FIELDS",
                "deployment_environment=staging,team=core",
            )],
        )
        .unwrap();
        let mapper = crate::mapping::Mapper::new(&config.mapping);
        let sdk = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
        let record = {
            use opentelemetry::logs::{Logger as _, LoggerProvider as _};
            sdk.logger("test").create_log_record()
        };
        let scope = opentelemetry::InstrumentationScope::builder("test").build();
        let mapped = mapper.map(&record, &scope);
        let sent: Vec<(&str, String)> = (mapped.fields.iter())
            .filter(|f| f.key == "deployment_environment" || f.key == "team")
            .map(|f| (f.key.as_ref(), format!("{:?}", f.value)))
            .collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(
            sent.iter()
                .any(|(k, v)| *k == "deployment_environment" && v.contains("prod")),
            "{sent:?}"
        );
        assert_eq!(extra(&config, "team"), Some(&Value::from("core")));
        assert!(!config.mapping.redundant_fields);

        let config = resolve(
            ExporterBuilder::<Ltsv>::default()
                .for_logs_data_platform("gra1.logs.ovh.com", "from-code"),
            &[("OTEL_EXPORTER_LTSV_LDP_TOKEN", "from-env")],
        )
        .unwrap();
        let tokens: Vec<_> = config
            .mapping
            .extras
            .iter()
            .filter(|(k, _)| k == LDP_TOKEN_FIELD)
            .collect();
        assert_eq!(
            tokens,
            [&(LDP_TOKEN_FIELD.to_string(), Value::from("from-code"))]
        );
    }

    /// Of the environment's two ways to give the LDP token, the variable
    /// made for it wins over `X-OVH-TOKEN` in `STATIC_FIELDS`.
    #[test]
    fn the_ldp_token_variable_wins_over_static_fields() {
        let config = resolve(
            ExporterBuilder::<Ltsv>::default(),
            &[
                (
                    "OTEL_EXPORTER_LTSV_ENDPOINT",
                    "tls://gra1.logs.ovh.com:12201",
                ),
                (
                    "OTEL_EXPORTER_LTSV_STATIC_FIELDS",
                    "team=core,X-OVH-TOKEN=from-static-fields",
                ),
                ("OTEL_EXPORTER_LTSV_LDP_TOKEN", "from-ldp-token"),
            ],
        )
        .unwrap();
        let tokens: Vec<_> = (config.mapping.extras.iter())
            .filter(|(k, _)| k == LDP_TOKEN_FIELD)
            .collect();
        assert_eq!(
            tokens,
            [&(LDP_TOKEN_FIELD.to_string(), Value::from("from-ldp-token"))]
        );
        assert_eq!(extra(&config, "team"), Some(&Value::from("core")));
    }

    #[test]
    fn the_client_certificate_needs_both_variables() {
        let base = [("OTEL_EXPORTER_GELF_ENDPOINT", "tls://h:12202")];
        let error = resolve(
            ExporterBuilder::<Gelf>::default(),
            &[base[0], ("OTEL_EXPORTER_GELF_CLIENT_KEY", "/k.pem")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("OTEL_EXPORTER_GELF_CLIENT_KEY is set")
                && error.contains("OTEL_EXPORTER_GELF_CLIENT_CERTIFICATE is not"),
            "{error}"
        );
        let config = resolve(
            ExporterBuilder::<Gelf>::default(),
            &[
                base[0],
                ("OTEL_EXPORTER_GELF_CLIENT_CERTIFICATE", "/etc/client.pem"),
                ("OTEL_EXPORTER_GELF_CLIENT_KEY", "/etc/client.key"),
            ],
        )
        .unwrap();
        assert_eq!(
            config.tls.client_certificate,
            Some(("/etc/client.pem".into(), "/etc/client.key".into()))
        );
        // With an endpoint that has no TLS, the error names the variable.
        let error = resolve(
            ExporterBuilder::<Gelf>::default(),
            &[
                ("OTEL_EXPORTER_GELF_ENDPOINT", "tcp://h:12201"),
                ("OTEL_EXPORTER_GELF_CLIENT_CERTIFICATE", "/etc/client.pem"),
                ("OTEL_EXPORTER_GELF_CLIENT_KEY", "/etc/client.key"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("OTEL_EXPORTER_GELF_CLIENT_CERTIFICATE is set")
                && !error.contains("with_client_certificate"),
            "{error}"
        );
        // The builder's certificate wins: the variables are not read.
        let config = resolve(
            ExporterBuilder::<Gelf>::default().with_client_certificate("/mine.pem", "/mine.key"),
            &[base[0], ("OTEL_EXPORTER_GELF_CLIENT_KEY", "/k.pem")],
        )
        .unwrap();
        assert_eq!(
            config.tls.client_certificate,
            Some(("/mine.pem".into(), "/mine.key".into()))
        );
    }

    #[test]
    fn a_variable_the_endpoint_cannot_use_is_refused_by_name() {
        for (endpoint, var, value, says) in [
            (
                "tcp://h:1",
                "HEADERS",
                "a=1",
                "applies to `http://` and `https://`",
            ),
            (
                "tls://h:1",
                "COMPRESSION",
                "gzip",
                "stream endpoints are not compressed",
            ),
            (
                "udp://h:1",
                "COMPRESSION",
                "brotli",
                "`gzip`, `zlib` or `none`",
            ),
            ("https://h", "COMPRESSION", "zlib", "`gzip` or `none`"),
            ("tcp://h:1", "REDUNDANT_FIELDS", "yes", "`true` or `false`"),
        ] {
            let name = format!("OTEL_EXPORTER_GELF_{var}");
            let error = resolve(
                ExporterBuilder::<Gelf>::default().with_endpoint(endpoint),
                &[(name.as_str(), value)],
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains(&name) && error.contains(says), "{error}");
        }
        // `none` is what a stream endpoint does anyway.
        for endpoint in ["tcp://h:1", "tls://h:1"] {
            let built = resolve(
                ExporterBuilder::<Gelf>::default().with_endpoint(endpoint),
                &[("OTEL_EXPORTER_GELF_COMPRESSION", "None")],
            );
            assert!(built.is_ok(), "{endpoint}");
        }
    }

    #[test]
    fn key_values_are_trimmed_and_percent_decoded() {
        let pairs = key_values("V", " a = 1 ,b=x%2Cy%3Dz,, Authorization=Bearer%20t ").unwrap();
        assert_eq!(
            pairs,
            [
                (1, "a".to_string(), "1".to_string()),
                (2, "b".to_string(), "x,y=z".to_string()),
                (4, "Authorization".to_string(), "Bearer t".to_string()),
            ]
        );
        assert_eq!(key_values("V", "a=").unwrap(), [(1, "a".into(), "".into())]);
    }

    /// A header variable's bad entry is reported with the variable and the
    /// entry, and shows neither its value nor a name that may hold one.
    #[test]
    fn bad_header_entries_name_the_variable_and_hide_secrets() {
        let refused = |headers: &str| {
            resolve(
                ExporterBuilder::<Gelf>::default(),
                &[
                    ("OTEL_EXPORTER_GELF_ENDPOINT", "https://h/gelf"),
                    ("OTEL_EXPORTER_GELF_HEADERS", headers),
                ],
            )
            .unwrap_err()
            .to_string()
        };
        // `name: value` written whole, its base64 ending in `=`.
        let text = refused("X-Team=core,Authorization: Basic dXNlcjpwYXNz==");
        assert!(
            text.contains("OTEL_EXPORTER_GELF_HEADERS: entry 2")
                && text.contains("not a valid HTTP header name")
                && text.contains("write `name=value` entries"),
            "{text}"
        );
        assert!(!text.contains("dXNlcjpwYXNz"), "{text}");
        let text = refused("Content-Type=application/json");
        assert!(
            text.contains("OTEL_EXPORTER_GELF_HEADERS: entry 1")
                && text.contains("content-type is set by the exporter itself"),
            "{text}"
        );
        let text = refused("X-Key=line%0Abreak%20s3cr3t");
        assert!(
            text.contains("OTEL_EXPORTER_GELF_HEADERS: entry 1")
                && text.contains("the value of x-key is not a valid"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
        let text = refused("X-Team=core,Authorization=");
        assert!(
            text.contains("OTEL_EXPORTER_GELF_HEADERS: entry 2")
                && text.contains("the value of authorization is empty"),
            "{text}"
        );
        let text = refused("Authorization=Bearer%20");
        assert!(
            text.contains("the value of authorization is `Bearer` and nothing else"),
            "{text}"
        );
    }

    #[test]
    fn malformed_key_values_name_the_entry_and_hide_the_value() {
        for (text, says) in [
            ("a=1,secret-without-equals", "entry 2 has no `=`"),
            ("=secret", "entry 1 has an empty key"),
            ("a=%FFsecret", "entry 1 does not decode"),
        ] {
            let error = key_values("OTEL_EXPORTER_GELF_HEADERS", text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{error}");
            assert!(error.contains("OTEL_EXPORTER_GELF_HEADERS"), "{error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
