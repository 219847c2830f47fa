//! JSON text written straight into an output buffer, for the GELF encoder, the
//! LTSV encoder's numbers and the mapping's structured values.
//!
//! Written by hand because it is the encoders' hot path: a string with nothing
//! to escape is copied as is, any other is escaped as `serde_json` escapes
//! (`\b`, `\t`, `\n`, `\f`, `\r`, and `\uXXXX` for the other control
//! characters, NUL included); integers through
//! `itoa`, floats in the shortest round-trip form `serde_json` writes (by
//! hand for those of at most three decimals, the most logged).

use crate::swar;

/// Bytes JSON requires escaped in a string: control characters, `"`, `\`
/// (what [`needs_escape`] is checked against).
#[cfg(test)]
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
/// `"` or `\`. A hot path ([`swar::any`]).
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    swar::any(bytes, escapes, |b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes a JSON string, quotes included.
#[inline(always)]
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        // The common case: copied as is.
        json_str_plain(out, s);
        return;
    }
    json_str_escaped(out, s);
}

/// Writes a JSON string that [`needs_escape`] found nothing to escape in,
/// quotes included: copied as is.
#[inline(always)]
pub(crate) fn json_str_plain(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!needs_escape(s.as_bytes()), "{s:?} is not plain");
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
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

/// The decimal digits of 0 to 99, two each.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// `value`'s last two decimal digits.
#[inline(always)]
fn digit_pair(value: u64) -> [u8; 2] {
    // The remainder first: below 100 whatever `usize`'s width.
    let at = (value % 100) as usize * 2;
    [DIGIT_PAIRS[at], DIGIT_PAIRS[at + 1]]
}

/// Writes `value`'s last `slots.len()` decimal digits into `slots`,
/// zero-padded; two at a time (the times of every record).
#[inline]
pub(crate) fn put_digits(slots: &mut [u8], mut value: u64) {
    let mut pairs = slots.rchunks_exact_mut(2);
    for pair in &mut pairs {
        pair.copy_from_slice(&digit_pair(value));
        value /= 100;
    }
    if let [first] = pairs.into_remainder() {
        *first = b'0' + (value % 10) as u8;
    }
}

/// Writes a finite double as a JSON number (shortest round-trip form).
pub(crate) fn json_float(out: &mut Vec<u8>, f: f64) {
    if push_short_decimal(out, f) {
        return;
    }
    if f.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &f);
    } else {
        json_str(out, non_finite_text(f));
    }
}

/// A double JSON has no number for, as the text sent in its place:
/// `NaN`, `Infinity` or `-Infinity` (JavaScript's names), wherever it is.
pub(crate) fn non_finite_text(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Writes `f` as serde_json does when it is a decimal of at most three
/// decimals and fifteen digits (a duration in milliseconds, a ratio, a
/// price: most doubles logged); returns false, with nothing written, for
/// any other. Written by hand as a hot path: the general algorithm, through
/// serde_json, executes about 220 instructions a double.
///
/// Why it is the shortest round-trip form: `n / 1000` rounds to `f`, and
/// two different decimals of at most fifteen significant digits never
/// round to the same double, so no other decimal as short or shorter
/// rounds to `f`. Such a double lies between 0.001 and 10^12, where
/// serde_json writes its digits without an exponent, with `.0` for a whole
/// number.
#[inline]
fn push_short_decimal(out: &mut Vec<u8>, f: f64) -> bool {
    const SCALE: f64 = 1000.0;
    let scaled = f * SCALE;
    // NaN and the infinities are not less.
    let within = scaled.abs() < 1e15;
    if !within {
        return false;
    }
    // Rounded to the nearest whole number (`as` cuts toward zero).
    let n = (scaled + 0.5f64.copysign(scaled)) as i64;
    // Zero is left to the general case: -0.0 keeps its sign there.
    if n == 0 || n as f64 / SCALE != f {
        return false;
    }
    let (mut whole, thousandths) = (n.unsigned_abs() / 1000, n.unsigned_abs() % 1000);
    // Written around the point: to its left at most 12 digits and a sign,
    // two digits at a time; to its right the thousandths, `.0` for a whole
    // number, else without trailing zeros.
    const POINT: usize = 13;
    let mut text = [0u8; POINT + 4];
    let [tens, units] = digit_pair(thousandths);
    text[POINT..].copy_from_slice(&[b'.', b'0' + (thousandths / 100) as u8, tens, units]);
    let decimals = match thousandths {
        t if t % 100 == 0 => 1,
        t if t % 10 == 0 => 2,
        _ => 3,
    };
    let mut at = POINT;
    while whole >= 100 {
        at -= 2;
        text[at..at + 2].copy_from_slice(&digit_pair(whole));
        whole /= 100;
    }
    if whole >= 10 {
        at -= 2;
        text[at..at + 2].copy_from_slice(&digit_pair(whole));
    } else {
        at -= 1;
        text[at] = b'0' + whole as u8;
    }
    if n < 0 {
        at -= 1;
        text[at] = b'-';
    }
    out.extend_from_slice(&text[at..POINT + 1 + decimals]);
    true
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

    /// `f` as [`json_float`] writes it (after a byte already in the
    /// buffer, which stays), and as serde_json does.
    fn both_floats(f: f64) -> (String, String) {
        let mut out = b"[".to_vec();
        json_float(&mut out, f);
        let ours = match out.split_first() {
            Some((b'[', rest)) => String::from_utf8(rest.to_vec()).unwrap_or_default(),
            _ => String::new(),
        };
        (ours, serde_json::to_string(&f).unwrap_or_default())
    }

    /// Whether `f` takes the short path.
    fn is_short(f: f64) -> bool {
        push_short_decimal(&mut Vec::new(), f)
    }

    #[test]
    fn short_decimals_are_written_as_serde_json_writes_them() {
        let cases = [
            1.0,
            0.5,
            0.25,
            0.125,
            0.1,
            0.2,
            0.3,
            0.001,
            0.01,
            0.05,
            1.001,
            14.375,
            12.5,
            100.0,
            1234.567,
            999_999_999_999.999,
            999_999_999_999.0,
            1e11,
            // Whole parts of every length, odd and even, past 2^32.
            10.0,
            99.5,
            12_345.6,
            123_456.78,
            1_234_567.891,
            98_765_432.1,
            123_456_789.5,
            4_294_967_296.0,
            12_345_678_901.25,
            2.675,
            1.005,
            0.015,
        ];
        for f in cases.into_iter().flat_map(|f| [f, -f]) {
            assert!(is_short(f), "{f}");
            let (ours, theirs) = both_floats(f);
            assert_eq!(ours, theirs, "{f}");
        }
        // Out of its reach: written by the general path, as serde_json does.
        for f in [
            0.0,
            -0.0,
            0.0001,
            0.0005,
            0.0015,
            1e12,
            1e15,
            1e300,
            1.0 / 3.0,
            0.1 + 0.2,
            1.0001,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::EPSILON,
        ] {
            for f in [f, -f] {
                assert!(!is_short(f), "{f}");
                let (ours, theirs) = both_floats(f);
                assert_eq!(ours, theirs, "{f}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 20_000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Decimals of up to four decimals (one more than the short path
        /// takes) over the whole range, and doubles of any bits.
        #[test]
        fn floats_are_written_as_serde_json_writes_them(
            n in -10i64.pow(16)..10i64.pow(16),
            decimals in 0..=4u32,
            bits: u64,
        ) {
            for f in [n as f64 / 10f64.powi(decimals as i32), f64::from_bits(bits)] {
                if f.is_finite() {
                    let (ours, theirs) = both_floats(f);
                    proptest::prop_assert_eq!(ours, theirs, "{}", f);
                }
            }
        }
    }

    #[test]
    fn digits_are_written_zero_padded_to_the_width_given() {
        for value in [0u64, 7, 42, 305, 999_999, 1_000_000, 123_456_789, u64::MAX] {
            for width in 0..=20 {
                let mut slots = vec![b'x'; width];
                put_digits(&mut slots, value);
                let padded = format!("{value:0width$}");
                assert_eq!(
                    String::from_utf8_lossy(&slots),
                    padded[padded.len() - width..],
                    "{value} in {width}"
                );
            }
        }
    }

    #[test]
    fn needs_escape_agrees_with_the_table_at_every_position() {
        let table = |bytes: &[u8]| bytes.iter().any(|&b| NEEDS_ESCAPE[usize::from(b)]);
        // Past two 16-byte blocks and a remainder (see `swar::any`).
        for len in 0..=40 {
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
