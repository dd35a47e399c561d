//! A faithful double of a new Pika (3.1–3.4) slave after `slaveof <ip> <port> [force]`, per
//! `shared/spec/new-pika-replication.md` §3: the address probe on the master's port, MetaSync,
//! TrySync / DBSync per DB (db0), full sync through a real `rsync --daemon` on its port+1000,
//! `first_send`, re-encoding of every received item into its own binlog ([`binlog`]) and acks
//! computed from its own producer position (§3.4), keepalive answers and the 20 s timeout.
//!
//! Differences from a real slave, all on purpose: it applies writes to a [`Keyspace`] model
//! instead of RocksDB (a dump in the doubles' format, [`crate::sim::dump`], loads as data; a real
//! RocksDB dump loads as empty), it does not replace `127.0.0.1` with its host ip when checking the `info`
//! file. Like Pika it sends MetaSync at most once per `meta_sync_interval` (10 s,
//! `PIKA_META_SYNC_MAX_WAIT_TIME`), so a master that closes the connection costs it up to 10 s;
//! tests that are not about that timer shorten it.

pub mod binlog;
pub mod rsyncd;
mod session;

pub use binlog::SlaveVersion;

use crate::formats::BinlogPos;
use crate::sim::keyspace::Keyspace;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Which rsync daemon the double runs on its port+1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsyncDaemonKind {
    /// Debian's `rsync --daemon`, configured as Pika configures it (what tests use: a real peer).
    System,
    /// The relay's embedded receiver with the same module, user and secret (for `demo` on
    /// machines without the rsync package).
    Embedded,
}

/// How the double acknowledges pushed binlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// As a real slave.
    Normal,
    /// Acks an end position one more byte off with every ack (a slave whose binlog diverges
    /// from what it receives).
    Wrong,
    /// Never acks (a stuck slave).
    Silent,
    /// Acks every frame at once with the offsets the master sent (first item's, last item's)
    /// and neither applies nor logs anything: a slave that costs the master nothing beyond the
    /// socket, so a load harness measures the master's (the relay's) fan-out and not the
    /// slaves. Its data stays empty; its view's `producer` is the last acked offset.
    AckOnly,
}

/// Settings of the double.
#[derive(Debug, Clone)]
pub struct NewSlaveConfig {
    /// The master's (relay's) port P as `ip:P`.
    pub master: SocketAddr,
    /// The master ip string as given to `slaveof` (checked against line 2 of `info`).
    pub master_ip: String,
    /// The slave's own port S (its rsync daemon listens on S+1000).
    pub port: u16,
    /// `masterauth`.
    pub masterauth: Option<String>,
    /// Work directory (binlog, db-sync path, rsync daemon files).
    pub data_dir: PathBuf,
    /// Version whose behaviour to reproduce.
    pub version: SlaveVersion,
    /// `binlog-file-size`.
    pub binlog_file_size: u64,
    /// `slaveof ... force`.
    pub force_full_sync: bool,
    /// Ack behaviour.
    pub ack_mode: AckMode,
    /// Start with the binlog set to this position (as after `seed-manifest`), with this data.
    pub seed: Option<(BinlogPos, Keyspace)>,
    /// Delay before reconnecting after a lost connection.
    pub reconnect_delay: Duration,
    /// Least time between two MetaSyncs (Pika 3.1–3.4: 10 s, counted in whole seconds).
    pub meta_sync_interval: Duration,
    /// Start as the same slave restarted: its binlog continues at this position (the files in
    /// `data_dir/log_db0` are kept) and it holds this data, as after a Pika restart.
    pub resume: Option<(BinlogPos, Keyspace)>,
    /// Silence after which a connected DB goes back to TrySync (Pika: 20 s).
    pub recv_timeout: Duration,
    /// The rsync daemon to run.
    pub rsync: RsyncDaemonKind,
    /// Address the embedded rsync daemon binds (default: the master's ip, i.e. loopback in
    /// tests; `0.0.0.0` for the standalone double in a container).
    pub rsync_bind: Option<std::net::IpAddr>,
}

impl NewSlaveConfig {
    /// Defaults for a 3.2 slave of `master` on port `port`.
    pub fn new(master: SocketAddr, port: u16, data_dir: PathBuf) -> Self {
        NewSlaveConfig {
            master,
            master_ip: master.ip().to_string(),
            port,
            masterauth: None,
            data_dir,
            version: SlaveVersion::V32,
            binlog_file_size: 104_857_600,
            force_full_sync: false,
            ack_mode: AckMode::Normal,
            seed: None,
            reconnect_delay: Duration::from_millis(500),
            meta_sync_interval: Duration::from_secs(10),
            resume: None,
            recv_timeout: Duration::from_secs(20),
            rsync: RsyncDaemonKind::System,
            rsync_bind: None,
        }
    }
}

/// Per-DB replication state, as Pika names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbState {
    /// Not connected.
    NoConnect,
    /// Will send TrySync.
    TryConnect,
    /// Will send DBSync.
    TryDbSync,
    /// Waiting for a reply.
    WaitReply,
    /// Waiting for the full-sync `info` file.
    WaitDbSync,
    /// Streaming.
    Connected,
    /// Stopped with the reason (sticky until reconnect).
    Error(String),
}

/// What the double exposes to tests.
#[derive(Debug, Clone)]
pub struct SlaveView {
    /// db0 state.
    pub state: DbState,
    /// Its binlog producer position.
    pub producer: BinlogPos,
    /// Session id from the master.
    pub session_id: i32,
    /// Full syncs loaded.
    pub full_syncs: u32,
    /// Items applied.
    pub items: u64,
    /// Acks sent.
    pub acks: u64,
    /// MetaSync round trips done.
    pub meta_syncs: u32,
}

/// A running double.
pub struct NewSlave {
    keyspace: Arc<Mutex<Keyspace>>,
    view: watch::Receiver<SlaveView>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    rsyncd: Daemon,
}

enum Daemon {
    System(#[allow(dead_code)] rsyncd::RsyncDaemon),
    Embedded(crate::rsync::receiver::Receiver),
}

impl NewSlave {
    /// Starts the rsync daemon and the replication task.
    pub async fn start(cfg: NewSlaveConfig) -> std::io::Result<NewSlave> {
        let secret = cfg.masterauth.clone().unwrap_or_else(|| "default".into());
        let (rsyncd, dbsync) = match cfg.rsync {
            RsyncDaemonKind::System => {
                let dbsync = cfg.data_dir.join("dbsync");
                let d =
                    rsyncd::RsyncDaemon::start(&cfg.data_dir, &dbsync, cfg.port + 1000, &secret)?;
                (Daemon::System(d), dbsync)
            }
            RsyncDaemonKind::Embedded => {
                use crate::rsync::receiver::{ModuleSpec, Receiver, ReceiverConfig};
                let staging = cfg.data_dir.join("rsync-staging");
                let ip = cfg.rsync_bind.unwrap_or(cfg.master.ip());
                let bind = std::net::SocketAddr::new(ip, cfg.port + 1000);
                let rc = ReceiverConfig::new(
                    bind,
                    staging.clone(),
                    vec![ModuleSpec::with_auth("document", "rsync_user", &secret)],
                );
                let r = Receiver::start(rc, CancellationToken::new()).await?;
                (Daemon::Embedded(r), staging.join("document"))
            }
        };
        let (ks, pos) = cfg
            .seed
            .clone()
            .or(cfg.resume.clone())
            .map(|(p, k)| (k, Some(p)))
            .unwrap_or_default();
        let keyspace = Arc::new(Mutex::new(ks));
        let dir = cfg.data_dir.join("log_db0");
        let binlog = match (&cfg.resume, pos) {
            (Some(_), Some(p)) => {
                binlog::SlaveBinlog::reopen(dir, cfg.binlog_file_size, cfg.version, p)?
            }
            (_, p) => {
                let mut b = binlog::SlaveBinlog::new(dir, cfg.binlog_file_size, cfg.version)?;
                if let Some(p) = p {
                    b.set_producer_status(p, session::now())?;
                }
                b
            }
        };
        let (tx, view) = watch::channel(SlaveView {
            state: DbState::NoConnect,
            producer: binlog.producer(),
            session_id: -1,
            full_syncs: 0,
            items: 0,
            acks: 0,
            meta_syncs: 0,
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(session::run(
            cfg,
            dbsync,
            binlog,
            keyspace.clone(),
            tx,
            cancel.clone(),
        ));
        Ok(NewSlave {
            keyspace,
            view,
            cancel,
            task,
            rsyncd,
        })
    }

    /// The current view.
    pub fn view(&self) -> SlaveView {
        self.view.borrow().clone()
    }

    /// A watch of the view.
    pub fn watch(&self) -> watch::Receiver<SlaveView> {
        self.view.clone()
    }

    /// The data it holds at `now`, as [`Keyspace::lines`].
    pub fn lines(&self, now: u64) -> Vec<String> {
        self.keyspace.lock().unwrap().lines(now)
    }

    /// Whether it holds `key` (any type, live at `now`).
    pub fn has_key(&self, key: &[u8], now: u64) -> bool {
        self.keyspace.lock().unwrap().contains(key, now)
    }

    /// A copy of its keyspace.
    pub fn keyspace(&self) -> Keyspace {
        self.keyspace.lock().unwrap().clone()
    }

    /// Waits until `f` holds for the view, or `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        f: impl Fn(&SlaveView) -> bool,
    ) -> Result<SlaveView, SlaveView> {
        let mut rx = self.view.clone();
        let r = tokio::time::timeout(timeout, async {
            loop {
                if f(&rx.borrow_and_update()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let v = self.view();
        if r.is_ok() && f(&v) {
            Ok(v)
        } else {
            Err(v)
        }
    }

    /// Stops it as a process stop would (the connection closes) and returns what a restart
    /// keeps: its binlog position and its data (pass them as [`NewSlaveConfig::resume`]).
    pub async fn stop_keep(mut self) -> (BinlogPos, Keyspace) {
        self.cancel.cancel();
        let _ = (&mut self.task).await;
        let kept = (self.view().producer, self.keyspace());
        if let Daemon::Embedded(r) = self.rsyncd {
            let _ = r.stop().await;
        }
        kept
    }

    /// Stops it (`slaveof no one`: closes the connection) and its rsync daemon.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
        if let Daemon::Embedded(r) = self.rsyncd {
            let _ = r.stop().await;
        }
    }
}
