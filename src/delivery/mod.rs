//! Delivery: the retry buffer shared between `export` and one background task
//! that drains it through the link.
//!
//! A processor appends encoded frames to the buffer; while the endpoint is
//! healthy it may wait for room, within its time (see [`Shared::push`]). The
//! delivery task, on the exporter's own runtime, takes frames from the front
//! and writes them; over TCP and TLS they are done with once the peer's TCP
//! acknowledged them, and frames of a connection that failed or stalled
//! first go back to the front and are written again, in order, on the next
//! connection. While the endpoint is down the buffer fills; when it is full the
//! oldest frames make room for the new ones, and are counted.
//!
//! Diagnostics are rate-limited: the first failure of an outage is reported
//! (`otel_warn!`), the rest are counted and summed up when delivery recovers.
//! They are emitted after the queue's lock is released.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

mod buffer;
mod pending;
mod shutdown;
mod task;

use crate::error::Error;
use crate::frames::Frames;
use crate::runtime::{wait_for, Check};
use crate::stats::Counters;
use buffer::{Dropped, RetryBuffer};
pub(crate) use pending::Flushed;
use pending::Pending;
pub(crate) use shutdown::Undelivered;
pub(crate) use task::{run, CHUNK_BYTES};

/// State shared by `export`, the delivery task and `shutdown`.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Frames were added, or a shutdown started.
    wake: Notify,
    /// Frames were written or acknowledged, or dropped, delivery failed, a
    /// deadline was set, or the task stopped.
    progress: Notify,
    counters: Counters,
    endpoint: String,
    /// What the last shutdown could not deliver.
    undelivered: Mutex<Option<Undelivered>>,
    /// A copy of `Queue::healthy` that can be read without the lock (by a
    /// logging thread deciding whether to wait for room).
    healthy: AtomicBool,
    /// Frames taken in hand for a push ([`Shared::hold`]) and not yet
    /// settled (in the buffer, or dropped and counted), and [`ENDED`] once
    /// a shutdown's end counted those left: whether their push goes on or
    /// its task is dropped, they are counted once. Without a lock, so that
    /// the flusher takes its frames in hand under the stage's lock without
    /// waiting for the queue's.
    in_hand: AtomicU64,
    /// Records dropped because a shutdown closed the way in (a logging call
    /// that found the stage closed, an export after the shutdown), for the
    /// shutdown's report. Without a lock: the logging call must not wait
    /// for the queue's, which a shutdown's push holds for a long copy.
    closed_drops: AtomicU64,
    /// Warnings raised while the exporter was built, when nothing listened:
    /// told when the first records go out (see [`crate::warnings`]).
    build_warnings: Mutex<Vec<crate::warnings::Kept>>,
    /// A shutdown's time ran out with the delivery task still at work: what
    /// waits on its connection is reported undelivered, so the task, when
    /// dropped, resets that connection rather than let it be sent.
    giving_up: AtomicBool,
    /// The delivery task ended or was dropped (and `gone` tells).
    task_gone: Mutex<bool>,
    gone: Condvar,
}

/// The mark of [`Shared::in_hand`] once a shutdown ended.
const ENDED: u64 = 1 << 63;

struct Queue {
    buffer: RetryBuffer,
    /// Taken by the delivery task and being written.
    in_flight_records: usize,
    in_flight_bytes: usize,
    /// Records ever appended (the dropped ones included).
    accepted: u64,
    /// The numbers of the records being written and buffered, in order
    /// (records are numbered from 1 as they are accepted).
    pending: Pending,
    /// False from a failure until the endpoint proves again that it takes
    /// records (see `Transport::send_proves_delivery` and the task's
    /// `settle`).
    healthy: bool,
    /// When an upcoming shutdown must be over, if whoever started it said so.
    deadline: Option<Instant>,
    /// Records dropped since the deadline was set (buffer full, after the
    /// deadline, dropped by a closing push, or still in hand when the
    /// shutdown ended): a shutdown reports them.
    dropped_in_shutdown: u64,
    closing: bool,
    /// The shutdown gave up: the delivery task must not count anything more.
    abandoned: bool,
    stopped: bool,
    /// Failures and drops since delivery last worked, for the recovery report.
    outage_failures: u64,
    outage_dropped: u64,
}

impl Queue {
    fn buffered(&self) -> (usize, usize) {
        (
            self.buffer.records() + self.in_flight_records,
            self.buffer.bytes() + self.in_flight_bytes,
        )
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Every record numbered up to `target` is done with (delivered or
    /// dropped): not merely as many records as that.
    fn done_through(&self, target: u64) -> bool {
        self.pending.done_through(target, self.accepted)
    }

    /// Where the flush of watch `id` stands, its records being those
    /// numbered up to `target`.
    fn flushed(&self, id: u64, target: u64) -> Flushed {
        self.pending.flushed(id, target, self.accepted)
    }

    /// The numbers pending are those being written and buffered.
    fn check(&self) {
        debug_assert_eq!(
            self.pending.len(),
            (self.in_flight_records + self.buffer.records()) as u64,
            "pending numbers against records being written and buffered"
        );
    }
}

/// A flush's watch on the records it waits for ([`Shared::watch_flush`]);
/// ends when dropped.
pub(crate) struct FlushWatch {
    shared: Arc<Shared>,
    id: u64,
}

impl FlushWatch {
    /// Where the flush stands, its records being those numbered up to
    /// `target`.
    pub(crate) fn flushed(&self, target: u64) -> Flushed {
        self.shared.lock().flushed(self.id, target)
    }

    /// [`Shared::wait`] for a flush, which also ends once one of the records
    /// it waits for was lost; then where the flush stands.
    pub(crate) async fn wait(&self, target: u64) -> Flushed {
        (self.shared)
            .wait_while(|q| q.flushed(self.id, target) == Flushed::Waiting)
            .await;
        self.flushed(target)
    }
}

impl Drop for FlushWatch {
    fn drop(&mut self) {
        self.shared.lock().pending.unwatch(self.id);
    }
}

/// A diagnostic decided under the lock, emitted after it is released.
enum Diag {
    Failed(Arc<Error>),
    FailedAgain(u64),
    BufferFull,
    Recovered { failures: u64, dropped: u64 },
}

impl Shared {
    pub(crate) fn new(capacity: usize, counters: Counters, endpoint: String) -> Arc<Shared> {
        Arc::new(Shared {
            queue: Mutex::new(Queue {
                buffer: RetryBuffer::new(capacity),
                in_flight_records: 0,
                in_flight_bytes: 0,
                accepted: 0,
                pending: Pending::default(),
                healthy: true,
                deadline: None,
                dropped_in_shutdown: 0,
                closing: false,
                abandoned: false,
                stopped: false,
                outage_failures: 0,
                outage_dropped: 0,
            }),
            wake: Notify::new(),
            progress: Notify::new(),
            counters,
            endpoint,
            undelivered: Mutex::new(None),
            healthy: AtomicBool::new(true),
            in_hand: AtomicU64::new(0),
            closed_drops: AtomicU64::new(0),
            build_warnings: Mutex::new(Vec::new()),
            giving_up: AtomicBool::new(false),
            task_gone: Mutex::new(false),
            gone: Condvar::new(),
        })
    }

    /// Marks the shutdown as giving up on the delivery task, before its
    /// runtime stops (see [`Shared::giving_up`]).
    pub(crate) fn give_up(&self) {
        self.giving_up.store(true, Ordering::Release);
    }

    /// Whether a shutdown gave up on the delivery task.
    pub(crate) fn giving_up(&self) -> bool {
        self.giving_up.load(Ordering::Acquire)
    }

    /// Called by the delivery task as it ends or is dropped.
    pub(crate) fn task_gone(&self) {
        *self.task_gone.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.gone.notify_all();
    }

    /// Waits, at most `limit`, until the delivery task ended or was dropped
    /// (its runtime stopped in the background).
    pub(crate) fn wait_task_gone(&self, limit: Duration) {
        let gone = self.task_gone.lock().unwrap_or_else(|p| p.into_inner());
        // Poisoned or not, the wait is over.
        let _ = self.gone.wait_timeout_while(gone, limit, |gone| !*gone);
    }

    /// Whether delivery works (no failure since the endpoint last proved it
    /// takes records), read without the lock: a hint, up to date within a
    /// write or two.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The retry buffer's size in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.lock().buffer.capacity()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets when an upcoming shutdown must be over: exports stop waiting for
    /// delivery at that instant, and the drain is held to it.
    pub(crate) fn set_deadline(&self, deadline: Instant) {
        self.lock().deadline = Some(deadline);
        self.progress.notify_waiters();
    }

    /// Forgets the deadline (the shutdown did not happen after all), and
    /// returns how many records were dropped for it meanwhile, for the
    /// caller to report: a later shutdown's report leaves them out.
    pub(crate) fn clear_deadline(&self) -> u64 {
        let mut q = self.lock();
        q.deadline = None;
        std::mem::take(&mut q.dropped_in_shutdown) + self.closed_drops.swap(0, Ordering::Relaxed)
    }

    /// Whether a shutdown began (its deadline is set, or it closed the
    /// queue): a flush waiting then stops, not for a failure.
    pub(crate) fn shutting_down(&self) -> bool {
        let q = self.lock();
        q.closing || q.deadline.is_some()
    }

    /// Whether a shutdown's deadline has passed: exports then drop their
    /// records at once rather than spend time encoding what cannot be sent.
    pub(crate) fn past_deadline(&self) -> bool {
        self.lock().past_deadline()
    }

    /// `limit`, shortened to what is left before the shutdown deadline, if any.
    pub(crate) fn within_deadline(&self, limit: Duration) -> Duration {
        self.until_deadline().map_or(limit, |left| limit.min(left))
    }

    /// What is left before the shutdown deadline, if one is set.
    pub(crate) fn until_deadline(&self) -> Option<Duration> {
        let deadline = self.lock().deadline?;
        Some(deadline.saturating_duration_since(Instant::now()))
    }

    /// What the shutdown left undelivered, once it ended with records not
    /// delivered.
    pub(crate) fn undelivered(&self) -> Option<Undelivered> {
        self.undelivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts records dropped because a shutdown made sending them
    /// impossible. Atomics only: a logging call may be the caller.
    pub(crate) fn drop_in_shutdown(&self, records: u64) {
        self.closed_drops.fetch_add(records, Ordering::Relaxed);
        self.counters.add_dropped_at_shutdown(records);
    }

    /// Records the drop of records that never reached the buffer (a
    /// processor's staging area was full; already counted in the counters):
    /// a shutdown under way reports them, and the first of an outage is
    /// reported.
    pub(crate) fn note_overflow(&self, records: u64) {
        if records == 0 {
            return;
        }
        let diag = self.note_lost(&mut self.lock(), records);
        self.emit(diag);
    }

    /// Whether every record up to `target` is done with (delivered:
    /// acknowledged over TCP and TLS; or dropped and counted).
    #[cfg(test)]
    fn reached(&self, target: u64) -> bool {
        self.lock().done_through(target)
    }

    /// The number of the last frame accepted so far: the target of a flush
    /// of everything pushed until now.
    pub(crate) fn accepted(&self) -> u64 {
        self.lock().accepted
    }

    /// Starts watching for a flush: it waits for the records pending now
    /// and those accepted later, up to the target it learns. Ends when
    /// dropped.
    pub(crate) fn watch_flush(self: &Arc<Self>) -> FlushWatch {
        let id = {
            let mut q = self.lock();
            let accepted = q.accepted;
            q.pending.watch(accepted)
        };
        FlushWatch {
            shared: Arc::clone(self),
            id,
        }
    }

    /// Takes `count` frames in hand for a [`push`](Self::push) to come,
    /// before they leave where they were counted (a processor's stage, an
    /// export's batch): from then on a shutdown's end counts them if they
    /// are not settled by then. Returns false when it already ended: they
    /// are counted as dropped at shutdown at once (in the counters: the
    /// report was made), and are not to be pushed.
    pub(crate) fn hold(&self, count: usize) -> bool {
        let count = count as u64;
        let held = self
            .in_hand
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held & ENDED == 0).then_some(held + count)
            });
        if held.is_err() {
            self.counters.add_dropped_at_shutdown(count);
        }
        held.is_ok()
    }

    /// `frames` held are settled, unless a shutdown's end counted them
    /// already: returns whether they were still in hand.
    fn settle(&self, frames: u64) -> bool {
        let settled = self
            .in_hand
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held & ENDED == 0).then(|| {
                    debug_assert!(held >= frames, "settling frames not held");
                    held.saturating_sub(frames)
                })
            });
        settled.is_ok()
    }

    /// Appends `frames`, [held](Self::hold) already, and wakes the delivery
    /// task. When the buffer is empty and they all fit, it takes their
    /// allocation instead of copying (see [`RetryBuffer::adopt`]): `frames`
    /// is then left empty. Either way, `frames` holds nothing of value
    /// afterwards.
    ///
    /// While the endpoint is healthy and `until` has not passed, a frame that
    /// does not fit, or would take the bytes buffered and being written past
    /// `window`, waits for room (the delivery task is draining the buffer:
    /// this is backpressure, not loss); an empty buffer always takes one
    /// frame. Otherwise the oldest frames make room. (`window` keeps a slow
    /// but healthy endpoint's backlog small; the rest of the buffer is for
    /// outages.)
    /// Returns the sequence number that [`Shared::wait`] waits for: the
    /// last frame's. When a shutdown already closed the buffer, the frames
    /// left are numbered all the same, dropped and counted (a flush waiting
    /// for them learns they were lost). Those not settled when a shutdown
    /// ends are counted by [`finish_shutdown`](Self::finish_shutdown), and
    /// not again here, whether the push goes on or is dropped half-way (its
    /// task dropped as the runtime stops).
    pub(crate) async fn push(&self, frames: &mut Frames, until: Instant, window: usize) -> u64 {
        let count = frames.len();
        let mut next = 0;
        let mut start = 0;
        wait_for(&self.progress, || {
            let mut dropped = Dropped::default();
            let (done, accepted, diag, recheck, lost) = {
                let mut q = self.lock();
                if q.closing {
                    let left = (count - next) as u64;
                    // Once the shutdown ended, they were counted then.
                    if self.settle(left) {
                        q.dropped_in_shutdown += left;
                        self.counters.add_dropped_at_shutdown(left);
                    }
                    let first = q.accepted + 1;
                    q.accepted += left;
                    q.pending.lose(first, left);
                    return Check::Done(q.accepted);
                }
                let settled = next;
                let may_wait = q.healthy && !q.past_deadline() && Instant::now() < until;
                let reserved = q.in_flight_bytes;
                // (Adopted whole only within the window while it holds: else
                // frame by frame below, the first one even past it.)
                let within = !may_wait || frames.bytes() + reserved <= window;
                if next == 0 && within && q.buffer.adopt(frames, reserved) {
                    let first = q.accepted + 1;
                    q.pending.append(first, count as u64);
                    q.accepted += count as u64;
                    next = count;
                }
                let (data, lens) = (frames.run().data(), frames.run().lens());
                while next < count {
                    let len = lens[next];
                    let reserved = q.in_flight_bytes;
                    if may_wait
                        && !q.buffer.is_empty()
                        && (!q.buffer.fits(len, reserved)
                            || q.buffer.bytes() + reserved + len > window)
                    {
                        break;
                    }
                    let before = dropped.records;
                    let kept = q
                        .buffer
                        .push(&data[start..start + len], reserved, &mut dropped);
                    let number = q.accepted + 1;
                    if !kept {
                        // Dropped itself, never listed.
                        q.pending.lose(number, 1);
                    } else {
                        // The oldest buffered records made room: after
                        // those being written.
                        let at = q.in_flight_records as u64;
                        q.pending.remove(at, dropped.records - before, true);
                        q.pending.append(number, 1);
                    }
                    q.accepted += 1;
                    start += len;
                    next += 1;
                }
                self.settle((next - settled) as u64);
                q.check();
                let lost = dropped.records > 0;
                let diag = self.note_dropped(&mut q, dropped);
                // A shutdown's deadline ends the wait too, unannounced.
                let recheck = q.deadline.map_or(until, |deadline| deadline.min(until));
                (next == count, q.accepted, diag, recheck, lost)
            };
            self.emit(diag);
            self.wake.notify_one();
            if lost {
                // A flush waiting for a record dropped here learns it now,
                // not at the delivery task's next step.
                self.progress.notify_waiters();
            }
            match done {
                true => Check::Done(accepted),
                // Room is made as the delivery task writes; past `until`
                // or a shutdown's deadline, the oldest frames make room
                // instead.
                false => Check::Wait(Some(recheck)),
            }
        })
        .await
    }

    /// Waits until the records up to `target` are done with (delivered, or
    /// dropped and counted), delivery fails, or a shutdown begins (its
    /// deadline set) — whichever comes first. Not past a shutdown's start:
    /// the batch processor's last exports then go into the buffer at once,
    /// which the shutdown's drain writes back to back, rather than one batch
    /// per round trip to the endpoint.
    pub(crate) async fn wait(&self, target: u64) {
        self.wait_while(|q| !q.done_through(target) && q.deadline.is_none())
            .await;
    }

    /// Waits while `waiting` holds, unless delivery fails, a shutdown starts
    /// draining or its deadline passes.
    async fn wait_while(&self, waiting: impl Fn(&Queue) -> bool) {
        wait_for(&self.progress, || {
            let q = self.lock();
            if !waiting(&q) || !q.healthy || q.closing || q.past_deadline() {
                Check::Done(())
            } else {
                Check::Wait(q.deadline)
            }
        })
        .await;
    }

    /// Asks the delivery task to drain the buffer and stop.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
        self.progress.notify_waiters();
    }

    /// Waits until the delivery task has stopped.
    pub(crate) async fn stopped(&self) {
        wait_for(&self.progress, || match self.lock().stopped {
            true => Check::Done(()),
            false => Check::Wait(None),
        })
        .await;
    }

    /// Ends a shutdown: counts and empties what is still buffered, and
    /// counts the frames still in hand (pushes count nothing more, nor the
    /// delivery task; frames [held](Self::hold) later are counted at once);
    /// returns what the shutdown could not deliver.
    pub(crate) fn finish_shutdown(&self, budget: Duration) -> Option<Undelivered> {
        let mut q = self.lock();
        q.abandoned = true;
        // Closed, if it was not: a push from now on drops its frames.
        q.closing = true;
        let (buffered, bytes) = q.buffered();
        q.buffer.clear();
        q.in_flight_records = 0;
        q.in_flight_bytes = 0;
        let left = q.pending.len();
        q.pending.remove(0, left, true);
        // Frames a push holds (its task dropped in the background, before
        // or after this, or still going on): they count now, in the report.
        let in_hand = self.in_hand.swap(ENDED, Ordering::AcqRel) & !ENDED;
        q.dropped_in_shutdown += in_hand + self.closed_drops.swap(0, Ordering::Relaxed);
        self.counters.add_dropped_at_shutdown(in_hand);
        let dropped = q.dropped_in_shutdown;
        let stats = self.counters.snapshot();
        self.counters.add_dropped_at_shutdown(buffered as u64);
        self.counters.set_buffered(0, 0);
        self.counters.set_unacknowledged(0, 0);
        drop(q);
        self.progress.notify_waiters();
        let left = Undelivered {
            endpoint: self.endpoint.clone(),
            budget,
            buffered,
            bytes,
            unacknowledged: stats.unacknowledged_records,
            dropped,
            last_error: stats.last_error,
        };
        if left.records() == 0 {
            return None;
        }
        *self.undelivered.lock().unwrap_or_else(|p| p.into_inner()) = Some(left.clone());
        Some(left)
    }

    fn note_dropped(&self, q: &mut Queue, dropped: Dropped) -> Option<Diag> {
        let mut diag = None;
        if dropped.records > 0 {
            self.counters.add_dropped_buffer_full(dropped.records);
            diag = self.note_lost(q, dropped.records);
        }
        let (records, bytes) = q.buffered();
        self.counters.set_buffered(records, bytes);
        diag
    }

    /// Bookkeeping for records dropped for lack of room: a shutdown under way
    /// reports them (the counters keep that its report tells them), the
    /// outage sums them, and the first of an outage is reported.
    fn note_lost(&self, q: &mut Queue, records: u64) -> Option<Diag> {
        if q.deadline.is_some() {
            q.dropped_in_shutdown += records;
            self.counters.add_buffer_full_told(records);
        }
        let first = q.outage_dropped == 0;
        q.outage_dropped += records;
        first.then_some(Diag::BufferFull)
    }

    fn note_failure(&self, q: &mut Queue, error: Error) -> Diag {
        let error = Arc::new(error);
        let diag = if q.outage_failures == 0 {
            Diag::Failed(Arc::clone(&error))
        } else {
            Diag::FailedAgain(q.outage_failures + 1)
        };
        q.outage_failures += 1;
        q.healthy = false;
        self.healthy.store(false, Ordering::Relaxed);
        self.counters.add_failure(error);
        diag
    }

    fn note_success(&self, q: &mut Queue) -> Option<Diag> {
        q.healthy = true;
        self.healthy.store(true, Ordering::Relaxed);
        if q.outage_failures == 0 && q.outage_dropped == 0 {
            return None;
        }
        let diag = Diag::Recovered {
            failures: q.outage_failures,
            dropped: q.outage_dropped,
        };
        q.outage_failures = 0;
        q.outage_dropped = 0;
        Some(diag)
    }

    /// Keeps the warnings raised while the exporter was built, for
    /// [`tell_build_warnings`](Self::tell_build_warnings).
    pub(crate) fn keep_build_warnings(&self, kept: Vec<crate::warnings::Kept>) {
        self.build_warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(kept);
    }

    /// Tells the warnings kept from the build, once.
    pub(crate) fn tell_build_warnings(&self) {
        let kept = std::mem::take(
            &mut *self
                .build_warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if !kept.is_empty() {
            crate::warnings::tell(kept);
        }
    }

    /// Emits diagnostics, unless they are muted on the calling thread
    /// (see `runtime::suppress_telemetry`).
    fn emit(&self, diag: impl IntoIterator<Item = Diag>) {
        if crate::runtime::diagnostics_muted() {
            return;
        }
        for diag in diag {
            match diag {
                Diag::Failed(error) => {
                    opentelemetry::otel_warn!(
                        name: "djehouty.DeliveryFailed",
                        endpoint = self.endpoint.clone(),
                        error = error.to_string(),
                        message = "records are kept in the retry buffer and retried with backoff; \
                                   further failures are counted and reported when delivery recovers"
                    );
                }
                Diag::FailedAgain(failures) => {
                    opentelemetry::otel_debug!(
                        name: "djehouty.DeliveryFailedAgain",
                        failures = failures
                    );
                }
                Diag::BufferFull => {
                    opentelemetry::otel_warn!(
                        name: "djehouty.RetryBufferFull",
                        endpoint = self.endpoint.clone(),
                        message = "the retry buffer is full: the oldest records are being dropped; \
                                   the total is reported when delivery recovers and in the counters"
                    );
                }
                Diag::Recovered { failures, dropped } => {
                    opentelemetry::otel_info!(
                        name: "djehouty.DeliveryRecovered",
                        endpoint = self.endpoint.clone(),
                        failures = failures,
                        dropped_records = dropped
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that a push or wait still pending after [`PENDING`] is
    /// waiting for it, not about to give up.
    const LATER: Duration = Duration::from_secs(30);
    /// How long a push is watched: one that must wait is still pending then;
    /// one that must not is done at its first poll (it checks before it
    /// waits, and a timeout polls what it wraps first).
    const PENDING: Duration = Duration::from_millis(200);
    /// A bound no wait that must return at once comes near.
    const AT_ONCE: Duration = Duration::from_secs(10);

    fn shared(capacity: usize) -> (Arc<Shared>, Counters) {
        let counters = Counters::default();
        let shared = Shared::new(capacity, counters.clone(), "tcp://127.0.0.1:1".into());
        (shared, counters)
    }

    /// Frames of these lengths.
    fn frames(lens: &[usize]) -> Frames {
        let mut frames = Frames::default();
        for (i, &len) in lens.iter().enumerate() {
            frames.push(&vec![b'a' + i as u8; len]);
        }
        frames
    }

    /// Pushes frames of `lens` until `until` with `window`: what the push
    /// returned, or `None` while it still waited after [`PENDING`]; and how
    /// many of the frames it took.
    async fn push(
        shared: &Shared,
        lens: &[usize],
        until: Instant,
        window: usize,
    ) -> (Option<u64>, usize) {
        let before = shared.in_hand.load(Ordering::Relaxed);
        assert!(shared.hold(lens.len()));
        let mut frames = frames(lens);
        let pushed = shared.push(&mut frames, until, window);
        let done = tokio::time::timeout(PENDING, pushed).await.ok();
        let unsettled = shared.in_hand.load(Ordering::Relaxed) - before;
        (done, lens.len() - unsettled as usize)
    }

    async fn returns_at_once(wait: impl std::future::Future<Output = ()>) {
        tokio::time::timeout(AT_ONCE, wait)
            .await
            .expect("returns at once");
    }

    async fn waits(wait: impl std::future::Future<Output = ()>) {
        let done = tokio::time::timeout(PENDING, wait).await;
        assert!(done.is_err(), "should still wait");
    }

    /// A full buffer makes a push wait while the endpoint is healthy and the
    /// push has time; failing delivery, a passed shutdown deadline or a passed
    /// `until` make it drop the oldest records at once instead.
    #[tokio::test]
    async fn a_full_buffer_makes_a_push_wait_only_while_delivery_can_make_room() {
        let later = Instant::now() + LATER;
        let (s, counters) = shared(1_000);
        assert_eq!(push(&s, &[600], later, usize::MAX).await, (Some(1), 1));
        assert_eq!(push(&s, &[600], later, usize::MAX).await, (None, 0));
        assert_eq!(counters.snapshot().dropped_buffer_full, 0);

        // Takes its frame at once, the oldest dropped for it.
        let drops_oldest = |s: &Arc<Shared>, sequence: u64| {
            let (s, counters) = (Arc::clone(s), counters.clone());
            async move {
                let before = counters.snapshot().dropped_buffer_full;
                let pushed = push(&s, &[600], later, usize::MAX).await;
                assert_eq!(pushed, (Some(sequence), 1));
                assert_eq!(counters.snapshot().dropped_buffer_full, before + 1);
            }
        };
        s.lock().healthy = false;
        drops_oldest(&s, 2).await;
        s.lock().healthy = true;
        s.set_deadline(Instant::now());
        drops_oldest(&s, 3).await;
        s.clear_deadline();
        assert_eq!(push(&s, &[600], later, usize::MAX).await, (None, 0));
        let (done, taken) = push(&s, &[600], Instant::now(), usize::MAX).await;
        assert_eq!((done, taken), (Some(4), 1));
        assert_eq!(counters.snapshot().dropped_buffer_full, 3);
    }

    /// The frames of a push abandoned half-way (its task dropped as the
    /// runtime stops) are counted by the shutdown's end, in its report; a
    /// push still going on then does not count them again.
    #[tokio::test]
    async fn frames_in_hand_at_the_end_of_a_shutdown_are_reported_once() {
        let later = Instant::now() + LATER;
        let (s, counters) = shared(1_000);
        assert_eq!(push(&s, &[600], later, usize::MAX).await, (Some(1), 1));
        // Waiting for room, then dropped: two frames in hand.
        assert_eq!(push(&s, &[600, 100], later, usize::MAX).await, (None, 0));
        // Waiting for room, and polled again after the shutdown's end.
        let mut frames = frames(&[600]);
        assert!(s.hold(1));
        let mut pushed = Box::pin(s.push(&mut frames, later, usize::MAX));
        assert!(tokio::time::timeout(PENDING, pushed.as_mut())
            .await
            .is_err());
        s.close();
        let left = s.finish_shutdown(Duration::ZERO).expect("records lost");
        assert_eq!((left.buffered, left.dropped), (1, 3));
        pushed.await;
        assert_eq!(counters.snapshot().dropped_at_shutdown, 4);
        // Held after the end: counted at once, not to be pushed.
        assert!(!s.hold(2));
        assert_eq!(counters.snapshot().dropped_at_shutdown, 6);
    }

    /// Frames held for a push that never ran (its task dropped before its
    /// first poll) are in the report too.
    #[test]
    fn frames_held_for_a_push_that_never_ran_are_reported() {
        let (s, counters) = shared(1_000);
        assert!(s.hold(2));
        s.close();
        let left = s.finish_shutdown(Duration::ZERO).expect("records lost");
        assert_eq!((left.buffered, left.dropped), (0, 2));
        assert_eq!(counters.snapshot().dropped_at_shutdown, 2);
    }

    /// A push already waiting for room when a shutdown sets its deadline
    /// ends at that deadline, which nothing announces, not at its own
    /// `until`: the oldest records make room then.
    #[tokio::test]
    async fn a_waiting_push_ends_at_the_shutdowns_deadline() {
        let later = Instant::now() + LATER;
        let (s, counters) = shared(1_000);
        assert_eq!(push(&s, &[600], later, usize::MAX).await, (Some(1), 1));
        let mut frames = frames(&[600]);
        assert!(s.hold(1));
        let pushed = s.push(&mut frames, later, usize::MAX);
        let deadline = async {
            tokio::time::sleep(PENDING).await;
            s.set_deadline(Instant::now() + PENDING);
        };
        let (pushed, ()) =
            tokio::time::timeout(LATER / 2, async { tokio::join!(pushed, deadline) })
                .await
                .expect("ends at the deadline, long before its own limit");
        assert_eq!(pushed, 2);
        assert_eq!(counters.snapshot().dropped_buffer_full, 1);
    }

    /// A flush is done once its own records are delivered: newer records
    /// dropped meanwhile (the buffer drops its oldest *buffered* records,
    /// which come after those being written) do not make up for them; and a
    /// record it waits for that is dropped fails it.
    #[tokio::test]
    async fn a_flush_waits_for_its_records_and_fails_if_one_is_dropped() {
        let later = Instant::now() + LATER;
        let (s, counters) = shared(1_000);
        let watch = s.watch_flush();
        // Record 1 is being written; 2 waits in the buffer.
        assert_eq!(push(&s, &[400], later, usize::MAX).await, (Some(1), 1));
        {
            let mut q = s.lock();
            let mut written = Frames::default();
            q.buffer.take(usize::MAX, &mut written);
            q.in_flight_records += written.len();
            q.in_flight_bytes += written.bytes();
        }
        assert_eq!(push(&s, &[400], later, usize::MAX).await, (Some(2), 1));
        // Record 3, with no time to wait, drops 2 for room.
        let (done, _) = push(&s, &[400], Instant::now(), usize::MAX).await;
        assert_eq!(done, Some(3));
        assert_eq!(counters.snapshot().dropped_buffer_full, 1);
        // One record done with, but not record 1.
        assert!(!s.reached(1));
        assert_eq!(watch.flushed(1), Flushed::Waiting);
        assert_eq!(watch.flushed(3), Flushed::Lost(2));
        {
            // Record 1 acknowledged.
            let mut q = s.lock();
            q.pending.remove(0, 1, false);
            q.in_flight_records -= 1;
            q.in_flight_bytes = 0;
        }
        assert!(s.reached(1) && s.reached(2) && !s.reached(3));
        assert_eq!(watch.flushed(1), Flushed::Delivered);
        assert_eq!(watch.flushed(2), Flushed::Lost(2));
        drop(watch);
        assert_eq!(s.watch_flush().flushed(3), Flushed::Waiting);
    }

    /// A flush waiting for a buffered record learns at once that a push
    /// dropped it for room, not at the delivery task's next step (which an
    /// endpoint that stalls may hold off for long).
    #[tokio::test]
    async fn a_waiting_flush_learns_at_once_that_a_push_dropped_its_record() {
        let (s, _) = shared(1_000);
        let watch = s.watch_flush();
        assert_eq!(
            push(&s, &[600], Instant::now() + LATER, usize::MAX).await,
            (Some(1), 1)
        );
        let dropping = async {
            tokio::time::sleep(PENDING).await;
            // No time to wait: record 1 makes room.
            push(&s, &[600], Instant::now(), usize::MAX).await
        };
        let (flushed, _) =
            tokio::time::timeout(AT_ONCE, async { tokio::join!(watch.wait(1), dropping) })
                .await
                .expect("the flush learns of the loss");
        assert_eq!(flushed, Flushed::Lost(1));
    }

    /// While delivery can make room, the bytes buffered and being written
    /// stay within the window: a batch past it is taken frame by frame (the
    /// first always), and a frame that would cross it waits. Exactly reaching
    /// it is allowed.
    #[tokio::test]
    async fn the_window_counts_what_is_buffered_and_being_written() {
        let later = Instant::now() + LATER;
        let (s, _) = shared(10_000);
        assert_eq!(push(&s, &[60, 60], later, 100).await, (None, 1));
        assert_eq!(s.lock().buffered(), (1, 60));

        let (s, _) = shared(10_000);
        s.lock().in_flight_bytes = 10;
        assert_eq!(push(&s, &[20], later, 100).await, (Some(1), 1));
        assert_eq!(push(&s, &[70], later, 100).await, (Some(2), 1));
        assert_eq!(push(&s, &[1], later, 100).await, (None, 0));
        assert_eq!(s.lock().buffered(), (2, 100));
        // Frames being written count as buffered.
        s.lock().in_flight_records = 3;
        assert_eq!(s.lock().buffered(), (5, 100));
    }

    /// `wait` returns once its records were done with, or delivery failed,
    /// or a shutdown began (its deadline set) or started draining; not
    /// before.
    #[tokio::test]
    async fn wait_returns_once_its_records_are_done_or_waiting_is_pointless() {
        let (s, _) = shared(1_000);
        {
            // Five records numbered, the fifth still being written.
            let mut q = s.lock();
            q.accepted = 5;
            q.pending.append(5, 1);
            q.in_flight_records = 1;
        }
        returns_at_once(s.wait(4)).await;
        waits(s.wait(5)).await;
        assert!(s.reached(4) && !s.reached(5));

        s.lock().healthy = false;
        returns_at_once(s.wait(5)).await;
        s.lock().healthy = true;

        s.set_deadline(Instant::now() + LATER);
        returns_at_once(s.wait(5)).await;
        s.clear_deadline();
        waits(s.wait(5)).await;

        s.close();
        returns_at_once(s.wait(5)).await;
    }

    /// A shutdown's deadline: passed or not, the time left before it, and
    /// forgotten when the shutdown does not happen, the drops it counted
    /// handed to the caller.
    #[test]
    fn a_deadline_is_kept_until_cleared_with_what_it_counted() {
        let (s, counters) = shared(1_000);
        let long = Duration::from_secs(60);
        assert!(!s.past_deadline());
        assert_eq!(s.within_deadline(long), long);
        s.set_deadline(Instant::now() + Duration::from_secs(10));
        assert!(!s.past_deadline());
        let left = s.within_deadline(long);
        assert!(left <= Duration::from_secs(10) && left > Duration::from_secs(9));
        s.set_deadline(Instant::now());
        assert!(s.past_deadline());
        assert_eq!(s.within_deadline(long), Duration::ZERO);
        s.drop_in_shutdown(2);
        assert_eq!(counters.snapshot().dropped_at_shutdown, 2);
        assert_eq!(s.clear_deadline(), 2, "the drops are handed to the caller");
        assert!(!s.past_deadline());
        assert_eq!(s.within_deadline(long), long);
        // Nothing left for a later shutdown to report.
        assert!(s.finish_shutdown(long).is_none());
        assert!(s.undelivered().is_none());
    }

    /// Records dropped for want of room while a shutdown's deadline is set
    /// are that shutdown's to report, and the counters keep how many it
    /// told (for the report of a guard whose provider it shut down), once.
    #[test]
    fn the_buffer_full_drops_a_shutdown_told_are_kept() {
        let (s, counters) = shared(1_000);
        let lose = |s: &Shared, records: u64| {
            let dropped = Dropped {
                records,
                bytes: records,
            };
            s.note_dropped(&mut s.lock(), dropped);
        };
        lose(&s, 1);
        s.set_deadline(Instant::now() + LATER);
        lose(&s, 2);
        assert_eq!(s.clear_deadline(), 2);
        assert_eq!(counters.buffer_full_told(), 2);
        lose(&s, 4);
        s.set_deadline(Instant::now() + LATER);
        lose(&s, 8);
        let left = s.finish_shutdown(LATER).expect("a report");
        assert_eq!(left.dropped, 8);
        assert_eq!(counters.buffer_full_told(), 10);
        assert_eq!(counters.snapshot().dropped_buffer_full, 15);
        // Told once.
        let _ = s.finish_shutdown(LATER);
        assert_eq!(counters.buffer_full_told(), 10);
    }

    /// A record dropped at a closed way in (a logging call that found the
    /// stage closed) is counted without the queue's lock, which a
    /// shutdown's push may hold for a long copy, and the shutdown reports it.
    #[test]
    fn a_drop_at_a_closed_way_in_waits_for_no_lock() {
        let (s, counters) = shared(1_000);
        s.set_deadline(Instant::now() + LATER);
        let held = s.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let dropping = Arc::clone(&s);
        let caller = std::thread::spawn(move || {
            dropping.drop_in_shutdown(1);
            let _ = tx.send(());
        });
        // Blocked until `held` goes, were the lock taken.
        let done = rx.recv_timeout(AT_ONCE).is_ok();
        drop(held);
        let _ = caller.join();
        assert!(done, "the drop waited for the queue's lock");
        assert_eq!(counters.snapshot().dropped_at_shutdown, 1);
        let left = s.finish_shutdown(LATER).expect("a drop to report");
        assert_eq!(left.dropped, 1);
    }

    /// The counters `Shared` updates and hands out are the exporter's own.
    #[test]
    fn the_counters_are_the_exporters() {
        let (s, counters) = shared(1_000);
        s.counters().add_exported(3);
        counters.add_exported(4);
        assert_eq!(s.counters().snapshot().exported, 7);
        assert_eq!(counters.snapshot().exported, 7);
    }

    /// Records pushed after a shutdown closed the buffer are dropped and
    /// counted; those still buffered when it ends are too. The shutdown
    /// reports both, and counts them done with.
    #[tokio::test]
    async fn a_shutdown_counts_and_reports_what_it_could_not_deliver() {
        let later = Instant::now() + LATER;
        let (s, counters) = shared(1_000);
        assert_eq!(
            push(&s, &[10, 20, 30], later, usize::MAX).await,
            (Some(3), 3)
        );
        s.close();
        // Numbered all the same: 4 and 5.
        assert_eq!(push(&s, &[5, 5], later, usize::MAX).await, (Some(5), 2));
        let budget = Duration::from_secs(7);
        let left = s.finish_shutdown(budget).expect("records were left");
        assert_eq!(
            (left.buffered, left.bytes, left.dropped, left.budget),
            (3, 60, 2, budget)
        );
        assert_eq!(left.records(), 5);
        assert_eq!(s.undelivered().map(|u| u.records()), Some(5));
        assert!(s.reached(5) && !s.reached(6));
        let stats = counters.snapshot();
        assert_eq!(stats.dropped_at_shutdown, 5);
        assert_eq!((stats.buffered_records, stats.buffered_bytes), (0, 0));

        // With nothing buffered nor dropped, nothing is reported.
        let (s, _) = shared(1_000);
        s.close();
        assert!(s.finish_shutdown(budget).is_none());
        assert!(s.undelivered().is_none());
    }

    /// An outage reports its first failure and its first drop; the rest are
    /// counted and summed up when delivery recovers. Drops while a shutdown's
    /// deadline is set are the shutdown's to report too.
    #[test]
    fn an_outage_reports_its_first_failure_and_drop_then_sums_them_up() {
        let (s, counters) = shared(1_000);
        let fail = |s: &Shared| s.note_failure(&mut s.lock(), Error::ShutDown);
        let lose = |s: &Shared, records: u64| {
            let dropped = Dropped {
                records,
                bytes: 10 * records,
            };
            s.note_dropped(&mut s.lock(), dropped)
        };
        // What the recovery report sums up, if there is one.
        let recover = |s: &Shared| match s.note_success(&mut s.lock()) {
            Some(Diag::Recovered { failures, dropped }) => Some((failures, dropped)),
            Some(_) => panic!("note_success reports only a recovery"),
            None => None,
        };
        assert_eq!(recover(&s), None);
        // Drops alone (a staging area overflowing while the endpoint is
        // slow), or failures alone, are summed up too.
        s.note_overflow(4);
        assert_eq!(recover(&s), Some((0, 4)));
        assert!(matches!(fail(&s), Diag::Failed(_)));
        assert_eq!(recover(&s), Some((1, 0)));
        assert_eq!(counters.snapshot().failures, 1);

        assert!(matches!(fail(&s), Diag::Failed(_)));
        assert!(!s.is_healthy() && !s.lock().healthy);
        assert!(matches!(fail(&s), Diag::FailedAgain(2)));
        assert!(matches!(fail(&s), Diag::FailedAgain(3)));
        assert_eq!(counters.snapshot().failures, 4);

        assert!(lose(&s, 0).is_none());
        assert_eq!(counters.snapshot().dropped_buffer_full, 0);
        assert!(matches!(lose(&s, 2), Some(Diag::BufferFull)));
        assert!(lose(&s, 3).is_none());
        assert_eq!(counters.snapshot().dropped_buffer_full, 5);
        s.note_overflow(0);
        s.note_overflow(4);

        assert_eq!(recover(&s), Some((3, 9)));
        assert!(s.is_healthy() && s.lock().healthy);
        assert_eq!(recover(&s), None);

        // A new outage is reported anew; a drop during a shutdown is its to
        // report.
        assert!(matches!(lose(&s, 1), Some(Diag::BufferFull)));
        s.set_deadline(Instant::now() + LATER);
        assert!(lose(&s, 2).is_none());
        s.note_overflow(3);
        let left = s.finish_shutdown(LATER).expect("drops to report");
        assert_eq!((left.dropped, left.buffered), (5, 0));
    }
}
