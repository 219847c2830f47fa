//! The staging area of [`DirectProcessor`](super::DirectProcessor): frames
//! encoded on the logging threads wait here, bounded in bytes, until the
//! flusher task moves them into the retry buffer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::delivery::Shared;
use crate::frames::Frames;
use crate::runtime::{wait_for, Check};

/// How long the flusher lets records gather before moving them (from the
/// first it sees after a move, or after it was idle), unless a batch's
/// worth ([`batch_bytes`]) is there sooner or someone waits for them. Each move
/// costs the I/O thread a hand-off and a write, whatever its size: moving
/// whatever arrived during the previous move, tens of records at a time,
/// took more than half of that thread's time per record. (Tokio's timer
/// rounds the delay up to its next millisecond; and a record can wait
/// longer while the flusher waits for room in the retry buffer.)
pub(super) const FLUSH_DELAY: Duration = Duration::from_millis(1);
/// Staged bytes that make the flusher move them without waiting (in a stage
/// of four times as many or more, see [`batch_bytes`]); the delivery task
/// writes at least twice as many in one go (see the assertions below).
/// A move's cost hardly depends on its size ([`FLUSH_DELAY`]): batches of
/// 512 KiB rather than 256 KiB took 0.018 µs less CPU per record over TLS
/// (twenty-six paired runs), batches of 64 KiB 0.07 µs more.
pub(super) const FLUSH_BYTES: usize = 512 * 1024;
// The batch is worked out from the stage's capacity, not from the smaller
// limit backpressure sets: that limit leaves room, beside the batch that
// wakes the flusher, for as much again arriving before it takes them.
const _: () = assert!(BACKPRESSURE_STAGE_BYTES >= 2 * FLUSH_BYTES);
// What the flusher moves at once (with backpressure, at most the whole
// stage) is written in one go, so that its allocation, which the retry
// buffer adopts, is handed over whole rather than copied out (but for a
// stage a large record took past the limit: rare, and copied in chunks).
const _: () = assert!(BACKPRESSURE_STAGE_BYTES <= crate::delivery::CHUNK_BYTES);
/// Most bytes a stage's vector reserves up front; a larger stage (a retry
/// buffer set larger) grows as it fills, so that a huge setting never asks
/// for a huge allocation at start.
pub(super) const MAX_RESERVED_BYTES: usize = 16 * 1024 * 1024;

/// The least a staging area holds.
pub(super) const MIN_STAGE_BYTES: usize = 64 * 1024;

/// The staging area's size for a retry buffer of `buffer` bytes and records
/// of at most `max_record` bytes: a quarter of the buffer, and at least two
/// of the largest records (so that one always fits beside staged ones) and
/// [`MIN_STAGE_BYTES`]. The stage only has to absorb what arrives while the
/// flusher waits for room or for a core (several milliseconds at a million
/// records a second); the retry buffer is what holds records through an
/// outage.
pub(super) fn stage_bytes(buffer: usize, max_record: usize) -> usize {
    (buffer / 4)
        .max(max_record.saturating_mul(2))
        .max(MIN_STAGE_BYTES)
}

/// The staged bytes worth moving at once in a stage of `capacity` bytes:
/// [`FLUSH_BYTES`], or a quarter of a smaller stage (which must not fill
/// while records gather).
fn batch_bytes(capacity: usize) -> usize {
    FLUSH_BYTES.min(capacity / 4)
}

/// Whether the flusher lets a burst gather for [`FLUSH_DELAY`] beside
/// `staged` bytes in a stage of `capacity` rather than move them at once.
fn lets_gather(staged: usize, capacity: usize) -> bool {
    staged < batch_bytes(capacity)
}

/// Whether staging a frame, with `before` bytes staged and `after` with it
/// in a stage of `capacity`, wakes the flusher: a first record (it may be
/// idle), or a batch worth moving at once.
pub(super) fn wakes_flusher(before: usize, after: usize, capacity: usize) -> bool {
    before == 0 || lets_gather(before, capacity) && !lets_gather(after, capacity)
}

/// Whether the flusher moves what is staged (in a stage of `capacity`) now
/// rather than let more gather: a batch worth it is there, or someone waits
/// for it (logging threads for room, a flush, the shutdown), or records
/// were dropped for want of room (`overflowed`).
fn must_move(stage: &Stage, capacity: usize, overflowed: bool) -> bool {
    !lets_gather(stage.frames.bytes(), capacity)
        || stage.closed
        || stage.waiting > 0
        || stage.flush_wanted > stage.pushed
        || overflowed
}

/// Whether the flusher's vector, back from a hand-off to the retry buffer
/// (which may trade it for its own), is larger than the stage's twin should
/// be: more than twice the stage's `capacity`.
fn oversized_twin(frames: &Frames, capacity: usize) -> bool {
    frames.capacity() > 2 * capacity
}

/// What a stage of `capacity` bytes reserves up front.
pub(super) fn reserved(capacity: usize) -> usize {
    capacity.min(MAX_RESERVED_BYTES)
}

/// With backpressure, the most bytes the staging area holds: the logging
/// threads wait rather than stage more (a record larger than half of this
/// goes into a stage holding no more than its own size).
pub(super) const BACKPRESSURE_STAGE_BYTES: usize = 1024 * 1024;
/// With backpressure and while the endpoint is healthy, the most bytes the
/// flusher lets wait in the retry buffer: a slow endpoint's backlog slows
/// the application down instead of filling memory, and the rest of the
/// retry buffer is kept for outages.
pub(super) const BACKPRESSURE_WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// Frames waiting for the flusher.
#[derive(Default)]
pub(super) struct Stage {
    pub(super) frames: Frames,
    /// Records ever staged.
    pub(super) staged: u64,
    /// Records ever taken by the flusher and handed to the retry buffer
    /// (or dropped by it).
    pub(super) pushed: u64,
    /// The records a flush waits to see pushed (as counted by `staged`):
    /// the flusher moves them without letting more gather.
    pub(super) flush_wanted: u64,
    /// The retry buffer's sequence number after the flusher's last push (of
    /// the record numbered `pushed`): what a flush counts back from.
    pub(super) target: u64,
    /// No more records are taken; the flusher stops once the stage is empty.
    pub(super) closed: bool,
    /// The flusher has stopped.
    pub(super) stopped: bool,
    /// Logging threads waiting for room (backpressure).
    pub(super) waiting: usize,
    /// A wait for room ended without room (its time ran out, or delivery
    /// failed): later calls do not wait until [`Stage::end_stall`] says so,
    /// so that an endpoint that stalls costs one wait, not one per record.
    pub(super) stalled: bool,
    /// The delivery failures counted when the stall began or was last seen
    /// to go on.
    pub(super) stall_failures: u64,
    /// Since when delivery has not failed, for a stall that saw it fail.
    pub(super) stall_quiet_from: Option<Instant>,
}

impl Stage {
    /// Whether a frame of `len` bytes may be staged: always into an empty
    /// stage, else within `capacity`.
    pub(super) fn fits(&self, len: usize, capacity: usize) -> bool {
        self.frames.is_empty() || self.frames.bytes() + len <= capacity
    }

    /// Marks the stage stalled: a wait for room ended without room, after
    /// delivery failed (`failed`) or not.
    pub(super) fn begin_stall(&mut self, failures: u64, failed: bool) {
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
    pub(super) fn end_stall(&mut self, failures: u64, healthy: bool, quiet: Duration) {
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
    pub(super) fn target_for(&self, staged: u64) -> u64 {
        let after = self.pushed.saturating_sub(staged);
        self.target.saturating_sub(after)
    }
}

pub(super) struct Staging {
    pub(super) stage: Mutex<Stage>,
    pub(super) capacity: usize,
    /// Records dropped because the stage was full, already counted in the
    /// counters but not yet reported to the retry buffer's bookkeeping (the
    /// flusher does that, off the logging thread).
    pub(super) overflow: AtomicU64,
    /// For the flusher: a first record was staged, or a batch's worth; a
    /// logging thread waits for room; a flush or the shutdown wants the
    /// staged records; or a record was dropped for want of room.
    pub(super) wake: Notify,
    /// The flusher pushed a batch, or stopped.
    pub(super) pushed: Notify,
    /// The flusher took the staged frames (there is room), or the stage was
    /// closed: for logging threads waiting for room.
    pub(super) room: Condvar,
    /// While the endpoint is healthy, the most bytes the flusher lets wait in
    /// the retry buffer (all of it without backpressure).
    pub(super) window: AtomicUsize,
    /// How long delivery must go without failing for a stall that saw it
    /// fail to end: the exporter's write timeout.
    pub(super) quiet: Duration,
}

impl Staging {
    pub(super) fn lock(&self) -> MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the logging threads waiting for room, if any.
    pub(super) fn release(&self, stage: MutexGuard<'_, Stage>) {
        let waiting = stage.waiting > 0;
        drop(stage);
        if waiting {
            self.room.notify_all();
        }
    }

    /// Hands the overflow counted by `emit` to the retry buffer's bookkeeping
    /// (a shutdown's report, the outage diagnostics); returns how many
    /// records that was.
    pub(super) fn report_overflow(&self, shared: &Shared) -> u64 {
        let dropped = self.overflow.swap(0, Ordering::AcqRel);
        shared.note_overflow(dropped);
        dropped
    }

    /// Waits until every record staged before `staged` was handed to the
    /// retry buffer (or the flusher stopped); returns the buffer's sequence
    /// number to wait for: that of the last of those records, not of the
    /// last record the flusher pushed with them (the flusher is the only one
    /// to push into this exporter's buffer, one sequence number a record, so
    /// the records pushed after it are counted back). If the flusher stopped
    /// first, that of the last record it pushed: a shutdown dropped the
    /// others, counted before the flusher could stop (a flush learns of it
    /// from the count).
    pub(super) async fn pushed_up_to(&self, staged: u64) -> u64 {
        wait_for(&self.pushed, || {
            let mut stage = self.lock();
            if stage.pushed >= staged || stage.stopped {
                return Check::Done(stage.target_for(staged));
            }
            stage.flush_wanted = stage.flush_wanted.max(staged);
            drop(stage);
            // The flusher may be idle, or letting records gather: these
            // are wanted now.
            self.wake.notify_one();
            Check::Wait(None)
        })
        .await
    }
}

/// The flusher: moves staged frames into the retry buffer, in order, until
/// the stage is closed and empty.
pub(super) async fn flush(staging: Arc<Staging>, shared: Arc<Shared>, timeout: Duration) {
    // The stage's twin: the two are swapped back and forth, each at the
    // stage's size (when the retry buffer adopts one, its former allocation
    // takes the place).
    let mut frames = Frames::with_capacity(reserved(staging.capacity));
    // Until when the staged records may gather; `None` until the flusher
    // sees some after a move. (Tokio's clock: the one its timers use.)
    let mut gather_until: Option<tokio::time::Instant> = None;
    loop {
        let overflowed = staging.report_overflow(&shared) > 0;
        let notified = staging.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut stage = staging.lock();
            if stage.frames.is_empty() {
                if stage.closed {
                    stage.stopped = true;
                    staging.release(stage);
                    staging.pushed.notify_waiters();
                    return;
                }
            } else {
                let now = tokio::time::Instant::now();
                let until = *gather_until.get_or_insert(now + FLUSH_DELAY);
                if must_move(&stage, staging.capacity, overflowed) || now >= until {
                    // In hand from here on, under the stage's lock: a
                    // shutdown counts them either in the stage (the
                    // processor's) or in hand (the end's).
                    let held = shared.hold(stage.frames.len());
                    std::mem::swap(&mut stage.frames, &mut frames);
                    if !held {
                        // Not expected (a processor's shutdown empties the
                        // stage before the end): counted as dropped already.
                        frames.clear();
                    }
                    gather_until = None;
                    // There is room now.
                    stage.end_stall(
                        shared.counters().failures(),
                        shared.is_healthy(),
                        staging.quiet,
                    );
                    staging.release(stage);
                }
            }
        }
        if frames.is_empty() {
            // Idle, until a first record; or letting records gather: one
            // hand-off per many records rather than per few.
            match gather_until {
                None => notified.await,
                Some(until) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
            }
            continue;
        }
        // While the endpoint is healthy, wait for room (the staging area
        // absorbs what arrives meanwhile); past the timeout, or while it is
        // failing, the retry buffer drops its oldest records.
        let budget = shared.within_deadline(timeout);
        let now = Instant::now();
        let until = now.checked_add(budget).unwrap_or(now);
        let count = frames.len();
        let window = staging.window.load(Ordering::Relaxed);
        let target = shared.push(&mut frames, until, window).await;
        {
            let mut stage = staging.lock();
            stage.pushed += count as u64;
            stage.target = target;
        }
        staging.pushed.notify_waiters();
        frames.clear();
        // The runtime has one worker: let the delivery task (and a flush or
        // shutdown waiting to start) run between two batches, even while the
        // stage refills as fast as it is emptied.
        tokio::task::yield_now().await;
        // The retry buffer may have adopted these frames' vector and handed
        // back its own: keep the stage's twin at the stage's size, so that
        // the logging threads never grow it.
        if oversized_twin(&frames, staging.capacity) {
            frames = Frames::with_capacity(reserved(staging.capacity));
        } else {
            frames.reserve(reserved(staging.capacity));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;

    fn staging() -> Staging {
        Staging {
            stage: Mutex::new(Stage::default()),
            capacity: 1024,
            overflow: AtomicU64::new(0),
            wake: Notify::new(),
            pushed: Notify::new(),
            room: Condvar::new(),
            window: AtomicUsize::new(usize::MAX),
            quiet: Duration::from_secs(1),
        }
    }

    /// Records the stage dropped are handed over once, and counted by the
    /// shutdown under way.
    #[test]
    fn overflow_is_handed_to_the_shutdown_report_once() {
        let shared = Shared::new(1024, crate::stats::Counters::default(), "test".into());
        shared.set_deadline(Instant::now() + Duration::from_secs(3600));
        let staging = staging();
        staging.report_overflow(&shared);
        staging.overflow.store(3, Ordering::Relaxed);
        staging.report_overflow(&shared);
        staging.report_overflow(&shared);
        let left = shared
            .finish_shutdown(Duration::ZERO)
            .expect("records lost");
        assert_eq!(left.dropped, 3);
    }

    /// A thread waiting for room is woken by `release`.
    #[test]
    fn release_wakes_a_thread_waiting_for_room() {
        let staging = Arc::new(staging());
        let waiter = {
            let staging = Arc::clone(&staging);
            std::thread::spawn(move || {
                let mut stage = staging.lock();
                stage.waiting += 1;
                let (stage, waited) = staging
                    .room
                    .wait_timeout(stage, Duration::from_secs(10))
                    .unwrap_or_else(|p| p.into_inner());
                drop(stage);
                !waited.timed_out()
            })
        };
        // Released only once the waiter waits (it holds the lock until then).
        let deadline = Instant::now() + Duration::from_secs(10);
        while staging.lock().waiting == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        staging.release(staging.lock());
        assert_eq!(waiter.join().ok(), Some(true), "not woken");
    }

    #[test]
    fn sizes_are_those_documented() {
        // A quarter of the buffer, at least two of the largest records and
        // 64 KiB.
        assert_eq!(stage_bytes(32 * MIB, 100), 8 * MIB);
        assert_eq!(stage_bytes(32 * MIB, 10 * MIB), 20 * MIB);
        assert_eq!(stage_bytes(100 * KIB, 1000), 64 * KIB);
        // At most 16 MiB reserved up front.
        assert_eq!(reserved(MIB), MIB);
        assert_eq!(reserved(16 * MIB), 16 * MIB);
        assert_eq!(reserved(100 * MIB), 16 * MIB);
        // With backpressure: 1 MiB staged, 4 MiB in the retry buffer.
        assert_eq!(BACKPRESSURE_STAGE_BYTES, MIB);
        assert_eq!(BACKPRESSURE_WINDOW_BYTES, 4 * MIB);
        // The flusher's vector is kept up to twice the stage's size.
        assert!(!oversized_twin(&Frames::with_capacity(2 * MIB), MIB));
        assert!(oversized_twin(&Frames::with_capacity(2 * MIB + 1), MIB));
        // 512 KiB staged are moved without waiting for more; a quarter of a
        // smaller stage.
        assert!(!lets_gather(512 * KIB, 4 * MIB));
        assert!(lets_gather(512 * KIB - 1, 4 * MIB));
        assert!(!lets_gather(256 * KIB, MIB));
        assert!(lets_gather(256 * KIB - 1, MIB));
        assert!(!lets_gather(16 * KIB, 64 * KIB));
        assert!(lets_gather(16 * KIB - 1, 64 * KIB));
        // The flusher is woken by a first record, and by the batch's worth.
        assert!(wakes_flusher(0, 100, MIB));
        assert!(!wakes_flusher(100, 200, MIB));
        assert!(wakes_flusher(512 * KIB - 1, 512 * KIB, 4 * MIB));
        assert!(!wakes_flusher(512 * KIB, 512 * KIB + 100, 4 * MIB));
        assert!(wakes_flusher(256 * KIB - 1, 256 * KIB, MIB));
    }

    #[test]
    fn a_batch_is_moved_at_once_when_it_is_worth_it_or_wanted() {
        let capacity = 4 * MIB;
        let mut stage = Stage::default();
        stage.frames.push(&[b'x'; 1000]);
        stage.staged = 1;
        assert!(!must_move(&stage, capacity, false));
        assert!(must_move(&stage, capacity, true));
        let mut full = Stage::default();
        full.frames.push(&vec![b'x'; FLUSH_BYTES]);
        assert!(must_move(&full, capacity, false));
        let wanted = |change: fn(&mut Stage)| {
            let mut stage = Stage::default();
            stage.frames.push(b"x");
            stage.staged = 1;
            change(&mut stage);
            must_move(&stage, capacity, false)
        };
        assert!(wanted(|stage| stage.closed = true));
        assert!(wanted(|stage| stage.waiting = 1));
        assert!(wanted(|stage| stage.flush_wanted = 1));
        // A flush already served wants nothing more.
        assert!(!wanted(|stage| {
            stage.flush_wanted = 1;
            stage.pushed = 1;
        }));
    }

    /// Stages `n` one-byte frames, as a logging call would (the first into
    /// an empty stage wakes the flusher).
    fn stage_frames(staging: &Staging, n: usize) {
        let mut stage = staging.lock();
        let wake = stage.frames.is_empty();
        for _ in 0..n {
            stage.frames.push(b"x");
            stage.staged += 1;
        }
        drop(stage);
        if wake {
            staging.wake.notify_one();
        }
    }

    /// Lets the flusher run until it waits (for a record, or its timer):
    /// the paused clock does not move meanwhile.
    async fn let_the_flusher_run() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Records gather for `FLUSH_DELAY` before they are moved, after an
    /// idle spell and after a move alike, unless a flush wants them: then
    /// at once, even while the flusher waits for its timer. (Tokio's clock
    /// is paused: it moves only when every task waits for it.)
    #[tokio::test(start_paused = true)]
    async fn records_gather_unless_a_flush_wants_them() {
        let shared = Shared::new(MIB, crate::stats::Counters::default(), "test".into());
        let staging = Arc::new(staging());
        tokio::spawn(flush(
            Arc::clone(&staging),
            Arc::clone(&shared),
            Duration::from_secs(5),
        ));
        let pushed = || staging.lock().pushed;
        // After an idle spell.
        stage_frames(&staging, 3);
        let_the_flusher_run().await;
        assert_eq!(pushed(), 0, "moved before the delay");
        tokio::time::sleep(2 * FLUSH_DELAY).await;
        assert_eq!(pushed(), 3, "not moved after the delay");
        // A flush, while the flusher waits for its timer.
        stage_frames(&staging, 2);
        let_the_flusher_run().await;
        assert_eq!(pushed(), 3, "moved before the delay");
        let before = tokio::time::Instant::now();
        staging.pushed_up_to(5).await;
        assert_eq!(pushed(), 5);
        assert_eq!(tokio::time::Instant::now(), before, "the flush waited");
        // Records staged during a move (here: while the flusher yields at
        // its end, which lets this task run first) gather too.
        stage_frames(&staging, 2);
        let_the_flusher_run().await;
        assert_eq!(pushed(), 5, "moved right after the previous move");
        tokio::time::sleep(2 * FLUSH_DELAY).await;
        assert_eq!(pushed(), 7, "not moved after the delay");
    }

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
