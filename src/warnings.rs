//! Warnings raised while an exporter is built (a setting ignored, a CA
//! certificate skipped, certificates left unverified): told at once when
//! something listens to the OpenTelemetry internal logs, else kept, and told
//! by the exporter's I/O thread when the first records go out (or at
//! shutdown, if none came; a build that fails tells them before its error),
//! on stderr if nothing listens even then.
//!
//! The one-call set-ups build the exporter before the application installs
//! its `tracing` subscriber (the subscriber takes the layer they return), so
//! a warning told at `build()` would reach nobody.

use std::cell::RefCell;
use std::io::Write as _;

/// A warning kept for later: its event name and its fields.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) name: &'static str,
    pub(crate) fields: Vec<(&'static str, String)>,
}

thread_local! {
    /// The warnings kept by the build under way on this thread, if any.
    static KEEPING: RefCell<Option<Vec<Kept>>> = const { RefCell::new(None) };
}

/// Runs `build`, keeping the warnings it raises while nothing listens;
/// returns them with its result. Within another `keeping` (a set-up that
/// builds an exporter), the outer one keeps them.
pub(crate) fn keeping<R>(build: impl FnOnce() -> R) -> (R, Vec<Kept>) {
    // Not kept by a build in a thread-local destructor, after this one's.
    let outer = KEEPING.try_with(|keeping| {
        let mut keeping = keeping.borrow_mut();
        let outer = keeping.is_some();
        if !outer {
            *keeping = Some(Vec::new());
        }
        outer
    });
    if outer != Ok(false) {
        return (build(), Vec::new());
    }
    /// Stops keeping on this thread, even if `build` panics.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = KEEPING.try_with(|keeping| keeping.borrow_mut().take());
        }
    }
    let stop = Stop;
    let result = build();
    let kept = KEEPING
        .try_with(|keeping| keeping.borrow_mut().take())
        .ok()
        .flatten()
        .unwrap_or_default();
    drop(stop);
    (result, kept)
}

/// Whether a warning told now reaches a subscriber of the internal logs.
pub(crate) fn listening() -> bool {
    #[cfg(feature = "internal-logs")]
    {
        tracing_core::dispatcher::get_default(|dispatch| {
            !dispatch.is::<tracing_core::subscriber::NoSubscriber>()
        })
    }
    #[cfg(not(feature = "internal-logs"))]
    {
        // Nothing is told at all: nothing to keep either.
        true
    }
}

/// Keeps a warning for later, if a build on this thread keeps them; returns
/// whether it did.
pub(crate) fn keep(name: &'static str, fields: Vec<(&'static str, String)>) -> bool {
    KEEPING
        .try_with(|keeping| match keeping.borrow_mut().as_mut() {
            Some(kept) => {
                kept.push(Kept { name, fields });
                true
            }
            None => false,
        })
        .unwrap_or(false)
}

/// Tells the kept warnings (unless diagnostics are muted on this thread),
/// each as `djehouty.WarningAtBuild` naming the original event; when nothing
/// listens to the internal logs even now (an
/// application that logs through `log` alone, say), as one line each on
/// stderr, as a lossy shutdown is told, rather than lose a warning such as
/// certificates left unverified.
pub(crate) fn tell(kept: Vec<Kept>) {
    if crate::runtime::diagnostics_muted() {
        return;
    }
    let heard = listening();
    for warning in kept {
        let details = warning
            .fields
            .iter()
            .map(|(field, value)| format!("{field}: {value}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !heard {
            // A closed stderr is no reason to fail.
            let _ = writeln!(
                std::io::stderr().lock(),
                "djehouty: warning raised while building the exporter: {}: {details}",
                warning.name
            );
            continue;
        }
        opentelemetry::otel_warn!(
            name: "djehouty.WarningAtBuild",
            warning = warning.name,
            details = details.as_str(),
            message = "raised while the exporter was built, when nothing listened to the \
                       internal logs yet"
        );
    }
}

/// `otel_warn!` for a warning raised while an exporter is built: told now
/// if something listens, else kept (see the module).
macro_rules! warn_at_build {
    (name: $name:literal, $($field:ident = $value:expr),+ $(,)?) => {{
        if $crate::warnings::listening()
            || !$crate::warnings::keep(
                $name,
                ::std::vec![$((::std::stringify!($field), ($value).to_string())),+],
            )
        {
            opentelemetry::otel_warn!(name: $name, $($field = $value),+);
        }
    }};
}
pub(crate) use warn_at_build;

#[cfg(test)]
mod tests {
    use super::*;

    /// Kept only within `keeping`, by the outermost one, and not after it.
    #[test]
    fn warnings_are_kept_by_the_outermost_build() {
        assert!(!keep("djehouty.Outside", Vec::new()));
        let (((), inner), outer) = keeping(|| {
            assert!(keep(
                "djehouty.First",
                vec![("endpoint", "tcp://h:1".into())]
            ));
            keeping(|| {
                assert!(keep("djehouty.Second", Vec::new()));
            })
        });
        assert!(inner.is_empty());
        let names: Vec<_> = outer.iter().map(|kept| kept.name).collect();
        assert_eq!(names, ["djehouty.First", "djehouty.Second"]);
        assert_eq!(outer[0].fields, [("endpoint", "tcp://h:1".to_string())]);
        assert!(!keep("djehouty.After", Vec::new()));
        // A build that panics stops keeping too.
        let _ = std::panic::catch_unwind(|| keeping(|| panic!("build failed")));
        assert!(!keep("djehouty.AfterPanic", Vec::new()));
    }
}
