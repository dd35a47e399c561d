//! Cursors: position answers, reading across rotations, following the tail, bounded memory,
//! retention with registered cursors.

use pika_relay::formats::item::BinlogItem;
use pika_relay::formats::BinlogPos;
use pika_relay::journal::{
    CursorError, Journal, JournalConfig, JournalWriter, RetentionConfig, SyncPolicy,
};
use pika_relay::pipeline::NewEntry;
use std::time::Duration;

fn set(i: usize, vlen: usize) -> NewEntry {
    NewEntry {
        exec_time: 1_700_000_000 + i as u32,
        argv: vec![
            b"set".to_vec(),
            format!("key:{i}").into_bytes(),
            vec![b'a' + (i % 26) as u8; vlen],
        ],
    }
}

fn small_cfg(dir: &std::path::Path) -> JournalConfig {
    JournalConfig {
        binlog_file_size: 1024,
        retention: RetentionConfig {
            max_files: 1000,
            max_age_secs: 1 << 40,
            ..Default::default()
        },
        ..JournalConfig::new(dir)
    }
}

/// Appends `n` entries (one per old entry, upstream offset = index + 1), syncing each `every`.
fn fill(w: &mut JournalWriter, from: usize, n: usize, vlen: usize, every: usize) {
    for i in from..from + n {
        w.append(BinlogPos::new(7, i as u64 + 1), &[set(i, vlen)])
            .unwrap();
        if (i + 1) % every == 0 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
}

async fn read_n(j: &Journal, from: BinlogPos, n: usize) -> Vec<(BinlogItem, BinlogPos, BinlogPos)> {
    let mut c = j.cursor(from).unwrap();
    let mut v = Vec::new();
    for _ in 0..n {
        let it = tokio::time::timeout(Duration::from_secs(10), c.next())
            .await
            .unwrap()
            .unwrap();
        v.push((BinlogItem::decode(&it.item).unwrap(), it.start, it.end));
    }
    assert!(c.try_next().await.unwrap().is_none());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_and_rotation() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(small_cfg(d.path())).unwrap();
    fill(&mut w, 0, 200, 10, 7);
    let j = w.journal();
    let st = j.synced();
    assert!(st.end.filenum >= 10, "rotated at 1024 bytes: {st:?}");
    assert_eq!(st.logic_id, 200);
    assert_eq!(st.upstream, Some(BinlogPos::new(7, 200)));

    let all = read_n(&j, BinlogPos::new(0, 0), 200).await;
    let mut prev_end = BinlogPos::new(0, 0);
    for (i, (item, start, end)) in all.iter().enumerate() {
        assert_eq!(item.logic_id, i as u64);
        assert_eq!(item.argv().unwrap(), set(i, 10).argv);
        if start.filenum == prev_end.filenum {
            assert_eq!(*start, prev_end);
            assert_eq!(item.pos, *start);
        } else {
            // First item of a new file: the header names the previous file's end (> 1024), as Pika.
            assert_eq!(*start, BinlogPos::new(prev_end.filenum + 1, 0));
            assert_eq!(item.pos, prev_end);
            assert!(prev_end.offset > 1024);
        }
        prev_end = *end;
    }
    assert_eq!(prev_end, st.end);

    // Every item end is a valid start; inside a record is not; past the end is not.
    for (_, _, end) in &all {
        j.check(*end).unwrap();
    }
    assert_eq!(
        j.check(BinlogPos::new(0, 1)),
        Err(CursorError::NotBoundary {
            requested: BinlogPos::new(0, 1)
        })
    );
    let beyond = BinlogPos::new(st.end.filenum, st.end.offset + 1);
    assert!(matches!(
        j.check(beyond),
        Err(CursorError::BeyondEnd { .. })
    ));
    assert!(matches!(
        j.check(BinlogPos::new(st.end.filenum + 1, 0)),
        Err(CursorError::BeyondEnd { .. })
    ));
    // The end of a finished file is a valid position (the slave's producer after its last item).
    let mid = all
        .iter()
        .find(|(_, s, _)| s.filenum == 3 && s.offset == 0)
        .unwrap();
    j.check(mid.0.pos).unwrap();
    let from_eof = read_n(&j, mid.0.pos, 200 - mid.0.logic_id as usize).await;
    assert_eq!(from_eof[0].1, mid.1);

    // Retention: a registered cursor protects its file; the rest goes by count.
    let keep = j.cursor(BinlogPos::new(4, 0)).unwrap();
    drop(w);
    let cfg = JournalConfig {
        retention: RetentionConfig {
            max_files: 2,
            ..Default::default()
        },
        ..small_cfg(d.path())
    };
    let (w, _) = JournalWriter::open(cfg).unwrap();
    let j2 = w.journal();
    let _keep2 = j2.cursor(BinlogPos::new(4, 0)).unwrap();
    let rep = j2.purge();
    assert_eq!(rep.removed, vec![0, 1, 2, 3]);
    assert!(rep.forced.is_empty());
    assert!(matches!(
        j2.check(BinlogPos::new(3, 0)),
        Err(CursorError::Purged { first: 4, .. })
    ));
    drop(keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_cap_purges_protected_and_cursor_sees_it() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(small_cfg(d.path())).unwrap();
    fill(&mut w, 0, 100, 10, 10);
    let j = w.journal();
    let mut c = j.cursor(BinlogPos::new(0, 0)).unwrap();
    drop(w);
    let cfg = JournalConfig {
        retention: RetentionConfig {
            max_files: 1000,
            hard_cap_bytes: Some(3000),
            ..Default::default()
        },
        ..small_cfg(d.path())
    };
    let (w, _) = JournalWriter::open(cfg).unwrap();
    let j2 = w.journal();
    let mut c2 = j2.cursor(BinlogPos::new(0, 0)).unwrap();
    let rep = j2.purge();
    assert!(rep.removed.is_empty());
    assert!(!rep.forced.is_empty());
    assert!(matches!(c2.next().await, Err(CursorError::Purged { .. })));
    let _ = c.next().await; // the old journal object is detached; just must not panic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_synced_items_are_visible_and_tail_is_followed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        sync: SyncPolicy::Group {
            max_entries: 1_000_000,
            max_delay_ms: 20,
        },
        ..small_cfg(d.path())
    };
    let (mut w, _) = JournalWriter::open(cfg.clone()).unwrap();
    let j = w.journal();
    let mut c = j.cursor(BinlogPos::new(0, 0)).unwrap();
    w.append(BinlogPos::new(0, 1), &[set(0, 5)]).unwrap();
    assert!(
        c.try_next().await.unwrap().is_none(),
        "unsynced item must not be visible"
    );
    w.sync().unwrap();
    assert!(c.try_next().await.unwrap().is_some());
    drop(c);
    drop(w);

    // Through the threaded handle: a reader waiting at the tail wakes on each group commit.
    let (j, h, rec) = Journal::open(cfg).unwrap();
    assert_eq!(rec.state.logic_id, 1);
    let start = j.synced().end;
    let reader = {
        let j = j.clone();
        tokio::spawn(async move { read_n(&j, start, 300).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 1..301 {
        h.append(BinlogPos::new(0, i as u64 + 1), vec![set(i, 100)])
            .await
            .unwrap();
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 300);
    assert_eq!(got[299].0.logic_id, 300);
    let st = h.close().await.unwrap();
    assert_eq!(st.upstream, Some(BinlogPos::new(0, 301)));
    assert_eq!(st.end, got[299].2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_and_big_records_cross_blocks() {
    let d = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        read_chunk: 64 * 1024,
        ..JournalConfig::new(d.path())
    };
    let (mut w, _) = JournalWriter::open(cfg).unwrap();
    // ~24 MB of 16 KiB values plus a few values larger than a block.
    for i in 0..1500 {
        let vlen = if i % 500 == 0 { 153_600 } else { 16 * 1024 };
        w.append(BinlogPos::new(0, i + 1), &[set(i as usize, vlen)])
            .unwrap();
    }
    w.sync().unwrap();
    let j = w.journal();
    let mut c = j.cursor(BinlogPos::new(0, 0)).unwrap();
    let mut n = 0;
    let mut max_buf = 0;
    let mut ends = Vec::new();
    while let Some(it) = c.try_next().await.unwrap() {
        n += 1;
        max_buf = max_buf.max(c.buffered());
        ends.push(it.end);
    }
    assert_eq!(n, 1500);
    assert!(
        max_buf <= 64 * 1024 + 2 * 160_000,
        "buffer grew to {max_buf}"
    );
    // A position inside a multi-block record is not a boundary.
    let big_start = BinlogPos::new(0, 0);
    let big_end = ends[0];
    assert!(big_end.offset > 2 * 65536);
    for off in [65536, 65536 * 2, 100, big_end.offset - 1] {
        assert_eq!(
            j.check(BinlogPos::new(0, off)),
            Err(CursorError::NotBoundary {
                requested: BinlogPos::new(0, off)
            })
        );
    }
    j.check(big_start).unwrap();
    j.check(big_end).unwrap();
}
