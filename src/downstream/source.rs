//! What the downstream master needs from the journal, as a trait so the protobuf server can be
//! driven by the relay's journal and, in unit tests, by anything that holds 3.x items.

use crate::formats::BinlogPos;
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
    /// The encoded 3.x binlog item (34-byte header + RESP).
    pub bytes: Vec<u8>,
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
    /// The next item if it is already durable (ends at or before the synced end), without
    /// waiting. Reads from disk; memory use is one item.
    fn try_next(&mut self) -> io::Result<Option<JournalItem>>;
    /// The position of the next item.
    fn position(&self) -> BinlogPos;
}

/// The journal as seen by downstream.
pub trait JournalSource: Clone + Send + Sync + 'static {
    /// Cursor type.
    type Cursor: JournalCursor;
    /// Classifies a requested position.
    fn locate(&self, pos: BinlogPos) -> Located;
    /// Opens a cursor at `pos` (which [`JournalSource::locate`] said is in range).
    fn open(&self, pos: BinlogPos) -> io::Result<Self::Cursor>;
    /// The synced end, updated on every group commit.
    fn synced_end(&self) -> watch::Receiver<BinlogPos>;
    /// The current epoch.
    fn epoch(&self) -> Epoch;
    /// `binlog-file-size`, for lag in bytes across files.
    fn file_size(&self) -> u64;
    /// Logic id the next item will get (= items written), for lag in entries.
    fn next_logic_id(&self) -> u64;
}
