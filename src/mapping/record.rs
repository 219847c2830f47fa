//! The format-neutral record the encoders write, and how it shrinks to fit a
//! frame.

use std::borrow::Cow;

use super::values::{print_bit, truncate_text, EpochMicros};
use super::TRUNCATED_MARKER;

/// A field value as it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue<'a> {
    /// A string, never blank.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A finite double.
    Float(f64),
}

/// A named field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field<'a> {
    /// The normalized key, without any format prefix.
    pub(crate) key: Cow<'a, str>,
    /// Written right after the key: a type suffix (`_long`), or empty. Kept
    /// apart so that a typed name costs no allocation.
    pub(crate) suffix: &'a str,
    /// The value.
    pub(crate) value: FieldValue<'a>,
}

/// A record ready to encode.
#[derive(Debug, Clone)]
pub(crate) struct MappedRecord<'a> {
    /// The source host, never blank.
    pub(crate) host: &'a str,
    /// The one-line message, never blank.
    pub(crate) short_message: Cow<'a, str>,
    /// The long form: a multi-line body and/or a stack trace.
    pub(crate) full_message: Option<Cow<'a, str>>,
    /// The record's time (its timestamp, else its observed timestamp, else now).
    pub(crate) time: EpochMicros,
    /// Syslog severity, 0 (emergency) to 7 (debug).
    pub(crate) level: u8,
    /// Additional fields, each key once.
    pub(crate) fields: Vec<Field<'a>>,
    /// How many fields at the end of `fields` are static extras, which
    /// [`shrink`](Self::shrink) never removes.
    pub(crate) protected_tail: usize,
    /// The static fields (resource, extras) already encoded for the exporter's
    /// format, when none of the record's fields shares a name with them; then
    /// `fields` holds the record's own fields only.
    pub(crate) statics: Option<Statics<'a>>,
}

/// The static fields of a record, pre-encoded by [`Mapper::pre_encode`](super::Mapper::pre_encode).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statics<'a> {
    /// The resource's fields, encoded: written before the record's own fields.
    pub(crate) head: &'a [u8],
    /// The extras, encoded: written after the record's own fields.
    pub(crate) tail: &'a [u8],
    pub(super) resource: &'a [Field<'static>],
    pub(super) extras: &'a [Field<'static>],
}

/// Encodes one field for a wire format (`Format::encode_field`).
pub(crate) type FieldEncoder = fn(&Field<'_>, &mut Vec<u8>);

/// The static fields encoded once for one format.
#[derive(Debug)]
pub(super) struct StaticWire {
    pub(super) encode: FieldEncoder,
    pub(super) head: Vec<u8>,
    pub(super) tail: Vec<u8>,
    /// The union of the static fields' [`Field::name_bit`]s.
    pub(super) names: u64,
}

impl MappedRecord<'_> {
    /// Makes the encoded record at least `excess` bytes smaller: cuts the full
    /// message first, then the short message, then the largest field values;
    /// everything cut is marked with [`TRUNCATED_MARKER`]. `last_resort` keeps
    /// only a short message head and the static extras.
    pub(crate) fn shrink(&mut self, excess: usize, last_resort: bool) {
        const KEEP: usize = 200;
        self.unpack_statics();
        if last_resort {
            self.full_message = None;
            self.short_message = cut_to(std::mem::take(&mut self.short_message), KEEP);
            let keep_from = self.fields.len() - self.protected_tail;
            self.fields.drain(..keep_from);
            return;
        }
        let mut need = excess + TRUNCATED_MARKER.len() + 16;
        if let Some(full) = self.full_message.take() {
            if full.len() > need + KEEP {
                let len = full.len() - need;
                self.full_message = Some(cut_to(full, len));
                return;
            }
            need = need.saturating_sub(full.len());
        }
        if need == 0 {
            return;
        }
        if self.short_message.len() > need + KEEP {
            let len = self.short_message.len() - need;
            self.short_message = cut_to(std::mem::take(&mut self.short_message), len);
            return;
        }
        if self.short_message.len() > KEEP {
            need = need.saturating_sub(self.short_message.len() - KEEP);
            self.short_message = cut_to(std::mem::take(&mut self.short_message), KEEP);
        }
        // Then the largest field values, extras excepted.
        let open = self.fields.len() - self.protected_tail;
        let mut order: Vec<usize> = (0..open).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(field_size(&self.fields[i])));
        for i in order {
            if need == 0 {
                break;
            }
            let size = field_size(&self.fields[i]);
            if let FieldValue::Str(text) = &mut self.fields[i].value {
                let target = size.saturating_sub(need).max(KEEP.min(size));
                if target < size {
                    *text = cut_to(std::mem::take(text), target);
                    need = need.saturating_sub(size - target);
                }
            }
        }
    }
}

impl<'a> MappedRecord<'a> {
    /// Turns pre-encoded static fields back into fields (resource first,
    /// extras last and protected), so that they can be cut like the others.
    pub(super) fn unpack_statics(&mut self) {
        let Some(statics) = self.statics.take() else {
            return;
        };
        let own = std::mem::take(&mut self.fields);
        let mut fields =
            Vec::with_capacity(statics.resource.len() + own.len() + statics.extras.len());
        fields.extend(statics.resource.iter().map(Field::borrowed));
        fields.extend(own);
        fields.extend(statics.extras.iter().map(Field::borrowed));
        self.fields = fields;
        self.protected_tail = statics.extras.len();
    }
}

pub(super) fn field_size(field: &Field<'_>) -> usize {
    match &field.value {
        FieldValue::Str(s) => s.len(),
        _ => 0,
    }
}

/// Like [`truncate_text`], always producing an owned text of at most `max` bytes.
pub(super) fn cut_to(text: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    truncate_text(text, max.max(TRUNCATED_MARKER.len() + 1))
}

/// Keeps the last field of each key, in the order of those last occurrences.
pub(super) fn dedup_last_wins(mut fields: Vec<Field<'_>>) -> Vec<Field<'_>> {
    let n = fields.len();
    if n <= 64 {
        // Typical records: a bit per field and pairwise comparison of
        // fingerprints (names only when those match), no allocation.
        // From the last field back: a field whose bit no later field has set
        // is unique so far; only the others are compared.
        let mut prints = [0u32; 64];
        let mut seen: u64 = 0;
        let mut drop: u64 = 0;
        for i in (0..n).rev() {
            let print = fields[i].fingerprint();
            prints[i] = print;
            let bit = print_bit(print);
            if seen & bit != 0
                && (i + 1..n).any(|j| prints[j] == print && fields[j].same_name(&fields[i]))
            {
                drop |= 1 << i;
            }
            seen |= bit;
        }
        if drop != 0 {
            let mut i = 0;
            fields.retain(|_| {
                let keep = drop & (1 << i) == 0;
                i += 1;
                keep
            });
        }
        return fields;
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut keep = vec![true; n];
    for i in (0..n).rev() {
        if !seen.insert(fields[i].name().into_owned()) {
            keep[i] = false;
        }
    }
    let mut i = 0;
    fields.retain(|_| {
        let k = keep[i];
        i += 1;
        k
    });
    fields
}
