//! Generated log records, shared by the property tests and the fuzz tests:
//! texts, keys and values that stress escaping, trimming, key normalization,
//! flattening, truncation and time formatting. No generator leaves out an
//! input known to have broken the exporter once.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::Key;
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

// ---------------------------------------------------------------------------
// Generated records
// ---------------------------------------------------------------------------

/// One generated log record, as it is handed to the SDK.
#[derive(Clone)]
pub struct Record {
    pub body: Option<AnyValue>,
    pub attributes: Vec<(String, AnyValue)>,
    pub severity: Option<Severity>,
    pub severity_text: Option<String>,
    pub timestamp: Option<SystemTime>,
    pub target: Option<String>,
    pub event_name: Option<String>,
}

/// A string for diagnostics: long texts are cut and their length given.
pub fn brief(text: &str) -> String {
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

pub fn brief_value(value: &AnyValue) -> String {
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

pub fn describe_time(time: SystemTime) -> String {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => format!("epoch + {}.{:09}s", d.as_secs(), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            format!("epoch - {}.{:09}s", d.as_secs(), d.subsec_nanos())
        }
    }
}

/// The SDK takes severity texts and event names as `&'static str`.
pub fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

/// `record` as the SDK's record, ready to emit.
pub fn sdk_record(logger: &SdkLogger, record: &Record) -> SdkLogRecord {
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
    rec
}

pub fn emit(logger: &SdkLogger, record: &Record) {
    logger.emit(sdk_record(logger, record));
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

pub const SPECIAL_CHARS: &[char] = &[
    '\0', '\n', '\r', '\t', ' ', '.', '@', '_', '-', '\\', '"', '/', ':', '\u{7}', '\u{1b}',
    '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}', 'é', 'ß', '日', '😀',
];

pub fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('a', 'z'),
        3 => select(SPECIAL_CHARS),
    ]
}

pub fn short_text(max: usize) -> impl Strategy<Value = String> {
    vec(any_char(), 0..=max).prop_map(String::from_iter)
}

/// `unit` repeated until the text holds at least `bytes` bytes.
pub fn repeat_to(unit: &str, bytes: usize) -> String {
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
pub fn long_text(min: usize, max: usize) -> impl Strategy<Value = String> {
    let unit = prop_oneof![
        3 => vec(any_char(), 1..=6).prop_map(String::from_iter),
        1 => select(&[" ", "\t", "\n", "\0", "é", " \r\n", "\u{3000}"][..]).prop_map(String::from),
    ];
    (unit, min..=max).prop_map(|(unit, bytes)| repeat_to(&unit, bytes))
}

pub const SPECIAL_TEXTS: &[&str] = &[
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

pub const BLANK_CHARS: &[char] = &[
    ' ', '\t', '\n', '\r', '\u{b}', '\u{a0}', '\u{2028}', '\u{3000}',
];

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => short_text(24),
        3 => select(SPECIAL_TEXTS).prop_map(String::from),
        1 => vec(select(BLANK_CHARS), 0..8).prop_map(String::from_iter),
        1 => long_text(1, 100_000),
    ]
}

pub const SPECIAL_KEYS: &[&str] = &[
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
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => select(SPECIAL_KEYS).prop_map(String::from),
        30 => short_text(16),
        20 => "[a-z]{1,6}(\\.[a-z]{1,6}){0,3}",
        1 => long_key(),
    ]
}

/// A key past the longest name sent whole (255 bytes), made of a few
/// repeated characters; sometimes starting with `gl2_`, a reserved prefix.
pub fn long_key() -> impl Strategy<Value = String> {
    (vec(any_char(), 1..=4), 256usize..=1024, any::<bool>()).prop_map(|(unit, bytes, gl2)| {
        let key = repeat_to(&String::from_iter(unit), bytes);
        if gl2 {
            format!("gl2_{key}")
        } else {
            key
        }
    })
}

/// Keys of record attributes: map keys and very long ones.
pub fn top_key() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => key(),
        1 => (vec(any_char(), 1..=4), 256usize..=4096)
            .prop_map(|(unit, bytes)| repeat_to(&String::from_iter(unit), bytes)),
    ]
}

pub fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => any::<i64>(),
        1 => select(&[i64::MIN, i64::MAX, i64::MIN + 1, -1, 0, 1][..]),
    ]
}

pub fn double() -> impl Strategy<Value = f64> {
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

pub fn leaf() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        2 => int().prop_map(AnyValue::Int),
        2 => double().prop_map(AnyValue::Double),
        4 => text().prop_map(|s| AnyValue::String(s.into())),
        1 => any::<bool>().prop_map(AnyValue::Boolean),
        1 => vec(any::<u8>(), 0..48).prop_map(|b| AnyValue::Bytes(Box::new(b))),
    ]
}

pub fn map_of(entries: Vec<(String, AnyValue)>) -> AnyValue {
    let map: HashMap<Key, AnyValue> = entries
        .into_iter()
        .map(|(k, v)| (Key::from(k), v))
        .collect();
    AnyValue::Map(Box::new(map))
}

pub fn value() -> impl Strategy<Value = AnyValue> {
    leaf().prop_recursive(10, 40, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| AnyValue::ListAny(Box::new(items))),
            vec((key(), inner), 0..4).prop_map(map_of),
        ]
    })
}

/// A chain of one-entry maps, up to past the flattening depth.
pub fn deep_map() -> impl Strategy<Value = AnyValue> {
    (vec(key(), 1..=12), leaf()).prop_map(|(keys, leaf)| {
        keys.into_iter()
            .rev()
            .fold(leaf, |inner, k| map_of(vec![(k, inner)]))
    })
}

pub fn attribute_value() -> impl Strategy<Value = AnyValue> {
    prop_oneof![8 => value(), 1 => deep_map()]
}

pub fn attributes() -> impl Strategy<Value = Vec<(String, AnyValue)>> {
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

pub const SEVERITIES: &[Severity] = &[
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

pub fn severity_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => short_text(12),
        1 => select(&["WARN", "error2", " info ", "CRIT", "fatal", "Emergency", ""][..])
            .prop_map(String::from),
    ]
}

pub fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => short_text(16),
        1 => select(&["user.login", "event src/main.rs:3", " ", "event"][..]).prop_map(String::from),
    ]
}

pub fn timestamp() -> impl Strategy<Value = SystemTime> {
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

pub fn multi_line_text() -> impl Strategy<Value = String> {
    (
        vec(short_text(12), 2..5),
        select(&["\n", "\r\n", "\n\n"][..]),
    )
        .prop_map(|(lines, end)| lines.join(end))
}

pub fn body() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        3 => text().prop_map(|s| AnyValue::String(s.into())),
        2 => multi_line_text().prop_map(|s| AnyValue::String(s.into())),
        3 => attribute_value(),
    ]
}

pub fn record() -> impl Strategy<Value = Record> {
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
pub fn oversized_record() -> impl Strategy<Value = Record> {
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
