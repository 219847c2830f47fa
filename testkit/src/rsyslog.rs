//! A private `rsyslogd` used as a real, independent GELF and LTSV receiver.
//!
//! [`Rsyslog::start`] writes a configuration into a fresh temporary directory,
//! validates it with `rsyslogd -N1`, runs `rsyslogd -n` in the foreground and
//! waits (at most 10 s) until every input completes a connection (a full TLS
//! handshake for the TLS inputs). Dropping the [`Rsyslog`] kills the process
//! and waits for it. Only `imtcp` and `mmjsonparse` are loaded; every input
//! listens on `127.0.0.1` on its own port, picked free at start between 20000
//! and 31999 (below the kernel's ephemeral range, so `bind(0)` listeners and
//! outgoing connections of other tests cannot take it); if another instance
//! takes one first, rsyslog logs it and the start is retried on new ports.
//!
//! # Inputs
//!
//! | [`Input`]       | payload | transport | delimiter |
//! |-----------------|---------|-----------|-----------|
//! | `GelfTcp`       | GELF    | TCP       | NUL       |
//! | `GelfTls12`     | GELF    | TLS 1.2 only | NUL    |
//! | `GelfTls13`     | GELF    | TLS 1.3 only | NUL    |
//! | `LtsvTcpLine`   | LTSV    | TCP       | LF        |
//! | `LtsvTcpNul`    | LTSV    | TCP       | NUL       |
//! | `LtsvTls12Line` | LTSV    | TLS 1.2 only | LF     |
//! | `LtsvTls13Nul`  | LTSV    | TLS 1.3 only | NUL    |
//!
//! A TLS 1.2 input refuses a TLS 1.3-only client and the other way round
//! (the handshake fails: "No supported cipher suites have been found").
//! The server presents the [`TestPki`] leaf certificate and asks for no
//! client certificate. rsyslog closes TLS connections without sending
//! `close_notify` of its own.
//!
//! NUL-delimited inputs frame like Graylog's GELF TCP input: NUL ends a
//! frame, LF does not, and octet-counted framing is off (so a frame that
//! starts with digits and a space is not taken as a length prefix).
//!
//! # What each frame becomes
//!
//! Every frame is written to the input's own output file as one line; a
//! [`Received`] holds the message text exactly as rsyslog received it
//! (`rawmsg`) and, for GELF inputs, the result of `mmjsonparse` run on that
//! whole text (`None` when it is not a JSON object).
//!
//! rsyslog keeps the text as sent, with these exceptions, seen on rsyslog
//! 8.2302:
//!
//! - empty frames (two delimiters in a row) are dropped, not recorded;
//! - bytes left after the last delimiter when a connection closes are
//!   delivered as one more frame, so a missing final delimiter cannot be
//!   detected here (use [`super::receiver::Receiver`] for that);
//! - a NUL byte inside an LF-delimited frame becomes the four characters
//!   `#000`, and a NUL at the very end of one is dropped.
//!
//! Leading and trailing spaces, TABs, CR and LF, other control characters and
//! non-ASCII bytes are kept (control characters are not escaped on reception,
//! the trailing LF is not dropped, the raw message is never trimmed). A
//! leading `<PRI>` or timestamp is not stripped from `raw` either: `raw` is
//! the text before any syslog header parsing. Frames up to 4 MiB
//! (`maxMessageSize`) arrive whole.

use std::collections::HashMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::certs::{TestPki, TlsClient, TlsVersions};
use super::receiver::Framing;
use super::show_bytes;

/// How long [`Rsyslog::start`] waits for every input to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often output files are read while waiting.
const POLL: Duration = Duration::from_millis(20);
/// How long no more frames must come, once as many as awaited are there,
/// before a wait returns them: a duplicate sent after the originals shows.
const SETTLE: Duration = Duration::from_millis(300);

/// One rsyslog input; see the module docs for what each accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// GELF over plain TCP, NUL-delimited.
    GelfTcp,
    /// GELF over TLS 1.2 only, NUL-delimited.
    GelfTls12,
    /// GELF over TLS 1.3 only, NUL-delimited.
    GelfTls13,
    /// LTSV over plain TCP, LF-delimited.
    LtsvTcpLine,
    /// LTSV over plain TCP, NUL-delimited.
    LtsvTcpNul,
    /// LTSV over TLS 1.2 only, LF-delimited.
    LtsvTls12Line,
    /// LTSV over TLS 1.3 only, NUL-delimited.
    LtsvTls13Nul,
}

impl Input {
    /// Every input, in a fixed order.
    pub const ALL: [Input; 7] = [
        Input::GelfTcp,
        Input::GelfTls12,
        Input::GelfTls13,
        Input::LtsvTcpLine,
        Input::LtsvTcpNul,
        Input::LtsvTls12Line,
        Input::LtsvTls13Nul,
    ];

    /// A short name, used for the ruleset and the output file.
    pub fn name(self) -> &'static str {
        match self {
            Input::GelfTcp => "gelf_tcp",
            Input::GelfTls12 => "gelf_tls12",
            Input::GelfTls13 => "gelf_tls13",
            Input::LtsvTcpLine => "ltsv_tcp_line",
            Input::LtsvTcpNul => "ltsv_tcp_nul",
            Input::LtsvTls12Line => "ltsv_tls12_line",
            Input::LtsvTls13Nul => "ltsv_tls13_nul",
        }
    }

    /// Whether the input parses frames as GELF JSON.
    pub fn is_gelf(self) -> bool {
        matches!(self, Input::GelfTcp | Input::GelfTls12 | Input::GelfTls13)
    }

    /// The only TLS version the input accepts, or `None` for plain TCP.
    pub fn tls(self) -> Option<TlsVersions> {
        match self {
            Input::GelfTcp | Input::LtsvTcpLine | Input::LtsvTcpNul => None,
            Input::GelfTls12 | Input::LtsvTls12Line => Some(TlsVersions::Tls12),
            Input::GelfTls13 | Input::LtsvTls13Nul => Some(TlsVersions::Tls13),
        }
    }

    /// The delimiter that ends each frame on this input.
    pub fn framing(self) -> Framing {
        match self {
            Input::LtsvTcpLine | Input::LtsvTls12Line => Framing::Newline,
            _ => Framing::Nul,
        }
    }

    /// The `imtcp` `input()` parameters, without port and ruleset.
    fn imtcp_params(self) -> String {
        let mut params = String::from("supportOctetCountedFraming=\"off\"");
        if self.framing() == Framing::Nul {
            params.push_str(" addtlFrameDelimiter=\"0\" disableLFDelimiter=\"on\"");
        }
        if let Some(versions) = self.tls() {
            let priority = match versions {
                TlsVersions::Tls12 => "NORMAL:-VERS-ALL:+VERS-TLS1.2",
                TlsVersions::Tls13 => "NORMAL:-VERS-ALL:+VERS-TLS1.3",
                TlsVersions::Both => "NORMAL",
            };
            params.push_str(&format!(
                " streamDriver.name=\"gtls\" streamDriver.mode=\"1\" \
                 streamDriver.authMode=\"anon\" gnutlsPriorityString=\"{priority}\""
            ));
        }
        params
    }
}

/// One frame as rsyslog received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// The message text exactly as rsyslog received it, without the
    /// delimiter (invalid UTF-8, if any, replaced by U+FFFD).
    pub raw: String,
    /// The same text as bytes, exact even when it is not valid UTF-8.
    pub raw_bytes: Vec<u8>,
    /// For GELF inputs, the `mmjsonparse` result of the whole frame; `None`
    /// when parsing failed, and always `None` for LTSV inputs.
    pub json: Option<Value>,
}

/// A running private `rsyslogd`; see the module docs.
pub struct Rsyslog {
    child: Mutex<Child>,
    dir: tempfile::TempDir,
    ports: HashMap<Input, u16>,
    config: PathBuf,
    internal_log: PathBuf,
    stderr_log: PathBuf,
}

/// Finds `rsyslogd` on `PATH` or in `/usr/sbin` and `/sbin`.
///
/// Panics if it is not installed: tests that need it are never skipped.
pub fn rsyslogd_path() -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("rsyslogd"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("rsyslog is not installed: run `apt-get install -y rsyslog rsyslog-gnutls`")
        })
}

/// Ports are picked in this range, below the kernel's default ephemeral
/// range (32768-60999 on Linux), so that no port handed out for `bind(0)` or
/// to an outgoing connection elsewhere in the test process can take one of
/// them between the pick and rsyslog's own bind.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// How many times [`Rsyslog::start`] tries new ports when one is taken.
const START_ATTEMPTS: usize = 5;

/// `count` distinct ports in [`PORT_RANGE`] that were free a moment ago.
fn pick_free_ports(count: usize) -> Vec<u16> {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(count);
    for attempt in 0u64.. {
        if listeners.len() == count {
            break;
        }
        assert!(
            attempt < 10_000,
            "no free port on 127.0.0.1 in {PORT_RANGE:?}"
        );
        seed.write_u64(attempt);
        let span = u64::from(PORT_RANGE.end - PORT_RANGE.start);
        let port = PORT_RANGE.start + (seed.finish() % span) as u16;
        // Holding each listener until all are picked keeps them distinct.
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            listeners.push(listener);
        }
    }
    listeners
        .iter()
        .map(|l| l.local_addr().expect("listener address").port())
        .collect()
}

/// A path as it must appear inside a quoted rsyslog string.
fn quoted(path: &Path) -> String {
    let text = path.to_str().expect("temporary paths are UTF-8");
    assert!(
        !text.contains(['"', '\\']),
        "path {text:?} cannot be quoted for rsyslog"
    );
    text.to_string()
}

fn render_config(
    dir: &Path,
    pki: &TestPki,
    ports: &HashMap<Input, u16>,
    internal: &Path,
) -> String {
    let mut conf = format!(
        r#"# Private rsyslogd for the djehouty integration tests.
# global() comes first: maxMessageSize must be set before imtcp loads.
global(
  workDirectory="{work}"
  processInternalMessages="on"
  maxMessageSize="4m"
  net.enableDNS="off"
  parser.escapeControlCharactersOnReceive="off"
  parser.dropTrailingLFOnReception="off"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp")
module(load="mmjsonparse")

# One line per frame: the exact received text first, then the parse result.
template(name="gelf_record" type="list") {{
  constant(value="{{\"raw\":\"")
  property(name="rawmsg" format="json")
  constant(value="\",\"ok\":\"")
  property(name="$.ok")
  constant(value="\",\"parsed\":")
  property(name="$!all-json")
  constant(value="}}\n")
}}
template(name="ltsv_record" type="list") {{
  constant(value="{{\"raw\":\"")
  property(name="rawmsg" format="json")
  constant(value="\"}}\n")
}}

# Internal messages arrive in the default ruleset; nothing else does.
action(type="omfile" file="{internal}")
"#,
        work = quoted(dir),
        ca = quoted(&pki.ca_pem),
        cert = quoted(&pki.cert_pem),
        key = quoted(&pki.key_pem),
        internal = quoted(internal),
    );
    for input in Input::ALL {
        let name = input.name();
        let output = quoted(&dir.join(format!("{name}.out")));
        conf.push_str(&format!("\nruleset(name=\"{name}\") {{\n"));
        if input.is_gelf() {
            conf.push_str("  action(type=\"mmjsonparse\" cookie=\"\" useRawMsg=\"on\")\n");
            conf.push_str("  set $.ok = $parsesuccess;\n");
            conf.push_str(&format!(
                "  action(type=\"omfile\" file=\"{output}\" template=\"gelf_record\")\n"
            ));
        } else {
            conf.push_str(&format!(
                "  action(type=\"omfile\" file=\"{output}\" template=\"ltsv_record\")\n"
            ));
        }
        conf.push_str("}\n");
        conf.push_str(&format!(
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"{name}\"\n  {params})\n",
            port = ports[&input],
            params = input.imtcp_params(),
        ));
    }
    conf
}

impl Rsyslog {
    /// Starts a private rsyslogd serving every [`Input`], with `pki`'s
    /// server certificate on the TLS inputs. Panics with rsyslog's own
    /// output if the configuration is refused or the inputs do not come up
    /// within 10 s. Should another process take one of the picked ports
    /// first, it starts again on new ports.
    pub fn start(pki: &TestPki) -> Rsyslog {
        let rsyslogd = rsyslogd_path();
        let mut conflicts = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Rsyslog::try_start(&rsyslogd, pki) {
                Ok(rsyslog) => return rsyslog,
                Err(log) => conflicts.push(log),
            }
        }
        panic!(
            "rsyslogd could not bind its ports in {START_ATTEMPTS} attempts:\n{}",
            conflicts.join("\n---\n")
        );
    }

    /// One start on freshly picked ports; `Err` with the internal log if a
    /// port was taken, panics on any other failure.
    fn try_start(rsyslogd: &Path, pki: &TestPki) -> Result<Rsyslog, String> {
        let dir = tempfile::Builder::new()
            .prefix("djehouty-rsyslog-")
            .tempdir()
            .expect("create a temporary directory for rsyslog");
        let base = dir
            .path()
            .canonicalize()
            .expect("canonicalize the rsyslog directory");
        let ports: HashMap<Input, u16> = Input::ALL
            .into_iter()
            .zip(pick_free_ports(Input::ALL.len()))
            .collect();
        let config = base.join("rsyslog.conf");
        let internal_log = base.join("internal.log");
        let stderr_log = base.join("rsyslogd.stderr");
        let pid_file = base.join("rsyslogd.pid");
        fs::write(&config, render_config(&base, pki, &ports, &internal_log))
            .expect("write rsyslog.conf");

        let check = Command::new(rsyslogd)
            .arg("-N1")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {} -N1: {e}", rsyslogd.display()));
        let check_output = format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        if !check.status.success() || check_output.contains("error") {
            panic!(
                "rsyslogd -N1 refused the configuration ({}):\n{check_output}\nconfiguration:\n{}",
                check.status,
                fs::read_to_string(&config).unwrap_or_default()
            );
        }

        let stderr = fs::File::create(&stderr_log).expect("create the rsyslogd stderr file");
        let stdout = stderr.try_clone().expect("clone the rsyslogd stderr file");
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .arg("-i")
            .arg(&pid_file)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", rsyslogd.display()));

        let rsyslog = Rsyslog {
            child: Mutex::new(child),
            dir,
            ports,
            config,
            internal_log,
            stderr_log,
        };
        // On error the Rsyslog is dropped here, which kills the process.
        rsyslog.wait_ready(pki)?;
        Ok(rsyslog)
    }

    /// Waits until rsyslog has set up its listeners (its start notice is
    /// logged after that) and every input completes a connection: a clean
    /// TLS handshake on the TLS inputs, so that rsyslog logs nothing about
    /// it. `Err` with the internal log if a port could not be bound.
    fn wait_ready(&self, pki: &TestPki) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = self.internal_log();
            if log.contains("Could not create tcp listener") {
                return Err(log);
            }
            if log.contains("] start") {
                break;
            }
            if let Some(status) = self.exit_status() {
                panic!(
                    "rsyslogd exited ({status}) during start-up\n{}",
                    self.diagnostics()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "rsyslogd did not log its start notice within {READY_TIMEOUT:?}\n{}",
                    self.diagnostics()
                );
            }
            thread::sleep(POLL);
        }
        for input in Input::ALL {
            let addr = self.addr(input);
            loop {
                let attempt = match input.tls() {
                    None => TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    Some(versions) => {
                        TlsClient::connect(addr, "localhost", pki.client_config(versions))
                            .and_then(TlsClient::close)
                            .map_err(|e| e.to_string())
                    }
                };
                let Err(error) = attempt else { break };
                if let Some(status) = self.exit_status() {
                    panic!(
                        "rsyslogd exited ({status}) before {input:?} was ready\n{}",
                        self.diagnostics()
                    );
                }
                if Instant::now() >= deadline {
                    panic!(
                        "rsyslog input {input:?} on {addr} not ready after {READY_TIMEOUT:?}: \
                         {error}\n{}",
                        self.diagnostics()
                    );
                }
                thread::sleep(POLL);
            }
        }
        Ok(())
    }

    /// The port `input` listens on (on 127.0.0.1).
    pub fn port(&self, input: Input) -> u16 {
        self.ports[&input]
    }

    /// The address `input` listens on.
    pub fn addr(&self, input: Input) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port(input)))
    }

    /// The temporary directory holding the configuration and all outputs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The file `input`'s frames are written to, one line each.
    pub fn output_path(&self, input: Input) -> PathBuf {
        self.config.with_file_name(format!("{}.out", input.name()))
    }

    /// rsyslog's internal messages so far (errors, warnings, start notice),
    /// followed by anything it printed on its standard streams.
    pub fn internal_log(&self) -> String {
        let internal = fs::read(&self.internal_log).unwrap_or_default();
        let stderr = fs::read(&self.stderr_log).unwrap_or_default();
        format!(
            "{}{}",
            String::from_utf8_lossy(&internal),
            String::from_utf8_lossy(&stderr)
        )
    }

    /// The frames `input` has received so far, in arrival order.
    pub fn received(&self, input: Input) -> Vec<Received> {
        let bytes = match fs::read(self.output_path(input)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read rsyslog output for {input:?}: {e}"),
        };
        // Only complete lines: rsyslog may be in the middle of a write.
        let complete = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(end) => &bytes[..end],
            None => return Vec::new(),
        };
        complete
            .split(|b| *b == b'\n')
            .map(|line| parse_record(line, input))
            .collect()
    }

    /// Waits until `input` has received at least `n` frames, and then until
    /// no more came for [`SETTLE`] (so that a duplicate arriving after the
    /// originals is seen), and returns all frames received by then. Panics
    /// after `timeout` with what did arrive and rsyslog's internal log.
    pub fn wait_for(&self, input: Input, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut settling: Option<(usize, Instant)> = None;
        loop {
            let received = self.received(input);
            if received.len() >= n {
                match settling {
                    Some((seen, since)) if seen == received.len() => {
                        if since.elapsed() >= SETTLE || Instant::now() >= deadline {
                            return received;
                        }
                    }
                    _ if Instant::now() >= deadline => return received,
                    _ => settling = Some((received.len(), Instant::now())),
                }
                thread::sleep(POLL);
                continue;
            }
            if Instant::now() >= deadline {
                let mut listing = String::new();
                for (i, r) in received.iter().enumerate() {
                    listing.push_str(&format!(
                        "  [{i}] ({} bytes) {}\n",
                        r.raw_bytes.len(),
                        show_bytes(&r.raw_bytes)
                    ));
                }
                panic!(
                    "rsyslog input {input:?} (port {}): timed out after {timeout:?} waiting for \
                     {n} frame(s); {} arrived:\n{listing}{}",
                    self.port(input),
                    received.len(),
                    self.diagnostics()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// The exit status if rsyslogd is no longer running.
    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().ok().flatten()
    }

    fn diagnostics(&self) -> String {
        let state = match self.exit_status() {
            Some(status) => format!("rsyslogd has exited: {status}"),
            None => "rsyslogd is running".to_string(),
        };
        format!(
            "{state}\nconfiguration: {}\n--- rsyslog internal log ---\n{}--- end ---",
            self.config.display(),
            self.internal_log()
        )
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Parses one output line written by the `gelf_record` or `ltsv_record`
/// template.
fn parse_record(line: &[u8], input: Input) -> Received {
    const PREFIX: &[u8] = b"{\"raw\":\"";
    let fail = |why: &str| -> ! {
        panic!(
            "unexpected rsyslog output line for {input:?} ({why}): {}",
            show_bytes(line)
        )
    };
    let Some(body) = line.strip_prefix(PREFIX) else {
        fail("no raw field")
    };
    let Some((raw_bytes, used)) = decode_json_string(body) else {
        fail("raw field is not a JSON string")
    };
    let rest = &body[used..];
    let json = if input.is_gelf() {
        // rest is `,"ok":"...","parsed":{...}}`
        let Some(tail) = rest.strip_prefix(b",") else {
            fail("no ok field")
        };
        let mut object = String::from("{");
        object.push_str(&String::from_utf8_lossy(tail));
        let record: Value =
            serde_json::from_str(&object).unwrap_or_else(|e| fail(&format!("invalid JSON: {e}")));
        match record.get("ok").and_then(Value::as_str) {
            Some("OK") => Some(record.get("parsed").cloned().unwrap_or(Value::Null)),
            Some(_) => None,
            None => fail("ok field is not a string"),
        }
    } else {
        if rest != b"}" {
            fail("trailing data after the raw field");
        }
        None
    };
    Received {
        raw: String::from_utf8_lossy(&raw_bytes).into_owned(),
        raw_bytes,
        json,
    }
}

/// Decodes a JSON string body (after its opening quote) into bytes, passing
/// unescaped bytes through as they are (rsyslog does not escape non-ASCII
/// bytes, valid UTF-8 or not). Returns the bytes and the number of input
/// bytes used, closing quote included.
fn decode_json_string(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    let hex4 = |at: usize| -> Option<u32> {
        let digits = std::str::from_utf8(input.get(at..at + 4)?).ok()?;
        u32::from_str_radix(digits, 16).ok()
    };
    loop {
        match *input.get(i)? {
            b'"' => return Some((out, i + 1)),
            b'\\' => {
                let escaped = *input.get(i + 1)?;
                i += 2;
                let simple = match escaped {
                    b'"' => Some(b'"'),
                    b'\\' => Some(b'\\'),
                    b'/' => Some(b'/'),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'u' => None,
                    _ => return None,
                };
                if let Some(byte) = simple {
                    out.push(byte);
                    continue;
                }
                let mut code = hex4(i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&code)
                    && input.get(i..i + 2) == Some(b"\\u".as_slice())
                {
                    if let Some(low) = hex4(i + 2).filter(|l| (0xDC00..0xE000).contains(l)) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        i += 6;
                    }
                }
                let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
}
