//! Receive throughput: the real `rsync` client pushes a tree of 64 MiB files over loopback
//! into (a) the embedded receiver and (b) a stock `rsync --daemon`, in the same run.
//!
//! `cargo bench --bench rsync_receive` (1 GiB = 16 files); `RSYNC_BENCH_MB=256` for a quick run;
//! `RSYNC_BENCH_ONLY=embedded` pushes only into the embedded receiver (for profiling).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pika_relay::rsync::receiver::{ModuleSpec, Receiver, ReceiverConfig};
use tokio_util::sync::CancellationToken;

const FILE_MB: usize = 64;

fn rsync() -> &'static str {
    for p in ["/usr/bin/rsync", "/usr/local/bin/rsync"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("the real `rsync` binary is required: apt-get install -y rsync");
}

fn make_tree(dir: &Path, files: usize) {
    let mut buf = vec![0u8; FILE_MB << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    for i in 0..files {
        buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(dir.join(format!("{i:06}.sst")), &buf).unwrap();
    }
}

/// Push `src/` to `dest` (`host::module/path/`) on `port`; returns seconds.
///
/// Dirty pages left by the previous push (or by building the tree) are flushed first, so
/// every push starts from the same page-cache state instead of racing the writeback of the
/// one before it.
fn push(src: &Path, port: u16, dest: &str, extra: &[&str]) -> f64 {
    let _ = Command::new("sync").status();
    let t0 = Instant::now();
    let st = Command::new(rsync())
        .arg("-a")
        .args(extra)
        .args([
            &format!("--port={port}"),
            &format!("{}/", src.display()),
            dest,
        ])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "rsync push to {dest} failed: {st}");
    t0.elapsed().as_secs_f64()
}

fn main() {
    let mb: usize = std::env::var("RSYNC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let files = (mb / FILE_MB).max(1);
    let bytes = (files * (FILE_MB << 20)) as f64;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    make_tree(&src, files);

    // Embedded receiver.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stage = work.path().join("stage");
    let cfg = ReceiverConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        stage.clone(),
        vec![ModuleSpec::prefix("document")],
    );
    let rx = rt
        .block_on(Receiver::start(cfg, CancellationToken::new()))
        .unwrap();
    let eport = rx.local_addr.port();

    // Stock daemon, configured like a Pika slave's (without auth, as 3.0.16).
    let dpath = work.path().join("daemon");
    std::fs::create_dir_all(dpath.join("data")).unwrap();
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let conf = format!(
        "{}use chroot = no\nlist = no\nstrict modes = no\npid file = {1}/rsync.pid\nlock file = {1}/rsync.lock\nlog file = {1}/rsyncd.log\n[document]\npath = {1}/data\nread only = no\n",
        if as_root { "uid = root\ngid = root\n" } else { "" },
        dpath.display()
    );
    std::fs::write(dpath.join("rsyncd.conf"), conf).unwrap();
    let dport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = Command::new(rsync())
        .args([
            "--daemon",
            "--no-detach",
            &format!("--config={}", dpath.join("rsyncd.conf").display()),
            "--address=127.0.0.1",
            &format!("--port={dport}"),
        ])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", dport)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A 3.2+ client negotiates xxh128 with both the stock daemon and the embedded receiver.
    // The third run pins the stock pair to MD5: what protocol-30 and pre-3.2 clients cost.
    let only_embedded = std::env::var("RSYNC_BENCH_ONLY").is_ok_and(|v| v == "embedded");
    let rounds: usize = std::env::var("RSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mbs = |t: f64| bytes / 1e6 / t;
    let (mut te, mut ts, mut tm) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let embedded = || {
            let e = push(
                &src,
                eport,
                &format!("127.0.0.1::document_bench/r{round}/"),
                &[],
            );
            let _ = std::fs::remove_dir_all(stage.join("document_bench").join(format!("r{round}")));
            e
        };
        // Alternate who goes first, so neither side always runs on a warmer machine.
        let e_first = round % 2 == 1;
        let mut e = if e_first { embedded() } else { f64::NAN };
        if !only_embedded {
            let s = push(&src, dport, &format!("127.0.0.1::document/r{round}/"), &[]);
            let _ = std::fs::remove_dir_all(dpath.join("data").join(format!("r{round}")));
            let m = push(
                &src,
                dport,
                &format!("127.0.0.1::document/m{round}/"),
                &["--checksum-choice=md5"],
            );
            let _ = std::fs::remove_dir_all(dpath.join("data").join(format!("m{round}")));
            ts.push(s);
            tm.push(m);
        }
        if !e_first {
            e = embedded();
        }
        te.push(e);
        println!(
            "round {round}: stock {:.0} MB/s, stock+md5 {:.0} MB/s, embedded {:.0} MB/s",
            ts.last().map_or(f64::NAN, |&t| mbs(t)),
            tm.last().map_or(f64::NAN, |&t| mbs(t)),
            mbs(e)
        );
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    rt.block_on(rx.stop()).unwrap();
    // Best round of each side (the usual benchmark convention), and the median as a check.
    let best = |v: &[f64]| mbs(v.iter().copied().fold(f64::MAX, f64::min));
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).map_or(f64::NAN, |&t| mbs(t))
    };
    let (me, ms, mm) = (best(&te), best(&ts), best(&tm));
    println!("rsync_receive: {files} x {FILE_MB} MiB ({mb} MiB), best of {rounds}: embedded {me:.0} MB/s, stock rsync --daemon {ms:.0} MB/s (ratio {:.2}); stock with --checksum-choice=md5 {mm:.0} MB/s (ratio {:.2})", me / ms, me / mm);
    let (de, ds) = (median(&te), median(&ts));
    println!(
        "rsync_receive: medians: embedded {de:.0} MB/s, stock {ds:.0} MB/s (ratio {:.2})",
        de / ds
    );
}
