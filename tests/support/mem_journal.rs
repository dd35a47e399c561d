//! A journal held in memory that implements the downstream's `JournalSource`, for testing the
//! protobuf master on its own. Item bytes and positions follow the 3.x writer exactly
//! (`formats::record::record_end`, rotation when the file is over `file_size`).

#![allow(dead_code)]

use pika_relay::downstream::source::{
    item_logic_id, JournalCursor, JournalItem, JournalSource, Located,
};
use pika_relay::formats::item::BinlogItem;
use pika_relay::formats::{record, resp, BinlogPos};
use pika_relay::journal::Synced;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

struct Inner {
    items: Vec<JournalItem>,
    first: BinlogPos,
    file_size: u64,
    dumps: Vec<(u64, PathBuf)>,
}

/// The journal.
#[derive(Clone)]
pub struct MemJournal {
    inner: Arc<Mutex<Inner>>,
    synced: Arc<watch::Sender<Synced>>,
}

impl MemJournal {
    /// An empty journal starting at `start`.
    pub fn new(file_size: u64, start: BinlogPos) -> Self {
        let (tx, _) = watch::channel(Synced {
            end: start,
            logic_id: 0,
            upstream: None,
            epoch: 0,
            epoch_start: start,
            entries: 0,
        });
        MemJournal {
            inner: Arc::new(Mutex::new(Inner {
                items: Vec::new(),
                first: start,
                file_size,
                dumps: Vec::new(),
            })),
            synced: Arc::new(tx),
        }
    }

    fn next_pos(&self) -> BinlogPos {
        let s = *self.synced.borrow();
        let fs = self.inner.lock().unwrap().file_size;
        if s.end.offset > fs {
            BinlogPos::new(s.end.filenum + 1, 0)
        } else {
            s.end
        }
    }

    /// Appends encoded item bytes whose header the caller built (e.g. copied from a real file).
    pub fn append_raw(&self, bytes: Vec<u8>) -> JournalItem {
        let start = self.next_pos();
        let end = BinlogPos::new(
            start.filenum,
            record::record_end(start.offset, bytes.len() as u64),
        );
        let it = JournalItem {
            logic_id: item_logic_id(&bytes),
            bytes: bytes.into(),
            start,
            end,
        };
        self.inner.lock().unwrap().items.push(it.clone());
        self.synced.send_modify(|s| {
            s.end = end;
            s.logic_id += 1;
            s.entries += 1;
        });
        it
    }

    /// Appends a command as the relay's journal would (server id 1, logic id, position).
    pub fn append(&self, argv: &[&[u8]], exec_time: u32) -> JournalItem {
        let pos = self.next_pos();
        let lid = self.synced.borrow().logic_id;
        let item = BinlogItem {
            exec_time,
            server_id: 1,
            logic_id: lid,
            pos,
            content: resp::encode_argv(argv),
        };
        self.append_raw(item.encode())
    }

    /// Starts a new epoch at the current end, optionally with a dump.
    pub fn new_epoch(&self, dump_dir: Option<PathBuf>) -> BinlogPos {
        let end = self.synced.borrow().end;
        self.set_epoch_at(end, dump_dir);
        end
    }

    /// Starts a new epoch as the journal writer does: the padding item `pad` and the switch to
    /// the epoch at its end become visible together. Returns J_e.
    pub fn begin_epoch(&self, pad: Vec<u8>, dump_dir: PathBuf) -> BinlogPos {
        let start = self.next_pos();
        let mut g = self.inner.lock().unwrap();
        let end = BinlogPos::new(
            start.filenum,
            record::record_end(start.offset, pad.len() as u64),
        );
        g.items.push(JournalItem {
            logic_id: item_logic_id(&pad),
            bytes: pad.into(),
            start,
            end,
        });
        self.synced.send_modify(|s| {
            s.end = end;
            s.logic_id += 1;
            s.entries += 1;
            s.epoch += 1;
            s.epoch_start = end;
        });
        let n = self.synced.borrow().epoch;
        g.dumps.push((n, dump_dir));
        end
    }

    /// Sets the current epoch to start at `at` with `dump_dir`.
    pub fn set_epoch_at(&self, at: BinlogPos, dump_dir: Option<PathBuf>) {
        self.synced.send_modify(|s| {
            s.epoch += 1;
            s.epoch_start = at;
        });
        let n = self.synced.borrow().epoch;
        if let Some(d) = dump_dir {
            self.inner.lock().unwrap().dumps.push((n, d));
        }
    }

    /// Forgets items before `pos` (as retention would).
    pub fn purge_before(&self, pos: BinlogPos) {
        let mut g = self.inner.lock().unwrap();
        g.items.retain(|i| i.start >= pos);
        g.first = pos;
    }
}

/// Cursor over the items.
pub struct MemCursor {
    j: MemJournal,
    pos: BinlogPos,
}

impl JournalCursor for MemCursor {
    async fn try_next(&mut self) -> std::io::Result<Option<JournalItem>> {
        let g = self.j.inner.lock().unwrap();
        let next = g
            .items
            .iter()
            .find(|i| i.start >= self.pos && (i.start == self.pos || i.start.offset == 0));
        Ok(next.cloned().inspect(|i| self.pos = i.end))
    }
}

impl JournalSource for MemJournal {
    type Cursor = MemCursor;
    fn locate(&self, pos: BinlogPos) -> Located {
        let s = *self.synced.borrow();
        let g = self.inner.lock().unwrap();
        if pos < g.first || pos < s.epoch_start {
            return Located::Purged;
        }
        if pos > s.end {
            return Located::BeyondEnd;
        }
        if pos == g.first || pos == s.epoch_start || g.items.iter().any(|i| i.end == pos) {
            Located::InRange
        } else {
            Located::NotBoundary
        }
    }
    fn open(&self, pos: BinlogPos) -> std::io::Result<MemCursor> {
        Ok(MemCursor {
            j: self.clone(),
            pos,
        })
    }
    fn watch(&self) -> watch::Receiver<Synced> {
        self.synced.subscribe()
    }
    fn dump_dir(&self, epoch: u64) -> Option<PathBuf> {
        self.inner
            .lock()
            .unwrap()
            .dumps
            .iter()
            .find(|d| d.0 == epoch)
            .map(|d| d.1.clone())
    }
    fn file_size(&self) -> u64 {
        self.inner.lock().unwrap().file_size
    }
}
