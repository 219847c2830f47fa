//! Switches for measuring what delivery's safeguards cost, compiled in only
//! with `RUSTFLAGS="--cfg djehouty_measure"`; a normal build has none of
//! them. docs/performance.md ("Memory, and what tracking acknowledgements
//! costs") has the commands and the figures.
//!
//! * `DJEHOUTY_MEASURE_NO_ACKS=1`: every byte handed to the kernel counts as
//!   acknowledged at once, without asking the kernel: frames still go
//!   through the bookkeeping, but are let go right after their write, as if
//!   the peer acknowledged everything at once.
//! * `DJEHOUTY_MEASURE_SNDBUF=N`: each TCP socket's send buffer is capped
//!   at `N` bytes (`SO_SNDBUF`; Linux doubles it and stops growing it).

use std::sync::OnceLock;

/// Whether every byte written counts as acknowledged at once.
pub(crate) fn no_acks() -> bool {
    static NO_ACKS: OnceLock<bool> = OnceLock::new();
    *NO_ACKS.get_or_init(|| std::env::var("DJEHOUTY_MEASURE_NO_ACKS").is_ok_and(|v| v == "1"))
}

/// The send buffer to ask for, if any.
pub(crate) fn send_buffer() -> Option<usize> {
    static SNDBUF: OnceLock<Option<usize>> = OnceLock::new();
    *SNDBUF.get_or_init(|| {
        std::env::var("DJEHOUTY_MEASURE_SNDBUF")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}
