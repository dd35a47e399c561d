//! The per-slave window of items sent but not yet acknowledged, matched against acks exactly as
//! a real Pika master does (`SyncWindow::Update`): an ack names the end offset of the first item
//! of a frame and the slave's producer position after the frame; both must be end offsets of
//! items in the window, or the slave's binlog has diverged from ours and the connection is closed.

use crate::formats::BinlogPos;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
struct Slot {
    end: BinlogPos,
    acked: bool,
}

/// Sent-not-acked items of one slave DB.
#[derive(Debug)]
pub struct SyncWindow {
    slots: VecDeque<Slot>,
    capacity: usize,
    acked: BinlogPos,
}

/// An ack that does not match the window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ack {start}..{end} does not match the items in flight ({first_in_flight}); the slave's binlog has diverged from the relay's journal")]
pub struct AckMismatch {
    /// Ack range start.
    pub start: BinlogPos,
    /// Ack range end.
    pub end: BinlogPos,
    /// Description of what is in flight.
    pub first_in_flight: String,
}

impl SyncWindow {
    /// An empty window holding at most `capacity` items, everything up to `acked` acknowledged.
    pub fn new(capacity: usize, acked: BinlogPos) -> Self {
        SyncWindow {
            slots: VecDeque::new(),
            capacity: capacity.max(1),
            acked,
        }
    }

    /// How many more items may be sent.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.slots.len())
    }

    /// Items in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.len()
    }

    /// The position up to which the slave acknowledged everything.
    pub fn acked(&self) -> BinlogPos {
        self.acked
    }

    /// End offset of the last item sent (or the acked position if nothing is in flight).
    pub fn sent(&self) -> BinlogPos {
        self.slots.back().map(|s| s.end).unwrap_or(self.acked)
    }

    /// Records an item sent, by its end offset.
    pub fn push(&mut self, end: BinlogPos) {
        self.slots.push_back(Slot { end, acked: false });
    }

    /// Applies an ack range; pops the acknowledged prefix. Returns the new acked position.
    pub fn ack(&mut self, start: BinlogPos, end: BinlogPos) -> Result<BinlogPos, AckMismatch> {
        let find = |p: BinlogPos| self.slots.iter().position(|s| s.end == p);
        let (Some(s), Some(e)) = (find(start), find(end)) else {
            return Err(AckMismatch {
                start,
                end,
                first_in_flight: match (self.slots.front(), self.slots.back()) {
                    (Some(f), Some(l)) => {
                        format!("{} items ending {}..{}", self.slots.len(), f.end, l.end)
                    }
                    _ => "nothing".into(),
                },
            });
        };
        if s > e {
            return Err(AckMismatch {
                start,
                end,
                first_in_flight: "ack range is reversed".into(),
            });
        }
        for slot in self.slots.range_mut(s..=e) {
            slot.acked = true;
        }
        while let Some(front) = self.slots.front() {
            if !front.acked {
                break;
            }
            self.acked = front.end;
            self.slots.pop_front();
        }
        Ok(self.acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: u64) -> BinlogPos {
        BinlogPos::new(0, o)
    }

    #[test]
    fn acks_pop_prefix_and_mismatch_fails() {
        let mut w = SyncWindow::new(3, p(0));
        for o in [74, 171, 268] {
            w.push(p(o));
        }
        assert_eq!(w.room(), 0);
        assert_eq!(w.ack(p(74), p(171)).unwrap(), p(171));
        assert_eq!(w.in_flight(), 1);
        assert!(w.ack(p(74), p(268)).is_err(), "already popped");
        assert!(w.ack(p(268), p(300)).is_err(), "unknown end");
        assert_eq!(w.ack(p(268), p(268)).unwrap(), p(268));
        assert_eq!(w.sent(), p(268));
        assert!(w.ack(p(0), p(0)).is_err());
    }

    #[test]
    fn out_of_order_ack_waits_for_front() {
        let mut w = SyncWindow::new(10, p(0));
        for o in [10, 20, 30] {
            w.push(p(o));
        }
        assert_eq!(w.ack(p(20), p(30)).unwrap(), p(0));
        assert_eq!(w.ack(p(10), p(10)).unwrap(), p(30));
        assert!(w.ack(p(30), p(10)).is_err());
    }
}
