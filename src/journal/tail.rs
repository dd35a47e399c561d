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

    /// The item starting at `pos`, or the first item of the next file when `pos` is the end of
    /// its file's last item (a rotation: that item ends at `N:<size>`, the next starts at
    /// `N+1:0`); using and updating the caller's sequence hint (the sequence number of the item
    /// after the one it took last).
    pub fn get(&self, pos: BinlogPos, hint: &mut u64) -> Option<TailItem> {
        let next_file = BinlogPos::new(pos.filenum.wrapping_add(1), 0);
        let at = |i: usize| {
            let it = self.items.get(i)?;
            let follows = it.start == pos
                || (it.start == next_file
                    && i > 0
                    && self.items.get(i - 1).is_some_and(|p| p.end == pos));
            follows.then_some(i)
        };
        let idx = hint
            .checked_sub(self.front_seq)
            .and_then(|i| at(i as usize))
            .or_else(|| at(self.items.partition_point(|it| it.start < pos)))?;
        *hint = self.front_seq + idx as u64 + 1;
        self.items.get(idx).cloned()
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
        assert_eq!(t.get(BinlogPos::new(0, 200), &mut hint), None);
        let a = t.get(BinlogPos::new(0, 300), &mut hint).unwrap();
        assert_eq!(a.end, BinlogPos::new(0, 400));
        assert_eq!(hint, 4);
        let b = t.get(a.end, &mut hint).unwrap();
        assert_eq!(b.start, BinlogPos::new(0, 400));
        assert_eq!(t.get(b.end, &mut hint), None, "nothing past the end");
        let mut stale = 1;
        assert_eq!(t.get(BinlogPos::new(0, 400), &mut stale), Some(b));
        assert_eq!(
            t.get(BinlogPos::new(0, 350), &mut stale),
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
            assert_eq!(t.get(end_of_file, &mut hint), Some(first_of_next.clone()));
            assert_eq!(hint, 4);
        }
        assert_eq!(
            t.get(BinlogPos::new(0, 250), &mut 0),
            None,
            "inside an item of file 0 is not the end of the file"
        );
    }
}
