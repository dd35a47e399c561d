//! The relay as one product: [`Relay::start`] wires upstream → translate → journal → downstream
//! and the admin/metrics ports, and returns a [`RelayHandle`] with `status()` and `shutdown()`.
//! This is also the embedding API (see `examples/embed.rs`).
//!
//! ```text
//! R+1000 upstream::receiver ─┐
//! R+3000 rsync receiver ─────┤ upstream::Session ─events─► pump (translate) ─► JournalHandle
//!                            │          ▲                                          │
//!                            └──────────┴── Durable (journal's upstream position) ◄┘
//! R+2000 downstream::pb ◄── RelayJournal (cursors)      R admin (PING/INFO)   metrics
//! ```

pub mod cutover;
pub mod fullsync;
pub mod preflight;
mod pump;

use crate::admin::{self, info::RelayStatus, info::UpstreamView, StatusFn};
use crate::config::{Config, FullSyncPolicy, OldVersion as CfgOldVersion, SyncMode};
use crate::downstream::dbsync::RsyncPusher;
use crate::downstream::pb::{self, PbConfig, Shared};
use crate::downstream::registry::Registry;
use crate::downstream::source::{JournalSource, RelayJournal};
use crate::journal::{JournalConfig, JournalHandle, JournalWriter, RetentionConfig, SyncPolicy};
use crate::rsync::receiver::{Limits, ModuleSpec, Receiver, ReceiverConfig};
use crate::translate::Translator;
use crate::upstream::{
    self, Durable, OldVersion, SessionState, Timings, UpstreamConfig, UpstreamStatus,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Knobs that are not operator settings: timers for tests and `demo`.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Upstream timers (Pika's by default).
    pub upstream_timings: Option<Timings>,
    /// Journal retention check interval (default 10 s, as Pika).
    pub purge_interval: Option<Duration>,
}

/// Why a relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A port could not be bound, the data dir is unusable, ...
    #[error("{0}")]
    Start(String),
    /// A stage failed while running.
    #[error("{0}")]
    Stopped(String),
}

/// The addresses the relay listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// R: probes, PING, INFO.
    pub admin: SocketAddr,
    /// R+1000: binlog from the old master.
    pub binlog: SocketAddr,
    /// R+2000: new slaves.
    pub replication: SocketAddr,
    /// R+3000: full sync from the old master.
    pub rsync: SocketAddr,
    /// Prometheus, if enabled.
    pub metrics: Option<SocketAddr>,
}

/// A running relay.
pub struct RelayHandle {
    cancel: CancellationToken,
    status: StatusFn,
    upstream: upstream::UpstreamHandle,
    pump: JoinHandle<Result<crate::journal::Synced, String>>,
    /// Listener tasks (replication, admin, metrics), awaited at shutdown so the ports are free
    /// when `shutdown` returns.
    listeners: Vec<JoinHandle<()>>,
    full_sync: Arc<fullsync::RsyncFullSync>,
    /// Where it listens.
    pub ports: Ports,
}

/// The relay.
pub struct Relay;

fn io_err(what: &str) -> impl Fn(std::io::Error) -> RelayError + '_ {
    move |e| RelayError::Start(format!("{what}: {e}"))
}

impl Relay {
    /// Starts a relay with Pika's timers.
    pub async fn start(cfg: Config) -> Result<RelayHandle, RelayError> {
        Self::start_tuned(cfg, Tuning::default()).await
    }

    /// Starts a relay: opens (and recovers) the journal, binds R..R+3000, starts the upstream
    /// session from the journal's durable upstream position (a fresh journal asks for a full
    /// sync), and serves new slaves.
    pub async fn start_tuned(cfg: Config, tuning: Tuning) -> Result<RelayHandle, RelayError> {
        cfg.validate()?;
        if let Some(w) = cfg.exposure_warning() {
            warn!("{w}");
        }
        let data = cfg.relay.data_dir.clone();
        std::fs::create_dir_all(&data).map_err(io_err("data dir"))?;
        let (jdir, dumps, staging) = (
            data.join("journal"),
            data.join("dumps"),
            data.join("staging"),
        );
        for d in [&dumps, &staging] {
            std::fs::create_dir_all(d).map_err(io_err("data dir"))?;
        }
        let cancel = CancellationToken::new();
        let bind = cfg.relay.bind;
        let port = cfg.relay.port;
        let at = |shift: u16| SocketAddr::new(bind, port + shift);

        // Journal.
        let jcfg = JournalConfig {
            binlog_file_size: cfg.journal.binlog_file_size,
            preallocate: cfg.journal.preallocate_bytes,
            sync: match cfg.journal.sync {
                SyncMode::Always => SyncPolicy::Always,
                SyncMode::Group => SyncPolicy::Group {
                    max_entries: cfg.journal.sync_every_entries as u64,
                    max_delay_ms: cfg.journal.sync_every_ms,
                },
            },
            retention: RetentionConfig {
                max_files: cfg.journal.retention_files,
                max_age_secs: cfg.journal.retention_hours * 3600,
                hard_cap_bytes: (cfg.journal.disk_cap_bytes > 0)
                    .then_some(cfg.journal.disk_cap_bytes),
                protect_epoch_start: true,
            },
            // The pump sends a batch (up to 512 entries) per message.
            channel_capacity: 64,
            ..JournalConfig::new(&jdir)
        };
        let (writer, recovery) = JournalWriter::open(jcfg)
            .map_err(|e| RelayError::Start(format!("journal {}: {e}", jdir.display())))?;
        let journal_handle =
            JournalHandle::spawn(writer).map_err(|e| RelayError::Start(format!("journal: {e}")))?;
        let journal = journal_handle.journal();
        let synced = journal.synced();
        if recovery.fresh {
            info!("journal: new, in {}", jdir.display());
        } else {
            info!(
                "journal: recovered at {} (upstream {}, epoch {} from {}, {} bytes of torn tail dropped)",
                synced.end,
                synced.upstream.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                synced.epoch,
                synced.epoch_start,
                recovery.dropped_tail_bytes
            );
        }

        // Durable position for the upstream session, from the journal's synced state.
        let (durable_tx, durable_rx) = watch::channel(Durable {
            epoch: synced.epoch,
            pos: synced.upstream.unwrap_or_default(),
        });
        {
            let mut rx = journal.watch();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        r = rx.changed() => if r.is_err() { return },
                    }
                    let s = *rx.borrow_and_update();
                    let d = Durable {
                        epoch: s.epoch,
                        pos: s.upstream.unwrap_or_default(),
                    };
                    durable_tx.send_if_modified(|cur| {
                        let changed = *cur != d;
                        *cur = d;
                        changed
                    });
                }
            });
        }

        // Full sync in: the embedded rsync receiver on R+3000.
        let mut rcfg = ReceiverConfig::new(
            at(3000),
            staging.clone(),
            vec![ModuleSpec::prefix("document")],
        );
        rcfg.limits = Limits {
            max_files: usize::try_from(cfg.rsync.max_files).unwrap_or(usize::MAX),
            max_file_bytes: cfg.rsync.max_file_bytes,
            max_total_bytes: cfg.rsync.max_total_bytes,
            ..rcfg.limits
        };
        let receiver = Receiver::start(rcfg, cancel.child_token())
            .await
            .map_err(io_err("rsync receiver on R+3000"))?;
        let rsync_addr = receiver.local_addr;
        let full_sync = Arc::new(fullsync::RsyncFullSync::new(receiver, staging));
        let mut listeners = Vec::new();

        // Upstream.
        let master: SocketAddr = tokio::net::lookup_host(&cfg.upstream.master)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                RelayError::Start(format!(
                    "upstream.master {:?} does not resolve",
                    cfg.upstream.master
                ))
            })?;
        let mut ucfg = UpstreamConfig::new(master, cfg.advertise_ip(), port, data.clone());
        ucfg.masterauth =
            (!cfg.upstream.masterauth.is_empty()).then(|| cfg.upstream.masterauth.clone());
        ucfg.binlog_listen = Some(at(1000));
        ucfg.old_version = match cfg.upstream.old_version {
            CfgOldVersion::V23 => OldVersion::V23,
            CfgOldVersion::V30 => OldVersion::V30,
            CfgOldVersion::Auto => OldVersion::Auto,
        };
        ucfg.binlog_file_size = cfg.upstream.master_binlog_file_size;
        ucfg.force_full_sync = cfg.upstream.force_full_sync || synced.upstream.is_none();
        if ucfg.force_full_sync && !cfg.upstream.force_full_sync {
            info!("upstream: the journal has no upstream position yet; starting with a full sync");
        }
        ucfg.refuse_full_sync = cfg.upstream.full_sync == FullSyncPolicy::Refuse;
        ucfg.max_pending_binlog_conns = cfg.upstream.binlog_max_pending_conns;
        ucfg.max_pre_auth_bytes = cfg.upstream.binlog_max_pre_auth_bytes;
        let mut timings = tuning.upstream_timings.clone().unwrap_or_default();
        timings.full_sync_timeout = Duration::from_secs(cfg.upstream.full_sync_timeout_secs);
        timings.binlog_auth_timeout = Duration::from_secs(cfg.upstream.binlog_auth_timeout_secs);
        ucfg.timings = timings;
        let mut upstream_handle = upstream::start(ucfg, durable_rx, full_sync.clone())
            .await
            .map_err(io_err("upstream binlog receiver on R+1000"))?;
        let binlog_addr = upstream_handle.binlog_addr;
        let events = upstream_handle.take_events();
        let translator = Translator::new(cfg.translate);
        let translate_stats = translator.stats_reader();
        let pump = tokio::spawn(pump::run(
            events,
            journal_handle,
            translator,
            cancel.child_token(),
        ));

        // Downstream.
        let source = RelayJournal::new(journal.clone(), dumps.clone());
        let pb_cfg = PbConfig {
            requirepass: (!cfg.downstream.requirepass.is_empty())
                .then(|| cfg.downstream.requirepass.clone()),
            databases: cfg.downstream.databases,
            window_items: cfg.downstream.window_items,
            keepalive: Duration::from_millis(cfg.downstream.keepalive_ms),
            slave_timeout: Duration::from_secs(cfg.downstream.slave_timeout_secs),
            advertise_ip: cfg.advertise_ip(),
            port,
            ..PbConfig::default()
        };
        let registry = Registry::default();
        let registry_for_cutover = registry.clone();
        let shared = Arc::new(Shared {
            config: pb_cfg,
            journal: source.clone(),
            registry: registry.clone(),
            next_session: AtomicI32::new(0),
            pusher: Some(Arc::new(RsyncPusher {
                bwlimit: cfg.rsync.bwlimit_kbps * 1024,
            })),
            cancel: cancel.clone(),
            positions: crate::downstream::positions::PositionStore::new(data.join("positions")),
        });
        let pb_listener =
            crate::net::listen(at(2000)).map_err(io_err("replication port R+2000"))?;
        let replication_addr = pb_listener.local_addr().map_err(io_err("R+2000"))?;
        listeners.push(tokio::spawn(pb::serve(pb_listener, shared)));

        // Redis-protocol targets, each on its own journal cursor.
        let targets = crate::downstream::resp::TargetRegistry::default();
        let sinks = cfg
            .targets
            .iter()
            .map(|t| t.sink_config(&data))
            .collect::<Result<Vec<_>, _>>()?;
        listeners.extend(crate::downstream::resp::spawn(
            sinks,
            source.clone(),
            targets.clone(),
            cancel.clone(),
        ));

        // Status, admin, metrics.
        let ustatus = upstream_handle.status.clone();
        let status: StatusFn = {
            let source = source.clone();
            let progress = full_sync.progress();
            let targets = targets.clone();
            let conv = full_sync.convert_status();
            Arc::new(move || {
                let mut st = status_of(&ustatus.borrow(), &source, &registry, &jdir);
                st.fullsync_bytes = progress.load(std::sync::atomic::Ordering::Relaxed);
                let t = translate_stats();
                st.translate_skipped = t.skipped;
                st.translate_passed_unsafe = t.passed_unsafe;
                st.targets = targets.snapshot();
                st.convert = fullsync::convert_view(&conv);
                st
            })
        };
        let admin_listener = crate::net::listen(at(0)).map_err(io_err("admin port R"))?;
        let admin_addr = admin_listener.local_addr().map_err(io_err("R"))?;
        let pass =
            (!cfg.downstream.requirepass.is_empty()).then(|| cfg.downstream.requirepass.clone());
        let cutover_ctx = cutover::CutoverContext {
            master,
            masterauth: (!cfg.upstream.masterauth.is_empty())
                .then(|| cfg.upstream.masterauth.clone()),
            journal: source.clone(),
            consumers: vec![Arc::new(registry_for_cutover), Arc::new(targets.clone())],
        };
        tokio::spawn(admin::serve_with(
            admin_listener,
            status.clone(),
            pass,
            cancel.clone(),
            cutover::admin_extras(cutover_ctx),
        ));
        let metrics = if cfg.metrics.listen.is_empty() {
            None
        } else {
            let l = TcpListener::bind(&cfg.metrics.listen)
                .await
                .map_err(io_err("metrics listen address (metrics.listen)"))?;
            let a = l.local_addr().ok();
            listeners.push(tokio::spawn(admin::metrics::serve(
                l,
                status.clone(),
                cancel.clone(),
            )));
            a
        };

        // Retention, as Pika's timer does.
        {
            let journal = journal.clone();
            let cancel = cancel.clone();
            let every = tuning.purge_interval.unwrap_or(Duration::from_secs(10));
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = t.tick() => {
                            let j = journal.clone();
                            let _ = tokio::task::spawn_blocking(move || j.purge()).await;
                        }
                    }
                }
            });
        }

        let ports = Ports {
            admin: admin_addr,
            binlog: binlog_addr,
            replication: replication_addr,
            rsync: rsync_addr,
            metrics,
        };
        info!(
            "relay: up. Old master {} → relay {} (binlog {}, rsync {}) → new slaves `slaveof {} {}`",
            cfg.upstream.master,
            admin_addr,
            binlog_addr,
            rsync_addr,
            cfg.advertise_ip(),
            port
        );
        Ok(RelayHandle {
            cancel,
            status,
            upstream: upstream_handle,
            pump,
            listeners,
            full_sync,
            ports,
        })
    }
}

fn status_of(
    u: &UpstreamStatus,
    source: &RelayJournal,
    registry: &Registry,
    jdir: &std::path::Path,
) -> RelayStatus {
    let s = source.synced();
    let journal_bytes = std::fs::read_dir(jdir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    RelayStatus {
        upstream: UpstreamView {
            master: u.master.clone(),
            state: format!("{:?}", u.state).to_ascii_lowercase(),
            sid: u.sid.map(|s| s.to_string()),
            position: s.upstream.unwrap_or_default(),
            received: u.last_pos,
            link_up: u.state == SessionState::Streaming && u.binlog_connected,
        },
        journal_end: s.end,
        journal_next_logic_id: s.logic_id,
        file_size: source.file_size(),
        epoch: s.epoch,
        epoch_start: s.epoch_start,
        slaves: registry.snapshot(),
        entries_in: u.entries,
        bytes_in: u.bytes,
        journal_bytes,
        journal_sync: source.journal.sync_stats(),
        fullsync_bytes: 0,
        ..RelayStatus::default()
    }
}

impl RelayHandle {
    /// The same data as `INFO`.
    pub fn status(&self) -> RelayStatus {
        (self.status)()
    }

    /// The status function (for a custom admin endpoint).
    pub fn status_fn(&self) -> StatusFn {
        self.status.clone()
    }

    /// Whether a stage stopped on its own (journal failure, refused full sync, ...).
    pub fn is_finished(&self) -> bool {
        self.pump.is_finished() || self.upstream.is_finished()
    }

    /// Stops every task: the upstream heartbeat and binlog links are closed, the journal is
    /// synced and closed. Returns the first error a stage stopped with, if any.
    pub async fn shutdown(self) -> Result<(), RelayError> {
        // Upstream first: its event channel closes, the pump drains it and closes the journal.
        let up = self.upstream.shutdown().await;
        let closed = self.pump.await.unwrap_or_else(|e| Err(e.to_string()));
        self.cancel.cancel();
        self.full_sync.stop().await;
        for l in self.listeners {
            let _ = l.await;
        }
        match &closed {
            Ok(s) => info!(
                "relay: stopped; journal synced at {} (upstream {})",
                s.end,
                s.upstream
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into())
            ),
            Err(e) => error!("relay: journal close failed: {e}"),
        }
        // A translate policy stop is the root cause of the upstream's end: report it first.
        if let Err(e) = closed.as_ref().map_err(|e| e.as_str()) {
            if e.starts_with("translate:") {
                return Err(RelayError::Stopped(e.to_string()));
            }
        }
        if let Err(e) = up {
            warn!("relay: upstream ended with: {e}");
            return Err(RelayError::Stopped(format!("upstream: {e}")));
        }
        closed
            .map(|_| ())
            .map_err(|e| RelayError::Stopped(format!("journal: {e}")))
    }
}

/// The data directory layout, for tools and tests.
pub fn journal_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("journal")
}
