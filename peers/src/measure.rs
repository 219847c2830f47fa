//! What a row costs the measured process: allocations (a counting global
//! allocator), CPU time (`getrusage`) and peak resident memory (`/proc`),
//! and a wall clock both processes share.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

pub use djehouty_testkit::alloc::{allocations, CountingAlloc};

/// Nanoseconds since the Unix epoch: the clock the bench and its sink (another
/// process) both read, so a row's end, stamped by the sink, compares with its
/// start, stamped here.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// User + system CPU seconds consumed by this process so far (all its
/// threads, the finished ones included), from `getrusage` (microsecond
/// resolution; `/proc/self/stat` only counts 10 ms ticks, too coarse for the
/// short rows).
pub fn cpu_seconds() -> Option<f64> {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage`; getrusage only writes it.
    let status = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so it filled the structure (and it was
    // zeroed before anyway).
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// User + system CPU seconds consumed by the calling thread so far.
pub fn thread_cpu_seconds() -> Option<f64> {
    rusage(libc::RUSAGE_THREAD)
}

/// Gives the allocator's free memory back to the system, so that a row's
/// peak resident memory does not include what earlier rows freed.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resets the peak resident set size (`VmHWM`) to the current one. Returns
/// false when the kernel refused (then peaks are since the process started).
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` field of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The peak resident set size since the last [`reset_peak_rss`], in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}
