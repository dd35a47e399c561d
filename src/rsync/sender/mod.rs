//! The client sender: pushes a directory (or one file) into a stock rsync daemon, as a Pika
//! 3.x master's DBSync does, so a new Pika slave can be fed a full sync.
//!
//! We greet with protocol 31 and no digest list (so the daemon uses MD5 auth), ask for
//! whole-file transfers (`-W`, so the daemon never sends block sums we would have to match),
//! and omit `i`/`v` from the client info (no incremental recursion, no varint flags).

mod local;
mod session;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use local::list_local;

use crate::rsync::error::{ProtoError, Result};

/// Progress report passed to [`SenderConfig::progress`].
#[derive(Debug, Clone, Default)]
pub struct SendProgress {
    /// Destination of the current connection (`<module>/<path>`).
    pub target: String,
    /// Files sent so far on this connection.
    pub files: u64,
    /// File bytes sent so far on this connection.
    pub bytes: u64,
    /// Bytes of all regular files listed on this connection.
    pub total_bytes: u64,
}

/// Progress callback.
pub type ProgressFn = Arc<dyn Fn(&SendProgress) + Send + Sync>;

/// Where and how to push.
#[derive(Clone)]
pub struct SenderConfig {
    /// The slave's rsync daemon (Pika 3.x: slave port + 1000).
    pub addr: SocketAddr,
    /// Module name (Pika 3.x: `document`).
    pub module: String,
    /// User for auth (Pika: `rsync_user`); `None` sends no auth even if asked.
    pub user: Option<String>,
    /// Password (the slave's `masterauth`, or `default`).
    pub password: Option<String>,
    /// Bandwidth limit in bytes per second (0 = unlimited).
    pub bwlimit: u64,
    /// Protocol to offer (31, or 30).
    pub protocol: u32,
    /// Connect and idle timeout.
    pub timeout: Duration,
    /// Called every few hundred milliseconds and at the end of each connection.
    pub progress: Option<ProgressFn>,
}

impl SenderConfig {
    /// Pika 3.x defaults: module `document`, user `rsync_user`, protocol 31, no limit.
    pub fn pika(addr: SocketAddr, password: &str) -> Self {
        SenderConfig {
            addr,
            module: "document".into(),
            user: Some("rsync_user".into()),
            password: Some(password.into()),
            bwlimit: 0,
            protocol: 31,
            timeout: Duration::from_secs(60),
            progress: None,
        }
    }
}

impl std::fmt::Debug for SenderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderConfig")
            .field("addr", &self.addr)
            .field("module", &self.module)
            .field("user", &self.user)
            .field("bwlimit", &self.bwlimit)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// What one connection transferred.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Entries in the file list.
    pub listed: u64,
    /// Files the daemon requested and we sent.
    pub files: u64,
    /// File bytes sent.
    pub bytes: u64,
}

/// Push `local` to `<module>/<remote>` in one connection.
///
/// A directory is sent with its contents (like `rsync -a dir/ host::module/remote/`); give
/// `remote` a trailing `/`. A file is written as `remote`. With `delete`, the daemon removes
/// files under the destination that `local` lacks (Pika's clear-target pass).
pub async fn push_path(
    cfg: &SenderConfig,
    local: &Path,
    remote: &str,
    delete: bool,
) -> Result<PushStats> {
    let entries = list_local(local).await?;
    let target = format!("{}/{}", cfg.module, remote.trim_start_matches('/'));
    let fut = session::push(cfg, entries, &target, delete);
    fut.await.map_err(|e| match e {
        ProtoError::Peer(m) => ProtoError::Peer(format!("{target}: {m}")),
        other => other,
    })
}

/// Summary of [`push_dump`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Connections made.
    pub connections: u32,
    /// Files sent.
    pub files: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// Push a Pika dump directory the way Pika's master does: one connection per child (type
/// directories with a trailing `/`, other files by name, `info` excluded), then one
/// `--delete` pass per type directory (failures only logged, as Pika ignores them), then
/// the `info` file last. `remote_path` is e.g. `db0` (3.x classic) or empty (module root).
pub async fn push_dump(cfg: &SenderConfig, dump: &Path, remote_path: &str) -> Result<DumpStats> {
    let info = dump.join("info");
    if !tokio::fs::try_exists(&info).await? {
        return Err(ProtoError::invalid(format!(
            "dump {} has no info file",
            dump.display()
        )));
    }
    push_dump_with_info(cfg, Some(dump), remote_path, &info).await
}

/// As [`push_dump`], but the file pushed last as `info` is `info` (a master that rewrites the
/// dump's `info` for the receiving slave, as the relay does with its own position), and the dump
/// directory is optional (without one, only `info` is pushed: the slave loads an empty DB).
pub async fn push_dump_with_info(
    cfg: &SenderConfig,
    dump: Option<&Path>,
    remote_path: &str,
    info: &Path,
) -> Result<DumpStats> {
    let base = remote_path.trim_matches('/');
    let join = |name: &str| {
        if base.is_empty() {
            name.to_string()
        } else {
            format!("{base}/{name}")
        }
    };
    let mut children = vec![];
    if let Some(dump) = dump {
        let mut rd = tokio::fs::read_dir(dump).await?;
        while let Some(e) = rd.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            children.push((name, e.file_type().await?.is_dir()));
        }
    }
    children.sort();
    let dump = dump.unwrap_or(Path::new(""));
    let mut st = DumpStats::default();
    let add = |s: PushStats, st: &mut DumpStats| {
        st.connections += 1;
        st.files += s.files;
        st.bytes += s.bytes;
    };
    for (name, is_dir) in children.iter().filter(|(n, _)| n != "info") {
        let remote = if *is_dir {
            format!("{}/", join(name))
        } else {
            join(name)
        };
        let s = push_path(cfg, &dump.join(name), &remote, false).await?;
        add(s, &mut st);
    }
    for (name, _) in children.iter().filter(|(_, d)| *d) {
        match push_path(cfg, &dump.join(name), &format!("{}/", join(name)), true).await {
            Ok(s) => add(s, &mut st),
            Err(e) => tracing::warn!(
                "rsync sender: --delete pass for {name} failed (ignored, as Pika does): {e}"
            ),
        }
    }
    let s = push_path(cfg, info, &join("info"), false).await?;
    add(s, &mut st);
    Ok(st)
}
