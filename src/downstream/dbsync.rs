//! DBSync for new slaves with the embedded rsync sender: the current epoch's dump (the type
//! directories the old master pushed to the relay) goes to the slave's rsync daemon on its
//! port+1000 exactly as a 3.x master pushes (module `document`, user `rsync_user`, one connection
//! per type directory, then `--delete` passes), and then the relay's own `info` file last, naming
//! the relay and the journal position J_e of the dump. The old master's `info` is never sent.

use super::pb::{DumpPusher, PushRequest};
use crate::rsync::sender::{push_path, SenderConfig};
use std::future::Future;
use std::pin::Pin;
use tracing::{info, warn};

/// Pushes dumps with the embedded rsync sender.
#[derive(Debug, Clone, Default)]
pub struct RsyncPusher {
    /// Bandwidth limit in bytes per second (0 = none).
    pub bwlimit: u64,
}

async fn push(bwlimit: u64, req: PushRequest) -> Result<u64, String> {
    let mut cfg = SenderConfig::pika(req.target, &req.password);
    cfg.bwlimit = bwlimit;
    let base = req.remote_path.trim_matches('/').to_string();
    let mut bytes = 0;
    let mut dirs = Vec::new();
    if let Some(dump) = &req.dump_dir {
        let mut rd = tokio::fs::read_dir(dump)
            .await
            .map_err(|e| format!("dump {}: {e}", dump.display()))?;
        while let Some(e) = rd.next_entry().await.map_err(|e| e.to_string())? {
            if e.file_type().await.map_err(|e| e.to_string())?.is_dir() {
                dirs.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        dirs.sort();
        for d in &dirs {
            let s = push_path(&cfg, &dump.join(d), &format!("{base}/{d}/"), false)
                .await
                .map_err(|e| format!("pushing {d}: {e}"))?;
            bytes += s.bytes;
            info!(
                "downstream: DBSync to {}: {d} sent ({} files, {} bytes)",
                req.target, s.files, s.bytes
            );
        }
        for d in &dirs {
            if let Err(e) = push_path(&cfg, &dump.join(d), &format!("{base}/{d}/"), true).await {
                warn!("downstream: DBSync to {}: --delete pass for {d} failed (ignored, as Pika does): {e}", req.target);
            }
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("pika-relay-info")
        .tempdir()
        .map_err(|e| format!("temp dir for info: {e}"))?;
    let info_path = tmp.path().join("info");
    tokio::fs::write(&info_path, &req.info)
        .await
        .map_err(|e| e.to_string())?;
    let s = push_path(&cfg, &info_path, &format!("{base}/info"), false)
        .await
        .map_err(|e| format!("pushing info: {e}"))?;
    Ok(bytes + s.bytes)
}

impl DumpPusher for RsyncPusher {
    fn push(&self, req: PushRequest) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> {
        Box::pin(push(self.bwlimit, req))
    }
}
