//! The relay's durable journal: its own binlog in Pika 3.x's on-disk format (`write2file<N>` of
//! 64 KiB blocks + a 65536-byte `manifest`), byte for byte what a 3.2.9 master writes for the
//! same commands, plus a small crash-safe meta record.
//!
//! | file | role |
//! |---|---|
//! | [`writer`] | [`JournalWriter`] (synchronous core: append, rotate, group commit) and [`JournalHandle`] (the same on its own thread, fed by a channel) |
//! | `syncer` | durability beside the appends: `fdatasync`, meta, manifest and the [`Synced`] watch, on a thread of its own under a [`JournalHandle`] |
//! | [`meta`] | `relay-meta`: upstream position of the last accepted entry, epoch and `J_e`, journal end |
//! | [`recovery`] | reopening after a crash: cut the unaccepted tail, check the files against meta |
//! | [`cursor`] | readers from any position that follow the tail, reading from disk |
//! | [`retention`] | purging old files by count and age, protecting what cursors and the epoch need |
//! | [`tail`] | the most recent items in memory as the writer encoded them, for readers at the tail |
//! | [`files`] | file names, listing, record-boundary checks |
//!
//! # Durability contract
//! An append is *accepted* when its items are in the data file, the file is `fdatasync`ed, and
//! then the meta record naming the new journal end and the entry's upstream end position is
//! stored (its own `fdatasync`). Only then does the [`Synced`] watch advance. Under a
//! [`JournalHandle`] this happens on a syncer thread while the writer keeps appending: a sync
//! covers what was appended when it was requested, and appends never wait for it (unless 64 MiB
//! are not durable yet). Downstream sends
//! only items below `Synced::end`; upstream resumes `trysync` from `Synced::upstream`. On reopen
//! everything past meta's `end` is cut off (it was never acknowledged to anyone), so no accepted
//! entry is lost and no entry is present twice. The `manifest` is derived (written after each
//! sync without `fsync`, rewritten on recovery): meta and the files are the truth.
//!
//! # Positions
//! Item headers carry `server_id` (config, default 1), `logic_id` = items written before this
//! one, and the producer position *before* the item; the record header time is the item's
//! `exec_time` (no reader validates it; this keeps the journal a pure function of its input).
//! Rotation happens before writing an item when the current file is strictly larger than
//! `binlog_file_size`; as on a real Pika, the first item of a new file carries the previous
//! file's number and end offset in its header.

pub mod cursor;
pub mod files;
pub mod meta;
pub mod recovery;
pub mod retention;
pub mod sync_stats;
mod syncer;
pub mod tail;
pub mod writer;

pub use cursor::{Cursor, CursorError, CursorItem};
pub use recovery::Recovery;
pub use retention::{PurgeReport, RetentionConfig};
pub use writer::{JournalHandle, JournalWriter};

use crate::formats::manifest::ManifestLayout;
use crate::formats::BinlogPos;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Pika's default `binlog-file-size`.
pub const DEFAULT_BINLOG_FILE_SIZE: u64 = 104_857_600;

/// When appended items are synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// Sync after every append message (one old entry, or one batch of them from `append_many`);
    /// with a syncer thread, syncs run back to back and each covers every append before it.
    Always,
    /// Group commit: sync once `max_entries` items are unsynced or the oldest unsynced append is
    /// `max_delay_ms` old, whichever comes first; a [`JournalHandle`]'s writer also syncs as
    /// soon as nothing more is queued (requests made during a running fsync merge into the
    /// next, so the batches grow with the load instead of waiting for a timer).
    Group {
        /// Items per sync at most.
        max_entries: u64,
        /// Longest wait before a sync, milliseconds.
        max_delay_ms: u64,
    },
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy::Group {
            max_entries: 4096,
            max_delay_ms: 5,
        }
    }
}

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct JournalConfig {
    /// Directory of `write2file<N>`, `manifest` and `relay-meta`.
    pub dir: PathBuf,
    /// Rotation threshold; must equal the slaves' `binlog-file-size` (Pika: [1024, 1 GiB]).
    pub binlog_file_size: u64,
    /// `server_id` written in every item header (3.1/3.2 slaves parse it as a signed int).
    pub server_id: u32,
    /// Layout of the `manifest` file (3.1/3.2 by default).
    #[serde(skip, default = "default_layout")]
    pub manifest_layout: ManifestLayout,
    /// Group commit.
    pub sync: SyncPolicy,
    /// Retention.
    pub retention: RetentionConfig,
    /// Capacity of the append channel of [`JournalHandle`] (messages).
    pub channel_capacity: usize,
    /// Bytes a cursor reads from disk at a time.
    pub read_chunk: usize,
    /// Bytes of the most recent items kept in memory for readers at the tail ([`tail`]).
    pub tail_bytes: usize,
    /// Zero-fill the live file ahead of the data in chunks of this many bytes (0: off); see
    /// `JournalWriter::preallocate`.
    pub preallocate: u64,
}

/// Default pre-allocation chunk: 4 MiB, as Pika 3.1/3.2 grow their binlog files.
pub const DEFAULT_PREALLOCATE: u64 = 4 << 20;

fn default_layout() -> ManifestLayout {
    ManifestLayout::V31
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            dir: PathBuf::from("journal"),
            binlog_file_size: DEFAULT_BINLOG_FILE_SIZE,
            server_id: 1,
            manifest_layout: ManifestLayout::V31,
            sync: SyncPolicy::default(),
            retention: RetentionConfig::default(),
            channel_capacity: 1024,
            read_chunk: 256 * 1024,
            tail_bytes: 16 << 20,
            preallocate: DEFAULT_PREALLOCATE,
        }
    }
}

impl JournalConfig {
    /// Defaults with this directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            ..Default::default()
        }
    }
}

/// The accepted (synced) state of the journal, published on a watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synced {
    /// Journal producer position after the last accepted item (Pika's `binlog_offset`).
    pub end: BinlogPos,
    /// Logic id of the next item (the manifest's value).
    pub logic_id: u64,
    /// Upstream position after the last accepted old entry: `trysync` from here.
    pub upstream: Option<BinlogPos>,
    /// Current dump epoch (0 until the first full sync from upstream).
    pub epoch: u64,
    /// `J_e`: journal position at which the current epoch's dump applies.
    pub epoch_start: BinlogPos,
    /// Items accepted since the journal was created.
    pub entries: u64,
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal {what}: {source}")]
    Io {
        /// What was being done (and on which file).
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The files contradict the meta record, or a record cannot be parsed.
    #[error("journal corrupt: {0}")]
    Corrupt(String),
    /// The writer stopped (after an I/O error, or after close).
    #[error("journal writer stopped: {0}")]
    WriterStopped(String),
    /// A bad setting.
    #[error("journal config: {0}")]
    Config(String),
}

impl JournalError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        JournalError::Io {
            what: what.into(),
            source,
        }
    }
}

/// State shared by the writer, the cursors and retention.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: JournalConfig,
    pub(crate) state: watch::Sender<Synced>,
    /// Lowest data file number still present (cursors below it are purged).
    pub(crate) first: AtomicU32,
    /// Registered cursors: id → file number they read.
    pub(crate) cursors: Mutex<HashMap<u64, u32>>,
    pub(crate) next_cursor: AtomicU64,
    /// Serialises purges.
    pub(crate) purge_lock: Mutex<()>,
    /// Set when the writer failed.
    pub(crate) failure: Mutex<Option<String>>,
    /// Recent items in memory.
    pub(crate) tail: Mutex<tail::Tail>,
    /// Commit timings.
    pub(crate) sync_stats: sync_stats::SyncStats,
}

/// The read side of the journal: cursors, the synced state, retention. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Journal {
    pub(crate) shared: Arc<Shared>,
}

impl Journal {
    /// Opens (recovering if needed) the journal in `cfg.dir` and starts its writer thread.
    /// Returns the read side, the write handle and what recovery found (also logged).
    pub fn open(cfg: JournalConfig) -> Result<(Journal, JournalHandle, Recovery), JournalError> {
        let (w, rec) = JournalWriter::open(cfg)?;
        let journal = w.journal();
        let handle = JournalHandle::spawn(w)?;
        Ok((journal, handle, rec))
    }

    /// How long commits took so far (see [`sync_stats`]).
    pub fn sync_stats(&self) -> sync_stats::SyncStatsView {
        self.shared.sync_stats.view()
    }

    /// The synced state: what may be sent downstream and what a restart resumes from.
    pub fn synced(&self) -> Synced {
        *self.shared.state.borrow()
    }

    /// A watch on the accepted state (changes after every sync).
    pub fn watch(&self) -> watch::Receiver<Synced> {
        self.shared.state.subscribe()
    }

    /// The settings in use.
    pub fn config(&self) -> &JournalConfig {
        &self.shared.cfg
    }

    /// Lowest data file number present.
    pub fn first_filenum(&self) -> u32 {
        self.shared.first.load(Ordering::Acquire)
    }

    /// Lowest position a cursor may start from (`first_filenum():0`).
    pub fn first_pos(&self) -> BinlogPos {
        BinlogPos::new(self.first_filenum(), 0)
    }

    /// Why the writer stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().unwrap().clone()
    }

    /// Checks that `pos` is a position a cursor can start from: an accepted record boundary
    /// in a file still present. Does not register anything.
    pub fn check(&self, pos: BinlogPos) -> Result<(), CursorError> {
        cursor::check_position(&self.shared, pos)
    }

    /// Opens a cursor at `pos` (see [`Cursor`]).
    pub fn cursor(&self, pos: BinlogPos) -> Result<Cursor, CursorError> {
        Cursor::open(self.shared.clone(), pos)
    }

    /// Several items from `pos` on, none ending past `limit`, under one lock of the in-memory
    /// [`tail`] (see [`Tail::get_many`](tail::Tail::get_many)): appended to `out`; `None` if
    /// the tail has no item at `pos`.
    pub fn tail_get_many(
        &self,
        pos: BinlogPos,
        hint: &mut u64,
        limit: BinlogPos,
        max_items: usize,
        max_bytes: usize,
        out: &mut std::collections::VecDeque<tail::TailItem>,
    ) -> Option<usize> {
        let t = self.shared.tail.lock().unwrap();
        t.get_many(pos, hint, limit, max_items, max_bytes, out)
    }

    /// Whether a reader at `pos` can continue from the in-memory [`tail`].
    pub fn tail_covers(&self, pos: BinlogPos) -> bool {
        self.shared.tail.lock().unwrap().covers(pos)
    }

    /// Items and bytes in the in-memory [`tail`].
    pub fn tail_len(&self) -> (usize, usize) {
        self.shared.tail.lock().unwrap().len()
    }

    /// Runs retention now (the writer also runs it after each rotation).
    pub fn purge(&self) -> PurgeReport {
        retention::purge(&self.shared)
    }
}
