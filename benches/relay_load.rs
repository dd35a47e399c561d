//! End-to-end load harness, every party in its own process: an old-master double
//! (`pika-relay sim old-master --flavour 3.0`) takes N pipelined mixed writes (small `set`s, every
//! data type mixed in) from a driver thread; they flow through a relay process (`pika-relay run`)
//! to K new-slave doubles (`pika-relay sim new-slave --version 3.2`). So the doubles no longer
//! share the bench's runtime; they still share the machine's cores with the relay (the load
//! average is printed).
//!
//! Slaves are either **ack-only** (`--ack-only`: they decode the BinlogSync frames and ack the
//! offsets, applying nothing, so they are not the bottleneck and the runs measure the relay's
//! fan-out) or **apply** slaves (a faithful 3.2 slave double: re-encodes every item into its own
//! binlog and applies it; checked against the master's data by digest at the end). Every output
//! line says which.
//!
//! For each run it reports:
//! - relayed entries/s (first write → every slave acked the journal's end);
//! - how far the journal trails the master during the load: the driver samples the master's own
//!   binlog position (`INFO log`) after every pipeline batch of 128 writes (timestamped marks),
//!   a sampler reads the relay's synced upstream position (`INFO replication`) every 10 ms; lag
//!   = writes the master took that the journal has not synced (entries) and the age of the
//!   oldest of them (ms); with the part after the relay received them (receive → synced);
//! - the relay's CPU seconds per million entries (`/proc/<pid>/stat`, the relay alone) and its
//!   peak RSS.
//!
//! The driver paces the writes at `LOAD_RATE` entries/s (default 50 000; 0 = as fast as the
//! master takes them): unpaced, the master double's own sender falls seconds behind its writes on
//! the 2-core machine, and any consumer, the bare baseline included, trails the master by that.
//!
//! Runs (`LOAD_RUNS`, default `1,2,8,1:always,1:apply,8:backlog`): `K` = K ack-only slaves,
//! default journal settings; `K:apply` = K apply slaves; `K:always` = K ack-only slaves with
//! `sync = "always"`; `K:backlog` = a journal of `LOAD_BACKLOG_GB` GB (default 10) written with
//! the journal writer before the relay starts, then K ack-only slaves attach at its start and
//! read it for `LOAD_BACKLOG_SECS` s (default 30) while the relay's RSS is sampled.
//! Baselines in the same run: the same workload into a bare upstream consumer (no journal, no
//! downstream), and a raw append + `fdatasync` of the journal's bytes on the same disk.
//!
//! A run that measured nothing (slaves never caught up, data differs, no journal samples, a
//! backlog nobody read) panics: the bench fails instead of printing numbers. The goals of issue
//! 15 are printed as explicit `GOAL ... met / NOT met` lines.
//!
//! Each run also prints the journal's commits over the run (count, p50/p99, longest, average
//! `fdatasync` of data and of meta) from the relay's `INFO log`, to tell the disk's share of the
//! lag; `LOAD_PREALLOC=<bytes>` sets `[journal] preallocate_bytes` (0 = off).
//!
//! `cargo bench --bench relay_load` (LOAD_ENTRIES=1000000 LOAD_RATE=50000
//! LOAD_RUNS=1,2,8,1:always,1:apply,8:backlog LOAD_BACKLOG_GB=10 LOAD_BACKLOG_SECS=30)

#[path = "support.rs"]
mod support;

use pika_relay::formats::resp::{self, Reply};
use pika_relay::formats::BinlogPos;
use pika_relay::journal::{JournalConfig, JournalWriter, RetentionConfig};
use pika_relay::pipeline::NewEntry;
use pika_relay::sim::workload;
use pika_relay::upstream::{
    self, DirFullSyncReceiver, Durable, Timings, UpstreamConfig, UpstreamEvent,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Writes per pipeline batch (one master position sample after each).
const PIPE: usize = 128;

/// Default `LOAD_RATE`: below what the master double's own binlog sender sustains on the 2-core
/// machine beside the relay and the slaves (unpaced, the sender falls seconds behind the
/// master's writes, and a bare consumer trails as far as the relay: the baseline line shows it).
const DEFAULT_RATE: u64 = 50_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Default,
    Always,
    Apply,
    Backlog,
}

/// One configuration of the relay runs.
#[derive(Clone, Copy, Debug)]
struct Spec {
    slaves: usize,
    mode: Mode,
}

impl Spec {
    fn parse(s: &str) -> Spec {
        let (k, mode) = s.split_once(':').unwrap_or((s, ""));
        let slaves = k
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("LOAD_RUNS: bad slave count in {s:?}"));
        let mode = match mode {
            "" => Mode::Default,
            "always" => Mode::Always,
            "apply" => Mode::Apply,
            "backlog" => Mode::Backlog,
            m => panic!("LOAD_RUNS: unknown mode {m:?} (always | apply | backlog)"),
        };
        assert!(slaves >= 1, "LOAD_RUNS: {s:?}: at least one slave");
        Spec { slaves, mode }
    }

    fn label(&self) -> String {
        let (kind, sync) = match self.mode {
            Mode::Default => ("ack-only", "default sync"),
            Mode::Always => ("ack-only", "sync=always"),
            Mode::Apply => ("apply", "default sync"),
            Mode::Backlog => ("ack-only", "backlog"),
        };
        format!("{} {kind} slave(s), {sync}", self.slaves)
    }
}

/// A child process, killed and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sim(args: &[&str], dir: &Path, log: &Path) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .arg("sim")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn pika-relay sim");
    Proc(child)
}

/// `pika-relay sim old-master --flavour 3.0` on `port` (and `port`+2000).
fn spawn_master(dir: &Path, port: u16) -> Proc {
    let p = port.to_string();
    let m = sim(
        &[
            "old-master",
            "--flavour",
            "3.0",
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--advertise-ip",
            "127.0.0.1",
        ],
        &dir.join("master"),
        &dir.join("master.log"),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = (0..3000).any(|_| {
        if Client::connect(addr).is_some_and(|mut c| c.call(&[b"ping"]).is_ok()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
        false
    });
    assert!(
        up,
        "measured nothing: the master double never answered PING on {addr}"
    );
    m
}

/// `pika-relay sim new-slave --version 3.2` of the relay on `relay_port`.
fn spawn_slave(relay_port: u16, dir: &Path, i: usize, ack_only: bool) -> (Proc, SocketAddr) {
    let port = free_base(&[1000]);
    let (p, of) = (port.to_string(), format!("127.0.0.1:{relay_port}"));
    let mut args = vec![
        "new-slave",
        "--version",
        "3.2",
        "--port",
        &p,
        "--slaveof",
        &of,
        "--bind",
        "127.0.0.1",
        "--reconnect-ms",
        "300",
    ];
    if ack_only {
        args.push("--ack-only");
    }
    let proc = sim(
        &args,
        &dir.join(format!("slave{i}")),
        &dir.join(format!("slave{i}.log")),
    );
    (proc, format!("127.0.0.1:{port}").parse().unwrap())
}

/// A blocking RESP client.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    at: usize,
}

impl Client {
    fn connect(addr: SocketAddr) -> Option<Client> {
        let s = TcpStream::connect(addr).ok()?;
        s.set_nodelay(true).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        Some(Client {
            s,
            buf: Vec::new(),
            at: 0,
        })
    }

    fn send(&mut self, cmds: &[workload::Command]) -> std::io::Result<()> {
        let mut out = Vec::new();
        for c in cmds {
            resp::encode_argv_into(c, &mut out);
        }
        self.s.write_all(&out)
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        loop {
            if let Some((r, used)) = resp::parse_reply(&self.buf[self.at..])
                .map_err(|e| std::io::Error::other(e.to_string()))?
            {
                self.at += used;
                if self.at == self.buf.len() {
                    self.buf.clear();
                    self.at = 0;
                }
                return Ok(r);
            }
            if self.at > 0 {
                self.buf.drain(..self.at);
                self.at = 0;
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn call(&mut self, argv: &[&[u8]]) -> std::io::Result<Reply> {
        self.send(&[argv.iter().map(|a| a.to_vec()).collect()])?;
        self.read()
    }

    /// `INFO <section>` as text.
    fn info(&mut self, section: &str) -> Option<String> {
        match self.call(&[b"info", section.as_bytes()]).ok()? {
            Reply::Bulk(Some(b)) => String::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// `key<sep>f o` (or `f:o`) in an INFO text.
fn info_pos(text: &str, key: &str) -> Option<BinlogPos> {
    let v = text.lines().find_map(|l| l.strip_prefix(key))?;
    let v = v.split(',').next()?.trim();
    let (f, o) = v.split_once(' ').or_else(|| v.split_once(':'))?;
    Some(BinlogPos::new(f.parse().ok()?, o.parse().ok()?))
}

/// The master double's binlog position.
fn master_pos(c: &mut Client) -> BinlogPos {
    let t = c.info("log").expect("INFO log on the master double");
    info_pos(&t, "binlog_offset:").expect("binlog_offset in the master's INFO log")
}

/// What [`drive`] did.
struct Driven {
    written: u64,
    /// The master's binlog end after the last write.
    end: BinlogPos,
    t0: Instant,
}

/// Writes at least `n` mixed entries to the master in pipeline batches of [`PIPE`], sampling the
/// master's binlog position after each batch into `marks`; at most `rate` entries/s (0: as fast
/// as the master takes them). Panics on an error reply.
fn drive(master: SocketAddr, n: u64, marks: &Marks) -> Driven {
    let rate = env_num("LOAD_RATE", DEFAULT_RATE);
    let mut c = Client::connect(master).expect("connect to the master double");
    let t0 = Instant::now();
    let mut written = 0u64;
    let mut round = 0;
    while written < n {
        let tag = format!("b{round}");
        let mut cmds: Vec<workload::Command> = workload::small_sets(&tag, 2000).collect();
        cmds.extend(
            workload::every_type(&format!("t{round}"))
                .into_iter()
                .filter(|c| c[0] != b"set" || c.len() < 3 || c[2].len() < 1000),
        );
        for batch in cmds.chunks(PIPE) {
            c.send(batch).expect("write to the master double");
            for _ in batch {
                if let Reply::Error(e) = c.read().expect("reply from the master double") {
                    panic!("the master double refused a write: {e}");
                }
            }
            written += batch.len() as u64;
            if rate > 0 {
                let due = t0 + Duration::from_secs_f64(written as f64 / rate as f64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            let pos = master_pos(&mut c);
            marks.lock().unwrap().push(Mark {
                pos,
                count: written,
                t: Instant::now(),
            });
        }
        round += 1;
    }
    Driven {
        written,
        end: master_pos(&mut c),
        t0,
    }
}

/// One sample of the journal's position during the load.
#[derive(Clone, Copy)]
struct Lag {
    /// Entries the master took and the journal has not synced, and the age of the oldest.
    entries: f64,
    ms: f64,
    /// The part after the relay received them (receive → synced); NaN without a received
    /// position.
    recv_entries: f64,
    recv_ms: f64,
    /// Entries the master took that the relay has not even received (appended, maybe not
    /// synced), and the age of the oldest: how far the journal *as written* trails; NaN without
    /// a received position.
    written_entries: f64,
    written_ms: f64,
}

/// The relay's (synced, received) upstream positions through `INFO replication`.
fn relay_positions(
    admin: SocketAddr,
) -> impl FnMut() -> Option<(BinlogPos, Option<BinlogPos>)> + Send + 'static {
    let mut conn: Option<Client> = None;
    move || {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => conn.insert(Client::connect(admin)?),
        };
        let Some(text) = c.info("replication") else {
            conn = None;
            return None;
        };
        Some((
            info_pos(&text, "upstream_binlog_offset=")?,
            info_pos(&text, "upstream_received_offset="),
        ))
    }
}

/// Samples `positions()` every 10 ms until `stop` and turns it into [`Lag`]s using the marks.
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
            // Entries up to a position, from the marks (PIPE-write granularity).
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
            let (written_entries, written_ms) = match received {
                Some(r) => {
                    let r = r.max(synced);
                    let i = m.partition_point(|k| k.pos <= r);
                    if i == m.len() {
                        (0.0, 0.0)
                    } else {
                        let ms = now.saturating_duration_since(m[i].t).as_secs_f64() * 1000.0;
                        ((last.count - count_at(r)) as f64, ms)
                    }
                }
                None => (f64::NAN, f64::NAN),
            };
            // The first mark past the synced position: the oldest write not yet synced was
            // acknowledged by the master by then.
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
                written_entries,
                written_ms,
            });
        }
        out
    })
}

struct Run {
    spec: Spec,
    written: u64,
    secs: f64,
    jlag: Vec<Lag>,
    cpu_secs: f64,
    /// CPU seconds of the master double, of the slave doubles (all), and of the bench process
    /// (driver and samplers) over the same interval.
    others_cpu: [f64; 3],
    peak_rss: u64,
    journal_bytes: u64,
    load: String,
    /// The journal's commits over the run ([`commits_between`]).
    commits: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn baseline(n: u64) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let mport = free_base(&[2000]);
    let _m = spawn_master(tmp.path(), mport);
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let port = free_base(&[1000, 2000, 3000]);
    let mut cfg = UpstreamConfig::new(maddr, "127.0.0.1", port, tmp.path().join("up"));
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
    {
        let last_end = last_end.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let UpstreamEvent::Entry(e) = ev {
                    *last_end.lock().unwrap() = e.end;
                }
            }
        });
    }
    let up = wait_until(Duration::from_secs(30), || {
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
    let m2 = marks.clone();
    let d = tokio::task::spawn_blocking(move || drive(maddr, n, &m2))
        .await
        .unwrap();
    let caught = wait_until(Duration::from_secs(300), || {
        *last_end.lock().unwrap() >= d.end
    })
    .await;
    let secs = d.t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let jlag = sampler.join().unwrap();
    assert!(
        caught,
        "measured nothing: the baseline consumer stopped at {}, the master's binlog ends at {}",
        *last_end.lock().unwrap(),
        d.end
    );
    let _ = h.shutdown().await;
    Run {
        spec: Spec {
            slaves: 0,
            mode: Mode::Default,
        },
        written: d.written,
        secs,
        jlag,
        cpu_secs: f64::NAN,
        others_cpu: [f64::NAN; 3],
        peak_rss: 0,
        journal_bytes: 0,
        load: loadavg(),
        commits: String::new(),
    }
}

fn journal_bytes(dir: &Path) -> u64 {
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

/// The slave double's `producer` and whether it is `Connected`, from its `INFO`.
fn slave_state(c: &mut Option<Client>, addr: SocketAddr) -> Option<(bool, BinlogPos)> {
    let cl = match c.as_mut() {
        Some(cl) => cl,
        None => c.insert(Client::connect(addr)?),
    };
    let Some(t) = cl.info("replication") else {
        *c = None;
        return None;
    };
    Some((t.contains("state:Connected"), info_pos(&t, "producer:")?))
}

fn relay_info(admin: SocketAddr, section: &str) -> Option<String> {
    Client::connect(admin)?.info(section)
}

/// The journal's commit histogram and totals from the relay's `INFO log`.
#[derive(Clone, Default)]
struct Commits {
    /// Only the histogram of the view is read from INFO (the rest is below, as INFO prints it).
    hist: pika_relay::journal::sync_stats::SyncStatsView,
    commits: f64,
    avg_data_ms: f64,
    avg_meta_ms: f64,
    max_ms: f64,
}

fn relay_commits(admin: SocketAddr) -> Commits {
    let Some(t) = relay_info(admin, "log") else {
        return Commits::default();
    };
    let field = |line: &str, key: &str| -> f64 {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(key)?.parse().ok())
            .unwrap_or(0.0)
    };
    let mut c = Commits::default();
    for l in t.lines() {
        if let Some(h) = l.strip_prefix("journal_sync_hist_us:") {
            c.hist.hist = h.split(',').filter_map(|v| v.trim().parse().ok()).collect();
        }
        if let Some(rest) = l.strip_prefix("journal_syncs:") {
            c.commits = field(rest, "commits=");
            c.avg_data_ms = field(rest, "avg_data_ms=");
            c.avg_meta_ms = field(rest, "avg_meta_ms=");
            c.max_ms = field(rest, "max_ms=");
        }
    }
    c
}

/// Commits between two readings: count, p50/p99 bucket bounds (ms), average data and meta sync
/// (ms), and the relay's longest commit so far.
fn commits_between(a: &Commits, b: &Commits) -> String {
    use pika_relay::journal::sync_stats::SyncStatsView;
    let d = b.hist.hist_since(&a.hist);
    let n = b.commits - a.commits;
    let avg = |x: f64, y: f64| {
        if n > 0.0 {
            (x * b.commits - y * a.commits) / n
        } else {
            0.0
        }
    };
    format!(
        "{n:.0} commits, p50 < {:.1} ms, p99 < {:.1} ms, max {:.1} ms; average fdatasync of data {:.2} ms + meta {:.2} ms",
        SyncStatsView::quantile_us(&d, 0.5) as f64 / 1000.0,
        SyncStatsView::quantile_us(&d, 0.99) as f64 / 1000.0,
        b.max_ms,
        avg(b.avg_data_ms, a.avg_data_ms),
        avg(b.avg_meta_ms, a.avg_meta_ms),
    )
}

async fn through_relay(n: u64, spec: Spec) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let mport = free_base(&[2000]);
    let master = spawn_master(tmp.path(), mport);
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let port = free_base(&[1000, 2000, 3000]);
    let log = tmp.path().join("relay.log");
    let mut journal_toml = if spec.mode == Mode::Always {
        "sync = \"always\"\n".to_string()
    } else {
        String::new()
    };
    // LOAD_PREALLOC=<bytes>: the journal's pre-allocation chunk (0 = off; default: the relay's).
    if let Ok(p) = std::env::var("LOAD_PREALLOC") {
        journal_toml.push_str(&format!("preallocate_bytes = {p}\n"));
    }
    let child = spawn_relay_with(
        &maddr.to_string(),
        port,
        &tmp.path().join("relay"),
        &log,
        &journal_toml,
    );
    let pid = child.id();
    let _relay = Proc(child);
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let linked = wait_until(Duration::from_secs(60), || {
        relay_info(admin, "replication").is_some_and(|t| t.contains("master_link_status:up"))
    })
    .await;
    assert!(
        linked,
        "relay never linked to the master: see {}",
        log.display()
    );
    let mut slaves = Vec::new();
    for i in 0..spec.slaves {
        slaves.push(spawn_slave(port, tmp.path(), i, spec.mode != Mode::Apply));
    }
    let addrs: Vec<SocketAddr> = slaves.iter().map(|s| s.1).collect();
    let mut conns: Vec<Option<Client>> = addrs.iter().map(|_| None).collect();
    let ok = wait_until(Duration::from_secs(60), || {
        addrs
            .iter()
            .zip(conns.iter_mut())
            .all(|(a, c)| slave_state(c, *a).is_some_and(|s| s.0))
    })
    .await;
    assert!(ok, "slaves did not attach: see {}", log.display());
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rss_stop = Arc::new(AtomicBool::new(false));
    let rss_sampler = {
        let (peak, stop) = (peak.clone(), rss_stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let marks = Marks::default();
    let stop = Arc::new(AtomicBool::new(false));
    let jsampler = sample_lag(marks.clone(), stop.clone(), relay_positions(admin));
    let others = || {
        [
            cpu_secs(master.0.id()),
            slaves.iter().map(|s| cpu_secs(s.0 .0.id())).sum::<f64>(),
            cpu_secs(std::process::id()),
        ]
    };
    let others0 = others();
    let cpu0 = cpu_secs(pid);
    let commits0 = relay_commits(admin);
    let m2 = marks.clone();
    let d = tokio::task::spawn_blocking(move || drive(maddr, n, &m2))
        .await
        .unwrap();
    // Caught up: the journal holds the master's end and every slave acked the journal's end.
    let mut jend = BinlogPos::default();
    let caught = wait_until(Duration::from_secs(900), || {
        let Some(t) = relay_info(admin, "replication") else {
            return false;
        };
        let (Some(up), Some(end)) = (
            info_pos(&t, "upstream_binlog_offset="),
            info_pos(&t, "db0 binlog_offset="),
        ) else {
            return false;
        };
        jend = end;
        up >= d.end
            && addrs
                .iter()
                .zip(conns.iter_mut())
                .all(|(a, c)| slave_state(c, *a).is_some_and(|s| s.0 && s.1 == end))
    })
    .await;
    let secs = d.t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    let commits = commits_between(&commits0, &relay_commits(admin));
    let others1 = others();
    let others_cpu = [0, 1, 2].map(|i| others1[i] - others0[i]);
    stop.store(true, Ordering::SeqCst);
    rss_stop.store(true, Ordering::SeqCst);
    let jlag = jsampler.join().unwrap();
    let _ = rss_sampler.join();
    assert!(
        caught,
        "measured nothing: slaves did not reach the journal's end {jend} (master {}): see {}",
        d.end,
        log.display()
    );
    assert!(
        !jlag.is_empty(),
        "measured nothing: no journal position sample during the load (INFO on {admin} failed?)"
    );
    if spec.mode == Mode::Apply {
        let now = pika_relay::sim::old_master::unix_now().to_string();
        let digest = |a: SocketAddr| {
            Client::connect(a)
                .and_then(|mut c| c.call(&[b"sim.digest", now.as_bytes()]).ok())
                .expect("SIM.DIGEST")
        };
        let want = digest(maddr);
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(digest(*a), want, "apply slave {i} differs from the master");
        }
    }
    let jb = journal_bytes(&tmp.path().join("relay").join("journal"));
    Run {
        spec,
        written: d.written,
        secs,
        jlag,
        cpu_secs: cpu,
        others_cpu,
        peak_rss: peak.load(Ordering::Relaxed),
        journal_bytes: jb,
        load: loadavg(),
        commits,
    }
}

/// What the backlog run measured.
struct Backlog {
    slaves: usize,
    bytes: u64,
    build_secs: f64,
    secs: f64,
    /// Bytes of the journal each slave acked.
    read: Vec<u64>,
    peak_rss: u64,
    cpu_secs: f64,
    load: String,
}

/// Writes `bytes` of journal (4 KiB `set`s) into `jdir` with the journal writer.
fn build_backlog(jdir: &Path, bytes: u64) -> u64 {
    let cfg = JournalConfig {
        retention: RetentionConfig {
            max_files: 1_000_000,
            ..RetentionConfig::default()
        },
        ..JournalConfig::new(jdir)
    };
    let (mut w, _) = JournalWriter::open(cfg).expect("open the backlog journal");
    let value = vec![b'v'; 4096];
    let mut i = 0u64;
    while w.position().filenum as u64 * pika_relay::journal::DEFAULT_BINLOG_FILE_SIZE
        + w.position().offset
        < bytes
    {
        let entries = [NewEntry {
            exec_time: 1_700_000_000,
            argv: vec![
                b"set".to_vec(),
                format!("backlog:{i}").into_bytes(),
                value.clone(),
            ],
        }];
        i += 1;
        w.append(BinlogPos::new(1, i * 4200), &entries)
            .expect("append to the backlog journal");
        if i % 16384 == 0 {
            w.sync().expect("sync the backlog journal");
        }
    }
    w.sync().expect("sync the backlog journal");
    journal_bytes(jdir)
}

async fn backlog_run(spec: Spec) -> Backlog {
    let gb = std::env::var("LOAD_BACKLOG_GB")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(10.0);
    let secs = env_num("LOAD_BACKLOG_SECS", 30);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("relay");
    let t = Instant::now();
    let bytes = build_backlog(&data.join("journal"), (gb * 1e9) as u64);
    let build_secs = t.elapsed().as_secs_f64();
    // No master: the relay retries its upstream while it serves the backlog.
    let dead = free_base(&[2000]);
    let port = free_base(&[1000, 2000, 3000]);
    let log = tmp.path().join("relay.log");
    let child = spawn_relay_with(
        &format!("127.0.0.1:{dead}"),
        port,
        &data,
        &log,
        "retention_files = 1000000\n",
    );
    let pid = child.id();
    let _relay = Proc(child);
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = wait_until(Duration::from_secs(120), || {
        relay_info(admin, "log").is_some()
    })
    .await;
    assert!(up, "the relay never answered INFO: see {}", log.display());
    let cpu0 = cpu_secs(pid);
    let mut slaves = Vec::new();
    for i in 0..spec.slaves {
        slaves.push(spawn_slave(port, tmp.path(), i, true));
    }
    let t0 = Instant::now();
    let mut peak = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        peak = peak.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = cpu_secs(pid) - cpu0;
    let text = relay_info(admin, "replication").unwrap_or_default();
    let fsize = pika_relay::journal::DEFAULT_BINLOG_FILE_SIZE;
    let read: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("slave"))
        .filter_map(|l| info_pos(l.split_once("acked_offset=")?.1, ""))
        .map(|p| p.filenum as u64 * fsize + p.offset)
        .collect();
    assert!(
        read.len() == spec.slaves && read.iter().all(|&r| r > 0),
        "measured nothing: {} of {} slaves acked part of the backlog in {secs} s: see {}",
        read.iter().filter(|&&r| r > 0).count(),
        spec.slaves,
        log.display()
    );
    drop(slaves);
    Backlog {
        slaves: spec.slaves,
        bytes,
        build_secs,
        secs: t0.elapsed().as_secs_f64(),
        read,
        peak_rss: peak,
        cpu_secs: cpu,
        load: loadavg(),
    }
}

/// Raw append + `fdatasync` of `bytes` bytes in 256 KiB chunks in a fresh file on the same disk
/// as the relays' data: (seconds, fdatasync latencies in ms).
/// Writes `bytes` in 256 KiB pieces with an `fdatasync` after each: appending (the file grows)
/// or, `prealloc`, over a file zero-filled 4 MiB at a time ahead (as the journal writes).
fn raw_fsync(bytes: u64, prealloc: bool) -> (f64, Vec<f64>) {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(tmp.path().join("raw")).unwrap();
    let chunk = vec![0x5au8; 256 * 1024];
    let zeros = vec![0u8; 4 << 20];
    let mut lat = Vec::new();
    let t0 = Instant::now();
    let mut left = bytes;
    let (mut at, mut len) = (0u64, 0u64);
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        if prealloc && at + k as u64 > len {
            f.write_all_at(&zeros, len).unwrap();
            len += zeros.len() as u64;
        }
        f.write_all_at(&chunk[..k], at).unwrap();
        at += k as u64;
        let t = Instant::now();
        f.sync_data().unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        left -= k as u64;
    }
    (t0.elapsed().as_secs_f64(), lat)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_num("LOAD_ENTRIES", 1_000_000);
    let specs: Vec<Spec> = std::env::var("LOAD_RUNS")
        .unwrap_or_else(|_| "1,2,8,1:always,1:apply,8:backlog".into())
        .split(',')
        .map(Spec::parse)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = rt.block_on(baseline(n));
    let mut runs = Vec::new();
    let mut backlogs = Vec::new();
    for s in &specs {
        if s.mode == Mode::Backlog {
            backlogs.push(rt.block_on(backlog_run(*s)));
        } else {
            runs.push(rt.block_on(through_relay(n, *s)));
        }
    }
    let eps = |r: &Run| r.written as f64 / r.secs;
    let lagv = |r: &Run, f: fn(&Lag) -> f64| -> Vec<f64> { r.jlag.iter().map(f).collect() };
    println!(
        "relay_load: {n} pipelined mixed writes per run ({PIPE} per batch, LOAD_RATE {} entries/s, 0 = unpaced); master double, relay and slave doubles in separate processes on {} cores",
        env_num("LOAD_RATE", DEFAULT_RATE),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (mut be, mut bm) = (lagv(&base, |x| x.entries), lagv(&base, |x| x.ms));
    println!(
        "baseline (master double -> bare upstream consumer): {:>8.0} entries/s; consumer behind master: p99 {:.0} entries / {:.1} ms, max {:.0} entries / {:.1} ms; load {}",
        eps(&base),
        percentile(&mut be, 0.99),
        percentile(&mut bm, 0.99),
        percentile(&mut be, 1.0),
        percentile(&mut bm, 1.0),
        base.load
    );
    let jbytes = runs.iter().map(|r| r.journal_bytes).max().unwrap_or(0);
    if jbytes > 0 {
        for prealloc in [false, true] {
            let (secs, mut lat) = raw_fsync(jbytes, prealloc);
            let per_entry = jbytes as f64 / base.written as f64;
            println!(
            "raw {}+fdatasync of the journal's {:.1} MiB, 256 KiB per sync: {:.0} MiB/s ({:.0} entries/s at {:.0} bytes/entry), fdatasync p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            if prealloc { "overwrite of a pre-allocated file" } else { "append" },
            jbytes as f64 / 1048576.0,
            jbytes as f64 / 1048576.0 / secs,
            jbytes as f64 / per_entry / secs,
            per_entry,
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99),
            percentile(&mut lat, 1.0)
        );
        }
    }
    let one = runs
        .iter()
        .find(|r| r.spec.slaves == 1 && r.spec.mode == Mode::Default)
        .map(|r| (eps(r), r.cpu_secs / r.written as f64 * 1e6));
    let mut goal_a = None;
    let mut goal_b: Vec<(usize, f64)> = Vec::new();
    let mut goal_c = None;
    for r in runs.iter_mut() {
        let (mut je, mut jm) = (lagv(r, |x| x.entries), lagv(r, |x| x.ms));
        let (mut re, mut rm) = (lagv(r, |x| x.recv_entries), lagv(r, |x| x.recv_ms));
        let (mut we, mut wm) = (lagv(r, |x| x.written_entries), lagv(r, |x| x.written_ms));
        we.retain(|x| !x.is_nan());
        wm.retain(|x| !x.is_nan());
        let cpu_m = r.cpu_secs / r.written as f64 * 1e6;
        let p99_ms = percentile(&mut jm, 0.99);
        println!(
            "relay [{}]: {:>8.0} entries/s ({:.2}x baseline); journal behind master: p99 {:.0} entries / {:.1} ms, max {:.0} entries / {:.1} ms ({} samples); relay CPU {:.2} s per M entries; peak RSS {:.1} MiB; load {}",
            r.spec.label(),
            eps(r),
            eps(r) / eps(&base),
            percentile(&mut je, 0.99),
            p99_ms,
            percentile(&mut je, 1.0),
            percentile(&mut jm, 1.0),
            r.jlag.len(),
            cpu_m,
            r.peak_rss as f64 / 1048576.0,
            r.load
        );
        println!(
            "    of which after the relay received them (receive -> synced): p99 {:.0} entries / {:.1} ms, max {:.0} entries / {:.1} ms",
            percentile(&mut re, 0.99),
            percentile(&mut rm, 0.99),
            percentile(&mut re, 1.0),
            percentile(&mut rm, 1.0)
        );
        if !we.is_empty() {
            println!(
                "    journal as written (received, not yet synced) behind master: p99 {:.0} entries / {:.1} ms, max {:.0} entries / {:.1} ms",
                percentile(&mut we, 0.99),
                percentile(&mut wm, 0.99),
                percentile(&mut we, 1.0),
                percentile(&mut wm, 1.0)
            );
        }
        if !r.commits.is_empty() {
            println!("    journal commits during the run: {}", r.commits);
        }
        let [mc, sc, bc] = r.others_cpu;
        println!(
            "    CPU of the whole machine's parties over the run ({:.1} s, {:.2} cores in all): relay {:.2} s, master double {:.2} s, slave doubles {:.2} s, bench driver {:.2} s",
            r.secs,
            (r.cpu_secs + mc + sc + bc) / r.secs,
            r.cpu_secs,
            mc,
            sc,
            bc
        );
        if r.spec.mode != Mode::Default {
            continue;
        }
        if r.spec.slaves == 1 {
            goal_a = Some(p99_ms);
        }
        if let (Some((e1, c1)), true) = (one, r.spec.slaves > 1) {
            let per = (cpu_m - c1) / (r.spec.slaves - 1) as f64;
            println!(
                "    vs 1 ack-only slave: rate {:.2}x, relay CPU per M entries per extra slave {:.3} s",
                eps(r) / e1,
                per
            );
            goal_b.push((r.spec.slaves, per));
            if r.spec.slaves == 8 {
                goal_c = Some(eps(r) / e1);
            }
        }
    }
    let gb = |b: u64| b as f64 / 1e9;
    let mut goal_d = None;
    for b in &backlogs {
        let total: u64 = b.read.iter().sum();
        println!(
            "relay [{} ack-only slave(s), {:.1} GB backlog on disk (written in {:.0} s)]: in {:.0} s the slaves read {:.2} GB ({:.2}..{:.2} GB each, {:.0} MB/s in all); relay peak RSS {:.1} MiB; relay CPU {:.2} s per GB read; load {}",
            b.slaves,
            gb(b.bytes),
            b.build_secs,
            b.secs,
            gb(total),
            gb(*b.read.iter().min().unwrap()),
            gb(*b.read.iter().max().unwrap()),
            total as f64 / 1e6 / b.secs,
            b.peak_rss as f64 / 1048576.0,
            b.cpu_secs / gb(total),
            b.load
        );
        if b.slaves == 8 {
            goal_d = Some(b.peak_rss as f64 / 1048576.0);
        }
    }
    let na = "not measured (run missing from LOAD_RUNS)";
    match goal_a {
        Some(v) => println!(
            "GOAL (a) journal trails the master <= 50 ms p99 (1 slave, default sync): {v:.1} ms: {}",
            met(v <= 50.0)
        ),
        None => println!("GOAL (a): {na}"),
    }
    if goal_b.is_empty() {
        println!("GOAL (b): {na}");
    }
    for (k, v) in goal_b {
        println!(
            "GOAL (b) relay CPU <= 0.5 s per M entries per slave beyond the first ({k} slaves): {v:.3} s: {}",
            met(v <= 0.5)
        );
    }
    match goal_c {
        Some(v) => println!(
            "GOAL (c) 8 ack-only slaves >= 0.9x the 1-slave rate: {v:.2}x: {}",
            met(v >= 0.9)
        ),
        None => println!("GOAL (c): {na}"),
    }
    match goal_d {
        Some(v) => println!(
            "GOAL (d) relay RSS <= 64 MiB with 8 slaves reading a backlog from disk: {v:.1} MiB: {}",
            met(v <= 64.0)
        ),
        None => println!("GOAL (d): {na}"),
    }
}
