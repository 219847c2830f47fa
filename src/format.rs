//! The wire formats an exporter can speak, and the framing shared by both.

use crate::config::Framing;
use crate::mapping::MappedRecord;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{Field, FieldValue, TRUNCATED_MARKER};
    use std::borrow::Cow;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> MappedRecord<'static> {
        MappedRecord {
            host: "box-1",
            short_message: Cow::Borrowed("hello \"world\"\u{0}"),
            full_message: Some(Cow::Borrowed("line 1\nline\t2")),
            time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_042),
            level: 3,
            fields: vec![
                Field {
                    key: Cow::Borrowed("user"),
                    value: FieldValue::Str(Cow::Borrowed("alice\\bob")),
                },
                Field {
                    key: Cow::Borrowed("n"),
                    value: FieldValue::Int(-7),
                },
                Field {
                    key: Cow::Borrowed("ratio"),
                    value: FieldValue::Float(0.25),
                },
            ],
            protected_tail: 0,
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
}
