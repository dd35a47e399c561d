//! Records → the raw RocksDB entries of each engine (spec §4 nemo, §5 blackwidow, §7.4): which
//! instance, which column family, key and value. Collection metas are written when a key's last
//! chunk arrives, with the member count seen.

use bytes::Bytes;

use crate::dump::layout::Engine;
use crate::dump::record::{DataType, DumpError, DumpRecord, RecordValue};

/// One raw entry: instance type, column-family index (ID order), key, value.
pub type Entry = (DataType, usize, Vec<u8>, Vec<u8>);

/// Receives one raw entry without copies: instance type, column-family index, the parts of the
/// key and the parts of the value (each concatenated).
pub type Push<'a> = dyn FnMut(DataType, usize, &[&[u8]], &[&[u8]]) -> Result<(), DumpError> + 'a;

/// Blackwidow's first list index + 1: an RPUSH-built list starts at 2^63 (spec §5.5, §7.4).
pub const LIST_FIRST_INDEX: u64 = 1 << 63;

/// nemo's zset score index shift and bounds (spec §4.5).
const ZSET_SCORE_SHIFT: i64 = 1_000_000_000_000_000_000;
const NEMO_SCORE_LIMIT: f64 = 1e13;

/// The key being written (its chunks may span several records).
#[derive(Debug)]
pub struct OpenKey {
    key: Bytes,
    t: DataType,
    ts: i32,
    count: u64,
}

/// Encodes records of one engine; `version` is the collections' version (unix seconds > 0).
pub struct Encoder {
    engine: Engine,
    version: i32,
    open: Option<OpenKey>,
}

fn bad(key: &[u8], why: impl Into<String>) -> DumpError {
    DumpError::Corrupt {
        dir: "(record stream)".into(),
        place: format!("key {}", crate::formats::resp::escape(key)),
        why: why.into(),
    }
}

/// `expire_at_ms` → the stored i32 unix-seconds timestamp (0 = no expiry).
pub fn timestamp(key: &[u8], expire_at_ms: Option<i64>) -> Result<i32, DumpError> {
    match expire_at_ms {
        None => Ok(0),
        Some(ms) => {
            let s = ms.div_euclid(1000);
            if (1..=i32::MAX as i64).contains(&s) {
                Ok(s as i32)
            } else {
                Err(bad(
                    key,
                    format!(
                        "expiry {ms} ms is outside what Pika stores (1 s .. 2^31-1 s after 1970)"
                    ),
                ))
            }
        }
    }
}

/// nemo's rounded score index value (`EncodeScore`).
pub fn nemo_score_index(score: f64) -> u64 {
    let scaled = if score >= 0.0 {
        (score * 100000.0 + 0.5) as i64
    } else {
        (score * 100000.0 - 0.5) as i64
    };
    (scaled + ZSET_SCORE_SHIFT) as u64
}

impl Encoder {
    /// An encoder for `engine`.
    pub fn new(engine: Engine, version: i32) -> Self {
        Encoder {
            engine,
            version,
            open: None,
        }
    }

    /// Whether a key is still waiting for its last chunk.
    pub fn key_open(&self) -> Option<&[u8]> {
        self.open.as_ref().map(|o| &o.key[..])
    }

    /// Entries nemo writes at every open (the one-byte separator keys), per instance.
    pub fn fixed_entries(&self) -> Vec<Entry> {
        if self.engine != Engine::Nemo {
            return Vec::new();
        }
        [
            (DataType::Hash, b'h'),
            (DataType::List, b'l'),
            (DataType::Set, b's'),
            (DataType::ZSet, b'y'),
            (DataType::ZSet, b'z'),
        ]
        .into_iter()
        .map(|(t, k)| (t, 0, vec![k], vec![0u8; 8]))
        .collect()
    }

    /// Encodes one record; `push` receives its entries.
    pub fn encode(&mut self, rec: &DumpRecord, push: &mut Push<'_>) -> Result<(), DumpError> {
        let t = rec.value.data_type();
        match (&self.open, rec.first) {
            (Some(o), true) => {
                return Err(bad(
                    &o.key,
                    "the stream started another key before this one's last chunk",
                ))
            }
            (None, false) => {
                return Err(bad(&rec.key, "a continuation chunk without a first chunk"))
            }
            (Some(o), false) if o.key != rec.key || o.t != t => {
                return Err(bad(&rec.key, "a continuation chunk of a different key"))
            }
            _ => {}
        }
        if rec.first {
            if self.engine == Engine::Nemo
                && t != DataType::String
                && !(1..255).contains(&rec.key.len())
            {
                return Err(bad(&rec.key, "nemo collection keys are 1..254 bytes"));
            }
            self.open = Some(OpenKey {
                key: rec.key.clone(),
                t,
                ts: timestamp(&rec.key, rec.expire_at_ms)?,
                count: 0,
            });
        }
        let o = self.open.as_mut().expect("opened above");
        match self.engine {
            Engine::Nemo => nemo_entries(o, self.version as u32, &rec.value, rec.last, push)?,
            _ => bw_entries(o, self.version, &rec.value, push)?,
        }
        if rec.last {
            let o = self.open.take().expect("open");
            if let Some((t, cf, k, v)) = self.meta(&o)? {
                push(t, cf, &[&k], &[&v])?;
            }
        }
        Ok(())
    }

    /// The meta entry of a finished collection (`None` for strings and empty collections).
    fn meta(&self, o: &OpenKey) -> Result<Option<Entry>, DumpError> {
        if o.t == DataType::String || o.count == 0 {
            return Ok(None);
        }
        let v = self.version;
        let mut val = Vec::with_capacity(40);
        if self.engine == Engine::Nemo {
            let n = o.count as i64;
            val.extend_from_slice(&n.to_le_bytes());
            if o.t == DataType::List {
                // left = first seq, right = last seq, cur_seq = next to allocate (spec §4.3).
                val.extend_from_slice(&1i64.to_le_bytes());
                val.extend_from_slice(&n.to_le_bytes());
                val.extend_from_slice(&(n + 1).to_le_bytes());
            }
            val.extend_from_slice(&(v as u32).to_le_bytes());
            val.extend_from_slice(&o.ts.to_le_bytes());
            let tag = match o.t {
                DataType::Hash => b'H',
                DataType::List => b'L',
                DataType::Set => b'S',
                _ => b'Z',
            };
            let mut k = vec![tag];
            k.extend_from_slice(&o.key);
            return Ok(Some((o.t, 0, k, val)));
        }
        if o.t == DataType::List {
            val.extend_from_slice(&o.count.to_le_bytes());
            val.extend_from_slice(&v.to_le_bytes());
            val.extend_from_slice(&o.ts.to_le_bytes());
            val.extend_from_slice(&(LIST_FIRST_INDEX - 1).to_le_bytes());
            val.extend_from_slice(&(LIST_FIRST_INDEX.wrapping_add(o.count)).to_le_bytes());
        } else {
            let n = i32::try_from(o.count).map_err(|_| {
                bad(
                    &o.key,
                    "more than 2^31-1 members (blackwidow counts in i32)",
                )
            })?;
            val.extend_from_slice(&n.to_le_bytes());
            val.extend_from_slice(&v.to_le_bytes());
            val.extend_from_slice(&o.ts.to_le_bytes());
        }
        Ok(Some((o.t, 0, o.key.to_vec(), val)))
    }
}

fn bw_prefix(key: &[u8], version: i32) -> Vec<u8> {
    crate::dump::blackwidow::data_prefix(key, version)
}

fn bw_entries(
    o: &mut OpenKey,
    version: i32,
    value: &RecordValue,
    push: &mut Push<'_>,
) -> Result<(), DumpError> {
    let prefix = bw_prefix(&o.key, version);
    let p = &prefix[..];
    match value {
        RecordValue::String(v) => {
            push(DataType::String, 0, &[&o.key], &[v, &o.ts.to_le_bytes()])?;
        }
        RecordValue::Hash(fs) => {
            for (f, v) in fs {
                push(DataType::Hash, 1, &[p, f], &[v])?;
            }
            o.count += fs.len() as u64;
        }
        RecordValue::Set(ms) => {
            for m in ms {
                push(DataType::Set, 1, &[p, m], &[])?;
            }
            o.count += ms.len() as u64;
        }
        RecordValue::ZSet(ms) => {
            for (m, s) in ms {
                if s.is_nan() {
                    return Err(bad(&o.key, "a NaN score"));
                }
                let sb = s.to_le_bytes();
                push(DataType::ZSet, 1, &[p, m], &[&sb])?;
                push(DataType::ZSet, 2, &[p, &sb, m], &[])?;
            }
            o.count += ms.len() as u64;
        }
        RecordValue::List(vs) => {
            for v in vs {
                let idx = LIST_FIRST_INDEX.wrapping_add(o.count);
                push(DataType::List, 1, &[p, &idx.to_le_bytes()], &[v])?;
                o.count += 1;
            }
        }
    }
    Ok(())
}

fn nemo_entries(
    o: &mut OpenKey,
    version: u32,
    value: &RecordValue,
    last: bool,
    push: &mut Push<'_>,
) -> Result<(), DumpError> {
    let suffix = |mut v: Vec<u8>, ts: i32| {
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&ts.to_le_bytes());
        v
    };
    let key = o.key.clone();
    let key_prefix = |tag: u8| {
        let mut k = vec![tag, key.len() as u8];
        k.extend_from_slice(&key);
        k
    };
    let ts = o.ts;
    match value {
        RecordValue::String(v) => {
            let mut val = v.to_vec();
            val.extend_from_slice(&0u32.to_le_bytes());
            val.extend_from_slice(&ts.to_le_bytes());
            push(DataType::String, 0, &[&o.key[..]], &[&val])?;
        }
        RecordValue::Hash(fs) => {
            for (f, v) in fs {
                let mut k = key_prefix(b'h');
                k.push(b'=');
                k.extend_from_slice(f);
                push(DataType::Hash, 0, &[&k], &[&suffix(v.to_vec(), ts)])?;
            }
            o.count += fs.len() as u64;
        }
        RecordValue::Set(ms) => {
            for m in ms {
                let mut k = key_prefix(b's');
                k.extend_from_slice(m);
                push(DataType::Set, 0, &[&k], &[&suffix(Vec::new(), ts)])?;
            }
            o.count += ms.len() as u64;
        }
        RecordValue::ZSet(ms) => {
            for (m, s) in ms {
                if s.is_nan() || s.abs() > NEMO_SCORE_LIMIT {
                    return Err(bad(&o.key, format!("score {s} is outside nemo's ±1e13")));
                }
                let mut k = key_prefix(b'z');
                k.extend_from_slice(m);
                push(
                    DataType::ZSet,
                    0,
                    &[&k],
                    &[&suffix(s.to_le_bytes().to_vec(), ts)],
                )?;
                let mut y = key_prefix(b'y');
                y.extend_from_slice(&nemo_score_index(*s).to_be_bytes());
                y.extend_from_slice(m);
                push(DataType::ZSet, 0, &[&y], &[&suffix(Vec::new(), ts)])?;
            }
            o.count += ms.len() as u64;
        }
        RecordValue::List(vs) => {
            if last && vs.is_empty() && o.count > 0 {
                return Err(bad(
                    &key,
                    "an empty last chunk cannot close a nemo list's links",
                ));
            }
            let n = vs.len();
            for (i, v) in vs.iter().enumerate() {
                let seq = o.count as i64 + 1;
                let prev = seq - 1;
                let next = if last && i + 1 == n { 0 } else { seq + 1 };
                let mut k = key_prefix(b'l');
                k.extend_from_slice(&seq.to_le_bytes());
                let mut val = prev.to_le_bytes().to_vec();
                val.extend_from_slice(&next.to_le_bytes());
                val.extend_from_slice(v);
                push(DataType::List, 0, &[&k], &[&suffix(val, ts)])?;
                o.count += 1;
            }
        }
    }
    Ok(())
}
