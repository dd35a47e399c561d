//! A real `kill -9`: this test binary re-runs itself as a child (env `PIKA_JOURNAL_KILL_CHILD`)
//! that appends forever through the threaded writer with group commit and prints every accepted
//! upstream position; the parent SIGKILLs it at random moments, reopens the journal and checks
//! that it holds exactly the prefix of entries up to the recovered upstream position, that this
//! position is at least the last one the child reported accepted, and that the next child resumes
//! from it without duplicates.

mod support;

use pika_relay::formats::BinlogPos;
use pika_relay::journal::{Journal, JournalConfig, JournalWriter, SyncPolicy};
use pika_relay::pipeline::NewEntry;
use rand::Rng;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{read_all_items, tiny};

const ENV: &str = "PIKA_JOURNAL_KILL_CHILD";

/// The items of old entry `i` (0, 1 or 2 of them).
fn entries(i: u64) -> Vec<NewEntry> {
    let one = |j: u64| NewEntry {
        exec_time: 1_700_000_000 + i as u32,
        argv: vec![
            b"set".to_vec(),
            format!("k{i}.{j}").into_bytes(),
            vec![(i % 251) as u8; ((i * 37) % 3000) as usize],
        ],
    };
    match (i % 7, i % 11) {
        (3, _) => vec![],
        (_, 5) => vec![one(0), one(1)],
        _ => vec![one(0)],
    }
}

fn cfg(dir: &std::path::Path) -> JournalConfig {
    JournalConfig {
        sync: SyncPolicy::Group {
            max_entries: 64,
            max_delay_ms: 2,
        },
        ..tiny(dir, 64 * 1024)
    }
}

fn child(dir: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (j, h, rec) = Journal::open(cfg(std::path::Path::new(dir))).unwrap();
        let mut i = rec.state.upstream.map_or(0, |p| p.offset);
        let mut rx = j.watch();
        tokio::spawn(async move {
            let mut out = std::io::stdout();
            while rx.changed().await.is_ok() {
                let st = *rx.borrow_and_update();
                if let Some(u) = st.upstream {
                    let _ = writeln!(out, "SYNCED {} {}", u.offset, st.logic_id);
                    let _ = out.flush();
                }
            }
        });
        loop {
            h.append(BinlogPos::new(0, i + 1), entries(i))
                .await
                .unwrap();
            i += 1;
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
}

#[test]
fn kill9_at_random_moments_keeps_the_accepted_prefix() {
    if let Ok(dir) = std::env::var(ENV) {
        child(&dir);
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut last_recovered = 0u64;
    for round in 0..5 {
        let mut c = Command::new(&exe)
            .args([
                "--exact",
                "kill9_at_random_moments_keeps_the_accepted_prefix",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, d.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = c.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("SYNCED ") {
                    let mut p = rest.split(' ').map(|x| x.parse::<u64>().unwrap());
                    let _ = tx.send((p.next().unwrap(), p.next().unwrap()));
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1200)));
        c.kill().unwrap(); // SIGKILL to this child's pid
        c.wait().unwrap();
        reader.join().unwrap();
        let reported: Vec<(u64, u64)> = rx.try_iter().collect();
        let (up, lid) = reported.last().copied().unwrap_or((last_recovered, 0));

        let (w, rec) = JournalWriter::open(cfg(d.path())).unwrap();
        let got = rec.state.upstream.map_or(0, |p| p.offset);
        assert!(
            got >= up,
            "round {round}: recovered upstream {got} < reported accepted {up}"
        );
        assert!(rec.state.logic_id >= lid);
        assert!(got > last_recovered, "round {round}: no progress");
        let items = read_all_items(d.path());
        let expected: Vec<_> = (0..got).flat_map(entries).collect();
        assert_eq!(items.len(), expected.len(), "round {round}");
        for (it, e) in items.iter().zip(&expected) {
            assert_eq!(it.argv().unwrap(), e.argv);
        }
        assert_eq!(rec.state.logic_id, items.len() as u64);
        eprintln!(
            "round {round}: killed after {} accepted reports; recovered upstream {got} ({} items, dropped tail {} bytes, removed files {:?})",
            reported.len(),
            items.len(),
            rec.dropped_tail_bytes,
            rec.removed_files
        );
        last_recovered = got;
        drop(w);
    }
}
