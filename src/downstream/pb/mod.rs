//! The protobuf replication master on the relay's port R+2000, which real new Pika slaves
//! (3.1–3.4) attach to with `slaveof <relay-ip> <R>`. One task per slave connection
//! ([`slave`]); each streams from its own journal cursor, so none can slow the others.

pub mod conn;
pub mod encode;
pub mod frames;
pub mod slave;

use super::positions::PositionStore;
use super::registry::Registry;
use super::source::JournalSource;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Settings of the protobuf master.
#[derive(Debug, Clone)]
pub struct PbConfig {
    /// Password slaves must send as `masterauth` (MetaSync `auth`); `None` accepts any.
    pub requirepass: Option<String>,
    /// Number of classic-mode DBs announced (`databases` of the slaves); data flows in db0.
    pub databases: u32,
    /// Items sent but not acknowledged, per slave (Pika's `sync-window-size`, default 9000).
    pub window_items: usize,
    /// Items per BinlogSync frame (Pika: 100).
    pub frame_items: usize,
    /// Binlog bytes per frame, kept far below a slave's `max-conn-rbuf-size`.
    pub frame_bytes: usize,
    /// Empty keepalive item when nothing is in flight for this long (3.3+ uses 2 s; ≤ 5 s keeps
    /// 3.1/3.2 slaves from resetting after their 20 s).
    pub keepalive: Duration,
    /// Drop a slave DB that sent no request for this long (Pika: 20 s).
    pub slave_timeout: Duration,
    /// Largest request frame accepted.
    pub max_request_frame: usize,
    /// The ip slaves use in `slaveof` (written to the DBSync `info` file).
    pub advertise_ip: String,
    /// The relay's base port R (written to the DBSync `info` file).
    pub port: u16,
    /// Run id announced to 3.5+ slaves.
    pub run_id: String,
}

impl Default for PbConfig {
    fn default() -> Self {
        PbConfig {
            requirepass: None,
            databases: 1,
            window_items: 9000,
            frame_items: 100,
            frame_bytes: 32 << 20,
            keepalive: Duration::from_secs(2),
            slave_timeout: Duration::from_secs(20),
            max_request_frame: 1 << 20,
            advertise_ip: "127.0.0.1".into(),
            port: 9221,
            run_id: "0000000000000000000000000000000000000000".into(),
        }
    }
}

/// A full-sync push to one slave's rsync daemon.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The slave's rsync daemon (`node.ip : node.port + 1000`).
    pub target: SocketAddr,
    /// Password for user `rsync_user`: the slave's `masterauth`, or `default`.
    pub password: String,
    /// Remote path under module `document` (`db0`).
    pub remote_path: String,
    /// The dump directory to push (type directories), if the epoch has one.
    pub dump_dir: Option<PathBuf>,
    /// The `info` file content, pushed last.
    pub info: String,
}

/// Pushes dumps into slaves (the embedded rsync sender in the relay).
pub trait DumpPusher: Send + Sync + 'static {
    /// Runs one push; returns the bytes sent.
    fn push(&self, req: PushRequest) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>;
}

/// What every slave task shares.
pub struct Shared<J: JournalSource> {
    /// Settings.
    pub config: PbConfig,
    /// The journal.
    pub journal: J,
    /// The slave table.
    pub registry: Registry,
    /// Session id counter of db0 (Pika keeps one per DB; the relay has data only in db0).
    pub next_session: AtomicI32,
    /// Full-sync pusher; without one, DBSync requests are refused.
    pub pusher: Option<Arc<dyn DumpPusher>>,
    /// Stops every task.
    pub cancel: CancellationToken,
    /// Each slave's own positions mapped to the journal's, learned from its acks.
    pub positions: PositionStore,
}

/// Accepts slave connections until cancelled.
pub async fn serve<J: JournalSource>(listener: TcpListener, shared: Arc<Shared<J>>) {
    let local = listener.local_addr().ok();
    info!(addr = ?local, "downstream: protobuf replication server listening");
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = crate::net::replication_link(&stream);
                    tokio::spawn(slave::run(stream, peer, shared.clone()));
                }
                Err(e) => {
                    warn!("downstream: accept failed: {e}; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}
