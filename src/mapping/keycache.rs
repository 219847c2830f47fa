//! A cache of normalized attribute keys.
//!
//! A service logs the same few hundred attribute names over and over, and
//! normalizing one (`http.request.method` → `http_request_method`) costs an
//! allocation and a pass over its bytes on every record. The cache keeps the
//! result per raw key, so that a record's keys are borrowed from it.
//!
//! It is a fixed table of write-once slots ([`OnceLock`]), two per hash: a
//! slot is filled by the first key that lands in it and never changes, so a
//! lookup is an atomic load and a string comparison, entries can be borrowed
//! for as long as the cache lives, and any number of threads can share it
//! without a lock. Memory is bounded (at most [`SLOTS`] keys of at most
//! [`MAX_KEY_BYTES`] bytes). A key that finds both its slots taken by other
//! keys, or is too long, is simply normalized each time, as without the cache.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use super::record::NameEncoder;
use crate::swar::same_short;

/// Slots in the table (a power of two).
const SLOTS: usize = 512;
/// Longer keys are not cached.
const MAX_KEY_BYTES: usize = 128;

/// One raw key and what the mapping made of it.
struct Entry {
    raw: Box<str>,
    /// The normalized key, or `None` when it is the raw key itself.
    key: Option<Box<str>>,
    /// Whether the normalized key already ends in a type suffix.
    typed: bool,
    /// The normalized key as a name on the wire (what comes before a
    /// value), when the encoder was known; else empty.
    wire: Box<[u8]>,
}

/// Normalized keys by raw key; see the module documentation.
pub(crate) struct KeyCache {
    slots: Box<[OnceLock<Entry>]>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl KeyCache {
    /// The normalized form of `raw`, whether it is typed and its wire name
    /// (possibly empty), when `raw` is in the cache (the hot path: nothing
    /// computed, nothing moved but a few words).
    #[inline(always)]
    pub(crate) fn find<'a>(&'a self, raw: &'a str) -> Option<(&'a str, bool, &'a [u8])> {
        if raw.len() > MAX_KEY_BYTES {
            return None;
        }
        let first = slot_of(raw.as_bytes());
        for index in [first, first ^ 1] {
            match self.slots[index].get() {
                Some(entry) if same_short(entry.raw.as_bytes(), raw.as_bytes()) => {
                    let key = entry.key.as_deref().unwrap_or(raw);
                    return Some((key, entry.typed, &entry.wire));
                }
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }

    /// The normalized form of `raw` and whether it is typed, as `normalize`
    /// computes them: from the cache when `raw` is there, else computed (and
    /// kept when one of its slots is free, with its wire name when `name`
    /// is given).
    #[inline]
    pub(crate) fn get<'a>(
        &'a self,
        raw: &'a str,
        normalize: impl FnOnce(&'a str) -> (Cow<'a, str>, bool),
        name: Option<NameEncoder>,
    ) -> (Cow<'a, str>, bool) {
        if raw.len() > MAX_KEY_BYTES {
            return normalize(raw);
        }
        let first = slot_of(raw.as_bytes());
        for index in [first, first ^ 1] {
            let slot = &self.slots[index];
            match slot.get() {
                Some(entry) if same_short(entry.raw.as_bytes(), raw.as_bytes()) => {
                    let key = match &entry.key {
                        Some(key) => Cow::Borrowed(&**key),
                        None => Cow::Borrowed(raw),
                    };
                    return (key, entry.typed);
                }
                Some(_) => continue,
                None => {
                    let (key, typed) = normalize(raw);
                    let mut wire = Vec::new();
                    if let Some(name) = name {
                        name(&key, "", &mut wire);
                    }
                    let entry = Entry {
                        raw: raw.into(),
                        key: (key != raw).then(|| key.as_ref().into()),
                        typed,
                        wire: wire.into(),
                    };
                    // Another thread may have filled the slot meanwhile: its
                    // entry stays, this result is used once.
                    let _ = slot.set(entry);
                    return (key, typed);
                }
            }
        }
        normalize(raw)
    }

    fn filled(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.get().is_some())
            .count()
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("keys", &self.filled())
            .finish()
    }
}

/// An even slot index from the key's length and its first and last 8 bytes.
#[inline]
fn slot_of(raw: &[u8]) -> usize {
    let (head, tail) = match (raw.first_chunk::<8>(), raw.last_chunk::<8>()) {
        (Some(head), Some(tail)) => (u64::from_le_bytes(*head), u64::from_le_bytes(*tail)),
        // Shorter than 8 bytes: all of it, as two overlapping 4-byte words
        // from 4 bytes on (most keys), else byte by byte.
        _ => {
            let word = match (raw.first_chunk::<4>(), raw.last_chunk::<4>()) {
                (Some(head), Some(tail)) => {
                    u64::from(u32::from_le_bytes(*head)) << 32
                        | u64::from(u32::from_le_bytes(*tail))
                }
                _ => raw.iter().fold(0u64, |word, &b| word << 8 | u64::from(b)),
            };
            (word, word)
        }
    };
    let hash = (head ^ tail.rotate_left(29) ^ raw.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The top bits, even: the pair is (index, index ^ 1).
    (hash >> (64 - SLOTS.trailing_zeros())) as usize & !1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(raw: &str) -> (Cow<'_, str>, bool) {
        (Cow::Owned(raw.to_uppercase()), raw.ends_with("_long"))
    }

    #[test]
    fn hits_return_what_was_computed_and_borrow_it() {
        let cache = KeyCache::default();
        assert_eq!(cache.get("a.b", upper, None), (Cow::Borrowed("A.B"), false));
        let mut calls = 0;
        let (key, typed) = cache.get(
            "a.b",
            |raw| {
                calls += 1;
                upper(raw)
            },
            None,
        );
        assert_eq!((calls, key.as_ref(), typed), (0, "A.B", false));
        assert!(matches!(key, Cow::Borrowed(_)));
        assert!(cache.get("x_long", upper, None).1);
        assert!(cache.get("x_long", upper, None).1);
    }

    #[test]
    fn unchanged_keys_borrow_the_raw_key() {
        let cache = KeyCache::default();
        let same = |raw| (Cow::Borrowed(raw), false);
        cache.get("plain", same, None);
        let raw = String::from("plain");
        let (key, _) = cache.get(&raw, |_| unreachable_in_test(), None);
        assert!(std::ptr::eq(key.as_ref(), raw.as_str()));
    }

    fn unreachable_in_test() -> (Cow<'static, str>, bool) {
        panic!("a cached key was normalized again");
    }

    fn wire(key: &str, _suffix: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("<{key}>").as_bytes());
    }

    #[test]
    fn a_cached_key_is_found_with_its_wire_name_up_to_128_bytes() {
        let cache = KeyCache::default();
        for raw in ["a.b".to_string(), "k".repeat(127), "j".repeat(128)] {
            assert_eq!(cache.find(&raw), None, "{} bytes", raw.len());
            cache.get(&raw, upper, Some(wire));
            let key = raw.to_uppercase();
            let name = format!("<{key}>");
            let found = cache.find(&raw);
            assert_eq!(
                found,
                Some((key.as_str(), false, name.as_bytes())),
                "{} bytes",
                raw.len()
            );
        }
        let long = "k".repeat(129);
        cache.get(&long, upper, Some(wire));
        assert_eq!(cache.find(&long), None);
    }

    #[test]
    fn both_slots_of_a_pair_are_found() {
        let cache = KeyCache::default();
        let first = "key.0";
        let second = (1..10_000)
            .map(|i| format!("key.{i}"))
            .find(|key| slot_of(key.as_bytes()) == slot_of(first.as_bytes()))
            .expect("two keys of one pair of slots");
        cache.get(first, upper, None);
        cache.get(&second, upper, None);
        assert_eq!(cache.filled(), 2);
        let upper_second = second.to_uppercase();
        assert_eq!(cache.find(first).map(|found| found.0), Some("KEY.0"));
        assert_eq!(
            cache.find(&second).map(|found| found.0),
            Some(upper_second.as_str())
        );
        let mut calls = 0;
        cache.get(
            &second,
            |raw| {
                calls += 1;
                upper(raw)
            },
            None,
        );
        assert_eq!(calls, 0, "the second slot's key was normalized again");
    }

    #[test]
    fn debug_output_counts_the_keys_cached() {
        let cache = KeyCache::default();
        cache.get("a.b", upper, None);
        cache.get("c.d", upper, None);
        assert_eq!(format!("{cache:?}"), "KeyCache { keys: 2 }");
    }

    #[test]
    fn full_slots_and_long_keys_still_normalize() {
        let cache = KeyCache::default();
        let keys: Vec<String> = (0..4 * SLOTS).map(|i| format!("key.{i}")).collect();
        for key in &keys {
            cache.get(key, upper, None);
        }
        assert!(cache.filled() <= SLOTS);
        for key in &keys {
            assert_eq!(cache.get(key, upper, None).0, key.to_uppercase());
        }
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(cache.get(&long, upper, None).0, long.to_uppercase());
        assert_eq!(cache.get(&long, upper, None).0, long.to_uppercase());
    }
}
