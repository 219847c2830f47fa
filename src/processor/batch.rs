//! [`BatchProcessor`]: the SDK's batch processor, tuned for this exporter, and
//! honest at shutdown.
//!
//! The SDK's `BatchLogProcessor` calls the exporter's `shutdown()` with its own
//! fixed 5 s and discards its result, so with `with_batch_exporter` a shutdown
//! can neither be held to the caller's timeout nor report the records it could
//! not deliver. This thin wrapper hands the caller's deadline to the exporter
//! first and returns the exporter's verdict afterwards.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{
    BatchConfig, BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, LogProcessor,
    SdkLogRecord, OTEL_BLRP_MAX_EXPORT_BATCH_SIZE, OTEL_BLRP_MAX_QUEUE_SIZE,
    OTEL_BLRP_SCHEDULE_DELAY,
};
use opentelemetry_sdk::Resource;

use super::{flush_verdict, refuse_flush_on_io_thread, wait_flushed};
use crate::delivery::{Flushed, Shared};
use crate::encode::Format;
use crate::exporter::Exporter;
use crate::runtime::{on_io_thread, suppress_telemetry};

/// Records the SDK may hold between two exports.
pub const RECOMMENDED_MAX_QUEUE_SIZE: usize = 65_536;
/// Records per export.
pub const RECOMMENDED_MAX_EXPORT_BATCH_SIZE: usize = 1_024;
/// Longest wait before a partial batch is exported.
pub const RECOMMENDED_SCHEDULED_DELAY: Duration = Duration::from_millis(200);
/// Part of a shutdown's time kept back so the exporter answers before the
/// SDK stops waiting for it: at most a quarter of that time (see
/// [`delivery_budget`]).
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(150);

/// The time a shutdown given `timeout` leaves for delivery: `timeout` less
/// the margin, which a short timeout does not spend whole (one no longer
/// than the margin would otherwise drop the SDK's whole queue untried).
fn delivery_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub(SHUTDOWN_MARGIN.min(timeout / 4))
}

/// The SDK's batch processor around a djehouty exporter, with settings for busy
/// services and a shutdown that reports undelivered records.
///
/// The SDK's queue drops the records it has no room for, telling only its
/// own internal logs. This processor counts them, in
/// [`Stats::dropped_buffer_full`](crate::Stats::dropped_buffer_full), when
/// it learns of them: at a flush (those logged before it), which then
/// fails, and as the SDK's thread ends at the shutdown, which reports them
/// if that thread ended within its time.
///
/// The recommended settings ([`BatchProcessor::recommended_config`]): a queue of
/// [65,536](RECOMMENDED_MAX_QUEUE_SIZE) records (the SDK's 2,048 drops records
/// in bursts a busy service reaches easily), batches of
/// [1,024](RECOMMENDED_MAX_EXPORT_BATCH_SIZE), at most
/// [200 ms](RECOMMENDED_SCHEDULED_DELAY) before a partial batch goes out. The
/// SDK's variables `OTEL_BLRP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`
/// and `OTEL_BLRP_SCHEDULE_DELAY` (milliseconds) win over them when set to a
/// whole number.
///
/// ```no_run
/// use opentelemetry_sdk::logs::SdkLoggerProvider;
///
/// let exporter = djehouty::GelfExporter::builder()
///     .with_endpoint("tls://graylog.example.com:12202")
///     .build()?;
/// let provider = SdkLoggerProvider::builder()
///     .with_log_processor(djehouty::BatchProcessor::new(exporter))
///     .build();
/// // ... log ...
/// if let Err(error) = provider.shutdown() {
///     // e.g. "12 record(s) were not delivered to tls://graylog.example.com:12202
///     // in the 4.85s the shutdown left for it: 12 (6144 bytes) still waiting
///     // when time ran out (last error: ...); a longer timeout or a larger
///     // retry buffer may help"
///     eprintln!("logs lost at exit: {error}");
/// }
/// # Ok::<(), djehouty::Error>(())
/// ```
pub struct BatchProcessor {
    inner: BatchLogProcessor,
    shared: Arc<Shared>,
    /// The exporter's I/O runtime, where a flush waits.
    io: tokio::runtime::Handle,
    /// How long a flush waits for delivery once the SDK exported its queue.
    flush_timeout: Duration,
    /// A shutdown was asked for: a later one (called directly, or from
    /// another thread meanwhile) must not touch the first one's deadline
    /// nor return its report.
    shut_down: AtomicBool,
    /// What the SDK's queue dropped: see [`Intake`].
    intake: Arc<Intake>,
}

/// The records the SDK's queue took in and handed on, to learn how many
/// it dropped (it tells only its own logs). Every record logged is, in
/// turn, in the queue, handed to the exporter, or dropped: once the SDK
/// has exported its queue (a flush, a shutdown), the records logged before
/// that were not handed on were dropped.
#[derive(Default)]
struct Intake {
    /// Records whose `emit` returned (so each is in the queue, or dropped).
    emitted: AtomicU64,
    /// Records the SDK handed to the exporter, counted by [`Counted`].
    handed: AtomicU64,
    /// Of the records dropped, those counted so far.
    counted: AtomicU64,
    /// A shutdown began: records logged from then on are counted as
    /// dropped at shutdown, not handed to the SDK, which would export
    /// them only if its last export had not begun, and drop the others
    /// without a word. (One logged as the flag is set may still reach the
    /// SDK; if it comes too late for its last export, it is counted as a
    /// drop of the queue, or, if later still, not at all.)
    closed: AtomicBool,
}

impl Intake {
    /// Counts as dropped for want of room the records, of the first
    /// `emitted` logged, that the SDK did not hand to the exporter, when
    /// the SDK has exported every one of them it kept; returns how many
    /// were not counted before. Other threads' records handed meanwhile
    /// make it count fewer, never more: those are counted at a later call.
    fn count_drops(&self, emitted: u64, shared: &Shared) -> u64 {
        let dropped = emitted.saturating_sub(self.handed.load(Ordering::Acquire));
        let before = self.counted.fetch_max(dropped, Ordering::AcqRel);
        let new = dropped.saturating_sub(before);
        if new > 0 {
            shared.counters().add_dropped_buffer_full(new);
        }
        new
    }
}

/// What the flush or shutdown that counted `dropped` records of the SDK's
/// queue says of them.
fn queue_drops(dropped: u64) -> String {
    format!(
        "{dropped} record(s) were dropped by the SDK's batch queue, full, before reaching \
         the exporter (counted in dropped_buffer_full): raise its max_queue_size, or use \
         DirectProcessor, whose logging call waits for room while the endpoint is healthy"
    )
}

/// The exporter, counting the records the SDK hands it (see [`Intake`]).
struct Counted<F: Format> {
    exporter: Exporter<F>,
    intake: Arc<Intake>,
    shared: Arc<Shared>,
}

impl<F: Format> fmt::Debug for Counted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.exporter.fmt(f)
    }
}

impl<F: Format> LogExporter for Counted<F> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        (self.intake.handed).fetch_add(batch.iter().count() as u64, Ordering::AcqRel);
        self.exporter.export(batch).await
    }

    /// Called by the SDK's thread once it exported its queue for the last
    /// time: what it did not hand on was dropped. Counted here rather than
    /// by the processor's shutdown, which may stop waiting before.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let emitted = self.intake.emitted.load(Ordering::SeqCst);
        self.intake.count_drops(emitted, &self.shared);
        self.exporter.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.exporter.set_resource(resource);
    }
}

impl BatchProcessor {
    /// Wraps `exporter` in a batch processor with the recommended settings.
    pub fn new<F: Format>(exporter: Exporter<F>) -> BatchProcessor {
        BatchProcessor::with_config(exporter, BatchProcessor::recommended_config())
    }

    /// Wraps `exporter` in a batch processor with the given settings.
    ///
    /// ```no_run
    /// use opentelemetry_sdk::logs::BatchConfigBuilder;
    ///
    /// let exporter = djehouty::LtsvExporter::builder()
    ///     .with_endpoint("tcp://127.0.0.1:5555")
    ///     .build()?;
    /// let config = BatchConfigBuilder::default().with_max_queue_size(1_000_000).build();
    /// let processor = djehouty::BatchProcessor::with_config(exporter, config);
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn with_config<F: Format>(exporter: Exporter<F>, config: BatchConfig) -> BatchProcessor {
        let shared = Arc::clone(exporter.pipeline().shared());
        let io = exporter.pipeline().io().clone();
        let flush_timeout = exporter.pipeline().export_timeout();
        let intake = Arc::new(Intake::default());
        let counted = Counted {
            exporter,
            intake: Arc::clone(&intake),
            shared: Arc::clone(&shared),
        };
        let inner = BatchLogProcessor::builder(counted)
            .with_batch_config(config)
            .build();
        BatchProcessor {
            inner,
            shared,
            io,
            flush_timeout,
            shut_down: AtomicBool::new(false),
            intake,
        }
    }

    /// The recommended settings, except where an `OTEL_BLRP_*` variable
    /// the SDK reads is set: those win.
    pub fn recommended_config() -> BatchConfig {
        // The SDK's builder reads the variables; only those it could parse
        // (a whole number) are its to decide.
        let set = |name: &str| {
            std::env::var(name)
                .ok()
                .is_some_and(|v| v.parse::<u64>().is_ok())
        };
        let mut config = BatchConfigBuilder::default();
        if !set(OTEL_BLRP_MAX_QUEUE_SIZE) {
            config = config.with_max_queue_size(RECOMMENDED_MAX_QUEUE_SIZE);
        }
        if !set(OTEL_BLRP_MAX_EXPORT_BATCH_SIZE) {
            config = config.with_max_export_batch_size(RECOMMENDED_MAX_EXPORT_BATCH_SIZE);
        }
        if !set(OTEL_BLRP_SCHEDULE_DELAY) {
            config = config.with_scheduled_delay(RECOMMENDED_SCHEDULED_DELAY);
        }
        config.build()
    }
}

impl LogProcessor for BatchProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if self.intake.closed.load(Ordering::SeqCst) {
            // As `DirectProcessor` does once its shutdown began: in the
            // shutdown's report, if it is still under way.
            self.shared.drop_in_shutdown(1);
            return;
        }
        self.inner.emit(record, scope);
        // Once the SDK took the record in, or dropped it.
        self.intake.emitted.fetch_add(1, Ordering::SeqCst);
    }

    /// Has the SDK export its queue (the SDK waits up to its own fixed 5 s
    /// for that), then waits until every record logged before was
    /// acknowledged, as [`DirectProcessor`](crate::DirectProcessor)'s does,
    /// for what is left of the export timeout. (The SDK's own `force_flush`
    /// succeeds once its exports returned, which they do at once while
    /// delivery is failing, with the records still buffered.) Fails when
    /// delivery is failing, or when some of them were dropped (by the SDK's
    /// queue too: see [`BatchProcessor`]).
    fn force_flush(&self) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        // The SDK's thread would export onto this very thread: refused.
        refuse_flush_on_io_thread()?;
        let started = Instant::now();
        let shutdown_drops = self.shared.counters().dropped_by_shutdown();
        // Watching first: a record pending now and dropped later fails it.
        let watch = self.shared.watch_flush();
        let emitted = self.intake.emitted.load(Ordering::SeqCst);
        self.inner.force_flush()?;
        let queue_dropped = self.intake.count_drops(emitted, &self.shared);
        let target = self.shared.accepted();
        let left = self.flush_timeout.saturating_sub(started.elapsed());
        let flushed = match watch.flushed(target) {
            Flushed::Waiting if !left.is_zero() => {
                wait_flushed(watch, &self.io, left, async move { target })
            }
            Flushed::Waiting => None,
            flushed => Some(flushed),
        };
        match flush_verdict(flushed, &self.shared, self.flush_timeout, shutdown_drops) {
            Ok(()) if queue_dropped > 0 => Err(OTelSdkError::InternalFailure(format!(
                "not flushed: {}",
                queue_drops(queue_dropped)
            ))),
            verdict => verdict,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        // The SDK's own diagnostics of this call do not come back through a
        // bridge as records, which the shutdown would count as dropped.
        let _suppressed = suppress_telemetry();
        // On an I/O thread (a callback running there), which the SDK's
        // thread would export onto, nothing can be delivered: the deadline
        // is now, so that the exports drop their records at once and the
        // SDK's thread answers, rather than hold the thread for `timeout`.
        // The SDK's thread is not waited for either: an export it is in
        // the middle of waits for this very thread. It goes on in the
        // background, dropping what it has.
        let on_io = on_io_thread();
        let (budget, wait) = if on_io {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (delivery_budget(timeout), timeout)
        };
        if let Some(deadline) = Instant::now().checked_add(budget) {
            self.shared.set_deadline(deadline);
        }
        self.intake.closed.store(true, Ordering::SeqCst);
        let counted = self.intake.counted.load(Ordering::Acquire);
        let result = self.inner.shutdown_with_timeout(wait);
        // Those the SDK's thread counted as it ended (see `Counted`), if
        // it did in time.
        let queue_dropped = (self.intake.counted.load(Ordering::Acquire)).saturating_sub(counted);
        match (self.shared.undelivered(), result) {
            (Some(left), _) if queue_dropped > 0 => Err(OTelSdkError::InternalFailure(format!(
                "{left}; and {}",
                queue_drops(queue_dropped)
            ))),
            (Some(left), _) => Err(OTelSdkError::InternalFailure(left.to_string())),
            (None, Err(OTelSdkError::Timeout(_))) if on_io => Err(OTelSdkError::InternalFailure(
                "the shutdown was asked for on an exporter's I/O thread, which cannot \
                     wait for it: it goes on in the background, and the records not \
                     delivered yet are dropped (counted in dropped_at_shutdown)"
                    .to_string(),
            )),
            (None, Err(OTelSdkError::Timeout(_))) => {
                // The SDK's thread was still exporting its queue when time ran
                // out; it goes on in the background.
                let stats = self.shared.counters().snapshot();
                let queue = match queue_dropped {
                    0 => String::new(),
                    dropped => format!("; and {}", queue_drops(dropped)),
                };
                Err(OTelSdkError::InternalFailure(format!(
                    "the shutdown did not finish within {timeout:?}: the batch processor was \
                     still handing records to the exporter ({} record(s), {} bytes, were \
                     waiting in the retry buffer); records not delivered yet may be lost{queue}",
                    stats.buffered_records, stats.buffered_bytes
                )))
            }
            (None, Err(other)) => {
                // The SDK refused the shutdown (the flag above keeps it from
                // being a second one; its control channel may be full): the
                // exporter goes on as before, and may be shut down again.
                // Records its deadline made exports drop meanwhile are told
                // here, or nowhere.
                if !matches!(other, OTelSdkError::AlreadyShutdown) {
                    self.shut_down.store(false, Ordering::Release);
                    self.intake.closed.store(false, Ordering::SeqCst);
                }
                match self.shared.clear_deadline() {
                    0 => Err(other),
                    dropped => Err(OTelSdkError::InternalFailure(format!(
                        "{other}; meanwhile {dropped} record(s) were dropped while the \
                         shutdown's deadline was set (retry buffer full, or arriving after \
                         it; counted in the exporter's stats)"
                    ))),
                }
            }
            (None, Ok(())) if queue_dropped > 0 => {
                Err(OTelSdkError::InternalFailure(queue_drops(queue_dropped)))
            }
            (None, Ok(())) => Ok(()),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::run_within;

    /// A shutdown leaves time for delivery whatever its timeout, and keeps
    /// back at most the margin.
    #[test]
    fn a_short_shutdown_still_leaves_time_for_delivery() {
        let ms = Duration::from_millis;
        for (timeout, budget) in [
            (ms(0), ms(0)),
            (ms(100), ms(75)),
            (ms(150), ms(112)),
            (ms(600), ms(450)),
            (Duration::from_secs(5), ms(4_850)),
        ] {
            let left = delivery_budget(timeout);
            assert_eq!(left.as_millis(), budget.as_millis(), "{timeout:?}");
        }
    }

    /// A batch processor with the recommended settings, exporting to a
    /// loopback listener (kept with it, never accepting).
    fn to_loopback() -> (std::net::TcpListener, BatchProcessor) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let exporter = crate::GelfExporter::builder()
            .with_endpoint(format!("tcp://127.0.0.1:{port}"))
            .build()
            .expect("build");
        (listener, BatchProcessor::new(exporter))
    }

    /// A second shutdown after one that delivered everything is refused,
    /// and so is a flush.
    #[test]
    fn a_refused_shutdown_says_so() {
        let (_listener, processor) = to_loopback();
        let first = processor.shutdown_with_timeout(Duration::from_secs(5));
        assert!(first.is_ok(), "{first:?}");
        let again = processor.shutdown_with_timeout(Duration::from_secs(5));
        assert!(
            matches!(again, Err(OTelSdkError::AlreadyShutdown)),
            "{again:?}"
        );
        let flushed = processor.force_flush();
        assert!(
            matches!(flushed, Err(OTelSdkError::AlreadyShutdown)),
            "{flushed:?}"
        );
    }

    /// A second shutdown is refused as such, even when the first reported
    /// losses (not returned again), and leaves the first's deadline alone.
    #[test]
    fn a_second_shutdown_is_refused_without_the_first_ones_report() {
        use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
        // A port nothing listens on: the record cannot be delivered.
        let addr = djehouty_testkit::unused_port();
        let exporter = crate::GelfExporter::builder()
            .with_endpoint(format!("tcp://{addr}"))
            .build()
            .expect("build");
        let processor = BatchProcessor::new(exporter);
        let sdk = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
        let mut record = sdk.logger("test").create_log_record();
        record.set_body("never delivered".into());
        processor.emit(&mut record, &InstrumentationScope::builder("test").build());
        let first = processor.shutdown_with_timeout(Duration::from_millis(400));
        assert!(
            matches!(&first, Err(OTelSdkError::InternalFailure(text)) if text.contains("record(s) were not delivered to")),
            "{first:?}"
        );
        let again = processor.shutdown_with_timeout(Duration::from_secs(5));
        assert!(
            matches!(again, Err(OTelSdkError::AlreadyShutdown)),
            "{again:?}"
        );
    }

    /// A flush during which a shutdown dropped records before they were
    /// numbered (here, the SDK's export of them, past the shutdown's
    /// deadline) is not told they were delivered.
    #[test]
    fn a_flush_fails_when_a_shutdown_dropped_its_records() {
        use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
        let (_listener, processor) = to_loopback();
        let sdk = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
        let mut record = sdk.logger("test").create_log_record();
        record.set_body("dropped by the shutdown".into());
        processor.emit(&mut record, &InstrumentationScope::builder("test").build());
        // What a shutdown does first; its deadline has passed.
        processor.shared.set_deadline(Instant::now());
        let flushed = processor.force_flush();
        assert!(
            matches!(&flushed, Err(OTelSdkError::InternalFailure(text)) if text.contains("shutdown")),
            "{flushed:?}"
        );
        assert_eq!(
            processor.shared.counters().snapshot().dropped_at_shutdown,
            1
        );
    }

    /// A shutdown asked for on the I/O thread (by a callback running
    /// there) ends at once: the SDK's thread, which exports onto that
    /// thread, must not hold it for the shutdown's whole time.
    #[test]
    fn a_shutdown_on_the_io_thread_ends_at_once() {
        let (_listener, processor) = to_loopback();
        let processor = Arc::new(processor);
        let on_io = Arc::clone(&processor);
        let shut = run_within(&processor.io, Duration::from_secs(1), async move {
            on_io.shutdown_with_timeout(Duration::from_secs(60))
        });
        assert!(shut.is_some(), "the shutdown held the I/O thread");
    }
}
