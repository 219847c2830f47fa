//! GELF 1.1: a JSON object per record.
//!
//! The object holds `version`, `host`, `short_message`, `full_message` (when
//! present), `timestamp` (seconds since the epoch with microseconds, written
//! exactly, not through a float), `level` and one `_`-prefixed additional field
//! per mapped field. JSON is written straight into the output buffer (a hot
//! path, so by hand): a string with nothing to escape is copied as is, any
//! other goes through `serde_json`'s escaper (control characters, NUL
//! included, become `\uXXXX`, so a NUL byte never appears inside a frame);
//! integers through `itoa`.

use crate::config::Framing;
use crate::format::{swar, Format};
use crate::mapping::{Field, FieldValue, MappedRecord};

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
        let (secs, micros) = (record.time.secs, record.time.micros);
        out.extend_from_slice(b",\"timestamp\":");
        push_int(out, secs);
        out.push(b'.');
        // Six digits, zero-padded (micros < 1,000,000).
        let mut digits = [b'0'; 6];
        let mut rest = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b",\"level\":");
        push_int(out, record.level);
        if let Some(statics) = &record.statics {
            out.extend_from_slice(statics.head);
        }
        for field in &record.fields {
            Self::encode_field(field, out);
        }
        if let Some(statics) = &record.statics {
            out.extend_from_slice(statics.tail);
        }
        out.push(b'}');
    }

    #[inline]
    fn encode_field(field: &Field<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"_");
        json_str_body(out, &field.key);
        out.extend_from_slice(field.suffix.as_bytes());
        out.extend_from_slice(b"\":");
        match &field.value {
            FieldValue::Str(s) => json_str(out, s),
            FieldValue::Int(i) => push_int(out, *i),
            FieldValue::Float(f) => json_float(out, *f),
        }
    }
}

/// Bytes JSON requires escaped in a string: control characters, `"`, `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    table
};

/// Whether `bytes` holds a byte JSON requires escaped: a control character,
/// `"` or `\`. A hot path, eight bytes at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    swar::any(
        bytes,
        |word| swar::below(word, 0x20) | swar::equal(word, b'"') | swar::equal(word, b'\\'),
        |b| NEEDS_ESCAPE[usize::from(b)],
    )
}

/// Writes a JSON string, quotes included.
#[inline(always)]
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        // The common case: copied as is.
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    json_str_escaped(out, s);
}

/// Writes a JSON string that has bytes to escape, with serde_json's escaper.
#[cold]
#[inline(never)]
fn json_str_escaped(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes an integer in decimal.
pub(crate) fn push_int(out: &mut Vec<u8>, i: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_escape_agrees_with_the_table_at_every_position() {
        let table = |bytes: &[u8]| bytes.iter().any(|&b| NEEDS_ESCAPE[usize::from(b)]);
        for len in 0..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(
                        needs_escape(&bytes),
                        table(&bytes),
                        "{b:#04x} at {at} of {len}"
                    );
                }
            }
            // Bytes next to the special ones, and UTF-8, never match.
            let clean: Vec<u8> = (0..len)
                .map(|i| [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff][i % 8])
                .collect();
            assert!(!needs_escape(&clean), "{clean:?}");
        }
    }
}
