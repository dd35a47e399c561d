//! Opening Pika's RocksDB instances with the column families and comparators each one needs
//! (spec §4.7, §5, §5.7).

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use super::comparators::{lists_data_key, zsets_score_key, LISTS_DATA_KEY, ZSETS_SCORE_KEY};
use super::layout::Engine;
use super::record::{DataType, DumpError};

/// The comparator of a column family: `None` = RocksDB's bytewise default.
pub fn comparator_of(t: DataType, cf: &str) -> Option<&'static str> {
    match (t, cf) {
        (DataType::List, "data_cf") => Some(LISTS_DATA_KEY),
        (DataType::ZSet, "score_cf") => Some(ZSETS_SCORE_KEY),
        _ => None,
    }
}

/// The column families of a blackwidow instance in ID order (nemo: `default` only).
pub fn column_families(engine: Engine, t: DataType) -> &'static [&'static str] {
    if engine == Engine::Nemo {
        return &["default"];
    }
    match t {
        DataType::String => &["default"],
        DataType::Hash => &["default", "data_cf"],
        DataType::Set => &["default", "member_cf"],
        DataType::ZSet => &["default", "data_cf", "score_cf"],
        DataType::List => &["default", "data_cf"],
    }
}

/// Sets the comparator of column family `cf` of type `t` on `opts` (nothing for bytewise ones).
pub fn set_comparator(opts: &mut Options, t: DataType, cf: &str) {
    match comparator_of(t, cf) {
        Some(LISTS_DATA_KEY) => opts.set_comparator(LISTS_DATA_KEY, lists_data_key),
        Some(_) => opts.set_comparator(ZSETS_SCORE_KEY, zsets_score_key),
        None => {}
    }
}

/// Opens one instance read-only with every column family (a WAL present in the dump is replayed
/// into memory, nothing is written).
pub fn open_read_only(engine: Engine, t: DataType, path: &Path) -> Result<DB, DumpError> {
    let dir = path.display().to_string();
    if !path.join("CURRENT").is_file() {
        return Err(DumpError::Layout {
            dir,
            why: "no CURRENT file: not a RocksDB directory".into(),
        });
    }
    let mut db_opts = Options::default();
    db_opts.create_if_missing(false);
    db_opts.set_max_open_files(64);
    let cfs = column_families(engine, t).iter().map(|cf| {
        let mut o = Options::default();
        set_comparator(&mut o, t, cf);
        ColumnFamilyDescriptor::new(*cf, o)
    });
    DB::open_cf_descriptors_read_only(&db_opts, path, cfs, false).map_err(|e| DumpError::Io {
        dir,
        why: format!("RocksDB refused to open it: {e}"),
    })
}
