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

/// One test, so that no other test allocates meanwhile.
#[test]
fn huge_values_allocate_a_few_frames_and_are_cut_to_one() {
    a_huge_text_body();
    huge_bytes_lists_and_maps();
    countless_fields();
}

/// What a record of many fields may allocate, in frames: its fields mapped
/// (twice, for the fast path tries first), then cut by what they exceed
/// the limit with, measured before they are encoded, and the output
/// buffer. Encoding them whole, escaped, would take about sixty.
const FRAMES_FOR_FIELDS: usize = 8;

/// A map of 10,000 entries and 10,000 attributes, each of 2,000 bytes
/// (20 MB, six times that escaped): cut to the frame before it is encoded,
/// the fields kept first, the short message marked.
fn countless_fields() {
    const COUNT: usize = 10_000;
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("many");
    let scope = InstrumentationScope::builder("many").build();
    // One text shared by every value; control characters, not blank.
    let text: Arc<str> = Arc::from(format!("{}x", "\u{1}".repeat(1_999)));
    let value = || AnyValue::from(StringValue::from(Arc::clone(&text)));
    let mut in_map = logger.create_log_record();
    in_map.set_body(AnyValue::from("a huge map"));
    let map: std::collections::HashMap<_, _> = (0..COUNT)
        .map(|i| (opentelemetry::Key::from(format!("k{i:05}")), value()))
        .collect();
    in_map.add_attribute("map", AnyValue::Map(Box::new(map)));
    let mut many = logger.create_log_record();
    many.set_body(AnyValue::from("countless attributes"));
    for i in 0..COUNT {
        many.add_attribute(format!("a{i:05}"), value());
    }
    let gelf = exporter::<Gelf>(Framing::Nul);
    for (record, first, last) in [
        (&in_map, "_map_k00000", "_map_k09999"),
        (&many, "_a00000", "_a09999"),
    ] {
        let (frame, allocated) = encode(&gelf, record, &scope);
        assert!(frame.len() < FRAME, "{first}: {} bytes", frame.len());
        assert!(
            allocated < (FRAMES_FOR_FIELDS * FRAME) as u64,
            "{first}: allocated {allocated} bytes"
        );
        let json: serde_json::Value = serde_json::from_slice(&frame).expect("valid JSON");
        let message = json["short_message"].as_str().expect("a short message");
        assert!(message.ends_with(MARKER), "{first}: {message}");
        assert!(json.get(first).is_some(), "{first} kept");
        assert!(json.get(last).is_none(), "{last} dropped");
    }
    let (line, allocated) = encode(&exporter::<Ltsv>(Framing::Newline), &many, &scope);
    assert!(line.len() < FRAME, "LTSV: {} bytes", line.len());
    assert!(
        allocated < (FRAMES_FOR_FIELDS * FRAME) as u64,
        "LTSV allocated {allocated} bytes"
    );
    let line = std::str::from_utf8(&line).expect("UTF-8");
    let message = line
        .split('\t')
        .find_map(|pair| pair.strip_prefix("message:"))
        .expect("a message");
    assert!(message.ends_with(MARKER), "LTSV: {message}");
    assert!(line.contains("\ta00000:"), "LTSV: a00000 kept");
    assert!(!line.contains("\ta09999:"), "LTSV: a09999 dropped");
}

/// A body of bytes, and bytes, list and map attributes of tens of megabytes
/// (the map holding a blank text): turned into text no longer than the frame
/// allows, cut there and marked.
fn huge_bytes_lists_and_maps() {
    use base64::Engine as _;
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("huge");
    let scope = InstrumentationScope::builder("huge").build();
    let bytes: Vec<u8> = (0..BODY).map(|i| (i * 7 % 256) as u8).collect();
    let items: Vec<AnyValue> = (0..BODY / 64)
        .map(|i| AnyValue::from(format!("item {i:058}")))
        .collect();
    let mut record = logger.create_log_record();
    record.set_body(AnyValue::Bytes(Box::new(bytes.clone())));
    record.add_attribute("blob", AnyValue::Bytes(Box::new(bytes.clone())));
    record.add_attribute("list", AnyValue::ListAny(Box::new(items.clone())));
    let map = std::collections::HashMap::from([(
        opentelemetry::Key::from("inner"),
        AnyValue::from("\u{1}".repeat(BODY / 4)),
    )]);
    record.add_attribute("map", AnyValue::Map(Box::new(map)));
    // The whole texts, by independent writers.
    let full_base64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let full_list = serde_json::to_string(
        &items
            .iter()
            .map(|item| match item {
                AnyValue::String(s) => s.as_str().to_string(),
                _ => unreachable!(),
            })
            .collect::<Vec<_>>(),
    )
    .expect("JSON");
    let gelf = exporter::<Gelf>(Framing::Nul);
    let (frame, allocated) = encode(&gelf, &record, &scope);
    assert!(frame.len() < FRAME, "{} bytes", frame.len());
    // One frame more than for a text body: the body's base64 text.
    assert!(
        allocated < ((FRAMES_ALLOCATED + 1) * FRAME) as u64,
        "allocated {allocated} bytes"
    );
    let json: serde_json::Value = serde_json::from_slice(&frame).expect("valid JSON");
    let kept = |name: &str| -> String {
        let text = json[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {json:.200}"));
        text.strip_suffix(MARKER)
            .unwrap_or_else(|| panic!("{name} not marked"))
            .to_string()
    };
    // A field keeps what its limit (32,000 bytes by default) allows, less
    // the marker.
    let field_kept = 1024..=32_000 - MARKER.len();
    let message = kept("short_message");
    assert!(message.len() > FRAME / 2 && full_base64.starts_with(&message));
    let blob = kept("_blob");
    assert!(field_kept.contains(&blob.len()) && full_base64.starts_with(&blob));
    let list = kept("_list");
    assert!(field_kept.contains(&list.len()) && full_list.starts_with(&list));
    // A map is flattened; its blank text is quoted, so that Graylog keeps it.
    let inner = kept("_map_inner");
    assert!(
        field_kept.contains(&inner.len()),
        "{} bytes kept",
        inner.len()
    );
    assert!(inner
        .strip_prefix('"')
        .is_some_and(|rest| rest.chars().all(|c| c == '\u{1}')));

    // LTSV: the same texts, as label:value pairs.
    let (frame, allocated) = encode(&exporter::<Ltsv>(Framing::Newline), &record, &scope);
    assert!(frame.len() < FRAME, "{} bytes", frame.len());
    assert!(
        allocated < ((FRAMES_ALLOCATED + 1) * FRAME) as u64,
        "LTSV allocated {allocated} bytes"
    );
    let line = std::str::from_utf8(&frame).expect("UTF-8");
    let kept = |label: &str| -> String {
        let value = line
            .split('\t')
            .find_map(|pair| pair.strip_prefix(label)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {label}"));
        unescape_ltsv(
            value
                .strip_suffix(MARKER)
                .unwrap_or_else(|| panic!("{label} not marked")),
        )
    };
    let message = kept("message");
    assert!(message.len() > FRAME / 2 && full_base64.starts_with(&message));
    let blob = kept("blob");
    assert!(field_kept.contains(&blob.len()) && full_base64.starts_with(&blob));
    let list = kept("list");
    assert!(field_kept.contains(&list.len()) && full_list.starts_with(&list));
}

fn a_huge_text_body() {
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
