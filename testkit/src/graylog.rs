//! Strict checkers for what the receiving platforms accept.
//!
//! [`assert_graylog_accepts`] checks one GELF 1.1 frame (without its NUL
//! delimiter) against the rules that Graylog's GELF TCP input and the OVHcloud
//! Logs Data Platform apply before they index a message whole. It is a little
//! stricter than Graylog on two points the exporter always honours:
//! `timestamp` and `level` must be present.
//!
//! [`assert_ltsv_line_ok`] checks one LTSV line (without its delimiter) as the
//! exporter writes it: TAB-separated `label:value` fields, values escaped with
//! `\\`, `\t`, `\n`, `\r` and `\0`, and the labels `time`, `host`, `level`
//! and `message` present.
//!
//! Both panic with a message that starts with `GELF rule broken:` or
//! `LTSV rule broken:` and names the rule, then shows the input.

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

use super::show_bytes;

/// Largest frame Graylog's GELF TCP input accepts (2 MiB).
pub const MAX_GELF_FRAME: usize = 2 * 1024 * 1024;

/// Largest string value of an additional field that can be indexed
/// (Elasticsearch/OpenSearch keyword term limit, in bytes).
pub const MAX_FIELD_VALUE_BYTES: usize = 32_766;

/// The GELF fields that need no `_` prefix.
const STANDARD_FIELDS: [&str; 6] = [
    "version",
    "host",
    "short_message",
    "full_message",
    "timestamp",
    "level",
];

/// The labels every LTSV line must carry.
const REQUIRED_LTSV_LABELS: [&str; 4] = ["time", "host", "level", "message"];

/// The member names of the top-level object of `text`, in document order,
/// duplicates kept. `text` must already be known to be one valid JSON object.
///
/// serde_json keeps only the last of duplicated members, so the names are
/// read from the text: a string that closes at depth 1 and is followed by a
/// colon is a member name of the top-level object.
fn top_level_member_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                let start = i;
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let literal = &text[start..=i];
                let next = bytes[i + 1..].iter().find(|b| !b.is_ascii_whitespace());
                if depth == 1 && next == Some(&b':') {
                    let name: String =
                        serde_json::from_str(literal).expect("a member name of valid JSON");
                    names.push(name);
                }
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// Blank to Graylog, which trims strings with Java's `String.trim()`: every
/// character up to U+0020 goes, control characters included.
fn java_blank(text: &str) -> bool {
    text.chars().all(|c| c <= ' ')
}

fn gelf_broken(rule: &str, detail: impl fmt::Display, frame: &[u8]) -> ! {
    panic!(
        "GELF rule broken: {rule}: {detail}\nframe ({} bytes): {}",
        frame.len(),
        show_bytes(frame)
    )
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_additional_field_name(name: &str) -> bool {
    name.len() > 1
        && name.starts_with('_')
        && name[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'))
}

/// Checks that Graylog and OVHcloud Logs Data Platform would accept `frame`
/// (a GELF frame without its NUL delimiter) whole, and returns its members.
///
/// Rules, each named in the panic message when broken:
/// - `frame size`: at most 2 MiB;
/// - `UTF-8`: the frame is valid UTF-8;
/// - `JSON object`: the frame is one JSON object and nothing else;
/// - `duplicate key`: no member name appears twice;
/// - `version`: `"1.1"`;
/// - `host`: a string that is not blank;
/// - `short_message`: a string that is not blank after trimming;
/// - `full_message`: a string, if present;
/// - `timestamp`: a number greater than 0;
/// - `level`: an integer from 0 to 7;
/// - `field name`: every other name matches `^_[A-Za-z0-9_.\-@]+$` and is
///   not `_id`;
/// - `field value`: every other value is a number, or a string that is not
///   blank after trimming and has at most 32,766 bytes.
pub fn assert_graylog_accepts(frame: &[u8]) -> Map<String, Value> {
    if frame.len() > MAX_GELF_FRAME {
        gelf_broken(
            "frame size",
            format!(
                "{} bytes is over the {MAX_GELF_FRAME}-byte limit",
                frame.len()
            ),
            frame,
        );
    }
    let text = match std::str::from_utf8(frame) {
        Ok(text) => text,
        Err(e) => gelf_broken("UTF-8", e, frame),
    };
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(other) => gelf_broken(
            "JSON object",
            format!("the frame is a JSON {}", json_type(&other)),
            frame,
        ),
        Err(e) => gelf_broken("JSON object", e, frame),
    };
    let mut seen = HashSet::new();
    for name in top_level_member_names(text) {
        if !seen.insert(name.clone()) {
            gelf_broken(
                "duplicate key",
                format!("{name:?} appears more than once"),
                frame,
            );
        }
    }

    match object.get("version") {
        Some(Value::String(v)) if v == "1.1" => {}
        Some(other) => gelf_broken("version", format!("must be \"1.1\", is {other}"), frame),
        None => gelf_broken("version", "missing", frame),
    }
    match object.get("host") {
        Some(Value::String(h)) if !java_blank(h) => {}
        Some(other) => gelf_broken(
            "host",
            format!("must be a non-blank string, is {other}"),
            frame,
        ),
        None => gelf_broken("host", "missing", frame),
    }
    match object.get("short_message") {
        Some(Value::String(m)) if !java_blank(m) => {}
        Some(other) => gelf_broken(
            "short_message",
            format!("must be a string that is not blank after trimming, is {other}"),
            frame,
        ),
        None => gelf_broken("short_message", "missing", frame),
    }
    match object.get("full_message") {
        None | Some(Value::String(_)) => {}
        Some(other) => gelf_broken(
            "full_message",
            format!("must be a string, is a {}", json_type(other)),
            frame,
        ),
    }
    match object.get("timestamp") {
        Some(Value::Number(n)) if n.as_f64().is_some_and(|t| t > 0.0) => {}
        Some(other) => gelf_broken(
            "timestamp",
            format!("must be a number greater than 0, is {other}"),
            frame,
        ),
        None => gelf_broken("timestamp", "missing", frame),
    }
    match object.get("level") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|l| l <= 7) => {}
        Some(other) => gelf_broken(
            "level",
            format!("must be an integer from 0 to 7, is {other}"),
            frame,
        ),
        None => gelf_broken("level", "missing", frame),
    }

    for (name, value) in &object {
        if STANDARD_FIELDS.contains(&name.as_str()) {
            continue;
        }
        if !is_additional_field_name(name) {
            gelf_broken(
                "field name",
                format!("{name:?} does not match ^_[A-Za-z0-9_.\\-@]+$"),
                frame,
            );
        }
        if name == "_id" {
            gelf_broken("field name", "\"_id\" is reserved", frame);
        }
        match value {
            Value::Number(_) => {}
            Value::String(s) if java_blank(s) => gelf_broken(
                "field value",
                format!("{name:?} is a blank string, {s:?}"),
                frame,
            ),
            Value::String(s) if s.len() > MAX_FIELD_VALUE_BYTES => gelf_broken(
                "field value",
                format!(
                    "{name:?} has {} bytes, over the {MAX_FIELD_VALUE_BYTES}-byte limit",
                    s.len()
                ),
                frame,
            ),
            Value::String(_) => {}
            other => gelf_broken(
                "field value",
                format!(
                    "{name:?} is a {}; only numbers and strings are accepted",
                    json_type(other)
                ),
                frame,
            ),
        }
    }
    object
}

fn ltsv_broken(rule: &str, detail: impl fmt::Display, line: &[u8]) -> ! {
    panic!(
        "LTSV rule broken: {rule}: {detail}\nline ({} bytes): {}",
        line.len(),
        show_bytes(line)
    )
}

fn is_ltsv_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Reverses the exporter's value escaping; `None` for an unknown escape or a
/// lone trailing backslash.
pub fn unescape_ltsv_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            '0' => '\0',
            _ => return None,
        });
    }
    Some(out)
}

/// Checks one LTSV line (without its delimiter) and returns its fields in
/// order, values unescaped.
///
/// Rules, each named in the panic message when broken:
/// - `UTF-8`: the line is valid UTF-8;
/// - `control character`: no CR, LF or NUL anywhere;
/// - `field`: TAB-separated fields, each `label:value` (so no raw TAB inside
///   a value and no empty field);
/// - `label`: each label matches `^[0-9A-Za-z_.\-]+$`;
/// - `duplicate label`: no label appears twice;
/// - `escape`: a backslash in a value starts one of `\\`, `\t`, `\n`, `\r`,
///   `\0`;
/// - `required label`: `time`, `host`, `level` and `message` are present.
pub fn assert_ltsv_line_ok(line: &[u8]) -> Vec<(String, String)> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => ltsv_broken("UTF-8", e, line),
    };
    if let Some(pos) = line.iter().position(|b| matches!(b, b'\r' | b'\n' | 0)) {
        ltsv_broken(
            "control character",
            format!("raw byte 0x{:02x} at offset {pos}", line[pos]),
            line,
        );
    }
    let mut fields = Vec::new();
    let mut seen = HashSet::new();
    for (index, field) in text.split('\t').enumerate() {
        let Some((label, value)) = field.split_once(':') else {
            ltsv_broken(
                "field",
                format!("field {index} ({field:?}) is not label:value"),
                line,
            );
        };
        if !is_ltsv_label(label) {
            ltsv_broken(
                "label",
                format!("{label:?} does not match ^[0-9A-Za-z_.\\-]+$"),
                line,
            );
        }
        if !seen.insert(label) {
            ltsv_broken(
                "duplicate label",
                format!("{label:?} appears more than once"),
                line,
            );
        }
        let Some(value) = unescape_ltsv_value(value) else {
            ltsv_broken(
                "escape",
                format!("value of {label:?} ({value:?}) has an invalid backslash escape"),
                line,
            );
        };
        fields.push((label.to_string(), value));
    }
    for required in REQUIRED_LTSV_LABELS {
        if !seen.contains(required) {
            ltsv_broken("required label", format!("{required:?} is missing"), line);
        }
    }
    fields
}
