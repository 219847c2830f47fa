//! Fast, in-process fuzzing of both encoders through the public API (no
//! network): arbitrary records, scopes, resources and exporter options go
//! through `Exporter::encode_batch` with both framings, a small, the default
//! and an unlimited frame size. Nothing may panic, and every record must
//! become exactly one frame that fits the limit and that checkers of our own
//! accept: Graylog's rules (`timestamp` and `level` required), blankness as
//! Graylog sees it, JSON parsed back with serde_json.
//!
//! This file is about volume: 1,024 cases of up to four records per property
//! by default (`PROPTEST_CASES` overrides the case count). The end-to-end
//! properties, with their oracles on what each attribute becomes, are in
//! `properties.rs`; both draw records from the same generators.

use djehouty_testkit as support;

use std::time::{SystemTime, UNIX_EPOCH};

use djehouty::{ExporterBuilder, Format, Framing, Gelf, Ltsv, TypeSuffixes};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter as _, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::Resource;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};

use support::generators::*;
use support::oracles::*;
use support::{assert_graylog_accepts, assert_ltsv_line_ok, show_bytes};

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 1024;
const SMALL_FRAME: usize = 4096;
const DEFAULT_FRAME: usize = 2 * 1024 * 1024;
/// No limit in practice: nothing generated comes near it.
const UNLIMITED: usize = 1 << 30;
const LIMITS: [usize; 2] = [SMALL_FRAME, DEFAULT_FRAME];
const FRAMINGS: [Framing; 2] = [Framing::Nul, Framing::Newline];
/// Bytes already in the output buffer: the encoder must append after them.
const PREFIX: &[u8] = b"{\"earlier\":\"frame\"}\0earlier\tline\n";
const MARKER: &str = " [truncated]";

fn config() -> Config {
    let mut config = Config {
        failure_persistence: None,
        max_shrink_iters: 2048,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    // `Config::default()` already honours `PROPTEST_CASES`.
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    config
}

// ---------------------------------------------------------------------------
// Generated input: exporter options, resource, scope, records
// ---------------------------------------------------------------------------

/// Exporter options and what the exporter is handed besides the records.
#[derive(Clone, Debug)]
struct Options {
    host: Option<String>,
    extras: Vec<(String, Value)>,
    replace_dots: bool,
    max_field_bytes: Option<usize>,
    type_suffixes: Option<TypeSuffixes>,
    resource: Vec<(String, Value)>,
    scope_name: String,
    scope_version: Option<String>,
    scope_attributes: Vec<(String, Value)>,
}

/// A record and the metadata the shared generator leaves out.
#[derive(Clone, Debug)]
struct Case {
    record: Record,
    observed: Option<SystemTime>,
    trace: Option<([u8; 16], [u8; 8], Option<u8>)>,
}

/// A resource, scope or static value (`opentelemetry::Value`).
fn static_value() -> impl Strategy<Value = Value> {
    static_value_of(text)
}

/// Static values whose texts come from `text`.
fn static_value_of<S: Strategy<Value = String>>(
    text: impl Fn() -> S,
) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(|s| Value::String(s.into())),
        1 => int().prop_map(Value::I64),
        1 => double().prop_map(Value::F64),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => vec(text(), 0..4).prop_map(|l| Value::Array(Array::String(
            l.into_iter().map(StringValue::from).collect()
        ))),
        1 => vec(int(), 0..4).prop_map(|l| Value::Array(Array::I64(l))),
        1 => vec(double(), 0..4).prop_map(|l| Value::Array(Array::F64(l))),
        1 => vec(any::<bool>(), 0..4).prop_map(|l| Value::Array(Array::Bool(l))),
    ]
}

/// Any suffix at all: the ones that could join a key into a reserved name
/// (`""`, `d` after `i`) included.
fn suffix() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(&["_long", "_int", "_double", "_bool", "_date", "", "d", "_", "-", "_x.y", "é", "\0"][..])
            .prop_map(String::from),
        1 => short_text(6),
    ]
}

fn type_suffixes() -> impl Strategy<Value = TypeSuffixes> {
    prop_oneof![
        2 => Just(TypeSuffixes::default()),
        1 => (suffix(), suffix(), suffix(), suffix()).prop_map(|(long, double, boolean, date)| {
            TypeSuffixes {
                long,
                double,
                boolean,
                date,
            }
        }),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    use proptest::option::{of, weighted};
    (
        weighted(0.2, text()),
        // Extras are sent whole: short ones, so that they fit the small frame
        // limit (`extras_larger_than_half_a_frame_are_refused_and_others_fit`
        // covers the others); one longer than a small field limit is refused.
        vec((short_text(16), static_value_of(|| short_text(24))), 0..=3),
        any::<bool>(),
        weighted(0.25, select(&[64usize, 65, 100, 1_000][..])),
        weighted(0.3, type_suffixes()),
        vec((key(), static_value()), 0..=6),
        text(),
        of(text()),
        vec((key(), static_value()), 0..=4),
    )
        .prop_map(
            |(
                host,
                extras,
                replace_dots,
                max_field_bytes,
                type_suffixes,
                resource,
                scope_name,
                scope_version,
                scope_attributes,
            )| Options {
                host,
                extras,
                replace_dots,
                max_field_bytes,
                type_suffixes,
                resource,
                scope_name,
                scope_version,
                scope_attributes,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    use proptest::option::of;
    (
        prop_oneof![6 => record(), 1 => oversized_record()],
        of(timestamp()),
        of((any::<[u8; 16]>(), any::<[u8; 8]>(), of(any::<u8>()))),
    )
        .prop_map(|(record, observed, trace)| Case {
            record,
            observed,
            trace,
        })
}

fn input() -> impl Strategy<Value = (Options, Vec<Case>)> {
    (options(), vec(case(), 1..=4))
}

fn key_values(pairs: &[(String, Value)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect()
}

/// An exporter with `options`, the frame limit `max` and `framing`, its
/// resource already set, or `None` when the builder refused a static field
/// longer than the field limit (checked here). Nothing listens at its
/// endpoint: it is only used to encode.
fn exporter<F: Format>(
    options: &Options,
    resource: &Resource,
    max: usize,
    framing: Framing,
) -> Option<djehouty::Exporter<F>> {
    let mut builder: ExporterBuilder<F> = ExporterBuilder::default()
        .with_endpoint("tcp://127.0.0.1:9")
        .with_max_frame_size(max)
        .with_buffer_size(max.max(DEFAULT_FRAME))
        .with_framing(framing)
        .with_dots_replaced(options.replace_dots);
    if let Some(host) = &options.host {
        builder = builder.with_host(host.clone());
    }
    for (key, value) in &options.extras {
        builder = builder.with_extra(key.clone(), value.clone());
    }
    if let Some(max) = options.max_field_bytes {
        builder = builder.with_max_field_size(max);
    }
    if let Some(suffixes) = &options.type_suffixes {
        builder = builder.with_type_suffixes(suffixes.clone());
    }
    // Static fields are sent whole: one whose text is longer than a field
    // is refused.
    let field_limit = options.max_field_bytes.unwrap_or(32_000);
    let too_long = options
        .extras
        .iter()
        .any(|(_, value)| sent_text_len(value) > field_limit);
    match builder.build() {
        Ok(mut exporter) => {
            assert!(
                !too_long,
                "a static field over the field limit was accepted"
            );
            exporter.set_resource(resource);
            Some(exporter)
        }
        Err(djehouty::Error::InvalidConfig(error)) if too_long => {
            assert!(error.contains("field limit"), "{error}");
            None
        }
        Err(error) => panic!("valid options refused: {error}"),
    }
}

/// How long a static value's text is on the wire, by this test's own
/// reckoning: a text, quoted when Graylog would find it blank; a list as
/// serde_json writes it (a non-finite double as Rust prints it); numbers and
/// booleans are short.
fn sent_text_len(value: &Value) -> usize {
    use serde_json::Value as J;
    let list: Vec<J> = match value {
        Value::Bool(_) | Value::I64(_) | Value::F64(_) => return 0,
        Value::String(s) if blank(s.as_str()) => return s.as_str().len() + 2,
        Value::String(s) => return s.as_str().len(),
        Value::Array(Array::Bool(v)) => v.iter().map(|b| J::from(*b)).collect(),
        Value::Array(Array::I64(v)) => v.iter().map(|i| J::from(*i)).collect(),
        Value::Array(Array::F64(v)) => v
            .iter()
            .map(|f| {
                if f.is_finite() {
                    J::from(*f)
                } else {
                    J::from(f.to_string())
                }
            })
            .collect(),
        Value::Array(Array::String(v)) => v.iter().map(|s| J::from(s.as_str())).collect(),
        other => panic!("no such static value in these cases: {other:?}"),
    };
    J::Array(list).to_string().len()
}

fn scope(options: &Options) -> InstrumentationScope {
    let mut scope = InstrumentationScope::builder(options.scope_name.clone())
        .with_attributes(key_values(&options.scope_attributes));
    if let Some(version) = &options.scope_version {
        scope = scope.with_version(version.clone());
    }
    scope.build()
}

fn case_record(logger: &SdkLogger, case: &Case) -> SdkLogRecord {
    let mut rec = sdk_record(logger, &case.record);
    if let Some(time) = case.observed {
        rec.set_observed_timestamp(time);
    }
    if let Some((trace_id, span_id, flags)) = case.trace {
        rec.set_trace_context(
            TraceId::from_bytes(trace_id),
            SpanId::from_bytes(span_id),
            flags.map(TraceFlags::new),
        );
    }
    rec
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn show(bytes: &[u8]) -> String {
    show_bytes(bytes)
}

/// One record encoded by `exporter`, appended to `out`; returns whether it
/// was cut.
fn encode<F: Format>(
    exporter: &djehouty::Exporter<F>,
    record: &SdkLogRecord,
    scope: &InstrumentationScope,
    out: &mut Vec<u8>,
) -> bool {
    match exporter.encode_batch(&LogBatch::new(&[(record, scope)]), out) {
        0 => false,
        1 => true,
        n => panic!("{n} records cut out of one"),
    }
}

/// Where the time sits in a frame: a record without a usable time gets the
/// current one, which differs from one encoding to the next.
fn time_span(format: &str, frame: &[u8]) -> (usize, usize) {
    let (label, end): (&[u8], fn(u8) -> bool) = if format == "GELF" {
        (b"\"timestamp\":", |b| {
            !matches!(b, b'0'..=b'9' | b'.' | b'-' | b'e' | b'E' | b'+')
        })
    } else {
        (b"time:", |b| b == b'\t')
    };
    let start = frame
        .windows(label.len())
        .position(|w| w == label)
        .unwrap_or_else(|| panic!("{format}: no time in {}", show(frame)))
        + label.len();
    let len = frame[start..]
        .iter()
        .position(|&b| end(b))
        .unwrap_or(frame.len() - start);
    (start, len)
}

/// `frame` with its time replaced by a fixed mark, and the time's length.
fn without_time(format: &str, frame: &[u8]) -> (Vec<u8>, usize) {
    let (start, len) = time_span(format, frame);
    let mut masked = frame[..start].to_vec();
    masked.extend_from_slice(b"TIME");
    masked.extend_from_slice(&frame[start + len..]);
    (masked, len)
}

/// Encodes each case without a limit (twice: the key cache cold, then warm),
/// then with each limit and framing; checks what the framing and the limit
/// promise, and hands each frame, delimiter excluded, to `check`.
fn encode_all<F: Format>(
    options: &Options,
    cases: &[Case],
    logger: &SdkLogger,
    check: impl Fn(&[u8]),
) {
    let scope = scope(options);
    let records: Vec<SdkLogRecord> = cases.iter().map(|c| case_record(logger, c)).collect();
    // An exporter whose resource was set before: the last one counts.
    // One resource for all: the order of its attributes is a hash map's.
    let resource = Resource::builder_empty()
        .with_attributes(key_values(&options.resource))
        .build();
    let earlier = Resource::builder_empty()
        .with_attributes([KeyValue::new("earlier.resource", "x")])
        .build();
    // Refused (and checked so) when a static field is longer than a field.
    let Some(mut whole_exporter) = exporter::<F>(options, &earlier, UNLIMITED, Framing::Nul) else {
        return;
    };
    whole_exporter.set_resource(&resource);
    let limited: Vec<(usize, Framing, djehouty::Exporter<F>)> = LIMITS
        .iter()
        .flat_map(|&max| FRAMINGS.iter().map(move |&framing| (max, framing)))
        .map(|(max, framing)| {
            let exporter = exporter::<F>(options, &resource, max, framing)
                .expect("accepted without a frame limit");
            (max, framing, exporter)
        })
        .collect();
    for record in &records {
        let mut whole = Vec::new();
        assert!(
            !encode(&whole_exporter, record, &scope, &mut whole),
            "cut without a limit"
        );
        assert_eq!(whole.pop(), Some(0), "no delimiter");
        check(&whole);
        let (whole_masked, whole_time) = without_time(F::NAME, &whole);
        let mut again = Vec::new();
        encode(&whole_exporter, record, &scope, &mut again);
        again.pop();
        assert!(
            without_time(F::NAME, &again).0 == whole_masked,
            "encoding the same record again changed it: {}\ninstead of {}",
            show(&again),
            show(&whole)
        );
        for max in LIMITS {
            let mut contents = Vec::with_capacity(FRAMINGS.len());
            for (_, framing, exporter) in limited.iter().filter(|(m, _, _)| *m == max) {
                let delimiter = match framing {
                    Framing::Nul => 0,
                    _ => b'\n',
                };
                let mut out = PREFIX.to_vec();
                let cut = encode(exporter, record, &scope, &mut out);
                let Some(frame) = out.strip_prefix(PREFIX) else {
                    panic!("the bytes before the frame changed");
                };
                assert!(
                    frame.len() <= max,
                    "{} bytes over the {max}-byte limit: {}",
                    frame.len(),
                    show(frame)
                );
                let Some((&last, content)) = frame.split_last() else {
                    panic!("an empty frame");
                };
                assert_eq!(last, delimiter, "no delimiter: {}", show(frame));
                let (masked, time) = without_time(F::NAME, content);
                // The uncut record with this encoding's time, plus the delimiter.
                let full = whole.len() - whole_time + time + 1;
                assert_eq!(
                    cut,
                    full > max,
                    "cut is {cut} for a {full}-byte record and a {max}-byte limit"
                );
                if !cut {
                    assert!(
                        masked == whole_masked,
                        "a record within the limit changed: {}\ninstead of {}",
                        show(content),
                        show(&whole)
                    );
                }
                contents.push(masked);
                check(content);
            }
            // The framing changes the delimiter only.
            assert!(
                contents.windows(2).all(|w| w[0] == w[1]),
                "the framing changed the content"
            );
        }
    }
}

/// An additional field name Graylog keeps as it is: `_` then letters, digits,
/// `_`, `.`, `-`, and once the `_` is stripped, neither a reserved name nor
/// Graylog's internal `gl2_` namespace.
fn is_field_name(name: &str) -> bool {
    name.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            && !RESERVED.contains(&rest)
            && !rest.starts_with("gl2_")
    })
}

/// Checks one GELF frame beyond Graylog's own rules (which require
/// `timestamp` and `level`).
fn check_gelf(frame: &[u8]) {
    use serde_json::Value as J;
    let object = assert_graylog_accepts(frame);
    let fail = |what: String| -> ! { panic!("GELF: {what} in {}", show(frame)) };
    if frame.contains(&0) || frame.contains(&b'\n') {
        fail("raw NUL or LF".into());
    }
    if object.get("version").and_then(J::as_str) != Some("1.1") {
        fail("no version 1.1".into());
    }
    for name in ["host", "short_message"] {
        if object.get(name).and_then(J::as_str).is_none_or(blank) {
            fail(format!("a blank or missing {name}"));
        }
    }
    if object.get("full_message").is_some_and(|m| !m.is_string()) {
        fail("a full_message that is not a string".into());
    }
    match object.get("timestamp").and_then(J::as_f64) {
        Some(t) if t.is_finite() && t > 0.0 => {}
        other => fail(format!("timestamp {other:?}")),
    }
    match object.get("level").and_then(J::as_u64) {
        Some(l) if l <= 7 => {}
        other => fail(format!("level {other:?}")),
    }
    for (name, value) in &object {
        if [
            "version",
            "host",
            "short_message",
            "full_message",
            "timestamp",
            "level",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        if !is_field_name(name) {
            fail(format!("field name {}", brief(name)));
        }
        let valid = match value {
            J::String(s) => !blank(s),
            J::Number(n) => n.as_f64().is_some_and(f64::is_finite),
            _ => false,
        };
        if !valid {
            fail(format!("field {} = {}", brief(name), value));
        }
    }
}

/// Checks one LTSV record beyond the line rules (which require `time`,
/// `host`, `level` and `message`).
fn check_ltsv(record: &[u8]) {
    let fields = assert_ltsv_line_ok(record);
    let fail = |what: String| -> ! { panic!("LTSV: {what} in {}", show(record)) };
    let head: Vec<&str> = fields.iter().take(4).map(|(l, _)| l.as_str()).collect();
    if head != ["time", "host", "level", "message"] {
        fail(format!("labels start with {head:?}"));
    }
    if !humantime::parse_rfc3339(&fields[0].1).is_ok_and(|t| t > UNIX_EPOCH) {
        fail(format!("time {:?}", fields[0].1));
    }
    if blank(&fields[1].1) {
        fail("a blank host".into());
    }
    if !fields[2].1.parse::<u8>().is_ok_and(|l| l <= 7) {
        fail(format!("level {:?}", fields[2].1));
    }
    for (label, value) in &fields[3..] {
        if blank(value) {
            fail(format!("a blank {label}"));
        }
    }
}

/// Runs `f` on a thread with a large stack: proptest builds the nested
/// value trees recursively, deeper than a test thread's default stack in a
/// debug build.
fn with_large_stack(f: impl FnOnce() + Send + 'static) {
    let thread = std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(f)
        .expect("spawn");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

fn run(property: fn(&Options, &[Case], &SdkLogger)) {
    with_large_stack(move || run_here(property));
}

fn run_here(property: fn(&Options, &[Case], &SdkLogger)) {
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    let mut runner = TestRunner::new(config());
    let result = runner.run(&input(), |(options, cases)| {
        property(&options, &cases, &logger);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn gelf_any_record_gives_one_well_formed_frame() {
    run(|options, cases, logger| encode_all::<Gelf>(options, cases, logger, check_gelf));
}

#[test]
fn ltsv_any_record_gives_one_well_formed_record() {
    run(|options, cases, logger| encode_all::<Ltsv>(options, cases, logger, check_ltsv));
}

/// The GELF frame of a record with `attributes` and default options.
fn gelf_of(attributes: Vec<(&str, AnyValue)>) -> serde_json::Map<String, serde_json::Value> {
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    let mut record = logger.create_log_record();
    record.set_body("values".into());
    for (key, value) in attributes {
        record.add_attribute(Key::from(key.to_string()), value);
    }
    let exporter = djehouty::GelfExporter::builder()
        .with_endpoint("tcp://127.0.0.1:9")
        .build()
        .expect("build");
    let scope = InstrumentationScope::builder("fuzz").build();
    let mut frame = Vec::new();
    encode(&exporter, &record, &scope, &mut frame);
    assert_eq!(frame.pop(), Some(0));
    assert_graylog_accepts(&frame)
}

/// Lists are sent as their JSON text: serde_json parses it back to the value
/// built independently from the list.
#[test]
fn lists_are_sent_as_json_text_serde_json_reads_back() {
    with_large_stack(lists_read_back);
}

fn lists_read_back() {
    let mut runner = TestRunner::new(config());
    let result = runner.run(&vec(value(), 0..4), |items| {
        let list = AnyValue::ListAny(Box::new(items));
        let fields = gelf_of(vec![("v", list.clone())]);
        let text = fields["_v"].as_str().expect("JSON text in a string");
        if let Some(head) = text.strip_suffix(MARKER) {
            // Cut at the field cap: only the head is checked.
            assert!(to_json(&list).to_string().starts_with(head));
        } else {
            let got: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", brief(text)));
            let want = to_json(&list);
            assert!(
                json_close(&got, &want),
                "sent {}\nexpected {}",
                brief(text),
                brief(&want.to_string())
            );
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Bytes are sent as standard base64: the `base64` crate decodes them back.
#[test]
fn bytes_are_sent_as_base64_the_decoder_reads_back() {
    use base64::Engine as _;
    let mut runner = TestRunner::new(config());
    let result = runner.run(&vec(any::<u8>(), 0..200), |bytes| {
        let fields = gelf_of(vec![("b", AnyValue::Bytes(Box::new(bytes.clone())))]);
        let text = fields["_b"].as_str().expect("a string");
        // Empty bytes give a blank text, sent quoted.
        let text = if bytes.is_empty() {
            assert_eq!(text, "\"\"");
            ""
        } else {
            text
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_else(|e| panic!("not base64 ({e}): {text:?}"));
        assert_eq!(decoded, bytes);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Each double is written as the literal text below (JSON numbers, and the
/// strings `NaN`, `Infinity`, `-Infinity` for the others).
#[test]
fn doubles_are_written_as_these_literals() {
    let cases: &[(f64, &str)] = &[
        (0.5, "0.5"),
        (0.1, "0.1"),
        (-2.25, "-2.25"),
        (1.0, "1.0"),
        (1e21, "1e+21"),
        (1e300, "1e+300"),
        (-1e-300, "-1e-300"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (9_007_199_254_740_993.0, "9007199254740992.0"),
        (f64::NAN, "\"NaN\""),
        (f64::INFINITY, "\"Infinity\""),
        (f64::NEG_INFINITY, "\"-Infinity\""),
    ];
    let attributes: Vec<(String, AnyValue)> = cases
        .iter()
        .enumerate()
        .map(|(i, (f, _))| (format!("d{i}"), AnyValue::Double(*f)))
        .collect();
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    let mut record = logger.create_log_record();
    record.set_body("doubles".into());
    for (key, value) in &attributes {
        record.add_attribute(Key::from(key.clone()), value.clone());
    }
    let exporter = djehouty::GelfExporter::builder()
        .with_endpoint("tcp://127.0.0.1:9")
        .build()
        .expect("build");
    let scope = InstrumentationScope::builder("fuzz").build();
    let mut frame = Vec::new();
    encode(&exporter, &record, &scope, &mut frame);
    frame.pop();
    assert_graylog_accepts(&frame);
    let text = String::from_utf8(frame).expect("UTF-8");
    for (i, (f, want)) in cases.iter().enumerate() {
        if f.is_finite() {
            assert_eq!(want.parse::<f64>(), Ok(*f), "the literal itself");
        }
        let member = format!("\"_d{i}\":{want}");
        assert!(
            text.contains(&format!("{member},")) || text.contains(&format!("{member}}}")),
            "{f:e} must be written {want}: {text}"
        );
    }
}

/// Graylog trims string values with Java's `String.trim()`, which strips every
/// character up to U+0020, not only white space: a field left empty is
/// dropped, and a message left empty makes Graylog discard the whole record.
#[test]
fn control_characters_are_blank_as_for_graylog() {
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    let mut record = logger.create_log_record();
    record.set_body("\u{1}".into());
    record.add_attribute("k", "\0");
    let exporter = djehouty::GelfExporter::builder()
        .with_endpoint("tcp://127.0.0.1:9")
        .build()
        .expect("build");
    let scope = InstrumentationScope::builder("fuzz").build();
    let mut frame = Vec::new();
    encode(&exporter, &record, &scope, &mut frame);
    frame.pop();
    let object: serde_json::Value = serde_json::from_slice(&frame).expect("a JSON frame");
    for name in ["short_message", "_k"] {
        let text = object[name].as_str().expect("a string");
        assert!(
            !text.trim_matches(|c: char| c <= ' ').is_empty(),
            "{name} is {text:?}, empty once Graylog trims it"
        );
    }
}

/// A type suffix must never turn a key into a reserved name.
#[test]
fn type_suffixes_never_form_reserved_names() {
    let no_long_suffix = TypeSuffixes {
        long: String::new(),
        ..TypeSuffixes::default()
    };
    let cases = [
        // An empty suffix removes the `_` that kept the name apart: `id` →
        // `id_` → `id`, sent as GELF `_id`; `host` gives LTSV two `host` labels.
        (no_long_suffix.clone(), "id"),
        (no_long_suffix, "host"),
        // A suffix completes a reserved name: `i` + `d`.
        (
            TypeSuffixes {
                long: "d".into(),
                ..TypeSuffixes::default()
            },
            "i",
        ),
        // The default suffix after `gl2` gives Graylog's internal prefix.
        (TypeSuffixes::default(), "gl2"),
    ];
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    for (suffixes, key) in cases {
        let options = Options {
            host: None,
            extras: Vec::new(),
            replace_dots: true,
            max_field_bytes: None,
            type_suffixes: Some(suffixes),
            resource: Vec::new(),
            scope_name: "fuzz".into(),
            scope_version: None,
            scope_attributes: Vec::new(),
        };
        let case = Case {
            record: Record {
                body: Some(AnyValue::String("one".into())),
                attributes: vec![(key.into(), AnyValue::Int(1))],
                severity: None,
                severity_text: None,
                timestamp: None,
                target: None,
                event_name: None,
            },
            observed: None,
            trace: None,
        };
        encode_all::<Gelf>(&options, std::slice::from_ref(&case), &logger, check_gelf);
        encode_all::<Ltsv>(&options, std::slice::from_ref(&case), &logger, check_ltsv);
    }
}

/// Static extras are never cut, so the builder refuses those that would
/// leave a record less than half a frame (without showing their values),
/// and a frame beside the largest extras it accepts still fits the limit,
/// whatever the record.
#[test]
fn extras_larger_than_half_a_frame_are_refused_and_others_fit() {
    let with_token = |len: usize| {
        djehouty::GelfExporter::builder()
            .with_endpoint("tcp://127.0.0.1:9")
            .with_max_frame_size(SMALL_FRAME)
            .with_extra("token", "t".repeat(len))
            .build()
    };
    // One byte past half a frame (`,"_token":"…"` takes 12 bytes beside
    // the value), and a whole frame (which no field may be either).
    for (len, advice) in [
        (SMALL_FRAME / 2 - 11, "with_max_frame_size"),
        (2 * SMALL_FRAME, "with_max_field_size"),
    ] {
        let error = with_token(len).expect_err("extras over half a frame");
        assert!(
            matches!(error, djehouty::Error::InvalidConfig(_)),
            "{error}"
        );
        let text = error.to_string();
        assert!(
            text.contains("static fields") && text.contains(advice),
            "{text}"
        );
        assert!(!text.contains("tttt"), "the value is shown: {text}");
    }
    // Longer than a field may be: refused rather than cut.
    let error = djehouty::GelfExporter::builder()
        .with_endpoint("tcp://127.0.0.1:9")
        .with_max_field_size(100)
        .with_extra("token", "t".repeat(101))
        .build()
        .expect_err("a static field over the field limit");
    let text = error.to_string();
    assert!(
        text.contains("\"token\"") && text.contains("with_max_field_size"),
        "{text}"
    );
    assert!(!text.contains("tttt"), "the value is shown: {text}");
    // The smallest frame with the longest host name: what the extras may
    // take leaves room for the rest of a record.
    let small = |token: usize| {
        djehouty::GelfExporter::builder()
            .with_endpoint("tcp://127.0.0.1:9")
            .with_max_frame_size(1024)
            .with_host("h".repeat(255))
            .with_extra("token", "t".repeat(token))
            .build()
    };
    let exporter = small(245).expect("extras that leave room");
    let provider = SdkLoggerProvider::builder().build();
    let mut record = provider.logger("fuzz").create_log_record();
    record.set_body("x\n".repeat(4096).into());
    let mut frame = Vec::new();
    let scope = InstrumentationScope::builder("fuzz").build();
    encode(&exporter, &record, &scope, &mut frame);
    assert!(frame.len() <= 1024, "a {}-byte frame", frame.len());
    small(246).expect_err("extras that leave a record too little room");
    // The largest accepted: `"_token":"…"` and a comma beside the value.
    let exporter = with_token(SMALL_FRAME / 2 - 12).expect("extras of half a frame");
    let provider = SdkLoggerProvider::builder().build();
    let logger = provider.logger("fuzz");
    let scope = InstrumentationScope::builder("fuzz").build();
    for body in [
        "one".to_string(),
        "\u{1}".repeat(3 * SMALL_FRAME),
        "x\n".repeat(SMALL_FRAME),
    ] {
        let mut record = logger.create_log_record();
        record.set_body(body.into());
        record.add_attribute("detail", "y".repeat(SMALL_FRAME));
        let mut frame = Vec::new();
        encode(&exporter, &record, &scope, &mut frame);
        assert!(
            frame.len() <= SMALL_FRAME,
            "a {}-byte frame over the {SMALL_FRAME}-byte limit",
            frame.len()
        );
        let text = std::str::from_utf8(&frame[..frame.len() - 1]).expect("utf-8");
        let json: serde_json::Value = serde_json::from_str(text).expect("one JSON object");
        assert_eq!(
            json["_token"].as_str().map(str::len),
            Some(SMALL_FRAME / 2 - 12)
        );
    }
}
