//! pika-relay: a replication proxy between old Pika masters (2.3.x / 3.0.x) and new Pika slaves
//! (3.1–3.4).
//!
//! # Layout
//! - [`formats`]: pure codecs for every wire and disk format (no I/O).
//! - [`pipeline`]: the values passed between stages (old entry → new entry).
//! - [`translate`]: old entry → canonical 3.x commands, one table of rules.
//! - [`journal`]: the relay's durable 3.x binlog (files, meta, group commit, cursors, retention).
//! - [`cli`]: the offline tools behind `pika-relay inspect` and `pika-relay seed-manifest`.
#![warn(missing_docs)]

pub mod cli;
pub mod formats;
pub mod journal;
pub mod pipeline;
pub mod translate;
