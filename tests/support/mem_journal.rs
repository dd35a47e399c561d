//! A journal held in memory that implements the downstream's `JournalSource`, for testing the
//! protobuf master on its own. Item bytes and positions follow the 3.x writer exactly
//! (`formats::record::record_end`, rotation when the file is over `file_size`).

#![allow(dead_code)]

use pika_relay::downstream::source::{Epoch, JournalCursor, JournalItem, JournalSource, Located};
use pika_relay::formats::item::BinlogItem;
use pika_relay::formats::{record, resp, BinlogPos};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

struct Inner {
    items: Vec<JournalItem>,
    first: BinlogPos,
    producer: BinlogPos,
    logic_id: u64,
    epoch: Epoch,
    file_size: u64,
}

/// The journal.
#[derive(Clone)]
pub struct MemJournal {
    inner: Arc<Mutex<Inner>>,
    end: Arc<watch::Sender<BinlogPos>>,
}

impl MemJournal {
    /// An empty journal starting at `start`.
    pub fn new(file_size: u64, start: BinlogPos) -> Self {
        let (tx, _) = watch::channel(start);
        MemJournal {
            inner: Arc::new(Mutex::new(Inner {
                items: Vec::new(),
                first: start,
                producer: start,
                logic_id: 0,
                epoch: Epoch {
                    number: 0,
                    start,
                    dump_dir: None,
                },
                file_size,
            })),
            end: Arc::new(tx),
        }
    }

    /// Appends encoded item bytes whose header the caller built (e.g. copied from a real file).
    pub fn append_raw(&self, bytes: Vec<u8>) -> JournalItem {
        let mut g = self.inner.lock().unwrap();
        if g.producer.offset > g.file_size {
            g.producer = BinlogPos::new(g.producer.filenum + 1, 0);
        }
        let start = g.producer;
        let end = BinlogPos::new(
            start.filenum,
            record::record_end(start.offset, bytes.len() as u64),
        );
        let it = JournalItem {
            bytes,
            start,
            end,
            logic_id: g.logic_id,
        };
        g.logic_id += 1;
        g.producer = end;
        g.items.push(it.clone());
        drop(g);
        self.end.send_replace(end);
        it
    }

    /// Appends a command as the relay's journal would (server id 1, logic id, position).
    pub fn append(&self, argv: &[&[u8]], exec_time: u32) -> JournalItem {
        let (pos, lid) = {
            let g = self.inner.lock().unwrap();
            let p = if g.producer.offset > g.file_size {
                BinlogPos::new(g.producer.filenum + 1, 0)
            } else {
                g.producer
            };
            (p, g.logic_id)
        };
        let item = BinlogItem {
            exec_time,
            server_id: 1,
            logic_id: lid,
            pos,
            content: resp::encode_argv(argv),
        };
        self.append_raw(item.encode())
    }

    /// Starts a new epoch at the current end with this dump.
    pub fn new_epoch(&self, dump_dir: Option<std::path::PathBuf>) -> BinlogPos {
        let mut g = self.inner.lock().unwrap();
        let start = g.producer;
        let n = g.epoch.number + 1;
        g.epoch = Epoch {
            number: n,
            start,
            dump_dir,
        };
        start
    }

    /// Forgets items before `pos` (as retention would).
    pub fn purge_before(&self, pos: BinlogPos) {
        let mut g = self.inner.lock().unwrap();
        g.items.retain(|i| i.start >= pos);
        g.first = pos;
    }

    /// All items.
    pub fn items(&self) -> Vec<JournalItem> {
        self.inner.lock().unwrap().items.clone()
    }
}

/// Cursor over the items.
pub struct MemCursor {
    j: MemJournal,
    pos: BinlogPos,
}

impl JournalCursor for MemCursor {
    fn try_next(&mut self) -> std::io::Result<Option<JournalItem>> {
        let g = self.j.inner.lock().unwrap();
        let next = g
            .items
            .iter()
            .find(|i| i.start >= self.pos && (i.start == self.pos || i.start.offset == 0));
        Ok(next.cloned().inspect(|i| self.pos = i.end))
    }
    fn position(&self) -> BinlogPos {
        self.pos
    }
}

impl JournalSource for MemJournal {
    type Cursor = MemCursor;
    fn locate(&self, pos: BinlogPos) -> Located {
        let g = self.inner.lock().unwrap();
        if pos < g.first || pos < g.epoch.start {
            return Located::Purged;
        }
        if pos > g.producer {
            return Located::BeyondEnd;
        }
        if pos == g.first || pos == g.epoch.start || g.items.iter().any(|i| i.end == pos) {
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
    fn synced_end(&self) -> watch::Receiver<BinlogPos> {
        self.end.subscribe()
    }
    fn epoch(&self) -> Epoch {
        self.inner.lock().unwrap().epoch.clone()
    }
    fn file_size(&self) -> u64 {
        self.inner.lock().unwrap().file_size
    }
    fn next_logic_id(&self) -> u64 {
        self.inner.lock().unwrap().logic_id
    }
}

impl MemJournal {
    /// Sets the current epoch to start at `at` with `dump_dir`.
    pub fn set_epoch_at(&self, at: BinlogPos, dump_dir: Option<std::path::PathBuf>) {
        let mut g = self.inner.lock().unwrap();
        let n = g.epoch.number + 1;
        g.epoch = Epoch {
            number: n,
            start: at,
            dump_dir,
        };
    }
}
