//! Oracles independent of the code under test: Graylog's blankness rule
//! written out by hand, JSON values built with serde_json, base64 from the
//! `base64` crate.

use base64::Engine as _;
use opentelemetry::logs::AnyValue;
use serde_json::{Map, Value};

/// Blank as Graylog sees it (it trims every character up to U+0020), and
/// Unicode white space.
pub fn blank(text: &str) -> bool {
    text.chars().all(|c| c <= ' ' || c.is_whitespace())
}

pub fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn non_finite_text(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

pub fn to_json(value: &AnyValue) -> Value {
    match value {
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(f) if f.is_finite() => Value::from(*f),
        AnyValue::Double(f) => Value::from(non_finite_text(*f)),
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

/// serde_json's default float parser may miss the nearest double by a few
/// units in the last place.
pub fn close(got: f64, want: f64) -> bool {
    got == want
        || (got.is_sign_negative() == want.is_sign_negative()
            && got.to_bits().abs_diff(want.to_bits()) <= 16)
}

/// JSON equality with doubles compared as [`close`].
pub fn json_close(got: &Value, want: &Value) -> bool {
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

/// Names Graylog and its index reserve: a user's field of that name must be
/// renamed. Written out here, apart from the exporter's own list.
pub const RESERVED: &[&str] = &[
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
