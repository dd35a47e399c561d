//! `pika-relay sim`: the doubles of [`crate::sim`] as standalone servers, so that container
//! topologies (docker/test/) can run the relay between simulated old masters and new slaves.
//!
//! - `sim old-master --flavour 2.3|3.0 --port P`: the old master on P (clients, `trysync`) and
//!   P+2000 (heartbeat); pushes binlog and dumps (embedded rsync) to its slaves. Every write is
//!   kept in a command log under `--data-dir`, replayed at start, so a killed master comes back
//!   with the same data and binlog.
//! - `sim new-slave --version 3.1|3.2|3.3 --port S --slaveof HOST:PORT`: a new Pika slave of
//!   HOST:PORT (the relay), its rsync daemon on S+1000 (embedded), and a client port S. Its data
//!   lives in memory: it starts from an empty `--data-dir` each time (a restarted slave
//!   full-syncs, as a Pika whose db was wiped does). `--ack-only` makes it ack what it receives
//!   without applying it (for load measurements of the relay's fan-out).
//!
//! Both answer `PING` and the checks of [`crate::sim::probe`] (`SIM.DIGEST`, `SIM.LINES`) on
//! their client port, so a driver compares their data over the network.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::formats::resp::parse_argv;
use crate::sim::new_slave::{NewSlave, NewSlaveConfig, RsyncDaemonKind, SlaveVersion};
use crate::sim::old_master::{EmbeddedRsyncDelivery, Flavor, OldMaster, OldMasterConfig};
use crate::sim::probe;

/// `pika-relay sim ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCmd {
    /// An old Pika master double (3.0.16 or 2.3.6) serving clients and slaves.
    OldMaster(OldMasterArgs),
    /// A new Pika slave double (3.1, 3.2 or 3.3) replicating from HOST:PORT.
    NewSlave(NewSlaveArgs),
}

/// Flags of `sim old-master`.
#[derive(Debug, Clone, clap::Args)]
pub struct OldMasterArgs {
    /// Emulated version: 3.0 (3.0.16) or 2.3 (2.3.6, raw-RESP binlog).
    #[arg(long, default_value = "3.0", value_parser = ["2.3", "3.0"])]
    pub flavour: String,
    /// Client port P (P+2000 is the heartbeat port).
    #[arg(long, default_value_t = 9221)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// The master's own ip (Pika's host_): written in dump `info` files and rsync module names.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_ip: String,
    /// Directory for the command log and the dumps.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// `requirepass`.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// `binlog-file-size`.
    #[arg(long, default_value_t = 104_857_600)]
    pub binlog_file_size: u64,
}

/// Flags of `sim new-slave`.
#[derive(Debug, Clone, clap::Args)]
pub struct NewSlaveArgs {
    /// Emulated version: 3.1, 3.2, 3.3 (3.4 behaves as 3.3).
    #[arg(long, default_value = "3.2", value_parser = ["3.1", "3.2", "3.3", "3.4"])]
    pub version: String,
    /// Client port S (S+1000 is its rsync daemon).
    #[arg(long, default_value_t = 9221)]
    pub port: u16,
    /// The master (the relay) as HOST:PORT, as given to `slaveof`; HOST must be the ip the
    /// relay advertises (the slave checks the full-sync `info` file against it).
    #[arg(long)]
    pub slaveof: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Work directory (binlog, rsync staging); emptied at start.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// `masterauth`.
    #[arg(long)]
    pub masterauth: Option<String>,
    /// Seconds of silence after which the slave drops the link and reconnects (Pika: 20).
    #[arg(long, default_value_t = 20)]
    pub timeout_secs: u64,
    /// Milliseconds between reconnect attempts.
    #[arg(long, default_value_t = 1000)]
    pub reconnect_ms: u64,
    /// Ack every frame with the offsets sent and apply nothing (no data, no binlog): a slave
    /// that is never the bottleneck, for measuring the relay's fan-out.
    #[arg(long)]
    pub ack_only: bool,
}

/// Runs the chosen double until SIGINT or SIGTERM.
pub async fn run(cmd: SimCmd) -> Result<(), String> {
    match cmd {
        SimCmd::OldMaster(a) => old_master(a).await,
        SimCmd::NewSlave(a) => new_slave(a).await,
    }
}

async fn until_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        _ = term.recv() => info!("SIGTERM: stopping"),
    }
    Ok(())
}

async fn old_master(a: OldMasterArgs) -> Result<(), String> {
    let flavor = if a.flavour == "2.3" {
        Flavor::V23
    } else {
        Flavor::V30
    };
    let mut cfg = OldMasterConfig::new(flavor, a.data_dir.join("dump"));
    cfg.host = a.advertise_ip.clone();
    cfg.requirepass = a.requirepass.clone();
    cfg.binlog_file_size = a.binlog_file_size;
    cfg.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
    cfg.command_log = Some(a.data_dir.join("commands.log"));
    let m = OldMaster::start_at(cfg, a.bind, a.port)
        .await
        .map_err(|e| {
            format!(
                "old-master double on {}:{} (and +2000), data dir {}: {e}",
                a.bind,
                a.port,
                a.data_dir.display()
            )
        })?;
    info!(
        "old Pika {} master double on {}:{} (heartbeat +2000) as {}, binlog at {}",
        a.flavour,
        a.bind,
        a.port,
        a.advertise_ip,
        m.producer()
    );
    until_signal().await?;
    m.shutdown();
    Ok(())
}

fn slave_version(v: &str) -> SlaveVersion {
    match v {
        "3.1" => SlaveVersion::V31,
        "3.3" | "3.4" => SlaveVersion::V33,
        _ => SlaveVersion::V32,
    }
}

async fn new_slave(a: NewSlaveArgs) -> Result<(), String> {
    let master: SocketAddr = a
        .slaveof
        .to_socket_addrs()
        .map_err(|e| format!("--slaveof {}: {e}", a.slaveof))?
        .next()
        .ok_or_else(|| format!("--slaveof {}: no address", a.slaveof))?;
    let host = a.slaveof.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
    for sub in ["log_db0", "rsync-staging", "dbsync"] {
        let p = a.data_dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| format!("emptying {}: {e}", p.display()))?;
        }
    }
    std::fs::create_dir_all(&a.data_dir)
        .map_err(|e| format!("data dir {}: {e}", a.data_dir.display()))?;
    let mut cfg = NewSlaveConfig::new(master, a.port, a.data_dir.clone());
    cfg.master_ip = host.to_string();
    cfg.version = slave_version(&a.version);
    cfg.masterauth = a.masterauth.clone();
    cfg.rsync = RsyncDaemonKind::Embedded;
    cfg.rsync_bind = Some(a.bind);
    cfg.recv_timeout = Duration::from_secs(a.timeout_secs.max(1));
    cfg.reconnect_delay = Duration::from_millis(a.reconnect_ms);
    if a.ack_only {
        cfg.ack_mode = crate::sim::new_slave::AckMode::AckOnly;
    }
    let listener = TcpListener::bind((a.bind, a.port))
        .await
        .map_err(|e| format!("new-slave double client port {}:{}: {e}", a.bind, a.port))?;
    let slave = Arc::new(
        NewSlave::start(cfg)
            .await
            .map_err(|e| format!("new-slave double (rsync daemon on port +1000): {e}"))?,
    );
    info!(
        "new Pika {} slave double on {}:{} (rsync +1000), slaveof {}{}",
        a.version,
        a.bind,
        a.port,
        a.slaveof,
        if a.ack_only { ", ack-only" } else { "" }
    );
    let server = tokio::spawn(serve_slave_clients(listener, slave.clone()));
    until_signal().await?;
    server.abort();
    if let Ok(s) = Arc::try_unwrap(slave) {
        s.stop().await;
    }
    Ok(())
}

async fn serve_slave_clients(listener: TcpListener, slave: Arc<NewSlave>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let slave = slave.clone();
                tokio::spawn(async move {
                    if let Err(e) = slave_client(sock, &slave).await {
                        warn!("new-slave double: client {peer}: {e}; connection closed");
                    }
                });
            }
            Err(e) => {
                warn!("new-slave double: accept failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The slave's client port: `PING`, `INFO` (its replication view), the probe commands; every
/// other command is refused as a read-only slave refuses writes.
async fn slave_client(mut sock: TcpStream, slave: &NewSlave) -> Result<(), String> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let mut out = Vec::new();
        while let Some((argv, used)) = parse_argv(&buf).map_err(|e| e.to_string())? {
            buf.drain(..used);
            if argv.is_empty() {
                continue;
            }
            let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
            if let Some(r) = probe::answer(&argv, || slave.keyspace()) {
                out.extend(r);
            } else if name == "ping" {
                out.extend(b"+PONG\r\n");
            } else if name == "info" {
                let v = slave.view();
                let text = format!(
                    "# Replication\r\nrole:slave\r\nstate:{:?}\r\nproducer:{}\r\nfull_syncs:{}\r\nitems:{}\r\n",
                    v.state, v.producer, v.full_syncs, v.items
                );
                out.extend(format!("${}\r\n{text}\r\n", text.len()).bytes());
            } else {
                out.extend(b"-ERR Server in read-only\r\n");
            }
        }
        if !out.is_empty() {
            sock.write_all(&out).await.map_err(|e| e.to_string())?;
        }
        let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
