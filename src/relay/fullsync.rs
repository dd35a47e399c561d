//! The embedded rsync receiver on R+3000 as the upstream session's [`FullSyncReceiver`]: the old
//! master pushes its dump into module `document_<ip>:<port>` (no auth, as 2.3/3.0 masters do);
//! the session waits for the `info` file, which the master sends last. A 2.3 (nemo) dump is then
//! converted to blackwidow (3.x) before the session sees it, so the epoch's dump is one new
//! slaves load ([`crate::dump::convert`]); a failed conversion fails this full sync (the previous
//! epoch stays current) and never hands over an empty dump.

use crate::dump::convert::{convert, Progress};
use crate::dump::{detect, Engine};
use crate::rsync::receiver::{Receiver, TransferEvent};
use crate::upstream::fullsync::{BoxFuture, FullSyncReceiver};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::{error, info};

/// Counters of nemo → blackwidow conversions of received dumps (logs, INFO, metrics).
#[derive(Debug, Default)]
pub struct ConvertStatus {
    /// Keys and bytes of the running (or last) conversion.
    pub progress: Arc<Progress>,
    /// 1 while a conversion runs.
    pub running: AtomicU64,
    /// Conversions that finished.
    pub done: AtomicU64,
    /// Conversions that failed.
    pub failed: AtomicU64,
}

/// The receiver, shared with the session.
pub struct RsyncFullSync {
    receiver: Mutex<Option<Receiver>>,
    staging: PathBuf,
    /// Bytes received for the dump being (or last) waited for.
    progress: Arc<AtomicU64>,
    convert: Arc<ConvertStatus>,
}

impl RsyncFullSync {
    /// Wraps a started receiver whose staging root is `staging`.
    pub fn new(receiver: Receiver, staging: PathBuf) -> Self {
        RsyncFullSync {
            receiver: Mutex::new(Some(receiver)),
            staging,
            progress: Arc::default(),
            convert: Arc::default(),
        }
    }

    /// Conversion counters (for metrics and INFO).
    pub fn convert_status(&self) -> Arc<ConvertStatus> {
        self.convert.clone()
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

/// The INFO/metrics view of `st`.
pub fn convert_view(st: &ConvertStatus) -> crate::admin::info::ConvertView {
    crate::admin::info::ConvertView {
        keys: st.progress.keys.load(Ordering::Relaxed),
        bytes: st.progress.bytes.load(Ordering::Relaxed),
        running: st.running.load(Ordering::Relaxed) == 1,
        done: st.done.load(Ordering::Relaxed),
        failed: st.failed.load(Ordering::Relaxed),
    }
}

impl RsyncFullSync {
    /// Returns `dir` as is when it holds a blackwidow dump; converts a nemo (2.3) dump into
    /// `<dir>.converted` (the `info` file copied) and returns that. Errors are `InvalidData`.
    async fn convert_if_nemo(&self, dir: PathBuf) -> io::Result<PathBuf> {
        match detect(&dir) {
            Ok(l) if l.engine == Engine::Nemo => {}
            _ => return Ok(dir),
        }
        let out = PathBuf::from(format!("{}.converted", dir.display()));
        let _ = std::fs::remove_dir_all(&out);
        let st = self.convert.clone();
        st.progress.keys.store(0, Ordering::Relaxed);
        st.progress.bytes.store(0, Ordering::Relaxed);
        st.running.store(1, Ordering::Relaxed);
        info!(
            "full sync: the dump in {} is a Pika 2.3 (nemo) dump; converting it to blackwidow for the new slaves",
            dir.display()
        );
        let started = Instant::now();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let (src, dst, p) = (dir.clone(), out.clone(), st.progress.clone());
        let mut job = tokio::task::spawn_blocking(move || {
            convert(&src, &dst, Engine::Blackwidow30, now_ms, Some(p))
        });
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        let res = loop {
            tokio::select! {
                r = &mut job => break r,
                _ = tick.tick() => {
                    let (k, b) = (st.progress.keys.load(Ordering::Relaxed), st.progress.bytes.load(Ordering::Relaxed));
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    info!(
                        "full sync: converting: {k} keys, {b} bytes so far ({:.0} keys/s, {:.1} MB/s)",
                        k as f64 / secs,
                        b as f64 / secs / 1e6
                    );
                }
            }
        };
        st.running.store(0, Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        match res {
            Ok(Ok(s)) => {
                st.done.fetch_add(1, Ordering::Relaxed);
                info!(
                    "full sync: converted {} keys ({} bytes) in {secs:.1} s ({:.0} keys/s, {:.1} MB/s) into {} SST files",
                    s.keys,
                    s.bytes,
                    s.keys as f64 / secs,
                    s.bytes as f64 / secs / 1e6,
                    s.written.files
                );
                let _ = std::fs::remove_dir_all(&dir);
                Ok(out)
            }
            Ok(Err(e)) => {
                st.failed.fetch_add(1, Ordering::Relaxed);
                let msg = format!(
                    "the Pika 2.3 dump in {} could not be converted for the new slaves: {e}; this full sync fails and the \
                     previous epoch stays current (check the disk space and the dump; the relay asks the master again)",
                    dir.display()
                );
                error!("{msg}");
                let _ = std::fs::remove_dir_all(&out);
                Err(io::Error::new(io::ErrorKind::InvalidData, msg))
            }
            Err(e) => {
                st.failed.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_dir_all(&out);
                Err(io::Error::other(format!(
                    "the dump conversion task failed: {e}"
                )))
            }
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
                    self.convert_if_nemo(ev.module_root).await
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
