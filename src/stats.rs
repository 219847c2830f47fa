//! Counters a user can read: what was delivered, what was dropped and why, how
//! often the connection was replaced, and what is waiting in the retry buffer.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::error::Error;

/// A handle on an exporter's counters.
///
/// Take it before handing the exporter to the SDK; it stays valid (and keeps
/// counting) for the exporter's whole life, and is cheap to clone.
///
/// ```no_run
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = djehouty::GelfExporter::builder()
///     .with_endpoint("tls://graylog.example.com:12202")
///     .build()?;
/// let counters = exporter.counters();
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(djehouty::BatchProcessor::new(exporter))
///     .build();
/// // ... later, from a health check or a metrics scrape:
/// let stats = counters.snapshot();
/// println!("{} exported, {} dropped", stats.exported, stats.dropped());
/// # Ok::<(), djehouty::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Counters {
    cells: Arc<Cells>,
}

/// The counters' values at one instant; see [`Counters::snapshot`].
///
/// Records dropped by the OpenTelemetry SDK itself (its batch processor's queue
/// full) never reach the exporter and are not counted here.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Records delivered: over TCP and TLS, written and acknowledged by the
    /// receiver's TCP (on Linux; elsewhere, written: the platform does not
    /// tell); over HTTP(S), acknowledged with a 2xx answer; over UDP, handed
    /// to the kernel. See docs/reliability.md.
    pub exported: u64,
    /// Oldest records dropped from the retry buffer to make room for new ones
    /// while the endpoint was unreachable or too slow (the oldest not yet
    /// written, while written ones await their acknowledgement), records a
    /// [`DirectProcessor`](crate::DirectProcessor) found no room for in its
    /// staging area (after its backpressure wait, if any), and records the
    /// SDK's queue behind a [`BatchProcessor`](crate::BatchProcessor) found
    /// no room in (counted at the next flush, or at the shutdown).
    pub dropped_buffer_full: u64,
    /// Records a shutdown could not deliver: still buffered or on their way
    /// into the buffer when its time ran out; records exported after it
    /// (refused); and, through this crate's processors, records logged
    /// after it. Also, through the one-call set-ups'
    /// bridges (`tracing_layer`, `install_log`), records logged by a
    /// thread-local destructor as its thread ends, once OpenTelemetry's
    /// context there is gone (the SDK, which asks it, would panic).
    pub dropped_at_shutdown: u64,
    /// Records an `http(s)://` endpoint refused for good (a 4xx answer other
    /// than 408 and 429, a 501 or 505, or a redirect): they are not sent
    /// again, since they would be refused again. The refusal, with its status
    /// and the start of the response body, is kept as
    /// [`last_error`](Stats::last_error). Also
    /// counted here: a `udp://` message that still needed more than 128
    /// chunks after its text was cut (only possible with huge static fields).
    pub dropped_rejected: u64,
    /// Records larger than the frame limit, cut (and marked) rather than dropped.
    pub truncated: u64,
    /// Connections established, the first one included.
    pub connections: u64,
    /// Connections established after the first: each one replaced a connection
    /// that failed, stalled or was closed by the peer (over HTTP, also one
    /// closed after 30 s unused).
    pub reconnects: u64,
    /// Failed connection attempts, handshakes and writes; over HTTP, requests
    /// that got no answer in time or a 5xx (but 501 and 505), 429 or 408
    /// answer (sent again).
    pub failures: u64,
    /// Records waiting in the retry buffer (including those being written).
    pub buffered_records: u64,
    /// Bytes waiting in the retry buffer (including those being written).
    pub buffered_bytes: u64,
    /// Records written over TCP or TLS that the receiver's TCP has not
    /// acknowledged yet (counted in `buffered_records` too): they are written
    /// again on the next connection if this one fails.
    pub unacknowledged_records: u64,
    /// Bytes of those records.
    pub unacknowledged_bytes: u64,
    /// The most recent transport error (kept after delivery recovers: compare
    /// `failures` between snapshots to see whether it is still failing), or
    /// the most recent refusal of an HTTP endpoint
    /// ([`Error::HttpStatus`], counted in `dropped_rejected`).
    pub last_error: Option<Arc<Error>>,
}

impl Stats {
    /// All records dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_buffer_full + self.dropped_at_shutdown + self.dropped_rejected
    }
}

#[derive(Default)]
struct Cells {
    exported: AtomicU64,
    dropped_buffer_full: AtomicU64,
    dropped_at_shutdown: AtomicU64,
    /// Those of `dropped_at_shutdown` a shutdown dropped (not a thread's
    /// end): what a flush watches for.
    dropped_by_shutdown: AtomicU64,
    /// Those of `dropped_buffer_full` a shutdown's report told, as dropped
    /// while it went on.
    buffer_full_told: AtomicU64,
    dropped_rejected: AtomicU64,
    truncated: AtomicU64,
    connections: AtomicU64,
    failures: AtomicU64,
    buffered_records: AtomicU64,
    buffered_bytes: AtomicU64,
    unacknowledged_records: AtomicU64,
    unacknowledged_bytes: AtomicU64,
    last_error: Mutex<Option<Arc<Error>>>,
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> Stats {
        let c = &self.cells;
        let connections = c.connections.load(Relaxed);
        Stats {
            exported: c.exported.load(Relaxed),
            dropped_buffer_full: c.dropped_buffer_full.load(Relaxed),
            dropped_at_shutdown: c.dropped_at_shutdown.load(Relaxed),
            dropped_rejected: c.dropped_rejected.load(Relaxed),
            truncated: c.truncated.load(Relaxed),
            connections,
            reconnects: connections.saturating_sub(1),
            failures: c.failures.load(Relaxed),
            buffered_records: c.buffered_records.load(Relaxed),
            buffered_bytes: c.buffered_bytes.load(Relaxed),
            unacknowledged_records: c.unacknowledged_records.load(Relaxed),
            unacknowledged_bytes: c.unacknowledged_bytes.load(Relaxed),
            last_error: self.last_error(),
        }
    }

    fn last_error(&self) -> Option<Arc<Error>> {
        self.cells
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn add_exported(&self, n: u64) {
        self.cells.exported.fetch_add(n, Relaxed);
    }

    pub(crate) fn add_dropped_buffer_full(&self, n: u64) {
        self.cells.dropped_buffer_full.fetch_add(n, Relaxed);
    }

    /// Counts records a shutdown dropped.
    pub(crate) fn add_dropped_at_shutdown(&self, n: u64) {
        self.cells.dropped_by_shutdown.fetch_add(n, Relaxed);
        self.cells.dropped_at_shutdown.fetch_add(n, Relaxed);
    }

    /// Counts a record logged as its thread ends, which the SDK cannot take
    /// (told as dropped at shutdown, but no shutdown's doing).
    #[cfg(any(feature = "tracing", feature = "log", test))]
    pub(crate) fn add_dropped_at_thread_end(&self, n: u64) {
        self.cells.dropped_at_shutdown.fetch_add(n, Relaxed);
    }

    /// Counts records an endpoint refused for good and keeps the refusal as
    /// the last error (it is not a delivery failure: the endpoint answered).
    pub(crate) fn add_rejected(&self, n: u64, error: Arc<Error>) {
        self.cells.dropped_rejected.fetch_add(n, Relaxed);
        *self
            .cells
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    pub(crate) fn add_truncated(&self, n: u64) {
        self.cells.truncated.fetch_add(n, Relaxed);
    }

    /// Counts records dropped for want of room that a shutdown's report
    /// told (already counted as dropped).
    pub(crate) fn add_buffer_full_told(&self, n: u64) {
        self.cells.buffer_full_told.fetch_add(n, Relaxed);
    }

    /// Records dropped for want of room that a shutdown's report told.
    pub(crate) fn buffer_full_told(&self) -> u64 {
        self.cells.buffer_full_told.load(Relaxed)
    }

    /// Records a shutdown dropped so far, not counting those logged as
    /// their thread ended (cheaper than a snapshot).
    pub(crate) fn dropped_by_shutdown(&self) -> u64 {
        self.cells.dropped_by_shutdown.load(Relaxed)
    }

    /// Failures so far (cheaper than a snapshot).
    pub(crate) fn failures(&self) -> u64 {
        self.cells.failures.load(Relaxed)
    }

    pub(crate) fn add_connection(&self) {
        self.cells.connections.fetch_add(1, Relaxed);
    }

    /// Counts a failure and keeps it as the last error.
    pub(crate) fn add_failure(&self, error: Arc<Error>) {
        self.cells.failures.fetch_add(1, Relaxed);
        *self
            .cells
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    /// Sets the buffer gauges (called with the buffer's lock held, so they never
    /// go backwards out of order).
    pub(crate) fn set_buffered(&self, records: usize, bytes: usize) {
        self.cells.buffered_records.store(records as u64, Relaxed);
        self.cells.buffered_bytes.store(bytes as u64, Relaxed);
    }

    /// Sets the gauges of records written and not yet acknowledged.
    pub(crate) fn set_unacknowledged(&self, records: usize, bytes: usize) {
        self.cells
            .unacknowledged_records
            .store(records as u64, Relaxed);
        self.cells.unacknowledged_bytes.store(bytes as u64, Relaxed);
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Counters").field(&self.snapshot()).finish()
    }
}
