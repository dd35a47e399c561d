//! Old-master doubles (3.0 and 2.3) → relay → a real `redis-server` as a Redis-protocol target:
//! full sync from the dump, then the stream, with the relay process SIGKILLed mid-stream and
//! restarted (data and counters exact: nothing applied twice, nothing missed); a target that is
//! stopped and restarted; a target that turns read-only.

#[path = "support/net.rs"]
mod net;
#[path = "support/redis.rs"]
mod redis;

use pika_relay::config::{Config, TargetSection};
use pika_relay::downstream::resp::{OnError, TargetState, TargetStatus};
use pika_relay::relay::{Relay, RelayHandle, Tuning};
use pika_relay::sim::old_master::{
    unix_now, EmbeddedRsyncDelivery, Flavor, MasterTimings, OldMaster, OldMasterConfig,
};
use pika_relay::sim::workload;
use pika_relay::upstream::Timings;
use redis::{differences, target_data, RedisServer};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(90);

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
}

async fn master(flavor: Flavor, dir: &Path) -> OldMaster {
    let mut mcfg = OldMasterConfig::new(flavor, dir.join("master-dumps"));
    mcfg.timings = MasterTimings::fast();
    mcfg.delivery = Some(Arc::new(EmbeddedRsyncDelivery));
    OldMaster::start(mcfg).await.unwrap()
}

fn write_round(m: &OldMaster, tag: &str) {
    for c in workload::every_type(tag) {
        // 2.3 has no psetex: the master refuses it, as a real one does.
        if let Err(e) = m.write(&c) {
            assert!(e.contains("unknown"), "{tag}: {e}");
        }
    }
}

/// Waits until the only differences between the master's data and the target's are the ones
/// `allowed` accepts (it is given every difference at once).
async fn converged_but(m: &OldMaster, port: u16, what: &str, allowed: impl Fn(&[String]) -> bool) {
    let want = m.keyspace().live(unix_now());
    let deadline = Instant::now() + T;
    loop {
        let got = tokio::task::spawn_blocking(move || target_data(port))
            .await
            .unwrap();
        let d = differences(&want, &got);
        if allowed(&d) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the target holds exactly the master's data.
async fn converged(m: &OldMaster, port: u16, what: &str) {
    let deadline = Instant::now() + T;
    loop {
        let want = m.keyspace().live(unix_now());
        let got = tokio::task::spawn_blocking(move || target_data(port))
            .await
            .unwrap();
        let d = differences(&want, &got);
        if d.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: target differs from the master: {:?}",
                &d[..d.len().min(8)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct RelayProc(Child);

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `targets` given as `--target URL`, or, with `batches = Some((batch_cmds, in_flight))`, as
/// `[[targets]]` blocks of the config file with these batch settings.
fn spawn_relay(
    m: &OldMaster,
    port: u16,
    data: &Path,
    targets: &[String],
    batches: Option<(usize, usize)>,
    log: &Path,
) -> RelayProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pika-relay"));
    cmd.args([
        "run",
        "--master",
        &m.addr().to_string(),
        "--port",
        &port.to_string(),
    ])
    .args(["--bind", "127.0.0.1", "--advertise-ip", "127.0.0.1"])
    .arg("--data-dir")
    .arg(data)
    .args([
        "--skip-master-check",
        "--log-level",
        "info",
        "--target-threads",
        "3",
    ]);
    let mut toml = "[metrics]\nlisten = \"\"\n".to_string();
    for t in targets {
        match batches {
            None => {
                cmd.args(["--target", t]);
            }
            Some((b, k)) => toml.push_str(&format!(
                "[[targets]]\nurl = \"{t}\"\nthreads = 3\nbatch_cmds = {b}\nin_flight = {k}\n"
            )),
        }
    }
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, toml).unwrap();
    cmd.arg("--config").arg(&cfg);
    RelayProc(
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("spawn pika-relay run"),
    )
}

/// `INFO targets` over the relay's admin port.
fn info_targets(port: u16) -> Option<String> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    c.write_all(b"*2\r\n$4\r\ninfo\r\n$7\r\ntargets\r\n").ok()?;
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while n < buf.len() {
        match c.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
        if buf[..n].ends_with(b"\r\n\r\n") {
            break;
        }
    }
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    let line = info.lines().find(|l| l.starts_with("target0:"))?;
    line.split(',').find_map(|kv| {
        kv.strip_prefix(&format!("{key}="))
            .or_else(|| kv.strip_prefix(&format!("target0:{key}=")))
    })
}

async fn wait_info(port: u16, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + T;
    loop {
        if let Some(i) = info_targets(port) {
            if f(&i) {
                return i;
            }
            if Instant::now() > deadline {
                panic!("{what}: INFO targets never matched: {i}");
            }
        } else if Instant::now() > deadline {
            panic!("{what}: no INFO from the relay");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sigkill_run(flavor: Flavor, batches: Option<(usize, usize)>) {
    init_log();
    let tmp = tempfile::tempdir().unwrap();
    let m = Arc::new(master(flavor, tmp.path()).await);
    write_round(&m, "w1"); // in the dump
                           // Big keys, loaded in chunks (the reader cuts at 512 members).
    let mut h: Vec<Vec<u8>> = vec![b"hmset".to_vec(), b"big:h".to_vec()];
    let mut z: Vec<Vec<u8>> = vec![b"zadd".to_vec(), b"big:z".to_vec()];
    let mut l: Vec<Vec<u8>> = vec![b"rpush".to_vec(), b"big:l".to_vec()];
    for i in 0..1500 {
        h.extend([format!("f{i}").into_bytes(), format!("v{i}").into_bytes()]);
        z.extend([
            format!("{}.25", i).into_bytes(),
            format!("m{i}").into_bytes(),
        ]);
        l.push(format!("e{i}").into_bytes());
    }
    for c in [&h, &z, &l] {
        m.write(c).unwrap();
    }
    // Within Pika's i32 seconds (dumps store expiry as i32, as a real Pika does).
    m.write(&[&b"expireat"[..], b"big:h", b"2145916800"])
        .unwrap();
    let mut redis = RedisServer::start(&tmp.path().join("redis"), false);
    let port = net::free_base(&[1000, 2000, 3000]);
    let data = tmp.path().join("relay");
    let log = |i: u32| tmp.path().join(format!("relay-{i}.log"));
    let targets = vec![redis.url()];
    let mut relay = spawn_relay(&m, port, &data, &targets, batches, &log(0));
    write_round(&m, "w2"); // streamed
    converged(&m, redis.port, "after the full sync").await;
    let info = wait_info(port, "streaming", |i| {
        field(i, "state") == Some("streaming")
    })
    .await;
    assert_eq!(field(&info, "full_syncs"), Some("1"), "{info}");
    assert_eq!(field(&info, "conns"), Some("3"), "{info}");
    assert_eq!(field(&info, "transactions"), Some("1"), "{info}");

    // Continuous writes, non-idempotent ones included; the relay is SIGKILLed and restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let writer = {
        let (m, stop, rounds) = (m.clone(), stop.clone(), rounds.clone());
        tokio::spawn(async move {
            let mut r = 0u64;
            while !stop.load(Ordering::SeqCst) {
                write_round(&m, &format!("r{r}"));
                for c in workload::small_sets(&format!("s{r}"), 100) {
                    m.write(&c).unwrap();
                }
                m.write(&[&b"incr"[..], b"counter"]).unwrap();
                m.write(&[&b"rpush"[..], b"log", r.to_string().as_bytes()])
                    .unwrap();
                m.write(&[&b"sadd"[..], b"members", r.to_string().as_bytes()])
                    .unwrap();
                r += 1;
                rounds.store(r, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    for run in 1..=3u32 {
        tokio::time::sleep(Duration::from_millis(700 + 300 * u64::from(run))).await;
        let _ = relay.0.kill(); // SIGKILL
        let _ = relay.0.wait();
        relay = spawn_relay(&m, port, &data, &targets, batches, &log(run));
        // The restarted relay resumes from the target's markers: no second full sync.
        let info = wait_info(port, "streaming after restart", |i| {
            field(i, "state") == Some("streaming")
        })
        .await;
        assert_eq!(field(&info, "full_syncs"), Some("0"), "run {run}: {info}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    converged(&m, redis.port, "after the SIGKILLs").await;
    let n = rounds.load(Ordering::SeqCst);
    let mut c = redis.client();
    assert_eq!(
        c.cmd(&["GET", "counter"]),
        pika_relay::formats::resp::Reply::Bulk(Some(n.to_string().into_bytes())),
        "counter incremented exactly {n} times"
    );
    assert_eq!(
        c.cmd(&["LLEN", "log"]),
        pika_relay::formats::resp::Reply::Integer(n as i64),
        "one push per round"
    );
    let info = info_targets(port).unwrap();
    assert_eq!(field(&info, "lag_entries"), Some("0"), "{info}");
    assert!(
        data.join("targets").read_dir().unwrap().count() == 1,
        "state file kept"
    );
    drop(relay);
    redis.stop();
    m.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v30_master_to_redis_full_sync_stream_and_sigkills() {
    sigkill_run(Flavor::V30, None).await;
}

/// Batches of 4 commands and up to 16 of them on the wire per connection: each SIGKILL lands
/// with many batches in flight, each carrying its own marker; still exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_batches_in_flight_and_sigkills() {
    sigkill_run(Flavor::V30, Some((4, 16))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v23_master_to_redis_full_sync_stream_and_sigkills() {
    sigkill_run(Flavor::V23, None).await;
}

async fn start_relay(
    m: &OldMaster,
    port: u16,
    data: &Path,
    targets: Vec<TargetSection>,
) -> RelayHandle {
    let mut cfg = Config::default();
    cfg.upstream.master = m.addr().to_string();
    cfg.relay.port = port;
    cfg.relay.bind = "127.0.0.1".parse().unwrap();
    cfg.relay.advertise_ip = "127.0.0.1".into();
    cfg.relay.data_dir = data.to_path_buf();
    cfg.metrics.listen = "127.0.0.1:0".into();
    cfg.targets = targets;
    let tuning = Tuning {
        upstream_timings: Some(Timings::fast()),
        purge_interval: Some(Duration::from_millis(500)),
    };
    Relay::start_tuned(cfg, tuning).await.expect("relay starts")
}

fn target(relay: &RelayHandle, name: &str) -> TargetStatus {
    relay
        .status()
        .targets
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"))
}

async fn wait_target(
    relay: &RelayHandle,
    name: &str,
    what: &str,
    f: impl Fn(&TargetStatus) -> bool,
) -> TargetStatus {
    let deadline = Instant::now() + T;
    loop {
        let t = target(relay, name);
        if f(&t) {
            return t;
        }
        if Instant::now() > deadline {
            panic!("{what}: {t:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_restarted_resumes_and_a_read_only_one_stops_alone() {
    init_log();
    let tmp = tempfile::tempdir().unwrap();
    let m = master(Flavor::V30, tmp.path()).await;
    write_round(&m, "w1");
    let mut a = RedisServer::start(&tmp.path().join("a"), true);
    let b = RedisServer::start(&tmp.path().join("b"), false);
    let t = |url: String, name: &str| TargetSection {
        url,
        name: name.into(),
        threads: 2,
        on_error: OnError::Stop,
        ..Default::default()
    };
    let port = net::free_base(&[1000, 2000, 3000]);
    let data = tmp.path().join("relay");
    let relay = start_relay(&m, port, &data, vec![t(a.url(), "a"), t(b.url(), "b")]).await;
    write_round(&m, "w2");
    converged(&m, a.port, "a").await;
    converged(&m, b.port, "b").await;

    // Target a goes away (its data and markers survive in its AOF) and comes back.
    a.stop();
    write_round(&m, "w3");
    wait_target(&relay, "a", "a reconnecting", |t| {
        t.state == TargetState::Reconnecting
    })
    .await;
    converged(&m, b.port, "b while a is down").await;
    a.restart();
    write_round(&m, "w4");
    converged(&m, a.port, "a after its restart").await;
    let st = target(&relay, "a");
    assert_eq!(st.full_syncs, 1, "a resumed from its markers: {st:?}");
    assert!(st.reconnects >= 1, "{st:?}");
    assert_eq!(st.state, TargetState::Streaming);

    // Target b turns read-only: its sink stops with a clear error; a keeps going.
    let mut bc = b.client();
    bc.cmd(&["REPLICAOF", "127.0.0.1", "1"]);
    write_round(&m, "w5");
    let st = wait_target(&relay, "b", "b stopped", |t| {
        t.state == TargetState::Stopped
    })
    .await;
    let e = st.last_error.clone().unwrap();
    assert!(e.contains("READONLY"), "{e}");
    assert!(e.contains("w5:"), "names the key: {e}");
    assert!(e.contains("journal position"), "names the position: {e}");
    write_round(&m, "w6");
    converged(&m, a.port, "a while b is stopped").await;
    let mut mc = tokio::net::TcpStream::connect(relay.ports.metrics.unwrap())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut mc, b"GET /metrics HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut mc, &mut text)
        .await
        .unwrap();
    assert!(
        text.contains("pika_relay_target_up{target=\"a\",state=\"streaming\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pika_relay_target_up{target=\"b\",state=\"stopped\"} 0"),
        "{text}"
    );

    // Writable again and the relay restarted: b resumes from its markers, exactly.
    bc.cmd(&["REPLICAOF", "NO", "ONE"]);
    relay.shutdown().await.unwrap();
    let relay = start_relay(&m, port, &data, vec![t(a.url(), "a"), t(b.url(), "b")]).await;
    write_round(&m, "w7");
    converged(&m, b.port, "b after the relay restart").await;
    converged(&m, a.port, "a after the relay restart").await;
    assert_eq!(
        target(&relay, "b").full_syncs,
        0,
        "b resumed without a full sync"
    );
    relay.shutdown().await.unwrap();
    m.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_multi_and_the_skip_policy() {
    init_log();
    let tmp = tempfile::tempdir().unwrap();
    let m = master(Flavor::V30, tmp.path()).await;
    write_round(&m, "w1");
    // MULTI renamed away: the target looks like a Pika ≤ 3.4 or Codis (no transactions).
    let r = RedisServer::start_with(
        &tmp.path().join("r"),
        false,
        &["--rename-command", "MULTI", ""],
    );
    let port = net::free_base(&[1000, 2000, 3000]);
    let t = TargetSection {
        url: r.url(),
        name: "plain".into(),
        threads: 2,
        on_error: OnError::Skip,
        ..Default::default()
    };
    let relay = start_relay(&m, port, &tmp.path().join("relay"), vec![t]).await;
    write_round(&m, "w2");
    converged(&m, r.port, "plain target").await;
    let st = target(&relay, "plain");
    assert!(!st.transactions, "{st:?}");
    assert_eq!(st.state, TargetState::Streaming);

    // A key of another type on the target: the master's hset is refused (WRONGTYPE), skipped
    // and counted; everything else keeps flowing.
    r.client().cmd(&["SET", "w3:h", "not a hash"]);
    write_round(&m, "w3");
    let st = wait_target(&relay, "plain", "skip counted", |t| t.skipped >= 1).await;
    assert_eq!(st.state, TargetState::Streaming, "{st:?}");
    write_round(&m, "w4");
    converged_but(&m, r.port, "only w3:h may differ", |d| {
        d.len() == 1 && d[0].starts_with("value of w3:h")
    })
    .await;
    relay.shutdown().await.unwrap();
    m.shutdown();
}

/// A batch refused as a whole (`EXECABORT`: the target's ACL forbids `APPEND`) while later
/// batches of the same connection were already on the wire and are applied: the marker no
/// longer tells what is applied, so the sink drops it and stops; after the fix, a relay restart
/// full-syncs the target and it converges exactly.
/// A relay whose target `name` (one connection, one command per batch, 8 in flight, policy
/// `on_error`) has just been sent a batch its ACL refuses as a whole (`APPEND`) with 30 `SET`
/// batches on the wire behind it, which it applies: the target was paused while the relay
/// queued them.
async fn refused_batch_before_applied_ones(
    tmp: &Path,
    name: &str,
    on_error: OnError,
) -> (OldMaster, RedisServer, u16, TargetSection, RelayHandle) {
    let m = master(Flavor::V30, tmp).await;
    write_round(&m, "w1");
    let r = RedisServer::start(&tmp.join("r"), false);
    let port = net::free_base(&[1000, 2000, 3000]);
    let t = TargetSection {
        url: r.url(),
        name: name.into(),
        threads: 1,
        batch_cmds: 1,
        in_flight: 8,
        on_error,
        ..Default::default()
    };
    let relay = start_relay(&m, port, &tmp.join("relay"), vec![t.clone()]).await;
    converged(&m, r.port, "before").await;
    let mut c = r.client();
    assert_eq!(
        c.cmd(&["ACL", "SETUSER", "default", "-append"]),
        pika_relay::formats::resp::Reply::Simple("OK".into())
    );
    // While the target is paused the relay puts 8 one-command batches on the wire: the APPEND's
    // first, then SETs, which the target applies after refusing the APPEND's batch.
    c.cmd(&["CLIENT", "PAUSE", "2000"]);
    m.write(&[&b"append"[..], b"h:a", b"x"]).unwrap();
    for c in workload::small_sets("h", 30) {
        m.write(&c).unwrap();
    }
    (m, r, port, t, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_before_an_applied_one_forces_a_full_sync() {
    init_log();
    let tmp = tempfile::tempdir().unwrap();
    let (m, r, port, t, relay) =
        refused_batch_before_applied_ones(tmp.path(), "hole", OnError::Stop).await;
    let data = tmp.path().join("relay");
    let st = wait_target(&relay, "hole", "stopped", |t| {
        t.state == TargetState::Stopped
    })
    .await;
    let e = st.last_error.clone().unwrap();
    assert!(e.contains("NOPERM"), "{e}");
    assert!(e.contains("full-synced"), "{e}");
    let mut c = r.client();
    assert_eq!(
        c.cmd(&["EXISTS", "pika-relay:applied:hole:0"]),
        pika_relay::formats::resp::Reply::Integer(0),
        "the marker was dropped"
    );
    assert_eq!(
        c.cmd(&["EXISTS", "h:1"]),
        pika_relay::formats::resp::Reply::Integer(1),
        "a later batch was applied"
    );
    c.cmd(&["ACL", "SETUSER", "default", "+append"]);
    relay.shutdown().await.unwrap();
    let relay = start_relay(&m, port, &data, vec![t]).await;
    converged(&m, r.port, "after the full sync").await;
    assert_eq!(target(&relay, "hole").full_syncs, 1, "full-synced again");
    relay.shutdown().await.unwrap();
    m.shutdown();
}

/// Calls of each command the target ran so far (`INFO commandstats`).
fn command_calls(c: &mut redis::Client) -> std::collections::HashMap<String, u64> {
    let text = match c.cmd(&["INFO", "commandstats"]) {
        pika_relay::formats::resp::Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO commandstats: {other:?}"),
    };
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// Runs of plain `set`s reach the target as `MSET`s: a batch of nothing but sets carries its
/// marker inside its `MSET` (no `MULTI`, no `SET`); sets, counters and appends on the same keys
/// keep their order; the data is exact. With `coalesce_sets = false` the same stream arrives as
/// `SET`s in `MULTI` batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_sets_go_as_msets_in_order_and_exact() {
    init_log();
    for coalesce in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let m = master(Flavor::V30, tmp.path()).await;
        write_round(&m, "w1");
        let r = RedisServer::start(&tmp.path().join("r"), false);
        let port = net::free_base(&[1000, 2000, 3000]);
        let t = TargetSection {
            url: r.url(),
            name: "runs".into(),
            threads: 1,
            coalesce_sets: coalesce,
            ..Default::default()
        };
        let relay = start_relay(&m, port, &tmp.path().join("relay"), vec![t]).await;
        converged(&m, r.port, "after the full sync").await;
        let mut c = r.client();
        let before = command_calls(&mut c);
        for cmd in workload::small_sets("s", 2000) {
            m.write(&cmd).unwrap();
        }
        converged(&m, r.port, "after the sets").await;
        let after = command_calls(&mut c);
        let delta = |name: &str| {
            after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
        };
        if coalesce {
            assert!(delta("mset") >= 1, "{after:?}");
            assert!(delta("mset") < 2000, "{after:?}");
            assert_eq!((delta("set"), delta("multi")), (0, 0), "{after:?}");
        } else {
            assert_eq!(delta("mset"), 0, "{after:?}");
            assert!(delta("set") >= 2000 && delta("multi") >= 1, "{after:?}");
        }
        // The same keys set, counted and appended to in turn: any reordering shows in the values.
        for i in 0..300 {
            let k = format!("o:{}", i % 7).into_bytes();
            let v = i.to_string().into_bytes();
            let cmd: Vec<&[u8]> = match i % 3 {
                0 => vec![b"set", &k, &v],
                1 => vec![b"incr", &k],
                _ => vec![b"append", &k, b"5"],
            };
            m.write(&cmd).unwrap();
        }
        converged(&m, r.port, "after sets, counters and appends").await;
        if coalesce {
            // A target that turns read-only refuses a batch's MSET as a whole: the sink stops
            // naming the run, its first key and position; nothing of it was applied, so after
            // the fix a restarted relay resumes from the marker and ends exact.
            c.cmd(&["REPLICAOF", "127.0.0.1", "1"]);
            for cmd in workload::small_sets("ro", 50) {
                m.write(&cmd).unwrap();
            }
            let st = wait_target(&relay, "runs", "stopped", |t| {
                t.state == TargetState::Stopped
            })
            .await;
            let e = st.last_error.clone().unwrap();
            for want in [
                "READONLY",
                "MSET",
                "sent as one MSET",
                "key `ro:0`",
                "journal position",
            ] {
                assert!(e.contains(want), "{want}: {e}");
            }
            assert_eq!(
                c.cmd(&["EXISTS", "ro:0"]),
                pika_relay::formats::resp::Reply::Integer(0)
            );
            c.cmd(&["REPLICAOF", "NO", "ONE"]);
            relay.shutdown().await.unwrap();
            let t = TargetSection {
                url: r.url(),
                name: "runs".into(),
                threads: 1,
                ..Default::default()
            };
            let relay = start_relay(&m, port, &tmp.path().join("relay"), vec![t]).await;
            converged(&m, r.port, "after the read-only target was fixed").await;
            assert_eq!(
                target(&relay, "runs").full_syncs,
                0,
                "resumed from the marker"
            );
            relay.shutdown().await.unwrap();
        } else {
            relay.shutdown().await.unwrap();
        }
        m.shutdown();
    }
}

/// The same hole as above under policy `skip`: the sink neither stops nor loops. It full-syncs
/// once, then runs with one batch on the wire, so the batch the target keeps refusing (its ACL
/// still forbids `APPEND`) is skipped in order while everything else is applied; the full syncs
/// stop there (before the fix each one rebuilt the same hole, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_before_an_applied_one_under_skip_full_syncs_once_then_skips_in_order() {
    init_log();
    let tmp = tempfile::tempdir().unwrap();
    let (m, r, _, _, relay) =
        refused_batch_before_applied_ones(tmp.path(), "holeskip", OnError::Skip).await;
    let st = wait_target(
        &relay,
        "holeskip",
        "full-synced after the hole, then skipping",
        |t| t.full_syncs >= 2 && t.skipped >= 1 && t.state == TargetState::Streaming,
    )
    .await;
    assert!(st.reconnects >= 1, "{st:?}");
    // More writes after the skip (every_type's rounds hold an `append`, still refused: sets).
    for c in workload::small_sets("after", 30) {
        m.write(&c).unwrap();
    }
    converged_but(&m, r.port, "only h:a may differ", |d| d == ["missing h:a"]).await;
    let full = target(&relay, "holeskip").full_syncs;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = target(&relay, "holeskip");
    assert_eq!(st.full_syncs, full, "no more full syncs: {st:?}");
    assert_eq!(st.state, TargetState::Streaming, "{st:?}");
    r.client().cmd(&["ACL", "SETUSER", "default", "+append"]);
    relay.shutdown().await.unwrap();
    m.shutdown();
}
