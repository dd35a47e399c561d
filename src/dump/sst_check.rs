//! Reads the format properties of a block-based SST file straight from its bytes (footer,
//! metaindex and properties blocks), to prove what a RocksDB 5.9.2 reader will see (spec §7.1):
//! `format_version`, checksum type, comparator, compression, filter and properties.

use std::collections::BTreeMap;

/// Magic number of block-based tables (last 8 bytes of the file).
pub const BLOCK_BASED_MAGIC: u64 = 0x88e2_41b7_85f4_cff7;

/// What the footer and the meta blocks of one SST say.
#[derive(Debug, Clone, PartialEq)]
pub struct SstFacts {
    /// `format_version` from the footer.
    pub format_version: u32,
    /// Checksum type byte from the footer (1 = CRC32c).
    pub checksum: u8,
    /// Names in the metaindex block (`rocksdb.properties`, `filter.…`, …).
    pub meta_blocks: Vec<String>,
    /// The properties block, values as raw bytes.
    pub properties: BTreeMap<String, Vec<u8>>,
}

impl SstFacts {
    /// A property as text (lossy).
    pub fn prop(&self, name: &str) -> Option<String> {
        self.properties
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Entries of an uncompressed block (`shared, non_shared, value_len, key delta, value` records
/// followed by the restart array).
fn block_entries(block: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if block.len() < 4 {
        return None;
    }
    let n = u32::from_le_bytes(block[block.len() - 4..].try_into().ok()?) as usize;
    let end = block.len().checked_sub(4 + 4 * n)?;
    let mut out = Vec::new();
    let mut pos = 0;
    let mut last: Vec<u8> = Vec::new();
    while pos < end {
        let shared = varint(block, &mut pos)? as usize;
        let non_shared = varint(block, &mut pos)? as usize;
        let vlen = varint(block, &mut pos)? as usize;
        let mut key = last.get(..shared)?.to_vec();
        key.extend_from_slice(block.get(pos..pos + non_shared)?);
        pos += non_shared;
        let value = block.get(pos..pos + vlen)?.to_vec();
        pos += vlen;
        last = key.clone();
        out.push((key, value));
    }
    Some(out)
}

fn handle(b: &[u8], pos: &mut usize) -> Option<(usize, usize)> {
    Some((varint(b, pos)? as usize, varint(b, pos)? as usize))
}

/// Parses `file`'s footer, metaindex and properties (blocks must be uncompressed, as RocksDB
/// writes meta blocks). `None` when the bytes are not a block-based table of format ≥ 1.
pub fn inspect(file: &[u8]) -> Option<SstFacts> {
    let len = file.len();
    if len < 53 {
        return None;
    }
    let magic = u64::from_le_bytes(file[len - 8..].try_into().ok()?);
    if magic != BLOCK_BASED_MAGIC {
        return None;
    }
    let format_version = u32::from_le_bytes(file[len - 12..len - 8].try_into().ok()?);
    let footer = &file[len - 53..];
    let checksum = footer[0];
    let mut pos = 1;
    let (mi_off, mi_len) = handle(footer, &mut pos)?;
    let meta = block_entries(file.get(mi_off..mi_off + mi_len)?)?;
    let mut facts = SstFacts {
        format_version,
        checksum,
        meta_blocks: meta
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect(),
        properties: BTreeMap::new(),
    };
    if let Some((_, h)) = meta.iter().find(|(k, _)| k == b"rocksdb.properties") {
        let mut p = 0;
        let (off, plen) = handle(h, &mut p)?;
        facts.properties = block_entries(file.get(off..off + plen)?)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
    }
    Some(facts)
}

/// `(format_version, checksum type)` from the last 53 bytes of the file at `path`; `None` when
/// it is not a block-based table of format ≥ 1.
pub fn footer(path: &std::path::Path) -> std::io::Result<Option<(u32, u8, u64)>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < 53 {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(len - 53))?;
    let mut b = [0u8; 53];
    f.read_exact(&mut b)?;
    let magic = u64::from_le_bytes(b[45..].try_into().expect("8"));
    if magic != BLOCK_BASED_MAGIC {
        return Ok(None);
    }
    let fv = u32::from_le_bytes(b[41..45].try_into().expect("4"));
    Ok(Some((fv, b[0], len)))
}
