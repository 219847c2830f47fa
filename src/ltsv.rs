//! LTSV (Labeled Tab-separated Values): one `label:value` list per record.
//!
//! Labels come first in this order: `time` (RFC 3339, UTC, microseconds),
//! `host`, `level` (syslog 0–7), `message`, `full_message` (when present), then
//! one label per mapped field. Labels are limited to `[0-9A-Za-z_.-]` by the
//! mapping. Values escape the backslash as `\\`, TAB as `\t`, LF as `\n`, CR as
//! `\r` and NUL as `\0`, so a record is always exactly one line and never holds a
//! delimiter byte, whichever framing is used.

use std::io::Write as _;

use crate::config::Framing;
use crate::format::Format;
use crate::gelf::{json_float, push_int};
use crate::mapping::{Field, FieldValue, MappedRecord};

/// The LTSV format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ltsv;

impl Format for Ltsv {
    const NAME: &'static str = "LTSV";
    const ENV_ENDPOINT: &'static str = "OTEL_EXPORTER_LTSV_ENDPOINT";
    const ENV_CERTIFICATE: &'static str = "OTEL_EXPORTER_LTSV_CERTIFICATE";
    const ENV_TIMEOUT: &'static str = "OTEL_EXPORTER_LTSV_TIMEOUT";
    const DEFAULT_FRAMING: Framing = Framing::Newline;

    fn ldp_port(framing: Framing) -> u16 {
        match framing {
            Framing::Nul => 12200,
            Framing::Newline => 12201,
        }
    }

    fn encode(record: &MappedRecord<'_>, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "time:{}",
            humantime::format_rfc3339_micros(record.time)
        );
        out.extend_from_slice(b"\thost:");
        escaped(out, record.host);
        out.extend_from_slice(b"\tlevel:");
        push_int(out, record.level);
        out.extend_from_slice(b"\tmessage:");
        escaped(out, &record.short_message);
        if let Some(full) = &record.full_message {
            out.extend_from_slice(b"\tfull_message:");
            escaped(out, full);
        }
        if let Some(statics) = &record.statics {
            out.extend_from_slice(statics.head);
        }
        for field in &record.fields {
            Self::encode_field(field, out);
        }
        if let Some(statics) = &record.statics {
            out.extend_from_slice(statics.tail);
        }
    }

    #[inline]
    fn encode_field(field: &Field<'_>, out: &mut Vec<u8>) {
        out.push(b'\t');
        out.extend_from_slice(field.key.as_bytes());
        out.extend_from_slice(field.suffix.as_bytes());
        out.push(b':');
        match &field.value {
            FieldValue::Str(s) => escaped(out, s),
            FieldValue::Int(i) => push_int(out, *i),
            FieldValue::Float(f) => json_float(out, *f),
        }
    }
}

/// Appends a value with `\`, TAB, LF, CR and NUL escaped.
fn escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"\\0",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(replacement);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_delimiters() {
        let mut out = Vec::new();
        escaped(&mut out, "a\tb\nc\rd\\e\0f");
        assert_eq!(out, b"a\\tb\\nc\\rd\\\\e\\0f");
    }
}
