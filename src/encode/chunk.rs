//! GELF chunking: a message larger than one datagram goes out in up to 128
//! chunks, each with a 12-byte header (magic, message id, sequence number,
//! count) that lets the receiver put the message back together.

/// The first two bytes of a GELF chunk.
pub(crate) const CHUNK_MAGIC: [u8; 2] = [0x1e, 0x0f];
/// Bytes of a chunk's header: magic, message id, sequence number and count.
pub(crate) const CHUNK_HEADER_BYTES: usize = 12;
/// The most chunks a GELF message may have; receivers drop larger messages.
pub(crate) const MAX_CHUNKS: usize = 128;

/// The largest message (compressed, as sent) that `chunk_size`-byte datagrams
/// can carry: 128 chunks of `chunk_size - 12` bytes each.
pub(crate) fn max_message_bytes(chunk_size: usize) -> usize {
    MAX_CHUNKS * chunk_size.saturating_sub(CHUNK_HEADER_BYTES)
}

/// How a message of `len` bytes goes out in `chunk_size`-byte datagrams:
/// `Some(0)` unchunked, `Some(n)` in `n` chunks, `None` when it would need
/// more than [`MAX_CHUNKS`].
pub(crate) fn chunk_count(len: usize, chunk_size: usize) -> Option<usize> {
    if len <= chunk_size {
        return Some(0);
    }
    let per_chunk = chunk_size.checked_sub(CHUNK_HEADER_BYTES)?;
    if per_chunk == 0 {
        return None;
    }
    let count = len.div_ceil(per_chunk);
    (count <= MAX_CHUNKS).then_some(count)
}

/// Writes into `out` (cleared first) chunk `seq` of `count` of message `id`,
/// carrying `part`.
pub(crate) fn write_chunk(out: &mut Vec<u8>, id: [u8; 8], seq: u8, count: u8, part: &[u8]) {
    out.clear();
    out.extend_from_slice(&CHUNK_MAGIC);
    out.extend_from_slice(&id);
    out.push(seq);
    out.push(count);
    out.extend_from_slice(part);
}

/// Message ids: a random per-link starting point plus a counter, mixed by a
/// bijection so that the ids of one link never repeat (before 2^64 messages)
/// and those of different links or processes are unlikely to meet.
#[derive(Debug)]
pub(crate) struct MessageIds {
    base: u64,
    next: u64,
}

impl MessageIds {
    pub(crate) fn new() -> MessageIds {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let base = fastrand::u64(..) ^ nanos.rotate_left(17) ^ u64::from(std::process::id());
        MessageIds { base, next: 0 }
    }

    /// The next message id.
    pub(crate) fn next_id(&mut self) -> [u8; 8] {
        let n = self.base.wrapping_add(self.next);
        self.next = self.next.wrapping_add(1);
        mix(n).to_be_bytes()
    }
}

/// The SplitMix64 finalizer: a bijection on `u64` that scatters consecutive
/// inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn chunk_header_layout() {
        let mut out = Vec::new();
        let id = [1, 2, 3, 4, 5, 6, 7, 8];
        write_chunk(&mut out, id, 3, 9, b"payload");
        assert_eq!(
            out,
            [
                &[0x1e, 0x0f][..],
                &[1, 2, 3, 4, 5, 6, 7, 8],
                &[3, 9],
                b"payload"
            ]
            .concat()
        );
        assert_eq!(out.len(), CHUNK_HEADER_BYTES + 7);
        // Reused buffers start over.
        write_chunk(&mut out, id, 0, 1, b"");
        assert_eq!(out.len(), CHUNK_HEADER_BYTES);
    }

    #[test]
    fn the_128_chunk_limit() {
        for chunk_size in [512, 1420, 8192, 65_507] {
            let per_chunk = chunk_size - CHUNK_HEADER_BYTES;
            assert_eq!(max_message_bytes(chunk_size), 128 * per_chunk);
            // A message that fits one datagram is not chunked.
            assert_eq!(chunk_count(1, chunk_size), Some(0));
            assert_eq!(chunk_count(chunk_size, chunk_size), Some(0));
            assert_eq!(chunk_count(chunk_size + 1, chunk_size), Some(2));
            assert_eq!(chunk_count(3 * per_chunk, chunk_size), Some(3));
            assert_eq!(chunk_count(3 * per_chunk + 1, chunk_size), Some(4));
            let max = max_message_bytes(chunk_size);
            assert_eq!(chunk_count(max, chunk_size), Some(128));
            assert_eq!(chunk_count(max + 1, chunk_size), None);
        }
        // Degenerate sizes (the builder refuses them) never loop or divide by zero.
        assert_eq!(chunk_count(12, 12), Some(0));
        assert_eq!(chunk_count(100, 12), None);
        assert_eq!(chunk_count(100, 10), None);
    }

    /// `mix` is SplitMix64's finalizer: values from an independent
    /// implementation of it.
    #[test]
    fn mix_is_splitmix64s_finalizer() {
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161d_100b_05e5);
        assert_eq!(mix(2), 0xdbd2_3897_3a2b_148a);
        // SplitMix64's first output from seed 0.
        assert_eq!(mix(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        assert_eq!(mix(u64::MAX), 0xb4d0_55fc_f2cb_bd7b);
    }

    #[test]
    fn message_ids_do_not_repeat() {
        let mut ids = MessageIds::new();
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(ids.next_id()));
        }
        // Wrapping around the counter's range changes nothing.
        let mut ids = MessageIds {
            base: u64::MAX - 2,
            next: 0,
        };
        let mut seen = HashSet::new();
        for _ in 0..10 {
            assert!(seen.insert(ids.next_id()));
        }
        // Two links start apart.
        assert_ne!(MessageIds::new().next_id(), MessageIds::new().next_id());
    }
}
