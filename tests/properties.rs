//! Property tests: any log record, however odd its keys, values, body, severity
//! or time, goes through the real exporter and reaches the in-process receiver
//! as exactly one frame that the strict GELF / LTSV checkers accept whole, with
//! no attribute silently lost.

mod support;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use djehouty::{GelfExporter, LtsvExporter};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::Key;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::Resource;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use support::{assert_graylog_accepts, assert_ltsv_line_ok, show_bytes, Framing, Receiver};

const WAIT: Duration = Duration::from_secs(10);

/// The exporter's default cap on one field's text.
const FIELD_CAP: usize = 32_000;
/// Nesting depth of maps the exporter flattens; deeper maps are sent as JSON.
const FLATTEN_DEPTH: usize = 8;
const MARKER: &str = " [truncated]";
/// The exporter's default frame limit.
const DEFAULT_FRAME: usize = 2 * 1024 * 1024;
const SMALL_FRAME: usize = 4096;

// ---------------------------------------------------------------------------
// Generated records
// ---------------------------------------------------------------------------

/// One generated log record, as it is handed to the SDK.
#[derive(Clone)]
struct Record {
    body: Option<AnyValue>,
    attributes: Vec<(String, AnyValue)>,
    severity: Option<Severity>,
    severity_text: Option<String>,
    timestamp: Option<SystemTime>,
    target: Option<String>,
    event_name: Option<String>,
}

/// A string for diagnostics: long texts are cut and their length given.
fn brief(text: &str) -> String {
    const HEAD: usize = 60;
    if text.len() <= HEAD * 2 {
        return format!("{text:?}");
    }
    let mut cut = HEAD;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}...({} bytes)", &text[..cut], text.len())
}

fn brief_value(value: &AnyValue) -> String {
    match value {
        AnyValue::String(s) => format!("String({})", brief(s.as_str())),
        AnyValue::Bytes(b) => format!("Bytes({b:?})"),
        AnyValue::ListAny(list) => {
            let items: Vec<String> = list.iter().map(brief_value).collect();
            format!("List[{}]", items.join(", "))
        }
        AnyValue::Map(map) => {
            let mut items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", brief(k.as_str()), brief_value(v)))
                .collect();
            items.sort();
            format!("Map{{{}}}", items.join(", "))
        }
        other => format!("{other:?}"),
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attributes: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{} => {}", brief(k), brief_value(v)))
            .collect();
        f.debug_struct("Record")
            .field("body", &self.body.as_ref().map(brief_value))
            .field("attributes", &attributes)
            .field("severity", &self.severity)
            .field("severity_text", &self.severity_text.as_deref().map(brief))
            .field("timestamp", &self.timestamp.map(describe_time))
            .field("target", &self.target.as_deref().map(brief))
            .field("event_name", &self.event_name.as_deref().map(brief))
            .finish()
    }
}

fn describe_time(time: SystemTime) -> String {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => format!("epoch + {}.{:09}s", d.as_secs(), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            format!("epoch - {}.{:09}s", d.as_secs(), d.subsec_nanos())
        }
    }
}

/// The SDK takes severity texts and event names as `&'static str`.
fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

fn emit(logger: &SdkLogger, record: &Record) {
    let mut rec = logger.create_log_record();
    if let Some(body) = &record.body {
        rec.set_body(body.clone());
    }
    if let Some(severity) = record.severity {
        rec.set_severity_number(severity);
    }
    if let Some(text) = &record.severity_text {
        rec.set_severity_text(leak(text));
    }
    if let Some(time) = record.timestamp {
        rec.set_timestamp(time);
    }
    if let Some(target) = &record.target {
        rec.set_target(target.clone());
    }
    if let Some(name) = &record.event_name {
        rec.set_event_name(leak(name));
    }
    for (key, value) in &record.attributes {
        rec.add_attribute(Key::from(key.clone()), value.clone());
    }
    logger.emit(rec);
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

const SPECIAL_CHARS: &[char] = &[
    '\0', '\n', '\r', '\t', ' ', '.', '@', '_', '-', '\\', '"', '/', ':', '\u{7}', '\u{1b}',
    '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}', 'é', 'ß', '日', '😀',
];

fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('a', 'z'),
        3 => select(SPECIAL_CHARS),
    ]
}

fn short_text(max: usize) -> impl Strategy<Value = String> {
    vec(any_char(), 0..=max).prop_map(String::from_iter)
}

/// `unit` repeated until the text holds at least `bytes` bytes.
fn repeat_to(unit: &str, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 4);
    for c in unit.chars().cycle() {
        if text.len() >= bytes {
            break;
        }
        text.push(c);
    }
    text
}

/// Texts from `min` to about `max` bytes, blank ones included.
fn long_text(min: usize, max: usize) -> impl Strategy<Value = String> {
    let unit = prop_oneof![
        3 => vec(any_char(), 1..=6).prop_map(String::from_iter),
        1 => select(&[" ", "\t", "\n", "\0", "é", " \r\n", "\u{3000}"][..]).prop_map(String::from),
    ];
    (unit, min..=max).prop_map(|(unit, bytes)| repeat_to(&unit, bytes))
}

const SPECIAL_TEXTS: &[&str] = &[
    "",
    " ",
    "   ",
    "\t",
    "\n",
    " \r\n ",
    "\0",
    "\u{a0}",
    "\u{3000}",
    "true",
    "null",
    "{}",
    "[]",
    "NaN",
    "line one\nline two",
    "\n\n  \nthird",
    "a\\b\"c",
];

const BLANK_CHARS: &[char] = &[
    ' ', '\t', '\n', '\r', '\u{b}', '\u{a0}', '\u{2028}', '\u{3000}',
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => short_text(24),
        3 => select(SPECIAL_TEXTS).prop_map(String::from),
        1 => vec(select(BLANK_CHARS), 0..8).prop_map(String::from_iter),
        1 => long_text(1, 100_000),
    ]
}

const SPECIAL_KEYS: &[&str] = &[
    "",
    " ",
    ".",
    "..",
    "@",
    "@timestamp",
    "\0",
    "\n",
    "a b",
    "a.b",
    "a_b",
    "a..b",
    "café",
    "日本",
    "-",
    "_",
    "__",
    "id",
    "id_",
    "_id",
    "source",
    "_source",
    "host",
    "level",
    "message",
    "version",
    "short_message",
    "full_message",
    "timestamp",
    "facility",
    "line",
    "file",
    "streams",
    "time",
    "_ttl",
    "_all",
    "_index",
    "_type",
    "_score",
    "gl2_x",
    "gl2_",
    "gl2_source_node",
    "target",
    "event_name",
    "severity_text",
    "trace_id",
    "otel.scope.name",
    "service.name",
    "host.name",
    "exception.type",
    "exception.stacktrace",
    "X-OVH-TOKEN",
];

/// Keys of map entries.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(SPECIAL_KEYS).prop_map(String::from),
        3 => short_text(16),
        2 => "[a-z]{1,6}(\\.[a-z]{1,6}){0,3}",
    ]
}

/// Keys of record attributes: map keys and very long ones.
fn top_key() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => key(),
        1 => (vec(any_char(), 1..=4), 256usize..=4096)
            .prop_map(|(unit, bytes)| repeat_to(&String::from_iter(unit), bytes)),
    ]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => any::<i64>(),
        1 => select(&[i64::MIN, i64::MAX, i64::MIN + 1, -1, 0, 1][..]),
    ]
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        2 => select(&[
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE / 4.0,
            -5e-324,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            0.1,
            1e21,
            9_007_199_254_740_993.0,
        ][..]),
    ]
}

fn leaf() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        2 => int().prop_map(AnyValue::Int),
        2 => double().prop_map(AnyValue::Double),
        4 => text().prop_map(|s| AnyValue::String(s.into())),
        1 => any::<bool>().prop_map(AnyValue::Boolean),
        1 => vec(any::<u8>(), 0..48).prop_map(|b| AnyValue::Bytes(Box::new(b))),
    ]
}

fn map_of(entries: Vec<(String, AnyValue)>) -> AnyValue {
    let map: HashMap<Key, AnyValue> = entries
        .into_iter()
        .map(|(k, v)| (Key::from(k), v))
        .collect();
    AnyValue::Map(Box::new(map))
}

fn value() -> impl Strategy<Value = AnyValue> {
    leaf().prop_recursive(10, 40, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| AnyValue::ListAny(Box::new(items))),
            vec((key(), inner), 0..4).prop_map(map_of),
        ]
    })
}

/// A chain of one-entry maps, up to past the flattening depth.
fn deep_map() -> impl Strategy<Value = AnyValue> {
    (vec(key(), 1..=12), leaf()).prop_map(|(keys, leaf)| {
        keys.into_iter()
            .rev()
            .fold(leaf, |inner, k| map_of(vec![(k, inner)]))
    })
}

fn attribute_value() -> impl Strategy<Value = AnyValue> {
    prop_oneof![8 => value(), 1 => deep_map()]
}

fn attributes() -> impl Strategy<Value = Vec<(String, AnyValue)>> {
    (
        vec((top_key(), attribute_value()), 0..8),
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
}

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

fn severity_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => short_text(12),
        1 => select(&["WARN", "error2", " info ", "CRIT", "fatal", "Emergency", ""][..])
            .prop_map(String::from),
    ]
}

fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => short_text(16),
        1 => select(&["user.login", "event src/main.rs:3", " ", "event"][..]).prop_map(String::from),
    ]
}

fn timestamp() -> impl Strategy<Value = SystemTime> {
    const YEAR: u64 = 31_556_952;
    let after = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
    let before = |secs: u64, nanos: u32| {
        UNIX_EPOCH
            .checked_sub(Duration::new(secs, nanos))
            .unwrap_or(UNIX_EPOCH)
    };
    prop_oneof![
        6 => (0..130 * YEAR, 0..1_000_000_000u32).prop_map(move |(s, n)| after(s, n)),
        1 => (0..2u64, 0..2_000u32).prop_map(move |(s, n)| after(s, n)),
        1 => (0..3_000 * YEAR, 0..1_000_000_000u32).prop_map(move |(s, n)| before(s, n)),
        1 => (130 * YEAR..20_000 * YEAR, 0..1_000_000_000u32).prop_map(move |(s, n)| after(s, n)),
    ]
}

fn multi_line_text() -> impl Strategy<Value = String> {
    (
        vec(short_text(12), 2..5),
        select(&["\n", "\r\n", "\n\n"][..]),
    )
        .prop_map(|(lines, end)| lines.join(end))
}

fn body() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        3 => text().prop_map(|s| AnyValue::String(s.into())),
        2 => multi_line_text().prop_map(|s| AnyValue::String(s.into())),
        3 => attribute_value(),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        proptest::option::of(body()),
        attributes(),
        proptest::option::of(select(SEVERITIES)),
        proptest::option::of(severity_text()),
        proptest::option::of(timestamp()),
        proptest::option::of(text()),
        proptest::option::of(event_name()),
    )
        .prop_map(
            |(body, attributes, severity, severity_text, timestamp, target, event_name)| Record {
                body,
                attributes,
                severity,
                severity_text,
                timestamp,
                target,
                event_name,
            },
        )
}

/// Records with at least one value far over 4 KiB, in the body, an attribute,
/// the target, or several of them.
fn oversized_record() -> impl Strategy<Value = Record> {
    (
        record(),
        long_text(5_000, 100_000),
        top_key(),
        0..4u8,
        any::<Index>(),
    )
        .prop_map(|(mut record, huge, key, place, index)| {
            if place == 0 || place == 3 {
                record.body = Some(AnyValue::String(huge.clone().into()));
            }
            if place == 1 || place == 3 {
                let at = index.index(record.attributes.len() + 1);
                record
                    .attributes
                    .insert(at, (key, AnyValue::String(huge.clone().into())));
            }
            if place == 2 || place == 3 {
                record.target = Some(huge);
            }
            record
        })
}

// ---------------------------------------------------------------------------
// What the mapping rules promise
// ---------------------------------------------------------------------------

const RESERVED_KEYS: &[&str] = &[
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

/// A field name as the exporter writes it (dots replaced), without any prefix.
fn normalized(raw: &str) -> String {
    let mut key: String = if raw.is_empty() {
        "empty_key".to_string()
    } else {
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if RESERVED_KEYS.contains(&key.as_str()) {
        key.push('_');
    } else if key.starts_with("gl2_") {
        key.insert(0, '_');
    }
    key
}

/// Blank as Graylog sees it (it trims every character up to U+0020), and
/// Unicode white space.
fn blank(text: &str) -> bool {
    text.chars().all(|c| c <= ' ' || c.is_whitespace())
}

/// What a field's value must be.
#[derive(Debug)]
enum Expected {
    Int(i64),
    Float(f64),
    /// A text, before blank quoting and truncation.
    Text(String),
    /// The JSON text of a list or an unflattened map.
    Json(Value),
}

fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn non_finite_text(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn to_json(value: &AnyValue) -> Value {
    match value {
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(f) if f.is_finite() => Value::from(*f),
        AnyValue::Double(f) => Value::from(f.to_string()),
        AnyValue::String(s) => Value::from(s.as_str()),
        AnyValue::Boolean(b) => Value::from(*b),
        AnyValue::Bytes(b) => Value::from(base64_text(b)),
        AnyValue::ListAny(list) => Value::Array(list.iter().map(to_json).collect()),
        AnyValue::Map(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
        _ => Value::Null,
    }
}

fn expected_scalar(value: &AnyValue) -> Expected {
    match value {
        AnyValue::Int(i) => Expected::Int(*i),
        AnyValue::Double(f) if f.is_finite() => Expected::Float(*f),
        AnyValue::Double(f) => Expected::Text(non_finite_text(*f).to_string()),
        AnyValue::String(s) => Expected::Text(s.as_str().to_string()),
        AnyValue::Boolean(b) => Expected::Text(b.to_string()),
        AnyValue::Bytes(b) => Expected::Text(base64_text(b)),
        other => Expected::Json(to_json(other)),
    }
}

/// The fields one attribute becomes: one per leaf of a map (nested maps
/// joined with `_`), one for anything else.
fn attribute_fields(key: &str, value: &AnyValue, depth: usize, out: &mut Vec<(String, Expected)>) {
    match value {
        AnyValue::Map(map) if !map.is_empty() && depth < FLATTEN_DEPTH => {
            for (sub, inner) in map.iter() {
                let mut nested = Vec::new();
                attribute_fields(sub.as_str(), inner, depth + 1, &mut nested);
                for (nested_key, expected) in nested {
                    out.push((normalized(&format!("{key}_{nested_key}")), expected));
                }
            }
        }
        other => out.push((normalized(key), expected_scalar(other))),
    }
}

/// The field names the record's attributes must show up under, and for the
/// names exactly one leaf maps to, the value it must carry.
fn expected_fields(record: &Record) -> (BTreeSet<String>, Vec<(String, Expected)>) {
    let mut names = BTreeSet::new();
    let mut sources: HashMap<String, usize> = HashMap::new();
    let mut all = Vec::new();
    for (key, value) in &record.attributes {
        let mut fields = Vec::new();
        attribute_fields(key, value, 0, &mut fields);
        for (name, expected) in fields {
            let stacktrace = key == "exception.stacktrace";
            // A stack trace may go to full_message instead: never a sure source.
            *sources.entry(name.clone()).or_default() += if stacktrace { 2 } else { 1 };
            if !stacktrace {
                names.insert(name.clone());
                all.push((name, expected));
            }
        }
    }
    let unique = all
        .into_iter()
        .filter(|(name, _)| sources[name] == 1)
        .collect();
    (names, unique)
}

/// serde_json's default float parser may miss the nearest double by a few
/// units in the last place.
fn close(got: f64, want: f64) -> bool {
    got == want
        || (got.is_sign_negative() == want.is_sign_negative()
            && got.to_bits().abs_diff(want.to_bits()) <= 16)
}

/// JSON equality with doubles compared as [`close`].
fn json_close(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => match (g.as_i64(), w.as_i64()) {
            (Some(g), Some(w)) => g == w,
            _ => match (g.as_f64(), w.as_f64()) {
                (Some(g), Some(w)) => close(g, w),
                _ => false,
            },
        },
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(g, w)| json_close(g, w))
        }
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len()
                && w.iter()
                    .all(|(k, w)| g.get(k).is_some_and(|g| json_close(g, w)))
        }
        (g, w) => g == w,
    }
}

/// A value as received: a JSON value (GELF) or a text (LTSV).
enum Got<'a> {
    Json(&'a Value),
    Text(&'a str),
}

/// Checks that a text value is the expected one, quoted if blank, cut and
/// marked if over the field cap.
fn check_text(name: &str, got: &str, want: &str) {
    if blank(want) {
        // Quoted so Graylog keeps it, then capped like any other value.
        let quoted = format!("\"{want}\"");
        if quoted.len() <= FIELD_CAP {
            assert_eq!(got, quoted, "blank {name:?} must be sent quoted");
        } else {
            assert!(
                got.len() <= FIELD_CAP
                    && got.ends_with(MARKER)
                    && quoted.starts_with(&got[..got.len() - MARKER.len()]),
                "long blank {name:?} must be quoted, cut and marked, got {}",
                brief(got)
            );
        }
    } else if want.len() > FIELD_CAP {
        assert!(
            got.len() <= FIELD_CAP && got.ends_with(MARKER),
            "{name:?} ({} bytes) must be cut to {FIELD_CAP} bytes and marked, got {}",
            want.len(),
            brief(got)
        );
        let kept = &got[..got.len() - MARKER.len()];
        assert!(
            want.starts_with(kept),
            "{name:?}: the cut value {} is not a head of the original",
            brief(got)
        );
    } else {
        assert!(
            got == want,
            "{name:?}: sent {}, expected {}",
            brief(got),
            brief(want)
        );
    }
}

fn check_value(name: &str, got: Got<'_>, want: &Expected) {
    let text = match got {
        Got::Json(Value::String(s)) => Some(s.as_str()),
        Got::Text(s) => Some(s),
        Got::Json(_) => None,
    };
    match (want, got) {
        (Expected::Int(i), Got::Json(v)) => {
            assert_eq!(v.as_i64(), Some(*i), "{name:?}: sent {v}, expected {i}")
        }
        (Expected::Int(i), Got::Text(t)) => {
            assert_eq!(t, i.to_string(), "{name:?}: sent {t:?}, expected {i}")
        }
        (Expected::Float(f), Got::Json(v)) => assert!(
            v.is_number() && v.as_f64().is_some_and(|g| close(g, *f)),
            "{name:?}: sent {v}, expected {f:e}"
        ),
        (Expected::Float(f), Got::Text(t)) => assert!(
            t.parse::<f64>().is_ok_and(|g| close(g, *f)),
            "{name:?}: sent {t:?}, expected {f:e}"
        ),
        (Expected::Text(want), _) => {
            let got = text.unwrap_or_else(|| panic!("{name:?}: expected a string"));
            check_text(name, got, want);
        }
        (Expected::Json(want), _) => {
            let got = text.unwrap_or_else(|| panic!("{name:?}: expected JSON text"));
            let want_text = want.to_string();
            if want_text.len() > FIELD_CAP {
                assert!(
                    got.len() <= FIELD_CAP && got.ends_with(MARKER),
                    "{name:?}: long JSON must be cut and marked, got {}",
                    brief(got)
                );
            } else {
                let parsed: Value = serde_json::from_str(got)
                    .unwrap_or_else(|e| panic!("{name:?}: {} is not JSON text: {e}", brief(got)));
                assert!(
                    json_close(&parsed, want),
                    "{name:?}: sent {}, expected {}",
                    brief(got),
                    brief(&want_text)
                );
            }
        }
    }
}

/// The body as the message text, for the body types whose rendering is plain.
fn plain_body(body: &AnyValue) -> Option<String> {
    match body {
        AnyValue::String(s) => Some(s.as_str().to_string()),
        AnyValue::Int(i) => Some(i.to_string()),
        AnyValue::Boolean(b) => Some(b.to_string()),
        AnyValue::Bytes(b) => Some(base64_text(b)),
        _ => None,
    }
}

/// Checks the messages: a one-line body is the short message as it is; a
/// multi-line body is the full message (possibly followed by a stack trace)
/// and its first non-blank line the short message.
fn check_messages(record: &Record, short: &str, full: Option<&str>) {
    let Some(body) = record
        .body
        .as_ref()
        .and_then(plain_body)
        .filter(|b| !blank(b))
    else {
        return;
    };
    if body.contains('\n') {
        let full = full.unwrap_or_else(|| panic!("multi-line body without full_message"));
        assert!(
            full.starts_with(&body),
            "full_message {} does not start with the body {}",
            brief(full),
            brief(&body)
        );
        let first = body.lines().find(|l| !blank(l)).unwrap_or("");
        assert_eq!(
            short, first,
            "short_message must be the first non-blank line"
        );
    } else {
        assert!(
            short == body,
            "short_message {} is not the body {}",
            brief(short),
            brief(&body)
        );
    }
}

// ---------------------------------------------------------------------------
// The pipeline: SDK provider, exporter, receiver
// ---------------------------------------------------------------------------

/// Counts the exports and keeps the last error (the simple processor only
/// logs it).
#[derive(Debug, Default)]
struct Exports {
    calls: AtomicUsize,
    error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Watched<E> {
    inner: E,
    exports: Arc<Exports>,
}

impl<E: LogExporter> LogExporter for Watched<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.exports.calls.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = &result {
            *self.exports.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

struct Pipeline {
    receiver: Receiver,
    provider: SdkLoggerProvider,
    logger: SdkLogger,
    exports: Arc<Exports>,
    frames: usize,
    /// Set while a case runs: a case that did not finish leaves it set, and
    /// the next case starts on a fresh pipeline.
    dirty: bool,
}

impl Pipeline {
    fn start<E: LogExporter + 'static>(framing: Framing, make: &dyn Fn(String) -> E) -> Pipeline {
        let receiver = Receiver::tcp(framing);
        let exports = Arc::new(Exports::default());
        let exporter = Watched {
            inner: make(format!("tcp://127.0.0.1:{}", receiver.port())),
            exports: Arc::clone(&exports),
        };
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        let logger = provider.logger("p");
        Pipeline {
            receiver,
            provider,
            logger,
            exports,
            frames: 0,
            dirty: false,
        }
    }

    /// Emits one record and returns the one frame it became.
    fn send(&mut self, record: &Record) -> Vec<u8> {
        let calls = self.exports.calls.load(Ordering::SeqCst);
        emit(&self.logger, record);
        assert_eq!(
            self.exports.calls.load(Ordering::SeqCst),
            calls + 1,
            "the record was not exported"
        );
        if let Some(error) = self
            .exports
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            panic!("the export failed: {error}");
        }
        let mut frames = self.receiver.wait_frames(self.frames + 1, WAIT);
        assert_eq!(
            frames.len(),
            self.frames + 1,
            "one record must arrive as exactly one frame; the last ones are {:?}",
            frames
                .iter()
                .skip(self.frames)
                .map(|f| show_bytes(f))
                .collect::<Vec<_>>()
        );
        self.frames += 1;
        frames.pop().expect("one frame")
    }

    /// Shuts the provider down and checks that nothing else arrived.
    fn finish(self) {
        let Pipeline {
            receiver,
            provider,
            frames,
            ..
        } = self;
        provider.shutdown().expect("shut the provider down");
        assert_eq!(
            receiver.connections(),
            1,
            "the records must share one connection"
        );
        receiver.wait_closed(1, WAIT);
        receiver.assert_no_partial();
        assert_eq!(
            receiver.frames().len(),
            frames,
            "frames beyond one per record"
        );
        assert_eq!(receiver.errors(), Vec::<String>::new());
    }
}

/// Runs `check` on the frame of each generated record, all sent through one
/// pipeline (rebuilt only after a failed case).
fn run_property<S, E>(
    cases: u32,
    strategy: S,
    framing: Framing,
    make: impl Fn(String) -> E,
    check: impl Fn(&Record, &[u8]),
) where
    S: Strategy<Value = Record>,
    E: LogExporter + 'static,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let pipeline: RefCell<Option<Pipeline>> = RefCell::new(None);
    let result = runner.run(&strategy, |record| {
        let mut slot = pipeline.borrow_mut();
        if slot.as_ref().is_none_or(|p| p.dirty) {
            *slot = None;
            *slot = Some(Pipeline::start(framing, &make));
        }
        let p = slot.as_mut().expect("a pipeline");
        p.dirty = true;
        let frame = p.send(&record);
        check(&record, &frame);
        p.dirty = false;
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    if let Some(p) = pipeline.into_inner() {
        p.finish();
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn check_gelf(record: &Record, frame: &[u8]) {
    assert!(!frame.contains(&0), "NUL byte inside a GELF frame");
    let object = assert_graylog_accepts(frame);
    let show = || show_bytes(frame);

    let level = object["level"].as_u64().expect("numeric level");
    assert!(level <= 7, "level {level}");
    let short = object["short_message"].as_str().expect("string message");
    assert!(!blank(short), "blank short_message");

    if let Some(time) = record.timestamp {
        // Times GELF cannot carry (not after the epoch by 1 µs, or past the
        // year 9999) fall back to the observed time.
        let sendable = time
            .duration_since(UNIX_EPOCH)
            .ok()
            .filter(|d| d.as_micros() > 0 && d.as_secs() < 253_402_300_800);
        if let Some(since) = sendable {
            let want = since.as_secs() as f64 + f64::from(since.subsec_micros()) / 1e6;
            let got = object["timestamp"].as_f64().expect("numeric timestamp");
            assert!(
                (got - want).abs() <= 2e-6 + want * 1e-15,
                "timestamp {got} for a record of {want}"
            );
        }
    }

    let (names, values) = expected_fields(record);
    let additional = object.keys().filter(|k| k.starts_with('_')).count();
    assert!(
        additional >= names.len(),
        "{additional} additional fields for {} distinct attribute names",
        names.len()
    );
    for name in &names {
        assert!(
            object.contains_key(&format!("_{name}")),
            "attribute field \"_{name}\" is missing from {}",
            show()
        );
    }

    // Near the frame limit the exporter may have cut values to fit.
    if frame.len() + 128 * 1024 < DEFAULT_FRAME {
        for (name, want) in &values {
            let key = format!("_{name}");
            check_value(&key, Got::Json(&object[&key]), want);
        }
        let full = object.get("full_message").and_then(Value::as_str);
        check_messages(record, short, full);
    }
}

fn check_ltsv(record: &Record, line: &[u8]) {
    let fields = assert_ltsv_line_ok(line);
    let labels: HashMap<&str, &str> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let level: u8 = labels["level"].parse().expect("numeric level");
    assert!(level <= 7, "level {level}");
    assert!(!blank(labels["message"]), "blank message");
    assert!(!blank(labels["host"]), "blank host");

    let (names, values) = expected_fields(record);
    for name in &names {
        assert!(
            labels.contains_key(name.as_str()),
            "attribute label {name:?} is missing from {}",
            show_bytes(line)
        );
    }
    if line.len() + 128 * 1024 < DEFAULT_FRAME {
        for (name, want) in &values {
            check_value(name, Got::Text(labels[name.as_str()]), want);
        }
        check_messages(
            record,
            labels["message"],
            labels.get("full_message").copied(),
        );
    }
}

#[test]
fn any_record_becomes_one_gelf_frame_graylog_accepts_whole() {
    run_property(
        256,
        record(),
        Framing::Nul,
        |endpoint| {
            GelfExporter::builder()
                .with_endpoint(endpoint)
                .build()
                .expect("build the exporter")
        },
        check_gelf,
    );
}

#[test]
fn oversized_records_fit_a_small_gelf_frame_and_stay_valid() {
    run_property(
        32,
        oversized_record(),
        Framing::Nul,
        |endpoint| {
            GelfExporter::builder()
                .with_endpoint(endpoint)
                .with_max_frame_size(SMALL_FRAME)
                .build()
                .expect("build the exporter")
        },
        |_, frame| {
            assert!(
                frame.len() < SMALL_FRAME,
                "{} bytes and the delimiter exceed the {SMALL_FRAME}-byte frame limit",
                frame.len()
            );
            let object = assert_graylog_accepts(frame);
            assert!(object["level"].as_u64().is_some_and(|l| l <= 7));
        },
    );
}

#[test]
fn any_record_becomes_one_valid_ltsv_line() {
    run_property(
        128,
        record(),
        Framing::Newline,
        |endpoint| {
            LtsvExporter::builder()
                .with_endpoint(endpoint)
                .build()
                .expect("build the exporter")
        },
        check_ltsv,
    );
}

#[test]
fn any_record_becomes_one_valid_nul_framed_ltsv_record() {
    run_property(
        128,
        record(),
        Framing::Nul,
        |endpoint| {
            LtsvExporter::builder()
                .with_endpoint(endpoint)
                .with_framing(djehouty::Framing::Nul)
                .build()
                .expect("build the exporter")
        },
        check_ltsv,
    );
}
