//! Property tests: any log record, however odd its keys, values, body, severity
//! or time, goes through the real exporter and reaches the in-process receiver
//! as exactly one frame that the strict GELF / LTSV checkers accept whole, with
//! no attribute silently lost.

use djehouty_testkit as support;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use djehouty::{GelfExporter, LtsvExporter};
use opentelemetry::logs::{AnyValue, LoggerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::Resource;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use support::generators::*;
use support::oracles::*;
use support::{assert_graylog_accepts, assert_ltsv_line_ok, show_bytes, Framing, Receiver};

const WAIT: Duration = Duration::from_secs(10);

/// The exporter's default cap on one field's text.
const FIELD_CAP: usize = 32_000;
/// Nesting depth of maps the exporter flattens; deeper maps are sent as JSON.
const FLATTEN_DEPTH: usize = 8;
const MARKER: &str = " [truncated]";
/// The exporter's default frame limit.
const DEFAULT_FRAME: usize = 2 * 1024 * 1024;
const SMALL_FRAME: usize = 4096;

// ---------------------------------------------------------------------------
// What the mapping rules promise
// ---------------------------------------------------------------------------

/// The longest key sent whole, in bytes (docs/mapping.md, "Keys").
const MAX_KEY: usize = 255;

/// A field name as the exporter writes it (dots replaced), without any prefix:
/// [`name_bytes`], then moved out of the reserved names; a name that a mark
/// takes past [`MAX_KEY`] is cut as a longer key is.
fn normalized(raw: &str) -> String {
    let mut key = name_bytes(raw);
    protect_reserved(&mut key);
    if key.len() > MAX_KEY {
        key = cut_key(raw);
        protect_reserved(&mut key);
    }
    key
}

/// A reserved name gets a trailing `_`, a `gl2_` one a leading `_`.
fn protect_reserved(key: &mut String) {
    if RESERVED.contains(&key.as_str()) {
        key.push('_');
    } else if key.starts_with("gl2_") {
        key.insert(0, '_');
    }
}

/// What a field's value must be.
#[derive(Debug)]
enum Expected {
    Int(i64),
    Float(f64),
    /// A text, before blank quoting and truncation.
    Text(String),
    /// The JSON text of a list or an unflattened map.
    Json(Value),
}

fn expected_scalar(value: &AnyValue) -> Expected {
    match value {
        AnyValue::Int(i) => Expected::Int(*i),
        AnyValue::Double(f) if f.is_finite() => Expected::Float(*f),
        AnyValue::Double(f) => Expected::Text(non_finite_text(*f).to_string()),
        AnyValue::String(s) => Expected::Text(s.as_str().to_string()),
        AnyValue::Boolean(b) => Expected::Text(b.to_string()),
        AnyValue::Bytes(b) => Expected::Text(base64_text(b)),
        other => Expected::Json(to_json(other)),
    }
}

/// A key's characters as a name may hold them (dots replaced), an empty key
/// as `empty_key`, and a key longer than [`MAX_KEY`] as its first 245 bytes
/// (whole characters), then `_` and the CRC-32 of the whole key in 8 hex
/// digits. A key with non-ASCII characters gets the same mark right after
/// the last of them, whatever its length.
fn name_bytes(raw: &str) -> String {
    if raw.len() > MAX_KEY {
        return cut_key(raw);
    }
    if raw.is_empty() {
        return "empty_key".to_string();
    }
    let mut key = replaced(raw);
    if let Some((at, c)) = raw.char_indices().rfind(|(_, c)| !c.is_ascii()) {
        // Each character before it became one byte.
        let mark_at = raw[..at + c.len_utf8()].chars().count();
        let mark = format!("_{:08x}", crc32fast::hash(raw.as_bytes()));
        key.insert_str(mark_at, &mark);
    }
    key
}

/// Every character a name may not hold as `_`.
fn replaced(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A key cut: its first 245 bytes (whole characters), [`replaced`], then
/// `_` and the CRC-32 of the whole key in 8 hex digits.
fn cut_key(raw: &str) -> String {
    let mut end = MAX_KEY - 10;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}_{:08x}",
        replaced(&raw[..end]),
        crc32fast::hash(raw.as_bytes())
    )
}

/// A map's key as a part of a flattened field's path: an empty one as
/// `empty_key`, a long one cut as a field name is (not marked: the whole
/// name is, once).
fn path_segment(key: &str) -> String {
    match key.len() {
        0 => "empty_key".to_string(),
        len if len > MAX_KEY => name_bytes(key),
        _ => key.to_string(),
    }
}

/// The fields one attribute becomes: one per leaf of a map, named by the
/// keys of its path joined with `.` and normalized as a whole; one for
/// anything else.
fn attribute_fields(path: &str, value: &AnyValue, depth: usize, out: &mut Vec<(String, Expected)>) {
    match value {
        AnyValue::Map(map) if !map.is_empty() && depth < FLATTEN_DEPTH => {
            for (sub, inner) in map.iter() {
                let nested = format!("{path}.{}", path_segment(sub.as_str()));
                attribute_fields(&nested, inner, depth + 1, out);
            }
        }
        other => out.push((normalized(path), expected_scalar(other))),
    }
}

/// The field names the record's attributes must show up under, and for the
/// names exactly one leaf maps to, the value it must carry.
fn expected_fields(record: &Record) -> (BTreeSet<String>, Vec<(String, Expected)>) {
    let mut names = BTreeSet::new();
    let mut sources: HashMap<String, usize> = HashMap::new();
    let mut all = Vec::new();
    for (key, value) in &record.attributes {
        let mut fields = Vec::new();
        attribute_fields(&path_segment(key), value, 0, &mut fields);
        for (name, expected) in fields {
            let stacktrace = key == "exception.stacktrace";
            // A stack trace may go to full_message instead: never a sure source.
            *sources.entry(name.clone()).or_default() += if stacktrace { 2 } else { 1 };
            if !stacktrace {
                names.insert(name.clone());
                all.push((name, expected));
            }
        }
    }
    let unique = all
        .into_iter()
        .filter(|(name, _)| sources[name] == 1)
        .collect();
    (names, unique)
}

/// A value as received: a JSON value (GELF) or a text (LTSV).
enum Got<'a> {
    Json(&'a Value),
    Text(&'a str),
}

/// Checks that a text value is the expected one, quoted if blank, cut and
/// marked if over the field cap.
fn check_text(name: &str, got: &str, want: &str) {
    if blank(want) {
        // Quoted so Graylog keeps it, then capped like any other value.
        let quoted = format!("\"{want}\"");
        if quoted.len() <= FIELD_CAP {
            assert_eq!(got, quoted, "blank {name:?} must be sent quoted");
        } else {
            assert!(
                got.len() <= FIELD_CAP
                    && got.ends_with(MARKER)
                    && quoted.starts_with(&got[..got.len() - MARKER.len()]),
                "long blank {name:?} must be quoted, cut and marked, got {}",
                brief(got)
            );
        }
    } else if want.len() > FIELD_CAP {
        assert!(
            got.len() <= FIELD_CAP && got.ends_with(MARKER),
            "{name:?} ({} bytes) must be cut to {FIELD_CAP} bytes and marked, got {}",
            want.len(),
            brief(got)
        );
        let kept = &got[..got.len() - MARKER.len()];
        assert!(
            want.starts_with(kept),
            "{name:?}: the cut value {} is not a head of the original",
            brief(got)
        );
    } else {
        assert!(
            got == want,
            "{name:?}: sent {}, expected {}",
            brief(got),
            brief(want)
        );
    }
}

fn check_value(name: &str, got: Got<'_>, want: &Expected) {
    let text = match got {
        Got::Json(Value::String(s)) => Some(s.as_str()),
        Got::Text(s) => Some(s),
        Got::Json(_) => None,
    };
    match (want, got) {
        (Expected::Int(i), Got::Json(v)) => {
            assert_eq!(v.as_i64(), Some(*i), "{name:?}: sent {v}, expected {i}")
        }
        (Expected::Int(i), Got::Text(t)) => {
            assert_eq!(t, i.to_string(), "{name:?}: sent {t:?}, expected {i}")
        }
        (Expected::Float(f), Got::Json(v)) => assert!(
            v.is_number() && v.as_f64().is_some_and(|g| close(g, *f)),
            "{name:?}: sent {v}, expected {f:e}"
        ),
        (Expected::Float(f), Got::Text(t)) => assert!(
            t.parse::<f64>().is_ok_and(|g| close(g, *f)),
            "{name:?}: sent {t:?}, expected {f:e}"
        ),
        (Expected::Text(want), _) => {
            let got = text.unwrap_or_else(|| panic!("{name:?}: expected a string"));
            check_text(name, got, want);
        }
        (Expected::Json(want), _) => {
            let got = text.unwrap_or_else(|| panic!("{name:?}: expected JSON text"));
            let want_text = want.to_string();
            if want_text.len() > FIELD_CAP {
                assert!(
                    got.len() <= FIELD_CAP && got.ends_with(MARKER),
                    "{name:?}: long JSON must be cut and marked, got {}",
                    brief(got)
                );
            } else {
                let parsed: Value = serde_json::from_str(got)
                    .unwrap_or_else(|e| panic!("{name:?}: {} is not JSON text: {e}", brief(got)));
                assert!(
                    json_close(&parsed, want),
                    "{name:?}: sent {}, expected {}",
                    brief(got),
                    brief(&want_text)
                );
            }
        }
    }
}

/// The body as the message text, for the body types whose rendering is plain.
fn plain_body(body: &AnyValue) -> Option<String> {
    match body {
        AnyValue::String(s) => Some(s.as_str().to_string()),
        AnyValue::Int(i) => Some(i.to_string()),
        AnyValue::Boolean(b) => Some(b.to_string()),
        AnyValue::Bytes(b) => Some(base64_text(b)),
        _ => None,
    }
}

/// Checks the messages: a one-line body is the short message as it is; a
/// multi-line body is the full message (possibly followed by a stack trace)
/// and its first non-blank line the short message.
fn check_messages(record: &Record, short: &str, full: Option<&str>) {
    let Some(body) = record
        .body
        .as_ref()
        .and_then(plain_body)
        .filter(|b| !blank(b))
    else {
        return;
    };
    if body.contains('\n') {
        let full = full.unwrap_or_else(|| panic!("multi-line body without full_message"));
        assert!(
            full.starts_with(&body),
            "full_message {} does not start with the body {}",
            brief(full),
            brief(&body)
        );
        let first = body.lines().find(|l| !blank(l)).unwrap_or("");
        assert_eq!(
            short, first,
            "short_message must be the first non-blank line"
        );
    } else {
        assert!(
            short == body,
            "short_message {} is not the body {}",
            brief(short),
            brief(&body)
        );
    }
}

// ---------------------------------------------------------------------------
// The pipeline: SDK provider, exporter, receiver
// ---------------------------------------------------------------------------

/// Counts the exports and keeps the last error (the simple processor only
/// logs it).
#[derive(Debug, Default)]
struct Exports {
    calls: AtomicUsize,
    error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Watched<E> {
    inner: E,
    exports: Arc<Exports>,
}

impl<E: LogExporter> LogExporter for Watched<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.exports.calls.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = &result {
            *self.exports.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

struct Pipeline {
    receiver: Receiver,
    provider: SdkLoggerProvider,
    logger: SdkLogger,
    exports: Arc<Exports>,
    frames: usize,
    /// Set while a case runs: a case that did not finish leaves it set, and
    /// the next case starts on a fresh pipeline.
    dirty: bool,
}

impl Pipeline {
    fn start<E: LogExporter + 'static>(framing: Framing, make: &dyn Fn(String) -> E) -> Pipeline {
        let receiver = Receiver::tcp(framing);
        let exports = Arc::new(Exports::default());
        let exporter = Watched {
            inner: make(format!("tcp://127.0.0.1:{}", receiver.port())),
            exports: Arc::clone(&exports),
        };
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        let logger = provider.logger("p");
        Pipeline {
            receiver,
            provider,
            logger,
            exports,
            frames: 0,
            dirty: false,
        }
    }

    /// Emits one record and returns the one frame it became.
    fn send(&mut self, record: &Record) -> Vec<u8> {
        let calls = self.exports.calls.load(Ordering::SeqCst);
        emit(&self.logger, record);
        assert_eq!(
            self.exports.calls.load(Ordering::SeqCst),
            calls + 1,
            "the record was not exported"
        );
        if let Some(error) = self
            .exports
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            panic!("the export failed: {error}");
        }
        let mut frames = self.receiver.wait_frames(self.frames + 1, WAIT);
        assert_eq!(
            frames.len(),
            self.frames + 1,
            "one record must arrive as exactly one frame; the last ones are {:?}",
            frames
                .iter()
                .skip(self.frames)
                .map(|f| show_bytes(f))
                .collect::<Vec<_>>()
        );
        self.frames += 1;
        frames.pop().expect("one frame")
    }

    /// Shuts the provider down and checks that nothing else arrived.
    fn finish(self) {
        let Pipeline {
            receiver,
            provider,
            frames,
            ..
        } = self;
        provider.shutdown().expect("shut the provider down");
        assert_eq!(
            receiver.connections(),
            1,
            "the records must share one connection"
        );
        receiver.wait_closed(1, WAIT);
        receiver.assert_no_partial();
        assert_eq!(
            receiver.frames().len(),
            frames,
            "frames beyond one per record"
        );
        assert_eq!(receiver.errors(), Vec::<String>::new());
    }
}

/// Runs `check` on the frame of each generated record, all sent through one
/// pipeline (rebuilt only after a failed case).
fn run_property<S, E>(
    cases: u32,
    strategy: S,
    framing: Framing,
    make: impl Fn(String) -> E,
    check: impl Fn(&Record, &[u8]),
) where
    S: Strategy<Value = Record>,
    E: LogExporter + 'static,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let pipeline: RefCell<Option<Pipeline>> = RefCell::new(None);
    let result = runner.run(&strategy, |record| {
        let mut slot = pipeline.borrow_mut();
        if slot.as_ref().is_none_or(|p| p.dirty) {
            *slot = None;
            *slot = Some(Pipeline::start(framing, &make));
        }
        let p = slot.as_mut().expect("a pipeline");
        p.dirty = true;
        let frame = p.send(&record);
        check(&record, &frame);
        p.dirty = false;
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    if let Some(p) = pipeline.into_inner() {
        p.finish();
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// The syslog level a record must arrive with, as `docs/mapping.md` gives
/// it, when its severity says it: by the severity number (1–8 debug, 9
/// info, 10–12 notice, 13–16 warning, 17 error, 18 critical, 19–20 alert,
/// 21–24 emergency), or 6 (info) with neither a number nor a text. (From a
/// text alone, unchecked here.)
fn expected_level(record: &Record) -> Option<u64> {
    match (record.severity, &record.severity_text) {
        (Some(severity), _) => Some(match severity as i32 {
            1..=8 => 7,
            9 => 6,
            10..=12 => 5,
            13..=16 => 4,
            17 => 3,
            18 => 2,
            19..=20 => 1,
            _ => 0,
        }),
        (None, None) => Some(6),
        (None, Some(_)) => None,
    }
}

fn check_gelf(record: &Record, frame: &[u8]) {
    assert!(!frame.contains(&0), "NUL byte inside a GELF frame");
    let object = assert_graylog_accepts(frame);
    let show = || show_bytes(frame);

    let level = object["level"].as_u64().expect("numeric level");
    assert!(level <= 7, "level {level}");
    if let Some(expected) = expected_level(record) {
        assert_eq!(level, expected, "level of {:?}", record.severity);
    }
    let short = object["short_message"].as_str().expect("string message");
    assert!(!blank(short), "blank short_message");

    if let Some(time) = record.timestamp {
        // Times GELF cannot carry (not after the epoch by 1 µs, or past the
        // year 9999) fall back to the observed time.
        let sendable = time
            .duration_since(UNIX_EPOCH)
            .ok()
            .filter(|d| d.as_micros() > 0 && d.as_secs() < 253_402_300_800);
        if let Some(since) = sendable {
            let want = since.as_secs() as f64 + f64::from(since.subsec_micros()) / 1e6;
            let got = object["timestamp"].as_f64().expect("numeric timestamp");
            assert!(
                (got - want).abs() <= 2e-6 + want * 1e-15,
                "timestamp {got} for a record of {want}"
            );
        }
    }

    let (names, values) = expected_fields(record);
    let additional = object.keys().filter(|k| k.starts_with('_')).count();
    assert!(
        additional >= names.len(),
        "{additional} additional fields for {} distinct attribute names",
        names.len()
    );
    for name in &names {
        assert!(
            object.contains_key(&format!("_{name}")),
            "attribute field \"_{name}\" is missing from {}",
            show()
        );
    }

    // Near the frame limit the exporter may have cut values to fit.
    if frame.len() + 128 * 1024 < DEFAULT_FRAME {
        for (name, want) in &values {
            let key = format!("_{name}");
            check_value(&key, Got::Json(&object[&key]), want);
        }
        let full = object.get("full_message").and_then(Value::as_str);
        check_messages(record, short, full);
    }
}

fn check_ltsv(record: &Record, line: &[u8]) {
    let fields = assert_ltsv_line_ok(line);
    let labels: HashMap<&str, &str> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let level: u64 = labels["level"].parse().expect("numeric level");
    assert!(level <= 7, "level {level}");
    if let Some(expected) = expected_level(record) {
        assert_eq!(level, expected, "level of {:?}", record.severity);
    }
    assert!(!blank(labels["message"]), "blank message");
    assert!(!blank(labels["host"]), "blank host");

    let (names, values) = expected_fields(record);
    for name in &names {
        assert!(
            labels.contains_key(name.as_str()),
            "attribute label {name:?} is missing from {}",
            show_bytes(line)
        );
    }
    if line.len() + 128 * 1024 < DEFAULT_FRAME {
        for (name, want) in &values {
            check_value(name, Got::Text(labels[name.as_str()]), want);
        }
        check_messages(
            record,
            labels["message"],
            labels.get("full_message").copied(),
        );
    }
}

#[test]
fn any_record_becomes_one_gelf_frame_graylog_accepts_whole() {
    run_property(
        256,
        record(),
        Framing::Nul,
        |endpoint| {
            GelfExporter::builder()
                .with_endpoint(endpoint)
                .build()
                .expect("build the exporter")
        },
        check_gelf,
    );
}

#[test]
fn oversized_records_fit_a_small_gelf_frame_and_stay_valid() {
    run_property(
        32,
        oversized_record(),
        Framing::Nul,
        |endpoint| {
            GelfExporter::builder()
                .with_endpoint(endpoint)
                .with_max_frame_size(SMALL_FRAME)
                .build()
                .expect("build the exporter")
        },
        |_, frame| {
            assert!(
                frame.len() < SMALL_FRAME,
                "{} bytes and the delimiter exceed the {SMALL_FRAME}-byte frame limit",
                frame.len()
            );
            let object = assert_graylog_accepts(frame);
            assert!(object["level"].as_u64().is_some_and(|l| l <= 7));
        },
    );
}

#[test]
fn any_record_becomes_one_valid_ltsv_line() {
    run_property(
        128,
        record(),
        Framing::Newline,
        |endpoint| {
            LtsvExporter::builder()
                .with_endpoint(endpoint)
                .build()
                .expect("build the exporter")
        },
        check_ltsv,
    );
}

#[test]
fn any_record_becomes_one_valid_nul_framed_ltsv_record() {
    run_property(
        128,
        record(),
        Framing::Nul,
        |endpoint| {
            LtsvExporter::builder()
                .with_endpoint(endpoint)
                .with_framing(djehouty::Framing::Nul)
                .build()
                .expect("build the exporter")
        },
        check_ltsv,
    );
}
