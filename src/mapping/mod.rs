//! Record mapping: one OpenTelemetry log record, its instrumentation scope and the
//! provider's resource become a format-neutral [`MappedRecord`]: a host, a short and
//! an optional full message, a time, a syslog level and an ordered list of named,
//! typed fields. Every rename rule lives here; the GELF and LTSV encoders only
//! write what they are given.
//!
//! The rules guarantee that what reaches Graylog or Logs Data Platform is accepted
//! whole and loses nothing unseen:
//!
//! * values are only strings, integers and finite doubles: booleans become
//!   `"true"`/`"false"`, NaN and infinities become `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`, bytes become standard base64, lists become their JSON text
//!   (nested at most [`MAX_JSON_DEPTH`] deep: deeper, [`TOO_DEEP`] stands for the rest),
//!   maps are flattened into one field per leaf (`http.request` → `http_request_method`);
//! * an empty or blank string (which Graylog would drop) is sent quoted: `""`, `"  "`;
//! * a string longer than the field cap is cut on a character boundary and ends
//!   with `[truncated]`;
//! * keys keep ASCII letters, digits, `_` and `-`; dots become `_` (unless
//!   configured otherwise), every other character becomes `_`, an empty key
//!   becomes `empty_key`, reserved names get a trailing `_` (`id` → `id_`) and
//!   names in Graylog's internal `gl2_` namespace a leading one (`_gl2_x`);
//! * each key appears once: static extras win over record attributes, which win
//!   over the record's own metadata (target, trace context, ...), which wins over
//!   scope attributes, which win over resource attributes;
//! * with [`TypeSuffixes`] (the Logs Data Platform profile), a field whose value
//!   came from a typed OpenTelemetry value carries its type in its name:
//!   `retries` (an integer) → `retries_long`, `ratio` → `ratio_double`,
//!   `cached` → `cached_bool`; names that already end in a known suffix are
//!   left alone.

mod keycache;
mod keys;
mod mapper;
mod record;
mod values;

use std::fmt;

use opentelemetry::Value;

pub(crate) use keys::Kind;
pub use keys::TypeSuffixes;
pub(crate) use mapper::{is_flattened, Mapper};
pub(crate) use record::{
    Escapes, Field, FieldEncoder, FieldSink, FieldValue, HostEncoder, MappedRecord, NameEncoder,
};
pub(crate) use values::{print_bit, EpochMicros};

/// Default largest frame (one encoded record) the receiver accepts: Graylog's TCP input default.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;
/// Default cap on one additional field's text value, below the 32,766-byte limit
/// of Graylog's `keyword` index mapping.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 32_000;
/// The smallest frame limit `build()` accepts: room for a record's head and
/// a truncated message.
pub const MIN_FRAME_BYTES: usize = 1024;
/// The smallest field limit `build()` accepts.
pub const MIN_FIELD_BYTES: usize = 64;
/// Text used as `short_message` when a record has no body, no meaningful event
/// name and no target.
pub(crate) const NO_MESSAGE: &str = "(no message)";

/// The most bytes a host takes as a record writes it: the longest name DNS
/// allows. A longer host is cut, and so is one whose escapes make it longer
/// (most control characters take six bytes in GELF), so that every record
/// keeps the room the static fields leave it.
pub(crate) const MAX_HOST_BYTES: usize = 255;

/// Marker appended to a text that was cut.
pub(crate) const TRUNCATED_MARKER: &str = " [truncated]";

/// Nesting depth of maps that is flattened; deeper values are sent as JSON text.
const MAX_FLATTEN_DEPTH: usize = 8;

/// Nesting depth of lists and maps written as JSON text; a value nested
/// deeper is written as [`TOO_DEEP`], so that no input can exhaust the
/// stack.
const MAX_JSON_DEPTH: usize = 64;

/// What stands, in JSON text, for a list or map nested deeper than
/// [`MAX_JSON_DEPTH`].
const TOO_DEEP: &str = "[nested too deep]";

/// User-facing mapping settings, filled by the builder.
#[derive(Clone)]
pub(crate) struct MappingOptions {
    pub(crate) host: Option<String>,
    pub(crate) extras: Vec<(String, Value)>,
    pub(crate) replace_dots: bool,
    pub(crate) redundant_fields: bool,
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_field_bytes: usize,
    pub(crate) type_suffixes: Option<TypeSuffixes>,
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            host: None,
            extras: Vec::new(),
            replace_dots: true,
            redundant_fields: false,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_field_bytes: DEFAULT_MAX_FIELD_BYTES,
            type_suffixes: None,
        }
    }
}

impl fmt::Debug for MappingOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extras may hold secrets (routing tokens): show their names only.
        let extras: Vec<&str> = self.extras.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("MappingOptions")
            .field("host", &self.host)
            .field("extras", &extras)
            .field("replace_dots", &self.replace_dots)
            .field("redundant_fields", &self.redundant_fields)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_field_bytes", &self.max_field_bytes)
            .field("type_suffixes", &self.type_suffixes)
            .finish()
    }
}

#[cfg(test)]
mod tests;
