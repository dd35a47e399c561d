//! Shared helpers for the rsync integration tests: the real `rsync` binary, dump-like trees,
//! tree comparison, and an embedded receiver with a temp staging root.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pika_relay::rsync::receiver::{Limits, ModuleSpec, Receiver, ReceiverConfig};
use tokio_util::sync::CancellationToken;

/// The real rsync client; the test fails (never skips) when it is missing.
pub fn rsync_bin() -> PathBuf {
    for p in ["/usr/bin/rsync", "/usr/local/bin/rsync", "/bin/rsync"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "the real `rsync` binary is required for this test: install it (apt-get install -y rsync)"
    );
}

/// Run rsync with `args`, killing it (by PID) after `secs` seconds.
pub async fn run_rsync(args: &[String], secs: u64) -> Output {
    let mut cmd = tokio::process::Command::new(rsync_bin());
    cmd.args(args)
        .env_remove("RSYNC_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn rsync");
    match tokio::time::timeout(Duration::from_secs(secs), child.wait_with_output()).await {
        Ok(o) => o.expect("rsync output"),
        Err(_) => panic!("rsync {args:?} did not finish within {secs}s"),
    }
}

/// Print a failed rsync's output and panic.
pub fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: rsync exited {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A password file as Pika writes it (no newline, mode 600).
pub fn password_file(dir: &Path, password: &str) -> PathBuf {
    let p = dir.join("rsync.secret");
    std::fs::write(&p, password).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The five Pika 3.x type directories.
pub const TYPES: [&str; 5] = ["strings", "hashes", "lists", "sets", "zsets"];

/// Build a dump like Pika's bgsave: 5 type dirs of RocksDB-like files (one empty, one of
/// 20 MiB, UTF-8 names, a nested dir) and the 5-line `info` file.
pub fn make_dump(root: &Path, big_mib: usize) {
    for (t, ty) in TYPES.iter().enumerate() {
        let d = root.join(ty);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("CURRENT"), b"MANIFEST-000008\n").unwrap();
        std::fs::write(d.join("MANIFEST-000008"), bytes(t as u64, 3000)).unwrap();
        std::fs::write(d.join("OPTIONS-000005"), bytes(t as u64 + 10, 5000)).unwrap();
        std::fs::write(d.join("000007.sst"), bytes(t as u64 + 20, 70_000 + t)).unwrap();
        std::fs::write(d.join("LOCK"), b"").unwrap();
        std::fs::write(d.join("données-é.log"), "日本語 ünïcödé\n".repeat(50)).unwrap();
        std::fs::create_dir_all(d.join("sub-a")).unwrap();
        std::fs::write(d.join("sub-a/x"), bytes(t as u64 + 30, 10)).unwrap();
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/y"), b"y").unwrap();
        std::fs::write(d.join("sub.txt"), b"file before dir").unwrap();
    }
    std::fs::write(root.join("strings/000009.sst"), bytes(99, big_mib << 20)).unwrap();
    std::fs::write(root.join("info"), "0s\n127.0.0.1\n29221\n0\n156700\n").unwrap();
}

/// All regular files under `root`, relative, sorted.
pub fn list_files(root: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &e.path(), out);
            } else {
                out.push(e.path().strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut v = vec![];
    walk(root, root, &mut v);
    v.sort();
    v
}

/// Assert that `got` holds exactly the files of `want`, byte for byte.
pub fn assert_same_tree(want: &Path, got: &Path) {
    let (a, b) = (list_files(want), list_files(got));
    assert_eq!(
        a,
        b,
        "file sets differ between {} and {}",
        want.display(),
        got.display()
    );
    for f in &a {
        let (x, y) = (
            std::fs::read(want.join(f)).unwrap(),
            std::fs::read(got.join(f)).unwrap(),
        );
        assert!(
            x == y,
            "{} differs ({} vs {} bytes)",
            f.display(),
            x.len(),
            y.len()
        );
    }
}

/// An embedded receiver on 127.0.0.1 with a fresh staging root.
pub struct TestReceiver {
    pub rx: Receiver,
    pub staging: tempfile::TempDir,
    pub port: u16,
}

pub async fn start_receiver(modules: Vec<ModuleSpec>, limits: Limits) -> TestReceiver {
    let staging = tempfile::tempdir().unwrap();
    let mut cfg = ReceiverConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        staging.path().join("stage"),
        modules,
    );
    cfg.limits = limits;
    let rx = Receiver::start(cfg, CancellationToken::new())
        .await
        .unwrap();
    let port = rx.local_addr.port();
    TestReceiver { rx, staging, port }
}

impl TestReceiver {
    pub fn module_root(&self, module: &str) -> PathBuf {
        self.staging.path().join("stage").join(module)
    }
    /// Next event, or panic after 30 s.
    pub async fn event(&mut self) -> pika_relay::rsync::receiver::TransferEvent {
        tokio::time::timeout(Duration::from_secs(30), self.rx.events.recv())
            .await
            .expect("no transfer event within 30s")
            .unwrap()
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Keep `Command` in scope for tests that start daemons.
pub fn command(p: &Path) -> Command {
    Command::new(p)
}
