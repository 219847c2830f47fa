//! The delivery task: takes frames from the front of the retry buffer,
//! writes them through the transport and removes only what was delivered;
//! what a failed write did not deliver goes back to the front.

use std::sync::Arc;
use std::time::Duration;

use super::{Dropped, Shared};
use crate::frames::Frames;
use crate::runtime::{wait_for, Check};
use crate::transport::Transport;

/// The most bytes written in one go; also the most a failed write puts back.
const CHUNK_BYTES: usize = 256 * 1024;
/// Time allowed to close the connection cleanly once the buffer is drained.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// The delivery task: drains the buffer through `link` until a shutdown finds
/// it empty.
pub(crate) async fn run(shared: Arc<Shared>, mut link: Transport) {
    let mut chunk = Frames::default();
    loop {
        if !wait_for_frames(&shared).await {
            break;
        }
        if let Err(error) = link.ready().await {
            let diag = shared.note_failure(&mut shared.lock(), error);
            shared.emit([diag]);
            shared.progress.notify_waiters();
            continue;
        }
        {
            let mut q = shared.lock();
            if q.abandoned {
                break;
            }
            q.buffer.take(CHUNK_BYTES, &mut chunk);
            q.in_flight_records = chunk.len();
            q.in_flight_bytes = chunk.bytes();
        }
        let (whole, result) = link.send(chunk.run()).await;
        // An HTTP endpoint may refuse records for good (4xx): they are among
        // the `whole` frames done with, but dropped and counted, not exported.
        let rejected = link.take_rejected();
        let refused = rejected.as_ref().map_or(0, |r| r.records.min(whole));
        let mut diags = Vec::new();
        {
            let mut q = shared.lock();
            if q.abandoned {
                // The shutdown already counted this chunk as undelivered.
                break;
            }
            q.in_flight_records = 0;
            q.in_flight_bytes = 0;
            q.finished += whole as u64;
            shared.counters.add_exported((whole - refused) as u64);
            if let Some(rejected) = rejected {
                let error = Arc::new(rejected.error);
                shared.counters.add_rejected(refused as u64, error);
            }
            let mut dropped = Dropped::default();
            match result {
                Ok(()) => diags.extend(shared.note_success(&mut q)),
                Err(error) => {
                    let (_, undelivered) = chunk.run().split_at(whole);
                    q.buffer.unshift(undelivered, &mut dropped);
                    diags.push(shared.note_failure(&mut q, error));
                }
            }
            diags.extend(shared.note_dropped(&mut q, dropped));
        }
        shared.emit(diags);
        shared.progress.notify_waiters();
        chunk.clear();
        // The chunk trades allocations with the buffer (RetryBuffer::take):
        // usually a staging area's vector (a quarter of the buffer's size),
        // kept for the next trade; the ring's own, grown by doubling through
        // a backlog, is let go rather than held while traffic is light.
        if chunk.capacity() > (shared.capacity() / 2).max(4 * CHUNK_BYTES) {
            chunk = Frames::default();
        }
    }
    link.close(CLOSE_LIMIT).await;
    shared.lock().stopped = true;
    shared.progress.notify_waiters();
}

/// Waits until there are frames to write (true) or a shutdown finds the buffer
/// empty (false).
async fn wait_for_frames(shared: &Shared) -> bool {
    wait_for(&shared.wake, || {
        let q = shared.lock();
        if q.abandoned {
            Check::Done(false)
        } else if !q.buffer.is_empty() {
            Check::Done(true)
        } else if q.closing {
            Check::Done(false)
        } else {
            Check::Wait(None)
        }
    })
    .await
}
