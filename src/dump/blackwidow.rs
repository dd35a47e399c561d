//! Reader of blackwidow (Pika 3.0–3.4) dumps (spec §5, §6): strings carry `value | ts:i32`;
//! collections have a meta in `default` and data entries `keylen:u32 | key | version:i32 | ...`
//! in their data column family, valid only for the meta's exact version.

use bytes::Bytes;
use rocksdb::DB;

use super::chunk::{emit_string, Ctx, Emit, KeyChunks, Stop};
use super::record::{DataType, DumpError};

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().expect("length checked"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("length checked"))
}

/// `keylen:u32 | key | version:i32`, the prefix of every data key of one incarnation of `key`.
pub fn data_prefix(key: &[u8], version: i32) -> Vec<u8> {
    let mut p = Vec::with_capacity(key.len() + 8);
    p.extend_from_slice(&(key.len() as u32).to_le_bytes());
    p.extend_from_slice(key);
    p.extend_from_slice(&version.to_le_bytes());
    p
}

/// Streams the instance of type `t` in key order.
pub fn read(db: &DB, t: DataType, ctx: &Ctx<'_>, emit: &mut Emit<'_>) -> Result<(), Stop> {
    if t == DataType::String {
        return read_strings(db, ctx, emit);
    }
    let meta_size = if t == DataType::List { 32 } else { 12 };
    let mut it = db.raw_iterator();
    it.seek_to_first();
    while it.valid() {
        let key = it.key().unwrap_or_default();
        let v = it.value().unwrap_or_default();
        if v.len() != meta_size {
            return Err(ctx.corrupt(
                key,
                format!("meta value is {} bytes, not {meta_size}", v.len()),
            ));
        }
        let (count, version, ts) = if t == DataType::List {
            let c = u64_at(v, 0);
            (i64::try_from(c).unwrap_or(-1), i32_at(v, 8), i32_at(v, 12))
        } else {
            (i32_at(v, 0) as i64, i32_at(v, 4), i32_at(v, 8))
        };
        if count > 0 {
            if let Some(exp) = ctx.alive(ts) {
                let prefix = data_prefix(key, version);
                let k = Bytes::copy_from_slice(key);
                match t {
                    DataType::List => read_list(db, k, &prefix, v, exp, ctx, emit)?,
                    _ => read_data(db, t, k, &prefix, exp, ctx, emit)?,
                }
            }
        }
        it.next();
    }
    it.status().map_err(|e| ctx.io(e))
}

fn read_strings(db: &DB, ctx: &Ctx<'_>, emit: &mut Emit<'_>) -> Result<(), Stop> {
    let mut it = db.raw_iterator();
    it.seek_to_first();
    while it.valid() {
        let (k, v) = (it.key().unwrap_or_default(), it.value().unwrap_or_default());
        if v.len() < 4 {
            return Err(ctx.corrupt(k, "string value shorter than its 4-byte timestamp"));
        }
        let (payload, ts) = v.split_at(v.len() - 4);
        if let Some(exp) = ctx.alive(i32_at(ts, 0)) {
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

fn cf<'d>(db: &'d DB, name: &str, ctx: &Ctx<'_>) -> Result<&'d rocksdb::ColumnFamily, Stop> {
    db.cf_handle(name).ok_or_else(|| {
        Stop::Error(DumpError::Layout {
            dir: ctx.place.to_string(),
            why: format!("column family {name} is missing"),
        })
    })
}

/// Hash fields (`hashes/data_cf`), set members (`sets/member_cf`) or sorted-set members in score
/// order (`zsets/score_cf`: `prefix | score:f64 | member`).
fn read_data(
    db: &DB,
    t: DataType,
    key: Bytes,
    prefix: &[u8],
    exp: Option<i64>,
    ctx: &Ctx<'_>,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    let name = match t {
        DataType::Hash => "data_cf",
        DataType::Set => "member_cf",
        _ => "score_cf",
    };
    let handle = cf(db, name, ctx)?;
    let mut out = KeyChunks::new(emit, key.clone(), t, exp);
    let mut it = db.raw_iterator_cf(handle);
    it.seek(prefix);
    while it.valid() {
        let k = it.key().unwrap_or_default();
        if !k.starts_with(prefix) {
            break;
        }
        let tail = &k[prefix.len()..];
        match t {
            DataType::Hash => out.hash(
                Bytes::copy_from_slice(tail),
                Bytes::copy_from_slice(it.value().unwrap_or_default()),
            )?,
            DataType::Set => out.set(Bytes::copy_from_slice(tail))?,
            _ => {
                if tail.len() < 8 {
                    return Err(ctx.corrupt(&key, "score entry without its 8-byte score"));
                }
                let score = f64::from_le_bytes(tail[..8].try_into().expect("checked"));
                out.zset(Bytes::copy_from_slice(&tail[8..]), score)?;
            }
        }
        it.next();
    }
    it.status().map_err(|e| ctx.io(e))?;
    out.finish()
}

/// List elements from index `left+1` upwards, `count` of them, in index order.
fn read_list(
    db: &DB,
    key: Bytes,
    prefix: &[u8],
    meta: &[u8],
    exp: Option<i64>,
    ctx: &Ctx<'_>,
    emit: &mut Emit<'_>,
) -> Result<(), Stop> {
    let count = u64_at(meta, 0);
    let left = u64_at(meta, 16);
    let handle = cf(db, "data_cf", ctx)?;
    let mut start = prefix.to_vec();
    start.extend_from_slice(&left.wrapping_add(1).to_le_bytes());
    let mut out = KeyChunks::new(emit, key.clone(), DataType::List, exp);
    let mut it = db.raw_iterator_cf(handle);
    it.seek(&start);
    let mut n = 0u64;
    while it.valid() && n < count {
        let k = it.key().unwrap_or_default();
        if !k.starts_with(prefix) || k.len() != prefix.len() + 8 {
            break;
        }
        out.list(Bytes::copy_from_slice(it.value().unwrap_or_default()))?;
        n += 1;
        it.next();
    }
    it.status().map_err(|e| ctx.io(e))?;
    if n != count {
        return Err(ctx.corrupt(
            &key,
            format!("list meta says {count} elements after index {left}, found {n}"),
        ));
    }
    out.finish()
}
