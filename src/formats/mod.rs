//! Pure codecs for every Pika wire and disk format the relay touches. No I/O here: each function
//! takes bytes and returns typed values or a [`FormatError`] that says what was wrong and where.
//!
//! | module | format |
//! |---|---|
//! | [`resp`] | RESP command arrays (binary-safe, strict, non-recursive) and simple replies |
//! | [`item`] | the 34-byte binlog item header shared by 3.0.x and 3.x |
//! | [`binlog_file`] | whole `write2file<N>` images: records classified into items, 2.3 arrays, filler |
//! | [`record`] | the 64 KiB-block record layer of `write2file<N>` (all versions) |
//! | [`old_frame`] | 3.0.x binlog-channel frames (6-byte transfer header) |
//! | [`old_raw`] | 2.3.x raw-RESP binlog arrays with their four trailing fields |
//! | [`manifest`] | binlog `manifest` files, 2.3 / 3.0 / 3.1–3.2 / 3.3+ layouts |
//! | [`info`] | the dump `info` file |
//! | [`padding`] | the filler a new Pika writes for `SetProducerStatus` (seeded manifests, full sync) |
//! | [`pb`] | the protobuf replication messages (prost, from `proto/`) and their 4-byte framing |
//! | [`pb_ack`] | the BinlogSync ack decoded without allocating (fast path beside prost) |

pub mod binlog_file;
pub mod info;
pub mod item;
pub mod manifest;
pub mod old_frame;
pub mod old_raw;
pub mod padding;
pub mod pb;
pub mod pb_ack;
pub mod pb_required;
pub mod record;
pub mod resp;

mod error;
mod pos;

pub use error::FormatError;
pub use pos::BinlogPos;
