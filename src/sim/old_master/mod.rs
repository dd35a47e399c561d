//! A faithful double of an old Pika master (3.0.16 by default; 2.3.6 raw-RESP flavour on
//! request), following the checklist of spec §10:
//!
//! - client port P ([`client`]): `auth` with Pika's root/user password states, `trysync` with the
//!   master algorithm of §2.5 (AlreadyExist first, sid counter from 1 consumed even on failure,
//!   offset checks, missing file → `$4 wait` + DBSync, trim to a record boundary, `:sid`), `ping`,
//!   `config get binlog-file-size`, and the write commands;
//! - binlog sender per slave ([`sender`]): waits 2 s, connects to the slave's port+1000, sends
//!   `auth <sid>`, pushes records in file order (3.0 frames or 2.3 raw arrays), re-sends the
//!   failed record after reconnecting, exits for good if the auth send fails;
//! - heartbeat server on P+2000 ([`heartbeat`]): peer-IP check, `spci` → `+OK`, `ping` →
//!   `+PONG`, anything else → `-ERR What the fuck are u sending`, 20 s idle timeout, 30 s stage-1
//!   reaper; losing the heartbeat deletes the slave and stops its sender;
//! - a binlog written with the real record layer ([`binlog`]) and 3.0.16 / 2.3.6 `ToBinlog`
//!   rewrites, over an in-memory keyspace ([`crate::sim::keyspace`]);
//! - full sync ([`dump`]): bgsave to a dump directory (5 type directories + `info`), reuse rule
//!   (≤ 50 files), one DBSync per slave at a time, delivery through [`dump::DumpDelivery`].
//!
//! Every timer is configurable ([`MasterTimings`]) and faults can be injected ([`Fault`]).

pub mod binlog;
pub mod client;
pub mod command_log;
pub mod dump;
pub mod heartbeat;
pub mod sender;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::sim::keyspace::{Keyspace, Value};
pub use binlog::{Binlog, Flavor};
pub use dump::{CopyDelivery, DumpDelivery, EmbeddedRsyncDelivery, RsyncCliDelivery};

use crate::formats::resp::{Argv, Reply};
use crate::formats::BinlogPos;

/// Timers of the double. Defaults are Pika's (spec Appendix C).
#[derive(Debug, Clone)]
pub struct MasterTimings {
    /// Sender: pause before each connect (2 s).
    pub sender_connect_delay: Duration,
    /// Sender: pause after a failed send or connect (1 s).
    pub sender_retry: Duration,
    /// Sender: connect timeout (1 s).
    pub sender_connect_timeout: Duration,
    /// Sender: send timeout (3 s; 35 s for ≤ 3.0.10 / ≤ 2.3.6).
    pub send_timeout: Duration,
    /// Sender: idle poll while at the producer position (10 ms).
    pub sender_poll: Duration,
    /// Heartbeat: idle timeout (20 s).
    pub hb_idle: Duration,
    /// A slave that never sent `spci` is deleted after this (30 s).
    pub hb_stage1_limit: Duration,
    /// Heartbeat cron period (1 s).
    pub cron: Duration,
    /// Pause between the `wait` reply and the dump delivery (bgsave time).
    pub dbsync_delay: Duration,
}

impl Default for MasterTimings {
    fn default() -> Self {
        MasterTimings {
            sender_connect_delay: Duration::from_secs(2),
            sender_retry: Duration::from_secs(1),
            sender_connect_timeout: Duration::from_secs(1),
            send_timeout: Duration::from_secs(3),
            sender_poll: Duration::from_millis(10),
            hb_idle: Duration::from_secs(20),
            hb_stage1_limit: Duration::from_secs(30),
            cron: Duration::from_secs(1),
            dbsync_delay: Duration::ZERO,
        }
    }
}

impl MasterTimings {
    /// Millisecond timers for tests.
    pub fn fast() -> Self {
        MasterTimings {
            sender_connect_delay: Duration::from_millis(50),
            sender_retry: Duration::from_millis(30),
            sender_connect_timeout: Duration::from_millis(500),
            send_timeout: Duration::from_secs(3),
            sender_poll: Duration::from_millis(5),
            hb_idle: Duration::from_millis(1000),
            hb_stage1_limit: Duration::from_millis(1500),
            cron: Duration::from_millis(50),
            dbsync_delay: Duration::from_millis(50),
        }
    }
}

/// Configuration of the double.
#[derive(Clone)]
pub struct OldMasterConfig {
    /// Emulated version.
    pub flavor: Flavor,
    /// `requirepass` (admin password).
    pub requirepass: Option<String>,
    /// `userpass` (limited password).
    pub userpass: Option<String>,
    /// `binlog-file-size`.
    pub binlog_file_size: u64,
    /// `server-id`.
    pub server_id: u32,
    /// The master's `host_` (its IP; also the `info` file's IP and module name).
    pub host: String,
    /// Where bgsave writes dumps.
    pub dump_root: PathBuf,
    /// How dumps reach the slave; `None` = DBSync does nothing (a slave waits forever).
    pub delivery: Option<Arc<dyn DumpDelivery>>,
    /// Timers.
    pub timings: MasterTimings,
    /// Where every accepted write is appended (with its exec time) and, at start, replayed
    /// from: the binlog and the data survive a killed process, as a real master's do.
    pub command_log: Option<PathBuf>,
    /// `pika_version` in `INFO server` (decides whether `readonly on` exists and refuses writes:
    /// 2.3.x and 3.0.0–3.0.4 only).
    pub pika_version: String,
}

impl OldMasterConfig {
    /// A 3.0.16 master with default settings, dumps under `dump_root`.
    pub fn new(flavor: Flavor, dump_root: PathBuf) -> Self {
        OldMasterConfig {
            flavor,
            requirepass: None,
            userpass: None,
            binlog_file_size: 104_857_600,
            server_id: 1,
            host: "127.0.0.1".into(),
            dump_root,
            delivery: None,
            timings: MasterTimings::default(),
            command_log: None,
            pika_version: match flavor {
                Flavor::V23 => "2.3.6".into(),
                _ => "3.0.16".into(),
            },
        }
    }
}

/// Injected faults, consumed one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next binlog frame is cut off halfway and the connection closed; the sender reconnects
    /// and re-sends it (what a real master does after a failed send).
    CutNextFrame,
    /// As `CutNextFrame`, then the sender also re-sends the `n` records before the cut one
    /// (duplicates the slave must drop).
    CutAndRewind(usize),
    /// The next `n` records count as sent but never reach the slave (lost in kernel buffers,
    /// spec §3.6 item 5); the connection is closed and the sender continues after them.
    LoseInFlight(usize),
}

/// A registered slave (`SlaveItem`).
#[derive(Debug, Clone)]
pub struct SlaveItem {
    /// Session id.
    pub sid: u32,
    /// `ip:port` as advertised.
    pub ip_port: String,
    /// Heartbeat connection, once `spci` arrived.
    pub hb_conn: Option<u64>,
    /// 1 = offline (no spci yet), 2 = online.
    pub stage: u8,
    /// Stops the sender.
    pub sender: Option<CancellationToken>,
    /// When trysync registered it.
    pub created: Instant,
}

/// Counters for tests.
#[derive(Debug, Clone, Default)]
pub struct MasterStats {
    /// `trysync` commands answered.
    pub trysyncs: u64,
    /// Binlog connections made by senders.
    pub sender_connects: u64,
    /// Records written to a sender socket.
    pub records_sent: u64,
    /// bgsaves run.
    pub bgsaves: u64,
    /// Dumps delivered.
    pub deliveries: u64,
    /// Heartbeat connections accepted.
    pub hb_connects: u64,
    /// Every trysync request as received (ip, port, filenum, offset).
    pub trysync_log: Vec<(String, String, String, String)>,
}

pub(crate) struct State {
    pub ks: Keyspace,
    pub binlog: Binlog,
    pub slaves: Vec<SlaveItem>,
    pub last_sid: u32,
    pub bgsave: Option<(PathBuf, BinlogPos)>,
    pub dumps: u64,
    pub dbsync_running: HashSet<String>,
    pub sender_faults: VecDeque<Fault>,
    pub trysync_replies: VecDeque<Vec<u8>>,
    pub hb_conns: HashMap<u64, CancellationToken>,
    pub next_hb: u64,
    pub stats: MasterStats,
    pub cmd_log: Option<std::fs::File>,
    /// `readonly on` / `config set slave-read-only yes` (refuses writes where the version can).
    pub readonly: bool,
}

pub(crate) struct Inner {
    pub cfg: OldMasterConfig,
    pub port: u16,
    pub state: Mutex<State>,
    pub shutdown: CancellationToken,
}

impl Inner {
    /// Deletes slave items matching `pred`, stopping their senders.
    pub(crate) fn delete_slaves(&self, pred: impl Fn(&SlaveItem) -> bool) {
        let mut st = self.state.lock().unwrap();
        st.slaves.retain(|s| {
            if pred(s) {
                if let Some(t) = &s.sender {
                    t.cancel();
                }
                false
            } else {
                true
            }
        });
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A running double.
pub struct OldMaster {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl OldMaster {
    /// Binds P (free port on 127.0.0.1) and P+2000, and starts serving.
    pub async fn start(cfg: OldMasterConfig) -> std::io::Result<OldMaster> {
        let mut last_err = None;
        for _ in 0..100 {
            let client = TcpListener::bind("127.0.0.1:0").await?;
            let port = client.local_addr()?.port();
            if port > 63000 {
                continue;
            }
            match TcpListener::bind(("127.0.0.1", port + 2000)).await {
                Ok(hb) => return Ok(Self::start_on(cfg, client, hb)),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("no free port pair P, P+2000")))
    }

    /// Binds `ip:port` (client port P) and `ip:port+2000` (heartbeat), replays the command log
    /// when one is configured, and starts serving: the standalone double (`pika-relay sim`).
    pub async fn start_at(cfg: OldMasterConfig, ip: IpAddr, port: u16) -> std::io::Result<Self> {
        let hb_port = port
            .checked_add(2000)
            .ok_or_else(|| std::io::Error::other(format!("port {port} + 2000 overflows")))?;
        let client = TcpListener::bind((ip, port)).await?;
        let hb = TcpListener::bind((ip, hb_port)).await?;
        let (mut ks, mut binlog) = (Keyspace::default(), Self::new_binlog(&cfg));
        let mut cmd_log = None;
        if let Some(path) = &cfg.command_log {
            let replayed = command_log::replay(path, |now, argv| {
                let _ = write_at(&mut ks, &mut binlog, None, cfg.flavor, argv, now);
            })?;
            tracing::info!(
                "old-master double: replayed {replayed} writes from {}",
                path.display()
            );
            cmd_log = Some(command_log::open_append(path)?);
        }
        Ok(Self::start_with(cfg, client, hb, ks, binlog, cmd_log))
    }

    fn new_binlog(cfg: &OldMasterConfig) -> Binlog {
        Binlog::new(cfg.flavor, cfg.binlog_file_size, cfg.server_id)
    }

    fn start_on(cfg: OldMasterConfig, client: TcpListener, hb: TcpListener) -> OldMaster {
        let binlog = Self::new_binlog(&cfg);
        Self::start_with(cfg, client, hb, Keyspace::default(), binlog, None)
    }

    fn start_with(
        cfg: OldMasterConfig,
        client: TcpListener,
        hb: TcpListener,
        ks: Keyspace,
        binlog: Binlog,
        cmd_log: Option<std::fs::File>,
    ) -> OldMaster {
        let addr = client.local_addr().expect("bound");
        let inner = Arc::new(Inner {
            cfg,
            port: addr.port(),
            state: Mutex::new(State {
                ks,
                binlog,
                slaves: Vec::new(),
                last_sid: 0,
                bgsave: None,
                dumps: 0,
                dbsync_running: HashSet::new(),
                sender_faults: VecDeque::new(),
                trysync_replies: VecDeque::new(),
                hb_conns: HashMap::new(),
                next_hb: 1,
                stats: MasterStats::default(),
                cmd_log,
                readonly: false,
            }),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(client::serve(inner.clone(), client));
        tokio::spawn(heartbeat::serve(inner.clone(), hb));
        tokio::spawn(heartbeat::cron(inner.clone()));
        OldMaster { inner, addr }
    }

    /// The client port address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Executes a write command as a client would, logging it to the binlog with the version's
    /// rewrites. Returns the reply, or the error text (nothing logged then).
    pub fn write<A: AsRef<[u8]>>(&self, argv: &[A]) -> Result<Reply, String> {
        let argv: Argv = argv.iter().map(|a| a.as_ref().to_vec()).collect();
        write_locked(
            &mut self.inner.state.lock().unwrap(),
            self.inner.cfg.flavor,
            &argv,
        )
    }

    /// The binlog producer position.
    pub fn producer(&self) -> BinlogPos {
        self.inner.state.lock().unwrap().binlog.producer()
    }

    /// A copy of the keyspace.
    pub fn keyspace(&self) -> Keyspace {
        self.inner.state.lock().unwrap().ks.clone()
    }

    /// A copy of the binlog.
    pub fn binlog(&self) -> Binlog {
        self.inner.state.lock().unwrap().binlog.clone()
    }

    /// `purgelogsto write2file<n>`.
    pub fn purge_to(&self, n: u32) {
        self.inner.state.lock().unwrap().binlog.purge_to(n);
    }

    /// Queues a sender fault.
    pub fn inject(&self, f: Fault) {
        self.inner.state.lock().unwrap().sender_faults.push_back(f);
    }

    /// The next trysync is answered with these raw bytes (whatever they are).
    pub fn script_trysync_reply(&self, bytes: &[u8]) {
        self.inner
            .state
            .lock()
            .unwrap()
            .trysync_replies
            .push_back(bytes.to_vec());
    }

    /// Closes every heartbeat connection (the master deletes those slaves and stops their
    /// senders), as when the master restarts its heartbeat thread or the network drops.
    pub fn drop_heartbeats(&self) {
        for t in self.inner.state.lock().unwrap().hb_conns.values() {
            t.cancel();
        }
    }

    /// Registered slaves.
    pub fn slaves(&self) -> Vec<SlaveItem> {
        self.inner.state.lock().unwrap().slaves.clone()
    }

    /// Counters.
    pub fn stats(&self) -> MasterStats {
        self.inner.state.lock().unwrap().stats.clone()
    }

    /// Stops every task.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.delete_slaves(|_| true);
        self.drop_heartbeats();
    }
}

impl Drop for OldMaster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn write_locked(st: &mut State, flavor: Flavor, argv: &Argv) -> Result<Reply, String> {
    let State {
        ks,
        binlog,
        cmd_log,
        ..
    } = st;
    write_at(ks, binlog, cmd_log.as_mut(), flavor, argv, unix_now())
}

/// Executes a write at `now`: the keyspace, then the binlog records with the version's
/// rewrites, then the command log (when kept). Replaying the log with the same `now`s rebuilds
/// the same data and the same binlog bytes.
fn write_at(
    ks: &mut Keyspace,
    binlog: &mut Binlog,
    cmd_log: Option<&mut std::fs::File>,
    flavor: Flavor,
    argv: &Argv,
    now: u64,
) -> Result<Reply, String> {
    if argv.is_empty() {
        return Err("ERR empty command".into());
    }
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    if flavor == Flavor::V23 && name == "psetex" {
        return Err("Err unknown or unsupported command 'psetex'".into());
    }
    let reply = ks.exec(argv, now)?;
    let new_value = if name.starts_with("incr") || name.starts_with("decr") {
        match ks.data.get(&argv[1]) {
            Some((Value::Str(v), _)) => Some(v.clone()),
            _ => None,
        }
    } else {
        None
    };
    let hub = binlog::hub_flag(argv);
    for rec in binlog::to_binlog(flavor, argv, &reply, now, new_value) {
        binlog.put(&rec, now as u32, hub);
    }
    if let Some(f) = cmd_log {
        if let Err(e) = command_log::append(f, now, argv) {
            tracing::error!(
                "old-master double: command log append failed: {e}; a restart will lose this write"
            );
        }
    }
    Ok(reply)
}
