//! The embedded rsync daemon receiver: a tokio listener that Pika masters push dumps into.
//!
//! Each module stores into `staging_root/<module name>/`. Files are written under a temp
//! name and renamed once their whole-file checksum (MD5, or the negotiated xxh128) matches. A broken or hostile client gets an error and one
//! log line; its partial files are removed and the listener keeps serving.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pika_relay::rsync::receiver::{ModuleSpec, Receiver, ReceiverConfig};
//! let cfg = ReceiverConfig::new("127.0.0.1:0".parse().unwrap(), "/tmp/staging".into(),
//!     vec![ModuleSpec::prefix("document")]);
//! let mut rx = Receiver::start(cfg, Default::default()).await?;
//! let ev = rx.wait_for_file("document_10.0.0.1:9221", "info", std::time::Duration::from_secs(60)).await;
//! # Ok(()) }
//! ```

mod front;
mod progress;
mod session;
mod staging;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Authentication a module requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleAuth {
    /// Accepted user name (`None`: any user).
    pub user: Option<String>,
    /// The shared secret (Pika: the slave's `masterauth`, or `default`).
    pub password: String,
}

/// One module the receiver serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// Exact module name, or a prefix when `prefix` is set.
    pub name: String,
    /// Match any module name starting with `name` (Pika 2.3/3.0 use `document_<ip>:<port>`).
    pub prefix: bool,
    /// Required auth, if any.
    pub auth: Option<ModuleAuth>,
}

impl ModuleSpec {
    /// A module matching any name that starts with `prefix`, without auth.
    pub fn prefix(prefix: &str) -> Self {
        ModuleSpec {
            name: prefix.into(),
            prefix: true,
            auth: None,
        }
    }
    /// An exactly named module requiring `user`/`password`.
    pub fn with_auth(name: &str, user: &str, password: &str) -> Self {
        ModuleSpec {
            name: name.into(),
            prefix: false,
            auth: Some(ModuleAuth {
                user: Some(user.into()),
                password: password.into(),
            }),
        }
    }
    fn matches(&self, requested: &str) -> bool {
        if self.prefix {
            requested.starts_with(&self.name)
        } else {
            requested == self.name
        }
    }
}

/// Caps and timeouts applied to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most file-list entries per connection.
    pub max_files: usize,
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// Most bytes per connection.
    pub max_total_bytes: u64,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Time allowed for each handshake line.
    pub handshake_timeout: Duration,
    /// Abort a transfer when the client sends nothing for this long.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 1_000_000,
            max_file_bytes: 1 << 40,
            max_total_bytes: 4 << 40,
            max_connections: 16,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Receiver configuration.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Address to listen on (for [`Receiver::start`]).
    pub bind: SocketAddr,
    /// Root of the staging area; module `m` lives in `staging_root/m`.
    pub staging_root: PathBuf,
    /// Modules served, first match wins.
    pub modules: Vec<ModuleSpec>,
    /// Caps and timeouts.
    pub limits: Limits,
    /// How often transfer progress is logged.
    pub progress_interval: Duration,
}

impl ReceiverConfig {
    /// A configuration with default limits.
    pub fn new(bind: SocketAddr, staging_root: PathBuf, modules: Vec<ModuleSpec>) -> Self {
        ReceiverConfig {
            bind,
            staging_root,
            modules,
            limits: Limits::default(),
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// What one connection did; sent on the events channel when the connection ends.
#[derive(Debug, Clone)]
pub struct TransferEvent {
    /// The client.
    pub peer: SocketAddr,
    /// The module name as requested.
    pub module: String,
    /// The module's directory.
    pub module_root: PathBuf,
    /// Files written by this connection, relative to the module root.
    pub files: Vec<PathBuf>,
    /// Files skipped because they were already up to date.
    pub skipped: usize,
    /// File bytes received.
    pub bytes: u64,
    /// Whether this was a `--delete` pass.
    pub delete_pass: bool,
    /// The whole-file checksum used (negotiated `xxh128` with stock 3.2+ clients at
    /// protocol 31; MD5 at protocol 30 and with clients that do not negotiate).
    pub checksum: crate::rsync::checksum::ChecksumKind,
    /// `Ok` when the client's run completed cleanly, else the cause.
    pub result: Result<(), String>,
}

impl TransferEvent {
    /// Whether this transfer completed and wrote (or confirmed) `path` (module-relative).
    pub fn delivered(&self, path: &str) -> bool {
        self.result.is_ok() && self.files.iter().any(|f| f == std::path::Path::new(path))
    }
}

pub(crate) struct Shared {
    pub config: ReceiverConfig,
    pub events: mpsc::UnboundedSender<TransferEvent>,
    pub slots: Arc<Semaphore>,
}

/// Accept connections on `listener` until `shutdown` is cancelled. Each finished connection
/// (probes excepted) produces a [`TransferEvent`] on `events`.
pub async fn serve(
    listener: TcpListener,
    config: ReceiverConfig,
    events: mpsc::UnboundedSender<TransferEvent>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let shared = Arc::new(Shared {
        config,
        events,
        slots,
    });
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("rsync receiver: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = front::handle(stream, peer, shared) => {}
            }
        });
    }
}

/// A running receiver started by [`Receiver::start`].
pub struct Receiver {
    /// The bound address.
    pub local_addr: SocketAddr,
    /// Completed connections.
    pub events: mpsc::UnboundedReceiver<TransferEvent>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Receiver {
    /// Bind `config.bind` and serve in a background task until `shutdown` is cancelled.
    pub async fn start(
        config: ReceiverConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(config.bind).await?;
        let local_addr = listener.local_addr()?;
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve(listener, config, tx, shutdown.clone()));
        Ok(Receiver {
            local_addr,
            events,
            shutdown,
            task,
        })
    }

    /// Wait until a transfer into `module` completes and delivered `path` (e.g. `info` or
    /// `db0/info`); other events are dropped. `None` on timeout.
    pub async fn wait_for_file(
        &mut self,
        module: &str,
        path: &str,
        timeout: Duration,
    ) -> Option<TransferEvent> {
        let fut = async {
            while let Some(ev) = self.events.recv().await {
                if ev.module == module && ev.delivered(path) {
                    return Some(ev);
                }
            }
            None
        };
        tokio::time::timeout(timeout, fut).await.ok().flatten()
    }

    /// Stop accepting and end running connections.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.task.await.unwrap_or(Ok(()))
    }
}
