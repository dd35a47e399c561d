//! The values that flow between the relay's stages (source → transform → sink):
//!
//! ```text
//! upstream (old master)  ──OldEntry──►  translate  ──NewEntry──►  journal  ──► downstream
//! ```
//!
//! Each stage is its own type joined to the next by a channel, so each can be tested alone.

use crate::formats::resp::Argv;
use crate::formats::BinlogPos;

/// One record received from the old master, decoded, with its place in the master's binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldEntry {
    /// Where the record begins in the master's binlog (the position `trysync` would name to
    /// receive this record again).
    pub start: BinlogPos,
    /// Where it ends: the position to `trysync` from to continue after it.
    pub end: BinlogPos,
    /// Unix seconds at which the master executed it.
    pub exec_time: u32,
    /// Originating server id (informational).
    pub server_id: u32,
    /// The commands of the record, as the master logged them: one, or several for the MSETs of
    /// 2.3.x and 3.0.0–3.0.4 that share one record.
    pub commands: Vec<Argv>,
}

/// One command in canonical 3.x form, ready to be written as one 3.x binlog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Exec time to put in the item header (the master's).
    pub exec_time: u32,
    /// The command (canonical: absolute TTLs, lower-case rewrites as documented in `translate`).
    pub argv: Argv,
}
