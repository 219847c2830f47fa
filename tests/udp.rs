//! GELF over UDP against the in-process UDP receiver: every field of records
//! sent through `tracing`, each compression, chunking of large messages, the
//! 128-chunk limit (records truncated and marked, never dropped), unique
//! message ids, an unreachable port, and the settings `build()` refuses (a
//! framing among them).

use djehouty_testkit as support;

use std::collections::HashSet;
use std::time::Duration;

use djehouty::{Compression, Error, GelfExporter, LtsvExporter};
use serde_json::{Map, Value};
use support::assert_graylog_accepts;
use support::pipeline::*;
use support::udp::{self, Encoding, Message, UdpReceiver};

const WAIT: Duration = Duration::from_secs(10);
const TRUNCATED: &str = " [truncated]";

fn builder(receiver: &UdpReceiver) -> djehouty::GelfExporterBuilder {
    GelfExporter::builder().with_endpoint(format!("udp://127.0.0.1:{}", receiver.port()))
}

fn parse(message: &Message) -> Map<String, Value> {
    assert_graylog_accepts(&message.bytes)
}

fn short_message(frame: &Map<String, Value>) -> &str {
    frame["short_message"]
        .as_str()
        .expect("a string short_message")
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One line of `len` bytes of varied, compressible text.
fn varied_text(len: usize, seed: u64) -> String {
    const WORDS: [&str; 24] = [
        "order",
        "payment",
        "gateway",
        "timeout",
        "retry",
        "customer",
        "invoice",
        "shipped",
        "warehouse",
        "latency",
        "accepted",
        "rejected",
        "queue",
        "worker",
        "batch",
        "checkout",
        "session",
        "token",
        "refund",
        "ledger",
        "cache",
        "miss",
        "hit",
        "region",
    ];
    let mut rng = Rng(seed | 1);
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        let r = rng.next();
        out.push_str(WORDS[(r % WORDS.len() as u64) as usize]);
        if r % 3 == 0 {
            out.push_str(&format!("={}", (r >> 8) % 100_000));
        }
        out.push(' ');
    }
    out.truncate(len);
    out
}

/// `len` random alphanumeric bytes: text no compressor does much with.
fn random_text(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = Rng(seed | 1);
    (0..len)
        .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

#[test]
fn receiver_reassembles_chunks_in_any_order() {
    let text = br#"{"version":"1.1","host":"h","short_message":"hello over chunks"}"#;
    let gz = udp::gzip(text);
    let split = |payload: &[u8], id: [u8; 8], size: usize| -> Vec<Vec<u8>> {
        let parts: Vec<&[u8]> = payload.chunks(size).collect();
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| udp::chunk(id, i as u8, parts.len() as u8, p))
            .collect()
    };
    let a = split(&gz, [1; 8], 7);
    let b = split(&udp::zlib(text), [2; 8], 5);
    assert!(a.len() > 3 && b.len() > 3);

    // Reversed, interleaved with another message, with an unchunked one between.
    // The other message's chunks go even ones first, then odd ones.
    let mut others = b.iter().step_by(2).chain(b.iter().skip(1).step_by(2));
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    for (i, c) in a.iter().rev().enumerate() {
        datagrams.push(c.clone());
        datagrams.extend(others.next().cloned());
        if i == 1 {
            datagrams.push(text.to_vec());
        }
    }
    datagrams.extend(others.cloned());
    let done = udp::reassemble(datagrams.iter().map(Vec::as_slice));
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert!(done.incomplete.is_empty(), "{:?}", done.incomplete);
    assert_eq!(done.messages.len(), 3, "{:#?}", done.messages);
    for m in &done.messages {
        assert_eq!(m.bytes, text);
    }
    let encodings: HashSet<_> = done.messages.iter().map(|m| m.encoding).collect();
    assert_eq!(
        encodings,
        HashSet::from([Encoding::Gzip, Encoding::Zlib, Encoding::Plain])
    );

    // A shuffled order gives the same message.
    let mut shuffled = a.clone();
    let mut rng = Rng(42);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let done = udp::reassemble(shuffled.iter().map(Vec::as_slice));
    assert_eq!(done.messages.len(), 1);
    assert_eq!(done.messages[0].bytes, text);
    assert_eq!(done.messages[0].chunks, a.len());

    // A missing chunk leaves the message incomplete and reported.
    let done = udp::reassemble(a.iter().skip(1).map(Vec::as_slice));
    assert!(done.messages.is_empty());
    assert_eq!(done.incomplete.len(), 1);
    assert_eq!(done.incomplete[0].id, [1; 8]);
    assert_eq!(
        done.incomplete[0].received,
        (1..a.len()).collect::<Vec<_>>()
    );

    // Through a real socket, out of order.
    let receiver = UdpReceiver::start();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for c in a.iter().rev() {
        sender.send_to(c, receiver.addr()).unwrap();
    }
    let messages = receiver.wait_messages(1, WAIT);
    assert_eq!(messages[0].bytes, text);
    receiver.assert_complete();
}

#[test]
fn tracing_records_arrive_with_every_field() {
    let receiver = UdpReceiver::start();
    let provider = batch_provider(builder(&receiver).with_extra("X-OVH-TOKEN", "token-1"));
    let logged = log_the_three_records(&provider);
    provider.shutdown().expect("shutdown");

    let messages = receiver.wait_messages(3, WAIT);
    receiver.assert_complete();
    for m in &messages {
        assert_eq!(m.encoding, Encoding::Gzip, "GZIP is the default");
        assert_eq!(m.chunks, 0, "small records are not chunked");
    }
    let frames: Vec<_> = messages.iter().map(parse).collect();

    assert_the_three_records(&frames, &logged);
}

#[test]
fn each_compression_arrives() {
    for (compression, encoding) in [
        (Compression::Gzip, Encoding::Gzip),
        (Compression::Zlib, Encoding::Zlib),
        (Compression::None, Encoding::Plain),
    ] {
        let receiver = UdpReceiver::start();
        let exporter = builder(&receiver).with_compression(compression);
        let counters_provider = batch_provider(exporter);
        // A small record (one datagram) and a chunked one.
        let big = varied_text(200_000, 7);
        with_tracing(&counters_provider, || {
            tracing::warn!(kind = "small", "compressed {:?}", compression);
            tracing::info!(kind = "big", "{}", big);
        });
        counters_provider.shutdown().expect("shutdown");
        let messages = receiver.wait_messages(2, WAIT);
        receiver.assert_complete();
        assert_eq!(messages.len(), 2);
        for m in &messages {
            assert_eq!(m.encoding, encoding, "{compression:?}: {m:?}");
            assert!(m.largest_datagram <= 8192, "{m:?}");
            if encoding == Encoding::Plain {
                assert_eq!(m.wire_bytes, m.bytes.len());
                assert_eq!(m.bytes.first(), Some(&b'{'));
            } else if m.bytes.len() > 200_000 {
                assert!(m.wire_bytes < m.bytes.len() / 2, "{m:?}");
            }
        }
        let frames: Vec<_> = messages.iter().map(parse).collect();
        let small = by_message(&frames, &format!("compressed {compression:?}"));
        assert_field(small, "level", 4.into());
        assert_field(small, "_kind", "small".into());
        let big_frame = by_message(&frames, &big);
        assert_field(big_frame, "_kind", "big".into());
        let chunked = messages
            .iter()
            .find(|m| m.bytes.len() > 200_000)
            .expect("the big record");
        assert!(chunked.chunks > 1, "{compression:?}: {chunked:?}");
    }
}

#[test]
fn a_one_mebibyte_message_arrives_whole_in_chunks() {
    let receiver = UdpReceiver::start();
    let exporter = builder(&receiver).build().expect("build");
    let counters = exporter.counters();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    let body = varied_text(1 << 20, 11);
    with_tracing(&provider, || tracing::info!("{}", body));
    provider.shutdown().expect("shutdown");

    let messages = receiver.wait_messages(1, WAIT);
    receiver.assert_complete();
    let m = &messages[0];
    assert_eq!(m.encoding, Encoding::Gzip);
    assert!(m.chunks > 1 && m.chunks <= 128, "{m:?}");
    assert!(m.largest_datagram <= 8192, "{m:?}");
    let f = parse(m);
    let short = short_message(&f);
    assert_eq!(short.len(), 1 << 20);
    assert!(short == body, "the body arrived changed");
    assert_resource_fields(&f);
    let stats = counters.snapshot();
    assert_eq!(stats.truncated, 0);
    assert_eq!(stats.exported, 1);
}

#[test]
fn a_small_chunk_size_gives_many_small_datagrams() {
    let receiver = UdpReceiver::start();
    let provider = batch_provider(builder(&receiver).with_udp_chunk_size(1420));
    let body = varied_text(300_000, 23);
    with_tracing(&provider, || tracing::info!("{}", body));
    provider.shutdown().expect("shutdown");

    let messages = receiver.wait_messages(1, WAIT);
    receiver.assert_complete();
    let m = &messages[0];
    assert!(m.chunks >= 20 && m.chunks <= 128, "{m:?}");
    assert!(m.largest_datagram <= 1420, "{m:?}");
    for d in receiver.datagrams() {
        assert!(d.len() <= 1420, "a datagram of {} bytes", d.len());
    }
    assert_eq!(short_message(&parse(m)), body);
}

/// Sends `body` alone through an exporter built from `builder`; returns the
/// message that arrived and the exporter's truncation count.
fn send_one(
    receiver: &UdpReceiver,
    builder: djehouty::GelfExporterBuilder,
    body: &str,
) -> (Message, u64) {
    let exporter = builder.build().expect("build");
    let counters = exporter.counters();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build();
    with_tracing(&provider, || {
        tracing::info!(size = body.len() as i64, "{}", body)
    });
    provider.shutdown().expect("shutdown");
    let messages = receiver.wait_messages(1, WAIT);
    receiver.assert_complete();
    assert_eq!(messages.len(), 1);
    (messages[0].clone(), counters.snapshot().truncated)
}

#[test]
fn a_message_over_128_chunks_is_truncated_and_marked() {
    // Uncompressed: 128 chunks of 1,408 bytes carry 180,224 bytes.
    let receiver = UdpReceiver::start();
    let body = random_text(600_000, 5);
    let (m, truncated) = send_one(
        &receiver,
        builder(&receiver)
            .with_compression(Compression::None)
            .with_udp_chunk_size(1420),
        &body,
    );
    assert_eq!(truncated, 1);
    assert_eq!(m.encoding, Encoding::Plain);
    assert!(m.chunks <= 128 && m.chunks > 100, "{m:?}");
    assert!(m.wire_bytes <= 128 * 1408, "{m:?}");
    let f = parse(&m);
    let short = short_message(&f);
    assert!(
        short.ends_with(TRUNCATED),
        "not marked: ...{}",
        &short[short.len() - 40..]
    );
    let kept = &short[..short.len() - TRUNCATED.len()];
    assert!(
        body.starts_with(kept),
        "the kept text is not the body's head"
    );
    // Cut to what fits, not to a stub.
    assert!(kept.len() > 150_000, "only {} bytes kept", kept.len());
    assert_field(&f, "_size", (body.len() as i64).into());
    assert_resource_fields(&f);

    // Compressed, text that hardly compresses: the excess is estimated through
    // the compression ratio and the record still fits.
    let receiver = UdpReceiver::start();
    let body = random_text(1 << 20, 9);
    let (m, truncated) = send_one(
        &receiver,
        builder(&receiver).with_udp_chunk_size(1420),
        &body,
    );
    assert_eq!(truncated, 1);
    assert_eq!(m.encoding, Encoding::Gzip);
    assert!(m.chunks <= 128, "{m:?}");
    let f = parse(&m);
    let short = short_message(&f);
    assert!(short.ends_with(TRUNCATED));
    let kept = &short[..short.len() - TRUNCATED.len()];
    assert!(body.starts_with(kept));
    assert!(kept.len() > 150_000, "only {} bytes kept", kept.len());
}

#[test]
fn message_ids_are_unique() {
    let receiver = UdpReceiver::start();
    // Two exporters, 150 chunked messages each.
    let providers: Vec<_> = (0..2)
        .map(|_| {
            batch_provider(
                builder(&receiver)
                    .with_compression(Compression::None)
                    .with_udp_chunk_size(512),
            )
        })
        .collect();
    for (p, provider) in providers.iter().enumerate() {
        with_tracing(provider, || {
            for i in 0..150 {
                tracing::info!("{p}-{i} {}", varied_text(1500, i));
            }
        });
    }
    for provider in &providers {
        provider.shutdown().expect("shutdown");
    }
    let messages = receiver.wait_messages(300, WAIT);
    receiver.assert_complete();
    assert_eq!(messages.len(), 300);
    let ids: HashSet<[u8; 8]> = messages
        .iter()
        .map(|m| m.id.expect("every message is chunked"))
        .collect();
    assert_eq!(ids.len(), 300, "message ids repeat");
    let mut seen = HashSet::new();
    for m in &messages {
        let f = parse(m);
        let head = short_message(&f).split(' ').next().unwrap().to_string();
        assert!(seen.insert(head.clone()), "{head} twice");
    }
}

#[test]
fn ipv6_endpoints_work() {
    let receiver = UdpReceiver::ipv6()
        .expect("this machine has no IPv6 loopback ([::1]); the IPv6 test needs one");
    let provider = batch_provider(
        GelfExporter::builder().with_endpoint(format!("udp://[::1]:{}", receiver.port())),
    );
    with_tracing(&provider, || tracing::info!("over IPv6"));
    provider.shutdown().expect("shutdown");
    let messages = receiver.wait_messages(1, WAIT);
    assert_field(&parse(&messages[0]), "short_message", "over IPv6".into());
}

/// The index in "into the void {i}" of a message, if it is one.
fn void_index(message: &Message) -> Option<u64> {
    short_message(&parse(message))
        .strip_prefix("into the void ")
        .and_then(|i| i.parse().ok())
}

/// A provider that sends each record alone, as logged, to `port` on
/// loopback, and its exporter's counters.
fn simple_provider_to(
    port: u16,
) -> (
    opentelemetry_sdk::logs::SdkLoggerProvider,
    djehouty::Counters,
) {
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("udp://127.0.0.1:{port}"))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_simple_exporter(exporter)
        .build();
    (provider, counters)
}

#[test]
fn a_refused_port_is_a_failure_and_later_records_arrive() {
    // A port with no listener, below the ephemeral range so that nothing else
    // takes it: the kernel answers with ICMP "port unreachable", which
    // surfaces as an error on a later send.
    let port = support::unused_port().port();
    let (provider, counters) = simple_provider_to(port);
    let deadline = std::time::Instant::now() + WAIT;
    let mut logged = 0;
    while counters.snapshot().failures == 0 {
        assert!(std::time::Instant::now() < deadline, "no send failed");
        with_tracing(&provider, || tracing::info!("into the void {logged}"));
        logged += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = counters.snapshot();
    let error = stats.last_error.as_ref().expect("the failure").to_string();
    assert!(
        error.contains(&format!("udp://127.0.0.1:{port}")),
        "{error}"
    );

    // A receiver comes up on that port. Nothing more is logged: the record
    // the error hit was kept, and is sent again after the backoff delay,
    // with every record logged after it.
    let receiver = UdpReceiver::bind(([127, 0, 0, 1], port).into())
        .expect("bind a receiver on the refused port");
    let deadline = std::time::Instant::now() + WAIT;
    let resent = loop {
        let resent: Vec<u64> = receiver.messages().iter().filter_map(void_index).collect();
        if resent.last() == Some(&(logged - 1)) {
            break resent;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the record hit by the error was not sent again: of {logged} logged, {resent:?} \
             arrived; {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("{logged} logged into the void, {resent:?} sent again; {stats:?}");
    // The kept ones are a run that ends with the last record logged.
    let first = resent[0];
    assert_eq!(resent, (first..logged).collect::<Vec<_>>(), "{stats:?}");

    // And records logged from now on arrive too.
    with_tracing(&provider, || tracing::info!("back"));
    let messages = receiver.wait_messages(resent.len() + 1, WAIT);
    assert!(
        messages.iter().any(|m| short_message(&parse(m)) == "back"),
        "{:?}",
        messages
            .iter()
            .map(|m| short_message(&parse(m)).to_string())
            .collect::<Vec<_>>()
    );
    provider.shutdown().expect("shutdown");
}

#[test]
fn ltsv_over_udp_is_refused_at_build() {
    let err = LtsvExporter::builder()
        .with_endpoint("udp://127.0.0.1:12201")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    assert!(err.to_string().contains("UDP carries GELF only"), "{err}");
}

#[test]
fn udp_settings_are_checked() {
    for size in [0, 511, 65_508] {
        let err = GelfExporter::builder()
            .with_endpoint("udp://127.0.0.1:12201")
            .with_udp_chunk_size(size)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("chunk size"), "{err}");
    }
    for size in [512, 1420, 65_507] {
        GelfExporter::builder()
            .with_endpoint("udp://127.0.0.1:12201")
            .with_udp_chunk_size(size)
            .build()
            .expect("a valid chunk size");
    }
    // UDP settings on other endpoints are refused, not ignored.
    let err = GelfExporter::builder()
        .with_endpoint("tcp://127.0.0.1:12201")
        .with_udp_chunk_size(1420)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("with_udp_chunk_size"), "{err}");
    let err = GelfExporter::builder()
        .with_endpoint("tls://127.0.0.1:12201")
        .with_compression(Compression::Zlib)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("with_compression"), "{err}");
}

#[test]
fn an_explicit_framing_is_refused_for_udp_at_build() {
    // A datagram carries its own boundaries: a framing would be ignored.
    for framing in [djehouty::Framing::Nul, djehouty::Framing::Newline] {
        let err = GelfExporter::builder()
            .with_endpoint("udp://127.0.0.1:12201")
            .with_framing(framing)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
        assert!(err.to_string().contains("with_framing"), "{err}");
    }
    // The default framing is not a choice: it is never refused.
    GelfExporter::builder()
        .with_endpoint("udp://127.0.0.1:12201")
        .build()
        .expect("UDP without a framing");
}

#[test]
fn direct_processor_sends_every_record_and_a_large_one_whole() {
    let receiver = UdpReceiver::start();
    let exporter = builder(&receiver).build().expect("build");
    let counters = exporter.counters();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    let body = varied_text(256 * 1024, 5);
    with_tracing(&provider, || {
        for seq in 0..200u64 {
            tracing::info!(seq, "small {seq}");
        }
        tracing::info!("{}", body);
    });
    provider.shutdown().expect("shutdown");

    let messages = receiver.wait_messages(201, WAIT);
    receiver.assert_complete();
    let frames: Vec<_> = messages.iter().map(parse).collect();
    let mut seqs: Vec<u64> = frames
        .iter()
        .filter_map(|f| f.get("_seq").and_then(Value::as_u64))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    assert!(
        frames.iter().any(|f| short_message(f) == body),
        "the large record arrived changed or not at all"
    );
    assert_eq!(counters.snapshot().exported, 201);
}

/// A flush returns once the records logged before it are sent: over UDP,
/// as soon as their datagrams are, nothing to wait for after that.
#[test]
fn a_flush_returns_once_the_datagrams_are_sent() {
    let receiver = UdpReceiver::start();
    let exporter = builder(&receiver)
        .with_timeout(Duration::from_secs(5))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build();
    with_tracing(&provider, || {
        for seq in 0..10u64 {
            tracing::info!(seq, "record {seq}");
        }
    });
    provider.force_flush().expect("flushed");
    assert_eq!(counters.snapshot().exported, 10);
    assert_eq!(receiver.wait_messages(10, WAIT).len(), 10);
    provider.shutdown().expect("shutdown");
}

/// A closed port is retried ever more slowly, as a refused TCP connection
/// is: a send that goes out says nothing (the ICMP error it draws surfaces
/// on a later one), so it does not start the count of failures over. Three
/// seconds of records, one every 150 ms (each alone in its send, the
/// case where the error surfaces only on the next one), open about six
/// sockets (the backoff doubling from 100 ms); were each send taken as
/// proof that delivery works, the backoff would stay at its first step,
/// and a socket would open for nearly every record. And only the first
/// counts as exported: the first message of each socket opened after a
/// failure waits for the ICMP error it draws, and the next ones go on the
/// next socket.
#[test]
fn a_closed_port_is_retried_ever_more_slowly() {
    let port = support::unused_port().port();
    let (provider, counters) = simple_provider_to(port);
    let started = std::time::Instant::now();
    let mut logged = 0;
    while started.elapsed() < Duration::from_secs(3) {
        with_tracing(&provider, || tracing::info!("into the void {logged}"));
        logged += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    let stats = counters.snapshot();
    eprintln!("{logged} records into a closed port: {stats:?}");
    let _ = provider.shutdown_with_timeout(Duration::from_millis(200));
    assert!(stats.failures >= 2, "{stats:?}");
    assert!(stats.connections <= 10, "{logged} records: {stats:?}");
    assert!(stats.exported <= 1, "{logged} records: {stats:?}");
}
