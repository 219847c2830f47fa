//! The exporter's own I/O runtime.
//!
//! The SDK's batch processor calls `export` from a plain thread with no tokio
//! runtime, and the application's runtime may be a single thread blocked in
//! `shutdown()`. So the exporter owns a one-worker tokio runtime and runs all
//! network I/O there. Its threads enter OpenTelemetry's telemetry-suppressed
//! scope, so anything logged while exporting (by this crate, tokio or rustls)
//! is never exported again.
//!
//! Also here: the two ways of waiting on it, [`run_within`] from a plain
//! thread and [`wait_for`] from a task.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::{Context, ContextGuard};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Notify;

use crate::error::{Error, Result};

thread_local! {
    static SUPPRESSED: RefCell<Option<ContextGuard>> = const { RefCell::new(None) };
    /// How many [`Suppressed::Muted`] are alive on this thread. Without a
    /// destructor, so readable even while the thread's locals are destroyed.
    static MUTED: Cell<u32> = const { Cell::new(0) };
}

/// What [`suppress_telemetry`] did, undone when dropped.
pub(crate) enum Suppressed {
    /// In OpenTelemetry's telemetry-suppressed scope.
    Scope {
        /// Leaves the scope when dropped.
        _guard: ContextGuard,
    },
    /// OpenTelemetry's context is gone: the exporter's diagnostics are
    /// muted on this thread instead ([`diagnostics_muted`]).
    Muted,
}

impl Drop for Suppressed {
    fn drop(&mut self) {
        if let Suppressed::Muted = self {
            MUTED.set(MUTED.get().saturating_sub(1));
        }
    }
}

/// Enters OpenTelemetry's telemetry-suppressed scope on the calling thread,
/// so that what the exporter logs meanwhile is not exported again.
///
/// In a thread-local destructor that runs after OpenTelemetry's context is
/// gone (a provider dropped there shuts down), entering panics, and a
/// panic there aborts the process. The context's crate has no fallible way
/// to ask, so the panic is caught (the panic hook still reports it: by
/// default a line on stderr; with `panic = "abort"` the process aborts
/// all the same), and the exporter's diagnostics are muted on the thread
/// instead: an SDK logger they reached would ask the same context.
pub(crate) fn suppress_telemetry() -> Suppressed {
    match std::panic::catch_unwind(Context::enter_telemetry_suppressed_scope) {
        Ok(guard) => Suppressed::Scope { _guard: guard },
        Err(_) => {
            MUTED.set(MUTED.get().saturating_add(1));
            Suppressed::Muted
        }
    }
}

/// Whether the exporter's diagnostics are muted on the calling thread (see
/// [`suppress_telemetry`]).
pub(crate) fn diagnostics_muted() -> bool {
    MUTED.get() > 0
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

/// Runs `work` on the runtime of `io` and waits for it on the calling
/// thread, at most `limit`; `None` when time ran out (or the runtime is
/// gone). A plain blocking wait: the work runs on the exporter's runtime, so
/// this never needs the caller's, which may be the very thread it blocks.
/// `None` at once on an I/O thread, this exporter's or another's (a
/// callback running there asked for a flush or shutdown): the work would
/// wait for the very thread it blocks, or hold up another's delivery.
pub(crate) fn run_within<T: Send + 'static>(
    io: &Handle,
    limit: Duration,
    work: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    if on_io_thread() {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    io.spawn(async move {
        if let Ok(value) = tokio::time::timeout(limit, work).await {
            let _ = tx.send(value);
        }
    });
    rx.recv_timeout(limit.saturating_add(Duration::from_millis(50)))
        .ok()
}

/// What a [`wait_for`] check found.
pub(crate) enum Check<T> {
    /// Done waiting, with this.
    Done(T),
    /// Not yet: check again when notified, or at this deadline if any.
    Wait(Option<Instant>),
}

/// Waits until `check` is done, checking again each time `notify` wakes its
/// waiters and at the deadline the check names. The wake-up is registered
/// before each check, so none is missed between a check and the wait.
pub(crate) async fn wait_for<T>(notify: &Notify, mut check: impl FnMut() -> Check<T>) -> T {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match check() {
            Check::Done(value) => return value,
            Check::Wait(None) => notified.await,
            Check::Wait(Some(deadline)) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
        }
    }
}
