//! The sender against a real `rsync --daemon` configured as Pika 3.2.9 configures its slave.

mod rsync_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pika_relay::rsync::receiver::{Limits, ModuleSpec};
use pika_relay::rsync::sender::{push_dump, push_path, SenderConfig};
use rsync_support::*;

/// A stock daemon started with `--no-detach`, stopped by its PID on drop.
struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(password: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("dbsync/db0")).unwrap();
        for ty in TYPES {
            std::fs::create_dir_all(d.join("dbsync/db0").join(ty)).unwrap(); // PrepareRsync
        }
        std::fs::write(
            d.join("slash_rsync.secret"),
            format!("rsync_user:{password}"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("slash_rsync.secret"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        // As slash::StartRsync: run as root when started by root.
        use std::os::unix::fs::MetadataExt;
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let ids = if as_root {
            "uid = root\ngid = root\n"
        } else {
            ""
        };
        let conf = format!(
            "{ids}use chroot = no\nmax connections = 10\nlist = no\nstrict modes = no\npid file = {0}/rsync.pid\nlog file = {0}/rsyncd.log\nlock file = {0}/rsyncd.lock\n[document]\npath = {0}/dbsync/\nread only = no\nauth users = rsync_user\nsecrets file = {0}/slash_rsync.secret\n",
            d.display()
        );
        std::fs::write(d.join("rsyncd.conf"), conf).unwrap();
        let port = free_port();
        let child = command(&rsync_bin())
            .args([
                "--daemon",
                "--no-detach",
                &format!("--config={}", d.join("rsyncd.conf").display()),
                "--address=127.0.0.1",
                &format!("--port={port}"),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start rsync --daemon");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "rsync daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child, port, dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("dbsync")
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyncd.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cfg(port: u16, password: &str) -> SenderConfig {
    SenderConfig::pika(format!("127.0.0.1:{port}").parse().unwrap(), password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_dump_into_stock_daemon_is_byte_identical() {
    let d = Daemon::start("default");
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 20);
    let calls = Arc::new(AtomicU64::new(0));
    let mut c = cfg(d.port, "default");
    let seen = calls.clone();
    c.progress = Some(Arc::new(move |_p| {
        seen.fetch_add(1, Ordering::Relaxed);
    }));
    // A stale file the --delete pass must remove.
    std::fs::write(d.root().join("db0/lists/stale.sst"), b"old").unwrap();
    let st = push_dump(&c, src.path(), "db0")
        .await
        .unwrap_or_else(|e| panic!("{e}\ndaemon log:\n{}", d.log()));
    assert_eq!(st.connections, 11, "5 pushes + 5 delete passes + info");
    assert!(st.bytes >= 20 << 20);
    assert!(calls.load(Ordering::Relaxed) >= 11);
    assert_same_tree(src.path(), &d.root().join("db0"));
    // Re-pushing an unchanged dir sends nothing (the daemon's quick check).
    let again = push_path(&c, &src.path().join("strings"), "db0/strings/", false)
        .await
        .unwrap();
    assert_eq!((again.files, again.bytes), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_30_and_bwlimit() {
    let d = Daemon::start("s3cret");
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("strings")).unwrap();
    std::fs::write(src.path().join("strings/a.sst"), bytes(5, 4 << 20)).unwrap();
    let mut c = cfg(d.port, "s3cret");
    c.protocol = 30;
    c.bwlimit = 2_000_000;
    let t0 = Instant::now();
    let st = push_path(&c, &src.path().join("strings"), "db0/strings/", false)
        .await
        .unwrap();
    let el = t0.elapsed();
    assert_eq!(st.files, 1);
    assert!(
        el >= Duration::from_millis(1500),
        "4 MiB at 2 MB/s took only {el:?}"
    );
    assert_same_tree(&src.path().join("strings"), &d.root().join("db0/strings"));
}

#[tokio::test]
async fn wrong_password_fails_cleanly() {
    let d = Daemon::start("right");
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 0);
    let e = push_path(
        &cfg(d.port, "wrong"),
        &src.path().join("sets"),
        "db0/sets/",
        false,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("auth failed"), "{e}");
}

/// Our sender into our receiver: both halves agree on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_to_embedded_receiver() {
    let mut r = start_receiver(
        vec![ModuleSpec::with_auth("document", "rsync_user", "pw")],
        Limits::default(),
    )
    .await;
    let src = tempfile::tempdir().unwrap();
    make_dump(src.path(), 3);
    let st = push_dump(&cfg(r.port, "pw"), src.path(), "db0")
        .await
        .unwrap();
    assert_eq!(st.connections, 11);
    let ev =
        r.rx.wait_for_file("document", "db0/info", Duration::from_secs(10))
            .await;
    assert!(ev.is_some());
    assert_same_tree(src.path(), &r.module_root("document").join("db0"));
    let _ = Path::new("");
}
