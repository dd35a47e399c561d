//! `pika-relay verify` throughput and memory: names compared per second between two real
//! `redis-server`s holding the same `VERIFY_KEYS` names (default 200 000; mostly strings, every
//! 50th a 20-field hash, every 100th a 10-element list), against the baseline of `redis-cli --scan`
//! alone walking the same keyspace in the same run; the verify process's peak RSS. For 1 M names:
//! `VERIFY_KEYS=1000000 cargo bench --bench verify` (a few hundred MB of Redis memory per side; measured: same peak RSS as 200 000).

#[path = "../tests/support/redis.rs"]
mod redis;

use pika_relay::verify::conn::{Cmd, Conn};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn load(addr: &str, n: usize) {
    let mut c = Conn::connect(addr, None, Duration::from_secs(30))
        .await
        .unwrap();
    let mut batch: Vec<Cmd> = Vec::new();
    for i in 0..n {
        let k = format!("key:{i:08}").into_bytes();
        let c0: Cmd = if i % 100 == 1 {
            let mut v = vec![b"rpush".to_vec(), k];
            v.extend((0..10).map(|j| format!("e{j}").into_bytes()));
            v
        } else if i % 50 == 0 {
            let mut v = vec![b"hset".to_vec(), k];
            for j in 0..20 {
                v.push(format!("f{j}").into_bytes());
                v.push(format!("value-{i}-{j}").into_bytes());
            }
            v
        } else {
            vec![
                b"set".to_vec(),
                k,
                format!("value-{i}-xxxxxxxxxxxxxxxx").into_bytes(),
            ]
        };
        batch.push(c0);
        if batch.len() == 5000 {
            c.pipeline(&batch).await.unwrap();
            batch.clear();
        }
    }
    c.pipeline(&batch).await.unwrap();
}

fn main() {
    let n: usize = std::env::var("VERIFY_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let (ra, rb) = (redis::RedisServer::scratch(), redis::RedisServer::scratch());
    let (a, b) = (ra.addr(), rb.addr());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    rt.block_on(async {
        tokio::join!(load(&a, n), load(&b, n));
    });
    eprintln!(
        "loaded {n} names on both sides in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Baseline: redis-cli --scan alone over the old side.
    let (host, port) = a.rsplit_once(':').unwrap();
    let t = Instant::now();
    let mut cli = Command::new("redis-cli")
        .args(["-h", host, "-p", port, "--scan"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let scanned = BufReader::new(cli.stdout.take().unwrap()).lines().count();
    cli.wait().unwrap();
    let scan_secs = t.elapsed().as_secs_f64();
    // SCAN may repeat a name while the table rehashes; never fewer.
    assert!(
        scanned >= n,
        "redis-cli --scan saw every name: {scanned} of {n}"
    );

    // verify, as an operator runs it.
    let t = Instant::now();
    let mut v = Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .args(["verify", "--old", &a, "--new", &b, "--format", "jsonl"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("pika-relay verify");
    let pid = v.id();
    let mut peak = 0;
    let out = std::thread::spawn({
        let stdout = v.stdout.take().unwrap();
        move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        }
    });
    while v.try_wait().unwrap().is_none() {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    let verify_secs = t.elapsed().as_secs_f64();
    let lines = out.join().unwrap();
    let summary = lines.last().cloned().unwrap_or_default();
    assert!(
        v.wait().unwrap().success(),
        "verify found the sides equal: {summary}"
    );
    assert!(summary.contains(&format!("\"checked\":{n},")), "{summary}");

    let scan_rate = n as f64 / scan_secs;
    let verify_rate = n as f64 / verify_secs;
    println!("verify bench: {n} names (strings, 2% 20-field hashes, 1% 10-element lists), two redis-server 7 on loopback");
    println!("  redis-cli --scan alone : {scan_secs:>7.2} s  {scan_rate:>10.0} names/s (baseline)");
    println!(
        "  pika-relay verify      : {verify_secs:>7.2} s  {verify_rate:>10.0} names/s  = {:.2} x the scan alone",
        verify_rate / scan_rate
    );
    println!("  verify peak RSS        : {peak} KiB (bounded: one batch in memory, whatever the keyspace size)");
}
