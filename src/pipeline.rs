//! The pipeline core shared by [`Exporter`](crate::Exporter) and
//! [`DirectProcessor`](crate::DirectProcessor): the mapper, the packing for
//! the endpoint, the retry buffer with its delivery task, and the I/O runtime
//! they run on. It is not generic: the format is chosen once, as the
//! [`PackFn`] it holds.
//!
//! `export` encodes a whole batch on the calling thread into one reused
//! buffer and appends the frames to the retry buffer; the delivery task
//! writes them. While the endpoint is healthy, `export` waits (within its
//! time budget) until its records are acknowledged, so the SDK's
//! `force_flush` then means "delivered"; while it is failing, or once a
//! shutdown began (whose drain writes all that waits back to back),
//! `export` returns once its records are buffered.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};
use opentelemetry_sdk::Resource;

use crate::config::{Config, Endpoint, Framing};
use crate::delivery::{self, Shared};
use crate::encode::{Format, PackFn, PackScratch, Packing};
use crate::error::{Error, Result};
use crate::frames::Frames;
use crate::mapping::{Mapper, MAX_HOST_BYTES};
use crate::runtime::{diagnostics_muted, on_io_thread, run_within, suppress_telemetry, IoRuntime};
use crate::stats::Counters;
use crate::transport::Transport;

/// Buffers larger than this are not kept between exports.
const KEEP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// The most a shutdown that gave up on the delivery task waits, beyond its
/// time, for the task to be dropped (and its connection reset) as the
/// runtime stops in the background.
const TASK_GONE_WAIT: Duration = Duration::from_millis(100);

/// The encoding buffer reused between exports: frames back to back, and their lengths.
#[derive(Default)]
struct Scratch {
    frames: Frames,
    pack: PackScratch,
}

/// Records mapped, encoded and handed to delivery; see the module docs.
pub(crate) struct Pipeline {
    format: &'static str,
    mapper: Mapper,
    framing: Framing,
    packing: Packing,
    pack: PackFn,
    endpoint: Endpoint,
    export_timeout: Duration,
    write_timeout: Duration,
    scratch: Mutex<Scratch>,
    shared: Arc<Shared>,
    counters: Counters,
    runtime: IoRuntime,
    shut_down: AtomicBool,
}

/// What a record needs beside the static extras and the host, at the least:
/// the version, time and level, a short message cut to a few words, the
/// marker and the JSON or LTSV around them.
const RECORD_ROOM: usize = 512;

/// Refuses static extras that would be cut (longer than the field limit),
/// or that leave a record less than half its largest size, or less than
/// [`RECORD_ROOM`] beside the longest host name: they are sent whole with
/// every record, which must still fit. Names the sizes, never the values.
fn check_extras(config: &Config, mapper: &Mapper, env_prefix: &str) -> Result<()> {
    let what = || {
        format!(
            "the static fields (`with_extra`, the Logs Data Platform token, \
             {env_prefix}STATIC_FIELDS)"
        )
    };
    let max_field = mapper.max_field_bytes();
    for (key, value) in &config.mapping.extras {
        let len = Mapper::static_text_len(value);
        if len > max_field {
            return Err(Error::InvalidConfig(format!(
                "{}: {key:?} is {len} bytes long, more than the field limit of {max_field} \
                 bytes: shorten it or raise `with_max_field_size` (a field is never longer \
                 than `with_max_frame_size` either)",
                what()
            )));
        }
    }
    let max_record = config
        .packing()
        .max_record_bytes()
        .min(config.mapping.max_frame_bytes);
    // The host may change with the resource, to one of up to
    // `MAX_HOST_BYTES` as written.
    let host = MAX_HOST_BYTES;
    let room = (max_record / 2).min(max_record.saturating_sub(host + RECORD_ROOM));
    let extras = mapper.extras_bytes();
    if extras > room {
        return Err(Error::InvalidConfig(format!(
            "{} take {extras} bytes encoded, more than the {room} bytes a record of at most \
             {max_record} bytes can spare: shorten them or raise `with_max_frame_size`",
            what()
        )));
    }
    Ok(())
}

impl Pipeline {
    /// Starts the I/O runtime and the delivery task for `config`, encoding
    /// records as `F`.
    pub(crate) fn start<F: Format>(config: Config) -> Result<Pipeline> {
        let mut mapper = Mapper::new(&config.mapping);
        let codec = F::CODEC;
        mapper.pre_encode(codec.encode_field, codec.encode_name, codec.encode_host);
        check_extras(&config, &mapper, F::ENV_PREFIX)?;
        let counters = Counters::default();
        let transport = Transport::new(&config, counters.clone())?;
        let runtime = IoRuntime::start()?;
        let shared = Shared::new(
            config.buffer_bytes,
            counters.clone(),
            config.endpoint.to_string(),
        );
        runtime
            .handle()
            .spawn(delivery::run(Arc::clone(&shared), transport));
        Ok(Pipeline {
            format: F::NAME,
            pack: codec.pack,
            mapper,
            framing: config.framing,
            packing: config.packing(),
            endpoint: config.endpoint,
            export_timeout: config.timeouts.export,
            write_timeout: config.timeouts.write,
            scratch: Mutex::new(Scratch::default()),
            shared,
            counters,
            runtime,
            shut_down: AtomicBool::new(false),
        })
    }

    /// The endpoint records are sent to.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The counters of this pipeline.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The most bytes one encoded record takes in the retry buffer.
    pub(crate) fn max_record_bytes(&self) -> usize {
        self.packing.max_record_bytes()
    }

    /// The retry buffer and what delivery shares with it.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Encodes `batch` as `export` would send it, appending the bytes to
    /// `out`; returns how many records were cut.
    pub(crate) fn encode_batch(&self, batch: &LogBatch<'_>, out: &mut Vec<u8>) -> u64 {
        let mut pack = PackScratch::default();
        let cut = batch
            .iter()
            .filter(|(record, scope)| self.encode_record(record, scope, out, &mut pack))
            .count();
        cut as u64
    }

    /// Encodes a batch into `frames`; returns how many records were cut.
    fn encode_into(
        &self,
        batch: &LogBatch<'_>,
        frames: &mut Frames,
        pack: &mut PackScratch,
    ) -> u64 {
        let cut = batch
            .iter()
            .filter(|(record, scope)| {
                frames.push_with(|out| self.encode_record(record, scope, out, pack))
            })
            .count();
        cut as u64
    }

    /// Maps and packs one record into `out`; returns whether it was cut.
    pub(crate) fn encode_record(
        &self,
        record: &SdkLogRecord,
        scope: &InstrumentationScope,
        out: &mut Vec<u8>,
        pack: &mut PackScratch,
    ) -> bool {
        (self.pack)(&self.packing, &self.mapper, record, scope, out, pack)
    }

    /// The exporter's I/O runtime.
    pub(crate) fn io(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// The time an export may wait for room and for delivery.
    pub(crate) fn export_timeout(&self) -> Duration {
        self.export_timeout
    }

    /// How long a write may make no progress before the connection is
    /// replaced.
    pub(crate) fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    fn take_scratch(&self) -> Scratch {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let mut scratch = std::mem::take(&mut *guard);
        scratch.frames.clear();
        scratch
    }

    fn return_scratch(&self, scratch: Scratch) {
        if scratch.frames.capacity() <= KEEP_BUFFER_BYTES {
            *self.scratch.lock().unwrap_or_else(|p| p.into_inner()) = scratch;
        }
    }

    /// Encodes `batch` and hands it to the retry buffer (see [`crate::Exporter`]).
    pub(crate) async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            // Taken by nobody: counted, as every record is.
            self.shared.drop_in_shutdown(batch.iter().count() as u64);
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if self.shared.past_deadline() {
            // A shutdown's time is up: encoding these would only delay it.
            self.shared.drop_in_shutdown(batch.iter().count() as u64);
            return Ok(());
        }
        // Once per batch: whatever the encoding might log (nothing, see
        // tests/logging_call.rs) does not come back through the SDK's worker.
        let suppressed = suppress_telemetry();
        let mut scratch = self.take_scratch();
        let Scratch { frames, pack } = &mut scratch;
        let truncated = self.encode_into(&batch, frames, pack);
        if truncated > 0 {
            self.counters.add_truncated(truncated);
        }
        drop(suppressed);
        if scratch.frames.is_empty() {
            self.return_scratch(scratch);
            return Ok(());
        }
        // In hand from here on: a shutdown that ends before the task below
        // settles them counts them, whether it ran or not.
        if !self.shared.hold(scratch.frames.len()) {
            // The shutdown ended meanwhile: counted as dropped at shutdown.
            self.return_scratch(scratch);
            return Err(OTelSdkError::AlreadyShutdown);
        }
        // Buffer and wait on our runtime (the caller may have none): the
        // JoinHandle is runtime-agnostic. While the endpoint is healthy the
        // export waits for room in the buffer, then for its records to be
        // written, within its budget; records not written in time stay
        // buffered, so this export is not a failure either way.
        let shared = Arc::clone(&self.shared);
        let budget = self.shared.within_deadline(self.export_timeout);
        let now = std::time::Instant::now();
        let until = now
            .checked_add(budget)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        let task = self.runtime.handle().spawn(async move {
            let target = shared.push(&mut scratch.frames, until, usize::MAX).await;
            let left = until.saturating_duration_since(std::time::Instant::now());
            let _ = tokio::time::timeout(left, shared.wait(target)).await;
            scratch
        });
        if let Ok(scratch) = task.await {
            self.return_scratch(scratch);
        }
        Ok(())
    }

    /// Drains the retry buffer within `timeout`, or until the deadline a
    /// processor's shutdown set, then stops the I/O runtime; reports what
    /// was not delivered.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _suppressed = suppress_telemetry();
        // The deadline is the caller's: it rules. (The SDK's batch
        // processor shuts its exporter down with 5 s, whatever time its
        // own caller gave.)
        let budget = self.shared.until_deadline().unwrap_or(timeout);
        self.shared.close();
        let shared = Arc::clone(&self.shared);
        let stopped = run_within(self.runtime.handle(), budget, async move {
            shared.stopped().await;
        })
        .is_some();
        if !stopped {
            // Given up: the task, dropped as its runtime stops, resets a
            // connection whose frames are about to be reported undelivered.
            self.shared.give_up();
        }
        self.runtime.shutdown();
        // In the background: the task's end (what its peer acknowledged
        // settled, the connection reset) is waited for, briefly, so that
        // the report below is exact and nothing it reports undelivered goes
        // out once this returns. (Not on an I/O thread: on this exporter's,
        // the task ends only after this returns.)
        if !stopped && !on_io_thread() {
            self.shared.wait_task_gone(TASK_GONE_WAIT);
        }
        let Some(left) = self.shared.finish_shutdown(budget) else {
            return Ok(());
        };
        let message = left.to_string();
        if !diagnostics_muted() {
            opentelemetry::otel_warn!(name: "djehouty.UndeliveredAtShutdown", message = message.clone());
        }
        Err(OTelSdkError::InternalFailure(message))
    }

    /// Sets the resource whose attributes every record carries.
    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        self.mapper.set_resource(resource);
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.runtime.shutdown();
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("format", &self.format)
            .field("endpoint", &self.endpoint.to_string())
            .field("framing", &self.framing)
            .field("host", &self.mapper.host())
            .field("shut_down", &self.shut_down.load(Ordering::Relaxed))
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}
