//! A real `rsync --daemon` (Debian's rsync) configured exactly as Pika 3.1–3.4 configures the one
//! it starts on its port+1000: module `document` rooted at the db-sync path, user `rsync_user`,
//! the secret = the slave's masterauth or `default`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon, stopped (by its PID) on drop.
pub struct RsyncDaemon {
    child: Child,
    /// Its port.
    pub port: u16,
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl RsyncDaemon {
    /// Starts the daemon on 127.0.0.1:`port` serving `dbsync_path` as module `document`.
    pub fn start(
        work: &Path,
        dbsync_path: &Path,
        port: u16,
        secret: &str,
    ) -> std::io::Result<RsyncDaemon> {
        let rdir = work.join("rsync");
        std::fs::create_dir_all(&rdir)?;
        std::fs::create_dir_all(dbsync_path)?;
        let secrets = rdir.join("slash_rsync.secret");
        std::fs::write(&secrets, format!("rsync_user:{secret}\n"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600))?;
        }
        let p = |n: &str| -> PathBuf { rdir.join(n) };
        let mut conf = String::new();
        if running_as_root() {
            conf.push_str("uid = root\ngid = root\n");
        }
        conf.push_str(&format!(
            "use chroot = no\nmax connections = 10\nlock file = {}\nlog file = {}\npid file = {}\nlist = no\nstrict modes = no\nauth users = rsync_user\nsecrets file = {}\n[document]\npath = {}/\nread only = no\n",
            p("slash_rsync.lock").display(),
            p("slash_rsync.log").display(),
            p("slash_rsync.pid").display(),
            secrets.display(),
            dbsync_path.display()
        ));
        let conf_path = p("slash_rsync.conf");
        std::fs::write(&conf_path, conf)?;
        let _ = std::fs::remove_file(p("slash_rsync.pid"));
        let child = Command::new("rsync")
            .arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf_path.display()))
            .arg("--address=127.0.0.1")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start `rsync --daemon` (install the rsync package): {e}"),
                )
            })?;
        let mut d = RsyncDaemon { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "rsync daemon exited at start: {status}"
                )));
            }
            if Instant::now() > deadline {
                let _ = d.child.kill();
                return Err(std::io::Error::other(
                    "rsync daemon did not listen within 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
