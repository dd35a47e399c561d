//! The doubles' dumps are real Pika dumps: the old-master double's bgsave writes its keyspace
//! as a nemo (2.3) or blackwidow (3.0) RocksDB dump through [`crate::dump::DumpWriter`], with the
//! 5-line `info` file (old spec §5.1–5.2); the new-slave double loads what it receives through
//! the dump reader. So the relay and every end-to-end test carry real dump formats.
//!
//! Expiry: the keyspace keeps absolute expiry seconds; they are stored as the dump's timestamp
//! unchanged and loaded back unchanged (so the doubles compare equal across a dump; a real nemo
//! would store relative TTLs one second earlier, spec §4.6).

use std::io;
use std::path::Path;

use bytes::Bytes;

use super::keyspace::{Keyspace, Value};
use super::old_master::binlog::Flavor;
use crate::dump::layout::{Engine, Layout};
use crate::dump::{DumpRecord, DumpWriter, OpenDump, RecordValue, WriterOptions};
use crate::formats::info::DumpInfo;
use crate::formats::BinlogPos;

/// Members per record when the doubles write big collections.
const CHUNK: usize = 512;

/// The type directories of a flavor, in the order strings, hashes, lists, sets, zsets.
pub fn type_dirs(flavor: Flavor) -> [&'static str; 5] {
    match flavor {
        Flavor::V30 => ["strings", "hashes", "lists", "sets", "zsets"],
        Flavor::V23 => ["kv", "hash", "list", "set", "zset"],
    }
}

fn engine_of(flavor: Flavor) -> Engine {
    match flavor {
        Flavor::V30 => Engine::Blackwidow30,
        Flavor::V23 => Engine::Nemo,
    }
}

fn to_io(e: crate::dump::DumpError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The records of one key, cut into chunks of [`CHUNK`] members.
fn key_records(key: &[u8], v: Value, exp: Option<u64>) -> Vec<DumpRecord> {
    let b = |x: Vec<u8>| Bytes::from(x);
    let parts: Vec<RecordValue> = match v {
        Value::Str(s) => vec![RecordValue::String(b(s))],
        Value::Hash(h) => {
            let all: Vec<_> = h.into_iter().map(|(f, v)| (b(f), b(v))).collect();
            all.chunks(CHUNK)
                .map(|c| RecordValue::Hash(c.to_vec()))
                .collect()
        }
        Value::List(l) => {
            let all: Vec<_> = l.into_iter().map(b).collect();
            all.chunks(CHUNK)
                .map(|c| RecordValue::List(c.to_vec()))
                .collect()
        }
        Value::Set(s) => {
            let all: Vec<_> = s.into_iter().map(b).collect();
            all.chunks(CHUNK)
                .map(|c| RecordValue::Set(c.to_vec()))
                .collect()
        }
        Value::ZSet(z) => {
            let all: Vec<_> = z.into_iter().map(|(m, s)| (b(m), s)).collect();
            all.chunks(CHUNK)
                .map(|c| RecordValue::ZSet(c.to_vec()))
                .collect()
        }
    };
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, value)| DumpRecord {
            key: Bytes::copy_from_slice(key),
            // Pika keeps expiry in i32 seconds: a later one is stored as the last it can hold.
            expire_at_ms: exp.map(|t| t.min(i32::MAX as u64) as i64 * 1000),
            value,
            first: i == 0,
            last: i + 1 == n,
        })
        .collect()
}

/// Writes a dump of `ks` (live at `now`) consistent with binlog position `pos` into `dir`
/// (replaced if present): a real RocksDB dump in `flavor`'s engine, then `info` last.
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
    let mut opts = WriterOptions::new(engine_of(flavor));
    opts.version = now.clamp(1, i32::MAX as u64) as i32;
    let mut w = DumpWriter::create(dir, opts).map_err(to_io)?;
    for (k, (v, exp)) in ks.live(now) {
        for r in key_records(&k, v, exp) {
            w.write(&r).map_err(to_io)?;
        }
    }
    w.finish().map_err(to_io)?;
    let info = DumpInfo {
        duration: "0s".into(),
        ip: ip.into(),
        port,
        pos,
    };
    std::fs::write(dir.join("info"), info.render())
}

/// Reads a dump (any real layout) back into a keyspace at time `now`, with its `info`.
pub fn load_dump(dir: &Path, now: u64) -> io::Result<(Keyspace, DumpInfo)> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let layout = crate::dump::detect(dir).map_err(to_io)?;
    let info =
        DumpInfo::parse(&std::fs::read(layout.info_file())?).map_err(|e| bad(e.to_string()))?;
    let d = OpenDump::open_layout(layout, false).map_err(to_io)?;
    Ok((read_into_keyspace(&d, now)?, info))
}

fn read_into_keyspace(d: &OpenDump, now: u64) -> io::Result<Keyspace> {
    let mut ks = Keyspace::default();
    d.read(now as i64 * 1000, &mut |r| {
        let exp = r.expire_at_ms.map(|ms| ms.div_euclid(1000).max(0) as u64);
        let key = r.key.to_vec();
        if r.first {
            let empty = match &r.value {
                RecordValue::String(_) => Value::Str(Vec::new()),
                RecordValue::Hash(_) => Value::Hash(Default::default()),
                RecordValue::List(_) => Value::List(Default::default()),
                RecordValue::Set(_) => Value::Set(Default::default()),
                RecordValue::ZSet(_) => Value::ZSet(Default::default()),
            };
            // One keyspace for all types: a key held by several Pika types keeps the last.
            ks.data.insert(key.clone(), (empty, exp));
        }
        if let Some((v, _)) = ks.data.get_mut(&key) {
            match (v, r.value) {
                (Value::Str(s), RecordValue::String(x)) => *s = x.to_vec(),
                (Value::Hash(h), RecordValue::Hash(x)) => {
                    h.extend(x.into_iter().map(|(f, v)| (f.to_vec(), v.to_vec())))
                }
                (Value::List(l), RecordValue::List(x)) => {
                    l.extend(x.into_iter().map(|m| m.to_vec()))
                }
                (Value::Set(s), RecordValue::Set(x)) => s.extend(x.into_iter().map(|m| m.to_vec())),
                (Value::ZSet(z), RecordValue::ZSet(x)) => {
                    z.extend(x.into_iter().map(|(m, s)| (m.to_vec(), s)))
                }
                _ => {}
            }
        }
        true
    })
    .map_err(to_io)?;
    Ok(ks)
}

/// Loads the type directories of `flavor` in `dir` (a received full sync) as Pika would: a
/// missing or empty type directory is an empty database. A new Pika loads only the 3.x
/// directories, so a 2.3.x (nemo) dump passed on unconverted loads as empty data there, as on a
/// real 3.x slave.
pub fn load_types(dir: &Path, flavor: Flavor, now: u64) -> io::Result<Keyspace> {
    let layout = Layout {
        engine: engine_of(flavor),
        dir: dir.to_path_buf(),
        db_root: dir.to_path_buf(),
    };
    let d = OpenDump::open_layout(layout, true).map_err(to_io)?;
    read_into_keyspace(&d, now)
}
