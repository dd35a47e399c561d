//! Opening a dump of any layout as one in-order [`RecordSource`]: strings, hashes, lists, sets,
//! then sorted sets, each in its instance's key order. The five RocksDB instances are opened
//! (read-only) up front, so a bad dump fails at open; records are then produced on a thread and
//! handed over through a bounded channel (memory bounded by a few chunks).

use std::path::Path;
use std::sync::mpsc;

use rocksdb::DB;

use super::chunk::{Ctx, Emit, Stop};
use super::layout::{detect, Engine, Layout, TYPES};
use super::record::{DataType, DumpError, DumpRecord, RecordSource};
use super::{blackwidow, nemo, rocks};

/// Records in flight between the reading thread and the consumer.
const CHANNEL_DEPTH: usize = 8;

/// The five opened instances of a dump.
pub struct OpenDump {
    /// Where and what the dump is.
    pub layout: Layout,
    dbs: Vec<(DataType, DB)>,
    /// Sorted-set chunks in score order (the default); a consumer that re-sorts anyway (the
    /// converter) turns it off, which spares nemo reads a lookup per member.
    pub zset_score_order: bool,
}

impl OpenDump {
    /// Detects the layout of `dir` and opens its five instances read-only.
    pub fn open(dir: &Path) -> Result<OpenDump, DumpError> {
        Self::open_layout(detect(dir)?, false)
    }

    /// Opens the instances of a known layout. With `empty_ok`, a missing or empty type
    /// directory counts as an empty instance (what Pika does when it opens a data directory).
    pub fn open_layout(layout: Layout, empty_ok: bool) -> Result<OpenDump, DumpError> {
        let mut dbs = Vec::with_capacity(TYPES.len());
        for t in TYPES {
            let inst = layout.instance(t);
            let empty = std::fs::read_dir(&inst).map_or(true, |mut d| d.next().is_none());
            if empty_ok && empty {
                continue;
            }
            let db = rocks::open_read_only(layout.engine, t, &inst)?;
            dbs.push((t, db));
        }
        Ok(OpenDump {
            layout,
            dbs,
            zset_score_order: true,
        })
    }

    /// Streams every live record at `now_ms` (unix milliseconds) into `emit`, in order; stops
    /// early (with `Ok`) when `emit` returns `false`.
    pub fn read(&self, now_ms: i64, emit: &mut Emit<'_>) -> Result<(), DumpError> {
        for (t, db) in &self.dbs {
            let place = self.layout.instance(*t).display().to_string();
            let ctx = Ctx {
                place: &place,
                now_s: now_ms.div_euclid(1000),
                zset_score_order: self.zset_score_order,
            };
            let r = match self.layout.engine {
                Engine::Nemo => nemo::read(db, *t, &ctx, emit),
                _ => blackwidow::read(db, *t, &ctx, emit),
            };
            match r {
                Ok(()) => {}
                Err(Stop::Cancelled) => return Ok(()),
                Err(Stop::Error(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A [`RecordSource`] fed by a reading thread.
pub struct ThreadedSource {
    rx: mpsc::Receiver<Result<DumpRecord, DumpError>>,
    done: bool,
}

impl RecordSource for ThreadedSource {
    fn next_record(&mut self) -> Result<Option<DumpRecord>, DumpError> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(r)) => Ok(Some(r)),
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Ok(None)
            }
        }
    }
}

/// Opens the dump in `dir` (nemo 2.3, blackwidow 3.0 or 3.1–3.4, detected from the directory)
/// as a stream of its live records at `now_ms` (unix milliseconds; expired keys are left out).
pub fn open(dir: &Path, now_ms: i64) -> Result<Box<dyn RecordSource>, DumpError> {
    let dump = OpenDump::open(dir)?;
    let (tx, rx) = mpsc::sync_channel(CHANNEL_DEPTH);
    std::thread::Builder::new()
        .name("dump-reader".into())
        .spawn(move || {
            let r = dump.read(now_ms, &mut |rec| tx.send(Ok(rec)).is_ok());
            if let Err(e) = r {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|e| DumpError::Io {
            dir: dir.display().to_string(),
            why: format!("cannot start the reading thread: {e}"),
        })?;
    Ok(Box::new(ThreadedSource { rx, done: false }))
}
