//! DBSync for new slaves with the embedded rsync sender: the current epoch's dump (the type
//! directories the old master pushed to the relay) goes to the slave's rsync daemon on its
//! port+1000 exactly as a 3.x master pushes (module `document`, user `rsync_user`, one connection
//! per type directory, then `--delete` passes), and then the relay's own `info` file last, naming
//! the relay and the journal position J_e of the dump. The old master's `info` is never sent.

use super::pb::{DumpPusher, PushRequest};
use crate::rsync::sender::{push_dump_with_info, SenderConfig};
use std::future::Future;
use std::pin::Pin;
use tracing::info;

/// Pushes dumps with the embedded rsync sender.
#[derive(Debug, Clone, Default)]
pub struct RsyncPusher {
    /// Bandwidth limit in bytes per second (0 = none).
    pub bwlimit: u64,
}

async fn push(bwlimit: u64, req: PushRequest) -> Result<u64, String> {
    let mut cfg = SenderConfig::pika(req.target, &req.password);
    cfg.bwlimit = bwlimit;
    let tmp = tempfile::Builder::new()
        .prefix("pika-relay-info")
        .tempdir()
        .map_err(|e| format!("temp dir for info: {e}"))?;
    let info_path = tmp.path().join("info");
    tokio::fs::write(&info_path, &req.info)
        .await
        .map_err(|e| e.to_string())?;
    let st = push_dump_with_info(&cfg, req.dump_dir.as_deref(), &req.remote_path, &info_path)
        .await
        .map_err(|e| e.to_string())?;
    info!(
        "downstream: DBSync to {}: {} files, {} bytes over {} connections",
        req.target, st.files, st.bytes, st.connections
    );
    Ok(st.bytes)
}

impl DumpPusher for RsyncPusher {
    fn push(&self, req: PushRequest) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> {
        Box::pin(push(self.bwlimit, req))
    }
}
