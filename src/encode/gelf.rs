//! GELF 1.1: a JSON object per record.
//!
//! The object holds `version`, `host`, `short_message`, `full_message` (when
//! present), `timestamp` (seconds since the epoch with microseconds, written
//! exactly, not through a float), `level` and one `_`-prefixed additional field
//! per mapped field. JSON is written straight into the output buffer (a hot
//! path, so by hand): a string with nothing to escape is copied as is, any
//! other is escaped as `serde_json` escapes (`\b`, `\t`, `\n`, `\f`, `\r`,
//! and `\uXXXX` for the other control characters, NUL included, so a NUL
//! byte never appears inside a frame);
//! integers through `itoa` (a timestamp's seconds once a second per thread).

use std::cell::Cell;

use super::{Format, Framing, Writer};
use crate::json::{json_float, json_str, json_str_plain, push_int, push_level, put_digits};
use crate::mapping::{EpochMicros, Escapes, FieldValue, MappedRecord};
use crate::memo::last_answer;

/// OVHcloud Logs Data Platform's GELF input over TLS (NUL framing).
pub(crate) const LDP_GELF_PORT: u16 = 12202;

/// The GELF 1.1 format (Graylog Extended Log Format).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gelf;

impl Format for Gelf {
    super::format_names!("GELF");
    const DEFAULT_FRAMING: Framing = Framing::Nul;
    const MESSAGES: bool = true;
}

impl Writer for Gelf {
    /// As `serde_json` escapes: `\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`,
    /// any other control character as `\u00XX`.
    const ESCAPES: Escapes = Escapes::new({
        let mut widths = [1; 256];
        let mut b = 0;
        while b < 0x20 {
            widths[b] = 6;
            b += 1;
        }
        widths[b'"' as usize] = 2;
        widths[b'\\' as usize] = 2;
        widths[0x08] = 2;
        widths[b'\t' as usize] = 2;
        widths[b'\n' as usize] = 2;
        widths[0x0c] = 2;
        widths[b'\r' as usize] = 2;
        widths
    });

    fn ldp_port(_framing: Framing) -> u16 {
        // LDP's GELF input takes NUL framing only.
        LDP_GELF_PORT
    }

    const NAME_AT: usize = 3;

    #[inline]
    fn encode_head(record: &MappedRecord<'_>, out: &mut Vec<u8>) {
        Self::put_host(record, out);
        match record.short_plain {
            true => json_str_plain(out, &record.short_message),
            false => json_str(out, &record.short_message),
        }
        if let Some(full) = &record.full_message {
            out.extend_from_slice(b",\"full_message\":");
            json_str(out, full);
        }
        out.extend_from_slice(b",\"timestamp\":");
        push_timestamp(out, record.time);
        out.extend_from_slice(b",\"level\":");
        push_level(out, record.level);
    }

    /// From the object's start to the short message's value: `version`
    /// and `host`.
    fn encode_host(host: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"version\":\"1.1\",\"host\":");
        json_str(out, host);
        out.extend_from_slice(b",\"short_message\":");
    }

    #[inline]
    fn encode_end(out: &mut Vec<u8>) {
        out.push(b'}');
    }

    #[inline]
    fn encode_name(key: &str, suffix: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"_");
        json_str_body(out, key);
        out.extend_from_slice(suffix.as_bytes());
        out.extend_from_slice(b"\":");
    }

    // Always in line: a shape's loop (the hot path) then writes each kind
    // of value without a call.
    #[inline(always)]
    fn encode_value(value: &FieldValue<'_>, out: &mut Vec<u8>) {
        match value {
            FieldValue::Str(s) => json_str(out, s),
            FieldValue::Int(i) => push_int(out, *i),
            FieldValue::Float(f) => json_float(out, *f),
            // Each a copy of constant length, written in line.
            FieldValue::Bool(true) => out.extend_from_slice(b"\"true\""),
            FieldValue::Bool(false) => out.extend_from_slice(b"\"false\""),
        }
    }
}

/// Writes `time` as seconds since the epoch with six decimals, exactly (not
/// through a float); a second's digits once per thread (records come in
/// bursts).
fn push_timestamp(out: &mut Vec<u8>, time: EpochMicros) {
    /// Room for any `u64`'s digits (the largest second sent, before the
    /// year 10000, has 12).
    const MAX_DIGITS: usize = 20;
    thread_local! {
        /// The last second written on this thread, its digits and how many.
        /// The digits are followed by a point and room for six more.
        static LAST: Cell<(u64, ([u8; MAX_DIGITS + 7], usize))> =
            const { Cell::new((u64::MAX, ([0; MAX_DIGITS + 7], 0))) };
    }
    let (digits, len) = last_answer(&LAST, time.secs, |secs| {
        let mut digits = [0; MAX_DIGITS + 7];
        let mut itoa = itoa::Buffer::new();
        let text = itoa.format(secs).as_bytes();
        digits[..text.len()].copy_from_slice(text);
        digits[text.len()] = b'.';
        (digits, text.len())
    });
    // The second's digits, a point and six digits, zero-padded (micros <
    // 1,000,000), written at once.
    let mut text = digits;
    let end = len + 7;
    put_digits(&mut text[len + 1..end], u64::from(time.micros));
    out.extend_from_slice(&text[..end]);
}

/// Writes a key already limited to `[A-Za-z0-9_.-]`: nothing to escape.
fn json_str_body(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(key.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamp(secs: u64, micros: u32) -> String {
        let mut out = Vec::new();
        push_timestamp(&mut out, EpochMicros { secs, micros });
        String::from_utf8(out).unwrap()
    }

    /// GELF has no booleans: they go as strings.
    #[test]
    fn booleans_are_written_as_strings() {
        for (b, text) in [(true, "\"true\""), (false, "\"false\"")] {
            let mut out = Vec::new();
            Gelf::encode_value(&FieldValue::Bool(b), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    /// Seconds of any width, repeated and changed (the last second is
    /// kept), are written exactly.
    #[test]
    fn timestamps_are_written_exactly_whatever_came_before() {
        let times = [
            (1_700_000_000, 42),
            (1_700_000_000, 999_999),
            (1_700_000_001, 0),
            (5, 1),
            (5, 120_000),
            (253_402_300_799, 500_000),
            (1_700_000_001, 7),
            (0, 1),
        ];
        for (secs, micros) in times {
            assert_eq!(timestamp(secs, micros), format!("{secs}.{micros:06}"));
        }
    }
}
