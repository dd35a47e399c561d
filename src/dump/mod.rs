//! Dumps as data: the typed record stream that every dump reader produces and every consumer
//! reads (the Redis-protocol full sync, the nemo → blackwidow converter, `inspect dump`).
//!
//! Readers are blocking (RocksDB is); async consumers run them on a blocking thread and pass
//! records through a bounded channel, so memory stays bounded by the chunk size.

pub mod record;
pub mod sim_source;

pub use record::{DataType, DumpError, DumpRecord, RecordSource, RecordValue};
