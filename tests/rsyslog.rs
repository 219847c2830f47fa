//! Against a real, independent receiver: a private rsyslogd with GELF and LTSV
//! inputs over plain TCP, TLS 1.2 and TLS 1.3. Records go through `tracing` and
//! `log`, with resource attributes and trace context; every field is checked on
//! the exact received bytes and on rsyslog's own JSON parse, and none may be lost.

use djehouty_testkit as support;

use std::collections::BTreeSet;
use std::time::Duration;

use djehouty::{Framing, GelfExporter, LtsvExporter};
use serde_json::{Map, Value};
use support::pipeline::*;
use support::{assert_graylog_accepts, assert_ltsv_line_ok, Input, Rsyslog, TestPki};

const WAIT: Duration = Duration::from_secs(20);
const N: usize = 300;

/// Sends N numbered `tracing` records, one inside a span, and two `log` records.
/// Returns the span's trace id.
fn send_records(provider: &opentelemetry_sdk::logs::SdkLoggerProvider) -> String {
    with_tracing(provider, || {
        for seq in 0..N {
            tracing::info!(
                seq,
                user = "alice",
                ratio = 0.5,
                ok = true,
                tab_and_newline = "a\tb\nc",
                "numbered record {seq}"
            );
        }
    });
    let ((), trace_id, _) = in_span(|| {
        with_tracing(provider, || {
            tracing::error!(name: "payment.failed", target: "shop::pay", code = 502, "in span");
        })
    });
    log_through_bridge(
        provider,
        log::Level::Warn,
        "app::disk",
        &[("mount", log::kv::Value::from("/var"))],
        format_args!("from log"),
    );
    trace_id
}

fn check_gelf(rsyslog: &Rsyslog, input: Input, trace_id: &str) {
    let received = rsyslog.wait_for(input, N + 2, WAIT);
    assert_eq!(
        received.len(),
        N + 2,
        "{input:?}: exactly every record once"
    );
    let frames: Vec<Map<String, Value>> = received
        .iter()
        .map(|r| {
            let frame = assert_graylog_accepts(&r.raw_bytes);
            // rsyslog's own parser agrees on every key and string value.
            let parsed = r.json.as_ref().expect("rsyslog parsed the frame as JSON");
            let parsed = parsed.as_object().expect("a JSON object");
            assert_eq!(
                parsed.keys().collect::<BTreeSet<_>>(),
                frame.keys().collect::<BTreeSet<_>>(),
                "{input:?}"
            );
            for (k, v) in &frame {
                if v.is_string() {
                    assert_eq!(parsed.get(k), Some(v), "{input:?} {k}");
                }
            }
            frame
        })
        .collect();
    let seqs: BTreeSet<i64> = frames
        .iter()
        .filter_map(|f| f.get("_seq")?.as_i64())
        .collect();
    assert_eq!(seqs, (0..N as i64).collect(), "{input:?}: lost records");

    let f = by_message(&frames, "numbered record 7");
    assert_resource_fields(f);
    assert_field(f, "version", "1.1".into());
    assert_field(f, "level", 6.into());
    assert_field(f, "_user", "alice".into());
    assert_field(f, "_ratio", 0.5.into());
    assert_field(f, "_ok", "true".into());
    assert_field(f, "_tab_and_newline", "a\tb\nc".into());
    assert!(
        !f.contains_key("_severity_text"),
        "INFO names level 6: {f:?}"
    );
    assert_field(f, "_target", "rsyslog".into());
    assert_field(f, "_X-OVH-TOKEN", "routing-token".into());
    assert!(f["timestamp"].as_f64().unwrap() > now_secs() - 120.0);

    let f = by_message(&frames, "in span");
    assert_field(f, "level", 3.into());
    assert_field(f, "_trace_id", trace_id.into());
    assert_field(f, "_trace_flags", 1.into());
    assert_field(f, "_event_name", "payment.failed".into());
    assert_field(f, "_target", "shop::pay".into());
    assert_field(f, "_code", 502.into());

    let f = by_message(&frames, "from log");
    assert_field(f, "level", 4.into());
    assert_field(f, "_mount", "/var".into());
    assert_field(f, "_target", "app::disk".into());
}

#[test]
fn gelf_over_tcp_tls12_and_tls13() {
    let pki = TestPki::generate();
    let rsyslog = Rsyslog::start(&pki);
    for (input, scheme) in [
        (Input::GelfTcp, "tcp"),
        (Input::GelfTls12, "tls"),
        (Input::GelfTls13, "tls"),
    ] {
        let builder = GelfExporter::builder()
            .with_endpoint(format!("{scheme}://localhost:{}", rsyslog.port(input)))
            .with_ca_file(&pki.ca_pem)
            .with_extra("X-OVH-TOKEN", "routing-token");
        let provider = batch_provider(builder);
        let trace_id = send_records(&provider);
        provider.shutdown().expect("shutdown");
        check_gelf(&rsyslog, input, &trace_id);
    }
}

fn check_ltsv(rsyslog: &Rsyslog, input: Input, trace_id: &str) {
    let received = rsyslog.wait_for(input, N + 2, WAIT);
    assert_eq!(
        received.len(),
        N + 2,
        "{input:?}: exactly every record once"
    );
    let lines: Vec<Vec<(String, String)>> = received
        .iter()
        .map(|r| assert_ltsv_line_ok(&r.raw_bytes))
        .collect();
    let get = |line: &[(String, String)], label: &str| {
        line.iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v.clone())
    };
    let seqs: BTreeSet<i64> = lines
        .iter()
        .filter_map(|l| get(l, "seq")?.parse().ok())
        .collect();
    assert_eq!(seqs, (0..N as i64).collect(), "{input:?}: lost records");

    let line = lines
        .iter()
        .find(|l| get(l, "message").as_deref() == Some("numbered record 7"))
        .expect("record 7");
    for (label, value) in [
        ("host", "test-host"),
        ("level", "6"),
        ("user", "alice"),
        ("ratio", "0.5"),
        ("ok", "true"),
        ("tab_and_newline", "a\tb\nc"),
        ("target", "rsyslog"),
        ("service_name", "djehouty-tests"),
        ("service_instance_id", "7"),
        ("X-OVH-TOKEN", "routing-token"),
    ] {
        assert_eq!(
            get(line, label).as_deref(),
            Some(value),
            "{input:?} {label}"
        );
    }
    assert_eq!(get(line, "severity_text"), None, "INFO names level 6");
    let time = get(line, "time").unwrap();
    assert!(
        time.len() == "2026-01-01T00:00:00.000000Z".len() && time.ends_with('Z'),
        "{time}"
    );
    let line = lines
        .iter()
        .find(|l| get(l, "message").as_deref() == Some("in span"))
        .expect("span record");
    assert_eq!(get(line, "trace_id").as_deref(), Some(trace_id));
    assert_eq!(get(line, "level").as_deref(), Some("3"));
}

#[test]
fn ltsv_line_and_nul_framing_over_tcp_and_tls() {
    let pki = TestPki::generate();
    let rsyslog = Rsyslog::start(&pki);
    for (input, scheme, framing) in [
        (Input::LtsvTcpLine, "tcp", Framing::Newline),
        (Input::LtsvTcpNul, "tcp", Framing::Nul),
        (Input::LtsvTls12Line, "tls", Framing::Newline),
        (Input::LtsvTls13Nul, "tls", Framing::Nul),
    ] {
        let builder = LtsvExporter::builder()
            .with_endpoint(format!("{scheme}://127.0.0.1:{}", rsyslog.port(input)))
            .with_ca_file(&pki.ca_pem)
            .with_framing(framing)
            .with_extra("X-OVH-TOKEN", "routing-token");
        let provider = batch_provider(builder);
        let trace_id = send_records(&provider);
        provider.shutdown().expect("shutdown");
        check_ltsv(&rsyslog, input, &trace_id);
    }
}
