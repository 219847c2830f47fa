//! The OVHcloud Logs Data Platform profile: LDP's ports, the token on every
//! record under the name each format needs, typed field names, no `source`.

use djehouty_testkit as support;

use std::time::Duration;

use djehouty::{Framing as ExporterFraming, GelfExporter, LtsvExporter, TypeSuffixes};
use serde_json::Value;
use support::pipeline::*;
use support::{assert_graylog_accepts, assert_ltsv_line_ok, Framing, Receiver};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "0bd5e9a6-1111-2222-3333-444455556666";

#[test]
fn ports_follow_the_format_and_framing() {
    let gelf = GelfExporter::builder()
        .for_logs_data_platform("gra1.logs.ovh.com", TOKEN)
        .build()
        .expect("build");
    assert_eq!(gelf.endpoint().to_string(), "tls://gra1.logs.ovh.com:12202");
    let ltsv = LtsvExporter::builder()
        .for_logs_data_platform("gra1.logs.ovh.com", TOKEN)
        .build()
        .expect("build");
    assert_eq!(ltsv.endpoint().to_string(), "tls://gra1.logs.ovh.com:12201");
    let ltsv_nul = LtsvExporter::builder()
        .for_logs_data_platform("gra1.logs.ovh.com", TOKEN)
        .with_framing(ExporterFraming::Nul)
        .build()
        .expect("build");
    assert_eq!(
        ltsv_nul.endpoint().to_string(),
        "tls://gra1.logs.ovh.com:12200"
    );
    // A whole endpoint is used as given; `with_endpoint` wins over the profile.
    let custom = GelfExporter::builder()
        .for_logs_data_platform("tls://bhs1.logs.ovh.com:12202", TOKEN)
        .build()
        .expect("build");
    assert_eq!(
        custom.endpoint().to_string(),
        "tls://bhs1.logs.ovh.com:12202"
    );
    let overridden = GelfExporter::builder()
        .for_logs_data_platform("gra1.logs.ovh.com", TOKEN)
        .with_endpoint("tcp://127.0.0.1:2202")
        .build()
        .expect("build");
    assert_eq!(overridden.endpoint().to_string(), "tcp://127.0.0.1:2202");
    // The token never shows.
    for debug in [format!("{gelf:?}"), format!("{ltsv:?}")] {
        assert!(!debug.contains(TOKEN), "{debug}");
    }
    assert!(!format!(
        "{:?}",
        GelfExporter::builder().for_logs_data_platform("c", TOKEN)
    )
    .contains(TOKEN));
}

/// Swapped arguments (the token where the cluster goes) are refused, the
/// token shown nowhere: as the endpoint's host it would be in every error
/// and warning. A trailing `/` or `:` after the cluster is dropped.
#[test]
fn swapped_arguments_are_refused_and_a_trailing_slash_or_colon_dropped() {
    let error = GelfExporter::builder()
        .for_logs_data_platform(TOKEN, "gra1.logs.ovh.com")
        .build()
        .expect_err("a token is no cluster")
        .to_string();
    assert!(error.contains("are the arguments swapped?"), "{error}");
    assert!(
        !error.contains(TOKEN) && !error.contains("0bd5e9a6"),
        "{error}"
    );
    for cluster in [
        "gra1.logs.ovh.com/",
        "gra1.logs.ovh.com:",
        " gra1.logs.ovh.com/ ",
    ] {
        let exporter = GelfExporter::builder()
            .for_logs_data_platform(cluster, TOKEN)
            .build()
            .unwrap_or_else(|e| panic!("{cluster:?}: {e}"));
        assert_eq!(
            exporter.endpoint().to_string(),
            "tls://gra1.logs.ovh.com:12202"
        );
    }
}

fn log_typed_record() {
    tracing::info!(
        user = "alice",
        attempt = 2_i64,
        latency_ms = 12.5_f64,
        cached = false,
        bytes_long = 7_i64,
        source = "forged",
        "X-OVH-TOKEN" = "forged token",
        "typed record"
    );
}

#[test]
fn gelf_frames_carry_the_token_and_typed_names() {
    let receiver = Receiver::tcp(Framing::Nul);
    let provider = batch_provider(
        GelfExporter::builder()
            .for_logs_data_platform(format!("tcp://127.0.0.1:{}", receiver.port()), TOKEN),
    );
    with_tracing(&provider, log_typed_record);
    provider.shutdown().expect("shutdown");
    let frames = receiver.wait_frames(1, WAIT);
    let f = assert_graylog_accepts(&frames[0]);
    assert_field(&f, "_X-OVH-TOKEN", TOKEN.into());
    assert_field(&f, "_user", "alice".into());
    assert_field(&f, "_attempt_long", 2.into());
    assert_field(&f, "_latency_ms_double", 12.5.into());
    assert_field(&f, "_cached_bool", "false".into());
    assert_field(&f, "_bytes_long", 7.into());
    // Resource attributes are typed too; dots become underscores.
    assert_field(&f, "_service_instance_id_long", 7.into());
    assert_field(&f, "_service_name", "djehouty-tests".into());
    assert!(
        !f.contains_key("source") && !f.contains_key("_source"),
        "{f:?}"
    );
    for (key, value) in &f {
        if key.ends_with("_long") {
            assert!(value.is_i64(), "{key}: {value}");
        }
        if key.ends_with("_double") {
            assert!(value.is_f64(), "{key}: {value}");
        }
        if key.ends_with("_bool") {
            assert!(matches!(value.as_str(), Some("true" | "false")), "{key}");
        }
        assert!(!key.contains('.'), "LDP rewrites dots: {key}");
    }
    assert_eq!(
        f.iter().filter(|(_, v)| v.as_str() == Some(TOKEN)).count(),
        1
    );
    // The record's own `X-OVH-TOKEN` cannot override the profile's.
    assert!(
        !f.values().any(|v| v == &Value::from("forged token")),
        "{f:?}"
    );
}

#[test]
fn ltsv_lines_carry_the_token_label_and_typed_labels() {
    let receiver = Receiver::tcp(Framing::Newline);
    let provider = batch_provider(
        LtsvExporter::builder()
            .for_logs_data_platform(format!("tcp://127.0.0.1:{}", receiver.port()), TOKEN)
            .with_type_suffixes(TypeSuffixes {
                long: "_int".into(),
                ..TypeSuffixes::default()
            }),
    );
    with_tracing(&provider, log_typed_record);
    provider.shutdown().expect("shutdown");
    let frames = receiver.wait_frames(1, WAIT);
    let labels = assert_ltsv_line_ok(&frames[0]);
    let get = |label: &str| {
        labels
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("X-OVH-TOKEN"), Some(TOKEN));
    assert_eq!(get("attempt_int"), Some("2"));
    assert_eq!(get("latency_ms_double"), Some("12.5"));
    assert_eq!(get("cached_bool"), Some("false"));
    assert_eq!(get("bytes_long"), Some("7"), "a known suffix is left alone");
    assert_eq!(get("user"), Some("alice"));
    assert_eq!(get("source"), None);
}
