//! Shared by the relay harnesses: a relay child process, free ports, RSS, waiting.

#![allow(dead_code)]

use pika_relay::sim::new_slave::{NewSlave, NewSlaveConfig, RsyncDaemonKind};
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
    let cfg = data.with_extension("toml");
    std::fs::write(
        &cfg,
        "[metrics]\nlisten = \"\"\n[journal]\nsync = \"group\"\n",
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
