//! Replay into a Redis-protocol target: old-master double → relay **process** → `redis-server`,
//! against the target's own limits measured in the same run on the same server:
//! `redis-benchmark -P 16` SETs, and a plain pipelined replay of the same commands from a file
//! (`redis-cli --pipe`), also wrapped in the sink's `MULTI` batches. Reported (entries/s and ratios):
//! - backlog: N sets already in the relay's journal when the target comes up → all applied
//!   (the sink alone: journal → rules → N connections → MULTI batches);
//! - live: N sets written to the master while the target streams → all applied, and the time
//!   from the last write to its visibility on the target.
//!
//! The relay's CPU time (user + system, from `/proc/<pid>/stat`) is reported per phase. The goal
//! line compares the backlog rate with the plain pipelined replay (goal: ≥ 0.8×).
//!
//! `cargo bench --bench relay_resp` (RESP_ENTRIES=200000, RESP_THREADS=4, RESP_BATCH=1000,
//! RESP_IN_FLIGHT=1)

#[path = "../tests/support/redis.rs"]
mod redis;
#[path = "support.rs"]
mod support;

use pika_relay::formats::resp::{encode_argv, Reply};
use pika_relay::sim::old_master::{
    EmbeddedRsyncDelivery, Flavor, MasterTimings, OldMaster, OldMasterConfig,
};
use pika_relay::sim::workload;
use redis::RedisServer;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn info(port: u16) -> String {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = c.write_all(b"*1\r\n$4\r\ninfo\r\n");
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while n < buf.len() {
        match c.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
        if buf[..n].windows(6).any(|w| w == b"# Log\r") && buf[..n].ends_with(b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (index 11 and 12 after the name), in clock ticks.
    (tick(11) + tick(12)) / 100.0
}

/// When the target first holds more than `base` keys (polled every millisecond).
async fn stream_started(c: &mut redis::Client, base: i64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(120);
    while dbsize(c) <= base {
        assert!(Instant::now() < deadline, "the stream never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

fn dbsize(c: &mut redis::Client) -> i64 {
    match c.cmd(&["DBSIZE"]) {
        Reply::Integer(k) => k,
        _ => 0,
    }
}

/// CPU seconds (user + system) the redis-server has used (`INFO cpu`).
fn redis_cpu(c: &mut redis::Client) -> f64 {
    let Reply::Bulk(Some(b)) = c.cmd(&["INFO", "cpu"]) else {
        return 0.0;
    };
    String::from_utf8_lossy(&b)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == "used_cpu_sys" || k == "used_cpu_user").then(|| v.trim().parse::<f64>().ok())?
        })
        .sum()
}

fn visible(c: &mut redis::Client, key: &str) -> bool {
    matches!(c.cmd(&["EXISTS", key]), Reply::Integer(1))
}

/// The load of one phase: `RESP_WORKLOAD=sets` (default, the issue's benchmark) or `mixed`.
fn load(mixed: bool, tag: &str, n: usize) -> Vec<workload::Command> {
    if mixed {
        workload::small_mixed(tag, n).collect()
    } else {
        workload::small_sets(tag, n).collect()
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn list(v: &[f64], f: impl Fn(f64) -> String) -> String {
    v.iter().map(|&x| f(x)).collect::<Vec<_>>().join(", ")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_num("RESP_ENTRIES", 200_000) as usize;
    let threads = env_num("RESP_THREADS", 4);
    let batch = env_num("RESP_BATCH", 1000);
    let in_flight = env_num("RESP_IN_FLIGHT", 1);
    let rounds = env_num("RESP_ROUNDS", 3).max(1) as usize;
    let mixed = std::env::var("RESP_WORKLOAD").is_ok_and(|w| w == "mixed");
    let coalesce = env_num("RESP_COALESCE", 1) != 0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tmp = tempfile::tempdir().unwrap();
        let mut mc = OldMasterConfig::new(Flavor::V30, tmp.path().join("master-dumps"));
        mc.timings = MasterTimings::fast();
        mc.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
        let m = OldMaster::start(mc).await.unwrap();
        m.write(&[&b"set"[..], b"seed", b"1"]).unwrap();
        let rport = RedisServer::free_port();
        let port = free_base(&[1000, 2000, 3000]);
        let data = tmp.path().join("relay");
        let with_target = tmp.path().join("relay.toml");
        let without_target = tmp.path().join("relay-journal-only.toml");
        std::fs::write(&without_target, "[metrics]\nlisten = \"\"\n").unwrap();
        std::fs::write(
            &with_target,
            format!(
                "[metrics]\nlisten = \"\"\n[[targets]]\nurl = \"redis://127.0.0.1:{rport}\"\nthreads = {threads}\nbatch_cmds = {batch}\nin_flight = {in_flight}\ncoalesce_sets = {coalesce}\n"
            ),
        )
        .unwrap();
        let spawn = |i: usize, cfg: &std::path::Path| {
            Command::new(env!("CARGO_BIN_EXE_pika-relay"))
                .args(["run", "--master", &m.addr().to_string(), "--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--advertise-ip", "127.0.0.1", "--data-dir"])
                .arg(&data)
                .arg("--config")
                .arg(cfg)
                .args(["--skip-master-check", "--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(tmp.path().join(format!("relay-{i}.log"))).unwrap())
                .spawn()
                .expect("spawn pika-relay run")
        };

        // The backlog: the journal holds N entries, written by a relay with no target.
        let mut child = spawn(0, &without_target);
        for c in load(mixed, "b", n) {
            m.write(&c).unwrap();
        }
        let producer = m.producer();
        let want = format!("upstream_binlog_offset={} {}", producer.filenum, producer.offset);
        assert!(
            wait_until(Duration::from_secs(300), || info(port).contains(&want)).await,
            "relay never caught up with the master"
        );
        let _ = child.kill();
        let _ = child.wait();
        let redis = RedisServer::start_on(&tmp.path().join("redis"), rport);
        let mut c = redis.client();

        // The baselines' inputs: the same load as plain pipelined commands, and wrapped the way
        // the sink wraps it without coalescing (batches in MULTI … SET marker … EXEC).
        let file = tmp.path().join("replay.resp");
        let tx_file = tmp.path().join("replay-multi.resp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            let mut g = std::io::BufWriter::new(std::fs::File::create(&tx_file).unwrap());
            for (i, cmd) in load(mixed, "p", n).into_iter().enumerate() {
                f.write_all(&encode_argv(&cmd)).unwrap();
                if i % batch as usize == 0 {
                    g.write_all(&encode_argv(&["MULTI"])).unwrap();
                }
                g.write_all(&encode_argv(&cmd)).unwrap();
                if i % batch as usize == batch as usize - 1 || i + 1 == n {
                    g.write_all(&encode_argv(&["SET", "marker", "1 1 0 123456 7 4"])).unwrap();
                    g.write_all(&encode_argv(&["EXEC"])).unwrap();
                }
            }
        }
        let pipe = |c: &mut redis::Client, file: &std::path::Path| {
            c.cmd(&["FLUSHALL"]);
            let t0 = Instant::now();
            let st = Command::new("redis-cli")
                .args(["-p", &rport.to_string(), "--pipe"])
                .stdin(std::fs::File::open(file).unwrap())
                .stdout(Stdio::null())
                .status()
                .expect("redis-cli --pipe");
            assert!(st.success());
            n as f64 / t0.elapsed().as_secs_f64()
        };

        // Rounds, each on an emptied server: plain replay, MULTI replay, redis-benchmark, then the
        // relay restarted against the emptied target (it full-syncs the one-key dump and streams
        // its N-entry journal). Each round's ratio compares runs made seconds apart.
        let (mut plain, mut multi, mut bench, mut relay, mut relay_cpu) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut startup_ms = 0.0;
        let mut load_backlog = String::new();
        for r in 0..rounds {
            plain.push(pipe(&mut c, &file));
            multi.push(pipe(&mut c, &tx_file));
            c.cmd(&["FLUSHALL"]);
            let out = Command::new("redis-benchmark")
                .args(["-h", "127.0.0.1", "-p", &rport.to_string(), "-P", "16", "-t", "set"])
                .args(["-n", &n.to_string(), "-d", "64", "-r", "1000000", "-q"])
                .output()
                .expect("redis-benchmark");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            bench.push(
                text.split(['\r', '\n'])
                    .filter_map(|l| l.strip_prefix("SET: "))
                    .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                    .next_back()
                    .unwrap_or(0.0),
            );

            c.cmd(&["FLUSHALL"]);
            let t_spawn = Instant::now();
            child = spawn(r + 1, &with_target);
            // RESP_PERF=<file>: a `perf record -e cpu-clock` profile of the relay, first round.
            let perf = std::env::var("RESP_PERF").ok().filter(|_| r == 0).map(|out| {
                Command::new("perf")
                    .args(["record", "-e", "cpu-clock", "-q", "-o", &out, "-p"])
                    .arg(child.id().to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("perf")
            });
            // The rate counts from the first streamed key (connects, markers and the full sync
            // of the one-key dump before it are a fixed cost, reported separately).
            let base = 1 + threads as i64; // the seed and one marker per connection
            let t0 = stream_started(&mut c, base).await;
            startup_ms = (t0 - t_spawn).as_secs_f64() * 1000.0;
            let cpu0 = cpu_secs(child.id());
            let all = 1 + n as i64 + threads as i64;
            assert!(wait_until(Duration::from_secs(600), || dbsize(&mut c) >= all).await);
            relay.push(n as f64 / t0.elapsed().as_secs_f64());
            relay_cpu.push(cpu_secs(child.id()) - cpu0);
            load_backlog = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            if let Some(mut p) = perf {
                let _ = Command::new("kill").args(["-INT", &p.id().to_string()]).status();
                let _ = p.wait();
            }
            if r + 1 < rounds {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        // Live: N more writes while the target streams (the relay of the last round goes on).
        let t0 = Instant::now();
        let cpu0 = cpu_secs(child.id());
        let rcpu0 = redis_cpu(&mut c);
        for cmd in load(mixed, "l", n) {
            m.write(&cmd).unwrap();
        }
        let t_last = Instant::now();
        // Where the backlog is when the writes end: between the master and the relay's journal,
        // or between the journal and the target.
        let at_end = info(port);
        let producer = m.producer();
        let field = |k: &str| {
            at_end
                .split(['\r', '\n', ','])
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or("?")
                .to_string()
        };
        let where_at_end = format!(
            "when the writes ended: master binlog at {} {}, relay journal holds upstream up to {}, target lag {} entries",
            producer.filenum,
            producer.offset,
            field("upstream_binlog_offset="),
            field("lag_entries=")
        );
        let last = format!("l:{}", n - 1);
        assert!(wait_until(Duration::from_secs(600), || visible(&mut c, &last)).await);
        let live_secs = t0.elapsed().as_secs_f64();
        let visible_ms = t_last.elapsed().as_secs_f64() * 1000.0;
        let live_cpu = cpu_secs(child.id()) - cpu0;
        let live_redis_cpu = redis_cpu(&mut c) - rcpu0;
        let _ = child.kill();
        let _ = child.wait();

        let ratios: Vec<f64> = relay.iter().zip(&plain).map(|(r, p)| r / p).collect();
        let per_entry: Vec<f64> = relay_cpu.iter().map(|s| s * 1e6 / n as f64).collect();
        let what = if mixed { "mixed writes (set, hset, lpush, incr in turn)" } else { "sets of 64 bytes" };
        println!("relay_resp: {n} {what}, {threads} connections, batches of {batch}, {in_flight} in flight per connection, coalesce_sets = {coalesce}, redis-server on loopback, {rounds} rounds (each on an emptied server)");
        println!("  load average after the last backlog: {}", load_backlog.trim());
        let rate = |x: f64| format!("{x:.0}");
        println!("  redis-benchmark -P 16 SET        median {:>9.0} entries/s  ({})", median(&bench), list(&bench, rate));
        println!("  redis-cli --pipe replay (file)   median {:>9.0} entries/s  ({})", median(&plain), list(&plain, rate));
        println!("  redis-cli --pipe, MULTI batches  median {:>9.0} entries/s  ({})", median(&multi), list(&multi, rate));
        println!("  relay backlog                    median {:>9.0} entries/s  ({})", median(&relay), list(&relay, rate));
        println!(
            "  relay / pipelined replay, per round: {}; median {:.2}×. Relay / MULTI replay median {:.2}×. Relay CPU {} µs/entry; startup before the first streamed key {startup_ms:.0} ms",
            list(&ratios, |x| format!("{x:.2}×")),
            median(&ratios),
            median(&relay) / median(&multi),
            list(&per_entry, |x| format!("{x:.2}")),
        );
        println!(
            "  relay live (master double in this process → relay → target) {:.0} entries/s; last write visible after {visible_ms:.1} ms; relay CPU {live_cpu:.2} s, redis-server CPU {live_redis_cpu:.2} s in {live_secs:.2} s",
            n as f64 / live_secs
        );
        println!("    {where_at_end}");
        let ratio = median(&ratios);
        println!(
            "  goal 0.8x (median per-round relay / pipelined replay ≥ 0.8): {} ({ratio:.2}×)",
            if ratio >= 0.8 { "met" } else { "not met" }
        );
        println!("  load average at the end: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
        m.shutdown();
    });
}
