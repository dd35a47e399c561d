//! Pre-allocated journal files, as Pika 3.1/3.2 grow theirs: the live file is zero-filled ahead
//! of the data (so a commit's `fdatasync` changes no file size), finished files are cut to their
//! last record at the rotation, a clean close cuts the live one, and after a crash recovery
//! removes the zeros without reporting them as lost data.

mod support;

use pika_relay::formats::BinlogPos;
use pika_relay::journal::files::data_path;
use pika_relay::journal::{JournalConfig, JournalHandle, JournalWriter};
use pika_relay::pipeline::NewEntry;
use support::{read_all_items, tiny};

const CHUNK: u64 = 64 * 1024;
const FILE: u64 = 256 * 1024;

fn entry(i: u64) -> NewEntry {
    NewEntry {
        exec_time: 1_700_000_000,
        argv: vec![
            b"set".to_vec(),
            format!("k{i}").into_bytes(),
            vec![b'v'; 300],
        ],
    }
}

fn cfg(dir: &std::path::Path) -> JournalConfig {
    JournalConfig {
        preallocate: CHUNK,
        ..tiny(dir, FILE)
    }
}

fn len(dir: &std::path::Path, n: u32) -> u64 {
    std::fs::metadata(data_path(dir, n)).unwrap().len()
}

#[test]
fn zeros_ahead_of_the_data_cut_at_rotations_and_removed_by_recovery() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(cfg(d.path())).unwrap();
    for i in 0..2000 {
        w.append(BinlogPos::new(0, i + 1), &[entry(i)]).unwrap();
    }
    let s = w.sync().unwrap();
    assert!(s.end.filenum >= 2, "rotated: {s:?}");
    // Finished files end at their last record (read_all_items checks it), past the rotation
    // threshold; the live one is zero-filled to the next chunk boundary.
    for n in 0..s.end.filenum {
        assert!(len(d.path(), n) > FILE, "write2file{n}");
    }
    let live = len(d.path(), s.end.filenum);
    assert_eq!(live, s.end.offset.div_ceil(CHUNK) * CHUNK, "{s:?}");
    assert!(live > s.end.offset, "{s:?}");
    assert_eq!(read_all_items(d.path()).len(), 2000);

    // Crash (no close): the zeros are cut by recovery, and not reported as lost data.
    drop(w);
    let (mut w, rec) = JournalWriter::open(cfg(d.path())).unwrap();
    assert_eq!(rec.state, s);
    assert_eq!(rec.dropped_tail_bytes, 0);
    assert_eq!(len(d.path(), s.end.filenum), s.end.offset);

    // Unsynced data written into the pre-allocated space, then a crash: only the data counts.
    for i in 2000..2010 {
        w.append(BinlogPos::new(0, i + 1), &[entry(i)]).unwrap();
    }
    let written = w.position().offset - s.end.offset;
    w.request_sync().unwrap(); // written to the file; no syncer thread commits it
    drop(w);
    let (w, rec) = JournalWriter::open(cfg(d.path())).unwrap();
    assert_eq!(rec.state, s, "the unsynced items are not accepted");
    assert_eq!(rec.dropped_tail_bytes, written);
    drop(w);
    assert_eq!(read_all_items(d.path()).len(), 2000);
}

#[tokio::test]
async fn a_clean_close_leaves_the_live_file_at_its_last_record() {
    let d = tempfile::tempdir().unwrap();
    let (w, _) = JournalWriter::open(cfg(d.path())).unwrap();
    let h = JournalHandle::spawn(w).unwrap();
    for i in 0..100 {
        h.append(BinlogPos::new(0, i + 1), vec![entry(i)])
            .await
            .unwrap();
    }
    let s = h.sync().await.unwrap();
    assert!(
        len(d.path(), s.end.filenum) > s.end.offset,
        "pre-allocated while open"
    );
    let s = h.close().await.unwrap();
    assert_eq!(len(d.path(), s.end.filenum), s.end.offset);
    let (_, rec) = JournalWriter::open(cfg(d.path())).unwrap();
    assert_eq!((rec.state, rec.dropped_tail_bytes), (s, 0));
}

#[test]
fn no_preallocation_when_turned_off() {
    let d = tempfile::tempdir().unwrap();
    let c = || JournalConfig {
        preallocate: 0,
        ..cfg(d.path())
    };
    let (mut w, _) = JournalWriter::open(c()).unwrap();
    for i in 0..100 {
        w.append(BinlogPos::new(0, i + 1), &[entry(i)]).unwrap();
    }
    let s = w.sync().unwrap();
    assert_eq!(len(d.path(), s.end.filenum), s.end.offset);
}
