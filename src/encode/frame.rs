//! Framing on a stream: each record ends with a delimiter, and a record too
//! large for one frame is cut (and marked) to fit, never dropped.

use super::{cut_before_encoding, shrink, Writer};
use crate::mapping::MappedRecord;

/// How records are delimited on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// Each record ends with one NUL byte (`\0`): Graylog's GELF TCP input and the
    /// "LTSV nul" input of Logs Data Platform. The default for GELF.
    Nul,
    /// Each record ends with one line feed (`\n`). The default for LTSV.
    Newline,
}

impl Framing {
    pub(crate) fn delimiter(self) -> u8 {
        match self {
            Framing::Nul => 0,
            Framing::Newline => b'\n',
        }
    }
}

/// Appends one record and its delimiter, keeping the frame (delimiter included)
/// within `max_frame` bytes by shrinking the record when it is too large: the
/// record is cut and marked, never dropped. Returns whether it was cut.
pub(crate) fn encode_framed<F: Writer>(
    mut record: MappedRecord<'_>,
    framing: Framing,
    max_frame: usize,
    out: &mut Vec<u8>,
) -> bool {
    const ATTEMPTS: usize = 6;
    let start = out.len();
    // Room for the delimiter.
    let cut = cut_before_encoding::<F>(&mut record, max_frame.saturating_sub(1), out);
    if cut {
        // A frame of about the limit: grown once rather than by doubling.
        out.reserve(max_frame);
    }
    F::encode(&record, out);
    let mut attempt = 0;
    while out.len() - start + 1 > max_frame && attempt <= ATTEMPTS {
        let excess = out.len() - start + 1 - max_frame;
        out.truncate(start);
        shrink::<F>(&mut record, excess, attempt == ATTEMPTS);
        F::encode(&record, out);
        attempt += 1;
    }
    out.push(framing.delimiter());
    cut || attempt > 0
}
