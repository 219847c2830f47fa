//! The records not yet done with, by sequence number, in delivery order
//! (those being written or waiting for acknowledgement, then those
//! buffered), and the flushes that watch them.
//!
//! Records leave in order when delivered, but drops leave gaps: the buffer
//! drops its oldest *buffered* records, which come after those being
//! written. So a count of records done with does not tell whether those up
//! to a given number are (newer ones dropped would make up the count): the
//! numbers pending are kept, as runs. A flush is done once no record up to
//! its target is pending, and failed if one of those it waited for was
//! dropped meanwhile.

use std::collections::VecDeque;

/// The sequence numbers pending, and the flushes watching them.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Runs of consecutive numbers, `(first, count)`, in delivery order.
    runs: VecDeque<(u64, u64)>,
    /// Records pending (the runs' counts added up).
    len: u64,
    watches: Vec<Watch>,
    next_watch: u64,
}

/// One flush's watch.
#[derive(Debug)]
struct Watch {
    id: u64,
    /// The lowest number it waits for: those pending when it began, and
    /// all later ones (up to its target).
    from: u64,
    /// The lowest of those dropped since it began.
    lost: Option<u64>,
}

/// Where a flush stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Some of its records are pending.
    Waiting,
    /// Every one of its records was delivered.
    Delivered,
    /// Some of them were dropped (the lowest such number).
    Lost(u64),
}

impl Pending {
    /// Records pending.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Every number pending, in order.
    #[cfg(test)]
    pub(crate) fn numbers(&self) -> Vec<u64> {
        self.runs
            .iter()
            .flat_map(|&(first, count)| first..first + count)
            .collect()
    }

    /// The lowest number pending.
    pub(crate) fn lowest(&self) -> Option<u64> {
        self.runs.front().map(|&(first, _)| first)
    }

    /// Whether every record numbered up to `target` is done with, when
    /// `accepted` were ever numbered.
    pub(crate) fn done_through(&self, target: u64, accepted: u64) -> bool {
        self.lowest().unwrap_or(accepted.saturating_add(1)) > target
    }

    /// Appends `count` records numbered from `first` on (after every
    /// number pending).
    pub(crate) fn append(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        debug_assert!(self.runs.back().is_none_or(|&(f, c)| f + c <= first));
        match self.runs.back_mut() {
            Some((f, c)) if *f + *c == first => *c += count,
            _ => self.runs.push_back((first, count)),
        }
        self.len += count;
    }

    /// Removes the `count` records from position `at` on (0 is the first
    /// pending), done with: delivered, or dropped (`lost`). At most those
    /// pending are removed.
    pub(crate) fn remove(&mut self, at: u64, count: u64, lost: bool) {
        if count == 0 {
            return;
        }
        debug_assert!(at + count <= self.len, "{at} + {count} > {}", self.len);
        let mut left = count.min(self.len.saturating_sub(at));
        // The run holding position `at`, split there.
        let (mut index, into) = self.locate(at);
        if let Some(&(first, n)) = self.runs.get(index).filter(|_| into > 0) {
            self.runs[index] = (first, into);
            self.runs.insert(index + 1, (first + into, n - into));
            index += 1;
        }
        while left > 0 {
            let Some(&(first, n)) = self.runs.get(index) else {
                break;
            };
            let taken = n.min(left);
            if lost {
                self.lose(first, taken);
            }
            if taken == n {
                self.runs.remove(index);
            } else {
                self.runs[index] = (first + taken, n - taken);
            }
            self.len -= taken;
            left -= taken;
        }
    }

    /// The run holding position `at` and the position within it, counted
    /// from the nearer end: records are dropped at the boundary between
    /// those being written (which a slow endpoint may leave in many runs)
    /// and the buffered ones (few runs, at the back).
    fn locate(&self, at: u64) -> (usize, u64) {
        if at <= self.len / 2 {
            let mut start = 0;
            for (index, &(_, n)) in self.runs.iter().enumerate() {
                if start + n > at {
                    return (index, at - start);
                }
                start += n;
            }
            (self.runs.len(), 0)
        } else {
            let mut start = self.len;
            for (index, &(_, n)) in self.runs.iter().enumerate().rev() {
                start -= n;
                if start <= at {
                    return (index, at - start);
                }
            }
            (0, at)
        }
    }

    /// Notes the drop of `count` records numbered from `first` on, pending
    /// or never listed (dropped on arrival), for the flushes watching.
    pub(crate) fn lose(&mut self, first: u64, count: u64) {
        let last = first + count.saturating_sub(1);
        for watch in &mut self.watches {
            if count > 0 && last >= watch.from {
                let lowest = first.max(watch.from);
                watch.lost = Some(watch.lost.map_or(lowest, |lost| lost.min(lowest)));
            }
        }
    }

    /// Starts a flush's watch, when `accepted` records were ever numbered:
    /// it waits for those pending now and all later ones. Returns its id.
    pub(crate) fn watch(&mut self, accepted: u64) -> u64 {
        let id = self.next_watch;
        self.next_watch += 1;
        let from = self.lowest().unwrap_or(accepted.saturating_add(1));
        self.watches.push(Watch {
            id,
            from,
            lost: None,
        });
        id
    }

    /// Ends a flush's watch.
    pub(crate) fn unwatch(&mut self, id: u64) {
        self.watches.retain(|watch| watch.id != id);
    }

    /// Where the flush of watch `id` stands, once its records are those
    /// numbered up to `target` (when `accepted` were ever numbered).
    pub(crate) fn flushed(&self, id: u64, target: u64, accepted: u64) -> Flushed {
        let lost = self
            .watches
            .iter()
            .find(|watch| watch.id == id)
            .and_then(|watch| watch.lost)
            .filter(|&lost| lost <= target);
        match lost {
            Some(lost) => Flushed::Lost(lost),
            None if self.done_through(target, accepted) => Flushed::Delivered,
            None => Flushed::Waiting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(pending: &Pending) -> Vec<u64> {
        pending.numbers()
    }

    /// Removal from the front, from the middle (splitting a run) and across
    /// runs leaves the other numbers in order.
    #[test]
    fn numbers_leave_from_any_position_and_the_rest_keep_their_order() {
        let mut pending = Pending::default();
        pending.append(1, 5);
        pending.append(6, 3);
        assert_eq!(pending.runs.len(), 1, "consecutive numbers form one run");
        pending.append(20, 2);
        assert_eq!(numbers(&pending), [1, 2, 3, 4, 5, 6, 7, 8, 20, 21]);
        pending.remove(2, 3, true);
        assert_eq!(numbers(&pending), [1, 2, 6, 7, 8, 20, 21]);
        pending.remove(0, 1, false);
        assert_eq!(numbers(&pending), [2, 6, 7, 8, 20, 21]);
        pending.remove(3, 2, true);
        assert_eq!(numbers(&pending), [2, 6, 7, 21]);
        // Found from the back: the last but one.
        pending.append(30, 3);
        pending.remove(5, 1, true);
        assert_eq!(numbers(&pending), [2, 6, 7, 21, 30, 32]);
        pending.remove(4, 2, false);
        assert_eq!(numbers(&pending), [2, 6, 7, 21]);
        assert_eq!((pending.len(), pending.lowest()), (4, Some(2)));
        pending.remove(0, 4, false);
        assert_eq!((pending.len(), pending.lowest()), (0, None));
        assert!(pending.runs.is_empty());
    }

    /// Done through a number once nothing up to it is pending, and nothing
    /// beyond what was ever numbered.
    #[test]
    fn done_through_a_number_once_none_up_to_it_is_pending() {
        let mut pending = Pending::default();
        assert!(pending.done_through(0, 0) && !pending.done_through(1, 0));
        pending.append(1, 4);
        // Newer numbers dropped do not make up for older ones pending.
        pending.remove(1, 3, true);
        assert!(!pending.done_through(1, 4) && !pending.done_through(4, 4));
        pending.remove(0, 1, false);
        assert!(pending.done_through(4, 4) && !pending.done_through(5, 4));
    }

    /// A flush is delivered once its records are, lost if one it waited
    /// for was dropped after it began (not before, nor beyond its target),
    /// and waiting otherwise.
    #[test]
    fn a_flush_sees_its_records_delivered_or_lost() {
        let mut pending = Pending::default();
        pending.append(1, 3);
        // Dropped before the flush began: not its business.
        pending.remove(1, 1, true);
        let id = pending.watch(3);
        assert_eq!(pending.flushed(id, 5, 3), Flushed::Waiting);
        pending.append(4, 3);
        // Numbers 1, 3, 4, 5, 6: 6 dropped, beyond its target.
        pending.remove(4, 1, true);
        pending.remove(0, 4, false);
        assert_eq!(pending.flushed(id, 5, 6), Flushed::Delivered);
        let other = pending.watch(6);
        pending.append(7, 2);
        pending.remove(0, 1, true);
        assert_eq!(pending.flushed(other, 8, 8), Flushed::Lost(7));
        pending.lose(9, 1);
        assert_eq!(pending.flushed(other, 9, 9), Flushed::Lost(7));
        pending.unwatch(id);
        pending.unwatch(other);
        assert!(pending.watches.is_empty());
        // A number dropped on arrival, never listed, counts too.
        let late = pending.watch(9);
        pending.lose(10, 1);
        assert_eq!(pending.flushed(late, 10, 10), Flushed::Lost(10));
    }
}
