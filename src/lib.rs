//! pika-relay: a replication proxy between old Pika masters (2.3.x / 3.0.x) and new Pika slaves
//! (3.1–3.4).
//!
//! # Layout
//! - [`formats`]: pure codecs for every wire and disk format (no I/O).
//! - [`pipeline`]: the values passed between stages (old entry → new entry).
//! - [`upstream`]: poses as a slave of an old Pika master (trysync, binlog receiver, heartbeat, full sync).
//! - [`sim`]: faithful test doubles (the old master).
//! - [`cli`]: the offline tools behind `pika-relay inspect` and `pika-relay seed-manifest`.
#![warn(missing_docs)]

pub mod cli;
pub mod formats;
pub mod pipeline;
pub mod sim;
pub mod upstream;
