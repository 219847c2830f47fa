//! Request bodies: one GELF message, or a bulk of them one per line, the
//! frames' delimiters dropped; gzip-compressed if asked.

use std::io::{self, Write as _};

use bytes::Bytes;

use crate::config::HttpOptions;
use crate::frames::FrameRun;

/// The body of a request holding these frames: one message as is, or
/// several, each ended by a newline; gzip-compressed if asked.
pub(super) fn body(frames: FrameRun<'_>, options: HttpOptions) -> io::Result<Bytes> {
    // Each frame ends with its one-byte delimiter.
    let messages: Vec<&[u8]> = frames
        .iter()
        .map(|frame| frame.split_last().map_or(frame, |(_, message)| message))
        .collect();
    let bulk = messages.len() > 1 || options.bulk;
    let size = frames.data().len();
    if options.gzip {
        let out = Vec::with_capacity(size / 4 + 64);
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        for message in &messages {
            encoder.write_all(message)?;
            if bulk {
                encoder.write_all(b"\n")?;
            }
        }
        return encoder.finish().map(Bytes::from);
    }
    let mut out = Vec::with_capacity(size);
    for message in &messages {
        out.extend_from_slice(message);
        if bulk {
            out.push(b'\n');
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn frames(messages: &[&str], delimiter: u8) -> (Vec<u8>, Vec<usize>) {
        let mut data = Vec::new();
        let mut lens = Vec::new();
        for m in messages {
            data.extend_from_slice(m.as_bytes());
            data.push(delimiter);
            lens.push(m.len() + 1);
        }
        (data, lens)
    }

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("not gzip: {e}"));
        out
    }

    const PLAIN: HttpOptions = HttpOptions {
        bulk: false,
        gzip: false,
    };

    #[test]
    fn one_message_is_sent_without_its_delimiter() {
        for delimiter in [0, b'\n'] {
            let (data, lens) = frames(&[r#"{"a":1}"#], delimiter);
            let body = body(FrameRun::new(&data, &lens), PLAIN).unwrap_or_default();
            assert_eq!(&body[..], br#"{"a":1}"#);
        }
    }

    #[test]
    fn bulk_bodies_hold_one_message_per_line() {
        let (data, lens) = frames(&[r#"{"a":1}"#, r#"{"b":2}"#], 0);
        let options = HttpOptions {
            bulk: true,
            gzip: false,
        };
        let body = body(FrameRun::new(&data, &lens), options).unwrap_or_default();
        assert_eq!(&body[..], b"{\"a\":1}\n{\"b\":2}\n");
        let (data, lens) = frames(&[r#"{"a":1}"#], 0);
        let body = super::body(FrameRun::new(&data, &lens), options).unwrap_or_default();
        assert_eq!(&body[..], b"{\"a\":1}\n");
    }

    #[test]
    fn gzip_bodies_decompress_to_the_plain_ones() {
        let (data, lens) = frames(&[r#"{"a":1}"#, r#"{"b":2}"#], 0);
        for bulk in [false, true] {
            let plain = body(
                FrameRun::new(&data, &lens),
                HttpOptions { bulk, gzip: false },
            )
            .unwrap_or_default();
            let gzip = body(
                FrameRun::new(&data, &lens),
                HttpOptions { bulk, gzip: true },
            )
            .unwrap_or_default();
            assert_eq!(gunzip(&gzip), plain.to_vec());
        }
    }
}
