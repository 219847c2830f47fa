//! The retry buffer: encoded frames waiting to be written, bounded in bytes.
//!
//! Frames are kept back to back in one byte ring with a ring of their lengths, so
//! buffering a record costs a copy, not an allocation. When a new frame does not
//! fit, the oldest frames are dropped (and counted by the caller) until it does:
//! the newest records are the ones worth keeping after an outage.

use std::collections::VecDeque;

use crate::frames::{take_within, FrameRun, Frames};

/// Frames in arrival order, at most `capacity` bytes of them.
#[derive(Debug)]
pub(crate) struct RetryBuffer {
    bytes: VecDeque<u8>,
    lens: VecDeque<usize>,
    capacity: usize,
}

/// Records and bytes dropped to make room.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
}

impl Dropped {
    fn add(&mut self, bytes: usize) {
        self.records += 1;
        self.bytes += bytes as u64;
    }
}

impl RetryBuffer {
    /// An empty buffer holding at most `capacity` bytes of frames.
    pub(crate) fn new(capacity: usize) -> RetryBuffer {
        RetryBuffer {
            bytes: VecDeque::new(),
            lens: VecDeque::new(),
            capacity,
        }
    }

    /// The most bytes the buffer holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes buffered.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Frames buffered.
    pub(crate) fn records(&self) -> usize {
        self.lens.len()
    }

    /// The length of the oldest frame, if any.
    pub(crate) fn front_len(&self) -> Option<usize> {
        self.lens.front().copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Whether a frame of `len` bytes fits beside what is buffered and the
    /// `reserved` bytes being written, without dropping anything.
    pub(crate) fn fits(&self, len: usize, reserved: usize) -> bool {
        self.bytes.len() + reserved + len <= self.capacity
    }

    /// Appends one frame, dropping the oldest frames while it does not fit
    /// beside the `reserved` bytes being written. When only the reserved
    /// bytes stand in the way, the frame is kept anyway: the buffer then
    /// exceeds its capacity by at most those bytes, briefly, rather than drop
    /// the newest record. A frame larger than the whole capacity is dropped
    /// itself (the builder keeps the capacity above the frame limit, so this
    /// does not happen). Returns whether the frame was kept.
    pub(crate) fn push(&mut self, frame: &[u8], reserved: usize, dropped: &mut Dropped) -> bool {
        if frame.len() > self.capacity {
            dropped.add(frame.len());
            return false;
        }
        while !self.lens.is_empty() && self.bytes.len() + reserved + frame.len() > self.capacity {
            self.drop_oldest(dropped);
        }
        self.bytes.extend(frame);
        self.lens.push_back(frame.len());
        true
    }

    /// Takes all the frames of `data` (of lengths `lens`) at once, when the
    /// buffer is empty and they fit beside the `reserved` bytes being
    /// written: the buffer adopts `data`'s allocation and leaves `data` empty,
    /// holding the buffer's former one. Nothing is copied. Returns whether it
    /// did; if not, nothing changed.
    ///
    /// The common case while the endpoint keeps up: each batch finds the
    /// buffer drained. Only allocations of at most half the capacity change
    /// hands (see [`rotates`](Self::rotates)).
    pub(crate) fn adopt(&mut self, frames: &mut Frames, reserved: usize) -> bool {
        if !self.lens.is_empty()
            || frames.bytes() + reserved > self.capacity
            || !self.rotates(frames.capacity())
        {
            return false;
        }
        // Empty: turning it into a vector moves nothing.
        let mut former = Vec::from(std::mem::take(&mut self.bytes));
        former.clear();
        let (data, lens) = frames.parts_mut();
        self.bytes = VecDeque::from(std::mem::replace(data, former));
        self.lens.extend(lens.drain(..));
        true
    }

    /// Whether the ring's allocation and another of `other` bytes may change
    /// hands: both at most half the capacity. A ring grown larger through a
    /// backlog keeps its allocation (and frames are copied in and out, as
    /// they would be without hand-overs): large allocations passed around and
    /// freed by whoever ends up with one would be allocated again at the next
    /// backlog, and the allocator, after freeing a few, keeps such memory
    /// rather than return it (the process's footprint then grows past what
    /// the buffers hold).
    fn rotates(&self, other: usize) -> bool {
        let limit = self.capacity / 2;
        self.bytes.capacity() <= limit && other <= limit
    }

    /// Puts frames that could not be written back in front, in order. If they no
    /// longer fit, the oldest of them are dropped.
    pub(crate) fn unshift(&mut self, frames: FrameRun<'_>, dropped: &mut Dropped) {
        let (data, lens) = (frames.data(), frames.lens());
        let mut start = 0;
        let mut total: usize = lens.iter().sum();
        let mut skip = 0;
        while skip < lens.len() && self.bytes.len() + total > self.capacity {
            dropped.add(lens[skip]);
            total -= lens[skip];
            start += lens[skip];
            skip += 1;
        }
        put_front(&mut self.bytes, &data[start..start + total]);
        put_front(&mut self.lens, &lens[skip..]);
    }

    /// Moves frames from the front into `out` (and their lengths into `lens`):
    /// at least one frame if any, then more while the total stays within
    /// `max_bytes`.
    pub(crate) fn take(&mut self, max_bytes: usize, out: &mut Frames) {
        let (total, count) = take_within(&self.lens, max_bytes);
        let (out, lens) = out.parts_mut();
        if count == self.lens.len() && out.is_empty() && self.rotates(out.capacity()) {
            // Everything: the allocations change hands instead of the bytes
            // (nothing moves while the ring starts at its allocation's start,
            // as it does after `adopt` or a previous take of everything;
            // otherwise the bytes are moved once, as a copy would).
            let spare = std::mem::take(out);
            *out = Vec::from(std::mem::replace(&mut self.bytes, VecDeque::from(spare)));
            move_front(&mut self.lens, count, lens);
            return;
        }
        move_front(&mut self.bytes, total, out);
        move_front(&mut self.lens, count, lens);
    }

    /// Empties the buffer, returning how many records and bytes it held.
    pub(crate) fn clear(&mut self) -> Dropped {
        let dropped = Dropped {
            records: self.lens.len() as u64,
            bytes: self.bytes.len() as u64,
        };
        self.bytes.clear();
        self.lens.clear();
        dropped
    }

    fn drop_oldest(&mut self, dropped: &mut Dropped) {
        if let Some(len) = self.lens.pop_front() {
            self.bytes.drain(..len);
            dropped.add(len);
        }
    }
}

/// Puts `items` in front of `to`, in order, a slice at a time: appended,
/// then the ring turned (one `push_front` per byte held the buffer's lock
/// for megabytes' worth of calls).
fn put_front<T: Copy>(to: &mut VecDeque<T>, items: &[T]) {
    to.extend(items);
    to.rotate_right(items.len());
}

/// Moves the first `count` items of `from` (at most all) to the end of
/// `to`, a slice at a time (`extend` from a `drain` would push them one by
/// one).
fn move_front<T: Copy>(from: &mut VecDeque<T>, count: usize, to: &mut Vec<T>) {
    debug_assert!(count <= from.len());
    let count = count.min(from.len());
    let (a, b) = from.as_slices();
    let from_a = count.min(a.len());
    to.extend_from_slice(&a[..from_a]);
    to.extend_from_slice(&b[..count - from_a]);
    from.drain(..count);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(buffer: &mut RetryBuffer) -> Vec<Vec<u8>> {
        let mut out = Frames::default();
        buffer.take(usize::MAX, &mut out);
        out.run().iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn says_what_it_holds_and_what_fits_to_the_byte() {
        let mut buffer = RetryBuffer::new(10);
        let mut dropped = Dropped::default();
        assert_eq!(buffer.capacity(), 10);
        assert!(buffer.is_empty());
        assert_eq!(buffer.front_len(), None);
        buffer.push(b"abc", 0, &mut dropped);
        buffer.push(b"de", 0, &mut dropped);
        assert!(!buffer.is_empty());
        assert_eq!(buffer.front_len(), Some(3));
        assert_eq!((buffer.records(), buffer.bytes()), (2, 5));
        // 5 buffered + 2 reserved + 3 new = 10, the capacity: it fits; a byte
        // more, new or reserved, does not.
        assert!(buffer.fits(3, 2));
        assert!(!buffer.fits(4, 2));
        assert!(!buffer.fits(3, 3));
        assert!(buffer.fits(0, 5));
        assert_eq!(dropped, Dropped::default());
    }

    #[test]
    fn a_frame_of_exactly_the_capacity_is_kept() {
        let mut buffer = RetryBuffer::new(10);
        let mut dropped = Dropped::default();
        buffer.push(b"old", 0, &mut dropped);
        buffer.push(b"0123456789", 0, &mut dropped);
        assert_eq!(
            dropped,
            Dropped {
                records: 1,
                bytes: 3
            }
        );
        assert_eq!(frames(&mut buffer), vec![b"0123456789".to_vec()]);
        // One byte more than the whole buffer: dropped itself.
        buffer.push(b"0123456789A", 0, &mut dropped);
        assert_eq!(
            dropped,
            Dropped {
                records: 2,
                bytes: 14
            }
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn keeps_order_and_drops_the_oldest_when_full() {
        let mut buffer = RetryBuffer::new(11);
        let mut dropped = Dropped::default();
        for frame in [&b"aaa"[..], b"bbb", b"ccc", b"dd"] {
            buffer.push(frame, 0, &mut dropped);
        }
        assert_eq!(dropped, Dropped::default());
        buffer.push(b"eeee", 0, &mut dropped);
        // "aaa" and "bbb" make room for "eeee": 3 + 2 + 4 <= 11.
        assert_eq!(
            dropped,
            Dropped {
                records: 2,
                bytes: 6
            }
        );
        assert_eq!(buffer.bytes(), 9);
        assert_eq!(
            frames(&mut buffer),
            vec![b"ccc".to_vec(), b"dd".to_vec(), b"eeee".to_vec()]
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn adopts_a_whole_batch_only_into_an_empty_buffer_with_room() {
        let mut buffer = RetryBuffer::new(24);
        let mut dropped = Dropped::default();
        // An allocation over half the capacity never changes hands.
        let mut large = Vec::with_capacity(13);
        large.extend_from_slice(b"aaabbbbcc");
        let mut large = Frames::from_parts(large, vec![3, 4, 2]);
        assert!(!buffer.adopt(&mut large, 0));
        // Room for one more byte, so that the push below does not grow it.
        let mut data = Vec::with_capacity(12);
        data.extend_from_slice(b"aaabbbbcc");
        let allocation = data.as_ptr();
        let mut data = Frames::from_parts(data, vec![3, 4, 2]);
        // Not beside 16 reserved bytes: nothing changes.
        assert!(!buffer.adopt(&mut data, 16));
        assert_eq!(data.run().data(), b"aaabbbbcc");
        assert!(buffer.is_empty());
        // Beside 15: taken whole, the vector itself.
        assert!(buffer.adopt(&mut data, 15));
        assert!(data.is_empty() && data.bytes() == 0);
        assert_eq!(buffer.records(), 3);
        assert_eq!(buffer.bytes(), 9);
        // Not empty any more: the next batch is for `push`.
        let mut more = Frames::from_parts(b"d".to_vec(), vec![1]);
        assert!(!buffer.adopt(&mut more, 0));
        buffer.push(more.run().data(), 0, &mut dropped);
        // Taking everything hands the same allocation on, frames in order.
        let mut out = Frames::default();
        buffer.take(usize::MAX, &mut out);
        assert_eq!(out.run().data().as_ptr(), allocation);
        assert_eq!(out.run().data(), b"aaabbbbccd");
        assert_eq!(out.run().lens(), [3, 4, 2, 1]);
        assert!(buffer.is_empty());
        assert_eq!(dropped, Dropped::default());
    }

    #[test]
    fn taking_everything_from_a_wrapped_ring_keeps_the_order() {
        let mut buffer = RetryBuffer::new(8);
        let mut dropped = Dropped::default();
        let mut out = Frames::default();
        for round in 0..20u8 {
            // Part taken, part left, so that the ring wraps around.
            for frame in [[round; 3], [round + 100; 3]] {
                buffer.push(&frame, 0, &mut dropped);
            }
            out.clear();
            buffer.take(3, &mut out);
            assert_eq!(out.run().data(), [round; 3]);
            out.clear();
            buffer.take(usize::MAX, &mut out);
            assert_eq!(out.run().data(), [round + 100; 3]);
            assert_eq!(out.run().lens(), [3]);
            // The emptied `out` comes back for the next take.
            out.clear();
        }
        assert_eq!(dropped, Dropped::default());
    }

    #[test]
    fn reserved_bytes_count_against_the_capacity() {
        let mut buffer = RetryBuffer::new(10);
        let mut dropped = Dropped::default();
        buffer.push(b"aaaa", 6, &mut dropped);
        // "aaaa" makes room for "bb" beside the 6 reserved bytes.
        buffer.push(b"bb", 6, &mut dropped);
        assert_eq!(dropped.records, 1);
        // Only the reserved bytes are in the way: kept, over capacity briefly.
        buffer.push(b"cccccc", 6, &mut dropped);
        assert_eq!(dropped.records, 2);
        buffer.push(b"far too large", 0, &mut dropped);
        assert_eq!(dropped.records, 3);
        assert_eq!(frames(&mut buffer), vec![b"cccccc".to_vec()]);
    }

    #[test]
    fn take_respects_the_byte_limit_but_always_takes_one() {
        let mut buffer = RetryBuffer::new(100);
        let mut dropped = Dropped::default();
        for frame in [&b"0123456789"[..], b"abc", b"de", b"f"] {
            buffer.push(frame, 0, &mut dropped);
        }
        let mut out = Frames::default();
        buffer.take(4, &mut out);
        assert_eq!(
            (out.run().data(), out.run().lens()),
            (&b"0123456789"[..], &[10][..])
        );
        out.clear();
        buffer.take(5, &mut out);
        assert_eq!(
            (out.run().data(), out.run().lens()),
            (&b"abcde"[..], &[3, 2][..])
        );
        assert_eq!(buffer.records(), 1);
    }

    #[test]
    fn unshift_restores_order_and_drops_the_oldest_of_what_no_longer_fits() {
        let mut buffer = RetryBuffer::new(8);
        let mut dropped = Dropped::default();
        buffer.push(b"xy", 0, &mut dropped);
        buffer.unshift(FrameRun::new(b"aaabbbb", &[3, 4]), &mut dropped);
        // 2 + 7 > 8: "aaa" goes.
        assert_eq!(
            dropped,
            Dropped {
                records: 1,
                bytes: 3
            }
        );
        assert_eq!(frames(&mut buffer), vec![b"bbbb".to_vec(), b"xy".to_vec()]);
        buffer.unshift(FrameRun::new(b"12", &[2]), &mut dropped);
        assert_eq!(frames(&mut buffer), vec![b"12".to_vec()]);
    }

    /// Frames put back in front of a ring that wraps around its allocation
    /// keep their order, and the frames behind them theirs.
    #[test]
    fn unshift_into_a_wrapped_ring_keeps_the_order() {
        let mut buffer = RetryBuffer::new(32);
        let mut dropped = Dropped::default();
        for frame in [b"abcd", b"efgh", b"ijkl"] {
            buffer.push(frame, 0, &mut dropped);
        }
        let mut written = Frames::default();
        buffer.take(8, &mut written);
        for frame in [b"mnop".as_slice(), b"qrstuvwxyz"] {
            buffer.push(frame, 0, &mut dropped);
        }
        buffer.unshift(written.run(), &mut dropped);
        assert_eq!(dropped, Dropped::default());
        let expected: Vec<Vec<u8>> = ["abcd", "efgh", "ijkl", "mnop", "qrstuvwxyz"]
            .map(|f| f.as_bytes().to_vec())
            .into();
        assert_eq!(frames(&mut buffer), expected);
    }

    #[test]
    fn unshift_keeps_every_frame_that_fits_exactly() {
        let mut buffer = RetryBuffer::new(10);
        let mut dropped = Dropped::default();
        buffer.push(b"wxyz", 0, &mut dropped);
        // 4 + 6 = 10, the capacity: nothing goes.
        buffer.unshift(FrameRun::new(b"aaabbb", &[3, 3]), &mut dropped);
        assert_eq!(dropped, Dropped::default());
        assert_eq!(
            frames(&mut buffer),
            vec![b"aaa".to_vec(), b"bbb".to_vec(), b"wxyz".to_vec()]
        );
    }

    #[test]
    fn clear_says_what_it_dropped() {
        let mut buffer = RetryBuffer::new(10);
        let mut dropped = Dropped::default();
        buffer.push(b"abc", 0, &mut dropped);
        buffer.push(b"de", 0, &mut dropped);
        assert_eq!(
            buffer.clear(),
            Dropped {
                records: 2,
                bytes: 5
            }
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.bytes(), 0);
    }

    #[test]
    fn wraps_around_the_ring() {
        let mut buffer = RetryBuffer::new(16);
        let mut dropped = Dropped::default();
        let mut expected = Vec::new();
        for i in 0..100u8 {
            let frame = vec![i; 1 + usize::from(i % 5)];
            buffer.push(&frame, 0, &mut dropped);
            if i % 3 == 0 {
                for got in frames(&mut buffer) {
                    expected.push(got);
                }
            }
        }
        expected.extend(frames(&mut buffer));
        let mut last = None;
        for frame in &expected {
            assert!(frame.iter().all(|&b| b == frame[0]));
            assert!(last < Some(frame[0]), "out of order");
            last = Some(frame[0]);
        }
        assert_eq!(expected.len() as u64 + dropped.records, 100);
    }
}
