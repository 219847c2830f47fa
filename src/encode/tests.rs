use super::*;
use crate::json::needs_escape;
use crate::mapping::{EpochMicros, Field, FieldValue, TRUNCATED_MARKER};
use std::borrow::Cow;

fn sample() -> MappedRecord<'static> {
    MappedRecord {
        host: "box-1",
        host_wire: &[],
        short_message: Cow::Borrowed("hello \"world\"\u{0}"),
        short_plain: false,
        full_message: Some(Cow::Borrowed("line 1\nline\t2")),
        time: EpochMicros {
            secs: 1_700_000_000,
            micros: 42,
        },
        level: 3,
        fields: vec![
            Field {
                key: Cow::Borrowed("user"),
                suffix: "",
                value: FieldValue::Str(Cow::Borrowed("alice\\bob")),
            },
            Field {
                key: Cow::Borrowed("n"),
                suffix: "",
                value: FieldValue::Int(-7),
            },
            Field {
                key: Cow::Borrowed("ratio"),
                suffix: "",
                value: FieldValue::Float(0.25),
            },
        ],
        protected_tail: 0,
        statics: None,
    }
}

/// A record's head as encoded with the host encoded apart once, and as
/// encoded with the record.
fn heads<W: Writer>(host: &str) -> (Vec<u8>, Vec<u8>) {
    let mut host_wire = Vec::new();
    W::encode_host(host, &mut host_wire);
    let mut record = sample();
    record.host = host;
    let (mut apart, mut with) = (Vec::new(), Vec::new());
    W::encode_head(&record, &mut with);
    record.host_wire = &host_wire;
    W::encode_head(&record, &mut apart);
    (apart, with)
}

#[test]
fn a_host_encoded_once_is_written_as_the_record_would_write_it() {
    for host in ["box-1", "a \"quoted\"\thost\\", "h\u{0}\n\u{1f}é"] {
        let (apart, with) = heads::<Gelf>(host);
        assert_eq!(apart, with, "{host:?}");
        let head = String::from_utf8(apart).unwrap() + "}";
        let value: serde_json::Value = serde_json::from_str(&head).unwrap();
        assert_eq!(value["host"], host, "{head}");
        let (apart, with) = heads::<Ltsv>(host);
        assert_eq!(apart, with, "{host:?}");
        let line = String::from_utf8(apart).unwrap();
        assert_eq!(
            line.split('\t').nth(1).map(|f| f.starts_with("host:")),
            Some(true)
        );
        assert_eq!(line.matches('\t').count(), 4, "{line:?}");
    }
}

#[test]
fn gelf_frame() {
    let mut out = Vec::new();
    encode_framed::<Gelf>(sample(), Framing::Nul, 1 << 20, &mut out);
    assert_eq!(out.pop(), Some(0));
    assert!(!out.contains(&0));
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        concat!(
            r#"{"version":"1.1","host":"box-1","short_message":"hello \"world\"\u0000","#,
            r#""full_message":"line 1\nline\t2","timestamp":1700000000.000042,"level":3,"#,
            r#""_user":"alice\\bob","_n":-7,"_ratio":0.25}"#
        )
    );
}

#[test]
fn ltsv_line() {
    let mut out = Vec::new();
    encode_framed::<Ltsv>(sample(), Framing::Newline, 1 << 20, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "time:2023-11-14T22:13:20.000042Z\thost:box-1\tlevel:3\t\
         message:hello \"world\"\\0\tfull_message:line 1\\nline\\t2\t\
         user:alice\\\\bob\tn:-7\tratio:0.25\n"
    );
}

#[test]
fn oversized_records_are_cut_not_dropped() {
    for (max, body) in [
        (4096, "x".repeat(100_000)),
        (4096, "\u{1}".repeat(100_000)),
        (10_000, "é".repeat(50_000)),
    ] {
        let mut record = sample();
        record.short_message = Cow::Owned(body.clone());
        // Cuts of a plain text stay plain (the encoders assert it).
        record.short_plain = !needs_escape(body.as_bytes());
        record.full_message = Some(Cow::Owned(body.clone()));
        record.fields.push(Field {
            key: Cow::Borrowed("big"),
            suffix: "",
            value: FieldValue::Str(Cow::Owned(body)),
        });
        for framing in [Framing::Nul, Framing::Newline] {
            let mut out = Vec::new();
            encode_framed::<Gelf>(record.clone(), framing, max, &mut out);
            assert!(out.len() <= max, "{} > {max}", out.len());
            let json: serde_json::Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
            let short = json["short_message"].as_str().unwrap();
            assert!(short.ends_with(TRUNCATED_MARKER.trim_start()), "{short}");
            assert_eq!(json["_n"], -7);

            let mut out = Vec::new();
            encode_framed::<Ltsv>(record.clone(), framing, max, &mut out);
            assert!(out.len() <= max, "{} > {max}", out.len());
        }
    }
}

/// The width each format's escapes give a text: what its field writer
/// writes for it, less the key and the quotes.
#[test]
fn escape_widths_agree_with_the_encoders() {
    let field = |text: &str| Field {
        key: Cow::Borrowed("k"),
        suffix: "",
        value: FieldValue::Str(Cow::Owned(text.to_string())),
    };
    let chars = (0u8..0x80)
        .map(char::from)
        .chain(['\u{80}', 'é', '€', '😀', '\u{2028}']);
    for c in chars {
        let text = c.to_string();
        let mut out = Vec::new();
        Gelf::encode_field(&field(&text), &mut out);
        assert_eq!(Gelf::ESCAPES.width(&text), out.len() - 8, "GELF {c:?}");
        let mut out = Vec::new();
        Ltsv::encode_field(&field(&text), &mut out);
        assert_eq!(Ltsv::ESCAPES.width(&text), out.len() - 3, "LTSV {c:?}");
    }
}

/// A short message said plain is written as one that is not: no format
/// escapes a character JSON leaves as is.
#[test]
fn plain_short_messages_are_written_as_any_other() {
    let chars = (0u8..0x80)
        .map(char::from)
        .chain(['\u{80}', 'é', '€', '😀', '\u{2028}']);
    for c in chars {
        let text = format!("a{c}b");
        if needs_escape(text.as_bytes()) {
            continue;
        }
        assert_eq!(Gelf::ESCAPES.width(&text), text.len(), "GELF {c:?}");
        assert_eq!(Ltsv::ESCAPES.width(&text), text.len(), "LTSV {c:?}");
        let mut record = sample();
        record.short_message = Cow::Owned(text);
        let encode = |record: &MappedRecord<'_>| {
            let (mut gelf, mut ltsv) = (Vec::new(), Vec::new());
            Gelf::encode(record, &mut gelf);
            Ltsv::encode(record, &mut ltsv);
            (gelf, ltsv)
        };
        let unknown = encode(&record);
        record.short_plain = true;
        assert_eq!(encode(&record), unknown, "{c:?}");
    }
}

#[test]
fn a_prefix_within_a_width_ends_on_a_character() {
    let escapes = &Gelf::ESCAPES;
    // 'a' 1, '\u{1}' 6, 'é' 2 bytes of width 1 each, '"' 2.
    let text = "a\u{1}é\"";
    let cases = [
        (0, 0),
        (1, 1),
        (6, 1),
        (7, 2),
        (8, 2),
        (9, 4),
        (10, 4),
        (11, 5),
    ];
    for (budget, len) in cases {
        let (got, width) = escapes.prefix_within(text, budget);
        assert_eq!(got, len, "budget {budget}");
        assert_eq!(width, escapes.width(&text[..len]), "budget {budget}");
    }
}

/// A cut record keeps as much as fits, however its text escapes.
/// `record` framed as GELF within `max` bytes, which must cut it: the
/// frame and its JSON read back.
fn cut_gelf(record: &MappedRecord<'_>, max: usize) -> (Vec<u8>, serde_json::Value) {
    let mut out = Vec::new();
    assert!(encode_framed::<Gelf>(
        record.clone(),
        Framing::Nul,
        max,
        &mut out
    ));
    let json = serde_json::from_slice(&out[..out.len() - 1]).expect("a JSON frame");
    (out, json)
}

#[test]
fn cut_records_keep_all_the_frame_can_hold() {
    let fits = |max: usize, out: &[u8]| (max - 32..=max).contains(&out.len());
    for body in ["x", "\u{1}", "\"", "é", "a\u{1}\"é\\\n"] {
        let body = body.repeat(20_000);
        // No full message, a long one, a short one (dropped first).
        for full in [None, Some(body.as_str()), Some("at main.rs:1")] {
            let mut record = sample();
            record.short_message = Cow::Owned(body.clone());
            record.short_plain = !needs_escape(body.as_bytes());
            record.full_message = full.map(|full| Cow::Owned(full.to_string()));
            for max in [1024, 4096, 16_384] {
                let (out, json) = cut_gelf(&record, max);
                assert!(fits(max, &out), "{max}: {}", out.len());
                let short = json["short_message"].as_str().unwrap();
                let kept = short.strip_suffix(TRUNCATED_MARKER).unwrap_or(short);
                assert!(body.starts_with(kept), "{max}: {short}");
                if full.is_some_and(|full| full.len() < 100) {
                    assert!(short.ends_with(TRUNCATED_MARKER), "{max}: {short}");
                }

                let mut out = Vec::new();
                assert!(encode_framed::<Ltsv>(
                    record.clone(),
                    Framing::Nul,
                    max,
                    &mut out
                ));
                assert!(fits(max, &out), "{max}: {}", out.len());
            }
        }
    }
}

/// Whatever the limit, a record whose full message was dropped says so
/// with one marker at the end of its short message.
#[test]
fn a_full_message_dropped_whole_marks_the_short_one_once() {
    let mut record = sample();
    record.short_message = Cow::Borrowed("hello world");
    record.full_message = Some(Cow::Owned("y".repeat(1000)));
    let mut whole = Vec::new();
    encode_framed::<Gelf>(record.clone(), Framing::Nul, 1 << 20, &mut whole);
    let mut dropped = 0;
    for max in (whole.len() - 1100..whole.len()).step_by(3) {
        let (_, json) = cut_gelf(&record, max);
        let short = json["short_message"].as_str().expect("a short message");
        if json.get("full_message").is_none() {
            dropped += 1;
            assert!(short.ends_with(TRUNCATED_MARKER), "{max}: {short}");
            assert_eq!(short.matches(TRUNCATED_MARKER).count(), 1, "{max}: {short}");
        }
    }
    assert!(dropped > 0);
}

fn unpack(compression: Compression, payload: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match compression {
        Compression::Gzip => {
            assert_eq!(payload[..2], [0x1f, 0x8b]);
            flate2::read::GzDecoder::new(payload)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zlib => {
            assert_eq!(payload[0], 0x78);
            flate2::read::ZlibDecoder::new(payload)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::None => out.extend_from_slice(payload),
    }
    out
}

const COMPRESSIONS: [Compression; 3] = [Compression::Gzip, Compression::Zlib, Compression::None];

/// A codec's writers are functions: its Debug names it and no more.
#[test]
fn codecs_debug_opaquely() {
    use sealed::Sealed;
    assert_eq!(format!("{:?}", Gelf::CODEC), "Codec { .. }");
    assert_eq!(format!("{:?}", Ltsv::CODEC), "Codec { .. }");
}

/// A datagram over the limit even compressed whose fields are numbers,
/// which are never cut, loses its last fields, as many as it must: it keeps
/// its short message, marked, and the first fields.
#[test]
fn a_datagram_of_numbers_too_large_keeps_the_first_that_fit() {
    let mut record = sample();
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    record.fields = (0..3000)
        .map(|i| Field {
            key: Cow::Owned(format!("f{i}")),
            suffix: "",
            value: FieldValue::Int(next() as i64),
        })
        .collect();
    for compression in COMPRESSIONS {
        let packing = Packing::Datagram {
            compression,
            max_plain: 1 << 20,
            max_packed: 4096,
        };
        let mut out = Vec::new();
        assert!(packing.pack::<Gelf>(record.clone(), &mut out, &mut PackScratch::default()));
        assert!(out.len() <= 4096, "{compression:?}: {} bytes", out.len());
        let json: serde_json::Value = serde_json::from_slice(&unpack(compression, &out)).unwrap();
        // The full message goes too: the short one says so.
        let short = format!("hello \"world\"\u{0}{TRUNCATED_MARKER}");
        assert_eq!(json["short_message"], short, "{compression:?}");
        let kept = json.as_object().unwrap().len() - 5;
        assert!(kept > 100, "{compression:?}: {kept} fields kept");
        for (i, field) in record.fields.iter().enumerate() {
            let FieldValue::Int(value) = field.value else {
                unreachable!()
            };
            let sent = &json[format!("_f{i}")];
            match i < kept {
                true => assert_eq!(*sent, value, "{compression:?}: f{i}"),
                false => assert!(sent.is_null(), "{compression:?}: f{i} of {kept}"),
            }
        }
    }
}

/// A frame over the limit with many short texts, none worth cutting: the
/// last fields go, as many as needed, and the first (the resource's and
/// the record's own come first) stay; the extras are never dropped.
#[test]
fn a_frame_of_many_short_texts_too_large_keeps_its_first_fields() {
    for limit in [4096, 20_000] {
        let mut record = sample();
        record.full_message = None;
        let mut fields = vec![Field {
            key: Cow::Borrowed("service_name"),
            suffix: "",
            value: FieldValue::Str(Cow::Borrowed("svc")),
        }];
        fields.extend((0..2000).map(|i| Field {
            key: Cow::Owned(format!("attr{i}")),
            suffix: "",
            value: FieldValue::Str(Cow::Owned("x".repeat(60))),
        }));
        fields.push(Field {
            key: Cow::Borrowed("token"),
            suffix: "",
            value: FieldValue::Str(Cow::Borrowed("t")),
        });
        record.fields = fields;
        record.protected_tail = 1;
        let mut out = Vec::new();
        assert!(encode_framed::<Gelf>(record, Framing::Nul, limit, &mut out));
        assert!(out.len() <= limit, "{} bytes", out.len());
        // Nearly full: only what it had to lose went.
        assert!(out.len() > limit - 200, "{} bytes", out.len());
        let json: serde_json::Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
        assert_eq!(json["_service_name"], "svc");
        assert_eq!(json["_token"], "t");
        assert!(json["short_message"]
            .as_str()
            .unwrap()
            .ends_with(TRUNCATED_MARKER));
        let kept = (0..2000)
            .take_while(|i| json[format!("_attr{i}")] == "x".repeat(60))
            .count();
        assert!(kept > 0);
        assert!(
            json[format!("_attr{kept}")].is_null(),
            "only a prefix is kept"
        );
    }
}

/// A record cut to fit is cut alike whatever the buffer already holds.
#[test]
fn a_cut_does_not_depend_on_the_frames_before() {
    // One text too long alone, or several that fit alone but not together.
    let mut long = sample();
    long.short_message = Cow::Owned(text(1, 10_000));
    let many = four_texts();
    for (record, packing) in [long, many].into_iter().flat_map(|record| {
        [
            Packing::Framed {
                framing: Framing::Nul,
                max_frame: 4096,
            },
            Packing::Datagram {
                compression: Compression::None,
                max_plain: 4096,
                max_packed: 1 << 20,
            },
            Packing::Datagram {
                compression: Compression::Gzip,
                max_plain: 1 << 20,
                max_packed: 4096,
            },
        ]
        .map(|packing| (record.clone(), packing))
    }) {
        let mut alone = Vec::new();
        assert!(packing.pack::<Gelf>(record.clone(), &mut alone, &mut PackScratch::default()));
        let mut after = vec![b'x'; 3000];
        assert!(packing.pack::<Gelf>(record.clone(), &mut after, &mut PackScratch::default()));
        assert_eq!(after[3000..], alone[..], "{packing:?}");
    }
}

/// A record that fills a frame to the last byte, delimiter included, is
/// sent whole; one byte less room and it is cut.
#[test]
fn a_record_exactly_filling_its_frame_is_not_cut() {
    let mut whole = Vec::new();
    assert!(!encode_framed::<Gelf>(
        sample(),
        Framing::Nul,
        1 << 20,
        &mut whole
    ));
    let mut out = Vec::new();
    let cut = encode_framed::<Gelf>(sample(), Framing::Nul, whole.len(), &mut out);
    assert!(!cut && out == whole);
    out.clear();
    assert!(encode_framed::<Gelf>(
        sample(),
        Framing::Nul,
        whole.len() - 1,
        &mut out
    ));
    assert!(out.len() < whole.len(), "{} bytes", out.len());
}

#[test]
fn framed_packing_is_encode_framed() {
    let packing = Packing::Framed {
        framing: Framing::Nul,
        max_frame: 4096,
    };
    let mut record = sample();
    record.full_message = Some(Cow::Owned("y".repeat(10_000)));
    for record in [sample(), record] {
        let (mut packed, mut framed) = (Vec::new(), Vec::new());
        let cut = packing.pack::<Gelf>(record.clone(), &mut packed, &mut PackScratch::default());
        let cut_framed = encode_framed::<Gelf>(record, Framing::Nul, 4096, &mut framed);
        assert_eq!((packed, cut), (framed, cut_framed));
    }
}

#[test]
fn datagrams_are_compressed_without_delimiter() {
    let mut plain = Vec::new();
    Gelf::encode(&sample(), &mut plain);
    for compression in COMPRESSIONS {
        let packing = Packing::Datagram {
            compression,
            max_plain: 1 << 20,
            max_packed: 1 << 20,
        };
        let mut scratch = PackScratch::default();
        let mut out = b"before".to_vec();
        assert!(!packing.pack::<Gelf>(sample(), &mut out, &mut scratch));
        let first = out.len();
        // The compressor is reused from record to record.
        assert!(!packing.pack::<Gelf>(sample(), &mut out, &mut scratch));
        assert_eq!(&out[..6], b"before");
        assert_eq!(out[6..first], out[first..]);
        assert_eq!(
            unpack(compression, &out[6..first]),
            plain,
            "{compression:?}"
        );
    }
    // A large text compresses well.
    let mut record = sample();
    record.full_message = Some(Cow::Owned("abcdefgh\n".repeat(50_000)));
    for compression in [Compression::Gzip, Compression::Zlib] {
        let mut out = Vec::new();
        Packing::Datagram {
            compression,
            max_plain: 1 << 20,
            max_packed: 1 << 20,
        }
        .pack::<Gelf>(record.clone(), &mut out, &mut PackScratch::default());
        assert!(out.len() < 10_000, "{compression:?}: {}", out.len());
        let json: serde_json::Value = serde_json::from_slice(&unpack(compression, &out)).unwrap();
        assert_eq!(json["full_message"].as_str().unwrap().len(), 450_000);
    }
}

/// Text of `len` bytes: `kind` 0 compresses well, 1 hardly (random
/// letters and digits), 2 hardly and has multi-byte characters.
fn text(kind: u8, len: usize) -> String {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(len + 8);
    while out.len() < len {
        let r = next();
        match kind {
            0 => {
                out.push_str(["order ", "paid ", "retry ", "cache "][(r % 4) as usize]);
                out.push_str(&(r % 1000).to_string());
                out.push(' ');
            }
            1 => out.push(char::from(
                b"abcdefghijklmnopqrstuvwxyz0123456789"[(r % 36) as usize],
            )),
            _ => out.push(['é', '€', '日', 'a', 'Z', '7'][(r % 6) as usize]),
        }
    }
    out
}

/// The sample with four fields of 2,000 random characters: texts that
/// fit a 4 KiB frame alone, not together.
fn four_texts() -> MappedRecord<'static> {
    let mut record = sample();
    let body = text(1, 8000);
    for (key, part) in ["a", "b", "c", "d"]
        .into_iter()
        .zip(body.as_bytes().chunks(2000))
    {
        record.fields.push(Field {
            key: Cow::Borrowed(key),
            suffix: "",
            value: FieldValue::Str(Cow::Owned(String::from_utf8(part.to_vec()).unwrap())),
        });
    }
    record
}

/// A datagram over the plain limit once escaped, compressed or not, is cut
/// to it in one try. (Over the limit even before escaping, it is cut before
/// it is encoded at all.)
#[test]
fn a_datagram_over_the_plain_limit_is_cut_in_one_try() {
    let mut record = sample();
    for key in ["a", "b", "c", "d"] {
        // 900 bytes, half of them quotes: 1,350 once escaped.
        record.fields.push(Field {
            key: Cow::Borrowed(key),
            suffix: "",
            value: FieldValue::Str(Cow::Owned("\"a".repeat(450))),
        });
    }
    assert!(record.least_width() < 4096);
    let mut scratch = PackScratch::default();
    let surely_over = Packing::Datagram {
        compression: Compression::None,
        max_plain: 3000,
        max_packed: 1 << 20,
    };
    assert!(surely_over.pack::<Gelf>(record.clone(), &mut Vec::new(), &mut scratch));
    assert_eq!(scratch.encoded, 1, "cut before encoding");
    for compression in COMPRESSIONS {
        let packing = Packing::Datagram {
            compression,
            max_plain: 4096,
            max_packed: 1 << 20,
        };
        let mut out = Vec::new();
        let mut scratch = PackScratch::default();
        assert!(packing.pack::<Gelf>(record.clone(), &mut out, &mut scratch));
        assert_eq!(scratch.encoded, 2, "{compression:?}");
        let plain = unpack(compression, &out);
        assert!(
            (3841..=4096).contains(&plain.len()),
            "{compression:?}: {}",
            plain.len()
        );
    }
}

/// Packs `record` as a datagram of at most `max_packed` bytes (2 MiB
/// before compression), which must cut it to what fits, not to a stub;
/// returns the datagram and the tries the cut took.
fn cut_datagram(
    record: MappedRecord<'_>,
    compression: Compression,
    max_packed: usize,
    case: &str,
) -> (Vec<u8>, usize) {
    let packing = Packing::Datagram {
        compression,
        max_plain: 2 << 20,
        max_packed,
    };
    let mut out = Vec::new();
    let mut scratch = PackScratch::default();
    assert!(
        packing.pack::<Gelf>(record, &mut out, &mut scratch),
        "{case}"
    );
    assert!(out.len() <= max_packed, "{case}: {} bytes", out.len());
    assert!(
        out.len() > max_packed * 15 / 16,
        "{case}: {} bytes",
        out.len()
    );
    (out, scratch.encoded - 1)
}

/// A record whose texts compress unlike each other (the cut takes the
/// compressible ones first, and saves little) is cut to fit as closely.
#[test]
fn records_of_mixed_compressibility_are_cut_to_fit() {
    let field = |key: &'static str, kind: u8, len: usize| Field {
        key: Cow::Borrowed(key),
        suffix: "",
        value: FieldValue::Str(Cow::Owned(text(kind, len))),
    };
    // The fields, a full message or not, and the field that hardly
    // compresses.
    let cases = [
        ([field("a", 0, 100_000), field("b", 1, 10_000)], false, "_b"),
        ([field("a", 1, 10_000), field("b", 0, 100_000)], false, "_a"),
        ([field("a", 2, 10_000), field("b", 0, 100_000)], true, "_a"),
    ];
    for (fields, full, random) in cases {
        for compression in [Compression::Gzip, Compression::Zlib] {
            for max_packed in [2_000, 8_000] {
                let mut record = sample();
                record.fields = fields.to_vec();
                record.full_message = full.then(|| Cow::Owned(text(0, 150_000)));
                let case = format!("{compression:?} {max_packed} {full} {random}");
                let (out, tries) = cut_datagram(record, compression, max_packed, &case);
                // A few tries, well within the search's ten.
                assert!(tries <= 6, "{case}: {tries}");
                let json: serde_json::Value =
                    serde_json::from_slice(&unpack(compression, &out)).unwrap();
                // The text that hardly compresses keeps more than a stub.
                let kept = json[random].as_str().unwrap_or("");
                assert!(kept.len() > 1000, "{case}: {} bytes kept", kept.len());
            }
        }
    }
}

#[test]
fn datagrams_too_large_compressed_are_cut_to_fit() {
    for compression in COMPRESSIONS {
        for kind in 0..3 {
            // Every body is over the limit even compressed (the
            // compressible one by about 4 to 1).
            for (max_packed, body_len) in [(8_000, 60_000), (40_000, 200_000)] {
                for multi_line in [false, true] {
                    let body = text(kind, body_len);
                    let mut record = sample();
                    record.short_message = Cow::Owned(body.clone());
                    record.full_message = multi_line.then(|| Cow::Owned(body.clone()));
                    let case = format!("{compression:?} kind {kind} {max_packed} {multi_line}");
                    let (out, tries) = cut_datagram(record, compression, max_packed, &case);
                    // Text alike throughout is cut in one try (one more
                    // or two when the full message drops whole).
                    assert!(tries == 1 || multi_line && tries <= 3, "{case}: {tries}");
                    let json: serde_json::Value =
                        serde_json::from_slice(&unpack(compression, &out)).unwrap();
                    // The full message goes first, then the short one.
                    if let Some(full) = json.get("full_message") {
                        assert!(full.as_str().unwrap().ends_with(TRUNCATED_MARKER), "{case}");
                    }
                    let kept = json["short_message"].as_str().unwrap();
                    let kept = kept.strip_suffix(TRUNCATED_MARKER).expect("marked");
                    assert!(body.starts_with(kept), "{case}");
                    assert_eq!(json["_n"], -7, "{case}");
                }
            }
        }
    }
}
