//! Byte scans eight bytes at a time (SWAR), or sixteen as vectors, for the
//! hot paths of mapping and encoding: whether a string holds any byte that
//! needs escaping, or a given byte, and the escaping itself (each format
//! gives its replacements).

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` below `n` (at most 0x80) is set.
#[inline]
pub(crate) fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(u64::from(n) * ONES) & !word & HIGH
}

/// The high bit of each byte of `word` equal to `b` is set (and perhaps
/// of bytes after it: only the lowest match is exact, which is enough to
/// tell whether there is one).
#[inline]
pub(crate) fn equal(word: u64, b: u8) -> u64 {
    let x = word ^ (u64::from(b) * ONES);
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Whether `bytes` holds a byte `byte` accepts. `word` must say the same
/// of eight bytes at once: non-zero exactly for the 8-byte words holding
/// such a byte, wherever it is.
///
/// From 16 bytes on (messages), 16 at a time: written as a fold over a
/// 16-byte block, which the compiler turns into vector instructions (SSE2
/// on x86-64, NEON on AArch64) in about half the instructions of two words.
/// Shorter texts (keys, most values) as one or two words.
#[inline]
pub(crate) fn any(bytes: &[u8], word: impl Fn(u64) -> u64, byte: impl Fn(u8) -> bool) -> bool {
    let Some(last) = bytes.last_chunk::<BLOCK>() else {
        return any_word(bytes, word);
    };
    // Every byte tested, none skipped: a fold without early exit is what
    // becomes vector instructions.
    let block = |block: &[u8; BLOCK]| block.iter().fold(false, |hit, &b| hit | byte(b));
    let mut blocks = bytes.chunks_exact(BLOCK);
    for chunk in &mut blocks {
        if chunk.first_chunk::<BLOCK>().is_some_and(block) {
            return true;
        }
    }
    // The bytes left, as the last block (some checked twice).
    !blocks.remainder().is_empty() && block(last)
}

/// The bytes [`any`] tests at once: an SSE2 or NEON register.
const BLOCK: usize = 16;

/// [`any`] eight bytes at a time (a text shorter than a word is checked
/// with its bytes repeated and out of order).
#[inline]
fn any_word(bytes: &[u8], word: impl Fn(u64) -> u64) -> bool {
    let Some(last) = bytes.last_chunk::<8>() else {
        return short_word(bytes).is_some_and(|short| word(short) != 0);
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let Some(chunk) = chunk.first_chunk::<8>() else {
            break;
        };
        if word(u64::from_le_bytes(*chunk)) != 0 {
            return true;
        }
    }
    // The bytes left, as the last eight (some checked twice): one word
    // instead of up to seven bytes one by one.
    !chunks.remainder().is_empty() && word(u64::from_le_bytes(*last)) != 0
}

/// A text of 1 to 7 bytes as one word that holds each of its bytes and no
/// other (`None` when empty): from 4 bytes on, two overlapping 4-byte
/// words; below, the first, middle and last bytes, repeated.
#[inline]
fn short_word(bytes: &[u8]) -> Option<u64> {
    if let (Some(head), Some(tail)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        let (head, tail) = (u32::from_le_bytes(*head), u32::from_le_bytes(*tail));
        return Some(u64::from(head) | u64::from(tail) << 32);
    }
    let (&first, &last) = (bytes.first()?, bytes.last()?);
    let middle = bytes.get(bytes.len() / 2).copied().unwrap_or(first);
    let word = u32::from_le_bytes([first, middle, last, first]);
    Some(u64::from(word) * 0x1_0000_0001)
}

/// Appends `bytes` to `out` with some bytes escaped: `replace` writes a
/// byte's escaped form into its buffer and returns its length, or 0 for a
/// byte kept as is. Eight bytes at a time between escapes: `word` flags the
/// 8-byte words holding a byte that may need it, the lowest flagged being
/// one (see [`below`] and [`equal`]); clean runs are copied whole.
#[inline]
pub(crate) fn escape_into(
    out: &mut Vec<u8>,
    bytes: &[u8],
    word: impl Fn(u64) -> u64,
    replace: impl Fn(u8, &mut [u8; 6]) -> usize,
) {
    let mut escaped = [0; 6];
    // `bytes[done..at]` is clean and not written yet.
    let (mut done, mut at) = (0, 0);
    while at < bytes.len() {
        if let Some(chunk) = bytes.get(at..at + 8).and_then(|w| w.first_chunk::<8>()) {
            let found = word(u64::from_le_bytes(*chunk));
            if found == 0 {
                at += 8;
                continue;
            }
            at += (found.trailing_zeros() / 8) as usize;
        }
        let len = replace(bytes[at], &mut escaped);
        if len > 0 {
            out.extend_from_slice(&bytes[done..at]);
            out.extend_from_slice(&escaped[..len]);
            done = at + 1;
        }
        at += 1;
    }
    out.extend_from_slice(&bytes[done..]);
}

/// Whether `bytes` holds `b`: for log messages, mostly tens of bytes, on
/// which `core`'s `memchr` spends more setting up than scanning.
#[inline]
pub(crate) fn contains(bytes: &[u8], b: u8) -> bool {
    any(bytes, |word| equal(word, b), |byte| byte == b)
}

/// Whether `a` and `b` are the same bytes, compared eight at a time in
/// line. Written by hand for the short texts of hot paths (attribute keys):
/// calling `memcmp` for each costs more than comparing them.
#[inline(always)]
pub(crate) fn same_short(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    // Fixed-size arrays compare as one machine word each.
    let word = |s: &[u8], at: usize| s.get(at..).and_then(<[u8]>::first_chunk::<8>).copied();
    if len < 8 {
        // From 4 bytes on (most keys): two overlapping 4-byte words.
        return match (a.first_chunk::<4>(), a.last_chunk::<4>()) {
            (Some(head), Some(tail)) => {
                b.first_chunk() == Some(head) && b.last_chunk() == Some(tail)
            }
            _ => a == b,
        };
    }
    let mut at = 0;
    while at + 8 < len {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, len - 8) == word(b, len - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_compare_equal_exactly_when_every_byte_is() {
        for len in 0..=40usize {
            let a: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_short(&a, &a.clone()), "{len}");
            if len > 0 {
                assert!(!same_short(&a, &a[..len - 1]), "{len}");
            }
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_short(&a, &b), "length {len}, byte {at}");
            }
        }
    }

    #[test]
    fn contains_finds_a_byte_wherever_it_is() {
        for len in 0..40usize {
            let text = vec![b'a'; len];
            assert!(!contains(&text, b'\n'), "{len}");
            for at in 0..len {
                let mut with = text.clone();
                with[at] = b'\n';
                assert!(contains(&with, b'\n'), "length {len}, at {at}");
                // Bytes next to it, and the high bit, are not it.
                with[at] = b'\n' + 1;
                assert!(!contains(&with, b'\n'), "length {len}, at {at}");
                with[at] = b'\n' | 0x80;
                assert!(!contains(&with, b'\n'), "length {len}, at {at}");
            }
        }
    }
}
