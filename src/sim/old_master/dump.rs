//! The double's full-sync delivery (the dump format itself is [`crate::sim::dump`]).
//!
//! Delivery is behind [`DumpDelivery`]. [`CopyDelivery`] copies the dump into a directory (the
//! relay's staging directory), type directories first and `info` last, atomically (temp file +
//! rename), as the master's rsync pushes do. [`RsyncCliDelivery`] runs the real `rsync` client
//! into the relay's port R+3000 with the master's command lines (checked against the recorded
//! 3.0.16 pushes by `tests/sim_vectors.rs`).

use std::io;
use std::path::{Path, PathBuf};

pub use crate::sim::dump::{load_dump, type_dirs, write_dump};
use crate::upstream::fullsync::BoxFuture;

/// Ships a dump to a slave (what the master's DBSync does with `rsync`).
pub trait DumpDelivery: Send + Sync {
    /// Sends `dump` (type directories, then `info`) to `slave_ip`'s rsync port `rsync_port`,
    /// module `module`.
    fn deliver<'a>(
        &'a self,
        dump: &'a Path,
        slave_ip: &'a str,
        rsync_port: u16,
        module: &'a str,
    ) -> BoxFuture<'a, io::Result<()>>;
}

/// Copies the dump into `target` (the relay's staging directory), `info` last and atomically.
#[derive(Debug, Clone)]
pub struct CopyDelivery {
    /// Destination directory.
    pub target: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

impl DumpDelivery for CopyDelivery {
    fn deliver<'a>(
        &'a self,
        dump: &'a Path,
        _ip: &'a str,
        _port: u16,
        _module: &'a str,
    ) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let (dump, target) = (dump.to_path_buf(), self.target.clone());
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&target)?;
                for e in std::fs::read_dir(&dump)? {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        copy_dir(&e.path(), &target.join(e.file_name()))?;
                    }
                }
                let tmp = target.join(".info.tmp");
                std::fs::copy(dump.join("info"), &tmp)?;
                std::fs::rename(tmp, target.join("info"))
            })
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
        })
    }
}

/// Runs the real `rsync` client with a Pika 3.0 master's command lines (old spec §5.4) into the
/// slave's (the relay's) port+3000, module `document_<ip>:<port>`, no auth: each type directory,
/// then a `--delete` pass per type, then `info` last.
#[derive(Debug, Clone, Default)]
pub struct RsyncCliDelivery {
    /// `--bwlimit` in KiB/s (Pika 3.0 sends 1048576).
    pub bwlimit_kbps: u64,
    /// Make a bare TCP connect-and-close to the slave's rsync port before the first push, as
    /// 3.0.16 does to learn its local ip (recorded: 4 ms before the push; 2.3.6 makes none).
    pub probe_first: bool,
}

impl RsyncCliDelivery {
    /// The options the recorded master of `flavor` pushed with: 3.0.16 probes first and sends
    /// `--bwlimit=1048576`; 2.3.6 makes no probe and clamps its unlimited speed to 125 MB/s
    /// (`--bwlimit=128000`).
    pub fn as_recorded(flavor: super::Flavor) -> RsyncCliDelivery {
        match flavor {
            super::Flavor::V30 => RsyncCliDelivery {
                bwlimit_kbps: 1_048_576,
                probe_first: true,
            },
            super::Flavor::V23 => RsyncCliDelivery {
                bwlimit_kbps: 128_000,
                probe_first: false,
            },
        }
    }
}

fn run_rsync(args: &[String]) -> io::Result<()> {
    let out = std::process::Command::new("rsync")
        .args(args)
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("run rsync (install the rsync package): {e}"),
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "rsync {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl DumpDelivery for RsyncCliDelivery {
    fn deliver<'a>(
        &'a self,
        dump: &'a Path,
        slave_ip: &'a str,
        rsync_port: u16,
        module: &'a str,
    ) -> BoxFuture<'a, io::Result<()>> {
        let (dump, ip, module) = (dump.to_path_buf(), slave_ip.to_string(), module.to_string());
        let bw = if self.bwlimit_kbps == 0 {
            1_048_576
        } else {
            self.bwlimit_kbps
        };
        let probe = self.probe_first;
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                if probe {
                    let _ = std::net::TcpStream::connect((ip.as_str(), rsync_port));
                }
                let mut types = Vec::new();
                for e in std::fs::read_dir(&dump)? {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        types.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
                types.sort();
                // `rsync -avP [--delete | --bwlimit=<kbps>] --port=<p> <src> <ip>::<module>/<dst>`
                let push = |src: String, dst: &str, delete: bool| {
                    let opt = if delete {
                        "--delete".to_string()
                    } else {
                        format!("--bwlimit={bw}")
                    };
                    run_rsync(&[
                        "-avP".into(),
                        opt,
                        format!("--port={rsync_port}"),
                        src,
                        format!("{ip}::{module}/{dst}"),
                    ])
                };
                for t in &types {
                    push(
                        format!("{}/", dump.join(t).display()),
                        &format!("{t}/"),
                        false,
                    )?;
                }
                // The `--delete` passes go in the master's fixed type order (the copy passes
                // above follow its directory listing, which is file-system order).
                let mut deletes = types.clone();
                deletes.sort_by_key(|t| delete_rank(t));
                for t in &deletes {
                    push(
                        format!("{}/", dump.join(t).display()),
                        &format!("{t}/"),
                        true,
                    )?;
                }
                push(dump.join("info").display().to_string(), "info", false)
            })
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
        })
    }
}

/// Position of a type directory in the master's `--delete` pass order (3.0.16 and 2.3.6 as
/// recorded: strings/kv, hashes/hash, lists/list, sets/set, zsets/zset; unknown names last).
fn delete_rank(t: &str) -> usize {
    const ORDER: [&[&str]; 5] = [
        &["strings", "kv"],
        &["hashes", "hash"],
        &["lists", "list"],
        &["sets", "set"],
        &["zsets", "zset"],
    ];
    ORDER
        .iter()
        .position(|names| names.contains(&t))
        .unwrap_or(ORDER.len())
}

/// Pushes with the relay's embedded rsync sender (same order and module as
/// [`RsyncCliDelivery`]), for `demo` on machines without the rsync package.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedRsyncDelivery;

impl DumpDelivery for EmbeddedRsyncDelivery {
    fn deliver<'a>(
        &'a self,
        dump: &'a Path,
        slave_ip: &'a str,
        rsync_port: u16,
        module: &'a str,
    ) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            use crate::rsync::sender::{push_dump, SenderConfig};
            let ip: std::net::IpAddr = slave_ip.parse().map_err(|_| {
                io::Error::other(format!("slave ip {slave_ip:?} is not an address"))
            })?;
            let mut cfg = SenderConfig::pika(std::net::SocketAddr::new(ip, rsync_port), "");
            cfg.module = module.to_string();
            cfg.user = None;
            cfg.password = None;
            push_dump(&cfg, dump, "")
                .await
                .map(|_| ())
                .map_err(|e| io::Error::other(e.to_string()))
        })
    }
}
