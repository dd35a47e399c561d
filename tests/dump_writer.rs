//! The writer: files RocksDB 5.9.2 (Pika 3.1–3.4) opens, asserted from their bytes against the
//! spec §7 and against the real dumps' own files; records → writer → reader round trips.

#[path = "support/vectors.rs"]
mod vectors;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use pika_relay::dump::layout::{Engine, TYPES};
use pika_relay::dump::manifest;
use pika_relay::dump::sst_check;
use pika_relay::dump::{self, DataType, DumpRecord, DumpWriter, RecordValue, WriterOptions};
use proptest::prelude::*;

/// One whole key (before chunking).
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    List(Vec<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    ZSet(BTreeMap<Vec<u8>, f64>),
}

type Data = BTreeMap<(Vec<u8>, DataType), (Val, Option<i64>)>;

fn type_of(v: &Val) -> DataType {
    match v {
        Val::Str(_) => DataType::String,
        Val::Hash(_) => DataType::Hash,
        Val::List(_) => DataType::List,
        Val::Set(_) => DataType::Set,
        Val::ZSet(_) => DataType::ZSet,
    }
}

/// Cuts each key into records of at most `chunk` members.
fn records(data: &Data, chunk: usize) -> Vec<DumpRecord> {
    let mut out = Vec::new();
    let b = |v: &Vec<u8>| Bytes::from(v.clone());
    for ((k, _), (v, exp)) in data {
        let parts: Vec<RecordValue> = match v {
            Val::Str(s) => vec![RecordValue::String(b(s))],
            Val::Hash(h) => {
                let items: Vec<_> = h.iter().map(|(f, v)| (b(f), b(v))).collect();
                items
                    .chunks(chunk)
                    .map(|c| RecordValue::Hash(c.to_vec()))
                    .collect()
            }
            Val::List(l) => {
                let items: Vec<_> = l.iter().map(b).collect();
                items
                    .chunks(chunk)
                    .map(|c| RecordValue::List(c.to_vec()))
                    .collect()
            }
            Val::Set(s) => {
                let items: Vec<_> = s.iter().map(b).collect();
                items
                    .chunks(chunk)
                    .map(|c| RecordValue::Set(c.to_vec()))
                    .collect()
            }
            Val::ZSet(z) => {
                let items: Vec<_> = z.iter().map(|(m, s)| (b(m), *s)).collect();
                items
                    .chunks(chunk)
                    .map(|c| RecordValue::ZSet(c.to_vec()))
                    .collect()
            }
        };
        let n = parts.len();
        for (i, value) in parts.into_iter().enumerate() {
            out.push(DumpRecord {
                key: b(k),
                expire_at_ms: *exp,
                value,
                first: i == 0,
                last: i + 1 == n,
            });
        }
    }
    out
}

fn write(dir: &Path, engine: Engine, data: &Data, chunk: usize, budget: usize) -> dump::WriteStats {
    let mut o = WriterOptions::new(engine);
    o.memory_budget = budget;
    o.version = 1_795_000_000;
    let mut w = DumpWriter::create(dir, o).unwrap();
    for r in records(data, chunk) {
        w.write(&r).unwrap();
    }
    w.finish().unwrap()
}

/// Reads a dump back into whole keys, checking chunk flags and zset score order.
fn read(dir: &Path, now_ms: i64) -> Data {
    let mut src = dump::open(dir, now_ms).unwrap();
    let mut out = Data::new();
    let mut open = None;
    while let Some(r) = src.next_record().unwrap() {
        let id = (r.key.to_vec(), r.value.data_type());
        if r.first {
            assert!(open.is_none());
            let empty = match r.value.data_type() {
                DataType::String => Val::Str(vec![]),
                DataType::Hash => Val::Hash(Default::default()),
                DataType::List => Val::List(vec![]),
                DataType::Set => Val::Set(Default::default()),
                DataType::ZSet => Val::ZSet(Default::default()),
            };
            assert!(
                out.insert(id.clone(), (empty, r.expire_at_ms)).is_none(),
                "{id:?} twice"
            );
        } else {
            assert_eq!(open.as_ref(), Some(&id));
        }
        let (v, e) = out.get_mut(&id).unwrap();
        assert_eq!(*e, r.expire_at_ms);
        match (v, r.value) {
            (Val::Str(s), RecordValue::String(x)) => *s = x.to_vec(),
            (Val::Hash(h), RecordValue::Hash(x)) => {
                h.extend(x.iter().map(|(f, v)| (f.to_vec(), v.to_vec())))
            }
            (Val::List(l), RecordValue::List(x)) => l.extend(x.iter().map(|m| m.to_vec())),
            (Val::Set(s), RecordValue::Set(x)) => s.extend(x.iter().map(|m| m.to_vec())),
            (Val::ZSet(z), RecordValue::ZSet(x)) => {
                for w in x.windows(2) {
                    assert!(w[0].1 <= w[1].1, "zset chunk out of score order");
                }
                z.extend(x.iter().map(|(m, s)| (m.to_vec(), *s)))
            }
            _ => unreachable!(),
        }
        open = if r.last { None } else { Some(id) };
    }
    assert!(open.is_none());
    out
}

fn sample() -> Data {
    let mut d = Data::new();
    let big: Vec<u8> = (0..300_000).map(|i| (i * 7 % 251) as u8).collect();
    d.insert(
        (b"s".to_vec(), DataType::String),
        (Val::Str(b"v".to_vec()), None),
    );
    d.insert(
        (b"bin\x00key\r\n\xff".to_vec(), DataType::String),
        (Val::Str(big.clone()), Some(1_900_000_000_000)),
    );
    d.insert((b"".to_vec(), DataType::String), (Val::Str(vec![]), None));
    let h: BTreeMap<_, _> = (0..3000u32)
        .map(|i| (i.to_be_bytes().to_vec(), i.to_string().into_bytes()))
        .collect();
    d.insert((b"h".to_vec(), DataType::Hash), (Val::Hash(h), None));
    d.insert(
        (b"s".to_vec(), DataType::Hash),
        (
            Val::Hash([(vec![], vec![])].into()),
            Some(i32::MAX as i64 * 1000),
        ),
    );
    let l: Vec<Vec<u8>> = (0..2500u32)
        .map(|i| format!("e{}", i % 7).into_bytes())
        .chain([big.clone()])
        .collect();
    d.insert((b"l".to_vec(), DataType::List), (Val::List(l), None));
    d.insert(
        (b"set".to_vec(), DataType::Set),
        (
            Val::Set((0..100u8).map(|i| vec![i; i as usize]).collect()),
            None,
        ),
    );
    let z: BTreeMap<_, _> = [
        (b"max".to_vec(), 1e13),
        (b"min".to_vec(), -1e13),
        (b"tiny".to_vec(), 1e-300),
        (b"zero".to_vec(), 0.0),
        (b"third".to_vec(), 1.0 / 3.0),
        (b"a".to_vec(), 11.0),
        (b"b".to_vec(), 3.5),
    ]
    .into();
    d.insert((b"z".to_vec(), DataType::ZSet), (Val::ZSet(z), None));
    d
}

#[test]
fn written_dumps_read_back_exactly_in_every_layout() {
    for engine in [Engine::Nemo, Engine::Blackwidow30, Engine::Blackwidow31] {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("d");
        let data = sample();
        let st = write(&out, engine, &data, 500, 256 << 20);
        assert_eq!(st.keys, data.len() as u64);
        assert_eq!(dump::detect(&out).unwrap().engine, engine);
        assert_eq!(read(&out, 1_800_000_000_000), data, "{engine:?}");
        // Expiry is decided at the time passed in.
        let later = read(&out, 1_950_000_000_000);
        assert!(!later.contains_key(&(b"bin\x00key\r\n\xff".to_vec(), DataType::String)));
        assert!(later.contains_key(&(b"s".to_vec(), DataType::Hash)));
    }
}

#[test]
fn a_small_memory_budget_spills_sorted_runs_and_gives_the_same_dump() {
    let t = tempfile::tempdir().unwrap();
    let data = sample();
    let a = t.path().join("a");
    let b = t.path().join("b");
    write(&a, Engine::Blackwidow31, &data, 300, 256 << 20);
    write(&b, Engine::Blackwidow31, &data, 300, 64 << 10);
    assert_eq!(read(&a, 0), read(&b, 0));
    assert_eq!(read(&b, 0), data);
    assert!(!b.join(".sort-tmp").exists());
}

fn files_of(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// (id, name, comparator) of every column family in a MANIFEST.
fn cf_layout(m: &manifest::Manifest) -> Vec<(u32, String, String)> {
    m.cfs
        .iter()
        .map(|c| (c.id, c.name.clone(), c.comparator.clone()))
        .collect()
}

#[test]
fn written_files_have_the_format_properties_rocksdb_5_9_2_needs() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("d");
    write(&out, Engine::Blackwidow31, &sample(), 700, 256 << 20);
    let real = vectors::dir().join("pika-3.2.9/master-dump/20261122/db0");
    let layout = dump::detect(&out).unwrap();
    for ty in TYPES {
        let inst = layout.instance(ty);
        let names = files_of(&inst);
        // Only SSTs, CURRENT and our MANIFEST: no WAL, OPTIONS, LOCK, LOG, IDENTITY.
        let current = std::fs::read_to_string(inst.join("CURRENT")).unwrap();
        assert!(
            current.starts_with("MANIFEST-") && current.ends_with('\n'),
            "{current:?}"
        );
        let mname = current.trim_end().to_string();
        for n in &names {
            assert!(
                n == "CURRENT" || *n == mname || n.ends_with(".sst"),
                "unexpected file {n} in {}",
                inst.display()
            );
        }
        // The MANIFEST uses only RocksDB 5.x tags and matches the real dump's column families.
        let m = manifest::parse(&std::fs::read(inst.join(&mname)).unwrap()).unwrap();
        for tag in &m.tags {
            assert!(
                [1, 2, 3, 4, 9, 100, 200, 201, 203].contains(tag),
                "tag {tag}"
            );
        }
        let rdir = real.join(ty_dir(ty));
        let rcur = std::fs::read_to_string(rdir.join("CURRENT")).unwrap();
        let rm = manifest::parse(&std::fs::read(rdir.join(rcur.trim_end())).unwrap()).unwrap();
        assert_eq!(cf_layout(&m), cf_layout(&rm), "{ty:?}");
        let mnum: u64 = mname["MANIFEST-".len()..].parse().unwrap();
        assert_eq!(m.next_file, Some(mnum + 1));
        assert_eq!(m.last_sequence, Some(0));
        assert!(m.cfs.iter().all(|c| c.log_number.is_some()));
        let mut listed = BTreeSet::new();
        for cf in &m.cfs {
            for f in &cf.files {
                let name = format!("{:06}.sst", f.number);
                let bytes = std::fs::read(inst.join(&name)).unwrap();
                assert_eq!(f.size, bytes.len() as u64);
                assert!(f.number < mnum);
                assert_eq!((f.smallest_seqno, f.largest_seqno), (0, 0));
                // Internal keys: user key + seq 0, type 1 (value).
                assert_eq!(&f.smallest[f.smallest.len() - 8..], &1u64.to_le_bytes());
                let facts = sst_check::inspect(&bytes).expect("a block-based table");
                assert_eq!(facts.format_version, 2, "{name}");
                assert_eq!(facts.checksum, 1, "{name}: CRC32c");
                assert_eq!(
                    facts.prop("rocksdb.comparator").as_deref(),
                    Some(cf.comparator.as_str())
                );
                let comp = facts.prop("rocksdb.compression").unwrap();
                assert!(comp == "Snappy" || comp == "NoCompression", "{comp}");
                assert!(
                    !facts.meta_blocks.iter().any(|b| b.contains("filter")),
                    "{name}: {:?}",
                    facts.meta_blocks
                );
                assert!(facts
                    .properties
                    .contains_key("rocksdb.external_sst_file.version"));
                listed.insert(name);
            }
        }
        let on_disk: BTreeSet<String> = names.into_iter().filter(|n| n.ends_with(".sst")).collect();
        assert_eq!(listed, on_disk);
    }
}

fn ty_dir(t: DataType) -> &'static str {
    Engine::Blackwidow31.type_dir(t)
}

#[test]
fn the_real_dumps_files_have_the_same_table_format() {
    // What we assert of our files is what the real servers wrote (spec §9: fv 2, CRC32c).
    for v in ["2.3.6", "3.0.16", "3.2.9"] {
        let l = dump::detect(&vectors::dir().join(format!("pika-{v}/master-dump"))).unwrap();
        for ty in TYPES {
            let inst = l.instance(ty);
            for n in files_of(&inst) {
                if n.ends_with(".sst") {
                    let f = sst_check::inspect(&std::fs::read(inst.join(&n)).unwrap()).unwrap();
                    assert_eq!((f.format_version, f.checksum), (2, 1), "{v} {n}");
                }
                if n.starts_with("MANIFEST-") {
                    manifest::parse(&std::fs::read(inst.join(&n)).unwrap()).unwrap();
                }
            }
        }
    }
}

#[test]
fn bad_streams_and_unrepresentable_values_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let rec = |k: &str, exp: Option<i64>, first: bool, last: bool| DumpRecord {
        key: Bytes::from(k.to_string()),
        expire_at_ms: exp,
        value: RecordValue::Set(vec![Bytes::from_static(b"m")]),
        first,
        last,
    };
    let mk = |n: &str| {
        DumpWriter::create(&t.path().join(n), WriterOptions::new(Engine::Blackwidow31)).unwrap()
    };
    // Expiry beyond i32 seconds (u32 range) cannot be stored by Pika.
    let e = mk("a")
        .write(&rec("k", Some(u32::MAX as i64 * 1000), true, true))
        .unwrap_err();
    assert!(e.to_string().contains("outside what Pika stores"), "{e}");
    assert!(mk("b").write(&rec("k", Some(0), true, true)).is_err());
    // A continuation without a start, a key without its end.
    assert!(mk("c").write(&rec("k", None, false, true)).is_err());
    let mut w = mk("d");
    w.write(&rec("k", None, true, false)).unwrap();
    assert!(w.finish().unwrap_err().to_string().contains("last chunk"));
    // A repeated member would make the count wrong.
    let mut w = mk("e");
    w.write(&rec("k", None, true, false)).unwrap();
    w.write(&rec("k", None, false, true)).unwrap();
    assert!(w.finish().unwrap_err().to_string().contains("twice"));
    // A nemo collection key over 254 bytes.
    let mut w = DumpWriter::create(&t.path().join("f"), WriterOptions::new(Engine::Nemo)).unwrap();
    assert!(w.write(&rec(&"k".repeat(255), None, true, true)).is_err());
    // Not into a non-empty directory.
    std::fs::write(t.path().join("g"), b"x").ok();
    let full = t.path().join("h");
    std::fs::create_dir_all(full.join("x")).unwrap();
    assert!(DumpWriter::create(&full, WriterOptions::new(Engine::Blackwidow30)).is_err());
}

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..12),
        1 => proptest::collection::vec(any::<u8>(), 0..2000),
        1 => (0usize..3).prop_map(|n| vec![0xA5u8; [0, 70_000, 200_000][n]]),
    ]
}

fn score_strategy(nemo: bool) -> BoxedStrategy<f64> {
    if nemo {
        prop_oneof![Just(1e13), Just(-1e13), Just(0.0), -1e13f64..1e13].boxed()
    } else {
        prop_oneof![
            Just(f64::MAX),
            Just(f64::MIN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE),
            Just(-0.0),
            any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
        ]
        .boxed()
    }
}

fn expiry_strategy() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(i32::MAX as i64 * 1000)),
        1 => Just(Some(i32::MAX as i64 * 1000 + 999)),
        1 => (1_000i64..=i32::MAX as i64 * 1000).prop_map(Some),
    ]
}

fn value_strategy(nemo: bool) -> impl Strategy<Value = Val> {
    let b = bytes_strategy;
    prop_oneof![
        b().prop_map(Val::Str),
        proptest::collection::btree_map(b(), b(), 1..40).prop_map(Val::Hash),
        proptest::collection::vec(b(), 1..40).prop_map(Val::List),
        proptest::collection::btree_set(b(), 1..40).prop_map(Val::Set),
        proptest::collection::btree_map(b(), score_strategy(nemo), 1..40).prop_map(Val::ZSet),
    ]
}

fn data_strategy(nemo: bool) -> impl Strategy<Value = Data> {
    let key = if nemo {
        proptest::collection::vec(any::<u8>(), 1..40).boxed()
    } else {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            Just(vec![0u8; 1000])
        ]
        .boxed()
    };
    proptest::collection::vec((key, value_strategy(nemo), expiry_strategy()), 0..25).prop_map(|v| {
        v.into_iter()
            .map(|(k, val, e)| ((k, type_of(&val)), (val, e.map(|ms| ms / 1000 * 1000))))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn records_round_trip_through_blackwidow(data in data_strategy(false), chunk in 1usize..8) {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("d");
        write(&out, Engine::Blackwidow31, &data, chunk, 1 << 16);
        let back = read(&out, 0);
        prop_assert_eq!(back, data);
    }

    #[test]
    fn records_round_trip_through_nemo(data in data_strategy(true), chunk in 1usize..8) {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("d");
        write(&out, Engine::Nemo, &data, chunk, 1 << 16);
        let back = read(&out, 0);
        prop_assert_eq!(back, data);
    }
}
