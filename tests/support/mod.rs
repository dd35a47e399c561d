//! Helpers shared by the journal tests.
#![allow(dead_code)]

pub mod kill9;

use pika_relay::formats::item::BinlogItem;
use pika_relay::formats::record::records;
use pika_relay::journal::files::{data_path, list_data_files};
use pika_relay::journal::{JournalConfig, RetentionConfig};
use std::path::Path;

/// Every item in the journal directory, in order, checking that records parse to the end of
/// every file and that logic ids are consecutive.
pub fn read_all_items(dir: &Path) -> Vec<BinlogItem> {
    let mut out: Vec<BinlogItem> = Vec::new();
    let files = list_data_files(dir).unwrap();
    let live = files.last().copied();
    for f in files {
        let b = std::fs::read(data_path(dir, f)).unwrap();
        let mut end = 0;
        for r in records(&b, 0) {
            let r = r.unwrap();
            end = r.end;
            let it = BinlogItem::decode(&r.payload).unwrap();
            if let Some(p) = out.last() {
                assert_eq!(it.logic_id, p.logic_id + 1);
            }
            out.push(it);
        }
        if Some(f) == live {
            // The live file may be pre-allocated (zeros after the data, as in Pika 3.1/3.2).
            assert!(
                b[end as usize..].iter().all(|&x| x == 0),
                "write2file{f} has non-zero bytes after its last record"
            );
        } else {
            assert_eq!(
                end,
                b.len() as u64,
                "finished write2file{f} has bytes after its last record"
            );
        }
    }
    out
}

/// A config with tiny files and no retention.
pub fn tiny(dir: &Path, file_size: u64) -> JournalConfig {
    JournalConfig {
        binlog_file_size: file_size,
        retention: RetentionConfig {
            max_files: usize::MAX,
            max_age_secs: u64::MAX / 2,
            ..Default::default()
        },
        ..JournalConfig::new(dir)
    }
}
