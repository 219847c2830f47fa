//! [`DirectProcessor`]: records encoded where they are logged, bytes shipped
//! in the background.
//!
//! The SDK's batch processor copies every record (a heap-allocated clone of
//! its attributes) into a bounded channel, which its worker thread drains into
//! the exporter; when the application logs faster than that thread exports,
//! the channel fills and records are dropped. This processor skips the copy
//! and the record queue: `emit` maps and encodes the record on the calling
//! thread into a thread-local buffer (about as long as the SDK's copy), then
//! appends the bytes to a staging area under a mutex held only for that copy.
//! A task on the exporter's I/O runtime moves staged frames into the retry
//! buffer, whence the delivery task writes them.
//!
//! ```text
//! log call ─ emit: map + encode ─► staging (bytes) ─► retry buffer ─► socket
//!            (caller's thread)        flusher task ─┘   delivery task
//! ```
//!
//! A record that finds the stage full makes the logging thread yield its
//! time slice once (on a machine whose cores are all busy, the I/O thread
//! may simply not have run), then, if there is still no room, is dropped and
//! counted (`dropped_buffer_full`), or, with
//! [`DirectProcessor::with_backpressure`] and while the endpoint is healthy,
//! waits for room, for a bounded time. While the endpoint is healthy, the
//! flusher waits for room in the retry buffer, so the staging area absorbs
//! bursts; while it is failing, the retry buffer drops its oldest records as
//! usual. The sizes are on [`DirectProcessor`], under "Memory".

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::Resource;
use tokio::sync::Notify;

use super::stage::{
    flush, reserved, stage_bytes, wakes_flusher, Stage, Staging, BACKPRESSURE_STAGE_BYTES,
    BACKPRESSURE_WINDOW_BYTES, MIN_STAGE_BYTES,
};
use super::{flush_verdict, refuse_flush_on_io_thread, wait_flushed};
use crate::delivery::Shared;
use crate::encode::{Format, PackScratch};
use crate::exporter::Exporter;
use crate::frames::Frames;
use crate::pipeline::Pipeline;
use crate::runtime::{self, run_within, suppress_telemetry};
use crate::stats::Counters;

/// How often a logging thread waiting for room checks that the endpoint is
/// still healthy (it stops waiting as soon as delivery fails).
const HEALTH_CHECK: Duration = Duration::from_millis(10);

/// Thread-local encoding buffers larger than this are not kept.
const KEEP_SCRATCH_BYTES: usize = 256 * 1024;

/// A log processor that encodes each record on the thread that logs it and
/// ships the bytes from the exporter's own I/O thread: no copy of the record,
/// no queue of records, memory bounded in bytes. The recommended processor for
/// busy services (see the README's "Performance" section).
///
/// `emit` encodes (about half a microsecond for a typical record) and
/// appends the bytes to a staging area under a lock held for that copy
/// only. When the staging area is full (the endpoint cannot keep up), the
/// logging call waits for room, at most
/// [`DEFAULT_MAX_WAIT`](Self::DEFAULT_MAX_WAIT), and only while the endpoint
/// is healthy: it never waits while delivery is failing
/// ([`with_backpressure`](Self::with_backpressure) says how it is bounded).
/// A record still without room is dropped and counted in [`Counters`];
/// [`without_backpressure`](Self::without_backpressure) drops at once
/// instead of waiting. `force_flush` waits until everything logged before it
/// was delivered (within the exporter's timeout), and fails if some of it
/// was dropped meanwhile, or at once on an exporter's I/O thread (which
/// delivers records); `shutdown` drains what it
/// can and reports what it could not deliver, like the exporter's.
///
/// # Memory
///
/// Bounded in bytes. The staging area holds a quarter of the retry buffer's
/// size ([`with_buffer_size`](crate::ExporterBuilder::with_buffer_size),
/// [`DEFAULT_BUFFER_BYTES`](crate::config::DEFAULT_BUFFER_BYTES) by
/// default), and at least two of the largest records and
/// [`MIN_STAGE_BYTES`](Self::MIN_STAGE_BYTES). Records wait in the stage,
/// in the batch the flusher is moving (at most a stage's worth) and in the
/// retry buffer: at most one and a half times the retry buffer's size in
/// all, unless the stage is more than a quarter of it (large records, or a
/// small buffer: then the retry buffer and two stages). With backpressure, the stage holds
/// [`BACKPRESSURE_STAGE_BYTES`](Self::BACKPRESSURE_STAGE_BYTES) (beside a
/// record larger than half of it, up to twice that record) and, while
/// the endpoint is healthy, at most
/// [`BACKPRESSURE_WINDOW_BYTES`](Self::BACKPRESSURE_WINDOW_BYTES) wait in
/// the retry buffer.
///
/// These bound the records' bytes; the allocations holding them are
/// larger. The stage and the batch being moved each reserve a stage's size
/// up front (up to a limit), and batches written whole wait for the
/// peer's acknowledgement in their own allocations: up to four
/// staging-sized ones, waiting or kept spare for the next batches, beyond
/// which what waits is copied into allocations of its size.
///
/// ```no_run
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = djehouty::GelfExporter::builder()
///     .with_endpoint("tls://graylog.example.com:12202")
///     .build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(djehouty::DirectProcessor::new(exporter))
///     .build();
/// // ... install a bridge (opentelemetry-appender-tracing or -log), log ...
/// if let Err(error) = provider.shutdown() {
///     eprintln!("logs lost at exit: {error}");
/// }
/// # Ok::<(), djehouty::Error>(())
/// ```
pub struct DirectProcessor {
    pipeline: Pipeline,
    staging: Arc<Staging>,
    /// The pipeline's, at hand for the logging call.
    shared: Arc<Shared>,
    counters: Counters,
    flush_timeout: Duration,
    shut_down: AtomicBool,
    /// How long a logging call may wait for room (zero: never).
    max_wait: Duration,
    /// The most bytes staged: the stage's capacity, or less with
    /// backpressure.
    stage_limit: usize,
}

thread_local! {
    static SCRATCH: RefCell<(Vec<u8>, PackScratch)> = RefCell::new(Default::default());
}

impl DirectProcessor {
    /// The least a staging area holds, whatever the retry buffer's size.
    pub const MIN_STAGE_BYTES: usize = MIN_STAGE_BYTES;
    /// With backpressure, the most bytes the staging area holds: the
    /// logging threads wait rather than stage more (a record larger than
    /// half of it goes into a stage holding no more than its own size).
    pub const BACKPRESSURE_STAGE_BYTES: usize = BACKPRESSURE_STAGE_BYTES;
    /// With backpressure and while the endpoint is healthy, the most bytes
    /// waiting in the retry buffer.
    pub const BACKPRESSURE_WINDOW_BYTES: usize = BACKPRESSURE_WINDOW_BYTES;

    /// How long a logging call waits for room by default, while the
    /// endpoint is healthy: see [`with_backpressure`](Self::with_backpressure).
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(100);

    /// A processor writing through `exporter`, with backpressure: while the
    /// endpoint is healthy, a logging call that finds the staging area full
    /// waits for room, at most [`DEFAULT_MAX_WAIT`](Self::DEFAULT_MAX_WAIT),
    /// rather than drop the record (see
    /// [`with_backpressure`](Self::with_backpressure) to change the wait, and
    /// [`without_backpressure`](Self::without_backpressure) to never wait).
    pub fn new<F: Format>(exporter: Exporter<F>) -> DirectProcessor {
        let pipeline = exporter.into_pipeline();
        let shared = Arc::clone(pipeline.shared());
        let capacity = stage_bytes(shared.capacity(), pipeline.max_record_bytes());
        let staging = Arc::new(Staging {
            // Allocated whole once (pages are only touched as they fill): a
            // vector grown by doubling would reach twice the stage's size.
            stage: Mutex::new(Stage {
                frames: Frames::with_capacity(reserved(capacity)),
                ..Stage::default()
            }),
            capacity,
            overflow: AtomicU64::new(0),
            wake: Notify::new(),
            pushed: Notify::new(),
            room: Condvar::new(),
            window: AtomicUsize::new(usize::MAX),
            quiet: pipeline.write_timeout(),
        });
        let flush_timeout = pipeline.export_timeout();
        pipeline.io().spawn(flush(
            Arc::clone(&staging),
            Arc::clone(&shared),
            flush_timeout,
        ));
        DirectProcessor {
            counters: pipeline.counters().clone(),
            pipeline,
            staging,
            shared,
            flush_timeout,
            shut_down: AtomicBool::new(false),
            max_wait: Duration::ZERO,
            stage_limit: capacity,
        }
        .with_backpressure(Self::DEFAULT_MAX_WAIT)
    }

    /// Never lets a logging call wait: a record that finds the staging area
    /// full is dropped at once, and counted (`dropped_buffer_full`). For
    /// latency-critical paths that would rather lose records under overload
    /// than be slowed down by it.
    #[must_use]
    pub fn without_backpressure(self) -> DirectProcessor {
        self.with_backpressure(Duration::ZERO)
    }

    /// Lets a logging call wait for room, at most `max_wait`, when the
    /// staging area is full while the endpoint is healthy, instead of
    /// dropping the record at once: backpressure, for applications that
    /// would rather be slowed down than lose records (batch jobs, audit
    /// trails, a service logging in bursts faster than the network drains).
    ///
    /// Backpressure also keeps memory flat under load: while the endpoint is
    /// healthy, at most [`BACKPRESSURE_STAGE_BYTES`](Self::BACKPRESSURE_STAGE_BYTES)
    /// wait in the staging area, as much in the hands of the task moving
    /// them, and [`BACKPRESSURE_WINDOW_BYTES`](Self::BACKPRESSURE_WINDOW_BYTES)
    /// in the retry buffer (or the buffer's size if smaller), so a slow
    /// endpoint's backlog slows the application down instead of filling
    /// memory; the rest of the retry buffer is kept for outages. (An
    /// endpoint that drains less than a stage's worth within the exporter's
    /// timeout, `with_timeout`, lets the retry buffer fill as without
    /// backpressure.)
    ///
    /// The wait only happens when the application logs faster than the
    /// endpoint accepts for longer than those bytes absorb (two stages and
    /// the window), and lasts until the staged records are taken, that is
    /// until about a stage's worth more has been written: a few milliseconds
    /// on loopback or a LAN, the stage's size divided by the path's rate
    /// elsewhere. To lose nothing against a slow endpoint, choose `max_wait`
    /// above that. A record still without room after `max_wait`
    /// is dropped and counted (`dropped_buffer_full`), and the following
    /// calls do not wait until the staged records are taken, or, if delivery
    /// failed meanwhile, until it has gone a write timeout without failing:
    /// an endpoint that stalls costs one wait, not one per record, and a
    /// receiver that accepts every new connection but stops reading costs
    /// one wait in all.
    ///
    /// No call waits while delivery is failing (the endpoint unreachable, a
    /// write timed out): records then go to the retry buffer, which drops
    /// its oldest ones when full, as without backpressure; a waiting call
    /// stops waiting within 10 ms of a failure. (Before the first connection
    /// attempt has failed, the endpoint counts as healthy.) A receiver that
    /// stops reading holds waiting calls until the write times out
    /// (`with_write_timeout`), or `max_wait` if shorter. The
    /// I/O thread itself never waits.
    ///
    /// Each waiting call blocks its thread: in an async application, a
    /// tokio worker. `Duration::ZERO` never waits (as
    /// [`without_backpressure`](Self::without_backpressure)); the default is
    /// [`DEFAULT_MAX_WAIT`](Self::DEFAULT_MAX_WAIT).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let exporter = djehouty::GelfExporter::builder()
    ///     .with_endpoint("tls://graylog.example.com:12202")
    ///     .build()?;
    /// let processor = djehouty::DirectProcessor::new(exporter)
    ///     .with_backpressure(Duration::from_millis(100));
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    #[must_use]
    pub fn with_backpressure(mut self, max_wait: Duration) -> DirectProcessor {
        self.max_wait = max_wait;
        let window = if max_wait.is_zero() {
            self.stage_limit = self.staging.capacity;
            usize::MAX
        } else {
            self.stage_limit = self.staging.capacity.min(BACKPRESSURE_STAGE_BYTES);
            BACKPRESSURE_WINDOW_BYTES
        };
        self.staging.window.store(window, Ordering::Relaxed);
        self
    }

    /// The most bytes the stage may hold with a frame of `len` bytes in
    /// it: the limit, or, for a frame larger than half of it, twice the
    /// frame (within the stage's capacity). Otherwise such a frame would
    /// fit only an empty stage, which other threads' records, staged as
    /// soon as the flusher moves the stage, could keep from it until its
    /// wait ends: dropped, and a stall begun, while the endpoint is
    /// healthy.
    fn limit_for(&self, len: usize) -> usize {
        (self.stage_limit).max(len.saturating_mul(2).min(self.staging.capacity))
    }

    /// Appends one encoded frame to the staging area, or drops it.
    fn stage(&self, frame: &[u8]) {
        let capacity = self.limit_for(frame.len());
        let mut stage = self.staging.lock();
        if !stage.closed && !stage.fits(frame.len(), capacity) {
            // Full: on a machine whose cores are all busy, the I/O thread may
            // simply not have run. Offer it this thread's time slice once (a
            // scheduler hint, not a wait: it returns at once when nothing
            // else is runnable), then wait for room if allowed, else drop the
            // record if there is still no room.
            drop(stage);
            std::thread::yield_now();
            stage = self.staging.lock();
            if self.may_wait() {
                stage = self.wait_for_room(stage, frame.len());
            }
        }
        if stage.closed {
            drop(stage);
            self.shared.drop_in_shutdown(1);
            return;
        }
        if !stage.fits(frame.len(), capacity) {
            // Atomics only: the retry buffer's lock may be held for a long
            // copy, and the logging call must not wait for it. Under the
            // stage's lock, so that a shutdown's last look at the overflow
            // (after it emptied the stage) sees this record.
            self.counters.add_dropped_buffer_full(1);
            self.staging.overflow.fetch_add(1, Ordering::Relaxed);
            drop(stage);
            self.staging.wake.notify_one();
            return;
        }
        let before = stage.frames.bytes();
        stage.frames.push(frame);
        stage.staged += 1;
        let wake = wakes_flusher(before, stage.frames.bytes(), self.staging.capacity);
        drop(stage);
        if wake {
            self.staging.wake.notify_one();
        }
    }

    /// Whether a logging call may wait for room now: backpressure is on,
    /// the endpoint is healthy, and the caller is not the I/O thread (which
    /// is the one to make room).
    fn may_wait(&self) -> bool {
        !self.max_wait.is_zero() && self.shared.is_healthy() && !runtime::on_io_thread()
    }

    /// Whether delivery failed since the count of failures was `failures`,
    /// or is failing (even briefly: a connection replaced at once still
    /// counts).
    fn delivery_failed(&self, failures: u64) -> bool {
        !self.shared.is_healthy() || self.counters.failures() != failures
    }

    /// Waits until a frame of `len` bytes fits in the stage, the stage is
    /// closed, `max_wait` has passed or delivery fails (even briefly: a
    /// connection replaced at once still counts a failure), whichever comes
    /// first (at once when the frame fits already, or the stage is closed or
    /// stalled); returns the stage's guard for the caller to decide. A wait
    /// that ends without room marks the stage stalled (see
    /// [`Stage::end_stall`]).
    fn wait_for_room<'a>(
        &'a self,
        mut stage: MutexGuard<'a, Stage>,
        len: usize,
    ) -> MutexGuard<'a, Stage> {
        let start = Instant::now();
        let failures = self.counters.failures();
        stage.waiting += 1;
        // The flusher may be letting records gather: for a waiting thread
        // it moves them at once. Woken with the lock let go, as everywhere:
        // a wake-up may emit an event (tokio's, when instrumented) that
        // comes back to this processor, on this thread.
        drop(stage);
        self.staging.wake.notify_one();
        let mut stage = self.staging.lock();
        let limit = self.limit_for(len);
        while !stage.closed && !stage.stalled && !stage.fits(len, limit) {
            let waited = start.elapsed();
            let failed = self.delivery_failed(failures);
            if waited >= self.max_wait || failed {
                stage.begin_stall(self.counters.failures(), failed);
                break;
            }
            let slice = (self.max_wait - waited).min(HEALTH_CHECK);
            stage = match self.staging.room.wait_timeout(stage, slice) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        stage.waiting -= 1;
        stage
    }
}

/// Lets go of a thread's encoding buffers grown past [`KEEP_SCRATCH_BYTES`]
/// by an unusually large record, rather than hold them for the thread's life.
fn let_go_of_large(out: &mut Vec<u8>, pack: &mut PackScratch) {
    if out.capacity() > KEEP_SCRATCH_BYTES {
        *out = Vec::new();
    }
    if pack.capacity() > KEEP_SCRATCH_BYTES {
        *pack = PackScratch::default();
    }
}

impl LogProcessor for DirectProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        // No telemetry-suppressed scope around the record (two thread-local
        // accesses and a context's clone, per record): nothing on this path
        // emits diagnostics, which the I/O threads emit, suppressed
        // (tests/logging_call.rs).
        let fresh = || {
            let mut out = Vec::new();
            let cut =
                self.pipeline
                    .encode_record(record, scope, &mut out, &mut PackScratch::default());
            self.stage(&out);
            cut
        };
        let cut = SCRATCH
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => {
                    let (out, pack) = &mut *scratch;
                    out.clear();
                    let cut = self.pipeline.encode_record(record, scope, out, pack);
                    self.stage(out);
                    let_go_of_large(out, pack);
                    cut
                }
                // Re-entered on this thread (another processor's emit inside
                // ours): fresh buffers.
                Err(_) => fresh(),
            })
            // Logged from a thread-local destructor after ours was destroyed.
            .unwrap_or_else(|_| fresh());
        if cut {
            self.counters.add_truncated(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        refuse_flush_on_io_thread()?;
        let shutdown_drops = self.counters.dropped_by_shutdown();
        // Watching first: a record pending now and dropped later fails it.
        let watch = self.shared.watch_flush();
        let staged = self.staging.lock().staged;
        let staging = Arc::clone(&self.staging);
        let flushed = wait_flushed(watch, self.pipeline.io(), self.flush_timeout, async move {
            staging.pushed_up_to(staged).await
        });
        flush_verdict(flushed, &self.shared, self.flush_timeout, shutdown_drops)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let _suppressed = suppress_telemetry();
        let start = Instant::now();
        // Records dropped before the shutdown (a full stage) are not the
        // shutdown's to report: hand them over before its deadline is set.
        self.staging.report_overflow(&self.shared);
        if let Some(deadline) = start.checked_add(timeout) {
            self.shared.set_deadline(deadline);
        }
        // Hand every staged record to the retry buffer (the exporter's
        // shutdown then drains it), then close the stage.
        let staged = {
            let mut stage = self.staging.lock();
            stage.closed = true;
            let staged = stage.staged;
            // Threads waiting for room give up: the stage takes no more.
            self.staging.release(stage);
            staged
        };
        let staging = Arc::clone(&self.staging);
        run_within(self.pipeline.io(), timeout, async move {
            staging.pushed_up_to(staged).await;
        });
        self.staging.wake.notify_one();
        // Whatever the flusher could not take in time is lost: counted
        // before the flusher can see the stage empty and stop (a flush
        // waiting for it then learns of the loss).
        {
            let mut stage = self.staging.lock();
            self.shared.drop_in_shutdown(stage.frames.len() as u64);
            stage.frames = Frames::default();
        }
        self.staging.report_overflow(&self.shared);
        self.pipeline
            .shutdown(timeout.saturating_sub(start.elapsed()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.pipeline.set_resource(resource);
    }
}

impl fmt::Debug for DirectProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectProcessor")
            .field("exporter", &self.pipeline)
            .field("staging_bytes", &self.stage_limit)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the processor's one I/O thread busy, so that its flusher
    /// cannot run, until the sender returned is dropped (or for at most
    /// ten seconds).
    fn hold_io_thread(processor: &DirectProcessor) -> std::sync::mpsc::Sender<()> {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (held, started) = std::sync::mpsc::channel::<()>();
        processor.pipeline.io().spawn(async move {
            let _ = held.send(());
            let _ = hold.recv_timeout(Duration::from_secs(10));
        });
        started
            .recv_timeout(Duration::from_secs(5))
            .expect("the I/O thread is held");
        release
    }

    fn processor(port: u16) -> DirectProcessor {
        let exporter = crate::GelfExporter::builder()
            .with_endpoint(format!("tcp://127.0.0.1:{port}"))
            .build()
            .expect("an exporter");
        DirectProcessor::new(exporter)
    }

    #[test]
    fn debug_output_names_the_settings() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let text = format!("{:?}", processor(port).without_backpressure());
        assert!(text.starts_with("DirectProcessor {"), "{text}");
        assert!(text.contains("max_wait: 0ns"), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    }

    /// A call that finds the stage full (here, the I/O thread held, so
    /// that the flusher cannot empty it) drops its record, counted, and
    /// returns without waiting.
    #[test]
    fn a_call_that_finds_the_stage_full_drops_its_record_without_waiting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let processor = processor(port).without_backpressure();
        let release = hold_io_thread(&processor);
        let frame = vec![b'x'; 16 * 1024];
        let dropped = || processor.counters.snapshot().dropped_buffer_full;
        let mut calls = 0;
        while dropped() == 0 && calls < 100_000 {
            processor.stage(&frame);
            calls += 1;
        }
        assert_eq!(dropped(), 1, "the stage never filled in {calls} calls");
        // Twenty more calls, each dropping its record: no wait in any, on
        // average (a preempted call alone does not decide).
        let started = Instant::now();
        for _ in 0..20 {
            processor.stage(&frame);
        }
        let mean = started.elapsed() / 20;
        assert_eq!(dropped(), 21);
        assert!(
            mean < Duration::from_millis(50),
            "{mean:?} per dropping call"
        );
        drop(release);
        // Nothing to deliver: the receiver never reads.
        let _ = processor.shutdown_with_timeout(Duration::from_millis(100));
    }

    /// Only a logging thread waits for room, only with backpressure, and
    /// only while the endpoint is healthy.
    #[test]
    fn who_may_wait_for_room() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let healthy = Arc::new(processor(port));
        assert!(healthy.may_wait());
        let on_io = Arc::clone(&healthy);
        let io = run_within(healthy.pipeline.io(), Duration::from_secs(5), async move {
            on_io.may_wait()
        });
        assert_eq!(io, Some(false), "the I/O thread waits for room");
        assert!(!processor(port).without_backpressure().may_wait());
        // Nor does a flush asked for there (by a callback running on it):
        // it is refused at once, rather than hold delivery up until its
        // time runs out.
        let on_io = Arc::clone(&healthy);
        let flushed = run_within(healthy.pipeline.io(), Duration::from_secs(5), async move {
            on_io.force_flush()
        });
        match flushed {
            Some(Err(OTelSdkError::InternalFailure(text))) => {
                assert!(text.contains("I/O thread"), "{text}")
            }
            other => panic!("a flush on the I/O thread: {other:?}"),
        }

        // A port bound but not listening refuses connections, and stays
        // reserved meanwhile.
        let closed = tokio::net::TcpSocket::new_v4().expect("a socket");
        closed
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("a loopback port");
        let closed_port = closed.local_addr().expect("its address").port();
        let failing = processor(closed_port);
        failing.stage(b"x\0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while failing.shared.is_healthy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !failing.shared.is_healthy(),
            "a refused connection is a failure"
        );
        assert!(!failing.may_wait());
    }

    /// With backpressure, a frame larger than half the stage's limit is
    /// staged beside what the stage holds, rather than wait for an empty
    /// stage: here the flusher cannot run (its one thread is kept busy),
    /// and the frame is staged at once, not dropped after the wait.
    #[test]
    fn a_large_frame_does_not_wait_for_an_empty_stage() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let processor = processor(port);
        let limit = DirectProcessor::BACKPRESSURE_STAGE_BYTES;
        assert!(
            processor.staging.capacity >= 4 * limit,
            "{}",
            processor.staging.capacity
        );
        let release = hold_io_thread(&processor);
        processor.stage(&vec![b'a'; limit / 2]);
        let large = vec![b'b'; limit];
        processor.stage(&large);
        let stats = processor.counters.snapshot();
        assert_eq!(stats.dropped_buffer_full, 0, "{stats:?}");
        let staged = processor.staging.lock().frames.bytes();
        assert_eq!(staged, limit / 2 + limit);
        drop(release);
    }

    /// A shutdown asked for on the I/O thread (by a callback running there)
    /// cannot wait for the thread it holds: it ends at once, and reports
    /// the records it could not deliver rather than hang or panic.
    #[test]
    fn a_shutdown_on_the_io_thread_ends_at_once_and_reports() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let processor = Arc::new(processor(port));
        let on_io = Arc::clone(&processor);
        let io = processor.pipeline.io().clone();
        let shut = run_within(&io, Duration::from_secs(5), async move {
            on_io.stage(b"x\0");
            on_io.shutdown_with_timeout(Duration::from_secs(60))
        });
        match shut {
            Some(Err(OTelSdkError::InternalFailure(text))) => {
                assert!(text.contains("1 record"), "{text}")
            }
            other => panic!("a shutdown on the I/O thread: {other:?}"),
        }
        assert_eq!(processor.counters.snapshot().dropped_at_shutdown, 1);
    }

    #[test]
    fn encoding_buffers_up_to_256_kib_are_kept() {
        for (capacity, kept) in [(4096, true), (256 * 1024, true), (256 * 1024 + 1, false)] {
            let mut out = Vec::new();
            out.reserve_exact(capacity);
            let mut pack = PackScratch::with_capacity(capacity);
            let_go_of_large(&mut out, &mut pack);
            assert_eq!(out.capacity() >= capacity, kept, "{capacity} bytes");
            assert_eq!(pack.capacity() >= capacity, kept, "{capacity} bytes");
        }
    }
}
