//! Every downstream slave the relay knows, for `INFO replication`, metrics and the embedding API.

use crate::formats::BinlogPos;
use dashmap::DashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where a slave is in its life with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveState {
    /// MetaSync done, no TrySync accepted yet.
    Attached,
    /// TrySync accepted, waiting for the slave's `first_send`.
    WaitFirstSend,
    /// Receiving a full sync (dump pushed by rsync).
    DbSync,
    /// Streaming binlog.
    BinlogSync,
}

impl SlaveState {
    /// The label shown in INFO.
    pub fn label(self) -> &'static str {
        match self {
            SlaveState::Attached => "Attached",
            SlaveState::WaitFirstSend => "WaitFirstSend",
            SlaveState::DbSync => "DBSync",
            SlaveState::BinlogSync => "BinlogSync",
        }
    }
}

/// One slave as shown to operators.
#[derive(Debug, Clone)]
pub struct SlaveStatus {
    /// The slave's address as it announced it (`node.ip`), and its port (`node.port`).
    pub ip: String,
    /// The slave's own port.
    pub port: i32,
    /// The TCP peer of its replication connection.
    pub peer: SocketAddr,
    /// State.
    pub state: SlaveState,
    /// Session id of db0.
    pub session_id: i32,
    /// Position up to which it acknowledged.
    pub acked: BinlogPos,
    /// Logic id of the next item after `acked` (for lag in entries).
    pub acked_next_logic_id: u64,
    /// End of the last item sent.
    pub sent: BinlogPos,
    /// Protocol family detected from its acks: true for 3.3+.
    pub v33: bool,
    /// When the last request arrived.
    pub last_recv: Instant,
    /// Full-sync bytes pushed so far, if a DBSync is running.
    pub dbsync_bytes: u64,
}

/// The shared table of slaves, keyed by `ip:port`.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    slaves: Arc<DashMap<String, SlaveStatus>>,
}

impl Registry {
    /// Inserts or replaces a slave (a quick re-attach replaces the old entry).
    pub fn upsert(&self, key: &str, status: SlaveStatus) {
        self.slaves.insert(key.to_string(), status);
    }

    /// Applies `f` to a slave's entry if present.
    pub fn update(&self, key: &str, f: impl FnOnce(&mut SlaveStatus)) {
        if let Some(mut e) = self.slaves.get_mut(key) {
            f(&mut e);
        }
    }

    /// Removes a slave, but only if the entry still belongs to `peer` (a newer connection from
    /// the same slave may have replaced it).
    pub fn remove_if_peer(&self, key: &str, peer: SocketAddr) {
        self.slaves.remove_if(key, |_, s| s.peer == peer);
    }

    /// Snapshot of all slaves, sorted by key.
    pub fn snapshot(&self) -> Vec<SlaveStatus> {
        let mut v: Vec<(String, SlaveStatus)> = self
            .slaves
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// Number of slaves.
    pub fn len(&self) -> usize {
        self.slaves.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slaves.is_empty()
    }
}
