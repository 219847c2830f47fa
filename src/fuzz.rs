//! Fast, in-process fuzzing of the mapping and both encoders (no network).
//!
//! Arbitrary records, scopes, resources and mapping options go through
//! [`Mapper::map`] and [`encode_framed`] with both framings, a small and the
//! default frame limit. Nothing may panic, and every call must append exactly
//! one well-formed frame that fits the limit. The end-to-end properties, with
//! their oracles on what each attribute becomes, live in the integration tests;
//! this module is about volume: 4,096 cases per property by default
//! (`PROPTEST_CASES` overrides it), in seconds even in a debug build.
//!
//! Two regression tests keep the smallest inputs of the bugs this module found
//! (a type suffix completing a reserved name; texts of control characters
//! only, blank to Graylog); the properties' generators still leave those
//! inputs to them.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::Resource;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, RngAlgorithm, TestRunner};

use crate::config::DEFAULT_MAX_FRAME_BYTES;
use crate::encode::frame::encode_framed;
use crate::encode::Framing;
use crate::encode::{Format, Gelf, Ltsv, Writer};
use crate::mapping::{MappedRecord, Mapper, MappingOptions, TypeSuffixes};

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 4096;
/// A small frame limit: most generated records with a long value exceed it.
const SMALL_FRAME: usize = 4096;
const LIMITS: [usize; 2] = [SMALL_FRAME, DEFAULT_MAX_FRAME_BYTES];
const FRAMINGS: [Framing; 2] = [Framing::Nul, Framing::Newline];
/// Bytes already in the output buffer: the encoder must append after them.
const PREFIX: &[u8] = b"{\"earlier\":\"frame\"}\0earlier\tline\n";
/// The GELF members that take no `_` prefix.
const STANDARD_FIELDS: [&str; 6] = [
    "version",
    "host",
    "short_message",
    "full_message",
    "timestamp",
    "level",
];
/// The labels every LTSV record starts with, in this order.
const LTSV_HEAD: [&str; 4] = ["time", "host", "level", "message"];

fn config() -> Config {
    let mut config = Config {
        failure_persistence: None,
        // Much faster than the default ChaCha in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        max_shrink_iters: 4096,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    // `Config::default()` already honours `PROPTEST_CASES`.
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    config
}

// ---------------------------------------------------------------------------
// Generated input
// ---------------------------------------------------------------------------

/// Everything one case feeds the mapper: options, resource, scope and record.
#[derive(Clone)]
struct Input {
    host: Option<String>,
    extras: Vec<(String, Value)>,
    replace_dots: bool,
    max_field_bytes: usize,
    type_suffixes: Option<TypeSuffixes>,
    resource: Vec<(String, Value)>,
    scope_name: String,
    scope_version: Option<String>,
    scope_attributes: Vec<(String, Value)>,
    body: Option<AnyValue>,
    attributes: Vec<(String, AnyValue)>,
    severity: Option<Severity>,
    severity_text: Option<&'static str>,
    timestamp: Option<SystemTime>,
    observed: Option<SystemTime>,
    target: Option<String>,
    event_name: Option<&'static str>,
    trace: Option<([u8; 16], [u8; 8], Option<u8>)>,
}

/// What the mapper borrows from.
struct Built {
    mapper: Mapper,
    resource: Resource,
    scope: InstrumentationScope,
    record: SdkLogRecord,
}

fn key_values(pairs: &[(String, Value)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect()
}

impl Input {
    /// Default options and an empty record.
    fn plain() -> Input {
        let options = MappingOptions::default();
        Input {
            host: None,
            extras: Vec::new(),
            replace_dots: options.replace_dots,
            max_field_bytes: options.max_field_bytes,
            type_suffixes: None,
            resource: Vec::new(),
            scope_name: String::new(),
            scope_version: None,
            scope_attributes: Vec::new(),
            body: None,
            attributes: Vec::new(),
            severity: None,
            severity_text: None,
            timestamp: None,
            observed: None,
            target: None,
            event_name: None,
            trace: None,
        }
    }

    fn build(&self, logger: &SdkLogger) -> Built {
        let mut mapper = Mapper::new(&MappingOptions {
            host: self.host.clone(),
            extras: self.extras.clone(),
            replace_dots: self.replace_dots,
            max_field_bytes: self.max_field_bytes,
            type_suffixes: self.type_suffixes.clone(),
            ..MappingOptions::default()
        });
        let resource = Resource::builder_empty()
            .with_attributes(key_values(&self.resource))
            .build();
        mapper.set_resource(&resource);
        let mut scope = InstrumentationScope::builder(self.scope_name.clone())
            .with_attributes(key_values(&self.scope_attributes));
        if let Some(version) = &self.scope_version {
            scope = scope.with_version(version.clone());
        }
        let scope = scope.build();

        let mut record = logger.create_log_record();
        if let Some(body) = &self.body {
            record.set_body(body.clone());
        }
        for (key, value) in &self.attributes {
            record.add_attribute(Key::from(key.clone()), value.clone());
        }
        if let Some(severity) = self.severity {
            record.set_severity_number(severity);
        }
        if let Some(text) = self.severity_text {
            record.set_severity_text(text);
        }
        if let Some(time) = self.timestamp {
            record.set_timestamp(time);
        }
        if let Some(time) = self.observed {
            record.set_observed_timestamp(time);
        }
        if let Some(target) = &self.target {
            record.set_target(target.clone());
        }
        if let Some(name) = self.event_name {
            record.set_event_name(name);
        }
        if let Some((trace_id, span_id, flags)) = self.trace {
            record.set_trace_context(
                TraceId::from_bytes(trace_id),
                SpanId::from_bytes(span_id),
                flags.map(TraceFlags::new),
            );
        }
        Built {
            mapper,
            resource,
            scope,
            record,
        }
    }
}

/// The SDK takes severity texts and event names as `&'static str`: leak each
/// distinct text once, so shrinking does not leak the same text again and again.
fn intern(text: String) -> &'static str {
    static TEXTS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut texts = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = texts.get(text.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    texts.insert(leaked);
    leaked
}

// Failure reports show long texts by their head and length.

struct Brief<'a>(&'a str);

impl fmt::Debug for Brief<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEAD: usize = 48;
        if self.0.len() <= HEAD * 2 {
            return write!(f, "{:?}", self.0);
        }
        let mut cut = HEAD;
        while !self.0.is_char_boundary(cut) {
            cut -= 1;
        }
        write!(f, "{:?}..({} bytes)", &self.0[..cut], self.0.len())
    }
}

struct BriefAny<'a>(&'a AnyValue);

impl fmt::Debug for BriefAny<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AnyValue::String(s) => write!(f, "String({:?})", Brief(s.as_str())),
            AnyValue::ListAny(list) => f.debug_list().entries(list.iter().map(BriefAny)).finish(),
            AnyValue::Map(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
                f.debug_map()
                    .entries(
                        entries
                            .into_iter()
                            .map(|(k, v)| (Brief(k.as_str()), BriefAny(v))),
                    )
                    .finish()
            }
            other => write!(f, "{other:?}"),
        }
    }
}

struct BriefValue<'a>(&'a Value);

impl fmt::Debug for BriefValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(s) => write!(f, "String({:?})", Brief(s.as_str())),
            Value::Array(Array::String(list)) => f
                .debug_list()
                .entries(list.iter().map(|s| Brief(s.as_str())))
                .finish(),
            other => write!(f, "{other:?}"),
        }
    }
}

fn brief_values(pairs: &[(String, Value)]) -> Vec<(Brief<'_>, BriefValue<'_>)> {
    pairs
        .iter()
        .map(|(k, v)| (Brief(k), BriefValue(v)))
        .collect()
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attributes: Vec<_> = self
            .attributes
            .iter()
            .map(|(k, v)| (Brief(k), BriefAny(v)))
            .collect();
        f.debug_struct("Input")
            .field("host", &self.host.as_deref().map(Brief))
            .field("extras", &brief_values(&self.extras))
            .field("replace_dots", &self.replace_dots)
            .field("max_field_bytes", &self.max_field_bytes)
            .field("type_suffixes", &self.type_suffixes)
            .field("resource", &brief_values(&self.resource))
            .field("scope_name", &Brief(&self.scope_name))
            .field("scope_version", &self.scope_version.as_deref().map(Brief))
            .field("scope_attributes", &brief_values(&self.scope_attributes))
            .field("body", &self.body.as_ref().map(BriefAny))
            .field("attributes", &attributes)
            .field("severity", &self.severity)
            .field("severity_text", &self.severity_text.map(Brief))
            .field("timestamp", &self.timestamp)
            .field("observed", &self.observed)
            .field("target", &self.target.as_deref().map(Brief))
            .field("event_name", &self.event_name.map(Brief))
            .field("trace", &self.trace)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Strategies
//
// In a debug build each proptest combinator costs microseconds per value, so
// scalars (texts, keys, numbers, bytes) are made by plain functions from cheap
// raw material: a selector, 64 bits and a list of codes. Shrinking drives each
// part toward zero, which always means the simplest choice: a short text of
// `a`s, then an empty one; a plain number; a string rather than a list.
// ---------------------------------------------------------------------------

/// Characters that stress escaping, trimming and key normalization.
const SPECIAL_CHARS: &str = "\0\t\n\r .-_\\\"':=/@{}[],\u{1}\u{7}\u{8}\u{b}\u{c}\u{1b}\u{1c}\u{1f}\
    \u{7f}\u{85}\u{a0}\u{200b}\u{2028}\u{2029}\u{3000}\u{feff}\u{fffd}\u{ffff}éßİ日😀\u{10ffff}";

const SPECIAL_TEXTS: &[&str] = &[
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r",
    " \r\n ",
    "\0",
    "\0\0",
    "\u{1}",
    "\u{1f}",
    "\u{85}",
    "\u{a0}",
    "\u{3000}",
    "\u{feff}",
    "true",
    "null",
    "{}",
    "[]",
    "NaN",
    "-0",
    "1e400",
    "\\",
    "\\0",
    "a\\b\"c",
    "key:value",
    "a\tb",
    "line one\nline two",
    "\n\n  \nthird",
    "\r\n\r\nx\r\n",
    "event src/main.rs:3",
];

const BLANK_CHARS: &[char] = &[
    ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}',
];

/// Units repeated into long texts.
const UNITS: &[&str] = &[
    " ", "\t", "\n", "\0", "\u{1}", "é", " \r\n", "\u{3000}", "\\\"", "😀",
];

const SPECIAL_KEYS: &[&str] = &[
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    "\0",
    "a\0b",
    ".",
    "..",
    ".a",
    "a.",
    "a.b",
    "a..b",
    "a_b",
    "@",
    "@timestamp",
    "a b",
    "a:b",
    "a=b",
    "a/b",
    "café",
    "日本",
    "😀",
    "-",
    "_",
    "__",
    "id",
    "_id",
    "id_",
    "ID",
    "version",
    "host",
    "short_message",
    "full_message",
    "timestamp",
    "level",
    "facility",
    "line",
    "file",
    "source",
    "_source",
    "message",
    "streams",
    "time",
    "_ttl",
    "_all",
    "_index",
    "_type",
    "_score",
    "gl2",
    "gl2_x",
    "gl2_",
    "gl2_source_node",
    "target",
    "event_name",
    "severity_text",
    "trace_id",
    "span_id",
    "trace_flags",
    "otel.scope.name",
    "otel_scope_name",
    "service.name",
    "host.name",
    "exception.stacktrace",
    "exception.type",
    "X-OVH-TOKEN",
    "X.OVH.TOKEN",
    "count_long",
    "ratio_double",
    // Names that match others only once typed (`count` as an integer is
    // `count_long` with type suffixes).
    "count",
    "ratio",
    "flag",
    "flag_bool",
    "id_long",
];

const INTS: &[i64] = &[0, 1, -1, i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX];

const DOUBLES: &[f64] = &[
    0.0,
    -0.0,
    f64::NAN,
    -f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    5e-324,
    -5e-324,
    f64::MIN_POSITIVE / 4.0,
    f64::MIN_POSITIVE,
    f64::MAX,
    f64::MIN,
    f64::EPSILON,
    0.1,
    1e21,
    1e300,
    -1e-300,
    9_007_199_254_740_993.0,
];

const SEVERITIES: &[Severity] = &[
    Severity::Trace,
    Severity::Trace2,
    Severity::Trace3,
    Severity::Trace4,
    Severity::Debug,
    Severity::Debug2,
    Severity::Debug3,
    Severity::Debug4,
    Severity::Info,
    Severity::Info2,
    Severity::Info3,
    Severity::Info4,
    Severity::Warn,
    Severity::Warn2,
    Severity::Warn3,
    Severity::Warn4,
    Severity::Error,
    Severity::Error2,
    Severity::Error3,
    Severity::Error4,
    Severity::Fatal,
    Severity::Fatal2,
    Severity::Fatal3,
    Severity::Fatal4,
];

const SEVERITY_TEXTS: &[&str] = &[
    "WARN",
    "error2",
    " info ",
    "CRIT",
    "fatal",
    "Emergency",
    "",
    "debug9",
];

const EVENT_NAMES: &[&str] = &["user.login", "event src/main.rs:3", " ", "event", ""];

/// Type suffixes the mapping may append to a key. Others can join a key into
/// a reserved name (`bug_type_suffixes_can_form_reserved_names`), so the
/// properties keep to suffixes that start with `_` and that no reserved name
/// ends with. (`gl2` plus any of them still gives Graylog's internal `gl2_`
/// prefix; only the bug test checks for it.)
const APPENDED_SUFFIXES: &[&str] = &[
    "_long", "_int", "_double", "_bool", "_date", "_x.y", "_num", "_-",
];

/// The `date` suffix is never appended, only respected: anything goes.
const DATE_SUFFIXES: &[&str] = &["_date", "", "d", "_", "-", "_long", "é", "\0"];

fn pick<T: Copy>(items: &[T], n: u64) -> T {
    items[(n % items.len() as u64) as usize]
}

/// Maps a code to a character; shrinks toward `a`. Three in ten are lowercase
/// letters, three in ten special characters, two in ten from the Basic
/// Multilingual Plane and two in ten any scalar value.
fn to_char(code: u32) -> char {
    static SPECIAL: LazyLock<Vec<char>> = LazyLock::new(|| SPECIAL_CHARS.chars().collect());
    let n = code / 10;
    let any = |range: u32| char::from_u32(n % range).unwrap_or('\u{fffd}');
    match code % 10 {
        0..=2 => char::from(b'a' + (n % 26) as u8),
        3..=5 => SPECIAL[n as usize % SPECIAL.len()],
        6 | 7 => any(0x1_0000),
        _ => any(0x11_0000),
    }
}

fn chars_of(codes: &[u32]) -> String {
    codes.iter().map(|&c| to_char(c)).collect()
}

/// `unit` repeated until the text holds at least `bytes` bytes.
fn repeat_to(unit: &str, bytes: usize) -> String {
    unit.repeat(bytes.div_ceil(unit.len().max(1)))
}

/// A text of at least `bytes` bytes: a special unit or the first few codes,
/// repeated.
fn long_of(select: u32, codes: &[u32], bytes: usize) -> String {
    let unit = match chars_of(&codes[..codes.len().min(6)]) {
        unit if unit.is_empty() || select % 4 == 3 => pick(UNITS, u64::from(select / 4)).into(),
        unit => unit,
    };
    repeat_to(&unit, bytes)
}

/// Mostly short texts; sometimes special, blank, long (up to 3 KB) or huge
/// (up to 100 KB).
fn text_of(select: u32, bits: u64, codes: &[u32]) -> String {
    let rest = select / 1000;
    match select % 1000 {
        0..=659 => chars_of(codes),
        660..=859 => pick(SPECIAL_TEXTS, bits).into(),
        860..=939 => codes
            .iter()
            .map(|&c| pick(BLANK_CHARS, u64::from(c)))
            .collect(),
        940..=997 => long_of(rest, codes, 25 + (bits % 3_000) as usize),
        _ => long_of(rest, codes, 3_000 + (bits % 97_000) as usize),
    }
}

/// Keys: arbitrary, special (reserved, blank, dotted...) or dotted words.
fn key_of(select: u32, bits: u64, codes: &[u32]) -> String {
    match select % 10 {
        0..=2 => chars_of(codes),
        3..=6 => pick(SPECIAL_KEYS, bits).into(),
        _ => {
            let mut key = String::with_capacity(codes.len() * 2);
            for (i, &c) in codes.iter().enumerate() {
                if i > 0 && (c / 26) % 4 == 0 {
                    key.push('.');
                }
                key.push(char::from(b'a' + (c % 26) as u8));
            }
            key
        }
    }
}

/// Record attribute keys: keys, sometimes long (up to 2 KB) or huge (up to
/// 100 KB).
fn top_key_of(select: u32, bits: u64, codes: &[u32]) -> String {
    let rest = select / 1000;
    match select % 1000 {
        0..=974 => key_of(rest, bits, codes),
        975..=996 => long_of(rest, codes, 64 + (bits % 2_000) as usize),
        _ => long_of(rest, codes, 2_000 + (bits % 98_000) as usize),
    }
}

fn int_of(select: u32, bits: u64) -> i64 {
    match select % 3 {
        0 => bits as i64,
        1 => pick(INTS, bits),
        _ => (bits % 2_001) as i64 - 1_000,
    }
}

fn double_of(select: u32, bits: u64) -> f64 {
    match select % 4 {
        0 => (bits % 2_000_001) as f64 / 1_000.0 - 1_000.0,
        1 => pick(DOUBLES, bits),
        2 => f64::from_bits(bits),
        _ => bits as i64 as f64 * 1e-9,
    }
}

fn bytes_of(select: u32, bits: u64, codes: &[u32]) -> Vec<u8> {
    if select % 6 == 5 {
        vec![bits as u8; 48 + ((bits >> 8) % 3_000) as usize]
    } else {
        codes.iter().map(|&c| c as u8).collect()
    }
}

fn leaf_of(select: u32, bits: u64, codes: &[u32]) -> AnyValue {
    let rest = select / 10;
    match select % 10 {
        0..=3 => AnyValue::String(text_of(rest, bits, codes).into()),
        4 | 5 => AnyValue::Int(int_of(rest, bits)),
        6 | 7 => AnyValue::Double(double_of(rest, bits)),
        8 => AnyValue::Boolean(bits % 2 == 1),
        _ => AnyValue::Bytes(Box::new(bytes_of(rest, bits, codes))),
    }
}

/// An `opentelemetry::Value` (resources, scopes, extras); `short` keeps its
/// texts short.
fn static_of(select: u32, bits: u64, codes: &[u32], short: bool) -> Value {
    let rest = select / 10;
    let text = |select: u32, codes: &[u32]| {
        let select = if short { select % 860 } else { select };
        text_of(select, bits, codes)
    };
    match select % 10 {
        0..=3 => Value::String(text(rest, codes).into()),
        4 => Value::I64(int_of(rest, bits)),
        5 => Value::F64(double_of(rest, bits)),
        6 => Value::Bool(bits % 2 == 1),
        7 => Value::Array(Array::String(
            codes
                .chunks(4)
                .map(|chunk| StringValue::from(text(chunk[0], &chunk[1..])))
                .collect(),
        )),
        8 => Value::Array(Array::I64(
            codes.iter().map(|&c| int_of(c, u64::from(c))).collect(),
        )),
        _ if rest.is_multiple_of(2) => Value::Array(Array::F64(
            codes
                .iter()
                .map(|&c| double_of(c, bits.rotate_left(c)))
                .collect(),
        )),
        _ => Value::Array(Array::Bool(codes.iter().map(|&c| c % 2 == 1).collect())),
    }
}

type Raw = (u32, u64, Vec<u32>);

/// Raw material with up to `codes` codes.
fn raw(codes: usize) -> impl Strategy<Value = Raw> + Clone {
    (any::<u32>(), any::<u64>(), vec(any::<u32>(), 0..=codes))
}

fn text() -> BoxedStrategy<String> {
    raw(24).prop_map(|(s, b, c)| text_of(s, b, &c)).boxed()
}

fn key() -> BoxedStrategy<String> {
    raw(16).prop_map(|(s, b, c)| key_of(s, b, &c)).boxed()
}

fn top_key() -> BoxedStrategy<String> {
    raw(16).prop_map(|(s, b, c)| top_key_of(s, b, &c)).boxed()
}

fn leaf() -> BoxedStrategy<AnyValue> {
    raw(24).prop_map(|(s, b, c)| leaf_of(s, b, &c)).boxed()
}

fn map_of(entries: Vec<(String, AnyValue)>) -> AnyValue {
    let map: HashMap<Key, AnyValue> = entries
        .into_iter()
        .map(|(k, v)| (Key::from(k), v))
        .collect();
    AnyValue::Map(Box::new(map))
}

/// Scalars, and lists and maps (empty ones included) nested up to four deep.
fn value() -> BoxedStrategy<AnyValue> {
    // Layered rather than `prop_recursive`, which rebuilds its strategies for
    // every value it generates.
    let key = key();
    let mut value = leaf();
    for _ in 0..4 {
        let inner = value;
        value = prop_oneof![
            6 => inner.clone(),
            1 => vec(inner.clone(), 0..5).prop_map(|items| AnyValue::ListAny(Box::new(items))),
            1 => vec((key.clone(), inner), 0..5).prop_map(map_of),
        ]
        .boxed();
    }
    value
}

/// A chain of maps up to well past the flattening depth (8), with a sibling
/// entry at some levels.
fn deep_map() -> BoxedStrategy<AnyValue> {
    let sibling = proptest::option::weighted(0.3, (key(), leaf()));
    (vec((key(), sibling), 1..=14), value())
        .prop_map(|(levels, innermost)| {
            levels
                .into_iter()
                .rev()
                .fold(innermost, |inner, (k, sibling)| {
                    let mut entries = vec![(k, inner)];
                    entries.extend(sibling);
                    map_of(entries)
                })
        })
        .boxed()
}

fn attribute_value() -> BoxedStrategy<AnyValue> {
    prop_oneof![8 => value(), 2 => deep_map()].boxed()
}

/// Usually a few attributes, sometimes up to 64, plus a few repeated keys.
fn attributes() -> BoxedStrategy<Vec<(String, AnyValue)>> {
    let pair = (top_key(), attribute_value());
    (
        prop_oneof![
            10 => vec(pair.clone(), 0..8),
            1 => vec(pair, 8..=64),
        ],
        vec((any::<Index>(), attribute_value()), 0..3),
    )
        .prop_map(|(mut attributes, repeats)| {
            if !attributes.is_empty() {
                for (index, value) in repeats {
                    let key = attributes[index.index(attributes.len())].0.clone();
                    attributes.push((key, value));
                }
            }
            attributes
        })
        .boxed()
}

fn static_pairs(max: usize) -> BoxedStrategy<Vec<(String, Value)>> {
    let value = raw(16).prop_map(|(s, b, c)| static_of(s, b, &c, false));
    vec((key(), value), 0..=max).boxed()
}

/// Extras are never cut to fit a frame: short keys and values keep them well
/// under the small frame limit.
fn extras() -> BoxedStrategy<Vec<(String, Value)>> {
    let key = raw(12).prop_map(|(s, b, c)| key_of(s, b, &c));
    let value = raw(12).prop_map(|(s, b, c)| static_of(s, b, &c, true));
    vec((key, value), 0..=3).boxed()
}

/// Severity texts and event names: special ones or short arbitrary ones.
fn static_text(special: &'static [&'static str]) -> BoxedStrategy<&'static str> {
    raw(16)
        .prop_map(move |(select, bits, codes)| {
            if select % 3 == 2 {
                pick(special, bits)
            } else {
                intern(chars_of(&codes))
            }
        })
        .boxed()
}

/// Times at, just after and before the epoch, ordinary ones, ones around the
/// end of the year 9999, and far-future ones (never overflowing).
fn time_of(kind: u8, secs: u64, nanos: u32) -> SystemTime {
    const YEAR: u64 = 31_556_952;
    const YEAR_10000: u64 = 253_402_300_800;
    let nanos = nanos % 1_000_000_000;
    let after = |secs: u64, nanos: u32| {
        UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(YEAR_10000 * 4))
    };
    let before = |secs: u64, nanos: u32| {
        UNIX_EPOCH
            .checked_sub(Duration::new(secs, nanos))
            .unwrap_or(UNIX_EPOCH - Duration::from_secs(YEAR_10000))
    };
    match kind % 16 {
        0..=5 => after(secs % (130 * YEAR), nanos),
        6 => UNIX_EPOCH,
        7 | 8 => after(secs % 2, nanos % 2_000),
        9 | 10 => before(secs, nanos),
        11 | 12 => after(YEAR_10000 - 2 + secs % 4, nanos),
        _ => after(YEAR_10000.saturating_add(secs), nanos),
    }
}

fn time() -> BoxedStrategy<SystemTime> {
    (any::<u8>(), any::<u64>(), any::<u32>())
        .prop_map(|(kind, secs, nanos)| time_of(kind, secs, nanos))
        .boxed()
}

/// Two or more lines, with LF, CRLF, blank lines or a lone CR.
fn multi_line_text() -> BoxedStrategy<String> {
    (1..12usize, any::<u64>(), vec(any::<u32>(), 2..=36))
        .prop_map(|(line, bits, codes)| {
            let lines: Vec<String> = codes.chunks(line).map(chars_of).collect();
            lines.join(pick(&["\n", "\r\n", "\n\n", "\r"], bits))
        })
        .boxed()
}

fn body() -> BoxedStrategy<AnyValue> {
    prop_oneof![
        3 => text().prop_map(|s| AnyValue::String(s.into())),
        2 => multi_line_text().prop_map(|s| AnyValue::String(s.into())),
        3 => attribute_value(),
    ]
    .boxed()
}

/// Type suffixes: the defaults, or odd ones.
fn type_suffixes() -> BoxedStrategy<TypeSuffixes> {
    let appended = raw(6).prop_map(|(select, bits, codes)| {
        if select % 3 == 2 {
            format!("_x{}", chars_of(&codes))
        } else {
            pick(APPENDED_SUFFIXES, bits).to_string()
        }
    });
    let date = raw(6).prop_map(|(select, bits, codes)| {
        if select % 3 == 2 {
            chars_of(&codes)
        } else {
            pick(DATE_SUFFIXES, bits).to_string()
        }
    });
    prop_oneof![
        2 => Just(TypeSuffixes::default()),
        1 => (appended.clone(), appended.clone(), appended, date).prop_map(
            |(long, double, boolean, date)| TypeSuffixes {
                long,
                double,
                boolean,
                date,
            }
        ),
    ]
    .boxed()
}

fn input() -> impl Strategy<Value = Input> {
    use proptest::option::{of, weighted};
    let options = (
        weighted(0.2, text()),
        extras(),
        any::<bool>(),
        prop_oneof![
            3 => Just(MappingOptions::default().max_field_bytes),
            1 => select(&[64usize, 65, 100, 1_000][..]),
        ],
        weighted(0.3, type_suffixes()),
    );
    let context = (
        static_pairs(8),
        text(),
        of(text()),
        static_pairs(6),
        of(body()),
        attributes(),
    );
    let metadata = (
        of(select(SEVERITIES)),
        of(static_text(SEVERITY_TEXTS)),
        of(time()),
        of(time()),
        of(text()),
        of(static_text(EVENT_NAMES)),
        of((any::<[u8; 16]>(), any::<[u8; 8]>(), of(any::<u8>()))),
    );
    (options, context, metadata).prop_map(
        |(
            (host, extras, replace_dots, max_field_bytes, type_suffixes),
            (resource, scope_name, scope_version, scope_attributes, body, attributes),
            (severity, severity_text, timestamp, observed, target, event_name, trace),
        )| Input {
            host,
            extras,
            replace_dots,
            max_field_bytes,
            type_suffixes,
            resource,
            scope_name,
            scope_version,
            scope_attributes,
            body,
            attributes,
            severity,
            severity_text,
            timestamp,
            observed,
            target,
            event_name,
            trace,
        },
    )
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// A frame for a failure message: long ones by their head and length.
fn show(bytes: &[u8]) -> String {
    format!("{:?}", Brief(&String::from_utf8_lossy(bytes)))
}

/// Encodes `mapped` without a limit, then with each limit and framing; checks
/// what the framing and the limit promise, and hands each distinct frame,
/// delimiter excluded, to `check`, which returns how many additional fields
/// (beyond the format's own) the frame holds.
fn encode_all<F: Format + Writer>(mapped: &MappedRecord<'_>, check: impl Fn(&[u8]) -> usize) {
    let mut whole = Vec::new();
    let cut = encode_framed::<F>(mapped.clone(), Framing::Nul, usize::MAX, &mut whole);
    assert!(!cut, "cut without a limit");
    assert_eq!(whole.pop(), Some(0), "no delimiter");
    assert_eq!(
        check(&whole),
        mapped.fields.len(),
        "fields lost or added in {}",
        show(&whole)
    );
    for max in LIMITS {
        let mut contents = Vec::with_capacity(FRAMINGS.len());
        for framing in FRAMINGS {
            let delimiter = framing.delimiter();
            let mut out = PREFIX.to_vec();
            let cut = encode_framed::<F>(mapped.clone(), framing, max, &mut out);
            let Some(frame) = out.strip_prefix(PREFIX) else {
                panic!("the bytes before the frame changed");
            };
            assert!(
                frame.len() <= max,
                "{} bytes over the {max}-byte limit: {}",
                frame.len(),
                show(frame)
            );
            let Some((&last, content)) = frame.split_last() else {
                panic!("an empty frame");
            };
            assert_eq!(last, delimiter, "no delimiter: {}", show(frame));
            // One byte more than the content: the delimiter.
            assert_eq!(
                cut,
                whole.len() + 1 > max,
                "cut is {cut} for a {}-byte record and a {max}-byte limit",
                whole.len()
            );
            if !cut {
                assert!(content == whole, "a record within the limit changed");
            }
            contents.push(content.to_vec());
        }
        // The framing changes the delimiter only; the checks reject both
        // delimiter bytes inside a frame.
        assert!(
            contents.windows(2).all(|w| w[0] == w[1]),
            "the framing changed the content"
        );
        if contents[0] != whole {
            check(&contents[0]);
        }
    }
}

/// Not blank as the mapping (and Graylog) see it.
fn non_blank(text: &str) -> bool {
    !crate::mapping::is_blank(text)
}

fn is_field_name(name: &str) -> bool {
    name.strip_prefix('_').is_some_and(|rest| {
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    })
}

/// Checks one GELF frame; returns the number of additional fields.
fn check_gelf(frame: &[u8]) -> usize {
    use serde_json::Value as J;
    let fail = |what: String| -> ! { panic!("GELF: {what} in {}", show(frame)) };
    if frame.contains(&0) || frame.contains(&b'\n') {
        fail("raw NUL or LF".into());
    }
    let Ok(text) = std::str::from_utf8(frame) else {
        fail("invalid UTF-8".into())
    };
    let object = match serde_json::from_str::<J>(text) {
        Ok(J::Object(object)) => object,
        Ok(other) => fail(format!("not an object but {other}")),
        Err(e) => fail(format!("invalid JSON ({e})")),
    };
    if object.get("version").and_then(J::as_str) != Some("1.1") {
        fail("no version 1.1".into());
    }
    if !object
        .get("host")
        .and_then(J::as_str)
        .is_some_and(non_blank)
    {
        fail("no host".into());
    }
    if !object
        .get("short_message")
        .and_then(J::as_str)
        .is_some_and(non_blank)
    {
        fail("a blank short_message".into());
    }
    if object.get("full_message").is_some_and(|m| !m.is_string()) {
        fail("a full_message that is not a string".into());
    }
    if let Some(t) = object.get("timestamp") {
        if !t.as_f64().is_some_and(|t| t.is_finite() && t > 0.0) {
            fail(format!("timestamp {t}"));
        }
    }
    if let Some(level) = object.get("level") {
        if level.as_u64().is_none_or(|l| l > 7) {
            fail(format!("level {level}"));
        }
    }
    let mut additional = 0;
    for (name, value) in &object {
        if STANDARD_FIELDS.contains(&name.as_str()) {
            continue;
        }
        additional += 1;
        if !is_field_name(name) || name == "_id" {
            fail(format!("field name {:?}", Brief(name)));
        }
        let valid = match value {
            J::String(s) => non_blank(s),
            J::Number(n) => n.as_f64().is_some_and(f64::is_finite),
            _ => false,
        };
        if !valid {
            fail(format!("field {:?} = {}", Brief(name), value));
        }
    }
    // serde_json keeps the last of repeated names: count them in the text. An
    // unescaped quote right after a comma opens a member name.
    let written = text.matches(",\"_").count();
    if written != additional {
        fail(format!(
            "{written} additional members written, {additional} distinct"
        ));
    }
    additional
}

/// Whether each backslash in an LTSV value starts one of the encoder's escapes.
fn escapes_ok(value: &str) -> bool {
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b == b'\\' && !matches!(bytes.next(), Some(b'\\' | b't' | b'n' | b'r' | b'0')) {
            return false;
        }
    }
    true
}

/// Checks one LTSV record; returns the number of additional fields.
fn check_ltsv(record: &[u8]) -> usize {
    let fail = |what: String| -> ! { panic!("LTSV: {what} in {}", show(record)) };
    if let Some(b) = record.iter().find(|b| matches!(b, b'\n' | b'\r' | 0)) {
        fail(format!("raw byte {b:#04x}"));
    }
    let Ok(text) = std::str::from_utf8(record) else {
        fail("invalid UTF-8".into())
    };
    let mut labels = BTreeSet::new();
    let mut fields = Vec::new();
    for field in text.split('\t') {
        let Some((label, value)) = field.split_once(':') else {
            fail(format!("field {:?} without a label", Brief(field)))
        };
        let valid_label = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_label {
            fail(format!("label {:?}", Brief(label)));
        }
        if !labels.insert(label) {
            fail(format!("label {:?} repeated", Brief(label)));
        }
        if !escapes_ok(value) {
            fail(format!("bad escape in {:?}", Brief(value)));
        }
        fields.push((label, value));
    }
    let head: Vec<&str> = fields.iter().take(4).map(|(label, _)| *label).collect();
    if head != LTSV_HEAD {
        fail(format!("labels start with {head:?}"));
    }
    let time = humantime::parse_rfc3339(fields[0].1);
    if !time.is_ok_and(|t| t > UNIX_EPOCH) {
        fail(format!("time {:?}", fields[0].1));
    }
    if !non_blank(fields[1].1) {
        fail("a blank host".into());
    }
    if !fields[2].1.parse::<u8>().is_ok_and(|l| l <= 7) {
        fail(format!("level {:?}", fields[2].1));
    }
    if !non_blank(fields[3].1) {
        fail("a blank message".into());
    }
    let full_message = fields
        .get(4)
        .is_some_and(|(label, _)| *label == "full_message");
    fields.len() - LTSV_HEAD.len() - usize::from(full_message)
}

/// Runs `check` on the mapping of every generated input.
fn run(check: impl Fn(&MappedRecord<'_>)) {
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    let mut runner = TestRunner::new(config());
    let result = runner.run(&input(), |input| {
        let built = input.build(&logger);
        let mapped = built.mapper.map(&built.record, &built.scope);
        check(&mapped);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn gelf_any_record_gives_one_well_formed_frame() {
    run(|mapped| encode_all::<Gelf>(mapped, check_gelf));
}

#[test]
fn ltsv_any_record_gives_one_well_formed_record() {
    run(|mapped| encode_all::<Ltsv>(mapped, check_ltsv));
}

/// Encodes `mapped` whole and at each of [`LIMITS`], frames back to back.
fn frames<F: Format + Writer>(mapped: &MappedRecord<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for max in std::iter::once(usize::MAX).chain(LIMITS) {
        encode_framed::<F>(mapped.clone(), Framing::Nul, max, &mut out);
    }
    out
}

/// Static fields encoded once (the exporter's fast path) give exactly the
/// bytes of the plain path, cut or not, whatever the record's own fields share
/// with them.
fn pre_encoding_changes_nothing<F: Format + Writer>() {
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    let mut runner = TestRunner::new(config());
    let result = runner.run(&input(), |input| {
        let plain = input.build(&logger);
        let mut fast = input.build(&logger);
        fast.mapper.pre_encode(F::encode_field);
        // Another resource first, then the same one as the plain mapper's
        // (its attributes' order is a hash map's).
        fast.mapper.set_resource(&Resource::builder_empty().build());
        fast.mapper.set_resource(&plain.resource);
        let expected = plain.mapper.map(&plain.record, &plain.scope);
        // Twice: with the key cache cold, then warm.
        drop(fast.mapper.map(&fast.record, &fast.scope));
        let mut got = fast.mapper.map(&fast.record, &fast.scope);
        // A record without a usable time gets "now", which differs.
        got.time = expected.time;
        let (expected, got) = (frames::<F>(&expected), frames::<F>(&got));
        if got != expected {
            let at = got
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(expected.len()));
            let from = at.saturating_sub(40);
            panic!(
                "pre-encoded statics changed the {} at byte {at}: {}\ninstead of {}",
                F::NAME,
                show(&got[from..]),
                show(&expected[from..])
            );
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Lists and maps are written as JSON text in one pass, exactly as
/// `serde_json` writes the same value built as a tree.
#[test]
fn structured_values_are_written_as_serde_json_would() {
    let mut runner = TestRunner::new(config());
    let result = runner.run(&value(), |value| {
        let expected = crate::mapping::any_json(&value).to_string();
        let got = crate::mapping::any_json_text(&value);
        if got != expected {
            panic!("{value:?}:\n{got}\ninstead of\n{expected}");
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn gelf_pre_encoded_statics_change_nothing() {
    pre_encoding_changes_nothing::<Gelf>();
}

#[test]
fn ltsv_pre_encoded_statics_change_nothing() {
    pre_encoding_changes_nothing::<Ltsv>();
}

// ---------------------------------------------------------------------------
// Bugs found, each with its smallest input
// ---------------------------------------------------------------------------

/// Names Graylog reserves (the mapping's list), and its internal prefix.
fn is_reserved(key: &str) -> bool {
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
    RESERVED.contains(&key) || key.starts_with("gl2_")
}

/// A type suffix must never turn a key into a reserved name.
#[test]
fn type_suffixes_never_form_reserved_names() {
    let no_long_suffix = TypeSuffixes {
        long: String::new(),
        ..TypeSuffixes::default()
    };
    let cases = [
        // An empty suffix removes the `_` that kept the name apart: `id` →
        // `id_` → `id`, sent as GELF `_id`; `host` gives LTSV two `host` labels.
        (no_long_suffix.clone(), "id"),
        (no_long_suffix, "host"),
        // A suffix completes a reserved name: `i` + `d`.
        (
            TypeSuffixes {
                long: "d".into(),
                ..TypeSuffixes::default()
            },
            "i",
        ),
        // The default suffix after `gl2` gives Graylog's internal prefix.
        (TypeSuffixes::default(), "gl2"),
    ];
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    for (suffixes, key) in cases {
        let input = Input {
            type_suffixes: Some(suffixes),
            attributes: vec![(key.into(), AnyValue::Int(1))],
            ..Input::plain()
        };
        let built = input.build(&logger);
        let mapped = built.mapper.map(&built.record, &built.scope);
        for field in &mapped.fields {
            assert!(
                !is_reserved(&field.name()),
                "the integer attribute {key:?} is sent as {:?} with {:?}",
                field.name(),
                input.type_suffixes
            );
        }
        encode_all::<Gelf>(&mapped, check_gelf);
        encode_all::<Ltsv>(&mapped, check_ltsv);
    }
}

/// Graylog trims string values with Java's `String.trim()`, which strips every
/// character up to U+0020, not only whitespace: a field left empty is dropped,
/// and a message left empty makes Graylog discard the whole record.
#[test]
fn control_characters_are_blank_as_for_graylog() {
    let input = Input {
        body: Some(AnyValue::String("\u{1}".into())),
        attributes: vec![("k".into(), AnyValue::String("\0".into()))],
        ..Input::plain()
    };
    let provider = SdkLoggerProvider::builder().build();
    let built = input.build(&provider.logger("fuzz"));
    let mapped = built.mapper.map(&built.record, &built.scope);
    let mut frame = Vec::new();
    encode_framed::<Gelf>(mapped, Framing::Nul, DEFAULT_MAX_FRAME_BYTES, &mut frame);
    frame.pop();
    let object: serde_json::Value = serde_json::from_slice(&frame).expect("a JSON frame");
    for name in ["short_message", "_k"] {
        let text = object[name].as_str().expect("a string");
        assert!(
            !text.trim_matches(|c: char| c <= ' ').is_empty(),
            "{name} is {text:?}, empty once Graylog trims it"
        );
    }
}
