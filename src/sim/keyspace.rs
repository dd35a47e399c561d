//! A small in-memory keyspace with Pika's write commands (strings, hashes, lists, sets, zsets,
//! TTLs as absolute unix seconds), enough to run workloads on the double and to replay what the
//! relay received, then compare the two.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::formats::resp::{Argv, Reply};

/// One value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// String.
    Str(Vec<u8>),
    /// Hash.
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// List.
    List(VecDeque<Vec<u8>>),
    /// Set.
    Set(BTreeSet<Vec<u8>>),
    /// Sorted set (member → score).
    ZSet(BTreeMap<Vec<u8>, f64>),
}

/// Keys with values and optional expiry (absolute unix seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keyspace {
    /// The data.
    pub data: BTreeMap<Vec<u8>, (Value, Option<u64>)>,
}

fn err<T>(s: &str) -> Result<T, String> {
    Err(s.to_string())
}

fn int(b: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| "ERR value is not an integer or out of range".to_string())
}

fn float(b: &[u8]) -> Result<f64, String> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| !f.is_nan())
        .ok_or_else(|| "ERR value is not a valid float".to_string())
}

fn fmt_f64(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

impl Keyspace {
    /// Live keys at `now` (expired ones removed), for comparisons.
    pub fn live(&self, now: u64) -> BTreeMap<Vec<u8>, (Value, Option<u64>)> {
        self.data
            .iter()
            .filter(|(_, (_, e))| e.is_none_or(|t| t > now))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// One line per live key at `now`, sorted: `key type value ttl` with binary bytes escaped.
    /// Two keyspaces hold the same data exactly when their lines are equal.
    pub fn lines(&self, now: u64) -> Vec<String> {
        use crate::formats::resp::escape;
        let join = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>().join(",");
        self.live(now)
            .into_iter()
            .map(|(k, (v, exp))| {
                let (ty, body) = match v {
                    Value::Str(s) => ("string", escape(&s)),
                    Value::Hash(h) => (
                        "hash",
                        join(
                            &mut h
                                .iter()
                                .map(|(f, v)| format!("{}={}", escape(f), escape(v))),
                        ),
                    ),
                    Value::List(l) => ("list", join(&mut l.iter().map(|v| escape(v)))),
                    Value::Set(s) => ("set", join(&mut s.iter().map(|v| escape(v)))),
                    Value::ZSet(z) => (
                        "zset",
                        join(
                            &mut z
                                .iter()
                                .map(|(m, s)| format!("{}:{}", escape(m), fmt_f64(*s))),
                        ),
                    ),
                };
                format!(
                    "{} {ty} {body} {}",
                    escape(&k),
                    exp.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
                )
            })
            .collect()
    }

    /// Whether `key` holds a live value at `now`.
    pub fn contains(&self, key: &[u8], now: u64) -> bool {
        self.data
            .get(key)
            .is_some_and(|(_, e)| e.is_none_or(|t| t > now))
    }

    fn purge(&mut self, key: &[u8], now: u64) {
        if let Some((_, Some(t))) = self.data.get(key) {
            if *t <= now {
                self.data.remove(key);
            }
        }
    }

    fn entry<'a>(
        &'a mut self,
        key: &[u8],
        now: u64,
        new: fn() -> Value,
    ) -> &'a mut (Value, Option<u64>) {
        self.purge(key, now);
        self.data
            .entry(key.to_vec())
            .or_insert_with(|| (new(), None))
    }

    fn drop_if_empty(&mut self, key: &[u8]) {
        let empty = match self.data.get(key) {
            Some((Value::Hash(h), _)) => h.is_empty(),
            Some((Value::List(l), _)) => l.is_empty(),
            Some((Value::Set(s), _)) => s.is_empty(),
            Some((Value::ZSet(z), _)) => z.is_empty(),
            _ => false,
        };
        if empty {
            self.data.remove(key);
        }
    }

    fn set_str(&mut self, key: &[u8], v: Vec<u8>, exp: Option<u64>) {
        self.data.insert(key.to_vec(), (Value::Str(v), exp));
    }

    fn get_str(&mut self, key: &[u8], now: u64) -> Result<Option<Vec<u8>>, String> {
        self.purge(key, now);
        match self.data.get(key) {
            None => Ok(None),
            Some((Value::Str(s), _)) => Ok(Some(s.clone())),
            Some(_) => err(WRONGTYPE),
        }
    }

    fn incr_by(&mut self, key: &[u8], by: i64, now: u64) -> Result<Reply, String> {
        let cur = match self.get_str(key, now)? {
            None => 0,
            Some(v) => int(&v)?,
        };
        let n = cur
            .checked_add(by)
            .ok_or("ERR increment or decrement would overflow")?;
        let exp = self.data.get(key).and_then(|(_, e)| *e);
        self.set_str(key, n.to_string().into_bytes(), exp);
        Ok(Reply::Integer(n))
    }

    /// `incrbyfloat`: the new value as a bulk string, in the shortest decimal form (`11`, `3.5`).
    fn incr_by_float(&mut self, key: &[u8], by: &[u8], now: u64) -> Result<Reply, String> {
        let float = |b: &[u8]| -> Result<f64, String> {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|f| f.is_finite())
                .ok_or_else(|| "ERR value is not a valid float".to_string())
        };
        let cur = match self.get_str(key, now)? {
            None => 0.0,
            Some(v) => float(&v)?,
        };
        let n = cur + float(by)?;
        if !n.is_finite() {
            return Err("ERR increment would produce NaN or Infinity".into());
        }
        let v = format!("{n}").into_bytes();
        let exp = self.data.get(key).and_then(|(_, e)| *e);
        self.set_str(key, v.clone(), exp);
        Ok(Reply::Bulk(Some(v)))
    }

    /// Executes one write command at unix time `now`. Errors are the reply text.
    pub fn exec(&mut self, argv: &Argv, now: u64) -> Result<Reply, String> {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        let a = &argv[1..];
        let arity = |min: usize, exact: bool| -> Result<(), String> {
            if a.len() + 1 < min || (exact && a.len() + 1 != min) {
                Err(format!(
                    "ERR wrong number of arguments for '{name}' command"
                ))
            } else {
                Ok(())
            }
        };
        let ok = || Ok(Reply::Simple("OK".into()));
        match name.as_str() {
            "set" => {
                arity(3, false)?;
                let (mut exp, mut nx, mut xx) = (None, false, false);
                let mut i = 2;
                while i < a.len() {
                    let opt = String::from_utf8_lossy(&a[i]).to_ascii_lowercase();
                    match opt.as_str() {
                        "nx" => nx = true,
                        "xx" => xx = true,
                        "ex" | "px" if i + 1 < a.len() => {
                            let n = int(&a[i + 1])?;
                            if n <= 0 {
                                return err("ERR invalid expire time in set");
                            }
                            exp = Some(
                                now + if opt == "ex" {
                                    n as u64
                                } else {
                                    n as u64 / 1000
                                },
                            );
                            i += 1;
                        }
                        _ => return err("ERR syntax error"),
                    }
                    i += 1;
                }
                self.purge(&a[0], now);
                let exists = self.data.contains_key(&a[0]);
                if (nx && exists) || (xx && !exists) {
                    return Ok(Reply::Bulk(None));
                }
                self.set_str(&a[0], a[1].clone(), exp);
                ok()
            }
            "setex" | "psetex" => {
                arity(4, true)?;
                let n = int(&a[1])?;
                if n <= 0 {
                    return err("ERR invalid expire time");
                }
                let secs = if name == "setex" {
                    n as u64
                } else {
                    n as u64 / 1000
                };
                self.set_str(&a[0], a[2].clone(), Some(now + secs));
                ok()
            }
            "pksetexat" => {
                arity(4, true)?;
                let t = int(&a[1])?;
                self.set_str(&a[0], a[2].clone(), Some(t.max(0) as u64));
                ok()
            }
            "setnx" => {
                arity(3, true)?;
                self.purge(&a[0], now);
                if self.data.contains_key(&a[0]) {
                    return Ok(Reply::Integer(0));
                }
                self.set_str(&a[0], a[1].clone(), None);
                Ok(Reply::Integer(1))
            }
            "getset" => {
                arity(3, true)?;
                let old = self.get_str(&a[0], now)?;
                self.set_str(&a[0], a[1].clone(), None);
                Ok(Reply::Bulk(old))
            }
            "mset" | "msetnx" => {
                if a.is_empty() || a.len() % 2 != 0 {
                    return Err(format!(
                        "ERR wrong number of arguments for '{name}' command"
                    ));
                }
                if name == "msetnx" {
                    for p in a.chunks(2) {
                        self.purge(&p[0], now);
                        if self.data.contains_key(&p[0]) {
                            return Ok(Reply::Integer(0));
                        }
                    }
                }
                for p in a.chunks(2) {
                    self.set_str(&p[0], p[1].clone(), None);
                }
                if name == "msetnx" {
                    Ok(Reply::Integer(1))
                } else {
                    ok()
                }
            }
            "append" => {
                arity(3, true)?;
                let mut v = self.get_str(&a[0], now)?.unwrap_or_default();
                v.extend_from_slice(&a[1]);
                let n = v.len() as i64;
                let exp = self.data.get(&a[0]).and_then(|(_, e)| *e);
                self.set_str(&a[0], v, exp);
                Ok(Reply::Integer(n))
            }
            "incr" => {
                arity(2, true)?;
                self.incr_by(&a[0], 1, now)
            }
            "decr" => {
                arity(2, true)?;
                self.incr_by(&a[0], -1, now)
            }
            "incrby" => {
                arity(3, true)?;
                let n = int(&a[1])?;
                self.incr_by(&a[0], n, now)
            }
            "decrby" => {
                arity(3, true)?;
                let n = int(&a[1])?;
                self.incr_by(&a[0], -n, now)
            }
            "incrbyfloat" => {
                arity(3, true)?;
                self.incr_by_float(&a[0], &a[1], now)
            }
            "del" => {
                arity(2, false)?;
                let mut n = 0;
                for k in a {
                    self.purge(k, now);
                    if self.data.remove(k).is_some() {
                        n += 1;
                    }
                }
                Ok(Reply::Integer(n))
            }
            "expire" | "pexpire" | "expireat" | "pexpireat" => {
                arity(3, true)?;
                let n = int(&a[1])?;
                let t = match name.as_str() {
                    "expire" => now as i64 + n,
                    "pexpire" => now as i64 + n / 1000,
                    "expireat" => n,
                    _ => n / 1000,
                };
                self.purge(&a[0], now);
                match self.data.get_mut(&a[0]) {
                    None => Ok(Reply::Integer(0)),
                    Some(e) => {
                        if t <= now as i64 {
                            self.data.remove(&a[0]);
                        } else {
                            e.1 = Some(t as u64);
                        }
                        Ok(Reply::Integer(1))
                    }
                }
            }
            "persist" => {
                arity(2, true)?;
                self.purge(&a[0], now);
                match self.data.get_mut(&a[0]) {
                    Some(e) if e.1.is_some() => {
                        e.1 = None;
                        Ok(Reply::Integer(1))
                    }
                    _ => Ok(Reply::Integer(0)),
                }
            }
            "hset" | "hsetnx" => {
                arity(4, true)?;
                let Value::Hash(h) = &mut self.entry(&a[0], now, || Value::Hash(BTreeMap::new())).0
                else {
                    return err(WRONGTYPE);
                };
                if name == "hsetnx" && h.contains_key(&a[1]) {
                    return Ok(Reply::Integer(0));
                }
                let new = h.insert(a[1].clone(), a[2].clone()).is_none();
                Ok(Reply::Integer(if new || name == "hsetnx" { 1 } else { 0 }))
            }
            "hmset" => {
                if a.len() < 3 || a.len() % 2 == 0 {
                    return err("ERR wrong number of arguments for 'hmset' command");
                }
                let Value::Hash(h) = &mut self.entry(&a[0], now, || Value::Hash(BTreeMap::new())).0
                else {
                    return err(WRONGTYPE);
                };
                for p in a[1..].chunks(2) {
                    h.insert(p[0].clone(), p[1].clone());
                }
                ok()
            }
            "hdel" => {
                arity(3, false)?;
                self.purge(&a[0], now);
                let n = match self.data.get_mut(&a[0]) {
                    None => 0,
                    Some((Value::Hash(h), _)) => {
                        a[1..].iter().filter(|f| h.remove(*f).is_some()).count()
                    }
                    Some(_) => return err(WRONGTYPE),
                };
                self.drop_if_empty(&a[0]);
                Ok(Reply::Integer(n as i64))
            }
            "hincrby" => {
                arity(4, true)?;
                let by = int(&a[2])?;
                let Value::Hash(h) = &mut self.entry(&a[0], now, || Value::Hash(BTreeMap::new())).0
                else {
                    return err(WRONGTYPE);
                };
                let cur = h.get(&a[1]).map(|v| int(v)).transpose()?.unwrap_or(0);
                let n = cur + by;
                h.insert(a[1].clone(), n.to_string().into_bytes());
                Ok(Reply::Integer(n))
            }
            "lpush" | "rpush" => {
                arity(3, false)?;
                let Value::List(l) = &mut self.entry(&a[0], now, || Value::List(VecDeque::new())).0
                else {
                    return err(WRONGTYPE);
                };
                for v in &a[1..] {
                    if name == "lpush" {
                        l.push_front(v.clone())
                    } else {
                        l.push_back(v.clone())
                    }
                }
                Ok(Reply::Integer(l.len() as i64))
            }
            "lpop" | "rpop" => {
                arity(2, true)?;
                self.purge(&a[0], now);
                let v = match self.data.get_mut(&a[0]) {
                    None => None,
                    Some((Value::List(l), _)) => {
                        if name == "lpop" {
                            l.pop_front()
                        } else {
                            l.pop_back()
                        }
                    }
                    Some(_) => return err(WRONGTYPE),
                };
                self.drop_if_empty(&a[0]);
                Ok(Reply::Bulk(v))
            }
            "sadd" => {
                arity(3, false)?;
                let Value::Set(s) = &mut self.entry(&a[0], now, || Value::Set(BTreeSet::new())).0
                else {
                    return err(WRONGTYPE);
                };
                Ok(Reply::Integer(
                    a[1..].iter().filter(|m| s.insert((*m).clone())).count() as i64,
                ))
            }
            "srem" => {
                arity(3, false)?;
                self.purge(&a[0], now);
                let n = match self.data.get_mut(&a[0]) {
                    None => 0,
                    Some((Value::Set(s), _)) => a[1..].iter().filter(|m| s.remove(*m)).count(),
                    Some(_) => return err(WRONGTYPE),
                };
                self.drop_if_empty(&a[0]);
                Ok(Reply::Integer(n as i64))
            }
            "zadd" => {
                if a.len() < 3 || a.len() % 2 == 0 {
                    return err("ERR wrong number of arguments for 'zadd' command");
                }
                let pairs: Vec<(f64, Vec<u8>)> = a[1..]
                    .chunks(2)
                    .map(|p| Ok((float(&p[0])?, p[1].clone())))
                    .collect::<Result<_, String>>()?;
                let Value::ZSet(z) = &mut self.entry(&a[0], now, || Value::ZSet(BTreeMap::new())).0
                else {
                    return err(WRONGTYPE);
                };
                let mut n = 0;
                for (s, m) in pairs {
                    if z.insert(m, s).is_none() {
                        n += 1;
                    }
                }
                Ok(Reply::Integer(n))
            }
            "zincrby" => {
                arity(4, true)?;
                let by = float(&a[1])?;
                let Value::ZSet(z) = &mut self.entry(&a[0], now, || Value::ZSet(BTreeMap::new())).0
                else {
                    return err(WRONGTYPE);
                };
                let s = z.get(&a[2]).copied().unwrap_or(0.0) + by;
                z.insert(a[2].clone(), s);
                Ok(Reply::Bulk(Some(fmt_f64(s).into_bytes())))
            }
            "zrem" => {
                arity(3, false)?;
                self.purge(&a[0], now);
                let n = match self.data.get_mut(&a[0]) {
                    None => 0,
                    Some((Value::ZSet(z), _)) => {
                        a[1..].iter().filter(|m| z.remove(*m).is_some()).count()
                    }
                    Some(_) => return err(WRONGTYPE),
                };
                self.drop_if_empty(&a[0]);
                Ok(Reply::Integer(n as i64))
            }
            "flushall" => {
                self.data.clear();
                ok()
            }
            "flushdb" => {
                arity(2, true)?;
                let ty = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
                self.data.retain(|_, (v, _)| {
                    !matches!(
                        (ty.as_str(), v),
                        ("string", Value::Str(_))
                            | ("hash", Value::Hash(_))
                            | ("list", Value::List(_))
                            | ("set", Value::Set(_))
                            | ("zset", Value::ZSet(_))
                    )
                });
                ok()
            }
            "padding" => ok(),
            _ => Err(format!("Err unknown or unsupported command '{name}'")),
        }
    }
}
