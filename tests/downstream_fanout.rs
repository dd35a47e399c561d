//! The downstream fan-out: slaves at the tail share the journal writer's encoded items (one
//! allocation for all of them), never see an item before it is synced, and a slave behind the
//! in-memory tail reads the same items from disk and moves to the shared ones when it gets there.

mod support;

use pika_relay::downstream::fanout::FanoutCursor;
use pika_relay::formats::BinlogPos;
use pika_relay::journal::{JournalConfig, JournalWriter};
use pika_relay::pipeline::NewEntry;
use support::tiny;

fn entry(i: u64) -> Vec<NewEntry> {
    vec![NewEntry {
        exec_time: 1_700_000_000,
        argv: vec![
            b"set".to_vec(),
            format!("k{i}").into_bytes(),
            vec![b'v'; 100 + (i % 7) as usize * 40],
        ],
    }]
}

async fn drain(c: &mut FanoutCursor) -> Vec<pika_relay::downstream::source::JournalItem> {
    let mut v = Vec::new();
    while let Some(it) = c.try_next().await.unwrap() {
        v.push(it);
    }
    v
}

#[tokio::test]
async fn tail_items_are_shared_synced_only_and_equal_to_disk() {
    let d = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        tail_bytes: 32 * 1024,
        ..tiny(d.path(), 1 << 20)
    };
    let (mut w, rec) = JournalWriter::open(cfg).unwrap();
    let j = w.journal();
    let start = rec.state.end;
    for i in 0..400 {
        w.append(BinlogPos::new(0, i + 1), &entry(i)).unwrap();
    }
    w.sync().unwrap();
    let mid = j.synced().end;
    let mut a = FanoutCursor::open(j.clone(), mid).unwrap();
    let mut b = FanoutCursor::open(j.clone(), mid).unwrap();
    assert!(
        !a.on_disk() && !b.on_disk(),
        "at the end: served from memory"
    );

    // Written and handed to the syncer, not synced: invisible.
    for i in 400..430 {
        w.append(BinlogPos::new(0, i + 1), &entry(i)).unwrap();
    }
    w.request_sync().unwrap();
    assert!(j.tail_len().1 <= 32 * 1024);
    assert!(
        drain(&mut a).await.is_empty(),
        "nothing past the synced end"
    );
    w.sync().unwrap();
    let xa = drain(&mut a).await;
    let xb = drain(&mut b).await;
    assert_eq!(xa.len(), 30);
    assert_eq!(xa, xb);
    for (p, q) in xa.iter().zip(&xb) {
        assert_eq!(
            p.bytes.as_ptr(),
            q.bytes.as_ptr(),
            "both slaves got the same allocation"
        );
    }

    // A slave from the start: the oldest items left the 32 KiB tail, so it reads them from
    // disk, then continues from memory; every item equals what a plain disk cursor reads.
    let mut c = FanoutCursor::open(j.clone(), start).unwrap();
    assert!(c.on_disk());
    let mut disk = j.cursor(start).unwrap();
    let mut n = 0;
    let mut switched = false;
    while let Some(it) = c.try_next().await.unwrap() {
        let want = disk.try_next().await.unwrap().unwrap();
        assert_eq!(
            (it.bytes.as_ref(), it.start, it.end),
            (want.item.as_slice(), want.start, want.end)
        );
        assert_eq!(it.logic_id, n);
        switched |= !c.on_disk();
        n += 1;
    }
    assert_eq!(n, 430);
    assert!(switched, "it moved to the shared tail once it got there");
    assert_eq!(c.position(), j.synced().end);
}

#[tokio::test]
async fn batches_from_the_tail_cross_rotations_and_stop_at_the_synced_end() {
    use pika_relay::downstream::fanout::BATCH_ITEMS;
    let d = tempfile::tempdir().unwrap();
    let (mut w, rec) = JournalWriter::open(tiny(d.path(), 4096)).unwrap();
    let j = w.journal();
    let start = rec.state.end;
    let mut c = FanoutCursor::open(j.clone(), start).unwrap();
    assert!(!c.on_disk());
    let total = 2 * BATCH_ITEMS as u64 + 50;
    for i in 0..total {
        w.append(BinlogPos::new(0, i + 1), &entry(i)).unwrap();
    }
    w.sync().unwrap();
    // More items handed to the syncer but not synced: never returned, even mid-batch.
    for i in total..total + 40 {
        w.append(BinlogPos::new(0, i + 1), &entry(i)).unwrap();
    }
    w.request_sync().unwrap();
    let synced = j.synced();
    assert!(synced.end.filenum >= 10, "many rotations: {}", synced.end);
    let got = drain(&mut c).await;
    assert_eq!(got.len() as u64, total, "exactly the synced items");
    assert!(!c.on_disk(), "all from memory");
    assert_eq!(c.checked_epoch(), Some(synced.epoch));
    assert_eq!(c.position(), synced.end);
    let mut disk = j.cursor(start).unwrap();
    for (n, it) in got.iter().enumerate() {
        let want = disk.try_next().await.unwrap().unwrap();
        assert_eq!(
            (it.bytes.as_ref(), it.start, it.end, it.logic_id),
            (want.item.as_slice(), want.start, want.end, n as u64)
        );
    }
    w.sync().unwrap();
    assert_eq!(drain(&mut c).await.len(), 40, "the rest once synced");
}

#[tokio::test]
async fn each_item_reports_the_epoch_it_was_synced_in() {
    // The pump sends an item only to a session of the epoch the cursor checked it against: items
    // taken before a new epoch keep the old one, the new epoch's padding item carries the new.
    let d = tempfile::tempdir().unwrap();
    let (mut w, rec) = JournalWriter::open(tiny(d.path(), 1 << 20)).unwrap();
    let j = w.journal();
    let mut c = FanoutCursor::open(j.clone(), rec.state.end).unwrap();
    for i in 0..10 {
        w.append(BinlogPos::new(0, i + 1), &entry(i)).unwrap();
    }
    let old = w.sync().unwrap().epoch;
    assert!(c.try_next().await.unwrap().is_some());
    assert_eq!(c.checked_epoch(), Some(old));
    let new = w.begin_epoch(BinlogPos::new(5, 0)).unwrap();
    assert_eq!(new.epoch, old + 1);
    let mut epochs = Vec::new();
    while let Some(it) = c.try_next().await.unwrap() {
        epochs.push((it.end, c.checked_epoch()));
    }
    assert_eq!(epochs.len(), 10, "9 items and the padding");
    assert!(epochs[..9].iter().all(|&(_, e)| e == Some(old)));
    assert_eq!(epochs[9], (new.epoch_start, Some(new.epoch)));
}
