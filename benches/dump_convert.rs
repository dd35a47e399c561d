//! Dump conversion benchmark (harness-less): generates a nemo (Pika 2.3) dump of mixed types
//! (strings, hashes, lists, sets, zsets; ≥ 1 M keys, ≥ 1 GB of data by default), converts it to
//! blackwidow, and reports keys/s and MB/s against a raw RocksDB baseline measured in the same
//! run on the same dump: scan every entry of the five instances and write them unchanged into
//! new SST files (the I/O and RocksDB work without decoding, re-keying and sorting). Peak RSS of
//! each phase from /proc (VmHWM, reset before each phase).
//!
//! `cargo bench --bench dump_convert`; env `PIKA_BENCH_DIR` (default: a temp dir),
//! `PIKA_BENCH_DUMP_MB` (default 1024: data bytes), `PIKA_BENCH_DUMP_KEYS` (default 1_000_000).

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use pika_relay::dump::convert::convert;
use pika_relay::dump::layout::{Engine, TYPES};
use pika_relay::dump::rocks::{column_families, open_read_only};
use pika_relay::dump::writer::sst::{sst_spec, SstOut};
use pika_relay::dump::{detect, DumpRecord, DumpWriter, RecordValue, WriterOptions};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Resets the peak RSS (Linux `clear_refs` 5) so VmHWM measures the next phase only.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes the source dump: `keys` keys round-robin over the five types, sized so the data
/// totals about `bytes`. Returns (keys, data bytes).
fn generate(dir: &Path, keys: u64, bytes: u64) -> (u64, u64) {
    let per_key = (bytes / keys).max(16) as usize;
    let mut o = WriterOptions::new(Engine::Nemo);
    o.memory_budget = 512 << 20;
    let mut w = DumpWriter::create(dir, o).unwrap();
    let mut total = 0u64;
    let b = |s: String| Bytes::from(s.into_bytes());
    for i in 0..keys {
        let key = b(format!("key:{i:010}"));
        let members = 8usize;
        let msize = (per_key / members).max(1);
        let fill = |j: usize| Bytes::from(vec![b'a' + ((i as usize + j) % 26) as u8; msize]);
        let value = match i % 5 {
            0 => RecordValue::String(Bytes::from(vec![b'v'; per_key])),
            1 => RecordValue::Hash(
                (0..members)
                    .map(|j| (b(format!("f{j}")), fill(j)))
                    .collect(),
            ),
            2 => RecordValue::List((0..members).map(fill).collect()),
            3 => RecordValue::Set(
                (0..members)
                    .map(|j| {
                        let mut m = fill(j).to_vec();
                        m.extend_from_slice(format!("{j}").as_bytes());
                        Bytes::from(m)
                    })
                    .collect(),
            ),
            _ => RecordValue::ZSet(
                (0..members)
                    .map(|j| {
                        let mut m = fill(j).to_vec();
                        m.extend_from_slice(format!("{j}").as_bytes());
                        (Bytes::from(m), j as f64 * 1.5 - 3.0)
                    })
                    .collect(),
            ),
        };
        total += pika_relay::dump::convert::record_bytes(&DumpRecord {
            key: key.clone(),
            expire_at_ms: None,
            value: value.clone(),
            first: true,
            last: true,
        });
        w.write(&DumpRecord {
            key,
            expire_at_ms: if i % 7 == 0 {
                Some(2_000_000_000_000)
            } else {
                None
            },
            value,
            first: true,
            last: true,
        })
        .unwrap();
    }
    w.finish().unwrap();
    (keys, total)
}

/// The baseline: every raw entry of every instance scanned and written unchanged to new SSTs.
fn raw_scan_write(src: &Path, out: &Path) -> u64 {
    let layout = detect(src).unwrap();
    let mut entries = 0u64;
    for t in TYPES {
        let db = open_read_only(layout.engine, t, &layout.instance(t)).unwrap();
        let dir = out.join(layout.engine.type_dir(t));
        std::fs::create_dir_all(&dir).unwrap();
        for cf in column_families(layout.engine, t) {
            let spec = sst_spec(t, cf, false, Default::default());
            let mut sink = SstOut::new(&dir, spec, 64 << 20);
            let mut n = 10u64;
            let mut it = db.raw_iterator();
            it.seek_to_first();
            while it.valid() {
                sink.put(it.key().unwrap(), it.value().unwrap(), &mut n)
                    .unwrap();
                entries += 1;
                it.next();
            }
            sink.finish().unwrap();
        }
    }
    entries
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("dump_convert: bench");
        return;
    }
    let keys = env_u64("PIKA_BENCH_DUMP_KEYS", 1_000_000);
    let mb = env_u64("PIKA_BENCH_DUMP_MB", 1024);
    let base = std::env::var_os("PIKA_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let src = tmp.path().join("nemo");
    let t0 = Instant::now();
    let (keys, data) = generate(&src, keys, mb << 20);
    println!(
        "generated nemo dump: {keys} keys, {:.0} MB of data, {:.0} MB on disk, in {:.1} s",
        data as f64 / 1e6,
        dir_bytes(&src) as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );

    reset_peak();
    let t = Instant::now();
    let entries = raw_scan_write(&src, &tmp.path().join("raw"));
    let raw = t.elapsed().as_secs_f64();
    let raw_rss = status_kib("VmHWM:");
    println!(
        "baseline raw scan+write : {entries} entries in {raw:.2} s ({:.0} keys/s, {:.1} MB/s of data), peak RSS {} MiB",
        keys as f64 / raw,
        data as f64 / raw / 1e6,
        raw_rss / 1024
    );

    reset_peak();
    let t = Instant::now();
    let mut d = pika_relay::dump::OpenDump::open(&src).unwrap();
    d.zset_score_order = false;
    let mut n = 0u64;
    d.read(0, &mut |r| {
        n += u64::from(r.last);
        true
    })
    .unwrap();
    let read = t.elapsed().as_secs_f64();
    println!(
        "read only (records)     : {n} keys in {read:.2} s ({:.0} keys/s), peak RSS {} MiB",
        n as f64 / read,
        status_kib("VmHWM:") / 1024
    );

    reset_peak();
    let t = Instant::now();
    let st = convert(&src, &tmp.path().join("bw"), Engine::Blackwidow31, 0, None).unwrap();
    let conv = t.elapsed().as_secs_f64();
    let conv_rss = status_kib("VmHWM:");
    assert_eq!(st.keys, keys);
    println!(
        "convert nemo→blackwidow : {} keys in {conv:.2} s ({:.0} keys/s, {:.1} MB/s of data), peak RSS {} MiB, {} SST files",
        st.keys,
        st.keys as f64 / conv,
        st.bytes as f64 / conv / 1e6,
        conv_rss / 1024,
        st.written.files
    );
    println!(
        "ratio convert / raw scan+write = {:.2} (goal ≤ 1.5)",
        conv / raw
    );
}
