//! The format-neutral record the encoders write, and how it shrinks to fit a
//! frame.

use std::borrow::Cow;

use super::values::{marked_head, print_bit, EpochMicros};
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
    /// A boolean: `true` or `false`, as a string where the format has no
    /// booleans. Kept apart from texts so that it is written without a scan
    /// for bytes to escape.
    Bool(bool),
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

/// Where the mapper hands a record's fields, lowest precedence first: a
/// `Vec` to deduplicate and encode later, or a writer that encodes each at
/// once.
pub(crate) trait FieldSink<'a> {
    /// Takes the next field.
    fn push(&mut self, field: Field<'a>);

    /// Takes the next field and its name encoded for the sink's format
    /// (what comes before its value), or nothing when `name` is empty.
    #[inline(always)]
    fn push_named(&mut self, name: &'a [u8], field: Field<'a>) {
        let _ = name;
        self.push(field);
    }

    /// Where the fields of a map are flattened, each under its whole
    /// name; [`flush_spill`](Self::flush_spill) takes them from there.
    fn spill(&mut self) -> &mut Vec<Field<'a>>;

    /// Takes the fields [`spill`](Self::spill) holds.
    fn flush_spill(&mut self);

    /// Whether the sink takes no more fields (the record goes another way):
    /// mapping the rest would be wasted.
    #[inline(always)]
    fn is_done(&self) -> bool {
        false
    }
}

impl<'a> FieldSink<'a> for Vec<Field<'a>> {
    #[inline(always)]
    fn push(&mut self, field: Field<'a>) {
        Vec::push(self, field);
    }

    fn spill(&mut self) -> &mut Vec<Field<'a>> {
        self
    }

    fn flush_spill(&mut self) {}
}

/// A record ready to encode.
#[derive(Debug, Clone)]
pub(crate) struct MappedRecord<'a> {
    /// The source host, never blank.
    pub(crate) host: &'a str,
    /// What the format writes for `host` in the head, encoded once by
    /// [`Mapper::pre_encode`](super::Mapper::pre_encode); empty when it was
    /// not, and the host is then encoded with the record.
    pub(crate) host_wire: &'a [u8],
    /// The one-line message, never blank.
    pub(crate) short_message: Cow<'a, str>,
    /// True when `short_message` is known to hold no byte that any format
    /// escapes (no control character, `"` or `\`), so that an encoder
    /// copies it as is; false when not known. Cuts keep it true: a plain
    /// text's head, followed by the plain [`TRUNCATED_MARKER`], is plain.
    pub(crate) short_plain: bool,
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

/// Encodes one field for a wire format (`Writer::encode_field`).
pub(crate) type FieldEncoder = fn(&Field<'_>, &mut Vec<u8>);

/// Encodes what comes before a field's value, its name (key, suffix)
/// included, for a wire format (`Writer::encode_name`).
pub(crate) type NameEncoder = fn(&str, &str, &mut Vec<u8>);

/// Encodes the part of a record's head that depends on the host alone, for
/// a wire format (`Writer::encode_host`).
pub(crate) type HostEncoder = fn(&str, &mut Vec<u8>);

/// The static fields encoded once for one format.
#[derive(Debug)]
pub(super) struct StaticWire {
    pub(super) encode: FieldEncoder,
    pub(super) name: NameEncoder,
    pub(super) host_encoder: HostEncoder,
    /// The host's part of the head, encoded.
    pub(super) host: Vec<u8>,
    /// The names of [`FixedNames`](super::keys::FixedNames) encoded,
    /// in its order.
    pub(super) fixed: [Vec<u8>; 5],
    pub(super) head: Vec<u8>,
    pub(super) tail: Vec<u8>,
    /// The union of the static fields' [`Field::name_bit`]s.
    pub(super) names: u64,
}

impl MappedRecord<'_> {
    /// Cuts (and marks with [`TRUNCATED_MARKER`]) every text that could not
    /// fit `max` encoded bytes even alone, the static extras excepted, when
    /// a message may not fit: what keeps the work and memory of encoding a
    /// record with a huge message bounded by the frame limit, whatever the
    /// input. (Field values are never longer than the frame limit, the mapper
    /// cuts them.) Returns whether a text was cut.
    #[inline]
    pub(crate) fn cap_texts(&mut self, max: usize, escapes: &Escapes) -> bool {
        self.has_long_message(max, escapes) && self.cap_long_texts(max, escapes)
    }

    /// The fewest bytes the record's texts and fields take encoded (their
    /// lengths, escapes aside): above the limit, it must be cut.
    pub(crate) fn least_width(&self) -> usize {
        let open = self.fields.len() - self.protected_tail;
        self.short_message.len()
            + self.full_message.as_deref().map_or(0, str::len)
            + self.fields[..open]
                .iter()
                .map(Field::least_width)
                .sum::<usize>()
    }

    /// Whether a message may not fit `max` encoded bytes, however it escapes
    /// (when not, [`cap_texts`](Self::cap_texts) cuts nothing).
    #[inline]
    pub(crate) fn has_long_message(&self, max: usize, escapes: &Escapes) -> bool {
        // Messages this short fit however they escape: the common case,
        // decided by their lengths alone.
        let widest = usize::from(escapes.widest);
        let long = |text: &str| text.len().saturating_mul(widest) > max;
        long(&self.short_message) || self.full_message.as_deref().is_some_and(long)
    }

    /// [`cap_texts`](Self::cap_texts) of a record with a message that may
    /// not fit.
    #[cold]
    #[inline(never)]
    fn cap_long_texts(&mut self, max: usize, escapes: &Escapes) -> bool {
        let open = self.fields.len() - self.protected_tail;
        let budget = max.saturating_sub(TRUNCATED_MARKER.len());
        let mut cut = false;
        for field in &mut self.fields[..open] {
            if let FieldValue::Str(text) = &mut field.value {
                cut |= cap(text, budget, escapes);
            }
        }
        cut |= cap(&mut self.short_message, budget, escapes);
        if let Some(full) = &mut self.full_message {
            // Cut first by `shrink`, the full message never keeps more than
            // fits beside the short one: the rest need not be encoded.
            let room = budget.saturating_sub(escapes.width(&self.short_message));
            cut |= cap(full, room, escapes);
        }
        cut
    }

    /// The record with every text [`cap_texts`](Self::cap_texts) may cut
    /// left empty: its encoded size and [`text_width`](Self::text_width)
    /// make the whole record's, without encoding the texts.
    pub(crate) fn skeleton(&self) -> MappedRecord<'_> {
        let open = self.fields.len() - self.protected_tail;
        let fields = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| match &field.value {
                FieldValue::Str(_) if i < open => Field {
                    key: Cow::Borrowed(&field.key),
                    suffix: field.suffix,
                    value: FieldValue::Str(Cow::Borrowed("")),
                },
                _ => field.borrowed(),
            })
            .collect();
        MappedRecord {
            host: self.host,
            host_wire: self.host_wire,
            short_message: Cow::Borrowed(""),
            short_plain: true,
            full_message: self.full_message.as_ref().map(|_| Cow::Borrowed("")),
            time: self.time,
            level: self.level,
            fields,
            protected_tail: self.protected_tail,
            statics: self.statics,
        }
    }

    /// The escaped width of the texts [`skeleton`](Self::skeleton) leaves out.
    pub(crate) fn text_width(&self, escapes: &Escapes) -> usize {
        let open = self.fields.len() - self.protected_tail;
        escapes.width(&self.short_message)
            + self
                .full_message
                .as_deref()
                .map_or(0, |full| escapes.width(full))
            + self.fields[..open]
                .iter()
                .map(|field| field_width(field, escapes))
                .sum::<usize>()
    }

    /// Makes the encoded record at least `excess` bytes smaller, using
    /// `escapes` to measure what each cut saves: cuts the full message first
    /// (or drops it, marking the short message, when even cut it would not
    /// save enough), then the short message, then the largest field values,
    /// then drops whole fields, the last first (extras excepted). Everything
    /// cut is marked with [`TRUNCATED_MARKER`] and keeps the longest prefix
    /// that makes the excess up; dropped fields mark the short message.
    /// `field_size` tells how many bytes a field takes encoded (what
    /// dropping it saves). `last_resort` keeps only a
    /// short message head and the static extras, the short message marked
    /// when anything else went.
    pub(crate) fn shrink(
        &mut self,
        excess: usize,
        last_resort: bool,
        escapes: &Escapes,
        field_size: &mut dyn FnMut(&Field<'_>) -> usize,
    ) {
        self.unpack_statics();
        if last_resort {
            let keep_from = self.fields.len() - self.protected_tail;
            let dropped = self.full_message.take().is_some() || keep_from > 0;
            self.fields.drain(..keep_from);
            // What was dropped, the short message says (once): cut to a
            // head of `KEEP` bytes as written (most control characters take
            // six in JSON), or marked.
            let fits = escapes.width(&self.short_message) <= KEEP;
            if !fits {
                let budget = KEEP - escapes.width(TRUNCATED_MARKER);
                let short = std::mem::take(&mut self.short_message);
                self.short_message = cut_within(short, budget, escapes).0;
            } else if dropped {
                self.mark_short_message();
            }
            return;
        }
        let marker = escapes.width(TRUNCATED_MARKER);
        let mut need = excess;
        if let Some(full) = self.full_message.take() {
            let width = escapes.width(&full);
            if width >= need + marker {
                let (full, _) = cut_within(full, width - need - marker, escapes);
                self.full_message = Some(full);
                return;
            }
            // Dropped whole: the short message carries the marker instead.
            need = need.saturating_sub(width);
            if self.mark_short_message() {
                need += marker;
            }
        }
        if shrink_text(&mut self.short_message, &mut need, marker, escapes) {
            return;
        }
        // Then the largest field values, extras excepted.
        let open = self.fields.len() - self.protected_tail;
        let mut order: Vec<(usize, usize)> = (0..open)
            .map(|i| (field_width(&self.fields[i], escapes), i))
            .collect();
        order.sort_unstable_by_key(|&(width, i)| (std::cmp::Reverse(width), i));
        for (_, i) in order {
            if let FieldValue::Str(text) = &mut self.fields[i].value {
                if shrink_text(text, &mut need, marker, escapes) {
                    return;
                }
            }
        }
        // Cutting texts to their heads was not enough (numbers, or many
        // short texts): then whole fields go, the last first, so that the
        // resource's, the scope's and the record's own fields, which come
        // first, go last. The short message says so.
        if self.mark_short_message() {
            need += marker;
        }
        let mut keep = open;
        while keep > 0 && need > 0 {
            keep -= 1;
            need = need.saturating_sub(field_size(&self.fields[keep]));
        }
        self.fields.drain(keep..open);
    }

    /// Appends the marker to the whole short message, unless it ends with
    /// one already (a second would end up in the prefix kept by a later
    /// cut); returns whether it did.
    fn mark_short_message(&mut self) -> bool {
        if self.short_message.ends_with(TRUNCATED_MARKER) {
            return false;
        }
        let short = std::mem::take(&mut self.short_message);
        let len = short.len();
        self.short_message = marked_head(short, len);
        true
    }
}

/// What [`MappedRecord::shrink`] leaves of a short message or a field value
/// it cuts without cutting it to fit: a head of this many encoded bytes.
const KEEP: usize = 200;

/// Cuts `text` to save `need` encoded bytes, keeping at least a head of
/// [`KEEP`] bytes; takes what it saved from `need`. Returns whether that was
/// enough.
fn shrink_text(
    text: &mut Cow<'_, str>,
    need: &mut usize,
    marker: usize,
    escapes: &Escapes,
) -> bool {
    let width = escapes.width(text);
    if width >= *need + marker + KEEP {
        let (cut, _) = cut_within(std::mem::take(text), width - *need - marker, escapes);
        *text = cut;
        *need = 0;
        return true;
    }
    if width > KEEP + marker {
        let (cut, kept) = cut_within(std::mem::take(text), KEEP, escapes);
        *text = cut;
        *need = need.saturating_sub(width - kept);
    }
    *need == 0
}

/// How many bytes each byte of a text takes once a format has escaped it:
/// what lets a text be cut to an encoded size without encoding it. A byte of
/// a multi-byte character takes one (neither format escapes them).
#[derive(Debug)]
pub(crate) struct Escapes {
    widths: [u8; 256],
    /// The widest escape.
    widest: u8,
}

impl Escapes {
    /// The escapes with these widths, one per byte value.
    pub(crate) const fn new(widths: [u8; 256]) -> Escapes {
        let mut widest = 1;
        let mut b = 0;
        while b < 256 {
            if widths[b] > widest {
                widest = widths[b];
            }
            b += 1;
        }
        Escapes { widths, widest }
    }

    #[inline]
    fn of(&self, byte: u8) -> usize {
        usize::from(self.widths[usize::from(byte)])
    }

    /// The escaped width of `text`.
    pub(crate) fn width(&self, text: &str) -> usize {
        text.bytes().map(|b| self.of(b)).sum()
    }

    /// The longest prefix of `text` ending on a character boundary whose
    /// escaped width is at most `budget`: its length in bytes and its width.
    /// Reads no further than the prefix and one byte.
    pub(crate) fn prefix_within(&self, text: &str, budget: usize) -> (usize, usize) {
        let bytes = text.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let w = self.of(b);
            if width + w > budget {
                let mut cut = i;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                    width -= self.of(bytes[cut]);
                }
                return (cut, width);
            }
            width += w;
        }
        (bytes.len(), width)
    }
}

/// Cuts and marks `text` if its escaped width is over `budget`; returns
/// whether it did. Reads at most `budget` bytes and one.
fn cap(text: &mut Cow<'_, str>, budget: usize, escapes: &Escapes) -> bool {
    let (len, _) = escapes.prefix_within(text, budget);
    if len == text.len() {
        return false;
    }
    *text = marked_head(std::mem::take(text), len);
    true
}

/// `text` cut to its longest prefix of escaped width at most `budget`, then
/// marked; a marker it already ends with goes first, so that cutting a cut
/// text again still leaves a prefix of the original. Returns the text and
/// its escaped width.
fn cut_within<'a>(text: Cow<'a, str>, budget: usize, escapes: &Escapes) -> (Cow<'a, str>, usize) {
    let base = text.strip_suffix(TRUNCATED_MARKER).unwrap_or(&text);
    let (len, width) = escapes.prefix_within(base, budget);
    let cut = marked_head(text, len);
    (cut, width + escapes.width(TRUNCATED_MARKER))
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

/// The escaped width of a field's text; 0 for a number.
fn field_width(field: &Field<'_>, escapes: &Escapes) -> usize {
    match &field.value {
        FieldValue::Str(s) => escapes.width(s),
        _ => 0,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The last resort keeps the short message (a head of it) and the
    /// static fields; whatever it drops, the short message says so, once.
    #[test]
    fn the_last_resort_marks_what_it_drops_once() {
        let escapes = Escapes::new([1; 256]);
        let field = |key: &'static str| Field {
            key: Cow::Borrowed(key),
            suffix: "",
            value: FieldValue::Int(1),
        };
        let record = |short: String, full: bool, open: usize| MappedRecord {
            host: "h",
            host_wire: &[],
            short_message: Cow::Owned(short),
            short_plain: false,
            full_message: full.then_some(Cow::Borrowed("full")),
            time: EpochMicros { secs: 0, micros: 0 },
            level: 6,
            fields: (0..open)
                .map(|_| field("open"))
                .chain([field("static")])
                .collect(),
            protected_tail: 1,
            statics: None,
        };
        let marked = format!("short{TRUNCATED_MARKER}");
        let long = "x".repeat(1000);
        let head = format!(
            "{}{TRUNCATED_MARKER}",
            &long[..KEEP - TRUNCATED_MARKER.len()]
        );
        for (short, full, open, expected) in [
            ("short", true, 0, &*marked),
            ("short", false, 1, &marked),
            ("short", true, 2, &marked),
            ("short", false, 0, "short"),
            (&marked, true, 1, &marked),
            (&long, false, 0, &head),
            (&long, true, 0, &head),
        ] {
            let mut cut = record(short.to_owned(), full, open);
            cut.shrink(0, true, &escapes, &mut |_| 0);
            let case = format!("{} bytes, {full}, {open}", short.len());
            assert_eq!(cut.short_message, expected, "{case}");
            assert_eq!(cut.full_message, None, "{case}");
            assert_eq!(cut.fields, [field("static")], "{case}");
        }
        // Measured as written: here a control character takes six bytes.
        let mut widths = [1; 256];
        widths[1] = 6;
        let wide = Escapes::new(widths);
        let mut cut = record("\u{1}".repeat(1000), false, 0);
        cut.shrink(0, true, &wide, &mut |_| 0);
        let width = wide.width(&cut.short_message);
        assert!((KEEP - 5..=KEEP).contains(&width), "{width} bytes written");
        assert!(cut.short_message.ends_with(TRUNCATED_MARKER));
    }

    /// A text is cut to a head of 200 bytes and the marker only when that
    /// saves something: one no wider is left whole.
    #[test]
    fn a_text_is_cut_to_a_head_only_when_that_saves_bytes() {
        let escapes = Escapes::new([1; 256]);
        let marker = TRUNCATED_MARKER.len();
        let long = "x".repeat(10_000);
        for (width, saved) in [(200 + marker, 0), (201 + marker, 1)] {
            let mut text = Cow::Borrowed(&long[..width]);
            let mut need = 5_000;
            assert!(!shrink_text(&mut text, &mut need, marker, &escapes));
            assert_eq!(need, 5_000 - saved, "{width}");
            if saved == 0 {
                assert_eq!(text, &long[..width]);
            } else {
                assert_eq!(text, format!("{}{TRUNCATED_MARKER}", &long[..200]));
            }
        }
    }
}
