//! The recorded real dumps (Pika 2.3.6 nemo, 3.0.16/3.1.1/3.2.9/3.3.6 blackwidow) read back to
//! exactly the data their masters held when the dump was taken: the workload's phase w1 replayed
//! into the doubles' keyspace at the recorded times, expiry evaluated at a time we pass in.

#[path = "support/vectors.rs"]
mod vectors;

use std::collections::BTreeMap;

use pika_relay::dump::{self, DataType, DumpRecord, RecordValue};
use pika_relay::sim::keyspace::{Keyspace, Value};

const VERSIONS: [&str; 5] = ["2.3.6", "3.0.16", "3.1.1", "3.2.9", "3.3.6"];

/// The unix time (seconds, floored) at which phase `name` began.
fn phase_time(version: &str, name: &str) -> u64 {
    let text = String::from_utf8(vectors::read(&format!("pika-{version}/phases.txt"))).unwrap();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.contains(name) {
            let t: f64 = lines.next().unwrap().trim().parse().unwrap();
            return t as u64;
        }
    }
    panic!("phase {name} not in phases.txt of {version}");
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7) % 251) as u8).collect()
}

/// The master's data after phase w1: every successful w1 command replayed at its recorded
/// second. nemo (2.3) stores relative TTLs as `now + n - 1` (spec §4.6), blackwidow `now + n`.
fn expected(version: &str) -> Keyspace {
    let text = String::from_utf8(vectors::read(&format!("pika-{version}/workload.jsonl"))).unwrap();
    let mut ks = Keyspace::default();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["phase"] != "w1" {
            continue;
        }
        if v["reply"].as_str().is_some_and(|r| r.starts_with('-')) {
            continue;
        }
        let argv: Vec<Vec<u8>> = v["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let a = a.as_str().unwrap();
                match a.strip_prefix('<') {
                    Some(rest) => big(rest.split(' ').next().unwrap().parse().unwrap()),
                    None => vectors::py_bytes(a),
                }
            })
            .collect();
        let name = String::from_utf8_lossy(&argv[0]).to_lowercase();
        let relative = matches!(name.as_str(), "setex" | "psetex" | "expire" | "pexpire")
            || (name == "set" && argv.len() > 3);
        let mut now = v["t"].as_f64().unwrap() as u64;
        if version == "2.3.6" && relative {
            now -= 1;
        }
        ks.exec(&argv, now)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    ks
}

/// Reads a dump completely, merging chunks; asserts chunk flags and per-key order properties.
fn read_dump(version: &str, now_ms: i64) -> BTreeMap<(Vec<u8>, DataType), (Value, Option<i64>)> {
    let dir = vectors::dir().join(format!("pika-{version}/master-dump"));
    let mut src = dump::open(&dir, now_ms).unwrap();
    let mut out = BTreeMap::new();
    let mut open: Option<(Vec<u8>, DataType)> = None;
    while let Some(DumpRecord {
        key,
        expire_at_ms,
        value,
        first,
        last,
    }) = src.next_record().unwrap()
    {
        let id = (key.to_vec(), value.data_type());
        if first {
            assert!(
                open.is_none(),
                "{version}: key {id:?} starts inside another"
            );
            assert!(!out.contains_key(&id), "{version}: key {id:?} twice");
            let empty = match value.data_type() {
                DataType::String => Value::Str(Vec::new()),
                DataType::Hash => Value::Hash(Default::default()),
                DataType::List => Value::List(Default::default()),
                DataType::Set => Value::Set(Default::default()),
                DataType::ZSet => Value::ZSet(Default::default()),
            };
            out.insert(id.clone(), (empty, expire_at_ms));
        } else {
            assert_eq!(
                open.as_ref(),
                Some(&id),
                "{version}: continuation of another key"
            );
        }
        let (v, _) = out.get_mut(&id).unwrap();
        match (v, value) {
            (Value::Str(s), RecordValue::String(b)) => *s = b.to_vec(),
            (Value::Hash(h), RecordValue::Hash(fs)) => {
                h.extend(fs.into_iter().map(|(f, v)| (f.to_vec(), v.to_vec())))
            }
            (Value::List(l), RecordValue::List(ms)) => l.extend(ms.into_iter().map(|m| m.to_vec())),
            (Value::Set(s), RecordValue::Set(ms)) => s.extend(ms.into_iter().map(|m| m.to_vec())),
            (Value::ZSet(z), RecordValue::ZSet(ms)) => {
                for w in ms.windows(2) {
                    assert!(w[0].1 <= w[1].1, "{version}: zset chunk not in score order");
                }
                z.extend(ms.into_iter().map(|(m, s)| (m.to_vec(), s)))
            }
            _ => unreachable!(),
        }
        open = if last { None } else { Some(id) };
    }
    assert!(open.is_none(), "{version}: the last key never ended");
    out
}

fn type_of(v: &Value) -> DataType {
    match v {
        Value::Str(_) => DataType::String,
        Value::Hash(_) => DataType::Hash,
        Value::List(_) => DataType::List,
        Value::Set(_) => DataType::Set,
        Value::ZSet(_) => DataType::ZSet,
    }
}

fn check(version: &str, now: u64) {
    // Keyspace keeps a key while `expiry > now`; Pika while `ts >= now`: compare one second on.
    let want: BTreeMap<(Vec<u8>, DataType), (Value, Option<i64>)> = expected(version)
        .live(now - 1)
        .into_iter()
        .map(|(k, (v, e))| ((k, type_of(&v)), (v, e.map(|t| t as i64 * 1000))))
        .collect();
    let got = read_dump(version, now as i64 * 1000);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{version} at {now}: key sets differ"
    );
    for (k, w) in &want {
        assert_eq!(&got[k], w, "{version} at {now}: key {k:?}");
    }
}

#[test]
fn every_recorded_dump_reads_back_the_masters_data_at_dump_time() {
    for v in VERSIONS {
        let t = phase_time(v, "full sync");
        check(v, t);
        let n = read_dump(v, t as i64 * 1000).len();
        assert!(n >= 19, "{v}: only {n} keys");
    }
}

#[test]
fn expiry_is_evaluated_at_the_time_passed_in() {
    for v in VERSIONS {
        let t = phase_time(v, "full sync");
        // 1000 s TTLs have run out 2000 s later; the EXPIREAT (+3600 s) key has not.
        check(v, t + 2000);
        let later = read_dump(v, (t as i64 + 2000) * 1000);
        assert!(later.keys().any(|(k, _)| k == b"ttl:expireat"));
        assert!(!later.keys().any(|(k, _)| k == b"str:ex" || k == b"ttl:h"));
        // Long after: only keys without expiry remain.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let all = read_dump(v, now as i64 * 1000 + 10_000_000_000);
        assert!(all.values().all(|(_, e)| e.is_none()), "{v}");
    }
}

#[test]
fn a_nemo_dump_has_the_exact_zset_scores_and_the_linked_list_order() {
    let got = read_dump("2.3.6", phase_time("2.3.6", "full sync") as i64 * 1000);
    let (l, _) = &got[&(b"l".to_vec(), DataType::List)];
    let want: Vec<Vec<u8>> = [b"b", b"a", b"x", b"y"]
        .iter()
        .map(|s| s.to_vec())
        .collect();
    assert_eq!(l, &Value::List(want.into()));
    let (z, _) = &got[&(b"z".to_vec(), DataType::ZSet)];
    assert_eq!(
        z,
        &Value::ZSet([(b"one".to_vec(), 11.0), (b"three".to_vec(), 3.5)].into())
    );
}

#[test]
fn a_directory_that_is_not_a_dump_is_refused_with_the_reason() {
    let t = tempfile::tempdir().unwrap();
    let e = dump::open(t.path(), 0).err().unwrap().to_string();
    assert!(e.contains("no dump here"), "{e}");
    for d in ["kv", "hash", "list", "set", "zset"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
    }
    let e = dump::open(t.path(), 0).err().unwrap().to_string();
    assert!(e.contains("CURRENT"), "{e}");
}
