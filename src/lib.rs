//! pika-relay: a replication proxy between old Pika masters (2.3.x / 3.0.x) and new Pika slaves
//! (3.1–3.4).
//!
//! # Layout
//! Stages in the order data flows (source → transform → sinks), each a module with one job:
//! - [`formats`]: pure codecs for every wire and disk format (no I/O).
//! - [`pipeline`]: the values passed between stages (old entry → new entry).
//! - [`upstream`]: the relay posing as a slave of the old master (trysync, binlog receiver, heartbeat, full sync).
//! - [`rsync`]: the embedded rsync daemon receiver (full sync in) and client sender (full sync out).
//! - [`translate`]: old entry → canonical 3.x commands, one table of rules.
//! - [`journal`]: the relay's durable 3.x binlog (files, meta, group commit, cursors, retention).
//! - [`dump`]: dumps as data: the typed record stream dump readers produce.
//! - [`downstream`]: the protobuf master new Pika slaves attach to.
//! - [`admin`]: the relay's own port R (probes, PING, AUTH, INFO) and the metrics endpoint.
//! - [`relay`]: the parts wired into one relay; pre-flight checks.
//! - [`config`]: the TOML settings and their defaults.
//! - [`net`]: socket options of the listeners and replication links.
//! - [`sim`]: faithful doubles of an old Pika master and a new Pika slave, for tests and `demo`.
//! - [`verify`]: `pika-relay verify`, the old and new sides' data compared key by key.
//! - [`cli`]: the offline tools behind `pika-relay inspect` and `pika-relay seed-manifest`.
#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod downstream;
pub mod dump;
pub mod formats;
pub mod journal;
pub mod net;
pub mod pipeline;
pub mod relay;
pub mod rsync;
pub mod sim;
pub mod translate;
pub mod upstream;
pub mod verify;
