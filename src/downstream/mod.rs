//! The relay's sinks towards new Pika: [`pb`], the protobuf replication master real 3.1–3.4
//! slaves attach to, fed by journal cursors ([`source`]); [`window`] matches their acks;
//! [`registry`] lists them for INFO and metrics; [`positions`] maps each slave's own binlog
//! positions to the relay's (3.1 slaves re-log counters in another size).

pub mod dbsync;
pub mod pb;
pub mod positions;
pub mod registry;
pub mod source;
pub mod window;
