//! Reader of nemo (Pika 2.3.x) dumps (spec §4, §6): every value ends with `version:u32 |
//! timestamp:i32`; collections are a meta entry (`H`/`L`/`S`/`Z` + key) and data entries
//! (`h`/`l`/`s`/`z`/`y` + u8 keylen + key + ...) whose version must be ≥ the meta's.

use bytes::Bytes;
use rocksdb::DB;

use super::chunk::{emit_string, Ctx, Emit, KeyChunks, Stop};
use super::record::DataType;

/// Length of the `version | timestamp` suffix of every nemo value.
const SUFFIX: usize = 8;

/// Splits `payload | version:u32 | ts:i32`.
pub fn split_suffix(v: &[u8]) -> Option<(&[u8], u32, i32)> {
    if v.len() < SUFFIX {
        return None;
    }
    let (p, s) = v.split_at(v.len() - SUFFIX);
    Some((
        p,
        u32::from_le_bytes(s[..4].try_into().ok()?),
        i32::from_le_bytes(s[4..].try_into().ok()?),
    ))
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().expect("length checked"))
}

/// `tag | u8 len | key` (the prefix of every data key of `key`).
pub fn data_prefix(tag: u8, key: &[u8]) -> Option<Vec<u8>> {
    let n = u8::try_from(key.len()).ok().filter(|n| *n < 255)?;
    let mut p = Vec::with_capacity(key.len() + 2);
    p.push(tag);
    p.push(n);
    p.extend_from_slice(key);
    Some(p)
}

/// Streams the instance of type `t` in key order.
pub fn read(db: &DB, t: DataType, ctx: &Ctx<'_>, emit: &mut Emit<'_>) -> Result<(), Stop> {
    match t {
        DataType::String => read_kv(db, ctx, emit),
        DataType::List => read_metas(db, b'L', 40, ctx, &mut |key, meta, exp| {
            read_list(db, key, meta, exp, ctx, emit)
        }),
        DataType::Hash => read_metas(db, b'H', 16, ctx, &mut |key, meta, exp| {
            read_prefixed(db, key, b'h', meta, DataType::Hash, exp, ctx, emit)
        }),
        DataType::Set => read_metas(db, b'S', 16, ctx, &mut |key, meta, exp| {
            read_prefixed(db, key, b's', meta, DataType::Set, exp, ctx, emit)
        }),
        DataType::ZSet if !ctx.zset_score_order => {
            read_metas(db, b'Z', 16, ctx, &mut |key, meta, exp| {
                read_prefixed(db, key, b'z', meta, DataType::ZSet, exp, ctx, emit)
            })
        }
        DataType::ZSet => read_metas(db, b'Z', 16, ctx, &mut |key, meta, exp| {
            read_zset(db, key, meta, exp, ctx, emit)
        }),
    }
}

fn read_kv(db: &DB, ctx: &Ctx<'_>, emit: &mut Emit<'_>) -> Result<(), Stop> {
    let mut it = db.raw_iterator();
    it.seek_to_first();
    while it.valid() {
        let (k, v) = (it.key().unwrap_or_default(), it.value().unwrap_or_default());
        let (payload, _ver, ts) = split_suffix(v)
            .ok_or_else(|| ctx.corrupt(k, "value shorter than its 8-byte suffix"))?;
        if let Some(exp) = ctx.alive(ts) {
            emit_string(
                emit,
                Bytes::copy_from_slice(k),
                Bytes::copy_from_slice(payload),
                exp,
            )?;
        }
        it.next();
    }
    it.status().map_err(|e| ctx.io(e))
}

/// A decoded live meta: the payload (without suffix) and its version.
struct Meta<'m> {
    payload: &'m [u8],
    version: u32,
}

type OnMeta<'f> = dyn FnMut(&[u8], Meta<'_>, Option<i64>) -> Result<(), Stop> + 'f;

/// Visits the live metas `tag + key` (length > 0, not expired).
fn read_metas(
    db: &DB,
    tag: u8,
    size: usize,
    ctx: &Ctx<'_>,
    on: &mut OnMeta<'_>,
) -> Result<(), Stop> {
    let mut it = db.raw_iterator();
    it.seek([tag]);
    while it.valid() {
        let k = it.key().unwrap_or_default();
        if k.first() != Some(&tag) {
            break;
        }
        if k.len() > 1 {
            let v = it.value().unwrap_or_default();
            let key = &k[1..];
            let (payload, version, ts) = split_suffix(v)
                .filter(|(p, _, _)| p.len() == size - SUFFIX)
                .ok_or_else(|| ctx.corrupt(key, format!("meta value is not {size} bytes")))?;
            let len = i64_at(payload, 0);
            if len > 0 {
                if let Some(exp) = ctx.alive(ts) {
                    on(key, Meta { payload, version }, exp)?;
                }
            }
        }
        it.next();
    }
    it.status().map_err(|e| ctx.io(e))
}

/// Hash fields (`'h' len key '=' field`), set members (`'s' len key member`) or sorted-set
/// members in member order with their exact scores (`'z' len key member`).
#[allow(clippy::too_many_arguments)]
fn read_prefixed(
    db: &DB,
    key: &[u8],
    tag: u8,
    meta: Meta<'_>,
    t: DataType,
    exp: Option<i64>,
    ctx: &Ctx<'_>,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    let mut prefix = data_prefix(tag, key)
        .ok_or_else(|| ctx.corrupt(key, "collection key longer than nemo's 254 bytes"))?;
    if t == DataType::Hash {
        prefix.push(b'=');
    }
    let mut out = KeyChunks::new(emit, Bytes::copy_from_slice(key), t, exp);
    let mut it = db.raw_iterator();
    it.seek(&prefix);
    while it.valid() {
        let k = it.key().unwrap_or_default();
        if !k.starts_with(&prefix) {
            break;
        }
        let (payload, version, _ts) = split_suffix(it.value().unwrap_or_default())
            .ok_or_else(|| ctx.corrupt(key, "data value shorter than its 8-byte suffix"))?;
        if version >= meta.version {
            let tail = Bytes::copy_from_slice(&k[prefix.len()..]);
            match t {
                DataType::Hash => out.hash(tail, Bytes::copy_from_slice(payload))?,
                DataType::ZSet => {
                    let score: [u8; 8] = payload
                        .try_into()
                        .map_err(|_| ctx.corrupt(key, "member entry without its 8-byte score"))?;
                    out.zset(tail, f64::from_le_bytes(score))?
                }
                _ => out.set(tail)?,
            }
        }
        it.next();
    }
    it.status().map_err(|e| ctx.io(e))?;
    out.finish()
}

/// Sorted set: order from the `'y'` index (rounded score, member), exact scores from `'z'`;
/// members whose rounded scores tie are re-sorted by exact score within a chunk-sized run.
fn read_zset(
    db: &DB,
    key: &[u8],
    meta: Meta<'_>,
    exp: Option<i64>,
    ctx: &Ctx<'_>,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    let yp = data_prefix(b'y', key)
        .ok_or_else(|| ctx.corrupt(key, "collection key longer than nemo's 254 bytes"))?;
    let mut zkey = data_prefix(b'z', key).expect("same length");
    let zlen = zkey.len();
    let mut out = KeyChunks::new(emit, Bytes::copy_from_slice(key), DataType::ZSet, exp);
    let mut run: Vec<(f64, Bytes)> = Vec::new();
    let mut run_enc: Option<[u8; 8]> = None;
    let mut it = db.raw_iterator();
    it.seek(&yp);
    while it.valid() {
        let k = it.key().unwrap_or_default();
        if !k.starts_with(&yp) {
            break;
        }
        if k.len() < yp.len() + 8 {
            return Err(ctx.corrupt(key, "score index entry without its 8-byte score"));
        }
        let (_, yver, _) = split_suffix(it.value().unwrap_or_default())
            .ok_or_else(|| ctx.corrupt(key, "score index value shorter than 8 bytes"))?;
        if yver >= meta.version {
            let enc: [u8; 8] = k[yp.len()..yp.len() + 8].try_into().expect("checked");
            let member = &k[yp.len() + 8..];
            zkey.truncate(zlen);
            zkey.extend_from_slice(member);
            let zv = db.get_pinned(&zkey).map_err(|e| ctx.io(e))?;
            let exact = zv.as_deref().and_then(split_suffix).and_then(|(p, v, _)| {
                (v >= meta.version && p.len() == 8)
                    .then(|| f64::from_le_bytes(p.try_into().expect("8 bytes")))
            });
            match exact {
                Some(score) => {
                    if run_enc != Some(enc) || run.len() >= super::chunk::CHUNK_ITEMS {
                        flush_run(&mut run, &mut out)?;
                        run_enc = Some(enc);
                    }
                    run.push((score, Bytes::copy_from_slice(member)));
                }
                None => {
                    return Err(ctx.corrupt(
                        key,
                        format!(
                            "member {} has a score index entry but no valid member entry",
                            crate::formats::resp::escape(member)
                        ),
                    ))
                }
            }
        }
        it.next();
    }
    it.status().map_err(|e| ctx.io(e))?;
    flush_run(&mut run, &mut out)?;
    out.finish()
}

/// Emits a run of members whose rounded scores tie, in exact score order.
fn flush_run(run: &mut Vec<(f64, Bytes)>, out: &mut KeyChunks<'_, '_>) -> Result<(), Stop> {
    run.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    for (s, m) in run.drain(..) {
        out.zset(m, s)?;
    }
    Ok(())
}

/// List: walk from the meta's `left` seq via each node's `next` link, `len` nodes.
fn read_list(
    db: &DB,
    key: &[u8],
    meta: Meta<'_>,
    exp: Option<i64>,
    ctx: &Ctx<'_>,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    let len = i64_at(meta.payload, 0);
    let mut seq = i64_at(meta.payload, 8);
    let mut node = data_prefix(b'l', key)
        .ok_or_else(|| ctx.corrupt(key, "collection key longer than nemo's 254 bytes"))?;
    let plen = node.len();
    let mut out = KeyChunks::new(emit, Bytes::copy_from_slice(key), DataType::List, exp);
    let mut n = 0i64;
    while seq != 0 && n < len {
        node.truncate(plen);
        node.extend_from_slice(&seq.to_le_bytes());
        let v = db.get_pinned(&node).map_err(|e| ctx.io(e))?;
        let Some((payload, version, _)) = v.as_deref().and_then(split_suffix) else {
            return Err(ctx.corrupt(key, format!("list node seq {seq} is missing")));
        };
        if version < meta.version || payload.len() < 16 {
            return Err(ctx.corrupt(key, format!("list node seq {seq} is stale or short")));
        }
        let next = i64_at(payload, 8);
        out.list(Bytes::copy_from_slice(&payload[16..]))?;
        n += 1;
        seq = next;
    }
    if n != len {
        return Err(ctx.corrupt(
            key,
            format!("list meta says {len} nodes, the links reach {n}"),
        ));
    }
    out.finish()
}
