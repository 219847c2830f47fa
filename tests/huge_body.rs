//! A huge body costs no more than a frame: the encoder cuts it before
//! escaping it, so that the memory one record takes on the logging thread is
//! bounded by the frame limit, not by the input. Counted by this binary's
//! allocator; one test only, so that no other test allocates meanwhile.

use djehouty_testkit as support;

use std::sync::Arc;

use djehouty::{Exporter, ExporterBuilder, Format, Framing, Gelf, Ltsv};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::{InstrumentationScope, StringValue};
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord, SdkLoggerProvider};
use support::alloc::{allocated_bytes, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const MARKER: &str = " [truncated]";
/// The exporter's default frame limit.
const FRAME: usize = 2 * 1024 * 1024;
const BODY: usize = 100 * 1024 * 1024;
/// What one record may allocate, in frames: the output buffer, grown once,
/// and the text kept, copied once with its marker (a frame in LTSV, less in
/// GELF, where control characters take six bytes).
const FRAMES_ALLOCATED: usize = 3;

fn exporter<F: Format>(framing: Framing) -> Exporter<F> {
    ExporterBuilder::<F>::default()
        .with_endpoint("tcp://127.0.0.1:9")
        .with_max_frame_size(FRAME)
        .with_framing(framing)
        .build()
        .expect("valid options")
}

/// Control characters (no line feed when `lines` is false), which GELF
/// escapes to six bytes each (`\u0001`).
fn control_chars(lines: bool) -> String {
    let mut body = String::with_capacity(BODY + 16);
    body.push_str("control:");
    let cycle: Vec<char> = (1u8..0x20)
        .filter(|&b| lines || b != b'\n')
        .map(char::from)
        .collect();
    body.extend(cycle.iter().cycle().take(BODY));
    body
}

/// Encodes `record`; returns the frame, without its delimiter, and the
/// bytes allocated meanwhile.
fn encode<F: Format>(
    exporter: &Exporter<F>,
    record: &SdkLogRecord,
    scope: &InstrumentationScope,
) -> (Vec<u8>, u64) {
    let batch = [(record, scope)];
    let mut out = Vec::new();
    let before = allocated_bytes();
    let cut = exporter.encode_batch(&LogBatch::new(&batch), &mut out);
    let allocated = allocated_bytes() - before;
    assert_eq!(cut, 1);
    out.pop().expect("a delimiter");
    (out, allocated)
}

fn unescape_ltsv(value: &str) -> String {
    support::graylog::unescape_ltsv_value(value).expect("only the escapes LTSV defines")
}

#[test]
fn a_huge_body_allocates_a_few_frames_and_is_cut_to_one() {
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("huge");
    let scope = InstrumentationScope::builder("huge").build();
    for lines in [false, true] {
        // One text, shared by the body and two attributes.
        let body: Arc<str> = Arc::from(control_chars(lines));
        let value = || AnyValue::from(StringValue::from(Arc::clone(&body)));
        let mut record = logger.create_log_record();
        record.set_body(value());
        record.add_attribute("exception.stacktrace", value());
        record.add_attribute("detail", value());
        // A multi-line body is the full message; the short one is its
        // first line, which fits.
        let message = if lines {
            "full_message"
        } else {
            "short_message"
        };
        for framing in [Framing::Nul, Framing::Newline] {
            let case = format!("lines {lines}, {framing:?}");

            let (frame, allocated) = encode(&exporter::<Gelf>(framing), &record, &scope);
            assert!(frame.len() < FRAME, "{case}: {} bytes", frame.len());
            assert!(
                allocated < (FRAMES_ALLOCATED * FRAME) as u64,
                "{case}: GELF allocated {allocated} bytes"
            );
            let json: serde_json::Value = serde_json::from_slice(&frame).expect("valid JSON");
            let text = json[message].as_str().expect("a message");
            let kept = text.strip_suffix(MARKER).expect("marked");
            assert!(body.starts_with(kept), "{case}: GELF");

            let (frame, allocated) = encode(&exporter::<Ltsv>(framing), &record, &scope);
            assert!(frame.len() < FRAME, "{case}: {} bytes", frame.len());
            assert!(
                allocated < (FRAMES_ALLOCATED * FRAME) as u64,
                "{case}: LTSV allocated {allocated} bytes"
            );
            let line = std::str::from_utf8(&frame).expect("UTF-8");
            let label = if lines { "full_message:" } else { "message:" };
            let text = line
                .split('\t')
                .find_map(|pair| pair.strip_prefix(label))
                .expect("a message");
            let kept = text.strip_suffix(MARKER).expect("marked");
            assert!(body.starts_with(&unescape_ltsv(kept)), "{case}: LTSV");
        }
    }
}
