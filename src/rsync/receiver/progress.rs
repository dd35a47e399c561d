//! Periodic progress lines (files, bytes, rate) for long transfers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Counts what a connection received and logs it every `interval`.
pub(super) struct Progress {
    peer: SocketAddr,
    module: String,
    interval: Duration,
    start: Instant,
    last: Instant,
    /// Files completed.
    pub files: u64,
    /// File bytes received.
    pub bytes: u64,
    /// Files requested in total.
    pub planned: u64,
}

impl Progress {
    pub fn new(peer: SocketAddr, module: &str, interval: Duration) -> Self {
        let now = Instant::now();
        Progress {
            peer,
            module: module.into(),
            interval,
            start: now,
            last: now,
            files: 0,
            bytes: 0,
            planned: 0,
        }
    }

    /// Mean rate so far, in MB/s.
    pub fn rate_mb(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.start.elapsed().as_secs_f64().max(1e-6)
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Log if the interval has passed.
    pub fn tick(&mut self) {
        if self.last.elapsed() >= self.interval {
            self.last = Instant::now();
            tracing::info!(
                "rsync receiver: {}: module `{}`: {}/{} files, {:.1} MiB, {:.1} MB/s",
                self.peer,
                self.module,
                self.files,
                self.planned,
                self.bytes as f64 / (1 << 20) as f64,
                self.rate_mb()
            );
        }
    }
}
