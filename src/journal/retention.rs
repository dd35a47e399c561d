//! Retention: which old data files to delete.
//!
//! Walking files from the oldest (never the live one), a file is a candidate when more than
//! `max_files` files exist or it is older than `max_age_secs`; the walk stops at the first
//! non-candidate and at the first file still *protected*: the file of any registered cursor and,
//! with `protect_epoch_start`, the file holding `J_e` (a new slave that full-syncs from the
//! current dump needs the journal from `J_e` on). Only when the total size exceeds
//! `hard_cap_bytes` are protected files purged too, oldest first, with one loud error line.

use super::files::{data_path, list_data_files};
use super::meta::sync_dir;
use super::Shared;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// Retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Keep at most this many files (Pika's `expire-logs-nums`, default 10).
    pub max_files: usize,
    /// Delete files older than this (Pika's `expire-logs-days`, default 7 days).
    pub max_age_secs: u64,
    /// Total size above which even protected files are purged (none by default).
    pub hard_cap_bytes: Option<u64>,
    /// Protect the file holding the current epoch's `J_e`.
    pub protect_epoch_start: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_files: 10,
            max_age_secs: 7 * 86400,
            hard_cap_bytes: None,
            protect_epoch_start: true,
        }
    }
}

/// One data file as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// File number.
    pub filenum: u32,
    /// Size in bytes.
    pub len: u64,
    /// Time since last modification.
    pub age: Duration,
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Files removed by count/age.
    pub removed: Vec<u32>,
    /// Protected files removed because the hard cap was exceeded.
    pub forced: Vec<u32>,
}

/// Pure planning: `files` ascending, `live` the file being written, `protect_from` the lowest
/// protected file. Returns (removed by policy, forced by the hard cap).
pub fn plan(
    files: &[FileInfo],
    live: u32,
    protect_from: Option<u32>,
    cfg: &RetentionConfig,
) -> (Vec<u32>, Vec<u32>) {
    let old: Vec<&FileInfo> = files.iter().filter(|f| f.filenum < live).collect();
    let mut remaining = files.len();
    let mut normal = Vec::new();
    for f in &old {
        let wanted = remaining > cfg.max_files || f.age > Duration::from_secs(cfg.max_age_secs);
        if !wanted || protect_from.is_some_and(|p| f.filenum >= p) {
            break;
        }
        normal.push(f.filenum);
        remaining -= 1;
    }
    let mut forced = Vec::new();
    if let Some(cap) = cfg.hard_cap_bytes {
        let mut total: u64 = files
            .iter()
            .filter(|f| !normal.contains(&f.filenum))
            .map(|f| f.len)
            .sum();
        for f in old.iter().skip(normal.len()) {
            if total <= cap {
                break;
            }
            forced.push(f.filenum);
            total -= f.len;
        }
    }
    (normal, forced)
}

pub(crate) fn purge(shared: &Shared) -> PurgeReport {
    let _g = shared.purge_lock.lock().unwrap();
    let cfg = &shared.cfg;
    let st = *shared.state.borrow();
    let live = st.end.filenum;
    let nums = match list_data_files(&cfg.dir) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(dir = %cfg.dir.display(), "journal retention: cannot list files: {e}");
            return PurgeReport::default();
        }
    };
    let first = shared.first.load(Ordering::Acquire);
    let now = SystemTime::now();
    let files: Vec<FileInfo> = nums
        .iter()
        .filter(|&&n| n >= first && n <= live)
        .filter_map(|&n| {
            let m = std::fs::metadata(data_path(&cfg.dir, n)).ok()?;
            let age = m
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            Some(FileInfo {
                filenum: n,
                len: m.len(),
                age,
            })
        })
        .collect();
    let (normal, forced, protect) = {
        let cursors = shared.cursors.lock().unwrap();
        let mut protect = cursors.values().copied().min();
        if cfg.retention.protect_epoch_start && st.epoch > 0 {
            protect =
                Some(protect.map_or(st.epoch_start.filenum, |p| p.min(st.epoch_start.filenum)));
        }
        let (normal, forced) = plan(&files, live, protect, &cfg.retention);
        if let Some(&last) = normal.iter().chain(forced.iter()).max() {
            shared.first.store(last + 1, Ordering::Release);
        }
        (normal, forced, protect)
    };
    for &n in normal.iter().chain(forced.iter()) {
        if let Err(e) = std::fs::remove_file(data_path(&cfg.dir, n)) {
            tracing::error!("journal retention: cannot remove write2file{n}: {e}");
        }
    }
    if !normal.is_empty() || !forced.is_empty() {
        let _ = sync_dir(&cfg.dir);
    }
    if !normal.is_empty() {
        tracing::info!(files = ?normal, "journal retention: purged by count/age");
    }
    if !forced.is_empty() {
        tracing::error!(
            "JOURNAL HARD DISK CAP EXCEEDED ({} bytes): purged write2file{:?} although still needed \
             (protected from write2file{}); readers there must full-sync",
            cfg.retention.hard_cap_bytes.unwrap_or(0),
            forced,
            protect.map_or("-".to_string(), |p| p.to_string())
        );
    }
    PurgeReport {
        removed: normal,
        forced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u32, len: u64, age_s: u64) -> FileInfo {
        FileInfo {
            filenum: n,
            len,
            age: Duration::from_secs(age_s),
        }
    }

    #[test]
    fn count_age_protection_and_cap() {
        let cfg = RetentionConfig {
            max_files: 3,
            max_age_secs: 1000,
            hard_cap_bytes: None,
            protect_epoch_start: true,
        };
        let files: Vec<_> = (0..6).map(|n| f(n, 100, 10)).collect();
        assert_eq!(plan(&files, 5, None, &cfg), (vec![0, 1, 2], vec![]));
        assert_eq!(plan(&files, 5, Some(1), &cfg), (vec![0], vec![]));
        // Age: all but the live file are old.
        let old: Vec<_> = (0..4).map(|n| f(n, 100, 5000)).collect();
        assert_eq!(plan(&old, 3, None, &cfg).0, vec![0, 1, 2]);
        // The hard cap overrides protection, oldest first, never the live file.
        let capped = RetentionConfig {
            hard_cap_bytes: Some(250),
            ..cfg
        };
        assert_eq!(
            plan(&files, 5, Some(0), &capped),
            (vec![], vec![0, 1, 2, 3])
        );
    }
}
