//! What the downstream master needs from the journal, as a trait so the protobuf server can be
//! driven by the relay's [`Journal`](crate::journal::Journal) ([`RelayJournal`]) and, in unit
//! tests, by anything that holds 3.x items.

use crate::downstream::fanout::FanoutCursor;
use crate::formats::BinlogPos;
use crate::journal::{CursorError, Journal, Synced};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use tokio::sync::watch;

/// Where a slave's requested position stands in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// On an item boundary inside the current epoch: streaming can start there.
    InRange,
    /// Before the journal's first retained position, or before the current dump epoch began:
    /// the slave needs a full sync.
    Purged,
    /// After the journal's synced end.
    BeyondEnd,
    /// Inside the journal but not at the end of an item.
    NotBoundary,
}

/// One journal item as the downstream sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalItem {
    /// The encoded 3.x binlog item (34-byte header + RESP), shared by every slave sent it.
    pub bytes: bytes::Bytes,
    /// Where the item begins.
    pub start: BinlogPos,
    /// Where it ends: what is sent as `binlog_offset` and what the slave acks.
    pub end: BinlogPos,
    /// The item's logic id (sent as `index` to 3.3+ slaves).
    pub logic_id: u64,
}

/// The dump a full sync ships: the current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// Epoch number (0 = the journal started empty, with no dump).
    pub number: u64,
    /// The journal position that matches the dump's snapshot (J_e).
    pub start: BinlogPos,
    /// The dump directory (type directories), if this epoch has one.
    pub dump_dir: Option<PathBuf>,
}

/// A reader positioned in the journal.
pub trait JournalCursor: Send + 'static {
    /// The next item if it is already durable, without waiting for new ones. Reads from disk;
    /// memory use is bounded. Not cancel-safe: await it to completion.
    fn try_next(&mut self) -> impl Future<Output = io::Result<Option<JournalItem>>> + Send;

    /// The epoch of the synced state the last item returned was checked against, if the cursor
    /// knows it (that item lies in the journal as it stood in that epoch); `None`: ask the
    /// journal ([`JournalSource::synced`]) after taking the item.
    fn checked_epoch(&self) -> Option<u64> {
        None
    }
}

/// The journal as seen by downstream.
pub trait JournalSource: Clone + Send + Sync + 'static {
    /// Cursor type.
    type Cursor: JournalCursor;
    /// Classifies a requested position.
    fn locate(&self, pos: BinlogPos) -> Located;
    /// Opens a cursor at `pos` (which [`JournalSource::locate`] said is in range).
    fn open(&self, pos: BinlogPos) -> io::Result<Self::Cursor>;
    /// The synced state, updated on every group commit.
    fn watch(&self) -> watch::Receiver<Synced>;
    /// The dump directory of epoch `n`, if there is one.
    fn dump_dir(&self, epoch: u64) -> Option<PathBuf>;
    /// `binlog-file-size`, for lag in bytes across files.
    fn file_size(&self) -> u64;

    /// Whether the journal holds a consistent epoch slaves can follow. A fresh relay has none
    /// until its first full sync from the old master; slaves that attach before wait.
    fn consistent(&self) -> bool {
        true
    }

    /// The synced state now.
    fn synced(&self) -> Synced {
        *self.watch().borrow()
    }
    /// The current epoch with its dump.
    fn epoch(&self) -> Epoch {
        let s = self.synced();
        Epoch {
            number: s.epoch,
            start: s.epoch_start,
            dump_dir: self.dump_dir(s.epoch),
        }
    }
}

/// Logic id from an encoded item header (bytes 10..18), 0 if too short.
pub fn item_logic_id(bytes: &[u8]) -> u64 {
    bytes
        .get(10..18)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

/// The relay's journal with the directory of received dumps (`<dumps>/epoch-<n>`). Slaves read
/// it through [`FanoutCursor`]s (items shared from the journal's in-memory tail).
#[derive(Clone)]
pub struct RelayJournal {
    /// The journal.
    pub journal: Journal,
    /// Where dumps received from the old master are promoted.
    pub dumps: PathBuf,
}

impl RelayJournal {
    /// The journal with its dumps directory.
    pub fn new(journal: Journal, dumps: PathBuf) -> RelayJournal {
        RelayJournal { journal, dumps }
    }

    /// The directory of epoch `n`'s dump.
    pub fn epoch_dir(dumps: &std::path::Path, n: u64) -> PathBuf {
        dumps.join(format!("epoch-{n}"))
    }
}

/// Cursor over the relay's journal (see [`FanoutCursor`]).
pub struct RelayCursor(FanoutCursor);

impl JournalCursor for RelayCursor {
    async fn try_next(&mut self) -> io::Result<Option<JournalItem>> {
        self.0.try_next().await
    }

    fn checked_epoch(&self) -> Option<u64> {
        self.0.checked_epoch()
    }
}

impl JournalSource for RelayJournal {
    type Cursor = RelayCursor;

    fn locate(&self, pos: BinlogPos) -> Located {
        if pos < self.journal.synced().epoch_start {
            return Located::Purged;
        }
        match self.journal.check(pos) {
            Ok(()) => Located::InRange,
            Err(CursorError::Purged { .. }) => Located::Purged,
            Err(CursorError::BeyondEnd { .. }) => Located::BeyondEnd,
            Err(CursorError::NotBoundary { .. }) => Located::NotBoundary,
            Err(e) => {
                tracing::error!("journal: cannot check position {pos}: {e}; the slave will be told to full-sync");
                Located::Purged
            }
        }
    }

    fn open(&self, pos: BinlogPos) -> io::Result<RelayCursor> {
        FanoutCursor::open(self.journal.clone(), pos).map(RelayCursor)
    }

    fn watch(&self) -> watch::Receiver<Synced> {
        self.journal.watch()
    }

    /// Without subscribing a watch receiver (the default does, per call).
    fn synced(&self) -> Synced {
        self.journal.synced()
    }

    fn dump_dir(&self, epoch: u64) -> Option<PathBuf> {
        let d = Self::epoch_dir(&self.dumps, epoch);
        d.is_dir().then_some(d)
    }

    fn file_size(&self) -> u64 {
        self.journal.config().binlog_file_size
    }

    /// A journal is consistent once it holds an upstream position: a fresh one always starts
    /// with a full sync, which sets it together with the first epoch.
    fn consistent(&self) -> bool {
        self.journal.synced().upstream.is_some()
    }
}
