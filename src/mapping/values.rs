//! Values: OpenTelemetry values become strings, integers and finite doubles;
//! blank and long texts, severities and times get the receivers' treatment.

use std::borrow::Cow;
use std::cell::Cell;
use std::thread::LocalKey;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::Value;

use super::record::{Field, FieldValue};
use super::{MAX_JSON_DEPTH, TOO_DEEP, TRUNCATED_MARKER};
use crate::json::{json_float, json_str, push_int};
use crate::memo::last_answer;

impl<'a> Field<'a> {
    /// The whole name: the key and its suffix.
    pub(crate) fn name(&self) -> Cow<'_, str> {
        if self.suffix.is_empty() {
            Cow::Borrowed(&self.key)
        } else {
            Cow::Owned(format!("{}{}", self.key, self.suffix))
        }
    }

    /// The fewest bytes the field takes encoded: its name's, and its
    /// value's (a text's length, escapes only add; one for the others).
    #[inline]
    pub(crate) fn least_width(&self) -> usize {
        let value = match &self.value {
            FieldValue::Str(text) => text.len(),
            FieldValue::Int(_) | FieldValue::Float(_) | FieldValue::Bool(_) => 1,
        };
        self.key.len() + self.suffix.len() + value
    }

    /// A digest of the whole name (its length, first and last bytes): two
    /// fields with different fingerprints have different names.
    #[inline]
    pub(crate) fn fingerprint(&self) -> u32 {
        let (key, suffix) = (self.key.as_bytes(), self.suffix.as_bytes());
        let len = (key.len() + suffix.len()) as u32;
        let first = key.first().or(suffix.first()).copied().unwrap_or(0);
        let last = suffix.last().or(key.last()).copied().unwrap_or(0);
        len << 16 ^ u32::from(first) << 8 ^ u32::from(last)
    }

    /// One bit of 64 chosen by the name: two fields with different bits
    /// have different names.
    #[inline]
    pub(super) fn name_bit(&self) -> u64 {
        print_bit(self.fingerprint())
    }

    /// Whether two fields have the same whole name (no allocation).
    pub(super) fn same_name(&self, other: &Field<'_>) -> bool {
        if self.suffix.is_empty() && other.suffix.is_empty() {
            return self.key == other.key;
        }
        self.key.len() + self.suffix.len() == other.key.len() + other.suffix.len()
            && self
                .key
                .bytes()
                .chain(self.suffix.bytes())
                .eq(other.key.bytes().chain(other.suffix.bytes()))
    }

    pub(super) fn borrowed(&self) -> Field<'_> {
        Field {
            key: Cow::Borrowed(&self.key),
            suffix: self.suffix,
            value: match &self.value {
                FieldValue::Str(s) => FieldValue::Str(Cow::Borrowed(s)),
                FieldValue::Int(i) => FieldValue::Int(*i),
                FieldValue::Float(f) => FieldValue::Float(*f),
                FieldValue::Bool(b) => FieldValue::Bool(*b),
            },
        }
    }

    /// An owned copy, the suffix joined to the key.
    pub(super) fn into_owned(self) -> Field<'static> {
        let key = match self.suffix {
            "" => self.key.into_owned(),
            suffix => format!("{}{suffix}", self.key),
        };
        Field {
            key: Cow::Owned(key),
            suffix: "",
            value: match self.value {
                FieldValue::Str(s) => FieldValue::Str(Cow::Owned(s.into_owned())),
                FieldValue::Int(i) => FieldValue::Int(i),
                FieldValue::Float(f) => FieldValue::Float(f),
                FieldValue::Bool(b) => FieldValue::Bool(b),
            },
        }
    }
}

#[inline]
pub(super) fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// `bytes` in base64; when that takes more than `max` characters, only its
/// start, a little longer than `max` (the base64 of a prefix is a prefix of
/// the whole), for the caller to cut and mark: the work stays bounded by
/// `max` whatever the input.
pub(super) fn base64_text(bytes: &[u8], max: usize) -> String {
    // Four characters for three bytes: a whole group past `max`.
    let take = (max / 4).saturating_add(1).saturating_mul(3);
    base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len().min(take)])
}

/// One bit of 64 chosen by a [`Field::fingerprint`].
#[inline]
pub(crate) fn print_bit(print: u32) -> u64 {
    1 << (print.wrapping_mul(0x9e37_79b9) >> 26)
}

/// Whether a text is blank to Graylog, which trims with Java's `String.trim()`
/// (every character up to U+0020, control characters included) and drops what
/// is left empty. Unicode white space counts as blank too.
#[inline]
pub(crate) fn is_blank(text: &str) -> bool {
    text.chars().all(is_blank_char)
}

/// Whether a character is blank, as [`is_blank`] counts it.
#[inline]
pub(crate) fn is_blank_char(c: char) -> bool {
    c <= ' ' || c.is_whitespace()
}

/// Cuts a text longer than `max` bytes on a character boundary and marks it.
#[inline]
pub(crate) fn truncate_text(text: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return text;
    }
    let mut cut = max.saturating_sub(TRUNCATED_MARKER.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    marked_head(text, cut)
}

/// The first `len` bytes of `text` (a character boundary), then
/// [`TRUNCATED_MARKER`]; an owned text is cut in place.
pub(super) fn marked_head(text: Cow<'_, str>, len: usize) -> Cow<'_, str> {
    let mut out = match text {
        Cow::Owned(mut owned) => {
            owned.truncate(len);
            // A field kept for the exporter's life (a static one) must not
            // hold on to the whole text it was cut from.
            if owned.capacity() > 2 * (len + TRUNCATED_MARKER.len()) {
                owned.shrink_to(len + TRUNCATED_MARKER.len());
            }
            owned
        }
        Cow::Borrowed(borrowed) => {
            let mut out = String::with_capacity(len + TRUNCATED_MARKER.len());
            out.push_str(&borrowed[..len]);
            out
        }
    };
    out.push_str(TRUNCATED_MARKER);
    Cow::Owned(out)
}

/// The first `max` bytes of a text, on a character boundary.
pub(crate) fn str_head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// The head of a body: its first `max` bytes, all of it that could fit a
/// frame of `max` bytes, so that what lies past it costs no work; an owned
/// body is cut in place. Not marked: a head this long never fits a frame
/// with the rest of its record, so the encoder cuts it again and marks it.
/// A body whose head is blank is kept whole, so that its first line that is
/// not blank is still found.
pub(crate) fn body_head(body: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    let len = str_head(&body, max).len();
    if len == body.len() || is_blank(&body[..len]) {
        return body;
    }
    match body {
        Cow::Borrowed(body) => Cow::Borrowed(&body[..len]),
        Cow::Owned(mut body) => {
            body.truncate(len);
            Cow::Owned(body)
        }
    }
}

/// Maps an OpenTelemetry severity to a syslog level (0 emergency .. 7 debug):
/// the inverse of the log data model's syslog table. Without a number, the
/// severity text is read; without either, the level is 6 (informational).
pub(crate) fn syslog_level(number: Option<Severity>, text: Option<&str>) -> u8 {
    if let Some(severity) = number {
        return match severity as i32 {
            i32::MIN..=8 => 7,
            9 => 6,
            10..=12 => 5,
            13..=16 => 4,
            17 => 3,
            18 => 2,
            19..=20 => 1,
            _ => 0,
        };
    }
    let Some(text) = text else { return 6 };
    let text = text.trim().to_ascii_lowercase();
    let word = text.trim_end_matches(|c: char| c.is_ascii_digit());
    match word {
        "trace" | "debug" | "dbg" | "finest" | "finer" | "fine" => 7,
        "info" | "information" | "informational" => 6,
        "notice" => 5,
        "warn" | "warning" => 4,
        "error" | "err" | "severe" => 3,
        "critical" | "crit" => 2,
        "alert" => 1,
        "fatal" | "emerg" | "emergency" | "panic" => 0,
        _ => 6,
    }
}

/// Whether `text` only names the syslog `level` sent beside it (`INFO` at 6,
/// `warning` at 4, ...), so that sending it again says nothing new. `TRACE`
/// (sent as 7, debug) and `FATAL` (sent as 0, emergency) say more, and are kept.
pub(crate) fn names_level(level: u8, text: &str) -> bool {
    let names: &[&str] = match level {
        7 => &["debug"],
        6 => &["info", "informational"],
        5 => &["notice"],
        4 => &["warn", "warning"],
        3 => &["error", "err"],
        2 => &["critical", "crit"],
        1 => &["alert"],
        _ => &["emergency", "emerg"],
    };
    // The names are lowercase letters, which a byte equals ignoring case
    // exactly when it equals them with bit 5 set: cheaper than
    // `eq_ignore_ascii_case`, which lowers both sides.
    names.iter().any(|name| {
        text.len() == name.len() && text.bytes().zip(name.bytes()).all(|(t, n)| t | 0x20 == n)
    })
}

/// What [`per_static_text`] keeps: the last text's address and length and
/// the tag asked with it, and the verdict.
pub(crate) type StaticVerdict = Cell<((usize, usize, u8), bool)>;

/// What `judge` says of `text` asked with `tag`, worked out again only when
/// this thread is asked of another text or tag than the last. A record's
/// severity text and event name are static texts (a level's name, a
/// callsite's), the same over runs of records, and a static text's address
/// and length name its bytes for good. The verdict is a plain `bool`: the
/// address is compared, never read.
#[inline]
pub(crate) fn per_static_text(
    last: &'static LocalKey<StaticVerdict>,
    text: &'static str,
    tag: u8,
    judge: impl Fn(&str) -> bool,
) -> bool {
    let key = (text.as_ptr() as usize, text.len(), tag);
    last_answer(last, key, |_| judge(text))
}

/// A time as whole seconds and microseconds since the epoch: what both
/// formats write, computed once per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochMicros {
    /// Whole seconds since the epoch.
    pub(crate) secs: u64,
    /// Microseconds within the second (below 1,000,000).
    pub(crate) micros: u32,
}

impl EpochMicros {
    /// A time that can be sent: at least a microsecond after the epoch (GELF
    /// wants a positive timestamp) and before the year 10000 (RFC 3339 has
    /// four digits for the year). Other times fall back to the observed time,
    /// then now.
    #[inline]
    pub(crate) fn of(time: SystemTime) -> Option<EpochMicros> {
        const YEAR_10000: u64 = 253_402_300_800;
        let since = time.duration_since(UNIX_EPOCH).ok()?;
        let (secs, micros) = (since.as_secs(), since.subsec_micros());
        (secs < YEAR_10000 && (secs > 0 || micros > 0)).then_some(EpochMicros { secs, micros })
    }

    /// Now, or a microsecond after the epoch if the clock is outside what
    /// [`of`](Self::of) accepts (before the epoch, or past the year 9999).
    pub(crate) fn now() -> EpochMicros {
        EpochMicros::of(SystemTime::now()).unwrap_or(EpochMicros { secs: 0, micros: 1 })
    }
}

/// A list, a map or another structured value as JSON text (maps with their
/// keys in order), written in one pass into one string. When the text takes
/// more than `max` bytes, only its start is written, a little longer than
/// `max`, for the caller to cut and mark: the text, and the work of writing
/// it, stay bounded by `max` whatever the input (a map's entries are still
/// sorted, once per map written).
pub(crate) fn any_json_text(value: &AnyValue, max: usize) -> String {
    let mut out = Vec::new();
    write_json_within(&mut out, value, MAX_JSON_DEPTH, max);
    // Only UTF-8 is ever written (a text is cut at a character's boundary).
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes `value` as JSON (the GELF encoder's JSON writers serve here too: a
/// non-finite double becomes a string, as `serde_json::Value` makes it),
/// with lists and maps nested at most `depth` deeper: past that,
/// [`TOO_DEEP`] stands for the value (the recursion, and the stack it takes,
/// stay bounded whatever the input). Stops once `out` is longer than `stop`.
fn write_json_within(out: &mut Vec<u8>, value: &AnyValue, depth: usize, stop: usize) {
    if out.len() > stop {
        return;
    }
    if depth == 0 && matches!(value, AnyValue::ListAny(_) | AnyValue::Map(_)) {
        json_str(out, TOO_DEEP);
        return;
    }
    // Enough of a text to pass `stop` when the whole would: a few bytes more
    // than is left, so that a character cut at the boundary cannot fall short.
    let left = |out: &Vec<u8>| stop.saturating_sub(out.len()).saturating_add(4);
    match value {
        AnyValue::Int(i) => push_int(out, *i),
        AnyValue::Double(f) => json_float(out, *f),
        AnyValue::String(s) => json_str(out, str_head(s.as_str(), left(out))),
        AnyValue::Boolean(b) => out.extend_from_slice(bool_text(*b).as_bytes()),
        AnyValue::Bytes(bytes) => json_str(out, &base64_text(bytes, left(out))),
        AnyValue::ListAny(list) => {
            out.push(b'[');
            for (i, item) in list.iter().enumerate() {
                if out.len() > stop {
                    return;
                }
                if i > 0 {
                    out.push(b',');
                }
                write_json_within(out, item, depth - 1, stop);
            }
            out.push(b']');
        }
        AnyValue::Map(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if out.len() > stop {
                    return;
                }
                if i > 0 {
                    out.push(b',');
                }
                json_str(out, str_head(key.as_str(), left(out)));
                out.push(b':');
                write_json_within(out, item, depth - 1, stop);
            }
            out.push(b'}');
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// A list value as JSON, a single value as a JSON string: what
/// [`value_json_text`] writes (through `serde_json`, as an oracle).
#[cfg(test)]
fn value_json(value: &Value) -> serde_json::Value {
    use crate::json::non_finite_text;
    use opentelemetry::Array;
    use serde_json::Value as J;
    let number = |f: &f64| {
        if f.is_finite() {
            J::from(*f)
        } else {
            J::from(non_finite_text(*f))
        }
    };
    match value {
        Value::Array(Array::Bool(v)) => v.iter().map(|b| J::from(*b)).collect(),
        Value::Array(Array::I64(v)) => v.iter().map(|i| J::from(*i)).collect(),
        Value::Array(Array::F64(v)) => v.iter().map(number).collect(),
        Value::Array(Array::String(v)) => v.iter().map(|s| J::from(s.as_str())).collect(),
        other => J::from(other.as_str().into_owned()),
    }
}

/// A list value as JSON text (a non-finite number as its text; a single
/// value as its text), written item by item and no further than past
/// `limit` bytes, a text item only as far as it could be kept: a longer
/// text is cut to the limit anyway, so a huge list or item (a scope's
/// attribute, mapped with every record) costs its head, not its whole.
pub(super) fn value_json_text(value: &Value, limit: usize) -> String {
    use opentelemetry::Array;
    let Value::Array(array) = value else {
        return value.as_str().into_owned();
    };
    let mut out = vec![b'['];
    match array {
        Array::Bool(v) => items_within(&mut out, v, limit, |out, b, _| {
            out.extend_from_slice(bool_text(*b).as_bytes());
        }),
        Array::I64(v) => items_within(&mut out, v, limit, |out, n, _| push_int(out, *n)),
        Array::F64(v) => items_within(&mut out, v, limit, |out, f, _| json_float(out, *f)),
        Array::String(v) => items_within(&mut out, v, limit, |out, s, left| {
            json_str(out, str_head(s.as_str(), left));
        }),
        // A kind of list added later: its text as the one item.
        _ => json_str(&mut out, str_head(&value.as_str(), limit.saturating_add(4))),
    }
    out.push(b']');
    // Only UTF-8 is ever written (a text is cut at a character's boundary).
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes `items`, comma-separated, while `out` is no longer than `limit`;
/// `write` is told how many bytes of a text item are enough to pass it (a
/// few more than are left, so that a character cut at the boundary cannot
/// fall short).
fn items_within<T>(
    out: &mut Vec<u8>,
    items: &[T],
    limit: usize,
    write: impl Fn(&mut Vec<u8>, &T, usize),
) {
    for (i, item) in items.iter().enumerate() {
        if out.len() > limit {
            return;
        }
        if i > 0 {
            out.push(b',');
        }
        let left = limit.saturating_sub(out.len()).saturating_add(4);
        write(out, item, left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::non_finite_text;
    use std::time::Duration;

    /// The verdict is worked out again for another text, even one of the
    /// same bytes elsewhere, or another tag; else it is the last one.
    #[test]
    fn a_static_texts_verdict_is_kept_until_another_is_asked() {
        thread_local! {
            static LAST: StaticVerdict = const { Cell::new(((0, 0, 0), false)) };
        }
        let asked = Cell::new(0);
        let judge = |text: &str| {
            asked.set(asked.get() + 1);
            text.starts_with('a')
        };
        let (a, b) = ("abc", "bcd");
        let elsewhere: &'static str = Box::leak(a.to_string().into_boxed_str());
        let cases = [
            (a, 0, true, 1),
            (a, 0, true, 1),
            (b, 0, false, 2),
            (a, 0, true, 3),
            (a, 1, true, 4),
            (elsewhere, 1, true, 5),
            (elsewhere, 1, true, 5),
            (&a[..2], 1, true, 6),
        ];
        for (text, tag, verdict, count) in cases {
            assert_eq!(per_static_text(&LAST, text, tag, judge), verdict, "{text}");
            assert_eq!(asked.get(), count, "{text} {tag}");
        }
    }

    fn field<'a>(key: &'a str, suffix: &'static str) -> Field<'a> {
        Field {
            key: Cow::Borrowed(key),
            suffix,
            value: FieldValue::Int(1),
        }
    }

    /// A whole name has one fingerprint however it is split between key
    /// and suffix (as `x_long` is by the type suffixes or not), and names
    /// compare as whole names.
    #[test]
    fn names_are_whole_however_split() {
        let splits = [
            field("x_long", ""),
            field("x", "_long"),
            field("x_lon", "g"),
        ];
        for a in &splits {
            assert_eq!(a.name(), "x_long");
            for b in &splits {
                assert_eq!(a.fingerprint(), b.fingerprint());
                assert!(a.same_name(b));
            }
        }
        let others = [
            field("x", ""),
            field("x_int", ""),
            field("y", "_long"),
            field("x", "_lonh"),
            field("x_lonh", ""),
        ];
        for a in &splits {
            for b in &others {
                assert!(!a.same_name(b) && !b.same_name(a), "{a:?} {b:?}");
            }
        }
        assert!(!field("ab", "").same_name(&field("ac", "")));
        assert!(field("ab", "").same_name(&field("ab", "")));
    }

    #[test]
    fn heads_end_on_a_character_within_the_bytes_given() {
        assert_eq!(str_head("abc", 2), "ab");
        assert_eq!(str_head("abc", 3), "abc");
        assert_eq!(str_head("abc", 9), "abc");
        // `é` takes bytes 1 and 2.
        assert_eq!(str_head("aéb", 2), "a");
        assert_eq!(str_head("aéb", 3), "aé");
        assert_eq!(str_head("é", 1), "");
    }

    #[test]
    fn truncated_texts_end_on_a_character_then_the_marker() {
        let marker = TRUNCATED_MARKER.len();
        let cut = |text: &str, max: usize| truncate_text(Cow::Borrowed(text), max).into_owned();
        assert_eq!(cut("abcd", 4), "abcd");
        assert_eq!(cut("abcde", marker + 3), "abcde");
        assert_eq!(cut("abcdefghijklmnop", marker + 3), "abc [truncated]");
        // `é` takes bytes 2 and 3: a cut at 3 moves back to 2.
        let text = format!("abé{}", "x".repeat(20));
        assert_eq!(cut(&text, marker + 3), "ab [truncated]");
        assert_eq!(cut(&text, marker + 4), "abé [truncated]");
        assert_eq!(cut("éééééééééééééééé", marker + 1), " [truncated]");
        assert_eq!(cut(&text, 2), " [truncated]");
    }

    #[test]
    fn body_heads_are_cut_unless_blank() {
        let head = |body: Cow<'_, str>, max| body_head(body, max).into_owned();
        assert_eq!(head(Cow::Borrowed("abcdef"), 3), "abc");
        assert_eq!(head(Cow::Owned("abcdef".to_string()), 3), "abc");
        assert_eq!(head(Cow::Borrowed("abc"), 3), "abc");
        assert_eq!(head(Cow::Borrowed("aéb"), 2), "a");
        // A blank head: the whole body, to find its first line with text.
        assert_eq!(head(Cow::Borrowed(" \n\t  text"), 3), " \n\t  text");
        assert_eq!(
            head(Cow::Owned(" \n\t  text".to_string()), 3),
            " \n\t  text"
        );
    }

    #[test]
    fn times_from_the_first_microsecond_to_the_year_10000_are_sent() {
        let at = |secs: u64, micros: u32| UNIX_EPOCH + Duration::new(secs, micros * 1_000);
        let micros = |secs, micros| Some(EpochMicros { secs, micros });
        assert_eq!(EpochMicros::of(at(0, 0)), None);
        assert_eq!(EpochMicros::of(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(EpochMicros::of(at(0, 1)), micros(0, 1));
        assert_eq!(EpochMicros::of(at(1, 0)), micros(1, 0));
        assert_eq!(
            EpochMicros::of(at(1_700_000_000, 42)),
            micros(1_700_000_000, 42)
        );
        // 9999-12-31T23:59:59.999999Z, then 10000-01-01T00:00:00Z.
        assert_eq!(
            EpochMicros::of(at(253_402_300_799, 999_999)),
            micros(253_402_300_799, 999_999)
        );
        assert_eq!(EpochMicros::of(at(253_402_300_800, 0)), None);
        assert_eq!(EpochMicros::of(at(253_402_300_800, 1)), None);
    }

    /// Severity texts without a number, by RFC 5424's levels: 0 emergency,
    /// 1 alert, 2 critical, 3 error, 4 warning, 5 notice, 6 informational,
    /// 7 debug; any case, spaces around, a number after (`debug2`).
    #[test]
    fn severity_texts_name_syslog_levels() {
        let cases = [
            ("trace", 7),
            ("TRACE4", 7),
            ("debug", 7),
            ("dbg", 7),
            ("finest", 7),
            ("finer", 7),
            ("Fine", 7),
            ("info", 6),
            ("information", 6),
            ("informational", 6),
            ("notice", 5),
            ("warn", 4),
            (" Warning ", 4),
            ("error", 3),
            ("err", 3),
            ("SEVERE", 3),
            ("critical", 2),
            ("crit", 2),
            ("alert", 1),
            ("fatal", 0),
            ("emerg", 0),
            ("emergency", 0),
            ("panic", 0),
            ("verbose", 6),
            ("", 6),
        ];
        for (text, level) in cases {
            assert_eq!(syslog_level(None, Some(text)), level, "{text:?}");
        }
        assert_eq!(syslog_level(None, None), 6);
    }

    /// Maps nested past the bound stop there, as lists do.
    #[test]
    fn nested_maps_stop_at_the_depth_bound() {
        let mut value = AnyValue::Int(1);
        for _ in 0..MAX_JSON_DEPTH + 5 {
            value = AnyValue::Map(Box::new(
                [(opentelemetry::Key::from("k"), value)]
                    .into_iter()
                    .collect(),
            ));
        }
        let text = any_json_text(&value, usize::MAX);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut inner = &parsed;
        for _ in 0..MAX_JSON_DEPTH {
            inner = &inner["k"];
        }
        assert_eq!(inner, &serde_json::Value::from(TOO_DEEP));
    }

    /// Doubles JSON has no number for are spelled alike wherever they are:
    /// in a list of the record's, in a static list, alone as a body.
    #[test]
    fn non_finite_doubles_are_spelled_alike_everywhere() {
        let list = AnyValue::ListAny(Box::new(vec![
            AnyValue::Double(f64::NAN),
            AnyValue::Double(f64::INFINITY),
            AnyValue::Double(f64::NEG_INFINITY),
        ]));
        assert_eq!(
            any_json_text(&list, usize::MAX),
            r#"["NaN","Infinity","-Infinity"]"#
        );
        for (f, text) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(non_finite_text(f), text);
        }
    }

    #[test]
    fn arrays_of_static_values_become_json_arrays() {
        use opentelemetry::{Array, StringValue};
        use serde_json::json;
        let cases = [
            (
                Value::Array(Array::Bool(vec![true, false])),
                json!([true, false]),
            ),
            (Value::Array(Array::I64(vec![-1, 7])), json!([-1, 7])),
            (
                Value::Array(Array::F64(vec![
                    1.5,
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                ])),
                json!([1.5, "NaN", "Infinity", "-Infinity"]),
            ),
            (
                Value::Array(Array::String(vec![StringValue::from("a"), "b".into()])),
                json!(["a", "b"]),
            ),
            (Value::from("text"), json!("text")),
            (Value::I64(3), json!("3")),
        ];
        for (value, want) in cases {
            assert_eq!(value_json(&value), want, "{value:?}");
            if want.is_array() {
                assert_eq!(value_json_text(&value, usize::MAX), want.to_string());
            }
        }
    }

    /// A long list's text is written only a little past the limit, and is
    /// the whole text's head up to it.
    #[test]
    fn a_long_lists_text_stops_past_the_limit() {
        use opentelemetry::{Array, StringValue};
        let items: Vec<StringValue> = (0..100_000).map(|i| format!("item {i}").into()).collect();
        let value = Value::Array(Array::String(items));
        let whole = value_json(&value).to_string();
        for limit in [0, 1, 64, 1000] {
            let text = value_json_text(&value, limit);
            assert!(
                text.len() > limit && text.len() <= limit + 16,
                "{limit}: {}",
                text.len()
            );
            assert_eq!(text[..limit], whole[..limit]);
        }
        assert_eq!(value_json_text(&Value::from("x"), 0), "x");
    }

    /// A list of one huge text is cut within its item: its text is written
    /// a little past the limit, not whole, and is the whole text's head.
    #[test]
    fn a_huge_items_text_stops_past_the_limit() {
        use opentelemetry::Array;
        let huge = format!("\"{}", "x".repeat(1 << 20));
        for items in [vec![huge.clone().into()], vec!["a".into(), huge.into()]] {
            let value = Value::Array(Array::String(items));
            let whole = value_json(&value).to_string();
            assert!(whole.len() > 1 << 20);
            for limit in [0, 1, 5, 64, 1000] {
                let text = value_json_text(&value, limit);
                assert!(
                    text.len() > limit && text.len() <= limit + 16,
                    "{limit}: {}",
                    text.len()
                );
                // All but the cut item's closing quote and the bracket.
                let head = text.len().saturating_sub(2);
                assert_eq!(text[..head], whole[..head], "{limit}");
            }
        }
    }

    /// Now is after the time this was written (a clock set before it is
    /// out of scope).
    #[test]
    fn now_is_read_from_the_clock() {
        assert!(EpochMicros::now().secs > 1_700_000_000);
    }
}
