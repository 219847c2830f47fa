//! Keys: the characters a field name may hold, the names receivers reserve,
//! the names the mapping takes from the record, and LDP's type suffixes.

use std::borrow::Cow;

use super::values::str_head;

/// Field names the receivers reserve. A user key equal to one of them gets a
/// trailing `_`. They are Graylog's GELF top-level names, its own message fields,
/// its search backend's internal names, and the LTSV labels this crate writes.
/// The backend (Elasticsearch, OpenSearch) refuses a document holding one of
/// its metadata fields (`_version`, `_routing`...): Graylog takes off the
/// GELF prefix's `_`, so `@version` (sent as `__version`) would cost the
/// whole record at indexing.
pub(super) const RESERVED: &[&str] = &[
    "version",
    "host",
    "short_message",
    "full_message",
    "timestamp",
    "level",
    "facility",
    "line",
    "file",
    "id",
    "source",
    "message",
    "streams",
    "time",
    "_id",
    "_ttl",
    "_source",
    "_all",
    "_index",
    "_type",
    "_score",
    "_routing",
    "_version",
    "_seq_no",
    "_primary_term",
    "_field_names",
    "_ignored",
    "_tier",
    "_doc_count",
    "_meta",
    "_size",
    "_nested_path",
    "_data_stream_timestamp",
];

/// Bit `n` is set when a name in [`RESERVED`] is `n` bytes long (each is
/// under 64): most keys are ruled out by their length alone.
const RESERVED_LENGTHS: u64 = {
    let mut lengths = 0u64;
    let mut i = 0;
    while i < RESERVED.len() {
        assert!(RESERVED[i].len() < 64);
        lengths |= 1 << RESERVED[i].len();
        i += 1;
    }
    lengths
};

/// Whether a name of `len` bytes may be one of [`RESERVED`].
#[inline(always)]
fn reserved_length(len: usize) -> bool {
    len < 64 && RESERVED_LENGTHS >> len & 1 == 1
}

/// Names of the fields the mapping derives from the record itself (before key
/// normalization, so `otel.scope.name` is sent as `otel_scope_name` by default).
pub(crate) mod names {
    pub(crate) const TARGET: &str = "target";
    pub(crate) const EVENT_NAME: &str = "event_name";
    pub(crate) const SEVERITY_TEXT: &str = "severity_text";
    pub(crate) const TRACE_ID: &str = "trace_id";
    pub(crate) const SPAN_ID: &str = "span_id";
    pub(crate) const TRACE_FLAGS: &str = "trace_flags";
    pub(crate) const SCOPE_NAME: &str = "otel.scope.name";
    pub(crate) const SCOPE_VERSION: &str = "otel.scope.version";
    pub(crate) const HOST_NAME: &str = "host.name";
    pub(crate) const SERVICE_NAME: &str = "service.name";
    pub(crate) const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";
    /// The resource attributes the SDK sets the same in every process of a
    /// build, left out unless redundant fields are asked for.
    pub(crate) const SDK_RESOURCE: [&str; 3] = [
        "telemetry.sdk.name",
        "telemetry.sdk.language",
        "telemetry.sdk.version",
    ];
    /// The SDK's fallback `service.name`, alone or followed by
    /// `:<executable>`.
    pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";
}

/// Suffixes that give a field's type in its name, as OVHcloud Logs Data
/// Platform reads them: a field is a string unless its name ends in a type
/// suffix. Set with
/// [`ExporterBuilder::with_type_suffixes`](crate::ExporterBuilder::with_type_suffixes)
/// (the [Logs Data Platform profile](crate::ExporterBuilder::for_logs_data_platform)
/// turns the defaults on).
///
/// OpenTelemetry attributes carry no time type, so `date` is never added; like
/// every suffix LDP knows (`_int`, `_long`, `_num`, `_float`, `_double`,
/// `_bool`, `_date`, `_ip`, `_geolocation`, and the four configured here), it is
/// respected: a name that already ends in one is left alone. Names and
/// suffixes are compared once normalized, and a non-ASCII character marks a
/// name with its own checksum, so a configured suffix with such characters
/// (`_整数`) is added but never found at the end of a user's name.
///
/// ```
/// use djehouty::TypeSuffixes;
/// let suffixes = TypeSuffixes { long: "_int".into(), ..TypeSuffixes::default() };
/// assert_eq!(suffixes.double, "_double");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSuffixes {
    /// Added to integer fields. Default `_long`.
    pub long: String,
    /// Added to finite floating-point fields. Default `_double`.
    pub double: String,
    /// Added to boolean fields (sent as the strings `"true"` and `"false"`).
    /// Default `_bool`.
    pub boolean: String,
    /// Respected, never added (see above). Default `_date`.
    pub date: String,
}

impl Default for TypeSuffixes {
    fn default() -> Self {
        TypeSuffixes {
            long: "_long".to_string(),
            double: "_double".to_string(),
            boolean: "_bool".to_string(),
            date: "_date".to_string(),
        }
    }
}

/// Type suffixes Logs Data Platform knows, besides the configured ones.
pub(super) const KNOWN_SUFFIXES: &[&str] = &[
    "_int",
    "_long",
    "_num",
    "_float",
    "_double",
    "_bool",
    "_date",
    "_ip",
    "_geolocation",
];

/// Whether a key already ends in a type suffix: one LDP knows, or one of
/// `also` (configured suffixes LDP does not know).
pub(super) fn is_typed(key: &str, also: &[String]) -> bool {
    // LDP's own suffixes all start with `_`: look at the last one only.
    let known = key
        .rfind('_')
        .is_some_and(|at| KNOWN_SUFFIXES.contains(&&key[at..]));
    known || also.iter().any(|s| key.ends_with(s.as_str()))
}

/// The names of the fields the mapping takes from the record and its scope,
/// normalized (and typed) once per mapper rather than once per record.
#[derive(Debug, Default)]
pub(super) struct FixedNames {
    pub(super) scope_name: String,
    pub(super) scope_version: String,
    pub(super) target: String,
    pub(super) event_name: String,
    pub(super) severity_text: String,
    pub(super) trace_id: String,
    pub(super) span_id: String,
    pub(super) trace_flags: String,
}

/// The type of a field's OpenTelemetry value, for [`TypeSuffixes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Long,
    Double,
    Boolean,
}

impl TypeSuffixes {
    /// The suffixes with the key rules applied, so that a normalized key plus
    /// a suffix is still a normalized key.
    pub(super) fn normalized(&self, replace_dots: bool) -> TypeSuffixes {
        let n = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                // Marked as a key would be, when it holds non-ASCII
                // characters: `_整数` and `_小数` stay apart.
                normalize_key(s, replace_dots).into_owned()
            }
        };
        TypeSuffixes {
            long: n(&self.long),
            double: n(&self.double),
            boolean: n(&self.boolean),
            date: n(&self.date),
        }
    }

    pub(super) fn suffix(&self, kind: Kind) -> &str {
        match kind {
            Kind::Long => &self.long,
            Kind::Double => &self.double,
            Kind::Boolean => &self.boolean,
        }
    }

    /// The configured suffixes LDP does not already know (usually none).
    pub(super) fn unknown(&self) -> Vec<String> {
        [&self.long, &self.double, &self.boolean, &self.date]
            .into_iter()
            .filter(|s| !s.is_empty() && !KNOWN_SUFFIXES.contains(&s.as_str()))
            .cloned()
            .collect()
    }
}

/// Bytes a key keeps: ASCII letters, digits, `_` and `-`, and `.` in the
/// second table (dots kept). Every other byte (non-ASCII ones included)
/// becomes `_`.
pub(super) const KEY_BYTES: [[bool; 256]; 2] = {
    let mut tables = [[false; 256]; 2];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let ok = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        tables[0][b] = ok;
        tables[1][b] = ok || c == b'.';
        b += 1;
    }
    tables
};

/// The longest name a key is sent under, in bytes, before a type suffix:
/// a longer key is cut, and marked ([`long_key`]).
pub(crate) const MAX_KEY_BYTES: usize = 255;

/// Normalizes a key: see the module documentation.
pub(crate) fn normalize_key(raw: &str, replace_dots: bool) -> Cow<'_, str> {
    let mut key = normalize_bytes(raw, replace_dots);
    if !replace_dots {
        fill_empty_parts(&mut key);
    }
    protect_reserved(&mut key);
    if key.len() > MAX_KEY_BYTES {
        // A key within the bound that its marks (a `gl2_` key's leading
        // `_`, a non-ASCII key's CRC) take past it: cut as a longer one is
        // (with room for the marks).
        key = Cow::Owned(long_key(raw, replace_dots));
        if !replace_dots {
            fill_empty_parts(&mut key);
        }
        protect_reserved(&mut key);
    }
    key
}

/// With dots kept, a name whose dots leave a part empty (`.a`, `a.`,
/// `a..b`), which search backends refuse, and with it the whole record:
/// such a dot becomes `_` (`_a`, `a_`, `a._b`).
fn fill_empty_parts(key: &mut Cow<'_, str>) {
    if !(key.starts_with('.') || key.ends_with('.') || key.contains("..")) {
        return;
    }
    let mut bytes = key.as_bytes().to_vec();
    let last = bytes.len() - 1;
    let mut after_dot = true;
    for (i, b) in bytes.iter_mut().enumerate() {
        let dot = *b == b'.';
        if dot && (after_dot || i == last) {
            *b = b'_';
        }
        after_dot = dot;
    }
    // Only a `.` became a `_`: still UTF-8.
    *key = Cow::Owned(String::from_utf8(bytes).unwrap_or_default());
}

/// [`normalize_key`] but for the receivers' reserved names: the bytes a
/// name may not hold replaced, and a key longer than [`MAX_KEY_BYTES`] cut.
///
/// A key with non-ASCII characters is marked: after the last of them come
/// `_` and the CRC-32 of the whole key in 8 hex digits, as a cut key ends.
/// So keys alike but for such characters stay apart (`名前` and `年齢`
/// would both be `__`, and one field would replace the other), and an
/// ASCII ending, a type suffix (`価格_long`), stays the ending.
fn normalize_bytes(raw: &str, replace_dots: bool) -> Cow<'_, str> {
    if raw.len() > MAX_KEY_BYTES {
        return Cow::Owned(long_key(raw, replace_dots));
    }
    let (mut key, mark_at) = replace_bytes(raw, replace_dots);
    if let Some(at) = mark_at {
        key.to_mut().insert_str(at, &crc_mark(raw));
    }
    key
}

/// `_` and the CRC-32 of `raw` in 8 hex digits: what keeps apart keys that
/// normalization (or a cut) made alike.
#[cold]
fn crc_mark(raw: &str) -> String {
    format!("_{:08x}", crc32fast::hash(raw.as_bytes()))
}

/// The bytes a key may not hold replaced by `_` (a multi-byte character
/// by one), and, if `raw` has non-ASCII characters, where the `_` of the
/// last of them ends.
fn replace_bytes(raw: &str, replace_dots: bool) -> (Cow<'_, str>, Option<usize>) {
    // A hot path: one table lookup per byte, and for a key that needs
    // changes, one allocation and one pass over bytes.
    let valid = &KEY_BYTES[usize::from(!replace_dots)];
    if raw.is_empty() {
        (Cow::Borrowed("empty_key"), None)
    } else if raw.bytes().all(|b| valid[usize::from(b)]) {
        (Cow::Borrowed(raw), None)
    } else if raw.is_ascii() {
        // Room for a reserved-name mark, so the string is allocated once.
        let mut bytes = Vec::with_capacity(raw.len() + 1);
        bytes.extend_from_slice(raw.as_bytes());
        for b in &mut bytes {
            if !valid[usize::from(*b)] {
                *b = b'_';
            }
        }
        // Only ASCII bytes went in: this cannot fail.
        (
            Cow::Owned(String::from_utf8(bytes).unwrap_or_default()),
            None,
        )
    } else {
        // Room for the non-ASCII mark.
        let mut key = String::with_capacity(raw.len() + 9);
        let mut mark_at = 0;
        for c in raw.chars() {
            match u8::try_from(c) {
                Ok(b) if valid[usize::from(b)] => key.push(c),
                _ => {
                    key.push('_');
                    if !c.is_ascii() {
                        mark_at = key.len();
                    }
                }
            }
        }
        (Cow::Owned(key), Some(mark_at))
    }
}

/// A map's key as a part of the path that names a flattened field (see
/// `Mapper::flatten`): as it is, but an empty key as `empty_key`, and a key
/// longer than [`MAX_KEY_BYTES`] cut as [`long_key`] cuts it (so that a path
/// stays bounded). The path is normalized whole once built.
pub(super) fn path_segment(raw: &str, replace_dots: bool) -> Cow<'_, str> {
    if raw.is_empty() {
        Cow::Borrowed("empty_key")
    } else if raw.len() > MAX_KEY_BYTES {
        Cow::Owned(long_key(raw, replace_dots))
    } else {
        Cow::Borrowed(raw)
    }
}

/// A key longer than [`MAX_KEY_BYTES`], cut: its start, its bytes
/// normalized, then `_` and the CRC-32 of the whole key in 8 hex digits, so
/// that keys cut alike stay apart. Only the start is copied, whatever the
/// length.
#[cold]
fn long_key(raw: &str, replace_dots: bool) -> String {
    // `_`, 8 digits, and a leading `_` should the start begin with `gl2_`
    // ([`protect_reserved`]).
    let head = str_head(raw, MAX_KEY_BYTES - 10);
    let mut key = replace_bytes(head, replace_dots).0.into_owned();
    key.push_str(&crc_mark(raw));
    key
}

/// Moves a (normalized) name out of the receivers' reserved ones: a reserved
/// name gets a trailing `_` (`id` → `id_`), a name in Graylog's internal
/// `gl2_` namespace a leading one (`gl2_x` → `_gl2_x`).
pub(super) fn protect_reserved(key: &mut Cow<'_, str>) {
    // Most keys are rejected by their length at once.
    if reserved_length(key.len()) && RESERVED.contains(&key.as_ref()) {
        key.to_mut().push('_');
    } else if key.starts_with("gl2_") {
        key.to_mut().insert(0, '_');
    }
}

/// Whether `key` followed by `suffix` is a name the receivers reserve.
pub(super) fn forms_reserved(key: &str, suffix: &str) -> bool {
    let total = key.len() + suffix.len();
    if !reserved_length(total) && key.len() >= 4 {
        // No reserved name is that long; `gl2_` would already be marked.
        return key.starts_with("gl2_");
    }
    let reserved = reserved_length(total)
        && RESERVED
            .iter()
            .any(|r| r.len() == total && r.starts_with(key) && r.ends_with(suffix));
    reserved
        || key
            .bytes()
            .chain(suffix.bytes())
            .take(4)
            .eq(b"gl2_".iter().copied())
}
