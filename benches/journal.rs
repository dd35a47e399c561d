//! Journal benchmarks (harness-less): append throughput with `sync = always` and with group
//! commit, for small (`set k v`) and 16 KiB values; cursor read throughput; RSS while a cursor
//! reads a journal it lags by ~1 GB. Every figure is also given as a ratio against the raw
//! sequential write speed (1 MiB writes + one final fsync) measured in the same run, in the same
//! directory.
//!
//! `cargo bench --bench journal`; env `PIKA_BENCH_DIR` (default: a temp dir under the target
//! dir's filesystem), `PIKA_BENCH_LAG_MB` (default 1024), `PIKA_BENCH_SCALE` (default 1.0:
//! multiplies the entry counts).

use pika_relay::formats::BinlogPos;
use pika_relay::journal::{Journal, JournalConfig, JournalWriter, RetentionConfig, SyncPolicy};
use pika_relay::pipeline::NewEntry;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn entry(i: u64, vlen: usize) -> NewEntry {
    NewEntry {
        exec_time: 1_700_000_000,
        argv: vec![
            b"set".to_vec(),
            format!("key:{i}").into_bytes(),
            vec![b'v'; vlen],
        ],
    }
}

fn cfg(dir: &Path, sync: SyncPolicy) -> JournalConfig {
    JournalConfig {
        sync,
        retention: RetentionConfig {
            max_files: usize::MAX,
            max_age_secs: u64::MAX / 2,
            ..Default::default()
        },
        ..JournalConfig::new(dir)
    }
}

fn raw_write_mbps(dir: &Path, mb: usize) -> f64 {
    let p = dir.join("raw");
    let buf = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let mut f = std::fs::File::create(&p).unwrap();
    for _ in 0..mb {
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
    let s = t.elapsed().as_secs_f64();
    std::fs::remove_file(p).unwrap();
    mb as f64 / s
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("write2file"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

struct Res {
    name: String,
    entries: u64,
    secs: f64,
    bytes: u64,
}

/// `sync = always` through the synchronous writer: append one entry, sync, repeat.
fn bench_always(base: &Path, n: u64, vlen: usize) -> Res {
    let d = tempfile::tempdir_in(base).unwrap();
    let (mut w, _) = JournalWriter::open(cfg(d.path(), SyncPolicy::Always)).unwrap();
    let t = Instant::now();
    for i in 0..n {
        w.append(BinlogPos::new(0, i + 1), &[entry(i, vlen)])
            .unwrap();
        w.sync().unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    Res {
        name: format!("always, value {vlen} B"),
        entries: n,
        secs,
        bytes: dir_bytes(d.path()),
    }
}

/// Group commit through the threaded handle (default policy: 4096 entries or 5 ms).
fn bench_group(rt: &tokio::runtime::Runtime, base: &Path, n: u64, vlen: usize) -> Res {
    let d = tempfile::tempdir_in(base).unwrap();
    let (secs, bytes) = rt.block_on(async {
        let (_j, h, _) = Journal::open(cfg(d.path(), SyncPolicy::default())).unwrap();
        let t = Instant::now();
        for i in 0..n {
            h.append(BinlogPos::new(0, i + 1), vec![entry(i, vlen)])
                .await
                .unwrap();
        }
        h.close().await.unwrap();
        (t.elapsed().as_secs_f64(), dir_bytes(d.path()))
    });
    Res {
        name: format!("group commit, value {vlen} B"),
        entries: n,
        secs,
        bytes,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale: f64 = std::env::var("PIKA_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let lag_mb: u64 = std::env::var("PIKA_BENCH_LAG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let base = std::env::var("PIKA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let sc = |n: f64| ((n * scale) as u64).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let raw = raw_write_mbps(&base, 512);
    println!("raw sequential write (1 MiB writes + fsync): {raw:.0} MB/s");
    let mut results = vec![
        bench_always(&base, sc(2000.0), 1),
        bench_always(&base, sc(1000.0), 16 * 1024),
        bench_group(&rt, &base, sc(1_000_000.0), 1),
        bench_group(&rt, &base, sc(40_000.0), 16 * 1024),
    ];

    // Cursor read throughput over a 16 KiB-value journal, and RSS while lagging lag_mb behind.
    let d = tempfile::tempdir_in(&base).unwrap();
    let n_lag = lag_mb * 1024 * 1024 / (16 * 1024 + 64);
    let rss_before_write = rss_kib();
    let mut rss_max_write = rss_before_write;
    let (j, write_secs) = {
        let (j, h, _) = Journal::open(cfg(d.path(), SyncPolicy::default())).unwrap();
        let t = Instant::now();
        rt.block_on(async {
            for i in 0..n_lag {
                h.append(BinlogPos::new(0, i + 1), vec![entry(i, 16 * 1024)])
                    .await
                    .unwrap();
                if i % 4096 == 0 {
                    rss_max_write = rss_max_write.max(rss_kib());
                }
            }
            h.sync().await.unwrap();
        });
        (j, t.elapsed().as_secs_f64())
    };
    let lag_bytes = dir_bytes(d.path());
    results.push(Res {
        name: "group commit, value 16384 B (lag fill)".into(),
        entries: n_lag,
        secs: write_secs,
        bytes: lag_bytes,
    });
    let rss_before = rss_kib();
    let (read_secs, rss_min, rss_max, n_read) = rt.block_on(async {
        let mut c = j.cursor(BinlogPos::new(0, 0)).unwrap();
        let (mut lo, mut hi) = (u64::MAX, 0);
        let t = Instant::now();
        let mut n = 0u64;
        while let Some(_it) = c.try_next().await.unwrap() {
            n += 1;
            if n % 2048 == 0 {
                let r = rss_kib();
                lo = lo.min(r);
                hi = hi.max(r);
            }
        }
        (t.elapsed().as_secs_f64(), lo, hi, n)
    });
    assert_eq!(n_read, n_lag);

    println!();
    println!("| benchmark | entries | entries/s | MB/s | ratio to raw write |");
    println!("|---|---|---|---|---|");
    for r in &results {
        let mbps = r.bytes as f64 / 1e6 / r.secs;
        println!(
            "| append, {} | {} | {:.0} | {:.1} | {:.3} |",
            r.name,
            r.entries,
            r.entries as f64 / r.secs,
            mbps,
            mbps / raw
        );
    }
    let rmbps = lag_bytes as f64 / 1e6 / read_secs;
    println!(
        "| cursor read, value 16384 B (from disk/page cache) | {} | {:.0} | {:.1} | {:.3} |",
        n_read,
        n_read as f64 / read_secs,
        rmbps,
        rmbps / raw
    );
    println!();
    println!(
        "RSS: {} KiB before filling {} MB, max {} KiB while writing; {} KiB before the lagging cursor read, min {} / max {} KiB during it (flat = bounded buffer)",
        rss_before_write,
        lag_bytes / 1_000_000,
        rss_max_write,
        rss_before,
        rss_min,
        rss_max
    );
}
