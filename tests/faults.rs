//! Faults injected on loopback: an endpoint down at start, a receiver killed
//! and restarted in the middle of a stream (TCP and TLS), a receiver that
//! accepts and never reads, a retry buffer that overflows, and a soak
//! through repeated restarts.
//!
//! Every record carries a sequence number (`_seq`), so each test knows exactly
//! which records arrived, which are missing and whether any came twice.

use djehouty_testkit as support;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use djehouty::{GelfExporter, GelfExporterBuilder};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use rustls::ServerConfig;
use support::pipeline::*;
use support::{
    assert_graylog_accepts, BlackHole, Framing, Receiver, Resetting, TestPki, TlsVersions,
};

const WAIT: Duration = Duration::from_secs(20);

/// A loopback port nothing listens on, that no other test can take before
/// it is bound (see `support::unused_port`).
fn free_port() -> SocketAddr {
    support::unused_port()
}

fn seq_of(frame: &[u8]) -> u64 {
    let fields = assert_graylog_accepts(frame);
    fields
        .get("_seq")
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("frame without _seq: {fields:?}"))
}

fn seqs(frames: &[Vec<u8>]) -> Vec<u64> {
    frames.iter().map(|f| seq_of(f)).collect()
}

/// Which sequence numbers of `0..sent` arrived, which did not, which twice.
#[derive(Debug)]
struct Tally {
    received: usize,
    missing: Vec<u64>,
    duplicates: usize,
    in_order: bool,
}

fn tally(arrived: &[u64], sent: u64) -> Tally {
    let unique: BTreeSet<u64> = arrived.iter().copied().collect();
    Tally {
        received: arrived.len(),
        missing: (0..sent).filter(|s| !unique.contains(s)).collect(),
        duplicates: arrived.len() - unique.len(),
        in_order: arrived.windows(2).all(|w| w[0] < w[1]),
    }
}

/// The numbers that occur more than once, sorted.
fn twice(numbers: &[u64]) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    let twice: BTreeSet<u64> = numbers
        .iter()
        .filter(|n| !seen.insert(**n))
        .copied()
        .collect();
    twice.into_iter().collect()
}

/// Splits sorted numbers into runs of consecutive ones.
fn runs(numbers: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
}

#[test]
fn endpoint_down_at_start_then_up_delivers_everything_in_order() {
    down_at_start_then_up(tuned_provider);
}

#[test]
fn endpoint_down_at_start_then_up_delivers_everything_in_order_direct() {
    down_at_start_then_up(direct_provider_for);
}

fn down_at_start_then_up(make: fn(djehouty::GelfExporter) -> SdkLoggerProvider) {
    let addr = free_port();
    let builder = GelfExporter::builder().with_endpoint(format!("tcp://{addr}"));
    let exporter = builder.build().expect("build");
    let counters = exporter.counters();
    let provider = make(exporter);
    let sent = 300;
    with_tracing(&provider, || {
        for seq in 0..sent {
            tracing::info!(seq, "record {seq} while the endpoint is down");
            if seq % 100 == 99 {
                thread::sleep(Duration::from_millis(300));
            }
        }
    });
    let stats = wait_stats(&counters, "a failed connection", |s| s.failures >= 2);
    assert_eq!(stats.exported, 0);
    thread::sleep(Duration::from_secs(1));
    let receiver = Receiver::bind(addr, Framing::Nul, None).expect("bind the receiver late");
    let frames = receiver.wait_frames(sent as usize, WAIT);
    provider.shutdown().expect("shutdown");
    let t = tally(&seqs(&frames), sent);
    assert_eq!(t.missing, Vec::<u64>::new(), "{t:?}");
    assert_eq!(t.duplicates, 0, "{t:?}");
    assert!(t.in_order, "{:?}", seqs(&frames));
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (sent, 0), "{stats:?}");
    assert_eq!(stats.buffered_records, 0);
    receiver.assert_no_partial();
}

/// A shutdown that starts while the exporter sleeps out a long backoff
/// makes its next attempt at once: an endpoint back by then gets every
/// record within the shutdown's time.
#[test]
fn a_shutdown_during_a_backoff_tries_at_once() {
    let (addr, counters, provider) = ten_while_down(direct_provider_for);
    // Seven failures in a row: the next attempt is 3.2 to 5 s away (the
    // documented schedule: 100 ms doubling, 5 s cap, upper half).
    wait_stats(&counters, "seven failed connections", |s| s.failures >= 7);
    let receiver = Receiver::bind(addr, Framing::Nul, None).expect("bind the receiver late");
    // Within 1.5 s, less than the backoff: the shutdown fails unless its
    // next attempt came at once.
    provider
        .shutdown_with_timeout(Duration::from_millis(1500))
        .expect("the shutdown delivers everything within its time");
    assert_ten_delivered(&receiver, &counters);
}

/// Ten records logged, through the provider `make` builds, while nothing
/// listens on the exporter's port; returns the port, the exporter's
/// counters and the provider.
fn ten_while_down(
    make: fn(GelfExporter) -> SdkLoggerProvider,
) -> (SocketAddr, djehouty::Counters, SdkLoggerProvider) {
    let addr = free_port();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{addr}"))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = make(exporter);
    with_tracing(&provider, || {
        for seq in 0..10u64 {
            tracing::info!(seq, "record {seq} while the endpoint is down");
        }
    });
    (addr, counters, provider)
}

/// Each of [`ten_while_down`]'s records arrived once, and counted exported.
fn assert_ten_delivered(receiver: &Receiver, counters: &djehouty::Counters) {
    let frames = receiver.wait_frames(10, WAIT);
    let t = tally(&seqs(&frames), 10);
    assert!(t.missing.is_empty() && t.duplicates == 0, "{t:?}");
    assert_eq!(counters.snapshot().exported, 10);
}

/// `BatchProcessor`'s shutdown delivers for the whole time its caller gave,
/// not only for the fixed 5 s the SDK's batch processor gives the
/// exporter's own shutdown: an endpoint back after 5.5 s gets every record.
#[test]
fn a_batch_shutdown_delivers_for_the_whole_time_given() {
    let (addr, counters, provider) = ten_while_down(tuned_provider);
    let late = thread::spawn(move || {
        thread::sleep(Duration::from_millis(5500));
        Receiver::bind(addr, Framing::Nul, None).expect("bind the receiver late")
    });
    // Past the 5.5 s, the retries' backoff (at most 5 s) leaves time to
    // spare.
    let result = provider.shutdown_with_timeout(Duration::from_secs(15));
    let receiver = late.join().expect("the late receiver");
    result.expect("the shutdown delivers everything within its time");
    assert_ten_delivered(&receiver, &counters);
}

/// A loopback forwarder to `upstream` that holds each connection for
/// `delay` before it forwards anything (a TLS client's handshake then takes
/// that long); counts the connections it accepted.
fn slow_forwarder(upstream: SocketAddr, delay: Duration) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            count.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                thread::sleep(delay);
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    return;
                };
                let (Ok(mut client_in), Ok(mut server_in)) =
                    (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                let (mut client_out, mut server_out) = (client, server);
                let up = thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut server_out);
                    let _ = server_out.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut server_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    (addr, accepted)
}

/// A shutdown that starts while a TLS handshake is under way lets it
/// finish: started again, the connection would cost the shutdown a new
/// resolution, connection and handshake.
#[test]
fn a_shutdown_lets_a_handshake_under_way_finish() {
    let pki = TestPki::generate();
    let receiver = Receiver::tls(Framing::Nul, &pki, TlsVersions::Both);
    let (addr, accepted) = slow_forwarder(receiver.addr(), Duration::from_millis(700));
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tls://{addr}"))
        .with_ca_file(&pki.ca_pem)
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = direct_provider_for(exporter);
    let sent = 3;
    with_tracing(&provider, || {
        for seq in 0..sent {
            tracing::info!(seq, "record {seq} before the handshake ends");
        }
    });
    // The connection is open, its handshake held by the forwarder.
    let until = Instant::now() + WAIT;
    while accepted.load(Ordering::SeqCst) == 0 && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no connection began");
    provider
        .shutdown_with_timeout(Duration::from_secs(10))
        .expect("the shutdown delivers everything");
    let frames = receiver.wait_frames(sent as usize, WAIT);
    let t = tally(&seqs(&frames), sent);
    assert!(t.missing.is_empty() && t.duplicates == 0, "{t:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the shutdown gave up the handshake under way and connected again"
    );
    assert_eq!(counters.snapshot().exported, sent);
}

/// A receiver that closed an idle connection (a restart, an idle timeout)
/// is noticed before the next write: the connection is replaced at once,
/// and nothing is written into the closed one, which would count a failure
/// and hold the record until the write timeout.
#[test]
fn an_idle_connection_the_receiver_closed_is_replaced_without_a_failure() {
    let receiver = Receiver::tcp(Framing::Nul);
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{}", receiver.addr()))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = direct_provider_for(exporter);
    with_tracing(&provider, || tracing::info!(seq = 0u64, "before"));
    receiver.wait_frames(1, WAIT);
    // Older than a second: closed by the peer, it is no failure (one closed
    // sooner counts as one, see `an_endpoint_that_closes_every_connection`).
    thread::sleep(Duration::from_millis(1100));
    receiver.drop_connections();
    receiver.wait_closed(1, WAIT);
    thread::sleep(Duration::from_millis(50));
    with_tracing(&provider, || tracing::info!(seq = 1u64, "after"));
    provider.force_flush().expect("delivered");
    let frames = receiver.wait_frames(2, WAIT);
    assert_eq!(seqs(&frames), [0, 1]);
    let stats = counters.snapshot();
    assert_eq!((stats.failures, stats.connections), (0, 2), "{stats:?}");
    provider.shutdown().expect("shutdown");
}

/// djehouty's batch processor (the SDK's, tuned).
fn tuned_provider(exporter: djehouty::GelfExporter) -> SdkLoggerProvider {
    SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::BatchProcessor::new(exporter))
        .build()
}

/// The recommended set-up: djehouty's direct processor.
fn direct_provider_for(exporter: djehouty::GelfExporter) -> SdkLoggerProvider {
    SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter))
        .build()
}

/// A thread streaming numbered records at a steady pace; `logged` follows its
/// progress, and it can be paused between two records.
struct Producer {
    handle: thread::JoinHandle<()>,
    logged: Arc<AtomicU64>,
    pause: Arc<AtomicBool>,
    parked: Arc<AtomicBool>,
    total: u64,
}

fn stream(provider: &SdkLoggerProvider, total: u64, pace: Duration) -> Producer {
    let logged = Arc::new(AtomicU64::new(0));
    let pause = Arc::new(AtomicBool::new(false));
    let parked = Arc::new(AtomicBool::new(false));
    let handle = {
        let provider = provider.clone();
        let (logged, pause, parked) = (logged.clone(), pause.clone(), parked.clone());
        thread::spawn(move || {
            with_tracing(&provider, || {
                let mut start = Instant::now();
                for seq in 0..total {
                    if pause.load(Ordering::SeqCst) {
                        let since = Instant::now();
                        parked.store(true, Ordering::SeqCst);
                        while pause.load(Ordering::SeqCst) {
                            thread::sleep(Duration::from_millis(1));
                        }
                        parked.store(false, Ordering::SeqCst);
                        start += since.elapsed();
                    }
                    tracing::info!(seq, "stream record {seq:06} with some text to carry");
                    logged.store(seq + 1, Ordering::SeqCst);
                    // Paced against the start, so slow iterations catch up.
                    let due = start + pace * (seq as u32 + 1);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                }
            })
        })
    };
    Producer {
        handle,
        logged,
        pause,
        parked,
        total,
    }
}

impl Producer {
    fn logged(&self) -> u64 {
        self.logged.load(Ordering::SeqCst)
    }

    fn wait_logged(&self, n: u64) {
        let deadline = Instant::now() + WAIT;
        while self.logged() < n {
            assert!(Instant::now() < deadline, "the stream stalled before {n}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the stream between two records; returns how many were logged.
    fn pause(&self) -> u64 {
        self.pause.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + WAIT;
        while !self.parked.load(Ordering::SeqCst) && self.logged() < self.total {
            assert!(Instant::now() < deadline, "the stream did not pause");
            thread::sleep(Duration::from_millis(1));
        }
        self.logged()
    }

    fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }

    fn join(self) {
        self.resume();
        self.handle.join().expect("the producer thread");
    }
}

/// What a receiver killed with an idle exporter had read and held.
struct Kill {
    /// Sequence numbers read before the kill.
    read: Vec<u64>,
    /// Sequence numbers whose frames the receiver's kernel held unread (or
    /// half read): the only records the kill may lose.
    held: BTreeSet<u64>,
    /// Records logged when the kill happened.
    logged: u64,
    /// Bytes of a TLS record the receiver held only in part: the rest was
    /// still on the exporter's side (the backlog outgrew the receive window),
    /// and the frames in it cannot be named.
    undecoded: usize,
}

/// The `_seq` of a frame cut short, if its bytes got that far.
fn seq_in_partial(bytes: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(bytes);
    let rest = &text[text.find("\"_seq\":")? + 7..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    // Digits running to the end of the bytes may be cut too.
    (digits.len() < rest.len()).then(|| digits.parse().ok())?
}

/// Kills `receiver` the way a crashing server dies, with the exporter idle:
/// the stream is paused and flushed first, so every byte the exporter wrote
/// has reached the receiver's kernel and nothing arrives between the
/// receiver's peek at its unread bytes and the close. The stream resumes at
/// once, into the dead connection.
fn kill_with_idle_exporter(
    receiver: Receiver,
    producer: &Producer,
    provider: &SdkLoggerProvider,
    over: Over,
) -> Kill {
    let logged = producer.pause();
    provider
        .force_flush()
        .expect("everything logged so far is delivered");
    kill_paused(receiver, producer, logged, over)
}

/// Kills `receiver`, which stopped reading, once the exporter has written
/// what it could: the stream is paused first, and the receiver's full window
/// keeps anything more from reaching it between its peek and the close (a
/// flush cannot end: the receiver acknowledges nothing more).
fn kill_stalled(receiver: Receiver, producer: &Producer, over: Over) -> Kill {
    let logged = producer.pause();
    thread::sleep(Duration::from_millis(300));
    kill_paused(receiver, producer, logged, over)
}

/// What the killed receiver's stream carried.
#[derive(Clone, Copy, PartialEq)]
enum Over {
    Tcp,
    Tls,
}

/// The kill of [`kill_with_idle_exporter`] and [`kill_stalled`], with the
/// stream paused after `logged` records.
fn kill_paused(receiver: Receiver, producer: &Producer, logged: u64, over: Over) -> Kill {
    // Loopback hands written bytes over within the write; a margin anyway.
    thread::sleep(Duration::from_millis(100));
    let killed = receiver.kill_measured();
    producer.resume();
    let read = seqs(&killed.frames);
    let mut held: BTreeSet<u64> = seqs(&killed.held).into_iter().collect();
    for partial in &killed.held_partial {
        // Frames are written in order: a cut one follows every complete one.
        let next = read.iter().chain(held.iter()).max().map_or(0, |m| m + 1);
        held.insert(seq_in_partial(partial).unwrap_or(next));
    }
    // TCP delivers in order: every frame before the first one the kernel
    // held reached the receiver's host too. Over TLS, those between the last
    // one read and the first one held were taken off the socket but not
    // handed on (inside the receiver's TLS session, or in unread bytes that
    // start inside a TLS record and cannot be decrypted): held, unnamed.
    // Over plain TCP the receiver names every byte it took or held, so a
    // frame in that gap was never written, and counts as lost.
    if over == Over::Tls {
        if let (Some(&last_read), Some(&first_held)) = (read.iter().max(), held.first()) {
            held.extend(last_read + 1..first_held);
        }
    }
    Kill {
        read,
        held,
        logged,
        undecoded: killed.held_undecoded,
    }
}

/// Kills the receiver in the middle of a stream and restarts it on the same
/// port. What the receiver's kernel held unread when it died is the only loss
/// TCP allows; the receiver itself measures that, and the test asserts that
/// every missing record was among those frames, that nothing arrives twice,
/// and, separately, that the exporter's counters agree with what arrived.
fn kill_and_restart(
    tls: Option<Arc<ServerConfig>>,
    builder: GelfExporterBuilder,
    make: fn(djehouty::GelfExporter) -> SdkLoggerProvider,
    label: &str,
) {
    let first =
        Receiver::bind(free_port(), Framing::Nul, tls.clone()).expect("bind the first receiver");
    let addr = first.addr();
    let exporter = builder
        .with_endpoint(format!(
            "{}://localhost:{}",
            if tls.is_some() { "tls" } else { "tcp" },
            addr.port()
        ))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = make(exporter);
    let total = 3_000;
    let producer = stream(&provider, total, Duration::from_micros(700));

    producer.wait_logged(total / 3);
    first.wait_frames(100, WAIT);
    let over = if tls.is_some() { Over::Tls } else { Over::Tcp };
    let kill = kill_with_idle_exporter(first, &producer, &provider, over);
    assert_eq!(kill.undecoded, 0, "part of a TLS record was held");
    // Let the exporter notice, and the stream go on into the outage.
    thread::sleep(Duration::from_millis(300));
    let exported_at_kill = counters.snapshot().exported;
    thread::sleep(Duration::from_millis(700));
    let during_outage = counters.snapshot();
    assert_eq!(
        during_outage.exported, exported_at_kill,
        "nothing can be written while the receiver is down: {during_outage:?}"
    );
    let second = Receiver::bind(addr, Framing::Nul, tls).expect("restart the receiver");
    producer.join();
    provider.shutdown().expect("shutdown delivers the rest");
    let received_second = seqs(&second.kill());

    let mut arrived = kill.read.clone();
    arrived.extend(&received_second);
    let t = tally(&arrived, total);
    let stats = counters.snapshot();
    eprintln!(
        "{label}: sent {total}, received {} ({} before the kill, {} after), missing {:?}, \
         duplicates {}, held unread at the kill {:?}; {stats:?}",
        t.received,
        kill.read.len(),
        received_second.len(),
        runs(&t.missing),
        t.duplicates,
        runs(&kill.held.iter().copied().collect::<Vec<_>>()),
    );
    // Flushed before the kill: everything logged by then was read or held.
    let not_held: Vec<u64> = (0..kill.logged)
        .filter(|s| !kill.held.contains(s))
        .collect();
    assert_eq!(kill.read, not_held, "the first receiver read the rest");
    assert!(kill.logged >= total / 3);
    assert_eq!(t.duplicates, 0, "{t:?}");
    assert!(t.in_order, "records arrive in order");
    let unexplained: Vec<u64> = t
        .missing
        .iter()
        .copied()
        .filter(|s| !kill.held.contains(s))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{label}: records {:?} are missing although the killed receiver never held them \
         (it held {:?})",
        runs(&unexplained),
        runs(&kill.held.iter().copied().collect::<Vec<_>>())
    );
    // The counters, checked against what arrived.
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(
        stats.exported,
        t.received as u64 + t.missing.len() as u64,
        "the exporter wrote each record once: what arrived plus what the kill took: {stats:?}"
    );
    assert!(stats.reconnects >= 1, "{stats:?}");
}

#[test]
fn receiver_killed_and_restarted_mid_stream_tcp() {
    kill_and_restart(None, GelfExporter::builder(), tuned_provider, "tcp");
}

#[test]
fn receiver_killed_and_restarted_mid_stream_tls() {
    let pki = TestPki::generate();
    kill_and_restart(
        Some(pki.server_config(TlsVersions::Both)),
        GelfExporter::builder().with_ca_file(&pki.ca_pem),
        tuned_provider,
        "tls",
    );
}

#[test]
fn receiver_killed_and_restarted_mid_stream_tcp_direct() {
    kill_and_restart(
        None,
        GelfExporter::builder(),
        direct_provider_for,
        "tcp, direct",
    );
}

#[test]
fn receiver_killed_and_restarted_mid_stream_tls_direct() {
    let pki = TestPki::generate();
    kill_and_restart(
        Some(pki.server_config(TlsVersions::Both)),
        GelfExporter::builder().with_ca_file(&pki.ca_pem),
        direct_provider_for,
        "tls, direct",
    );
}

/// A receiver that stops reading long enough for the backlog to outgrow its
/// receive window, then dies: the frames still in the exporter's own send
/// queue never reached it, and must not be lost either.
#[test]
fn receiver_killed_with_a_backlog_beyond_its_window() {
    let first = Receiver::bind(free_port(), Framing::Nul, None).expect("bind");
    let addr = first.addr();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{addr}"))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = direct_provider_for(exporter);
    let total = 4_000;
    let producer = stream(&provider, total, Duration::from_micros(500));
    producer.wait_logged(200);
    first.wait_frames(100, WAIT);
    let at = producer.logged();
    first.pause_reading();
    // 1,500 records of some 300 bytes: more than the window.
    producer.wait_logged(at + 1_500);
    let kill = kill_stalled(first, &producer, Over::Tcp);
    // The scenario: some records were neither read nor held by the
    // receiver, but waited on the exporter's side, beyond its window.
    assert!(
        kill.logged > (kill.read.len() + kill.held.len()) as u64,
        "no backlog beyond the window: {} logged, {} read, {} held",
        kill.logged,
        kill.read.len(),
        kill.held.len()
    );
    thread::sleep(Duration::from_millis(300));
    let second = Receiver::bind(addr, Framing::Nul, None).expect("restart the receiver");
    producer.join();
    provider.shutdown().expect("shutdown delivers the rest");
    let mut arrived = kill.read.clone();
    arrived.extend(seqs(&second.kill()));
    let t = tally(&arrived, total);
    let unexplained: Vec<u64> = t
        .missing
        .iter()
        .copied()
        .filter(|s| !kill.held.contains(s))
        .collect();
    eprintln!(
        "backlog: logged {} at the kill, {} read, {} held {:?}, missing {:?}, \
         of which never held {:?}; {:?}",
        kill.logged,
        kill.read.len(),
        kill.held.len(),
        runs(&kill.held.iter().copied().collect::<Vec<_>>()),
        runs(&t.missing),
        runs(&unexplained),
        counters.snapshot()
    );
    assert_eq!(t.duplicates, 0, "{t:?}");
    assert!(t.in_order, "records arrive in order");
    assert!(
        unexplained.is_empty(),
        "records {:?} are missing although the killed receiver never held them",
        runs(&unexplained)
    );
}

/// The resetting receiver's own measurement, checked with a plain client:
/// it takes its bytes, holds the rest (half-read frame included), resets the
/// connection and accepts the next one.
#[test]
fn a_resetting_receiver_measures_what_it_held_and_resets() {
    use std::io::{Read, Write};
    let receiver = Receiver::bind_resetting(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Framing::Nul,
        None,
        Resetting {
            every_bytes: 10,
            not_before: Duration::from_millis(300),
            receive_buffer: None,
        },
    )
    .unwrap_or_else(|e| panic!("a resetting receiver: {e}"));
    for connection in 0..2 {
        let mut sock = std::net::TcpStream::connect(receiver.addr()).expect("connect");
        sock.write_all(b"read 1\0read 2\0held 1\0").expect("write");
        receiver.wait_frames(connection + 1, WAIT);
        thread::sleep(Duration::from_millis(100));
        sock.write_all(b"held 2\0cut").expect("write");
        sock.set_read_timeout(Some(WAIT)).expect("timeout");
        let error = sock
            .read(&mut [0u8; 16])
            .expect_err("the receiver resets the connection");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    }
    let resets = receiver.resets();
    assert_eq!(resets.len(), 2, "{resets:?}");
    for (n, reset) in resets.iter().enumerate() {
        assert_eq!(reset.connection, n);
        assert_eq!(reset.taken, 10, "{reset:?}");
        let held: [&[u8]; 3] = [b"read 2", b"held 1", b"held 2"];
        assert_eq!(reset.held, held, "{reset:?}");
        assert_eq!((reset.held_partial, reset.undecoded), (3, 0), "{reset:?}");
    }
    assert_eq!(receiver.frames(), [b"read 1", b"read 1"]);
    assert!(receiver.errors().is_empty(), "{:?}", receiver.errors());
}

/// Bytes each connection of the resetting receiver takes before its reset.
const RESET_EVERY: usize = 256 * 1024;

/// How a resetting receiver's test logs its records.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// A steady stream: the receiver reads as they come, and resets with
    /// records in flight.
    Stream,
    /// All logged at once: the exporter writes as fast as the receiver reads,
    /// and each connection, its bytes taken, stops reading until its reset,
    /// its window full and the exporter's send queue behind it.
    Backlog,
    /// [`Load::Backlog`] through the batch processor: the SDK's thread
    /// exports it, batch after batch, into the retry buffer.
    BatchBacklog,
}

#[test]
fn a_receiver_resetting_every_256_kib_tcp() {
    resetting_receiver(false, Load::Stream);
}

#[test]
fn a_receiver_resetting_every_256_kib_tls() {
    resetting_receiver(true, Load::Stream);
}

#[test]
fn a_receiver_resetting_every_256_kib_with_a_backlog_tcp() {
    resetting_receiver(false, Load::Backlog);
}

#[test]
fn a_receiver_resetting_every_256_kib_with_a_backlog_tls() {
    resetting_receiver(true, Load::Backlog);
}

#[test]
fn a_receiver_resetting_every_256_kib_with_a_backlog_tcp_batch() {
    resetting_receiver(false, Load::BatchBacklog);
}

#[test]
fn a_receiver_resetting_every_256_kib_with_a_backlog_tls_batch() {
    resetting_receiver(true, Load::BatchBacklog);
}

/// A receiver that resets each connection once it took [`RESET_EVERY`]
/// bytes, again and again, with the direct processor (the batch one for
/// [`Load::BatchBacklog`]). At each reset the
/// receiver itself measures what its kernel held, after keeping out anything
/// more, and acknowledges it: exactly the records a reset may cost, and none
/// of which may be written again. None may arrive twice, and they arrive in
/// order; the counters are checked against what arrived.
///
/// (Without that acknowledgement, a reset while the receiver's delayed ACK
/// is pending leaves the exporter no way to tell the frames read since the
/// last ACK from lost ones: it writes them again, and they arrive twice.)
fn resetting_receiver(tls: bool, load: Load) {
    let label = format!("{} {load:?}", if tls { "tls" } else { "tcp" });
    let pki = TestPki::generate();
    let receiver = Receiver::bind_resetting(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Framing::Nul,
        tls.then(|| pki.server_config(TlsVersions::Both)),
        Resetting {
            every_bytes: RESET_EVERY,
            // A connection dying sooner than a second counts as a failure
            // and the next waits out a growing backoff; a margin over it.
            not_before: Duration::from_millis(1200),
            // What a connection holds at its reset stays under some 200 KB.
            receive_buffer: Some(128 * 1024),
        },
    )
    .unwrap_or_else(|e| panic!("a resetting receiver: {e}"));
    let mut builder = GelfExporter::builder().with_endpoint(format!(
        "{}://localhost:{}",
        if tls { "tls" } else { "tcp" },
        receiver.port()
    ));
    if tls {
        builder = builder.with_ca_file(&pki.ca_pem);
    }
    let exporter = match load {
        Load::Stream => builder,
        // The whole backlog fits the staging area (a quarter of the buffer),
        // or the retry buffer.
        Load::Backlog | Load::BatchBacklog => builder.with_buffer_size(32 * 1024 * 1024),
    }
    .build()
    .expect("build");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder().with_resource(test_resource());
    let provider = match load {
        Load::Stream => provider.with_log_processor(djehouty::DirectProcessor::new(exporter)),
        // Logged at once, not held back: a write failing at a reset would
        // drop the records a logging call can no longer wait for.
        Load::Backlog => provider
            .with_log_processor(djehouty::DirectProcessor::new(exporter).without_backpressure()),
        // The SDK's queue holds the whole backlog.
        Load::BatchBacklog => provider.with_log_processor(djehouty::BatchProcessor::new(exporter)),
    }
    .build();
    let started = Instant::now();
    let total = match load {
        // About 200 KB/s: 256 KiB in more than a second.
        Load::Stream => {
            let total = 12_000;
            stream(&provider, total, Duration::from_micros(1500)).join();
            total
        }
        Load::Backlog | Load::BatchBacklog => {
            // Some 6 MB.
            let total = 20_000;
            with_tracing(&provider, || {
                for seq in 0..total {
                    tracing::info!(seq, "backlog record {seq:06} with some text to carry");
                }
            });
            total
        }
    };
    provider
        .shutdown_with_timeout(Duration::from_secs(30))
        .expect("shutdown delivers the rest");
    let elapsed = started.elapsed();
    // Every connection has ended: what was not held at a reset was read.
    // The last one counts even before the receiver accepted it (on a busy
    // machine it may still wait in the listener's queue).
    let made =
        usize::try_from(counters.snapshot().reconnects).map_or(usize::MAX, |r| r.saturating_add(1));
    receiver.wait_closed(receiver.connections().max(made), WAIT);
    let resets = receiver.resets();
    let errors = receiver.errors();
    let killed = receiver.kill_measured();
    let held: BTreeSet<u64> = resets.iter().flat_map(|r| seqs(&r.held)).collect();
    let t = tally(&seqs(&killed.frames), total);
    let unexplained: Vec<u64> = t
        .missing
        .iter()
        .copied()
        .filter(|s| !held.contains(s))
        .collect();
    let missing: BTreeSet<u64> = t.missing.iter().copied().collect();
    let written_again: Vec<u64> = held.difference(&missing).copied().collect();
    let stats = counters.snapshot();
    eprintln!(
        "{label}: {elapsed:?}, {} resets (frames held at each {:?}, {} with a frame in part, \
         {} bytes of TLS records in part), {total} sent, {} received, {} held, {} missing \
         {:?}, {} missing without being held, {} held and written again, {} duplicates {:?}; \
         {stats:?}",
        resets.len(),
        resets.iter().map(|r| r.held.len()).collect::<Vec<_>>(),
        resets.iter().filter(|r| r.held_partial > 0).count(),
        resets.iter().map(|r| r.undecoded).sum::<usize>(),
        t.received,
        held.len(),
        t.missing.len(),
        runs(&t.missing),
        unexplained.len(),
        written_again.len(),
        t.duplicates,
        runs(&twice(&seqs(&killed.frames))),
    );
    assert!(resets.len() >= 10, "only {} resets", resets.len());
    assert_eq!(
        killed.held.len(),
        resets.iter().map(|r| r.held.len()).sum::<usize>(),
        "the last connection ended with frames unread"
    );
    // Every connection ended by a reset, but the last one, closed cleanly.
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(t.duplicates, 0, "{t:?}");
    assert!(t.in_order, "records arrive in order");
    assert!(
        unexplained.is_empty(),
        "{label}: records {:?} are missing although no reset receiver held them",
        runs(&unexplained)
    );
    // The receiver acknowledged every frame it held before each reset: the
    // exporter must not write any of them again.
    assert!(
        written_again.is_empty(),
        "{label}: records {:?} were acknowledged, yet written again",
        runs(&written_again)
    );
    // The counters, checked against what arrived.
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.buffered_records, 0, "{stats:?}");
    assert_eq!(
        stats.exported,
        t.received as u64 + t.missing.len() as u64,
        "each record exported once: what arrived plus what a reset took: {stats:?}"
    );
}

#[test]
fn a_receiver_that_never_reads_does_not_stall_the_application() {
    never_reads_does_not_stall(direct_provider_for);
}

#[test]
fn a_receiver_that_never_reads_does_not_stall_the_application_batch() {
    never_reads_does_not_stall(tuned_provider);
}

/// The logging calls of [`never_reads_does_not_stall`]: 2,000 records with
/// 8 KiB of filler each, given up after `give_up`; returns the total time,
/// the slowest call and how many calls were made.
fn log_filler_records(
    provider: &SdkLoggerProvider,
    give_up: Duration,
) -> (Duration, Duration, u64) {
    let filler = "x".repeat(8 * 1024);
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    let started = Instant::now();
    with_tracing(provider, || {
        while calls < 2_000 && started.elapsed() < give_up {
            let t = Instant::now();
            tracing::info!(seq = calls, filler = filler.as_str(), "record {calls}");
            slowest = slowest.max(t.elapsed());
            calls += 1;
        }
    });
    (started.elapsed(), slowest, calls)
}

/// A black hole accepts and never reads: once the socket buffers are full,
/// the logging calls must go on as fast as when the receiver is healthy.
fn never_reads_does_not_stall(make: fn(djehouty::GelfExporter) -> SdkLoggerProvider) {
    // The same calls, unblocked: a receiver that reads.
    let healthy = Receiver::tcp(Framing::Nul);
    let provider = make(
        GelfExporter::builder()
            .with_endpoint(format!("tcp://{}", healthy.addr()))
            .build()
            .expect("build"),
    );
    let (unblocked, unblocked_slowest, calls) =
        log_filler_records(&provider, Duration::from_secs(10));
    assert_eq!(
        calls, 2_000,
        "2,000 logging calls to a receiver that reads did not finish in {unblocked:?}"
    );
    provider
        .shutdown()
        .expect("a healthy receiver takes everything");
    drop(healthy);

    let hole = BlackHole::start();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{}", hole.addr))
        .with_write_timeout(Duration::from_millis(500))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = make(exporter);
    // Enough data to fill the socket buffers on both sides many times over.
    // Wide safety margins over the unblocked run (with a floor, for a loaded
    // machine's hiccups), not speed targets.
    let total_bound = (unblocked * 10).max(Duration::from_secs(1));
    // The direct processor's default backpressure may hold one call for
    // its wait, 100 ms as documented, before delivery fails (then no call
    // waits).
    let slowest_bound = (unblocked_slowest * 10).max(Duration::from_millis(100 + 50));
    let (logging_time, slowest, calls) = log_filler_records(&provider, total_bound);
    wait_stats(&counters, "a write timeout", write_timed_out);
    // The stalled connection was dropped and replaced.
    let stats = wait_stats(&counters, "a replaced connection", |s| s.connections >= 2);
    eprintln!(
        "{calls} logging calls took {logging_time:?} (unblocked: {unblocked:?}), the slowest \
         {slowest:?} (unblocked: {unblocked_slowest:?}); {stats:?}; black hole accepted {}",
        hole.accepted.load(Ordering::SeqCst)
    );
    assert!(
        slowest < slowest_bound,
        "a logging call blocked for {slowest:?}"
    );
    assert!(
        calls == 2_000 && logging_time < total_bound,
        "{calls} calls took {logging_time:?}, against {unblocked:?} for 2,000 unblocked"
    );
    assert!(stats.buffered_records > 0, "{stats:?}");
    // The retry buffer's documented default: 16 MiB.
    assert!(stats.buffered_bytes <= 16 << 20, "{stats:?}");
    // Shutdown cannot drain into a black hole: it returns in time, and says
    // how many records it could not deliver.
    let started = Instant::now();
    let error = provider
        .shutdown_with_timeout(Duration::from_secs(2))
        .expect_err("nothing can be delivered");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("were not delivered"), "{error}");
    let stats = counters.snapshot();
    assert!(stats.dropped_at_shutdown > 0, "{stats:?}");
    assert_eq!(stats.buffered_records, 0);
}

#[test]
fn a_full_retry_buffer_drops_the_oldest_and_counts_them_exactly() {
    let addr = free_port();
    let capacity = 16 * 1024;
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{addr}"))
        .with_max_frame_size(4 * 1024)
        .with_buffer_size(capacity)
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = tuned_provider(exporter);
    let sent = 500u64;
    let mut peak = 0;
    with_tracing(&provider, || {
        for seq in 0..sent {
            tracing::info!(seq, "record {seq:04} waiting for the endpoint");
            if seq % 50 == 49 {
                thread::sleep(Duration::from_millis(60));
                peak = peak.max(counters.snapshot().buffered_bytes);
            }
        }
    });
    let stats = wait_stats(&counters, "every record buffered or dropped", |s| {
        s.buffered_records + s.dropped_buffer_full == sent
    });
    assert!(stats.dropped_buffer_full > 0, "{stats:?}");
    assert!(stats.buffered_bytes <= capacity as u64, "{stats:?}");
    assert!(peak <= capacity as u64, "peak {peak}");
    let receiver = Receiver::bind(addr, Framing::Nul, None).expect("bind the receiver late");
    receiver.wait_frames(stats.buffered_records as usize, WAIT);
    provider.shutdown().expect("shutdown");
    // All that arrived, the connection closed and read to its end: the
    // count the exporter's counters are judged by.
    receiver.wait_closed(1, WAIT);
    let frames = receiver.frames();
    let arrived = seqs(&frames);
    let kept = arrived.len() as u64;
    // Exactly the newest records, in order, each once; the oldest were
    // dropped.
    assert_eq!(arrived, (sent - kept..sent).collect::<Vec<_>>());
    // Measured at the receiver: the buffer held at most its size, and was
    // full, less than one more frame from it (a frame is its record and
    // its delimiter).
    let sizes: Vec<u64> = frames.iter().map(|f| f.len() as u64 + 1).collect();
    let held: u64 = sizes.iter().sum();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(held <= capacity as u64, "{held} bytes held");
    assert!(
        capacity as u64 - held < largest,
        "{held} bytes held of {capacity}: room was left for another record"
    );
    let stats = counters.snapshot();
    assert_eq!(stats.dropped_buffer_full, sent - kept, "{stats:?}");
    assert_eq!(stats.exported, kept, "{stats:?}");
}

/// A steady stream through a receiver restarted every 2 s, each time with a
/// backlog in its kernel: before each kill it stops reading for a while. The
/// loss is bounded exactly by what the receiver held unread at each kill, and
/// what arrives is in order. 20 s by default; `SOAK_SECS` sets the duration
/// and `SOAK_EVERY_SECS` the period of the restarts (`--release --nocapture`
/// for long runs).
#[test]
fn soak_through_repeated_restarts_tls() {
    soak(true, false);
}

/// The same with the batch processor: its exports come in bursts of up to a
/// second of records, more than the receive window holds while the receiver
/// does not read.
#[test]
fn soak_through_repeated_restarts_tls_batch() {
    soak(true, true);
}

/// The same over plain TCP.
#[test]
fn soak_through_repeated_restarts_tcp() {
    soak(false, false);
}

/// The same over plain TCP with the batch processor.
#[test]
fn soak_through_repeated_restarts_tcp_batch() {
    soak(false, true);
}

/// A whole number of seconds from the environment variable `name`, or
/// `default`; a value that is not one fails rather than be ignored.
fn secs_from_env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v
            .parse()
            .ok()
            .filter(|secs| *secs > 0)
            .unwrap_or_else(|| panic!("{name}={v:?}: a whole number of seconds above 0")),
    }
}

fn soak(tls: bool, batch: bool) {
    let secs = secs_from_env("SOAK_SECS", 20);
    let every = secs_from_env("SOAK_EVERY_SECS", 2);
    let pki = TestPki::generate();
    let config = tls.then(|| pki.server_config(TlsVersions::Both));
    let mut receiver = Receiver::bind(free_port(), Framing::Nul, config.clone()).expect("bind");
    let addr = receiver.addr();
    let mut builder = GelfExporter::builder().with_endpoint(format!(
        "{}://localhost:{}",
        if tls { "tls" } else { "tcp" },
        addr.port()
    ));
    if tls {
        builder = builder.with_ca_file(&pki.ca_pem);
    }
    let exporter = builder.build().expect("build");
    let counters = exporter.counters();
    let provider = if batch {
        tuned_provider(exporter)
    } else {
        direct_provider_for(exporter)
    };
    let pace = Duration::from_micros(500); // 2,000 records/s
    let total = secs * 2_000;
    let producer = stream(&provider, total, pace);
    let mut arrived = Vec::new();
    let mut held = BTreeSet::new();
    let mut undecoded = 0;
    let mut restarts = 0;
    let started = Instant::now();
    // Bounded: the stream itself lasts `secs`; a stalled one fails below.
    while producer.logged() < total && started.elapsed() < Duration::from_secs(secs * 3 + 30) {
        thread::sleep(Duration::from_secs(every));
        if producer.logged() >= total {
            break;
        }
        if batch {
            // The SDK's processor holds records for up to its delay: those
            // are delivered first, so that what the paused receiver holds
            // unread is about 50 ms of records, as with the direct
            // processor, not a backlog that could fill its window.
            provider.force_flush().expect("delivered before the pause");
        }
        // Once paused, the receiver reads nothing more: the next 100
        // records (about 50 ms of them) stay in its kernel.
        let at = producer.logged();
        receiver.pause_reading();
        producer.wait_logged((at + 100).min(total));
        let over = if tls { Over::Tls } else { Over::Tcp };
        let kill = kill_with_idle_exporter(receiver, &producer, &provider, over);
        assert!(!kill.held.is_empty(), "no backlog at kill {restarts}");
        undecoded += kill.undecoded;
        arrived.extend(kill.read);
        held.extend(kill.held);
        thread::sleep(Duration::from_millis(300));
        receiver = Receiver::bind(addr, Framing::Nul, config.clone()).expect("restart");
        restarts += 1;
    }
    assert!(
        producer.logged() >= total,
        "the stream did not finish in time"
    );
    producer.join();
    provider.shutdown().expect("shutdown");
    arrived.extend(seqs(&receiver.kill()));
    let t = tally(&arrived, total);
    let stats = counters.snapshot();
    let unexplained: Vec<u64> = t
        .missing
        .iter()
        .copied()
        .filter(|s| !held.contains(s))
        .collect();
    println!(
        "soak over {} ({} processor): {:?}, {restarts} receiver restarts every {every} s \
         (0.3 s down each), \
         {total} records sent, {} received, {} missing ({} held unread at the kills, \
         {} missing without being held: {:?}; {undecoded} bytes of TLS records held only in \
         part), {} duplicates, {} dropped by the exporter, {} reconnects",
        if tls { "TLS" } else { "TCP" },
        if batch { "batch" } else { "direct" },
        started.elapsed(),
        t.received,
        t.missing.len(),
        held.len(),
        unexplained.len(),
        runs(&unexplained),
        t.duplicates,
        stats.dropped(),
        stats.reconnects
    );
    assert!(restarts >= secs / (every + 1), "only {restarts} restarts");
    assert_eq!(t.duplicates, 0, "{t:?}");
    assert!(t.in_order, "records arrive in order");
    assert!(
        unexplained.is_empty(),
        "records {:?} are missing although no killed receiver held them",
        runs(&unexplained)
    );
    // The counters, checked against what arrived.
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(
        stats.exported,
        t.received as u64 + t.missing.len() as u64,
        "{stats:?}"
    );
}

#[test]
fn shutdown_delivers_a_large_backlog_to_a_reachable_endpoint() {
    let receiver = Receiver::tcp(Framing::Nul);
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{}", receiver.addr()))
        .with_buffer_size(2 * 1024 * 1024)
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = tuned_provider(exporter);
    // Far more than the retry buffer holds, all queued before the shutdown:
    // exports must wait for delivery rather than overflow the buffer.
    let sent = 6_000u64;
    let filler = "y".repeat(2 * 1024);
    with_tracing(&provider, || {
        for seq in 0..sent {
            tracing::info!(seq, filler = filler.as_str(), "backlog {seq}");
        }
    });
    provider
        .shutdown_with_timeout(Duration::from_secs(30))
        .expect("everything is delivered");
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (sent, 0), "{stats:?}");
    let frames = receiver.wait_frames(sent as usize, WAIT);
    let t = tally(&seqs(&frames), sent);
    assert!(
        t.missing.is_empty() && t.duplicates == 0 && t.in_order,
        "{t:?}"
    );
}

#[test]
fn an_endless_shutdown_timeout_is_fine() {
    let receiver = Receiver::tcp(Framing::Nul);
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{}", receiver.addr()))
        .build()
        .expect("build");
    let provider = tuned_provider(exporter);
    with_tracing(&provider, || tracing::info!(seq = 0u64, "one"));
    provider
        .shutdown_with_timeout(Duration::MAX)
        .expect("shutdown");
    assert_eq!(seqs(&receiver.wait_frames(1, WAIT)), vec![0]);
}

#[test]
fn an_endpoint_that_closes_every_connection_is_reported() {
    let (addr, stop, closer) = closing_endpoint();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{addr}"))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = tuned_provider(exporter);
    with_tracing(&provider, || {
        for seq in 0..40u64 {
            tracing::info!(seq, "record {seq}");
            thread::sleep(Duration::from_millis(50));
        }
    });
    let stats = wait_stats(&counters, "a reported closed connection", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| matches!(e, djehouty::Error::PeerClosed { .. }))
    });
    assert!(stats.failures >= 1, "{stats:?}");
    let error = stats.last_error.expect("an error").to_string();
    assert!(error.contains("closed the connection"), "{error}");
    let _ = provider.shutdown_with_timeout(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    closer.join().expect("closer thread");
}

/// A receiver with a window of about 2 KiB (a receive buffer that small):
/// whatever more is written waits in the exporter's send queue, not
/// acknowledged. Unless paused, it reads 1 KiB of each connection every
/// `pace` (as fast as it can once [`resume`](NarrowReceiver::resume)d).
struct NarrowReceiver {
    addr: SocketAddr,
    /// What it read of each connection, in the order they were accepted.
    read: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    paused: Arc<AtomicBool>,
    fast: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NarrowReceiver {
    fn start(pace: Duration, paused: bool) -> NarrowReceiver {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        // Inherited by the connections accepted: their window stays small.
        socket.set_recv_buffer_size(2048).expect("SO_RCVBUF");
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        socket.bind(&local.into()).expect("bind");
        socket.listen(8).expect("listen");
        let listener: std::net::TcpListener = socket.into();
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let read = Arc::new(std::sync::Mutex::new(Vec::new()));
        let paused = Arc::new(AtomicBool::new(paused));
        let fast = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (read, paused, fast, stop) =
                (read.clone(), paused.clone(), fast.clone(), stop.clone());
            thread::spawn(move || {
                use std::io::Read;
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((sock, _)) = listener.accept() {
                        sock.set_nonblocking(true).expect("nonblocking");
                        held.push(sock);
                        read.lock().expect("read").push(Vec::new());
                    }
                    let mut got = 0;
                    if !paused.load(Ordering::SeqCst) {
                        for (n, sock) in held.iter_mut().enumerate() {
                            let mut block = [0u8; 1024];
                            if let Ok(len) = sock.read(&mut block) {
                                read.lock().expect("read")[n].extend_from_slice(&block[..len]);
                                got += len;
                            }
                        }
                    }
                    if got == 0 || !fast.load(Ordering::SeqCst) {
                        thread::sleep(pace);
                    }
                }
            })
        };
        NarrowReceiver {
            addr,
            read,
            paused,
            fast,
            stop,
            thread: Some(thread),
        }
    }

    /// Reads again, as fast as it can.
    fn resume(&self) {
        self.fast.store(true, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }

    fn connections(&self) -> usize {
        self.read.lock().expect("read").len()
    }

    /// The whole frames read so far, connection after connection.
    fn frames(&self) -> Vec<Vec<u8>> {
        let read = self.read.lock().expect("read");
        let mut frames = Vec::new();
        for bytes in read.iter() {
            let mut whole: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
            // What follows the last delimiter is not a whole frame.
            whole.pop();
            frames.extend(whole);
        }
        frames
    }
}

impl Drop for NarrowReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An exporter writing to `addr` with the given write timeout, through the
/// direct processor without backpressure: what is logged is written at once.
fn narrow_provider(
    addr: SocketAddr,
    write_timeout: Duration,
) -> (SdkLoggerProvider, djehouty::Counters) {
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{addr}"))
        .with_write_timeout(write_timeout)
        // A staging area (a quarter of it) that holds every record these
        // tests log, even while the I/O thread waits for a core: none is
        // dropped for want of room.
        .with_buffer_size(32 << 20)
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter).without_backpressure())
        .build();
    (provider, counters)
}

/// Whether the last error the counters saw is a write timeout.
fn write_timed_out(stats: &djehouty::Stats) -> bool {
    stats.last_error.as_deref().is_some_and(|e| {
        matches!(
            e,
            djehouty::Error::Timeout {
                step: djehouty::Step::Write,
                ..
            }
        )
    })
}

/// Waits until `done` holds, at most [`WAIT`]; what was waited for is
/// asserted afterwards.
fn wait_until(done: impl FnMut() -> bool) {
    support::wait_until(WAIT, done);
}

/// Logs records of some 2 KiB each, numbered `seqs`.
fn log_2k_records(provider: &SdkLoggerProvider, seqs: std::ops::Range<u64>) {
    let filler = "f".repeat(2048);
    with_tracing(provider, || {
        for seq in seqs {
            tracing::info!(seq, filler = filler.as_str(), "record {seq}");
        }
    });
}

/// A receiver that stops reading while the exporter has nothing more to
/// write: the write went through (some 40 KB, far less than a send queue
/// holds), so only the idle exporter's own check can tell that the bytes
/// are never acknowledged. It does, within the write timeout: the
/// connection is dropped as a write timeout, and another one tried.
#[test]
fn an_idle_exporter_drops_a_connection_whose_receiver_stopped_reading() {
    let receiver = NarrowReceiver::start(Duration::from_millis(5), true);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_millis(300));
    let sent = 20;
    log_2k_records(&provider, 0..sent);
    let stats = wait_stats(&counters, "a write timeout, then a new connection", |s| {
        s.connections >= 2 && write_timed_out(s)
    });
    assert!(stats.failures >= 1, "{stats:?}");
    // The error says what it means and what to do.
    let error = stats.last_error.as_deref().map(ToString::to_string);
    let error = error.unwrap_or_default();
    assert!(
        error.contains("no longer reading") && error.contains("with_write_timeout"),
        "{error}"
    );
    wait_until(|| receiver.connections() >= 2);
    assert!(
        receiver.connections() >= 2,
        "the receiver saw one connection"
    );
    provider
        .shutdown_with_timeout(Duration::from_secs(1))
        .expect_err("the receiver never reads");
    // Each record delivered (acknowledged), or counted as not.
    let stats = counters.snapshot();
    assert_eq!(stats.exported + stats.dropped(), sent, "{stats:?}");
    assert_eq!(stats.dropped_buffer_full, 0, "{stats:?}");
}

/// A receiver that reads slowly but steadily while the exporter has
/// nothing more to write: some 60 KB that take it about 3 s, three times
/// the write timeout. Each acknowledgement is progress: the connection is
/// kept, and every record arrives once, in order.
#[test]
fn an_idle_exporter_keeps_a_connection_whose_receiver_reads_slowly() {
    // About 3 s of reading at this pace, beyond the 2 s write timeout (so
    // that the connection must be kept for making progress), which leaves
    // room for window updates delayed on a busy machine.
    let receiver = NarrowReceiver::start(Duration::from_millis(50), false);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_secs(2));
    let sent = 60;
    log_2k_records(&provider, 0..sent);
    wait_until(|| receiver.frames().len() >= sent as usize);
    assert_eq!(seqs(&receiver.frames()), (0..sent).collect::<Vec<_>>());
    provider.shutdown().expect("shutdown");
    let stats = counters.snapshot();
    assert_eq!(
        (stats.exported, stats.failures, stats.connections),
        (sent, 0, 1),
        "{stats:?}"
    );
}

/// A connection given up on (its receiver stopped reading for longer than
/// the write timeout) is reset, not closed: what it had not delivered is
/// written again on the next connection, and must not arrive through the
/// old one as well once the receiver reads again.
#[test]
fn a_connection_given_up_is_reset_and_delivers_nothing_more() {
    let receiver = NarrowReceiver::start(Duration::from_millis(1), true);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_millis(300));
    let sent = 20;
    log_2k_records(&provider, 0..sent);
    wait_stats(&counters, "a connection given up on", |s| {
        s.connections >= 2
    });
    receiver.resume();
    wait_until(|| seqs(&receiver.frames()).contains(&(sent - 1)));
    provider.shutdown().expect("shutdown");
    // Some time for anything the old connections might still deliver.
    thread::sleep(Duration::from_millis(300));
    let arrived = seqs(&receiver.frames());
    let t = tally(&arrived, sent);
    assert!(arrived.contains(&(sent - 1)), "{t:?}");
    // Counted by the receiver: none lost (what the old connection's
    // receiver acknowledged stays readable after the reset).
    assert!(t.missing.is_empty(), "{t:?}");
    assert_eq!(
        t.duplicates,
        0,
        "{:?} arrived twice",
        runs(&twice(&arrived))
    );
    assert!(t.in_order, "{arrived:?}");
}

/// Accepts, then closes each connection at once (a load balancer without a
/// healthy backend does this), until told to stop.
fn closing_endpoint() -> (SocketAddr, Arc<AtomicBool>, thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address");
    let stop = Arc::new(AtomicBool::new(false));
    let closer = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, _)) => drop(sock),
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        })
    };
    (addr, stop, closer)
}

/// Connections that the endpoint closes as soon as they open are failures
/// in a row, each followed by a longer backoff: 50 to 100 ms at first,
/// twice as long each time. Over two seconds of records, one every 10 ms,
/// that is some six connections, not one a record.
#[test]
fn connections_that_die_young_are_retried_ever_more_slowly() {
    let (addr, stop, closer) = closing_endpoint();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{addr}"))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = direct_provider_for(exporter);
    with_tracing(&provider, || {
        for seq in 0..200u64 {
            tracing::info!(seq, "record {seq}");
            thread::sleep(Duration::from_millis(10));
        }
    });
    let stats = counters.snapshot();
    assert!(stats.failures >= 2, "{stats:?}");
    assert!(stats.connections <= 12, "{stats:?}");
    let _ = provider.shutdown_with_timeout(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    closer.join().expect("closer thread");
}

/// Frames are written while earlier ones still wait for acknowledgement,
/// as long as the buffer has room for both: with a receiver that stopped
/// reading, the second batch joins the first in the exporter's send queue
/// rather than wait in its buffer.
#[test]
fn frames_are_written_while_earlier_ones_wait_for_acknowledgement() {
    let receiver = NarrowReceiver::start(Duration::from_millis(5), true);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_secs(60));
    log_2k_records(&provider, 0..10);
    wait_stats(
        &counters,
        "the first batch written, not acknowledged",
        |s| s.unacknowledged_records > 0 && s.buffered_records == s.unacknowledged_records,
    );
    log_2k_records(&provider, 10..20);
    wait_stats(&counters, "the second batch written as well", |s| {
        s.exported + s.unacknowledged_records == 20
            && s.buffered_records == s.unacknowledged_records
    });
    provider
        .shutdown_with_timeout(Duration::from_millis(500))
        .expect_err("the receiver does not read");
    let stats = counters.snapshot();
    assert_eq!(stats.exported + stats.dropped(), 20, "{stats:?}");
}

/// Records a shutdown reports as not delivered never arrive later: the
/// connection it gives up, with frames its peer did not acknowledge, is
/// reset rather than closed (the kernel would go on sending them once the
/// receiver reads again).
#[test]
fn records_a_shutdown_reports_lost_never_arrive() {
    let receiver = NarrowReceiver::start(Duration::from_millis(5), true);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_secs(60));
    let sent = 20;
    log_2k_records(&provider, 0..sent);
    wait_stats(&counters, "records written, not acknowledged", |s| {
        s.exported + s.unacknowledged_records == sent
    });
    provider
        .shutdown_with_timeout(Duration::from_millis(500))
        .expect_err("the receiver does not read");
    let stats = counters.snapshot();
    assert_eq!(
        stats.exported + stats.dropped_at_shutdown,
        sent,
        "{stats:?}"
    );
    receiver.resume();
    // Time for whatever the connection could still deliver.
    thread::sleep(Duration::from_millis(500));
    // Exactly those its TCP acknowledged (readable after the reset).
    let arrived = seqs(&receiver.frames());
    let delivered: Vec<u64> = (0..stats.exported).collect();
    assert_eq!(arrived, delivered, "{stats:?}");
}

/// A shutdown that gives up while a receiver reads slowly, its write
/// blocked on the send queue, counts as exported what the receiver's TCP
/// acknowledged up to the end, not only up to the exporter's last
/// question to the kernel: the records that then arrive are those
/// counted, and none reported lost arrives.
#[test]
fn a_shutdown_that_gives_up_mid_write_reports_what_was_acknowledged() {
    let receiver = NarrowReceiver::start(Duration::from_millis(5), false);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_secs(60));
    // Some 4 MB: more than the send queue takes, so a write stays blocked.
    let sent = 2_000;
    log_2k_records(&provider, 0..sent);
    wait_stats(&counters, "records acknowledged, others waiting", |s| {
        s.exported > 0 && s.unacknowledged_records > 0
    });
    provider
        .shutdown_with_timeout(Duration::from_millis(500))
        .expect_err("the receiver reads too slowly");
    let stats = counters.snapshot();
    assert_eq!(stats.exported + stats.dropped(), sent, "{stats:?}");
    receiver.resume();
    let until = Instant::now() + WAIT;
    while seqs(&receiver.frames()).len() < stats.exported as usize && Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
    // Time for whatever the connection could still deliver.
    thread::sleep(Duration::from_millis(300));
    let arrived = seqs(&receiver.frames());
    let t = tally(&arrived, sent);
    assert!(t.in_order && t.duplicates == 0, "{t:?}");
    // Those counted exported, and at most one more: a record whose last
    // bytes were acknowledged between the exporter's last question and the
    // reset, microseconds apart.
    let counted = stats.exported as usize;
    assert!(
        (counted..=counted + 1).contains(&arrived.len()),
        "{} records arrived, {counted} counted exported: {stats:?}",
        arrived.len()
    );
}

/// A shutdown makes its first attempt at once, whatever the backoff; with
/// the endpoint still down, the next ones wait theirs again, rather than
/// hammer it for the rest of the shutdown.
#[test]
fn a_shutdown_skips_the_backoff_once_only() {
    let addr = free_port();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{addr}"))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = direct_provider_for(exporter);
    with_tracing(&provider, || {
        for seq in 0..10u64 {
            tracing::info!(seq, "record {seq} while the endpoint is down");
        }
    });
    // Four failures in a row: the next attempts are 0.4 s, then 0.8 s and
    // more apart.
    let before = wait_stats(&counters, "four failed connections", |s| s.failures >= 4).failures;
    provider
        .shutdown_with_timeout(Duration::from_secs(1))
        .expect_err("the endpoint is down");
    let stats = counters.snapshot();
    assert!(
        stats.failures - before <= 3,
        "{} attempts in a shutdown of 1 s: {stats:?}",
        stats.failures - before
    );
    assert_eq!(
        (stats.exported, stats.dropped_at_shutdown),
        (0, 10),
        "{stats:?}"
    );
}

/// A shutdown that gives up while a write is blocked (the receiver reads
/// nothing, and the write timeout is far longer than the shutdown) still
/// accounts for every record: acknowledged, or told as not delivered; and
/// the bytes it tells are those of the records still waiting.
#[test]
fn a_shutdown_that_gives_up_during_a_blocked_write_counts_every_record() {
    let hole = BlackHole::start();
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{}", hole.addr))
        .with_write_timeout(Duration::from_secs(60))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter).without_backpressure())
        .build();
    // Some 16 MB: more than the receiver's window and the send queue hold.
    let sent = 2_000u64;
    let filler = "x".repeat(8 * 1024);
    with_tracing(&provider, || {
        for seq in 0..sent {
            tracing::info!(seq, filler = filler.as_str(), "record {seq}");
        }
    });
    wait_stats(&counters, "records written, not acknowledged", |s| {
        s.unacknowledged_records > 0
    });
    let error = provider
        .shutdown_with_timeout(Duration::from_secs(1))
        .expect_err("the receiver reads nothing")
        .to_string();
    let stats = counters.snapshot();
    assert_eq!(stats.exported + stats.dropped(), sent, "{stats:?}");
    // "... N (B bytes) still waiting when time ran out ..."
    let before = error
        .split(" bytes) still waiting")
        .next()
        .filter(|head| head.len() < error.len())
        .unwrap_or_else(|| panic!("no record still waiting: {error}"));
    let mut words = before.rsplit(' ');
    let bytes: u64 = words
        .next()
        .and_then(|w| w.trim_start_matches('(').parse().ok())
        .expect(&error);
    let waiting: u64 = words.next().and_then(|w| w.parse().ok()).expect(&error);
    assert!(waiting > 0, "{error}");
    // Each record's frame holds its 8 KiB of filler, and some 300 bytes more.
    assert!(
        (waiting * 8 * 1024..=waiting * 9 * 1024).contains(&bytes),
        "{waiting} records of {bytes} bytes: {error}"
    );
}

/// A write that times out part-way (the receiver stopped reading, and more
/// is written than the send queue takes): the frames it wrote whole wait
/// for acknowledgement, the rest go back to the buffer, and once the
/// receiver reads again each arrives once, in order.
#[test]
fn a_write_that_times_out_part_way_writes_nothing_twice() {
    let receiver = NarrowReceiver::start(Duration::from_millis(1), true);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_millis(300));
    // Some 4 MB: more than a send queue takes by default.
    let sent = 2_000;
    log_2k_records(&provider, 0..sent);
    wait_stats(&counters, "a write timeout", write_timed_out);
    receiver.resume();
    wait_until(|| seqs(&receiver.frames()).contains(&(sent - 1)));
    provider.shutdown().expect("shutdown");
    let arrived = seqs(&receiver.frames());
    let t = tally(&arrived, sent);
    assert!(arrived.contains(&(sent - 1)), "{t:?}");
    assert_eq!(
        t.duplicates,
        0,
        "{:?} arrived twice",
        runs(&twice(&arrived))
    );
    assert!(t.in_order, "records arrive in order");
    // Counted by the receiver, not only by the exporter.
    assert!(t.missing.is_empty(), "{t:?}");
    let stats = counters.snapshot();
    assert_eq!((stats.exported, stats.dropped()), (sent, 0), "{stats:?}");
}

/// A flush while the receiver does not read returns once delivery fails
/// (the idle connection given up on after the write timeout), and says so,
/// rather than wait out its own time.
#[test]
fn a_flush_returns_once_an_idle_connection_is_given_up() {
    let receiver = NarrowReceiver::start(Duration::from_millis(5), true);
    let exporter = GelfExporter::builder()
        .with_endpoint(format!("tcp://{}", receiver.addr))
        .with_write_timeout(Duration::from_millis(300))
        .with_timeout(Duration::from_secs(5))
        .build()
        .expect("build");
    let counters = exporter.counters();
    let provider = SdkLoggerProvider::builder()
        .with_resource(test_resource())
        .with_log_processor(djehouty::DirectProcessor::new(exporter).without_backpressure())
        .build();
    log_2k_records(&provider, 0..20);
    wait_stats(&counters, "records written, not acknowledged", |s| {
        s.unacknowledged_records > 0
    });
    let error = provider
        .force_flush()
        .expect_err("the receiver does not read")
        .to_string();
    assert!(error.contains("delivery is failing"), "{error}");
    provider
        .shutdown_with_timeout(Duration::from_millis(500))
        .expect_err("the receiver does not read");
}

/// Each write's frames end where they end on the connection, counted from
/// where that write started, not from the connection's start: with a
/// receiver that stopped reading, a second write's frames are not taken as
/// acknowledged for bytes that only the first one's were. Once the
/// connection is given up on, every frame its receiver did not get is
/// written again, and every record arrives once.
#[test]
fn a_second_write_is_acknowledged_from_where_it_started() {
    let receiver = NarrowReceiver::start(Duration::from_millis(5), true);
    let (provider, counters) = narrow_provider(receiver.addr, Duration::from_millis(300));
    let sent = 40u64;
    // A first write of one short record, acknowledged (it fits the window).
    with_tracing(&provider, || tracing::info!(seq = 0u64, "short record 0"));
    wait_stats(&counters, "the first record acknowledged", |s| {
        s.exported == 1
    });
    // Then more short records than the rest of the window holds.
    with_tracing(&provider, || {
        for seq in 1..sent {
            tracing::info!(seq, "short record {seq}");
        }
    });
    wait_stats(&counters, "the connection given up on", |s| {
        s.connections >= 2
    });
    receiver.resume();
    wait_until(|| receiver.frames().len() >= sent as usize);
    provider.shutdown().expect("shutdown");
    let arrived = seqs(&receiver.frames());
    let t = tally(&arrived, sent);
    assert!(
        t.missing.is_empty() && t.duplicates == 0 && t.in_order,
        "{t:?}"
    );
}
