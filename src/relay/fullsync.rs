//! The embedded rsync receiver on R+3000 as the upstream session's [`FullSyncReceiver`]: the old
//! master pushes its dump into module `document_<ip>:<port>` (no auth, as 2.3/3.0 masters do);
//! the session waits for the `info` file, which the master sends last.

use crate::rsync::receiver::{Receiver, TransferEvent};
use crate::upstream::fullsync::{BoxFuture, FullSyncReceiver};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::info;

/// The receiver, shared with the session.
pub struct RsyncFullSync {
    receiver: Mutex<Option<Receiver>>,
    staging: PathBuf,
    /// Bytes received for the dump being (or last) waited for.
    progress: Arc<AtomicU64>,
}

impl RsyncFullSync {
    /// Wraps a started receiver whose staging root is `staging`.
    pub fn new(receiver: Receiver, staging: PathBuf) -> Self {
        RsyncFullSync {
            receiver: Mutex::new(Some(receiver)),
            staging,
            progress: Arc::default(),
        }
    }

    /// Bytes of the current full sync received so far (for metrics and INFO).
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    /// Stops the receiver and waits until its listener is closed.
    pub async fn stop(&self) {
        if let Some(r) = self.receiver.lock().await.take() {
            let _ = r.stop().await;
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the rsync receiver is stopped (relay shutting down)")
}

impl FullSyncReceiver for RsyncFullSync {
    fn prepare<'a>(&'a self, module: &'a str) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let dir = self.staging.join(module);
            // A stale `info` from an earlier, abandoned transfer must not be taken for a new dump.
            match tokio::fs::remove_file(dir.join("info")).await {
                Ok(()) => info!(
                    "full sync: removed a stale info file from {}",
                    dir.display()
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let mut r = self.receiver.lock().await;
            let r = r.as_mut().ok_or_else(stopped)?;
            while r.events.try_recv().is_ok() {}
            Ok(())
        })
    }

    fn wait_for_dump<'a>(
        &'a self,
        module: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, io::Result<PathBuf>> {
        Box::pin(async move {
            let mut r = self.receiver.lock().await;
            let r = r.as_mut().ok_or_else(stopped)?;
            // Transfers that arrived since `prepare` are still queued: none is missed by starting
            // the count here.
            self.progress.store(0, Ordering::Relaxed);
            let deadline = Instant::now() + timeout;
            let mut done: Option<TransferEvent> = None;
            while done.is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, r.events.recv()).await {
                    Ok(Some(ev)) if ev.module == module => {
                        self.progress.fetch_add(ev.bytes, Ordering::Relaxed);
                        if ev.delivered("info") {
                            done = Some(ev);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            match done {
                Some(ev) => {
                    info!(
                        "full sync: dump for {module} complete from {} ({} bytes received)",
                        ev.peer,
                        self.progress.load(Ordering::Relaxed)
                    );
                    Ok(ev.module_root)
                }
                None => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no dump arrived in module {module} within {timeout:?}: check that the master can reach the relay's port+3000"
                    ),
                )),
            }
        })
    }
}
