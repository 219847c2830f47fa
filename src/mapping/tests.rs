use std::borrow::Cow;
use std::time::UNIX_EPOCH;

use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::{InstrumentationScope, Key};
use opentelemetry_sdk::logs::SdkLogRecord;
use opentelemetry_sdk::Resource;

use super::keys::{normalize_key, MAX_KEY_BYTES, RESERVED};
use super::values::syslog_level;
use super::*;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::KeyValue;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use std::collections::HashMap;
use std::time::Duration;

fn record() -> SdkLogRecord {
    let provider = SdkLoggerProvider::builder().build();
    provider.logger("test").create_log_record()
}

fn get<'a>(m: &'a MappedRecord<'_>, key: &str) -> Option<&'a FieldValue<'a>> {
    m.fields.iter().find(|f| f.name() == key).map(|f| &f.value)
}

fn s(v: &str) -> FieldValue<'static> {
    FieldValue::Str(Cow::Owned(v.to_string()))
}

/// Only the SDK's own fallback service name is left out by default, not
/// a name the application chose that starts alike.
#[test]
fn only_the_sdks_fallback_service_name_is_left_out() {
    let scope = InstrumentationScope::builder("s").build();
    for (name, sent) in [
        ("unknown_service", false),
        ("unknown_service:billing", false),
        ("unknown_service_gateway", true),
        ("billing", true),
    ] {
        let mut mapper = Mapper::new(&MappingOptions::default());
        mapper.set_resource(&Resource::builder_empty().with_service_name(name).build());
        let rec = record();
        let m = mapper.map(&rec, &scope);
        assert_eq!(
            get(&m, "service_name").is_some(),
            sent,
            "{name}: {:?}",
            m.fields
        );
    }
}

#[test]
fn keys_are_normalized() {
    assert_eq!(normalize_key("service.name", true), "service_name");
    assert_eq!(normalize_key("service.name", false), "service.name");
    // With dots kept, no part of a name is empty: search backends refuse it.
    for (raw, sent) in [
        (".", "_"),
        (".a", "_a"),
        ("a.", "a_"),
        ("a..b", "a._b"),
        ("a...b.", "a.__b_"),
        ("..", "__"),
    ] {
        assert_eq!(normalize_key(raw, false), sent, "{raw}");
        assert_eq!(normalize_key(raw, true), sent.replace('.', "_"), "{raw}");
    }
    assert_eq!(normalize_key("X-OVH-TOKEN", true), "X-OVH-TOKEN");
    assert_eq!(normalize_key("a b/c:d", true), "a_b_c_d");
    assert_eq!(
        normalize_key("café", true),
        format!("caf__{:08x}", crc32fast::hash("café".as_bytes()))
    );
    assert_eq!(normalize_key("", true), "empty_key");
    assert_eq!(normalize_key("id", true), "id_");
    assert_eq!(normalize_key("source", true), "source_");
    assert_eq!(normalize_key("short_message", true), "short_message_");
    assert_eq!(normalize_key("_id", true), "_id_");
    assert_eq!(normalize_key("gl2_source_node", true), "_gl2_source_node");
    assert!(matches!(normalize_key("plain", true), Cow::Borrowed(_)));
}

/// Keys that differ only in non-ASCII characters, which each become `_`,
/// end with their CRC-32 and stay apart: no field replaces another. Within
/// the bound, whatever their length.
#[test]
fn non_ascii_keys_stay_apart() {
    let mapper = Mapper::new(&MappingOptions::default());
    let scope = InstrumentationScope::builder("s").build();
    let mut rec = record();
    rec.add_attribute("名前", "太郎");
    rec.add_attribute("年齢", 30i64);
    rec.add_attribute("__", "plain");
    let m = mapper.map(&rec, &scope);
    let mark = |raw: &str| format!("___{:08x}", crc32fast::hash(raw.as_bytes()));
    assert_eq!(get(&m, &mark("名前")), Some(&s("太郎")));
    assert_eq!(get(&m, &mark("年齢")), Some(&FieldValue::Int(30)));
    assert_eq!(get(&m, "__"), Some(&s("plain")));
    // The mark comes after the last such character: an ASCII ending, a
    // type suffix, stays the ending.
    let hash = |raw: &str| format!("{:08x}", crc32fast::hash(raw.as_bytes()));
    assert_eq!(
        normalize_key("日付_date", true),
        format!("___{}_date", hash("日付_date"))
    );
    assert_eq!(
        normalize_key("a.é.b", true),
        format!("a___{}_b", hash("a.é.b"))
    );
    assert_eq!(
        normalize_key("a.é.b", false),
        format!("a.__{}.b", hash("a.é.b"))
    );
    // Configured suffixes are marked alike, so they stay apart.
    let suffixes = TypeSuffixes {
        long: "_整数".into(),
        double: "_小数".into(),
        ..TypeSuffixes::default()
    }
    .normalized(true);
    assert_eq!(suffixes.long, format!("____{}", hash("_整数")));
    assert_ne!(suffixes.long, suffixes.double);
    let typed = Mapper::new(&MappingOptions {
        type_suffixes: Some(TypeSuffixes::default()),
        ..MappingOptions::default()
    });
    let mut rec = record();
    rec.add_attribute("価格_long", 30i64);
    rec.add_attribute("価格", 31i64);
    let m = typed.map(&rec, &scope);
    let price = |raw: &str, tail: &str| format!("___{}{tail}", hash(raw));
    assert_eq!(
        get(&m, &price("価格_long", "_long")),
        Some(&FieldValue::Int(30))
    );
    assert_eq!(get(&m, &price("価格", "_long")), Some(&FieldValue::Int(31)));
    for len in [MAX_KEY_BYTES - 9, MAX_KEY_BYTES - 1, MAX_KEY_BYTES] {
        let raw = format!("{}é", "k".repeat(len - 2));
        let key = normalize_key(&raw, true);
        assert!(key.len() <= MAX_KEY_BYTES, "{len}: {} bytes", key.len());
        let hash = format!("{:08x}", crc32fast::hash(raw.as_bytes()));
        assert!(key.ends_with(&hash), "{key}");
        assert_eq!(key.matches(&hash).count(), 1, "{key}");
    }
}

/// A key longer than the bound is cut and ends with its whole text's
/// CRC-32: bounded, still normalized, and apart from keys cut alike.
#[test]
fn long_keys_are_cut_and_marked() {
    use super::keys::MAX_KEY_BYTES;
    let at_bound = "k".repeat(MAX_KEY_BYTES);
    assert_eq!(normalize_key(&at_bound, true), at_bound.as_str());
    let long = format!("{}.x", "k".repeat(10_000));
    let other = format!("{}.y", "k".repeat(10_000));
    let (key, other_key) = (normalize_key(&long, true), normalize_key(&other, true));
    assert!(key.len() <= MAX_KEY_BYTES, "{} bytes", key.len());
    let (head, hash) = key.rsplit_once('_').expect("a hash");
    assert_eq!(hash, format!("{:08x}", crc32fast::hash(long.as_bytes())));
    assert!(head.bytes().all(|b| b == b'k'), "{head}");
    assert_ne!(key, other_key);
    assert_eq!(normalize_key(&long, true), key, "the same every time");
    // Cut on a character, normalized, moved out of `gl2_`.
    for raw in [
        "é".repeat(MAX_KEY_BYTES),
        format!("gl2_{}", "a.b".repeat(MAX_KEY_BYTES)),
    ] {
        let key = normalize_key(&raw, true);
        assert!(key.len() <= MAX_KEY_BYTES, "{} bytes", key.len());
        assert!(
            key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{key}"
        );
    }
    assert!(normalize_key(&format!("gl2_{}", "a".repeat(300)), true).starts_with("_gl2_"));
    // A `gl2_` key at the bound is marked within it, and still apart.
    let at_bound = format!("gl2_{}", "a".repeat(MAX_KEY_BYTES - 4));
    let key = normalize_key(&at_bound, true);
    assert!(key.len() <= MAX_KEY_BYTES, "{} bytes", key.len());
    assert!(key.starts_with("_gl2_aaa"), "{key}");
    assert_ne!(key, normalize_key(&format!("{at_bound}b"), true));

    // In a record, beside others, which stay.
    let mapper = Mapper::new(&MappingOptions::default());
    let scope = InstrumentationScope::builder("s").build();
    let mut rec = record();
    rec.add_attribute("k".repeat(10_000_000), 1i64);
    rec.add_attribute("user", "alice");
    let m = mapper.map(&rec, &scope);
    assert_eq!(get(&m, "user"), Some(&s("alice")));
    let cut = m
        .fields
        .iter()
        .find(|f| f.name().starts_with("kkk"))
        .expect("the long key's field");
    assert!(cut.name().len() <= MAX_KEY_BYTES, "{}", cut.name().len());
    assert_eq!(cut.value, FieldValue::Int(1));
}

/// Every severity number, as docs/mapping.md lists them: 1–8 → 7, 9 → 6,
/// 10–12 → 5, 13–16 → 4, 17 → 3, 18 → 2, 19–20 → 1, 21–24 → 0.
#[test]
fn severity_maps_to_syslog() {
    use Severity::*;
    let cases = [
        (Trace, 7),
        (Trace2, 7),
        (Trace3, 7),
        (Trace4, 7),
        (Debug, 7),
        (Debug2, 7),
        (Debug3, 7),
        (Debug4, 7),
        (Info, 6),
        (Info2, 5),
        (Info3, 5),
        (Info4, 5),
        (Warn, 4),
        (Warn2, 4),
        (Warn3, 4),
        (Warn4, 4),
        (Error, 3),
        (Error2, 2),
        (Error3, 1),
        (Error4, 1),
        (Fatal, 0),
        (Fatal2, 0),
        (Fatal3, 0),
        (Fatal4, 0),
    ];
    for (sev, level) in cases {
        assert_eq!(syslog_level(Some(sev), None), level, "{sev:?}");
    }
    assert_eq!(syslog_level(None, Some("WARN")), 4);
    assert_eq!(syslog_level(None, Some("error2")), 3);
    assert_eq!(syslog_level(None, Some("critical")), 2);
    assert_eq!(syslog_level(None, Some("whatever")), 6);
    assert_eq!(syslog_level(None, None), 6);
}

#[test]
fn a_severity_text_is_redundant_only_when_it_names_the_level_sent() {
    use super::values::names_level;
    for (level, text) in [
        (7, "DEBUG"),
        (6, "INFO"),
        (6, "informational"),
        (6, "iNfO"),
        (5, "notice"),
        (4, "WARN"),
        (4, "Warning"),
        (3, "ERROR"),
        (3, "err"),
        (2, "CRITICAL"),
        (1, "alert"),
        (0, "EMERGENCY"),
    ] {
        assert!(names_level(level, text), "{level} {text}");
    }
    for (level, text) in [
        (7, "TRACE"),
        (0, "FATAL"),
        (6, "INFO2"),
        (6, " INFO"),
        (6, "INF0"),
        (6, "INFÖ"),
        (4, "ERROR"),
        (3, "WARN"),
        (6, ""),
    ] {
        assert!(!names_level(level, text), "{level} {text}");
    }
}

/// The same static severity text, in turn at a level it names and at
/// one it does not, and the same for a static event name: each record
/// is judged on its own (the verdicts are kept per text and level).
#[test]
fn a_severity_text_or_event_name_seen_before_is_judged_again_by_its_record() {
    let mapper = Mapper::new(&MappingOptions::default());
    let scope = InstrumentationScope::builder("s").build();
    let mapped = |severity: Severity, event: &'static str| {
        let mut rec = record();
        rec.set_severity_number(severity);
        rec.set_severity_text("WARN");
        rec.set_event_name(event);
        let m = mapper.map(&rec, &scope);
        let text = get(&m, "severity_text").is_some();
        (text, get(&m, "event_name").is_some())
    };
    for _ in 0..2 {
        assert_eq!(mapped(Severity::Warn, "event a.rs:1"), (false, false));
        assert_eq!(mapped(Severity::Error, "db.disk"), (true, true));
        assert_eq!(mapped(Severity::Warn, "event a.rs:1"), (false, false));
        assert_eq!(mapped(Severity::Fatal, "db.disk"), (true, true));
    }
}

#[test]
fn maps_a_full_record() {
    let mut rec = record();
    rec.set_body(AnyValue::from("disk full"));
    rec.set_severity_number(Severity::Warn);
    rec.set_severity_text("WARN");
    rec.set_target("app::db");
    rec.set_event_name("db.disk");
    let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    rec.set_timestamp(t);
    rec.set_trace_context(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        Some(TraceFlags::SAMPLED),
    );
    rec.add_attribute("user", "alice");
    rec.add_attribute("retries", 3);
    rec.add_attribute("ratio", 0.5);
    rec.add_attribute("ok", true);
    rec.add_attribute("nan", f64::NAN);
    rec.add_attribute("id", "abc");
    rec.add_attribute("blob", AnyValue::Bytes(Box::new(vec![0, 1, 255])));
    rec.add_attribute(
        "list",
        AnyValue::ListAny(Box::new(vec![AnyValue::from(1), AnyValue::from("x")])),
    );
    let mut inner = HashMap::new();
    inner.insert(Key::from("method"), AnyValue::from("GET"));
    inner.insert(Key::from("status"), AnyValue::from(200));
    rec.add_attribute("http.request", AnyValue::Map(Box::new(inner)));
    rec.add_attribute("empty", "");
    rec.add_attribute("user", "bob"); // duplicate: last wins
    let scope = InstrumentationScope::builder("my-lib")
        .with_version("1.2.3")
        .with_attributes([KeyValue::new("scope.attr", "s")])
        .build();

    let mut mapper = Mapper::new(&MappingOptions {
        extras: vec![("X-OVH-TOKEN".into(), Value::from("secret"))],
        ..MappingOptions::default()
    });
    mapper.set_resource(
        &Resource::builder_empty()
            .with_service_name("svc")
            .with_attribute(KeyValue::new("host.name", "box-1"))
            .with_attribute(KeyValue::new("user", "resource-loses"))
            .build(),
    );
    let m = mapper.map(&rec, &scope);
    assert_eq!(m.host, "box-1");
    assert_eq!(m.short_message, "disk full");
    assert_eq!(m.full_message, None);
    assert_eq!(m.level, 4);
    assert_eq!(
        m.time,
        EpochMicros {
            secs: 1_700_000_000,
            micros: 123_456
        }
    );
    assert_eq!(get(&m, "user"), Some(&s("bob")));
    assert_eq!(get(&m, "retries"), Some(&FieldValue::Int(3)));
    assert_eq!(get(&m, "ratio"), Some(&FieldValue::Float(0.5)));
    assert_eq!(get(&m, "ok"), Some(&FieldValue::Bool(true)));
    assert_eq!(get(&m, "nan"), Some(&s("NaN")));
    assert_eq!(get(&m, "id_"), Some(&s("abc")));
    assert_eq!(get(&m, "blob"), Some(&s("AAH/")));
    assert_eq!(get(&m, "list"), Some(&s("[1,\"x\"]")));
    assert_eq!(get(&m, "http_request_method"), Some(&s("GET")));
    assert_eq!(get(&m, "http_request_status"), Some(&FieldValue::Int(200)));
    assert_eq!(get(&m, "empty"), Some(&s("\"\"")));
    assert_eq!(get(&m, "target"), Some(&s("app::db")));
    assert_eq!(get(&m, "event_name"), Some(&s("db.disk")));
    // `WARN` only names the level sent (4): left out.
    assert_eq!(get(&m, "severity_text"), None);
    assert_eq!(
        get(&m, "trace_id"),
        Some(&s("0af7651916cd43dd8448eb211c80319c"))
    );
    assert_eq!(get(&m, "span_id"), Some(&s("b7ad6b7169203331")));
    assert_eq!(get(&m, "trace_flags"), Some(&FieldValue::Int(1)));
    assert_eq!(get(&m, "otel_scope_name"), Some(&s("my-lib")));
    assert_eq!(get(&m, "otel_scope_version"), Some(&s("1.2.3")));
    assert_eq!(get(&m, "scope_attr"), Some(&s("s")));
    assert_eq!(get(&m, "service_name"), Some(&s("svc")));
    assert_eq!(get(&m, "host_name"), Some(&s("box-1")));
    assert_eq!(get(&m, "X-OVH-TOKEN"), Some(&s("secret")));
    let mut keys: Vec<_> = m.fields.iter().map(|f| f.key.as_ref()).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "duplicate keys");
}

/// A flattened field is named by its whole path, normalized once: a
/// reserved name inside a map is no longer one (`{req: {id}}` is `req_id`,
/// as `req.id` is), a map named by a reserved name is not marked, and an
/// empty or overlong key keeps its usual treatment.
#[test]
fn flattened_names_are_normalized_as_a_whole() {
    let map = |entries: Vec<(&str, AnyValue)>| {
        AnyValue::Map(Box::new(
            entries
                .into_iter()
                .map(|(k, v)| (Key::from(k.to_string()), v))
                .collect(),
        ))
    };
    let long = "k".repeat(300);
    let long_gl2 = format!("gl2_{long}");
    let mut rec = record();
    rec.add_attribute(
        "req",
        map(vec![
            ("id", AnyValue::from("r-1")),
            ("gl2_source", AnyValue::from("s")),
            ("", AnyValue::from("e")),
            (long.as_str(), AnyValue::from(1)),
            (long_gl2.as_str(), AnyValue::from(5)),
            ("deep", map(vec![("level", AnyValue::from(2))])),
            ("名", AnyValue::from(6)),
        ]),
    );
    rec.add_attribute("id", map(vec![("x", AnyValue::from(3))]));
    rec.add_attribute("gl2", map(vec![("y", AnyValue::from(4))]));
    let scope = InstrumentationScope::builder("").build();
    let plain = Mapper::new(&MappingOptions::default());
    let m = plain.map(&rec, &scope);
    let names: Vec<String> = m.fields.iter().map(|f| f.name().into_owned()).collect();
    assert_eq!(get(&m, "req_id"), Some(&s("r-1")), "{names:?}");
    assert_eq!(get(&m, "req_gl2_source"), Some(&s("s")), "{names:?}");
    assert_eq!(get(&m, "req_empty_key"), Some(&s("e")), "{names:?}");
    assert_eq!(get(&m, "req_deep_level"), Some(&FieldValue::Int(2)));
    // Named as the attribute `req.名` would be, its CRC mark included.
    let dotted = normalize_key("req.名", true).into_owned();
    assert_eq!(get(&m, &dotted), Some(&FieldValue::Int(6)), "{names:?}");
    assert_eq!(get(&m, "id_x"), Some(&FieldValue::Int(3)), "{names:?}");
    // `gl2_` starts the whole name: marked as a plain key would be.
    assert_eq!(get(&m, "_gl2_y"), Some(&FieldValue::Int(4)), "{names:?}");
    // The key cut first (bounding the path), then the path, too long.
    let cut = normalize_key(&format!("req.{}", normalize_key(&long, true)), true).into_owned();
    assert_eq!(get(&m, &cut), Some(&FieldValue::Int(1)), "{names:?}");
    // Cut, a key is not marked either: `gl2_` does not start the name.
    let cut_gl2 = m.fields.iter().find(|f| f.value == FieldValue::Int(5));
    let cut_gl2 = cut_gl2.map(|f| f.name().into_owned()).unwrap_or_default();
    assert!(cut_gl2.starts_with("req_gl2_kkk"), "{cut_gl2}");
    assert!(
        names.iter().all(|name| name.len() <= MAX_KEY_BYTES),
        "{names:?}"
    );

    // With type suffixes, the suffix ends the whole name.
    let typed = Mapper::new(&MappingOptions {
        type_suffixes: Some(TypeSuffixes::default()),
        ..MappingOptions::default()
    });
    let m = typed.map(&rec, &scope);
    let names: Vec<String> = m.fields.iter().map(|f| f.name().into_owned()).collect();
    assert_eq!(
        get(&m, "req_deep_level_long"),
        Some(&FieldValue::Int(2)),
        "{names:?}"
    );
    assert_eq!(get(&m, "id_x_long"), Some(&FieldValue::Int(3)), "{names:?}");
}

/// Of two resource attributes the mapping makes alike, the same one wins
/// whatever the order the resource holds them in (a hash map's, new in each
/// process): the last by key.
#[test]
fn alike_resource_attributes_resolve_the_same_way_every_time() {
    let scope = InstrumentationScope::builder("").build();
    for _ in 0..32 {
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("deployment.environment", "prod"),
                KeyValue::new("deployment_environment", "staging"),
            ])
            .build();
        let mut mapper = Mapper::new(&MappingOptions::default());
        mapper.set_resource(&resource);
        let rec = record();
        let m = mapper.map(&rec, &scope);
        assert_eq!(get(&m, "deployment_environment"), Some(&s("staging")));
    }
}

#[test]
fn extras_cannot_be_overridden() {
    let mut rec = record();
    rec.add_attribute("X-OVH-TOKEN", "forged");
    rec.add_attribute("X.OVH.TOKEN", "forged too");
    let mapper = Mapper::new(&MappingOptions {
        extras: vec![("X-OVH-TOKEN".into(), Value::from("real"))],
        ..MappingOptions::default()
    });
    let scope = InstrumentationScope::builder("").build();
    let m = mapper.map(&rec, &scope);
    assert_eq!(get(&m, "X-OVH-TOKEN"), Some(&s("real")));
    assert_eq!(get(&m, "X_OVH_TOKEN"), Some(&s("forged too")));
    assert_eq!(
        m.fields.iter().filter(|f| f.key == "X-OVH-TOKEN").count(),
        1
    );
}

#[test]
fn reserved_names_are_within_the_quick_length_check() {
    assert!(RESERVED.iter().all(|r| (2..64).contains(&r.len())));
}

/// The search backend's metadata fields, which it refuses inside a document,
/// are moved aside, whether written so or made so by normalization.
#[test]
fn the_backends_metadata_fields_are_reserved() {
    for (raw, sent) in [
        ("@version", "_version_"),
        ("_routing", "_routing_"),
        ("_seq_no", "_seq_no_"),
        ("_data_stream_timestamp", "_data_stream_timestamp_"),
        ("_id", "_id_"),
    ] {
        assert_eq!(normalize_key(raw, true), sent, "{raw}");
    }
}

#[test]
fn type_suffixes_name_typed_values() {
    let mut rec = record();
    rec.add_attribute("retries", 3_i64);
    rec.add_attribute("ratio", 0.5_f64);
    rec.add_attribute("cached", true);
    rec.add_attribute("user", "alice");
    rec.add_attribute("nan", f64::NAN);
    rec.add_attribute("bytes_long", 7_i64);
    rec.add_attribute("count_int", 8_i64);
    rec.add_attribute("expires_date", "2026-01-01T00:00:00Z");
    rec.add_attribute("level", 1_i64);
    rec.add_attribute("id", 2_i64);
    rec.add_attribute(
        "http",
        AnyValue::Map(Box::new(
            [(Key::from("status"), AnyValue::Int(200))]
                .into_iter()
                .collect(),
        )),
    );
    let mapper = Mapper::new(&MappingOptions {
        extras: vec![("X-OVH-TOKEN".into(), Value::from("t"))],
        type_suffixes: Some(TypeSuffixes::default()),
        ..MappingOptions::default()
    });
    let mut mapper = mapper;
    mapper.set_resource(
        &Resource::builder_empty()
            .with_attribute(opentelemetry::KeyValue::new("instance.number", 4_i64))
            .build(),
    );
    let scope = InstrumentationScope::builder("").build();
    let m = mapper.map(&rec, &scope);
    let keys: Vec<String> = m.fields.iter().map(|f| f.name().into_owned()).collect();
    assert_eq!(get(&m, "retries_long"), Some(&FieldValue::Int(3)));
    assert_eq!(get(&m, "ratio_double"), Some(&FieldValue::Float(0.5)));
    assert_eq!(get(&m, "cached_bool"), Some(&FieldValue::Bool(true)));
    assert_eq!(get(&m, "user"), Some(&s("alice")));
    assert_eq!(get(&m, "nan"), Some(&s("NaN")), "text stays untyped");
    assert_eq!(get(&m, "bytes_long"), Some(&FieldValue::Int(7)));
    assert_eq!(get(&m, "count_int"), Some(&FieldValue::Int(8)));
    assert_eq!(get(&m, "expires_date"), Some(&s("2026-01-01T00:00:00Z")));
    assert_eq!(get(&m, "level_long"), Some(&FieldValue::Int(1)), "{keys:?}");
    assert_eq!(get(&m, "id_long"), Some(&FieldValue::Int(2)), "{keys:?}");
    assert_eq!(get(&m, "http_status_long"), Some(&FieldValue::Int(200)));
    assert_eq!(get(&m, "instance_number_long"), Some(&FieldValue::Int(4)));
    assert_eq!(get(&m, "X-OVH-TOKEN"), Some(&s("t")));
    assert_eq!(keys.len(), 13, "{keys:?}");

    // Configurable spellings; off by default.
    let custom = Mapper::new(&MappingOptions {
        type_suffixes: Some(TypeSuffixes {
            long: "_int".into(),
            double: "_num".into(),
            boolean: "_flag".into(),
            date: "_when".into(),
        }),
        ..MappingOptions::default()
    });
    let m = custom.map(&rec, &scope);
    assert_eq!(get(&m, "retries_int"), Some(&FieldValue::Int(3)));
    assert_eq!(get(&m, "ratio_num"), Some(&FieldValue::Float(0.5)));
    assert_eq!(get(&m, "cached_flag"), Some(&FieldValue::Bool(true)));
    let plain = Mapper::new(&MappingOptions::default());
    let m = plain.map(&rec, &scope);
    assert_eq!(get(&m, "retries"), Some(&FieldValue::Int(3)));
    assert_eq!(get(&m, "level_"), Some(&FieldValue::Int(1)));
}

/// A name ending in a configured suffix LDP does not know is typed
/// already, as one ending in a suffix LDP knows; an empty suffix types
/// no name.
#[test]
fn configured_suffixes_are_respected_and_an_empty_one_is_none() {
    let mut rec = record();
    rec.add_attribute("hits_flag", true);
    rec.add_attribute("start_when", 5_i64);
    rec.add_attribute("retries", 3_i64);
    let scope = InstrumentationScope::builder("").build();
    let custom = Mapper::new(&MappingOptions {
        type_suffixes: Some(TypeSuffixes {
            boolean: "_flag".into(),
            date: "_when".into(),
            ..TypeSuffixes::default()
        }),
        ..MappingOptions::default()
    });
    let m = custom.map(&rec, &scope);
    let keys: Vec<String> = m.fields.iter().map(|f| f.name().into_owned()).collect();
    assert_eq!(
        get(&m, "hits_flag"),
        Some(&FieldValue::Bool(true)),
        "{keys:?}"
    );
    assert_eq!(get(&m, "start_when"), Some(&FieldValue::Int(5)), "{keys:?}");
    assert_eq!(
        get(&m, "retries_long"),
        Some(&FieldValue::Int(3)),
        "{keys:?}"
    );
    let no_date = Mapper::new(&MappingOptions {
        type_suffixes: Some(TypeSuffixes {
            date: String::new(),
            ..TypeSuffixes::default()
        }),
        ..MappingOptions::default()
    });
    let m = no_date.map(&rec, &scope);
    let keys: Vec<String> = m.fields.iter().map(|f| f.name().into_owned()).collect();
    assert_eq!(
        get(&m, "hits_flag_bool"),
        Some(&FieldValue::Bool(true)),
        "{keys:?}"
    );
    assert_eq!(
        get(&m, "start_when_long"),
        Some(&FieldValue::Int(5)),
        "{keys:?}"
    );
    assert_eq!(
        get(&m, "retries_long"),
        Some(&FieldValue::Int(3)),
        "{keys:?}"
    );
}

/// Static texts are measured as sent: a blank one quoted, a list as its
/// JSON text; numbers and booleans count for nothing.
#[test]
fn static_texts_are_measured_as_sent() {
    for (value, len) in [
        (Value::from("abc"), 3),
        (Value::from(" \t"), 4),
        (Value::from(""), 2),
        (Value::I64(123_456), 0),
        (Value::Bool(true), 0),
        (Value::Array(vec![1_i64, 22].into()), 6),
    ] {
        assert_eq!(Mapper::static_text_len(&value), len, "{value:?}");
    }
}

/// The last field of each name is kept, in the order of those last
/// ones: in a typical record and in one of more than 64 fields alike.
#[test]
fn repeated_names_keep_their_last_field() {
    use super::record::dedup_last_wins;
    for n in [3_usize, 64, 65, 200] {
        // Names cycle over a third of the fields: each appears 3 times.
        let names: Vec<String> = (0..n).map(|i| format!("k{}", i % n.div_ceil(3))).collect();
        let fields: Vec<Field<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Field {
                key: Cow::Borrowed(name.as_str()),
                suffix: "",
                value: FieldValue::Int(i as i64),
            })
            .collect();
        let mut expected: Vec<(String, i64)> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            expected.retain(|(kept, _)| kept != name);
            expected.push((name.clone(), i as i64));
        }
        let kept: Vec<(String, i64)> = dedup_last_wins(fields)
            .iter()
            .map(|f| match f.value {
                FieldValue::Int(i) => (f.name().into_owned(), i),
                _ => unreachable!("only integers here"),
            })
            .collect();
        assert_eq!(kept, expected, "{n} fields");
    }
}

#[test]
fn names_a_suffix_would_make_reserved_are_found() {
    for (key, suffix, reserved) in [
        ("i", "d", true),
        ("id", "", true),
        ("lev", "el", true),
        ("leve", "l", true),
        ("short_messag", "e", true),
        ("gl2", "_long", true),
        ("gl", "2_x", true),
        ("gl2", "_a_very_long_suffix", true),
        ("gl2_abcdefghijk", "_long", true),
        ("user", "_long", false),
        ("x", "_long", false),
        ("", "", false),
        ("abc", "_a_very_long_suffix", false),
        ("abcdefghijklm", "_long", false),
        ("levels", "", false),
        ("ids", "_long", false),
    ] {
        assert_eq!(
            keys::forms_reserved(key, suffix),
            reserved,
            "{key:?} + {suffix:?}"
        );
    }
}

#[test]
fn short_message_is_never_blank() {
    let scope = InstrumentationScope::builder("").build();
    let mapper = Mapper::new(&MappingOptions::default());

    let rec = record();
    assert_eq!(mapper.map(&rec, &scope).short_message, NO_MESSAGE);

    let mut rec = record();
    rec.set_body(AnyValue::from("   "));
    rec.set_target("app");
    assert_eq!(mapper.map(&rec, &scope).short_message, "app");

    rec.set_event_name("event src/main.rs:3");
    assert_eq!(mapper.map(&rec, &scope).short_message, "app");
    rec.set_event_name("user.login");
    assert_eq!(mapper.map(&rec, &scope).short_message, "user.login");
    // Only tracing's `event <file>:<line>` is a default name.
    for name in [
        "user:login",
        "event login",
        "event cache:miss",
        "event a.rs:",
        "event :12",
    ] {
        rec.set_event_name(name);
        assert_eq!(mapper.map(&rec, &scope).short_message, name);
    }
}

/// Keys seen before take the key cache's fast path: the names are
/// those of the first record, typed, untyped or reserved.
#[test]
fn a_record_maps_again_to_the_same_names() {
    let mut rec = record();
    for (key, value) in [
        ("retries", AnyValue::Int(3)),
        ("count_long", AnyValue::Int(4)),
        ("gl2", AnyValue::Int(5)),
        ("id", AnyValue::Int(6)),
        ("user", AnyValue::from("alice")),
    ] {
        rec.add_attribute(key, value);
    }
    let scope = InstrumentationScope::builder("").build();
    let mapper = Mapper::new(&MappingOptions {
        type_suffixes: Some(TypeSuffixes::default()),
        ..MappingOptions::default()
    });
    let names = |m: &MappedRecord<'_>| -> Vec<String> {
        m.fields.iter().map(|f| f.name().into_owned()).collect()
    };
    let expected = ["retries_long", "count_long", "_gl2_long", "id_long", "user"];
    for round in 0..3 {
        let m = mapper.map(&rec, &scope);
        let names = names(&m);
        for name in expected {
            assert!(names.iter().any(|n| n == name), "round {round}: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.ends_with("_long_long")),
            "{names:?}"
        );
    }
}

#[test]
fn multi_line_bodies_and_stack_traces_fill_full_message() {
    let scope = InstrumentationScope::builder("").build();
    let mapper = Mapper::new(&MappingOptions::default());
    let mut rec = record();
    rec.set_body(AnyValue::from("\nfirst line\nsecond line"));
    let m = mapper.map(&rec, &scope);
    assert_eq!(m.short_message, "first line");
    assert_eq!(m.full_message.as_deref(), Some("\nfirst line\nsecond line"));

    let mut rec = record();
    rec.set_body(AnyValue::from("boom"));
    rec.add_attribute("exception.stacktrace", "at a\nat b");
    rec.add_attribute("exception.type", "io::Error");
    let m = mapper.map(&rec, &scope);
    assert_eq!(m.short_message, "boom");
    assert_eq!(m.full_message.as_deref(), Some("at a\nat b"));
    assert!(get(&m, "exception_stacktrace").is_none());
    assert_eq!(get(&m, "exception_type"), Some(&s("io::Error")));
}

#[test]
fn long_values_are_truncated_and_marked() {
    let scope = InstrumentationScope::builder("").build();
    let mapper = Mapper::new(&MappingOptions {
        max_field_bytes: 100,
        ..MappingOptions::default()
    });
    let mut rec = record();
    rec.add_attribute("big", "é".repeat(500));
    let m = mapper.map(&rec, &scope);
    let Some(FieldValue::Str(v)) = get(&m, "big") else {
        panic!("missing")
    };
    assert!(v.len() <= 100, "{}", v.len());
    assert!(v.ends_with(TRUNCATED_MARKER));
}

#[test]
fn timestamp_falls_back_to_observed() {
    let scope = InstrumentationScope::builder("").build();
    let mapper = Mapper::new(&MappingOptions::default());
    let mut rec = record();
    let t = UNIX_EPOCH + Duration::from_secs(42);
    rec.set_observed_timestamp(t);
    // Written out, not computed by the code under test.
    let observed = EpochMicros {
        secs: 42,
        micros: 0,
    };
    assert_eq!(mapper.map(&rec, &scope).time, observed);
    // Times GELF or RFC 3339 cannot carry fall back too.
    for bad in [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_nanos(999),
        UNIX_EPOCH - Duration::from_secs(1),
        UNIX_EPOCH + Duration::from_secs(253_402_300_800),
    ] {
        rec.set_timestamp(bad);
        assert_eq!(mapper.map(&rec, &scope).time, observed, "{bad:?}");
    }
}

#[test]
fn blank_values_are_quoted_within_the_cap() {
    let scope = InstrumentationScope::builder("").build();
    let mapper = Mapper::new(&MappingOptions {
        max_field_bytes: 100,
        ..MappingOptions::default()
    });
    let mut rec = record();
    rec.add_attribute("blank", " ".repeat(1000));
    let m = mapper.map(&rec, &scope);
    let Some(FieldValue::Str(v)) = get(&m, "blank") else {
        panic!("missing")
    };
    assert!(v.len() <= 100 && v.starts_with("\" ") && !v.trim().is_empty());
}

#[test]
fn host_precedence() {
    let with_builder = Mapper::new(&MappingOptions {
        host: Some("from-builder".into()),
        ..MappingOptions::default()
    });
    let mut m = with_builder;
    m.set_resource(
        &Resource::builder_empty()
            .with_attribute(KeyValue::new("host.name", "from-resource"))
            .build(),
    );
    assert_eq!(m.host(), "from-builder");
    let plain = Mapper::new(&MappingOptions::default());
    assert!(!plain.host().trim().is_empty());
}

#[test]
fn deeply_nested_values_are_written_to_a_bounded_depth() {
    // 100,000 lists deep: the recursion of writing (or dropping) it
    // would overflow a 2 MiB test stack; this thread's is large enough
    // for building and dropping it.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(|| {
            let mut value = AnyValue::Int(7);
            for _ in 0..100_000 {
                value = AnyValue::ListAny(Box::new(vec![value]));
            }
            let text = super::values::any_json_text(&value, usize::MAX);
            let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            let mut depth = 0;
            let mut at = &parsed;
            while let Some(inner) = at.as_array().and_then(|a| a.first()) {
                depth += 1;
                at = inner;
            }
            (depth, at.clone())
        })
        .expect("spawn");
    let (depth, innermost) = handle.join().expect("no overflow");
    assert_eq!(depth, MAX_JSON_DEPTH);
    assert_eq!(innermost, serde_json::json!(TOO_DEEP));
}

#[test]
fn only_what_could_fit_a_frame_is_read() {
    const FRAME: usize = 1024;
    let scope = InstrumentationScope::builder("").build();
    let mapper = Mapper::new(&MappingOptions {
        max_frame_bytes: FRAME,
        max_field_bytes: 1 << 20,
        ..MappingOptions::default()
    });

    // Cut on a character boundary (`é` is two bytes, `€` three).
    let mut rec = record();
    rec.set_body(AnyValue::from("€".repeat(1000)));
    rec.add_attribute("detail", "€".repeat(1000));
    let m = mapper.map(&rec, &scope);
    assert_eq!(m.short_message, "€".repeat(FRAME / 3));
    // A field is cut and marked at once, as by the field cap.
    let Some(FieldValue::Str(detail)) = get(&m, "detail") else {
        panic!("no detail");
    };
    assert!(detail.len() <= FRAME && detail.ends_with(TRUNCATED_MARKER));

    // A stack trace joins a multi-line body within the limit.
    let mut rec = record();
    rec.set_body(AnyValue::from("first\n".repeat(100)));
    rec.add_attribute("exception.stacktrace", "at x\n".repeat(1000));
    let m = mapper.map(&rec, &scope);
    let full = m.full_message.expect("a full message");
    assert_eq!(full.len(), FRAME);
    assert!(full.starts_with(&"first\n".repeat(100)));

    // Beside a blank body, which is not sent, the stack trace is the
    // whole full message.
    let mut rec = record();
    rec.set_body(AnyValue::from(" ".repeat(100)));
    rec.add_attribute("exception.stacktrace", "at y\n".repeat(1000));
    let m = mapper.map(&rec, &scope);
    let full = m.full_message.expect("a full message");
    assert_eq!(full, "at y\n".repeat(1000)[..FRAME]);

    // A stack trace blank for longer than the limit: from its first
    // character that is not blank, still the full message, not a field.
    let mut rec = record();
    rec.set_body(AnyValue::from("boom"));
    rec.add_attribute(
        "exception.stacktrace",
        format!("{}at z\n", " ".repeat(2 * FRAME)),
    );
    let m = mapper.map(&rec, &scope);
    assert_eq!(m.full_message.as_deref(), Some("at z\n"));
    assert!(get(&m, "exception_stacktrace").is_none());
    let mut rec = record();
    rec.add_attribute("exception.stacktrace", " ".repeat(2 * FRAME));
    assert!(mapper.map(&rec, &scope).full_message.is_none());

    // A body blank for longer than the limit: its first line that is not
    // blank is still found.
    let mut rec = record();
    rec.set_body(AnyValue::from(format!("{}\nhello", " ".repeat(2 * FRAME))));
    let m = mapper.map(&rec, &scope);
    assert_eq!(m.short_message, "hello");
}

/// A double body is its text; one JSON has no number for is spelled as
/// such a field's value is.
#[test]
fn double_bodies_are_their_text() {
    let mapper = Mapper::new(&MappingOptions::default());
    let scope = InstrumentationScope::builder("s").build();
    for (f, text) in [
        (12.5, "12.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
    ] {
        let mut rec = record();
        rec.set_body(AnyValue::Double(f));
        assert_eq!(mapper.map(&rec, &scope).short_message, text);
    }
}

#[test]
fn long_structured_values_are_written_only_as_far_as_they_can_be_kept() {
    use super::values::{any_json_text, base64_text};
    use base64::Engine as _;
    let map = std::collections::HashMap::from([
        (Key::from("é\u{1}"), AnyValue::from("ü".repeat(9))),
        (Key::from("b"), AnyValue::Bytes(Box::new(vec![1, 2, 3, 4]))),
    ]);
    let list = AnyValue::ListAny(Box::new(vec![
        AnyValue::from("naïve\n"),
        AnyValue::Int(-3),
        AnyValue::Map(Box::new(map)),
        AnyValue::Double(1.5),
        AnyValue::Bytes(Box::new((0..30).collect())),
    ]));
    // The whole text, against serde_json's writing of the same value.
    let full = any_json_text(&list, usize::MAX);
    let expected = serde_json::json!([
        "naïve\n",
        -3,
        {"b": "AQIDBA==", "é\u{1}": "ü".repeat(9)},
        1.5,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
    ]);
    assert_eq!(full, serde_json::to_string(&expected).expect("JSON"));
    // Past `max`, only as much as the caller keeps must be right: more
    // than `max` bytes, the first of which are the whole text's.
    for max in 0..full.len() + 4 {
        let text = any_json_text(&list, max);
        if full.len() > max {
            assert!(text.len() > max, "max {max}: {} bytes", text.len());
            assert_eq!(
                text.as_bytes()[..=max],
                full.as_bytes()[..=max],
                "max {max}"
            );
        } else {
            assert_eq!(text, full);
        }
    }
    let bytes: Vec<u8> = (0..40).collect();
    let whole = base64::engine::general_purpose::STANDARD.encode(&bytes);
    for max in 0..whole.len() + 4 {
        let text = base64_text(&bytes, max);
        assert!(whole.starts_with(&text), "max {max}");
        if whole.len() > max {
            assert!(text.len() > max && text.len() <= max + 4, "max {max}");
        } else {
            assert_eq!(text, whole);
        }
    }
}
