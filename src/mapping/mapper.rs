//! The mapper: one record, its scope and the resource become a
//! [`MappedRecord`], every naming and precedence rule applied.

use std::borrow::Cow;
use std::cell::Cell;

use super::keycache::KeyCache;
use super::keys::{
    forms_reserved, is_typed, names, normalize_key, path_segment, protect_reserved, FixedNames,
    Kind, TypeSuffixes, RESERVED,
};
use super::record::{
    dedup_last_wins, Field, FieldEncoder, FieldSink, FieldValue, HostEncoder, MappedRecord,
    NameEncoder, StaticWire, Statics,
};
use super::values::{
    any_json_text, base64_text, body_head, bool_text, is_blank, is_blank_char, names_level,
    per_static_text, str_head, syslog_level, truncate_text, value_json_text, EpochMicros,
    StaticVerdict,
};
use super::{MappingOptions, MAX_FLATTEN_DEPTH, MAX_HOST_BYTES, NO_MESSAGE, TRUNCATED_MARKER};
use crate::json::{needs_escape, non_finite_text};
use opentelemetry::logs::AnyValue;
use opentelemetry::{InstrumentationScope, Key, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// What [`Mapper::map_head`] learnt of a record that
/// [`Mapper::map_fields`] needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Own<'a> {
    target: Option<&'a str>,
    event_name: Option<&'a str>,
    level: u8,
    /// Some attribute is a stack trace (see [`Mapper::stacktrace`]), which
    /// is left out of the fields.
    stacktrace: bool,
}

use opentelemetry_sdk::logs::SdkLogRecord;
use opentelemetry_sdk::Resource;

impl<'a> Own<'a> {
    /// Whether some attribute is a stack trace, left out of the fields.
    pub(crate) fn has_stacktrace(&self) -> bool {
        self.stacktrace
    }
}

/// Whether a resource attribute is one the SDK sets by itself, the same in
/// every process of a build: `telemetry.sdk.*`, and the name it falls back
/// to when the application names no service: `unknown_service`, or
/// `unknown_service:<executable>` (not a name that only starts alike, such
/// as `unknown_service_gateway`).
fn is_sdk_default(key: &str, value: &Value) -> bool {
    names::SDK_RESOURCE.contains(&key)
        || (key == names::SERVICE_NAME && {
            let name = value.as_str();
            name.strip_prefix(names::UNKNOWN_SERVICE)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
        })
}

/// Maps records; holds what is the same for every record (host, extras, resource).
#[derive(Debug)]
pub(crate) struct Mapper {
    replace_dots: bool,
    /// Send what repeats another field or is the same in every process.
    redundant_fields: bool,
    max_field_bytes: usize,
    /// The frame limit: the body and the stack trace are cut to it first.
    max_text_bytes: usize,
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
    /// Distinguishes this mapper, as last set up, from any other: two
    /// mappers of the same id map any record alike.
    id: u64,
}

/// A mapper [`id`](Mapper::id) never given before.
fn new_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Mapper {
    /// A mapper with no resource yet.
    pub(crate) fn new(options: &MappingOptions) -> Mapper {
        let suffixes = options
            .type_suffixes
            .as_ref()
            .map(|s| s.normalized(options.replace_dots));
        let mut mapper = Mapper {
            replace_dots: options.replace_dots,
            redundant_fields: options.redundant_fields,
            // More could never fit a frame.
            max_field_bytes: options.max_field_bytes.min(options.max_frame_bytes),
            max_text_bytes: options.max_frame_bytes,
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
            id: new_id(),
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
                let (key, suffix, _) = mapper.typed_key(names::TRACE_FLAGS, Some(Kind::Long));
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
    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        let redundant = self.redundant_fields;
        // In the order of their keys, not the resource's (a hash map's, new
        // in each process): of two the mapping makes alike (`a.b`, `a_b`),
        // the same one wins in every process.
        let mut attributes: Vec<(&str, &Value)> = (resource.iter())
            .map(|(k, v)| (k.as_str(), v))
            .filter(|(k, v)| redundant || !is_sdk_default(k, v))
            .collect();
        attributes.sort_unstable_by_key(|(k, _)| *k);
        let mut fields = self.static_fields(attributes.into_iter());
        // An extra of the same name always wins: leave such fields out now.
        fields.retain(|field| !self.extras.iter().any(|extra| extra.same_name(field)));
        self.resource = fields;
        let host_name = resource.get(&Key::from_static_str(names::HOST_NAME));
        let service_name = resource.get(&Key::from_static_str(names::SERVICE_NAME));
        self.host = self.resolve_host(host_name.as_ref(), service_name.as_ref());
        if let Some(wire) = &self.wire {
            self.pre_encode(wire.encode, wire.name, wire.host_encoder);
        }
    }

    /// Encodes the static fields (resource, extras) once with `encode`, so
    /// that [`map`](Self::map) hands them over as bytes to copy: a record
    /// whose own fields do not share their names then costs nothing for them.
    /// Kept across [`set_resource`](Self::set_resource).
    /// The names of the record's own fields and of the attributes seen from
    /// then on are encoded with `name` once too, and the host's part of the
    /// head with `host`. The mapper is then one format's, with a new
    /// [`id`](Self::id).
    pub(crate) fn pre_encode(
        &mut self,
        encode: FieldEncoder,
        name: NameEncoder,
        host: HostEncoder,
    ) {
        self.id = new_id();
        let fixed = &self.fixed;
        let wire_name = |key: &str| {
            let mut wire = Vec::new();
            name(key, "", &mut wire);
            wire
        };
        let mut host_wire = Vec::new();
        let mut bare = Vec::new();
        host("", &mut bare);
        let written = |text: &str, wire: &mut Vec<u8>| {
            wire.clear();
            host(text, wire);
            wire.len().saturating_sub(bare.len())
        };
        // At most `MAX_HOST_BYTES` as written, escapes included: cut a
        // character at a time (once per resource, at most 255 of them),
        // then marked as any cut text (and so never blank).
        if written(&self.host, &mut host_wire) > MAX_HOST_BYTES {
            if let Some(head) = self.host.strip_suffix(TRUNCATED_MARKER) {
                self.host.truncate(head.len());
            }
            let room = MAX_HOST_BYTES - TRUNCATED_MARKER.len();
            while written(&self.host, &mut host_wire) > room && self.host.pop().is_some() {}
            self.host.push_str(TRUNCATED_MARKER);
            written(&self.host, &mut host_wire);
        }
        let mut wire = StaticWire {
            encode,
            name,
            host_encoder: host,
            host: host_wire,
            fixed: [
                wire_name(&fixed.scope_name),
                wire_name(&fixed.scope_version),
                wire_name(&fixed.target),
                wire_name(&fixed.event_name),
                wire_name(&fixed.severity_text),
            ],
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

    /// The static extras' bytes as encoded on every record, once
    /// [`pre_encode`](Self::pre_encode)d (else 0).
    pub(crate) fn extras_bytes(&self) -> usize {
        self.wire.as_ref().map_or(0, |wire| wire.tail.len())
    }

    /// How many bytes of text a static `value` is sent as before any cut:
    /// a blank text quoted, a list as JSON text (numbers and booleans are
    /// short). For checking that a static field, never to be cut, fits the
    /// field limit ([`max_field_bytes`](Self::max_field_bytes)).
    pub(crate) fn static_text_len(value: &Value) -> usize {
        match value {
            Value::Bool(_) | Value::I64(_) | Value::F64(_) => 0,
            Value::String(s) if is_blank(s.as_str()) => s.as_str().len() + 2,
            Value::String(s) => s.as_str().len(),
            other => value_json_text(other, usize::MAX).len(),
        }
    }

    /// The most bytes a field's text is sent with: longer ones are cut.
    pub(crate) fn max_field_bytes(&self) -> usize {
        self.max_field_bytes
    }

    /// Maps fields that are the same for every record (extras, resource), once.
    pub(super) fn static_fields<'v>(
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

    /// Tells this mapper, as last set up, from any other: two records
    /// mapped by mappers of the same id with the same scope and target
    /// start with the same fields (see [`map_lead`](Self::map_lead)).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The `host` every record carries.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(super) fn resolve_host(
        &self,
        host_name: Option<&Value>,
        service_name: Option<&Value>,
    ) -> String {
        let non_blank = |s: String| (!is_blank(&s)).then_some(s);
        self.builder_host
            .clone()
            .or_else(|| host_name.and_then(|v| non_blank(v.as_str().into_owned())))
            .or_else(|| non_blank(gethostname::gethostname().to_string_lossy().into_owned()))
            .or_else(|| service_name.and_then(|v| non_blank(v.as_str().into_owned())))
            .map(|h| truncate_text(Cow::Owned(h), MAX_HOST_BYTES).into_owned())
            .unwrap_or_else(|| "unknown-host".to_string())
    }

    /// Maps one record.
    pub(crate) fn map<'a>(
        &'a self,
        record: &'a SdkLogRecord,
        scope: &'a InstrumentationScope,
    ) -> MappedRecord<'a> {
        let (mapped, own) = self.map_head(record);
        self.map_rest(mapped, &own, record, scope)
    }

    /// Completes what [`map_head`](Self::map_head) mapped: the fields.
    pub(crate) fn map_rest<'a>(
        &'a self,
        mut mapped: MappedRecord<'a>,
        own: &Own<'a>,
        record: &'a SdkLogRecord,
        scope: &'a InstrumentationScope,
    ) -> MappedRecord<'a> {
        // Lowest precedence first; `dedup_last_wins` keeps the last of each key.
        // Room for the record's attributes and the fixed fields at once.
        // (The SDK's iterator filters: its upper bound is the count.)
        let attributes = record.attributes_iter().size_hint().1.unwrap_or(0);
        let room = attributes.min(1024) + 8;
        let mut fields: Vec<Field<'a>> = match &self.wire {
            Some(_) => Vec::with_capacity(room.max(16)),
            None => {
                let mut fields =
                    Vec::with_capacity(self.resource.len() + self.extras.len() + room.max(16));
                fields.extend(self.resource.iter().map(Field::borrowed));
                fields
            }
        };
        self.map_fields(record, scope, own, &mut fields);
        let (fields, protected_tail, statics) = self.with_statics(fields);
        mapped.fields = fields;
        mapped.protected_tail = protected_tail;
        mapped.statics = statics;
        mapped
    }

    /// Maps everything of a record but its additional fields: `fields` is
    /// left empty, `statics` holds the pre-encoded static fields (when there
    /// are) as if no field of the record shared a name with them. Also
    /// returns what [`map_fields`](Self::map_fields) needs.
    #[inline(always)]
    pub(crate) fn map_head<'a>(&'a self, record: &'a SdkLogRecord) -> (MappedRecord<'a>, Own<'a>) {
        let target = record.target().map(|t| t.as_ref());
        thread_local! {
            static EVENT: StaticVerdict = const { Cell::new(((0, 0, 0), false)) };
        }
        let event_name = record
            .event_name()
            .filter(|name| per_static_text(&EVENT, name, 0, is_meaningful_event));
        let level = syslog_level(record.severity_number(), record.severity_text());
        // The last stack trace attribute wins, as a field would.
        let stacktrace = record
            .attributes_iter()
            .filter_map(|(key, value)| self.stacktrace(key, value))
            .last();
        let has_stacktrace = stacktrace.is_some();
        let body = record
            .body()
            .map(|body| body_head(body_text(body, self.max_text_bytes), self.max_text_bytes));
        // The stack trace follows the body in the full message: no more of
        // it than fits a frame beside the body.
        let stacktrace = stacktrace
            .map(|trace| match &body {
                Some(body) if !is_blank(body) => {
                    str_head(trace, self.max_text_bytes.saturating_sub(body.len() + 1))
                }
                _ => trace,
            })
            .filter(|trace| !trace.is_empty());
        let (short_message, full_message, short_plain) =
            messages(body, stacktrace, event_name, target);
        let statics = self.wire.as_ref().map(|wire| Statics {
            head: &wire.head,
            tail: &wire.tail,
            resource: &self.resource,
            extras: &self.extras,
        });
        let mapped = MappedRecord {
            host: &self.host,
            host_wire: self.wire.as_ref().map_or(&[][..], |wire| &wire.host[..]),
            short_message,
            short_plain,
            full_message,
            time: record
                .timestamp()
                .and_then(EpochMicros::of)
                .or_else(|| record.observed_timestamp().and_then(EpochMicros::of))
                .unwrap_or_else(EpochMicros::now),
            level,
            fields: Vec::new(),
            protected_tail: 0,
            statics,
        };
        let own = Own {
            target,
            event_name,
            level,
            stacktrace: has_stacktrace,
        };
        (mapped, own)
    }

    /// The text of a stack trace attribute, which goes to the full message
    /// rather than to a field: no more than could fit a frame (see
    /// [`map_head`](Self::map_head)), from its first character that is not
    /// blank when what could fit is blank, and `None` when all of it is.
    #[inline]
    fn stacktrace<'a>(&self, key: &Key, value: &'a AnyValue) -> Option<&'a str> {
        if key.as_str() != names::EXCEPTION_STACKTRACE {
            return None;
        }
        let AnyValue::String(s) = value else {
            return None;
        };
        let head = str_head(s.as_str(), self.max_text_bytes);
        if !is_blank(head) {
            return Some(head);
        }
        let rest = s.as_str().trim_start_matches(is_blank_char);
        (!rest.is_empty()).then(|| str_head(rest, self.max_text_bytes))
    }

    /// Hands the record's own fields (scope attributes, the record's
    /// metadata, its attributes; not the static fields) to `sink`, lowest
    /// precedence first, possibly several under one name.
    #[inline]
    pub(crate) fn map_fields<'a, S: FieldSink<'a>>(
        &'a self,
        record: &'a SdkLogRecord,
        scope: &'a InstrumentationScope,
        own: &Own<'a>,
        sink: &mut S,
    ) {
        self.map_lead(scope, own.target, sink);
        self.map_rest_of_fields(record, own, sink);
    }

    /// The first of [`map_fields`](Self::map_fields)' fields, which depend
    /// on this mapper, the scope and the target alone: the scope's
    /// attributes, its name and version, the target.
    #[inline]
    pub(crate) fn map_lead<'a, S: FieldSink<'a>>(
        &'a self,
        scope: &'a InstrumentationScope,
        target: Option<&'a str>,
        sink: &mut S,
    ) {
        for kv in scope.attributes() {
            self.push_value(sink, kv.key.as_str(), &kv.value);
        }
        let scope_is_target = target == Some(scope.name());
        if !scope.name().is_empty() && (self.redundant_fields || !scope_is_target) {
            self.push_text(
                sink,
                &self.fixed.scope_name,
                self.fixed_wire(0),
                scope.name(),
            );
        }
        if let Some(version) = scope.version() {
            self.push_text(sink, &self.fixed.scope_version, self.fixed_wire(1), version);
        }
        if let Some(target) = target {
            self.push_text(sink, &self.fixed.target, self.fixed_wire(2), target);
        }
    }

    /// The rest of [`map_fields`](Self::map_fields)' fields, after
    /// [`map_lead`](Self::map_lead)'s.
    #[inline]
    fn map_rest_of_fields<'a, S: FieldSink<'a>>(
        &'a self,
        record: &'a SdkLogRecord,
        own: &Own<'a>,
        sink: &mut S,
    ) {
        self.map_fixed_fields(record, own, sink);
        self.map_attributes(record, own, sink);
    }

    /// The record's fields of fixed names (event name, severity text, trace
    /// context), which [`map_attributes`](Self::map_attributes)' follow;
    /// returns which were pushed, one bit each: records alike in these
    /// bits and in their attributes' keys and [`Kind`]s, none of which is a
    /// stack trace (see [`Own::has_stacktrace`]), have fields of the same
    /// names. Always in line (the compiler kept it a call): as a call,
    /// saving and restoring registers cost about as much as its work on the
    /// common record.
    #[inline(always)]
    pub(crate) fn map_fixed_fields<'a, S: FieldSink<'a>>(
        &'a self,
        record: &'a SdkLogRecord,
        own: &Own<'a>,
        sink: &mut S,
    ) -> u8 {
        let mut pushed = 0;
        if let Some(name) = own.event_name {
            self.push_text(sink, &self.fixed.event_name, self.fixed_wire(3), name);
            pushed |= 1;
        }
        thread_local! {
            static SEVERITY: StaticVerdict = const { Cell::new(((0, 0, 0), false)) };
        }
        if let Some(text) = record.severity_text() {
            let level = own.level;
            if self.redundant_fields
                || !per_static_text(&SEVERITY, text, level, |text| names_level(level, text))
            {
                self.push_text(sink, &self.fixed.severity_text, self.fixed_wire(4), text);
                pushed |= 2;
            }
        }
        if let Some(tc) = record.trace_context() {
            self.push_text(sink, &self.fixed.trace_id, &[], tc.trace_id.to_string());
            self.push_text(sink, &self.fixed.span_id, &[], tc.span_id.to_string());
            pushed |= 4;
            if let Some(flags) = tc.trace_flags {
                sink.push(Field {
                    key: Cow::Borrowed(&self.fixed.trace_flags),
                    suffix: "",
                    value: FieldValue::Int(i64::from(flags.to_u8())),
                });
                pushed |= 8;
            }
        }
        pushed
    }

    /// The record's attributes as fields, after
    /// [`map_fixed_fields`](Self::map_fixed_fields)'.
    #[inline]
    pub(crate) fn map_attributes<'a, S: FieldSink<'a>>(
        &'a self,
        record: &'a SdkLogRecord,
        own: &Own<'a>,
        sink: &mut S,
    ) {
        for (key, value) in record.attributes_iter() {
            if sink.is_done() {
                return;
            }
            // Stack traces went to the full message.
            if !own.stacktrace || self.stacktrace(key, value).is_none() {
                self.push_any(sink, key.as_str(), value);
            }
        }
    }

    /// The `i`-th fixed name as encoded once by [`pre_encode`](Self::pre_encode)
    /// (in the order of `StaticWire::fixed`), else empty.
    #[inline]
    fn fixed_wire(&self, i: usize) -> &[u8] {
        self.wire
            .as_ref()
            .map_or(&[][..], |wire| &wire.fixed[i][..])
    }

    /// The union of the static fields' [`Field::name_bit`]s, when they are
    /// pre-encoded.
    #[inline]
    pub(crate) fn static_names(&self) -> u64 {
        self.wire.as_ref().map_or(0, |wire| wire.names)
    }

    /// Whether a field named as `field` is among the static fields
    /// (resource, extras); `bit` is its [`Field::name_bit`].
    #[inline]
    pub(crate) fn is_static_name(&self, field: &Field<'_>, bit: u64) -> bool {
        self.wire.as_ref().is_some_and(|wire| wire.names & bit != 0)
            && self
                .resource
                .iter()
                .chain(&self.extras)
                .any(|s| s.same_name(field))
    }

    /// Adds the static fields to the record's own: as pre-encoded bytes when
    /// no name is shared (the common case), else as fields, deduplicated.
    pub(super) fn with_statics<'a>(
        &'a self,
        mut fields: Vec<Field<'a>>,
    ) -> (Vec<Field<'a>>, usize, Option<Statics<'a>>) {
        if let Some(wire) = &self.wire {
            fields = dedup_last_wins(fields);
            let shared = fields
                .iter()
                .any(|field| self.is_static_name(field, field.name_bit()));
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

    pub(super) fn key<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        normalize_key(raw, self.replace_dots)
    }

    /// The name of a field whose value had type `kind`: with type suffixes,
    /// the normalized key and the suffix to write after it, unless the key
    /// already ends in a known one. Then the name as encoded for the wire
    /// when known (see [`pre_encode`](Self::pre_encode)), else empty.
    // Always inlined, and the common case (a key seen before, a suffix that
    // completes no reserved name) kept apart from the rest: on this path,
    // every attribute of every record, a name handed back through memory
    // from a call costs more than the lookup itself.
    #[inline(always)]
    pub(crate) fn typed_key<'a>(
        &'a self,
        raw: &'a str,
        kind: Option<Kind>,
    ) -> (Cow<'a, str>, &'a str, &'a [u8]) {
        if let Some((key, typed, wire)) = self.keys.find(raw) {
            match (&self.suffixes, kind) {
                (Some(suffixes), Some(kind)) if !typed => {
                    let suffix = suffixes.suffix(kind);
                    if !key.ends_with('_') && !forms_reserved(key, suffix) {
                        return (Cow::Borrowed(key), suffix, &[]);
                    }
                }
                _ => return (Cow::Borrowed(key), "", wire),
            }
        }
        let (key, suffix) = self.typed_key_in_full(raw, kind);
        (key, suffix, &[])
    }

    /// [`typed_key`](Self::typed_key), every case: normalizes (and caches)
    /// a key not seen before, and builds names that need care.
    #[inline(never)]
    pub(super) fn typed_key_in_full<'a>(
        &'a self,
        raw: &'a str,
        kind: Option<Kind>,
    ) -> (Cow<'a, str>, &'a str) {
        let name = self.wire.as_ref().map(|wire| wire.name);
        let (key, typed) = self.keys.get(
            raw,
            |raw| {
                let key = self.key(raw);
                let typed = self.ends_typed(&key);
                (key, typed)
            },
            name,
        );
        self.suffixed(key, typed, kind)
    }

    /// Whether, with type suffixes, the normalized `key` ends in one already
    /// known (its value's type is then left to the name).
    fn ends_typed(&self, key: &str) -> bool {
        self.suffixes.is_some() && is_typed(key, &self.unknown_suffixes)
    }

    /// The name of a field of normalized name `key` (ending in a known type
    /// suffix: `typed`) whose value had type `kind`: the key and the suffix
    /// to write after it, or the name whole.
    fn suffixed<'a>(
        &'a self,
        key: Cow<'a, str>,
        typed: bool,
        kind: Option<Kind>,
    ) -> (Cow<'a, str>, &'a str) {
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
    pub(super) fn push_text<'a, S: FieldSink<'a>>(
        &self,
        sink: &mut S,
        key: &'a str,
        wire: &'a [u8],
        value: impl Into<Cow<'a, str>>,
    ) {
        sink.push_named(
            wire,
            Field {
                key: Cow::Borrowed(key),
                suffix: "",
                value: self.text(value.into()),
            },
        );
    }

    /// A string value made safe: blank strings quoted, long ones cut.
    // Always inlined: the common case (short, not blank) then moves the text
    // once, straight into the field.
    #[inline(always)]
    pub(super) fn text<'a>(&self, value: Cow<'a, str>) -> FieldValue<'a> {
        if value.len() <= self.max_field_bytes && !is_blank(&value) {
            return FieldValue::Str(value);
        }
        self.unusual_text(value)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn unusual_text<'a>(&self, value: Cow<'a, str>) -> FieldValue<'a> {
        if is_blank(&value) {
            // Quoted, so that Graylog keeps it; of a long one, only what can
            // be kept is copied (a few bytes more, so that it is still cut).
            let head = str_head(&value, self.max_field_bytes.saturating_add(4));
            let quoted = Cow::Owned(format!("\"{head}\""));
            return FieldValue::Str(truncate_text(quoted, self.max_field_bytes));
        }
        FieldValue::Str(truncate_text(value, self.max_field_bytes))
    }

    /// A double: finite ones stay numbers (typed), the others become text.
    #[inline]
    pub(super) fn float(&self, value: f64) -> (FieldValue<'static>, Option<Kind>) {
        if value.is_finite() {
            return (FieldValue::Float(value), Some(Kind::Double));
        }
        (FieldValue::Str(Cow::Borrowed(non_finite_text(value))), None)
    }

    /// Pushes a resource, scope or static value (`opentelemetry::Value`).
    pub(super) fn push_value<'a, S: FieldSink<'a>>(
        &'a self,
        sink: &mut S,
        key: &'a str,
        value: &'a Value,
    ) {
        let (value, kind) = match value {
            Value::Bool(b) => (FieldValue::Bool(*b), Some(Kind::Boolean)),
            Value::I64(i) => (FieldValue::Int(*i), Some(Kind::Long)),
            Value::F64(f) => self.float(*f),
            Value::String(s) => (self.text(Cow::Borrowed(s.as_str())), None),
            other => (
                self.text(Cow::Owned(value_json_text(other, self.max_field_bytes))),
                None,
            ),
        };
        let (key, suffix, wire) = self.typed_key(key, kind);
        sink.push_named(wire, Field { key, suffix, value });
    }

    /// Pushes a record attribute (`AnyValue`), flattening maps.
    #[inline]
    pub(super) fn push_any<'a, S: FieldSink<'a>>(
        &'a self,
        sink: &mut S,
        key: &'a str,
        value: &'a AnyValue,
    ) {
        if is_flattened(value) {
            let mut path = path_segment(key, self.replace_dots).into_owned();
            self.flatten(sink.spill(), &mut path, value, 0);
            sink.flush_spill();
            return;
        }
        let (value, kind) = self.any_value(value);
        let (key, suffix, wire) = self.typed_key(key, kind);
        sink.push_named(wire, Field { key, suffix, value });
    }

    /// Pushes `value`, found at `depth` in an attribute's maps by the keys
    /// `path` joins (the attribute's first), into `fields`: a map's entries
    /// in order of their keys, flattened, and anything else as one field.
    /// The name is the path's, normalized and typed as a whole, as an
    /// attribute of that name would be: a reserved name is marked once, at
    /// the end (`{req: {id: 1}}` is `req_id`, not `req_id_`).
    fn flatten<'a>(
        &'a self,
        fields: &mut Vec<Field<'a>>,
        path: &mut String,
        value: &'a AnyValue,
        depth: usize,
    ) {
        match value {
            AnyValue::Map(map) if !map.is_empty() && depth < MAX_FLATTEN_DEPTH => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
                let len = path.len();
                for (sub, v) in entries {
                    // Joined by dots, then normalized whole: named as the
                    // dotted attribute would be, its CRC mark included.
                    path.push('.');
                    path.push_str(&path_segment(sub.as_str(), self.replace_dots));
                    self.flatten(fields, path, v, depth + 1);
                    path.truncate(len);
                }
            }
            other => {
                let (value, kind) = self.any_value(other);
                let key = Cow::Owned(self.key(path).into_owned());
                let typed = self.ends_typed(&key);
                let (key, suffix) = self.suffixed(key, typed, kind);
                fields.push(Field { key, suffix, value });
            }
        }
    }

    /// An attribute's value as a field's, and the [`Kind`] that may type
    /// its name (for a value that is not [`is_flattened`]).
    #[inline(always)]
    pub(crate) fn any_value<'a>(&self, value: &'a AnyValue) -> (FieldValue<'a>, Option<Kind>) {
        match value {
            AnyValue::Int(i) => (FieldValue::Int(*i), Some(Kind::Long)),
            AnyValue::Double(f) => self.float(*f),
            AnyValue::String(s) => (self.text(Cow::Borrowed(s.as_str())), None),
            AnyValue::Boolean(b) => (FieldValue::Bool(*b), Some(Kind::Boolean)),
            AnyValue::Bytes(bytes) => {
                let text = base64_text(bytes, self.max_field_bytes);
                (self.text(Cow::Owned(text)), None)
            }
            other => {
                let text = any_json_text(other, self.max_field_bytes);
                (self.text(Cow::Owned(text)), None)
            }
        }
    }
}

/// Whether an attribute's value is a map with entries, flattened into a
/// field per entry rather than one field.
#[inline]
pub(crate) fn is_flattened(value: &AnyValue) -> bool {
    matches!(value, AnyValue::Map(map) if !map.is_empty())
}

/// tracing's default event name is `event <file>:<line>`: not worth a field.
pub(super) fn is_meaningful_event(name: &str) -> bool {
    let default_name = name
        .strip_prefix("event ")
        .and_then(|rest| rest.rsplit_once(':'))
        .is_some_and(|(file, line)| {
            !file.is_empty() && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
        });
    !is_blank(name) && !default_name
}

/// The body as text: strings as they are, scalars printed, bytes in base64,
/// lists and maps as JSON, these three no longer than about `max` bytes
/// (the rest could not fit a frame of `max` bytes).
///
/// In line for a string, the body of nearly every record.
#[inline]
pub(super) fn body_text(body: &AnyValue, max: usize) -> Cow<'_, str> {
    match body {
        AnyValue::String(s) => Cow::Borrowed(s.as_str()),
        other => other_body_text(other, max),
    }
}

/// [`body_text`] for any body (called for those other than a string).
#[inline(never)]
fn other_body_text(body: &AnyValue, max: usize) -> Cow<'_, str> {
    match body {
        AnyValue::String(s) => Cow::Borrowed(s.as_str()),
        AnyValue::Int(i) => Cow::Owned(i.to_string()),
        AnyValue::Double(f) if f.is_finite() => Cow::Owned(f.to_string()),
        AnyValue::Double(f) => Cow::Borrowed(non_finite_text(*f)),
        AnyValue::Boolean(b) => Cow::Borrowed(bool_text(*b)),
        AnyValue::Bytes(bytes) => Cow::Owned(base64_text(bytes, max)),
        other => Cow::Owned(any_json_text(other, max)),
    }
}

/// Chooses `short_message` (never blank) and `full_message`, and tells
/// whether the short message is known to be plain (see
/// [`MappedRecord::short_plain`]). In line for the common record, a body of
/// one line without a stack trace: one scan of the body finds it both
/// plain and of one line (a line feed is a control character), and spares
/// the encoder its own.
#[inline]
pub(super) fn messages<'a>(
    body: Option<Cow<'a, str>>,
    stacktrace: Option<&'a str>,
    event_name: Option<&'a str>,
    target: Option<&'a str>,
) -> (Cow<'a, str>, Option<Cow<'a, str>>, bool) {
    match (body, stacktrace) {
        (Some(body), None) if !is_blank(&body) && !needs_escape(body.as_bytes()) => {
            (body, None, true)
        }
        (body, stacktrace) => {
            let (short, full) = other_messages(body, stacktrace, event_name, target);
            (short, full, false)
        }
    }
}

/// [`messages`] for any record (called for those other than the common
/// one).
#[inline(never)]
fn other_messages<'a>(
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
    let multi_line = crate::swar::contains(body.as_bytes(), b'\n');
    let full = match (multi_line, stacktrace) {
        (false, None) => None,
        (false, Some(trace)) => Some(Cow::Borrowed(trace)),
        (true, None) => Some(body.clone()),
        (true, Some(trace)) => {
            // Sized at once: `format!` would grow it by doubling, copying
            // a body and a stack trace of kilobytes again and again.
            let mut full = String::with_capacity(body.len() + 1 + trace.len());
            full.push_str(&body);
            full.push('\n');
            full.push_str(trace);
            Some(Cow::Owned(full))
        }
    };
    if !multi_line {
        return (body, full);
    }
    pub(super) fn first_line(text: &str) -> &str {
        text.lines().find(|l| !is_blank(l)).unwrap_or(NO_MESSAGE)
    }
    let first = match body {
        // A line of the record's own text: borrowed, like the body.
        Cow::Borrowed(text) => Cow::Borrowed(first_line(text)),
        Cow::Owned(text) => Cow::Owned(first_line(&text).to_string()),
    };
    (first, full)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The common record's messages, decided in line, are those the
    /// general case chooses, for bodies blank, of one line or more, plain
    /// or with bytes to escape, with or without a stack trace, an event
    /// name or a target; a short message said plain is, and the common
    /// record's is said so.
    #[test]
    fn messages_in_line_are_those_of_the_general_case() {
        let bodies = [
            "",
            " ",
            "\t",
            "a",
            "a b",
            "a\nb",
            "\na",
            "a\n",
            "a\r",
            " \n a",
            "a\"b",
            "a\\b",
            "a\tb",
            "a\u{1}",
            "a\u{7f}é",
        ];
        for body in bodies.map(Some).into_iter().chain([None]) {
            for trace in [None, Some("at x"), Some("")] {
                for event in [None, Some("ev")] {
                    for target in [None, Some("t"), Some(" ")] {
                        let body = || body.map(Cow::Borrowed);
                        let case = format!("{:?} {trace:?} {event:?} {target:?}", body());
                        let (short, full, plain) = messages(body(), trace, event, target);
                        assert_eq!(
                            (short.clone(), full),
                            other_messages(body(), trace, event, target),
                            "{case}"
                        );
                        let common = trace.is_none()
                            && body().is_some_and(|b| !is_blank(&b) && !needs_escape(b.as_bytes()));
                        assert_eq!(plain, common, "{case}");
                        assert!(!plain || !needs_escape(short.as_bytes()), "{case}");
                    }
                }
            }
        }
    }
}
