//! A model of a Pika keyspace for the test doubles: the five type namespaces of blackwidow (a key
//! may exist as a string and a hash at once), absolute TTLs per (type, key), and the write commands
//! that appear in binlogs. Old and new doubles apply the same commands to it, so comparing two
//! keyspaces ([`Keyspace::lines`]) tells whether replication delivered everything exactly once.
//!
//! `spop` is modelled deterministically (the smallest member), unlike Pika, so doubles agree.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// A data type namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// strings
    Str,
    /// hashes
    Hash,
    /// lists
    List,
    /// sets
    Set,
    /// zsets
    Zset,
}

const KINDS: [Kind; 5] = [Kind::Str, Kind::Hash, Kind::List, Kind::Set, Kind::Zset];

impl Kind {
    /// The dump directory name of this type in 3.x (blackwidow).
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Str => "strings",
            Kind::Hash => "hashes",
            Kind::List => "lists",
            Kind::Set => "sets",
            Kind::Zset => "zsets",
        }
    }
    fn from_flush_arg(a: &[u8]) -> Option<Kind> {
        Some(match a.to_ascii_lowercase().as_slice() {
            b"string" => Kind::Str,
            b"hash" => Kind::Hash,
            b"list" => Kind::List,
            b"set" => Kind::Set,
            b"zset" => Kind::Zset,
            _ => return None,
        })
    }
}

type Key = Vec<u8>;

/// The keyspace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keyspace {
    strings: BTreeMap<Key, Vec<u8>>,
    hashes: BTreeMap<Key, BTreeMap<Vec<u8>, Vec<u8>>>,
    lists: BTreeMap<Key, VecDeque<Vec<u8>>>,
    sets: BTreeMap<Key, BTreeSet<Vec<u8>>>,
    zsets: BTreeMap<Key, BTreeMap<Vec<u8>, f64>>,
    ttl: BTreeMap<(Kind, Key), u64>,
}

fn num<T: std::str::FromStr>(a: &[u8]) -> Result<T, String> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a number: {:?}", String::from_utf8_lossy(a)))
}

fn fmt_f64(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e17 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Keyspace {
    fn exists(&self, k: Kind, key: &[u8]) -> bool {
        match k {
            Kind::Str => self.strings.contains_key(key),
            Kind::Hash => self.hashes.contains_key(key),
            Kind::List => self.lists.contains_key(key),
            Kind::Set => self.sets.contains_key(key),
            Kind::Zset => self.zsets.contains_key(key),
        }
    }

    fn remove(&mut self, k: Kind, key: &[u8]) -> bool {
        self.ttl.remove(&(k, key.to_vec()));
        match k {
            Kind::Str => self.strings.remove(key).is_some(),
            Kind::Hash => self.hashes.remove(key).is_some(),
            Kind::List => self.lists.remove(key).is_some(),
            Kind::Set => self.sets.remove(key).is_some(),
            Kind::Zset => self.zsets.remove(key).is_some(),
        }
    }

    fn prune(&mut self, key: &[u8]) {
        if self.hashes.get(key).is_some_and(|h| h.is_empty()) {
            self.remove(Kind::Hash, key);
        }
        if self.lists.get(key).is_some_and(|h| h.is_empty()) {
            self.remove(Kind::List, key);
        }
        if self.sets.get(key).is_some_and(|h| h.is_empty()) {
            self.remove(Kind::Set, key);
        }
        if self.zsets.get(key).is_some_and(|h| h.is_empty()) {
            self.remove(Kind::Zset, key);
        }
    }

    fn set_string(&mut self, key: &[u8], v: &[u8], expire_at: Option<u64>, now: u64) {
        self.strings.insert(key.to_vec(), v.to_vec());
        self.ttl.remove(&(Kind::Str, key.to_vec()));
        if let Some(t) = expire_at {
            if t <= now {
                self.remove(Kind::Str, key);
            } else {
                self.ttl.insert((Kind::Str, key.to_vec()), t);
            }
        }
    }

    fn expire_at(&mut self, key: &[u8], at: u64, now: u64) {
        for k in KINDS {
            if self.exists(k, key) {
                if at <= now {
                    self.remove(k, key);
                } else {
                    self.ttl.insert((k, key.to_vec()), at);
                }
            }
        }
    }

    fn incr_by(&mut self, key: &[u8], by: i64) -> Result<(), String> {
        let cur: i64 = match self.strings.get(key) {
            Some(v) => num(v)?,
            None => 0,
        };
        let nv = cur.checked_add(by).ok_or("increment overflows")?;
        self.strings
            .insert(key.to_vec(), nv.to_string().into_bytes());
        Ok(())
    }

    /// Applies one write command as Pika would, with `now` (unix seconds) for relative TTLs.
    /// Unknown commands and bad arguments are errors (a real slave would reject them too).
    pub fn apply(&mut self, argv: &[Vec<u8>], now: u64) -> Result<(), String> {
        let name = argv.first().ok_or("empty command")?.to_ascii_lowercase();
        let arg = |i: usize| -> Result<&[u8], String> {
            argv.get(i)
                .map(|a| a.as_slice())
                .ok_or_else(|| format!("`{}` needs argument {i}", String::from_utf8_lossy(&name)))
        };
        let key = || arg(1);
        match name.as_slice() {
            b"padding" => {}
            b"set" => {
                let (k, v) = (key()?, arg(2)?);
                let mut exp = None;
                let (mut nx, mut xx) = (false, false);
                let mut i = 3;
                while i < argv.len() {
                    match argv[i].to_ascii_lowercase().as_slice() {
                        b"ex" => {
                            exp = Some(now + num::<u64>(arg(i + 1)?)?);
                            i += 1;
                        }
                        b"px" => {
                            exp = Some(now + num::<u64>(arg(i + 1)?)? / 1000);
                            i += 1;
                        }
                        b"nx" => nx = true,
                        b"xx" => xx = true,
                        o => return Err(format!("set option {:?}", String::from_utf8_lossy(o))),
                    }
                    i += 1;
                }
                let present = self.strings.contains_key(k);
                if (nx && present) || (xx && !present) {
                    return Ok(());
                }
                self.set_string(k, v, exp, now);
            }
            b"setnx" => {
                if !self.strings.contains_key(key()?) {
                    self.set_string(key()?, arg(2)?, None, now);
                }
            }
            b"setex" => self.set_string(key()?, arg(3)?, Some(now + num::<u64>(arg(2)?)?), now),
            b"psetex" => self.set_string(
                key()?,
                arg(3)?,
                Some(now + num::<u64>(arg(2)?)? / 1000),
                now,
            ),
            b"pksetexat" => self.set_string(key()?, arg(3)?, Some(num::<u64>(arg(2)?)?), now),
            b"getset" => self.set_string(key()?, arg(2)?, None, now),
            b"mset" => {
                if argv.len() < 3 || argv.len() % 2 == 0 {
                    return Err("mset needs key value pairs".into());
                }
                for kv in argv[1..].chunks(2) {
                    self.set_string(&kv[0], &kv[1], None, now);
                }
            }
            b"msetnx" => {
                if argv[1..]
                    .chunks(2)
                    .all(|kv| !self.strings.contains_key(&kv[0]))
                {
                    for kv in argv[1..].chunks(2) {
                        self.set_string(&kv[0], &kv[1], None, now);
                    }
                }
            }
            b"append" => {
                let k = key()?.to_vec();
                self.strings
                    .entry(k)
                    .or_default()
                    .extend_from_slice(arg(2)?);
            }
            b"incr" => self.incr_by(key()?, 1)?,
            b"decr" => self.incr_by(key()?, -1)?,
            b"incrby" => self.incr_by(key()?, num(arg(2)?)?)?,
            b"decrby" => self.incr_by(key()?, -num::<i64>(arg(2)?)?)?,
            b"incrbyfloat" => {
                let cur: f64 = self
                    .strings
                    .get(key()?)
                    .map(|v| num(v))
                    .transpose()?
                    .unwrap_or(0.0);
                let nv = cur + num::<f64>(arg(2)?)?;
                self.strings
                    .insert(key()?.to_vec(), fmt_f64(nv).into_bytes());
            }
            b"del" => {
                for k in &argv[1..] {
                    for kind in KINDS {
                        self.remove(kind, k);
                    }
                }
            }
            b"expire" => self.expire_at(key()?, now + num::<u64>(arg(2)?)?, now),
            b"pexpire" => self.expire_at(key()?, now + num::<u64>(arg(2)?)? / 1000, now),
            b"expireat" => self.expire_at(key()?, num(arg(2)?)?, now),
            b"pexpireat" => self.expire_at(key()?, num::<u64>(arg(2)?)? / 1000, now),
            b"persist" => {
                let k = key()?.to_vec();
                for kind in KINDS {
                    self.ttl.remove(&(kind, k.clone()));
                }
            }
            b"hset" => {
                self.hashes
                    .entry(key()?.to_vec())
                    .or_default()
                    .insert(arg(2)?.to_vec(), arg(3)?.to_vec());
            }
            b"hsetnx" => {
                self.hashes
                    .entry(key()?.to_vec())
                    .or_default()
                    .entry(arg(2)?.to_vec())
                    .or_insert(arg(3)?.to_vec());
            }
            b"hmset" => {
                if argv.len() < 4 || argv.len() % 2 != 0 {
                    return Err("hmset needs field value pairs".into());
                }
                let h = self.hashes.entry(argv[1].clone()).or_default();
                for fv in argv[2..].chunks(2) {
                    h.insert(fv[0].clone(), fv[1].clone());
                }
            }
            b"hdel" => {
                if let Some(h) = self.hashes.get_mut(key()?) {
                    for f in &argv[2..] {
                        h.remove(f);
                    }
                }
                self.prune(key()?);
            }
            b"hincrby" => {
                let h = self.hashes.entry(key()?.to_vec()).or_default();
                let cur: i64 = h.get(arg(2)?).map(|v| num(v)).transpose()?.unwrap_or(0);
                h.insert(
                    arg(2)?.to_vec(),
                    (cur + num::<i64>(arg(3)?)?).to_string().into_bytes(),
                );
            }
            b"hincrbyfloat" => {
                let h = self.hashes.entry(key()?.to_vec()).or_default();
                let cur: f64 = h.get(arg(2)?).map(|v| num(v)).transpose()?.unwrap_or(0.0);
                h.insert(
                    arg(2)?.to_vec(),
                    fmt_f64(cur + num::<f64>(arg(3)?)?).into_bytes(),
                );
            }
            b"lpush" | b"rpush" | b"lpushx" | b"rpushx" => {
                let k = key()?.to_vec();
                if name.ends_with(b"x") && !self.lists.contains_key(&k) {
                    return Ok(());
                }
                let l = self.lists.entry(k).or_default();
                for v in &argv[2..] {
                    if name[0] == b'l' {
                        l.push_front(v.clone());
                    } else {
                        l.push_back(v.clone());
                    }
                }
            }
            b"lpop" | b"rpop" => {
                if let Some(l) = self.lists.get_mut(key()?) {
                    if name[0] == b'l' {
                        l.pop_front();
                    } else {
                        l.pop_back();
                    }
                }
                self.prune(key()?);
            }
            b"lset" => {
                let idx: i64 = num(arg(2)?)?;
                let l = self.lists.get_mut(key()?).ok_or("lset on a missing list")?;
                let i = if idx < 0 { l.len() as i64 + idx } else { idx };
                *l.get_mut(i as usize).ok_or("lset index out of range")? = arg(3)?.to_vec();
            }
            b"ltrim" => {
                if let Some(l) = self.lists.get_mut(key()?) {
                    let n = l.len() as i64;
                    let norm = |x: i64| if x < 0 { (n + x).max(0) } else { x };
                    let (s, e) = (norm(num(arg(2)?)?), norm(num(arg(3)?)?).min(n - 1));
                    *l = if s > e {
                        VecDeque::new()
                    } else {
                        l.range(s as usize..=e as usize).cloned().collect()
                    };
                }
                self.prune(key()?);
            }
            b"lrem" => {
                let count: i64 = num(arg(2)?)?;
                let v = arg(3)?.to_vec();
                if let Some(l) = self.lists.get_mut(key()?) {
                    let mut left = if count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut items: Vec<Vec<u8>> = l.drain(..).collect();
                    if count < 0 {
                        items.reverse();
                    }
                    items.retain(|x| {
                        if left > 0 && *x == v {
                            left -= 1;
                            false
                        } else {
                            true
                        }
                    });
                    if count < 0 {
                        items.reverse();
                    }
                    *l = items.into();
                }
                self.prune(key()?);
            }
            b"sadd" => {
                let s = self.sets.entry(key()?.to_vec()).or_default();
                s.extend(argv[2..].iter().cloned());
            }
            b"srem" => {
                if let Some(s) = self.sets.get_mut(key()?) {
                    for m in &argv[2..] {
                        s.remove(m);
                    }
                }
                self.prune(key()?);
            }
            b"spop" => {
                if let Some(s) = self.sets.get_mut(key()?) {
                    let first = s.iter().next().cloned();
                    if let Some(m) = first {
                        s.remove(&m);
                    }
                }
                self.prune(key()?);
            }
            b"zadd" => {
                if argv.len() < 4 || argv.len() % 2 != 0 {
                    return Err("zadd needs score member pairs".into());
                }
                let z = self.zsets.entry(argv[1].clone()).or_default();
                for sm in argv[2..].chunks(2) {
                    z.insert(sm[1].clone(), num(&sm[0])?);
                }
            }
            b"zincrby" => {
                let z = self.zsets.entry(key()?.to_vec()).or_default();
                *z.entry(arg(3)?.to_vec()).or_insert(0.0) += num::<f64>(arg(2)?)?;
            }
            b"zrem" => {
                if let Some(z) = self.zsets.get_mut(key()?) {
                    for m in &argv[2..] {
                        z.remove(m);
                    }
                }
                self.prune(key()?);
            }
            b"flushdb" | b"flushall" => match argv.get(1).and_then(|a| Kind::from_flush_arg(a)) {
                Some(kind) => {
                    let keys: Vec<Key> = match kind {
                        Kind::Str => self.strings.keys().cloned().collect(),
                        Kind::Hash => self.hashes.keys().cloned().collect(),
                        Kind::List => self.lists.keys().cloned().collect(),
                        Kind::Set => self.sets.keys().cloned().collect(),
                        Kind::Zset => self.zsets.keys().cloned().collect(),
                    };
                    for k in keys {
                        self.remove(kind, &k);
                    }
                }
                None => *self = Keyspace::default(),
            },
            other => {
                return Err(format!(
                    "unknown command `{}`",
                    String::from_utf8_lossy(other)
                ))
            }
        }
        Ok(())
    }

    /// One line per key and type, sorted: `type key value ttl` with binary bytes escaped. Two
    /// keyspaces hold the same data exactly when their lines are equal.
    pub fn lines(&self) -> Vec<String> {
        use crate::formats::resp::escape;
        let ttl = |k: Kind, key: &Key| {
            self.ttl
                .get(&(k, key.clone()))
                .map(|t| t.to_string())
                .unwrap_or("-".into())
        };
        let mut out = Vec::new();
        for (k, v) in &self.strings {
            out.push(format!(
                "string {} {} {}",
                escape(k),
                escape(v),
                ttl(Kind::Str, k)
            ));
        }
        for (k, h) in &self.hashes {
            let body: Vec<String> = h
                .iter()
                .map(|(f, v)| format!("{}={}", escape(f), escape(v)))
                .collect();
            out.push(format!(
                "hash {} {} {}",
                escape(k),
                body.join(","),
                ttl(Kind::Hash, k)
            ));
        }
        for (k, l) in &self.lists {
            let body: Vec<String> = l.iter().map(|v| escape(v)).collect();
            out.push(format!(
                "list {} {} {}",
                escape(k),
                body.join(","),
                ttl(Kind::List, k)
            ));
        }
        for (k, s) in &self.sets {
            let body: Vec<String> = s.iter().map(|v| escape(v)).collect();
            out.push(format!(
                "set {} {} {}",
                escape(k),
                body.join(","),
                ttl(Kind::Set, k)
            ));
        }
        for (k, z) in &self.zsets {
            let body: Vec<String> = z
                .iter()
                .map(|(m, s)| format!("{}:{}", escape(m), fmt_f64(*s)))
                .collect();
            out.push(format!(
                "zset {} {} {}",
                escape(k),
                body.join(","),
                ttl(Kind::Zset, k)
            ));
        }
        out
    }

    /// Number of keys over all types.
    pub fn len(&self) -> usize {
        self.strings.len()
            + self.hashes.len()
            + self.lists.len()
            + self.sets.len()
            + self.zsets.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the keyspace as a sim dump: the five type directories, each with a `data.sim` file
    /// holding the commands that rebuild that type (canonical RESP), so it travels through rsync
    /// like a real dump. `info` is written by the caller.
    pub fn save_dump(&self, dir: &Path) -> std::io::Result<()> {
        use crate::formats::resp::encode_argv_into;
        let mut files: BTreeMap<Kind, Vec<u8>> = KINDS.iter().map(|k| (*k, Vec::new())).collect();
        let ttl_cmd = |out: &mut Vec<u8>, k: Kind, key: &Key| {
            if let Some(t) = self.ttl.get(&(k, key.clone())) {
                encode_argv_into(
                    &[
                        b"expireat".to_vec(),
                        key.clone(),
                        t.to_string().into_bytes(),
                    ],
                    out,
                );
            }
        };
        for (k, v) in &self.strings {
            let out = files.get_mut(&Kind::Str).unwrap();
            encode_argv_into(&[b"set".to_vec(), k.clone(), v.clone()], out);
            ttl_cmd(out, Kind::Str, k);
        }
        for (k, h) in &self.hashes {
            let out = files.get_mut(&Kind::Hash).unwrap();
            for (f, v) in h {
                encode_argv_into(&[b"hset".to_vec(), k.clone(), f.clone(), v.clone()], out);
            }
            ttl_cmd(out, Kind::Hash, k);
        }
        for (k, l) in &self.lists {
            let out = files.get_mut(&Kind::List).unwrap();
            for v in l {
                encode_argv_into(&[b"rpush".to_vec(), k.clone(), v.clone()], out);
            }
            ttl_cmd(out, Kind::List, k);
        }
        for (k, s) in &self.sets {
            let out = files.get_mut(&Kind::Set).unwrap();
            for m in s {
                encode_argv_into(&[b"sadd".to_vec(), k.clone(), m.clone()], out);
            }
            ttl_cmd(out, Kind::Set, k);
        }
        for (k, z) in &self.zsets {
            let out = files.get_mut(&Kind::Zset).unwrap();
            for (m, s) in z {
                encode_argv_into(
                    &[
                        b"zadd".to_vec(),
                        k.clone(),
                        fmt_f64(*s).into_bytes(),
                        m.clone(),
                    ],
                    out,
                );
            }
            ttl_cmd(out, Kind::Zset, k);
        }
        for (k, bytes) in files {
            let d = dir.join(k.dir());
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("data.sim"), bytes)?;
        }
        Ok(())
    }

    /// Loads a sim dump written by [`Keyspace::save_dump`]. Type directories without a
    /// `data.sim` (for instance a real RocksDB dump) load as empty.
    pub fn load_dump(dir: &Path) -> Result<Keyspace, String> {
        let mut ks = Keyspace::default();
        for k in KINDS {
            let f = dir.join(k.dir()).join("data.sim");
            let Ok(bytes) = std::fs::read(&f) else {
                continue;
            };
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let (argv, used) = crate::formats::resp::parse_argv(rest)
                    .map_err(|e| format!("{}: {e}", f.display()))?
                    .ok_or_else(|| format!("{}: truncated", f.display()))?;
                ks.apply(&argv, 0)?;
                rest = &rest[used..];
            }
        }
        Ok(ks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|x| x.as_bytes().to_vec()).collect()
    }

    #[test]
    fn relative_and_absolute_ttl_agree() {
        let mut x = Keyspace::default();
        let mut y = Keyspace::default();
        x.apply(&a(&["set", "k", "v", "ex", "100"]), 1000).unwrap();
        y.apply(&a(&["pksetexat", "k", "1100", "v"]), 1000).unwrap();
        assert_eq!(x.lines(), y.lines());
        x.apply(&a(&["expire", "k", "5"]), 1000).unwrap();
        y.apply(&a(&["expireat", "k", "1005"]), 1000).unwrap();
        assert_eq!(x.lines(), y.lines());
    }

    #[test]
    fn every_type_and_dump_roundtrip() {
        let mut x = Keyspace::default();
        for c in [
            &["set", "s", "1"][..],
            &["incrby", "s", "41"],
            &["hset", "h", "f", "v"],
            &["hincrby", "h", "n", "3"],
            &["rpush", "l", "a", "b", "c"],
            &["lpop", "l"],
            &["sadd", "st", "x", "y"],
            &["srem", "st", "x"],
            &["zadd", "z", "1.5", "m", "2", "n"],
            &["zincrby", "z", "1", "n"],
            &["expireat", "h", "99999"],
        ] {
            x.apply(&a(c), 10).unwrap();
        }
        assert_eq!(x.len(), 5);
        let d = tempfile::tempdir().unwrap();
        x.save_dump(d.path()).unwrap();
        let y = Keyspace::load_dump(d.path()).unwrap();
        assert_eq!(x.lines(), y.lines());
        assert!(x.apply(&a(&["bogus", "k"]), 0).is_err());
    }
}
