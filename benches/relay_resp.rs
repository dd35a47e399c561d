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

fn visible(c: &mut redis::Client, key: &str) -> bool {
    matches!(c.cmd(&["EXISTS", key]), Reply::Integer(1))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_num("RESP_ENTRIES", 200_000) as usize;
    let threads = env_num("RESP_THREADS", 4);
    let batch = env_num("RESP_BATCH", 1000);
    let in_flight = env_num("RESP_IN_FLIGHT", 1);
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
        let cfg = data.with_extension("toml");
        std::fs::write(
            &cfg,
            format!(
                "[metrics]\nlisten = \"\"\n[[targets]]\nurl = \"redis://127.0.0.1:{rport}\"\nthreads = {threads}\nbatch_cmds = {batch}\nin_flight = {in_flight}\n"
            ),
        )
        .unwrap();
        let spawn = |i: u32| {
            Command::new(env!("CARGO_BIN_EXE_pika-relay"))
                .args(["run", "--master", &m.addr().to_string(), "--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--advertise-ip", "127.0.0.1", "--data-dir"])
                .arg(&data)
                .arg("--config")
                .arg(&cfg)
                .args(["--skip-master-check", "--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(tmp.path().join(format!("relay-{i}.log"))).unwrap())
                .spawn()
                .expect("spawn pika-relay run")
        };
        let mut child = spawn(0);

        // Backlog: the journal holds N sets before the target exists.
        for c in workload::small_sets("b", n) {
            m.write(&c).unwrap();
        }
        let producer = m.producer();
        let want = format!("upstream_binlog_offset={} {}", producer.filenum, producer.offset);
        assert!(
            wait_until(Duration::from_secs(300), || info(port).contains(&want)).await,
            "relay never caught up with the master"
        );
        let redis = RedisServer::start_on(&tmp.path().join("redis"), rport);
        let mut c = redis.client();
        assert!(
            wait_until(Duration::from_secs(60), || {
                let i = info(port);
                i.contains("state=full_sync") || i.contains("state=streaming")
            })
            .await,
            "the sink never connected"
        );
        // RESP_PERF=<file>: a `perf record -e cpu-clock` profile of the relay during the backlog.
        let perf = std::env::var("RESP_PERF").ok().map(|out| {
            Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-q", "-o", &out, "-p"])
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("perf")
        });
        let t_conn = Instant::now();
        // The rate counts from the start of the stream, when the first streamed key appears (the
        // full sync of the one-key dump and the connects before it are a fixed cost, reported
        // separately).
        let base = 1 + threads as i64; // the seed and one marker per connection
        let t0 = stream_started(&mut c, base).await;
        let startup_ms = (t0 - t_conn).as_secs_f64() * 1000.0;
        let cpu0 = cpu_secs(child.id());
        // Everything applied: the seed, the N keys and one marker per connection.
        let all = 1 + n as i64 + threads as i64;
        assert!(wait_until(Duration::from_secs(600), || dbsize(&mut c) >= all).await);
        let backlog_secs = t0.elapsed().as_secs_f64();
        let backlog_cpu = cpu_secs(child.id()) - cpu0;
        let load_backlog = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        if let Some(mut p) = perf {
            let _ = Command::new("kill").args(["-INT", &p.id().to_string()]).status();
            let _ = p.wait();
        }

        // Live: N more sets while the target streams.
        let t0 = Instant::now();
        let cpu0 = cpu_secs(child.id());
        for cmd in workload::small_sets("l", n) {
            m.write(&cmd).unwrap();
        }
        let t_last = Instant::now();
        let last = format!("l:{}", n - 1);
        assert!(wait_until(Duration::from_secs(600), || visible(&mut c, &last)).await);
        let live_secs = t0.elapsed().as_secs_f64();
        let visible_ms = t_last.elapsed().as_secs_f64() * 1000.0;
        let live_cpu = cpu_secs(child.id()) - cpu0;

        // Two more backlog runs: the relay restarted against the emptied target replays its
        // whole journal (2N sets).
        let mut backlog_rates = vec![n as f64 / backlog_secs];
        for i in 1..=2u32 {
            let _ = child.kill();
            let _ = child.wait();
            c.cmd(&["FLUSHALL"]);
            child = spawn(i);
            let t0 = stream_started(&mut c, base).await;
            let all = 1 + 2 * n as i64 + threads as i64;
            assert!(wait_until(Duration::from_secs(600), || dbsize(&mut c) >= all).await);
            backlog_rates.push(2.0 * n as f64 / t0.elapsed().as_secs_f64());
        }
        let _ = child.kill();
        let _ = child.wait();

        // Baselines on the same server, best of three (the machine is shared and noisy).
        let mut bench_rate = 0f64;
        let mut pipe_rate = 0f64;
        let file = tmp.path().join("replay.resp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for cmd in workload::small_sets("p", n) {
                f.write_all(&encode_argv(&cmd)).unwrap();
            }
        }
        // The same commands the way the sink sends them: batches of 1000 in MULTI … SET marker … EXEC.
        let tx_file = tmp.path().join("replay-multi.resp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tx_file).unwrap());
            for (i, cmd) in workload::small_sets("q", n).enumerate() {
                if i % 1000 == 0 {
                    f.write_all(&encode_argv(&["MULTI"])).unwrap();
                }
                f.write_all(&encode_argv(&cmd)).unwrap();
                if i % 1000 == 999 || i + 1 == n {
                    f.write_all(&encode_argv(&["SET", "marker", "1 1 0 123456 7 4"])).unwrap();
                    f.write_all(&encode_argv(&["EXEC"])).unwrap();
                }
            }
        }
        let pipe = |file: &std::path::Path| {
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
        let mut tx_rate = 0f64;
        let mut pipe_rates = Vec::new();
        for _ in 0..3 {
            tx_rate = tx_rate.max(pipe(&tx_file));
            let out = Command::new("redis-benchmark")
                .args(["-h", "127.0.0.1", "-p", &rport.to_string(), "-P", "16", "-t", "set"])
                .args(["-n", &n.to_string(), "-d", "64", "-r", "1000000", "-q"])
                .output()
                .expect("redis-benchmark");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let r: f64 = text
                .split(['\r', '\n'])
                .filter_map(|l| l.strip_prefix("SET: "))
                .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                .next_back()
                .unwrap_or(0.0);
            bench_rate = bench_rate.max(r);
            pipe_rates.push(pipe(&file));
            pipe_rate = pipe_rate.max(pipe_rates[pipe_rates.len() - 1]);
        }

        let backlog_first = backlog_rates[0];
        let backlog_rate = backlog_rates.iter().cloned().fold(0.0, f64::max);
        let live_rate = n as f64 / live_secs;
        println!("relay_resp: {n} sets of 64 bytes, {threads} connections, batches of {batch}, {in_flight} in flight per connection, redis-server on loopback");
        println!("  load average during the backlog: {}", load_backlog.trim());
        println!("  redis-benchmark -P 16 SET       {bench_rate:>12.0} entries/s");
        println!(
            "  redis-cli --pipe replay (file)  {pipe_rate:>12.0} entries/s  (best of 3: {})",
            pipe_rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
        );
        println!("  redis-cli --pipe, MULTI batches {tx_rate:>12.0} entries/s  (the sink's wire protocol, replayed from a file)");
        println!(
            "  relay backlog, best of 3        {backlog_rate:>12.0} entries/s  = {:.2}× the pipelined replay, {:.2}× the MULTI replay, {:.2}× redis-benchmark; relay CPU in the first run {:.2} s ({:.2} µs/entry)",
            backlog_rate / pipe_rate,
            backlog_rate / tx_rate,
            backlog_rate / bench_rate,
            backlog_cpu,
            backlog_cpu * 1e6 / n as f64
        );
        println!(
            "  (backlog runs: {}; the first, with the relay's CPU above, replays N sets, the reruns 2N from an emptied target; before the first stream: connect, markers and the full sync of the one-key dump took {startup_ms:.0} ms)",
            backlog_rates.iter().map(|r| format!("{:.0}/s = {:.2}×", r, r / pipe_rate)).collect::<Vec<_>>().join(", ")
        );
        let _ = backlog_first;
        println!(
            "  relay live (master → target)    {live_rate:>12.0} entries/s  = {:.2}× the pipelined replay; last write visible after {visible_ms:.1} ms; relay CPU {live_cpu:.2} s",
            live_rate / pipe_rate
        );
        let ratio = backlog_rate / pipe_rate;
        println!(
            "  goal 0.8x (best backlog run ≥ 0.8× the best pipelined replay): {} ({ratio:.2}×)",
            if ratio >= 0.8 { "met" } else { "not met" }
        );
        println!("  load average at the end: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
        m.shutdown();
    });
}
