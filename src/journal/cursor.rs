//! Cursors: readers of accepted items from any record boundary, following the tail.
//!
//! A cursor reads from disk through a bounded buffer ([`RecordReader`]: one read chunk plus the
//! record being assembled), so a slave lagging by gigabytes costs disk reads, not memory. It never
//! reads past [`Synced::end`](super::Synced::end); at the tail it waits on the journal's watch
//! channel (woken by each sync, no polling), and at the end of a finished file it moves on to the
//! next one. A registered cursor protects its current file from retention (unless the hard disk
//! cap forces a purge, after which the cursor answers [`CursorError::Purged`]).

use super::files::{data_path, is_boundary, Parsed, RecordReader};
use super::{Shared, Synced};
use crate::formats::BinlogPos;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

/// One item read from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorItem {
    /// The binlog item (34-byte header + RESP content): `BinlogSync.binlog`.
    pub item: Vec<u8>,
    /// Position of the record (what a slave names to receive it again).
    pub start: BinlogPos,
    /// Position just after it: `BinlogSync.binlog_offset`, the slave's producer after it.
    pub end: BinlogPos,
}

/// Why a position cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// The file holding the position was purged (answer: full sync).
    #[error("position {requested} is purged (first file is write2file{first})")]
    Purged {
        /// The position asked for.
        requested: BinlogPos,
        /// Lowest file still present.
        first: u32,
    },
    /// The position is past the accepted end.
    #[error("position {requested} is beyond the end {end}")]
    BeyondEnd {
        /// The position asked for.
        requested: BinlogPos,
        /// The accepted end.
        end: BinlogPos,
    },
    /// The position is inside the journal but not at a record boundary.
    #[error("position {requested} is not a record boundary")]
    NotBoundary {
        /// The position asked for.
        requested: BinlogPos,
    },
    /// A read failed.
    #[error("journal read: {0}")]
    Io(String),
    /// The data does not parse.
    #[error("journal corrupt: {0}")]
    Corrupt(String),
}

fn open_file(shared: &Shared, pos: BinlogPos) -> Result<File, CursorError> {
    let p = data_path(&shared.cfg.dir, pos.filenum);
    File::open(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CursorError::Purged {
                requested: pos,
                first: shared.first.load(Ordering::Acquire),
            }
        } else {
            CursorError::Io(format!("open {}: {e}", p.display()))
        }
    })
}

/// Accepted length of file `n` given the synced state (`None`: the file is the live one).
fn finished_len(file: &File, n: u32, st: &Synced) -> Result<u64, CursorError> {
    if n == st.end.filenum {
        return Ok(st.end.offset);
    }
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| CursorError::Io(format!("stat write2file{n}: {e}")))
}

pub(crate) fn check_position(shared: &Shared, pos: BinlogPos) -> Result<(), CursorError> {
    let st = *shared.state.borrow();
    if pos > st.end {
        return Err(CursorError::BeyondEnd {
            requested: pos,
            end: st.end,
        });
    }
    let first = shared.first.load(Ordering::Acquire);
    if pos.filenum < first {
        return Err(CursorError::Purged {
            requested: pos,
            first,
        });
    }
    let f = open_file(shared, pos)?;
    let limit = finished_len(&f, pos.filenum, &st)?;
    match is_boundary(&f, pos.offset, limit) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CursorError::NotBoundary { requested: pos }),
        Err(e) => Err(CursorError::Io(format!(
            "read write2file{}: {e}",
            pos.filenum
        ))),
    }
}

/// A reader of accepted items from a position on (see the module documentation).
#[derive(Debug)]
pub struct Cursor {
    shared: Arc<Shared>,
    id: u64,
    pos: BinlogPos,
    reader: Option<RecordReader>,
    /// Accepted length of the current file once it is finished.
    done_len: Option<u64>,
    rx: watch::Receiver<Synced>,
}

impl Cursor {
    pub(crate) fn open(shared: Arc<Shared>, pos: BinlogPos) -> Result<Cursor, CursorError> {
        let id = shared.next_cursor.fetch_add(1, Ordering::Relaxed);
        // Register before checking, so a concurrent purge either sees us or we see it.
        shared.cursors.lock().unwrap().insert(id, pos.filenum);
        let mut c = Cursor {
            rx: shared.state.subscribe(),
            shared,
            id,
            pos,
            reader: None,
            done_len: None,
        };
        check_position(&c.shared, pos)?;
        let f = open_file(&c.shared, pos)?;
        c.reader = Some(RecordReader::new(Arc::new(f), c.shared.cfg.read_chunk));
        Ok(c)
    }

    /// Position of the next item.
    pub fn position(&self) -> BinlogPos {
        self.pos
    }

    /// Bytes of buffer held (bounded by the read chunk plus the largest record).
    pub fn buffered(&self) -> usize {
        self.reader.as_ref().map_or(0, |r| r.buffered())
    }

    /// The next accepted item, waiting for the tail to grow if needed.
    pub async fn next(&mut self) -> Result<CursorItem, CursorError> {
        loop {
            if let Some(it) = self.step().await? {
                return Ok(it);
            }
            if self.rx.changed().await.is_err() {
                return Err(CursorError::Io("journal closed".into()));
            }
        }
    }

    /// The next item if one is accepted now (reads from disk; does not wait for the tail).
    pub async fn try_next(&mut self) -> Result<Option<CursorItem>, CursorError> {
        self.step().await
    }

    async fn step(&mut self) -> Result<Option<CursorItem>, CursorError> {
        loop {
            let st = *self.rx.borrow_and_update();
            let first = self.shared.first.load(Ordering::Acquire);
            if self.pos.filenum < first {
                return Err(CursorError::Purged {
                    requested: self.pos,
                    first,
                });
            }
            let limit = if self.pos.filenum == st.end.filenum {
                st.end.offset
            } else if let Some(l) = self.done_len {
                l
            } else {
                let f = open_file(&self.shared, self.pos)?;
                let l = finished_len(&f, self.pos.filenum, &st)?;
                self.done_len = Some(l);
                l
            };
            if self.pos.offset < limit {
                let reader = self.reader.as_mut().expect("reader present between steps");
                match reader
                    .parse(self.pos.offset, limit)
                    .map_err(CursorError::Corrupt)?
                {
                    Parsed::Record(r) => {
                        let start = self.pos;
                        self.pos = BinlogPos::new(start.filenum, r.end);
                        return Ok(Some(CursorItem {
                            item: r.payload,
                            start,
                            end: self.pos,
                        }));
                    }
                    Parsed::NeedMore => {
                        let mut reader = self.reader.take().expect("reader present");
                        let off = self.pos.offset;
                        let (reader, res) = tokio::task::spawn_blocking(move || {
                            let r = reader.fill(off, limit);
                            (reader, r)
                        })
                        .await
                        .map_err(|e| CursorError::Io(format!("reader task: {e}")))?;
                        self.reader = Some(reader);
                        res.map_err(|e| {
                            CursorError::Io(format!("read write2file{}: {e}", self.pos.filenum))
                        })?;
                        continue;
                    }
                }
            }
            if self.pos.filenum < st.end.filenum {
                // End of a finished file: continue at the start of the next one.
                let next = BinlogPos::new(self.pos.filenum + 1, 0);
                self.shared
                    .cursors
                    .lock()
                    .unwrap()
                    .insert(self.id, next.filenum);
                let f = open_file(&self.shared, next)?;
                self.reader = Some(RecordReader::new(Arc::new(f), self.shared.cfg.read_chunk));
                self.pos = next;
                self.done_len = None;
                continue;
            }
            return Ok(None);
        }
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if let Ok(mut m) = self.shared.cursors.lock() {
            m.remove(&self.id);
        }
    }
}
