//! The double's full-sync delivery (the dump format itself is [`crate::sim::dump`]).
//!
//! Delivery is behind [`DumpDelivery`]. [`CopyDelivery`] copies the dump into a directory (the
//! relay's staging directory), type directories first and `info` last, atomically (temp file +
//! rename), as the master's rsync pushes do. Pushing with the real `rsync` client into the
//! relay's port R+3000 is the next step, once the embedded rsync receiver exists.

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
