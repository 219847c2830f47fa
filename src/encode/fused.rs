//! The fast path of encoding: a record's fields are encoded as the mapper
//! hands them over, with no list of fields built, deduplicated and moved in
//! between. It holds for the common record, whose field names are all
//! different and which fits its frame; any other is left, with nothing
//! written, to the general path ([`Mapper::map`] then the encoder), which
//! writes the very same bytes for the common record (one of at most
//! [`MAX_NAMES`] fields). Records of one scope
//! and target copy the fields those give ([`Leads`]), and records of one
//! callsite the names of their attributes ([`Shapes`]).

use std::borrow::Cow;
use std::marker::PhantomData;

use super::shape::Shapes;
use super::Writer;
use crate::mapping::{print_bit, Field, FieldSink, Mapper};
use opentelemetry::{InstrumentationScope, Value};
use opentelemetry_sdk::logs::SdkLogRecord;

/// Where the name of a field written lies in the output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    /// Its [`Field::fingerprint`].
    print: u32,
    at: usize,
    len: usize,
}

/// How many leads [`Leads`] keeps: a thread's records come from a few
/// places at a time.
const LEADS: usize = 4;

/// The most bytes a lead kept may take, and the most its scope's and
/// target's texts may: what a thread keeps and compares stays small.
const MAX_LEAD_BYTES: usize = 1024;

/// The fields records of one scope and target start with
/// ([`Mapper::map_lead`]), as the fast path last wrote them, for a few
/// scopes and targets: the next such record copies them instead of writing
/// them again (three fields on a common record, each escaped, named and
/// checked against the others).
#[derive(Default)]
pub(crate) struct Leads {
    /// At most [`LEADS`].
    entries: Vec<Lead>,
    /// Counts lookups: an entry's [`Lead::used`] is the lookup that last
    /// found it or was followed by keeping it.
    clock: u64,
    /// Leads found.
    #[cfg(test)]
    found: usize,
}

/// One scope and target's lead.
struct Lead {
    /// What it was written for: the mapper's id (which stands for its
    /// format too, see [`Mapper::pre_encode`]), the scope and the target.
    mapper: u64,
    scope: InstrumentationScope,
    /// As the record had it: a static text stays borrowed, so that the
    /// next record's is found the same by its address ([`same_text`]).
    target: Option<Cow<'static, str>>,
    bytes: Vec<u8>,
    /// The names written, `at` counted from the start of `bytes`.
    names: Vec<Name>,
    /// Their [`seen_bit`]s.
    seen: [u64; 4],
    /// When it was last found or kept: the least recent is replaced.
    used: u64,
    /// The shapes of the attributes of its records.
    shapes: Shapes,
}

/// What a lead is written for: a mapper (by its id), a scope and a target.
#[derive(Clone, Copy)]
struct LeadOf<'s> {
    mapper: u64,
    scope: &'s InstrumentationScope,
    target: Option<&'s Cow<'static, str>>,
}

impl<'s> LeadOf<'s> {
    fn target(&self) -> Option<&'s str> {
        self.target.map(|target| target.as_ref())
    }
}

impl Lead {
    fn is_of(&self, of: LeadOf<'_>) -> bool {
        same_option(self.target.as_deref(), of.target())
            && self.mapper == of.mapper
            && same_fields(&self.scope, of.scope)
    }
}

/// `a == b`, without calling `memcmp` for empty texts (their pointer may
/// be dangling, and glibc's AVX-512 `memcmp` reads it through a masked load,
/// which a dangling address makes very slow: the scope of `tracing`'s
/// bridge is named `""`), nor for a text at the same address (a static
/// one, borrowed by the record and by the lead kept from an earlier one:
/// `tracing`'s targets, most scopes' names).
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a.as_ptr() == b.as_ptr() || a == b)
}

/// [`same_text`] for optional texts.
#[inline]
fn same_option(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_text(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Whether two scopes map to the same fields: the same name, version and
/// attributes in the same order, doubles compared bit for bit (`-0.0` is
/// not written as `0.0`). Not `==`, which sorts the attributes into new
/// vectors and does not mind their order.
#[inline]
fn same_fields(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    if !same_text(a.name(), b.name()) || !same_option(a.version(), b.version()) {
        return false;
    }
    let (mut a, mut b) = (a.attributes(), b.attributes());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(a), Some(b))
                if same_text(a.key.as_str(), b.key.as_str()) && same_value(&a.value, &b.value) => {}
            _ => return false,
        }
    }
}

/// Whether two values are written alike (lists never are: no lead of a
/// scope with one is kept, see [`key_bytes`]).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => same_text(a.as_str(), b.as_str()),
        (Value::F64(a), Value::F64(b)) => a.to_bits() == b.to_bits(),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::I64(a), Value::I64(b)) => a == b,
        _ => false,
    }
}

/// The bytes of text a lead's key holds, or more: its scope's name,
/// version, attribute names and texts, and the target (numbers count as
/// none; a list as more than [`MAX_LEAD_BYTES`], so that no lead of its
/// scope is kept, as none would ever be found, see [`same_value`]).
fn key_bytes(of: LeadOf<'_>) -> usize {
    let attributes = of.scope.attributes().map(|kv| {
        kv.key.as_str().len()
            + match &kv.value {
                Value::String(text) => text.as_str().len(),
                Value::Bool(_) | Value::I64(_) | Value::F64(_) => 0,
                _ => MAX_LEAD_BYTES + 1,
            }
    });
    attributes.sum::<usize>()
        + of.scope.name().len()
        + of.scope.version().map_or(0, str::len)
        + of.target().map_or(0, str::len)
}

impl Leads {
    /// The index of the lead `of`, if kept.
    #[inline]
    fn find(&mut self, of: LeadOf<'_>) -> Option<usize> {
        self.clock += 1;
        let at = self.entries.iter().position(|lead| lead.is_of(of))?;
        self.entries[at].used = self.clock;
        #[cfg(test)]
        {
            self.found += 1;
        }
        Some(at)
    }

    /// Keeps what `sink` wrote from `base` on as the lead `of`, in place of
    /// the least recently used when all entries are taken. The entry's
    /// vectors are reused: with the same scope (the common case), a record
    /// of another target allocates nothing (but an owned target in place of
    /// a static one). Returns its index, if kept.
    fn keep<F>(&mut self, of: LeadOf<'_>, sink: &Fused<'_, '_, F>, base: usize) -> Option<usize> {
        let bytes = sink.out.get(base..)?;
        if bytes.len() > MAX_LEAD_BYTES || key_bytes(of) > MAX_LEAD_BYTES {
            return None;
        }
        let at = if self.entries.len() < LEADS {
            self.entries.push(Lead {
                mapper: of.mapper,
                scope: of.scope.clone(),
                target: None,
                bytes: Vec::new(),
                names: Vec::new(),
                seen: [0; 4],
                used: 0,
                shapes: Shapes::default(),
            });
            self.entries.len() - 1
        } else {
            let least = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, lead)| lead.used);
            least?.0
        };
        let lead = &mut self.entries[at];
        lead.shapes.clear();
        lead.mapper = of.mapper;
        if !same_fields(&lead.scope, of.scope) {
            lead.scope = of.scope.clone();
        }
        match (of.target, &mut lead.target) {
            // An owned text into the one kept: no allocation.
            (Some(Cow::Owned(target)), Some(Cow::Owned(kept))) => {
                kept.clear();
                kept.push_str(target);
            }
            (target, kept) => *kept = target.cloned(),
        }
        lead.bytes.clear();
        lead.bytes.extend_from_slice(bytes);
        lead.names.clear();
        lead.names.extend(sink.names.iter().map(|name| Name {
            at: name.at - base,
            ..*name
        }));
        lead.seen = sink.seen;
        lead.used = self.clock;
        Some(at)
    }
}

/// Appends `record` encoded as `F` when it takes the fast path: its fields'
/// names all differ (from each other and from the static fields'), and it
/// takes at most `limit` bytes. Returns false, with `out` as it was, when
/// not. `names` is scratch space; `leads` is kept from record to record.
#[inline]
pub(crate) fn encode_fused<F: Writer>(
    mapper: &Mapper,
    record: &SdkLogRecord,
    scope: &InstrumentationScope,
    limit: usize,
    out: &mut Vec<u8>,
    (names, leads): (&mut Vec<Name>, &mut Leads),
) -> bool {
    let (head, own) = mapper.map_head(record);
    let Some(statics) = head.statics else {
        return false;
    };
    if head.has_long_message(limit, &F::ESCAPES) {
        return false;
    }
    let start = out.len();
    F::encode_head(&head, out);
    out.extend_from_slice(statics.head);
    names.clear();
    let mut sink = Fused::<F> {
        mapper,
        out,
        names,
        lead_names: &[],
        lead_at: 0,
        seen: [0; 4],
        statics: mapper.static_names(),
        end: start.saturating_add(limit),
        spill: Vec::new(),
        failed: false,
        format: PhantomData,
    };
    let of = LeadOf {
        mapper: mapper.id(),
        scope,
        target: record.target(),
    };
    let shapes = match leads.find(of) {
        Some(at) => {
            let lead = &mut leads.entries[at];
            sink.append(&lead.bytes, &lead.names, lead.seen);
            Some(&mut lead.shapes)
        }
        None => {
            let base = sink.out.len();
            mapper.map_lead(scope, of.target(), &mut sink);
            if sink.failed {
                None
            } else {
                let at = leads.keep(of, &sink, base);
                at.map(|at| &mut leads.entries[at].shapes)
            }
        }
    };
    let fixed = mapper.map_fixed_fields(record, &own, &mut sink);
    match shapes {
        Some(shapes) if !sink.failed && !own.has_stacktrace() => {
            if !shapes.write::<F>(mapper, record, fixed, sink.out, sink.end) {
                mapper.map_attributes(record, &own, &mut sink);
                if !sink.failed {
                    shapes.keep::<F>(mapper, record, fixed);
                }
            }
        }
        _ => mapper.map_attributes(record, &own, &mut sink),
    }
    if !sink.failed {
        out.extend_from_slice(statics.tail);
        F::encode_end(out);
        if out.len() - start <= limit {
            return true;
        }
    }
    out.truncate(start);
    false
}

/// The most fields a record on the fast path has. A name is compared with
/// those written before it only when its [`seen_bit`] is taken, which with
/// more names than the bits becomes the rule: past this, a record takes the
/// general path, whose check of names is linear, rather than this one's
/// quadratic work (and a scratch list of names as long as the record).
const MAX_NAMES: usize = 256;

/// One bit of 256 chosen by a name's fingerprint, as a word and a bit in
/// it: more than [`print_bit`]'s 64, so that a record with tens of fields
/// rarely compares names.
#[inline(always)]
fn seen_bit(print: u32) -> (usize, u64) {
    let index = print.wrapping_mul(0x9e37_79b9) >> 24;
    ((index >> 6) as usize, 1 << (index & 63))
}

/// Encodes each field as it comes; fails at the first name that repeats
/// or once past the end.
struct Fused<'o, 'a, F> {
    mapper: &'a Mapper,
    out: &'o mut Vec<u8>,
    /// The names written, in order, but those of a lead found
    /// (`lead_names`); a lead written here leaves its names here, for
    /// [`Leads::keep`].
    names: &'o mut Vec<Name>,
    /// The names of the lead found and written first, if any, `at` counted
    /// from `lead_at` in `out`: compared where the lead keeps them (a name
    /// is compared only when its [`seen_bit`] is taken).
    lead_names: &'o [Name],
    lead_at: usize,
    /// A bit for each name written, by [`seen_bit`].
    seen: [u64; 4],
    /// That of the static fields' names.
    statics: u64,
    /// The largest length `out` may reach.
    end: usize,
    spill: Vec<Field<'a>>,
    failed: bool,
    format: PhantomData<F>,
}

impl<'a, F: Writer> FieldSink<'a> for Fused<'_, 'a, F> {
    #[inline(always)]
    fn push(&mut self, field: Field<'a>) {
        self.push_named(&[], field);
    }

    #[inline(always)]
    fn push_named(&mut self, name: &'a [u8], field: Field<'a>) {
        if self.failed {
            return;
        }
        if self.names.len() == MAX_NAMES {
            self.failed = true;
            return;
        }
        let print = field.fingerprint();
        let bit = print_bit(print);
        let (word, seen_bit) = seen_bit(print);
        let seen = self.seen[word] & seen_bit != 0;
        if (seen || self.statics & bit != 0) && self.repeats(&field, print, seen, bit) {
            self.failed = true;
            return;
        }
        self.seen[word] |= seen_bit;
        self.names.push(Name {
            print,
            at: self.out.len() + F::NAME_AT,
            len: field.key.len() + field.suffix.len(),
        });
        if name.is_empty() {
            F::encode_field(&field, self.out);
        } else {
            self.out.extend_from_slice(name);
            F::encode_value(&field.value, self.out);
        }
        self.failed = self.out.len() > self.end;
    }

    fn spill(&mut self) -> &mut Vec<Field<'a>> {
        &mut self.spill
    }

    #[inline(always)]
    fn is_done(&self) -> bool {
        self.failed
    }

    fn flush_spill(&mut self) {
        let mut spill = std::mem::take(&mut self.spill);
        for field in spill.drain(..) {
            self.push(field);
        }
        // Kept for the next map of the record.
        self.spill = spill;
    }
}

impl<'o, F> Fused<'o, '_, F> {
    /// Writes a lead's `bytes`, of `names` and `seen` bits, as if its
    /// fields were pushed (first, as they are).
    fn append(&mut self, bytes: &[u8], names: &'o [Name], seen: [u64; 4]) {
        self.lead_at = self.out.len();
        self.lead_names = names;
        self.out.extend_from_slice(bytes);
        for (seen, lead) in self.seen.iter_mut().zip(seen) {
            *seen |= lead;
        }
        // A lead past the end (at most `MAX_LEAD_BYTES`) fails the record
        // at its last check.
    }

    /// Whether a field of this name was written, or is a static one.
    fn repeats(&self, field: &Field<'_>, print: u32, seen: bool, bit: u64) -> bool {
        let (key, suffix) = (field.key.as_bytes(), field.suffix.as_bytes());
        let same = |name: &Name, at: usize| {
            name.print == print
                && name.len == key.len() + suffix.len()
                && self.out.get(at..at + key.len()) == Some(key)
                && self.out.get(at + key.len()..at + name.len) == Some(suffix)
        };
        let written = seen
            && (self
                .lead_names
                .iter()
                .any(|name| same(name, self.lead_at + name.at))
                || self.names.iter().any(|name| same(name, name.at)));
        written || self.mapper.is_static_name(field, bit)
    }
}

#[cfg(test)]
mod tests;
