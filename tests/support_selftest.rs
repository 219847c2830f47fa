//! Self-test of the shared test support: the test PKI, the in-process
//! receiver, the private rsyslogd and the Graylog / LTSV checkers, exercised
//! with hand-written frames and raw TCP and rustls clients.

use djehouty_testkit as support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::ProtocolVersion;
use serde_json::{json, Value};

use support::certs::{send_plain, send_tls, TlsClient};
use support::{
    assert_graylog_accepts, assert_ltsv_line_ok, rsyslogd_path, Framing, Input, Receiver, Rsyslog,
    TestPki, TlsVersions,
};

const WAIT: Duration = Duration::from_secs(5);

/// Runs `f`, which must panic, and returns its panic message.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Joins frames, each followed by `delimiter`.
fn delimited(frames: &[&[u8]], delimiter: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        out.extend_from_slice(frame);
        out.push(delimiter);
    }
    out
}

fn gelf(short_message: &str, extra: &[(&str, Value)]) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    object.insert("version".into(), json!("1.1"));
    object.insert("host".into(), json!("selftest-host"));
    object.insert("short_message".into(), json!(short_message));
    object.insert("timestamp".into(), json!(1_700_000_000.123));
    object.insert("level".into(), json!(6));
    for (k, v) in extra {
        object.insert((*k).to_string(), v.clone());
    }
    serde_json::to_vec(&Value::Object(object)).unwrap()
}

// ---------------------------------------------------------------- PKI

#[test]
fn pki_writes_pem_files_and_matching_der() {
    let pki = TestPki::generate();
    let ca = std::fs::read_to_string(&pki.ca_pem).unwrap();
    let cert = std::fs::read_to_string(&pki.cert_pem).unwrap();
    let key = std::fs::read_to_string(&pki.key_pem).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 PEM expected"
    );
    assert!(
        pki.ca_pem.is_absolute()
            && pki
                .ca_pem
                .starts_with(pki.dir.path().canonicalize().unwrap())
    );
    assert_eq!(pki.cert_chain.len(), 1);
    assert_ne!(pki.ca_der, pki.cert_chain[0]);
    let other = TestPki::generate_other();
    assert_ne!(other.ca_der, pki.ca_der);
}

// ---------------------------------------------------------------- receiver

#[test]
fn receiver_splits_nul_frames_and_keeps_partial_data() {
    let rx = Receiver::tcp(Framing::Nul);
    assert!(rx.addr().ip().is_loopback());
    let mut bytes = delimited(&[b"one", b"", b"two\nwith LF", b"\xff\xfe"], 0);
    bytes.extend_from_slice(b"dangling");
    send_plain(rx.addr(), &bytes).unwrap();
    let frames = rx.wait_frames(4, WAIT);
    assert_eq!(
        frames,
        vec![
            b"one".to_vec(),
            vec![],
            b"two\nwith LF".to_vec(),
            b"\xff\xfe".to_vec()
        ]
    );
    rx.wait_closed(1, WAIT);
    assert_eq!(rx.partial(), vec![b"dangling".to_vec()]);
    assert_eq!(rx.connections(), 1);
    assert!(rx.errors().is_empty(), "{:?}", rx.errors());
    let message = panic_message(|| rx.assert_no_partial());
    assert!(message.contains("dangling"), "{message}");
}

#[test]
fn receiver_accepts_concurrent_connections_and_frames_across_reads() {
    let rx = Receiver::tcp(Framing::Newline);
    let addr = rx.addr();
    let senders: Vec<_> = (0..4)
        .map(|c| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                for i in 0..50 {
                    bytes.extend_from_slice(format!("conn {c} line {i}\n").as_bytes());
                }
                send_plain(addr, &bytes).unwrap();
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let frames = rx.wait_frames(200, WAIT);
    assert_eq!(frames.len(), 200);
    assert_eq!(rx.connections(), 4);
    rx.wait_closed(4, WAIT);
    rx.assert_no_partial();
    // Each connection's lines arrive in order.
    for frame in rx.received() {
        let text = String::from_utf8(frame.bytes).unwrap();
        assert!(text.starts_with("conn "), "{text}");
    }

    // A frame cut across two writes is reassembled.
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    use std::io::Write;
    sock.write_all(b"split ").unwrap();
    sock.flush().unwrap();
    thread::sleep(Duration::from_millis(50));
    sock.write_all(b"frame\n").unwrap();
    drop(sock);
    let frames = rx.wait_frames(201, WAIT);
    assert_eq!(frames[200], b"split frame");
}

#[test]
fn receiver_wait_timeout_lists_what_arrived() {
    let rx = Receiver::tcp(Framing::Nul);
    send_plain(rx.addr(), b"only one\0").unwrap();
    rx.wait_frames(1, WAIT);
    let message = panic_message(|| {
        rx.wait_frames(2, Duration::from_millis(100));
    });
    assert!(message.contains("waiting for 2 frame(s)"), "{message}");
    assert!(message.contains("only one"), "{message}");
}

#[test]
fn receiver_tls_negotiates_requested_versions_and_closes_cleanly() {
    let pki = TestPki::generate();
    let cases = [
        (
            TlsVersions::Tls12,
            TlsVersions::Both,
            ProtocolVersion::TLSv1_2,
        ),
        (
            TlsVersions::Tls13,
            TlsVersions::Both,
            ProtocolVersion::TLSv1_3,
        ),
        (
            TlsVersions::Both,
            TlsVersions::Both,
            ProtocolVersion::TLSv1_3,
        ),
        (
            TlsVersions::Both,
            TlsVersions::Tls12,
            ProtocolVersion::TLSv1_2,
        ),
    ];
    for (server, client, expected) in cases {
        let rx = Receiver::tls(Framing::Nul, &pki, server);
        assert!(rx.is_tls());
        let config = pki.client_config(client);
        let version = send_tls(rx.addr(), "localhost", Arc::clone(&config), b"a\0b\0").unwrap();
        assert_eq!(version, expected, "server {server:?}, client {client:?}");
        let version = send_tls(rx.addr(), "127.0.0.1", config, b"c\0").unwrap();
        assert_eq!(version, expected);
        assert_eq!(
            rx.wait_frames(3, WAIT),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        rx.wait_closed(2, WAIT);
        assert!(rx.errors().is_empty(), "{:?}", rx.errors());
        rx.assert_no_partial();
        assert_eq!(rx.tls_versions(), vec![expected, expected]);
        assert_eq!(rx.server_names(), vec![Some("localhost".to_string()), None]);
    }
}

#[test]
fn receiver_tls_large_frame_and_version_mismatch() {
    let pki = TestPki::generate();
    let rx = Receiver::tls(Framing::Newline, &pki, TlsVersions::Tls13);
    let big = vec![b'x'; 300 * 1024];
    let mut client =
        TlsClient::connect(rx.addr(), "localhost", pki.client_config(TlsVersions::Both)).unwrap();
    assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    client.send(&big).unwrap();
    client.send(b"\n").unwrap();
    client.close().unwrap();
    assert_eq!(rx.wait_frames(1, WAIT)[0].len(), big.len());

    let refused = TlsClient::connect(
        rx.addr(),
        "localhost",
        pki.client_config(TlsVersions::Tls12),
    );
    assert!(refused.is_err(), "a TLS 1.2-only client must be refused");
    rx.wait_closed(2, WAIT);
    let errors = rx.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn receiver_tls_is_rejected_by_a_client_trusting_another_ca() {
    let pki = TestPki::generate();
    let other = TestPki::generate_other();
    let rx = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let error = TlsClient::connect(
        rx.addr(),
        "localhost",
        other.client_config(TlsVersions::Both),
    )
    .err()
    .expect("the handshake must fail");
    assert!(error.to_string().contains("certificate"), "{error}");
    rx.wait_closed(1, WAIT);
    assert_eq!(rx.errors().len(), 1, "{:?}", rx.errors());
    assert!(rx.frames().is_empty());
}

#[test]
fn receiver_reports_unclean_tls_close() {
    let pki = TestPki::generate();
    let rx = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let mut client =
        TlsClient::connect(rx.addr(), "localhost", pki.client_config(TlsVersions::Both)).unwrap();
    client.send(b"frame\0").unwrap();
    drop(client); // no close_notify
    rx.wait_closed(1, WAIT);
    assert_eq!(rx.frames(), vec![b"frame".to_vec()]);
    // Dropping a socket with unread data (the server's session tickets)
    // may turn the close into a reset.
    let errors = rx.errors();
    assert!(
        errors.len() == 1 && (errors[0].contains("close_notify") || errors[0].contains("reset")),
        "{errors:?}"
    );
}

#[test]
fn receiver_listens_on_ipv6_loopback() {
    let rx = Receiver::ipv6_tcp(Framing::Nul).expect("this machine has an IPv6 loopback");
    assert_eq!(rx.addr().ip(), std::net::Ipv6Addr::LOCALHOST);
    send_plain(rx.addr(), b"v6\0").unwrap();
    assert_eq!(rx.wait_frames(1, WAIT), vec![b"v6".to_vec()]);

    let pki = TestPki::generate();
    let rx = Receiver::ipv6_tls(Framing::Nul, &pki, TlsVersions::Both).unwrap();
    let version = send_tls(
        rx.addr(),
        "::1",
        pki.client_config(TlsVersions::Both),
        b"tls v6\0",
    )
    .unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_3);
    assert_eq!(rx.wait_frames(1, WAIT), vec![b"tls v6".to_vec()]);
}

#[test]
fn receiver_can_drop_connections_and_keep_listening() {
    let rx = Receiver::tcp(Framing::Nul);
    let mut sock = std::net::TcpStream::connect(rx.addr()).unwrap();
    use std::io::{Read, Write};
    sock.write_all(b"before\0").unwrap();
    rx.wait_frames(1, WAIT);
    rx.drop_connections();
    rx.wait_closed(1, WAIT);
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(sock.read(&mut buf).unwrap_or(0), 0, "server side closed");
    send_plain(rx.addr(), b"after\0").unwrap();
    assert_eq!(rx.wait_frames(2, WAIT)[1], b"after");
    assert_eq!(rx.connections(), 2);
}

// ---------------------------------------------------------------- rsyslog

#[test]
fn rsyslogd_is_installed() {
    assert!(rsyslogd_path().is_file());
}

#[test]
fn rsyslog_receives_gelf_over_tcp_and_tls() {
    let pki = TestPki::generate();
    let rsyslog = Rsyslog::start(&pki);

    let plain = [
        gelf("plain one", &[("_n", json!(1)), ("_f", json!(2.5))]),
        gelf(
            "plain two \u{e9}\u{1F600} \"quoted\" back\\slash",
            &[("_s", json!("x"))],
        ),
        gelf(
            "tab\tand\nnewline",
            &[("full_message", json!("line 1\nline 2"))],
        ),
    ];
    let bytes = delimited(&plain.iter().map(Vec::as_slice).collect::<Vec<_>>(), 0);
    send_plain(rsyslog.addr(Input::GelfTcp), &bytes).unwrap();

    let tls12 = gelf("over TLS 1.2", &[]);
    let version = send_tls(
        rsyslog.addr(Input::GelfTls12),
        "localhost",
        pki.client_config(TlsVersions::Both),
        &delimited(&[&tls12], 0),
    )
    .unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_2);

    let tls13 = gelf("over TLS 1.3", &[]);
    let version = send_tls(
        rsyslog.addr(Input::GelfTls13),
        "127.0.0.1",
        pki.client_config(TlsVersions::Both),
        &delimited(&[&tls13], 0),
    )
    .unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_3);

    // Each TLS input refuses the other version.
    let refused = TlsClient::connect(
        rsyslog.addr(Input::GelfTls12),
        "localhost",
        pki.client_config(TlsVersions::Tls13),
    );
    assert!(refused.is_err(), "the TLS 1.2 input must refuse TLS 1.3");
    let refused = TlsClient::connect(
        rsyslog.addr(Input::GelfTls13),
        "localhost",
        pki.client_config(TlsVersions::Tls12),
    );
    assert!(refused.is_err(), "the TLS 1.3 input must refuse TLS 1.2");

    let expectations = [
        (Input::GelfTcp, plain.to_vec()),
        (Input::GelfTls12, vec![tls12]),
        (Input::GelfTls13, vec![tls13]),
    ];
    for (input, sent) in expectations {
        let received = rsyslog.wait_for(input, sent.len(), WAIT);
        assert_eq!(received.len(), sent.len(), "{input:?}: {received:?}");
        for (frame, got) in sent.iter().zip(&received) {
            assert_eq!(got.raw_bytes, *frame, "{input:?}: raw bytes differ");
            assert_eq!(got.raw.as_bytes(), frame.as_slice());
            let expected: Value = serde_json::from_slice(frame).unwrap();
            assert_eq!(
                got.json.as_ref(),
                Some(&expected),
                "{input:?}: parsed JSON differs"
            );
            let accepted = assert_graylog_accepts(&got.raw_bytes);
            assert_eq!(Value::Object(accepted), expected);
        }
    }

    // Text that is not JSON arrives verbatim, without a parse result, and
    // frames that look octet-counted or syslog-headed are not reinterpreted.
    let odd: [&[u8]; 4] = [
        b"not json",
        b"12 {\"a\":1}",
        b"<13>{\"a\":2}",
        b" {\"lead\":1}\t\n",
    ];
    send_plain(rsyslog.addr(Input::GelfTcp), &delimited(&odd, 0)).unwrap();
    let received = rsyslog.wait_for(Input::GelfTcp, 3 + odd.len(), WAIT);
    for (frame, got) in odd.iter().zip(&received[3..]) {
        assert_eq!(got.raw_bytes, *frame);
    }
    assert_eq!(received[3].json, None);
    assert_eq!(received[4].json, None);
    assert_eq!(received[5].json, None);
    assert_eq!(received[6].json, Some(json!({"lead": 1})));
}

#[test]
fn rsyslog_receives_ltsv_lines_and_nul_frames() {
    let pki = TestPki::generate();
    let rsyslog = Rsyslog::start(&pki);

    let line = |message: &str| -> Vec<u8> {
        format!("time:2024-01-02T03:04:05.678901Z\thost:selftest\tlevel:6\tmessage:{message}\tkey.sub-x:v")
            .into_bytes()
    };
    let tcp_line = [
        line("a\\tb\\nc\\\\d\\re\\0f"),
        line(" leading and trailing "),
        line("caf\u{e9}"),
    ];
    let tcp_nul = [line("nul framed"), line("second")];
    let tls12_line = [line("over TLS 1.2")];
    let tls13_nul = [line("over TLS 1.3")];

    let as_slices = |frames: &[Vec<u8>]| frames.iter().map(|f| f.to_vec()).collect::<Vec<_>>();
    let join = |frames: &[Vec<u8>], delimiter: u8| {
        delimited(
            &frames.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            delimiter,
        )
    };

    send_plain(rsyslog.addr(Input::LtsvTcpLine), &join(&tcp_line, b'\n')).unwrap();
    send_plain(rsyslog.addr(Input::LtsvTcpNul), &join(&tcp_nul, 0)).unwrap();
    let v = send_tls(
        rsyslog.addr(Input::LtsvTls12Line),
        "localhost",
        pki.client_config(TlsVersions::Both),
        &join(&tls12_line, b'\n'),
    )
    .unwrap();
    assert_eq!(v, ProtocolVersion::TLSv1_2);
    let v = send_tls(
        rsyslog.addr(Input::LtsvTls13Nul),
        "127.0.0.1",
        pki.client_config(TlsVersions::Both),
        &join(&tls13_nul, 0),
    )
    .unwrap();
    assert_eq!(v, ProtocolVersion::TLSv1_3);

    for (input, sent) in [
        (Input::LtsvTcpLine, as_slices(&tcp_line)),
        (Input::LtsvTcpNul, as_slices(&tcp_nul)),
        (Input::LtsvTls12Line, as_slices(&tls12_line)),
        (Input::LtsvTls13Nul, as_slices(&tls13_nul)),
    ] {
        let received = rsyslog.wait_for(input, sent.len(), WAIT);
        assert_eq!(received.len(), sent.len(), "{input:?}");
        for (frame, got) in sent.iter().zip(&received) {
            assert_eq!(got.raw_bytes, *frame, "{input:?}");
            assert_eq!(got.json, None);
            let fields = assert_ltsv_line_ok(&got.raw_bytes);
            assert_eq!(fields[0].0, "time");
        }
    }
    let fields = assert_ltsv_line_ok(&rsyslog.received(Input::LtsvTcpLine)[0].raw_bytes);
    assert_eq!(
        fields[3],
        ("message".to_string(), "a\tb\nc\\d\re\0f".to_string())
    );
    assert_eq!(fields[4], ("key.sub-x".to_string(), "v".to_string()));

    // What rsyslog keeps and changes, as documented in the support module.
    let odd: [&[u8]; 5] = [
        b" lead\ttab\r",
        b"",
        b"bad \xff utf8 \x1b esc",
        b"nul\0mid",
        b"last",
    ];
    send_plain(rsyslog.addr(Input::LtsvTcpLine), &delimited(&odd, b'\n')).unwrap();
    let received = rsyslog.wait_for(Input::LtsvTcpLine, 3 + 4, WAIT);
    let raw: Vec<&[u8]> = received[3..]
        .iter()
        .map(|r| r.raw_bytes.as_slice())
        .collect();
    assert_eq!(
        raw,
        vec![
            b" lead\ttab\r".as_slice(),
            b"bad \xff utf8 \x1b esc",
            b"nul#000mid",
            b"last"
        ],
        "empty frames are dropped, embedded NUL becomes #000"
    );
    assert_eq!(received[4].raw, "bad \u{fffd} utf8 \u{1b} esc");
}

#[test]
fn rsyslog_receives_large_frames_whole() {
    let pki = TestPki::generate();
    let rsyslog = Rsyslog::start(&pki);
    // About 200 KiB: several fields just under the per-value limit.
    let chunk = "y".repeat(30_000);
    let fields: Vec<(String, Value)> = (0..7)
        .map(|i| (format!("_chunk{i}"), json!(chunk.clone())))
        .collect();
    let borrowed: Vec<(&str, Value)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let frame = gelf("big", &borrowed);
    assert!(frame.len() > 200_000);

    send_plain(rsyslog.addr(Input::GelfTcp), &delimited(&[&frame], 0)).unwrap();
    send_tls(
        rsyslog.addr(Input::GelfTls13),
        "localhost",
        pki.client_config(TlsVersions::Tls13),
        &delimited(&[&frame, &frame], 0),
    )
    .unwrap();
    let ltsv = format!("time:1\thost:h\tlevel:6\tmessage:{}", "z".repeat(100_000)).into_bytes();
    send_tls(
        rsyslog.addr(Input::LtsvTls12Line),
        "localhost",
        pki.client_config(TlsVersions::Tls12),
        &delimited(&[&ltsv], b'\n'),
    )
    .unwrap();

    for (input, count) in [(Input::GelfTcp, 1), (Input::GelfTls13, 2)] {
        let received = rsyslog.wait_for(input, count, WAIT);
        assert_eq!(received.len(), count);
        for got in &received {
            assert_eq!(
                got.raw_bytes.len(),
                frame.len(),
                "{input:?}: frame split or cut"
            );
            assert_eq!(got.raw_bytes, frame);
            assert!(got.json.is_some());
            assert_graylog_accepts(&got.raw_bytes);
        }
    }
    let received = rsyslog.wait_for(Input::LtsvTls12Line, 1, WAIT);
    assert_eq!(received[0].raw_bytes, ltsv);
}

#[test]
fn rsyslog_wait_timeout_includes_internal_log() {
    let pki = TestPki::generate();
    let rsyslog = Rsyslog::start(&pki);
    let message = panic_message(|| {
        rsyslog.wait_for(Input::LtsvTcpNul, 1, Duration::from_millis(200));
    });
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("rsyslog internal log"), "{message}");
    // The readiness probes (a clean TLS handshake on the TLS inputs) leave
    // nothing in the log but the start notice.
    let log = rsyslog.internal_log();
    assert!(log.contains("] start"), "{log}");
    assert!(
        log.lines().all(|l| l.contains("] start")),
        "unexpected internal messages:\n{log}"
    );
}

// ---------------------------------------------------------------- checkers

fn good_gelf() -> Value {
    json!({
        "version": "1.1",
        "host": "h",
        "short_message": "hello",
        "full_message": "hello\nworld",
        "timestamp": 1_700_000_000.5,
        "level": 3,
        "_int": -4,
        "_float": 0.25,
        "_str": "value",
        "_dotted.name-x@y": "ok",
    })
}

fn gelf_with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut value = good_gelf();
    change(value.as_object_mut().unwrap());
    serde_json::to_vec(&value).unwrap()
}

fn gelf_rule_broken(frame: &[u8]) -> String {
    let message = panic_message(|| {
        assert_graylog_accepts(frame);
    });
    assert!(message.starts_with("GELF rule broken: "), "{message}");
    message
}

#[test]
fn graylog_checker_accepts_a_good_frame() {
    let frame = serde_json::to_vec(&good_gelf()).unwrap();
    let object = assert_graylog_accepts(&frame);
    assert_eq!(object["_int"], json!(-4));
    // Level and timestamp bounds, integer timestamp.
    assert_graylog_accepts(&gelf_with(|o| {
        o.insert("level".into(), json!(0));
        o.insert("timestamp".into(), json!(1));
    }));
    assert_graylog_accepts(&gelf_with(|o| {
        o.insert("level".into(), json!(7));
        o.remove("full_message");
    }));
    let value = "v".repeat(32_766);
    assert_graylog_accepts(&gelf_with(|o| {
        o.insert("_max".into(), json!(value));
    }));
}

#[test]
fn graylog_checker_names_each_broken_rule() {
    let huge = "m".repeat(2 * 1024 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("frame size", gelf_with(|o| { o.insert("full_message".into(), json!(huge)); })),
        ("UTF-8", b"{\"version\":\"1.1\",\"host\":\"\xff\"}".to_vec()),
        ("JSON object", b"[1,2]".to_vec()),
        ("JSON object", b"{\"version\":\"1.1\"".to_vec()),
        ("JSON object", b"{} {}".to_vec()),
        (
            "duplicate key",
            br#"{"version":"1.1","host":"h","short_message":"m","timestamp":1,"level":1,"_a":1,"_a":2}"#.to_vec(),
        ),
        (
            "duplicate key",
            br#"{"version":"1.1","host":"h","short_message":"m","host":"h","timestamp":1,"level":1}"#.to_vec(),
        ),
        ("version", gelf_with(|o| { o.insert("version".into(), json!("1.0")); })),
        ("version", gelf_with(|o| { o.remove("version"); })),
        ("host", gelf_with(|o| { o.insert("host".into(), json!(" ")); })),
        ("host", gelf_with(|o| { o.insert("host".into(), json!(5)); })),
        ("host", gelf_with(|o| { o.remove("host"); })),
        ("short_message", gelf_with(|o| { o.insert("short_message".into(), json!(" \t\n")); })),
        ("short_message", gelf_with(|o| { o.insert("short_message".into(), json!(null)); })),
        ("short_message", gelf_with(|o| { o.remove("short_message"); })),
        ("full_message", gelf_with(|o| { o.insert("full_message".into(), json!(["a"])); })),
        ("timestamp", gelf_with(|o| { o.insert("timestamp".into(), json!(0)); })),
        ("timestamp", gelf_with(|o| { o.insert("timestamp".into(), json!("1700000000")); })),
        ("timestamp", gelf_with(|o| { o.remove("timestamp"); })),
        ("level", gelf_with(|o| { o.insert("level".into(), json!(8)); })),
        ("level", gelf_with(|o| { o.insert("level".into(), json!(-1)); })),
        ("level", gelf_with(|o| { o.insert("level".into(), json!(6.5)); })),
        ("level", gelf_with(|o| { o.insert("level".into(), json!("6")); })),
        ("level", gelf_with(|o| { o.remove("level"); })),
        ("field name", gelf_with(|o| { o.insert("facility".into(), json!("x")); })),
        ("field name", gelf_with(|o| { o.insert("_".into(), json!("x")); })),
        ("field name", gelf_with(|o| { o.insert("_sp ace".into(), json!("x")); })),
        ("field name", gelf_with(|o| { o.insert("_sl/ash".into(), json!("x")); })),
        ("field name", gelf_with(|o| { o.insert("_\u{e9}".into(), json!("x")); })),
        ("field name", gelf_with(|o| { o.insert("_id".into(), json!("x")); })),
        ("field value", gelf_with(|o| { o.insert("_b".into(), json!(true)); })),
        ("field value", gelf_with(|o| { o.insert("_n".into(), json!(null)); })),
        ("field value", gelf_with(|o| { o.insert("_a".into(), json!([1])); })),
        ("field value", gelf_with(|o| { o.insert("_o".into(), json!({"k": 1})); })),
        ("field value", gelf_with(|o| { o.insert("_e".into(), json!("")); })),
        ("field value", gelf_with(|o| { o.insert("_w".into(), json!("  \t")); })),
        ("field value", gelf_with(|o| { o.insert("_l".into(), json!("v".repeat(32_767))); })),
    ];
    for (rule, frame) in cases {
        let message = gelf_rule_broken(&frame);
        assert!(
            message.starts_with(&format!("GELF rule broken: {rule}:")),
            "expected rule {rule:?}, got: {}",
            message.lines().next().unwrap_or_default()
        );
    }
}

fn ltsv_rule_broken(line: &[u8]) -> String {
    let message = panic_message(|| {
        assert_ltsv_line_ok(line);
    });
    assert!(message.starts_with("LTSV rule broken: "), "{message}");
    message
}

#[test]
fn ltsv_checker_accepts_and_unescapes_a_good_line() {
    let line = b"time:2024-01-01T00:00:00Z\thost:h\tlevel:6\tmessage:a\\tb\\nc\\rd\\0e\\\\f\tempty:\tURL.x-y_z:http://h:1/p";
    let fields = assert_ltsv_line_ok(line);
    assert_eq!(
        fields,
        vec![
            ("time".to_string(), "2024-01-01T00:00:00Z".to_string()),
            ("host".to_string(), "h".to_string()),
            ("level".to_string(), "6".to_string()),
            ("message".to_string(), "a\tb\nc\rd\0e\\f".to_string()),
            ("empty".to_string(), String::new()),
            ("URL.x-y_z".to_string(), "http://h:1/p".to_string()),
        ]
    );
}

#[test]
fn ltsv_checker_names_each_broken_rule() {
    let base = "time:1\thost:h\tlevel:6\tmessage:m";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("UTF-8", [base.as_bytes(), b"\tx:\xff"].concat()),
        ("control character", format!("{base}\tx:a\rb").into_bytes()),
        ("control character", format!("{base}\tx:a\nb").into_bytes()),
        ("control character", format!("{base}\tx:a\0b").into_bytes()),
        ("control character", format!("{base}\n").into_bytes()),
        ("field", format!("{base}\tx:a\tb").into_bytes()),
        ("field", format!("{base}\t").into_bytes()),
        ("field", format!("{base}\t\tx:1").into_bytes()),
        ("label", format!("{base}\t:v").into_bytes()),
        ("label", format!("{base}\tsp ace:v").into_bytes()),
        ("label", format!("{base}\t\u{e9}:v").into_bytes()),
        (
            "duplicate label",
            format!("{base}\thost:again").into_bytes(),
        ),
        ("escape", format!("{base}\tx:a\\qb").into_bytes()),
        ("escape", format!("{base}\tx:trailing\\").into_bytes()),
        ("required label", b"time:1\thost:h\tlevel:6".to_vec()),
        ("required label", b"host:h\tlevel:6\tmessage:m".to_vec()),
        ("required label", b"time:1\tlevel:6\tmessage:m".to_vec()),
        ("required label", b"time:1\thost:h\tmessage:m".to_vec()),
    ];
    for (rule, line) in cases {
        let message = ltsv_rule_broken(&line);
        assert!(
            message.starts_with(&format!("LTSV rule broken: {rule}:")),
            "expected rule {rule:?}, got: {}",
            message.lines().next().unwrap_or_default()
        );
    }
}

#[test]
fn receiver_kill_measures_what_its_kernel_held_unread() {
    use std::io::Write;
    let rx = Receiver::tcp(Framing::Nul);
    let mut sock = std::net::TcpStream::connect(rx.addr()).unwrap();
    sock.write_all(b"read 1\0read 2\0half").unwrap();
    rx.wait_frames(2, WAIT);
    thread::sleep(Duration::from_millis(100));
    rx.pause_reading();
    thread::sleep(Duration::from_millis(100));
    sock.write_all(b" read\0held 1\0held 2\0cut").unwrap();
    thread::sleep(Duration::from_millis(100));
    let killed = rx.kill_measured();
    assert_eq!(killed.frames, vec![b"read 1".to_vec(), b"read 2".to_vec()]);
    assert_eq!(
        killed.held,
        vec![
            b"half read".to_vec(),
            b"held 1".to_vec(),
            b"held 2".to_vec()
        ]
    );
    assert_eq!(killed.held_partial, vec![b"cut".to_vec()]);
    assert_eq!(killed.held_undecoded, 0);
}

#[test]
fn receiver_kill_decrypts_what_its_kernel_held_over_tls() {
    let pki = TestPki::generate();
    let rx = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let mut client =
        TlsClient::connect(rx.addr(), "localhost", pki.client_config(TlsVersions::Both)).unwrap();
    client.send(b"read\0").unwrap();
    rx.wait_frames(1, WAIT);
    thread::sleep(Duration::from_millis(100));
    rx.pause_reading();
    thread::sleep(Duration::from_millis(100));
    client.send(b"held 1\0held 2\0").unwrap();
    thread::sleep(Duration::from_millis(100));
    let killed = rx.kill_measured();
    assert_eq!(killed.frames, vec![b"read".to_vec()]);
    assert_eq!(killed.held, vec![b"held 1".to_vec(), b"held 2".to_vec()]);
    assert!(killed.held_partial.is_empty(), "{killed:?}");
    assert_eq!(killed.held_undecoded, 0);
}
