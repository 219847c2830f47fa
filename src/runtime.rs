//! The exporter's own I/O runtime.
//!
//! The SDK's batch processor calls `export` from a plain thread with no tokio
//! runtime, and the application's runtime may be a single thread blocked in
//! `shutdown()`. So the exporter owns a one-worker tokio runtime and runs all
//! network I/O there. Its threads enter OpenTelemetry's telemetry-suppressed
//! scope, so anything logged while exporting (by this crate, tokio or rustls)
//! is never exported again.

use std::cell::RefCell;
use std::sync::Mutex;

use opentelemetry::{Context, ContextGuard};
use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

thread_local! {
    static SUPPRESSED: RefCell<Option<ContextGuard>> = const { RefCell::new(None) };
}

/// Whether the calling thread is one of an exporter's I/O threads (those
/// that hold the suppression guard), which must never wait for room that
/// only they can make.
pub(crate) fn on_io_thread() -> bool {
    SUPPRESSED
        .try_with(|slot| slot.try_borrow().is_ok_and(|guard| guard.is_some()))
        .unwrap_or(false)
}

/// A runtime that is never dropped inside an async context: it is shut down in
/// the background, which is safe anywhere.
pub(crate) struct IoRuntime {
    handle: Handle,
    runtime: Mutex<Option<Runtime>>,
}

impl IoRuntime {
    pub(crate) fn start() -> Result<IoRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("djehouty-io")
            .enable_io()
            .enable_time()
            .on_thread_start(|| {
                let guard = Context::enter_telemetry_suppressed_scope();
                SUPPRESSED.with(|slot| *slot.borrow_mut() = Some(guard));
            })
            .on_thread_stop(|| {
                SUPPRESSED.with(|slot| drop(slot.borrow_mut().take()));
            })
            .build()
            .map_err(Error::Runtime)?;
        Ok(IoRuntime {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime without waiting for its tasks.
    pub(crate) fn shutdown(&self) {
        let runtime = match self.runtime.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for IoRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoRuntime").finish_non_exhaustive()
    }
}
