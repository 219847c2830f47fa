//! Encoding: a mapped record becomes the bytes a transport sends.
//!
//! [`gelf`] and [`ltsv`] write one record; [`frame`] delimits it and cuts an
//! oversized one to fit; [`compress`] and [`chunk`] prepare GELF for UDP.
//! [`Packing`] picks among them once per exporter.

pub(crate) mod chunk;
pub(crate) mod compress;
pub(crate) mod frame;
pub(crate) mod fused;
pub(crate) mod gelf;
pub(crate) mod ltsv;
pub(crate) mod shape;

use crate::mapping::{
    Escapes, Field, FieldEncoder, FieldValue, HostEncoder, MappedRecord, Mapper, NameEncoder,
};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::logs::SdkLogRecord;

use compress::encode_compressed;
pub use compress::Compression;
pub(crate) use compress::PackScratch;
use frame::encode_framed;
pub use frame::Framing;
use fused::encode_fused;
pub use gelf::Gelf;
pub(crate) use gelf::LDP_GELF_PORT;
pub use ltsv::Ltsv;
pub(crate) use ltsv::{LDP_LTSV_LINE_PORT, LDP_LTSV_NUL_PORT};

/// Only this crate's formats implement [`Format`]: each gives its
/// [`Codec`], which is opaque outside the crate.
mod sealed {
    /// A format of this crate.
    pub trait Sealed {
        /// The format's writers.
        const CODEC: super::Codec;
    }
}

/// Writes records of one format: what [`Gelf`] and [`Ltsv`] implement.
pub(crate) trait Writer {
    /// How many bytes each byte of a text takes once escaped.
    const ESCAPES: Escapes;

    /// Where the name of a field starts in what
    /// [`encode_field`](Self::encode_field) writes.
    const NAME_AT: usize;

    /// Appends one record, without its delimiter.
    #[inline]
    fn encode(record: &MappedRecord<'_>, out: &mut Vec<u8>) {
        Self::encode_head(record, out);
        if let Some(statics) = &record.statics {
            out.extend_from_slice(statics.head);
        }
        for field in &record.fields {
            Self::encode_field(field, out);
        }
        if let Some(statics) = &record.statics {
            out.extend_from_slice(statics.tail);
        }
        Self::encode_end(out);
    }

    /// Appends what comes before the additional fields of a record.
    fn encode_head(record: &MappedRecord<'_>, out: &mut Vec<u8>);

    /// Appends the part of the head that depends on the host alone, as
    /// [`encode_head`](Self::encode_head) writes it: encoded once per
    /// exporter ([`Mapper::pre_encode`]), the host being the same on every
    /// record.
    fn encode_host(host: &str, out: &mut Vec<u8>);

    /// Appends `record`'s host part of the head: as encoded once when it
    /// was, else encoded now.
    #[inline(always)]
    fn put_host(record: &MappedRecord<'_>, out: &mut Vec<u8>) {
        if record.host_wire.is_empty() {
            Self::encode_host(record.host, out);
        } else {
            out.extend_from_slice(record.host_wire);
        }
    }

    /// Appends what comes after the additional fields of a record.
    fn encode_end(out: &mut Vec<u8>);

    /// Appends one additional field with its separator, as `encode` writes
    /// it (also used to encode the static fields once). Its name (key and
    /// suffix) starts [`NAME_AT`](Self::NAME_AT) bytes in.
    #[inline]
    fn encode_field(field: &Field<'_>, out: &mut Vec<u8>) {
        Self::encode_name(&field.key, field.suffix, out);
        Self::encode_value(&field.value, out);
    }

    /// Appends what comes before a field's value: its separator and its
    /// name (`key` then `suffix`).
    fn encode_name(key: &str, suffix: &str, out: &mut Vec<u8>);

    /// Appends a field's value.
    fn encode_value(value: &FieldValue<'_>, out: &mut Vec<u8>);

    /// The TLS port of OVHcloud Logs Data Platform's input for this format
    /// and framing.
    fn ldp_port(framing: Framing) -> u16;
}

/// A format's writers as values, so that the pipeline need not be generic
/// over the format. Opaque: obtained from a [`Format`] only.
#[derive(Clone, Copy)]
pub struct Codec {
    pub(crate) pack: PackFn,
    pub(crate) encode_field: FieldEncoder,
    pub(crate) encode_name: NameEncoder,
    pub(crate) encode_host: HostEncoder,
    pub(crate) ldp_port: fn(Framing) -> u16,
}

impl Codec {
    /// The writers of `W`.
    const fn of<W: Writer>() -> Codec {
        Codec {
            pack: Packing::pack_record::<W>,
            encode_field: W::encode_field,
            encode_name: W::encode_name,
            encode_host: W::encode_host,
            ldp_port: W::ldp_port,
        }
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl sealed::Sealed for Gelf {
    const CODEC: Codec = Codec::of::<Gelf>();
}

impl sealed::Sealed for Ltsv {
    const CODEC: Codec = Codec::of::<Ltsv>();
}

/// A [`Format`]'s name and the names of its environment variables, all
/// made from its name in capitals, so that they cannot drift apart.
macro_rules! format_names {
    ($name:literal) => {
        const NAME: &'static str = $name;
        const ENV_ENDPOINT: &'static str = concat!("OTEL_EXPORTER_", $name, "_ENDPOINT");
        const ENV_CERTIFICATE: &'static str = concat!("OTEL_EXPORTER_", $name, "_CERTIFICATE");
        const ENV_TIMEOUT: &'static str = concat!("OTEL_EXPORTER_", $name, "_TIMEOUT");
        const ENV_PREFIX: &'static str = concat!("OTEL_EXPORTER_", $name, "_");
    };
}
use format_names;

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
    /// What the names of the format's environment variables start with
    /// (`OTEL_EXPORTER_GELF_`); the [`config`](crate::config) module lists them.
    const ENV_PREFIX: &'static str;
    /// The framing used when none is configured.
    const DEFAULT_FRAMING: Framing;
    /// Whether a record can travel as a message of its own, one per UDP
    /// datagram or HTTP request, rather than only framed on a stream. Only
    /// GELF has receivers that take it so.
    const MESSAGES: bool;
}

/// [`Packing::pack`] for one format, as a value: what lets the pipeline
/// encode records without being generic over the format.
pub(crate) type PackFn = fn(
    &Packing,
    &Mapper,
    &SdkLogRecord,
    &InstrumentationScope,
    &mut Vec<u8>,
    &mut PackScratch,
) -> bool;

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
    /// The most bytes one packed record takes.
    pub(crate) fn max_record_bytes(&self) -> usize {
        match *self {
            Packing::Framed { max_frame, .. } => max_frame,
            Packing::Datagram { max_packed, .. } => max_packed,
        }
    }

    /// Maps `record` with `mapper` and appends it as the transport sends
    /// it; returns whether the record had to be cut (and marked) to fit.
    /// Framed, the common record takes the fast path ([`encode_fused`]).
    #[inline]
    pub(crate) fn pack_record<F: Writer>(
        &self,
        mapper: &Mapper,
        record: &SdkLogRecord,
        scope: &InstrumentationScope,
        out: &mut Vec<u8>,
        scratch: &mut PackScratch,
    ) -> bool {
        if let Packing::Framed { framing, max_frame } = *self {
            // Room for the delimiter.
            let limit = max_frame.saturating_sub(1);
            if encode_fused::<F>(
                mapper,
                record,
                scope,
                limit,
                out,
                (&mut scratch.names, &mut scratch.leads),
            ) {
                out.push(framing.delimiter());
                return false;
            }
        }
        self.pack::<F>(mapper.map(record, scope), out, scratch)
    }

    /// Appends one record as the transport sends it; returns whether the
    /// record had to be cut (and marked) to fit.
    #[inline]
    pub(crate) fn pack<F: Writer>(
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

/// Cuts `record` to fit `limit` encoded bytes before it is encoded when it
/// surely exceeds it: a text too long to fit even alone (cut first to what
/// could fit, [`MappedRecord::cap_texts`]), or texts and fields longer
/// together than the limit before any escape (countless attributes, a map
/// of countless entries). The record's size is measured without encoding its
/// texts, then the record is shrunk by the exact excess, so that encoding
/// its texts costs work and memory bounded by `limit`, whatever the input.
/// Measuring writes every field's name once, so a record of countless
/// fields costs in proportion to its names (what the mapping already holds),
/// only for as long as the record is encoded. Returns whether it cut.
fn cut_before_encoding<F: Writer>(
    record: &mut MappedRecord<'_>,
    limit: usize,
    out: &mut Vec<u8>,
) -> bool {
    if !record.cap_texts(limit, &F::ESCAPES) && record.least_width() <= limit {
        return false;
    }
    let start = out.len();
    F::encode(&record.skeleton(), out);
    let size = out.len() - start + record.text_width(&F::ESCAPES);
    out.truncate(start);
    if size > limit {
        shrink::<F>(record, size - limit, false);
    }
    true
}

/// [`MappedRecord::shrink`], each field measured as `F` writes it.
fn shrink<F: Writer>(record: &mut MappedRecord<'_>, excess: usize, last_resort: bool) {
    let mut scratch = Vec::new();
    record.shrink(excess, last_resort, &F::ESCAPES, &mut |field| {
        scratch.clear();
        F::encode_field(field, &mut scratch);
        scratch.len()
    });
}

/// A xorshift64 generator from `seed` (not 0): test data any run repeats.
#[cfg(test)]
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[cfg(test)]
mod tests;
