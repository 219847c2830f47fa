//! djehouty against the other Rust GELF shippers, end to end, over loopback.
//!
//! ```text
//! cargo run --release -p bench-peers                       # 1,000,000 records per row
//! cargo run --release -p bench-peers -- --records 100000   # another count
//! cargo run --release -p bench-peers -- --quick            # 20,000 records: the CI smoke run
//! ```
//!
//! One process run logs the same records through every shipper, one row
//! after the other, to the same sink: a child process (this binary with
//! `--sink`) that counts and validates every frame, so its own CPU time and
//! memory are not charged to the shippers. The rows:
//!
//! * **limit**: djehouty's GELF frames for the same records, encoded once
//!   before the row starts and written with plain 64 KiB buffered writes over
//!   TCP and over TLS (rustls): the ceiling for any shipper;
//! * **djehouty**: `tracing::info!` → `opentelemetry-appender-tracing` →
//!   `SdkLoggerProvider` with `djehouty::BatchProcessor`, and with
//!   `djehouty::DirectProcessor` (with and without backpressure) → GELF and
//!   LTSV, over TCP and TLS;
//! * **SDK only**: the batch pipeline with an exporter that drops its
//!   batches, so that djehouty's own cost is the difference;
//! * **SDK, no processor work**: the pipeline up to a processor that only
//!   counts, the baseline of the `DirectProcessor` rows;
//! * **tracing-gelf** (TCP and TLS, rustls) and **gelf_logger** (TCP and TLS,
//!   native-tls; a process-wide `log` logger, driven with `log::info!` and the
//!   same fields as key-values).
//!
//! For each row: records delivered per second from the first log call to the
//! last frame received by the sink; the ratio to the limit row of the same
//! transport; CPU seconds (user + system, the whole process) per million
//! records; for djehouty, the exporter's own CPU time per delivered record
//! (batch rows: outside the application's thread, minus the same for the
//! SDK-only row; direct rows: the whole process, minus the "no processor
//! work" row; each round minus the baseline's same round, then the median
//! over rounds); peak resident memory during the row; records lost (sent minus
//! records received, told apart by the number in their message, frames for
//! the limit rows; the worst round's); allocations per record; and the mean
//! time of one
//! logging call in the application's thread. Below the table, each
//! shipper's rate against the "no processor work" row's, round by round (each
//! round's ratio, then their median).
//!
//! Options (after `--`, or as environment variables): `--records N`
//! (`PEERS_RECORDS`), `--quick` (`PEERS_QUICK=1`), `--repeat N`
//! (`PEERS_REPEAT`: N rounds of every row, each row showing its median round
//! by records/s), `--only a,b` to run only the
//! rows whose id contains one of the words (`PEERS_ONLY`), and `--queue N`,
//! `--batch N`, `--delay-ms N` to try other batch-processor settings for the
//! djehouty and SDK-only rows (default: djehouty's recommended settings), and
//! `--buffer-mib N` (`PEERS_BUFFER_MIB`) to give djehouty's rows another
//! retry buffer size (`with_buffer_size`; default: djehouty's, 16 MiB).
//!
//! A row that makes no progress for 120 s is reported as failed. The run
//! exits non-zero when a frame fails validation, when a djehouty row fails
//! or receives a record twice or a frame without a record number, and, in
//! quick mode, when a djehouty row loses a record.

mod measure;
mod shippers;
mod sink;
mod validate;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use djehouty_testkit::TestPki;
use measure::CountingAlloc;
use shippers::{BatchSettings, Ctx, Run};
use sink::{Format, Numbered, Report, Sink};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Records per row by default.
const DEFAULT_RECORDS: usize = 1_000_000;
/// Records per row in quick mode.
const QUICK_RECORDS: usize = 20_000;
/// Distinct frames pre-encoded for the limit rows.
const POOL: usize = 4096;
/// A row making no progress for this long has failed.
const STALL_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Options

struct Options {
    records: usize,
    quick: bool,
    repeat: usize,
    only: Vec<String>,
    batch: BatchSettings,
    buffer_mib: Option<usize>,
}

const USAGE: &str =
    "usage: cargo run --release -p bench-peers -- [--records N] [--quick] [--repeat N] [--only WORD,WORD] \
                     [--queue N] [--batch N] [--delay-ms N] [--buffer-mib N]";

fn parse_count(text: &str, what: &str) -> Result<usize, String> {
    text.replace(['_', ','], "")
        .parse()
        .map_err(|_| format!("{what}: not a number: {text:?}\n{USAGE}"))
}

fn options() -> Result<Options, String> {
    let mut records = std::env::var("PEERS_RECORDS")
        .ok()
        .map(|v| parse_count(&v, "PEERS_RECORDS"))
        .transpose()?;
    let mut quick = std::env::var("PEERS_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut repeat = std::env::var("PEERS_REPEAT")
        .ok()
        .map(|v| parse_count(&v, "PEERS_REPEAT"))
        .transpose()?
        .unwrap_or(1);
    let mut only: Vec<String> = std::env::var("PEERS_ONLY")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let mut buffer_mib = std::env::var("PEERS_BUFFER_MIB")
        .ok()
        .map(|v| parse_count(&v, "PEERS_BUFFER_MIB"))
        .transpose()?;
    let mut batch = BatchSettings {
        queue: djehouty::RECOMMENDED_MAX_QUEUE_SIZE,
        batch: djehouty::RECOMMENDED_MAX_EXPORT_BATCH_SIZE,
        delay: djehouty::RECOMMENDED_SCHEDULED_DELAY,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{what} needs a value\n{USAGE}"))
        };
        match name.as_str() {
            "--quick" => quick = true,
            "--records" => records = Some(parse_count(&value("--records")?, "--records")?),
            "--repeat" => repeat = parse_count(&value("--repeat")?, "--repeat")?,
            "--only" => only = value("--only")?.split(',').map(str::to_string).collect(),
            "--queue" => batch.queue = parse_count(&value("--queue")?, "--queue")?,
            "--batch" => batch.batch = parse_count(&value("--batch")?, "--batch")?,
            "--delay-ms" => {
                batch.delay =
                    Duration::from_millis(parse_count(&value("--delay-ms")?, "--delay-ms")? as u64)
            }
            "--buffer-mib" => {
                buffer_mib = Some(parse_count(&value("--buffer-mib")?, "--buffer-mib")?)
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let records = match (quick, records) {
        (_, Some(records)) => records,
        (true, None) => QUICK_RECORDS,
        (false, None) => DEFAULT_RECORDS,
    };
    if records == 0 {
        return Err(format!("--records must be at least 1\n{USAGE}"));
    }
    only.retain(|w| !w.is_empty());
    Ok(Options {
        records,
        quick,
        repeat: repeat.max(1),
        only,
        batch,
        buffer_mib,
    })
}

// ---------------------------------------------------------------------------
// Rows

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Tls,
    /// The SDK-only row ships nothing.
    None,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::None => "-",
        }
    }
}

type Shipper = fn(&Ctx, u16, bool) -> Result<Run, String>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Limit,
    Djehouty,
    /// djehouty with its direct processor: encoding on the application's
    /// thread. `may_drop`: told never to wait, it drops records (counted)
    /// when its staging area is full.
    DjehoutyDirect {
        may_drop: bool,
    },
    SdkOnly,
    Peer,
}

struct Row {
    id: String,
    name: String,
    kind: Kind,
    transport: Transport,
    format: Format,
    shipper: Shipper,
}

fn sdk_only(ctx: &Ctx, _port: u16, _tls: bool) -> Result<Run, String> {
    shippers::sdk_only(ctx)
}

fn sdk_bare(ctx: &Ctx, _port: u16, _tls: bool) -> Result<Run, String> {
    shippers::sdk_bare(ctx)
}

fn rows(versions: &Versions) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |id: &str, name: String, kind: Kind, format: Format, shipper: Shipper| {
        for transport in [Transport::Tcp, Transport::Tls] {
            rows.push(Row {
                id: format!("{id}-{}", transport.name().to_lowercase()),
                name: name.clone(),
                kind,
                transport,
                format,
                shipper,
            });
        }
    };
    add(
        "limit",
        "limit (pre-encoded GELF)".to_string(),
        Kind::Limit,
        Format::Gelf,
        shippers::limit,
    );
    add(
        "djehouty-gelf",
        "djehouty GELF, BatchProcessor".to_string(),
        Kind::Djehouty,
        Format::Gelf,
        shippers::djehouty::<djehouty::Gelf>,
    );
    add(
        "djehouty-ltsv",
        "djehouty LTSV, BatchProcessor".to_string(),
        Kind::Djehouty,
        Format::Ltsv,
        shippers::djehouty::<djehouty::Ltsv>,
    );
    add(
        "djehouty-direct-gelf",
        "djehouty GELF, DirectProcessor".to_string(),
        Kind::DjehoutyDirect { may_drop: false },
        Format::Gelf,
        shippers::djehouty_direct::<djehouty::Gelf>,
    );
    add(
        "djehouty-direct-ltsv",
        "djehouty LTSV, DirectProcessor".to_string(),
        Kind::DjehoutyDirect { may_drop: false },
        Format::Ltsv,
        shippers::djehouty_direct::<djehouty::Ltsv>,
    );
    add(
        "djehouty-direct-nowait-gelf",
        "djehouty GELF, DirectProcessor, without backpressure".to_string(),
        Kind::DjehoutyDirect { may_drop: true },
        Format::Gelf,
        shippers::djehouty_without_backpressure::<djehouty::Gelf>,
    );
    add(
        "djehouty-direct-nowait-ltsv",
        "djehouty LTSV, DirectProcessor, without backpressure".to_string(),
        Kind::DjehoutyDirect { may_drop: true },
        Format::Ltsv,
        shippers::djehouty_without_backpressure::<djehouty::Ltsv>,
    );
    add(
        "tracing-gelf",
        format!("tracing-gelf {}", versions.tracing_gelf),
        Kind::Peer,
        Format::Gelf,
        shippers::tracing_gelf,
    );
    add(
        "gelf_logger",
        format!("gelf_logger {}", versions.gelf_logger),
        Kind::Peer,
        Format::Gelf,
        shippers::gelf_logger,
    );
    rows.insert(
        2,
        Row {
            id: "sdk-only".to_string(),
            name: "SDK only (no-op exporter)".to_string(),
            kind: Kind::SdkOnly,
            transport: Transport::None,
            format: Format::Gelf,
            shipper: sdk_only,
        },
    );
    rows.insert(
        3,
        Row {
            id: "sdk-bare".to_string(),
            name: "SDK, no processor work".to_string(),
            kind: Kind::SdkOnly,
            transport: Transport::None,
            format: Format::Gelf,
            shipper: sdk_bare,
        },
    );
    rows
}

/// One row's outcome.
struct Outcome {
    run: Option<Run>,
    report: Option<Report>,
    failure: Option<String>,
    cpu_seconds: Option<f64>,
    peak_rss_mib: Option<f64>,
    allocations: u64,
    /// Records/s of every round, when there were several.
    rates: Vec<Option<f64>>,
    /// CPU seconds per delivered record of every round, in round order:
    /// the whole process's, and outside the application's thread.
    cpu_rounds: Vec<Option<f64>>,
    background_rounds: Vec<Option<f64>>,
    /// Records lost in every round, when there were several (`None`: a
    /// round without a count).
    lost_rounds: Vec<Option<u64>>,
}

impl Outcome {
    /// A row that could not run: `failure` says why.
    fn failed(failure: String) -> Outcome {
        Outcome {
            run: None,
            report: None,
            failure: Some(failure),
            cpu_seconds: None,
            peak_rss_mib: None,
            allocations: 0,
            rates: Vec::new(),
            cpu_rounds: Vec::new(),
            background_rounds: Vec::new(),
            lost_rounds: Vec::new(),
        }
    }

    /// Records delivered: told apart by their number where the row's
    /// frames carry one (a record that arrived twice counts once), else
    /// frames.
    fn delivered(&self) -> Option<u64> {
        let run = self.run.as_ref()?;
        match run.handled {
            Some(handled) => Some(handled),
            None => self
                .report
                .as_ref()
                .map(|r| r.numbered.map_or(r.frames, |n| n.distinct)),
        }
    }

    fn lost(&self) -> Option<u64> {
        Some(self.run.as_ref()?.sent.saturating_sub(self.delivered()?))
    }

    /// The most records lost in one of the rounds that counted them: the
    /// median round alone could show none while another lost some.
    fn worst_lost(&self) -> Option<u64> {
        if self.lost_rounds.is_empty() {
            return self.lost();
        }
        self.lost_rounds.iter().flatten().copied().max()
    }

    fn records_per_second(&self) -> Option<f64> {
        let run = self.run.as_ref()?;
        let end = match run.end_ns {
            Some(end) => end,
            None => self.report.as_ref()?.last_frame_ns,
        };
        let seconds = end.checked_sub(run.start_ns)? as f64 / 1e9;
        let delivered = self.delivered()?;
        (seconds > 0.0 && delivered > 0).then(|| delivered as f64 / seconds)
    }

    /// CPU seconds of the whole process per delivered record.
    fn cpu_per_record(&self) -> Option<f64> {
        let (cpu, delivered) = (self.cpu_seconds?, self.delivered()?);
        (delivered > 0).then(|| cpu / delivered as f64)
    }

    /// CPU seconds per delivered record spent outside the application's
    /// thread (the SDK's worker, the exporter's I/O thread...).
    fn background_cpu_per_record(&self) -> Option<f64> {
        let run = self.run.as_ref()?;
        let background = self.cpu_seconds? - run.app_cpu?;
        let delivered = self.delivered()?;
        (delivered > 0).then(|| background / delivered as f64)
    }

    /// The sink process's CPU seconds per delivered record (its reader and
    /// validator threads, and the kernel's receiving side when it runs on
    /// them): not the row's, but taken from the same two cores.
    fn sink_cpu_per_record(&self) -> Option<f64> {
        let (cpu, delivered) = (self.report.as_ref()?.cpu_seconds?, self.delivered()?);
        (delivered > 0).then(|| cpu / delivered as f64)
    }

    fn invalid(&self) -> u64 {
        self.report.as_ref().map_or(0, |r| r.invalid)
    }
}

fn measure_row(row: &Row, ctx: &Arc<Ctx>) -> Outcome {
    let tls = row.transport == Transport::Tls;
    let port = if row.kind == Kind::SdkOnly {
        0
    } else {
        match ctx
            .sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            // The limit rows write a pool of frames in turn: not numbered.
            .open(
                tls,
                row.format,
                (row.kind != Kind::Limit).then_some(ctx.records as u64),
            ) {
            Ok(port) => port,
            Err(e) => return Outcome::failed(e),
        }
    };
    ctx.progress.store(0, Ordering::Relaxed);
    measure::trim_heap();
    let rss_reset = measure::reset_peak_rss();
    let cpu_before = measure::cpu_seconds();
    let allocations_before = measure::allocations();

    let (tx, rx) = mpsc::channel();
    let shipper = row.shipper;
    let worker_ctx = Arc::clone(ctx);
    let spawned = thread::Builder::new().name("row".into()).spawn(move || {
        let outcome = shipper(&worker_ctx, port, tls);
        // Let go of the context before answering: once the last row has
        // answered, the process may exit at once, and the context's last
        // reference must be gone by then for the throwaway PKI directory
        // and the sink process to be cleaned up.
        drop(worker_ctx);
        let _ = tx.send(outcome);
    });
    let mut failure = None;
    let mut run = None;
    match spawned {
        Err(e) => failure = Some(format!("cannot start the row's thread: {e}")),
        Ok(_) => {
            let mut last = (u64::MAX, u64::MAX);
            let mut last_change = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(Ok(done)) => {
                        run = Some(done);
                        break;
                    }
                    Ok(Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        failure = Some("the row panicked".to_string());
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        let frames = if row.kind == Kind::SdkOnly {
                            0
                        } else {
                            ctx.sink
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .counts()
                                .map_or(0, |(_, frames)| frames)
                        };
                        let now = (ctx.progress.load(Ordering::Relaxed), frames);
                        if now != last {
                            last = now;
                            last_change = Instant::now();
                        } else if last_change.elapsed() > STALL_LIMIT {
                            failure = Some(format!(
                                "stalled: no progress for {} s",
                                STALL_LIMIT.as_secs()
                            ));
                            break;
                        }
                    }
                }
            }
        }
    }
    let report = if row.kind == Kind::SdkOnly {
        None
    } else {
        let (idle, limit) = if failure.is_some() {
            (Duration::from_secs(1), Duration::from_secs(5))
        } else {
            (Duration::from_secs(10), STALL_LIMIT)
        };
        match ctx
            .sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(idle, limit)
        {
            Ok(report) => Some(report),
            Err(e) => {
                failure.get_or_insert(e);
                None
            }
        }
    };
    let cpu_after = measure::cpu_seconds();
    Outcome {
        run,
        report,
        failure,
        cpu_seconds: cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        peak_rss_mib: if rss_reset {
            measure::peak_rss_mib()
        } else {
            None
        },
        allocations: measure::allocations() - allocations_before,
        rates: Vec::new(),
        cpu_rounds: Vec::new(),
        background_rounds: Vec::new(),
        lost_rounds: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Machine and versions

struct Versions {
    tracing_gelf: String,
    gelf_logger: String,
    opentelemetry_sdk: String,
    rustls: String,
}

/// Versions as resolved in Cargo.lock.
fn versions() -> Versions {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .unwrap_or_default();
    let find = |name: &str| {
        let header = format!("name = \"{name}\"\nversion = \"");
        lock.find(&header)
            .and_then(|at| {
                let rest = &lock[at + header.len()..];
                rest.find('"').map(|end| rest[..end].to_string())
            })
            .unwrap_or_else(|| "?".to_string())
    };
    Versions {
        tracing_gelf: find("tracing-gelf"),
        gelf_logger: find("gelf_logger"),
        opentelemetry_sdk: find("opentelemetry_sdk"),
        rustls: find("rustls"),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

// ---------------------------------------------------------------------------
// Output

/// `1234567.8` → `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn dash() -> String {
    "–".to_string()
}

fn table(rows: &[Row], outcomes: &[Outcome], records: usize) -> String {
    let limit_rate = |transport: Transport| {
        rows.iter()
            .zip(outcomes)
            .find(|(row, _)| row.kind == Kind::Limit && row.transport == transport)
            .and_then(|(_, outcome)| outcome.records_per_second())
    };
    let baseline = |id: &str| {
        rows.iter()
            .zip(outcomes)
            .find(|(row, _)| row.id == id)
            .map(|(_, outcome)| outcome)
    };
    let sdk_background = baseline("sdk-only").map(|o| o.background_rounds.as_slice());
    let bare_total = baseline("sdk-bare").map(|o| o.cpu_rounds.as_slice());
    let per_million = 1e6 / records as f64;
    let mut out = String::new();
    out.push_str(
        "| row | transport | records/s | vs limit | CPU s / M records | exporter CPU µs/record \
         | peak RSS MiB | lost | allocs/record | µs per log call |\n",
    );
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (row, outcome) in rows.iter().zip(outcomes) {
        let mut cells = vec![row.name.clone(), row.transport.name().to_string()];
        if let Some(failure) = &outcome.failure {
            cells.push(format!("failed: {failure}"));
            cells.extend(std::iter::repeat_n(dash(), 7));
        } else {
            let rate = outcome.records_per_second();
            cells.push(rate.map_or_else(dash, thousands));
            cells.push(
                rate.zip(limit_rate(row.transport))
                    .map_or_else(dash, |(rate, limit)| format!("{:.2}×", rate / limit)),
            );
            cells.push(
                outcome
                    .cpu_seconds
                    .map_or_else(dash, |cpu| format!("{:.2}", cpu * per_million)),
            );
            cells.push(match row.kind {
                Kind::Djehouty => sdk_background
                    .and_then(|sdk| paired_difference(&outcome.background_rounds, sdk))
                    .map_or_else(dash, |cpu| format!("{:.2}", cpu * 1e6)),
                Kind::DjehoutyDirect { .. } => bare_total
                    .and_then(|bare| paired_difference(&outcome.cpu_rounds, bare))
                    .map_or_else(dash, |cpu| format!("{:.2}", cpu * 1e6)),
                _ => dash(),
            });
            cells.push(
                outcome
                    .peak_rss_mib
                    .map_or_else(dash, |mib| format!("{mib:.0}")),
            );
            cells.push(
                outcome
                    .worst_lost()
                    .map_or_else(dash, |lost| thousands(lost as f64)),
            );
            cells.push(format!(
                "{:.1}",
                outcome.allocations as f64 / records as f64
            ));
            cells.push(outcome.run.as_ref().map_or_else(dash, |run| {
                format!("{:.2}", run.loop_time.as_secs_f64() * 1e6 / records as f64)
            }));
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

fn notes(rows: &[Row], outcomes: &[Outcome]) -> String {
    let ceiling = rows
        .iter()
        .zip(outcomes)
        .find(|(row, _)| row.id == "sdk-bare")
        .map(|(_, outcome)| outcome);
    let mut out = String::new();
    for (row, outcome) in rows.iter().zip(outcomes) {
        let mut lines = Vec::new();
        if let Some(run) = &outcome.run {
            lines.extend(run.notes.iter().cloned());
            let app = run
                .app_cpu
                .filter(|_| run.sent > 0)
                .map(|app| app * 1e6 / run.sent as f64);
            if let (Some(app), Some(background)) = (app, outcome.background_cpu_per_record()) {
                let sink = outcome
                    .sink_cpu_per_record()
                    .map_or_else(String::new, |sink| {
                        format!(", the sink's process {:.2}", sink * 1e6)
                    });
                lines.push(format!(
                    "CPU µs: application thread {app:.2} per record logged, \
                     other threads {:.2} per record delivered{sink}",
                    background * 1e6
                ));
            }
        }
        if !outcome.rates.is_empty() {
            let rates: Vec<String> = outcome
                .rates
                .iter()
                .map(|rate| rate.map_or_else(|| "failed".to_string(), thousands))
                .collect();
            lines.push(format!("records/s per round: {}", rates.join(", ")));
        }
        if outcome.lost_rounds.iter().any(|lost| *lost != Some(0)) {
            let lost: Vec<String> = outcome
                .lost_rounds
                .iter()
                .map(|lost| lost.map_or_else(dash, |l| thousands(l as f64)))
                .collect();
            lines.push(format!("lost per round: {}", lost.join(", ")));
        }
        let shipper = matches!(
            row.kind,
            Kind::Djehouty | Kind::DjehoutyDirect { .. } | Kind::Peer
        );
        // Every round's rate; a single round's is the row's.
        let rounds = |outcome: &Outcome| match outcome.rates.is_empty() {
            true => vec![outcome.records_per_second()],
            false => outcome.rates.clone(),
        };
        if let Some((ratios, median)) = ceiling
            .filter(|_| shipper)
            .and_then(|ceiling| paired_ratio(&rounds(outcome), &rounds(ceiling)))
        {
            let ratios: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
            lines.push(format!(
                "against the SDK ceiling, round by round: {} (median {median:.2}×)",
                ratios.join(", ")
            ));
        }
        if let Some(report) = &outcome.report {
            if report.invalid > 0 {
                lines.push(format!(
                    "{} invalid frame(s), first: {}",
                    report.invalid, report.sample
                ));
            }
            if report.open > 0 {
                lines.push(format!(
                    "{} connection(s) still open when the sink stopped waiting",
                    report.open
                ));
            }
            if report.unclean > 0 {
                lines.push(format!(
                    "{} connection(s) ended uncleanly: {}",
                    report.unclean, report.note
                ));
            } else if !report.note.is_empty() {
                lines.push(report.note.clone());
            }
            if report.connections > 1 {
                lines.push(format!("{} connections", report.connections));
            }
            lines.extend(report.numbered.iter().flat_map(Numbered::faults));
            if let Some(size) = report.bytes.checked_div(report.frames) {
                lines.push(format!("{size} bytes per frame, as read"));
            }
        }
        if !lines.is_empty() {
            let label = match row.transport {
                Transport::None => row.name.clone(),
                transport => format!("{} {}", row.name, transport.name()),
            };
            let _ = writeln!(out, "- {label}: {}", lines.join("; "));
        }
    }
    out
}

// ---------------------------------------------------------------------------

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--sink") {
        let dir = PathBuf::from(args.get(2).cloned().unwrap_or_default());
        return match sink::run_child(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    match bench() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("peers: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every row; returns whether the run passed its checks.
fn bench() -> Result<bool, String> {
    let options = options()?;
    let versions = versions();
    let pki = Arc::new(TestPki::generate());
    // gelf_logger's TLS (native-tls, OpenSSL) trusts only the system's roots
    // and the file named here, read when its first connector is made. Set
    // before any other thread exists.
    std::env::set_var("SSL_CERT_FILE", &pki.ca_pem);
    let sink = Arc::new(Mutex::new(Sink::spawn(pki.dir.path())?));

    let mut rows = rows(&versions);
    if !options.only.is_empty() {
        rows.retain(|row| {
            options
                .only
                .iter()
                .any(|word| row.id.contains(word.as_str()))
        });
    }
    let pool = if rows.iter().any(|row| row.kind == Kind::Limit) {
        shippers::capture_pool(POOL.min(options.records))?
    } else {
        Vec::new()
    };
    let ctx = Arc::new(Ctx {
        records: options.records,
        sink,
        pki,
        pool: Arc::new(pool),
        batch: options.batch,
        buffer_bytes: options.buffer_mib.map(|mib| mib << 20),
        progress: Arc::new(AtomicU64::new(0)),
    });

    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let mut header = String::new();
    let _ =
        writeln!(
        header,
        "{} records per row{}{}; {} CPU(s): {}; batch processor: queue {}, batch {}, delay {} ms; \
         djehouty retry buffer: {} MiB",
        thousands(options.records as f64),
        if options.quick { " (quick)" } else { "" },
        if options.repeat > 1 {
            format!(", median of {} rounds", options.repeat)
        } else {
            String::new()
        },
        cpus,
        cpu_model(),
        options.batch.queue,
        options.batch.batch,
        options.batch.delay.as_millis(),
        options.buffer_mib.unwrap_or(djehouty::config::DEFAULT_BUFFER_BYTES >> 20),
    );
    let _ = writeln!(
        header,
        "tracing-gelf {}, gelf_logger {}, opentelemetry_sdk {}, rustls {}",
        versions.tracing_gelf, versions.gelf_logger, versions.opentelemetry_sdk, versions.rustls
    );
    eprint!("{header}");

    // Rounds run every row in turn; each row then shows its median round
    // (by records/s). Every round is checked.
    let mut rounds: Vec<Vec<Outcome>> = rows.iter().map(|_| Vec::new()).collect();
    let mut problems: Vec<Vec<String>> = rows.iter().map(|_| Vec::new()).collect();
    for round in 0..options.repeat {
        for (i, row) in rows.iter().enumerate() {
            let round_label = if options.repeat > 1 {
                format!(" round {}/{}", round + 1, options.repeat)
            } else {
                String::new()
            };
            eprint!(
                "[{}/{}{round_label}] {} {} ... ",
                i + 1,
                rows.len(),
                row.name,
                row.transport.name()
            );
            let started = Instant::now();
            let outcome = measure_row(row, &ctx);
            match &outcome.failure {
                Some(failure) => eprintln!("failed: {failure}"),
                None => eprintln!(
                    "{:.1} s, {} records/s, {} lost",
                    started.elapsed().as_secs_f64(),
                    outcome.records_per_second().map_or_else(dash, thousands),
                    outcome.lost().map_or_else(dash, |l| l.to_string()),
                ),
            }
            problems[i].extend(check(row, &outcome, options.quick));
            rounds[i].push(outcome);
        }
    }
    let outcomes: Vec<Outcome> = rounds.into_iter().map(median).collect();

    println!();
    print!("{header}");
    println!();
    print!("{}", table(&rows, &outcomes, options.records));
    let notes = notes(&rows, &outcomes);
    if !notes.is_empty() {
        println!();
        print!("{notes}");
    }

    let mut failed = 0;
    for (row, problems) in rows.iter().zip(&problems) {
        for problem in problems {
            eprintln!("FAIL: {} {}: {problem}", row.name, row.transport.name());
        }
        if !problems.is_empty() {
            failed += 1;
        }
    }
    println!();
    println!("peers: {} passed, {failed} failed", rows.len() - failed);
    Ok(failed == 0)
}

/// The checks: every frame valid; djehouty (and the limit and SDK-only rows)
/// never fail, never deliver a record twice or a frame without a record
/// number, and lose nothing in quick mode but where told to drop rather than
/// wait. Peers may fail, lose or repeat records: that is reported, not
/// checked.
fn check(row: &Row, outcome: &Outcome, quick: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.invalid() > 0 {
        problems.push(format!("{} invalid frame(s)", outcome.invalid()));
    }
    let numbered = outcome.report.as_ref().and_then(|report| report.numbered);
    if row.kind != Kind::Peer {
        problems.extend(numbered.iter().flat_map(Numbered::faults));
    }
    if row.kind != Kind::Peer {
        if let Some(failure) = &outcome.failure {
            problems.push(failure.clone());
        } else if quick
            && outcome.lost() != Some(0)
            && row.kind != (Kind::DjehoutyDirect { may_drop: true })
        {
            let lost = outcome
                .lost()
                .map_or_else(|| "?".to_string(), |l| l.to_string());
            problems.push(format!("{lost} record(s) lost in quick mode"));
        }
    }
    problems
}

/// The round with the median records/s (failed rounds count as slowest; of
/// an even count, the faster of the two middle ones, a round that was),
/// remembering every round's rate when there were several.
fn median(mut runs: Vec<Outcome>) -> Outcome {
    let rate = |o: &Outcome| {
        o.failure
            .is_none()
            .then(|| o.records_per_second())
            .flatten()
    };
    let rates: Vec<Option<f64>> = runs.iter().map(rate).collect();
    let cpu_rounds = runs.iter().map(Outcome::cpu_per_record).collect();
    let background_rounds = runs
        .iter()
        .map(Outcome::background_cpu_per_record)
        .collect();
    let lost_rounds: Vec<Option<u64>> = runs.iter().map(Outcome::lost).collect();
    runs.sort_by(|a, b| rate(a).unwrap_or(-1.0).total_cmp(&rate(b).unwrap_or(-1.0)));
    let middle = runs.len() / 2;
    let mut chosen = runs.swap_remove(middle);
    if rates.len() > 1 {
        chosen.rates = rates;
        chosen.lost_rounds = lost_rounds;
    }
    chosen.cpu_rounds = cpu_rounds;
    chosen.background_rounds = background_rounds;
    chosen
}

/// A row's rate over the baseline's in each round (in round order), and
/// their median: like [`paired_difference`], the same moment of the machine
/// on both sides of each ratio.
fn paired_ratio(row: &[Option<f64>], baseline: &[Option<f64>]) -> Option<(Vec<f64>, f64)> {
    let mut ratios: Vec<f64> = row
        .iter()
        .zip(baseline)
        .filter_map(|(row, baseline)| Some((*row)? / (*baseline)?))
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let listed = ratios.clone();
    Some((listed, middle(&mut ratios)))
}

/// The median of `values` (not empty): of an even count, the mean of the two
/// middle ones, so that neither is favoured.
fn middle(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let half = values.len() / 2;
    match values.len() % 2 {
        1 => values[half],
        _ => (values[half - 1] + values[half]) / 2.0,
    }
}

/// The median, over rounds, of a row's figure minus its baseline's in the
/// same round: the two rows ran a minute apart at most, so that a machine
/// that gets busier or quieter between rounds does not skew the difference.
fn paired_difference(row: &[Option<f64>], baseline: &[Option<f64>]) -> Option<f64> {
    let mut differences: Vec<f64> = row
        .iter()
        .zip(baseline)
        .filter_map(|(row, baseline)| Some((*row)? - (*baseline)?))
        .collect();
    if differences.is_empty() {
        return None;
    }
    Some(middle(&mut differences))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_each_round_with_the_baselines_same_round() {
        let (ratios, median) = paired_ratio(
            &[Some(1.0), Some(3.0), None],
            &[Some(2.0), Some(3.0), Some(1.0)],
        )
        .unwrap_or_default();
        assert_eq!((ratios, median), (vec![0.5, 1.0], 0.75));
        let (ratios, median) =
            paired_ratio(&[Some(3.0), Some(1.0), Some(2.0)], &[Some(1.0); 3]).unwrap_or_default();
        assert_eq!((ratios, median), (vec![3.0, 1.0, 2.0], 2.0));
        assert_eq!(paired_ratio(&[Some(1.0)], &[None]), None);
    }

    #[test]
    fn the_worst_round_shows_its_losses() {
        let outcome = |lost_rounds| Outcome {
            failure: None,
            lost_rounds,
            ..Outcome::failed(String::new())
        };
        assert_eq!(
            outcome(vec![Some(0), Some(7), Some(0)]).worst_lost(),
            Some(7)
        );
        assert_eq!(outcome(vec![Some(0), None]).worst_lost(), Some(0));
        assert_eq!(outcome(vec![None, None]).worst_lost(), None);
    }
}
