//! nemo (Pika 2.3) → blackwidow (Pika 3.x) conversion of a whole dump (spec §7.4): the reader's
//! records go straight into the writer, so memory stays bounded by the writer's budget.
//!
//! Decisions:
//! - **TTL instant**: the stored expiry second is copied unchanged. nemo keeps a key while
//!   `ts >= now` and so does blackwidow, so every key disappears at the very same second on the
//!   new Pika as it would have on the old one (EXPIREAT keys keep their exact time; keys set with
//!   a relative TTL, which nemo stored as `now + ttl - 1`, report one second less in `TTL` than
//!   blackwidow's own `now + ttl` would, but expire at the same instant). The conversion time
//!   never shifts an expiry; keys already expired at conversion time are left out.
//! - **Lists** keep nemo's linked order (the reader walks `prev/next` links) and are written
//!   as an RPUSH-built blackwidow list (indices from 2^63).
//! - **Sorted sets** take the exact f64 score of each member entry, not the 5-decimal index.
//! - **Versions**: every collection gets the conversion time (unix seconds) as its version.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::layout::Engine;
use super::reader::OpenDump;
use super::record::{DumpError, DumpRecord, RecordValue};
use super::writer::{DumpWriter, WriteStats, WriterOptions};

/// Records per hand-over between the reading and the writing thread.
const BATCH: usize = 256;

/// Counters a running conversion updates (shared with logs, INFO and metrics).
#[derive(Debug, Default)]
pub struct Progress {
    /// Keys converted so far.
    pub keys: AtomicU64,
    /// Bytes of keys and values converted so far.
    pub bytes: AtomicU64,
}

/// Result of a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertStats {
    /// The source engine.
    pub from: Engine,
    /// Keys converted.
    pub keys: u64,
    /// Bytes of keys and values converted.
    pub bytes: u64,
    /// What the writer produced.
    pub written: WriteStats,
}

/// Bytes of data in one record (key + members).
pub fn record_bytes(r: &DumpRecord) -> u64 {
    let v: usize = match &r.value {
        RecordValue::String(s) => s.len(),
        RecordValue::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
        RecordValue::List(l) => l.iter().map(|m| m.len()).sum(),
        RecordValue::Set(s) => s.iter().map(|m| m.len()).sum(),
        RecordValue::ZSet(z) => z.iter().map(|(m, _)| m.len() + 8).sum(),
    };
    (v + if r.first { r.key.len() } else { 0 }) as u64
}

/// Converts the dump in `from` (any layout) into a blackwidow dump in `to` (created; must not
/// exist or be empty) with `engine`'s layout, keys live at `now_ms`. The `info` file is copied
/// (to `db0/info` for the 3.1+ layout). On error `to` is removed.
pub fn convert(
    from: &Path,
    to: &Path,
    engine: Engine,
    now_ms: i64,
    progress: Option<Arc<Progress>>,
) -> Result<ConvertStats, DumpError> {
    let r = convert_inner(from, to, engine, now_ms, progress);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(to);
    }
    r
}

fn convert_inner(
    from: &Path,
    to: &Path,
    engine: Engine,
    now_ms: i64,
    progress: Option<Arc<Progress>>,
) -> Result<ConvertStats, DumpError> {
    if engine == Engine::Nemo {
        return Err(DumpError::Layout {
            dir: to.display().to_string(),
            why: "conversion writes blackwidow (3.0 or 3.1+), not nemo".into(),
        });
    }
    let mut src = OpenDump::open(from)?;
    src.zset_score_order = false;
    let mut opts = WriterOptions::new(engine);
    opts.version = (now_ms / 1000).clamp(1, i32::MAX as i64) as i32;
    let mut w = DumpWriter::create(to, opts)?;
    let progress = progress.unwrap_or_default();
    // Reading and writing overlap: the reader runs on its own thread, records pass through a
    // bounded channel.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<DumpRecord>>(16);
    let mut failed: Option<DumpError> = None;
    let read = std::thread::scope(|s| {
        let src = &src;
        let reader = s.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let r = src.read(now_ms, &mut |rec| {
                batch.push(rec);
                batch.len() < BATCH || tx.send(std::mem::take(&mut batch)).is_ok()
            });
            if r.is_ok() && !batch.is_empty() {
                let _ = tx.send(batch);
            }
            r
        });
        'recv: for recs in rx.iter() {
            for rec in recs {
                if let Err(e) = w.write(&rec) {
                    failed = Some(e);
                    break 'recv;
                }
                progress
                    .bytes
                    .fetch_add(record_bytes(&rec), Ordering::Relaxed);
                if rec.last {
                    progress.keys.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        drop(rx);
        reader.join()
    });
    if let Some(e) = failed {
        return Err(e);
    }
    match read {
        Ok(r) => r?,
        Err(_) => {
            return Err(DumpError::Io {
                dir: from.display().to_string(),
                why: "the dump reader thread panicked".into(),
            })
        }
    }
    let written = w.finish()?;
    let info = src.layout.info_file();
    if info.is_file() {
        let dest = if engine == Engine::Blackwidow31 {
            to.join("db0").join("info")
        } else {
            to.join("info")
        };
        std::fs::copy(&info, &dest).map_err(|e| DumpError::Io {
            dir: to.display().to_string(),
            why: format!("cannot copy {}: {e}", info.display()),
        })?;
    }
    Ok(ConvertStats {
        from: src.layout.engine,
        keys: progress.keys.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        written,
    })
}
