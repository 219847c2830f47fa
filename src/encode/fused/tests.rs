use super::*;
use crate::encode::frame::encode_framed;
use crate::encode::{Framing, Gelf, Ltsv, PackScratch, Packing};
use crate::mapping::{MappingOptions, TRUNCATED_MARKER};
use djehouty_testkit::generators::{self, sdk_record, Record};
use opentelemetry::logs::{AnyValue, LogRecord as _, LoggerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::Resource;
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

/// Mappers with the settings that change names and sizes, their static
/// fields named as generated keys may be.
fn mappers<F: Writer>() -> Vec<(Mapper, usize)> {
    let plain = MappingOptions::default();
    let extras = MappingOptions {
        extras: vec![
            ("a".to_string(), Value::from("extra")),
            ("X-OVH-TOKEN".to_string(), Value::from("token")),
            ("n".to_string(), Value::I64(3)),
        ],
        ..MappingOptions::default()
    };
    let ldp = MappingOptions {
        type_suffixes: Some(crate::TypeSuffixes::default()),
        redundant_fields: true,
        ..extras.clone()
    };
    let dots = MappingOptions {
        replace_dots: false,
        max_frame_bytes: 1500,
        max_field_bytes: 200,
        ..MappingOptions::default()
    };
    let resource = Resource::builder_empty()
        .with_service_name("svc")
        .with_attribute(KeyValue::new("b", "resource"))
        .with_attribute(KeyValue::new("host.name", "box"))
        .with_attribute(KeyValue::new("x", 1.5))
        .build();
    [plain, extras, ldp, dots]
        .into_iter()
        .map(|options| {
            let mut mapper = Mapper::new(&options);
            mapper.pre_encode(F::encode_field, F::encode_name, F::encode_host);
            mapper.set_resource(&resource);
            (mapper, options.max_frame_bytes)
        })
        .collect()
}

/// A record of `body` and `attributes` at a fixed time, with nothing else.
fn plain_record(body: AnyValue, attributes: Vec<(String, AnyValue)>) -> Record {
    Record {
        body: Some(body),
        attributes,
        severity: None,
        severity_text: None,
        timestamp: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        target: None,
        event_name: None,
    }
}

/// `record` as the SDK holds it.
fn sdk(record: &Record) -> SdkLogRecord {
    let provider = SdkLoggerProvider::builder().build();
    sdk_record(&provider.logger("test"), record)
}

/// A record whose body is "hello", with nothing else.
fn hello_record() -> SdkLogRecord {
    sdk(&plain_record(AnyValue::from("hello"), vec![]))
}

/// A scope whose attributes may share names with the record's.
fn scope(with_attributes: bool) -> InstrumentationScope {
    let builder = InstrumentationScope::builder("scope").with_version("1.0");
    if with_attributes {
        builder
            .with_attributes([KeyValue::new("a", "scope"), KeyValue::new("s", 2)])
            .build()
    } else {
        builder.build()
    }
}

/// Whatever the fast path writes is what the general path writes;
/// returns how many records took it.
fn same_bytes<F: Writer>(record: &Record, with_scope_attributes: bool) -> usize {
    let mut sdk = sdk(record);
    // Not now: both paths would read the clock.
    sdk.set_observed_timestamp(UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456));
    let scope = scope(with_scope_attributes);
    let mut fast_count = 0;
    for (mapper, max_frame) in mappers::<F>() {
        let mut general = b"before".to_vec();
        let framing = Framing::Nul;
        let cut = encode_framed::<F>(mapper.map(&sdk, &scope), framing, max_frame, &mut general);
        let mut fast = b"before".to_vec();
        let mut names = Vec::new();
        if encode_fused::<F>(
            &mapper,
            &sdk,
            &scope,
            max_frame - 1,
            &mut fast,
            (&mut names, &mut Leads::default()),
        ) {
            fast.push(framing.delimiter());
            assert!(fast == general, "{}", String::from_utf8_lossy(&fast));
            assert!(!cut);
            fast_count += 1;
        } else {
            assert!(fast == b"before", "{}", String::from_utf8_lossy(&fast));
        }
        let packing = Packing::Framed { framing, max_frame };
        let mut packed = b"before".to_vec();
        let packed_cut = packing.pack_record::<F>(
            &mapper,
            &sdk,
            &scope,
            &mut packed,
            &mut PackScratch::default(),
        );
        assert!(packed == general, "{}", String::from_utf8_lossy(&packed));
        assert_eq!(packed_cut, cut);
    }
    fast_count
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_fast_path_writes_what_the_general_path_writes(
        record in generators::record(),
        with_scope_attributes: bool,
    ) {
        same_bytes::<Gelf>(&record, with_scope_attributes);
        same_bytes::<Ltsv>(&record, with_scope_attributes);
    }

    #[test]
    fn oversized_records_leave_the_fast_path_with_nothing_written(
        record in generators::oversized_record(),
    ) {
        same_bytes::<Gelf>(&record, false);
        same_bytes::<Ltsv>(&record, false);
    }
}

/// The host `frame` names: GELF's `host`, LTSV's `host:` field.
fn host_of(frame: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(frame) {
        Ok(object) => object["host"].as_str().unwrap_or_default().to_string(),
        Err(_) => String::from_utf8_lossy(frame)
            .split('\t')
            .find_map(|field| field.strip_prefix("host:"))
            .unwrap_or_default()
            .to_string(),
    }
}

/// Both paths write the host the resource gave, as encoded once.
fn names_the_resources_host<F: Writer>() {
    for (mapper, limit) in mappers::<F>() {
        let (record, scope) = (hello_record(), scope(false));
        let mut fused = Vec::new();
        let scratch = (&mut Vec::new(), &mut Leads::default());
        assert!(encode_fused::<F>(
            &mapper, &record, &scope, limit, &mut fused, scratch
        ));
        let mut general = Vec::new();
        F::encode(&mapper.map(&record, &scope), &mut general);
        assert_eq!(host_of(&fused), "box");
        assert_eq!(host_of(&general), "box");
    }
}

#[test]
fn frames_name_the_host_the_resource_gave() {
    names_the_resources_host::<Gelf>();
    names_the_resources_host::<Ltsv>();
}

/// Each way off the fast path, and the common record on it.
#[test]
fn repeated_names_and_large_records_take_the_general_path() {
    let record = |attributes: Vec<(&str, AnyValue)>| Record {
        body: Some(AnyValue::from("hello")),
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        severity: None,
        severity_text: None,
        timestamp: None,
        target: Some("app".to_string()),
        event_name: None,
    };
    let cases = [
        (
            record(vec![("k", AnyValue::Int(1)), ("v", AnyValue::from("x"))]),
            4,
        ),
        // Twice the same key, a static name, a map flattened to a name
        // already written (but with dots kept by the last mapper).
        (
            record(vec![("k", AnyValue::Int(1)), ("k", AnyValue::Int(2))]),
            0,
        ),
        (record(vec![("b", AnyValue::from("mine"))]), 0),
        (
            record(vec![
                ("m_k", AnyValue::Int(1)),
                (
                    "m",
                    generators::map_of(vec![("k".to_string(), AnyValue::Int(2))]),
                ),
            ]),
            1,
        ),
        // Over the 1500-byte frame of the last mapper only.
        (
            record(
                ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]
                    .map(|k| (k, AnyValue::from("x".repeat(190))))
                    .to_vec(),
            ),
            3,
        ),
    ];
    for (record, fast) in cases {
        assert_eq!(same_bytes::<Gelf>(&record, false), fast, "{record:?}");
        assert_eq!(same_bytes::<Ltsv>(&record, false), fast, "{record:?}");
    }
}

/// The record of `attributes` (in order) through the fast path with
/// at most `limit` bytes, if it takes it (`out` left as it was when
/// not), and through the general path with room to spare.
fn both_paths<F: Writer>(
    mapper: &Mapper,
    attributes: &[(&str, AnyValue)],
    limit: usize,
) -> (Option<Vec<u8>>, Vec<u8>) {
    let sdk = sdk(&plain_record(
        AnyValue::from("hello"),
        attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    ));
    let scope = scope(false);
    let mut general = Vec::new();
    assert!(!encode_framed::<F>(
        mapper.map(&sdk, &scope),
        Framing::Nul,
        1 << 20,
        &mut general
    ));
    assert_eq!(general.pop(), Some(0));
    let mut fast = b"before".to_vec();
    let taken = encode_fused::<F>(
        mapper,
        &sdk,
        &scope,
        limit,
        &mut fast,
        (&mut Vec::new(), &mut Leads::default()),
    );
    if taken {
        assert_eq!(&fast[..6], b"before");
        (Some(fast.split_off(6)), general)
    } else {
        assert!(fast == b"before", "{}", String::from_utf8_lossy(&fast));
        (None, general)
    }
}

/// A record of many fields takes the general path, whose check of repeated
/// names is linear: the fast path's would take quadratic time.
#[test]
fn records_of_many_fields_take_the_general_path() {
    fn check<F: Writer>() {
        let keys: Vec<String> = (0..2 * MAX_NAMES).map(|i| format!("k{i}")).collect();
        let attributes = |count: usize| -> Vec<(&str, AnyValue)> {
            keys[..count]
                .iter()
                .map(|key| (key.as_str(), AnyValue::Int(1)))
                .collect()
        };
        let (mapper, _) = &mappers::<F>()[0];
        let (fast, general) = both_paths::<F>(mapper, &attributes(MAX_NAMES / 2), 1 << 20);
        assert_eq!(fast.as_deref(), Some(&general[..]));
        let (fast, general) = both_paths::<F>(mapper, &attributes(2 * MAX_NAMES), 1 << 20);
        assert_eq!(fast, None);
        // The general path writes them all.
        let text = String::from_utf8(general).unwrap();
        assert!(text.contains(&format!("k{}", 2 * MAX_NAMES - 1)), "{text}");
    }
    check::<Gelf>();
    check::<Ltsv>();
}

/// A record of exactly the limit takes the fast path, one byte less
/// does not: also when its last field ends the record (LTSV without
/// extras writes nothing after it).
fn the_limit_is_exact<F: Writer>() {
    for (mapper, _) in mappers::<F>() {
        let attributes = [
            ("k", AnyValue::Int(1)),
            ("v", AnyValue::from("x".repeat(40))),
        ];
        let (_, general) = both_paths::<F>(&mapper, &attributes, 1 << 20);
        let (fast, _) = both_paths::<F>(&mapper, &attributes, general.len());
        assert_eq!(fast.as_deref(), Some(&general[..]));
        let (fast, _) = both_paths::<F>(&mapper, &attributes, general.len() - 1);
        assert_eq!(fast, None);
    }
}

#[test]
fn a_record_of_exactly_the_limit_takes_the_fast_path() {
    the_limit_is_exact::<Gelf>();
    the_limit_is_exact::<Ltsv>();
}

/// Names that share their fingerprint (length, first and last bytes),
/// hence whatever filter bit is drawn from it, yet differ: both are
/// written; the first written again is still a repeat.
fn alike_names_are_told_apart<F: Writer>() {
    let field = |key: &'static str| Field {
        key: key.into(),
        suffix: "",
        value: crate::mapping::FieldValue::Int(1),
    };
    assert_eq!(field("k10").fingerprint(), field("k20").fingerprint());
    for (mapper, _) in mappers::<F>() {
        let alike = [("k10", AnyValue::Int(1)), ("k20", AnyValue::Int(2))];
        let (fast, general) = both_paths::<F>(&mapper, &alike, 1 << 20);
        assert_eq!(fast.as_deref(), Some(&general[..]));
        let text = String::from_utf8_lossy(&general);
        assert!(text.contains("k10") && text.contains("k20"), "{text}");
        let again = [
            ("k10", AnyValue::Int(1)),
            ("k20", AnyValue::Int(2)),
            ("k10", AnyValue::Int(3)),
        ];
        let (fast, _) = both_paths::<F>(&mapper, &again, 1 << 20);
        assert_eq!(fast, None);
    }
}

#[test]
fn names_alike_but_different_are_both_written() {
    alike_names_are_told_apart::<Gelf>();
    alike_names_are_told_apart::<Ltsv>();
}

/// A host whose escapes take more than 255 bytes as written (a control
/// character takes six in GELF; LTSV escapes tabs) is cut to 255 bytes as
/// written, and marked, so that a record still fits the smallest frame.
fn a_host_long_as_written_is_cut<F: Writer>(host: &str) {
    let mut mapper = Mapper::new(&MappingOptions {
        max_frame_bytes: 1024,
        ..MappingOptions::default()
    });
    mapper.pre_encode(F::encode_field, F::encode_name, F::encode_host);
    mapper.set_resource(
        &Resource::builder_empty()
            .with_attribute(KeyValue::new("host.name", host.to_string()))
            .build(),
    );
    let (mut written, mut bare) = (Vec::new(), Vec::new());
    F::encode_host(mapper.host(), &mut written);
    F::encode_host("", &mut bare);
    assert!(written.len() - bare.len() <= 255, "{}", written.len());
    let head = mapper.host().strip_suffix(TRUNCATED_MARKER);
    assert!(
        head.is_some_and(|head| !head.is_empty() && host.starts_with(head)),
        "{:?}",
        mapper.host()
    );
    let packing = Packing::Framed {
        framing: Framing::Nul,
        max_frame: 1024,
    };
    let sdk = sdk(&plain_record(AnyValue::from("hello"), Vec::new()));
    let mut out = Vec::new();
    let mut scratch = PackScratch::default();
    packing.pack_record::<F>(&mapper, &sdk, &scope(false), &mut out, &mut scratch);
    assert!(out.len() <= 1024, "a frame of {} bytes", out.len());
}

#[test]
fn a_host_long_as_written_is_cut_to_fit_and_marked() {
    // 1,525 bytes as GELF writes it: the frame alone would exceed 1024.
    a_host_long_as_written_is_cut::<Gelf>(&format!("a{}", "\u{1}".repeat(254)));
    // The cut may leave only control characters: the mark keeps it from
    // being blank.
    a_host_long_as_written_is_cut::<Gelf>(&format!("{}x", "\u{1}".repeat(100)));
    a_host_long_as_written_is_cut::<Ltsv>(&"a\t".repeat(127));
}

/// A mapper for `F` whose one static field is `a`, of `value`, with no
/// resource attributes: the static names' filter has a single bit.
fn one_static_mapper<F: Writer>(value: &str) -> Mapper {
    let mut mapper = Mapper::new(&MappingOptions {
        extras: vec![("a".to_string(), Value::from(value.to_string()))],
        ..MappingOptions::default()
    });
    mapper.pre_encode(F::encode_field, F::encode_name, F::encode_host);
    mapper.set_resource(&Resource::builder_empty().build());
    mapper
}

/// One static field and a record attribute of the same name: the
/// static names' one filter bit is the attribute's. The general path
/// sends the name once; the fast path does not take the record.
fn a_name_shared_with_the_only_static_field_is_sent_once<F: Writer>() {
    let mapper = one_static_mapper::<F>("extra");
    let (fast, general) = both_paths::<F>(&mapper, &[("a", AnyValue::from("mine"))], 1 << 20);
    assert_eq!(fast, None);
    let text = String::from_utf8_lossy(&general);
    assert_eq!(
        text.matches("mine").count() + text.matches("extra").count(),
        1,
        "{text}"
    );
}

#[test]
fn a_name_shared_with_a_single_static_field_is_sent_once() {
    a_name_shared_with_the_only_static_field_is_sent_once::<Gelf>();
    a_name_shared_with_the_only_static_field_is_sent_once::<Ltsv>();
}

/// A record sharing a name with a static field (so that its fields
/// carry the static ones, protected), cut to fit frames of many sizes:
/// the static field is sent whole and each cut text is marked once.
#[test]
fn a_cut_record_sharing_a_static_name_keeps_the_static_field_whole() {
    let statics = "static ".repeat(60);
    let mapper = one_static_mapper::<Gelf>(&statics);
    let sdk = sdk(&plain_record(
        AnyValue::from(format!("{}\n{}", "x".repeat(3000), "y".repeat(3000))),
        vec![
            ("a".to_string(), AnyValue::from("mine")),
            ("b".to_string(), AnyValue::from("z".repeat(2000))),
        ],
    ));
    let scope = scope(false);
    for max in (1200..9000).step_by(61) {
        let mut out = Vec::new();
        assert!(encode_framed::<Gelf>(
            mapper.map(&sdk, &scope),
            Framing::Nul,
            max,
            &mut out
        ));
        // Within 32 bytes of the limit, as any cut record.
        assert!(
            (max - 32..=max).contains(&out.len()),
            "{max}: {}",
            out.len()
        );
        let json: serde_json::Value =
            serde_json::from_slice(&out[..out.len() - 1]).expect("a JSON frame");
        assert_eq!(json["_a"].as_str(), Some(statics.as_str()), "{max}");
        for text in ["short_message", "full_message", "_b"] {
            let text = json[text].as_str().unwrap_or("");
            let markers = text.matches(crate::mapping::TRUNCATED_MARKER).count();
            assert!(markers <= 1, "{max}: {text}");
        }
    }
}

/// `record` through the fast path with `leads` kept from the records
/// before, and through the general path alone: the same bytes. Returns
/// whether it took the fast path.
fn same_with_leads<F: Writer>(
    (mapper, max_frame): &(Mapper, usize),
    record: &SdkLogRecord,
    scope: &InstrumentationScope,
    leads: &mut Leads,
) -> bool {
    let mut general = Vec::new();
    encode_framed::<F>(
        mapper.map(record, scope),
        Framing::Nul,
        *max_frame,
        &mut general,
    );
    let mut fast = Vec::new();
    let limit = max_frame - 1;
    if !encode_fused::<F>(
        mapper,
        record,
        scope,
        limit,
        &mut fast,
        (&mut Vec::new(), leads),
    ) {
        return false;
    }
    fast.push(0);
    assert!(fast == general, "{}", String::from_utf8_lossy(&fast));
    true
}

/// Texts are the same when their bytes are: at one address only for one
/// length, at another address by their bytes.
#[test]
fn texts_are_the_same_by_their_bytes_wherever_they_lie() {
    let text = "appdb";
    let (app, pdx, empty) = (String::from("app"), String::from("pdx"), String::new());
    assert!(same_text(&text[..3], &text[..3]));
    assert!(!same_text(&text[..2], &text[..3]));
    assert!(same_text(&text[..3], &app));
    assert!(!same_text(&text[2..5], &pdx));
    assert!(same_text("", &empty));
    assert!(!same_text("", "a"));
}

/// Records of several scopes and targets (static or owned), by several
/// mappers, in both formats, in a mixed order through the same leads: each
/// starts with the fields of its own scope and target, as the general path
/// writes them; one with an attribute named as a field of its lead leaves
/// the fast path.
#[test]
fn each_record_starts_with_the_lead_of_its_scope_and_target() {
    let scope = |name: &'static str, version: Option<&'static str>, attributes: &[KeyValue]| {
        let mut builder = InstrumentationScope::builder(name);
        if let Some(version) = version {
            builder = builder.with_version(version);
        }
        builder.with_attributes(attributes.to_vec()).build()
    };
    let (s2, s3) = (KeyValue::new("s", 2), KeyValue::new("s", 3));
    let (t, zero, minus_zero) = (
        KeyValue::new("t", "x"),
        KeyValue::new("z", 0.0),
        KeyValue::new("z", -0.0),
    );
    let scopes = [
        scope("scope", Some("1.0"), &[]),
        scope("scope", Some("2.0"), &[]),
        scope("scope", None, &[]),
        scope("other", Some("1.0"), &[]),
        scope("scope", Some("1.0"), std::slice::from_ref(&s2)),
        scope("scope", Some("1.0"), &[s3]),
        scope("scope", Some("1.0"), &[s2.clone(), t.clone()]),
        scope("scope", Some("1.0"), &[t, s2]),
        scope("scope", Some("1.0"), &[zero]),
        scope("scope", Some("1.0"), &[minus_zero]),
        // Named as a target: the name is left out then.
        scope("app", None, &[]),
    ];
    let targets = [Some("app"), Some("db"), None];
    let attributes = [
        vec![],
        vec![("k".to_string(), AnyValue::Int(1))],
        vec![("otel.scope.version".to_string(), AnyValue::from("x"))],
        vec![("target".to_string(), AnyValue::from("t"))],
    ];
    let (gelf, ltsv) = (mappers::<Gelf>(), mappers::<Ltsv>());
    let mut leads = Leads::default();
    let mut random = crate::encode::xorshift(7);
    let (mut fast, mut r) = (0, 0);
    for i in 0..1000 {
        // Runs of four records of the same kind.
        if i % 4 == 0 {
            r = random() as usize;
        }
        let scope = &scopes[r % scopes.len()];
        let attributes = attributes[r / 512 % attributes.len()].clone();
        let mut record = sdk(&plain_record(AnyValue::from("hello"), attributes));
        // A static target and an owned one of the same text are the same.
        match (targets[r / 8 % targets.len()], r / 2048 % 2) {
            (Some(target), 0) => record.set_target(target),
            (Some(target), _) => record.set_target(target.to_string()),
            (None, _) => {}
        }
        let mapper = r / 32 % gelf.len();
        fast += usize::from(if r / 256 % 2 == 0 {
            same_with_leads::<Gelf>(&gelf[mapper], &record, scope, &mut leads)
        } else {
            same_with_leads::<Ltsv>(&ltsv[mapper], &record, scope, &mut leads)
        });
    }
    assert!((500..1000).contains(&fast), "{fast}");
    // The last three of each run found their lead, and now and then the
    // first.
    let found = leads.found;
    assert!((750..1000).contains(&found), "{found}");
    assert_eq!(leads.entries.len(), LEADS);
}

/// A GELF record of `scope` by `mapper` through the fast path with
/// `leads`, which it must take, as [`same_with_leads`] checks it.
fn hello(mapper: &(Mapper, usize), scope: &InstrumentationScope, leads: &mut Leads) {
    assert!(same_with_leads::<Gelf>(
        mapper,
        &hello_record(),
        scope,
        leads
    ));
}

/// Past [`LEADS`] scopes, each new lead takes the place of the least
/// recently used, here the oldest.
#[test]
fn a_new_lead_replaces_the_oldest() {
    let mapper = mappers::<Gelf>().swap_remove(0);
    let scopes: Vec<_> = (0..LEADS + 2)
        .map(|i| InstrumentationScope::builder(format!("scope{i}")).build())
        .collect();
    let mut leads = Leads::default();
    for scope in &scopes {
        hello(&mapper, scope, &mut leads);
    }
    assert_eq!(leads.found, 0);
    // The newest first, then the second kept: replaced, not found (the
    // first was replaced before it).
    for (i, scope) in scopes.iter().enumerate().rev() {
        let before = leads.found;
        hello(&mapper, scope, &mut leads);
        assert_eq!(leads.found - before, usize::from(i >= 2), "{i}");
        if i < 2 {
            break;
        }
    }
}

/// A mapper set up again no longer finds the leads it kept: here its
/// new resource names a field as the scope does, so that the record
/// leaves the fast path.
#[test]
fn a_mapper_set_up_again_writes_its_leads_again() {
    let mut mapper = mappers::<Gelf>().swap_remove(0);
    let scope = InstrumentationScope::builder("scope")
        .with_attributes([KeyValue::new("s", 1)])
        .build();
    let mut leads = Leads::default();
    hello(&mapper, &scope, &mut leads);
    let record = hello_record();
    let resource = Resource::builder_empty()
        .with_attribute(KeyValue::new("s", 2))
        .build();
    mapper.0.set_resource(&resource);
    assert!(!same_with_leads::<Gelf>(
        &mapper, &record, &scope, &mut leads
    ));
}

/// A lead whose scope and target hold up to [`MAX_LEAD_BYTES`] of text
/// is kept, one holding more is not, even when its fields were cut to
/// fit (here, the target: this mapper cuts fields to 200 bytes).
#[test]
fn leads_of_long_scopes_or_targets_are_not_kept() {
    let mapper = mappers::<Gelf>().swap_remove(3);
    assert_eq!(mapper.0.max_field_bytes(), 200);
    let scope = InstrumentationScope::builder("scope")
        .with_version("1.0")
        .with_attributes([
            KeyValue::new("s", "x".repeat(100)),
            KeyValue::new("n", 1),
            KeyValue::new("c", true),
        ])
        .build();
    // 5 + 3 + (1 + 100) + 1 + 1 bytes of the scope's text, and the
    // target.
    let target_len = MAX_LEAD_BYTES - 111;
    let twice = |target_len: usize| {
        let mut record = plain_record(AnyValue::from("hello"), vec![]);
        record.target = Some("t".repeat(target_len));
        let record = sdk(&record);
        let mut leads = Leads::default();
        for _ in 0..2 {
            assert!(same_with_leads::<Gelf>(
                &mapper, &record, &scope, &mut leads
            ));
        }
        leads.found
    };
    assert_eq!(twice(target_len), 1);
    assert_eq!(twice(target_len + 1), 0);
}

/// No lead of a scope holding a list is kept, however short: it would
/// never be found again (lists are never the same, see `same_value`), and
/// would take the place of one that would.
#[test]
fn no_lead_of_a_scope_with_a_list_is_kept() {
    let mapper = mappers::<Gelf>().swap_remove(0);
    let scope = InstrumentationScope::builder("")
        .with_attributes([KeyValue::new("", Value::Array(vec![1_i64].into()))])
        .build();
    let mut leads = Leads::default();
    hello(&mapper, &scope, &mut leads);
    assert_eq!(leads.entries.len(), 0);
}

/// A lead of up to [`MAX_LEAD_BYTES`] is kept, a longer one is not.
#[test]
fn long_leads_are_not_kept() {
    let mapper = mappers::<Gelf>().swap_remove(0);
    // Two records of a scope whose attribute takes `len` bytes: whether
    // the second found its lead, and the lead's size.
    let twice = |len: usize| {
        let scope = InstrumentationScope::builder("scope")
            .with_attributes([KeyValue::new("s", "x".repeat(len))])
            .build();
        let mut leads = Leads::default();
        hello(&mapper, &scope, &mut leads);
        let size = leads.entries.first().map(|lead| lead.bytes.len());
        hello(&mapper, &scope, &mut leads);
        (leads.found == 1, size)
    };
    let (found, Some(size)) = twice(100) else {
        panic!("a short lead was not kept");
    };
    assert!(found);
    let exact = 100 + MAX_LEAD_BYTES - size;
    assert_eq!(twice(exact), (true, Some(MAX_LEAD_BYTES)));
    assert_eq!(twice(exact + 1), (false, None));
}

/// How many records were written with a shape of attributes, over
/// all the leads kept.
fn shapes_written(leads: &Leads) -> usize {
    leads.entries.iter().map(|lead| lead.shapes.written).sum()
}

/// A record of few attributes, of keys and values drawn from a few,
/// some named as the fields written before them, with or without the
/// fields of fixed names: records alike in keys and yet not in what
/// they are named, or in the names before them.
fn alike_record() -> impl Strategy<Value = (Record, Option<(u8, bool)>)> {
    let key = proptest::sample::select(
        &[
            "k",
            "v",
            "a",
            "b",
            "severity_text",
            "trace_id",
            "event_name",
            "s",
            "otel_scope_version",
            "target",
            "exception.stacktrace",
        ][..],
    );
    let value = prop_oneof![
        Just(AnyValue::Int(1)),
        Just(AnyValue::Double(1.5)),
        Just(AnyValue::Double(f64::NAN)),
        Just(AnyValue::from("x")),
        Just(AnyValue::from(" ")),
        Just(AnyValue::Boolean(true)),
        Just(generators::map_of(vec![])),
        Just(generators::map_of(vec![(
            "k".to_string(),
            AnyValue::Int(2)
        )])),
    ];
    let attributes = proptest::collection::vec((key, value), 0..4);
    let severity_text = proptest::option::of(prop_oneof![Just("INFO"), Just("custom")]);
    let event_name = proptest::option::of(Just("evt"));
    let trace = proptest::option::of((1..=3u8, any::<bool>()));
    (attributes, severity_text, event_name, trace).prop_map(
        |(attributes, severity_text, event_name, trace)| {
            let mut record = info(attributes, severity_text);
            record.event_name = event_name.map(str::to_string);
            (record, trace)
        },
    )
}

/// `record` as the SDK holds it, with the trace context `trace` gives
/// (a span, and whether it has flags).
fn sdk_traced((record, trace): &(Record, Option<(u8, bool)>)) -> SdkLogRecord {
    let mut sdk = sdk(record);
    if let Some((span, flags)) = *trace {
        sdk.set_trace_context(
            opentelemetry::trace::TraceId::from(7u128),
            opentelemetry::trace::SpanId::from(u64::from(span)),
            flags.then_some(opentelemetry::trace::TraceFlags::SAMPLED),
        );
    }
    sdk
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Records alike in their keys, in turn through the same leads
    /// (twice over, so that each may find a shape kept): each is
    /// written as the general path writes it.
    #[test]
    fn records_written_with_a_shape_are_as_the_general_path_writes_them(
        records in proptest::collection::vec(alike_record(), 1..10),
        with_scope_attributes: bool,
    ) {
        // The first record, with no map to flatten and no stack trace
        // (left out of the fields), can be written with a shape.
        let shaped = records[0].0.attributes.iter().all(|(key, value)| {
            let trace = key == "exception.stacktrace"
                && matches!(value, AnyValue::String(text) if !text.as_str().trim().is_empty());
            !crate::mapping::is_flattened(value) && !trace
        });
        let records: Vec<_> = records.iter().map(sdk_traced).collect();
        let scope = scope(with_scope_attributes);
        for (gelf, ltsv) in mappers::<Gelf>().iter().zip(&mappers::<Ltsv>()) {
            let (mut in_gelf, mut in_ltsv) = (Leads::default(), Leads::default());
            for record in records.iter().chain(&records) {
                same_with_leads::<Gelf>(gelf, record, &scope, &mut in_gelf);
                same_with_leads::<Ltsv>(ltsv, record, &scope, &mut in_ltsv);
            }
            // Twice the first record: when it takes the fast path, the
            // second time is with the shape the first kept.
            let before = shapes_written(&in_gelf);
            let fast = same_with_leads::<Gelf>(gelf, &records[0], &scope, &mut in_gelf)
                && same_with_leads::<Gelf>(gelf, &records[0], &scope, &mut in_gelf);
            if fast && shaped {
                prop_assert!(shapes_written(&in_gelf) > before);
            }
        }
    }
}

/// A record of target `app` at severity INFO, of `attributes` (in order)
/// and `severity_text`.
fn info(attributes: Vec<(&str, AnyValue)>, severity_text: Option<&str>) -> Record {
    let mut record = plain_record(
        AnyValue::from("hello"),
        attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    record.target = Some("app".to_string());
    record.severity = Some(opentelemetry::logs::Severity::Info);
    record.severity_text = severity_text.map(str::to_string);
    record
}

/// [`info`] as the SDK holds it.
fn info_record(attributes: Vec<(&str, AnyValue)>, severity_text: Option<&str>) -> SdkLogRecord {
    sdk(&info(attributes, severity_text))
}

/// The common record written again is written with its shape; a record
/// of the same keys but another kind of value, of keys in another
/// order, of fewer, more or other keys, with a map to flatten, or after
/// other fixed fields, is not (and is written as the general path
/// writes it).
#[test]
fn only_records_alike_in_names_are_written_with_a_shape() {
    let record = info_record;
    let common = || vec![("k", AnyValue::Int(1)), ("v", AnyValue::from("x"))];
    let others = [
        record(
            vec![("k", AnyValue::from("1")), ("v", AnyValue::from("x"))],
            None,
        ),
        record(vec![("k", AnyValue::Int(1)), ("v", AnyValue::Int(2))], None),
        record(
            vec![("v", AnyValue::from("x")), ("k", AnyValue::Int(1))],
            None,
        ),
        record(vec![("k", AnyValue::Int(1))], None),
        record(
            vec![
                ("k", AnyValue::Int(1)),
                ("v", AnyValue::from("x")),
                ("w", AnyValue::Int(2)),
            ],
            None,
        ),
        record(
            vec![("k", AnyValue::Int(1)), ("w", AnyValue::from("x"))],
            None,
        ),
        record(
            vec![
                ("k", AnyValue::Int(1)),
                (
                    "v",
                    generators::map_of(vec![("w".to_string(), AnyValue::Int(2))]),
                ),
            ],
            None,
        ),
        record(common(), Some("custom")),
    ];
    let scope = scope(false);
    for mapper in mappers::<Gelf>() {
        for other in &others {
            let mut leads = Leads::default();
            assert!(same_with_leads::<Gelf>(
                &mapper,
                &record(common(), None),
                &scope,
                &mut leads
            ));
            assert_eq!(shapes_written(&leads), 0);
            assert!(same_with_leads::<Gelf>(&mapper, other, &scope, &mut leads));
            assert_eq!(shapes_written(&leads), 0);
            assert!(same_with_leads::<Gelf>(
                &mapper,
                &record(common(), None),
                &scope,
                &mut leads
            ));
            assert_eq!(shapes_written(&leads), 1);
        }
    }
}

/// An attribute named as the severity text's field: written with the
/// shape of records without a severity text, it would be sent twice.
#[test]
fn a_shape_kept_after_other_fixed_fields_is_not_used() {
    let mapper = mappers::<Gelf>().swap_remove(0);
    let record = |severity_text| {
        info_record(
            vec![("severity_text", AnyValue::from("mine"))],
            severity_text,
        )
    };
    let scope = scope(false);
    let mut leads = Leads::default();
    assert!(same_with_leads::<Gelf>(
        &mapper,
        &record(None),
        &scope,
        &mut leads
    ));
    assert!(!same_with_leads::<Gelf>(
        &mapper,
        &record(Some("custom")),
        &scope,
        &mut leads
    ));
    assert_eq!(shapes_written(&leads), 0);
}

/// A record of a shape kept that grows past its limit stops being
/// encoded there: here 64 values cut to 200 bytes each, over a frame of
/// 1,500 bytes, would take about 14 KB.
#[test]
fn a_record_past_its_limit_stops_being_encoded_there() {
    let mapper = mappers::<Gelf>().swap_remove(3);
    assert_eq!(mapper.0.max_field_bytes(), 200);
    let scope = scope(false);
    let record = |value: &str| {
        sdk(&plain_record(
            AnyValue::from("hello"),
            (0..64)
                .map(|i| (format!("k{i}"), AnyValue::from(value.to_string())))
                .collect(),
        ))
    };
    let mut leads = Leads::default();
    assert!(same_with_leads::<Gelf>(
        &mapper,
        &record("x"),
        &scope,
        &mut leads
    ));
    let mut out = Vec::new();
    let limit = mapper.1 - 1;
    let scratch = (&mut Vec::new(), &mut leads);
    let long = record(&"y".repeat(1000));
    assert!(!encode_fused::<Gelf>(
        &mapper.0, &long, &scope, limit, &mut out, scratch
    ));
    assert!(out.is_empty());
    assert!(out.capacity() < 4 * mapper.1, "{}", out.capacity());
}

/// A record with a map to flatten keeps no shape, and leaves those
/// kept as they were.
#[test]
fn a_record_that_keeps_no_shape_leaves_the_others() {
    let mapper = mappers::<Gelf>().swap_remove(0);
    let scope = scope(false);
    let keyed = |key: &str, value: AnyValue| {
        sdk(&plain_record(
            AnyValue::from("hello"),
            vec![(key.to_string(), value)],
        ))
    };
    let mut leads = Leads::default();
    let callsites: Vec<_> = (0..4)
        .map(|i| keyed(&format!("k{i}"), AnyValue::Int(1)))
        .collect();
    for callsite in &callsites {
        assert!(same_with_leads::<Gelf>(
            &mapper, callsite, &scope, &mut leads
        ));
    }
    let map = generators::map_of(vec![("a".to_string(), AnyValue::Int(2))]);
    assert!(same_with_leads::<Gelf>(
        &mapper,
        &keyed("m", map),
        &scope,
        &mut leads
    ));
    for callsite in &callsites {
        let before = shapes_written(&leads);
        assert!(same_with_leads::<Gelf>(
            &mapper, callsite, &scope, &mut leads
        ));
        assert_eq!(shapes_written(&leads), before + 1);
    }
}

/// Past the shapes a lead keeps, each new one takes the place of the
/// least recently used; records of many or long keys keep none.
#[test]
fn shapes_are_few_and_small() {
    let mapper = mappers::<Gelf>().swap_remove(0);
    let scope = scope(false);
    let keyed = |keys: &[String]| {
        sdk(&plain_record(
            AnyValue::from("hello"),
            keys.iter().map(|k| (k.clone(), AnyValue::Int(1))).collect(),
        ))
    };
    // Twice each record: whether the second was written with a shape.
    let twice = |leads: &mut Leads, record: &SdkLogRecord| {
        let before = shapes_written(leads);
        for _ in 0..2 {
            assert!(same_with_leads::<Gelf>(&mapper, record, &scope, leads));
        }
        shapes_written(leads) - before
    };
    let mut leads = Leads::default();
    let callsites: Vec<_> = (0..5).map(|i| keyed(&[format!("k{i}")])).collect();
    for callsite in &callsites[..4] {
        assert_eq!(twice(&mut leads, callsite), 1);
    }
    // The fifth replaces the first, the least recently used.
    assert_eq!(twice(&mut leads, &callsites[4]), 1);
    let before = shapes_written(&leads);
    assert!(same_with_leads::<Gelf>(
        &mapper,
        &callsites[1],
        &scope,
        &mut leads
    ));
    assert_eq!(shapes_written(&leads) - before, 1);
    assert!(same_with_leads::<Gelf>(
        &mapper,
        &callsites[0],
        &scope,
        &mut leads
    ));
    assert_eq!(shapes_written(&leads) - before, 1);
    let many: Vec<_> = (0..65).map(|i| format!("k{i}")).collect();
    assert_eq!(twice(&mut leads, &keyed(&many[..64])), 1);
    assert_eq!(twice(&mut leads, &keyed(&many)), 0);
    // GELF's names are 5 bytes longer than their keys: `,"_` and `":`
    // (keys of at most `MAX_KEY_BYTES`, which are not cut).
    let keys = |last: usize| {
        ["a", "b", "c"]
            .map(|k| k.repeat(250))
            .into_iter()
            .chain(["d".repeat(last)])
    };
    assert_eq!(twice(&mut leads, &keyed(&keys(254).collect::<Vec<_>>())), 1);
    assert_eq!(twice(&mut leads, &keyed(&keys(255).collect::<Vec<_>>())), 0);
}

#[test]
fn names_start_where_the_writers_say() {
    let field = Field {
        key: "some_key".into(),
        suffix: "_long",
        value: crate::mapping::FieldValue::Int(1),
    };
    let mut out = Vec::new();
    Gelf::encode_field(&field, &mut out);
    assert_eq!(&out[Gelf::NAME_AT..][..13], b"some_key_long");
    out.clear();
    Ltsv::encode_field(&field, &mut out);
    assert_eq!(&out[Ltsv::NAME_AT..][..13], b"some_key_long");
}

/// Each key once, as docs/mapping.md ranks them: static extras, then record
/// attributes, then the record's own fields (the target here), then scope
/// attributes, then resource attributes. Literal values, on both paths.
#[test]
fn names_shared_across_sources_take_the_higher_ones_value() {
    let options = MappingOptions {
        extras: vec![("tok".to_string(), Value::from("extra"))],
        ..MappingOptions::default()
    };
    let mut mapper = Mapper::new(&options);
    mapper.pre_encode(Gelf::encode_field, Gelf::encode_name, Gelf::encode_host);
    mapper.set_resource(
        &Resource::builder_empty()
            .with_service_name("from-resource")
            .with_attribute(KeyValue::new("shared", "resource"))
            .with_attribute(KeyValue::new("target", "resource"))
            .with_attribute(KeyValue::new("only_resource", "resource"))
            .build(),
    );
    let scope = InstrumentationScope::builder("lib")
        .with_attributes([
            KeyValue::new("service.name", "from-scope"),
            KeyValue::new("shared", "scope"),
            KeyValue::new("target", "scope"),
            KeyValue::new("both", "scope"),
        ])
        .build();
    let record = Record {
        body: Some(AnyValue::from("hello")),
        attributes: vec![
            ("tok".to_string(), AnyValue::from("record")),
            ("both".to_string(), AnyValue::from("record")),
        ],
        severity: None,
        severity_text: None,
        timestamp: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        target: Some("app::db".to_string()),
        event_name: None,
    };
    let sdk = sdk(&record);
    let mut general = Vec::new();
    encode_framed::<Gelf>(
        mapper.map(&sdk, &scope),
        Framing::Nul,
        1 << 20,
        &mut general,
    );
    let mut fast = Vec::new();
    let taken = encode_fused::<Gelf>(
        &mapper,
        &sdk,
        &scope,
        1 << 20,
        &mut fast,
        (&mut Vec::new(), &mut Leads::default()),
    );
    fast.push(0);
    let mut frames = vec![general];
    if taken {
        frames.push(fast);
    }
    for frame in frames {
        let json: serde_json::Value = serde_json::from_slice(&frame[..frame.len() - 1]).unwrap();
        for (name, value) in [
            ("_tok", "extra"),
            ("_both", "record"),
            ("_target", "app::db"),
            ("_shared", "scope"),
            ("_service_name", "from-scope"),
            ("_only_resource", "resource"),
        ] {
            assert_eq!(json[name], value, "{name} in {json}");
        }
    }
}
