//! The syncer beside the writer: appends never wait for an `fdatasync`, and the accepted state
//! (the [`Synced`](pika_relay::journal::Synced) watch, what slaves may be sent and what a restart
//! resumes from) only ever names what a finished commit made durable.
//!
//! - A sync that was requested but not committed is not accepted: not published, and lost in a
//!   crash, while the appends after the request went on.
//! - A real `kill -9` of a child appending in batches (as the relay's pump does) through the
//!   threaded writer, with rotations every few KiB so commits span files, under group commit and
//!   under `sync = always`: the recovered journal holds every entry the child saw accepted, and
//!   exactly the prefix of entries up to its recovered upstream position.

mod support;

use pika_relay::formats::BinlogPos;
use pika_relay::journal::{Journal, JournalConfig, JournalWriter, SyncPolicy};
use pika_relay::pipeline::NewEntry;
use support::{kill9, read_all_items, tiny};

const ENV: &str = "PIKA_JOURNAL_SYNCER_CHILD";
/// Set for the child of the `sync = always` test.
const ALWAYS_ENV: &str = "PIKA_JOURNAL_SYNCER_ALWAYS";

/// The items of old entry `i` (0, 1 or 2 of them, some a few KiB).
fn entries(i: u64) -> Vec<NewEntry> {
    let one = |j: u64| NewEntry {
        exec_time: 1_700_000_000 + i as u32,
        argv: vec![
            b"set".to_vec(),
            format!("k{i}.{j}").into_bytes(),
            vec![(i % 251) as u8; ((i * 53) % 5000) as usize],
        ],
    };
    match (i % 13, i % 7) {
        (4, _) => vec![],
        (_, 2) => vec![one(0), one(1)],
        _ => vec![one(0)],
    }
}

fn cfg(dir: &std::path::Path, always: bool) -> JournalConfig {
    JournalConfig {
        sync: if always {
            SyncPolicy::Always
        } else {
            SyncPolicy::Group {
                max_entries: 1000,
                max_delay_ms: 10,
            }
        },
        ..tiny(dir, 48 * 1024)
    }
}

#[test]
fn a_requested_sync_is_accepted_only_once_committed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = || tiny(d.path(), 1 << 20);
    let (mut w, rec) = JournalWriter::open(cfg()).unwrap();
    let j = w.journal();
    assert_eq!(j.synced(), rec.state);
    for i in 0..10 {
        w.append(BinlogPos::new(0, i + 1), &entries(i)).unwrap();
    }
    let s1 = w.sync().unwrap();
    assert_eq!(s1.upstream, Some(BinlogPos::new(0, 10)));
    // Request (no syncer thread here: nothing commits it), keep appending.
    for i in 10..40 {
        w.append(BinlogPos::new(0, i + 1), &entries(i)).unwrap();
    }
    w.request_sync().unwrap();
    for i in 40..60 {
        w.append(BinlogPos::new(0, i + 1), &entries(i)).unwrap();
    }
    assert_eq!(
        j.synced(),
        s1,
        "a requested sync is not accepted before it is committed"
    );
    drop(w); // crash before the commit
    let (mut w, rec) = JournalWriter::open(cfg()).unwrap();
    assert_eq!(
        rec.state, s1,
        "the uncommitted request is lost like any unsynced append"
    );
    assert_eq!(read_all_items(d.path()).len() as u64, s1.logic_id);
    // The same with the commit: everything up to the last append.
    for i in 10..60 {
        w.append(BinlogPos::new(0, i + 1), &entries(i)).unwrap();
    }
    w.request_sync().unwrap();
    for i in 60..70 {
        w.append(BinlogPos::new(0, i + 1), &entries(i)).unwrap();
    }
    let s2 = w.sync().unwrap();
    assert_eq!(w.journal().synced(), s2);
    assert_eq!(s2.upstream, Some(BinlogPos::new(0, 70)));
    drop(w);
    let (_w, rec) = JournalWriter::open(cfg()).unwrap();
    assert_eq!(rec.state, s2);
    let items = read_all_items(d.path());
    let expected: Vec<_> = (0..70).flat_map(entries).collect();
    assert_eq!(items.len(), expected.len());
    for (it, e) in items.iter().zip(&expected) {
        assert_eq!(it.argv().unwrap(), e.argv);
    }
}

fn child(dir: &str, always: bool) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (j, h, rec) = Journal::open(cfg(std::path::Path::new(dir), always)).unwrap();
        let mut i = rec.state.upstream.map_or(0, |p| p.offset);
        kill9::report_synced(&j);
        let mut n = 1u64;
        loop {
            let batch: Vec<_> = (i..i + n)
                .map(|k| (BinlogPos::new(0, k + 1), entries(k)))
                .collect();
            h.append_many(batch).await.unwrap();
            i += n;
            n = n % 97 + 1;
            tokio::task::yield_now().await;
        }
    });
}

fn kill_rounds(always: bool, name: &str) {
    if let Ok(dir) = std::env::var(ENV) {
        if std::env::var(ALWAYS_ENV).is_ok() == always {
            child(&dir, always);
        }
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_str().unwrap();
    let mut env = vec![(ENV, dir)];
    if always {
        env.push((ALWAYS_ENV, "1"));
    }
    kill9::kill_rounds(name, &env, d.path(), |p| cfg(p, always), entries);
}

#[test]
fn kill9_during_batched_load_keeps_everything_reported_synced() {
    kill_rounds(
        false,
        "kill9_during_batched_load_keeps_everything_reported_synced",
    );
}

#[test]
fn kill9_during_batched_load_with_sync_always() {
    kill_rounds(true, "kill9_during_batched_load_with_sync_always");
}
