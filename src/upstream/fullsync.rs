//! Full sync (spec §5): after `wait` the master runs a bgsave and pushes the dump with its
//! `rsync` client into our port R+3000, `info` last. The transport is behind
//! [`FullSyncReceiver`]; this module validates what arrived and promotes it atomically to
//! `<data_dir>/dumps/epoch-<n>/`.
//!
//! Implementations of the trait:
//! - the embedded rsync receiver (its own module, wired in by the relay), which accepts the
//!   master's `rsync -avP ... <ip>::document_<master ip>:<master port>/<dir>/` pushes into a
//!   staging directory;
//! - [`DirFullSyncReceiver`], a plain directory watcher: something else (the test double of the
//!   old master, or an operator copying a dump by hand) writes the dump into the staging
//!   directory, `info` last. Used by the tests until the rsync receiver is wired.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use super::config::OldVersion;
use crate::formats::info::DumpInfo;

/// A boxed future, so that the trait can be used as `Arc<dyn FullSyncReceiver>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Receives a dump pushed by the master.
pub trait FullSyncReceiver: Send + Sync {
    /// Called before every `trysync` (a real slave has its rsync daemon up before asking, as the
    /// master may push at once when it reuses a recent dump): be ready to accept `module` into an
    /// empty staging directory. Default: nothing to do.
    fn prepare<'a>(&'a self, module: &'a str) -> BoxFuture<'a, io::Result<()>> {
        let _ = module;
        Box::pin(async { Ok(()) })
    }

    /// Waits until a complete dump (type directories + `info`, which the master sends last) has
    /// arrived for `module`; returns the staging directory holding it. The directory must be on
    /// the same file system as the relay's data directory (it is renamed into place). Errors
    /// with [`io::ErrorKind::TimedOut`] after `timeout`.
    fn wait_for_dump<'a>(
        &'a self,
        module: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, io::Result<PathBuf>>;
}

/// A [`FullSyncReceiver`] that watches a staging directory for an `info` file (polling every
/// 20 ms). Whatever writes the dump must write `info` last (as Pika's master does).
#[derive(Debug, Clone)]
pub struct DirFullSyncReceiver {
    /// The staging directory.
    pub staging: PathBuf,
}

impl DirFullSyncReceiver {
    /// Watches `staging`.
    pub fn new(staging: impl Into<PathBuf>) -> Self {
        DirFullSyncReceiver {
            staging: staging.into(),
        }
    }
}

impl FullSyncReceiver for DirFullSyncReceiver {
    fn prepare<'a>(&'a self, _module: &'a str) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            // Leftovers of an interrupted transfer are not trusted: start empty.
            if !self.staging.join("info").exists() {
                tokio::fs::create_dir_all(&self.staging).await?;
            }
            Ok(())
        })
    }

    fn wait_for_dump<'a>(
        &'a self,
        _module: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, io::Result<PathBuf>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if tokio::fs::metadata(self.staging.join("info")).await.is_ok() {
                    return Ok(self.staging.clone());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no dump arrived"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }
}

/// Checks a received dump: `info` parses, its port is the master's, and one complete set of type
/// directories exists. Returns the parsed `info`.
pub fn validate_dump(
    dir: &Path,
    version: OldVersion,
    master_port: u16,
) -> Result<DumpInfo, String> {
    let text = std::fs::read(dir.join("info"))
        .map_err(|e| format!("cannot read {}/info: {e}", dir.display()))?;
    let info = DumpInfo::parse(&text).map_err(|e| format!("{}/info: {e}", dir.display()))?;
    if info.port != master_port {
        return Err(format!(
            "{}/info names master port {}, but our master is on port {master_port} (a dump of another master?)",
            dir.display(),
            info.port
        ));
    }
    let sets = version.dump_dirs();
    let complete = sets
        .iter()
        .find(|set| set.iter().all(|d| dir.join(d).is_dir()));
    if complete.is_none() {
        let missing: Vec<String> = sets
            .iter()
            .map(|set| {
                set.iter()
                    .filter(|d| !dir.join(d).is_dir())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        return Err(format!(
            "dump in {} is incomplete: missing type directories [{}]",
            dir.display(),
            missing.join("] or [")
        ));
    }
    Ok(info)
}

/// Renames `staging` to `<data_dir>/dumps/epoch-<n>/` with `n` = max(`after` + 1, one past every
/// existing epoch directory). Returns `(n, new path)`.
pub fn promote(staging: &Path, data_dir: &Path, after: u64) -> io::Result<(u64, PathBuf)> {
    let dumps = data_dir.join("dumps");
    std::fs::create_dir_all(&dumps)?;
    let mut n = after + 1;
    for e in std::fs::read_dir(&dumps)?.flatten() {
        if let Some(k) = e
            .file_name()
            .to_str()
            .and_then(|s| s.strip_prefix("epoch-"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            n = n.max(k + 1);
        }
    }
    let target = dumps.join(format!("epoch-{n}"));
    std::fs::rename(staging, &target).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot move the dump {} to {}: {e} (the staging directory must be on the data directory's file system)",
                staging.display(),
                target.display()
            ),
        )
    })?;
    // Make the rename durable.
    if let Ok(d) = std::fs::File::open(&dumps) {
        let _ = d.sync_all();
    }
    Ok((n, target))
}
