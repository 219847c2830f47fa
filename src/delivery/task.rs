//! The delivery task: takes frames from the front of the retry buffer and
//! writes them through the transport. Over TCP and TLS a frame written is not
//! delivered yet: it waits, with the others the peer's TCP has not
//! acknowledged, until it is ([`Unacked`]), and goes back to the front of the
//! buffer, to be written again on the next connection, if its connection
//! fails first. What a failed write did not write goes back too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Dropped, Queue, Shared};
use crate::error::Error;
use crate::frames::{FrameRun, Frames};
use crate::runtime::{wait_for, Check};
use crate::transport::reconnect::Acked;
use crate::transport::{Rejected, Transport};

/// The most bytes written in one go; also the most a failed write puts back.
/// As much as the staging area holds with backpressure (the default), so
/// that whatever the flusher moves at once is taken whole, its allocation
/// (which the retry buffer adopted) handed over rather than copied out.
/// (Without backpressure, a stage that filled while the flusher waited for
/// room is taken a chunk at a time, copied.)
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;
// A bulk request carries at most one chunk: the bulks' limit is that size.
const _: () = assert!(crate::transport::http::BULK_MAX_BYTES == CHUNK_BYTES);
/// The most large allocations ([`is_large`]: staging areas' vectors) held
/// by chunks waiting for acknowledgement and kept spare, together: a chunk
/// written whole waits as it is, rather than as a copy, while that leaves
/// them within this. One acknowledged is kept spare, and the next chunk
/// kept whole trades its allocation for it: they circulate rather than
/// being freed and allocated again. (What was written is acknowledged
/// within a few writes while the peer keeps up: its acknowledgements are
/// read after each write.)
const MAX_LARGE: usize = 4;
/// The most small allocations kept spare.
const MAX_SPARE: usize = 4;
/// Time allowed to close the connection cleanly once the buffer is drained.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);
/// How soon to ask the kernel again about frames not yet acknowledged, at
/// first; each time nothing more was acknowledged, twice as late, up to
/// [`ACK_POLL_MAX`].
const ACK_POLL_MIN: Duration = Duration::from_millis(1);
/// The longest wait between two questions about frames not yet acknowledged.
const ACK_POLL_MAX: Duration = Duration::from_millis(50);

/// The delivery task: drains the buffer through `link` until a shutdown finds
/// it empty and everything written acknowledged.
pub(crate) async fn run(shared: Arc<Shared>, link: Transport) {
    let mut held = Held {
        link,
        unacked: Unacked::default(),
        chunk: Frames::default(),
        sending: Sending::Idle,
        gone: Gone(Arc::clone(&shared)),
    };
    let Held {
        link,
        unacked,
        chunk,
        sending,
        ..
    } = &mut held;
    // The retry buffer's size, fixed at its creation.
    let capacity = shared.capacity();
    let mut poll = ACK_POLL_MIN;
    // Whether a shutdown's first attempt skipped the backoff already.
    let mut skipped = false;
    // Whether the warnings kept from the build were told: with the first
    // records, once whoever logs them has its subscriber in place.
    let mut told = false;
    loop {
        let work = wait_for_work(&shared, unacked, poll, capacity).await;
        if work == Work::Stop {
            // Never logged: told now, to whoever listens by the shutdown.
            shared.tell_build_warnings();
            break;
        }
        if !told && work == Work::Frames {
            told = true;
            shared.tell_build_warnings();
        }
        if work == Work::Poll {
            // An idle connection the peer closed or stopped acknowledging
            // is dropped here (a failure if it stalled, or closed soon
            // after it opened); its frames then go back to the buffer. (With
            // frames to write, the same check comes before each write, and
            // the `settle` after it asks.)
            if let Err(error) = link.check() {
                let diag = shared.note_failure(&mut shared.lock(), error);
                shared.emit([diag]);
            }
            let before = unacked.records;
            settle(&shared, link, unacked);
            poll = next_poll(poll, before, unacked.records);
            continue;
        }
        // A connection its peer closed is dropped before anything waits (a
        // backoff, the next connection, which may take its whole timeouts
        // to open), and what its peer acknowledged is settled, before
        // anything goes out on the next; so is one whose peer acknowledged
        // nothing for the write timeout, though records keep coming. The
        // current connection was asked after the last write or poll: asking
        // again here would double the questions to the kernel per write,
        // for little news.
        if let Err(error) = link.check() {
            attempt_failed(&shared, link, unacked, error);
            continue;
        }
        if link.dropped_one() {
            settle(&shared, link, unacked);
        }
        // A shutdown that starts while the link sleeps out a backoff (up to
        // 5 s, or a Retry-After up to 30 s) makes its next attempt at once,
        // once; later ones keep the backoff, within the shutdown's time. A
        // connection under way is let finish: started again, it would begin
        // from the name's resolution.
        let closing = wait_for(&shared.progress, || match shared.lock().closing {
            true if !skipped => Check::Done(()),
            _ => Check::Wait(None),
        });
        let interrupted = tokio::select! {
            // No backoff to sleep out: the shutdown's one skip is kept.
            biased;
            () = link.wait_backoff() => false,
            () = closing => true,
        };
        if interrupted {
            skipped = true;
            link.skip_backoff();
        }
        if let Err(error) = link.ready().await {
            attempt_failed(&shared, link, unacked, error);
            continue;
        }
        {
            let mut q = shared.lock();
            if q.abandoned {
                break;
            }
            // Checked again: the buffer may have dropped its oldest frames
            // since `wait_for_work`, for a larger one.
            if !may_write(q.buffer.front_len(), unacked, capacity) {
                continue;
            }
            // No more than the room left (one frame when nothing waits).
            let room = capacity.saturating_sub(unacked.bytes);
            q.buffer.take(CHUNK_BYTES.min(room).max(1), chunk);
            q.in_flight_records = unacked.records + chunk.len();
            q.in_flight_bytes = unacked.bytes + chunk.bytes();
        }
        let position = link.position();
        *sending = position.map_or(Sending::AtOnce, |(conn, start)| Sending::At(conn, start));
        let (whole, result) = link.send(chunk.run()).await;
        *sending = Sending::Idle;
        let rejected = link.take_rejected();
        let mut diags = Vec::new();
        {
            let mut q = shared.lock();
            if q.abandoned {
                // The shutdown already counted this chunk as undelivered.
                break;
            }
            match position {
                // Written: delivered once acknowledged.
                // All of it: the chunk itself waits, no copy, unless its
                // allocation is large and enough such are held already.
                Some((conn, start)) if whole == chunk.len() && unacked.keeps_whole(chunk) => {
                    let spare = unacked.spare_for(chunk);
                    unacked.keep(conn, start, std::mem::replace(chunk, spare));
                }
                // Part of it, or a large allocation beyond those held (a
                // staging area's, megabytes): a copy waits, and the
                // allocation goes on to the next take. Many such waiting at
                // once would hold tens of megabytes for a few hundred
                // kilobytes of frames, and one freed at each acknowledgement
                // would be paid for again in page faults.
                Some((conn, start)) => unacked.push(conn, start, chunk.run().split_at(whole).0),
                // Done with at once (the first being written: no
                // transport without acknowledgements keeps any waiting).
                None => done_at_once(&shared, &mut q, whole, rejected),
            }
            let (_, rest) = chunk.run().split_at(whole);
            q.in_flight_records = unacked.records;
            q.in_flight_bytes = unacked.bytes;
            // What was not sent goes back in front: after a failure, or
            // when the link reported early (HTTP, after a slice of time).
            let mut dropped = Dropped::default();
            if !rest.is_empty() {
                q.buffer.unshift(rest, &mut dropped);
                // The oldest of them, if they no longer fit: after those
                // waiting for acknowledgement.
                q.pending
                    .remove(unacked.records as u64, dropped.records, true);
            }
            match result {
                // Proof comes later, from the peer's acknowledgements
                // (`settle`), for TCP and TLS.
                Ok(()) if link.send_proves_delivery() => diags.extend(shared.note_success(&mut q)),
                Ok(()) => {}
                Err(error) => diags.push(shared.note_failure(&mut q, error)),
            }
            q.check();
            diags.extend(shared.note_dropped(&mut q, dropped));
        }
        shared.emit(diags);
        // After a failed write, what the dead connection's peer did not
        // acknowledge goes back in front of what was not written.
        settle(&shared, link, unacked);
        poll = ACK_POLL_MIN;
        shared.progress.notify_waiters();
        chunk.clear();
        if too_large_to_keep(chunk, capacity) {
            *chunk = Frames::default();
        }
    }
    link.close(CLOSE_LIMIT).await;
    shared.lock().stopped = true;
    shared.progress.notify_waiters();
}

/// What the delivery task holds that its end must see to, even when it is
/// dropped mid-way, its runtime stopped in the background after a shutdown
/// gave up on it: then what the peer acknowledged so far is settled
/// (delivered, not reported lost), and a connection whose peer has not
/// acknowledged all that was written is reset, since what waits there is
/// about to be reported undelivered and must not arrive after all (over
/// TCP and TLS: an HTTP request sent cannot be taken back). The shutdown
/// is told once the connection is gone (`gone`, dropped last).
struct Held {
    link: Transport,
    /// Frames written and not yet acknowledged.
    unacked: Unacked,
    /// Frames taken from the buffer to be sent.
    chunk: Frames,
    /// A send of `chunk` under way.
    sending: Sending,
    gone: Gone,
}

/// A send under way, as the delivery task's end settles it when the task is
/// dropped mid-way.
#[derive(Clone, Copy)]
enum Sending {
    Idle,
    /// Over TCP and TLS, on this connection from this offset: its frames
    /// are in flight, and listed nowhere else.
    At(u64, u64),
    /// Over a transport without acknowledgements (HTTP, UDP): the frames
    /// the link was done with so far ([`Transport::done_so_far`]) are
    /// settled as a send's end would have.
    AtOnce,
}

/// Settles the first `whole` frames in flight, which a transport without
/// acknowledgements is done with: exported, but those it reports refused
/// for good (an HTTP endpoint's 4xx), dropped and counted.
fn done_at_once(shared: &Shared, q: &mut Queue, whole: usize, rejected: Option<Rejected>) {
    let refused = rejected.as_ref().map_or(0, |r| r.records.min(whole));
    shared.counters.add_exported((whole - refused) as u64);
    // Which of them were refused is not told: a flush waiting for any of
    // them learns it failed.
    q.pending.remove(0, whole as u64, refused > 0);
    if let Some(rejected) = rejected {
        shared
            .counters
            .add_rejected(refused as u64, Arc::new(rejected.error));
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let shared = &self.gone.0;
        if shared.giving_up() {
            match std::mem::replace(&mut self.sending, Sending::Idle) {
                // A send under way: its frames wait as well, from where it
                // began (those not written yet are never acknowledged).
                Sending::At(conn, start) => {
                    let frames = std::mem::take(&mut self.chunk);
                    self.unacked.keep(conn, start, frames);
                }
                // What the endpoint answered is done with; the rest, still
                // in flight, the shutdown reports undelivered.
                Sending::AtOnce => {
                    let whole = self.link.done_so_far().min(self.chunk.len());
                    let rejected = self.link.take_rejected();
                    let mut q = shared.lock();
                    if whole > 0 && !q.abandoned {
                        done_at_once(shared, &mut q, whole, rejected);
                        let bytes = self.chunk.run().split_at(whole).0.data().len();
                        q.in_flight_records = q.in_flight_records.saturating_sub(whole);
                        q.in_flight_bytes = q.in_flight_bytes.saturating_sub(bytes);
                    }
                }
                Sending::Idle => {}
            }
            settle(shared, &mut self.link, &mut self.unacked);
            self.link.reset_if_unacknowledged();
        }
    }
}

/// Tells the shutdown the delivery task is gone, once dropped (after its
/// link, see [`Held`]).
struct Gone(Arc<Shared>);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.task_gone();
    }
}

/// After a failed attempt: settles what a dropped connection's peer
/// acknowledged, notes the failure, and wakes those waiting on progress.
fn attempt_failed(shared: &Shared, link: &mut Transport, unacked: &mut Unacked, error: Error) {
    settle(shared, link, unacked);
    let diag = shared.note_failure(&mut shared.lock(), error);
    shared.emit([diag]);
    shared.progress.notify_waiters();
}

/// How long to wait before asking again about frames not yet acknowledged,
/// `records` of them now and `before` at the last question:
/// [`ACK_POLL_MIN`] after progress, else twice as long as `poll`, up to
/// [`ACK_POLL_MAX`].
fn next_poll(poll: Duration, before: usize, records: usize) -> Duration {
    if records < before {
        ACK_POLL_MIN
    } else {
        (poll * 2).min(ACK_POLL_MAX)
    }
}

/// Whether the buffer's first frame (`front` bytes) may be written now:
/// what waits for acknowledgement counts against the buffer's size
/// (`capacity`), so a frame goes when it fits the room left, or when
/// nothing waits (then whatever its size).
fn may_write(front: Option<usize>, unacked: &Unacked, capacity: usize) -> bool {
    let room = capacity.saturating_sub(unacked.bytes);
    front.is_some_and(|len| unacked.is_empty() || len <= room)
}

/// Whether the chunk's allocation, traded with the buffer
/// (`RetryBuffer::take`), is let go once written rather than kept for the
/// next trade: a staging area's vector (a quarter of the buffer's size) is
/// kept; the ring's own, grown by doubling through a backlog, is not held
/// while traffic is light.
fn too_large_to_keep(chunk: &Frames, capacity: usize) -> bool {
    chunk.capacity() > (capacity / 2).max(4 * CHUNK_BYTES)
}

/// Allocations larger than this are large ([`is_large`]): a staging
/// area's vector (a quarter of the retry buffer, 4 MiB by default, and
/// above this from a 2 MiB buffer on), or a copy of a chunk at least half
/// full. Not tied to [`CHUNK_BYTES`]: the bound on large allocations held
/// ([`MAX_LARGE`]) must reach the staging areas of small buffers too.
const LARGE_BYTES: usize = 512 * 1024;

/// Whether `chunk`'s allocation is large (see [`LARGE_BYTES`]).
fn is_large(chunk: &Frames) -> bool {
    chunk.capacity() > LARGE_BYTES
}

/// What [`settle`] asks of the link: how far its peer acknowledged (see
/// [`Transport::acknowledged`]).
trait AskAcknowledged {
    fn acknowledged(&mut self) -> Option<Acked>;
}

impl AskAcknowledged for Transport {
    fn acknowledged(&mut self) -> Option<Acked> {
        Transport::acknowledged(self)
    }
}

/// Asks the link how far its peer acknowledged: frames acknowledged are
/// delivered; those of a connection that is gone and were not go back to
/// the front of the buffer, in order.
fn settle(shared: &Shared, link: &mut impl AskAcknowledged, unacked: &mut Unacked) {
    // A dropped connection's final word comes first, then the current one's.
    while let Some(acked) = link.acknowledged() {
        let mut q = shared.lock();
        if q.abandoned {
            return;
        }
        let done = unacked.acknowledged(acked);
        // Delivered: the first being written (before any taken back).
        q.pending.remove(0, done as u64, false);
        let mut dropped = Dropped::default();
        let back = if acked.open {
            0
        } else {
            unacked.take_back(&mut q, &mut dropped)
        };
        // Frames acknowledged on the live connection prove that the
        // endpoint takes records (a write the kernel took does not: the
        // peer may close at once). Not the last word of one dropped, which
        // follows its failure: the failure stands.
        if done > 0 {
            shared.counters.add_exported(done as u64);
        }
        let recovered = if done > 0 && acked.open {
            shared.note_success(&mut q)
        } else {
            None
        };
        q.in_flight_records = unacked.records;
        q.check();
        q.in_flight_bytes = unacked.bytes;
        shared
            .counters
            .set_unacknowledged(unacked.records, unacked.bytes);
        let diag = shared.note_dropped(&mut q, dropped);
        drop(q);
        shared.emit(recovered.into_iter().chain(diag));
        if done > 0 || back > 0 {
            shared.progress.notify_waiters();
        }
        if acked.open {
            return;
        }
    }
}

/// What the task is woken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Frames to write.
    Frames,
    /// Time to ask how far the peer acknowledged.
    Poll,
    /// A shutdown found everything delivered, or gave up.
    Stop,
}

/// Waits until there are frames to write (and room for them beside those
/// waiting for acknowledgement), it is time to ask about frames not yet
/// acknowledged, or a shutdown finds nothing left (or gave up).
async fn wait_for_work(
    shared: &Shared,
    unacked: &Unacked,
    poll: Duration,
    capacity: usize,
) -> Work {
    let poll_at = (!unacked.is_empty()).then(|| Instant::now() + poll);
    wait_for(&shared.wake, || {
        let q = shared.lock();
        let writable = may_write(q.buffer.front_len(), unacked, capacity);
        if q.abandoned {
            Check::Done(Work::Stop)
        } else if writable {
            Check::Done(Work::Frames)
        } else if poll_at.is_some_and(|at| Instant::now() >= at) {
            Check::Done(Work::Poll)
        } else if q.closing && unacked.is_empty() {
            Check::Done(Work::Stop)
        } else {
            Check::Wait(poll_at)
        }
    })
    .await
}

/// Frames written on the current connection that its peer's TCP has not
/// acknowledged yet, oldest first, with where each ends on the connection.
#[derive(Default)]
struct Unacked {
    /// The connection they were written on.
    conn: u64,
    /// Written chunks, each with the plaintext offset where each of its
    /// frames ends, and how many of its frames were acknowledged already.
    chunks: VecDeque<Written>,
    /// Frames not acknowledged, and their bytes.
    records: usize,
    bytes: usize,
    /// Small allocations of chunks acknowledged, for the next ones: at most
    /// [`MAX_SPARE`].
    spare: Vec<Frames>,
    /// Large ones, for the next chunks kept whole in large ones.
    spare_large: Vec<Frames>,
    /// Chunks in large allocations waiting. With `spare_large`, those kept
    /// whole stay within [`MAX_LARGE`]; a copy (of a chunk that could not
    /// wait whole) may grow large and add to them, within the buffer's
    /// bytes.
    large_waiting: usize,
}

/// A run of frames written in one go.
struct Written {
    frames: Frames,
    ends: Vec<u64>,
    acked: usize,
}

impl Unacked {
    fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Large allocations held, waiting or spare.
    fn large_held(&self) -> usize {
        self.large_waiting + self.spare_large.len()
    }

    /// Whether `chunk`, written whole, may wait as it is: its allocation is
    /// not large, or a large spare takes its place (see
    /// [`spare_for`](Self::spare_for)), or fewer than [`MAX_LARGE`] are held.
    fn keeps_whole(&self, chunk: &Frames) -> bool {
        !is_large(chunk) || !self.spare_large.is_empty() || self.large_held() < MAX_LARGE
    }

    /// The allocation that takes the place of `chunk`, kept whole: a spare
    /// of its kind if any, else a small one, else a new one.
    fn spare_for(&mut self, chunk: &Frames) -> Frames {
        let large = is_large(chunk).then(|| self.spare_large.pop()).flatten();
        large.or_else(|| self.spare.pop()).unwrap_or_default()
    }

    /// Keeps an allocation no longer used for a later chunk, within the
    /// bounds of [`Unacked::spare`] and [`Unacked::spare_large`]; lets it go
    /// otherwise.
    fn keep_spare(&mut self, mut frames: Frames) {
        frames.clear();
        if !is_large(&frames) {
            if self.spare.len() < MAX_SPARE {
                self.spare.push(frames);
            }
        } else if self.large_held() < MAX_LARGE {
            self.spare_large.push(frames);
        }
    }

    /// Keeps a copy of `frames`, written on connection `conn` from
    /// plaintext offset `start` on.
    fn push(&mut self, conn: u64, start: u64, frames: FrameRun<'_>) {
        let mut kept = self.spare.pop().unwrap_or_default();
        for frame in frames.iter() {
            kept.push(frame);
        }
        self.keep(conn, start, kept);
    }

    /// Keeps `frames`, written on connection `conn` from plaintext offset
    /// `start` on.
    fn keep(&mut self, conn: u64, start: u64, frames: Frames) {
        if frames.is_empty() {
            self.keep_spare(frames);
            return;
        }
        debug_assert!(self.is_empty() || self.conn == conn);
        self.conn = conn;
        if is_large(&frames) {
            self.large_waiting += 1;
        }
        let mut end = start;
        let ends = frames
            .run()
            .lens()
            .iter()
            .map(|&len| {
                end += len as u64;
                end
            })
            .collect();
        self.records += frames.len();
        self.bytes += frames.bytes();
        self.chunks.push_back(Written {
            frames,
            ends,
            acked: 0,
        });
    }

    /// Notes that the peer acknowledged `acked.through` bytes of connection
    /// `acked.conn`; returns how many frames that delivered.
    fn acknowledged(&mut self, acked: Acked) -> usize {
        if self.is_empty() || acked.conn != self.conn {
            return 0;
        }
        let mut done = 0;
        while let Some(chunk) = self.chunks.front_mut() {
            // The frames end in order: those acknowledged now are a run
            // from the first not acknowledged, found by bisection and
            // counted at once.
            debug_assert_eq!(chunk.ends.len(), chunk.frames.len());
            let waiting = chunk.ends.get(chunk.acked..).unwrap_or_default();
            let newly = waiting.partition_point(|&end| end <= acked.through);
            let lens = chunk.frames.run().lens();
            let bytes: usize = lens
                .get(chunk.acked..chunk.acked + newly)
                .unwrap_or_default()
                .iter()
                .sum();
            chunk.acked += newly;
            done += newly;
            self.records -= newly;
            self.bytes -= bytes;
            if chunk.acked < chunk.ends.len() {
                break;
            }
            if let Some(spent) = self.chunks.pop_front() {
                if is_large(&spent.frames) {
                    self.large_waiting = self.large_waiting.saturating_sub(1);
                }
                self.keep_spare(spent.frames);
            }
        }
        done
    }

    /// Puts every frame not acknowledged back at the front of the buffer,
    /// in order (the oldest of them dropped, and counted, if they no longer
    /// fit); returns how many.
    fn take_back(&mut self, q: &mut Queue, dropped: &mut Dropped) -> usize {
        let back = self.records;
        // Records of the older chunks, still ahead of this one's.
        let mut older = self.records;
        // `unshift` puts in front: the newest chunk first.
        while let Some(chunk) = self.chunks.pop_back() {
            let (_, rest) = chunk.frames.run().split_at(chunk.acked);
            older -= rest.len();
            let before = dropped.records;
            q.buffer.unshift(rest, dropped);
            // The oldest of them, if they no longer fit.
            q.pending
                .remove(older as u64, dropped.records - before, true);
        }
        self.records = 0;
        self.bytes = 0;
        self.large_waiting = 0;
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::buffer::RetryBuffer;
    use crate::delivery::Flushed;
    use crate::stats::Counters;

    fn frames(list: &[&[u8]]) -> Frames {
        let mut frames = Frames::default();
        for frame in list {
            frames.push(frame);
        }
        frames
    }

    fn open(conn: u64, through: u64) -> Acked {
        Acked {
            conn,
            through,
            open: true,
        }
    }

    /// Everything the buffer holds, front first.
    fn contents(buffer: &mut RetryBuffer) -> Vec<Vec<u8>> {
        let mut out = Frames::default();
        buffer.take(usize::MAX, &mut out);
        out.run().iter().map(<[u8]>::to_vec).collect()
    }

    /// A frame counts as delivered once the peer acknowledged its last byte,
    /// and only on its own connection.
    #[test]
    fn a_frame_is_delivered_once_acknowledged_through_its_last_byte() {
        let mut unacked = Unacked::default();
        assert!(unacked.is_empty());
        // Ends at 102, 105 and 106, then 110.
        unacked.keep(7, 100, frames(&[b"aa", b"bbb", b"c"]));
        unacked.push(7, 106, frames(&[b"dddd"]).run());
        assert!(!unacked.is_empty());
        assert_eq!((unacked.records, unacked.bytes), (4, 10));
        assert_eq!(unacked.acknowledged(open(6, 200)), 0, "another connection");
        assert_eq!(unacked.acknowledged(open(7, 101)), 0);
        assert_eq!((unacked.records, unacked.bytes), (4, 10));
        assert_eq!(unacked.acknowledged(open(7, 102)), 1);
        assert_eq!((unacked.records, unacked.bytes), (3, 8));
        assert_eq!(unacked.acknowledged(open(7, 104)), 0);
        assert_eq!(unacked.acknowledged(open(7, 105)), 1);
        assert_eq!((unacked.records, unacked.bytes), (2, 5));
        // Across the two chunks.
        assert_eq!(unacked.acknowledged(open(7, 110)), 2);
        assert_eq!((unacked.records, unacked.bytes), (0, 0));
        assert!(unacked.is_empty());
        assert!(unacked.chunks.is_empty());
        assert_eq!(unacked.acknowledged(open(7, 200)), 0);
    }

    /// The frames not acknowledged go back to the front of the buffer, in
    /// order, before what it held.
    #[test]
    fn what_was_not_acknowledged_goes_back_in_front_in_order() {
        let shared = Shared::new(1024, Counters::default(), "test".into());
        let mut q = shared.lock();
        let mut dropped = Dropped::default();
        q.buffer.push(b"later", 0, &mut dropped);
        let mut unacked = Unacked::default();
        unacked.keep(1, 0, frames(&[b"a", b"bb"]));
        unacked.keep(1, 3, frames(&[b"ccc", b"dddd"]));
        assert_eq!(unacked.acknowledged(open(1, 1)), 1);
        assert_eq!(unacked.take_back(&mut q, &mut dropped), 3);
        assert_eq!((unacked.records, unacked.bytes), (0, 0));
        assert!(unacked.chunks.is_empty());
        assert_eq!(dropped.records, 0);
        let back: [&[u8]; 4] = [b"bb", b"ccc", b"dddd", b"later"];
        assert_eq!(contents(&mut q.buffer), back);
        // Nothing left to put back.
        assert_eq!(unacked.take_back(&mut q, &mut dropped), 0);
        assert!(q.buffer.is_empty());
    }

    /// Frames put back that no longer fit are dropped, the oldest of each
    /// chunk first: their numbers leave the pending ones from their own
    /// place (after the older chunks still to be put back), and a flush
    /// waiting learns it.
    #[test]
    fn numbers_follow_the_frames_put_back_or_dropped() {
        let shared = Shared::new(11, Counters::default(), "test".into());
        let mut q = shared.lock();
        let mut dropped = Dropped::default();
        let mut unacked = Unacked::default();
        // Records 1 to 4 being written in two chunks, 5 buffered.
        unacked.keep(1, 0, frames(&[b"a", b"bb"]));
        unacked.keep(1, 3, frames(&[b"ccc", b"dddd"]));
        q.buffer.push(b"later", 0, &mut dropped);
        q.pending.append(1, 5);
        q.in_flight_records = 4;
        let watch = q.pending.watch(5);
        // Record 1 acknowledged, then the connection is gone.
        assert_eq!(unacked.acknowledged(open(1, 1)), 1);
        q.pending.remove(0, 1, false);
        // Put back newest first: 3 goes for room, 2 still fits.
        assert_eq!(unacked.take_back(&mut q, &mut dropped), 3);
        q.in_flight_records = unacked.records;
        assert_eq!(dropped.records, 1);
        assert_eq!(q.pending.numbers(), [2, 4, 5]);
        q.check();
        assert_eq!(q.pending.flushed(watch, 1, 5), Flushed::Delivered);
        assert_eq!(q.pending.flushed(watch, 2, 5), Flushed::Waiting);
        assert_eq!(q.pending.flushed(watch, 5, 5), Flushed::Lost(3));
        let back: [&[u8]; 3] = [b"bb", b"dddd", b"later"];
        assert_eq!(contents(&mut q.buffer), back);
    }

    #[test]
    fn a_large_allocation_is_one_of_more_than_half_a_mebibyte() {
        for (bytes, large) in [
            (0, false),
            (512 * 1024, false),
            (512 * 1024 + 1, true),
            (CHUNK_BYTES, true),
        ] {
            let chunk = Frames::with_capacity(bytes);
            assert_eq!(chunk.capacity(), bytes, "an allocation of exactly {bytes}");
            assert_eq!(is_large(&chunk), large, "{bytes} bytes");
        }
    }

    /// A chunk's allocation is kept for the next one up to half the buffer's
    /// size, and never less than four chunks' (4 MiB).
    #[test]
    fn allocations_up_to_half_the_buffer_are_kept_for_the_next_chunk() {
        const MIB: usize = 1024 * 1024;
        for (buffer, bytes, kept) in [
            (16 * MIB, 8 * MIB, true),
            (16 * MIB, 8 * MIB + 1, false),
            (MIB, 4 * MIB, true),
            (MIB, 4 * MIB + 1, false),
        ] {
            let chunk = Frames::with_capacity(bytes);
            assert_eq!(
                too_large_to_keep(&chunk, buffer),
                !kept,
                "{bytes} bytes of a buffer of {buffer}"
            );
        }
    }

    /// The first frame goes when nothing waits, whatever its size, else
    /// when it fits the room left beside what waits; nothing goes from an
    /// empty buffer.
    #[test]
    fn a_frame_is_written_when_it_fits_beside_those_waiting() {
        let nothing = Unacked::default();
        let ten = one_frame_waiting();
        for (front, unacked, capacity, writable) in [
            (None, &nothing, 100, false),
            (None, &ten, 100, false),
            (Some(500), &nothing, 100, true),
            (Some(90), &ten, 100, true),
            (Some(91), &ten, 100, false),
            (Some(1), &ten, 5, false),
        ] {
            assert_eq!(
                may_write(front, unacked, capacity),
                writable,
                "a frame of {front:?} bytes beside {} in {capacity}",
                unacked.bytes
            );
        }
    }

    /// Unacknowledged frames are asked about after 1 ms, then twice as late
    /// each time nothing more was acknowledged, up to 50 ms; after 1 ms
    /// again once some were.
    #[test]
    fn acknowledgements_are_asked_about_ever_later_while_none_come() {
        let ms = Duration::from_millis;
        let mut poll = ACK_POLL_MIN;
        let mut schedule = vec![poll];
        for _ in 0..7 {
            poll = next_poll(poll, 3, 3);
            schedule.push(poll);
        }
        let expected = [1, 2, 4, 8, 16, 32, 50, 50].map(ms);
        assert_eq!(schedule, expected);
        assert_eq!(next_poll(ms(50), 3, 2), ms(1));
        assert_eq!(next_poll(ms(8), 3, 0), ms(1));
    }

    fn large_chunk(frame: &[u8]) -> Frames {
        let mut large = Frames::with_capacity(LARGE_BYTES + 1);
        large.push(frame);
        large
    }

    /// Acknowledged chunks leave their allocations for the next ones: at
    /// most [`MAX_SPARE`] small ones, and every large one (they are at most
    /// [`MAX_LARGE`], waiting or spare).
    #[test]
    fn acknowledged_chunks_keep_their_allocations_within_bounds() {
        let mut unacked = Unacked::default();
        let mut end = 0;
        for n in 1..=MAX_SPARE + 2 {
            unacked.keep(1, end, frames(&[b"small"]));
            end += 5;
            assert_eq!(unacked.acknowledged(open(1, end)), 1);
            assert_eq!(unacked.spare.len(), n.min(MAX_SPARE));
        }
        for n in 1..=MAX_LARGE {
            assert!(unacked.keeps_whole(&large_chunk(b"large")));
            unacked.keep(1, end, large_chunk(b"large"));
            end += 5;
            assert_eq!(unacked.acknowledged(open(1, end)), 1);
            assert_eq!(
                unacked.spare_large.len(),
                n,
                "every large one acknowledged is kept"
            );
        }
        assert_eq!(unacked.large_held(), MAX_LARGE);
        assert_eq!(unacked.spare.len(), MAX_SPARE, "small ones unchanged");
    }

    /// A chunk written whole waits as it is unless its allocation is large,
    /// no large spare can take its place and [`MAX_LARGE`] are held; a
    /// large one kept whole takes a large spare's place, never adding to
    /// them.
    #[test]
    fn large_chunks_wait_whole_within_the_bound() {
        let mut unacked = Unacked::default();
        let small = frames(&[b"small"]);
        let mut end = 0;
        for held in 0..MAX_LARGE {
            assert_eq!(unacked.large_held(), held);
            let chunk = large_chunk(b"large");
            assert!(unacked.keeps_whole(&chunk));
            let spare = unacked.spare_for(&chunk);
            assert!(!is_large(&spare), "no large spare yet");
            unacked.keep(1, end, chunk);
            end += 5;
        }
        assert!(!unacked.keeps_whole(&large_chunk(b"large")));
        assert!(
            unacked.keeps_whole(&small),
            "a small one always waits whole"
        );
        // One acknowledged becomes a spare, which the next takes the place of.
        assert_eq!(unacked.acknowledged(open(1, 5)), 1);
        assert_eq!(unacked.large_held(), MAX_LARGE);
        let chunk = large_chunk(b"large");
        assert!(unacked.keeps_whole(&chunk));
        assert!(is_large(&unacked.spare_for(&chunk)));
        unacked.keep(1, end, chunk);
        assert_eq!(unacked.large_held(), MAX_LARGE);
        assert!(!unacked.keeps_whole(&large_chunk(b"large")));
        // A lost connection lets the waiting ones go.
        let shared = Shared::new(1024, Counters::default(), "test".into());
        let mut dropped = Dropped::default();
        unacked.take_back(&mut shared.lock(), &mut dropped);
        assert_eq!(unacked.large_held(), 0);
    }

    /// A link that tells what it is given, in order.
    struct Told(Vec<Acked>);

    impl AskAcknowledged for Told {
        fn acknowledged(&mut self) -> Option<Acked> {
            (!self.0.is_empty()).then(|| self.0.remove(0))
        }
    }

    /// Frames acknowledged on the live connection prove the endpoint takes
    /// records; those a failed connection's last word says were
    /// acknowledged are delivered, but the failure stands.
    #[test]
    fn only_the_live_connection_proves_the_endpoint_healthy() {
        for open in [false, true] {
            let shared = Shared::new(1024, Counters::default(), "test".into());
            let mut unacked = one_frame_waiting();
            {
                // One record, numbered 1, written and waiting.
                let mut q = shared.lock();
                q.accepted = 1;
                q.pending.append(1, 1);
                q.in_flight_records = 1;
                q.in_flight_bytes = 10;
                q.check();
                let _ = shared.note_failure(&mut q, crate::error::Error::ShutDown);
            }
            let acked = Acked {
                conn: 1,
                through: 10,
                open,
            };
            settle(&shared, &mut Told(vec![acked]), &mut unacked);
            assert_eq!(shared.counters.snapshot().exported, 1, "delivered");
            assert_eq!(shared.is_healthy(), open, "open: {open}");
        }
    }

    fn one_frame_waiting() -> Unacked {
        let mut unacked = Unacked::default();
        unacked.keep(1, 0, frames(&[b"0123456789"]));
        unacked
    }

    /// `wait_for_work`, bounded: a mutant that waits forever fails here.
    async fn work(shared: &Shared, unacked: &Unacked, poll: Duration, capacity: usize) -> Work {
        tokio::time::timeout(
            Duration::from_secs(10),
            wait_for_work(shared, unacked, poll, capacity),
        )
        .await
        .expect("wait_for_work returns")
    }

    fn push(shared: &Shared, frame: &[u8]) {
        let mut dropped = Dropped::default();
        shared.lock().buffer.push(frame, 0, &mut dropped);
    }

    /// Frames are written while the buffer has room for them beside those
    /// waiting for acknowledgement; one at least when none waits.
    #[tokio::test]
    async fn frames_are_written_while_they_fit_beside_those_waiting() {
        let long = Duration::from_secs(3600);
        let shared = Shared::new(1024, Counters::default(), "test".into());
        push(&shared, b"0123456789");
        // Nothing waits: a frame larger than the room still goes.
        let nothing = Unacked::default();
        assert_eq!(work(&shared, &nothing, long, 5).await, Work::Frames);
        // Ten bytes wait; the frame's ten bytes fit a room of exactly ten.
        let waiting = one_frame_waiting();
        assert_eq!(work(&shared, &waiting, long, 20).await, Work::Frames);
        // Not in a room of nine: time to ask about the ten bytes instead.
        let poll = Duration::from_millis(20);
        assert_eq!(work(&shared, &waiting, poll, 19).await, Work::Poll);
    }

    /// With frames waiting for acknowledgement and nothing to write, the
    /// task asks about them once `poll` has passed, not before; a shutdown
    /// waits for them.
    #[tokio::test]
    async fn frames_waiting_are_asked_about_after_the_poll_delay() {
        let shared = Shared::new(1024, Counters::default(), "test".into());
        let waiting = one_frame_waiting();
        let poll = Duration::from_millis(200);
        let started = Instant::now();
        assert_eq!(work(&shared, &waiting, poll, 1024).await, Work::Poll);
        assert!(started.elapsed() >= poll, "{:?}", started.elapsed());
        shared.close();
        let started = Instant::now();
        assert_eq!(work(&shared, &waiting, poll, 1024).await, Work::Poll);
        assert!(started.elapsed() >= poll, "{:?}", started.elapsed());
    }

    /// Nothing to write and nothing waiting: the task sleeps until a
    /// shutdown, which stops it.
    #[tokio::test]
    async fn an_idle_task_sleeps_until_a_shutdown_stops_it() {
        let shared = Shared::new(1024, Counters::default(), "test".into());
        let nothing = Unacked::default();
        let poll = Duration::from_millis(10);
        let idle = tokio::time::timeout(
            Duration::from_millis(200),
            wait_for_work(&shared, &nothing, poll, 1024),
        )
        .await;
        assert!(idle.is_err(), "woke for {idle:?} with nothing to do");
        shared.close();
        assert_eq!(work(&shared, &nothing, poll, 1024).await, Work::Stop);
    }
}
