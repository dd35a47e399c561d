//! Reopening the journal: the meta record is the truth, the files must hold at least what it
//! names, and anything past it (appended but never accepted) is removed.
//!
//! 1. No `relay-meta` and no data file: a fresh journal (`write2file0` empty, meta at `0:0`).
//!    No meta but data files: refused (the upstream position of those items is unknown).
//! 2. Data files numbered above meta's `end.filenum` are deleted (created by a rotation whose
//!    items were never accepted).
//! 3. The file `end.filenum` is scanned from 0 to `end.offset`: every record must parse and
//!    `end.offset` must be a record end, and the last item's logic id must be meta's minus one.
//!    A file shorter than `end.offset` means accepted data was lost: refused (storage fault).
//! 4. Bytes past `end.offset` (torn or unsynced tail, and the zeros the writer pre-allocates) are
//!    truncated away; only the non-zero ones are reported as dropped.
//! 5. The manifest is rewritten from meta.

use super::files::{data_path, list_data_files, RecordReader, MANIFEST_FILE};
use super::meta::{sync_dir, Meta, MetaFile};
use super::{JournalConfig, JournalError, Synced};
use crate::formats::item::BinlogItem;
use crate::formats::manifest::Manifest;
use crate::formats::BinlogPos;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// What reopening found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The recovered accepted state.
    pub state: Synced,
    /// A new, empty journal was created.
    pub fresh: bool,
    /// Bytes cut from the end of the current file (appended, never accepted).
    pub dropped_tail_bytes: u64,
    /// Data files deleted because they were created after the last accepted position.
    pub removed_files: Vec<u32>,
    /// Lowest data file present.
    pub first_filenum: u32,
}

pub(crate) struct Opened {
    pub meta: MetaFile,
    pub file: File,
    pub manifest: File,
    pub recovery: Recovery,
}

fn state_of(m: &Meta) -> Synced {
    Synced {
        end: m.end,
        logic_id: m.logic_id,
        upstream: m.upstream,
        epoch: m.epoch,
        epoch_start: m.epoch_start,
        entries: m.entries,
    }
}

pub(crate) fn open(cfg: &JournalConfig) -> Result<Opened, JournalError> {
    let dir = &cfg.dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| JournalError::io(format!("create {}", dir.display()), e))?;
    let io = |what: String| move |e| JournalError::io(what, e);
    let files = list_data_files(dir).map_err(io(format!("list {}", dir.display())))?;
    let meta = MetaFile::open(dir).map_err(io(format!("read meta in {}", dir.display())))?;
    let (meta, fresh) = match meta {
        Some(m) => (m, false),
        None if files.iter().all(|&f| {
            std::fs::metadata(data_path(dir, f))
                .map(|m| m.len() == 0)
                .unwrap_or(false)
        }) =>
        {
            // Nothing, or the empty files of a creation interrupted before its meta was written.
            let p = data_path(dir, 0);
            File::create(&p)
                .and_then(|f| f.sync_all())
                .map_err(io(format!("create {}", p.display())))?;
            sync_dir(dir).map_err(io(format!("sync {}", dir.display())))?;
            (
                MetaFile::create(dir, Meta::default()).map_err(io("create meta".into()))?,
                true,
            )
        }
        None => {
            return Err(JournalError::Corrupt(format!(
                "{} holds binlog files but no relay-meta: their upstream position is unknown; \
                 move them away or restore relay-meta",
                dir.display()
            )))
        }
    };
    let m = meta.current();
    let n = m.end.filenum;
    let mut removed = Vec::new();
    for &f in files.iter().filter(|&&f| f > n) {
        let p = data_path(dir, f);
        std::fs::remove_file(&p).map_err(io(format!("remove {}", p.display())))?;
        removed.push(f);
    }
    let path = data_path(dir, n);
    if !files.contains(&n) && !fresh {
        if m.end.offset != 0 {
            return Err(JournalError::Corrupt(format!(
                "{} is missing but {} bytes of it were accepted",
                path.display(),
                m.end.offset
            )));
        }
        File::create(&path).map_err(io(format!("create {}", path.display())))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(format!("open {}", path.display())))?;
    let len = file
        .metadata()
        .map_err(io(format!("stat {}", path.display())))?
        .len();
    if len < m.end.offset {
        return Err(JournalError::Corrupt(format!(
            "{} has {len} bytes but {} were accepted (synced data lost)",
            path.display(),
            m.end.offset
        )));
    }
    verify_prefix(&file, &path.display().to_string(), &m)?;
    let dropped =
        written_past(&file, m.end.offset, len).map_err(io(format!("read {}", path.display())))?;
    if len > m.end.offset {
        file.set_len(m.end.offset)
            .map_err(io(format!("truncate {}", path.display())))?;
        file.sync_all()
            .map_err(io(format!("sync {}", path.display())))?;
    }
    (&file)
        .seek(SeekFrom::Start(m.end.offset))
        .map_err(io(format!("seek {}", path.display())))?;
    if !removed.is_empty() || !files.contains(&n) {
        sync_dir(dir).map_err(io(format!("sync {}", dir.display())))?;
    }
    let mut first = n;
    while first > 0 && files.contains(&(first - 1)) {
        first -= 1;
    }
    let manifest = write_manifest_full(cfg, &m)?;
    let recovery = Recovery {
        state: state_of(&m),
        fresh,
        dropped_tail_bytes: dropped,
        removed_files: removed,
        first_filenum: first,
    };
    tracing::info!(
        dir = %dir.display(), fresh, end = %m.end, logic_id = m.logic_id,
        upstream = %m.upstream.map_or("none".to_string(), |p| p.to_string()),
        epoch = m.epoch, epoch_start = %m.epoch_start, first_file = first,
        dropped_tail_bytes = dropped, removed_files = ?recovery.removed_files,
        "journal recovered"
    );
    Ok(Opened {
        meta,
        file,
        manifest,
        recovery,
    })
}

/// Bytes of data past `from` (up to the last non-zero byte before `len`): what a crash cut off,
/// not counting the zeros the writer pre-allocated.
fn written_past(file: &File, from: u64, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut last = from;
    let mut buf = vec![0u8; 1 << 16];
    let mut at = from;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            last = at + i as u64 + 1;
        }
        at += n as u64;
    }
    Ok(last - from)
}

/// Checks that the file's records run exactly to `m.end.offset` and agree with meta's logic id.
fn verify_prefix(file: &File, name: &str, m: &Meta) -> Result<(), JournalError> {
    let end = m.end.offset;
    let dup = file
        .try_clone()
        .map_err(|e| JournalError::io(format!("dup {name}"), e))?;
    let mut r = RecordReader::new(Arc::new(dup), 1 << 20);
    let mut pos = 0;
    let mut last: Option<Vec<u8>> = None;
    while pos < end {
        let rec = r
            .read_blocking(pos, end)
            .map_err(|e| JournalError::Corrupt(format!("{name}: {e}")))?;
        pos = rec.end;
        last = Some(rec.payload);
    }
    if pos != end {
        return Err(JournalError::Corrupt(format!(
            "{name}: accepted end {end} is not a record boundary"
        )));
    }
    if let Some(p) = last {
        let item = BinlogItem::decode(&p)
            .map_err(|e| JournalError::Corrupt(format!("{name}: last item: {e}")))?;
        if item.logic_id + 1 != m.logic_id {
            return Err(JournalError::Corrupt(format!(
                "{name}: last item has logic id {} but meta says {} items",
                item.logic_id, m.logic_id
            )));
        }
    }
    Ok(())
}

fn write_manifest_full(cfg: &JournalConfig, m: &Meta) -> Result<File, JournalError> {
    let p = cfg.dir.join(MANIFEST_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .map_err(|e| JournalError::io(format!("open {}", p.display()), e))?;
    let img = manifest_of(m.end, m.logic_id).encode(cfg.manifest_layout);
    f.write_all_at(&img, 0)
        .and_then(|_| f.set_len(img.len() as u64))
        .map_err(|e| JournalError::io(format!("write {}", p.display()), e))?;
    Ok(f)
}

pub(crate) fn manifest_of(end: BinlogPos, logic_id: u64) -> Manifest {
    Manifest {
        pos: end,
        logic_id,
        ..Default::default()
    }
}
