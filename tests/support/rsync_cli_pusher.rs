//! A `DumpPusher` that runs the real `rsync` client with the command lines a Pika 3.2.9 master
//! uses (spec §3.3), so the slave double's real `rsync --daemon` receives a real push. The relay
//! itself uses the embedded sender; this one exists to test the downstream independently of it.

#![allow(dead_code)]

use pika_relay::downstream::pb::{DumpPusher, PushRequest};
use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// The pusher; `requests` records every push.
#[derive(Default, Clone)]
pub struct RsyncCliPusher {
    /// Pushes made.
    pub requests: Arc<Mutex<Vec<PushRequest>>>,
}

fn rsync(args: &[String]) -> Result<(), String> {
    let out = Command::new("rsync")
        .args(args)
        .output()
        .map_err(|e| format!("run rsync (install the rsync package): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rsync {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl DumpPusher for RsyncCliPusher {
    fn push(&self, req: PushRequest) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> {
        self.requests.lock().unwrap().push(req.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
                let secret = tmp.path().join("rsync.secret");
                std::fs::write(&secret, &req.password).map_err(|e| e.to_string())?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| e.to_string())?;
                }
                let dest = |c: &str| {
                    format!(
                        "rsync_user@{}::document/{}/{c}",
                        req.target.ip(),
                        req.remote_path
                    )
                };
                let common = |v: &mut Vec<String>| {
                    v.push(format!("--password-file={}", secret.display()));
                    v.push(format!("--port={}", req.target.port()));
                };
                let mut bytes = 0u64;
                if let Some(dir) = &req.dump_dir {
                    for t in ["strings", "zsets", "hashes", "lists", "sets"] {
                        let src = dir.join(t);
                        if !src.is_dir() {
                            continue;
                        }
                        for f in std::fs::read_dir(&src).map_err(|e| e.to_string())? {
                            bytes += f
                                .map_err(|e| e.to_string())?
                                .metadata()
                                .map(|m| m.len())
                                .unwrap_or(0);
                        }
                        let mut a = vec!["-avP".to_string(), "--bwlimit=1048576".into()];
                        common(&mut a);
                        a.push(format!("{}/", src.display()));
                        a.push(format!("{}/", dest(t)));
                        rsync(&a)?;
                    }
                }
                let info = tmp.path().join("info");
                std::fs::write(&info, &req.info).map_err(|e| e.to_string())?;
                let mut a = vec!["-avP".to_string(), "--bwlimit=1048576".into()];
                common(&mut a);
                a.push(info.display().to_string());
                a.push(dest("info"));
                rsync(&a)?;
                Ok(bytes + req.info.len() as u64)
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}
