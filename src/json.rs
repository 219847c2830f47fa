//! JSON text written straight into an output buffer, for the GELF encoder, the
//! LTSV encoder's numbers and the mapping's structured values.
//!
//! Written by hand because it is the encoders' hot path: a string with nothing
//! to escape is copied as is, any other is escaped as `serde_json` escapes
//! (control characters, NUL included, become `\uXXXX`); integers through
//! `itoa`, floats through `serde_json` (shortest round-trip form).

use crate::swar;

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
    swar::any(bytes, escapes, |b| NEEDS_ESCAPE[usize::from(b)])
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

/// Writes a JSON string that has bytes to escape, as serde_json's escaper
/// writes it: `\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`, any other control
/// character as `\u00xx` (lowercase hex). Eight bytes at a time between
/// escapes ([`swar::escape_into`]): multi-line messages and stack traces
/// take this path, and byte by byte it was half the time of encoding such
/// a record.
#[cold]
#[inline(never)]
fn json_str_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    swar::escape_into(out, s.as_bytes(), escapes, |b, escaped| {
        let short: &[u8; 2] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0..0x20 => {
                *escaped = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                return 6;
            }
            _ => return 0,
        };
        escaped[..2].copy_from_slice(short);
        2
    });
    out.push(b'"');
}

/// Non-zero when the 8 bytes of `word` hold one JSON requires escaped.
#[inline(always)]
fn escapes(word: u64) -> u64 {
    swar::below(word, 0x20) | swar::equal(word, b'"') | swar::equal(word, b'\\')
}

/// Writes an integer in decimal.
pub(crate) fn push_int(out: &mut Vec<u8>, i: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// Writes a syslog level (0 to 7, one digit) in decimal.
#[inline]
pub(crate) fn push_level(out: &mut Vec<u8>, level: u8) {
    match level {
        0..=9 => out.push(b'0' + level),
        _ => push_int(out, level),
    }
}

/// Writes `value`'s last `slots.len()` decimal digits into `slots`,
/// zero-padded.
pub(crate) fn put_digits(slots: &mut [u8], mut value: u64) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
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

    /// Every byte, at every place in an 8-byte word and around it, is
    /// written as serde_json writes it.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let check = |text: &str| {
            let mut out = Vec::new();
            json_str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        };
        for c in (0u8..0x80)
            .map(char::from)
            .chain(['é', '\u{2028}', '😀', '\u{7f}'])
        {
            for len in 0..=20 {
                for at in 0..=len {
                    let mut text: String = "a".repeat(len);
                    text.insert(at, c);
                    check(&text);
                    text.push_str("\n\"x\u{1}");
                    check(&text);
                }
            }
        }
        check(&"line\n\tat x\r\n\u{0}\u{1f}\"\\/".repeat(50));
    }

    #[test]
    fn levels_are_written_in_decimal() {
        for level in [0, 1, 7, 9, 10, 99, 255] {
            let mut out = Vec::new();
            push_level(&mut out, level);
            assert_eq!(out, level.to_string().as_bytes());
        }
    }

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
