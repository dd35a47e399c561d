//! The relay's sinks towards new Pika: [`pb`], the protobuf replication master real 3.1–3.4
//! slaves attach to, fed by journal cursors ([`source`]) that share the journal's in-memory
//! items ([`fanout`]); [`window`] matches their acks; [`positions`] maps each slave's own binlog
//! positions to the relay's (3.1 slaves re-log counters in another size); [`registry`] lists them
//! for INFO and metrics; [`resp`] replays into Redis-protocol targets.

pub mod dbsync;
pub mod fanout;
pub mod pb;
pub mod positions;
pub mod registry;
pub mod resp;
pub mod source;
pub mod window;
