//! Writes a record stream as a dump directory that Pika opens: blackwidow (3.0 layout, or the
//! 3.1–3.4 `db0/` layout) for new slaves, or nemo (2.3) for the old-master doubles.
//!
//! Route (spec §7.2, "alternative"): entries are sorted per column family in that column
//! family's comparator order (in memory, spilling sorted runs to disk past a memory budget),
//! written with RocksDB's `SstFileWriter` as `format_version = 2` / CRC32c tables, and
//! described by a MANIFEST and CURRENT written by [`crate::dump::manifest`] in the 5.x
//! vocabulary, because RocksDB 5.9.2 refuses the crate's own MANIFEST. No WAL, OPTIONS, LOCK or
//! IDENTITY file is left (5.9.2 creates what it needs at open).

pub mod encode;
pub mod ffi_sst;
pub mod sorter;
pub mod sst;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dump::comparators::{lists_data_key, zsets_score_key, LISTS_DATA_KEY};
use crate::dump::layout::{Engine, TYPES};
use crate::dump::manifest::{self, CfState};
use crate::dump::record::{DataType, DumpError, DumpRecord};
use crate::dump::rocks::{column_families, comparator_of};

pub use encode::Encoder;
pub use sst::Compression;

/// How to write.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The layout and engine to write (nemo for a 2.3 double, blackwidow 3.0 or 3.1+).
    pub engine: Engine,
    /// Data-block compression.
    pub compression: Compression,
    /// Version stamped on every collection (unix seconds, > 0; Pika uses the creation time).
    pub version: i32,
    /// Bytes of entries buffered in memory before sorted runs spill to disk.
    pub memory_budget: usize,
    /// Approximate size of each SST file.
    pub target_file_size: u64,
}

impl WriterOptions {
    /// Defaults for `engine`: Snappy, version = now, 256 MiB budget, 64 MiB files.
    pub fn new(engine: Engine) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        WriterOptions {
            engine,
            compression: Compression::Snappy,
            version: now.clamp(1, i32::MAX as u64) as i32,
            memory_budget: 256 << 20,
            target_file_size: 64 << 20,
        }
    }
}

/// What a finished writer produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Keys written (a key of several types counts once per type).
    pub keys: u64,
    /// Raw RocksDB entries written.
    pub entries: u64,
    /// Bytes of SST files.
    pub sst_bytes: u64,
    /// SST files.
    pub files: u64,
}

/// First SST number of every instance; the log number recorded (no WAL is shipped) is one less.
const FIRST_FILE_NUMBER: u64 = 10;

/// The writer.
pub struct DumpWriter {
    opts: WriterOptions,
    db_root: PathBuf,
    tmp: PathBuf,
    enc: Encoder,
    sorters: BTreeMap<(DataType, usize), sorter::Sorter>,
    buffered: usize,
    stats: WriteStats,
}

fn io(dir: &Path, e: impl std::fmt::Display) -> DumpError {
    DumpError::Io {
        dir: dir.display().to_string(),
        why: e.to_string(),
    }
}

fn cmp_of(engine: Engine, t: DataType, cf: &str) -> sorter::Cmp {
    if engine == Engine::Nemo {
        return |a, b| a.cmp(b);
    }
    match comparator_of(t, cf) {
        Some(LISTS_DATA_KEY) => lists_data_key,
        Some(_) => zsets_score_key,
        None => |a, b| a.cmp(b),
    }
}

impl DumpWriter {
    /// Starts a dump in `dir`, which must not exist or be empty.
    pub fn create(dir: &Path, opts: WriterOptions) -> Result<DumpWriter, DumpError> {
        if dir.exists()
            && std::fs::read_dir(dir)
                .map_err(|e| io(dir, e))?
                .next()
                .is_some()
        {
            return Err(DumpError::Layout {
                dir: dir.display().to_string(),
                why: "the output directory is not empty".into(),
            });
        }
        if opts.version <= 0 {
            return Err(io(dir, "the collection version must be > 0"));
        }
        let db_root = if opts.engine == Engine::Blackwidow31 {
            dir.join("db0")
        } else {
            dir.to_path_buf()
        };
        let tmp = dir.join(".sort-tmp");
        let mut sorters = BTreeMap::new();
        for t in TYPES {
            let inst = db_root.join(opts.engine.type_dir(t));
            std::fs::create_dir_all(&inst).map_err(|e| io(&inst, e))?;
            for (i, cf) in column_families(opts.engine, t).iter().enumerate() {
                let name = format!("{}-{cf}", opts.engine.type_dir(t));
                sorters.insert(
                    (t, i),
                    sorter::Sorter::new(cmp_of(opts.engine, t, cf), &tmp, &name),
                );
            }
        }
        let enc = Encoder::new(opts.engine, opts.version);
        let mut w = DumpWriter {
            opts,
            db_root,
            tmp,
            enc,
            sorters,
            buffered: 0,
            stats: WriteStats::default(),
        };
        for (t, cf, k, v) in w.enc.fixed_entries() {
            w.buffered += w.sorters.get_mut(&(t, cf)).expect("cf").push(k, v);
        }
        Ok(w)
    }

    /// Adds one record (records of a key consecutive, `first` … `last`).
    pub fn write(&mut self, rec: &DumpRecord) -> Result<(), DumpError> {
        let sorters = &mut self.sorters;
        let buffered = &mut self.buffered;
        let entries = &mut self.stats.entries;
        self.enc.encode(rec, &mut |t, cf, k, v| {
            *buffered += sorters.get_mut(&(t, cf)).expect("cf").push_parts(k, v);
            *entries += 1;
            Ok(())
        })?;
        if rec.last {
            self.stats.keys += 1;
        }
        if self.buffered > self.opts.memory_budget {
            for s in self.sorters.values_mut() {
                s.spill().map_err(|e| io(&self.tmp, e))?;
            }
            self.buffered = 0;
        }
        Ok(())
    }

    /// Sorts, writes the SST files, MANIFEST and CURRENT of every instance.
    pub fn finish(mut self) -> Result<WriteStats, DumpError> {
        if let Some(k) = self.enc.key_open() {
            return Err(DumpError::Corrupt {
                dir: self.db_root.display().to_string(),
                place: format!("key {}", crate::formats::resp::escape(k)),
                why: "the stream ended before this key's last chunk".into(),
            });
        }
        let engine = self.opts.engine;
        let mut sorters = std::mem::take(&mut self.sorters);
        // The five instances are independent: their files are written in parallel.
        let jobs: Vec<(DataType, Vec<sorter::Sorter>)> = TYPES
            .iter()
            .map(|t| {
                let n = column_families(engine, *t).len();
                (
                    *t,
                    (0..n)
                        .map(|i| sorters.remove(&(*t, i)).expect("cf"))
                        .collect(),
                )
            })
            .collect();
        let results: Vec<Result<(u64, u64), DumpError>> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(t, cfs)| {
                    let inst = self.db_root.join(engine.type_dir(t));
                    let (opts, tmp) = (&self.opts, &self.tmp);
                    s.spawn(move || write_instance(&inst, tmp, t, cfs, opts))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(io(&self.db_root, "a thread writing an instance panicked"))
                    })
                })
                .collect()
        });
        for r in results {
            let (files, bytes) = r?;
            self.stats.files += files;
            self.stats.sst_bytes += bytes;
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
        Ok(self.stats)
    }
}

/// Writes the SST files, MANIFEST and CURRENT of one instance; returns (files, bytes).
fn write_instance(
    inst: &Path,
    tmp: &Path,
    t: DataType,
    sorters: Vec<sorter::Sorter>,
    opts: &WriterOptions,
) -> Result<(u64, u64), DumpError> {
    let engine = opts.engine;
    let mut next_number = FIRST_FILE_NUMBER;
    let mut cfs = Vec::new();
    let (mut nfiles, mut nbytes) = (0u64, 0u64);
    for ((i, cf), s) in column_families(engine, t).iter().enumerate().zip(sorters) {
        let spec = sst::sst_spec(t, cf, engine != Engine::Nemo, opts.compression);
        let mut out = sst::SstOut::new(inst, spec, opts.target_file_size);
        let mut failed: Option<DumpError> = None;
        let dup = s
            .drain(&mut |k, v| {
                out.put(k, v, &mut next_number).map_err(|e| {
                    let msg = e.to_string();
                    failed = Some(e);
                    std::io::Error::other(msg)
                })
            })
            .map_err(|e| failed.take().unwrap_or_else(|| io(tmp, e)))?;
        if let Err(k) = dup {
            return Err(DumpError::Corrupt {
                dir: inst.display().to_string(),
                place: format!("column family {cf}"),
                why: format!(
                    "the record stream holds entry {} twice (a repeated key or member)",
                    crate::formats::resp::escape(&k)
                ),
            });
        }
        let files = out.finish()?;
        nfiles += files.len() as u64;
        nbytes += files.iter().map(|f| f.size).sum::<u64>();
        cfs.push(CfState {
            id: i as u32,
            name: cf.to_string(),
            comparator: comparator_of(t, cf)
                .filter(|_| engine != Engine::Nemo)
                .unwrap_or("leveldb.BytewiseComparator")
                .to_string(),
            files,
            log_number: None,
        });
    }
    let manifest_number = next_number;
    manifest::write(
        inst,
        manifest_number,
        &cfs,
        FIRST_FILE_NUMBER - 1,
        manifest_number + 1,
        0,
    )
    .map_err(|e| io(inst, e))?;
    Ok((nfiles, nbytes))
}
