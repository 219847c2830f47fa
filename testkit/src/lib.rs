//! Test support for djehouty's integration tests, its benchmarks and the
//! peer benchmark: a dev-only crate of the workspace, compiled once. The
//! tests use it as `support` (`use djehouty_testkit as support;`):
//!
//! - [`alloc`]: a counting global allocator, for the benchmarks and the
//!   tests that bound what one record allocates.
//! - [`blackhole`]: a TCP listener that accepts and never reads
//!   ([`blackhole::BlackHole`]).
//! - [`certs`]: a throw-away PKI ([`certs::TestPki`]: a CA and a `localhost`
//!   server certificate signed by it), rustls client and server configurations
//!   built from it, and a small blocking TLS client ([`certs::TlsClient`]).
//! - [`diagnostics`]: a `tracing` layer keeping the exporter's own
//!   diagnostics ([`diagnostics::Capture`]).
//! - [`receiver`]: an in-process TCP/TLS receiver ([`receiver::Receiver`]) that
//!   splits the byte stream on a delimiter and records every frame verbatim.
//! - [`rsyslog`]: a private `rsyslogd` ([`rsyslog::Rsyslog`]) used as a real,
//!   independent GELF and LTSV receiver over TCP and TLS 1.2 / 1.3.
//! - [`http`]: an in-process HTTP/HTTPS server ([`http::HttpServer`], hyper)
//!   that records every request and answers as the test scripts it.
//! - [`graylog`]: strict checkers for what Graylog's GELF TCP input and the
//!   OVHcloud Logs Data Platform accept ([`graylog::assert_graylog_accepts`],
//!   [`graylog::assert_ltsv_line_ok`]).
//! - [`udp`]: an in-process GELF UDP receiver ([`udp::UdpReceiver`]) that
//!   reassembles chunks in any order and decompresses GZIP and ZLIB.
//! - [`pipeline`]: exporters and providers wired to those receivers, and
//!   numbered streams to count what arrived.
//! - [`generators`] and [`oracles`]: arbitrary records for the property and
//!   fuzz tests, and checks of their own (serde_json, the `base64` decoder,
//!   Graylog's blankness rule written out).
//!
//! Everything listens on loopback addresses only and every wait is bounded.

pub mod alloc;
pub mod blackhole;
pub mod certs;
pub mod diagnostics;
pub mod generators;
pub mod graylog;
pub mod http;
pub mod oracles;
pub mod pipeline;
pub mod receiver;
pub mod rsyslog;
pub mod udp;

pub use blackhole::BlackHole;
pub use certs::{send_plain, send_tls, TestPki, TlsClient, TlsVersions};
pub use graylog::{assert_graylog_accepts, assert_ltsv_line_ok};
pub use receiver::{Frame, Framing, Killed, Receiver, Reset, Resetting};
pub use rsyslog::{rsyslogd_path, Input, Received, Rsyslog};

/// Runs the test `name` of the current test binary again, alone, in a child
/// process whose environment has `marker` set (the test's child part then
/// runs), and returns how it ended and what it wrote (its own output too:
/// `--nocapture`). For what only a process of its own shows: its stderr,
/// its global logger or subscriber, an abort.
pub fn rerun_in_child(name: &str, marker: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    std::process::Command::new(exe)
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(marker, "1")
        .output()
        .expect("the child process ran")
}

/// The lines of a child's stderr (see [`rerun_in_child`]) that start with
/// `prefix`, once it ended well (else a panic with what it wrote).
pub fn child_stderr_lines(output: &std::process::Output, prefix: &str) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child failed: {}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
        .lines()
        .filter(|line| line.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// On a new thread, makes a thread-local value first, whose destructor
/// calls `late`, then calls `now`: the thread's locals are destroyed in the
/// reverse order of their making, so `late` runs after those `now` made
/// (OpenTelemetry's context, for a logging call) were destroyed. Panics if
/// the thread did.
pub fn call_late_at_thread_exit(late: fn(), now: fn()) {
    struct Late(std::cell::Cell<Option<fn()>>);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some(late) = self.0.get() {
                late();
            }
        }
    }
    thread_local! {
        static LATE: Late = const { Late(std::cell::Cell::new(None)) };
    }
    std::thread::spawn(move || {
        LATE.with(|slot| slot.0.set(Some(late)));
        now();
    })
    .join()
    .expect("the thread ended without a panic");
}

/// Waits on `changed` until `done` holds for the state behind `state`, at
/// most `timeout`; then panics with `timed_out`'s description of the state
/// (the lock released first). Returns the locked state.
pub fn wait_for<'a, S>(
    state: &'a std::sync::Mutex<S>,
    changed: &std::sync::Condvar,
    timeout: std::time::Duration,
    done: impl Fn(&S) -> bool,
    timed_out: impl FnOnce(&S) -> String,
) -> std::sync::MutexGuard<'a, S> {
    let deadline = std::time::Instant::now() + timeout;
    // A panicking server thread must not hide what was received.
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    while !done(&guard) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let message = timed_out(&guard);
            drop(guard);
            panic!("{message}");
        }
        guard = changed
            .wait_timeout(guard, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    guard
}

/// Waits until `done` holds, checking every 10 ms, at most `timeout`; the
/// caller asserts what it waited for afterwards.
pub fn wait_until(timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A loopback address whose port nothing listens on, for a receiver bound
/// later on (an endpoint down at start, a receiver restarted on the same
/// port) or never (an unreachable endpoint). The port lies below the kernel's
/// ephemeral range (32768 and up by default), where every other test's
/// listeners (bound to port 0) and outgoing connections get theirs, so none of
/// them can take it in the meantime; each call in a process returns another
/// port. Nothing is bound to it over TCP or UDP.
pub fn unused_port() -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test binaries run one after the other, but each starts from another
    // place anyway (spread, so that processes with neighbouring ids do not
    // walk the same ports).
    let _ = NEXT.compare_exchange(
        0,
        1 + std::process::id().wrapping_mul(2_654_435_761) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port as u16));
        if std::net::TcpListener::bind(addr).is_ok() && std::net::UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!(
        "no free loopback port between {FIRST} and {}",
        FIRST + COUNT
    );
}

/// Renders bytes for diagnostics: UTF-8 text with control characters and
/// invalid bytes escaped, cut after 400 characters.
pub fn show_bytes(bytes: &[u8]) -> String {
    const LIMIT: usize = 400;
    let mut out = String::from("\"");
    let mut shown = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == LIMIT {
                out.push_str(&format!("\"... ({} bytes in all)", bytes.len()));
                return out;
            }
            out.extend(c.escape_debug());
            shown += 1;
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
            shown += 1;
        }
    }
    out.push('"');
    out
}
