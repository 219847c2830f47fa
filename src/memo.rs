//! A thread's last answer, kept: the hot paths ask the same question over
//! runs of records (the text of a second, whether a static severity text
//! names its level), and work the answer out again only when the question
//! changes.

use std::cell::Cell;
use std::thread::LocalKey;

/// What `make` answers for `key`: the answer `last` kept when the last key
/// asked on this thread was the same, else worked out and kept (and worked
/// out each time from a thread-local destructor, once `last` is gone).
#[inline]
pub(crate) fn last_answer<K: Copy + PartialEq, V: Copy>(
    last: &'static LocalKey<Cell<(K, V)>>,
    key: K,
    make: impl Fn(K) -> V,
) -> V {
    last.try_with(|last| match last.get() {
        (asked, answer) if asked == key => answer,
        _ => {
            let answer = make(key);
            last.set((key, answer));
            answer
        }
    })
    .unwrap_or_else(|_| make(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked out once for a run of the same key, again for another.
    #[test]
    fn an_answer_is_worked_out_again_only_for_another_key() {
        thread_local! {
            static LAST: Cell<(u64, u64)> = const { Cell::new((u64::MAX, 0)) };
        }
        let asked = Cell::new(0);
        let make = |key: u64| {
            asked.set(asked.get() + 1);
            key * 2
        };
        for (key, answer, count) in [(1, 2, 1), (1, 2, 1), (2, 4, 2), (1, 2, 3)] {
            assert_eq!(last_answer(&LAST, key, make), answer);
            assert_eq!(asked.get(), count, "{key}");
        }
    }
}
