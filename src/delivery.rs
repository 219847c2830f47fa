//! Delivery: the retry buffer shared between `export` and one background task
//! that drains it through the link.
//!
//! `export` (on the SDK's thread) encodes a batch and appends its frames to the
//! buffer, which never blocks for longer than a copy under a mutex. The delivery
//! task, on the exporter's own runtime, takes frames from the front, writes them
//! and removes only what was written whole: frames of a write that failed or
//! stalled go back to the front and are written again, in order, on the next
//! connection. While the endpoint is down the buffer fills; when it is full the
//! oldest frames make room for the new ones, and are counted.
//!
//! Diagnostics are rate-limited: the first failure of an outage is reported
//! (`otel_warn!`), the rest are counted and summed up when delivery recovers.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::buffer::{Dropped, RetryBuffer};
use crate::error::Error;
use crate::stats::Counters;
use crate::transport::Transport;

/// The most bytes written in one go; also the most a failed write puts back.
const CHUNK_BYTES: usize = 256 * 1024;
/// Time allowed to close the connection cleanly once the buffer is drained.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// State shared by `export`, the delivery task and `shutdown`.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Frames were added, or a shutdown started.
    wake: Notify,
    /// Frames left the buffer, delivery failed, or the task stopped.
    progress: Notify,
    counters: Counters,
    endpoint: String,
    /// When a shutdown must be over, if whoever started it said so.
    deadline: Mutex<Option<std::time::Instant>>,
    /// What the last shutdown could not deliver, as its error message.
    shutdown_error: Mutex<Option<String>>,
}

struct Queue {
    buffer: RetryBuffer,
    /// Taken by the delivery task and being written.
    in_flight_records: usize,
    in_flight_bytes: usize,
    /// Records ever appended (the dropped ones included).
    accepted: u64,
    /// Records ever written or dropped.
    finished: u64,
    /// False from a failure until the next successful write.
    healthy: bool,
    /// A shutdown has a deadline: exports stop waiting for delivery.
    hurry: bool,
    closing: bool,
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
}

/// What a shutdown left undelivered.
#[derive(Debug)]
pub(crate) struct Undelivered {
    pub(crate) records: usize,
    pub(crate) bytes: usize,
    pub(crate) last_error: Option<Arc<Error>>,
}

impl Shared {
    pub(crate) fn new(capacity: usize, counters: Counters, endpoint: String) -> Arc<Shared> {
        Arc::new(Shared {
            queue: Mutex::new(Queue {
                buffer: RetryBuffer::new(capacity),
                in_flight_records: 0,
                in_flight_bytes: 0,
                accepted: 0,
                finished: 0,
                healthy: true,
                hurry: false,
                closing: false,
                stopped: false,
                outage_failures: 0,
                outage_dropped: 0,
            }),
            wake: Notify::new(),
            progress: Notify::new(),
            counters,
            endpoint,
            deadline: Mutex::new(None),
            shutdown_error: Mutex::new(None),
        })
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Sets when an upcoming shutdown must be over: exports and the drain are
    /// held to it.
    pub(crate) fn set_deadline(&self, deadline: std::time::Instant) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.lock().hurry = true;
        self.progress.notify_waiters();
    }

    /// `limit`, shortened to what is left before the shutdown deadline, if any.
    pub(crate) fn within_deadline(&self, limit: Duration) -> Duration {
        match *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(deadline) => {
                limit.min(deadline.saturating_duration_since(std::time::Instant::now()))
            }
            None => limit,
        }
    }

    pub(crate) fn set_shutdown_error(&self, message: String) {
        *self
            .shutdown_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(message);
    }

    /// The error of the shutdown that could not deliver everything, if any.
    pub(crate) fn shutdown_error(&self) -> Option<String> {
        self.shutdown_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends frames (`data` cut by `lens`) and wakes the delivery task.
    /// Returns the sequence number that [`Shared::wait`] waits for.
    pub(crate) fn push(&self, data: &[u8], lens: &[usize]) -> u64 {
        let mut dropped = Dropped::default();
        let target = {
            let mut q = self.lock();
            let mut start = 0;
            for &len in lens {
                let reserved = q.in_flight_bytes;
                q.buffer
                    .push(&data[start..start + len], reserved, &mut dropped);
                start += len;
            }
            q.accepted += lens.len() as u64;
            self.note_dropped(&mut q, dropped);
            q.accepted
        };
        self.wake.notify_one();
        target
    }

    /// Waits until the records up to `target` have left the buffer, delivery
    /// fails, or a shutdown starts — whichever comes first.
    pub(crate) async fn wait(&self, target: u64) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let q = self.lock();
                if q.finished >= target || !q.healthy || q.closing || q.hurry {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Asks the delivery task to drain the buffer and stop.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
        self.progress.notify_waiters();
    }

    /// Waits until the delivery task has stopped.
    pub(crate) async fn stopped(&self) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().stopped {
                return;
            }
            notified.await;
        }
    }

    /// Counts and empties what is still buffered: the records a shutdown could
    /// not deliver.
    pub(crate) fn abandon(&self) -> Undelivered {
        let mut q = self.lock();
        let (records, bytes) = q.buffered();
        q.buffer.clear();
        q.in_flight_records = 0;
        q.in_flight_bytes = 0;
        q.finished += records as u64;
        self.counters.add_dropped_at_shutdown(records as u64);
        self.counters.set_buffered(0, 0);
        drop(q);
        self.progress.notify_waiters();
        Undelivered {
            records,
            bytes,
            last_error: self.counters.snapshot().last_error,
        }
    }

    fn note_dropped(&self, q: &mut Queue, dropped: Dropped) {
        if dropped.records > 0 {
            q.finished += dropped.records;
            self.counters.add_dropped_buffer_full(dropped.records);
            if q.outage_dropped == 0 {
                opentelemetry::otel_warn!(
                    name: "djehouty.RetryBufferFull",
                    endpoint = self.endpoint.clone(),
                    message = "the retry buffer is full: the oldest records are being dropped; \
                               the total is reported when delivery recovers and in the counters"
                );
            }
            q.outage_dropped += dropped.records;
        }
        let (records, bytes) = q.buffered();
        self.counters.set_buffered(records, bytes);
    }

    fn note_failure(&self, q: &mut Queue, error: Error) {
        let error = Arc::new(error);
        if q.outage_failures == 0 {
            opentelemetry::otel_warn!(
                name: "djehouty.DeliveryFailed",
                endpoint = self.endpoint.clone(),
                error = error.to_string(),
                message = "records are kept in the retry buffer and retried with backoff; \
                           further failures are counted and reported when delivery recovers"
            );
        } else {
            opentelemetry::otel_debug!(
                name: "djehouty.DeliveryFailedAgain",
                failures = q.outage_failures + 1
            );
        }
        q.outage_failures += 1;
        q.healthy = false;
        self.counters.add_failure(error);
    }

    fn note_success(&self, q: &mut Queue) {
        q.healthy = true;
        if q.outage_failures > 0 || q.outage_dropped > 0 {
            opentelemetry::otel_info!(
                name: "djehouty.DeliveryRecovered",
                endpoint = self.endpoint.clone(),
                failures = q.outage_failures,
                dropped_records = q.outage_dropped
            );
            q.outage_failures = 0;
            q.outage_dropped = 0;
        }
    }
}

/// The delivery task: drains the buffer through `link` until a shutdown finds
/// it empty.
pub(crate) async fn run(shared: Arc<Shared>, mut link: Transport) {
    let mut chunk = Vec::new();
    let mut lens = Vec::new();
    loop {
        if !wait_for_frames(&shared).await {
            break;
        }
        if let Err(error) = link.ready().await {
            shared.note_failure(&mut shared.lock(), error);
            shared.progress.notify_waiters();
            continue;
        }
        {
            let mut q = shared.lock();
            q.buffer.take(CHUNK_BYTES, &mut chunk, &mut lens);
            q.in_flight_records = lens.len();
            q.in_flight_bytes = chunk.len();
        }
        let (whole, result) = link.send(&chunk, &lens).await;
        let whole_bytes: usize = lens[..whole].iter().sum();
        {
            let mut q = shared.lock();
            q.in_flight_records = 0;
            q.in_flight_bytes = 0;
            q.finished += whole as u64;
            shared.counters.add_exported(whole as u64);
            let mut dropped = Dropped::default();
            match result {
                Ok(()) => shared.note_success(&mut q),
                Err(error) => {
                    q.buffer
                        .unshift(&chunk[whole_bytes..], &lens[whole..], &mut dropped);
                    shared.note_failure(&mut q, error);
                }
            }
            shared.note_dropped(&mut q, dropped);
        }
        shared.progress.notify_waiters();
        chunk.clear();
        lens.clear();
        if chunk.capacity() > 4 * CHUNK_BYTES {
            chunk = Vec::new();
        }
    }
    link.close(CLOSE_LIMIT).await;
    shared.lock().stopped = true;
    shared.progress.notify_waiters();
}

/// Waits until there are frames to write (true) or a shutdown finds the buffer
/// empty (false).
async fn wait_for_frames(shared: &Shared) -> bool {
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let q = shared.lock();
            if !q.buffer.is_empty() {
                return true;
            }
            if q.closing {
                return false;
            }
        }
        notified.await;
    }
}
