//! Checks made before the relay connects anywhere, each failing with a message that says what to
//! fix: the four ports free, the data directory writable with room, the master reachable and
//! answering, and whether the master's binlog retention outlasts a full sync at its write rate.

use crate::config::Config;
use crate::formats::resp::{encode_argv, parse_reply, Reply};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Port shifts the relay listens on.
pub const SHIFTS: [(u16, &str); 4] = [
    (0, "probes, PING and INFO"),
    (1000, "binlog pushed by the old master"),
    (2000, "new slaves' replication"),
    (3000, "full sync pushed by the old master's rsync"),
];

/// A failed check.
#[derive(Debug, thiserror::Error)]
#[error("pre-flight: {0}")]
pub struct PreflightError(pub String);

/// Result of the master check, for the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MasterFacts {
    /// `binlog_offset` from `info log`.
    pub binlog_offset: Option<(u32, u64)>,
    /// `expire_logs_nums`.
    pub expire_logs_nums: Option<u64>,
    /// `binlog-file-size` (from `config get`).
    pub binlog_file_size: Option<u64>,
    /// Bytes per second the master's binlog grew during the sample.
    pub write_rate: Option<f64>,
    /// `db_size` from `info data`, if the version reports it.
    pub db_size: Option<u64>,
    /// Warnings for the operator.
    pub warnings: Vec<String>,
}

/// The four ports must be free on the bind address.
pub fn check_ports(cfg: &Config) -> Result<(), PreflightError> {
    for (shift, what) in SHIFTS {
        let port = cfg.relay.port + shift;
        let addr = SocketAddr::new(cfg.relay.bind, port);
        if let Err(e) = TcpListener::bind(addr) {
            return Err(PreflightError(format!(
                "port {port} (R+{shift}, {what}) is not free on {}: {e}; stop what uses it or pick another --port",
                cfg.relay.bind
            )));
        }
    }
    Ok(())
}

/// The data directory must be creatable, writable and have `min_free` bytes.
pub fn check_data_dir(dir: &Path, min_free: u64) -> Result<u64, PreflightError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| PreflightError(format!("data dir {}: cannot create: {e}", dir.display())))?;
    let probe = dir.join(".pika-relay-write-test");
    std::fs::write(&probe, b"ok")
        .map_err(|e| PreflightError(format!("data dir {}: not writable: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    let free = free_bytes(dir)?;
    if free < min_free {
        return Err(PreflightError(format!(
            "data dir {} has {} MiB free, at least {} MiB needed (journal retention + one dump); free space or point --data-dir elsewhere",
            dir.display(),
            free >> 20,
            min_free >> 20
        )));
    }
    Ok(free)
}

/// Bytes available to an unprivileged user on the file system holding `dir` (`statvfs`:
/// `f_bavail × f_frsize`). A failed `statvfs` is an error, never a pass.
pub fn free_bytes(dir: &Path) -> Result<u64, PreflightError> {
    let st = rustix::fs::statvfs(dir).map_err(|e| {
        PreflightError(format!(
            "data dir {}: cannot read the free space (statvfs): {e}; check the path and its mount",
            dir.display()
        ))
    })?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A minimal RESP client for the checks.
pub struct MiniClient {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl MiniClient {
    /// Connects with a timeout.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, String> {
        let sock = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("no answer within {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        Ok(MiniClient {
            sock,
            buf: Vec::new(),
        })
    }

    /// Sends a command and reads one reply.
    pub async fn call(&mut self, argv: &[&[u8]]) -> Result<Reply, String> {
        self.sock
            .write_all(&encode_argv(argv))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            if let Some((r, used)) = parse_reply(&self.buf).map_err(|e| e.to_string())? {
                self.buf.drain(..used);
                return Ok(r);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(Duration::from_secs(5), self.sock.read(&mut chunk))
                .await
                .map_err(|_| "no reply within 5 s".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim()))
}

fn bulk_text(r: &Reply) -> String {
    match r {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Connects to the master, authenticates, reads `info log`, `config get binlog-file-size` and
/// `info data`, samples the binlog position twice `sample` apart, and warns when the binlog
/// would be purged before a full sync of the current data size could finish at `transfer_rate`
/// bytes/s.
pub async fn check_master(
    cfg: &Config,
    sample: Duration,
    transfer_rate: f64,
) -> Result<MasterFacts, PreflightError> {
    let m = &cfg.upstream.master;
    let err = |what: &str, e: String| PreflightError(format!("master {m}: {what}: {e}"));
    let mut c = MiniClient::connect(m, Duration::from_secs(3))
        .await
        .map_err(|e| {
            err(
                "unreachable",
                format!("{e}; check --master and the network"),
            )
        })?;
    if !cfg.upstream.masterauth.is_empty() {
        match c
            .call(&[b"auth", cfg.upstream.masterauth.as_bytes()])
            .await
            .map_err(|e| err("auth", e))?
        {
            Reply::Simple(_) => {}
            Reply::Error(e) => return Err(err("auth refused", format!("{e}; check --masterauth"))),
            other => return Err(err("auth", format!("unexpected reply {other:?}"))),
        }
    }
    let mut facts = MasterFacts::default();
    let info_log = |r: Reply| -> Result<String, PreflightError> {
        match r {
            Reply::Error(e) if e.contains("NOAUTH") => {
                Err(err("needs a password", "pass --masterauth".into()))
            }
            Reply::Error(e) => Err(err("info log", e)),
            r => Ok(bulk_text(&r)),
        }
    };
    let pos = |t: &str| -> Option<(u32, u64)> {
        let v = field(t, "binlog_offset:")?;
        let (f, o) = v.split_once(' ')?;
        Some((f.parse().ok()?, o.parse().ok()?))
    };
    let t1 = info_log(
        c.call(&[b"info", b"log"])
            .await
            .map_err(|e| err("info log", e))?,
    )?;
    facts.binlog_offset = pos(&t1);
    facts.expire_logs_nums = field(&t1, "expire_logs_nums:").and_then(|v| v.parse().ok());
    if let Ok(Reply::Array(Some(items))) = c.call(&[b"config", b"get", b"binlog-file-size"]).await {
        facts.binlog_file_size = items.get(1).map(bulk_text).and_then(|v| v.parse().ok());
    }
    if let Ok(r) = c.call(&[b"info", b"data"]).await {
        facts.db_size = field(&bulk_text(&r), "db_size:").and_then(|v| v.parse().ok());
    }
    if facts.binlog_offset.is_none() {
        facts.warnings.push(format!(
            "master {m} did not report binlog_offset in `info log`: is it a Pika 2.3/3.0 master?"
        ));
        return Ok(facts);
    }
    tokio::time::sleep(sample).await;
    let t2 = info_log(
        c.call(&[b"info", b"log"])
            .await
            .map_err(|e| err("info log", e))?,
    )?;
    let file_size = facts
        .binlog_file_size
        .unwrap_or(cfg.upstream.master_binlog_file_size);
    if let (Some(a), Some(b)) = (facts.binlog_offset, pos(&t2)) {
        let grown = (u64::from(b.0.saturating_sub(a.0)) * file_size + b.1).saturating_sub(a.1);
        facts.write_rate = Some(grown as f64 / sample.as_secs_f64());
    }
    if let Some(fs) = facts.binlog_file_size {
        if fs != cfg.upstream.master_binlog_file_size {
            facts.warnings.push(format!(
                "master {m} has binlog-file-size {fs} but upstream.master_binlog_file_size is {}: set it to {fs}",
                cfg.upstream.master_binlog_file_size
            ));
        }
    }
    if let (Some(rate), Some(nums)) = (facts.write_rate, facts.expire_logs_nums) {
        let keep = nums.max(10) * file_size;
        let db = facts.db_size.unwrap_or(0) as f64;
        let sync_secs = db / transfer_rate.max(1.0);
        if rate > 0.0 {
            let purge_secs = keep as f64 / rate;
            if purge_secs < 2.0 * sync_secs {
                facts.warnings.push(format!(
                    "master {m} keeps {nums} binlog files of {file_size} bytes ({:.0} s at its current {:.0} bytes/s) but a full sync of {} MiB takes about {:.0} s: raise expire-logs-nums on the master before starting, or the relay may loop on full syncs",
                    purge_secs,
                    rate,
                    facts.db_size.unwrap_or(0) >> 20,
                    sync_secs
                ));
            }
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_port_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = l.local_addr().unwrap().port();
        let mut cfg = Config::default();
        cfg.relay.bind = "127.0.0.1".parse().unwrap();
        cfg.relay.port = busy;
        let e = check_ports(&cfg).unwrap_err().0;
        assert!(e.contains(&format!("port {busy} (R+0")), "{e}");
    }

    #[test]
    fn data_dir_checks() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_data_dir(&d.path().join("x"), 1).is_ok());
        let e = check_data_dir(&d.path().join("x"), u64::MAX - 1)
            .unwrap_err()
            .0;
        assert!(e.contains("MiB free"), "{e}");
        let f = d.path().join("file");
        std::fs::write(&f, b"").unwrap();
        assert!(check_data_dir(&f.join("sub"), 1)
            .unwrap_err()
            .0
            .contains("cannot create"));
    }

    #[test]
    fn free_space_comes_from_statvfs_and_a_failure_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let free = free_bytes(d.path()).unwrap();
        assert!(free > 0);
        // Agrees with df (same file system, a moment apart: within 5 % or 64 MiB).
        let out = std::process::Command::new("df")
            .arg("-Pk")
            .arg(d.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let df: u64 = text
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024;
        let diff = free.abs_diff(df);
        assert!(diff <= (df / 20).max(64 << 20), "statvfs {free} vs df {df}");
        let missing = d.path().join("no-such-dir");
        let e = free_bytes(&missing).unwrap_err().0;
        assert!(e.contains("statvfs") && e.contains("no-such-dir"), "{e}");
    }

    /// A fake old master answering the pre-flight's commands: `info log` with the text recorded
    /// from a real master (the second time with the binlog `grown` bytes further), `config get
    /// binlog-file-size` and `info data` (`db_size`, not in the recordings: constructed).
    async fn recorded_master(info_log: String, grown: u64, db_size: u64) -> SocketAddr {
        use crate::formats::resp::parse_argv;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut calls = 0;
            loop {
                while let Ok(Some((argv, used))) = parse_argv(&buf) {
                    buf.drain(..used);
                    let cmd: Vec<String> = argv
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
                        .collect();
                    let bulk = |t: &str| format!("${}\r\n{t}\r\n", t.len());
                    let reply = match cmd.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                        ["info", "log"] => {
                            calls += 1;
                            let mut t = info_log.clone();
                            if calls > 1 {
                                let (f, o) = field(&info_log, "binlog_offset:")
                                    .unwrap()
                                    .split_once(' ')
                                    .unwrap();
                                let o: u64 = o.parse().unwrap();
                                t = t.replace(
                                    &format!("binlog_offset:{f} {o}"),
                                    &format!("binlog_offset:{f} {}", o + grown),
                                );
                            }
                            bulk(&t)
                        }
                        ["config", "get", "binlog-file-size"] => {
                            format!("*2\r\n{}{}", bulk("binlog-file-size"), bulk("104857600"))
                        }
                        ["info", "data"] => bulk(&format!("# Data\r\ndb_size:{db_size}\r\n")),
                        _ => "-ERR unexpected\r\n".to_string(),
                    };
                    s.write_all(reply.as_bytes()).await.unwrap();
                }
                let mut chunk = [0u8; 4096];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
        addr
    }

    fn recorded(version: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(version)
            .join("master-info-log.txt");
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[tokio::test]
    async fn master_check_reads_the_recorded_info_log_of_3_0_16_and_2_3_6() {
        for (version, offset) in [("pika-3.0.16", 227_652), ("pika-2.3.6", 228_904)] {
            // A quiet master with a small dump: facts read, no warning.
            let mut cfg = Config::default();
            cfg.upstream.master = recorded_master(recorded(version), 0, 1 << 20)
                .await
                .to_string();
            let f = check_master(&cfg, Duration::from_millis(100), 100e6)
                .await
                .unwrap();
            assert_eq!(f.binlog_offset, Some((0, offset)), "{version}");
            assert_eq!(f.expire_logs_nums, Some(10), "{version}");
            assert_eq!(f.binlog_file_size, Some(104_857_600), "{version}");
            assert_eq!(f.write_rate, Some(0.0), "{version}");
            assert!(f.warnings.is_empty(), "{version}: {:?}", f.warnings);

            // Writing 100 MiB/s with a 1 TiB dump: 10 files last ~10 s, the sync ~3 h: warned.
            cfg.upstream.master = recorded_master(recorded(version), 10 << 20, 1 << 40)
                .await
                .to_string();
            let f = check_master(&cfg, Duration::from_millis(100), 100e6)
                .await
                .unwrap();
            let rate = f.write_rate.unwrap();
            assert!((rate - 104_857_600.0).abs() < 1.0, "{version}: {rate}");
            assert_eq!(f.warnings.len(), 1, "{version}: {:?}", f.warnings);
            assert!(
                f.warnings[0].contains("keeps 10 binlog files")
                    && f.warnings[0].contains("raise expire-logs-nums"),
                "{version}: {}",
                f.warnings[0]
            );
        }
    }

    #[tokio::test]
    async fn unreachable_master_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut cfg = Config::default();
        cfg.upstream.master = format!("127.0.0.1:{port}");
        let e = check_master(&cfg, Duration::from_millis(10), 1e8)
            .await
            .unwrap_err()
            .0;
        assert!(e.contains("unreachable") && e.contains("--master"), "{e}");
    }
}
