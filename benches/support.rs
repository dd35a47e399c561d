//! Shared by the relay harnesses: a relay child process, free ports, RSS, waiting.

#![allow(dead_code)]

use pika_relay::sim::new_slave::{NewSlave, NewSlaveConfig, RsyncDaemonKind};
use pika_relay::sim::old_master::MasterTimings;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_base(shifts: &[u16]) -> u16 {
    for _ in 0..500 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p > 60000 {
            continue;
        }
        if shifts
            .iter()
            .all(|s| std::net::TcpListener::bind(("127.0.0.1", p + s)).is_ok())
        {
            return p;
        }
    }
    panic!("no free ports");
}

/// Starts `pika-relay run` as a child process.
pub fn spawn_relay(master: &str, port: u16, data: &Path, log: &Path) -> Child {
    spawn_relay_with(master, port, data, log, "sync = \"group\"\n")
}

/// [`spawn_relay`] with these lines in the config file's `[journal]` section.
pub fn spawn_relay_with(
    master: &str,
    port: u16,
    data: &Path,
    log: &Path,
    journal_toml: &str,
) -> Child {
    let cfg = data.with_extension("toml");
    std::fs::write(
        &cfg,
        format!("[metrics]\nlisten = \"\"\n[journal]\n{journal_toml}"),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_pika-relay"))
        .args([
            "run",
            "--master",
            master,
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--advertise-ip",
            "127.0.0.1",
        ])
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(&cfg)
        .args(["--skip-master-check", "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn pika-relay run")
}

/// The master double's timers: fast, except the heartbeat idle limits, which stay Pika's (20 s /
/// 30 s): the relay process runs Pika's own timers (a ping every second), and with the 1 s idle
/// limit of the fast timers a loaded machine makes the master drop the heartbeat every few
/// seconds, so the bench would measure re-trysyncs instead of the stream.
pub fn master_timings() -> MasterTimings {
    let d = MasterTimings::default();
    MasterTimings {
        hb_idle: d.hb_idle,
        hb_stage1_limit: d.hb_stage1_limit,
        ..MasterTimings::fast()
    }
}

/// Resident memory of a process in bytes.
pub fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

pub async fn slave(relay_port: u16, dir: &Path) -> NewSlave {
    let s = free_base(&[1000]);
    let mut c = NewSlaveConfig::new(
        format!("127.0.0.1:{relay_port}").parse().unwrap(),
        s,
        dir.to_path_buf(),
    );
    c.rsync = RsyncDaemonKind::Embedded;
    c.reconnect_delay = Duration::from_millis(300);
    c.meta_sync_interval = Duration::from_millis(300);
    NewSlave::start(c).await.unwrap()
}

pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the state.
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// One `INFO <section>` on the relay's admin port (a blocking client, so sampling does not
/// compete with the doubles' runtime). `None` when the relay does not answer.
pub fn info(stream: &mut std::net::TcpStream, section: &str) -> Option<String> {
    use std::io::{Read, Write};
    let req = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") {
            let len: usize = std::str::from_utf8(&buf[1..nl]).ok()?.parse().ok()?;
            if buf.len() >= nl + 2 + len + 2 {
                return String::from_utf8(buf[nl + 2..nl + 2 + len].to_vec()).ok();
            }
        }
    }
}

/// `upstream_binlog_offset=<f> <o>` from an `INFO replication` text: the upstream position the
/// journal has synced.
pub fn info_upstream_pos(info: &str) -> Option<pika_relay::formats::BinlogPos> {
    info_pos(info, "upstream_binlog_offset=")
}

/// `upstream_received_offset=<f> <o>`: the upstream position the relay has received (absent
/// from relays before it was added).
pub fn info_received_pos(info: &str) -> Option<pika_relay::formats::BinlogPos> {
    info_pos(info, "upstream_received_offset=")
}

fn info_pos(info: &str, key: &str) -> Option<pika_relay::formats::BinlogPos> {
    let v = info.lines().find_map(|l| l.strip_prefix(key))?;
    let (f, o) = v.trim().split_once(' ')?;
    Some(pika_relay::formats::BinlogPos::new(
        f.parse().ok()?,
        o.parse().ok()?,
    ))
}
