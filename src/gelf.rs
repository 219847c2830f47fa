//! GELF 1.1: a JSON object per record.
//!
//! The object holds `version`, `host`, `short_message`, `full_message` (when
//! present), `timestamp` (seconds since the epoch with microseconds, written
//! exactly, not through a float), `level` and one `_`-prefixed additional field
//! per mapped field. JSON is written straight into the output buffer, strings
//! escaped by `serde_json` (control characters, NUL included, become `\uXXXX`,
//! so a NUL byte never appears inside a frame).

use std::io::Write as _;

use crate::config::Framing;
use crate::format::Format;
use crate::mapping::{epoch_micros, FieldValue, MappedRecord};

/// The GELF 1.1 format (Graylog Extended Log Format).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gelf;

impl Format for Gelf {
    const NAME: &'static str = "GELF";
    const ENV_ENDPOINT: &'static str = "OTEL_EXPORTER_GELF_ENDPOINT";
    const ENV_CERTIFICATE: &'static str = "OTEL_EXPORTER_GELF_CERTIFICATE";
    const ENV_TIMEOUT: &'static str = "OTEL_EXPORTER_GELF_TIMEOUT";
    const DEFAULT_FRAMING: Framing = Framing::Nul;

    fn ldp_port(_framing: Framing) -> u16 {
        // LDP's GELF input takes NUL framing only.
        12202
    }

    fn encode(record: &MappedRecord<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"version\":\"1.1\",\"host\":");
        json_str(out, record.host);
        out.extend_from_slice(b",\"short_message\":");
        json_str(out, &record.short_message);
        if let Some(full) = &record.full_message {
            out.extend_from_slice(b",\"full_message\":");
            json_str(out, full);
        }
        let (secs, micros) = epoch_micros(record.time);
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            ",\"timestamp\":{secs}.{micros:06},\"level\":{}",
            record.level
        );
        for field in &record.fields {
            out.extend_from_slice(b",\"_");
            json_str_body(out, &field.key);
            out.extend_from_slice(field.suffix.as_bytes());
            out.extend_from_slice(b"\":");
            match &field.value {
                FieldValue::Str(s) => json_str(out, s),
                FieldValue::Int(i) => {
                    let _ = write!(out, "{i}");
                }
                FieldValue::Float(f) => json_float(out, *f),
            }
        }
        out.push(b'}');
    }
}

/// Writes a JSON string, quotes included.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes a key already limited to `[A-Za-z0-9_.-]`: nothing to escape.
fn json_str_body(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(key.as_bytes());
}

/// Writes a finite double as a JSON number (shortest round-trip form).
pub(crate) fn json_float(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &f);
    } else {
        // The mapping never produces these; stay valid JSON regardless.
        json_str(out, &f.to_string());
    }
}
