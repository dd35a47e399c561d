//! End-to-end load harness. The old-master double takes N mixed writes (small `set`s, with every
//! data type mixed in); they flow through a relay **process** (`pika-relay run`) to K new-slave
//! doubles. Reported: relayed entries/s (first write → every slave caught up), end-to-end lag
//! p50/p99 of probe keys (master write → slave A holds it), and the relay's peak RSS. Baseline in
//! the same run: the same workload from a fresh master double into a bare upstream session that
//! only counts entries (no journal, no downstream, no slaves), and the ratio of the two.
//!
//! `cargo bench --bench relay_load` (LOAD_ENTRIES=1000000 LOAD_SLAVES=2 by default)

#[path = "support.rs"]
mod support;

use pika_relay::formats::BinlogPos;
use pika_relay::sim::old_master::{
    unix_now, EmbeddedRsyncDelivery, Flavor, MasterTimings, OldMaster, OldMasterConfig,
};
use pika_relay::sim::workload;
use pika_relay::upstream::{
    self, DirFullSyncReceiver, Durable, Timings, UpstreamConfig, UpstreamEvent,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

struct Run {
    secs: f64,
    lags_ms: Vec<f64>,
    peak_rss: u64,
}

async fn master(dir: &std::path::Path) -> OldMaster {
    let mut c = OldMasterConfig::new(Flavor::V30, dir.join("master-dumps"));
    c.timings = MasterTimings::fast();
    c.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
    OldMaster::start(c).await.unwrap()
}

/// Writes `n` entries in batches with a probe key after each batch; `seen(probe)` says whether the
/// probe arrived downstream. Returns the lags of the probes.
async fn drive(
    m: &OldMaster,
    n: u64,
    seen: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Vec<f64> {
    let seen = Arc::new(seen);
    let lags = Arc::new(Mutex::new(Vec::new()));
    let pending: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let done = Arc::new(AtomicU64::new(0));
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
                if empty && done.load(Ordering::SeqCst) == 1 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut written = 0u64;
    let mut round = 0;
    while written < n {
        for c in workload::small_sets(&format!("b{round}"), 2000) {
            m.write(&c).unwrap();
        }
        for c in workload::every_type(&format!("t{round}"))
            .into_iter()
            .filter(|c| c[0] != b"set" || c.len() < 3 || c[2].len() < 1000)
        {
            m.write(&c).unwrap();
        }
        written += 2030;
        let probe = format!("probe:{round}");
        m.write(&[b"set".as_ref(), probe.as_bytes(), b"1"]).unwrap();
        pending.lock().unwrap().push((probe, Instant::now()));
        round += 1;
        tokio::task::yield_now().await;
    }
    done.store(1, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(300), checker).await;
    let v = lags.lock().unwrap().clone();
    v
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
    let count = Arc::new(AtomicU64::new(0));
    let keys: Arc<Mutex<std::collections::HashSet<Vec<u8>>>> = Arc::default();
    {
        let (count, keys) = (count.clone(), keys.clone());
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let UpstreamEvent::Entry(e) = ev {
                    count.fetch_add(e.commands.len() as u64, Ordering::Relaxed);
                    for c in &e.commands {
                        if c.len() > 1 && c[1].starts_with(b"probe:") {
                            keys.lock().unwrap().insert(c[1].clone());
                        }
                    }
                }
            }
        });
    }
    support::wait_until(Duration::from_secs(30), || {
        h.status.borrow().binlog_connected
    })
    .await;
    let t0 = Instant::now();
    let k2 = keys.clone();
    let lags = drive(&m, n, move |p| k2.lock().unwrap().contains(p.as_bytes())).await;
    // The last probe is written after every other entry and arrives in order: once every probe
    // was seen, the consumer has the whole workload.
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        count.load(Ordering::Relaxed) >= n,
        "baseline consumer saw {} entries",
        count.load(Ordering::Relaxed)
    );
    let _ = h.shutdown().await;
    m.shutdown();
    Run {
        secs,
        lags_ms: lags,
        peak_rss: 0,
    }
}

async fn through_relay(n: u64, k: usize) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let m = master(tmp.path()).await;
    let port = free_base(&[1000, 2000, 3000]);
    let mut child = spawn_relay(
        &m.addr().to_string(),
        port,
        &tmp.path().join("relay"),
        &tmp.path().join("relay.log"),
    );
    let pid = child.id();
    let mut slaves = Vec::new();
    for i in 0..k {
        slaves.push(slave(port, &tmp.path().join(format!("slave{i}"))).await);
    }
    let ok = support::wait_until(Duration::from_secs(60), || {
        slaves
            .iter()
            .all(|s| s.view().state == pika_relay::sim::new_slave::DbState::Connected)
    })
    .await;
    assert!(
        ok,
        "slaves did not attach: see {}",
        tmp.path().join("relay.log").display()
    );
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
    let t0 = Instant::now();
    let a = Arc::new(slaves.remove(0));
    let a2 = a.clone();
    let lags = drive(&m, n, move |p| a2.has_key(p.as_bytes(), unix_now())).await;
    slaves.insert(0, Arc::try_unwrap(a).ok().expect("only one handle left"));
    let want = m.keyspace().lines(unix_now()).len();
    let caught = support::wait_until(Duration::from_secs(900), || {
        let p0 = slaves[0].view().producer;
        slaves.iter().all(|s| s.view().producer == p0) && slaves[0].lines(unix_now()).len() == want
    })
    .await;
    let secs = t0.elapsed().as_secs_f64();
    assert!(caught, "slaves did not catch up");
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
    let _ = child.kill();
    let _ = child.wait();
    for s in slaves {
        s.stop().await;
    }
    m.shutdown();
    Run {
        secs,
        lags_ms: lags,
        peak_rss: peak.load(Ordering::Relaxed),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_num("LOAD_ENTRIES", 1_000_000);
    let k = env_num("LOAD_SLAVES", 2) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut base = rt.block_on(baseline(n));
    let mut relay = rt.block_on(through_relay(n, k));
    let eps = |r: &Run| n as f64 / r.secs;
    println!("relay_load: {n} mixed writes, {k} slave doubles, relay in its own process");
    println!(
        "baseline  (master double -> bare upstream consumer): {:>9.0} entries/s, lag p50 {:.1} ms p99 {:.1} ms",
        eps(&base),
        percentile(&mut base.lags_ms, 0.5),
        percentile(&mut base.lags_ms, 0.99)
    );
    println!(
        "relay     (master double -> relay -> {k} slaves)    : {:>9.0} entries/s, lag p50 {:.1} ms p99 {:.1} ms, relay peak RSS {:.1} MiB",
        eps(&relay),
        percentile(&mut relay.lags_ms, 0.5),
        percentile(&mut relay.lags_ms, 0.99),
        relay.peak_rss as f64 / 1048576.0
    );
    println!(
        "ratio relay/baseline throughput: {:.2}",
        eps(&relay) / eps(&base)
    );
}
