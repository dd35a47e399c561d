//! Fan-out of the journal's tail to every slave: one reader, shared items.
//!
//! One task follows the journal's synced end with a single cursor and keeps the most recent
//! items (up to [`TAIL_BYTES`]) in a ring of shared [`Bytes`]. A slave's [`FanoutCursor`] takes
//! items from the ring while its position is inside it (a reference count: no disk read, no
//! record parse, no copy), and reads from disk with a cursor of its own only while it is behind
//! the ring (catching up a backlog, which costs disk, not memory), switching to the ring once it
//! gets there. So with K slaves at the tail each item is read and parsed once, not K times, and
//! a slave's own cost is its window and its socket write.
//!
//! The fan-out publishes its own [`Synced`] watch, advanced only once the items up to that end
//! are in the ring: a slave woken by it finds them there. It never runs ahead of the journal's
//! synced state (the ring is filled from a journal cursor, which stops at `Synced::end`).

use crate::downstream::source::{item_logic_id, JournalItem};
use crate::formats::BinlogPos;
use crate::journal::{Cursor, Journal, Synced};
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Bytes of recent items kept in memory for the slaves at the tail.
pub const TAIL_BYTES: usize = 16 << 20;

#[derive(Debug)]
struct Ring {
    items: VecDeque<JournalItem>,
    /// Sequence number of `items[0]` (increases by one per item ever cached).
    front_seq: u64,
    bytes: usize,
    /// Where the filler's cursor is: the end of the last cached item.
    end: BinlogPos,
    max_bytes: usize,
}

impl Ring {
    fn push(&mut self, it: JournalItem) {
        self.end = it.end;
        self.bytes += it.bytes.len();
        self.items.push_back(it);
        while self.bytes > self.max_bytes && self.items.len() > 1 {
            let old = self.items.pop_front().expect("not empty");
            self.bytes -= old.bytes.len();
            self.front_seq += 1;
        }
    }

    fn reset(&mut self, at: BinlogPos) {
        self.front_seq += self.items.len() as u64;
        self.items.clear();
        self.bytes = 0;
        self.end = at;
    }

    /// The item starting at `pos`, using and updating the caller's sequence hint.
    fn get(&self, pos: BinlogPos, hint: &mut u64) -> Option<JournalItem> {
        let at = |i: usize| self.items.get(i).filter(|it| it.start == pos);
        let idx = hint
            .checked_sub(self.front_seq)
            .map(|i| i as usize)
            .filter(|&i| at(i).is_some())
            .or_else(|| {
                let i = self.items.partition_point(|it| it.start < pos);
                at(i).map(|_| i)
            })?;
        *hint = self.front_seq + idx as u64 + 1;
        self.items.get(idx).cloned()
    }

    /// Whether `pos` is the start of a cached item or the ring's end.
    fn covers(&self, pos: BinlogPos) -> bool {
        match self.items.front() {
            Some(f) => pos >= f.start && pos <= self.end,
            None => pos == self.end,
        }
    }
}

#[derive(Debug)]
struct Inner {
    ring: Mutex<Ring>,
    synced: watch::Sender<Synced>,
}

/// The shared tail (see the module documentation). Cheap to clone; the reader task stops when
/// the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
    journal: Journal,
    _stop: Arc<DropGuard>,
}

impl Fanout {
    /// Starts the reader at the journal's synced end (must run inside a tokio runtime).
    pub fn start(journal: Journal) -> Fanout {
        Self::with_capacity(journal, TAIL_BYTES)
    }

    /// [`start`](Self::start) keeping at most `max_bytes` of items.
    pub fn with_capacity(journal: Journal, max_bytes: usize) -> Fanout {
        let st = journal.synced();
        let inner = Arc::new(Inner {
            ring: Mutex::new(Ring {
                items: VecDeque::new(),
                front_seq: 0,
                bytes: 0,
                end: st.end,
                max_bytes,
            }),
            synced: watch::channel(st).0,
        });
        let stop = CancellationToken::new();
        tokio::spawn(fill(journal.clone(), inner.clone(), stop.clone()));
        Fanout {
            inner,
            journal,
            _stop: Arc::new(stop.drop_guard()),
        }
    }

    /// The synced state whose items are all readable through the fan-out.
    pub fn watch(&self) -> watch::Receiver<Synced> {
        self.inner.synced.subscribe()
    }

    /// A reader from `pos` (an item boundary the journal can serve).
    pub fn cursor(&self, pos: BinlogPos) -> io::Result<FanoutCursor> {
        let mut c = FanoutCursor {
            fanout: self.clone(),
            pos,
            hint: 0,
            disk: None,
        };
        if !c.fanout.inner.ring.lock().unwrap().covers(pos) {
            c.disk = Some(c.open_disk()?);
        }
        Ok(c)
    }

    /// Items and bytes held in the ring.
    pub fn cached(&self) -> (usize, usize) {
        let r = self.inner.ring.lock().unwrap();
        (r.items.len(), r.bytes)
    }
}

fn to_item(it: crate::journal::CursorItem) -> JournalItem {
    JournalItem {
        logic_id: item_logic_id(&it.item),
        bytes: Bytes::from(it.item),
        start: it.start,
        end: it.end,
    }
}

/// The reader task: fills the ring from the synced end on, then publishes the synced state.
async fn fill(journal: Journal, inner: Arc<Inner>, stop: CancellationToken) {
    let mut rx = journal.watch();
    let mut cur: Option<Cursor> = None;
    loop {
        let st = *rx.borrow_and_update();
        let c = match cur.as_mut() {
            Some(c) => c,
            None => {
                // (Re)start at the synced end; slaves behind it read from disk.
                let at = st.end;
                match journal.cursor(at) {
                    Ok(c) => {
                        inner.ring.lock().unwrap().reset(at);
                        cur.insert(c)
                    }
                    Err(e) => {
                        tracing::error!("downstream fan-out: cannot read the journal at {at}: {e}; slaves read from disk until it can");
                        inner.synced.send_replace(st);
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            r = rx.changed() => if r.is_err() { return },
                        }
                        continue;
                    }
                }
            }
        };
        loop {
            match c.try_next().await {
                Ok(Some(it)) => inner.ring.lock().unwrap().push(to_item(it)),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("downstream fan-out: journal read failed at {}: {e}; restarting the shared reader at the synced end", c.position());
                    cur = None;
                    break;
                }
            }
        }
        let Some(c) = cur.as_ref() else { continue };
        let now = journal.synced();
        if c.position() < now.end {
            continue; // more was synced while reading
        }
        inner.synced.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
        if rx.has_changed().unwrap_or(false) {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

/// One slave's reader: from the shared ring when it can, from disk while it is behind it.
pub struct FanoutCursor {
    fanout: Fanout,
    pos: BinlogPos,
    /// Sequence number of the next ring item, if known.
    hint: u64,
    disk: Option<Cursor>,
}

impl FanoutCursor {
    fn open_disk(&self) -> io::Result<Cursor> {
        self.fanout
            .journal
            .cursor(self.pos)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Whether this cursor reads from its own disk cursor right now (it is behind the ring).
    pub fn on_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// The next item if it is synced and readable now, without waiting.
    pub async fn try_next(&mut self) -> io::Result<Option<JournalItem>> {
        loop {
            if self.disk.is_none() {
                let ring = self.fanout.inner.ring.lock().unwrap();
                if let Some(it) = ring.get(self.pos, &mut self.hint) {
                    self.pos = it.end;
                    return Ok(Some(it));
                }
                if self.pos >= ring.end {
                    // At the shared reader's position: it publishes when it has more.
                    return Ok(None);
                }
                // Fell behind the ring (evicted): read from disk until caught up.
                drop(ring);
                self.disk = Some(self.open_disk()?);
            }
            if self.fanout.inner.ring.lock().unwrap().covers(self.pos) {
                self.disk = None;
                continue;
            }
            let disk = self.disk.as_mut().expect("disk cursor present");
            return match disk.try_next().await {
                Ok(Some(it)) => {
                    self.pos = it.end;
                    Ok(Some(to_item(it)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(io::Error::other(e.to_string())),
            };
        }
    }
}
