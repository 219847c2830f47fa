//! Compression of GELF messages sent over UDP (GZIP or ZLIB, which Graylog's
//! UDP input tells apart by their first bytes), and the cut that keeps a
//! compressed message within what its chunks carry.

use flate2::{Crc, FlushCompress, Status};

use super::{cut_before_encoding, shrink, Writer};
use crate::mapping::MappedRecord;

/// How GELF messages sent over UDP are compressed.
///
/// Graylog's GELF UDP input recognizes each form by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// GZIP (RFC 1952). The default.
    #[default]
    Gzip,
    /// ZLIB (RFC 1950).
    Zlib,
    /// No compression: the JSON text as is.
    None,
}

/// State reused from record to record by [`Packing::pack`](super::Packing::pack): the uncompressed
/// text and the compressor.
#[derive(Default)]
pub(crate) struct PackScratch {
    plain: Vec<u8>,
    /// The field names of the record on the fast path.
    pub(super) names: Vec<super::fused::Name>,
    /// The fields records start with, by scope and target, for the fast path.
    pub(super) leads: super::fused::Leads,
    deflater: Option<Deflater>,
    /// Records encoded for packing, tries included.
    #[cfg(test)]
    pub(super) encoded: usize,
}

impl PackScratch {
    /// Bytes held by the reused buffer.
    pub(crate) fn capacity(&self) -> usize {
        self.plain.capacity()
    }

    /// Scratch whose reused buffer holds exactly `bytes`.
    #[cfg(test)]
    pub(crate) fn with_capacity(bytes: usize) -> PackScratch {
        let mut plain = Vec::new();
        plain.reserve_exact(bytes);
        PackScratch {
            plain,
            ..PackScratch::default()
        }
    }
}

/// A deflate stream, with a ZLIB header and trailer or raw (inside GZIP).
struct Deflater {
    zlib: bool,
    stream: flate2::Compress,
}

/// GZIP member header: magic, deflate, no flags, no time, no extra flags,
/// unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Appends one record, without a delimiter, compressed, keeping it within
/// `max_plain` bytes before compression and `max_packed` after by shrinking the
/// record when it is too large: the record is cut and marked, never dropped.
/// Returns whether it was cut.
///
/// [`MappedRecord::shrink`] takes the excess in bytes of encoded text, and
/// what a cut saves once compressed depends on what it cuts (compressible
/// texts first, when they are the largest), so the cut is searched
/// ([`Search`]), each try cutting a fresh copy of the record, from a first
/// guess that scales the compressed excess by the whole record's
/// compression ratio, aiming 1/32 under the limit. A try that fits within
/// 1/16 under a limit ends it; after a few tries the smallest cut found to
/// fit is kept, or, if none did, a last-resort one.
pub(super) fn encode_compressed<F: Writer>(
    mut record: MappedRecord<'_>,
    compression: Compression,
    max_plain: usize,
    max_packed: usize,
    out: &mut Vec<u8>,
    scratch: &mut PackScratch,
) -> bool {
    const TRIES: usize = 10;
    let start = out.len();
    let cut = cut_before_encoding::<F>(&mut record, max_plain, out);
    let fits = |(plain, packed): (usize, usize)| plain <= max_plain && packed <= max_packed;
    let (plain, packed) = pack::<F>(&record, compression, (&mut *out, start), scratch);
    if fits((plain, packed)) {
        return cut;
    }
    let target = max_packed - max_packed / 32;
    let (plain_near, near) = (max_plain - max_plain / 16, max_packed - max_packed / 16);
    let ratio = plain as f64 / packed.max(1) as f64;
    let scaled = (packed.saturating_sub(target) as f64 * ratio).ceil() as usize;
    // A cut of `plain` bytes cuts all there is to cut.
    let mut guess = plain
        .saturating_sub(max_plain)
        .max(scaled)
        .min(plain)
        .max(1);
    let mut search = Search::new(packed.abs_diff(target));
    for _ in 0..TRIES {
        let sizes = pack_cut::<F>(&record, guess, compression, (&mut *out, start), scratch);
        let fitted = fits(sizes);
        if fitted && (sizes.1 >= near || sizes.0 >= plain_near) {
            return true;
        }
        if !fitted && guess >= plain {
            break;
        }
        match search.next(guess, fitted, sizes.1.abs_diff(target)) {
            Some(next) => guess = next.min(plain),
            None => break,
        }
    }
    match search.enough {
        Some(enough) => {
            pack_cut::<F>(&record, enough, compression, (out, start), scratch);
        }
        None => {
            shrink::<F>(&mut record, 0, true);
            pack::<F>(&record, compression, (out, start), scratch);
        }
    }
    true
}

/// The search of the cut that brings a record to its compressed target:
/// the cut doubles until one fits, then each guess is where the compressed
/// size would cross the target, were it linear in the cut between the
/// largest cut known too small and the smallest known to fit. A bound kept
/// while the other moves twice in a row counts half (the Illinois rule),
/// so that the guesses close in from both sides.
#[derive(Debug)]
struct Search {
    /// The largest cut known too small (0: the record itself).
    short: usize,
    /// The smallest cut known to fit.
    enough: Option<usize>,
    /// How far from the target the short bound landed, in compressed bytes
    /// (above it, unless only the plain limit was passed), and how far
    /// below it the fitting one did (each halved as above).
    over: f64,
    under: f64,
    /// Which bound the last try moved: the short one, or the fitting one.
    moved_short: Option<bool>,
}

impl Search {
    /// A search from a record `over` bytes from its target.
    fn new(over: usize) -> Search {
        Search {
            short: 0,
            enough: None,
            over: over as f64,
            under: 0.0,
            moved_short: None,
        }
    }

    /// Notes that a cut of `cut` bytes fitted or not, landing `off` bytes
    /// from the target; returns the next cut to try, or `None` once the
    /// bounds meet.
    fn next(&mut self, cut: usize, fitted: bool, off: usize) -> Option<usize> {
        if fitted {
            self.enough = Some(cut);
            self.under = off as f64;
            if self.moved_short == Some(false) {
                self.over /= 2.0;
            }
        } else {
            self.short = cut;
            self.over = off as f64;
            if self.moved_short == Some(true) {
                self.under /= 2.0;
            }
        }
        self.moved_short = Some(!fitted);
        let Some(enough) = self.enough else {
            return Some(cut.saturating_mul(2));
        };
        let gap = enough - self.short;
        if gap <= 1 {
            return None;
        }
        let share = self.over / (self.over + self.under).max(1.0);
        let step = (gap as f64 * share).round() as usize;
        Some(self.short + step.clamp(1, gap - 1))
    }
}

/// [`pack`] of a copy of `record` cut by `excess` encoded bytes.
fn pack_cut<F: Writer>(
    record: &MappedRecord<'_>,
    excess: usize,
    compression: Compression,
    (out, start): (&mut Vec<u8>, usize),
    scratch: &mut PackScratch,
) -> (usize, usize) {
    let mut copy = record.clone();
    shrink::<F>(&mut copy, excess, false);
    pack::<F>(&copy, compression, (out, start), scratch)
}

/// Puts `record`, encoded and compressed, in `out` from `start` on (in place
/// of what a previous try put there); returns its sizes before and after
/// compression.
fn pack<F: Writer>(
    record: &MappedRecord<'_>,
    compression: Compression,
    (out, start): (&mut Vec<u8>, usize),
    scratch: &mut PackScratch,
) -> (usize, usize) {
    out.truncate(start);
    #[cfg(test)]
    {
        scratch.encoded += 1;
    }
    if compression == Compression::None {
        F::encode(record, out);
        return (out.len() - start, out.len() - start);
    }
    scratch.plain.clear();
    F::encode(record, &mut scratch.plain);
    compress(compression, &scratch.plain, out, &mut scratch.deflater);
    (scratch.plain.len(), out.len() - start)
}

/// Appends `plain` compressed with `compression` to `out`; if compressing
/// fails (should the room reserved fall short), appends `plain` as is, which
/// receivers take too.
fn compress(
    compression: Compression,
    plain: &[u8],
    out: &mut Vec<u8>,
    deflater: &mut Option<Deflater>,
) {
    let start = out.len();
    let done = match compression {
        Compression::Gzip => {
            out.extend_from_slice(&GZIP_HEADER);
            let done = deflate(deflater, false, plain, out);
            if done {
                let mut crc = Crc::new();
                crc.update(plain);
                out.extend_from_slice(&crc.sum().to_le_bytes());
                // ISIZE: the length modulo 2^32.
                out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
            }
            done
        }
        Compression::Zlib => deflate(deflater, true, plain, out),
        Compression::None => false,
    };
    if !done {
        out.truncate(start);
        out.extend_from_slice(plain);
    }
}

/// Appends `input` deflated (with a ZLIB wrapper when `zlib`) to `out`,
/// reusing the compressor in `slot`. Returns false if it failed.
fn deflate(slot: &mut Option<Deflater>, zlib: bool, input: &[u8], out: &mut Vec<u8>) -> bool {
    if !matches!(slot, Some(d) if d.zlib == zlib) {
        *slot = Some(Deflater {
            zlib,
            stream: flate2::Compress::new(flate2::Compression::default(), zlib),
        });
    }
    let Some(Deflater { stream, .. }) = slot.as_mut() else {
        return false;
    };
    stream.reset();
    // Room for incompressible input (sent in stored blocks of a few bytes'
    // overhead each), so that one call compresses it all; should a call ever
    // stop short, the text goes uncompressed.
    out.reserve(input.len() + input.len() / 512 + 64);
    matches!(
        stream.compress_vec(input, out, FlushCompress::Finish),
        Ok(Status::StreamEnd)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes no compressor can shrink much.
    fn random(len: usize) -> Vec<u8> {
        let mut next = crate::encode::xorshift(0x9e37_79b9_7f4a_7c15);
        (0..len).map(|_| next() as u8).collect()
    }

    /// The cut doubles until one fits, then lands where the size would
    /// cross the target between the bounds; a bound kept while the other
    /// moves twice counts half.
    #[test]
    fn the_search_closes_in_from_both_sides() {
        let mut search = Search::new(100);
        assert_eq!(search.next(1000, false, 80), Some(2000));
        assert_eq!(search.next(2000, false, 60), Some(4000));
        // Fits 20 under: 60 of 80 bytes across the gap from 2000.
        assert_eq!(search.next(4000, true, 20), Some(3500));
        // Fits again, 10 under: the short bound counts half, 30 of 40.
        assert_eq!(search.next(3500, true, 10), Some(3125));
        // Too small, 40 over: 40 of 50.
        assert_eq!(search.next(3125, false, 40), Some(3425));
        // Too small again, 15 over: the fitting bound counts half, 15 of 20.
        assert_eq!(search.next(3425, false, 15), Some(3481));
        assert_eq!((search.short, search.enough), (3425, Some(3500)));
        // The guess stays strictly between the bounds, which then meet.
        assert_eq!(Search::new(100).next(10, true, 0), Some(9));
        assert_eq!(Search::new(0).next(10, true, 100), Some(1));
        let mut search = Search::new(100);
        assert_eq!(search.next(2, true, 5), Some(1));
        assert_eq!(search.next(1, false, 5), None);
        assert_eq!(search.enough, Some(2));
    }

    /// The room reserved takes any input, incompressible included, in one
    /// call, in both wrappers.
    #[test]
    fn incompressible_input_deflates_in_one_call() {
        use std::io::Read as _;
        let mut slot = None;
        for len in [0, 1, 100, 511, 512, 4096, 65_535, 65_536, 1 << 20] {
            let input = random(len);
            for zlib in [false, true] {
                let mut out = Vec::new();
                assert!(deflate(&mut slot, zlib, &input, &mut out), "{len} {zlib}");
                let mut back = Vec::new();
                if zlib {
                    flate2::read::ZlibDecoder::new(&out[..]).read_to_end(&mut back)
                } else {
                    flate2::read::DeflateDecoder::new(&out[..]).read_to_end(&mut back)
                }
                .expect("a deflate stream");
                assert!(back == input, "{len} {zlib}");
            }
        }
    }
}
