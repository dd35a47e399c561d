//! Broken dumps are errors that name the instance, the key and the cause; nothing is skipped or
//! served silently. The broken instances are built entry by entry with the writer's SST and
//! MANIFEST parts.

use std::path::Path;

use pika_relay::dump::comparators::{lists_data_key, KeyOrder, LISTS_DATA_KEY};
use pika_relay::dump::manifest::{self, CfState};
use pika_relay::dump::writer::sst::{SstOut, SstSpec};
use pika_relay::dump::{self, DumpError, Engine, WriterOptions};

type Cf<'a> = (
    &'a str,
    Option<(&'static str, KeyOrder)>,
    Vec<(Vec<u8>, Vec<u8>)>,
);

/// Replaces the instance in `dir` with one holding exactly `cfs` (entries sorted by the caller).
fn instance(dir: &Path, cfs: Vec<Cf<'_>>) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut n = 10;
    let mut states = Vec::new();
    for (id, (name, cmp, entries)) in cfs.into_iter().enumerate() {
        let spec = SstSpec {
            comparator: cmp,
            snappy: false,
        };
        let mut out = SstOut::new(dir, spec, 1 << 30);
        for (k, v) in &entries {
            out.put(k, v, &mut n).unwrap();
        }
        states.push(CfState {
            id: id as u32,
            name: name.into(),
            comparator: cmp.map_or("leveldb.BytewiseComparator", |c| c.0).into(),
            files: out.finish().unwrap(),
            log_number: None,
        });
    }
    manifest::write(dir, n, &states, 9, n + 1, 0).unwrap();
}

/// A valid empty dump of `engine` to break one instance of.
fn empty_dump(root: &Path, engine: Engine) -> std::path::PathBuf {
    let d = root.join("d");
    dump::DumpWriter::create(&d, WriterOptions::new(engine))
        .unwrap()
        .finish()
        .unwrap();
    d
}

fn read_err(dir: &Path) -> String {
    let mut src = dump::open(dir, 0).unwrap();
    loop {
        match src.next_record() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a broken dump read to its end"),
            Err(e) => {
                assert!(matches!(e, DumpError::Corrupt { .. }), "{e}");
                // The stream ends after an error.
                assert!(src.next_record().unwrap().is_none());
                return e.to_string();
            }
        }
    }
}

fn bw_key(key: &[u8], version: i32, tail: &[u8]) -> Vec<u8> {
    let mut k = pika_relay::dump::blackwidow::data_prefix(key, version);
    k.extend_from_slice(tail);
    k
}

#[test]
fn a_meta_of_the_wrong_size_names_the_key() {
    let t = tempfile::tempdir().unwrap();
    let d = empty_dump(t.path(), Engine::Blackwidow30);
    instance(
        &d.join("hashes"),
        vec![
            ("default", None, vec![(b"h".to_vec(), vec![1, 0, 0, 0, 7])]),
            ("data_cf", None, vec![]),
        ],
    );
    let e = read_err(&d);
    assert!(
        e.contains("hashes") && e.contains("key h") && e.contains("meta value is 5 bytes"),
        "{e}"
    );
}

#[test]
fn a_list_shorter_than_its_meta_is_an_error_not_a_short_list() {
    let t = tempfile::tempdir().unwrap();
    let d = empty_dump(t.path(), Engine::Blackwidow31);
    let mut meta = 3u64.to_le_bytes().to_vec();
    meta.extend_from_slice(&5i32.to_le_bytes());
    meta.extend_from_slice(&0i32.to_le_bytes());
    meta.extend_from_slice(&((1u64 << 63) - 1).to_le_bytes());
    meta.extend_from_slice(&((1u64 << 63) + 3).to_le_bytes());
    let node = |i: u64| {
        (
            bw_key(b"l", 5, &((1u64 << 63) + i).to_le_bytes()),
            b"x".to_vec(),
        )
    };
    instance(
        &d.join("db0/lists"),
        vec![
            ("default", None, vec![(b"l".to_vec(), meta)]),
            (
                "data_cf",
                Some((LISTS_DATA_KEY, lists_data_key as KeyOrder)),
                vec![node(0), node(1)],
            ),
        ],
    );
    let e = read_err(&d);
    assert!(e.contains("key l") && e.contains("list meta says 3"), "{e}");
}

#[test]
fn a_nemo_list_with_a_broken_link_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let d = empty_dump(t.path(), Engine::Nemo);
    let sfx = |mut v: Vec<u8>| {
        v.extend_from_slice(&7u32.to_le_bytes());
        v.extend_from_slice(&0i32.to_le_bytes());
        v
    };
    // len 2, head seq 1, whose next (9) does not exist.
    let mut meta = Vec::new();
    for x in [2i64, 1, 2, 3] {
        meta.extend_from_slice(&x.to_le_bytes());
    }
    let mut node = Vec::new();
    for x in [0i64, 9] {
        node.extend_from_slice(&x.to_le_bytes());
    }
    node.extend_from_slice(b"a");
    let mut nk = vec![b'l', 1, b'k'];
    nk.extend_from_slice(&1i64.to_le_bytes());
    instance(
        &d.join("list"),
        vec![(
            "default",
            None,
            vec![
                (b"Lk".to_vec(), sfx(meta)),
                (b"l".to_vec(), vec![0; 8]),
                (nk, sfx(node)),
            ],
        )],
    );
    let e = read_err(&d);
    assert!(e.contains("key k") && e.contains("seq 9 is missing"), "{e}");
}

#[test]
fn a_truncated_value_and_a_missing_column_family_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = empty_dump(t.path(), Engine::Nemo);
    instance(
        &d.join("kv"),
        vec![("default", None, vec![(b"k".to_vec(), vec![1, 2, 3])])],
    );
    let e = read_err(&d);
    assert!(
        e.contains("kv") && e.contains("shorter than its 8-byte suffix"),
        "{e}"
    );

    let t = tempfile::tempdir().unwrap();
    let d = empty_dump(t.path(), Engine::Blackwidow30);
    instance(&d.join("zsets"), vec![("default", None, vec![])]);
    let e = dump::open(&d, 0)
        .err()
        .expect("refused at open")
        .to_string();
    assert!(e.contains("zsets") && e.contains("RocksDB refused"), "{e}");
}
