//! `pika-relay demo`: a whole migration in one process on loopback ports: an old Pika 3.0 master
//! double with a workload of every data type, a relay, and two new-slave doubles (one attaching
//! at once and full-syncing, one joining later), writes streaming for a few seconds, then a check
//! that both slaves hold exactly the master's data. Everything the relay does here is what it
//! does in production; only the peers are simulations (and their rsync runs embedded, so the
//! demo needs no rsync binary).

use crate::config::Config;
use crate::relay::{Relay, Tuning};
use crate::sim::new_slave::{DbState, NewSlave, NewSlaveConfig, RsyncDaemonKind, SlaveVersion};
use crate::sim::old_master::{
    unix_now, EmbeddedRsyncDelivery, Flavor, MasterTimings, OldMaster, OldMasterConfig,
};
use crate::sim::workload;
use crate::upstream::Timings;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Seconds of streaming writes.
    pub seconds: u64,
    /// Keys written before the relay starts (they reach the slaves by full sync).
    pub initial_keys: usize,
    /// Streaming writes per second (approximate).
    pub rate: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seconds: 4,
            initial_keys: 20_000,
            rate: 5_000,
        }
    }
}

/// What the demo measured.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Entries the relay received from the old master by binlog.
    pub entries_relayed: u64,
    /// Streaming writes per second achieved (master side).
    pub throughput: f64,
    /// End-to-end lag master write → slave visible, p50 and p99, milliseconds.
    pub lag_p50_ms: f64,
    /// p99.
    pub lag_p99_ms: f64,
    /// Bytes of the dump the relay received and served.
    pub full_sync_bytes: u64,
    /// Time from relay start to the upstream full sync done.
    pub upstream_full_sync: Duration,
    /// Time from the first slave's attach to its full sync loaded.
    pub downstream_full_sync: Duration,
    /// Keys on the master at the end.
    pub keys: usize,
    /// Whether both slaves hold exactly the master's data.
    pub data_matches: bool,
    /// Human-readable differences, when they don't.
    pub problems: Vec<String>,
}

fn free_base(shifts: &[u16]) -> std::io::Result<u16> {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if p > 60000 {
            continue;
        }
        if shifts
            .iter()
            .all(|s| TcpListener::bind(("127.0.0.1", p + s)).is_ok())
        {
            return Ok(p);
        }
    }
    Err(std::io::Error::other("no free loopback ports"))
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs the demo; `say` receives progress lines.
pub async fn run(opts: DemoOptions, say: impl Fn(&str)) -> Result<DemoReport, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut rep = DemoReport::default();

    let mut mcfg = OldMasterConfig::new(Flavor::V30, tmp.path().join("old-master-dumps"));
    mcfg.timings = MasterTimings::fast();
    mcfg.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
    let master = OldMaster::start(mcfg)
        .await
        .map_err(|e| format!("old master: {e}"))?;
    for c in workload::every_type("before") {
        master.write(&c).map_err(|e| format!("workload: {e}"))?;
    }
    for c in workload::small_sets("init", opts.initial_keys) {
        master.write(&c).map_err(|e| format!("workload: {e}"))?;
    }
    say(&format!(
        "old Pika 3.0 master (double) on {} with {} keys, binlog at {}",
        master.addr(),
        master.keyspace().data.len(),
        master.producer()
    ));

    let port = free_base(&[1000, 2000, 3000]).map_err(|e| e.to_string())?;
    let mut cfg = Config::default();
    cfg.upstream.master = master.addr().to_string();
    cfg.relay.port = port;
    cfg.relay.bind = "127.0.0.1".parse().unwrap();
    cfg.relay.advertise_ip = "127.0.0.1".into();
    cfg.relay.data_dir = tmp.path().join("relay");
    cfg.metrics.listen = String::new();
    let tuning = Tuning {
        upstream_timings: Some(Timings::fast()),
        purge_interval: None,
    };
    let started = Instant::now();
    let relay = Relay::start_tuned(cfg, tuning)
        .await
        .map_err(|e| e.to_string())?;
    say(&format!(
        "relay on 127.0.0.1:{port} (+1000 binlog in, +2000 new slaves, +3000 rsync in)"
    ));

    let new_slave = |name: &str, version: SlaveVersion| -> Result<NewSlaveConfig, String> {
        let s = free_base(&[1000]).map_err(|e| e.to_string())?;
        let mut c = NewSlaveConfig::new(
            format!("127.0.0.1:{port}").parse().unwrap(),
            s,
            tmp.path().join(name),
        );
        c.version = version;
        c.rsync = RsyncDaemonKind::Embedded;
        c.reconnect_delay = Duration::from_millis(300);
        c.meta_sync_interval = Duration::from_millis(300);
        Ok(c)
    };
    let a_attach = Instant::now();
    let a = NewSlave::start(new_slave("slave-a", SlaveVersion::V32)?)
        .await
        .map_err(|e| e.to_string())?;
    say("new Pika 3.2 slave A (double): slaveof 127.0.0.1 <relay port>");

    if !wait_until(Duration::from_secs(60), || relay.status().epoch >= 1).await {
        return Err("the relay did not complete its full sync from the old master".into());
    }
    rep.upstream_full_sync = started.elapsed();
    rep.full_sync_bytes = dir_bytes(&tmp.path().join("relay/dumps/epoch-1"));
    say(&format!(
        "relay full-synced from the old master: {} bytes in {:.2}s",
        rep.full_sync_bytes,
        rep.upstream_full_sync.as_secs_f64()
    ));
    if !wait_until(Duration::from_secs(60), || a.view().full_syncs >= 1).await {
        return Err(format!(
            "slave A did not load the relay's dump: {:?}",
            a.view()
        ));
    }
    rep.downstream_full_sync = a_attach.elapsed();
    say(&format!(
        "slave A loaded the relay's dump in {:.2}s and streams",
        rep.downstream_full_sync.as_secs_f64()
    ));

    // Streaming phase; slave B joins half-way.
    let mut lags = Vec::new();
    let t0 = Instant::now();
    let mut written = 0u64;
    let mut b: Option<NewSlave> = None;
    let mut round = 0;
    while t0.elapsed() < Duration::from_secs(opts.seconds) {
        let tick = Instant::now();
        let batch = (opts.rate / 10).max(1);
        for c in workload::small_sets(&format!("stream{round}"), batch as usize) {
            master.write(&c).map_err(|e| e.to_string())?;
        }
        for c in workload::every_type(&format!("r{round}")) {
            master.write(&c).map_err(|e| e.to_string())?;
        }
        written += batch + 31;
        let probe = format!("probe:{round}");
        master
            .write(&[b"set".as_ref(), probe.as_bytes(), b"1"])
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        if wait_until(Duration::from_secs(10), || {
            a.has_key(probe.as_bytes(), unix_now())
        })
        .await
        {
            lags.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        if b.is_none() && t0.elapsed() >= Duration::from_secs(opts.seconds / 2) {
            b = Some(
                NewSlave::start(new_slave("slave-b", SlaveVersion::V33)?)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            say("new Pika 3.3 slave B (double) joins while writes stream");
        }
        round += 1;
        if let Some(rest) = Duration::from_millis(100).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    rep.throughput = written as f64 / t0.elapsed().as_secs_f64();
    rep.lag_p50_ms = percentile(&mut lags, 0.50);
    rep.lag_p99_ms = percentile(&mut lags, 0.99);
    let b = match b {
        Some(b) => b,
        None => NewSlave::start(new_slave("slave-b", SlaveVersion::V33)?)
            .await
            .map_err(|e| e.to_string())?,
    };

    // Converge and compare.
    let now = unix_now();
    let want = master.keyspace().lines(now);
    rep.keys = want.len();
    for (name, s) in [("A", &a), ("B", &b)] {
        let ok = wait_until(Duration::from_secs(60), || {
            let v = s.view();
            v.state == DbState::Connected && v.producer == relay.status().journal_end
        })
        .await;
        let got = s.lines(now);
        if !ok || got != want {
            let missing = want.iter().filter(|l| !got.contains(l)).count();
            let extra = got.iter().filter(|l| !want.contains(l)).count();
            rep.problems.push(format!(
                "slave {name}: {missing} keys missing or different, {extra} unexpected ({:?})",
                s.view().state
            ));
        }
    }
    rep.data_matches = rep.problems.is_empty();
    rep.entries_relayed = relay.status().entries_in;
    relay.shutdown().await.map_err(|e| e.to_string())?;
    a.stop().await;
    b.stop().await;
    master.shutdown();
    Ok(rep)
}
