//! One call from a builder to a running pipeline: the exporter, a
//! [`DirectProcessor`], an `SdkLoggerProvider` with a resource detected from
//! the environment, and (cargo features `tracing`, `log`) the appender that
//! feeds it, filtered so that the exporter's own diagnostics never loop back
//! into it. The [`LogGuard`] it returns owns the provider and shuts it down.

use opentelemetry::KeyValue;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::resource::{
    ResourceDetector, SdkProvidedResourceDetector, TelemetryResourceDetector,
};
use opentelemetry_sdk::Resource;

use crate::config::ExporterBuilder;
use crate::encode::Format;
use crate::error::Result;
use crate::processor::DirectProcessor;

mod guard;
#[cfg(feature = "log")]
mod log_logger;
#[cfg(feature = "tracing")]
mod tracing_layer;

pub use guard::LogGuard;

/// The crates whose events are the exporter's own diagnostics or those of
/// the stack it uses, never exported (a record about a failing export would
/// fail in turn): the events they emit on the application's threads. (On the
/// exporter's I/O threads, telemetry is suppressed altogether.)
///
/// A target matches when its crate is one of these, `-` and `_` alike, or
/// belongs to the OpenTelemetry family ([`OTEL_FAMILY`]). Only whole names
/// match: an application crate named `h2_gateway` or `hyper_app` is the
/// application's own.
#[cfg(any(feature = "tracing", feature = "log", test))]
const SELF_DIAGNOSTICS: &[&str] = &[
    "djehouty",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "rustls_native_certs",
    "tokio_rustls",
];

/// The OpenTelemetry crates (`opentelemetry`, `opentelemetry_sdk`,
/// `opentelemetry-appender-tracing`, ...): a crate of this name or of this
/// name followed by `_` or `-`. The SDK's own diagnostics name their crate
/// as cargo spells it, with `-`.
#[cfg(any(feature = "tracing", feature = "log", test))]
const OTEL_FAMILY: &str = "opentelemetry";

/// Whether an event or record of this target is one of the exporter's own
/// diagnostics (see [`SELF_DIAGNOSTICS`]).
#[cfg(any(feature = "tracing", feature = "log", test))]
fn is_self_diagnostic(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    let same = |name: &str| {
        krate.len() == name.len()
            && krate
                .bytes()
                .zip(name.bytes())
                .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
    };
    SELF_DIAGNOSTICS.iter().any(|name| same(name))
        || krate
            .strip_prefix(OTEL_FAMILY)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['_', '-']))
}

/// Whether OpenTelemetry's context can still be asked on this thread. Not
/// in a thread-local destructor that runs after that context was
/// destroyed: the SDK asks it for every record, and would panic there,
/// which aborts the process. Told by a sentinel made just after the context
/// was first asked, so destroyed just before it: the standard library
/// destroys a thread's locals in the reverse order of their making (glibc's
/// list and its own; not a documented promise, nor true where it falls back
/// on pthread keys). A sentinel first made after the context is gone (its
/// first record logged from a late destructor) says so too.
#[cfg(any(feature = "tracing", feature = "log"))]
fn otel_context_alive() -> bool {
    /// Whether the context could be asked when the sentinel was made.
    struct Sentinel(bool);
    impl Drop for Sentinel {
        // A destructor of its own, so that `try_with` fails once it ran.
        fn drop(&mut self) {}
    }
    thread_local! {
        static SENTINEL: Sentinel = Sentinel(
            std::panic::catch_unwind(|| {
                let _ = opentelemetry::Context::is_current_telemetry_suppressed();
            })
            .is_ok(),
        );
    }
    SENTINEL.try_with(|sentinel| sentinel.0).unwrap_or(false)
}

/// The variable that names the service.
const SERVICE_NAME_VARIABLE: &str = "OTEL_SERVICE_NAME";
/// The variable that lists the resource's attributes.
const RESOURCE_ATTRIBUTES_VARIABLE: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// The variables the provider's resource is read from (the resource's
/// detectors cannot fail: [`build_provider`](ExporterBuilder::build_provider)
/// checks them first).
const RESOURCE_VARIABLES: [&str; 2] = [SERVICE_NAME_VARIABLE, RESOURCE_ATTRIBUTES_VARIABLE];

/// `service.name` from `OTEL_SERVICE_NAME` when it is set and not empty.
struct ServiceNameVariable;

impl ResourceDetector for ServiceNameVariable {
    fn detect(&self) -> Resource {
        let builder = Resource::builder_empty();
        match std::env::var(SERVICE_NAME_VARIABLE) {
            Ok(name) if !name.is_empty() => builder.with_service_name(name).build(),
            _ => builder.build(),
        }
    }
}

/// The attributes of `OTEL_RESOURCE_ATTRIBUTES`, percent-decoded as the
/// specification asks (the SDK's own detector does not decode, so `%2C`
/// would stay `%2C` rather than be a comma in a value).
struct ResourceAttributesVariable;

impl ResourceDetector for ResourceAttributesVariable {
    fn detect(&self) -> Resource {
        let text = std::env::var(RESOURCE_ATTRIBUTES_VARIABLE).unwrap_or_default();
        Resource::builder_empty()
            .with_attributes(resource_attributes(&text))
            .build()
    }
}

/// `key=value,key2=value2`, each key and value trimmed and percent-decoded
/// (a part that does not decode to UTF-8 is kept as written). An entry
/// without `=` or without a key is left out, as the SDK leaves it out, and
/// said.
fn resource_attributes(text: &str) -> Vec<KeyValue> {
    let decode = |part: &str| {
        let part = part.trim();
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map_or_else(|_| part.to_string(), |text| text.into_owned())
    };
    let mut attributes = Vec::new();
    for (index, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        match entry
            .split_once('=')
            .map(|(key, value)| (decode(key), value))
        {
            Some((key, value)) if !key.is_empty() => {
                attributes.push(KeyValue::new(key, decode(value)));
            }
            _ => {
                crate::warnings::warn_at_build!(
                    name: "djehouty.ResourceAttributeIgnored",
                    entry = (index + 1) as u64,
                    message = "an entry of OTEL_RESOURCE_ATTRIBUTES is not `key=value`: \
                               left out of the resource"
                );
            }
        }
    }
    attributes
}

/// The provider's resource: what the SDK's detectors find (the
/// `telemetry.sdk.*` attributes, `OTEL_RESOURCE_ATTRIBUTES`), with
/// `service.name` from `OTEL_SERVICE_NAME`, else from
/// `OTEL_RESOURCE_ATTRIBUTES`, else `default`, else the SDK's
/// `unknown_service:<executable>`.
///
/// Detectors merge in order, the later winning; `Resource::builder()` puts
/// `OTEL_RESOURCE_ATTRIBUTES` last, and its `with_service_name` would beat
/// both variables.
pub(crate) fn resource(default: Option<String>) -> Resource {
    let base = match default {
        Some(name) => Resource::builder_empty().with_service_name(name),
        None => Resource::builder_empty().with_detector(Box::new(SdkProvidedResourceDetector)),
    };
    base.with_detectors(&[
        Box::new(TelemetryResourceDetector),
        Box::new(ResourceAttributesVariable),
        Box::new(ServiceNameVariable),
    ])
    .build()
}

impl<F: Format> ExporterBuilder<F> {
    /// Names the service (`service.name`, sent as `_service_name`) when the
    /// environment does not: `OTEL_SERVICE_NAME`, then a `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`, win over it, so the name can change at
    /// deployment without a rebuild. Without either, the name is the SDK's
    /// `unknown_service:<executable>`.
    ///
    /// Used by [`build_provider`](Self::build_provider) and the calls built
    /// on it (`tracing_layer`, `install_log`, `log_logger`); `build()` makes
    /// the exporter alone, whose provider's resource is yours to set, and
    /// warns (`djehouty.DefaultServiceNameIgnored`) that the name is unused.
    ///
    /// ```no_run
    /// let guard = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tls://graylog.example.com:12202")
    ///     .with_default_service_name("checkout")
    ///     .build_provider()?;
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn with_default_service_name(mut self, name: impl Into<String>) -> Self {
        self.default_service_name = Some(name.into());
        self
    }

    /// Builds the exporter, a [`DirectProcessor`] around it and an
    /// `SdkLoggerProvider` with a resource detected from the environment
    /// (see [`with_default_service_name`](Self::with_default_service_name)),
    /// and returns the [`LogGuard`] that owns the provider and flushes it
    /// when dropped.
    ///
    /// For a bridge of your own choice, or one configured your way; the
    /// `tracing_layer` and `install_log` calls (cargo features `tracing`,
    /// `log`) wire the usual ones.
    ///
    /// ```no_run
    /// use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    ///
    /// let guard = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tcp://127.0.0.1:12201")
    ///     .build_provider()?;
    /// let logger = guard.provider().logger("app");
    /// let mut record = logger.create_log_record();
    /// record.set_body("started".into());
    /// logger.emit(record);
    /// drop(guard); // delivers it, or says on stderr that it could not
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`build`](Self::build), and `OTEL_SERVICE_NAME` or
    /// `OTEL_RESOURCE_ATTRIBUTES` set to a value that is not UTF-8 (taken
    /// as unset, it would let the default name apply unseen).
    pub fn build_provider(mut self) -> Result<LogGuard> {
        for name in RESOURCE_VARIABLES {
            crate::exporter::variable(name)?;
        }
        // The resource's warnings, as the exporter's, are kept while nothing
        // listens, and told with the first records.
        let name = self.default_service_name.take();
        let (exporter, resource) = self.build_with(move || resource(name))?;
        let counters = exporter.counters();
        let endpoint = exporter.endpoint().clone();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(DirectProcessor::new(exporter))
            .build();
        Ok(LogGuard::new(provider, counters, endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::{is_self_diagnostic, resource_attributes};
    use opentelemetry::KeyValue;

    #[test]
    fn resource_attributes_are_trimmed_and_percent_decoded() {
        assert_eq!(
            resource_attributes(
                " service.name = check%20out ,deployment.environment=eu%2Cwest,,\
                 k%3Dx=a=b,no-equals,=empty-key,bad=%FF"
            ),
            [
                KeyValue::new("service.name", "check out"),
                KeyValue::new("deployment.environment", "eu,west"),
                KeyValue::new("k=x", "a=b"),
                KeyValue::new("bad", "%FF"),
            ]
        );
        assert!(resource_attributes("").is_empty());
    }

    #[test]
    fn self_diagnostics_are_told_by_crate() {
        for target in [
            "djehouty",
            "djehouty::delivery",
            "opentelemetry",
            "opentelemetry_sdk",
            "opentelemetry-appender-tracing",
            "hyper::proto::h1",
            "hyper_util::client",
            "h2::codec",
            "rustls::client",
            "rustls-native-certs",
            "tokio_rustls",
            "tokio-rustls::common",
        ] {
            assert!(is_self_diagnostic(target), "{target}");
        }
        for target in [
            "app",
            "hyperion::server",
            "h2o",
            "rustlsx",
            "tokio",
            "tokio_postgres",
            "my_djehouty",
            "djehouty_example",
            "h2_gateway::server",
            "hyper_app",
            "hyper-proxy",
            "rustls_client",
            "",
        ] {
            assert!(!is_self_diagnostic(target), "{target}");
        }
    }
}
