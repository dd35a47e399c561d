//! Every Redis-protocol target's state, for `INFO`, `/metrics`, the embedding API and cutover
//! (which needs each target's acknowledged position: [`TargetRegistry::applied_positions`]).

use crate::formats::BinlogPos;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Where a sink is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Connecting (first time) to the target.
    Connecting,
    /// Waiting for the relay's first dump (the relay has no data yet).
    WaitingDump,
    /// Loading the epoch's dump.
    FullSync,
    /// Applying the journal.
    Streaming,
    /// The target went away; reconnecting with backoff.
    Reconnecting,
    /// Stopped on an error (the target refused a command under policy `stop`, or auth).
    Stopped,
}

impl TargetState {
    /// The label in INFO and metrics.
    pub fn label(self) -> &'static str {
        match self {
            TargetState::Connecting => "connecting",
            TargetState::WaitingDump => "waiting_dump",
            TargetState::FullSync => "full_sync",
            TargetState::Streaming => "streaming",
            TargetState::Reconnecting => "reconnecting",
            TargetState::Stopped => "stopped",
        }
    }
}

/// One target as shown to operators.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    /// Sink name (marker keys and the state file are named after it).
    pub name: String,
    /// `redis://[user@]host:port/db` (no password).
    pub url: String,
    /// State.
    pub state: TargetState,
    /// Parallel connections.
    pub conns: usize,
    /// Whether batches run inside `MULTI`/`EXEC` (exactly once) or not (at least once).
    pub transactions: bool,
    /// Epoch of the applied position.
    pub epoch: u64,
    /// Everything up to here is applied on the target (and acknowledged by it).
    pub applied: BinlogPos,
    /// Logic id of the next item after `applied` (0 = unknown).
    pub applied_next_id: u64,
    /// Journal items applied since the relay started.
    pub applied_entries: u64,
    /// Redis commands the target acknowledged since the relay started.
    pub commands: u64,
    /// Items per second over the last second.
    pub rate: f64,
    /// Full syncs started since the relay started.
    pub full_syncs: u64,
    /// Records and keys loaded by the running (or last) full sync.
    pub fullsync_records: u64,
    /// Keys loaded by the running (or last) full sync.
    pub fullsync_keys: u64,
    /// Commands the target refused and that were skipped (policy `skip`).
    pub skipped: u64,
    /// Reconnects after the target went away.
    pub reconnects: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

impl TargetStatus {
    /// A fresh entry.
    pub fn new(name: &str, url: &str, conns: usize) -> TargetStatus {
        TargetStatus {
            name: name.into(),
            url: url.into(),
            state: TargetState::Connecting,
            conns,
            transactions: false,
            epoch: 0,
            applied: BinlogPos::default(),
            applied_next_id: 0,
            applied_entries: 0,
            commands: 0,
            rate: 0.0,
            full_syncs: 0,
            fullsync_records: 0,
            fullsync_keys: 0,
            skipped: 0,
            reconnects: 0,
            last_error: None,
        }
    }
}

/// The shared table of targets, by name.
#[derive(Debug, Clone, Default)]
pub struct TargetRegistry {
    inner: Arc<Mutex<BTreeMap<String, TargetStatus>>>,
}

impl TargetRegistry {
    /// Inserts or replaces a target.
    pub fn upsert(&self, s: TargetStatus) {
        self.inner.lock().unwrap().insert(s.name.clone(), s);
    }

    /// Applies `f` to a target's entry if present.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut TargetStatus)) {
        if let Some(s) = self.inner.lock().unwrap().get_mut(name) {
            f(s);
        }
    }

    /// Every target, sorted by name.
    pub fn snapshot(&self) -> Vec<TargetStatus> {
        self.inner.lock().unwrap().values().cloned().collect()
    }

    /// One target.
    pub fn get(&self, name: &str) -> Option<TargetStatus> {
        self.inner.lock().unwrap().get(name).cloned()
    }

    /// `(name, epoch, applied position)` of every target: what each target acknowledged.
    pub fn applied_positions(&self) -> Vec<(String, u64, BinlogPos)> {
        self.snapshot()
            .into_iter()
            .map(|s| (s.name, s.epoch, s.applied))
            .collect()
    }
}
