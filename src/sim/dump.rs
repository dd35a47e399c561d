//! The dump format of the doubles. A dump directory has the five type directories of the
//! emulated version (3.x and 3.0: `strings hashes lists sets zsets`; 2.3: `kv hash list set zset`)
//! and the 5-line `info` file (old spec §5.1–5.2). The type directories are **not** RocksDB: each
//! holds one file `data.resp`, the commands that rebuild that type's keys
//! (`set`/`hmset`/`rpush`/`sadd`/`zadd`, then `expireat`). The old-master double writes it, the
//! relay carries it as any dump, the new-slave double loads it.

use std::io;
use std::path::Path;

use super::keyspace::{Keyspace, Value};
use super::old_master::binlog::Flavor;
use crate::formats::info::DumpInfo;
use crate::formats::resp::{encode_argv, parse_argv};
use crate::formats::BinlogPos;

/// The type directories of a flavor, in the order strings, hashes, lists, sets, zsets.
pub fn type_dirs(flavor: Flavor) -> [&'static str; 5] {
    match flavor {
        Flavor::V30 => ["strings", "hashes", "lists", "sets", "zsets"],
        Flavor::V23 => ["kv", "hash", "list", "set", "zset"],
    }
}

/// Writes a dump of `ks` consistent with binlog position `pos` into `dir` (replaced if present).
pub fn write_dump(
    dir: &Path,
    flavor: Flavor,
    ks: &Keyspace,
    now: u64,
    ip: &str,
    port: u16,
    pos: BinlogPos,
) -> io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let names = type_dirs(flavor);
    let mut out: [Vec<u8>; 5] = Default::default();
    for (k, (v, exp)) in ks.live(now) {
        let (i, cmd): (usize, Vec<Vec<u8>>) = match v {
            Value::Str(s) => (0, vec![b"set".to_vec(), k.clone(), s]),
            Value::Hash(h) => (
                1,
                [b"hmset".to_vec(), k.clone()]
                    .into_iter()
                    .chain(h.into_iter().flat_map(|(f, v)| [f, v]))
                    .collect(),
            ),
            Value::List(l) => (
                2,
                [b"rpush".to_vec(), k.clone()]
                    .into_iter()
                    .chain(l)
                    .collect(),
            ),
            Value::Set(s) => (
                3,
                [b"sadd".to_vec(), k.clone()].into_iter().chain(s).collect(),
            ),
            Value::ZSet(z) => (
                4,
                [b"zadd".to_vec(), k.clone()]
                    .into_iter()
                    .chain(
                        z.into_iter()
                            .flat_map(|(m, s)| [format!("{s}").into_bytes(), m]),
                    )
                    .collect(),
            ),
        };
        out[i].extend(encode_argv(&cmd));
        if let Some(t) = exp {
            out[i].extend(encode_argv(&[
                b"expireat".to_vec(),
                k,
                t.to_string().into_bytes(),
            ]));
        }
    }
    for (name, data) in names.iter().zip(out.iter()) {
        std::fs::create_dir_all(dir.join(name))?;
        std::fs::write(dir.join(name).join("data.resp"), data)?;
    }
    let info = DumpInfo {
        duration: "0s".into(),
        ip: ip.into(),
        port,
        pos,
    };
    std::fs::write(dir.join("info"), info.render())
}

/// Reads a dump written by [`write_dump`] back into a keyspace (at time `now`), with its `info`.
pub fn load_dump(dir: &Path, now: u64) -> io::Result<(Keyspace, DumpInfo)> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let info =
        DumpInfo::parse(&std::fs::read(dir.join("info"))?).map_err(|e| bad(e.to_string()))?;
    let flavor = if dir.join("strings").is_dir() {
        Flavor::V30
    } else {
        Flavor::V23
    };
    Ok((load_types(dir, flavor, now)?, info))
}

/// Reads the `data.resp` files of `flavor`'s type directories (missing ones are empty, as a
/// RocksDB directory without data opens empty). A new Pika loads only the 3.x directories, so a
/// 2.3.x (nemo) dump loads as empty data there, as on a real 3.x slave.
pub fn load_types(dir: &Path, flavor: Flavor, now: u64) -> io::Result<Keyspace> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut ks = Keyspace::default();
    for name in type_dirs(flavor) {
        let data = match std::fs::read(dir.join(name).join("data.resp")) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (argv, used) = parse_argv(rest)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad("truncated dump".into()))?;
            ks.exec(&argv, now).map_err(bad)?;
            rest = &rest[used..];
        }
    }
    Ok(ks)
}
