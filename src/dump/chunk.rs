//! Cutting one key's members into bounded [`DumpRecord`] chunks, and the emit side of a reader.

use bytes::Bytes;

use super::record::{DataType, DumpError, DumpRecord, RecordValue};

/// Reading context: the instance (for errors) and the liveness time.
pub struct Ctx<'a> {
    /// The instance directory, for error messages.
    pub place: &'a str,
    /// Unix seconds at which liveness is decided.
    pub now_s: i64,
    /// Sorted-set members in score order (else in the cheapest order: member order for nemo).
    pub zset_score_order: bool,
}

impl Ctx<'_> {
    /// A `Corrupt` error naming this instance and `key`.
    pub fn corrupt(&self, key: &[u8], why: impl Into<String>) -> Stop {
        Stop::Error(DumpError::Corrupt {
            dir: self.place.to_string(),
            place: format!("key {}", crate::formats::resp::escape(key)),
            why: why.into(),
        })
    }

    /// An `Io` error naming this instance.
    pub fn io(&self, e: rocksdb::Error) -> Stop {
        Stop::Error(DumpError::Io {
            dir: self.place.to_string(),
            why: e.to_string(),
        })
    }

    /// `ts == 0` (no expiry) or not yet past; `Some(expire_at_ms)` for a live key.
    pub fn alive(&self, ts: i32) -> Option<Option<i64>> {
        if ts == 0 {
            Some(None)
        } else if ts as i64 >= self.now_s {
            Some(Some(ts as i64 * 1000))
        } else {
            None
        }
    }
}

/// Members per chunk (a chunk also closes at [`CHUNK_BYTES`]).
pub const CHUNK_ITEMS: usize = 1024;
/// Bytes of member data per chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Why a reader stopped early: an error, or the consumer went away.
#[derive(Debug)]
pub enum Stop {
    /// A read error.
    Error(DumpError),
    /// The consumer dropped the stream.
    Cancelled,
}

impl From<DumpError> for Stop {
    fn from(e: DumpError) -> Self {
        Stop::Error(e)
    }
}

/// The consumer of a reader: `false` means "stop, nobody is listening".
pub type Emit<'e> = dyn FnMut(DumpRecord) -> bool + 'e;

/// Builds the chunks of one key.
pub struct KeyChunks<'a, 'e> {
    emit: &'a mut Emit<'e>,
    key: Bytes,
    expire_at_ms: Option<i64>,
    value: RecordValue,
    bytes: usize,
    started: bool,
}

fn empty(t: DataType) -> RecordValue {
    match t {
        DataType::String => RecordValue::String(Bytes::new()),
        DataType::Hash => RecordValue::Hash(Vec::new()),
        DataType::List => RecordValue::List(Vec::new()),
        DataType::Set => RecordValue::Set(Vec::new()),
        DataType::ZSet => RecordValue::ZSet(Vec::new()),
    }
}

fn len(v: &RecordValue) -> usize {
    match v {
        RecordValue::String(_) => 1,
        RecordValue::Hash(h) => h.len(),
        RecordValue::List(l) => l.len(),
        RecordValue::Set(s) => s.len(),
        RecordValue::ZSet(z) => z.len(),
    }
}

impl<'a, 'e> KeyChunks<'a, 'e> {
    /// Starts key `key` of collection type `t`.
    pub fn new(emit: &'a mut Emit<'e>, key: Bytes, t: DataType, expire_at_ms: Option<i64>) -> Self {
        KeyChunks {
            emit,
            key,
            expire_at_ms,
            value: empty(t),
            bytes: 0,
            started: false,
        }
    }

    fn flush(&mut self, last: bool) -> Result<(), Stop> {
        let t = self.value.data_type();
        let value = std::mem::replace(&mut self.value, empty(t));
        let rec = DumpRecord {
            key: self.key.clone(),
            expire_at_ms: self.expire_at_ms,
            value,
            first: !self.started,
            last,
        };
        self.started = true;
        self.bytes = 0;
        if (self.emit)(rec) {
            Ok(())
        } else {
            Err(Stop::Cancelled)
        }
    }

    fn before_push(&mut self, add: usize) -> Result<(), Stop> {
        let n = len(&self.value);
        if n > 0 && (n >= CHUNK_ITEMS || self.bytes + add > CHUNK_BYTES) {
            self.flush(false)?;
        }
        self.bytes += add;
        Ok(())
    }

    /// Adds a hash field.
    pub fn hash(&mut self, field: Bytes, value: Bytes) -> Result<(), Stop> {
        self.before_push(field.len() + value.len())?;
        if let RecordValue::Hash(h) = &mut self.value {
            h.push((field, value));
        }
        Ok(())
    }

    /// Adds a list element (in list order).
    pub fn list(&mut self, value: Bytes) -> Result<(), Stop> {
        self.before_push(value.len())?;
        if let RecordValue::List(l) = &mut self.value {
            l.push(value);
        }
        Ok(())
    }

    /// Adds a set member.
    pub fn set(&mut self, member: Bytes) -> Result<(), Stop> {
        self.before_push(member.len())?;
        if let RecordValue::Set(s) = &mut self.value {
            s.push(member);
        }
        Ok(())
    }

    /// Adds a sorted-set member (in score order).
    pub fn zset(&mut self, member: Bytes, score: f64) -> Result<(), Stop> {
        self.before_push(member.len() + 8)?;
        if let RecordValue::ZSet(z) = &mut self.value {
            z.push((member, score));
        }
        Ok(())
    }

    /// Ends the key: emits the last chunk (nothing when the key had no member at all).
    pub fn finish(mut self) -> Result<(), Stop> {
        if len(&self.value) > 0 {
            self.flush(true)?;
        }
        Ok(())
    }
}

/// Emits a whole string value as one record.
pub fn emit_string(
    emit: &mut Emit<'_>,
    key: Bytes,
    value: Bytes,
    expire_at_ms: Option<i64>,
) -> Result<(), Stop> {
    let rec = DumpRecord {
        key,
        expire_at_ms,
        value: RecordValue::String(value),
        first: true,
        last: true,
    };
    if emit(rec) {
        Ok(())
    } else {
        Err(Stop::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_list_is_cut_in_chunks_with_first_and_last_flags() {
        let mut out = Vec::new();
        let mut emit = |r: DumpRecord| {
            out.push(r);
            true
        };
        let mut k = KeyChunks::new(&mut emit, Bytes::from_static(b"l"), DataType::List, None);
        for i in 0..(CHUNK_ITEMS * 2 + 1) {
            k.list(Bytes::from(i.to_string())).unwrap();
        }
        k.finish().unwrap();
        assert_eq!(out.len(), 3);
        assert!(out[0].first && !out[0].last);
        assert!(!out[1].first && !out[1].last);
        assert!(!out[2].first && out[2].last);
        let all: Vec<Bytes> = out
            .into_iter()
            .flat_map(|r| match r.value {
                RecordValue::List(l) => l,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(all.len(), CHUNK_ITEMS * 2 + 1);
        assert_eq!(all[CHUNK_ITEMS], Bytes::from(CHUNK_ITEMS.to_string()));
    }

    #[test]
    fn big_members_close_chunks_by_bytes_and_cancel_propagates() {
        let mut n = 0;
        let mut emit = |_r: DumpRecord| {
            n += 1;
            n < 2
        };
        let mut k = KeyChunks::new(&mut emit, Bytes::from_static(b"s"), DataType::Set, None);
        k.set(Bytes::from(vec![1u8; CHUNK_BYTES])).unwrap();
        k.set(Bytes::from(vec![2u8; 10])).unwrap();
        assert!(matches!(
            k.set(Bytes::from(vec![3u8; CHUNK_BYTES])),
            Err(Stop::Cancelled)
        ));
    }
}
