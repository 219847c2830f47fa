//! Record mapping: one OpenTelemetry log record, its instrumentation scope and the
//! provider's resource become a format-neutral [`MappedRecord`]: a host, a short and
//! an optional full message, a time, a syslog level and an ordered list of named,
//! typed fields. Every rename rule lives here; the GELF and LTSV encoders only
//! write what they are given.
//!
//! The rules guarantee that what reaches Graylog or Logs Data Platform is accepted
//! whole and loses nothing unseen:
//!
//! * values are only strings, integers and finite doubles: booleans become
//!   `"true"`/`"false"`, NaN and infinities become `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`, bytes become standard base64, lists become their JSON text,
//!   maps are flattened into one field per leaf (`http.request` → `http_request_method`);
//! * an empty or blank string (which Graylog would drop) is sent quoted: `""`, `"  "`;
//! * a string longer than the field cap is cut on a character boundary and ends
//!   with `[truncated]`;
//! * keys keep ASCII letters, digits, `_` and `-`; dots become `_` (unless
//!   configured otherwise), every other character becomes `_`, an empty key
//!   becomes `empty_key`, reserved names get a trailing `_` (`id` → `id_`) and
//!   names in Graylog's internal `gl2_` namespace a leading one (`_gl2_x`);
//! * each key appears once: static extras win over record attributes, which win
//!   over the record's own metadata (target, trace context, ...), which wins over
//!   scope attributes, which win over resource attributes;
//! * with [`TypeSuffixes`] (the Logs Data Platform profile), a field whose value
//!   came from a typed OpenTelemetry value carries its type in its name:
//!   `retries` (an integer) → `retries_long`, `ratio` → `ratio_double`,
//!   `cached` → `cached_bool`; names that already end in a known suffix are
//!   left alone.

use std::borrow::Cow;

use crate::keycache::KeyCache;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::{InstrumentationScope, Key, Value};
use opentelemetry_sdk::logs::SdkLogRecord;
use opentelemetry_sdk::Resource;

use crate::json::{json_float, json_str, push_int};

/// Default largest frame (one encoded record) the receiver accepts: Graylog's TCP input default.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;
/// Default cap on one additional field's text value, below the 32,766-byte limit
/// of Graylog's `keyword` index mapping.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 32_000;
/// Text used as `short_message` when a record has no body, no meaningful event
/// name and no target.
pub const NO_MESSAGE: &str = "(no message)";

/// Marker appended to a text that was cut.
pub const TRUNCATED_MARKER: &str = " [truncated]";

/// Nesting depth of maps that is flattened; deeper values are sent as JSON text.
const MAX_FLATTEN_DEPTH: usize = 8;

/// Field names the receivers reserve. A user key equal to one of them gets a
/// trailing `_`. They are Graylog's GELF top-level names, its own message fields,
/// its search backend's internal names, and the LTSV labels this crate writes.
const RESERVED: &[&str] = &[
    "version",
    "host",
    "short_message",
    "full_message",
    "timestamp",
    "level",
    "facility",
    "line",
    "file",
    "id",
    "source",
    "message",
    "streams",
    "time",
    "_id",
    "_ttl",
    "_source",
    "_all",
    "_index",
    "_type",
    "_score",
];

/// Names of the fields the mapping derives from the record itself (before key
/// normalization, so `otel.scope.name` is sent as `otel_scope_name` by default).
pub(crate) mod names {
    pub const TARGET: &str = "target";
    pub const EVENT_NAME: &str = "event_name";
    pub const SEVERITY_TEXT: &str = "severity_text";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const TRACE_FLAGS: &str = "trace_flags";
    pub const SCOPE_NAME: &str = "otel.scope.name";
    pub const SCOPE_VERSION: &str = "otel.scope.version";
    pub const HOST_NAME: &str = "host.name";
    pub const SERVICE_NAME: &str = "service.name";
    pub const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";
}

/// Suffixes that give a field's type in its name, as OVHcloud Logs Data
/// Platform reads them: a field is a string unless its name ends in a type
/// suffix. Set with
/// [`ExporterBuilder::with_type_suffixes`](crate::ExporterBuilder::with_type_suffixes)
/// (the [Logs Data Platform profile](crate::ExporterBuilder::for_logs_data_platform)
/// turns the defaults on).
///
/// OpenTelemetry attributes carry no time type, so `date` is never added; like
/// every suffix LDP knows (`_int`, `_long`, `_num`, `_float`, `_double`,
/// `_bool`, `_date`, `_ip`, `_geolocation`, and the four configured here), it is
/// respected: a name that already ends in one is left alone.
///
/// ```
/// use djehouty::TypeSuffixes;
/// let suffixes = TypeSuffixes { long: "_int".into(), ..TypeSuffixes::default() };
/// assert_eq!(suffixes.double, "_double");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSuffixes {
    /// Added to integer fields. Default `_long`.
    pub long: String,
    /// Added to finite floating-point fields. Default `_double`.
    pub double: String,
    /// Added to boolean fields (sent as the strings `"true"` and `"false"`).
    /// Default `_bool`.
    pub boolean: String,
    /// Respected, never added (see above). Default `_date`.
    pub date: String,
}

impl Default for TypeSuffixes {
    fn default() -> Self {
        TypeSuffixes {
            long: "_long".to_string(),
            double: "_double".to_string(),
            boolean: "_bool".to_string(),
            date: "_date".to_string(),
        }
    }
}

/// Type suffixes Logs Data Platform knows, besides the configured ones.
const KNOWN_SUFFIXES: &[&str] = &[
    "_int",
    "_long",
    "_num",
    "_float",
    "_double",
    "_bool",
    "_date",
    "_ip",
    "_geolocation",
];

/// Whether a key already ends in a type suffix: one LDP knows, or one of
/// `also` (configured suffixes LDP does not know).
fn is_typed(key: &str, also: &[String]) -> bool {
    // LDP's own suffixes all start with `_`: look at the last one only.
    let known = key.rfind('_').is_some_and(|at| {
        matches!(
            &key[at..],
            "_int"
                | "_long"
                | "_num"
                | "_float"
                | "_double"
                | "_bool"
                | "_date"
                | "_ip"
                | "_geolocation"
        )
    });
    known || also.iter().any(|s| key.ends_with(s.as_str()))
}

/// The names of the fields the mapping takes from the record and its scope,
/// normalized (and typed) once per mapper rather than once per record.
#[derive(Debug, Default)]
struct FixedNames {
    scope_name: String,
    scope_version: String,
    target: String,
    event_name: String,
    severity_text: String,
    trace_id: String,
    span_id: String,
    trace_flags: String,
}

/// The type of a field's OpenTelemetry value, for [`TypeSuffixes`].
#[derive(Clone, Copy)]
enum Kind {
    Long,
    Double,
    Boolean,
}

impl TypeSuffixes {
    /// The suffixes with the key rules applied, so that a normalized key plus
    /// a suffix is still a normalized key.
    fn normalized(&self, replace_dots: bool) -> TypeSuffixes {
        let n = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                normalize_key(s, replace_dots).into_owned()
            }
        };
        TypeSuffixes {
            long: n(&self.long),
            double: n(&self.double),
            boolean: n(&self.boolean),
            date: n(&self.date),
        }
    }

    fn suffix(&self, kind: Kind) -> &str {
        match kind {
            Kind::Long => &self.long,
            Kind::Double => &self.double,
            Kind::Boolean => &self.boolean,
        }
    }

    /// The configured suffixes LDP does not already know (usually none).
    fn unknown(&self) -> Vec<String> {
        [&self.long, &self.double, &self.boolean, &self.date]
            .into_iter()
            .filter(|s| !s.is_empty() && !KNOWN_SUFFIXES.contains(&s.as_str()))
            .cloned()
            .collect()
    }
}

/// User-facing mapping settings, filled by the builder.
#[derive(Clone)]
pub struct MappingOptions {
    pub(crate) host: Option<String>,
    pub(crate) extras: Vec<(String, Value)>,
    pub(crate) replace_dots: bool,
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_field_bytes: usize,
    pub(crate) type_suffixes: Option<TypeSuffixes>,
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            host: None,
            extras: Vec::new(),
            replace_dots: true,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_field_bytes: DEFAULT_MAX_FIELD_BYTES,
            type_suffixes: None,
        }
    }
}

impl fmt::Debug for MappingOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extras may hold secrets (routing tokens): show their names only.
        let extras: Vec<&str> = self.extras.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("MappingOptions")
            .field("host", &self.host)
            .field("extras", &extras)
            .field("replace_dots", &self.replace_dots)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_field_bytes", &self.max_field_bytes)
            .field("type_suffixes", &self.type_suffixes)
            .finish()
    }
}

/// A field value as it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// A string, never blank.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A finite double.
    Float(f64),
}

/// A named field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'a> {
    /// The normalized key, without any format prefix.
    pub key: Cow<'a, str>,
    /// Written right after the key: a type suffix (`_long`), or empty. Kept
    /// apart so that a typed name costs no allocation.
    pub suffix: &'a str,
    /// The value.
    pub value: FieldValue<'a>,
}

/// A record ready to encode.
#[derive(Debug, Clone)]
pub struct MappedRecord<'a> {
    /// The source host, never blank.
    pub host: &'a str,
    /// The one-line message, never blank.
    pub short_message: Cow<'a, str>,
    /// The long form: a multi-line body and/or a stack trace.
    pub full_message: Option<Cow<'a, str>>,
    /// The record's time (its timestamp, else its observed timestamp, else now).
    pub time: EpochMicros,
    /// Syslog severity, 0 (emergency) to 7 (debug).
    pub level: u8,
    /// Additional fields, each key once.
    pub fields: Vec<Field<'a>>,
    /// How many fields at the end of `fields` are static extras, which
    /// [`shrink`](Self::shrink) never removes.
    pub protected_tail: usize,
    /// The static fields (resource, extras) already encoded for the exporter's
    /// format, when none of the record's fields shares a name with them; then
    /// `fields` holds the record's own fields only.
    pub statics: Option<Statics<'a>>,
}

/// The static fields of a record, pre-encoded by [`Mapper::pre_encode`].
#[derive(Debug, Clone, Copy)]
pub struct Statics<'a> {
    /// The resource's fields, encoded: written before the record's own fields.
    pub head: &'a [u8],
    /// The extras, encoded: written after the record's own fields.
    pub tail: &'a [u8],
    resource: &'a [Field<'static>],
    extras: &'a [Field<'static>],
}

/// Encodes one field for a wire format (`Format::encode_field`).
pub type FieldEncoder = fn(&Field<'_>, &mut Vec<u8>);

/// The static fields encoded once for one format.
#[derive(Debug)]
struct StaticWire {
    encode: FieldEncoder,
    head: Vec<u8>,
    tail: Vec<u8>,
    /// The union of the static fields' [`Field::name_bit`]s.
    names: u64,
}

impl MappedRecord<'_> {
    /// Makes the encoded record at least `excess` bytes smaller: cuts the full
    /// message first, then the short message, then the largest field values;
    /// everything cut is marked with [`TRUNCATED_MARKER`]. `last_resort` keeps
    /// only a short message head and the static extras.
    pub fn shrink(&mut self, excess: usize, last_resort: bool) {
        const KEEP: usize = 200;
        self.unpack_statics();
        if last_resort {
            self.full_message = None;
            self.short_message = cut_to(std::mem::take(&mut self.short_message), KEEP);
            let keep_from = self.fields.len() - self.protected_tail;
            self.fields.drain(..keep_from);
            return;
        }
        let mut need = excess + TRUNCATED_MARKER.len() + 16;
        if let Some(full) = self.full_message.take() {
            if full.len() > need + KEEP {
                let len = full.len() - need;
                self.full_message = Some(cut_to(full, len));
                return;
            }
            need = need.saturating_sub(full.len());
        }
        if need == 0 {
            return;
        }
        if self.short_message.len() > need + KEEP {
            let len = self.short_message.len() - need;
            self.short_message = cut_to(std::mem::take(&mut self.short_message), len);
            return;
        }
        if self.short_message.len() > KEEP {
            need = need.saturating_sub(self.short_message.len() - KEEP);
            self.short_message = cut_to(std::mem::take(&mut self.short_message), KEEP);
        }
        // Then the largest field values, extras excepted.
        let open = self.fields.len() - self.protected_tail;
        let mut order: Vec<usize> = (0..open).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(field_size(&self.fields[i])));
        for i in order {
            if need == 0 {
                break;
            }
            let size = field_size(&self.fields[i]);
            if let FieldValue::Str(text) = &mut self.fields[i].value {
                let target = size.saturating_sub(need).max(KEEP.min(size));
                if target < size {
                    *text = cut_to(std::mem::take(text), target);
                    need = need.saturating_sub(size - target);
                }
            }
        }
    }
}

impl<'a> MappedRecord<'a> {
    /// Turns pre-encoded static fields back into fields (resource first,
    /// extras last and protected), so that they can be cut like the others.
    fn unpack_statics(&mut self) {
        let Some(statics) = self.statics.take() else {
            return;
        };
        let own = std::mem::take(&mut self.fields);
        let mut fields =
            Vec::with_capacity(statics.resource.len() + own.len() + statics.extras.len());
        fields.extend(statics.resource.iter().map(Field::borrowed));
        fields.extend(own);
        fields.extend(statics.extras.iter().map(Field::borrowed));
        self.fields = fields;
        self.protected_tail = statics.extras.len();
    }
}

fn field_size(field: &Field<'_>) -> usize {
    match &field.value {
        FieldValue::Str(s) => s.len(),
        _ => 0,
    }
}

/// Like [`truncate_text`], always producing an owned text of at most `max` bytes.
fn cut_to(text: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    truncate_text(text, max.max(TRUNCATED_MARKER.len() + 1))
}

/// Maps records; holds what is the same for every record (host, extras, resource).
#[derive(Debug)]
pub struct Mapper {
    replace_dots: bool,
    max_field_bytes: usize,
    suffixes: Option<TypeSuffixes>,
    /// The configured suffixes LDP does not know, also respected.
    unknown_suffixes: Vec<String>,
    /// The names of the fields taken from the record itself, normalized once.
    fixed: FixedNames,
    builder_host: Option<String>,
    host: String,
    extras: Vec<Field<'static>>,
    resource: Vec<Field<'static>>,
    wire: Option<StaticWire>,
    /// Record attribute keys, normalized once.
    keys: KeyCache,
}

impl Mapper {
    /// A mapper with no resource yet.
    pub fn new(options: &MappingOptions) -> Mapper {
        let suffixes = options
            .type_suffixes
            .as_ref()
            .map(|s| s.normalized(options.replace_dots));
        let mut mapper = Mapper {
            replace_dots: options.replace_dots,
            max_field_bytes: options.max_field_bytes,
            suffixes: suffixes.clone(),
            unknown_suffixes: suffixes
                .as_ref()
                .map(TypeSuffixes::unknown)
                .unwrap_or_default(),
            builder_host: options.host.clone().filter(|h| !is_blank(h)),
            host: String::new(),
            extras: Vec::new(),
            resource: Vec::new(),
            wire: None,
            keys: KeyCache::default(),
            fixed: FixedNames::default(),
        };
        let name = |raw: &str| mapper.key(raw).into_owned();
        let fixed = FixedNames {
            scope_name: name(names::SCOPE_NAME),
            scope_version: name(names::SCOPE_VERSION),
            target: name(names::TARGET),
            event_name: name(names::EVENT_NAME),
            severity_text: name(names::SEVERITY_TEXT),
            trace_id: name(names::TRACE_ID),
            span_id: name(names::SPAN_ID),
            trace_flags: {
                let (key, suffix) = mapper.typed_key(names::TRACE_FLAGS, Some(Kind::Long));
                format!("{key}{suffix}")
            },
        };
        mapper.fixed = fixed;
        mapper.extras = mapper.static_fields(options.extras.iter().map(|(k, v)| (k.as_str(), v)));
        mapper.host = mapper.resolve_host(None, None);
        mapper
    }

    /// Precomputes the resource's fields and the host; called once by the SDK
    /// before the first export.
    pub fn set_resource(&mut self, resource: &Resource) {
        let mut fields = self.static_fields(resource.iter().map(|(k, v)| (k.as_str(), v)));
        // An extra of the same name always wins: leave such fields out now.
        fields.retain(|field| !self.extras.iter().any(|extra| extra.same_name(field)));
        self.resource = fields;
        let host_name = resource.get(&Key::from_static_str(names::HOST_NAME));
        let service_name = resource.get(&Key::from_static_str(names::SERVICE_NAME));
        self.host = self.resolve_host(host_name.as_ref(), service_name.as_ref());
        if let Some(wire) = &self.wire {
            self.pre_encode(wire.encode);
        }
    }

    /// Encodes the static fields (resource, extras) once with `encode`, so
    /// that [`map`](Self::map) hands them over as bytes to copy: a record
    /// whose own fields do not share their names then costs nothing for them.
    /// Kept across [`set_resource`](Self::set_resource).
    pub fn pre_encode(&mut self, encode: FieldEncoder) {
        let mut wire = StaticWire {
            encode,
            head: Vec::new(),
            tail: Vec::new(),
            names: 0,
        };
        for field in &self.resource {
            encode(field, &mut wire.head);
            wire.names |= field.name_bit();
        }
        for field in &self.extras {
            encode(field, &mut wire.tail);
            wire.names |= field.name_bit();
        }
        self.wire = Some(wire);
    }

    /// Maps fields that are the same for every record (extras, resource), once.
    fn static_fields<'v>(
        &self,
        values: impl Iterator<Item = (&'v str, &'v Value)>,
    ) -> Vec<Field<'static>> {
        let mut fields = Vec::new();
        for (key, value) in values {
            self.push_value(&mut fields, key, value);
        }
        dedup_last_wins(fields)
            .into_iter()
            .map(Field::into_owned)
            .collect()
    }

    /// The `host` every record carries.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn resolve_host(&self, host_name: Option<&Value>, service_name: Option<&Value>) -> String {
        let non_blank = |s: String| (!is_blank(&s)).then_some(s);
        self.builder_host
            .clone()
            .or_else(|| host_name.and_then(|v| non_blank(v.as_str().into_owned())))
            .or_else(|| non_blank(gethostname::gethostname().to_string_lossy().into_owned()))
            .or_else(|| service_name.and_then(|v| non_blank(v.as_str().into_owned())))
            .map(|h| truncate_text(Cow::Owned(h), 255).into_owned())
            .unwrap_or_else(|| "unknown-host".to_string())
    }

    /// Maps one record.
    pub fn map<'a>(
        &'a self,
        record: &'a SdkLogRecord,
        scope: &'a InstrumentationScope,
    ) -> MappedRecord<'a> {
        // Lowest precedence first; `dedup_last_wins` keeps the last of each key.
        // Room for the record's attributes and the fixed fields at once.
        // (The SDK's iterator filters: its upper bound is the count.)
        let attributes = record.attributes_iter().size_hint().1.unwrap_or(0);
        let own = attributes.min(1024) + 8;
        let mut fields: Vec<Field<'a>> = match &self.wire {
            Some(_) => Vec::with_capacity(own.max(16)),
            None => {
                let mut fields =
                    Vec::with_capacity(self.resource.len() + self.extras.len() + own.max(16));
                fields.extend(self.resource.iter().map(Field::borrowed));
                fields
            }
        };
        for kv in scope.attributes() {
            self.push_value(&mut fields, kv.key.as_str(), &kv.value);
        }
        if !scope.name().is_empty() {
            self.push_text(&mut fields, &self.fixed.scope_name, scope.name());
        }
        if let Some(version) = scope.version() {
            self.push_text(&mut fields, &self.fixed.scope_version, version);
        }
        if let Some(target) = record.target() {
            self.push_text(&mut fields, &self.fixed.target, target.as_ref());
        }
        let event_name = record.event_name().filter(|name| is_meaningful_event(name));
        if let Some(name) = event_name {
            self.push_text(&mut fields, &self.fixed.event_name, name);
        }
        if let Some(text) = record.severity_text() {
            self.push_text(&mut fields, &self.fixed.severity_text, text);
        }
        if let Some(tc) = record.trace_context() {
            self.push_text(&mut fields, &self.fixed.trace_id, tc.trace_id.to_string());
            self.push_text(&mut fields, &self.fixed.span_id, tc.span_id.to_string());
            if let Some(flags) = tc.trace_flags {
                fields.push(Field {
                    key: Cow::Borrowed(&self.fixed.trace_flags),
                    suffix: "",
                    value: FieldValue::Int(i64::from(flags.to_u8())),
                });
            }
        }
        let mut stacktrace: Option<&'a str> = None;
        for (key, value) in record.attributes_iter() {
            if key.as_str() == names::EXCEPTION_STACKTRACE {
                if let AnyValue::String(s) = value {
                    if !is_blank(s.as_str()) {
                        stacktrace = Some(s.as_str());
                        continue;
                    }
                }
            }
            self.push_any(&mut fields, key.as_str(), value, 0);
        }
        let (fields, protected_tail, statics) = self.with_statics(fields);

        let body = record.body().map(body_text);
        let (short_message, full_message) = messages(
            body,
            stacktrace,
            event_name,
            record.target().map(|t| t.as_ref()),
        );
        MappedRecord {
            host: &self.host,
            short_message,
            full_message,
            time: record
                .timestamp()
                .and_then(EpochMicros::of)
                .or_else(|| record.observed_timestamp().and_then(EpochMicros::of))
                .unwrap_or_else(EpochMicros::now),
            level: syslog_level(record.severity_number(), record.severity_text()),
            fields,
            protected_tail,
            statics,
        }
    }

    /// Adds the static fields to the record's own: as pre-encoded bytes when
    /// no name is shared (the common case), else as fields, deduplicated.
    fn with_statics<'a>(
        &'a self,
        mut fields: Vec<Field<'a>>,
    ) -> (Vec<Field<'a>>, usize, Option<Statics<'a>>) {
        if let Some(wire) = &self.wire {
            fields = dedup_last_wins(fields);
            let shared = fields.iter().any(|field| {
                wire.names & field.name_bit() != 0
                    && self
                        .resource
                        .iter()
                        .chain(&self.extras)
                        .any(|s| s.same_name(field))
            });
            if !shared {
                let statics = Statics {
                    head: &wire.head,
                    tail: &wire.tail,
                    resource: &self.resource,
                    extras: &self.extras,
                };
                return (fields, 0, Some(statics));
            }
            let mut all =
                Vec::with_capacity(self.resource.len() + fields.len() + self.extras.len());
            all.extend(self.resource.iter().map(Field::borrowed));
            all.extend(fields);
            fields = all;
        }
        // Extras last: the dedup keeps the last field of each name, so they win
        // and stay at the end, where `shrink` leaves them alone.
        fields.extend(self.extras.iter().map(Field::borrowed));
        (dedup_last_wins(fields), self.extras.len(), None)
    }

    fn key<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        normalize_key(raw, self.replace_dots)
    }

    /// The name of a field whose value had type `kind`: with type suffixes,
    /// the normalized key and the suffix to write after it, unless the key
    /// already ends in a known one.
    // Always inlined, and the common case (a key seen before, a suffix that
    // completes no reserved name) kept apart from the rest: on this path,
    // every attribute of every record, a name handed back through memory
    // from a call costs more than the lookup itself.
    #[inline(always)]
    fn typed_key<'a>(&'a self, raw: &'a str, kind: Option<Kind>) -> (Cow<'a, str>, &'a str) {
        if let Some((key, typed)) = self.keys.find(raw) {
            match (&self.suffixes, kind) {
                (Some(suffixes), Some(kind)) if !typed => {
                    let suffix = suffixes.suffix(kind);
                    if !key.ends_with('_') && !forms_reserved(key, suffix) {
                        return (Cow::Borrowed(key), suffix);
                    }
                }
                _ => return (Cow::Borrowed(key), ""),
            }
        }
        self.typed_key_in_full(raw, kind)
    }

    /// [`typed_key`](Self::typed_key), every case: normalizes (and caches)
    /// a key not seen before, and builds names that need care.
    #[inline(never)]
    fn typed_key_in_full<'a>(
        &'a self,
        raw: &'a str,
        kind: Option<Kind>,
    ) -> (Cow<'a, str>, &'a str) {
        let (key, typed) = self.keys.get(raw, |raw| {
            let key = self.key(raw);
            let typed = self.suffixes.is_some() && is_typed(&key, &self.unknown_suffixes);
            (key, typed)
        });
        let (Some(suffixes), Some(kind)) = (&self.suffixes, kind) else {
            return (key, "");
        };
        if typed {
            return (key, "");
        }
        // Both parts are normalized (the suffixes in `Mapper::new`), so the
        // name is too, unless the key was a reserved name (marked with a
        // trailing `_` that the suffix makes useless) or the suffix completes
        // one (`i` + `d`, `gl2` + `_long`): then build it whole.
        let suffix = suffixes.suffix(kind);
        let marked = key.strip_suffix('_').filter(|base| RESERVED.contains(base));
        if marked.is_none() && !forms_reserved(&key, suffix) {
            return (key, suffix);
        }
        let base = marked.unwrap_or(&key);
        let mut typed = String::with_capacity(base.len() + suffix.len() + 1);
        typed.push_str(base);
        typed.push_str(suffix);
        let mut typed = Cow::Owned(typed);
        protect_reserved(&mut typed);
        (typed, "")
    }

    /// Pushes a text field under one of the fixed names (already normalized).
    #[inline]
    fn push_text<'a>(
        &self,
        fields: &mut Vec<Field<'a>>,
        key: &'a str,
        value: impl Into<Cow<'a, str>>,
    ) {
        fields.push(Field {
            key: Cow::Borrowed(key),
            suffix: "",
            value: self.text(value.into()),
        });
    }

    /// A string value made safe: blank strings quoted, long ones cut.
    // Always inlined: the common case (short, not blank) then moves the text
    // once, straight into the field.
    #[inline(always)]
    fn text<'a>(&self, value: Cow<'a, str>) -> FieldValue<'a> {
        if value.len() <= self.max_field_bytes && !is_blank(&value) {
            return FieldValue::Str(value);
        }
        self.unusual_text(value)
    }

    #[cold]
    #[inline(never)]
    fn unusual_text<'a>(&self, value: Cow<'a, str>) -> FieldValue<'a> {
        if is_blank(&value) {
            let quoted = Cow::Owned(format!("\"{value}\""));
            return FieldValue::Str(truncate_text(quoted, self.max_field_bytes));
        }
        FieldValue::Str(truncate_text(value, self.max_field_bytes))
    }

    /// A double: finite ones stay numbers (typed), the others become text.
    #[inline]
    fn float(&self, value: f64) -> (FieldValue<'static>, Option<Kind>) {
        let text = if value.is_finite() {
            return (FieldValue::Float(value), Some(Kind::Double));
        } else if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        (FieldValue::Str(Cow::Borrowed(text)), None)
    }

    /// Pushes a resource, scope or static value (`opentelemetry::Value`).
    fn push_value<'a>(&'a self, fields: &mut Vec<Field<'a>>, key: &'a str, value: &'a Value) {
        let (value, kind) = match value {
            Value::Bool(b) => (
                FieldValue::Str(Cow::Borrowed(bool_text(*b))),
                Some(Kind::Boolean),
            ),
            Value::I64(i) => (FieldValue::Int(*i), Some(Kind::Long)),
            Value::F64(f) => self.float(*f),
            Value::String(s) => (self.text(Cow::Borrowed(s.as_str())), None),
            other => (self.text(Cow::Owned(value_json(other).to_string())), None),
        };
        let (key, suffix) = self.typed_key(key, kind);
        fields.push(Field { key, suffix, value });
    }

    /// Pushes a record attribute (`AnyValue`), flattening maps.
    fn push_any<'a>(
        &'a self,
        fields: &mut Vec<Field<'a>>,
        key: &'a str,
        value: &'a AnyValue,
        depth: usize,
    ) {
        let value = match value {
            AnyValue::Map(map) if !map.is_empty() && depth < MAX_FLATTEN_DEPTH => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
                let sep = if self.replace_dots { '_' } else { '.' };
                for (sub, v) in entries {
                    // The entry's fields (more than one when it is a map
                    // itself) are pushed in place, then prefixed with `key`:
                    // one allocation per field, its name.
                    let start = fields.len();
                    self.push_any(fields, sub.as_str(), v, depth + 1);
                    for field in &mut fields[start..] {
                        let mut joined = String::with_capacity(
                            key.len() + 1 + field.key.len() + field.suffix.len(),
                        );
                        joined.push_str(key);
                        joined.push(sep);
                        joined.push_str(&field.key);
                        joined.push_str(field.suffix);
                        let renamed = match normalize_key(&joined, self.replace_dots) {
                            Cow::Owned(normalized) => Some(normalized),
                            Cow::Borrowed(_) => None,
                        };
                        field.key = Cow::Owned(renamed.unwrap_or(joined));
                        field.suffix = "";
                    }
                }
                return;
            }
            other => self.any_value(other),
        };
        let (key, suffix) = self.typed_key(key, value.1);
        fields.push(Field {
            key,
            suffix,
            value: value.0,
        });
    }

    #[inline]
    fn any_value<'a>(&self, value: &'a AnyValue) -> (FieldValue<'a>, Option<Kind>) {
        match value {
            AnyValue::Int(i) => (FieldValue::Int(*i), Some(Kind::Long)),
            AnyValue::Double(f) => self.float(*f),
            AnyValue::String(s) => (self.text(Cow::Borrowed(s.as_str())), None),
            AnyValue::Boolean(b) => (
                FieldValue::Str(Cow::Borrowed(bool_text(*b))),
                Some(Kind::Boolean),
            ),
            AnyValue::Bytes(bytes) => (self.text(Cow::Owned(base64_text(bytes))), None),
            other => (self.text(Cow::Owned(any_json_text(other))), None),
        }
    }
}

impl<'a> Field<'a> {
    /// A field without a suffix.
    pub fn new(key: impl Into<Cow<'a, str>>, value: FieldValue<'a>) -> Field<'a> {
        Field {
            key: key.into(),
            suffix: "",
            value,
        }
    }

    /// The whole name: the key and its suffix.
    pub fn name(&self) -> Cow<'_, str> {
        if self.suffix.is_empty() {
            Cow::Borrowed(&self.key)
        } else {
            Cow::Owned(format!("{}{}", self.key, self.suffix))
        }
    }

    /// A digest of the whole name (its length, first and last bytes): two
    /// fields with different fingerprints have different names.
    #[inline]
    fn fingerprint(&self) -> u32 {
        let (key, suffix) = (self.key.as_bytes(), self.suffix.as_bytes());
        let len = (key.len() + suffix.len()) as u32;
        let first = key.first().or(suffix.first()).copied().unwrap_or(0);
        let last = suffix.last().or(key.last()).copied().unwrap_or(0);
        len << 16 ^ u32::from(first) << 8 ^ u32::from(last)
    }

    /// One bit of 64 chosen by the name: two fields with different bits
    /// have different names.
    #[inline]
    fn name_bit(&self) -> u64 {
        print_bit(self.fingerprint())
    }

    /// Whether two fields have the same whole name (no allocation).
    fn same_name(&self, other: &Field<'_>) -> bool {
        if self.suffix.is_empty() && other.suffix.is_empty() {
            return self.key == other.key;
        }
        self.key.len() + self.suffix.len() == other.key.len() + other.suffix.len()
            && self
                .key
                .bytes()
                .chain(self.suffix.bytes())
                .eq(other.key.bytes().chain(other.suffix.bytes()))
    }

    fn borrowed(&self) -> Field<'_> {
        Field {
            key: Cow::Borrowed(&self.key),
            suffix: self.suffix,
            value: match &self.value {
                FieldValue::Str(s) => FieldValue::Str(Cow::Borrowed(s)),
                FieldValue::Int(i) => FieldValue::Int(*i),
                FieldValue::Float(f) => FieldValue::Float(*f),
            },
        }
    }

    /// An owned copy, the suffix joined to the key.
    fn into_owned(self) -> Field<'static> {
        let key = match self.suffix {
            "" => self.key.into_owned(),
            suffix => format!("{}{suffix}", self.key),
        };
        Field {
            key: Cow::Owned(key),
            suffix: "",
            value: match self.value {
                FieldValue::Str(s) => FieldValue::Str(Cow::Owned(s.into_owned())),
                FieldValue::Int(i) => FieldValue::Int(i),
                FieldValue::Float(f) => FieldValue::Float(f),
            },
        }
    }
}

#[inline]
fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One bit of 64 chosen by a [`Field::fingerprint`].
#[inline]
fn print_bit(print: u32) -> u64 {
    1 << (print.wrapping_mul(0x9e37_79b9) >> 26)
}

/// Keeps the last field of each key, in the order of those last occurrences.
fn dedup_last_wins(mut fields: Vec<Field<'_>>) -> Vec<Field<'_>> {
    let n = fields.len();
    if n <= 64 {
        // Typical records: a bit per field and pairwise comparison of
        // fingerprints (names only when those match), no allocation.
        // From the last field back: a field whose bit no later field has set
        // is unique so far; only the others are compared.
        let mut prints = [0u32; 64];
        let mut seen: u64 = 0;
        let mut drop: u64 = 0;
        for i in (0..n).rev() {
            let print = fields[i].fingerprint();
            prints[i] = print;
            let bit = print_bit(print);
            if seen & bit != 0
                && (i + 1..n).any(|j| prints[j] == print && fields[j].same_name(&fields[i]))
            {
                drop |= 1 << i;
            }
            seen |= bit;
        }
        if drop != 0 {
            let mut i = 0;
            fields.retain(|_| {
                let keep = drop & (1 << i) == 0;
                i += 1;
                keep
            });
        }
        return fields;
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut keep = vec![true; n];
    for i in (0..n).rev() {
        if !seen.insert(fields[i].name().into_owned()) {
            keep[i] = false;
        }
    }
    let mut i = 0;
    fields.retain(|_| {
        let k = keep[i];
        i += 1;
        k
    });
    fields
}

/// Bytes a key keeps: ASCII letters, digits, `_` and `-`, and `.` in the
/// second table (dots kept). Every other byte (non-ASCII ones included)
/// becomes `_`.
const KEY_BYTES: [[bool; 256]; 2] = {
    let mut tables = [[false; 256]; 2];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let ok = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        tables[0][b] = ok;
        tables[1][b] = ok || c == b'.';
        b += 1;
    }
    tables
};

/// Normalizes a key: see the module documentation.
pub fn normalize_key(raw: &str, replace_dots: bool) -> Cow<'_, str> {
    // A hot path: one table lookup per byte, and for a key that needs
    // changes, one allocation and one pass over bytes.
    let valid = &KEY_BYTES[usize::from(!replace_dots)];
    let mut key = if raw.is_empty() {
        Cow::Borrowed("empty_key")
    } else if raw.bytes().all(|b| valid[usize::from(b)]) {
        Cow::Borrowed(raw)
    } else if raw.is_ascii() {
        // Room for a reserved-name mark, so the string is allocated once.
        let mut bytes = Vec::with_capacity(raw.len() + 1);
        bytes.extend_from_slice(raw.as_bytes());
        for b in &mut bytes {
            if !valid[usize::from(*b)] {
                *b = b'_';
            }
        }
        // Only ASCII bytes went in: this cannot fail.
        Cow::Owned(String::from_utf8(bytes).unwrap_or_default())
    } else {
        // One `_` per invalid character (a multi-byte one counts once).
        Cow::Owned(
            raw.chars()
                .map(|c| match u8::try_from(c) {
                    Ok(b) if valid[usize::from(b)] => c,
                    _ => '_',
                })
                .collect(),
        )
    };
    protect_reserved(&mut key);
    key
}

/// Moves a (normalized) name out of the receivers' reserved ones: a reserved
/// name gets a trailing `_` (`id` → `id_`), a name in Graylog's internal
/// `gl2_` namespace a leading one (`gl2_x` → `_gl2_x`).
fn protect_reserved(key: &mut Cow<'_, str>) {
    // Reserved names are 2 to 13 bytes long: most keys are rejected at once.
    if (2..=13).contains(&key.len()) && RESERVED.contains(&key.as_ref()) {
        key.to_mut().push('_');
    } else if key.starts_with("gl2_") {
        key.to_mut().insert(0, '_');
    }
}

/// Whether `key` followed by `suffix` is a name the receivers reserve.
fn forms_reserved(key: &str, suffix: &str) -> bool {
    let total = key.len() + suffix.len();
    if total > 13 && key.len() >= 4 {
        // Too long for a reserved name; `gl2_` would already be marked.
        return key.starts_with("gl2_");
    }
    let reserved = (2..=13).contains(&total)
        && RESERVED
            .iter()
            .any(|r| r.len() == total && r.starts_with(key) && r.ends_with(suffix));
    reserved
        || key
            .bytes()
            .chain(suffix.bytes())
            .take(4)
            .eq(b"gl2_".iter().copied())
}

/// Whether a text is blank to Graylog, which trims with Java's `String.trim()`
/// (every character up to U+0020, control characters included) and drops what
/// is left empty. Unicode white space counts as blank too.
#[inline]
pub(crate) fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c <= ' ' || c.is_whitespace())
}

/// Cuts a text longer than `max` bytes on a character boundary and marks it.
#[inline]
pub fn truncate_text(text: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return text;
    }
    let mut cut = max.saturating_sub(TRUNCATED_MARKER.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + TRUNCATED_MARKER.len());
    out.push_str(&text[..cut]);
    out.push_str(TRUNCATED_MARKER);
    Cow::Owned(out)
}

/// tracing's default event name is `event <file>:<line>`: not worth a field.
fn is_meaningful_event(name: &str) -> bool {
    let default_name = name.starts_with("event ") && name.contains(':');
    !is_blank(name) && !default_name
}

/// The body as text: strings as they are, scalars printed, bytes in base64,
/// lists and maps as JSON.
fn body_text(body: &AnyValue) -> Cow<'_, str> {
    match body {
        AnyValue::String(s) => Cow::Borrowed(s.as_str()),
        AnyValue::Int(i) => Cow::Owned(i.to_string()),
        AnyValue::Double(f) => Cow::Owned(f.to_string()),
        AnyValue::Boolean(b) => Cow::Borrowed(bool_text(*b)),
        AnyValue::Bytes(bytes) => Cow::Owned(base64_text(bytes)),
        other => Cow::Owned(any_json_text(other)),
    }
}

/// Chooses `short_message` (never blank) and `full_message`.
fn messages<'a>(
    body: Option<Cow<'a, str>>,
    stacktrace: Option<&'a str>,
    event_name: Option<&'a str>,
    target: Option<&'a str>,
) -> (Cow<'a, str>, Option<Cow<'a, str>>) {
    let body = body.filter(|b| !is_blank(b));
    let Some(body) = body else {
        let short = event_name
            .or(target.filter(|t| !is_blank(t)))
            .unwrap_or(NO_MESSAGE);
        return (Cow::Borrowed(short), stacktrace.map(Cow::Borrowed));
    };
    let multi_line = body.contains('\n');
    let full = match (multi_line, stacktrace) {
        (false, None) => None,
        (false, Some(trace)) => Some(Cow::Borrowed(trace)),
        (true, None) => Some(body.clone()),
        (true, Some(trace)) => Some(Cow::Owned(format!("{body}\n{trace}"))),
    };
    if !multi_line {
        return (body, full);
    }
    fn first_line(text: &str) -> &str {
        text.lines().find(|l| !is_blank(l)).unwrap_or(NO_MESSAGE)
    }
    let first = match body {
        // A line of the record's own text: borrowed, like the body.
        Cow::Borrowed(text) => Cow::Borrowed(first_line(text)),
        Cow::Owned(text) => Cow::Owned(first_line(&text).to_string()),
    };
    (first, full)
}

/// Maps an OpenTelemetry severity to a syslog level (0 emergency .. 7 debug):
/// the inverse of the log data model's syslog table. Without a number, the
/// severity text is read; without either, the level is 6 (informational).
pub fn syslog_level(number: Option<Severity>, text: Option<&str>) -> u8 {
    if let Some(severity) = number {
        return match severity as i32 {
            i32::MIN..=8 => 7,
            9 => 6,
            10..=12 => 5,
            13..=16 => 4,
            17 => 3,
            18 => 2,
            19..=20 => 1,
            _ => 0,
        };
    }
    let Some(text) = text else { return 6 };
    let text = text.trim().to_ascii_lowercase();
    let word = text.trim_end_matches(|c: char| c.is_ascii_digit());
    match word {
        "trace" | "debug" | "dbg" | "finest" | "finer" | "fine" => 7,
        "info" | "information" | "informational" => 6,
        "notice" => 5,
        "warn" | "warning" => 4,
        "error" | "err" | "severe" => 3,
        "critical" | "crit" => 2,
        "alert" => 1,
        "fatal" | "emerg" | "emergency" | "panic" => 0,
        _ => 6,
    }
}

/// A time as whole seconds and microseconds since the epoch: what both
/// formats write, computed once per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochMicros {
    /// Whole seconds since the epoch.
    pub secs: u64,
    /// Microseconds within the second (below 1,000,000).
    pub micros: u32,
}

impl EpochMicros {
    /// A time that can be sent: at least a microsecond after the epoch (GELF
    /// wants a positive timestamp) and before the year 10000 (RFC 3339 has
    /// four digits for the year). Other times fall back to the observed time,
    /// then now.
    #[inline]
    pub fn of(time: SystemTime) -> Option<EpochMicros> {
        const YEAR_10000: u64 = 253_402_300_800;
        let since = time.duration_since(UNIX_EPOCH).ok()?;
        let (secs, micros) = (since.as_secs(), since.subsec_micros());
        (secs < YEAR_10000 && (secs > 0 || micros > 0)).then_some(EpochMicros { secs, micros })
    }

    /// Now, or the epoch if the clock is before it.
    pub fn now() -> EpochMicros {
        EpochMicros::of(SystemTime::now()).unwrap_or(EpochMicros { secs: 0, micros: 0 })
    }
}

/// A list, a map or another structured value as JSON text (maps with their
/// keys in order), written in one pass into one string.
pub(crate) fn any_json_text(value: &AnyValue) -> String {
    let mut out = Vec::new();
    write_any_json(&mut out, value);
    // Only UTF-8 is ever written.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The GELF encoder's JSON writers serve here too (a non-finite double
/// becomes a string, as `serde_json::Value` makes it).
fn write_any_json(out: &mut Vec<u8>, value: &AnyValue) {
    match value {
        AnyValue::Int(i) => push_int(out, *i),
        AnyValue::Double(f) => json_float(out, *f),
        AnyValue::String(s) => json_str(out, s.as_str()),
        AnyValue::Boolean(b) => out.extend_from_slice(bool_text(*b).as_bytes()),
        AnyValue::Bytes(bytes) => json_str(out, &base64_text(bytes)),
        AnyValue::ListAny(list) => {
            out.push(b'[');
            for (i, item) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_any_json(out, item);
            }
            out.push(b']');
        }
        AnyValue::Map(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_str(out, key.as_str());
                out.push(b':');
                write_any_json(out, item);
            }
            out.push(b'}');
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// The same text through `serde_json::Value`: the oracle of a test.
#[cfg(test)]
pub(crate) fn any_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        AnyValue::Int(i) => J::from(*i),
        AnyValue::Double(f) if f.is_finite() => J::from(*f),
        AnyValue::Double(f) => J::from(f.to_string()),
        AnyValue::String(s) => J::from(s.as_str()),
        AnyValue::Boolean(b) => J::from(*b),
        AnyValue::Bytes(bytes) => J::from(base64_text(bytes)),
        AnyValue::ListAny(list) => J::Array(list.iter().map(any_json).collect()),
        AnyValue::Map(map) => J::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_string(), any_json(v)))
                .collect(),
        ),
        _ => J::Null,
    }
}

fn value_json(value: &Value) -> serde_json::Value {
    use opentelemetry::Array;
    use serde_json::Value as J;
    match value {
        Value::Array(Array::Bool(v)) => J::from(v.clone()),
        Value::Array(Array::I64(v)) => J::from(v.clone()),
        Value::Array(Array::F64(v)) => J::Array(
            v.iter()
                .map(|f| {
                    if f.is_finite() {
                        J::from(*f)
                    } else {
                        J::from(f.to_string())
                    }
                })
                .collect(),
        ),
        Value::Array(Array::String(v)) => J::Array(v.iter().map(|s| J::from(s.as_str())).collect()),
        other => J::from(other.as_str().into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::logs::SdkLoggerProvider;
    use std::collections::HashMap;
    use std::time::Duration;

    fn record() -> SdkLogRecord {
        let provider = SdkLoggerProvider::builder().build();
        provider.logger("test").create_log_record()
    }

    fn get<'a>(m: &'a MappedRecord<'_>, key: &str) -> Option<&'a FieldValue<'a>> {
        m.fields.iter().find(|f| f.name() == key).map(|f| &f.value)
    }

    fn s(v: &str) -> FieldValue<'static> {
        FieldValue::Str(Cow::Owned(v.to_string()))
    }

    #[test]
    fn keys_are_normalized() {
        assert_eq!(normalize_key("service.name", true), "service_name");
        assert_eq!(normalize_key("service.name", false), "service.name");
        assert_eq!(normalize_key("X-OVH-TOKEN", true), "X-OVH-TOKEN");
        assert_eq!(normalize_key("a b/c:d", true), "a_b_c_d");
        assert_eq!(normalize_key("café", true), "caf_");
        assert_eq!(normalize_key("", true), "empty_key");
        assert_eq!(normalize_key("id", true), "id_");
        assert_eq!(normalize_key("source", true), "source_");
        assert_eq!(normalize_key("short_message", true), "short_message_");
        assert_eq!(normalize_key("_id", true), "_id_");
        assert_eq!(normalize_key("gl2_source_node", true), "_gl2_source_node");
        assert!(matches!(normalize_key("plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn severity_maps_to_syslog() {
        let cases = [
            (Severity::Trace, 7),
            (Severity::Debug4, 7),
            (Severity::Info, 6),
            (Severity::Info2, 5),
            (Severity::Warn, 4),
            (Severity::Warn4, 4),
            (Severity::Error, 3),
            (Severity::Error2, 2),
            (Severity::Error3, 1),
            (Severity::Fatal, 0),
            (Severity::Fatal4, 0),
        ];
        for (sev, level) in cases {
            assert_eq!(syslog_level(Some(sev), None), level, "{sev:?}");
        }
        assert_eq!(syslog_level(None, Some("WARN")), 4);
        assert_eq!(syslog_level(None, Some("error2")), 3);
        assert_eq!(syslog_level(None, Some("critical")), 2);
        assert_eq!(syslog_level(None, Some("whatever")), 6);
        assert_eq!(syslog_level(None, None), 6);
    }

    #[test]
    fn maps_a_full_record() {
        let mut rec = record();
        rec.set_body(AnyValue::from("disk full"));
        rec.set_severity_number(Severity::Warn);
        rec.set_severity_text("WARN");
        rec.set_target("app::db");
        rec.set_event_name("db.disk");
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        rec.set_timestamp(t);
        rec.set_trace_context(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            Some(TraceFlags::SAMPLED),
        );
        rec.add_attribute("user", "alice");
        rec.add_attribute("retries", 3);
        rec.add_attribute("ratio", 0.5);
        rec.add_attribute("ok", true);
        rec.add_attribute("nan", f64::NAN);
        rec.add_attribute("id", "abc");
        rec.add_attribute("blob", AnyValue::Bytes(Box::new(vec![0, 1, 255])));
        rec.add_attribute(
            "list",
            AnyValue::ListAny(Box::new(vec![AnyValue::from(1), AnyValue::from("x")])),
        );
        let mut inner = HashMap::new();
        inner.insert(Key::from("method"), AnyValue::from("GET"));
        inner.insert(Key::from("status"), AnyValue::from(200));
        rec.add_attribute("http.request", AnyValue::Map(Box::new(inner)));
        rec.add_attribute("empty", "");
        rec.add_attribute("user", "bob"); // duplicate: last wins
        let scope = InstrumentationScope::builder("my-lib")
            .with_version("1.2.3")
            .with_attributes([KeyValue::new("scope.attr", "s")])
            .build();

        let mut mapper = Mapper::new(&MappingOptions {
            extras: vec![("X-OVH-TOKEN".into(), Value::from("secret"))],
            ..MappingOptions::default()
        });
        mapper.set_resource(
            &Resource::builder_empty()
                .with_service_name("svc")
                .with_attribute(KeyValue::new("host.name", "box-1"))
                .with_attribute(KeyValue::new("user", "resource-loses"))
                .build(),
        );
        let m = mapper.map(&rec, &scope);
        assert_eq!(m.host, "box-1");
        assert_eq!(m.short_message, "disk full");
        assert_eq!(m.full_message, None);
        assert_eq!(m.level, 4);
        assert_eq!(
            m.time,
            EpochMicros {
                secs: 1_700_000_000,
                micros: 123_456
            }
        );
        assert_eq!(get(&m, "user"), Some(&s("bob")));
        assert_eq!(get(&m, "retries"), Some(&FieldValue::Int(3)));
        assert_eq!(get(&m, "ratio"), Some(&FieldValue::Float(0.5)));
        assert_eq!(get(&m, "ok"), Some(&s("true")));
        assert_eq!(get(&m, "nan"), Some(&s("NaN")));
        assert_eq!(get(&m, "id_"), Some(&s("abc")));
        assert_eq!(get(&m, "blob"), Some(&s("AAH/")));
        assert_eq!(get(&m, "list"), Some(&s("[1,\"x\"]")));
        assert_eq!(get(&m, "http_request_method"), Some(&s("GET")));
        assert_eq!(get(&m, "http_request_status"), Some(&FieldValue::Int(200)));
        assert_eq!(get(&m, "empty"), Some(&s("\"\"")));
        assert_eq!(get(&m, "target"), Some(&s("app::db")));
        assert_eq!(get(&m, "event_name"), Some(&s("db.disk")));
        assert_eq!(get(&m, "severity_text"), Some(&s("WARN")));
        assert_eq!(
            get(&m, "trace_id"),
            Some(&s("0af7651916cd43dd8448eb211c80319c"))
        );
        assert_eq!(get(&m, "span_id"), Some(&s("b7ad6b7169203331")));
        assert_eq!(get(&m, "trace_flags"), Some(&FieldValue::Int(1)));
        assert_eq!(get(&m, "otel_scope_name"), Some(&s("my-lib")));
        assert_eq!(get(&m, "otel_scope_version"), Some(&s("1.2.3")));
        assert_eq!(get(&m, "scope_attr"), Some(&s("s")));
        assert_eq!(get(&m, "service_name"), Some(&s("svc")));
        assert_eq!(get(&m, "host_name"), Some(&s("box-1")));
        assert_eq!(get(&m, "X-OVH-TOKEN"), Some(&s("secret")));
        let mut keys: Vec<_> = m.fields.iter().map(|f| f.key.as_ref()).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
    }

    #[test]
    fn extras_cannot_be_overridden() {
        let mut rec = record();
        rec.add_attribute("X-OVH-TOKEN", "forged");
        rec.add_attribute("X.OVH.TOKEN", "forged too");
        let mapper = Mapper::new(&MappingOptions {
            extras: vec![("X-OVH-TOKEN".into(), Value::from("real"))],
            ..MappingOptions::default()
        });
        let scope = InstrumentationScope::builder("").build();
        let m = mapper.map(&rec, &scope);
        assert_eq!(get(&m, "X-OVH-TOKEN"), Some(&s("real")));
        assert_eq!(get(&m, "X_OVH_TOKEN"), Some(&s("forged too")));
        assert_eq!(
            m.fields.iter().filter(|f| f.key == "X-OVH-TOKEN").count(),
            1
        );
    }

    #[test]
    fn reserved_names_are_within_the_quick_length_check() {
        assert!(RESERVED.iter().all(|r| (2..=13).contains(&r.len())));
    }

    #[test]
    fn type_suffixes_name_typed_values() {
        let mut rec = record();
        rec.add_attribute("retries", 3_i64);
        rec.add_attribute("ratio", 0.5_f64);
        rec.add_attribute("cached", true);
        rec.add_attribute("user", "alice");
        rec.add_attribute("nan", f64::NAN);
        rec.add_attribute("bytes_long", 7_i64);
        rec.add_attribute("count_int", 8_i64);
        rec.add_attribute("expires_date", "2026-01-01T00:00:00Z");
        rec.add_attribute("level", 1_i64);
        rec.add_attribute("id", 2_i64);
        rec.add_attribute(
            "http",
            AnyValue::Map(Box::new(
                [(Key::from("status"), AnyValue::Int(200))]
                    .into_iter()
                    .collect(),
            )),
        );
        let mapper = Mapper::new(&MappingOptions {
            extras: vec![("X-OVH-TOKEN".into(), Value::from("t"))],
            type_suffixes: Some(TypeSuffixes::default()),
            ..MappingOptions::default()
        });
        let mut mapper = mapper;
        mapper.set_resource(
            &Resource::builder_empty()
                .with_attribute(opentelemetry::KeyValue::new("instance.number", 4_i64))
                .build(),
        );
        let scope = InstrumentationScope::builder("").build();
        let m = mapper.map(&rec, &scope);
        let keys: Vec<String> = m.fields.iter().map(|f| f.name().into_owned()).collect();
        assert_eq!(get(&m, "retries_long"), Some(&FieldValue::Int(3)));
        assert_eq!(get(&m, "ratio_double"), Some(&FieldValue::Float(0.5)));
        assert_eq!(get(&m, "cached_bool"), Some(&s("true")));
        assert_eq!(get(&m, "user"), Some(&s("alice")));
        assert_eq!(get(&m, "nan"), Some(&s("NaN")), "text stays untyped");
        assert_eq!(get(&m, "bytes_long"), Some(&FieldValue::Int(7)));
        assert_eq!(get(&m, "count_int"), Some(&FieldValue::Int(8)));
        assert_eq!(get(&m, "expires_date"), Some(&s("2026-01-01T00:00:00Z")));
        assert_eq!(get(&m, "level_long"), Some(&FieldValue::Int(1)), "{keys:?}");
        assert_eq!(get(&m, "id_long"), Some(&FieldValue::Int(2)), "{keys:?}");
        assert_eq!(get(&m, "http_status_long"), Some(&FieldValue::Int(200)));
        assert_eq!(get(&m, "instance_number_long"), Some(&FieldValue::Int(4)));
        assert_eq!(get(&m, "X-OVH-TOKEN"), Some(&s("t")));
        assert_eq!(keys.len(), 13, "{keys:?}");

        // Configurable spellings; off by default.
        let custom = Mapper::new(&MappingOptions {
            type_suffixes: Some(TypeSuffixes {
                long: "_int".into(),
                double: "_num".into(),
                boolean: "_flag".into(),
                date: "_when".into(),
            }),
            ..MappingOptions::default()
        });
        let m = custom.map(&rec, &scope);
        assert_eq!(get(&m, "retries_int"), Some(&FieldValue::Int(3)));
        assert_eq!(get(&m, "ratio_num"), Some(&FieldValue::Float(0.5)));
        assert_eq!(get(&m, "cached_flag"), Some(&s("true")));
        let plain = Mapper::new(&MappingOptions::default());
        let m = plain.map(&rec, &scope);
        assert_eq!(get(&m, "retries"), Some(&FieldValue::Int(3)));
        assert_eq!(get(&m, "level_"), Some(&FieldValue::Int(1)));
    }

    #[test]
    fn short_message_is_never_blank() {
        let scope = InstrumentationScope::builder("").build();
        let mapper = Mapper::new(&MappingOptions::default());

        let rec = record();
        assert_eq!(mapper.map(&rec, &scope).short_message, NO_MESSAGE);

        let mut rec = record();
        rec.set_body(AnyValue::from("   "));
        rec.set_target("app");
        assert_eq!(mapper.map(&rec, &scope).short_message, "app");

        rec.set_event_name("event src/main.rs:3");
        assert_eq!(mapper.map(&rec, &scope).short_message, "app");
        rec.set_event_name("user.login");
        assert_eq!(mapper.map(&rec, &scope).short_message, "user.login");
    }

    #[test]
    fn multi_line_bodies_and_stack_traces_fill_full_message() {
        let scope = InstrumentationScope::builder("").build();
        let mapper = Mapper::new(&MappingOptions::default());
        let mut rec = record();
        rec.set_body(AnyValue::from("\nfirst line\nsecond line"));
        let m = mapper.map(&rec, &scope);
        assert_eq!(m.short_message, "first line");
        assert_eq!(m.full_message.as_deref(), Some("\nfirst line\nsecond line"));

        let mut rec = record();
        rec.set_body(AnyValue::from("boom"));
        rec.add_attribute("exception.stacktrace", "at a\nat b");
        rec.add_attribute("exception.type", "io::Error");
        let m = mapper.map(&rec, &scope);
        assert_eq!(m.short_message, "boom");
        assert_eq!(m.full_message.as_deref(), Some("at a\nat b"));
        assert!(get(&m, "exception_stacktrace").is_none());
        assert_eq!(get(&m, "exception_type"), Some(&s("io::Error")));
    }

    #[test]
    fn long_values_are_truncated_and_marked() {
        let scope = InstrumentationScope::builder("").build();
        let mapper = Mapper::new(&MappingOptions {
            max_field_bytes: 100,
            ..MappingOptions::default()
        });
        let mut rec = record();
        rec.add_attribute("big", "é".repeat(500));
        let m = mapper.map(&rec, &scope);
        let Some(FieldValue::Str(v)) = get(&m, "big") else {
            panic!("missing")
        };
        assert!(v.len() <= 100, "{}", v.len());
        assert!(v.ends_with(TRUNCATED_MARKER));
    }

    #[test]
    fn timestamp_falls_back_to_observed() {
        let scope = InstrumentationScope::builder("").build();
        let mapper = Mapper::new(&MappingOptions::default());
        let mut rec = record();
        let t = UNIX_EPOCH + Duration::from_secs(42);
        rec.set_observed_timestamp(t);
        assert_eq!(mapper.map(&rec, &scope).time, EpochMicros::of(t).unwrap());
        // Times GELF or RFC 3339 cannot carry fall back too.
        for bad in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_nanos(999),
            UNIX_EPOCH - Duration::from_secs(1),
            UNIX_EPOCH + Duration::from_secs(253_402_300_800),
        ] {
            rec.set_timestamp(bad);
            assert_eq!(
                mapper.map(&rec, &scope).time,
                EpochMicros::of(t).unwrap(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn blank_values_are_quoted_within_the_cap() {
        let scope = InstrumentationScope::builder("").build();
        let mapper = Mapper::new(&MappingOptions {
            max_field_bytes: 100,
            ..MappingOptions::default()
        });
        let mut rec = record();
        rec.add_attribute("blank", " ".repeat(1000));
        let m = mapper.map(&rec, &scope);
        let Some(FieldValue::Str(v)) = get(&m, "blank") else {
            panic!("missing")
        };
        assert!(v.len() <= 100 && v.starts_with("\" ") && !v.trim().is_empty());
    }

    #[test]
    fn host_precedence() {
        let with_builder = Mapper::new(&MappingOptions {
            host: Some("from-builder".into()),
            ..MappingOptions::default()
        });
        let mut m = with_builder;
        m.set_resource(
            &Resource::builder_empty()
                .with_attribute(KeyValue::new("host.name", "from-resource"))
                .build(),
        );
        assert_eq!(m.host(), "from-builder");
        let plain = Mapper::new(&MappingOptions::default());
        assert!(!plain.host().trim().is_empty());
    }
}
