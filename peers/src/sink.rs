//! The sink every row ships to, in a child process (this same binary run with
//! `--sink DIR`) so that its CPU time and memory are not counted against the
//! process being measured.
//!
//! The parent drives it over the child's stdin/stdout, one line per request
//! and per answer:
//!
//! * `OPEN tcp|tls gelf|ltsv [records]` binds a fresh listener on 127.0.0.1
//!   for one row and answers `PORT <port>`; with a number of records, each
//!   frame's record is told by its message's number (`order NNNNNN`), and
//!   the records seen, seen again, or without a number are counted;
//! * `CONNS` answers `CONNS <connections established> <frames so far>`;
//! * `FINISH <idle ms> <limit ms>` stops accepting, waits until every
//!   connection of the row has been closed by its peer and all its bytes
//!   validated (or until no byte arrived for `idle ms`, or `limit ms` passed)
//!   and answers `DONE` with the row's counts, tab-separated.
//!
//! Each connection has two threads: one reads (and decrypts, over TLS) into
//! large buffers stamped with their arrival time, the other splits them into
//! frames (NUL-delimited for GELF, newline-delimited for LTSV) and validates
//! each one: a GELF frame must be a JSON object, an LTSV frame one line of
//! `label:value` fields separated by tabs (see `validate.rs`: the validator
//! thread must keep up with the fastest shipper on a loaded machine).

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::measure::{cpu_seconds, now_ns};
use crate::validate::{valid_gelf, valid_ltsv};

/// Size of one read buffer.
const CHUNK: usize = 256 * 1024;
/// Read buffers in flight between a connection's reader and its validator.
const CHUNKS_IN_FLIGHT: usize = 64;
/// Longest wait for a TLS handshake to complete.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait for an answer from the sink.
const ANSWER_LIMIT: Duration = Duration::from_secs(200);

/// What a row's frames must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A JSON object per frame, frames ended by NUL.
    Gelf,
    /// One `label:value<TAB>label:value...` line per frame, ended by LF.
    Ltsv,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Gelf => "gelf",
            Format::Ltsv => "ltsv",
        }
    }

    fn delimiter(self) -> u8 {
        match self {
            Format::Gelf => 0,
            Format::Ltsv => b'\n',
        }
    }

    fn valid(self, frame: &[u8]) -> bool {
        match self {
            Format::Gelf => valid_gelf(frame),
            Format::Ltsv => valid_ltsv(frame),
        }
    }
}

/// Makes `bytes` printable on one line, at most `max` characters.
fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

// ---------------------------------------------------------------------------
// The child process

/// A row's counters, shared by its connections' threads.
#[derive(Default)]
struct RowState {
    /// Connections established (TLS: handshake completed).
    connections: AtomicU64,
    /// Connections whose bytes are not all validated yet.
    open: AtomicU64,
    frames: AtomicU64,
    invalid: AtomicU64,
    bytes: AtomicU64,
    /// Arrival time of the read that completed the latest frame.
    last_frame_ns: AtomicU64,
    /// Arrival time of the latest read.
    last_read_ns: AtomicU64,
    /// Connections that ended without a TLS close_notify or with an error.
    unclean: AtomicU64,
    closed: AtomicBool,
    note: Mutex<Option<String>>,
    sample: Mutex<Option<String>>,
    /// One bit per record number, when the row's records are numbered
    /// (empty otherwise): which records arrived.
    seen: Vec<AtomicU64>,
    /// The row's number of records (0 when not numbered).
    records: u64,
    /// Records that arrived (once or more), arrived again, and frames
    /// without a record number in range.
    distinct: AtomicU64,
    duplicates: AtomicU64,
    unnumbered: AtomicU64,
}

impl RowState {
    /// A row whose frames carry the numbers `0..records`, or none.
    fn new(records: Option<u64>) -> RowState {
        let words = records.map_or(0, |records| records.div_ceil(64));
        RowState {
            seen: (0..words).map(|_| AtomicU64::new(0)).collect(),
            records: records.unwrap_or(0),
            ..RowState::default()
        }
    }

    /// Notes the record `frame` carries: whether it is new (`Some(true)`),
    /// came before (`Some(false)`) or has no number in range (`None`).
    fn see(&self, finder: &memchr::memmem::Finder<'_>, frame: &[u8]) -> Option<bool> {
        let at = finder.find(frame)? + finder.needle().len();
        let number = &frame[at..];
        let len = number.iter().take_while(|b| b.is_ascii_digit()).count();
        // More than 19 digits may not fit a u64: out of range anyway.
        if len == 0 || len > 19 {
            return None;
        }
        let digits = (number[..len].iter()).fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
        if digits >= self.records {
            return None;
        }
        let word = self.seen.get(usize::try_from(digits / 64).ok()?)?;
        let bit = 1 << (digits % 64);
        Some(word.fetch_or(bit, Ordering::AcqRel) & bit == 0)
    }

    /// Keeps `frame` as the row's sample of an invalid frame, if it is the
    /// first.
    fn keep_sample(&self, frame: &[u8]) {
        let mut sample = self.sample.lock().unwrap_or_else(|p| p.into_inner());
        sample.get_or_insert_with(|| escape(frame, 300));
    }

    fn note(&self, text: String) {
        let mut note = self.note.lock().unwrap_or_else(|p| p.into_inner());
        note.get_or_insert(text);
    }
}

/// A buffer of bytes read, with the time it was read.
struct Chunk {
    data: Vec<u8>,
    len: usize,
    at: u64,
}

/// Runs the sink until its stdin closes. `dir` holds the test PKI's server
/// certificate (`cert.pem`) and its key (`key.pem`).
pub fn run_child(dir: &Path) -> Result<(), String> {
    let cert = CertificateDer::from_pem_file(dir.join("cert.pem"))
        .map_err(|e| format!("sink: cannot read the server certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem"))
        .map_err(|e| format!("sink: cannot read the server key: {e}"))?;
    let tls =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("sink: TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| format!("sink: TLS certificate: {e}"))?;
    // No TLS 1.3 session tickets: a client that closes its socket without
    // reading them (gelf_logger's native-tls stream does) would make the
    // kernel reset the connection and discard frames the sink has not read yet.
    let mut tls = tls;
    tls.send_tls13_tickets = 0;
    let tls = Arc::new(tls);

    let stdin = io::stdin();
    let mut stdout = io::stdout();
    // The open row, its port, and the sink's CPU time when it opened.
    let mut row: Option<(Arc<RowState>, u16, Option<f64>)> = None;
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("sink: reading a request: {e}"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["OPEN", transport, format, numbered @ ..] => {
                let format = match *format {
                    "gelf" => Format::Gelf,
                    "ltsv" => Format::Ltsv,
                    other => return Err(format!("sink: unknown format {other}")),
                };
                let tls = match *transport {
                    "tcp" => None,
                    "tls" => Some(Arc::clone(&tls)),
                    other => return Err(format!("sink: unknown transport {other}")),
                };
                let records = match numbered {
                    [] => None,
                    [records] => Some(
                        records
                            .parse()
                            .map_err(|_| format!("sink: bad record count {records:?}"))?,
                    ),
                    _ => return Err(format!("sink: unknown request {line:?}")),
                };
                let state = Arc::new(RowState::new(records));
                let port = listen(Arc::clone(&state), format, tls)?;
                row = Some((state, port, cpu_seconds()));
                format!("PORT {port}")
            }
            ["CONNS"] => match &row {
                Some((state, _, _)) => format!(
                    "CONNS {} {}",
                    state.connections.load(Ordering::Acquire),
                    state.frames.load(Ordering::Acquire)
                ),
                None => "CONNS 0 0".to_string(),
            },
            ["FINISH", idle, limit] => {
                let idle = Duration::from_millis(idle.parse().unwrap_or(10_000));
                let limit = Duration::from_millis(limit.parse().unwrap_or(120_000));
                match row.take() {
                    Some((state, port, cpu_at_open)) => {
                        let report = finish(&state, port, idle, limit);
                        // The sink's own CPU time for the row, its waiting
                        // for the row to end included (microseconds).
                        let cpu = cpu_at_open.zip(cpu_seconds()).map_or_else(
                            || "-".to_string(),
                            |(a, b)| format!("{:.0}", (b - a) * 1e6),
                        );
                        format!("{report}\t{cpu}")
                    }
                    None => "DONE\t0\t0\t0\t0\t0\t0\t0\t-\t-\t-\tno row open\t\t-".to_string(),
                }
            }
            _ => return Err(format!("sink: unknown request {line:?}")),
        };
        writeln!(stdout, "{answer}").map_err(|e| format!("sink: answering: {e}"))?;
        stdout
            .flush()
            .map_err(|e| format!("sink: answering: {e}"))?;
    }
    Ok(())
}

/// Binds a listener for one row and accepts its connections in a thread.
fn listen(
    state: Arc<RowState>,
    format: Format,
    tls: Option<Arc<ServerConfig>>,
) -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("sink: cannot listen: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("sink: listener address: {e}"))?
        .port();
    thread::Builder::new()
        .name("sink-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if state.closed.load(Ordering::Acquire) {
                    break;
                }
                let stream = match stream {
                    Ok(stream) => stream,
                    Err(e) => {
                        state.note(format!("accept failed: {e}"));
                        continue;
                    }
                };
                state.open.fetch_add(1, Ordering::AcqRel);
                let state = Arc::clone(&state);
                let tls = tls.clone();
                let spawned = thread::Builder::new()
                    .name("sink-read".into())
                    .spawn(move || connection(stream, state, format, tls));
                if let Err(e) = spawned {
                    eprintln!("sink: cannot start a reader thread: {e}");
                }
            }
        })
        .map_err(|e| format!("sink: cannot start the acceptor: {e}"))?;
    Ok(port)
}

/// Reads one connection to its end, handing buffers to a validator thread.
fn connection(
    stream: TcpStream,
    state: Arc<RowState>,
    format: Format,
    tls: Option<Arc<ServerConfig>>,
) {
    let (chunks_tx, chunks_rx) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let validator = {
        let state = Arc::clone(&state);
        thread::Builder::new()
            .name("sink-validate".into())
            .spawn(move || validate(chunks_rx, spare_tx, &state, format))
    };
    let validator = match validator {
        Ok(handle) => handle,
        Err(e) => {
            state.note(format!("cannot start a validator thread: {e}"));
            state.open.fetch_sub(1, Ordering::AcqRel);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let outcome = match tls {
        None => {
            state.connections.fetch_add(1, Ordering::AcqRel);
            read_all(stream, &chunks_tx, &spare_rx, &state)
        }
        Some(config) => match handshake(stream, config) {
            Ok(tls_stream) => {
                state.connections.fetch_add(1, Ordering::AcqRel);
                read_all(tls_stream, &chunks_tx, &spare_rx, &state)
            }
            Err(e) => Err(format!("TLS handshake failed: {e}")),
        },
    };
    drop(chunks_tx);
    if let Err(e) = outcome {
        state.unclean.fetch_add(1, Ordering::AcqRel);
        state.note(e);
    }
    let _ = validator.join();
    state.open.fetch_sub(1, Ordering::AcqRel);
}

fn handshake(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
) -> Result<StreamOwned<ServerConnection, TcpStream>, String> {
    let mut conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(HANDSHAKE_LIMIT))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    tcp.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok(StreamOwned::new(conn, tcp))
}

/// Reads until the peer closes. A TLS peer that closes without close_notify
/// is reported as an unclean end (its bytes still count).
fn read_all(
    mut stream: impl Read,
    chunks: &SyncSender<Chunk>,
    spare: &Receiver<Vec<u8>>,
    state: &RowState,
) -> Result<(), String> {
    loop {
        let mut data = spare.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let len = match stream.read(&mut data) {
            Ok(0) => return Ok(()),
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err("a TLS peer closed without close_notify".to_string())
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err("a peer reset its connection".to_string())
            }
            Err(e) => return Err(format!("read failed: {e}")),
        };
        let at = now_ns();
        state.last_read_ns.store(at, Ordering::Release);
        if chunks.send(Chunk { data, len, at }).is_err() {
            return Err("the validator stopped".to_string());
        }
    }
}

/// Splits buffers into frames and validates each one.
fn validate(
    chunks: Receiver<Chunk>,
    spare: mpsc::Sender<Vec<u8>>,
    state: &RowState,
    format: Format,
) {
    let delimiter = format.delimiter();
    let mut pending: Vec<u8> = Vec::new();
    let finder = memchr::memmem::Finder::new(b"order ");
    // Counts of the current chunk: distinct, duplicates, unnumbered.
    let mut seen = [0u64; 3];
    let check = |frame: &[u8], invalid: &mut u64, seen: &mut [u64; 3]| {
        if !format.valid(frame) {
            *invalid += 1;
            state.keep_sample(frame);
        }
        if !state.seen.is_empty() {
            match state.see(&finder, frame) {
                Some(true) => seen[0] += 1,
                Some(false) => seen[1] += 1,
                None => seen[2] += 1,
            }
        }
    };
    let add_seen = |seen: &mut [u64; 3]| {
        state.distinct.fetch_add(seen[0], Ordering::AcqRel);
        state.duplicates.fetch_add(seen[1], Ordering::AcqRel);
        state.unnumbered.fetch_add(seen[2], Ordering::AcqRel);
        *seen = [0; 3];
    };
    for chunk in chunks {
        let data = &chunk.data[..chunk.len];
        let (mut frames, mut invalid) = (0u64, 0u64);
        let mut start = 0;
        while let Some(offset) = memchr::memchr(delimiter, &data[start..]) {
            let end = start + offset;
            if pending.is_empty() {
                check(&data[start..end], &mut invalid, &mut seen);
            } else {
                pending.extend_from_slice(&data[start..end]);
                check(&pending, &mut invalid, &mut seen);
                pending.clear();
            }
            frames += 1;
            start = end + 1;
        }
        pending.extend_from_slice(&data[start..]);
        state.bytes.fetch_add(chunk.len as u64, Ordering::AcqRel);
        if frames > 0 {
            // Before the frames: whoever reads both never sees a frame
            // counted whose record is not.
            add_seen(&mut seen);
            state.invalid.fetch_add(invalid, Ordering::AcqRel);
            state.last_frame_ns.fetch_max(chunk.at, Ordering::AcqRel);
            state.frames.fetch_add(frames, Ordering::AcqRel);
        }
        let _ = spare.send(chunk.data);
    }
    if !pending.is_empty() {
        // The connection ended inside a frame: invalid, and its record
        // (whose number may be cut too) not counted as received.
        state.invalid.fetch_add(1, Ordering::AcqRel);
        state.keep_sample(&pending);
        state.note(format!(
            "a connection ended inside a frame ({} bytes after the last delimiter)",
            pending.len()
        ));
    }
}

/// Stops accepting, waits for the row's connections to end, and reports.
fn finish(state: &RowState, port: u16, idle: Duration, limit: Duration) -> String {
    state.closed.store(true, Ordering::Release);
    // Wake the acceptor, which then sees `closed` and stops.
    if let Ok(wake) = TcpStream::connect(("127.0.0.1", port)) {
        let _ = wake.shutdown(Shutdown::Both);
    }
    let started = Instant::now();
    let mut last_bytes = state.bytes.load(Ordering::Acquire);
    let mut last_change = Instant::now();
    while state.open.load(Ordering::Acquire) > 0 {
        thread::sleep(Duration::from_millis(2));
        let bytes = state.bytes.load(Ordering::Acquire);
        if bytes != last_bytes {
            last_bytes = bytes;
            last_change = Instant::now();
        }
        if last_change.elapsed() > idle || started.elapsed() > limit {
            break;
        }
    }
    let note = state.note.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let sample = state
        .sample
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let clean = |text: Option<String>| text.unwrap_or_default().replace(['\t', '\n', '\r'], " ");
    let numbered = |count: &AtomicU64| match state.seen.is_empty() {
        true => "-".to_string(),
        false => count.load(Ordering::Acquire).to_string(),
    };
    format!(
        "DONE\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        state.frames.load(Ordering::Acquire),
        state.invalid.load(Ordering::Acquire),
        state.bytes.load(Ordering::Acquire),
        state.last_frame_ns.load(Ordering::Acquire),
        state.connections.load(Ordering::Acquire),
        state.open.load(Ordering::Acquire),
        state.unclean.load(Ordering::Acquire),
        numbered(&state.distinct),
        numbered(&state.duplicates),
        numbered(&state.unnumbered),
        clean(note),
        clean(sample),
    )
}

// ---------------------------------------------------------------------------
// The parent's handle

/// What the sink saw of one row.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub frames: u64,
    pub invalid: u64,
    pub bytes: u64,
    /// Arrival time (ns since the Unix epoch) of the latest frame.
    pub last_frame_ns: u64,
    pub connections: u64,
    /// Connections still open when the sink stopped waiting.
    pub open: u64,
    /// Connections that ended without a TLS close_notify or with an error.
    pub unclean: u64,
    /// The first problem the sink noticed, if any.
    pub note: String,
    /// The first invalid frame, escaped, if any.
    pub sample: String,
    /// The sink process's CPU time (user + system) from the row's opening
    /// to its end, when `getrusage` told.
    pub cpu_seconds: Option<f64>,
    /// For a row opened with its number of records: the records that
    /// arrived, those that arrived again, and the frames without a record
    /// number in range.
    pub numbered: Option<Numbered>,
}

/// What a row's record numbers told.
#[derive(Debug, Default, Clone, Copy)]
pub struct Numbered {
    pub distinct: u64,
    pub duplicates: u64,
    pub unnumbered: u64,
}

impl Numbered {
    /// Records that arrived twice and frames without a number, said.
    pub fn faults(&self) -> Vec<String> {
        let mut faults = Vec::new();
        if self.duplicates > 0 {
            faults.push(format!("{} record(s) arrived twice", self.duplicates));
        }
        if self.unnumbered > 0 {
            faults.push(format!(
                "{} frame(s) without a record number",
                self.unnumbered
            ));
        }
        faults
    }
}

/// The parent's side: the child process and its request/answer pipe.
pub struct Sink {
    child: Child,
    requests: ChildStdin,
    answers: Receiver<String>,
}

impl Sink {
    /// Starts this binary as the sink, with the server certificate in `dir`.
    pub fn spawn(dir: &Path) -> Result<Sink, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--sink")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the sink process: {e}"))?;
        let requests = child.stdin.take().ok_or("the sink has no stdin")?;
        let stdout = child.stdout.take().ok_or("the sink has no stdout")?;
        let (tx, answers) = mpsc::channel();
        thread::Builder::new()
            .name("sink-answers".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the sink's answer reader: {e}"))?;
        Ok(Sink {
            child,
            requests,
            answers,
        })
    }

    fn request(&mut self, request: &str, limit: Duration) -> Result<String, String> {
        writeln!(self.requests, "{request}")
            .and_then(|()| self.requests.flush())
            .map_err(|e| format!("the sink process is gone ({e})"))?;
        match self.answers.recv_timeout(limit) {
            Ok(answer) => Ok(answer),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "the sink did not answer {request:?} within {limit:?}"
            )),
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "the sink process exited while answering {request:?}"
            )),
        }
    }

    /// Opens a listener for a new row; returns its port. With `records`, the
    /// row's frames carry the record numbers `0..records` in their message,
    /// and the sink tells records apart.
    pub fn open(&mut self, tls: bool, format: Format, records: Option<u64>) -> Result<u16, String> {
        let transport = if tls { "tls" } else { "tcp" };
        let numbered = records.map_or_else(String::new, |records| format!(" {records}"));
        let answer = self.request(
            &format!("OPEN {transport} {}{numbered}", format.name()),
            Duration::from_secs(10),
        )?;
        answer
            .strip_prefix("PORT ")
            .and_then(|port| port.trim().parse().ok())
            .ok_or_else(|| format!("unexpected answer from the sink: {answer:?}"))
    }

    /// Connections established and frames received so far on the current row.
    pub fn counts(&mut self) -> Result<(u64, u64), String> {
        let answer = self.request("CONNS", Duration::from_secs(10))?;
        let mut words = answer.split_whitespace().skip(1).map(str::parse::<u64>);
        match (words.next(), words.next()) {
            (Some(Ok(connections)), Some(Ok(frames))) => Ok((connections, frames)),
            _ => Err(format!("unexpected answer from the sink: {answer:?}")),
        }
    }

    /// Waits (at most `limit`) until the current row's connections are closed
    /// and validated, or no byte arrived for `idle`; returns the counts.
    pub fn finish(&mut self, idle: Duration, limit: Duration) -> Result<Report, String> {
        let request = format!("FINISH {} {}", idle.as_millis(), limit.as_millis());
        let answer = self.request(&request, limit + ANSWER_LIMIT)?;
        let fields: Vec<&str> = answer.split('\t').collect();
        if fields.len() != 14 || fields[0] != "DONE" {
            return Err(format!("unexpected answer from the sink: {answer:?}"));
        }
        let number = |i: usize| -> Result<u64, String> {
            fields[i]
                .parse()
                .map_err(|_| format!("unexpected answer from the sink: {answer:?}"))
        };
        Ok(Report {
            frames: number(1)?,
            invalid: number(2)?,
            bytes: number(3)?,
            last_frame_ns: number(4)?,
            connections: number(5)?,
            open: number(6)?,
            unclean: number(7)?,
            numbered: match fields[8] {
                "-" => None,
                _ => Some(Numbered {
                    distinct: number(8)?,
                    duplicates: number(9)?,
                    unnumbered: number(10)?,
                }),
            },
            note: fields[11].to_string(),
            sample: fields[12].to_string(),
            cpu_seconds: fields[13].parse::<f64>().ok().map(|us| us / 1e6),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Closing its stdin ends the sink; make sure of it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_told_apart_by_their_number() {
        let state = RowState::new(Some(100));
        let finder = memchr::memmem::Finder::new(b"order ");
        let see = |frame: &str| state.see(&finder, frame.as_bytes());
        assert_eq!(
            see(r#"{"short_message":"order 000007 accepted"}"#),
            Some(true)
        );
        assert_eq!(see("message:order 000099 accepted\tuser:u"), Some(true));
        assert_eq!(
            see(r#"{"short_message":"order 000007 accepted"}"#),
            Some(false)
        );
        assert_eq!(see(r#"{"short_message":"order 000100 accepted"}"#), None);
        assert_eq!(see(r#"{"short_message":"no number"}"#), None);
        assert_eq!(see(r#"{"short_message":"order accepted"}"#), None);
        assert_eq!(
            see(r#"{"short_message":"order 99999999999999999999999"}"#),
            None
        );
        assert_eq!(
            see(r#"{"short_message":"order 00000000000000000000001"}"#),
            None
        );
    }
}
