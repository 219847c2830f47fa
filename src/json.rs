//! JSON text written straight into an output buffer, for the GELF encoder, the
//! LTSV encoder's numbers and the mapping's structured values.
//!
//! Written by hand because it is the encoders' hot path: a string with nothing
//! to escape is copied as is, any other goes through `serde_json`'s escaper
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
