//! The names of a record's attributes as the fast path ([`super::fused`])
//! last wrote them, for the few callsites a thread logs from in turn. A
//! callsite's records have the same keys in the same order, with values of
//! the same kinds: the next such record writes the names kept and encodes
//! only its values, where each field would otherwise have its key looked
//! up, named and checked against every other name.
//!
//! A shape is kept within a lead ([`super::fused`]'s `Lead`: one mapper,
//! scope and target), and for the fixed fields written between the lead
//! and the attributes ([`Mapper::map_fixed_fields`]); records with a stack
//! trace attribute (left out of the fields) take no shape. Names depend on
//! nothing else: records alike in all of these have fields of the same
//! names, so that a record the shape fits has no repeated name when the
//! record the shape was kept from had none.

use opentelemetry_sdk::logs::SdkLogRecord;

use super::Writer;
use crate::mapping::{is_flattened, Kind, Mapper};
use crate::swar::same_short;

/// How many shapes a lead keeps: the callsites of one scope and target that
/// a thread logs from in turn.
const SHAPES: usize = 4;

/// The most attributes a shape holds.
const MAX_FIELDS: usize = 64;

/// The most bytes of keys and of names a shape holds: what a thread keeps
/// stays small (at most [`SHAPES`] shapes for each of its leads, each of at
/// most [`MAX_FIELDS`] fields and twice `MAX_BYTES`).
const MAX_BYTES: usize = 1024;

/// Some shapes of attributes (see the module documentation).
#[derive(Default)]
pub(crate) struct Shapes {
    /// At most [`SHAPES`].
    entries: Vec<Shape>,
    /// Where [`keep`](Self::keep) builds a shape before it takes an
    /// entry's place (whose vectors are then reused for the next).
    spare: Shape,
    /// Counts lookups: an entry's [`Shape::used`] is the lookup that last
    /// found it or was followed by keeping it.
    clock: u64,
    /// Records written with a shape.
    #[cfg(test)]
    pub(super) written: usize,
}

/// The attributes of one callsite's records.
#[derive(Default)]
struct Shape {
    /// The bits [`Mapper::map_fixed_fields`] returned.
    fixed: u8,
    /// The raw keys, one after the other.
    keys: Vec<u8>,
    /// The names as written (separators included), one after the other.
    names: Vec<u8>,
    fields: Vec<ShapeField>,
    used: u64,
}

/// Where one attribute's key and name end in its [`Shape`], and the kind of
/// value its name was made for.
#[derive(Clone, Copy)]
struct ShapeField {
    key_end: usize,
    name_end: usize,
    kind: Option<Kind>,
}

impl Shape {
    /// The first attribute's raw key, if any.
    fn first_key(&self) -> Option<&[u8]> {
        self.fields.first().map(|field| &self.keys[..field.key_end])
    }

    /// [`Shapes::write`] with this shape.
    #[inline]
    fn write<F: Writer>(
        &self,
        mapper: &Mapper,
        record: &SdkLogRecord,
        out: &mut Vec<u8>,
        end: usize,
    ) -> bool {
        let start = out.len();
        let mut fields = self.fields.iter();
        let (mut key_at, mut name_at) = (0, 0);
        for (key, value) in record.attributes_iter() {
            let Some(field) = fields.next() else {
                out.truncate(start);
                return false;
            };
            let kept = self.keys.get(key_at..field.key_end).unwrap_or_default();
            if !same_short(kept, key.as_str().as_bytes()) || is_flattened(value) {
                out.truncate(start);
                return false;
            }
            let (value, kind) = mapper.any_value(value);
            if kind != field.kind {
                out.truncate(start);
                return false;
            }
            out.extend_from_slice(&self.names[name_at..field.name_end]);
            F::encode_value(&value, out);
            // Past the end, the record will not be taken: no more work.
            if out.len() > end {
                out.truncate(start);
                return false;
            }
            (key_at, name_at) = (field.key_end, field.name_end);
        }
        if fields.next().is_some() {
            out.truncate(start);
            return false;
        }
        true
    }
}

/// `record`'s first attribute's key, if any.
#[inline]
fn first_key(record: &SdkLogRecord) -> Option<&[u8]> {
    record
        .attributes_iter()
        .next()
        .map(|(key, _)| key.as_str().as_bytes())
}

/// Whether two first keys are the same (or both absent).
#[inline]
fn same_first(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_short(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

impl Shapes {
    /// Forgets every shape (their lead is no longer the same).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Appends `record`'s attributes as fields named as a shape kept says,
    /// when one fits them: the same `fixed` bits, the same keys in the same
    /// order, values of the same kinds. Returns false, with `out` as it
    /// was, when none fits or once `out` is longer than `end`. Shapes of
    /// the same first key are tried in turn, each encoding values until a
    /// key or kind differs.
    #[inline]
    pub(crate) fn write<F: Writer>(
        &mut self,
        mapper: &Mapper,
        record: &SdkLogRecord,
        fixed: u8,
        out: &mut Vec<u8>,
        end: usize,
    ) -> bool {
        self.clock += 1;
        let first = first_key(record);
        for shape in &mut self.entries {
            if shape.fixed == fixed
                && same_first(shape.first_key(), first)
                && shape.write::<F>(mapper, record, out, end)
            {
                shape.used = self.clock;
                #[cfg(test)]
                {
                    self.written += 1;
                }
                return true;
            }
        }
        false
    }

    /// Keeps the shape of `record`'s attributes, which the mapper just
    /// pushed as fields of names all different (from each other and from
    /// the fields before them) after fixed fields of bits `fixed`, in place
    /// of the least recently used when all entries are taken. Keeps none,
    /// and leaves the entries as they were, for a record with a map among
    /// its attributes, or too many or too long keys.
    pub(crate) fn keep<F: Writer>(&mut self, mapper: &Mapper, record: &SdkLogRecord, fixed: u8) {
        let shape = &mut self.spare;
        shape.fixed = fixed;
        shape.used = self.clock;
        shape.keys.clear();
        shape.names.clear();
        shape.fields.clear();
        for (key, value) in record.attributes_iter() {
            if is_flattened(value) || shape.fields.len() == MAX_FIELDS {
                return;
            }
            let (_, kind) = mapper.any_value(value);
            let (name, suffix, _) = mapper.typed_key(key.as_str(), kind);
            shape.keys.extend_from_slice(key.as_str().as_bytes());
            F::encode_name(&name, suffix, &mut shape.names);
            if shape.keys.len().max(shape.names.len()) > MAX_BYTES {
                return;
            }
            shape.fields.push(ShapeField {
                key_end: shape.keys.len(),
                name_end: shape.names.len(),
                kind,
            });
        }
        let kept = std::mem::take(&mut self.spare);
        if self.entries.len() < SHAPES {
            self.entries.push(kept);
        } else if let Some(least) = self.entries.iter_mut().min_by_key(|shape| shape.used) {
            self.spare = std::mem::replace(least, kept);
        }
    }
}
