//! Comparing one batch of key names between the old and the new side.
//!
//! A name is first *probed* on each side with one pipeline of `TYPE STRLEN HLEN LLEN SCARD ZCARD
//! TTL` per name. That works the same on Redis (one keyspace: the other type commands answer
//! `WRONGTYPE`, read as absent) and on Pika ≤ 3.x, which keeps one keyspace per type so that a
//! string and a hash may share a name: there `TYPE` answers only the first type found (strings
//! first, in nemo 2.3 and blackwidow 3.x alike) and the per-type length commands tell which other
//! types exist. `TTL` answers for the first type found (Pika's order: string, hash, list, zset,
//! set), so with a shared name only that TTL can be compared.
//!
//! Values are then read in pages on both sides, never whole: strings by `GETRANGE` pages, lists by
//! `LRANGE`, sorted sets by `ZRANGE … WITHSCORES` (both servers order by score then member), hashes
//! by `HSCAN` on the old side answered by `HMGET` of the same fields on the new side, sets by
//! `SSCAN` answered by `SISMEMBER`. Equal lengths plus every old element found equal on the new side
//! means equal collections.

use super::conn::{cmd, show, Cmd, Conn};
use crate::formats::resp::{escape, Reply};

/// Bytes per `GETRANGE` page.
pub const STRING_PAGE: u64 = 64 * 1024;
/// Elements per `LRANGE`/`ZRANGE`/`HSCAN`/`SSCAN` page.
pub const ELEMENT_PAGE: u64 = 256;
/// Differences named per key.
pub const MAX_DIFFS: usize = 3;

/// A data type, in Pika's `TYPE` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KType {
    /// String.
    String,
    /// Hash.
    Hash,
    /// List.
    List,
    /// Sorted set.
    ZSet,
    /// Set.
    Set,
}

impl KType {
    /// The name `TYPE` answers.
    pub fn name(self) -> &'static str {
        match self {
            KType::String => "string",
            KType::Hash => "hash",
            KType::List => "list",
            KType::ZSet => "zset",
            KType::Set => "set",
        }
    }
}

/// What a side holds under one name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// Types present with their length (bytes for a string, elements otherwise).
    pub types: Vec<(KType, u64)>,
    /// `TTL`: -1 none, -2 absent, else seconds.
    pub ttl: i64,
}

impl Meta {
    fn len_of(&self, t: KType) -> Option<u64> {
        self.types.iter().find(|(k, _)| *k == t).map(|(_, n)| *n)
    }
}

/// The result for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Same types, values and TTL (within the slack).
    Equal,
    /// The new side has nothing under this name; the old side's types.
    Missing(Vec<KType>),
    /// Differences, the first few named.
    Different(Vec<String>),
    /// Gone from the old side between the scan and the probe (expired or deleted): not compared.
    Vanished,
}

/// The probe commands for one name.
pub fn probe_cmds(key: &[u8], out: &mut Vec<Cmd>) {
    for c in ["type", "strlen", "hlen", "llen", "zcard", "scard", "ttl"] {
        out.push(vec![c.as_bytes().to_vec(), key.to_vec()]);
    }
}

/// Commands per name in [`probe_cmds`].
pub const PROBE_LEN: usize = 7;

fn count(r: &Reply, what: &str, peer: &str) -> Result<u64, String> {
    match r {
        Reply::Integer(n) => Ok((*n).max(0) as u64),
        Reply::Error(e) if e.starts_with("WRONGTYPE") => Ok(0),
        other => Err(format!("{peer}: {what} answered {}", show(other))),
    }
}

/// Reads [`probe_cmds`] replies.
pub fn parse_probe(r: &[Reply], peer: &str) -> Result<Meta, String> {
    let mut m = Meta::default();
    let ty = match &r[0] {
        Reply::Simple(s) => s.clone(),
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        other => return Err(format!("{peer}: TYPE answered {}", show(other))),
    };
    if ty == "string" {
        m.types.push((KType::String, count(&r[1], "STRLEN", peer)?));
    }
    for (i, t) in [
        (2, KType::Hash),
        (3, KType::List),
        (4, KType::ZSet),
        (5, KType::Set),
    ] {
        let n = count(&r[i], t.name(), peer)?;
        if n > 0 {
            m.types.push((t, n));
        }
    }
    m.ttl = match &r[6] {
        Reply::Integer(n) => *n,
        other => return Err(format!("{peer}: TTL answered {}", show(other))),
    };
    Ok(m)
}

/// One paged comparison of one (name, type).
#[derive(Debug)]
struct Task {
    idx: usize,
    key: Vec<u8>,
    ty: KType,
    len: u64,
    /// Next offset (string bytes, list/zset index) or SCAN cursor.
    at: u64,
    cursor: Vec<u8>,
}

impl Task {
    fn old_cmd(&self) -> Cmd {
        let k = &self.key;
        let n = |x: u64| x.to_string().into_bytes();
        match self.ty {
            KType::String => vec![
                b"getrange".to_vec(),
                k.clone(),
                n(self.at),
                n(self.at + STRING_PAGE - 1),
            ],
            KType::List => vec![
                b"lrange".to_vec(),
                k.clone(),
                n(self.at),
                n(self.at + ELEMENT_PAGE - 1),
            ],
            KType::ZSet => vec![
                b"zrange".to_vec(),
                k.clone(),
                n(self.at),
                n(self.at + ELEMENT_PAGE - 1),
                b"withscores".to_vec(),
            ],
            KType::Hash | KType::Set => vec![
                if self.ty == KType::Hash {
                    b"hscan".to_vec()
                } else {
                    b"sscan".to_vec()
                },
                k.clone(),
                self.cursor.clone(),
                b"count".to_vec(),
                n(ELEMENT_PAGE),
            ],
        }
    }

    /// Whether the new side is asked the very same command.
    fn mirrored(&self) -> bool {
        matches!(self.ty, KType::String | KType::List | KType::ZSet)
    }
}

fn items(r: &Reply, what: &str) -> Result<Vec<Vec<u8>>, String> {
    match r {
        Reply::Array(Some(v)) => v
            .iter()
            .map(|x| match x {
                Reply::Bulk(Some(b)) => Ok(b.clone()),
                other => Err(format!("{what}: element {}", show(other))),
            })
            .collect(),
        Reply::Array(None) => Ok(Vec::new()),
        other => Err(format!("{what} answered {}", show(other))),
    }
}

fn scan_page(r: &Reply, what: &str) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    match r {
        Reply::Array(Some(v)) if v.len() == 2 => {
            let cursor = match &v[0] {
                Reply::Bulk(Some(b)) => b.clone(),
                other => return Err(format!("{what}: cursor {}", show(other))),
            };
            Ok((cursor, items(&v[1], what)?))
        }
        other => Err(format!("{what} answered {}", show(other))),
    }
}

fn clip(b: &[u8]) -> String {
    const MAX: usize = 48;
    if b.len() > MAX {
        format!("\"{}…\" ({} bytes)", escape(&b[..MAX]), b.len())
    } else {
        format!("\"{}\"", escape(b))
    }
}

fn score_eq(a: &[u8], b: &[u8]) -> bool {
    let p = |x: &[u8]| {
        std::str::from_utf8(x)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
    };
    match (p(a), p(b)) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()),
        _ => a == b,
    }
}

/// Compares one round's old and new replies of a mirrored task; returns differences and whether
/// the task is finished.
fn compare_mirrored(t: &mut Task, old: &Reply, new: &Reply) -> (Vec<String>, bool) {
    let mut diffs = Vec::new();
    let ty = t.ty.name();
    match t.ty {
        KType::String => {
            let (a, b) = match (old, new) {
                (Reply::Bulk(Some(a)), Reply::Bulk(Some(b))) => (a, b),
                _ => {
                    return (
                        vec![format!("string read: old {} new {}", show(old), show(new))],
                        true,
                    )
                }
            };
            if a != b {
                let i = a
                    .iter()
                    .zip(b.iter())
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                let at = t.at + i as u64;
                let (lo, hi) = (i, (i + 16).min(a.len()));
                let (blo, bhi) = (i.min(b.len()), (i + 16).min(b.len()));
                diffs.push(format!(
                    "string value differs at byte {at}: old {} new {}",
                    clip(&a[lo..hi]),
                    clip(&b[blo..bhi])
                ));
                return (diffs, true);
            }
            t.at += STRING_PAGE;
            (diffs, t.at >= t.len || (a.len() as u64) < STRING_PAGE)
        }
        KType::List | KType::ZSet => {
            let (a, b) = match (items(old, "old"), items(new, "new")) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return (vec![format!("{ty} read: {e}")], true),
            };
            let step = if t.ty == KType::ZSet { 2 } else { 1 };
            let mut i = 0;
            while i < a.len().max(b.len()) && diffs.len() < MAX_DIFFS {
                let (x, y) = (a.get(i), b.get(i));
                let index = t.at + (i / step) as u64;
                let same = match (t.ty, x, y) {
                    (KType::ZSet, Some(x), Some(y)) => {
                        let (sx, sy) = (a.get(i + 1), b.get(i + 1));
                        x == y && matches!((sx, sy), (Some(p), Some(q)) if score_eq(p, q))
                    }
                    (_, Some(x), Some(y)) => x == y,
                    _ => false,
                };
                if !same {
                    let show_el = |v: &Vec<Vec<u8>>| match v.get(i) {
                        None => "nothing".to_string(),
                        Some(m) if step == 2 => format!(
                            "{} score {}",
                            clip(m),
                            v.get(i + 1)
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .unwrap_or_default()
                        ),
                        Some(m) => clip(m),
                    };
                    diffs.push(format!(
                        "{ty} element {index} differs: old {} new {}",
                        show_el(&a),
                        show_el(&b)
                    ));
                }
                i += step;
            }
            t.at += ELEMENT_PAGE;
            let done = !diffs.is_empty() || t.at >= t.len || a.is_empty();
            (diffs, done)
        }
        _ => unreachable!("hash and set are not mirrored"),
    }
}

/// The new side's commands for one page of an old `HSCAN`/`SSCAN`.
fn lookup_cmds(t: &Task, elems: &[Vec<u8>]) -> Vec<Cmd> {
    match t.ty {
        KType::Hash => {
            let mut c = vec![b"hmget".to_vec(), t.key.clone()];
            c.extend(elems.chunks(2).map(|p| p[0].clone()));
            if c.len() == 2 {
                Vec::new()
            } else {
                vec![c]
            }
        }
        _ => elems
            .iter()
            .map(|m| vec![b"sismember".to_vec(), t.key.clone(), m.clone()])
            .collect(),
    }
}

fn compare_lookup(t: &Task, elems: &[Vec<u8>], new: &[Reply]) -> Vec<String> {
    let mut diffs = Vec::new();
    match t.ty {
        KType::Hash => {
            let vals = match new.first() {
                Some(Reply::Array(Some(v))) => v,
                Some(other) => {
                    return vec![format!("hash read on new: HMGET answered {}", show(other))]
                }
                None => return diffs,
            };
            for (pair, v) in elems.chunks(2).zip(vals) {
                if diffs.len() >= MAX_DIFFS {
                    break;
                }
                let (f, want) = (&pair[0], pair.get(1));
                match v {
                    Reply::Bulk(Some(got)) if Some(got) == want => {}
                    Reply::Bulk(Some(got)) => diffs.push(format!(
                        "hash field {} differs: old {} new {}",
                        clip(f),
                        want.map(|w| clip(w)).unwrap_or_default(),
                        clip(got)
                    )),
                    _ => diffs.push(format!("hash field {} missing on new", clip(f))),
                }
            }
        }
        _ => {
            for (m, r) in elems.iter().zip(new) {
                if diffs.len() >= MAX_DIFFS {
                    break;
                }
                if !matches!(r, Reply::Integer(1)) {
                    diffs.push(format!("set member {} missing on new", clip(m)));
                }
            }
        }
    }
    diffs
}

/// Compares a batch of names, probed on both sides ([`probe`]); names the old side no longer
/// holds are `Vanished`. Returns one verdict per name.
pub async fn compare_batch(
    old: &mut Conn,
    new: &mut Conn,
    keys: &[Vec<u8>],
    old_meta: &[Meta],
    new_meta: &[Meta],
    ttl_slack: i64,
) -> Result<Vec<Verdict>, String> {
    let mut diffs: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    let mut verdicts: Vec<Option<Verdict>> = vec![None; keys.len()];
    let mut tasks = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let o = &old_meta[i];
        if o.types.is_empty() {
            verdicts[i] = Some(Verdict::Vanished);
            continue;
        }
        let n = &new_meta[i];
        if n.types.is_empty() {
            verdicts[i] = Some(Verdict::Missing(o.types.iter().map(|t| t.0).collect()));
            continue;
        }
        let d = &mut diffs[i];
        for &(t, len) in &o.types {
            match n.len_of(t) {
                None => {
                    let has: Vec<_> = n.types.iter().map(|t| t.0.name()).collect();
                    d.push(format!(
                        "type {} missing on new (new has {})",
                        t.name(),
                        has.join(", ")
                    ));
                }
                Some(nl) if nl != len => {
                    d.push(format!("{} length differs: old {len} new {nl}", t.name()))
                }
                Some(_) => tasks.push(Task {
                    idx: i,
                    key: k.clone(),
                    ty: t,
                    len,
                    at: 0,
                    cursor: b"0".to_vec(),
                }),
            }
        }
        for &(t, _) in &n.types {
            if o.len_of(t).is_none() {
                d.push(format!("extra type {} on new", t.name()));
            }
        }
        let ttl_ok = match (o.ttl, n.ttl) {
            (a, b) if a < 0 || b < 0 => a == b,
            (a, b) => (a - b).abs() <= ttl_slack,
        };
        if !ttl_ok {
            let f = |t: i64| {
                if t == -1 {
                    "none".to_string()
                } else {
                    format!("{t}s")
                }
            };
            d.push(format!("ttl differs: old {} new {}", f(o.ttl), f(n.ttl)));
        }
    }
    // Paged value comparison, every task advancing one page per round.
    while !tasks.is_empty() {
        let old_cmds: Vec<Cmd> = tasks.iter().map(Task::old_cmd).collect();
        let mirror: Vec<usize> = (0..tasks.len()).filter(|&j| tasks[j].mirrored()).collect();
        let new_cmds: Vec<Cmd> = mirror.iter().map(|&j| old_cmds[j].clone()).collect();
        let (ro, rn) = tokio::join!(old.pipeline(&old_cmds), new.pipeline(&new_cmds));
        let (ro, rn) = (ro?, rn?);
        let mut done = vec![false; tasks.len()];
        for (m, &j) in mirror.iter().enumerate() {
            let (d, fin) = compare_mirrored(&mut tasks[j], &ro[j], &rn[m]);
            diffs[tasks[j].idx].extend(d);
            done[j] = fin;
        }
        // Hash and set pages: look the old page's elements up on the new side.
        let mut lookups: Vec<(usize, Vec<Vec<u8>>, usize)> = Vec::new();
        let mut cmds = Vec::new();
        for j in 0..tasks.len() {
            if tasks[j].mirrored() {
                continue;
            }
            let what = format!("{} {}", old.peer, tasks[j].ty.name());
            match scan_page(&ro[j], &what) {
                Ok((cursor, elems)) => {
                    let c = lookup_cmds(&tasks[j], &elems);
                    lookups.push((j, elems, c.len()));
                    cmds.extend(c);
                    done[j] = cursor == b"0";
                    tasks[j].cursor = cursor;
                }
                Err(e) => {
                    diffs[tasks[j].idx].push(format!("read failed: {e}"));
                    done[j] = true;
                }
            }
        }
        let rl = new.pipeline(&cmds).await?;
        let mut at = 0;
        for (j, elems, n) in lookups {
            let d = compare_lookup(&tasks[j], &elems, &rl[at..at + n]);
            at += n;
            if !d.is_empty() {
                done[j] = true;
            }
            diffs[tasks[j].idx].extend(d);
        }
        let mut j = 0;
        tasks.retain(|_| {
            let keep = !done[j];
            j += 1;
            keep
        });
    }
    Ok(verdicts
        .into_iter()
        .zip(diffs)
        .map(|(v, mut d)| match v {
            Some(v) => v,
            None if d.is_empty() => Verdict::Equal,
            None => {
                d.truncate(MAX_DIFFS);
                Verdict::Different(d)
            }
        })
        .collect())
}

/// Probes names on both sides at once.
pub async fn probe_both(
    old: &mut Conn,
    new: &mut Conn,
    keys: &[Vec<u8>],
) -> Result<(Vec<Meta>, Vec<Meta>), String> {
    let (o, n) = tokio::join!(probe(old, keys), probe(new, keys));
    Ok((o?, n?))
}

/// Probes names on one side.
pub async fn probe(conn: &mut Conn, keys: &[Vec<u8>]) -> Result<Vec<Meta>, String> {
    let mut cmds = Vec::with_capacity(keys.len() * PROBE_LEN);
    for k in keys {
        probe_cmds(k, &mut cmds);
    }
    let r = conn.pipeline(&cmds).await?;
    r.chunks(PROBE_LEN)
        .map(|c| parse_probe(c, &conn.peer))
        .collect()
}

/// `SCAN cursor MATCH * COUNT n`: the next cursor and the names.
pub async fn scan(
    conn: &mut Conn,
    cursor: &[u8],
    n: usize,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let r = conn
        .one(cmd(&[
            b"scan".as_slice(),
            cursor,
            b"match",
            b"*",
            b"count",
            n.to_string().as_bytes(),
        ]))
        .await?;
    scan_page(&r, &format!("{}: SCAN", conn.peer))
}
