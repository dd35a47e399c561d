//! How long the journal's commits take (`fdatasync` of the data files, then of the meta record):
//! a histogram an operator reads in `INFO` to tell a slow or stalling disk from a slow relay,
//! and the load harness reads to attribute the journal's lag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram buckets: bucket `i` counts commits that took less than `2^i` µs (the last one
/// everything longer, from 2^22 µs ≈ 4.2 s).
pub const BUCKETS: usize = 23;

/// Commit timings, updated by the committer, read by anyone.
#[derive(Debug, Default)]
pub struct SyncStats {
    commits: AtomicU64,
    data_us: AtomicU64,
    meta_us: AtomicU64,
    max_us: AtomicU64,
    hist: [AtomicU64; BUCKETS],
}

/// A copy of [`SyncStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatsView {
    /// Commits made.
    pub commits: u64,
    /// Time spent syncing data files, in all (µs).
    pub data_us: u64,
    /// Time spent storing and syncing the meta record, in all (µs).
    pub meta_us: u64,
    /// Longest commit (µs).
    pub max_us: u64,
    /// Bucket `i`: commits shorter than `2^i` µs and not shorter than `2^(i-1)`.
    pub hist: Vec<u64>,
}

fn bucket(us: u64) -> usize {
    ((64 - us.leading_zeros()) as usize).min(BUCKETS - 1)
}

impl SyncStats {
    /// Records one commit: `data` syncing the data files, `meta` storing the meta record.
    pub fn record(&self, data: Duration, meta: Duration) {
        let d = data.as_micros() as u64;
        let m = meta.as_micros() as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.data_us.fetch_add(d, Ordering::Relaxed);
        self.meta_us.fetch_add(m, Ordering::Relaxed);
        self.max_us.fetch_max(d + m, Ordering::Relaxed);
        self.hist[bucket(d + m)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn view(&self) -> SyncStatsView {
        SyncStatsView {
            commits: self.commits.load(Ordering::Relaxed),
            data_us: self.data_us.load(Ordering::Relaxed),
            meta_us: self.meta_us.load(Ordering::Relaxed),
            max_us: self.max_us.load(Ordering::Relaxed),
            hist: self
                .hist
                .iter()
                .map(|h| h.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

impl SyncStatsView {
    /// Upper bound (µs) of the bucket holding quantile `q` (0..=1) of the commits counted in
    /// `hist`; 0 without commits.
    pub fn quantile_us(hist: &[u64], q: f64) -> u64 {
        let total: u64 = hist.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in hist.iter().enumerate() {
            seen += n;
            if seen >= want {
                return 1u64 << i;
            }
        }
        1u64 << (hist.len() - 1)
    }

    /// The histogram of the commits made between `earlier` and `self`.
    pub fn hist_since(&self, earlier: &SyncStatsView) -> Vec<u64> {
        self.hist
            .iter()
            .enumerate()
            .map(|(i, &n)| n.saturating_sub(earlier.hist.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_land_in_power_of_two_buckets_and_quantiles_read_them() {
        let s = SyncStats::default();
        for _ in 0..98 {
            s.record(Duration::from_micros(300), Duration::from_micros(100)); // 400 µs → < 512
        }
        s.record(Duration::from_millis(30), Duration::from_millis(2)); // 32 000 µs → < 32 768
        s.record(Duration::from_secs(9), Duration::ZERO); // beyond the last bound
        let v = s.view();
        assert_eq!(v.commits, 100);
        assert_eq!(v.max_us, 9_000_000);
        assert_eq!((v.hist[9], v.hist[15], v.hist[BUCKETS - 1]), (98, 1, 1));
        assert_eq!(SyncStatsView::quantile_us(&v.hist, 0.5), 512);
        assert_eq!(SyncStatsView::quantile_us(&v.hist, 0.99), 32_768);
        assert_eq!(SyncStatsView::quantile_us(&v.hist, 1.0), 1 << (BUCKETS - 1));
        let later = {
            s.record(Duration::from_millis(3), Duration::ZERO);
            s.view()
        };
        let d = later.hist_since(&v);
        assert_eq!(d.iter().sum::<u64>(), 1);
        assert_eq!(SyncStatsView::quantile_us(&d, 0.99), 4096);
        assert_eq!(SyncStatsView::quantile_us(&[0; BUCKETS], 0.99), 0);
    }
}
