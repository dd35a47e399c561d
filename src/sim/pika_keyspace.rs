//! A double of an old (≤ 3.x) Pika's *read* side as `verify` sees it: one keyspace per data type,
//! so a string and a hash may share a name, answered over the client protocol.
//!
//! Facts from Pika's source (storage engines nemo for 2.3, blackwidow for 3.x):
//! - `SCAN` walks the type keyspaces one after the other and returns a shared name once per
//!   type: 2.3 in the order kv, hash, list, zset, set; 3.x strings, hashes, sets, lists, zsets.
//!   Within a type, names come in key order. The returned cursor is the request's cursor plus
//!   `COUNT`, mapped server-side to where the walk stopped; `0` when done.
//! - `TYPE` answers the first type found in the order string, hash, list, zset, set (both).
//! - `TTL` answers for the first type found: 3.x strings, hashes, lists, zsets, sets; 2.3 kv,
//!   hash, zset, set, list.
//! - The per-type commands (`STRLEN`, `HLEN`, `LLEN`, `ZCARD`, `SCARD`, `GETRANGE`, `LRANGE`,
//!   `ZRANGE`, `HSCAN`, `SSCAN`, `HMGET`, `SISMEMBER`) read only their own type's keyspace: no
//!   `WRONGTYPE` for a name held by another type, just "absent".
//! - `EXPIRE` and `DEL` apply to every type holding the name.
//!
//! Writes for setting up data: `SET`, `HSET`/`HMSET`, `RPUSH`, `SADD`, `ZADD`, `EXPIRE`, `DEL`.

use crate::formats::resp::{parse_argv, Argv};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The storage generation whose orders to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// 2.3.x (nemo).
    V23,
    /// 3.0.x–3.2.x (blackwidow).
    V3,
}

/// A type keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Str,
    Hash,
    List,
    ZSet,
    Set,
}

type Exp = Option<u64>;
/// One type keyspace: name → (value, expiry).
type Space<V> = BTreeMap<Vec<u8>, (V, Exp)>;

/// The five keyspaces.
#[derive(Debug, Default)]
pub struct Keyspaces {
    strings: Space<Vec<u8>>,
    hashes: Space<BTreeMap<Vec<u8>, Vec<u8>>>,
    lists: Space<Vec<Vec<u8>>>,
    zsets: Space<BTreeMap<Vec<u8>, f64>>,
    sets: Space<BTreeSet<Vec<u8>>>,
}

fn now() -> u64 {
    crate::sim::old_master::unix_now()
}

fn live(e: &Exp) -> bool {
    e.is_none_or(|t| t > now())
}

impl Keyspaces {
    fn names(&self, t: T) -> Vec<Vec<u8>> {
        fn n<V>(m: &BTreeMap<Vec<u8>, (V, Exp)>) -> Vec<Vec<u8>> {
            m.iter()
                .filter(|(_, (_, e))| live(e))
                .map(|(k, _)| k.clone())
                .collect()
        }
        match t {
            T::Str => n(&self.strings),
            T::Hash => n(&self.hashes),
            T::List => n(&self.lists),
            T::ZSet => n(&self.zsets),
            T::Set => n(&self.sets),
        }
    }

    fn has(&self, t: T, k: &[u8]) -> bool {
        self.exp(t, k).is_some()
    }

    /// `Some(expiry)` when the type holds a live `k`.
    fn exp(&self, t: T, k: &[u8]) -> Option<Exp> {
        let e = match t {
            T::Str => self.strings.get(k).map(|v| v.1),
            T::Hash => self.hashes.get(k).map(|v| v.1),
            T::List => self.lists.get(k).map(|v| v.1),
            T::ZSet => self.zsets.get(k).map(|v| v.1),
            T::Set => self.sets.get(k).map(|v| v.1),
        }?;
        live(&e).then_some(e)
    }

    fn set_exp(&mut self, t: T, k: &[u8], e: Exp) -> bool {
        if !self.has(t, k) {
            return false;
        }
        match t {
            T::Str => self.strings.get_mut(k).unwrap().1 = e,
            T::Hash => self.hashes.get_mut(k).unwrap().1 = e,
            T::List => self.lists.get_mut(k).unwrap().1 = e,
            T::ZSet => self.zsets.get_mut(k).unwrap().1 = e,
            T::Set => self.sets.get_mut(k).unwrap().1 = e,
        }
        true
    }

    fn del(&mut self, t: T, k: &[u8]) -> bool {
        let had = self.has(t, k);
        match t {
            T::Str => drop(self.strings.remove(k)),
            T::Hash => drop(self.hashes.remove(k)),
            T::List => drop(self.lists.remove(k)),
            T::ZSet => drop(self.zsets.remove(k)),
            T::Set => drop(self.sets.remove(k)),
        }
        had
    }
}

const ALL: [T; 5] = [T::Str, T::Hash, T::List, T::ZSet, T::Set];

impl Generation {
    fn scan_order(self) -> [T; 5] {
        match self {
            Generation::V23 => [T::Str, T::Hash, T::List, T::ZSet, T::Set],
            Generation::V3 => [T::Str, T::Hash, T::Set, T::List, T::ZSet],
        }
    }
    fn ttl_order(self) -> [T; 5] {
        match self {
            Generation::V23 => [T::Str, T::Hash, T::ZSet, T::Set, T::List],
            Generation::V3 => [T::Str, T::Hash, T::List, T::ZSet, T::Set],
        }
    }
    fn version(self) -> &'static str {
        match self {
            Generation::V23 => "2.3.6",
            Generation::V3 => "3.0.16",
        }
    }
}

/// The responder's state.
pub struct PikaKeyspace {
    gen: Generation,
    ks: Keyspaces,
    /// SCAN cursors: cursor → (section index, first name of the rest).
    cursors: HashMap<i64, (usize, Vec<u8>)>,
}

/// A reply.
enum R {
    Ok,
    Status(&'static str),
    Err(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Arr(Vec<R>),
}

fn encode(r: &R, out: &mut Vec<u8>) {
    match r {
        R::Ok => out.extend_from_slice(b"+OK\r\n"),
        R::Status(s) => out.extend(format!("+{s}\r\n").bytes()),
        R::Err(e) => out.extend(format!("-{e}\r\n").bytes()),
        R::Int(n) => out.extend(format!(":{n}\r\n").bytes()),
        R::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        R::Bulk(Some(b)) => {
            out.extend(format!("${}\r\n", b.len()).bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        R::Arr(v) => {
            out.extend(format!("*{}\r\n", v.len()).bytes());
            for x in v {
                encode(x, out);
            }
        }
    }
}

fn int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Inclusive `start..=stop` with negative indices, clamped, as Redis and Pika read them.
fn range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let l = len as i64;
    let s = if start < 0 { (l + start).max(0) } else { start };
    let e = if stop < 0 { l + stop } else { stop.min(l - 1) };
    (s <= e && s < l).then_some((s as usize, e as usize))
}

fn fmt_score(f: f64) -> Vec<u8> {
    if f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64).into_bytes()
    } else {
        format!("{f}").into_bytes()
    }
}

/// `HSCAN`/`SSCAN` arguments after the key: cursor and COUNT.
fn scan_args(a: &[Vec<u8>]) -> Option<(usize, usize)> {
    let cursor = usize::try_from(int(a.first()?)?).ok()?;
    let mut count = 10;
    let mut i = 1;
    while i + 1 < a.len() {
        if a[i].eq_ignore_ascii_case(b"count") {
            count = usize::try_from(int(&a[i + 1])?).ok()?.max(1);
        }
        i += 2;
    }
    Some((cursor, count))
}

fn page<I: Clone>(items: &[I], cursor: usize, count: usize) -> (usize, &[I]) {
    let start = cursor.min(items.len());
    let end = (start + count).min(items.len());
    (if end >= items.len() { 0 } else { end }, &items[start..end])
}

impl PikaKeyspace {
    /// An empty keyspace of `gen`.
    pub fn new(gen: Generation) -> Self {
        PikaKeyspace {
            gen,
            ks: Keyspaces::default(),
            cursors: HashMap::new(),
        }
    }

    fn scan(&mut self, a: &[Vec<u8>]) -> R {
        let Some(cursor) = a.first().and_then(|c| int(c)) else {
            return R::Err("ERR value is not an integer or out of range".into());
        };
        let mut count = 10i64;
        let mut i = 1;
        while i + 1 < a.len() {
            if a[i].eq_ignore_ascii_case(b"count") {
                count = int(&a[i + 1]).unwrap_or(10).max(1);
            }
            i += 2;
        }
        let (mut section, mut from) = match self.cursors.get(&cursor) {
            Some(s) if cursor > 0 => s.clone(),
            _ => (0, Vec::new()),
        };
        let cursor = if cursor > 0 && self.cursors.contains_key(&cursor) {
            cursor
        } else {
            0
        };
        let order = self.gen.scan_order();
        let mut keys = Vec::new();
        while section < order.len() {
            let names = self.ks.names(order[section]);
            for n in names.into_iter().filter(|n| *n >= from) {
                if keys.len() as i64 == count {
                    let next = cursor + count;
                    self.cursors.insert(next, (section, n));
                    return R::Arr(vec![
                        R::Bulk(Some(next.to_string().into_bytes())),
                        R::Arr(keys),
                    ]);
                }
                keys.push(R::Bulk(Some(n)));
            }
            section += 1;
            from = Vec::new();
        }
        R::Arr(vec![R::Bulk(Some(b"0".to_vec())), R::Arr(keys)])
    }

    /// Executes one command.
    fn exec(&mut self, argv: &Argv) -> R {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        let a = &argv[1..];
        let wrong = || {
            R::Err(format!(
                "ERR wrong number of arguments for '{name}' command"
            ))
        };
        if a.is_empty() && !matches!(name.as_str(), "ping" | "info") {
            return wrong();
        }
        let k = a.first().cloned().unwrap_or_default();
        let ks = &mut self.ks;
        let len_of = |n: Option<usize>| R::Int(n.unwrap_or(0) as i64);
        match name.as_str() {
            "ping" => R::Status("PONG"),
            "info" => R::Bulk(Some(
                format!("# Server\r\npika_version:{}\r\n", self.gen.version()).into_bytes(),
            )),
            "scan" => self.scan(a),
            "type" => {
                let t = ALL.iter().find(|t| ks.has(**t, &k)).map(|t| match t {
                    T::Str => "string",
                    T::Hash => "hash",
                    T::List => "list",
                    T::ZSet => "zset",
                    T::Set => "set",
                });
                R::Status(t.unwrap_or("none"))
            }
            "ttl" => {
                let e = self.gen.ttl_order().iter().find_map(|t| ks.exp(*t, &k));
                R::Int(match e {
                    None => -2,
                    Some(None) => -1,
                    Some(Some(t)) => t.saturating_sub(now()) as i64,
                })
            }
            "strlen" => len_of(ks.has(T::Str, &k).then(|| ks.strings[&k].0.len())),
            "hlen" => len_of(ks.has(T::Hash, &k).then(|| ks.hashes[&k].0.len())),
            "llen" => len_of(ks.has(T::List, &k).then(|| ks.lists[&k].0.len())),
            "zcard" => len_of(ks.has(T::ZSet, &k).then(|| ks.zsets[&k].0.len())),
            "scard" => len_of(ks.has(T::Set, &k).then(|| ks.sets[&k].0.len())),
            "get" => R::Bulk(ks.has(T::Str, &k).then(|| ks.strings[&k].0.clone())),
            "getrange" if a.len() == 3 => {
                let (Some(s), Some(e)) = (int(&a[1]), int(&a[2])) else {
                    return R::Err("ERR value is not an integer or out of range".into());
                };
                let v = if ks.has(T::Str, &k) {
                    ks.strings[&k].0.clone()
                } else {
                    Vec::new()
                };
                R::Bulk(Some(
                    range(v.len(), s, e)
                        .map(|(s, e)| v[s..=e].to_vec())
                        .unwrap_or_default(),
                ))
            }
            "lrange" | "zrange" if a.len() >= 3 => {
                let (Some(s), Some(e)) = (int(&a[1]), int(&a[2])) else {
                    return R::Err("ERR value is not an integer or out of range".into());
                };
                let mut out = Vec::new();
                if name == "lrange" && ks.has(T::List, &k) {
                    let l = &ks.lists[&k].0;
                    if let Some((s, e)) = range(l.len(), s, e) {
                        out.extend(l[s..=e].iter().map(|x| R::Bulk(Some(x.clone()))));
                    }
                } else if name == "zrange" && ks.has(T::ZSet, &k) {
                    let scores = a
                        .get(3)
                        .is_some_and(|w| w.eq_ignore_ascii_case(b"withscores"));
                    let mut z: Vec<(&Vec<u8>, &f64)> = ks.zsets[&k].0.iter().collect();
                    z.sort_by(|x, y| x.1.total_cmp(y.1).then(x.0.cmp(y.0)));
                    if let Some((s, e)) = range(z.len(), s, e) {
                        for (m, sc) in &z[s..=e] {
                            out.push(R::Bulk(Some((*m).clone())));
                            if scores {
                                out.push(R::Bulk(Some(fmt_score(**sc))));
                            }
                        }
                    }
                }
                R::Arr(out)
            }
            "hscan" | "sscan" => {
                let Some((cursor, count)) = scan_args(&a[1..]) else {
                    return R::Err("ERR value is not an integer or out of range".into());
                };
                let elems: Vec<Vec<u8>> = if name == "hscan" {
                    if ks.has(T::Hash, &k) {
                        ks.hashes[&k]
                            .0
                            .iter()
                            .flat_map(|(f, v)| [f.clone(), v.clone()])
                            .collect()
                    } else {
                        Vec::new()
                    }
                } else if ks.has(T::Set, &k) {
                    ks.sets[&k].0.iter().cloned().collect()
                } else {
                    Vec::new()
                };
                let step = if name == "hscan" { 2 } else { 1 };
                let (next, items) = page(&elems, cursor * step, count * step);
                R::Arr(vec![
                    R::Bulk(Some((next / step).to_string().into_bytes())),
                    R::Arr(items.iter().map(|x| R::Bulk(Some(x.clone()))).collect()),
                ])
            }
            "hmget" => R::Arr(
                a[1..]
                    .iter()
                    .map(|f| {
                        R::Bulk(
                            ks.has(T::Hash, &k)
                                .then(|| ks.hashes[&k].0.get(f).cloned())
                                .flatten(),
                        )
                    })
                    .collect(),
            ),
            "sismember" if a.len() == 2 => R::Int(i64::from(
                ks.has(T::Set, &k) && ks.sets[&k].0.contains(&a[1]),
            )),
            "set" if a.len() == 2 => {
                ks.strings.insert(k, (a[1].clone(), None));
                R::Ok
            }
            "hset" | "hmset" if a.len() >= 3 && a.len() % 2 == 1 => {
                if !ks.has(T::Hash, &k) {
                    ks.hashes.insert(k.clone(), (BTreeMap::new(), None));
                }
                let h = &mut ks.hashes.get_mut(&k).unwrap().0;
                for p in a[1..].chunks(2) {
                    h.insert(p[0].clone(), p[1].clone());
                }
                R::Ok
            }
            "rpush" if a.len() >= 2 => {
                if !ks.has(T::List, &k) {
                    ks.lists.insert(k.clone(), (Vec::new(), None));
                }
                let l = &mut ks.lists.get_mut(&k).unwrap().0;
                l.extend(a[1..].iter().cloned());
                R::Int(l.len() as i64)
            }
            "sadd" if a.len() >= 2 => {
                if !ks.has(T::Set, &k) {
                    ks.sets.insert(k.clone(), (BTreeSet::new(), None));
                }
                let s = &mut ks.sets.get_mut(&k).unwrap().0;
                R::Int(a[1..].iter().filter(|m| s.insert((*m).clone())).count() as i64)
            }
            "zadd" if a.len() >= 3 && a.len() % 2 == 1 => {
                if !ks.has(T::ZSet, &k) {
                    ks.zsets.insert(k.clone(), (BTreeMap::new(), None));
                }
                let z = &mut ks.zsets.get_mut(&k).unwrap().0;
                let mut n = 0;
                for p in a[1..].chunks(2) {
                    let Some(s) = std::str::from_utf8(&p[0])
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                    else {
                        return R::Err("ERR value is not a valid float".into());
                    };
                    n += i64::from(z.insert(p[1].clone(), s).is_none());
                }
                R::Int(n)
            }
            "expire" if a.len() == 2 => {
                let Some(secs) = int(&a[1]) else {
                    return R::Err("ERR value is not an integer or out of range".into());
                };
                let at = Some(now() + secs.max(0) as u64);
                R::Int(i64::from(
                    ALL.iter()
                        .fold(false, |acc, t| ks.set_exp(*t, &k, at) | acc),
                ))
            }
            "del" => R::Int(
                a.iter()
                    .map(|k| i64::from(ALL.iter().fold(false, |acc, t| ks.del(*t, k) | acc)))
                    .sum(),
            ),
            _ => R::Err(format!("ERR unknown or unsupported command '{name}'")),
        }
    }
}

/// A running responder.
pub struct PikaResponder {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<PikaKeyspace>>,
    cancel: CancellationToken,
}

impl PikaResponder {
    /// Starts one on a free loopback port.
    pub async fn start(gen: Generation) -> std::io::Result<PikaResponder> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let state = Arc::new(Mutex::new(PikaKeyspace::new(gen)));
        let cancel = CancellationToken::new();
        let (st, c) = (state.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = tokio::select! {
                    _ = c.cancelled() => return,
                    r = l.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                let (st, c) = (st.clone(), c.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 64 * 1024];
                    loop {
                        let mut out = Vec::new();
                        while let Ok(Some((argv, used))) = parse_argv(&buf) {
                            buf.drain(..used);
                            if !argv.is_empty() {
                                encode(&st.lock().unwrap().exec(&argv), &mut out);
                            }
                        }
                        if !out.is_empty() && sock.write_all(&out).await.is_err() {
                            return;
                        }
                        let n = tokio::select! {
                            _ = c.cancelled() => return,
                            r = sock.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
                        };
                        buf.extend_from_slice(&chunk[..n]);
                    }
                });
            }
        });
        Ok(PikaResponder {
            addr,
            state,
            cancel,
        })
    }

    /// Runs a command directly (set-up), returning an error reply's text as `Err`.
    pub fn exec<A: AsRef<[u8]>>(&self, argv: &[A]) -> Result<(), String> {
        let argv: Argv = argv.iter().map(|a| a.as_ref().to_vec()).collect();
        match self.state.lock().unwrap().exec(&argv) {
            R::Err(e) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for PikaResponder {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
