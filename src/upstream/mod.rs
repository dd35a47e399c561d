//! The upstream side: the relay poses as a slave of an old Pika master (2.3.x / 3.0.x).
//!
//! | file | job |
//! |---|---|
//! | [`config`] | who the master is, how we present ourselves, every timer |
//! | [`session`] | the state machine Connect → Auth → TrySync → Streaming \| WaitingFullSync → Backoff |
//! | [`receiver`] | our port R+1000: the master's binlog push, decoded into [`OldEntry`] with positions |
//! | [`heartbeat`] | `spci <sid>` then `ping` every second to master port+2000 |
//! | [`fullsync`] | on `wait`: receive the dump (via [`FullSyncReceiver`]), validate, promote as a new epoch |
//!
//! Outputs: one ordered channel of [`UpstreamEvent`] (entries and new dump epochs) and a
//! [`watch`] of [`UpstreamStatus`]. Input: a [`watch`] of the journal's [`Durable`] position, from
//! which every `trysync` resumes.

pub mod config;
pub mod fullsync;
pub mod heartbeat;
pub mod receiver;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::formats::info::DumpInfo;
use crate::formats::BinlogPos;
pub use crate::pipeline::OldEntry;

pub use config::{OldVersion, Timings, UpstreamConfig};
pub use fullsync::{DirFullSyncReceiver, FullSyncReceiver};

/// What the journal has made durable: the upstream position after the last synced entry, within
/// a dump epoch. The session resumes `trysync` from it and drops re-sent entries at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durable {
    /// Dump epoch (0 = before any full sync).
    pub epoch: u64,
    /// Upstream position after the last durable entry of that epoch.
    pub pos: BinlogPos,
}

/// A full-sync dump received from the master and promoted to `<data_dir>/dumps/epoch-<n>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpEpoch {
    /// The new epoch number.
    pub epoch: u64,
    /// Where the dump now lives (type directories + `info`).
    pub dir: PathBuf,
    /// Its `info` file; `info.pos` is the upstream position the dump is consistent with, and the
    /// first entry after it starts there.
    pub info: DumpInfo,
}

/// What the upstream emits, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEvent {
    /// One master record. Its `start` equals the previous entry's `end` (or the epoch's `info`
    /// position), so the stream has no gaps and no duplicates.
    Entry(OldEntry),
    /// A full sync completed: start epoch `epoch` from this dump; entries that follow continue
    /// from `info.pos`.
    FullSync(DumpEpoch),
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionState {
    /// Connecting to the master's port.
    #[default]
    Connect,
    /// `auth` + `trysync` sent, waiting for the reply.
    TrySync,
    /// Registered (`:sid`), heartbeat running, receiving the binlog push.
    Streaming,
    /// The master answered `wait`: receiving a dump.
    WaitingFullSync,
    /// Waiting before the next attempt.
    Backoff,
    /// Stopped for good (shutdown, refused full sync, consumer gone).
    Stopped,
}

/// Counters and identity for INFO and metrics.
#[derive(Debug, Clone, Default)]
pub struct UpstreamStatus {
    /// Current state.
    pub state: SessionState,
    /// The master's address (`ip:port`).
    pub master: String,
    /// Current session id (`:sid` of the last successful trysync).
    pub sid: Option<u32>,
    /// Current dump epoch.
    pub epoch: u64,
    /// Upstream position after the last entry emitted (accepted).
    pub last_pos: BinlogPos,
    /// Latest durable position reported by the journal.
    pub durable_pos: BinlogPos,
    /// `true` while an authenticated binlog connection is open.
    pub binlog_connected: bool,
    /// `trysync` attempts.
    pub trysyncs: u64,
    /// Entries emitted.
    pub entries: u64,
    /// Entries dropped as already accepted (re-sent after a reconnect).
    pub duplicates: u64,
    /// Binlog payload bytes received in accepted entries.
    pub bytes: u64,
    /// Binlog connections accepted and authenticated.
    pub binlog_connections: u64,
    /// Binlog connections rejected (wrong sid, bad frames, ...).
    pub binlog_rejected: u64,
    /// Heartbeat losses.
    pub heartbeat_losses: u64,
    /// Full syncs completed.
    pub full_syncs: u64,
    /// Last error, as logged.
    pub last_error: Option<String>,
}

/// A running upstream session.
pub struct UpstreamHandle {
    /// Ordered entries and epochs for the journal. Bounded: when the journal lags, the receiver
    /// stops reading and the master's sender blocks (it then reconnects and re-sends; duplicates
    /// are dropped).
    pub events: mpsc::Receiver<UpstreamEvent>,
    /// Live status.
    pub status: watch::Receiver<UpstreamStatus>,
    /// The address the binlog receiver actually listens on.
    pub binlog_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), session::SessionError>>,
}

impl UpstreamHandle {
    /// Stops every task of the session and waits for it. Returns why the session ended if it
    /// had already stopped by itself.
    pub async fn shutdown(self) -> Result<(), session::SessionError> {
        self.shutdown.cancel();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(session::SessionError::Internal(e.to_string())),
        }
    }

    /// Splits off the event receiver (for wiring the journal on its own task).
    pub fn take_events(&mut self) -> mpsc::Receiver<UpstreamEvent> {
        let (_tx, rx) = mpsc::channel(1);
        std::mem::replace(&mut self.events, rx)
    }

    /// `true` once the session task has ended (stopped by itself or shut down).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts an upstream session: binds the binlog receiver (before any trysync, as a real slave
/// must), then runs the state machine on its own task.
///
/// `durable` is the journal's durable position; its value at start is where the first trysync
/// resumes (unless `force_full_sync`). `full_sync` receives dumps on R+3000.
pub async fn start(
    config: UpstreamConfig,
    durable: watch::Receiver<Durable>,
    full_sync: Arc<dyn FullSyncReceiver>,
) -> std::io::Result<UpstreamHandle> {
    let listener = crate::net::listen(config.binlog_listen_addr())?;
    start_with_listener(config, durable, full_sync, listener).await
}

/// As [`start`], with an already bound binlog listener (tests bind port 0 and derive R from it).
pub async fn start_with_listener(
    config: UpstreamConfig,
    durable: watch::Receiver<Durable>,
    full_sync: Arc<dyn FullSyncReceiver>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<UpstreamHandle> {
    let binlog_addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let (events_tx, events) = mpsc::channel(config.channel_capacity.max(1));
    let init = *durable.borrow();
    let (status_tx, status) = watch::channel(UpstreamStatus {
        master: config.master.to_string(),
        epoch: init.epoch,
        last_pos: init.pos,
        durable_pos: init.pos,
        ..Default::default()
    });
    let config = Arc::new(config);
    let (link_tx, link_rx) = mpsc::unbounded_channel();
    let shared = receiver::Shared::new(
        config.clone(),
        events_tx,
        status_tx,
        link_tx,
        init,
        shutdown.clone(),
    );
    tokio::spawn(receiver::serve(shared.clone(), listener, shutdown.clone()));
    let sess = session::Session::new(
        config,
        shared,
        durable,
        full_sync,
        link_rx,
        shutdown.clone(),
    );
    let task = tokio::spawn(sess.run());
    Ok(UpstreamHandle {
        events,
        status,
        binlog_addr,
        shutdown,
        task,
    })
}
