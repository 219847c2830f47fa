//! LTSV (Labeled Tab-separated Values): one `label:value` list per record.
//!
//! Labels come first in this order: `time` (RFC 3339, UTC, microseconds),
//! `host`, `level` (syslog 0–7), `message`, `full_message` (when present), then
//! one label per mapped field. Labels are limited to `[0-9A-Za-z_.-]` by the
//! mapping. Values escape the backslash as `\\`, TAB as `\t`, LF as `\n`, CR as
//! `\r` and NUL as `\0`, so a record is always exactly one line and never holds a
//! delimiter byte, whichever framing is used.

use std::cell::Cell;

use super::{Format, Framing, Writer};
use crate::json::{json_float, push_int, push_level, put_digits};
use crate::mapping::{EpochMicros, Escapes, FieldValue, MappedRecord};
use crate::memo::last_answer;
use crate::swar;

/// OVHcloud Logs Data Platform's LTSV input over TLS with line framing.
pub(crate) const LDP_LTSV_LINE_PORT: u16 = 12201;

/// OVHcloud Logs Data Platform's LTSV input over TLS with NUL framing.
pub(crate) const LDP_LTSV_NUL_PORT: u16 = 12200;
/// The LTSV format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ltsv;

impl Format for Ltsv {
    super::format_names!("LTSV");
    const DEFAULT_FRAMING: Framing = Framing::Newline;
    const MESSAGES: bool = false;
}

impl Writer for Ltsv {
    /// As [`escaped`] writes them: `\\`, `\t`, `\n`, `\r`, `\0`.
    const ESCAPES: Escapes = Escapes::new({
        let mut widths = [1; 256];
        widths[b'\\' as usize] = 2;
        widths[b'\t' as usize] = 2;
        widths[b'\n' as usize] = 2;
        widths[b'\r' as usize] = 2;
        widths[0] = 2;
        widths
    });

    fn ldp_port(framing: Framing) -> u16 {
        match framing {
            Framing::Nul => LDP_LTSV_NUL_PORT,
            Framing::Newline => LDP_LTSV_LINE_PORT,
        }
    }

    const NAME_AT: usize = 1;

    #[inline]
    fn encode_head(record: &MappedRecord<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"time:");
        push_rfc3339_micros(out, record.time);
        Self::put_host(record, out);
        push_level(out, record.level);
        out.extend_from_slice(b"\tmessage:");
        match record.short_plain {
            // Nothing LTSV escapes is plain (see `short_plain`).
            true => {
                debug_assert!(!may_need_escape(record.short_message.as_bytes()));
                out.extend_from_slice(record.short_message.as_bytes());
            }
            false => escaped(out, &record.short_message),
        }
        if let Some(full) = &record.full_message {
            out.extend_from_slice(b"\tfull_message:");
            escaped(out, full);
        }
    }

    /// From the time's end to the level's value: `host`.
    fn encode_host(host: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\thost:");
        escaped(out, host);
        out.extend_from_slice(b"\tlevel:");
    }

    fn encode_end(_out: &mut Vec<u8>) {}

    #[inline]
    fn encode_name(key: &str, suffix: &str, out: &mut Vec<u8>) {
        out.push(b'\t');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        out.push(b':');
    }

    // Always in line: a shape's loop (the hot path) then writes each kind
    // of value without a call.
    #[inline(always)]
    fn encode_value(value: &FieldValue<'_>, out: &mut Vec<u8>) {
        match value {
            FieldValue::Str(s) => escaped(out, s),
            FieldValue::Int(i) => push_int(out, *i),
            FieldValue::Float(f) => json_float(out, *f),
            // Each a copy of constant length, written in line.
            FieldValue::Bool(true) => out.extend_from_slice(b"true"),
            FieldValue::Bool(false) => out.extend_from_slice(b"false"),
        }
    }
}

/// Whether `bytes` may hold a byte [`escaped`] replaces: a byte below 0x0E
/// (NUL, TAB, LF and CR among them) or `\`. A hot path ([`swar::any`]).
fn may_need_escape(bytes: &[u8]) -> bool {
    swar::any(bytes, candidates, |b| b < 0x0e || b == b'\\')
}

/// Non-zero when the 8 bytes of `word` hold one [`may_need_escape`] looks
/// for; the lowest flagged is one (see `swar`).
#[inline(always)]
fn candidates(word: u64) -> u64 {
    swar::below(word, 0x0e) | swar::equal(word, b'\\')
}

/// Appends a value with `\`, TAB, LF, CR and NUL escaped. Eight bytes at a
/// time between escapes ([`swar::escape_into`]): multi-line messages and
/// stack traces take this path, and byte by byte it was half the time of
/// encoding such a record.
fn escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if !may_need_escape(bytes) {
        // The common case: copied as is.
        out.extend_from_slice(bytes);
        return;
    }
    swar::escape_into(out, bytes, candidates, |b, escaped| {
        let short: &[u8; 2] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"\\0",
            _ => return 0,
        };
        escaped[..2].copy_from_slice(short);
        2
    });
}

/// Appends `time` as RFC 3339 in UTC with microseconds
/// (`2024-02-29T13:04:05.000042Z`). By
/// hand because it is on every record's path: the days to a civil date are
/// counted as in Howard Hinnant's `civil_from_days`.
fn push_rfc3339_micros(out: &mut Vec<u8>, time: EpochMicros) {
    thread_local! {
        /// The last second written on this thread, and its date and time.
        static LAST: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let EpochMicros { secs, micros } = time;
    // A second's date and time once per thread (records come in bursts).
    let date_time = last_answer(&LAST, secs, rfc3339_seconds);
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    text[..19].copy_from_slice(&date_time);
    put_digits(&mut text[20..26], u64::from(micros));
    out.extend_from_slice(&text);
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS` (UTC).
fn rfc3339_seconds(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    // Days since 0000-03-01, in 400-year eras of 146,097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], of_day / 3_600);
    put_digits(&mut text[14..16], of_day / 60 % 60);
    put_digits(&mut text[17..19], of_day % 60);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn booleans_are_written_as_words() {
        for (b, text) in [(true, "true"), (false, "false")] {
            let mut out = Vec::new();
            Ltsv::encode_value(&FieldValue::Bool(b), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn rfc3339_agrees_with_humantime() {
        let check = |time: SystemTime| {
            let mut out = Vec::new();
            let since = time.duration_since(UNIX_EPOCH).unwrap();
            let epoch = EpochMicros {
                secs: since.as_secs(),
                micros: since.subsec_micros(),
            };
            push_rfc3339_micros(&mut out, epoch);
            assert_eq!(
                String::from_utf8_lossy(&out),
                humantime::format_rfc3339_micros(time).to_string(),
                "{time:?}"
            );
        };
        // Edges: the epoch, leap days, century years, the last representable
        // microsecond (year 9999).
        for secs in [
            0,
            1,
            951_782_400,   // 2000-02-29
            951_868_800,   // 2000-03-01
            4_107_456_000, // 2100-02-28
            4_107_542_400, // 2100-03-01
            1_709_164_800, // 2024-02-29
            253_402_300_799,
        ] {
            check(UNIX_EPOCH + Duration::new(secs, 999_999_000));
            check(UNIX_EPOCH + Duration::from_secs(secs));
        }
        // And many others, spread over the whole range.
        let mut next = crate::encode::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..100_000 {
            let micros = next() % (253_402_300_800 * 1_000_000);
            check(UNIX_EPOCH + Duration::from_micros(micros));
        }
    }

    #[test]
    fn may_need_escape_never_misses_a_byte_to_escape() {
        let exact = |bytes: &[u8]| {
            bytes
                .iter()
                .any(|&b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0))
        };
        // Past two 16-byte blocks and a remainder (see `swar::any`).
        for len in 0..=40 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    if exact(&bytes) {
                        assert!(may_need_escape(&bytes), "{b:#04x} at {at} of {len}");
                    }
                }
            }
            let clean: Vec<u8> = (0..len)
                .map(|i| [0x20, 0x0e, 0x5b, 0x5d, 0x7f, 0x80, 0xff, b'z'][i % 8])
                .collect();
            assert!(!may_need_escape(&clean), "{clean:?}");
        }
    }

    /// Every byte, at every place in an 8-byte word and around it, is
    /// escaped as a byte-by-byte escaper would.
    #[test]
    fn escapes_agree_with_a_byte_by_byte_escaper() {
        let reference = |text: &str| {
            let mut out = Vec::new();
            for &b in text.as_bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    0 => out.extend_from_slice(b"\\0"),
                    _ => out.push(b),
                }
            }
            out
        };
        let check = |text: &str| {
            let mut out = Vec::new();
            escaped(&mut out, text);
            assert_eq!(out, reference(text), "{text:?}");
        };
        for c in (0u8..0x80).map(char::from).chain(['é', '😀']) {
            for len in 0..=20 {
                for at in 0..=len {
                    let mut text = "a".repeat(len);
                    text.insert(at, c);
                    check(&text);
                    text.push_str("\u{1}\n\\\u{0}");
                    check(&text);
                }
            }
        }
    }

    #[test]
    fn escapes_delimiters() {
        let mut out = Vec::new();
        escaped(&mut out, "a\tb\nc\rd\\e\0f");
        assert_eq!(out, b"a\\tb\\nc\\rd\\\\e\\0f");
    }
}
