//! The journal's most recent items in memory, as the writer encoded them: a bounded ring of
//! shared [`Bytes`] that readers at the tail (the downstream fan-out) take instead of reading
//! the files back. The writer adds items when it requests a sync, so every item below the
//! synced end that is still in the ring is there; readers must not take items past
//! [`Synced::end`](super::Synced::end) (they may be lost in a crash).

use crate::formats::BinlogPos;
use bytes::Bytes;
use std::collections::VecDeque;

/// One item of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailItem {
    /// The binlog item (34-byte header + RESP content).
    pub bytes: Bytes,
    /// Where its record begins.
    pub start: BinlogPos,
    /// Where it ends.
    pub end: BinlogPos,
    /// Its logic id.
    pub logic_id: u64,
}

/// Recent items (see the module documentation).
#[derive(Debug)]
pub(crate) struct Tail {
    items: VecDeque<TailItem>,
    /// Sequence number of `items[0]` (one per item ever added).
    front_seq: u64,
    bytes: usize,
    /// End of the last item added (or where the ring started).
    end: BinlogPos,
    max_bytes: usize,
}

impl Tail {
    pub fn new(at: BinlogPos, max_bytes: usize) -> Tail {
        Tail {
            items: VecDeque::new(),
            front_seq: 0,
            bytes: 0,
            end: at,
            max_bytes,
        }
    }

    /// Adds items in journal order, dropping the oldest beyond the byte budget.
    pub fn extend(&mut self, new: impl IntoIterator<Item = TailItem>) {
        if self.max_bytes == 0 {
            return;
        }
        for it in new {
            self.end = it.end;
            self.bytes += it.bytes.len();
            self.items.push_back(it);
        }
        while self.bytes > self.max_bytes && !self.items.is_empty() {
            let old = self.items.pop_front().expect("not empty");
            self.bytes -= old.bytes.len();
            self.front_seq += 1;
        }
    }

    /// Several items from `pos` on under one look-up: `pos` is an item's start, or the end of
    /// its file's last item (a rotation: that item ends at `N:<size>`, the next starts at
    /// `N+1:0`, where reading goes on); `hint` is the caller's sequence hint (the sequence number
    /// of the item after the one it took last), used and updated. Appends to `out` the item at
    /// `pos` and those following it, stopping before the first that ends past `limit` (the
    /// synced end: nothing past it is ever returned), after `max_items` items, or once
    /// `max_bytes` bytes were taken (at least one item is taken if it is within `limit`). Returns how many were appended, or `None` if the ring cannot
    /// continue from `pos` (no item at `pos`: it was dropped, is not written yet, or `pos` is
    /// not an item boundary); `Some(0)` means the item at `pos` is in the ring but not synced.
    pub fn get_many(
        &self,
        pos: BinlogPos,
        hint: &mut u64,
        limit: BinlogPos,
        max_items: usize,
        max_bytes: usize,
        out: &mut VecDeque<TailItem>,
    ) -> Option<usize> {
        let first = self.find(pos, *hint)?;
        let (mut n, mut bytes, mut prev_end) = (0, 0, pos);
        for it in self.items.range(first..) {
            let follows = it.start == prev_end
                || it.start == BinlogPos::new(prev_end.filenum.wrapping_add(1), 0);
            if !follows || it.end > limit || n >= max_items || (n > 0 && bytes >= max_bytes) {
                break;
            }
            bytes += it.bytes.len();
            prev_end = it.end;
            out.push_back(it.clone());
            n += 1;
        }
        *hint = self.front_seq + (first + n) as u64;
        Some(n)
    }

    /// Index of the item at `pos` (see [`get`](Self::get)).
    fn find(&self, pos: BinlogPos, hint: u64) -> Option<usize> {
        let next_file = BinlogPos::new(pos.filenum.wrapping_add(1), 0);
        let at = |i: usize| {
            let it = self.items.get(i)?;
            let follows = it.start == pos
                || (it.start == next_file
                    && i > 0
                    && self.items.get(i - 1).is_some_and(|p| p.end == pos));
            follows.then_some(i)
        };
        hint.checked_sub(self.front_seq)
            .and_then(|i| at(i as usize))
            .or_else(|| at(self.items.partition_point(|it| it.start < pos)))
    }

    /// Whether a reader at `pos` can continue from the ring: `pos` is the start of an item in
    /// it, the end of a file's last item in it, or the ring's end.
    pub fn covers(&self, pos: BinlogPos) -> bool {
        match self.items.front() {
            Some(f) => pos >= f.start && pos <= self.end,
            None => pos == self.end,
        }
    }

    /// Items and bytes held.
    pub fn len(&self) -> (usize, usize) {
        (self.items.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(start: u64, len: u64) -> TailItem {
        TailItem {
            bytes: Bytes::from(vec![0u8; len as usize]),
            start: BinlogPos::new(0, start),
            end: BinlogPos::new(0, start + len),
            logic_id: start,
        }
    }

    /// One item at `pos` (no synced limit), as a reader takes it.
    fn get(t: &Tail, pos: BinlogPos, hint: &mut u64) -> Option<TailItem> {
        let mut q = VecDeque::new();
        t.get_many(
            pos,
            hint,
            BinlogPos::new(u32::MAX, u64::MAX),
            1,
            usize::MAX,
            &mut q,
        )?;
        q.pop_front()
    }

    #[test]
    fn bounded_lookup_by_position_with_and_without_hint() {
        let mut t = Tail::new(BinlogPos::new(0, 0), 250);
        assert!(t.covers(BinlogPos::new(0, 0)));
        t.extend((0..5).map(|i| item(i * 100, 100)));
        // 500 bytes added, 250 allowed: the three oldest were dropped.
        assert_eq!(t.len(), (2, 200));
        assert!(!t.covers(BinlogPos::new(0, 200)));
        assert!(t.covers(BinlogPos::new(0, 300)));
        assert!(t.covers(BinlogPos::new(0, 500)), "the end");
        let mut hint = 0;
        assert_eq!(get(&t, BinlogPos::new(0, 200), &mut hint), None);
        let a = get(&t, BinlogPos::new(0, 300), &mut hint).unwrap();
        assert_eq!(a.end, BinlogPos::new(0, 400));
        assert_eq!(hint, 4);
        let b = get(&t, a.end, &mut hint).unwrap();
        assert_eq!(b.start, BinlogPos::new(0, 400));
        assert_eq!(get(&t, b.end, &mut hint), None, "nothing past the end");
        let mut stale = 1;
        assert_eq!(get(&t, BinlogPos::new(0, 400), &mut stale), Some(b));
        assert_eq!(
            get(&t, BinlogPos::new(0, 350), &mut stale),
            None,
            "not a start"
        );
    }

    #[test]
    fn a_reader_at_the_end_of_a_file_continues_with_the_next_file() {
        let mut t = Tail::new(BinlogPos::new(0, 0), 1 << 20);
        t.extend((0..3).map(|i| item(i * 100, 100)));
        let first_of_next = TailItem {
            bytes: Bytes::from(vec![1u8; 50]),
            start: BinlogPos::new(1, 0),
            end: BinlogPos::new(1, 50),
            logic_id: 3,
        };
        t.extend([first_of_next.clone()]);
        let end_of_file = BinlogPos::new(0, 300);
        assert!(t.covers(end_of_file));
        for mut hint in [0, 3, 99] {
            assert_eq!(get(&t, end_of_file, &mut hint), Some(first_of_next.clone()));
            assert_eq!(hint, 4);
        }
        assert_eq!(
            get(&t, BinlogPos::new(0, 250), &mut 0),
            None,
            "inside an item of file 0 is not the end of the file"
        );
    }

    fn starts(q: &VecDeque<TailItem>) -> Vec<BinlogPos> {
        q.iter().map(|it| it.start).collect()
    }

    #[test]
    fn batch_reads_across_a_rotation_up_to_the_limit() {
        let mut t = Tail::new(BinlogPos::new(0, 0), 1 << 20);
        t.extend((0..3).map(|i| item(i * 100, 100)));
        t.extend((0..2).map(|i| TailItem {
            bytes: Bytes::from(vec![1u8; 50]),
            start: BinlogPos::new(1, i * 50),
            end: BinlogPos::new(1, i * 50 + 50),
            logic_id: 3 + i,
        }));
        let p = BinlogPos::new;
        let all = p(1, 100);
        let mut q = VecDeque::new();
        let mut hint = 0;
        assert_eq!(
            t.get_many(p(0, 100), &mut hint, all, 100, 1 << 20, &mut q),
            Some(4)
        );
        assert_eq!(starts(&q), [p(0, 100), p(0, 200), p(1, 0), p(1, 50)]);
        assert_eq!(hint, 5);
        // A reader at the end of file 0 continues with file 1, with any hint.
        for mut hint in [0, 3, 99] {
            q.clear();
            assert_eq!(
                t.get_many(p(0, 300), &mut hint, all, 100, 1 << 20, &mut q),
                Some(2)
            );
            assert_eq!(starts(&q), [p(1, 0), p(1, 50)]);
            assert_eq!(hint, 5);
        }
        // Nothing past the limit: inside an item, or exactly at an item's end.
        for (limit, want) in [(p(0, 250), 1), (p(0, 300), 2), (p(1, 50), 3)] {
            q.clear();
            assert_eq!(
                t.get_many(p(0, 100), &mut 0, limit, 100, 1 << 20, &mut q),
                Some(want),
                "limit {limit}"
            );
            assert!(q.iter().all(|it| it.end <= limit));
        }
        q.clear();
        assert_eq!(
            t.get_many(p(0, 200), &mut 0, p(0, 250), 100, 1 << 20, &mut q),
            Some(0),
            "in the ring, not synced"
        );
        assert!(q.is_empty());
        assert_eq!(t.get_many(all, &mut 0, all, 100, 1 << 20, &mut q), None);
        assert_eq!(
            t.get_many(p(0, 150), &mut 0, all, 100, 1 << 20, &mut q),
            None
        );
        assert_eq!(
            t.get_many(p(0, 250), &mut 0, all, 100, 1 << 20, &mut q),
            None
        );
    }

    #[test]
    fn batch_reads_respect_item_and_byte_caps_and_the_hint() {
        let mut t = Tail::new(BinlogPos::new(0, 0), 250);
        t.extend((0..5).map(|i| item(i * 100, 100)));
        let p = |o| BinlogPos::new(0, o);
        let mut q = VecDeque::new();
        assert_eq!(
            t.get_many(p(200), &mut 0, p(500), 10, 1000, &mut q),
            None,
            "dropped"
        );
        let mut hint = 0;
        assert_eq!(
            t.get_many(p(300), &mut hint, p(500), 1, 1000, &mut q),
            Some(1)
        );
        assert_eq!(hint, 4);
        assert_eq!(
            t.get_many(p(400), &mut hint, p(500), 1, 1000, &mut q),
            Some(1)
        );
        assert_eq!(hint, 5);
        assert_eq!(starts(&q), [p(300), p(400)]);
        // Bytes: at least one item, then stop once the cap is reached.
        for (max_bytes, want) in [(1, 1), (100, 1), (101, 2)] {
            q.clear();
            assert_eq!(
                t.get_many(p(300), &mut 0, p(500), 10, max_bytes, &mut q),
                Some(want),
                "max_bytes {max_bytes}"
            );
        }
        // Appended after what `out` held.
        assert_eq!(
            t.get_many(p(400), &mut 0, p(500), 10, 1000, &mut q),
            Some(1)
        );
        assert_eq!(starts(&q), [p(300), p(400), p(400)]);
    }
}
