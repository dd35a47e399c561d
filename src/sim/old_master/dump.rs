//! The double's bgsave and full-sync delivery.
//!
//! A dump directory has the five type directories of the emulated version (3.0: `strings hashes
//! lists sets zsets`; 2.3: `kv hash list set zset`) and the 5-line `info` file (spec §5.1–5.2).
//! The type directories are **not** RocksDB: each holds one file `data.resp`, the commands that
//! rebuild that type's keys (`set`/`hmset`/`rpush`/`sadd`/`zadd`, then `expireat`).
//! [`load_dump`] reads them back so tests can compare data.
//!
//! Delivery is behind [`DumpDelivery`]. [`CopyDelivery`] copies the dump into a directory (the
//! relay's staging directory), type directories first and `info` last, atomically (temp file +
//! rename), as the master's rsync pushes do. Pushing with the real `rsync` client into the
//! relay's port R+3000 is the next step, once the embedded rsync receiver exists.

use std::io;
use std::path::{Path, PathBuf};

use super::keyspace::{Keyspace, Value};
use super::binlog::Flavor;
use crate::formats::info::DumpInfo;
use crate::formats::resp::{encode_argv, parse_argv};
use crate::formats::BinlogPos;
use crate::upstream::fullsync::BoxFuture;

/// The type directories of a flavor, in the order strings, hashes, lists, sets, zsets.
pub fn type_dirs(flavor: Flavor) -> [&'static str; 5] {
    match flavor {
        Flavor::V30 => ["strings", "hashes", "lists", "sets", "zsets"],
        Flavor::V23 => ["kv", "hash", "list", "set", "zset"],
    }
}

/// Writes a dump of `ks` consistent with binlog position `pos` into `dir` (replaced if present).
pub fn write_dump(dir: &Path, flavor: Flavor, ks: &Keyspace, now: u64, ip: &str, port: u16, pos: BinlogPos) -> io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let names = type_dirs(flavor);
    let mut out: [Vec<u8>; 5] = Default::default();
    for (k, (v, exp)) in ks.live(now) {
        let (i, cmd): (usize, Vec<Vec<u8>>) = match v {
            Value::Str(s) => (0, vec![b"set".to_vec(), k.clone(), s]),
            Value::Hash(h) => (1, [b"hmset".to_vec(), k.clone()].into_iter().chain(h.into_iter().flat_map(|(f, v)| [f, v])).collect()),
            Value::List(l) => (2, [b"rpush".to_vec(), k.clone()].into_iter().chain(l).collect()),
            Value::Set(s) => (3, [b"sadd".to_vec(), k.clone()].into_iter().chain(s).collect()),
            Value::ZSet(z) => (4, [b"zadd".to_vec(), k.clone()].into_iter().chain(z.into_iter().flat_map(|(m, s)| [format!("{s}").into_bytes(), m])).collect()),
        };
        out[i].extend(encode_argv(&cmd));
        if let Some(t) = exp {
            out[i].extend(encode_argv(&[b"expireat".to_vec(), k, t.to_string().into_bytes()]));
        }
    }
    for (name, data) in names.iter().zip(out.iter()) {
        std::fs::create_dir_all(dir.join(name))?;
        std::fs::write(dir.join(name).join("data.resp"), data)?;
    }
    let info = DumpInfo { duration: "0s".into(), ip: ip.into(), port, pos };
    std::fs::write(dir.join("info"), info.render())
}

/// Reads a dump written by [`write_dump`] back into a keyspace (at time `now`), with its `info`.
pub fn load_dump(dir: &Path, now: u64) -> io::Result<(Keyspace, DumpInfo)> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let info = DumpInfo::parse(&std::fs::read(dir.join("info"))?).map_err(|e| bad(e.to_string()))?;
    let flavor = if dir.join("strings").is_dir() { Flavor::V30 } else { Flavor::V23 };
    let mut ks = Keyspace::default();
    for name in type_dirs(flavor) {
        let data = std::fs::read(dir.join(name).join("data.resp"))?;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (argv, used) = parse_argv(rest).map_err(|e| bad(e.to_string()))?.ok_or_else(|| bad("truncated dump".into()))?;
            ks.exec(&argv, now).map_err(bad)?;
            rest = &rest[used..];
        }
    }
    Ok((ks, info))
}

/// Ships a dump to a slave (what the master's DBSync does with `rsync`).
pub trait DumpDelivery: Send + Sync {
    /// Sends `dump` (type directories, then `info`) to `slave_ip`'s rsync port `rsync_port`,
    /// module `module`.
    fn deliver<'a>(&'a self, dump: &'a Path, slave_ip: &'a str, rsync_port: u16, module: &'a str) -> BoxFuture<'a, io::Result<()>>;
}

/// Copies the dump into `target` (the relay's staging directory), `info` last and atomically.
#[derive(Debug, Clone)]
pub struct CopyDelivery {
    /// Destination directory.
    pub target: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

impl DumpDelivery for CopyDelivery {
    fn deliver<'a>(&'a self, dump: &'a Path, _ip: &'a str, _port: u16, _module: &'a str) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let (dump, target) = (dump.to_path_buf(), self.target.clone());
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&target)?;
                for e in std::fs::read_dir(&dump)? {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        copy_dir(&e.path(), &target.join(e.file_name()))?;
                    }
                }
                let tmp = target.join(".info.tmp");
                std::fs::copy(dump.join("info"), &tmp)?;
                std::fs::rename(tmp, target.join("info"))
            })
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
        })
    }
}
