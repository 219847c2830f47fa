//! An in-process GELF UDP receiver.
//!
//! [`UdpReceiver`] binds a loopback address with an ephemeral port and a large
//! receive buffer; its own thread only reads datagrams and keeps them verbatim,
//! so that bursts of chunks are drained as fast as they arrive. Reassembly
//! happens when asked ([`reassemble`], [`UdpReceiver::reassembled`]): chunks
//! (magic `0x1e 0x0f`) are grouped by message id and put in sequence order,
//! whatever order they arrived in; a message whose chunks did not all arrive
//! is reported as incomplete. Each whole payload is then decompressed
//! according to its first bytes: `1f 8b` GZIP, `78 xx` (a valid ZLIB header)
//! ZLIB, anything else taken as uncompressed.
//!
//! Dropping the receiver stops its thread within a fraction of a second.
//! Waits are bounded and panic with a description of what did arrive.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{show_bytes, wait_for};

/// How often the receiving thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// The receive buffer asked for (the kernel may grant less).
const RECV_BUFFER: usize = 8 * 1024 * 1024;
/// Decompressed payloads larger than this are refused.
const MAX_DECOMPRESSED: u64 = 64 * 1024 * 1024;

/// How a payload was compressed, as told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GZIP (`1f 8b`).
    Gzip,
    /// ZLIB (`78 xx`, a valid header).
    Zlib,
    /// Not compressed.
    Plain,
}

/// One whole GELF message.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The message id, for a chunked message.
    pub id: Option<[u8; 8]>,
    /// Chunks it came in (0: one unchunked datagram).
    pub chunks: usize,
    /// Size of the largest datagram it came in.
    pub largest_datagram: usize,
    /// Bytes of the payload as sent (compressed).
    pub wire_bytes: usize,
    /// How the payload was compressed.
    pub encoding: Encoding,
    /// The decompressed payload: the GELF JSON text.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {} chunk(s), {} wire bytes, {} bytes {}",
            self.encoding,
            self.chunks,
            self.wire_bytes,
            self.bytes.len(),
            show_bytes(&self.bytes)
        )
    }
}

/// A chunked message some of whose chunks are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    /// The message id.
    pub id: [u8; 8],
    /// The sequence count the chunks announced.
    pub count: usize,
    /// The sequence numbers that arrived, sorted.
    pub received: Vec<usize>,
}

/// What a set of datagrams amounts to.
#[derive(Debug, Default)]
pub struct Reassembled {
    /// Whole messages, in the order they were completed.
    pub messages: Vec<Message>,
    /// Chunked messages still missing chunks.
    pub incomplete: Vec<Incomplete>,
    /// Malformed chunks and payloads that could not be decompressed.
    pub errors: Vec<String>,
}

struct Partial {
    count: usize,
    parts: Vec<Option<Vec<u8>>>,
    largest: usize,
}

/// Builds one GELF chunk by hand (for tests of the receiver itself).
pub fn chunk(id: [u8; 8], seq: u8, count: u8, part: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1e, 0x0f];
    out.extend_from_slice(&id);
    out.push(seq);
    out.push(count);
    out.extend_from_slice(part);
    out
}

/// GZIP-compresses `bytes` (for tests of the receiver itself).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// ZLIB-compresses `bytes` (for tests of the receiver itself).
pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("zlib into memory");
    encoder.finish().expect("zlib into memory")
}

/// Tells how `payload` is compressed and decompresses it.
pub fn decompress(payload: &[u8]) -> Result<(Encoding, Vec<u8>), String> {
    let mut out = Vec::new();
    let encoding = match payload {
        [0x1f, 0x8b, ..] => {
            flate2::read::GzDecoder::new(payload)
                .take(MAX_DECOMPRESSED)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad GZIP payload: {e}"))?;
            Encoding::Gzip
        }
        [0x78, b, ..] if (0x78u16 * 256 + u16::from(*b)).is_multiple_of(31) => {
            flate2::read::ZlibDecoder::new(payload)
                .take(MAX_DECOMPRESSED)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad ZLIB payload: {e}"))?;
            Encoding::Zlib
        }
        _ => {
            out.extend_from_slice(payload);
            Encoding::Plain
        }
    };
    Ok((encoding, out))
}

/// Reassembles datagrams received in any order: see the module docs.
pub fn reassemble<'a>(datagrams: impl IntoIterator<Item = &'a [u8]>) -> Reassembled {
    let mut result = Reassembled::default();
    let mut partial: HashMap<[u8; 8], Partial> = HashMap::new();
    // Ids in the order their first chunk arrived, for a stable report.
    let mut order: Vec<[u8; 8]> = Vec::new();
    let finish = |result: &mut Reassembled,
                  id: Option<[u8; 8]>,
                  chunks: usize,
                  largest: usize,
                  payload: Vec<u8>| {
        match decompress(&payload) {
            Ok((encoding, bytes)) => result.messages.push(Message {
                id,
                chunks,
                largest_datagram: largest,
                wire_bytes: payload.len(),
                encoding,
                bytes,
            }),
            Err(e) => result.errors.push(format!("{e}: {}", show_bytes(&payload))),
        }
    };
    for datagram in datagrams {
        if !datagram.starts_with(&[0x1e, 0x0f]) {
            finish(&mut result, None, 0, datagram.len(), datagram.to_vec());
            continue;
        }
        if datagram.len() < 12 {
            result
                .errors
                .push(format!("chunk shorter than its header: {datagram:?}"));
            continue;
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&datagram[2..10]);
        let (seq, count) = (usize::from(datagram[10]), usize::from(datagram[11]));
        if count == 0 || count > 128 || seq >= count {
            result.errors.push(format!(
                "chunk {seq} of {count} of message {id:02x?}: out of range (count 1 to 128)"
            ));
            continue;
        }
        let entry = partial.entry(id).or_insert_with(|| {
            order.push(id);
            Partial {
                count,
                parts: vec![None; count],
                largest: 0,
            }
        });
        if entry.count != count {
            result.errors.push(format!(
                "message {id:02x?}: chunk {seq} says {count} chunks, an earlier one said {}",
                entry.count
            ));
            continue;
        }
        if entry.parts[seq].is_some() {
            result
                .errors
                .push(format!("message {id:02x?}: chunk {seq} arrived twice"));
            continue;
        }
        entry.parts[seq] = Some(datagram[12..].to_vec());
        entry.largest = entry.largest.max(datagram.len());
        if entry.parts.iter().all(Option::is_some) {
            let done = partial.remove(&id).expect("entry just filled");
            let payload: Vec<u8> = done.parts.into_iter().flatten().flatten().collect();
            finish(&mut result, Some(id), done.count, done.largest, payload);
        }
    }
    for id in order {
        if let Some(p) = partial.remove(&id) {
            result.incomplete.push(Incomplete {
                id,
                count: p.count,
                received: (0..p.count).filter(|&i| p.parts[i].is_some()).collect(),
            });
        }
    }
    result
}

struct Shared {
    datagrams: Mutex<Vec<Vec<u8>>>,
    errors: Mutex<Vec<String>>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.datagrams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A loopback GELF UDP receiver; see the module docs.
pub struct UdpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl UdpReceiver {
    /// A receiver on `127.0.0.1` (ephemeral port).
    pub fn start() -> UdpReceiver {
        UdpReceiver::bind((Ipv4Addr::LOCALHOST, 0).into()).expect("bind a UDP port on 127.0.0.1")
    }

    /// A receiver on `[::1]`, if this machine has IPv6 loopback.
    pub fn ipv6() -> io::Result<UdpReceiver> {
        UdpReceiver::bind((Ipv6Addr::LOCALHOST, 0).into())
    }

    /// A receiver on `addr` (port 0 for an ephemeral one).
    pub fn bind(addr: SocketAddr) -> io::Result<UdpReceiver> {
        let domain = if addr.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
        // Best effort: the kernel caps it, and a smaller buffer only makes
        // losses under load more likely.
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        socket.bind(&addr.into())?;
        let socket: UdpSocket = socket.into();
        socket.set_read_timeout(Some(POLL))?;
        let addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            datagrams: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("udp-receiver".into())
                .spawn(move || receive(socket, &shared))?
        };
        Ok(UdpReceiver {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every datagram received so far, verbatim, in arrival order.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        self.shared.lock().clone()
    }

    /// Socket errors the receiving thread saw.
    pub fn errors(&self) -> Vec<String> {
        self.shared
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the datagrams received so far amount to.
    pub fn reassembled(&self) -> Reassembled {
        let datagrams = self.shared.lock();
        reassemble(datagrams.iter().map(Vec::as_slice))
    }

    /// The whole messages received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.reassembled().messages
    }

    /// Waits until at least `n` whole messages arrived; panics after `timeout`
    /// with what did arrive.
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<Message> {
        let all = |datagrams: &Vec<Vec<u8>>| reassemble(datagrams.iter().map(Vec::as_slice));
        let datagrams = wait_for(
            &self.shared.datagrams,
            &self.shared.changed,
            timeout,
            |datagrams| all(datagrams).messages.len() >= n,
            |datagrams| {
                let done = all(datagrams);
                format!(
                    "waited {timeout:?} for {n} GELF message(s) over UDP; got {} in {} \
                     datagram(s): {:#?}\nincomplete: {:?}\nerrors: {:?}",
                    done.messages.len(),
                    datagrams.len(),
                    done.messages,
                    done.incomplete,
                    done.errors
                )
            },
        );
        all(&datagrams).messages
    }

    /// Panics if some message is incomplete or some datagram malformed.
    pub fn assert_complete(&self) {
        let done = self.reassembled();
        assert!(
            done.incomplete.is_empty() && done.errors.is_empty(),
            "incomplete messages: {:?}\nerrors: {:?}",
            done.incomplete,
            done.errors
        );
    }
}

fn receive(socket: UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::SeqCst) {
        match socket.recv(&mut buf) {
            Ok(n) => {
                shared.lock().push(buf[..n].to_vec());
                shared.changed.notify_all();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                shared
                    .errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(e.to_string());
                thread::sleep(POLL);
            }
        }
    }
}

impl Drop for UdpReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
