//! Frames: encoded records back to back in one buffer, with each one's
//! length. What the pipeline encodes into, the processors stage, the retry
//! buffer holds and the transports send.

/// Encoded records back to back, and each one's length (the lengths always
/// add up to the bytes).
#[derive(Debug, Default)]
pub(crate) struct Frames {
    data: Vec<u8>,
    lens: Vec<usize>,
}

impl Frames {
    /// No frames, with room for `bytes` bytes reserved.
    pub(crate) fn with_capacity(bytes: usize) -> Frames {
        Frames {
            data: Vec::with_capacity(bytes),
            lens: Vec::new(),
        }
    }

    /// How many frames.
    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there is no frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The bytes of all frames.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The bytes the data's allocation holds.
    pub(crate) fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Makes room for `bytes` more bytes.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.data.reserve(bytes);
    }

    /// Removes every frame, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.lens.clear();
    }

    /// Appends a copy of one frame.
    pub(crate) fn push(&mut self, frame: &[u8]) {
        self.data.extend_from_slice(frame);
        self.lens.push(frame.len());
    }

    /// Appends one frame that `write` appends to the data; returns what
    /// `write` returned.
    pub(crate) fn push_with<T>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let start = self.data.len();
        let value = write(&mut self.data);
        self.lens.push(self.data.len() - start);
        value
    }

    /// All the frames, borrowed.
    pub(crate) fn run(&self) -> FrameRun<'_> {
        FrameRun {
            data: &self.data,
            lens: &self.lens,
        }
    }

    /// The data and the lengths, for the retry buffer to trade allocations
    /// with: whoever changes them keeps the lengths adding up to the bytes.
    pub(crate) fn parts_mut(&mut self) -> (&mut Vec<u8>, &mut Vec<usize>) {
        (&mut self.data, &mut self.lens)
    }

    /// Frames over `data` cut by `lens`, which must add up to its length.
    #[cfg(test)]
    pub(crate) fn from_parts(data: Vec<u8>, lens: Vec<usize>) -> Frames {
        debug_assert_eq!(lens.iter().sum::<usize>(), data.len());
        Frames { data, lens }
    }
}

/// Some frames, borrowed: one stretch of a [`Frames`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameRun<'a> {
    data: &'a [u8],
    lens: &'a [usize],
}

impl<'a> FrameRun<'a> {
    /// Frames over `data` cut by `lens`, which must add up to its length.
    #[cfg(test)]
    pub(crate) fn new(data: &'a [u8], lens: &'a [usize]) -> FrameRun<'a> {
        debug_assert_eq!(lens.iter().sum::<usize>(), data.len());
        FrameRun { data, lens }
    }

    /// How many frames.
    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there is no frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The bytes of all frames, back to back.
    pub(crate) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Each frame's length.
    pub(crate) fn lens(&self) -> &'a [usize] {
        self.lens
    }

    /// Each frame.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = self.data;
        self.lens.iter().scan(0, move |start, &len| {
            let frame = data.get(*start..*start + len);
            *start += len;
            frame
        })
    }

    /// The first `count` frames, and the rest.
    pub(crate) fn split_at(&self, count: usize) -> (FrameRun<'a>, FrameRun<'a>) {
        let count = count.min(self.lens.len());
        let (bytes, _) = whole_in(&self.lens[..count], usize::MAX);
        let (data_a, data_b) = self.data.split_at(bytes);
        let (lens_a, lens_b) = self.lens.split_at(count);
        (
            FrameRun {
                data: data_a,
                lens: lens_a,
            },
            FrameRun {
                data: data_b,
                lens: lens_b,
            },
        )
    }

    /// How many frames, from the front, lie wholly within the first `bytes`
    /// bytes: those a write that stopped after `bytes` delivered whole.
    pub(crate) fn whole_in(&self, bytes: usize) -> usize {
        whole_in(self.lens, bytes).1
    }

    /// How many frames, from the front, to send in one go of at most `limit`
    /// bytes: see [`take_within`].
    pub(crate) fn take_within(&self, limit: usize) -> usize {
        take_within(self.lens, limit).1
    }
}

/// The bytes and the number of the frames of lengths `lens`, from the front,
/// that lie wholly within `bytes` bytes.
pub(crate) fn whole_in<'a>(
    lens: impl IntoIterator<Item = &'a usize>,
    bytes: usize,
) -> (usize, usize) {
    let mut total = 0;
    let mut count = 0;
    for &len in lens {
        match total + len {
            end if end <= bytes => total = end,
            _ => break,
        }
        count += 1;
    }
    (total, count)
}

/// The bytes and the number of the frames of lengths `lens`, from the front,
/// to take in one go of at most `limit` bytes: at least one frame if any (a
/// frame larger than the limit still goes, alone), then more while the total
/// stays within the limit.
pub(crate) fn take_within<'a>(
    lens: impl IntoIterator<Item = &'a usize> + Clone,
    limit: usize,
) -> (usize, usize) {
    match whole_in(lens.clone(), limit) {
        (_, 0) => lens.into_iter().next().map_or((0, 0), |&len| (len, 1)),
        within => within,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Room reserved is room beside the frames held: a staging area so
    /// reserved is never grown by the logging threads.
    #[test]
    fn reserve_makes_room_beside_the_frames() {
        let mut frames = Frames::default();
        frames.push(b"abc");
        frames.reserve(1000);
        assert!(frames.capacity() >= 1003, "{}", frames.capacity());
        let before = frames.capacity();
        frames.push(&[b'x'; 1000]);
        assert_eq!(frames.capacity(), before);
    }

    #[test]
    fn whole_frames_within_a_byte_count() {
        let run = FrameRun::new(b"aaabbccccd", &[3, 2, 4, 1]);
        assert_eq!(
            [0, 2, 3, 4, 5, 8, 9, 10, 99].map(|bytes| run.whole_in(bytes)),
            [0, 0, 1, 1, 2, 2, 3, 4, 4]
        );
        // At least one frame, even larger than the limit.
        assert_eq!(
            [0, 1, 3, 5, 8, 9, 10].map(|limit| run.take_within(limit)),
            [1, 1, 1, 2, 2, 3, 4]
        );
        assert_eq!(FrameRun::new(b"", &[]).take_within(10), 0);
    }

    #[test]
    fn runs_split_and_iterate_by_frame() {
        let mut frames = Frames::default();
        frames.push(b"aaa");
        let cut = frames.push_with(|out| {
            out.extend_from_slice(b"bb");
            true
        });
        assert!(cut);
        frames.push(b"cccc");
        assert_eq!((frames.len(), frames.bytes()), (3, 9));
        let (front, back) = frames.run().split_at(1);
        assert_eq!(front.iter().collect::<Vec<_>>(), [b"aaa"]);
        assert_eq!(back.iter().collect::<Vec<_>>(), [&b"bb"[..], b"cccc"]);
        assert_eq!((back.data(), back.lens()), (&b"bbcccc"[..], &[2, 4][..]));
        let (all, none) = frames.run().split_at(7);
        assert_eq!((all.len(), none.is_empty()), (3, true));
    }
}
