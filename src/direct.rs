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
//! Memory is bounded in bytes: the staging area holds at most a quarter of
//! the retry buffer's size (`with_buffer_size`, 16 MiB by default), or two of
//! the largest records if that is more (at least 64 KiB), so that records
//! wait in the stage, the batch the flusher is moving and the retry buffer:
//! at most 24 MiB with the defaults. A record that finds the stage full makes
//! the logging thread yield its time slice once (on a machine whose cores are all
//! busy, the I/O thread may simply not have run), then, if there is still no
//! room, is dropped and counted (`dropped_buffer_full`) — or, with
//! [`DirectProcessor::with_backpressure`] and while the endpoint is healthy,
//! waits for room, for a bounded time (the stage is then 1 MiB, and at most
//! 4 MiB wait in the retry buffer while the endpoint is healthy). While the
//! endpoint is healthy, the flusher waits for room in the retry buffer, so
//! the staging area absorbs bursts; while it is failing, the retry buffer
//! drops its oldest records as usual.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::Resource;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::delivery::Shared;
use crate::encode::{Format, PackScratch};
use crate::exporter::Exporter;
use crate::runtime;
use crate::stats::Counters;

/// How long the flusher, woken by a first record, lets more gather before
/// moving them, unless [`FLUSH_BYTES`] are already waiting. (A record can
/// wait longer: while the flusher waits for room in the retry buffer.)
const FLUSH_DELAY: Duration = Duration::from_millis(1);
/// Staged bytes that make the flusher move them without waiting.
const FLUSH_BYTES: usize = 64 * 1024;
/// Most bytes a stage's vector reserves up front; a larger stage (a retry
/// buffer set larger) grows as it fills, so that a huge setting never asks
/// for a huge allocation at start.
const MAX_RESERVED_BYTES: usize = 16 * 1024 * 1024;

/// The staging area's size for a retry buffer of `buffer` bytes and records
/// of at most `max_record` bytes: a quarter of the buffer, and at least two
/// of the largest records (so that one always fits beside staged ones) and
/// 64 KiB. The stage only has to absorb what arrives while the flusher waits
/// for room or for a core (4 MiB by default: several milliseconds at a
/// million records a second); the retry buffer is what holds records through
/// an outage.
fn stage_bytes(buffer: usize, max_record: usize) -> usize {
    (buffer / 4)
        .max(max_record.saturating_mul(2))
        .max(64 * 1024)
}

/// What a stage of `capacity` bytes reserves up front.
fn reserved(capacity: usize) -> usize {
    capacity.min(MAX_RESERVED_BYTES)
}

/// With backpressure, the most bytes the staging area holds: the logging
/// threads wait rather than stage more (a record larger than this still goes
/// into an empty stage).
const BACKPRESSURE_STAGE_BYTES: usize = 1024 * 1024;
/// With backpressure and while the endpoint is healthy, the most bytes the
/// flusher lets wait in the retry buffer: a slow endpoint's backlog slows
/// the application down instead of filling memory, and the rest of the
/// retry buffer is kept for outages.
const BACKPRESSURE_WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// How often a logging thread waiting for room checks that the endpoint is
/// still healthy (it stops waiting as soon as delivery fails).
const HEALTH_CHECK: Duration = Duration::from_millis(10);

/// Thread-local encoding buffers larger than this are not kept.
const KEEP_SCRATCH_BYTES: usize = 256 * 1024;

/// The exporter, seen through what this processor needs (its format erased).
trait Encode: Send + Sync + fmt::Debug {
    fn encode(
        &self,
        record: &SdkLogRecord,
        scope: &InstrumentationScope,
        out: &mut Vec<u8>,
        pack: &mut PackScratch,
    ) -> bool;
    fn shutdown(&self, timeout: Duration) -> OTelSdkResult;
    fn set_resource(&mut self, resource: &Resource);
}

impl<F: Format> Encode for Exporter<F> {
    fn encode(
        &self,
        record: &SdkLogRecord,
        scope: &InstrumentationScope,
        out: &mut Vec<u8>,
        pack: &mut PackScratch,
    ) -> bool {
        self.encode_record(record, scope, out, pack)
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        LogExporter::set_resource(self, resource);
    }
}

/// Frames waiting for the flusher.
#[derive(Default)]
struct Stage {
    data: Vec<u8>,
    lens: Vec<usize>,
    /// Records ever staged.
    staged: u64,
    /// Records ever taken by the flusher and handed to the retry buffer
    /// (or dropped by it).
    pushed: u64,
    /// The retry buffer's sequence number after the flusher's last push (of
    /// the record numbered `pushed`): what a flush counts back from.
    target: u64,
    /// No more records are taken; the flusher stops once the stage is empty.
    closed: bool,
    /// The flusher has stopped.
    stopped: bool,
    /// Logging threads waiting for room (backpressure).
    waiting: usize,
    /// A wait for room ended without room (its time ran out, or delivery
    /// failed): later calls do not wait until [`Stage::end_stall`] says so,
    /// so that an endpoint that stalls costs one wait, not one per record.
    stalled: bool,
    /// The delivery failures counted when the stall began or was last seen
    /// to go on.
    stall_failures: u64,
    /// Since when delivery has not failed, for a stall that saw it fail.
    stall_quiet_from: Option<Instant>,
}

impl Stage {
    /// Whether a frame of `len` bytes may be staged: always into an empty
    /// stage, else within `capacity`.
    fn fits(&self, len: usize, capacity: usize) -> bool {
        self.lens.is_empty() || self.data.len() + len <= capacity
    }

    /// Marks the stage stalled: a wait for room ended without room, after
    /// delivery failed (`failed`) or not.
    fn begin_stall(&mut self, failures: u64, failed: bool) {
        self.stalled = true;
        self.stall_failures = failures;
        self.stall_quiet_from = failed.then(Instant::now);
    }

    /// Called when the flusher takes the staged frames (there is room
    /// again): ends a stall that only ran out of time at once, and one that
    /// saw delivery fail once delivery has gone `quiet` without failing. A
    /// receiver that accepts every new connection, takes what its kernel
    /// buffers hold and stops reading fails every write timeout, so its
    /// stall never ends and the logging calls do not wait for it again.
    fn end_stall(&mut self, failures: u64, healthy: bool, quiet: Duration) {
        if !self.stalled {
            return;
        }
        if failures != self.stall_failures || !healthy {
            self.stall_failures = failures;
            self.stall_quiet_from = Some(Instant::now());
        } else if self
            .stall_quiet_from
            .is_none_or(|from| from.elapsed() >= quiet)
        {
            self.stalled = false;
            self.stall_quiet_from = None;
        }
    }

    /// The retry buffer's sequence number of the record staged `staged`-th,
    /// once pushed: `target` is that of the `pushed`-th, and each record
    /// pushed since took one number.
    fn target_for(&self, staged: u64) -> u64 {
        let after = self.pushed.saturating_sub(staged);
        self.target.saturating_sub(after)
    }
}

struct Staging {
    stage: Mutex<Stage>,
    capacity: usize,
    /// Records dropped because the stage was full, already counted in the
    /// counters but not yet reported to the retry buffer's bookkeeping (the
    /// flusher does that, off the logging thread).
    overflow: AtomicU64,
    /// Something was staged, or the stage was closed.
    wake: Notify,
    /// The flusher pushed a batch, or stopped.
    pushed: Notify,
    /// The flusher took the staged frames (there is room), or the stage was
    /// closed: for logging threads waiting for room.
    room: Condvar,
    /// While the endpoint is healthy, the most bytes the flusher lets wait in
    /// the retry buffer (all of it without backpressure).
    window: AtomicUsize,
    /// How long delivery must go without failing for a stall that saw it
    /// fail to end: the exporter's write timeout.
    quiet: Duration,
}

impl Staging {
    fn lock(&self) -> MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the logging threads waiting for room, if any.
    fn release(&self, stage: MutexGuard<'_, Stage>) {
        let waiting = stage.waiting > 0;
        drop(stage);
        if waiting {
            self.room.notify_all();
        }
    }

    /// Hands the overflow counted by `emit` to the retry buffer's bookkeeping
    /// (a shutdown's report, the outage diagnostics).
    fn report_overflow(&self, shared: &Shared) {
        let dropped = self.overflow.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            shared.note_overflow(dropped);
        }
    }

    /// Waits until every record staged before `staged` was handed to the
    /// retry buffer (or the flusher stopped); returns the buffer's sequence
    /// number to wait for: that of the last of those records, not of the
    /// last record the flusher pushed with them (the flusher is the only one
    /// to push into this exporter's buffer, one sequence number a record, so
    /// the records pushed after it are counted back).
    async fn pushed_up_to(&self, staged: u64) -> u64 {
        loop {
            let notified = self.pushed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let stage = self.lock();
                if stage.pushed >= staged || stage.stopped {
                    return stage.target_for(staged);
                }
            }
            self.wake.notify_one();
            notified.await;
        }
    }
}

/// A log processor that encodes each record on the thread that logs it and
/// ships the bytes from the exporter's own I/O thread: no copy of the record,
/// no queue of records, memory bounded in bytes. The recommended processor for
/// busy services (see the README's "Performance" section).
///
/// By default `emit` never waits for the network: it encodes (about half a
/// microsecond for a typical record) and appends the bytes to a staging area
/// under a lock held for that copy only. When the staging area is full (a
/// quarter of the retry buffer's size: the endpoint cannot keep up), the
/// record is dropped and counted in [`Counters`], unless
/// [`with_backpressure`](Self::with_backpressure) lets the logging call wait
/// for room. `force_flush` waits until everything logged before it was
/// written (within the exporter's timeout); `shutdown` drains what it can and
/// reports what it could not deliver, like the exporter's.
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
    exporter: Box<dyn Encode>,
    staging: Arc<Staging>,
    shared: Arc<Shared>,
    counters: Counters,
    io: Handle,
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
    /// A processor writing through `exporter`.
    pub fn new<F: Format>(exporter: Exporter<F>) -> DirectProcessor {
        let shared = exporter.shared();
        let capacity = stage_bytes(shared.capacity(), exporter.max_record_bytes());
        let staging = Arc::new(Staging {
            // Allocated whole once (pages are only touched as they fill): a
            // vector grown by doubling would reach twice the stage's size.
            stage: Mutex::new(Stage {
                data: Vec::with_capacity(reserved(capacity)),
                ..Stage::default()
            }),
            capacity,
            overflow: AtomicU64::new(0),
            wake: Notify::new(),
            pushed: Notify::new(),
            room: Condvar::new(),
            window: AtomicUsize::new(usize::MAX),
            quiet: exporter.write_timeout(),
        });
        let io = exporter.io().clone();
        let flush_timeout = exporter.export_timeout();
        io.spawn(flush(
            Arc::clone(&staging),
            Arc::clone(&shared),
            flush_timeout,
        ));
        DirectProcessor {
            counters: exporter.counters(),
            exporter: Box::new(exporter),
            staging,
            shared,
            io,
            flush_timeout,
            shut_down: AtomicBool::new(false),
            max_wait: Duration::ZERO,
            stage_limit: capacity,
        }
    }

    /// Lets a logging call wait for room, at most `max_wait`, when the
    /// staging area is full while the endpoint is healthy, instead of
    /// dropping the record at once: backpressure, for applications that
    /// would rather be slowed down than lose records (batch jobs, audit
    /// trails, a service logging in bursts faster than the network drains).
    ///
    /// Backpressure also keeps memory flat under load: while the endpoint is
    /// healthy, at most 1 MiB waits in the staging area, as much in the hands
    /// of the task moving it, and 4 MiB in the retry buffer (or the buffer's
    /// size if smaller), so a slow endpoint's backlog slows the application
    /// down instead of filling memory; the rest of the retry buffer is kept
    /// for outages. (An endpoint that drains less than 1 MiB within the
    /// exporter's timeout, `with_timeout`, lets the retry buffer fill as
    /// without backpressure.)
    ///
    /// The wait only happens when the application logs faster than the
    /// endpoint accepts for longer than those 6 MiB absorb (about twelve
    /// thousand records of 500 bytes), and lasts until the staged records
    /// are taken, that is until about 1 MiB more has been written: a few
    /// milliseconds on loopback or a LAN, about 1/R seconds on a path that
    /// carries R MiB/s. To lose nothing against a slow endpoint, choose
    /// `max_wait` above that. A record still without room after `max_wait`
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
    /// (`with_write_timeout`, 3 s by default), or `max_wait` if shorter. The
    /// I/O thread itself never waits.
    ///
    /// Each waiting call blocks its thread: in an async application, a
    /// tokio worker. `Duration::ZERO` (the default) never waits.
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

    /// Appends one encoded frame to the staging area, or drops it.
    fn stage(&self, frame: &[u8]) {
        let capacity = self.stage_limit;
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
            if !stage.closed
                && !stage.stalled
                && !stage.fits(frame.len(), capacity)
                && self.may_wait()
            {
                stage = self.wait_for_room(stage, frame.len());
            }
        }
        if stage.closed {
            drop(stage);
            self.shared.drop_in_shutdown(1);
            return;
        }
        if !stage.fits(frame.len(), capacity) {
            drop(stage);
            // Atomics only: the retry buffer's lock may be held for a long
            // copy, and the logging call must not wait for it.
            self.counters.add_dropped_buffer_full(1);
            self.staging.overflow.fetch_add(1, Ordering::Relaxed);
            self.staging.wake.notify_one();
            return;
        }
        let wake = stage.lens.is_empty();
        stage.data.extend_from_slice(frame);
        stage.lens.push(frame.len());
        stage.staged += 1;
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

    /// Waits until a frame of `len` bytes fits in the stage, the stage is
    /// closed, `max_wait` has passed or delivery fails (even briefly: a
    /// connection replaced at once still counts a failure), whichever comes
    /// first; returns the stage's guard for the caller to decide. A wait that
    /// ends without room marks the stage stalled (see [`Stage::end_stall`]).
    fn wait_for_room<'a>(
        &'a self,
        mut stage: MutexGuard<'a, Stage>,
        len: usize,
    ) -> MutexGuard<'a, Stage> {
        let start = Instant::now();
        let failures = self.counters.failures();
        stage.waiting += 1;
        // The flusher was woken by the first staged record; make sure.
        self.staging.wake.notify_one();
        while !stage.closed && !stage.stalled && !stage.fits(len, self.stage_limit) {
            let waited = start.elapsed();
            let failed = !self.shared.is_healthy() || self.counters.failures() != failures;
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

    /// Runs `work` on the I/O runtime and waits for it, at most `limit`.
    /// Returns `None` when time ran out (or the runtime is gone).
    fn run<T: Send + 'static>(
        &self,
        limit: Duration,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.io.spawn(async move {
            if let Ok(value) = tokio::time::timeout(limit, work).await {
                let _ = tx.send(value);
            }
        });
        // A plain blocking wait: the work runs on the exporter's runtime, so
        // this never needs the caller's (which may be the thread we block).
        rx.recv_timeout(limit.saturating_add(Duration::from_millis(50)))
            .ok()
    }
}

impl LogProcessor for DirectProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        // Whatever encoding might log is never exported again.
        let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
        let fresh = || {
            let mut out = Vec::new();
            let cut = self
                .exporter
                .encode(record, scope, &mut out, &mut PackScratch::default());
            self.stage(&out);
            cut
        };
        let cut = SCRATCH
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => {
                    let (out, pack) = &mut *scratch;
                    out.clear();
                    let cut = self.exporter.encode(record, scope, out, pack);
                    self.stage(out);
                    if out.capacity() > KEEP_SCRATCH_BYTES {
                        *out = Vec::new();
                    }
                    if pack.capacity() > KEEP_SCRATCH_BYTES {
                        *pack = PackScratch::default();
                    }
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
        let staged = self.staging.lock().staged;
        let staging = Arc::clone(&self.staging);
        let shared = Arc::clone(&self.shared);
        let done = self.run(self.flush_timeout, async move {
            let target = staging.pushed_up_to(staged).await;
            shared.wait(target).await;
            shared.reached(target)
        });
        match done {
            Some(true) => Ok(()),
            // The wait ended because delivery is failing: the records wait in
            // the retry buffer.
            Some(false) => {
                let stats = self.counters.snapshot();
                Err(OTelSdkError::InternalFailure(format!(
                    "not flushed: delivery is failing and {} record(s) wait in the retry \
                     buffer (last error: {})",
                    stats.buffered_records,
                    stats
                        .last_error
                        .map_or_else(|| "none".to_string(), |e| e.to_string())
                )))
            }
            None => Err(OTelSdkError::Timeout(self.flush_timeout)),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
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
        self.run(timeout, async move {
            staging.pushed_up_to(staged).await;
        });
        self.staging.wake.notify_one();
        // Whatever the flusher could not take in time is lost: count it.
        let left = {
            let mut stage = self.staging.lock();
            let left = stage.lens.len() as u64;
            stage.data = Vec::new();
            stage.lens = Vec::new();
            left
        };
        if left > 0 {
            self.shared.drop_in_shutdown(left);
        }
        self.staging.report_overflow(&self.shared);
        self.exporter
            .shutdown(timeout.saturating_sub(start.elapsed()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.exporter.set_resource(resource);
    }
}

impl fmt::Debug for DirectProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectProcessor")
            .field("exporter", &self.exporter)
            .field("staging_bytes", &self.stage_limit)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

/// The flusher: moves staged frames into the retry buffer, in order, until
/// the stage is closed and empty.
async fn flush(staging: Arc<Staging>, shared: Arc<Shared>, timeout: Duration) {
    // The stage's twin: the two are swapped back and forth, each at the
    // stage's size (when the retry buffer adopts one, its former allocation
    // takes the place).
    let mut data = Vec::with_capacity(reserved(staging.capacity));
    let mut lens = Vec::new();
    loop {
        staging.report_overflow(&shared);
        let notified = staging.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut stage = staging.lock();
            if stage.lens.is_empty() {
                if stage.closed {
                    stage.stopped = true;
                    staging.release(stage);
                    staging.pushed.notify_waiters();
                    return;
                }
            } else {
                std::mem::swap(&mut stage.data, &mut data);
                std::mem::swap(&mut stage.lens, &mut lens);
                // There is room now.
                stage.end_stall(
                    shared.counters().failures(),
                    shared.is_healthy(),
                    staging.quiet,
                );
                staging.release(stage);
            }
        }
        if lens.is_empty() {
            notified.await;
            // Let a burst gather (bounded by FLUSH_DELAY): one hand-off per
            // many records rather than per record.
            if staging.lock().data.len() < FLUSH_BYTES {
                tokio::time::sleep(FLUSH_DELAY).await;
            }
            continue;
        }
        // While the endpoint is healthy, wait for room (the staging area
        // absorbs what arrives meanwhile); past the timeout, or while it is
        // failing, the retry buffer drops its oldest records.
        let budget = shared.within_deadline(timeout);
        let now = Instant::now();
        let until = now.checked_add(budget).unwrap_or(now);
        let in_hand = InHand {
            shared: &shared,
            frames: lens.len(),
            taken: AtomicUsize::new(0),
        };
        let window = staging.window.load(Ordering::Relaxed);
        let target = shared
            .push(&mut data, &lens, until, window, &in_hand.taken)
            .await;
        in_hand.settle();
        {
            let mut stage = staging.lock();
            stage.pushed += lens.len() as u64;
            if let Some(target) = target {
                stage.target = target;
            }
        }
        staging.pushed.notify_waiters();
        data.clear();
        lens.clear();
        // The runtime has one worker: let the delivery task (and a flush or
        // shutdown waiting to start) run between two batches, even while the
        // stage refills as fast as it is emptied.
        tokio::task::yield_now().await;
        // The retry buffer may have adopted this vector and handed back its
        // own: keep the stage's twin at the stage's size, so that the
        // logging threads never grow it.
        if data.capacity() > 2 * staging.capacity {
            data = Vec::with_capacity(reserved(staging.capacity));
        } else {
            data.reserve(reserved(staging.capacity));
        }
    }
}

/// The frames the flusher is moving into the retry buffer. If the flusher is
/// dropped half-way (its runtime shut down at the end of a shutdown that ran
/// out of time), those not yet settled are counted as dropped at shutdown.
struct InHand<'a> {
    shared: &'a Shared,
    frames: usize,
    taken: AtomicUsize,
}

impl InHand<'_> {
    /// The push returned: every frame is settled.
    fn settle(self) {
        std::mem::forget(self);
    }
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        let left = self
            .frames
            .saturating_sub(self.taken.load(Ordering::Relaxed));
        if left > 0 {
            self.shared.drop_in_shutdown(left as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_waits_for_its_own_records_not_for_those_pushed_with_them() {
        // Ten records pushed, the buffer's count at 110 after the tenth.
        let stage = Stage {
            pushed: 10,
            target: 110,
            ..Stage::default()
        };
        // A flush called after the seventh was staged waits for the 107th.
        assert_eq!(stage.target_for(7), 107);
        assert_eq!(stage.target_for(10), 110);
        // Nothing counts back past the start.
        let young = Stage {
            pushed: 10,
            target: 3,
            ..Stage::default()
        };
        assert_eq!(young.target_for(0), 0);
    }

    #[test]
    fn a_stall_that_only_ran_out_of_time_ends_when_room_is_made() {
        let mut stage = Stage::default();
        stage.begin_stall(3, false);
        assert!(stage.stalled);
        stage.end_stall(3, true, Duration::from_secs(3600));
        assert!(!stage.stalled);
    }

    #[test]
    fn a_stall_that_saw_delivery_fail_ends_only_after_a_quiet_spell() {
        let hour = Duration::from_secs(3600);
        let mut stage = Stage::default();
        stage.begin_stall(3, true);
        // Room is made (the failed write's records were dropped or kept),
        // but delivery failed just now: no waiting yet.
        stage.end_stall(3, true, hour);
        assert!(stage.stalled);
        // A stall that ran out of time, then saw a failure, becomes one.
        let mut timed_out = Stage::default();
        timed_out.begin_stall(3, false);
        timed_out.end_stall(4, true, hour);
        assert!(timed_out.stalled);
        assert_eq!(timed_out.stall_failures, 4);
        // With a quiet spell of zero, the next room made without a new
        // failure ends it; a new failure starts the spell again.
        timed_out.end_stall(5, false, Duration::ZERO);
        assert!(timed_out.stalled);
        timed_out.end_stall(5, true, Duration::ZERO);
        assert!(!timed_out.stalled);
    }
}
