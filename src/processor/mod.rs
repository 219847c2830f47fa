//! Log processors: how records reach the pipeline.
//!
//! [`DirectProcessor`] encodes each record on the thread that logs it and
//! stages the bytes ([`stage`]); [`BatchProcessor`] is the SDK's batch
//! processor around the exporter, with settings for busy services.

mod batch;
mod direct;
mod stage;

pub use batch::{
    BatchProcessor, RECOMMENDED_MAX_EXPORT_BATCH_SIZE, RECOMMENDED_MAX_QUEUE_SIZE,
    RECOMMENDED_SCHEDULED_DELAY,
};
pub use direct::DirectProcessor;

use std::future::Future;
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use crate::delivery::{FlushWatch, Flushed, Shared};
use crate::runtime::{on_io_thread, run_within};

/// Refuses a flush asked for on an exporter's I/O thread (this one's or
/// another's): by a callback running there (a `tracing` layer handed an
/// exporter's own diagnostics, a panic hook). That thread delivers records,
/// so waiting there would hold delivery up until the flush's time ran out.
fn refuse_flush_on_io_thread() -> OTelSdkResult {
    if on_io_thread() {
        return Err(OTelSdkError::InternalFailure(
            "not flushed: force_flush was called on an exporter's I/O thread (from a \
             callback running there, such as a tracing layer or a panic hook), which \
             delivers records and must not wait; flush from another thread"
                .to_string(),
        ));
    }
    Ok(())
}

/// Waits on the exporter's runtime `io`, at most `limit`, for the flush
/// `watch` follows to settle, its records being those numbered up to what
/// `target` yields; `None` when time ran out (or the runtime is gone, or
/// this is an I/O thread: see [`run_within`]). What is left to each
/// processor is how it learns the target.
fn wait_flushed(
    watch: FlushWatch,
    io: &tokio::runtime::Handle,
    limit: Duration,
    target: impl Future<Output = u64> + Send + 'static,
) -> Option<Flushed> {
    run_within(io, limit, async move { watch.wait(target.await).await })
}

/// What a `force_flush` that waited up to `timeout` for the records logged
/// before it says: where their flush stood when the wait ended (`None`: the
/// time ran out). `shutdown_drops` is the count of records a shutdown
/// dropped when the flush began (not those logged as their thread ended,
/// which no flush waits for): one that moved meanwhile may have taken
/// some of the flush's records before they were numbered (from a stage, or
/// a batch), which its watch cannot see, so the flush is not told they
/// were delivered.
fn flush_verdict(
    flushed: Option<Flushed>,
    shared: &Shared,
    timeout: Duration,
    shutdown_drops: u64,
) -> OTelSdkResult {
    let stats = || shared.counters().snapshot();
    let shutdown_dropped = shared.counters().dropped_by_shutdown() != shutdown_drops;
    match flushed {
        Some(Flushed::Delivered) if !shutdown_dropped => Ok(()),
        Some(Flushed::Lost(_)) => {
            let stats = stats();
            Err(OTelSdkError::InternalFailure(format!(
                "not flushed: records it waited for were dropped rather than delivered \
                 (so far {} for want of room in the retry buffer, {} refused by the \
                 endpoint, {} at a shutdown)",
                stats.dropped_buffer_full, stats.dropped_rejected, stats.dropped_at_shutdown
            )))
        }
        // The wait ended for a shutdown (which may have stopped the runtime
        // the wait ran on), or one dropped records meanwhile: the shutdown
        // reports.
        Some(Flushed::Delivered) => Err(shutdown_began()),
        Some(Flushed::Waiting) | None if shared.shutting_down() => Err(shutdown_began()),
        // The wait ended because delivery is failing: the records wait in
        // the retry buffer.
        Some(Flushed::Waiting) => {
            let stats = stats();
            Err(OTelSdkError::InternalFailure(format!(
                "not flushed: delivery is failing and {} record(s) wait in the retry \
                 buffer (last error: {})",
                stats.buffered_records,
                stats
                    .last_error
                    .map_or_else(|| "none".to_string(), |e| e.to_string())
            )))
        }
        None => Err(OTelSdkError::Timeout(timeout)),
    }
}

/// A flush's error when a shutdown began meanwhile.
fn shutdown_began() -> OTelSdkError {
    OTelSdkError::InternalFailure(
        "not flushed: a shutdown began meanwhile, and reports what it could not deliver"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;

    /// A record dropped as its thread ended, while the flush waited, is no
    /// shutdown's: the flush whose records were delivered succeeds; one
    /// dropped by a shutdown meanwhile fails it.
    #[test]
    fn only_a_shutdowns_drops_fail_a_delivered_flush() {
        let shared = Shared::new(1024, Counters::default(), "test".into());
        let counters = shared.counters().clone();
        let verdict = |before| {
            flush_verdict(
                Some(Flushed::Delivered),
                &shared,
                Duration::from_secs(1),
                before,
            )
        };
        let before = counters.dropped_by_shutdown();
        counters.add_dropped_at_thread_end(1);
        assert!(verdict(before).is_ok());
        assert_eq!(counters.snapshot().dropped_at_shutdown, 1);
        counters.add_dropped_at_shutdown(1);
        assert!(verdict(before).is_err());
        assert_eq!(counters.snapshot().dropped_at_shutdown, 2);
    }
}
