//! End-to-end load harness. The old-master double takes N mixed writes (small `set`s, with every
//! data type mixed in); they flow through a relay **process** (`pika-relay run`) to K new-slave
//! doubles. For each run it reports:
//! - relayed entries/s (first write → every slave caught up) and end-to-end lag p50/p99 of probe
//!   keys (master write → slave A holds it);
//! - how far the journal trails the master double during the load (sampled every 10 ms through
//!   the relay's `INFO`: max and p99, in entries and in ms since the oldest unsynced write);
//! - the relay's CPU seconds per million entries (`/proc/<pid>/stat`, the relay alone, not the
//!   doubles) and its peak RSS.
//!
//! Runs (`LOAD_RUNS`, default `1,2,8,1:always,8:backlog`): `K` = K slaves attached before the
//! load, default journal settings; `K:always` = `sync = "always"`; `K:backlog` = K slaves that
//! attach after the whole load is journaled (a backlog of N entries, RSS while they catch up).
//! Baselines in the same run: the same workload into a bare upstream session that only counts
//! entries (no journal, no downstream), and a raw append + `fdatasync` of the journal's bytes on
//! the same disk (256 KiB per sync).
//!
//! A run that measured nothing (probes never seen, slaves not caught up, a baseline that never
//! connected, no journal samples) panics: the bench fails instead of printing numbers.
//!
//! `cargo bench --bench relay_load` (LOAD_ENTRIES=1000000 LOAD_RUNS=1,2,8,1:always,8:backlog)

#[path = "support.rs"]
mod support;

use pika_relay::formats::BinlogPos;
use pika_relay::sim::new_slave::DbState;
use pika_relay::sim::old_master::{
    unix_now, EmbeddedRsyncDelivery, Flavor, OldMaster, OldMasterConfig,
};
use pika_relay::sim::workload;
use pika_relay::upstream::{
    self, DirFullSyncReceiver, Durable, Timings, UpstreamConfig, UpstreamEvent,
};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// The master's binlog position after `count` writes, at `t`.
#[derive(Clone, Copy)]
struct Mark {
    pos: BinlogPos,
    count: u64,
    t: Instant,
}

type Marks = Arc<Mutex<Vec<Mark>>>;

/// One configuration of the relay runs.
#[derive(Clone, Copy, Debug)]
struct Spec {
    slaves: usize,
    always: bool,
    backlog: bool,
}

impl Spec {
    fn parse(s: &str) -> Spec {
        let (k, mode) = s.split_once(':').unwrap_or((s, ""));
        let slaves = k
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("LOAD_RUNS: bad slave count in {s:?}"));
        match mode {
            "" => Spec {
                slaves,
                always: false,
                backlog: false,
            },
            "always" => Spec {
                slaves,
                always: true,
                backlog: false,
            },
            "backlog" => Spec {
                slaves,
                always: false,
                backlog: true,
            },
            m => panic!("LOAD_RUNS: unknown mode {m:?} (always | backlog)"),
        }
    }

    fn label(&self) -> String {
        let mode = if self.always {
            "sync=always"
        } else if self.backlog {
            "backlog"
        } else {
            "default"
        };
        format!("{} slave(s), {mode}", self.slaves)
    }
}

struct Run {
    spec: Spec,
    written: u64,
    secs: f64,
    lags_ms: Vec<f64>,
    /// Journal behind the master, per sample during the load.
    jlag: Vec<Lag>,
    cpu_secs: f64,
    peak_rss: u64,
    journal_bytes: u64,
}

async fn master(dir: &std::path::Path) -> OldMaster {
    let mut c = OldMasterConfig::new(Flavor::V30, dir.join("master-dumps"));
    c.timings = master_timings();
    c.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
    OldMaster::start(c).await.unwrap()
}

/// What [`drive`] did.
struct Driven {
    written: u64,
    lags_ms: Vec<f64>,
}

/// Writes at least `n` entries in batches with a probe key after each batch; `seen(probe)` says
/// whether the probe arrived downstream. Records a [`Mark`] every 64 writes. Panics when the
/// probes are not all seen within 5 minutes.
async fn drive(
    m: &OldMaster,
    n: u64,
    marks: &Marks,
    seen: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Driven {
    let seen = Arc::new(seen);
    let lags = Arc::new(Mutex::new(Vec::new()));
    let pending: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let checker = {
        let (seen, lags, pending, done) =
            (seen.clone(), lags.clone(), pending.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                let empty = {
                    let mut p = pending.lock().unwrap();
                    p.retain(|(k, t)| {
                        if seen(k) {
                            lags.lock()
                                .unwrap()
                                .push(t.elapsed().as_secs_f64() * 1000.0);
                            false
                        } else {
                            true
                        }
                    });
                    p.is_empty()
                };
                if empty && done.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let written = std::cell::Cell::new(0u64);
    let mut round = 0;
    let put = |c: &[Vec<u8>]| {
        m.write(c).unwrap();
        written.set(written.get() + 1);
        if written.get() % 64 == 0 {
            marks.lock().unwrap().push(Mark {
                pos: m.producer(),
                count: written.get(),
                t: Instant::now(),
            });
        }
    };
    let mut probes = 0usize;
    while written.get() < n {
        for c in workload::small_sets(&format!("b{round}"), 2000) {
            put(&c);
        }
        for c in workload::every_type(&format!("t{round}"))
            .into_iter()
            .filter(|c| c[0] != b"set" || c.len() < 3 || c[2].len() < 1000)
        {
            put(&c);
        }
        let probe = format!("probe:{round}");
        put(&[b"set".to_vec(), probe.clone().into_bytes(), b"1".to_vec()]);
        pending.lock().unwrap().push((probe, Instant::now()));
        probes += 1;
        round += 1;
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    let finished = tokio::time::timeout(Duration::from_secs(300), checker).await;
    let left = pending.lock().unwrap().len();
    assert!(
        matches!(finished, Ok(Ok(()))) && left == 0,
        "measured nothing: {left} of {probes} probe keys were not seen downstream within 300 s"
    );
    let v = lags.lock().unwrap().clone();
    assert_eq!(v.len(), probes, "every probe has a lag");
    Driven {
        written: written.get(),
        lags_ms: v,
    }
}

async fn baseline(n: u64) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let port = free_base(&[1000, 2000, 3000]);
    let mut cfg = UpstreamConfig::new(m.addr(), "127.0.0.1", port, tmp.path().join("up"));
    cfg.binlog_listen = Some(format!("127.0.0.1:{}", port + 1000).parse().unwrap());
    cfg.timings = Timings::fast();
    let (_tx, rx) = tokio::sync::watch::channel(Durable {
        epoch: 0,
        pos: BinlogPos::default(),
    });
    let mut h = upstream::start(
        cfg,
        rx,
        Arc::new(DirFullSyncReceiver::new(tmp.path().join("staging"))),
    )
    .await
    .unwrap();
    let mut events = h.take_events();
    let last_end = Arc::new(Mutex::new(BinlogPos::default()));
    let keys: Arc<Mutex<std::collections::HashSet<Vec<u8>>>> = Arc::default();
    {
        let (last_end, keys) = (last_end.clone(), keys.clone());
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let UpstreamEvent::Entry(e) = ev {
                    *last_end.lock().unwrap() = e.end;
                    for c in &e.commands {
                        if c.len() > 1 && c[1].starts_with(b"probe:") {
                            keys.lock().unwrap().insert(c[1].clone());
                        }
                    }
                }
            }
        });
    }
    let up = support::wait_until(Duration::from_secs(30), || {
        h.status.borrow().binlog_connected
    })
    .await;
    assert!(
        up,
        "measured nothing: the bare upstream baseline never got a binlog connection in 30 s"
    );
    let marks = Marks::default();
    let stop = Arc::new(AtomicBool::new(false));
    let le = last_end.clone();
    let sampler = sample_lag(marks.clone(), stop.clone(), move || {
        Some((*le.lock().unwrap(), None))
    });
    let t0 = Instant::now();
    let k2 = keys.clone();
    let d = drive(&m, n, &marks, move |p| {
        k2.lock().unwrap().contains(p.as_bytes())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let jlag = sampler.join().unwrap();
    // The last probe is written after every other entry and arrives in order: once every probe
    // was seen, the consumer has the whole workload.
    let secs = t0.elapsed().as_secs_f64();
    let (got, want) = (*last_end.lock().unwrap(), m.producer());
    assert_eq!(
        got, want,
        "baseline consumer stopped at {got}, the master's binlog ends at {want}"
    );
    let _ = h.shutdown().await;
    m.shutdown();
    Run {
        spec: Spec {
            slaves: 0,
            always: false,
            backlog: false,
        },
        written: d.written,
        secs,
        lags_ms: d.lags_ms,
        jlag,
        cpu_secs: f64::NAN,
        peak_rss: 0,
        journal_bytes: 0,
    }
}

/// One sample of the journal's position during the load.
#[derive(Clone, Copy)]
struct Lag {
    /// Entries written to the master and not yet synced in the journal, and the age of the
    /// oldest of them.
    entries: f64,
    ms: f64,
    /// The part of it after the relay received them: entries received and not yet synced, and
    /// for how long the oldest was seen received (10 ms sampling). NaN when the relay does not
    /// report its received position.
    recv_entries: f64,
    recv_ms: f64,
}

/// The relay's (synced, received) upstream positions through `INFO replication`.
fn relay_positions(
    admin: std::net::SocketAddr,
) -> impl FnMut() -> Option<(BinlogPos, Option<BinlogPos>)> + Send + 'static {
    let mut conn = std::net::TcpStream::connect(admin).ok();
    move || {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => conn.insert(std::net::TcpStream::connect(admin).ok()?),
        };
        let Some(text) = info(c, "replication") else {
            conn = None;
            return None;
        };
        Some((info_upstream_pos(&text)?, info_received_pos(&text)))
    }
}

/// Samples `positions()` (the synced and maybe the received upstream position) every 10 ms
/// until `stop`, and turns it into a [`Lag`] using the marks.
fn sample_lag(
    marks: Marks,
    stop: Arc<AtomicBool>,
    mut positions: impl FnMut() -> Option<(BinlogPos, Option<BinlogPos>)> + Send + 'static,
) -> std::thread::JoinHandle<Vec<Lag>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        // (time first seen, received position) for received positions not yet synced.
        let mut seen: std::collections::VecDeque<(Instant, BinlogPos)> = Default::default();
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            let Some((synced, received)) = positions() else {
                continue;
            };
            let now = Instant::now();
            let m = marks.lock().unwrap();
            let Some(last) = m.last() else { continue };
            // Entries up to a position, from the marks (64-write granularity).
            let count_at = |p: BinlogPos| {
                let i = m.partition_point(|k| k.pos <= p);
                if i == 0 {
                    0
                } else {
                    m[i - 1].count
                }
            };
            let (recv_entries, recv_ms) = match received {
                Some(r) => {
                    let r = r.max(synced);
                    if seen.back().is_none_or(|&(_, p)| p < r) {
                        seen.push_back((now, r));
                    }
                    while seen.front().is_some_and(|&(_, p)| p <= synced) {
                        seen.pop_front();
                    }
                    let ms = seen
                        .front()
                        .map_or(0.0, |&(t, _)| (now - t).as_secs_f64() * 1000.0);
                    ((count_at(r) - count_at(synced)) as f64, ms)
                }
                None => (f64::NAN, f64::NAN),
            };
            // The first mark past the synced position: the oldest write not yet synced was
            // written by then.
            let i = m.partition_point(|k| k.pos <= synced);
            let (entries, ms) = if i == m.len() {
                (0.0, 0.0)
            } else {
                let ms = now.saturating_duration_since(m[i].t).as_secs_f64() * 1000.0;
                ((last.count - count_at(synced)) as f64, ms)
            };
            out.push(Lag {
                entries,
                ms,
                recv_entries,
                recv_ms,
            });
        }
        out
    })
}

fn journal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("write2file"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn through_relay(n: u64, spec: Spec) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let port = free_base(&[1000, 2000, 3000]);
    let log = tmp.path().join("relay.log");
    let journal_toml = if spec.always {
        "sync = \"always\"\n"
    } else {
        ""
    };
    let mut child = spawn_relay_with(
        &m.addr().to_string(),
        port,
        &tmp.path().join("relay"),
        &log,
        journal_toml,
    );
    let pid = child.id();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut slaves = Vec::new();
    let attach = |slaves: &Vec<pika_relay::sim::new_slave::NewSlave>| {
        slaves.iter().all(|s| s.view().state == DbState::Connected)
    };
    if spec.backlog {
        let linked = support::wait_until(Duration::from_secs(60), || {
            std::net::TcpStream::connect(admin)
                .ok()
                .and_then(|mut c| info(&mut c, "replication"))
                .is_some_and(|t| t.contains("master_link_status:up"))
        })
        .await;
        assert!(
            linked,
            "relay never linked to the master: see {}",
            log.display()
        );
    } else {
        for i in 0..spec.slaves {
            slaves.push(slave(port, &tmp.path().join(format!("slave{i}"))).await);
        }
        let ok = support::wait_until(Duration::from_secs(60), || attach(&slaves)).await;
        assert!(ok, "slaves did not attach: see {}", log.display());
    }
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let marks = Marks::default();
    let stop = Arc::new(AtomicBool::new(false));
    let jsampler = sample_lag(marks.clone(), stop.clone(), relay_positions(admin));
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let d = if spec.backlog {
        // A probe counts as seen once the journal has synced past the last write so far.
        let conn = Mutex::new(std::net::TcpStream::connect(admin).unwrap());
        let m2 = marks.clone();
        drive(&m, n, &marks, move |_| {
            let Some(p) = info(&mut conn.lock().unwrap(), "replication")
                .as_deref()
                .and_then(info_upstream_pos)
            else {
                return false;
            };
            m2.lock().unwrap().last().is_none_or(|l| p >= l.pos)
        })
        .await
    } else {
        let a = Arc::new(slaves.remove(0));
        let a2 = a.clone();
        let d = drive(&m, n, &marks, move |p| a2.has_key(p.as_bytes(), unix_now())).await;
        slaves.insert(0, Arc::try_unwrap(a).ok().expect("only one handle left"));
        d
    };
    stop.store(true, Ordering::SeqCst);
    let jlag = jsampler.join().unwrap();
    assert!(
        !jlag.is_empty(),
        "measured nothing: no journal position sample during the load (INFO on {admin} failed?)"
    );
    let (cpu_start, t_start) = if spec.backlog {
        // The backlog run measures the catch-up alone: 8 slaves from J_e to the end.
        for i in 0..spec.slaves {
            slaves.push(slave(port, &tmp.path().join(format!("slave{i}"))).await);
        }
        (cpu_secs(pid), Instant::now())
    } else {
        (cpu0, t0)
    };
    let want = m.keyspace().lines(unix_now());
    let caught = support::wait_until(Duration::from_secs(900), || {
        let p0 = slaves[0].view().producer;
        attach(&slaves)
            && slaves.iter().all(|s| s.view().producer == p0)
            && slaves[0].lines(unix_now()).len() == want.len()
    })
    .await;
    let secs = t_start.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu_start;
    assert!(caught, "slaves did not catch up: see {}", log.display());
    let now = unix_now();
    let master_lines = m.keyspace().lines(now);
    for (i, s) in slaves.iter().enumerate() {
        assert_eq!(
            s.lines(now),
            master_lines,
            "slave {i} differs from the master"
        );
    }
    sampler.abort();
    let jb = journal_bytes(&tmp.path().join("relay").join("journal"));
    let _ = child.kill();
    let _ = child.wait();
    for s in slaves {
        s.stop().await;
    }
    m.shutdown();
    Run {
        spec,
        written: d.written,
        secs,
        lags_ms: d.lags_ms,
        jlag,
        cpu_secs: cpu,
        peak_rss: peak.load(Ordering::Relaxed),
        journal_bytes: jb,
    }
}

/// Raw append + `fdatasync` of `bytes` bytes in 256 KiB chunks in a fresh file on the same disk
/// as the relays' data: (seconds, fdatasync latencies in ms).
fn raw_fsync(bytes: u64) -> (f64, Vec<f64>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(tmp.path().join("raw")).unwrap();
    let chunk = vec![0x5au8; 256 * 1024];
    let mut lat = Vec::new();
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..k]).unwrap();
        let t = Instant::now();
        f.sync_data().unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        left -= k as u64;
    }
    (t0.elapsed().as_secs_f64(), lat)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_num("LOAD_ENTRIES", 1_000_000);
    let specs: Vec<Spec> = std::env::var("LOAD_RUNS")
        .unwrap_or_else(|_| "1,2,8,1:always,8:backlog".into())
        .split(',')
        .map(Spec::parse)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut base = rt.block_on(baseline(n));
    let mut runs: Vec<Run> = specs
        .iter()
        .map(|s| rt.block_on(through_relay(n, *s)))
        .collect();
    let eps = |r: &Run| r.written as f64 / r.secs;
    println!("relay_load: {n} mixed writes per run, relay in its own process, 2 cores shared with the doubles");
    let mut be: Vec<f64> = base.jlag.iter().map(|x| x.entries).collect();
    let mut bm: Vec<f64> = base.jlag.iter().map(|x| x.ms).collect();
    println!(
        "baseline (master double -> bare upstream consumer): {:>8.0} entries/s, probe lag p50 {:.1} ms p99 {:.1} ms; consumer behind master: p99 {:.0} entries / {:.1} ms, max {:.0} entries / {:.1} ms",
        eps(&base),
        percentile(&mut base.lags_ms, 0.5),
        percentile(&mut base.lags_ms, 0.99),
        percentile(&mut be, 0.99),
        percentile(&mut bm, 0.99),
        percentile(&mut be, 1.0),
        percentile(&mut bm, 1.0)
    );
    let jbytes = runs.iter().map(|r| r.journal_bytes).max().unwrap_or(0);
    if jbytes > 0 {
        let (secs, mut lat) = raw_fsync(jbytes);
        println!(
            "raw append+fdatasync of the journal's {:.1} MiB, 256 KiB per sync: {:.0} MiB/s ({:>8.0} entries/s at the journal's bytes/entry), fdatasync p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            jbytes as f64 / 1048576.0,
            jbytes as f64 / 1048576.0 / secs,
            base.written as f64 / secs,
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99),
            percentile(&mut lat, 1.0)
        );
    }
    let one = runs
        .iter()
        .find(|r| r.spec.slaves == 1 && !r.spec.always && !r.spec.backlog)
        .map(|r| (eps(r), r.cpu_secs / r.written as f64 * 1e6));
    for r in runs.iter_mut() {
        let mut je: Vec<f64> = r.jlag.iter().map(|x| x.entries).collect();
        let mut jm: Vec<f64> = r.jlag.iter().map(|x| x.ms).collect();
        let mut re: Vec<f64> = r.jlag.iter().map(|x| x.recv_entries).collect();
        let mut rm: Vec<f64> = r.jlag.iter().map(|x| x.recv_ms).collect();
        let cpu_m = r.cpu_secs / r.written as f64 * 1e6;
        println!(
            "relay [{}]: {:>8.0} entries/s ({:.2}x baseline), probe lag p50 {:.1} ms p99 {:.1} ms; journal behind master: p99 {:.0} entries / {:.1} ms, max {:.0} entries / {:.1} ms ({} samples); relay CPU {:.2} s per M entries; peak RSS {:.1} MiB",
            r.spec.label(),
            eps(r),
            eps(r) / eps(&base),
            percentile(&mut r.lags_ms, 0.5),
            percentile(&mut r.lags_ms, 0.99),
            percentile(&mut je, 0.99),
            percentile(&mut jm, 0.99),
            percentile(&mut je, 1.0),
            percentile(&mut jm, 1.0),
            r.jlag.len(),
            cpu_m,
            r.peak_rss as f64 / 1048576.0
        );
        println!(
            "    of which after the relay received them (receive -> synced): p99 {:.0} entries / {:.1} ms, max {:.0} entries / {:.1} ms",
            percentile(&mut re, 0.99),
            percentile(&mut rm, 0.99),
            percentile(&mut re, 1.0),
            percentile(&mut rm, 1.0)
        );
        if let (Some((e1, c1)), false) = (one, r.spec.backlog || r.spec.always) {
            if r.spec.slaves > 1 {
                println!(
                    "    vs 1 slave: rate {:.2}x, CPU per M entries per extra slave {:.3} s",
                    eps(r) / e1,
                    (cpu_m - c1) / (r.spec.slaves - 1) as f64
                );
            }
        }
    }
}
