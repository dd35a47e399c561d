//! Dumps as data: the typed record stream that every dump reader produces and every consumer
//! reads (the Redis-protocol full sync, the nemo → blackwidow converter, `inspect dump`).
//!
//! Readers are blocking (RocksDB is); async consumers run them on a blocking thread and pass
//! records through a bounded channel, so memory stays bounded by the chunk size.
//!
//! - [`open`]: any dump (nemo 2.3, blackwidow 3.0, blackwidow 3.1–3.4) as a [`RecordSource`].
//! - [`layout`]: which engine wrote a directory; [`comparators`]: blackwidow's key orders.

pub mod blackwidow;
pub mod chunk;
pub mod comparators;
pub mod convert;
pub mod layout;
pub mod manifest;
pub mod nemo;
pub mod reader;
pub mod record;
pub mod rocks;
pub mod sst_check;
pub mod writer;

pub use layout::{detect, Engine, Layout};
pub use reader::{open, OpenDump};
pub use record::{DataType, DumpError, DumpRecord, RecordSource, RecordValue};
pub use writer::{Compression, DumpWriter, WriteStats, WriterOptions};
