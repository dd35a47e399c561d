//! Crash at any byte: any sequence of appends and syncs, then a crash (the writer is dropped
//! without syncing: its buffer is lost; files beyond the last accepted position are cut at a
//! random length and may get garbage; optionally the meta write of the last sync is torn), then
//! reopen. The journal must hold exactly the accepted prefix, with consistent meta, and accept
//! new appends after it.

mod support;

use pika_relay::formats::BinlogPos;
use pika_relay::journal::files::{data_path, list_data_files};
use pika_relay::journal::meta::META_FILE;
use pika_relay::journal::{JournalWriter, Synced};
use pika_relay::pipeline::NewEntry;
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::os::unix::fs::FileExt;
use support::{read_all_items, tiny};

fn entry(i: usize, vlen: usize) -> NewEntry {
    NewEntry {
        exec_time: 1_700_000_000 + i as u32,
        argv: vec![
            b"set".to_vec(),
            format!("k{i}").into_bytes(),
            vec![(i % 251) as u8; vlen],
        ],
    }
}

#[derive(Clone, Copy, Debug)]
struct Acked {
    st: Synced,
    count: usize,
}

fn tear_newest_meta_slot(dir: &std::path::Path) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(META_FILE))
        .unwrap();
    let mut b = [0u8; 1024];
    f.read_exact_at(&mut b, 0).unwrap();
    let seq = |o: usize| u64::from_le_bytes(b[o + 8..o + 16].try_into().unwrap());
    let newest = if seq(0) > seq(512) { 0 } else { 512 };
    f.write_all_at(&[0x5a; 16], newest as u64 + 20).unwrap();
}

fn run(
    ops: &[(usize, usize, bool)],
    file_size: u64,
    seed: u64,
    torn_meta: bool,
) -> Result<(), TestCaseError> {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny(d.path(), file_size);
    let (mut w, rec) = JournalWriter::open(cfg.clone()).unwrap();
    let mut appended = Vec::new();
    let mut acked = Acked {
        st: rec.state,
        count: 0,
    };
    let mut prev = acked;
    let mut syncs = 0;
    for (k, &(n, vlen, sync)) in ops.iter().enumerate() {
        let es: Vec<_> = (0..n).map(|i| entry(appended.len() + i, vlen)).collect();
        w.append(BinlogPos::new(1, k as u64 + 1), &es).unwrap();
        appended.extend(es);
        if sync {
            prev = acked;
            acked = Acked {
                st: w.sync().unwrap(),
                count: appended.len(),
            };
            syncs += 1;
        }
    }
    drop(w); // crash: unsynced buffer lost
    let mut rng = StdRng::seed_from_u64(seed);
    for f in list_data_files(d.path()).unwrap() {
        let p = data_path(d.path(), f);
        let len = std::fs::metadata(&p).unwrap().len();
        let durable = match f.cmp(&acked.st.end.filenum) {
            std::cmp::Ordering::Less => continue,
            std::cmp::Ordering::Equal => acked.st.end.offset,
            std::cmp::Ordering::Greater => 0,
        };
        let keep = rng.gen_range(durable..=len);
        let file = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        file.set_len(keep).unwrap();
        if rng.gen_bool(0.5) {
            let junk: Vec<u8> = (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect();
            file.write_all_at(&junk, keep).unwrap();
        }
    }
    let expect = if torn_meta && syncs > 0 {
        tear_newest_meta_slot(d.path());
        prev
    } else {
        acked
    };
    let (mut w, rec) = JournalWriter::open(cfg.clone()).unwrap();
    prop_assert_eq!(rec.state, expect.st);
    let items = read_all_items(d.path());
    prop_assert_eq!(items.len(), expect.count);
    for (i, it) in items.iter().enumerate() {
        prop_assert_eq!(it.argv().unwrap(), appended[i].argv.clone());
        prop_assert_eq!(it.logic_id, i as u64);
    }
    // Meta is consistent with the files: upstream of the last accepted append, end = file end.
    let last = list_data_files(d.path())
        .unwrap()
        .into_iter()
        .max()
        .unwrap();
    prop_assert_eq!(last, expect.st.end.filenum);
    prop_assert_eq!(
        std::fs::metadata(data_path(d.path(), last)).unwrap().len(),
        expect.st.end.offset
    );
    // And the journal continues after the prefix.
    w.append(BinlogPos::new(2, 1), &[entry(999_999, 7)])
        .unwrap();
    let st = w.sync().unwrap();
    prop_assert_eq!(st.logic_id, expect.count as u64 + 1);
    drop(w);
    let (_, rec) = JournalWriter::open(cfg).unwrap();
    prop_assert_eq!(rec.state, st);
    prop_assert_eq!(read_all_items(d.path()).len(), expect.count + 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn crash_at_any_byte_yields_the_accepted_prefix(
        ops in prop::collection::vec((0usize..4, 0usize..3000, any::<bool>()), 1..40),
        file_size in 1024u64..8000,
        seed in any::<u64>(),
        torn_meta in any::<bool>(),
    ) {
        run(&ops, file_size, seed, torn_meta)?;
    }
}

#[test]
fn synced_data_missing_is_refused_not_papered_over() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny(d.path(), 1 << 20);
    let (mut w, _) = JournalWriter::open(cfg.clone()).unwrap();
    w.append(BinlogPos::new(0, 1), &[entry(0, 10), entry(1, 10)])
        .unwrap();
    let st = w.sync().unwrap();
    drop(w);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(data_path(d.path(), 0))
        .unwrap();
    f.set_len(st.end.offset - 1).unwrap();
    assert!(JournalWriter::open(cfg.clone()).is_err());
    // Files without meta are refused too.
    std::fs::remove_file(d.path().join(META_FILE)).unwrap();
    assert!(JournalWriter::open(cfg).is_err());
}

#[test]
fn resent_old_entries_are_not_journaled_twice() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny(d.path(), 1 << 20);
    let (mut w, _) = JournalWriter::open(cfg.clone()).unwrap();
    assert!(w.append(BinlogPos::new(0, 5), &[entry(0, 1)]).unwrap());
    assert!(!w.append(BinlogPos::new(0, 5), &[entry(0, 1)]).unwrap());
    assert!(!w.append(BinlogPos::new(0, 3), &[entry(0, 1)]).unwrap());
    w.sync().unwrap();
    drop(w);
    // After a restart the upstream re-sends from the recovered position: still deduplicated.
    let (mut w, rec) = JournalWriter::open(cfg).unwrap();
    assert_eq!(rec.state.upstream, Some(BinlogPos::new(0, 5)));
    assert!(!w.append(BinlogPos::new(0, 5), &[entry(0, 1)]).unwrap());
    assert!(w.append(BinlogPos::new(1, 0), &[entry(1, 1)]).unwrap());
    w.sync().unwrap();
    assert_eq!(read_all_items(d.path()).len(), 2);
}
