//! The wire formats an exporter can speak, and the framing shared by both.

use flate2::{Crc, FlushCompress, Status};

use crate::config::{Compression, Config, Framing, Scheme};
use crate::mapping::{Field, MappedRecord};
use crate::transport::udp;

pub use crate::gelf::Gelf;
pub use crate::ltsv::Ltsv;

mod sealed {
    pub trait Sealed {}
}

/// A wire format: [`Gelf`] or [`Ltsv`]. Sealed; it parameterizes
/// [`Exporter`](crate::Exporter) and [`ExporterBuilder`](crate::ExporterBuilder).
pub trait Format: sealed::Sealed + Send + Sync + 'static {
    /// The format's name, as shown in `Debug` output.
    const NAME: &'static str;
    /// Environment variable holding the endpoint.
    const ENV_ENDPOINT: &'static str;
    /// Environment variable holding the path of a PEM CA file.
    const ENV_CERTIFICATE: &'static str;
    /// Environment variable holding the export time budget, in milliseconds.
    const ENV_TIMEOUT: &'static str;
    /// The framing used when none is configured.
    const DEFAULT_FRAMING: Framing;

    /// Appends one record, without its delimiter.
    #[doc(hidden)]
    fn encode(record: &MappedRecord<'_>, out: &mut Vec<u8>);

    /// Appends one additional field with its separator, as `encode` writes it
    /// (also used to encode the static fields once).
    #[doc(hidden)]
    fn encode_field(field: &Field<'_>, out: &mut Vec<u8>);

    /// The TLS port of OVHcloud Logs Data Platform's input for this format and
    /// framing.
    #[doc(hidden)]
    fn ldp_port(framing: Framing) -> u16;
}

impl sealed::Sealed for Gelf {}
impl sealed::Sealed for Ltsv {}

/// Appends one record and its delimiter, keeping the frame (delimiter included)
/// within `max_frame` bytes by shrinking the record when it is too large: the
/// record is cut and marked, never dropped. Returns whether it was cut.
pub(crate) fn encode_framed<F: Format>(
    mut record: MappedRecord<'_>,
    framing: Framing,
    max_frame: usize,
    out: &mut Vec<u8>,
) -> bool {
    const ATTEMPTS: usize = 6;
    let start = out.len();
    F::encode(&record, out);
    let mut attempt = 0;
    while out.len() - start + 1 > max_frame && attempt <= ATTEMPTS {
        let excess = out.len() - start + 1 - max_frame;
        out.truncate(start);
        record.shrink(excess, attempt == ATTEMPTS);
        F::encode(&record, out);
        attempt += 1;
    }
    out.push(framing.delimiter());
    attempt > 0
}

/// Byte scans eight bytes at a time (SWAR), for the encoders' hot paths:
/// whether a string holds any byte that needs escaping.
pub(crate) mod swar {
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

    /// Whether `bytes` holds a byte for which `byte` is true, given `word`,
    /// which is non-zero exactly for the 8-byte words holding one.
    #[inline]
    pub(crate) fn any(bytes: &[u8], word: impl Fn(u64) -> u64, byte: impl Fn(u8) -> bool) -> bool {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let Some(chunk) = chunk.first_chunk::<8>() else {
                break;
            };
            if word(u64::from_le_bytes(*chunk)) != 0 {
                return true;
            }
        }
        chunks.remainder().iter().any(|&b| byte(b))
    }
}

/// What the export loop makes of each record for the retry buffer, chosen once
/// per exporter from the endpoint's scheme.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Packing {
    /// Stream transports (TCP, TLS): the record and its delimiter, at most
    /// `max_frame` bytes ([`encode_framed`]).
    Framed { framing: Framing, max_frame: usize },
    /// GELF over UDP: the record without a delimiter, compressed, at most
    /// `max_plain` bytes before compression and `max_packed` after (what 128
    /// chunks carry), so the transport only has to cut it into datagrams.
    Datagram {
        compression: Compression,
        max_plain: usize,
        max_packed: usize,
    },
}

impl Packing {
    pub(crate) fn new(config: &Config) -> Packing {
        let max_frame = config.mapping.max_frame_bytes;
        match config.endpoint.scheme() {
            Scheme::Udp => Packing::Datagram {
                compression: config.udp.compression,
                max_plain: max_frame,
                // Never more than the retry buffer holds either.
                max_packed: udp::max_message_bytes(config.udp.chunk_bytes).min(config.buffer_bytes),
            },
            _ => Packing::Framed {
                framing: config.framing,
                max_frame,
            },
        }
    }

    /// The most bytes one packed record takes.
    pub(crate) fn max_record_bytes(&self) -> usize {
        match *self {
            Packing::Framed { max_frame, .. } => max_frame,
            Packing::Datagram { max_packed, .. } => max_packed,
        }
    }

    /// Appends one record as the transport sends it; returns whether the
    /// record had to be cut (and marked) to fit.
    #[inline]
    pub(crate) fn pack<F: Format>(
        &self,
        record: MappedRecord<'_>,
        out: &mut Vec<u8>,
        scratch: &mut PackScratch,
    ) -> bool {
        match *self {
            Packing::Framed { framing, max_frame } => {
                encode_framed::<F>(record, framing, max_frame, out)
            }
            Packing::Datagram {
                compression,
                max_plain,
                max_packed,
            } => encode_compressed::<F>(record, compression, max_plain, max_packed, out, scratch),
        }
    }
}

/// State reused from record to record by [`Packing::pack`]: the uncompressed
/// text and the compressor.
#[derive(Default)]
pub(crate) struct PackScratch {
    plain: Vec<u8>,
    deflater: Option<Deflater>,
}

impl PackScratch {
    /// Bytes held by the reused buffer.
    pub(crate) fn capacity(&self) -> usize {
        self.plain.capacity()
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
fn encode_compressed<F: Format>(
    mut record: MappedRecord<'_>,
    compression: Compression,
    max_plain: usize,
    max_packed: usize,
    out: &mut Vec<u8>,
    scratch: &mut PackScratch,
) -> bool {
    const ATTEMPTS: usize = 6;
    let start = out.len();
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
            return attempt > 0;
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
        record.shrink(over_plain.max(scaled), attempt == ATTEMPTS);
        attempt += 1;
    }
}

/// Appends `plain` compressed with `compression` to `out`; if compressing
/// fails (it cannot with an in-memory buffer), appends `plain` as is, which
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
    let (base_in, base_out) = (stream.total_in(), stream.total_out());
    // Enough for incompressible input (stored blocks) in one call.
    out.reserve(input.len() + input.len() / 512 + 64);
    loop {
        let consumed = (stream.total_in() - base_in) as usize;
        let produced = stream.total_out() - base_out;
        let Some(rest) = input.get(consumed..) else {
            return false;
        };
        match stream.compress_vec(rest, out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return true,
            Ok(_) => {
                let progress = stream.total_in() - base_in > consumed as u64
                    || stream.total_out() - base_out > produced;
                if !progress && out.capacity() - out.len() >= 1024 {
                    return false;
                }
                out.reserve(rest.len() / 2 + 1024);
            }
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{EpochMicros, Field, FieldValue, TRUNCATED_MARKER};
    use std::borrow::Cow;

    fn sample() -> MappedRecord<'static> {
        MappedRecord {
            host: "box-1",
            short_message: Cow::Borrowed("hello \"world\"\u{0}"),
            full_message: Some(Cow::Borrowed("line 1\nline\t2")),
            time: EpochMicros {
                secs: 1_700_000_000,
                micros: 42,
            },
            level: 3,
            fields: vec![
                Field {
                    key: Cow::Borrowed("user"),
                    suffix: "",
                    value: FieldValue::Str(Cow::Borrowed("alice\\bob")),
                },
                Field {
                    key: Cow::Borrowed("n"),
                    suffix: "",
                    value: FieldValue::Int(-7),
                },
                Field {
                    key: Cow::Borrowed("ratio"),
                    suffix: "",
                    value: FieldValue::Float(0.25),
                },
            ],
            protected_tail: 0,
            statics: None,
        }
    }

    #[test]
    fn gelf_frame() {
        let mut out = Vec::new();
        encode_framed::<Gelf>(sample(), Framing::Nul, 1 << 20, &mut out);
        assert_eq!(out.pop(), Some(0));
        assert!(!out.contains(&0));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"version":"1.1","host":"box-1","short_message":"hello \"world\"\u0000","#,
                r#""full_message":"line 1\nline\t2","timestamp":1700000000.000042,"level":3,"#,
                r#""_user":"alice\\bob","_n":-7,"_ratio":0.25}"#
            )
        );
    }

    #[test]
    fn ltsv_line() {
        let mut out = Vec::new();
        encode_framed::<Ltsv>(sample(), Framing::Newline, 1 << 20, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "time:2023-11-14T22:13:20.000042Z\thost:box-1\tlevel:3\t\
             message:hello \"world\"\\0\tfull_message:line 1\\nline\\t2\t\
             user:alice\\\\bob\tn:-7\tratio:0.25\n"
        );
    }

    #[test]
    fn oversized_records_are_cut_not_dropped() {
        for (max, body) in [
            (4096, "x".repeat(100_000)),
            (4096, "\u{1}".repeat(100_000)),
            (10_000, "é".repeat(50_000)),
        ] {
            let mut record = sample();
            record.short_message = Cow::Owned(body.clone());
            record.full_message = Some(Cow::Owned(body.clone()));
            record.fields.push(Field {
                key: Cow::Borrowed("big"),
                suffix: "",
                value: FieldValue::Str(Cow::Owned(body)),
            });
            for framing in [Framing::Nul, Framing::Newline] {
                let mut out = Vec::new();
                encode_framed::<Gelf>(record.clone(), framing, max, &mut out);
                assert!(out.len() <= max, "{} > {max}", out.len());
                let json: serde_json::Value =
                    serde_json::from_slice(&out[..out.len() - 1]).unwrap();
                let short = json["short_message"].as_str().unwrap();
                assert!(short.ends_with(TRUNCATED_MARKER.trim_start()), "{short}");
                assert_eq!(json["_n"], -7);

                let mut out = Vec::new();
                encode_framed::<Ltsv>(record.clone(), framing, max, &mut out);
                assert!(out.len() <= max, "{} > {max}", out.len());
            }
        }
    }

    fn unpack(compression: Compression, payload: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        match compression {
            Compression::Gzip => {
                assert_eq!(payload[..2], [0x1f, 0x8b]);
                flate2::read::GzDecoder::new(payload)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Compression::Zlib => {
                assert_eq!(payload[0], 0x78);
                flate2::read::ZlibDecoder::new(payload)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Compression::None => out.extend_from_slice(payload),
        }
        out
    }

    const COMPRESSIONS: [Compression; 3] =
        [Compression::Gzip, Compression::Zlib, Compression::None];

    #[test]
    fn framed_packing_is_encode_framed() {
        let packing = Packing::Framed {
            framing: Framing::Nul,
            max_frame: 4096,
        };
        let mut record = sample();
        record.full_message = Some(Cow::Owned("y".repeat(10_000)));
        for record in [sample(), record] {
            let (mut packed, mut framed) = (Vec::new(), Vec::new());
            let cut =
                packing.pack::<Gelf>(record.clone(), &mut packed, &mut PackScratch::default());
            let cut_framed = encode_framed::<Gelf>(record, Framing::Nul, 4096, &mut framed);
            assert_eq!((packed, cut), (framed, cut_framed));
        }
    }

    #[test]
    fn datagrams_are_compressed_without_delimiter() {
        let mut plain = Vec::new();
        Gelf::encode(&sample(), &mut plain);
        for compression in COMPRESSIONS {
            let packing = Packing::Datagram {
                compression,
                max_plain: 1 << 20,
                max_packed: 1 << 20,
            };
            let mut scratch = PackScratch::default();
            let mut out = b"before".to_vec();
            assert!(!packing.pack::<Gelf>(sample(), &mut out, &mut scratch));
            let first = out.len();
            // The compressor is reused from record to record.
            assert!(!packing.pack::<Gelf>(sample(), &mut out, &mut scratch));
            assert_eq!(&out[..6], b"before");
            assert_eq!(out[6..first], out[first..]);
            assert_eq!(
                unpack(compression, &out[6..first]),
                plain,
                "{compression:?}"
            );
        }
        // A large text compresses well.
        let mut record = sample();
        record.full_message = Some(Cow::Owned("abcdefgh\n".repeat(50_000)));
        for compression in [Compression::Gzip, Compression::Zlib] {
            let mut out = Vec::new();
            Packing::Datagram {
                compression,
                max_plain: 1 << 20,
                max_packed: 1 << 20,
            }
            .pack::<Gelf>(record.clone(), &mut out, &mut PackScratch::default());
            assert!(out.len() < 10_000, "{compression:?}: {}", out.len());
            let json: serde_json::Value =
                serde_json::from_slice(&unpack(compression, &out)).unwrap();
            assert_eq!(json["full_message"].as_str().unwrap().len(), 450_000);
        }
    }

    /// Text of `len` bytes: `kind` 0 compresses well, 1 hardly (random
    /// letters and digits), 2 hardly and has multi-byte characters.
    fn text(kind: u8, len: usize) -> String {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = String::with_capacity(len + 8);
        while out.len() < len {
            let r = next();
            match kind {
                0 => {
                    out.push_str(["order ", "paid ", "retry ", "cache "][(r % 4) as usize]);
                    out.push_str(&(r % 1000).to_string());
                    out.push(' ');
                }
                1 => out.push(char::from(
                    b"abcdefghijklmnopqrstuvwxyz0123456789"[(r % 36) as usize],
                )),
                _ => out.push(['é', '€', '日', 'a', 'Z', '7'][(r % 6) as usize]),
            }
        }
        out
    }

    #[test]
    fn datagrams_too_large_compressed_are_cut_to_fit() {
        for compression in COMPRESSIONS {
            for kind in 0..3 {
                // Every body is over the limit even compressed (the
                // compressible one by about 4 to 1).
                for (max_packed, body_len) in [(8_000, 60_000), (40_000, 200_000)] {
                    for multi_line in [false, true] {
                        let body = text(kind, body_len);
                        let mut record = sample();
                        record.short_message = Cow::Owned(body.clone());
                        record.full_message = multi_line.then(|| Cow::Owned(body.clone()));
                        let packing = Packing::Datagram {
                            compression,
                            max_plain: 2 << 20,
                            max_packed,
                        };
                        let case = format!("{compression:?} kind {kind} {max_packed} {multi_line}");
                        let mut out = Vec::new();
                        let cut =
                            packing.pack::<Gelf>(record, &mut out, &mut PackScratch::default());
                        assert!(cut, "{case}");
                        assert!(out.len() <= max_packed, "{case}: {} bytes", out.len());
                        // Cut to what fits, not to a stub.
                        assert!(
                            out.len() > max_packed * 3 / 4,
                            "{case}: {} bytes",
                            out.len()
                        );
                        let json: serde_json::Value =
                            serde_json::from_slice(&unpack(compression, &out)).unwrap();
                        // The full message goes first, then the short one.
                        if let Some(full) = json.get("full_message") {
                            assert!(full.as_str().unwrap().ends_with(TRUNCATED_MARKER), "{case}");
                        }
                        let kept = json["short_message"].as_str().unwrap();
                        let kept = kept.strip_suffix(TRUNCATED_MARKER).expect("marked");
                        assert!(body.starts_with(kept), "{case}");
                        assert_eq!(json["_n"], -7, "{case}");
                    }
                }
            }
        }
    }
}
