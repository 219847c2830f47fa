//! Compression of GELF messages sent over UDP (GZIP or ZLIB, which Graylog's
//! UDP input tells apart by their first bytes), and the cut that keeps a
//! compressed message within what its chunks carry.

use flate2::{Crc, FlushCompress, Status};

use super::{cut_before_encoding, Writer};
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
    deflater: Option<Deflater>,
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
/// [`MappedRecord::shrink`] takes the excess in bytes of encoded text, so the
/// compressed excess is scaled by the compression ratio: that of the text the
/// previous cut removed when there was one (the part being cut), else the
/// whole record's, aiming 3% under the limit. A few attempts, then a forced
/// last one.
pub(super) fn encode_compressed<F: Writer>(
    mut record: MappedRecord<'_>,
    compression: Compression,
    max_plain: usize,
    max_packed: usize,
    out: &mut Vec<u8>,
    scratch: &mut PackScratch,
) -> bool {
    const ATTEMPTS: usize = 6;
    let start = out.len();
    let cut = cut_before_encoding::<F>(&mut record, max_plain, out);
    let mut attempt = 0;
    // (plain, packed) sizes before the last cut.
    let mut before: Option<(usize, usize)> = None;
    loop {
        out.truncate(start);
        let (plain, packed) = if compression == Compression::None {
            F::encode(&record, out);
            (out.len() - start, out.len() - start)
        } else {
            scratch.plain.clear();
            F::encode(&record, &mut scratch.plain);
            compress(compression, &scratch.plain, out, &mut scratch.deflater);
            (scratch.plain.len(), out.len() - start)
        };
        if (plain <= max_plain && packed <= max_packed) || attempt > ATTEMPTS {
            return cut || attempt > 0;
        }
        let over_plain = plain.saturating_sub(max_plain);
        let ratio = match before {
            Some((p, q)) if p > plain && q > packed => (p - plain) as f64 / (q - packed) as f64,
            _ => plain as f64 / packed.max(1) as f64,
        };
        // Aim a little under the limit, so that a slightly wrong ratio still
        // lands under it; a margin on the excess would cut far too much when
        // the excess dwarfs the limit.
        let scaled = if packed > max_packed {
            let target = max_packed - max_packed / 32;
            ((packed - target) as f64 * ratio.max(1.0)).ceil() as usize + 16
        } else {
            0
        };
        before = Some((plain, packed));
        record.shrink(over_plain.max(scaled), attempt == ATTEMPTS, &F::ESCAPES);
        attempt += 1;
    }
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
