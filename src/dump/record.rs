//! The record stream: one key arrives as one or more consecutive [`DumpRecord`]s (a big hash,
//! list, set or sorted set is cut into chunks), keys in the reader's order, expired keys and
//! stale versions already left out.

use bytes::Bytes;

/// The five Pika data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    /// String (`set`).
    String,
    /// Hash (`hset`).
    Hash,
    /// List (`rpush`), members in list order.
    List,
    /// Set (`sadd`).
    Set,
    /// Sorted set (`zadd`).
    ZSet,
}

impl DataType {
    /// The name Redis' `TYPE` answers (`string`, `hash`, `list`, `set`, `zset`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::String => "string",
            DataType::Hash => "hash",
            DataType::List => "list",
            DataType::Set => "set",
            DataType::ZSet => "zset",
        }
    }
}

/// One chunk of one key's value.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordValue {
    /// A whole string value.
    String(Bytes),
    /// Hash fields and values (a chunk).
    Hash(Vec<(Bytes, Bytes)>),
    /// List members, continuing the previous chunk of the same key in list order.
    List(Vec<Bytes>),
    /// Set members (a chunk).
    Set(Vec<Bytes>),
    /// Sorted-set members with their exact scores (a chunk, score order within the key).
    ZSet(Vec<(Bytes, f64)>),
}

impl RecordValue {
    /// The type this value belongs to.
    pub fn data_type(&self) -> DataType {
        match self {
            RecordValue::String(_) => DataType::String,
            RecordValue::Hash(_) => DataType::Hash,
            RecordValue::List(_) => DataType::List,
            RecordValue::Set(_) => DataType::Set,
            RecordValue::ZSet(_) => DataType::ZSet,
        }
    }
}

/// One chunk of one key. Pika keeps one keyspace per type, so the same `key` may arrive once
/// per type; `(key, type)` identifies a key.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpRecord {
    /// The key, binary-safe.
    pub key: Bytes,
    /// Absolute expiry in unix milliseconds; `None` for a key without TTL. The same on every
    /// chunk of a key.
    pub expire_at_ms: Option<i64>,
    /// This chunk's part of the value.
    pub value: RecordValue,
    /// `true` on the first chunk of a key (a consumer replacing a key deletes it here).
    pub first: bool,
    /// `true` on the key's last chunk.
    pub last: bool,
}

/// Why a dump could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The directory is not a dump this reader knows (names the directory and what is missing).
    #[error("dump {dir}: {why}")]
    Layout {
        /// The dump directory.
        dir: String,
        /// What is wrong with it.
        why: String,
    },
    /// A stored entry could not be decoded (names the file or column family and the key).
    #[error("dump {dir}: corrupt entry in {place}: {why}")]
    Corrupt {
        /// The dump directory.
        dir: String,
        /// Where in the dump (type directory, column family, key).
        place: String,
        /// The decoding error.
        why: String,
    },
    /// An I/O or storage-engine error.
    #[error("dump {dir}: {why}")]
    Io {
        /// The dump directory.
        dir: String,
        /// The underlying error.
        why: String,
    },
}

/// A blocking, in-order stream of records out of one dump.
pub trait RecordSource: Send {
    /// The next record, or `None` at the end of the dump.
    fn next_record(&mut self) -> Result<Option<DumpRecord>, DumpError>;
}
