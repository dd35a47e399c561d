//! Fan-out of the journal to every slave: items encoded once, shared by all.
//!
//! The journal writer keeps its most recent items in memory as it encoded them
//! ([`journal::tail`](crate::journal::tail): a bounded ring of shared [`Bytes`](bytes::Bytes)).
//! A slave's [`FanoutCursor`] takes its items from there while its position is inside the ring:
//! a reference count, with no disk read, no record parse and no copy, so K slaves at the tail
//! cost one encoding and K socket writes. A slave behind the ring (catching up a backlog) reads
//! from disk with a cursor of its own, whose memory is bounded (costs disk, not memory), and
//! switches to the ring once it gets there.
//!
//! A cursor at the tail takes up to [`BATCH_ITEMS`] items (or [`BATCH_BYTES`]) under one lock of
//! the ring and one read of the synced state, and serves them from a small queue of its own.
//!
//! Nothing past the journal's synced end is ever returned: the ring may hold items that are
//! written but not synced yet (a crash would lose them), and the cursor takes only items that
//! end at or before [`Synced::end`](crate::journal::Synced::end) as it read it for the batch.

use crate::downstream::source::{item_logic_id, JournalItem};
use crate::formats::BinlogPos;
use crate::journal::tail::TailItem;
use crate::journal::{Cursor, Journal};
use std::collections::VecDeque;
use std::io;

/// Most items taken from the ring at a time.
pub const BATCH_ITEMS: usize = 256;
/// Bytes after which a batch from the ring stops (it holds at least one item).
pub const BATCH_BYTES: usize = 1 << 20;

/// One slave's reader: from the shared in-memory tail when it can, from disk while it is behind
/// it.
pub struct FanoutCursor {
    journal: Journal,
    pos: BinlogPos,
    /// Sequence hint for the tail ring.
    hint: u64,
    /// Items taken from the ring and not returned yet: they follow `pos`, all synced.
    queue: VecDeque<TailItem>,
    /// Epoch of the synced state the last item returned was checked against (`None` after a
    /// disk item: the disk cursor checks on its own).
    checked_epoch: Option<u64>,
    disk: Option<Cursor>,
    /// The ring had no item at `pos` although it covers it: stay on disk for one item.
    ring_missed: bool,
}

impl FanoutCursor {
    /// A reader from `pos` (an item boundary the journal can serve).
    pub fn open(journal: Journal, pos: BinlogPos) -> io::Result<FanoutCursor> {
        let mut c = FanoutCursor {
            journal,
            pos,
            hint: 0,
            queue: VecDeque::new(),
            checked_epoch: None,
            disk: None,
            ring_missed: false,
        };
        if !c.journal.tail_covers(pos) {
            c.disk = Some(c.open_disk()?);
        }
        Ok(c)
    }

    fn open_disk(&self) -> io::Result<Cursor> {
        self.journal
            .cursor(self.pos)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Whether this cursor reads from its own disk cursor right now (it is behind the ring).
    pub fn on_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// The position of the next item.
    pub fn position(&self) -> BinlogPos {
        self.pos
    }

    /// The epoch of the synced state the last item returned was checked against, when it came
    /// from the ring: that item lies in the journal as it stood in that epoch.
    pub fn checked_epoch(&self) -> Option<u64> {
        self.checked_epoch
    }

    /// The next item if it is synced and readable now, without waiting.
    pub async fn try_next(&mut self) -> io::Result<Option<JournalItem>> {
        loop {
            if self.disk.is_none() {
                if let Some(it) = self.queue.pop_front() {
                    self.pos = it.end;
                    return Ok(Some(JournalItem {
                        bytes: it.bytes,
                        start: it.start,
                        end: it.end,
                        logic_id: it.logic_id,
                    }));
                }
                let synced = self.journal.synced();
                if self.pos >= synced.end {
                    return Ok(None);
                }
                let got = self.journal.tail_get_many(
                    self.pos,
                    &mut self.hint,
                    synced.end,
                    BATCH_ITEMS,
                    BATCH_BYTES,
                    &mut self.queue,
                );
                match got {
                    Some(0) => return Ok(None), // written, not synced yet
                    Some(_) => {
                        self.checked_epoch = Some(synced.epoch);
                        continue;
                    }
                    None => {}
                }
                // Behind the ring (its oldest items were dropped), or a position the ring
                // cannot continue from: read from disk, at least one item before looking at the
                // ring again (no busy loop between the two).
                self.disk = Some(self.open_disk()?);
                self.ring_missed = true;
            }
            if !self.ring_missed && self.journal.tail_covers(self.pos) {
                self.disk = None;
                continue;
            }
            let disk = self.disk.as_mut().expect("disk cursor present");
            return match disk.try_next().await {
                Ok(Some(it)) => {
                    self.ring_missed = false;
                    self.checked_epoch = None;
                    self.pos = it.end;
                    Ok(Some(JournalItem {
                        logic_id: item_logic_id(&it.item),
                        bytes: it.item.into(),
                        start: it.start,
                        end: it.end,
                    }))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(io::Error::other(e.to_string())),
            };
        }
    }
}
