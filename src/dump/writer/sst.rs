//! SST files through RocksDB's `SstFileWriter` ([`super::ffi_sst`]) with the table options
//! RocksDB 5.9.2 reads (spec §7.1): block-based `format_version = 2`, CRC32c checksums, no
//! filter, no or Snappy compression, the column family's comparator. Each written file's footer
//! is checked from its bytes.

use std::path::Path;

use super::ffi_sst::RawSstWriter;
use crate::dump::comparators::{
    lists_data_key, zsets_score_key, KeyOrder, LISTS_DATA_KEY, ZSETS_SCORE_KEY,
};
use crate::dump::manifest::{internal_key, FileMeta};
use crate::dump::record::{DataType, DumpError};
use crate::dump::rocks::comparator_of;
use crate::dump::sst_check;

/// Compression of written data blocks (a Pika binary may lack other codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression (always readable).
    None,
    /// Snappy, Pika's default.
    #[default]
    Snappy,
}

/// What the SST files of one column family are written with.
#[derive(Debug, Clone, Copy)]
pub struct SstSpec {
    /// The comparator (`None` = bytewise).
    pub comparator: Option<(&'static str, KeyOrder)>,
    /// Snappy (else no compression).
    pub snappy: bool,
}

/// The spec of column family `cf` of type `t` (custom comparators only for blackwidow).
pub fn sst_spec(t: DataType, cf: &str, blackwidow: bool, compression: Compression) -> SstSpec {
    let comparator = match comparator_of(t, cf).filter(|_| blackwidow) {
        Some(LISTS_DATA_KEY) => Some((LISTS_DATA_KEY, lists_data_key as KeyOrder)),
        Some(_) => Some((ZSETS_SCORE_KEY, zsets_score_key as KeyOrder)),
        None => None,
    };
    SstSpec {
        comparator,
        snappy: compression == Compression::Snappy,
    }
}

/// The file being written: writer, number, first and last key, bytes put.
struct OpenFile(RawSstWriter, u64, Vec<u8>, Vec<u8>, u64);

/// Writes sorted entries into files of about `target` bytes (numbers from `next_number`), level
/// 0 for a single file and level 1 for a run of several (they never overlap).
pub struct SstOut<'o> {
    dir: &'o Path,
    spec: SstSpec,
    target: u64,
    cur: Option<OpenFile>,
    /// Files written so far.
    pub files: Vec<FileMeta>,
}

fn io_err(dir: &Path, why: String) -> DumpError {
    DumpError::Io {
        dir: dir.display().to_string(),
        why,
    }
}

impl<'o> SstOut<'o> {
    /// An output into `dir`.
    pub fn new(dir: &'o Path, spec: SstSpec, target: u64) -> Self {
        SstOut {
            dir,
            spec,
            target,
            cur: None,
            files: Vec::new(),
        }
    }

    /// Appends one entry (keys strictly ascending in the column family's order).
    pub fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        next_number: &mut u64,
    ) -> Result<(), DumpError> {
        if self.cur.as_ref().is_some_and(|c| c.4 >= self.target) {
            self.close_current()?;
        }
        if self.cur.is_none() {
            let mut w = RawSstWriter::new(self.spec.comparator, self.spec.snappy);
            let number = *next_number;
            *next_number += 1;
            let path = self.dir.join(format!("{number:06}.sst"));
            w.open(&path)
                .map_err(|e| io_err(self.dir, format!("cannot create {}: {e}", path.display())))?;
            self.cur = Some(OpenFile(w, number, key.to_vec(), Vec::new(), 0));
        }
        let c = self.cur.as_mut().expect("opened");
        c.0.put(key, value)
            .map_err(|e| io_err(self.dir, format!("SST write failed: {e}")))?;
        c.3.clear();
        c.3.extend_from_slice(key);
        c.4 += (key.len() + value.len()) as u64;
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), DumpError> {
        let Some(OpenFile(mut w, number, first, last, _)) = self.cur.take() else {
            return Ok(());
        };
        w.finish()
            .map_err(|e| io_err(self.dir, format!("SST finish failed: {e}")))?;
        let path = self.dir.join(format!("{number:06}.sst"));
        let size = match sst_check::footer(&path).map_err(|e| io_err(self.dir, e.to_string()))? {
            Some((2, 1, size)) => size,
            other => {
                return Err(io_err(
                    self.dir,
                    format!(
                        "{} is not a format_version 2 / CRC32c table that Pika's RocksDB 5.9.2 reads ({other:?})",
                        path.display()
                    ),
                ))
            }
        };
        self.files.push(FileMeta {
            level: 0,
            number,
            size,
            smallest: internal_key(&first, 0),
            largest: internal_key(&last, 0),
            smallest_seqno: 0,
            largest_seqno: 0,
        });
        Ok(())
    }

    /// Closes the last file and assigns levels.
    pub fn finish(mut self) -> Result<Vec<FileMeta>, DumpError> {
        self.close_current()?;
        if self.files.len() > 1 {
            for f in &mut self.files {
                f.level = 1;
            }
        }
        Ok(self.files)
    }
}
