//! Records too large for a frame are cut to fit, and keep as much of their
//! text as fits: the frame stays within the limit yet uses most of it, the
//! short and full messages (GELF) or the message fields (LTSV) keep a prefix
//! of their text and end with the marker, whatever the characters (ASCII,
//! multi-byte UTF-8, control characters, quotes, backslashes) and however
//! much each escapes to.

use djehouty_testkit as support;

use std::time::{Duration, UNIX_EPOCH};

use djehouty::{Exporter, ExporterBuilder, Format, Framing, Gelf, Ltsv};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord, SdkLoggerProvider};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const MARKER: &str = " [truncated]";
/// The exporter's default frame limit.
const DEFAULT_FRAME: usize = 2 * 1024 * 1024;
/// No limit in practice.
const UNLIMITED: usize = 1 << 30;
const FRAMINGS: [Framing; 2] = [Framing::Nul, Framing::Newline];
/// How far under the limit a cut frame may end: the delimiter, a dropped
/// `full_message` label (18 bytes in GELF), a character or an escape that
/// did not fit whole.
const SLACK: usize = 32;

fn exporter<F: Format>(max: usize, framing: Framing) -> Exporter<F> {
    ExporterBuilder::<F>::default()
        .with_endpoint("tcp://127.0.0.1:9")
        .with_host("web-1")
        .with_max_frame_size(max)
        .with_buffer_size(max.max(DEFAULT_FRAME))
        .with_framing(framing)
        .build()
        .expect("valid options")
}

fn record(body: &str, detail: Option<&str>) -> SdkLogRecord {
    let provider = SdkLoggerProvider::builder().build();
    let mut record = provider.logger("shrink").create_log_record();
    record.set_body(AnyValue::from(body.to_string()));
    record.set_timestamp(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    record.add_attribute("user", "alice");
    if let Some(detail) = detail {
        record.add_attribute("detail", detail.to_string());
    }
    record
}

/// The frame of one record, without its delimiter, and whether it was cut.
fn encode<F: Format>(exporter: &Exporter<F>, record: &SdkLogRecord) -> (Vec<u8>, bool) {
    let scope = InstrumentationScope::builder("shrink").build();
    let mut out = Vec::new();
    let cut = exporter.encode_batch(&LogBatch::new(&[(record, &scope)]), &mut out);
    assert!(cut <= 1, "{cut} records cut out of one");
    out.pop().expect("a delimiter");
    (out, cut == 1)
}

/// The texts of a frame, decoded: the short message, the full message and
/// the field `detail` (GELF's `short_message`, `full_message` and `_detail`,
/// LTSV's `message`, `full_message` and `detail`, unescaped).
struct Texts {
    short: String,
    full: Option<String>,
    detail: Option<String>,
}

fn texts(format: &str, frame: &[u8]) -> Texts {
    if format == "GELF" {
        let json: serde_json::Value = serde_json::from_slice(frame).expect("valid JSON");
        let text = |key: &str| {
            json.get(key)
                .map(|v| v.as_str().expect("a string").to_string())
        };
        return Texts {
            short: text("short_message").expect("a short message"),
            full: text("full_message"),
            detail: text("_detail"),
        };
    }
    let line = std::str::from_utf8(frame).expect("UTF-8");
    assert!(!line.contains(['\n', '\0']), "one line");
    let label = |name: &str| {
        line.split('\t')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix(':'))
            .map(unescape_ltsv)
    };
    Texts {
        short: label("message").expect("a message"),
        full: label("full_message"),
        detail: label("detail"),
    }
}

fn unescape_ltsv(value: &str) -> String {
    support::graylog::unescape_ltsv_value(value).expect("only the escapes LTSV defines")
}

/// Checks that `got` is `whole`, or a prefix of it followed by the marker;
/// returns whether it was cut.
fn check_prefix(name: &str, got: &str, whole: &str) -> bool {
    if got == whole {
        return false;
    }
    let kept = got
        .strip_suffix(MARKER)
        .unwrap_or_else(|| panic!("{name}: changed but not marked: {}", brief(got)));
    assert!(
        whole.starts_with(kept),
        "{name}: {} is not a prefix of {}",
        brief(kept),
        brief(whole)
    );
    true
}

fn brief(text: &str) -> String {
    let head: String = text.chars().take(60).collect();
    format!("{head:?}... ({} bytes)", text.len())
}

/// Encodes a record of `body` (and the field `detail`) with the frame limit
/// `max` and without a limit; checks the cut frame against the whole one and
/// returns the cut frame's length and whether it was cut.
fn check_cut<F: Format>(
    body: &str,
    detail: Option<&str>,
    max: usize,
    framing: Framing,
) -> (usize, bool) {
    let case = format!("{} {max} {framing:?} {}", F::NAME, brief(body));
    let record = record(body, detail);
    let (whole, whole_cut) = encode(&exporter::<F>(UNLIMITED, framing), &record);
    assert!(!whole_cut, "{case}");
    let (frame, cut) = encode(&exporter::<F>(max, framing), &record);
    assert!(
        frame.len() < max,
        "{case}: {} bytes and the delimiter",
        frame.len()
    );
    if whole.len() < max {
        assert!(!cut, "{case}: cut though it fits");
        assert_eq!(frame, whole, "{case}: changed though it fits");
        return (frame.len(), false);
    }
    assert!(cut, "{case}: not counted as cut");
    let (got, whole) = (texts(F::NAME, &frame), texts(F::NAME, &whole));
    let short_cut = check_prefix(&format!("{case}: short"), &got.short, &whole.short);
    let full_cut = match (&got.full, &whole.full) {
        (Some(full), Some(whole)) => check_prefix(&format!("{case}: full"), full, whole),
        (None, Some(_)) => true,
        (Some(_), None) => panic!("{case}: a full message appeared"),
        (None, None) => false,
    };
    let detail_cut = match (&got.detail, &whole.detail) {
        (Some(detail), Some(whole)) => check_prefix(&format!("{case}: detail"), detail, whole),
        (None, None) => false,
        _ => panic!("{case}: detail lost or added"),
    };
    // A cut record says so: in its message when that was cut.
    assert!(
        short_cut || got.full.is_some() && full_cut || detail_cut,
        "{case}: no marker"
    );
    // The rest of the record is kept.
    if F::NAME == "GELF" {
        let json: serde_json::Value = serde_json::from_slice(&frame).expect("valid JSON");
        assert_eq!(json["_user"], "alice", "{case}");
    } else {
        assert!(frame.windows(11).any(|w| w == b"\tuser:alice"), "{case}");
    }
    (frame.len(), true)
}

/// Lines of JSON: many quotes and line feeds, which JSON escapes to two bytes.
fn json_lines(bytes: usize) -> String {
    let mut body = String::with_capacity(bytes + 128);
    let mut i = 0;
    while body.len() < bytes {
        body.push_str(&format!(
            "{{\"seq\":{i},\"user\":\"alice\",\"path\":\"C:\\\\logs\",\"said\":\"\\\"hi\\\"\"}}\n"
        ));
        i += 1;
    }
    body
}

/// A single line of control characters (no line feed), which JSON escapes to
/// six bytes each (`\u0001`) but for a few of two (`\t`).
fn control_chars(bytes: usize) -> String {
    let mut body = String::from("control:");
    let cycle: Vec<char> = (1u8..0x20)
        .filter(|&b| b != b'\n')
        .map(char::from)
        .collect();
    body.extend(cycle.iter().cycle().take(bytes));
    body
}

#[test]
fn a_large_body_of_json_lines_keeps_most_of_the_frame() {
    let body = json_lines(6 * 1024 * 1024);
    for framing in FRAMINGS {
        for (len, cut) in [
            check_cut::<Gelf>(&body, None, DEFAULT_FRAME, framing),
            check_cut::<Ltsv>(&body, None, DEFAULT_FRAME, framing),
        ] {
            assert!(cut && len >= DEFAULT_FRAME * 9 / 10, "{len} bytes");
        }
    }
}

#[test]
fn a_large_body_of_control_characters_keeps_most_of_the_frame() {
    let single = control_chars(3 * 1024 * 1024);
    let lines = single.replace('\u{b}', "\n");
    for body in [single, lines] {
        for framing in FRAMINGS {
            for (len, cut) in [
                check_cut::<Gelf>(&body, None, DEFAULT_FRAME, framing),
                check_cut::<Ltsv>(&body, None, DEFAULT_FRAME, framing),
            ] {
                assert!(cut && len >= DEFAULT_FRAME * 9 / 10, "{len} bytes");
            }
        }
    }
}

/// Characters of every escaping width in both formats.
const ALPHABET: [char; 14] = [
    'a', 'Z', ' ', 'é', '€', '😀', '"', '\\', '\n', '\t', '\r', '\0', '\u{1}', '\u{7f}',
];

fn mixed_text() -> impl Strategy<Value = String> {
    // Runs of one character, so that long texts are cheap to generate.
    let run = (prop::sample::select(&ALPHABET[..]), 1usize..400);
    prop::collection::vec(run, 1..60).prop_map(|runs| {
        let mut text = String::from("m");
        for (c, n) in runs {
            text.extend(std::iter::repeat_n(c, n));
        }
        text
    })
}

#[test]
fn any_text_is_cut_to_fit_and_keeps_most_of_the_frame() {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 128;
    }
    config.failure_persistence = None;
    let strategy = (
        mixed_text(),
        prop::option::of(mixed_text()),
        1024usize..6000,
        any::<bool>(),
    );
    TestRunner::new(config)
        .run(&strategy, |(body, detail, max, nul)| {
            let framing = if nul { Framing::Nul } else { Framing::Newline };
            let detail = detail.as_deref();
            for (len, cut) in [
                check_cut::<Gelf>(&body, detail, max, framing),
                check_cut::<Ltsv>(&body, detail, max, framing),
            ] {
                // Cut to what fits, not to a stub.
                prop_assert!(!cut || len + SLACK >= max, "{len} bytes of {max}");
            }
            Ok(())
        })
        .unwrap();
}
