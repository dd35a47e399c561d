//! MANIFEST and CURRENT in the RocksDB 5.x vocabulary (spec §7.3): the log format (32 KiB blocks,
//! masked CRC32c records) and VersionEdits made only of tags 5.9.2 knows. A MANIFEST written by
//! the `rocksdb` crate carries tags 5.9.2 refuses (`VersionEdit: unknown tag`), so the writer
//! describes its SST files with this one instead. [`parse`] reads any MANIFEST back with the same
//! 5.x vocabulary (an unknown tag is an error), for tests and diagnostics.

use std::io;
use std::path::Path;

const BLOCK: usize = 32768;
const HEADER: usize = 7;

const TAG_COMPARATOR: u32 = 1;
const TAG_LOG_NUMBER: u32 = 2;
const TAG_NEXT_FILE: u32 = 3;
const TAG_LAST_SEQ: u32 = 4;
const TAG_DELETED_FILE: u32 = 6;
const TAG_PREV_LOG: u32 = 9;
const TAG_NEW_FILE2: u32 = 100;
const TAG_CF: u32 = 200;
const TAG_CF_ADD: u32 = 201;
const TAG_MAX_CF: u32 = 203;

/// CRC32C (Castagnoli), as RocksDB checksums log records.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = !0u32;
    for b in data {
        c = t[((c ^ *b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// RocksDB's masked CRC (`crc32c::Mask`).
pub fn mask(c: u32) -> u32 {
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_lp(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// One SST file of a column family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// LSM level.
    pub level: u32,
    /// File number (`NNNNNN.sst`).
    pub number: u64,
    /// Size in bytes.
    pub size: u64,
    /// Smallest internal key (user key + 8-byte `seq << 8 | type`).
    pub smallest: Vec<u8>,
    /// Largest internal key.
    pub largest: Vec<u8>,
    /// Smallest sequence number in the file.
    pub smallest_seqno: u64,
    /// Largest sequence number in the file.
    pub largest_seqno: u64,
}

/// The internal key of a value entry: `user_key | u64 LE (seq << 8 | 1)`.
pub fn internal_key(user_key: &[u8], seq: u64) -> Vec<u8> {
    let mut k = user_key.to_vec();
    k.extend_from_slice(&((seq << 8) | 1).to_le_bytes());
    k
}

/// A column family and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfState {
    /// Column family ID (0 = `default`).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Comparator name recorded for it.
    pub comparator: String,
    /// Live files.
    pub files: Vec<FileMeta>,
    /// Log number recorded for it.
    pub log_number: Option<u64>,
}

/// What a MANIFEST describes once replayed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Column families in ID order.
    pub cfs: Vec<CfState>,
    /// `NextFileNumber`.
    pub next_file: Option<u64>,
    /// `LastSequence`.
    pub last_sequence: Option<u64>,
    /// `MaxColumnFamily`.
    pub max_cf: Option<u32>,
    /// Every tag seen, in order (to assert the vocabulary).
    pub tags: Vec<u32>,
}

/// Encodes the logical records into the log format.
pub fn frame_records(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for rec in records {
        let mut rest = &rec[..];
        let mut begin = true;
        loop {
            let left = BLOCK - out.len() % BLOCK;
            if left < HEADER {
                out.resize(out.len() + left, 0);
                continue;
            }
            let n = rest.len().min(left - HEADER);
            let end = n == rest.len();
            let ty: u8 = match (begin, end) {
                (true, true) => 1,
                (true, false) => 2,
                (false, false) => 3,
                (false, true) => 4,
            };
            let mut crc_in = Vec::with_capacity(n + 1);
            crc_in.push(ty);
            crc_in.extend_from_slice(&rest[..n]);
            out.extend_from_slice(&mask(crc32c(&crc_in)).to_le_bytes());
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.push(ty);
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            begin = false;
            if end {
                break;
            }
        }
    }
    out
}

/// The VersionEdits of a fresh DB holding `cfs` (ID order, `cfs[0]` = `default`): one record
/// per CF creating it with its comparator, then one per CF with the numbers and its files.
pub fn edits(cfs: &[CfState], log_number: u64, next_file: u64, last_sequence: u64) -> Vec<Vec<u8>> {
    let mut recs = Vec::new();
    for cf in cfs {
        let mut r = Vec::new();
        put_varint(&mut r, TAG_COMPARATOR as u64);
        put_lp(&mut r, cf.comparator.as_bytes());
        if cf.id != 0 {
            put_varint(&mut r, TAG_CF as u64);
            put_varint(&mut r, cf.id as u64);
            put_varint(&mut r, TAG_CF_ADD as u64);
            put_lp(&mut r, cf.name.as_bytes());
        }
        recs.push(r);
    }
    let max_cf = cfs.iter().map(|c| c.id).max().unwrap_or(0);
    for cf in cfs {
        let mut r = Vec::new();
        for (tag, v) in [
            (TAG_LOG_NUMBER, log_number),
            (TAG_PREV_LOG, 0),
            (TAG_NEXT_FILE, next_file),
            (TAG_LAST_SEQ, last_sequence),
        ] {
            put_varint(&mut r, tag as u64);
            put_varint(&mut r, v);
        }
        if cf.id == 0 && max_cf > 0 {
            put_varint(&mut r, TAG_MAX_CF as u64);
            put_varint(&mut r, max_cf as u64);
        }
        for f in &cf.files {
            put_varint(&mut r, TAG_NEW_FILE2 as u64);
            put_varint(&mut r, f.level as u64);
            put_varint(&mut r, f.number);
            put_varint(&mut r, f.size);
            put_lp(&mut r, &f.smallest);
            put_lp(&mut r, &f.largest);
            put_varint(&mut r, f.smallest_seqno);
            put_varint(&mut r, f.largest_seqno);
        }
        if cf.id != 0 {
            put_varint(&mut r, TAG_CF as u64);
            put_varint(&mut r, cf.id as u64);
        }
        recs.push(r);
    }
    recs
}

/// Writes `MANIFEST-<number>` and then `CURRENT` (via a temporary file and a rename) in `dir`.
pub fn write(
    dir: &Path,
    number: u64,
    cfs: &[CfState],
    log_number: u64,
    next_file: u64,
    last_sequence: u64,
) -> io::Result<()> {
    let name = format!("MANIFEST-{number:06}");
    let bytes = frame_records(&edits(cfs, log_number, next_file, last_sequence));
    write_synced(&dir.join(&name), &bytes)?;
    let tmp = dir.join(format!("{number:06}.dbtmp"));
    write_synced(&tmp, format!("{name}\n").as_bytes())?;
    std::fs::rename(&tmp, dir.join("CURRENT"))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Splits a MANIFEST into its logical records, checking every CRC.
pub fn unframe(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut pos = 0;
    while pos < bytes.len() {
        let left = BLOCK - pos % BLOCK;
        if left < HEADER {
            pos += left;
            continue;
        }
        if pos + HEADER > bytes.len() {
            return Err(format!("truncated record header at {pos}"));
        }
        let crc = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4"));
        let n = u16::from_le_bytes([bytes[pos + 4], bytes[pos + 5]]) as usize;
        let ty = bytes[pos + 6];
        if ty == 0 && n == 0 {
            pos += left;
            continue;
        }
        let payload = bytes
            .get(pos + HEADER..pos + HEADER + n)
            .ok_or_else(|| format!("truncated record at {pos}"))?;
        if mask(crc32c(&bytes[pos + 6..pos + HEADER + n])) != crc {
            return Err(format!("bad CRC at {pos}"));
        }
        match ty {
            1 => out.push(payload.to_vec()),
            2 => cur = Some(payload.to_vec()),
            3 | 4 => {
                let c = cur
                    .as_mut()
                    .ok_or_else(|| format!("fragment without start at {pos}"))?;
                c.extend_from_slice(payload);
                if ty == 4 {
                    out.push(cur.take().expect("set"));
                }
            }
            t => return Err(format!("record type {t} at {pos}")),
        }
        pos += HEADER + n;
    }
    Ok(out)
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn get_lp(b: &[u8], pos: &mut usize) -> Result<Vec<u8>, String> {
    let n = get_varint(b, pos)? as usize;
    let v = b
        .get(*pos..*pos + n)
        .ok_or("truncated length-prefixed field")?
        .to_vec();
    *pos += n;
    Ok(v)
}

/// Replays a MANIFEST with RocksDB 5.9.2's vocabulary (tags 1–4, 6, 9, 100, 200, 201, 203; any
/// other tag is an error, as in 5.9.2).
pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
    let mut m = Manifest::default();
    for rec in unframe(bytes)? {
        let mut pos = 0;
        let mut cf_id = 0u32;
        let mut comparator = None;
        let mut add = None;
        let mut log = None;
        let mut new_files = Vec::new();
        let mut deleted = Vec::new();
        while pos < rec.len() {
            let tag = get_varint(&rec, &mut pos)? as u32;
            m.tags.push(tag);
            match tag {
                TAG_COMPARATOR => {
                    comparator =
                        Some(String::from_utf8_lossy(&get_lp(&rec, &mut pos)?).into_owned())
                }
                TAG_LOG_NUMBER => log = Some(get_varint(&rec, &mut pos)?),
                TAG_NEXT_FILE => m.next_file = Some(get_varint(&rec, &mut pos)?),
                TAG_LAST_SEQ => m.last_sequence = Some(get_varint(&rec, &mut pos)?),
                TAG_PREV_LOG => {
                    get_varint(&rec, &mut pos)?;
                }
                TAG_DELETED_FILE => {
                    let _level = get_varint(&rec, &mut pos)?;
                    deleted.push(get_varint(&rec, &mut pos)?);
                }
                TAG_NEW_FILE2 => new_files.push(FileMeta {
                    level: get_varint(&rec, &mut pos)? as u32,
                    number: get_varint(&rec, &mut pos)?,
                    size: get_varint(&rec, &mut pos)?,
                    smallest: get_lp(&rec, &mut pos)?,
                    largest: get_lp(&rec, &mut pos)?,
                    smallest_seqno: get_varint(&rec, &mut pos)?,
                    largest_seqno: get_varint(&rec, &mut pos)?,
                }),
                TAG_CF => cf_id = get_varint(&rec, &mut pos)? as u32,
                TAG_CF_ADD => {
                    add = Some(String::from_utf8_lossy(&get_lp(&rec, &mut pos)?).into_owned())
                }
                TAG_MAX_CF => m.max_cf = Some(get_varint(&rec, &mut pos)? as u32),
                t => {
                    return Err(format!(
                        "VersionEdit: unknown tag {t} (RocksDB 5.9.2 refuses it)"
                    ))
                }
            }
        }
        if m.cfs.is_empty() {
            m.cfs.push(CfState {
                id: 0,
                name: "default".into(),
                comparator: String::new(),
                files: Vec::new(),
                log_number: None,
            });
        }
        if let Some(name) = add {
            m.cfs.push(CfState {
                id: cf_id,
                name,
                comparator: String::new(),
                files: Vec::new(),
                log_number: None,
            });
        }
        let cf = m
            .cfs
            .iter_mut()
            .find(|c| c.id == cf_id)
            .ok_or_else(|| format!("edit for unknown column family {cf_id}"))?;
        if let Some(c) = comparator {
            cf.comparator = c;
        }
        if log.is_some() {
            cf.log_number = log;
        }
        cf.files.retain(|f| !deleted.contains(&f.number));
        cf.files.extend(new_files);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_known_vector() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn written_records_parse_back_even_across_blocks() {
        let big = vec![7u8; 70_000];
        let recs = vec![b"a".to_vec(), big.clone(), b"bc".to_vec()];
        let framed = frame_records(&recs);
        assert_eq!(unframe(&framed).unwrap(), recs);
        let mut bad = framed.clone();
        bad[10] ^= 1;
        assert!(unframe(&bad).is_err());
    }
}
