//! A [`RecordSource`] over the doubles' dump format ([`crate::sim::dump`]): each type directory
//! holds `data.resp`, the commands that rebuild that type's keys (`set`, `hmset`, `rpush`,
//! `sadd`, `zadd`, each optionally followed by `expireat key <unix seconds>`). Used until the
//! real RocksDB readers are in place, and for the doubles' dumps after that.
//!
//! Big values are cut into chunks of at most `chunk` members, as the real readers do. A file is
//! read one type directory at a time (the doubles' dumps are small); a bad command names the
//! file and the command.

use super::record::{DumpError, DumpRecord, RecordValue};
use super::RecordSource;
use crate::formats::resp::{display_argv, parse_argv, Argv};
use bytes::Bytes;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Type directories of 3.x/3.0 dumps, then of 2.3 dumps.
const DIRS: [&str; 10] = [
    "strings", "hashes", "lists", "sets", "zsets", "kv", "hash", "list", "set", "zset",
];

/// Members per chunk unless told otherwise.
pub const DEFAULT_CHUNK: usize = 512;

/// Reads a doubles' dump directory.
pub struct SimDumpSource {
    dir: PathBuf,
    chunk: usize,
    /// Type directories not read yet.
    pending: VecDeque<&'static str>,
    /// Commands of the current type directory, not yet turned into records.
    cmds: VecDeque<Argv>,
    /// The file the commands come from (for errors).
    file: String,
    /// Records ready to hand out.
    out: VecDeque<DumpRecord>,
}

impl SimDumpSource {
    /// Opens `dir`; fails when it has none of the type directories of either layout.
    pub fn open(dir: &Path, chunk: usize) -> Result<SimDumpSource, DumpError> {
        let pending: VecDeque<&'static str> = DIRS
            .iter()
            .copied()
            .filter(|d| dir.join(d).is_dir())
            .collect();
        if pending.is_empty() {
            return Err(DumpError::Layout {
                dir: dir.display().to_string(),
                why: "no type directory (strings/hashes/lists/sets/zsets or kv/hash/list/set/zset)"
                    .into(),
            });
        }
        Ok(SimDumpSource {
            dir: dir.to_path_buf(),
            chunk: chunk.max(1),
            pending,
            cmds: VecDeque::new(),
            file: String::new(),
            out: VecDeque::new(),
        })
    }

    fn corrupt(&self, why: String) -> DumpError {
        DumpError::Corrupt {
            dir: self.dir.display().to_string(),
            place: self.file.clone(),
            why,
        }
    }

    /// Loads the next type directory's commands; `false` when none is left.
    fn load_next_dir(&mut self) -> Result<bool, DumpError> {
        let Some(name) = self.pending.pop_front() else {
            return Ok(false);
        };
        let path = self.dir.join(name).join("data.resp");
        self.file = format!("{name}/data.resp");
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => {
                return Err(DumpError::Io {
                    dir: self.dir.display().to_string(),
                    why: format!("read {}: {e}", self.file),
                })
            }
        };
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (argv, used) = parse_argv(rest)
                .map_err(|e| self.corrupt(e.to_string()))?
                .ok_or_else(|| self.corrupt("truncated command at the end".into()))?;
            self.cmds.push_back(argv);
            rest = &rest[used..];
        }
        Ok(true)
    }

    /// Turns the next command (and its `expireat`, if it follows) into records.
    fn convert_next(&mut self) -> Result<bool, DumpError> {
        let Some(cmd) = self.cmds.pop_front() else {
            return Ok(false);
        };
        let bad = |s: &Self, why: &str| s.corrupt(format!("{why}: {}", display_argv(&cmd, 32)));
        if cmd.len() < 2 {
            return Err(bad(self, "command without a key"));
        }
        let key = Bytes::from(cmd[1].clone());
        let expire_at_ms = match self.cmds.front() {
            Some(n) if n.len() == 3 && n[0].eq_ignore_ascii_case(b"expireat") && n[1] == cmd[1] => {
                let secs = std::str::from_utf8(&n[2])
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| bad(self, "expireat without an integer time"))?;
                self.cmds.pop_front();
                Some(secs.saturating_mul(1000))
            }
            _ => None,
        };
        let name = String::from_utf8_lossy(&cmd[0]).to_ascii_lowercase();
        let args = &cmd[2..];
        let b = |v: &Vec<u8>| Bytes::from(v.clone());
        let values: Vec<RecordValue> = match name.as_str() {
            "set" if args.len() == 1 => vec![RecordValue::String(b(&args[0]))],
            "hmset" if !args.is_empty() && args.len() % 2 == 0 => args
                .chunks(2 * self.chunk)
                .map(|c| RecordValue::Hash(c.chunks(2).map(|p| (b(&p[0]), b(&p[1]))).collect()))
                .collect(),
            "rpush" if !args.is_empty() => args
                .chunks(self.chunk)
                .map(|c| RecordValue::List(c.iter().map(b).collect()))
                .collect(),
            "sadd" if !args.is_empty() => args
                .chunks(self.chunk)
                .map(|c| RecordValue::Set(c.iter().map(b).collect()))
                .collect(),
            "zadd" if !args.is_empty() && args.len() % 2 == 0 => {
                let mut chunks = Vec::new();
                for c in args.chunks(2 * self.chunk) {
                    let mut v = Vec::with_capacity(c.len() / 2);
                    for p in c.chunks(2) {
                        let s = std::str::from_utf8(&p[0])
                            .ok()
                            .and_then(|s| s.parse::<f64>().ok())
                            .ok_or_else(|| bad(self, "zadd with a score that is not a number"))?;
                        v.push((b(&p[1]), s));
                    }
                    chunks.push(RecordValue::ZSet(v));
                }
                chunks
            }
            _ => return Err(bad(self, "not a dump command")),
        };
        let n = values.len();
        for (i, value) in values.into_iter().enumerate() {
            self.out.push_back(DumpRecord {
                key: key.clone(),
                expire_at_ms,
                value,
                first: i == 0,
                last: i + 1 == n,
            });
        }
        Ok(true)
    }
}

impl RecordSource for SimDumpSource {
    fn next_record(&mut self) -> Result<Option<DumpRecord>, DumpError> {
        loop {
            if let Some(r) = self.out.pop_front() {
                return Ok(Some(r));
            }
            if self.convert_next()? {
                continue;
            }
            if !self.load_next_dir()? {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::BinlogPos;
    use crate::sim::dump::write_dump;
    use crate::sim::keyspace::Keyspace;
    use crate::sim::old_master::Flavor;

    #[test]
    fn reads_every_type_in_chunks_with_ttl() {
        let mut ks = Keyspace::default();
        let now = 1_700_000_000;
        let cmds: Vec<Vec<&[u8]>> = vec![
            vec![b"set", b"s", b"v"],
            vec![b"expireat", b"s", b"1800000000"],
            vec![b"rpush", b"l", b"a", b"b", b"c", b"d", b"e"],
            vec![b"hmset", b"h", b"f1", b"1", b"f2", b"2", b"f3", b"3"],
            vec![b"sadd", b"st", b"x", b"y"],
            vec![b"zadd", b"z", b"1.5", b"m", b"-2", b"n"],
        ];
        for c in cmds {
            let a: Argv = c.iter().map(|p| p.to_vec()).collect();
            ks.exec(&a, now).unwrap();
        }
        for flavor in [Flavor::V30, Flavor::V23] {
            let tmp = tempfile::tempdir().unwrap();
            let d = tmp.path().join("dump");
            write_dump(&d, flavor, &ks, now, "127.0.0.1", 1, BinlogPos::new(0, 0)).unwrap();
            let mut src = SimDumpSource::open(&d, 2).unwrap();
            let mut recs = Vec::new();
            while let Some(r) = src.next_record().unwrap() {
                recs.push(r);
            }
            let s = recs.iter().find(|r| &r.key[..] == b"s").unwrap();
            assert_eq!(s.expire_at_ms, Some(1_800_000_000_000));
            assert_eq!(s.value, RecordValue::String(Bytes::from_static(b"v")));
            let l: Vec<&DumpRecord> = recs.iter().filter(|r| &r.key[..] == b"l").collect();
            assert_eq!(l.len(), 3, "5 members in chunks of 2");
            assert!(l[0].first && !l[0].last && l[2].last && !l[2].first);
            let members: Vec<Bytes> = l
                .iter()
                .flat_map(|r| match &r.value {
                    RecordValue::List(v) => v.clone(),
                    _ => panic!(),
                })
                .collect();
            assert_eq!(
                members,
                [&b"a"[..], b"b", b"c", b"d", b"e"].map(Bytes::from_static)
            );
            let z = recs.iter().find(|r| &r.key[..] == b"z").unwrap();
            match &z.value {
                RecordValue::ZSet(v) => assert!(v.contains(&(Bytes::from_static(b"m"), 1.5))),
                _ => panic!(),
            }
            assert_eq!(recs.iter().filter(|r| r.first).count(), 5);
        }
    }

    #[test]
    fn a_bad_file_names_the_place() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("hashes")).unwrap();
        std::fs::write(
            tmp.path().join("hashes/data.resp"),
            b"*2\r\n$4\r\nincr\r\n$1\r\nk\r\n",
        )
        .unwrap();
        let mut src = SimDumpSource::open(tmp.path(), 10).unwrap();
        let e = src.next_record().unwrap_err().to_string();
        assert!(e.contains("hashes/data.resp") && e.contains("incr"), "{e}");
        assert!(SimDumpSource::open(&tmp.path().join("nothing"), 10).is_err());
    }
}
